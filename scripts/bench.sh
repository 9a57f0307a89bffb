#!/usr/bin/env bash
# End-to-end benchmarks (issue: quota efficiency, encode throughput vs pyarrow, storage, memory,
# pipeline ceiling). Prints a Markdown table; BENCHMARKS.md records one run of it.
# Usage: scripts/bench.sh [quick|latency|order|eta|small-streams|scale|memory]   ("quick" shrinks every size, for a smoke run;
# "latency" runs only the two rows at a mean GetFindings latency of 300 and 600 ms; "order" runs
# one 600 ms stream against services that sort globally, sort each page, or stop sorting
# mid-read, read by prefix shards (the default) and with --trust-id-order; "eta" compares the
# ETA shown at 20% of a run with the time it really took; "small-streams" exports 1,000 streams
# of 300 findings at 100 ms, with and without their totals counted; "scale" times the
# Distributed Map's plan and finish steps and `status` over 10,000 and 170,000 streams;
# "memory" measures one stream's peak RSS at the default part size, into S3, as a Lambda
# invocation runs it)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/sechub-export/target}"
. scripts/setup-test-env.sh
command -v /usr/bin/time >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq time >/dev/null; }

quick="${1:-}"
pages=306; big=1000000; mid=100000; enc=4000
if [ "$quick" = quick ]; then pages=40; big=20000; mid=5000; enc=1000; fi

. scripts/bench-lib.sh
rows=()

quota_run() { # NAME RATE BURST DESTINATION [MEAN_LATENCY_MS [SORT_MODE [SWITCH_AT_PAGES [EXPORT FLAGS...]]]]
  # (s3:// goes to moto S3 + SSM; SWITCH_AT_PAGES > 0: the service sorts each page of its own
  # order from that many pages on)
  local name="$1" rate="$2" burst="$3" dest="$4" latency="${5:-0}" sort_mode="${6:-global}" switch_at="${7:-0}" endpoints setup
  local extra=("${@:8}")
  # The emulator's latency is a mean of L ms, uniform in L/2..3L/2.
  start_emulator "$((pages * 100))" "$rate" "$burst" --latency-ms "$latency" --sort-mode "$sort_mode"
  if [[ "$dest" == s3://* ]]; then
    endpoints=(AWS_ENDPOINT_URL_SECURITYHUB="$EMU" AWS_ENDPOINT_URL_STS="$EMU" AWS_ENDPOINT_URL_S3="$MOTO" AWS_ENDPOINT_URL_SSM="$MOTO")
    setup="moto S3 + SSM, parts of 5,000"
  else
    endpoints=(AWS_ENDPOINT_URL="$EMU"); setup="local folder, parts of 5,000"
  fi
  if [ "$latency" -gt 0 ]; then setup="$setup, GetFindings latency mean $latency ms (uniform $((latency / 2))-$((latency * 3 / 2)))"; fi
  if [ "$sort_mode" != global ] || [ "$switch_at" -gt 0 ] || [ "${#extra[@]}" -gt 0 ]; then
    setup="$setup, --sort-mode $sort_mode${extra[*]:+, ${extra[*]}}"
    if [ "$switch_at" -gt 0 ]; then setup="$setup, the service sorts each page only from page $switch_at on"; fi
  fi
  if [ "$switch_at" -gt 0 ]; then
    ( until [ "$(stat_of pages)" -ge "$switch_at" ]; do sleep 0.05; done
      "$py" -c "import json,sys,urllib.request; urllib.request.urlopen(urllib.request.Request(sys.argv[1] + '/faults', data=json.dumps({'latency_ms': int(sys.argv[2]), 'sort_mode': 'page'}).encode(), method='PUT', headers={'content-type': 'application/json'}))" "$EMU" "$latency" ) &
  fi
  local line secs requests throttled started wall
  started="$(date +%s.%N)"
  line="$(env AWS_ACCESS_KEY_ID=x AWS_SECRET_ACCESS_KEY=x AWS_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true "${endpoints[@]}" \
    "$bin" export --destination "$dest" --job-id "q-$name" --rate "$rate" --burst "$burst" --part-rows 5000 -q "${extra[@]}" | tail -1)"
  wall="$("$py" -c "import sys; print(float(sys.argv[2]) - float(sys.argv[1]))" "$started" "$(date +%s.%N)")"
  secs="$(secs_of "$line")"; requests="$(stat_of requests)"; throttled="$(stat_of throttled_quota)"
  stop_emulator
  "$py" - "$name" "$pages" "$rate" "$burst" "$secs" "$requests" "$throttled" "$setup" "$wall" <<'EOF'
import sys
name, p, r, b, secs, req, thr, setup, wall = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5]), int(sys.argv[6]), int(sys.argv[7]), sys.argv[8], float(sys.argv[9])
ceiling = 100 * p * r / (p - b)
got = 100 * p / secs
whole = 100 * p / wall
print(f"| quota {name} | {p} pages at {r:g}/s burst {b}, {setup} | {got:.1f} findings/s = {100*got/ceiling:.2f}% of the ceiling {ceiling:.1f} over the run's own window ({secs:.2f} s); whole process {wall:.2f} s = {100*whole/ceiling:.2f}%; {thr} of {req} requests throttled ({100*thr/max(req,1):.2f}%) |")
EOF
}

echo "benchmarks on $(nproc) cores, $(free -g | awk '/Mem/{print $2}') GiB; $(date -u +%F)" >&2
moto_port="$(free_port)"; "$(dirname "$py")/moto_server" -H 127.0.0.1 -p "$moto_port" >/dev/null 2>&1 &
MOTO="http://127.0.0.1:$moto_port"
until "$py" -c "import socket; socket.create_connection(('127.0.0.1', $moto_port))" 2>/dev/null; do sleep 0.2; done
"$py" tests/py/lake_tool.py create-bucket "$MOTO" bench >/dev/null
if [ "$quick" = order ]; then
  rows+=("$(quota_run shards-global-600ms 3 6 "$work/o1" 600)")
  rows+=("$(quota_run pair-global-600ms 3 6 "$work/o2" 600 global 0 --trust-id-order)")
  rows+=("$(quota_run shards-page-600ms 3 6 "$work/o3" 600 page)")
  rows+=("$(quota_run trusted-page-600ms 3 6 "$work/o4" 600 page 0 --trust-id-order)")
  rows+=("$(quota_run fallback-600ms 3 6 "$work/o5" 600 global 40 --trust-id-order)")
  echo "| benchmark | setup | result |"; echo "| --- | --- | --- |"; printf '%s\n' "${rows[@]}"
  exit 0
fi
if [ "$quick" = memory ]; then
  # One stream, parts of the default 50,000 rows, to moto's S3 (multipart uploads), read as
  # fast as the emulator serves (more pages in flight than at the quota: an upper bound).
  echo "| benchmark | setup | result |"; echo "| --- | --- | --- |"
  findings=150000
  for shards in 16 1; do
    start_emulator "$findings" 1000000 100000
    out="$( { /usr/bin/time -v env AWS_ACCESS_KEY_ID=x AWS_SECRET_ACCESS_KEY=x AWS_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true \
      AWS_ENDPOINT_URL_SECURITYHUB="$EMU" AWS_ENDPOINT_URL_STS="$EMU" AWS_ENDPOINT_URL_S3="$MOTO" AWS_ENDPOINT_URL_SSM="$MOTO" \
      "$bin" export --destination "s3://bench/mem-$shards" --job-id "mem-$shards" --rate 1000000 --burst 100000 --max-shards "$shards" -q; } 2>&1 )"
    stop_emulator
    line="$(grep -E '^complete:' <<<"$out")"
    rss="$(grep 'Maximum resident set size' <<<"$out" | grep -oE '[0-9]+$')"
    echo "| one stream's peak memory, --max-shards $shards | $findings findings, default parts of 50,000 rows, moto S3, unthrottled | peak RSS $((rss / 1024)) MiB; ${line:0:100} |"
  done
  exit 0
fi
if [ "$quick" = scale ]; then
  # benches/scale.rs: 10,000 accounts x 1 and x 17 Regions, S3 on this moto.
  MOTO_URL="$MOTO" cargo bench --quiet --bench scale
  exit 0
fi
if [ "$quick" = eta ]; then
  start_emulator 18000 3 6
  row="$("$py" scripts/bench-eta.py "$bin" "$EMU" "$work/eta" 18000 3 6)"
  stop_emulator
  echo "| benchmark | setup | result |"; echo "| --- | --- | --- |"; echo "$row"
  exit 0
fi
if [ "$quick" = small-streams ]; then
  # 1,000 accounts of 300 findings each (3 pages), 64 streams at once, calls of 100 ms.
  members="$("$py" -c "print(','.join(f'1000000{i:05d}' for i in range(1, 1001)))")"
  echo "| benchmark | setup | result |"; echo "| --- | --- | --- |"
  for total in off insight; do
    start_emulator 300 3 6 --latency-ms 100 --members "$members" --hub-regions us-east-1
    started="$(date +%s.%N)"
    line="$(env AWS_ACCESS_KEY_ID=x AWS_SECRET_ACCESS_KEY=x AWS_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true AWS_ENDPOINT_URL="$EMU" \
      "$bin" export --destination "$work/small-$total" --job-id "small-$total" --accounts "$members" --regions us-east-1 \
      --role-name Bench --max-streams 64 --total "$total" -q | tail -1)"
    wall="$("$py" -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.1f}')" "$started" "$(date +%s.%N)")"
    sharded="$( (grep -l '"shards"' "$work/small-$total"/_sechub_export/jobs/*/checkpoint.json 2>/dev/null || true) | wc -l)"
    echo "| small streams, --total $total | 1,000 streams of 300 findings (3,000 data pages), 64 at once, 3/s burst 6 each, calls of 100 ms | $(stat_of pages) pages served (data, probes, shard firsts, settle checks), $(stat_of requests) GetFindings requests, $(stat_of count_requests) counting calls; $sharded streams sharded; $wall s; ${line:0:80} |"
    stop_emulator
  done
  exit 0
fi
if [ "$quick" = latency ]; then
  rows+=("$(quota_run local-3rps-300ms 3 6 "$work/q5" 300)")
  rows+=("$(quota_run local-3rps-600ms 3 6 "$work/q6" 600)")
  echo "| benchmark | setup | result |"; echo "| --- | --- | --- |"; printf '%s\n' "${rows[@]}"
  exit 0
fi
rows+=("$(quota_run local-3rps 3 6 "$work/q1")")
rows+=("$(quota_run s3-3rps 3 6 s3://bench/q2)")
rows+=("$(quota_run local-3rps-300ms 3 6 "$work/q5" 300)")
rows+=("$(quota_run local-3rps-600ms 3 6 "$work/q6" 600)")
rows+=("$(quota_run local-30rps 30 60 "$work/q3")")
rows+=("$(quota_run s3-30rps 30 60 s3://bench/q4)")

# Encode throughput: criterion (ours) against pyarrow on the identical NDJSON.
"$bin" generate --findings "$enc" --seed 1 > "$work/enc.ndjson"
bench_out="$(cargo bench --quiet --bench encode -- --noplot encode/zstd 2>/dev/null)"
# criterion prints "thrpt:  [low mid high]" after each benchmark; take the middle estimate.
thrpt() { grep -A3 "encode/zstd/$1" <<<"$bench_out" | grep -oE 'thrpt: +\[[^]]+\]' | head -1 \
  | sed -E 's/.*\[[^ ]+ [^ ]+ ([0-9.]+) ([KM]?)elem\/s.*/\1 \2/'; }
ours_one="$(thrpt one-thread)"; ours_two="$(thrpt two-threads)"
pyarrow_rate="$("$py" benches/pyarrow_encode.py "$work/enc.ndjson")"
rows+=("$("$py" - "$ours_one" "$ours_two" "$pyarrow_rate" "$enc" <<'EOF'
import sys
def rate(text):
    value, unit = (text.split() + [""])[:2]
    return float(value) * {"K": 1e3, "M": 1e6, "": 1}[unit]
one, two, theirs = rate(sys.argv[1]), rate(sys.argv[2]), float(sys.argv[3])
print(f"| encode | {sys.argv[4]} mixed findings, GetFindings page bytes to Parquet ZSTD bytes with the 26-column schema, both sides (criterion; benches/pyarrow_encode.py, best of 5) | ours {one:.0f} findings/s on one thread ({one/theirs:.2f}x), {two:.0f} findings/s on two threads ({two/theirs:.2f}x); Python + pyarrow {theirs:.0f} findings/s |")
EOF
)")

# Storage and memory and the ceiling: unthrottled exports of mid and big sizes to a local folder.
mem_run() { # FINDINGS CODEC
  start_emulator "$1" 1000000 100000
  local out
  out="$( { /usr/bin/time -v env AWS_ACCESS_KEY_ID=x AWS_SECRET_ACCESS_KEY=x AWS_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true AWS_ENDPOINT_URL="$EMU" \
    "$bin" export --destination "$work/m-$1-$2" --job-id "m" --rate 1000000 --burst 100000 --compression "$2" -q; } 2>&1 )"
  stop_emulator
  local line rss json_bytes
  line="$(grep -E '^complete:' <<<"$out")"
  rss="$(grep 'Maximum resident set size' <<<"$out" | grep -oE '[0-9]+$')"
  json_bytes="$("$bin" generate --findings "$1" --seed 1 | wc -c)"
  "$py" - "$1" "$2" "$line" "$rss" "$json_bytes" <<'EOF'
import re, sys
n, codec, line, rss, raw = int(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]) - int(sys.argv[1])
parquet = int(re.search(r"\((\d+) bytes\)", line).group(1))
secs = float(re.search(r" in ([0-9.]+)s,", line).group(1))
print(f"| unthrottled {n:,} {codec} | local folder, emulator in another process | {n/secs:.0f} findings/s; peak RSS {rss/1024:.0f} MiB; Parquet {100*parquet/raw:.1f}% of {raw/1e6:.0f} MB raw JSON |")
EOF
}
rows+=("$(mem_run "$mid" zstd)")
rows+=("$(mem_run "$mid" snappy)")
rows+=("$(mem_run "$big" zstd)")

echo "| benchmark | setup | result |"
echo "| --- | --- | --- |"
printf '%s\n' "${rows[@]}"
