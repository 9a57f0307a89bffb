# Shared by the benchmark scripts: the release build, a scratch folder, and the emulator helpers.
# Source it from the repository root after scripts/setup-test-env.sh.
cargo build --release --quiet
bin="$CARGO_TARGET_DIR/release/sechub-export"
work="$(mktemp -d)"; trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
py="$SECHUB_TEST_PYTHON"

free_port() { "$py" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# start_emulator FINDINGS RATE BURST [EMULATOR FLAGS...] -> sets EMU (url) and EMU_PID
start_emulator() {
  local port; port="$(free_port)"
  "$bin" emulator --listen "127.0.0.1:$port" --findings "$1" --rate "$2" --burst "$3" "${@:4}" > "$work/emu.log" 2>&1 &
  EMU_PID=$!; EMU="http://127.0.0.1:$port"
  until "$py" -c "import urllib.request; urllib.request.urlopen('$EMU/stats')" 2>/dev/null; do sleep 0.2; done
}
stop_emulator() { kill "$EMU_PID" 2>/dev/null || true; wait "$EMU_PID" 2>/dev/null || true; }
stat_of() { "$py" -c "import json,urllib.request; print(json.load(urllib.request.urlopen('$EMU/stats'))['$1'])"; }

# seconds from a summary line: "... in 101.9s, ..."
secs_of() { sed -E 's/.* in ([0-9.]+)s, .*/\1/' <<<"$1"; }

