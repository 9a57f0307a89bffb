#!/usr/bin/env bash
# The Lambda package's figures for BENCHMARKS.md: zipped and unzipped size of each architecture's
# bootstrap.zip (scripts/package-lambda.sh), and the cold-start init time of the x86_64 package
# under a Runtime API stand-in (benches/lambda_init.py: start to the first request for an event,
# 30 runs), native for this machine's architecture, the other under qemu-user if installed
# (apt-get install qemu-user libc6-arm64-cross).
# Usage: scripts/bench-lambda.sh     (two cross builds: about 20 min on 2 cores, cold)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
echo "| package | zipped | unzipped | cold-start init (start to first event request) |"
echo "| --- | --- | --- | --- |"
for arch in x86_64 arm64; do
  scripts/package-lambda.sh --arch "$arch" > "$work/$arch.log" 2>&1 || { cat "$work/$arch.log" >&2; exit 1; }
  zip=target/lambda/sechub-export/bootstrap.zip
  zipped="$(stat -c %s "$zip")"
  python3 -c 'import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])' "$zip" "$work/$arch"
  chmod +x "$work/$arch/bootstrap"
  unzipped="$(stat -c %s "$work/$arch/bootstrap")"
  if [ "$arch" = "$(uname -m)" ]; then
    init="native: $(python3 benches/lambda_init.py 30 "$work/$arch/bootstrap")"
  elif command -v qemu-aarch64 >/dev/null && [ -d /usr/aarch64-linux-gnu ]; then
    init="under qemu-aarch64 emulation (an upper bound): $(python3 benches/lambda_init.py 30 qemu-aarch64 -L /usr/aarch64-linux-gnu "$work/$arch/bootstrap")"
  else
    init="not run (needs Debian's qemu-user and libc6-arm64-cross)"
  fi
  python3 -c 'import sys; a, z, u, i = sys.argv[1:]; print(f"| {a} | {int(z)/1e6:.1f} MB | {int(u)/1e6:.1f} MB | {i} |")' \
    "$arch" "$zipped" "$unzipped" "$init"
done
