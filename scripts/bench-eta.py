"""ETA accuracy (issue 32): one export at a fixed quota against the emulator, its total counted
(GetFindingsV2's statistics), a checkpoint per page. Reads the ETA two ways once 20% of the
findings are durable: the progress line's (rate this run, logged every 10 s) and `status`'s
(rate since the job started, from the checkpoint, polled every 0.5 s), and compares each with
the time the run really took from then. Prints one Markdown row.
Usage: bench-eta.py BIN EMULATOR_URL LAKE_DIR FINDINGS RATE BURST"""
import json, os, re, subprocess, sys, threading, time

bin_, emu, lake, findings, rate, burst = sys.argv[1:7]
env = dict(os.environ, AWS_ACCESS_KEY_ID="x", AWS_SECRET_ACCESS_KEY="x", AWS_REGION="us-east-1",
           AWS_EC2_METADATA_DISABLED="true", AWS_ENDPOINT_URL=emu, RUST_LOG="sechub_export=info")
job = "eta"
started = time.time()
export = subprocess.Popen([bin_, "export", "--api", "v2", "--destination", lake, "--job-id", job,
                           "--rate", rate, "--burst", burst, "--part-rows", "100"],
                          env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

def seconds(text):
    total = 0
    for value, unit in re.findall(r"(\d+)([dhms])", text):
        total += int(value) * {"d": 86400, "h": 3600, "m": 60, "s": 1}[unit]
    return total

progress_seen = {}
def read_progress():
    for line in export.stderr:
        m = re.search(r"(\d+)/(\d+) findings \(([0-9.]+)%, ETA ([0-9dhms ]+)\)", line)
        if m and float(m.group(3)) >= 20 and "line" not in progress_seen:
            progress_seen.update(line=time.time(), eta=seconds(m.group(4)), percent=float(m.group(3)))
reader = threading.Thread(target=read_progress, daemon=True); reader.start()

status_seen = {}
while export.poll() is None:
    out = subprocess.run([bin_, "status", "--destination", lake, "--job-id", job], env=env,
                         capture_output=True, text=True).stdout
    m = re.search(r"findings: +\d+/\d+ findings \(([0-9.]+)%, ETA ([0-9dhms ]+)\)", out)
    if m and float(m.group(1)) >= 20 and not status_seen:
        status_seen.update(at=time.time(), eta=seconds(m.group(2)), percent=float(m.group(1)))
    time.sleep(0.5)
ended = time.time()
reader.join(timeout=5)
assert export.returncode == 0, export.stdout.read()

def verdict(seen, at_key):
    real = ended - seen[at_key]
    error = 100 * (seen["eta"] - real) / real
    return f"ETA {seen['eta']} s at {seen['percent']:.1f}%, really {real:.1f} s left ({error:+.1f}%)"

print(f"| ETA | {findings} findings (v2, counted) at {rate}/s burst {burst}, a checkpoint per page, run {ended - started:.1f} s "
      f"| progress line: {verdict(progress_seen, 'line')}; status: {verdict(status_seen, 'at')} |")
