#!/usr/bin/env bash
# Builds the Lambda function package: target/lambda/sechub-export/bootstrap.zip, the release
# binary named `bootstrap` for the provided.al2023 runtime, stripped, without the emulator and
# demo (--no-default-features). cargo-lambda and zig (from PyPI) cross-compile; the Rust target
# is added with rustup.
#
#   scripts/package-lambda.sh [--arch arm64|x86_64]     (default arm64, as the template)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
arch=arm64
while [ $# -gt 0 ]; do
  case "$1" in
    --arch) arch="${2:?--arch needs arm64 or x86_64}"; shift 2 ;;
    *) echo "usage: scripts/package-lambda.sh [--arch arm64|x86_64]" >&2; exit 2 ;;
  esac
done
case "$arch" in
  arm64) target=aarch64-unknown-linux-gnu; flag=--arm64 ;;
  x86_64) target=x86_64-unknown-linux-gnu; flag=--x86-64 ;;
  *) echo "error: --arch $arch: use arm64 or x86_64" >&2; exit 2 ;;
esac

. scripts/pinned-venv.sh
venv="${SECHUB_LAMBDA_VENV:-$HOME/.cache/sechub-export/lambda-venv}"
pinned_venv "$venv" scripts/requirements-lambda.txt
export PATH="$venv/bin:$PATH"
rustup target add "$target" >/dev/null

# Stripped, no line tables: the package holds only what a function runs.
export CARGO_PROFILE_RELEASE_DEBUG=false CARGO_PROFILE_RELEASE_STRIP=symbols
cargo lambda build --release "$flag" --no-default-features --bin sechub-export \
  --output-format zip --lambda-dir target/lambda
zip=target/lambda/sechub-export/bootstrap.zip
unzipped="$(python3 -c 'import sys, zipfile; print(sum(i.file_size for i in zipfile.ZipFile(sys.argv[1]).infolist()))' "$zip")"
printf 'package: %s (%s, %s bytes zipped, %s bytes unzipped)\n' "$zip" "$arch" "$(stat -c %s "$zip")" "$unzipped"
