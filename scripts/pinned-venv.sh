# Sourced by the scripts that need Python tools. `pinned_venv VENV REQUIREMENTS` makes VENV hold
# exactly the pinned REQUIREMENTS, and makes it again whenever that file changes (its hash is
# kept in the venv); python3 with venv support is installed with apt-get when missing.
pinned_venv() {
  local venv="$1" requirements="$2" wanted
  if ! command -v python3 >/dev/null 2>&1 || ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
    echo "setup: installing python3 and venv support with apt-get" >&2
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3 python3-venv python3-pip >/dev/null
  fi
  wanted="$(sha256sum "$requirements" | cut -d' ' -f1)"
  if [ ! -x "$venv/bin/python" ] || [ "$(cat "$venv/.requirements.sha256" 2>/dev/null)" != "$wanted" ]; then
    echo "setup: creating $venv (pinned: $requirements)" >&2
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$requirements"
    echo "$wanted" > "$venv/.requirements.sha256"
  fi
}
