#!/usr/bin/env bash
# scripts/test-desktop.sh — BucketFTP desktop app (src-tauri) tests with real parts:
#   1. unit + mock-runtime tests: `cargo test -p bucketftp` (skipped with --no-unit, which
#      scripts/test.sh passes because its `cargo test --workspace` already ran them)
#   2. the keychain test against a real Secret Service (gnome-keyring-daemon, unlocked inside
#      a private `dbus-run-session`): the `#[ignore]`d test in src-tauri/src/secrets.rs
#   3. tests/desktop/e2e.py: the real app under Xvfb via tauri-driver + WebKitWebDriver +
#      Selenium (profile against Garage, test connection, start, curl upload, Activity,
#      Chinese), screenshots in target/e2e-screenshots/
#   4. tests/desktop/tray.py: the tray under Xvfb with trayer + xdotool (icon, Stop, Start,
#      single instance, Quit)
# Everything runs with HOME and the XDG folders in a temp dir, so the user's settings,
# keyrings and autostart entries are never touched. Needs what scripts/install-test-deps.sh
# installs (its desktop section). Last line: `N passed, N failed`; exits non-zero on failure.
# With BUCKETFTP_APP set to a built app (scripts/test.sh passes the release binary that
# scripts/package.sh built, as a user gets it), 3 and 4 run that binary and the debug app is
# not built.
set -uo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO" || exit 2

# ---- inside the private D-Bus session (this script calls itself) ------------------------
if [[ "${1:-}" == "--in-session" ]]; then
    results="$2"
    # A fresh login keyring in the temp HOME, unlocked with a throw-away password.
    printf '%s' "bucketftp-test-keyring" | gnome-keyring-daemon --unlock --components=secrets >/dev/null 2>&1
    record() { # name, log, exit status[, fewest tests that must pass]
        local line p f
        line="$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$2" | tail -n1)"
        if [[ -z "$line" ]]; then
            line="$(sed -n 's/^test result: [A-Za-z]*\. \([0-9]*\) passed; \([0-9]*\) failed;.*/\1 passed, \2 failed/p' "$2" | tail -n1)"
        fi
        [[ -n "$line" ]] || line="0 passed, 1 failed"
        p="${line%% passed*}"; f="${line#*, }"; f="${f%% failed*}"
        if [[ "$3" != 0 && "$f" == 0 ]]; then f=1; fi
        if ((p < ${4:-0})); then
            # A test selected by name that no longer exists runs nothing: that is a failure.
            echo "$1: $p test(s) passed, expected at least $4 (renamed or filtered out?)"
            f=$((f + 1))
        fi
        echo "$1 $p $f" >>"$results"
    }
    echo "==> keychain: real Secret Service round trip"
    "$KEYCHAIN_TEST_BIN" --ignored --exact secrets::tests::real_secret_service_round_trip 2>&1 | tee "$TMPD/keychain.log"
    record keychain "$TMPD/keychain.log" "${PIPESTATUS[0]}" 1
    echo "==> tests/desktop/e2e.py (WebDriver)"
    "$PY" tests/desktop/e2e.py 2>&1 | tee "$TMPD/e2e.log"
    record e2e "$TMPD/e2e.log" "${PIPESTATUS[0]}"
    echo "==> tests/desktop/tray.py (trayer + xdotool)"
    "$PY" tests/desktop/tray.py 2>&1 | tee "$TMPD/tray.log"
    record tray "$TMPD/tray.log" "${PIPESTATUS[0]}"
    exit 0
fi

passed=0
failed=0
add() { passed=$((passed + $1)); failed=$((failed + $2)); }
finish() { echo; echo "${passed} passed, ${failed} failed"; ((failed == 0)); exit $?; }

run_unit=1
[[ "${1:-}" == "--no-unit" ]] && run_unit=0

missing=()
for c in Xvfb dbus-run-session gnome-keyring-daemon WebKitWebDriver trayer xdotool import convert curl; do
    command -v "$c" >/dev/null 2>&1 || missing+=("$c")
done
TAURI_DRIVER="$(command -v tauri-driver || echo "${CARGO_HOME:-$HOME/.cargo}/bin/tauri-driver")"
[[ -x "$TAURI_DRIVER" ]] || missing+=(tauri-driver)
export PY="$REPO/.venv-test/bin/python"
"$PY" -c 'import selenium, Xlib' >/dev/null 2>&1 || missing+=("selenium or python-xlib in .venv-test")
if ((${#missing[@]})); then
    echo "missing: ${missing[*]} (run scripts/install-test-deps.sh)"
    add 0 1
    finish
fi

# ---- build (with the real HOME: cargo's caches) -------------------------------------------
if [[ -n "${BUCKETFTP_APP:-}" ]]; then
    if [[ ! -x "$BUCKETFTP_APP" ]]; then
        echo "BUCKETFTP_APP=$BUCKETFTP_APP is not an executable"
        add 0 1
        finish
    fi
    echo "==> the app under test: $BUCKETFTP_APP"
else
    echo "==> cargo build -p bucketftp"
    if ! cargo build -p bucketftp; then
        echo "the desktop app does not build"
        add 0 1
        finish
    fi
fi
if ((run_unit)); then
    echo "==> cargo test -p bucketftp (unit + mock runtime)"
    LOG="$(mktemp)"
    cargo test -p bucketftp 2>&1 | tee "$LOG"
    rc=${PIPESTATUS[0]}
    read -r p f < <(sed -n 's/^test result: [A-Za-z]*\. \([0-9]*\) passed; \([0-9]*\) failed;.*/\1 \2/p' "$LOG" |
        awk '{p += $1; f += $2} END {print p + 0, f + 0}')
    ((rc != 0 && f == 0)) && f=1
    add "$p" "$f"
    rm -f "$LOG"
fi
KEYCHAIN_TEST_BIN="$(cargo test -p bucketftp --lib --no-run --message-format=json 2>/dev/null |
    sed -n 's/.*"executable":"\([^"]*\)".*/\1/p' | tail -n1)"
if [[ ! -x "$KEYCHAIN_TEST_BIN" ]]; then
    echo "cannot build the keychain test"
    add 0 1
    finish
fi
export KEYCHAIN_TEST_BIN

# ---- an isolated desktop: temp HOME/XDG, Xvfb, private D-Bus ----------------------------
TMPD="$(mktemp -d -t bucketftp-desktop-XXXXXX)"
XVFB_PID=""
cleanup() {
    [[ -n "$XVFB_PID" ]] && kill "$XVFB_PID" 2>/dev/null
    rm -rf "$TMPD"
}
trap cleanup EXIT
export TMPD
# Tools found through HOME must keep finding the real one.
export CARGO_HOME="${CARGO_HOME:-$HOME/.cargo}"
if [[ -z "${GARAGE_BIN:-}" ]]; then
    GARAGE_BIN="$(command -v garage || echo "$CARGO_HOME/bin/garage")"
fi
export GARAGE_BIN
export PATH="$(dirname "$TAURI_DRIVER"):$PATH"
# shellcheck source=desktop-session.sh
source "$REPO/scripts/desktop-session.sh"
desktop_isolate "$TMPD"
if ! desktop_xvfb "$TMPD" 2>&1; then
    add 0 1
    finish
fi
echo "==> Xvfb on $DISPLAY, HOME=$HOME"

RESULTS="$TMPD/results"
: >"$RESULTS"
dbus-run-session -- "$REPO/scripts/test-desktop.sh" --in-session "$RESULTS" 2>&1 |
    grep -v -E "$DESKTOP_NOISE"
while read -r name p f; do
    echo "$name: $p passed, $f failed"
    add "$p" "$f"
done <"$RESULTS"
[[ -s "$RESULTS" ]] || add 0 1
finish
