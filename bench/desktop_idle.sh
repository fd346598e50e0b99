#!/usr/bin/env bash
# bench/desktop_idle.sh — the desktop app's footprint (prints figures; asserts nothing):
#   * the release binary's size (as built, and stripped)
#   * its resident memory (VmRSS, the app and every process below it) under Xvfb with a tray
#     host (trayer), a private D-Bus session and an unlocked gnome-keyring:
#       1. idle in the tray after `bucketftp --minimized` (the server running, no window)
#       2. with the window open (a second launch brings it up)
#       3. after the window is closed again (the close request a window manager sends)
# Usage: bench/desktop_idle.sh        env: BUCKETFTP_APP (default: builds, as the package
#        does, and uses target/release/bucketftp), SETTLE_SECS (default 10: wait before each reading).
# Needs scripts/install-test-deps.sh (its desktop section). Touches no real config: HOME and
# the XDG folders are a temp dir.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="$REPO/.venv-test/bin/python"
[[ -x "$PY" ]] || { echo "missing $PY: run scripts/install-test-deps.sh" >&2; exit 1; }
if [[ -z "${BUCKETFTP_APP:-}" ]]; then
    # As `tauri build` (scripts/package.sh) builds it: with the custom-protocol feature, so
    # this measures the app that ships and reuses the package build's artifacts.
    echo "building the release app (cargo build --release -p bucketftp --features tauri/custom-protocol)" >&2
    (cd "$REPO" && cargo build --release -p bucketftp --features tauri/custom-protocol) >&2
    BUCKETFTP_APP="${CARGO_TARGET_DIR:-$REPO/target}/release/bucketftp"
fi
[[ -x "$BUCKETFTP_APP" ]] || { echo "app binary not found: $BUCKETFTP_APP" >&2; exit 1; }
export BUCKETFTP_APP SETTLE_SECS="${SETTLE_SECS:-10}"

WORK="$(mktemp -d -t bucketftp-idle-XXXXXX)"
XVFB_PID=""
cleanup() {
    [[ -n "$XVFB_PID" ]] && kill "$XVFB_PID" 2>/dev/null
    rm -rf "$WORK"
}
trap cleanup EXIT

size=$(stat -c %s "$BUCKETFTP_APP")
stripped="n/a"
if command -v strip >/dev/null 2>&1; then
    cp "$BUCKETFTP_APP" "$WORK/stripped"
    strip "$WORK/stripped"
    stripped=$(stat -c %s "$WORK/stripped")
fi
echo "binary: $BUCKETFTP_APP"
awk -v a="$size" -v b="$stripped" 'BEGIN {
    printf "  size as built: %d bytes (%.1f MiB)\n", a, a / 1048576
    if (b != "n/a") printf "  size stripped: %d bytes (%.1f MiB)\n", b, b / 1048576 }'

# shellcheck source=../scripts/desktop-session.sh
source "$REPO/scripts/desktop-session.sh"
desktop_isolate "$WORK"
mkdir -p "$XDG_CONFIG_HOME/bucketftp"
port="$(cd "$REPO/tests/system" && "$PY" -c 'import s3servers; print(s3servers.free_port(avoid=range(42500, 42601)))')"
printf '{"listen_port": %s, "passive_ports": "42500-42600", "language": "en"}\n' "$port" \
    >"$XDG_CONFIG_HOME/bucketftp/settings.json"
export FTP_PORT="$port"

desktop_xvfb "$WORK" || exit 1

dbus-run-session -- bash -c '
printf "%s" "bucketftp-bench-keyring" | gnome-keyring-daemon --unlock --components=secrets >/dev/null 2>&1
trayer --edge top --align right --widthtype pixel --width 120 --height 32 >/dev/null 2>&1 &
"$0" "$1"
' "$PY" "$REPO/bench/desktop_idle.py" 2>&1 | grep -v -E "$DESKTOP_NOISE"
