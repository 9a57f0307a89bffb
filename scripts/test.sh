#!/usr/bin/env bash
# The whole test suite, as CI runs it: formatting, lints, unit and integration tests (against
# moto and the project's emulator, read back with DuckDB and pyarrow), and a build of the benches.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/sechub-export/target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

. scripts/setup-test-env.sh

step() { printf '\n==> %s\n' "$*" >&2; }
step "cargo fmt --check";                    cargo fmt --all -- --check
step "cargo clippy -D warnings";             cargo clippy --all-targets --features failpoints --quiet -- -D warnings
step "cargo clippy, no default features";    cargo clippy --no-default-features --lib --bins --quiet -- -D warnings
step "cargo bench --no-run (benches build)"; cargo bench --no-run --quiet
step "cargo clippy, the emulator crate";     cargo clippy -p sechub-emulator --all-targets --quiet -- -D warnings
step "the emulator shares no exporter code"
emulator_deps="$(cargo tree -p sechub-emulator --edges normal,build --prefix none)"
if grep -q '^sechub-export ' <<<"$emulator_deps"; then
  echo "sechub-emulator depends on sechub-export: the oracle must not share the code it judges" >&2
  exit 1
fi
step "cargo test, the emulator crate";       cargo test -p sechub-emulator --quiet
step "cargo test (with crash points)";       cargo test --features failpoints --quiet -- --test-threads "${SECHUB_TEST_THREADS:-2}"
