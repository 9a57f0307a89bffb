#!/usr/bin/env bash
# Runs the fault-injection suite (tests/reliability.rs and reliability_s3.rs: crash points + SIGKILLs, throttling storm,
# S3/SSM failures, multipart uploads under faults, odd findings) and prints its figures; RELIABILITY.md records one run.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/sechub-export/target}"
. scripts/setup-test-env.sh
cargo test --quiet --features failpoints --test reliability --test reliability_s3 -- --nocapture --test-threads 1 2>&1 \
  | tee /dev/stderr | grep -oE 'reliability: .*|test result.*'
