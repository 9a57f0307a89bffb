#!/usr/bin/env bash
# Organization-scale benchmark (issue 15): K account-Region streams in one job, each at the real
# quota (3 requests/s, burst 6, its own emulator hub), at latency 0 and a mean of 600 ms.
# Reports aggregate findings/s over K x the one-stream ceiling, 429s, CPU seconds and peak RSS
# per million findings. Prints a Markdown table; BENCHMARKS.md records one run of it.
# Usage: scripts/bench-streams.sh [quick|long]
#   quick: K = 1, 4 and 40 pages a stream; long: K = 1, 4, 16 at 600 ms only, 1,000 pages a
#   stream (about 17 minutes: a stream's fixed costs, its probe, meeting and settle check, then
#   weigh 0.6% instead of 3.7%)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/sechub-export/target}"
. scripts/setup-test-env.sh
command -v /usr/bin/time >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq time >/dev/null; }

mode="${1:-}"
pages=157; counts=(1 4 16 64); latencies=(0 600)
if [ "$mode" = quick ]; then pages=40; counts=(1 4); fi
if [ "$mode" = long ]; then pages=1000; counts=(1 4 16); latencies=(600); fi
. scripts/bench-lib.sh
regions=(us-east-1 eu-west-1 ap-southeast-2 us-west-2)

# streams_run K LATENCY_MS: K streams = K/4 accounts x 4 Regions (1 x 1 for K = 1).
streams_run() {
  local k="$1" latency="$2" nregions=4 accounts members=() i out line rss cpu
  [ "$k" -lt 4 ] && nregions="$k"
  accounts=$((k / nregions))
  for ((i = 1; i < accounts; i++)); do members+=("$(printf '1000000%05d' "$i")"); done
  local member_list; member_list="$(IFS=,; echo "${members[*]:-}")"
  local region_list; region_list="$(IFS=,; echo "${regions[*]:0:$nregions}")"
  local account_list="123456789012${member_list:+,$member_list}"
  start_emulator "$((pages * 100))" 3 6 --latency-ms "$latency" --hub-regions "$region_list" \
    ${member_list:+--members "$member_list"}
  out="$( { /usr/bin/time -v env AWS_ACCESS_KEY_ID=x AWS_SECRET_ACCESS_KEY=x AWS_REGION=us-east-1 \
      AWS_EC2_METADATA_DISABLED=true AWS_ENDPOINT_URL="$EMU" \
      "$bin" export --destination "$work/s-$k-$latency" --job-id "k$k" --accounts "$account_list" \
      --regions "$region_list" --role-name Bench --max-streams "$k" --part-rows 5000 -q; } 2>&1 )"
  line="$(grep -E '^complete:' <<<"$out" || { echo "$out" >&2; exit 1; })"
  rss="$(grep 'Maximum resident set size' <<<"$out" | grep -oE '[0-9]+$')"
  cpu="$(awk -F': ' '/User time|System time/ {s += $2} END {print s}' <<<"$out")"
  local requests throttled pages_served
  requests="$(stat_of requests)"; throttled="$(stat_of throttled_quota)"; pages_served="$(stat_of pages)"
  stop_emulator
  "$py" - "$k" "$latency" "$pages" "$line" "$rss" "$cpu" "$requests" "$throttled" "$pages_served" <<'EOF'
import re, sys
k, latency, p = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
line, rss, cpu = sys.argv[4], int(sys.argv[5]), float(sys.argv[6])
requests, throttled, served = int(sys.argv[7]), int(sys.argv[8]), int(sys.argv[9])
findings = int(re.search(r"job total (\d+) findings", line).group(1))
secs = float(re.search(r" in ([0-9.]+)s,", line).group(1))
rate, burst = 3.0, 6
ceiling = 100 * p * rate / (p - burst)  # one stream: p pages at the quota, the burst free
got = findings / secs
per_million = 1e6 / findings
setup = f"{k} streams x {p * 100:,} findings, 3/s burst 6 each" + (f", latency mean {latency} ms (uniform {latency // 2}-{latency * 3 // 2})" if latency else ", no added latency")
print(f"| {k} streams, {latency} ms | {setup} | {got:,.0f} findings/s = {100 * got / (k * ceiling):.2f}% of {k} x {ceiling:.1f}; {throttled} of {requests} requests throttled; {served - k * p} requests beyond the data pages (probes, shards' last pages); {cpu * per_million:.1f} CPU s per million findings ({cpu:.1f} s for {findings:,} in {secs:.1f} s); peak RSS {rss / 1024:.0f} MiB |")
EOF
}

echo "streams benchmark on $(nproc) cores, $(free -g | awk '/Mem/{print $2}') GiB; $(date -u +%F)" >&2
rows=()
for latency in "${latencies[@]}"; do
  for k in "${counts[@]}"; do rows+=("$(streams_run "$k" "$latency")"); done
done
echo "| benchmark | setup | result |"
echo "| --- | --- | --- |"
printf '%s\n' "${rows[@]}"
