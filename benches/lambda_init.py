"""Cold-start init of the Lambda runner: the time from starting the binary to its first
`GET /runtime/invocation/next` (the runtime is ready for an event), measured under a minimal
Runtime API stand-in, as Lambda's Init phase. Prints one JSON line.

  python3 benches/lambda_init.py RUNS COMMAND...   (e.g. 30 ./bootstrap, or under qemu-aarch64)
"""
import http.server
import json
import os
import statistics
import subprocess
import sys
import threading
import time

ready = threading.Event()


class RuntimeApi(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path.endswith("/runtime/invocation/next"):
            ready.set()
        self.send_response(503)
        self.end_headers()

    def log_message(self, *args):
        pass


def main():
    runs, command = int(sys.argv[1]), sys.argv[2:]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), RuntimeApi)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    env = dict(os.environ,
               AWS_LAMBDA_RUNTIME_API=f"127.0.0.1:{server.server_port}",
               AWS_LAMBDA_FUNCTION_NAME="sechub-export",
               AWS_LAMBDA_FUNCTION_MEMORY_SIZE="512",
               AWS_LAMBDA_FUNCTION_VERSION="$LATEST",
               AWS_REGION="us-east-1")
    times = []
    for _ in range(runs):
        ready.clear()
        started = time.perf_counter()
        child = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if not ready.wait(10):
            child.kill()
            sys.exit("the runtime never asked for an event")
        times.append((time.perf_counter() - started) * 1000)
        child.kill()
        child.wait()
    print(json.dumps({"runs": runs, "median_ms": round(statistics.median(times), 2),
                      "min_ms": round(min(times), 2), "max_ms": round(max(times), 2)}))


if __name__ == "__main__":
    main()
