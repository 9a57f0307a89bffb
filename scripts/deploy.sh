#!/usr/bin/env bash
# One command from a clone to a running stack: builds the Lambda package
# (scripts/package-lambda.sh) unless --package names one, then runs `sechub-export deploy`,
# which creates or reuses a code bucket in the Region, uploads the package and the template
# under content-addressed keys, creates or updates the stack, waits, creates the Athena views
# and prints the outputs and the command that starts an export.
#
#   scripts/deploy.sh --region REGION [--stack-name NAME] [--arch arm64|x86_64]
#                     [--parameter KEY=VALUE ...] [--code-bucket BUCKET] [--profile PROFILE]
#                     [--package ZIP] [--no-views] [--dry-run]
#
# --dry-run shows what would be done and changes nothing. The deploy runs through
# `cargo run --release` (or $SECHUB_EXPORT_BIN, an already built sechub-export).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
arch=arm64
package=
dry_run=
args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --arch) arch="${2:?--arch needs arm64 or x86_64}"; args+=("$1" "$2"); shift 2 ;;
    --package) package="${2:?--package needs a zip}"; shift 2 ;;
    --dry-run) dry_run=1; args+=("$1"); shift ;;
    -h|--help) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) args+=("$1"); shift ;;
  esac
done
if [ -z "$package" ]; then
  package=target/lambda/sechub-export/bootstrap.zip
  if [ -n "$dry_run" ]; then
    echo "would build the package: scripts/package-lambda.sh --arch $arch"
  else
    scripts/package-lambda.sh --arch "$arch"
  fi
fi
if [ -n "${SECHUB_EXPORT_BIN:-}" ]; then
  exec "$SECHUB_EXPORT_BIN" deploy --package "$package" "${args[@]}"
fi
exec cargo run --quiet --release --bin sechub-export -- deploy --package "$package" "${args[@]}"
