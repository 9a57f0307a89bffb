#!/usr/bin/env bash
# Installs what the integration tests need into a cached venv: moto (the AWS emulator) and the
# third-party Parquet readers (DuckDB, pyarrow), pinned in scripts/requirements-test.txt, and the
# template's linters (cfn-lint, checkov), pinned in scripts/requirements-iac.txt.
# Source it (`. scripts/setup-test-env.sh`) to get SECHUB_TEST_PYTHON exported.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="${SECHUB_VENV:-$HOME/.cache/sechub-export/venv}"
requirements="$here/requirements-test.txt"

if ! command -v python3 >/dev/null 2>&1 || ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
  echo "setup: installing python3 and venv support with apt-get" >&2
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3 python3-venv python3-pip >/dev/null
fi
stamp="$venv/.requirements.sha256"
wanted="$(sha256sum "$requirements" | cut -d' ' -f1)"
if [ ! -x "$venv/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$wanted" ]; then
  echo "setup: creating $venv (pinned: scripts/requirements-test.txt)" >&2
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$requirements"
  echo "$wanted" > "$stamp"
fi
"$venv/bin/python" -c 'import moto, duckdb, pyarrow, boto3'
test -x "$venv/bin/moto_server"
export SECHUB_TEST_PYTHON="$venv/bin/python"

# The template's linters, in a venv of their own (checkov pins its own boto3).
iac_venv="${SECHUB_IAC_VENV:-$HOME/.cache/sechub-export/iac-venv}"
iac_requirements="$here/requirements-iac.txt"
iac_wanted="$(sha256sum "$iac_requirements" | cut -d' ' -f1)"
if [ ! -x "$iac_venv/bin/checkov" ] || [ "$(cat "$iac_venv/.requirements.sha256" 2>/dev/null)" != "$iac_wanted" ]; then
  echo "setup: creating $iac_venv (pinned: scripts/requirements-iac.txt)" >&2
  rm -rf "$iac_venv"
  python3 -m venv "$iac_venv"
  "$iac_venv/bin/pip" install --quiet --disable-pip-version-check -r "$iac_requirements"
  echo "$iac_wanted" > "$iac_venv/.requirements.sha256"
fi
test -x "$iac_venv/bin/cfn-lint"
export SECHUB_IAC_VENV="$iac_venv"
