#!/usr/bin/env bash
# Installs what the integration tests need into a cached venv: moto (the AWS emulator) and the
# third-party Parquet readers (DuckDB, pyarrow), pinned in scripts/requirements-test.txt, and the
# template's linters (cfn-lint, checkov), pinned in scripts/requirements-iac.txt.
# Source it (`. scripts/setup-test-env.sh`) to get SECHUB_TEST_PYTHON exported.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
. "$here/pinned-venv.sh"

venv="${SECHUB_VENV:-$HOME/.cache/sechub-export/venv}"
pinned_venv "$venv" "$here/requirements-test.txt"
"$venv/bin/python" -c 'import moto, duckdb, pyarrow, boto3'
test -x "$venv/bin/moto_server"
export SECHUB_TEST_PYTHON="$venv/bin/python"

# The template's linters, in a venv of their own (checkov pins its own boto3).
iac_venv="${SECHUB_IAC_VENV:-$HOME/.cache/sechub-export/iac-venv}"
pinned_venv "$iac_venv" "$here/requirements-iac.txt"
test -x "$iac_venv/bin/cfn-lint" && test -x "$iac_venv/bin/checkov"
export SECHUB_IAC_VENV="$iac_venv"
