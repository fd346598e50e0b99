#!/usr/bin/env bash
# scripts/test-windows.sh — BucketFTP's Windows build, built here and run under Wine.
#
# Builds bucketftp-server.exe and the tray app bucketftp.exe for x86_64-pc-windows-gnu
# (debug, line tables only: the links are shorter and the .exes a third of the size; the
# Linux builds keep their profile) in one cargo run into the workspace's target directory,
# builds the Wine fixtures of tests/windows/ with MinGW into <target>/windows-test/
# (bcryptprimitives.dll, which Wine 8.0 lacks and Rust's standard library imports, goes
# beside the .exes; it is never shipped), prepares a private WINEPREFIX
# (<target>/wine-prefix, `wineboot -i` once), then runs tests/windows/windows_test.py: how
# Wine reports a reset connection (tests/windows/reset_probe.c), --version, the local bucket
# in its default folder under C:\users (moved once from Roaming to Local AppData),
# tests/system/ftp_clients.py's clients (ftplib, curl, lftp; FTP and FTPS) on the local store
# and on Garage, --config with one team user, the commit gate's cancel trials (10 per case;
# CANCEL_TRIALS=N changes it), and the tray app under Wine + Xvfb (127.0.0.1:2048, the
# local bucket moved, single instance, the message box when WebView2 is missing; its tray
# menu cannot be opened under Wine 8.0, so Quit is not checked here), and the tray's command
# table driven through the window's pipe by tests/windows/window_standin.c (a profile's
# secret in the Credential Manager, start at login in the Run key, Stop/Start, a restart). Every check prints
# PASS or FAIL; a check that cannot run is a FAIL. The last line is `N passed, N failed`;
# exits non-zero on any failure. `wineserver -k` ends every process of the prefix at the end.
#
# Needs what scripts/install-test-deps.sh installs (its Windows section: the rustup target,
# gcc-mingw-w64-x86-64, wine; and Garage, curl, lftp, Xvfb, xdotool). Run by scripts/test.sh.
set -uo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO" || exit 2
TARGET=x86_64-pc-windows-gnu
target_dir="${CARGO_TARGET_DIR:-$REPO/target}"
[[ "$target_dir" == /* ]] || target_dir="$REPO/$target_dir"
out_dir="$target_dir/$TARGET/debug"
fixtures="$target_dir/windows-test"
exe="$out_dir/bucketftp-server.exe"
app="$out_dir/bucketftp.exe"

export WINEPREFIX="$target_dir/wine-prefix"
export WINEDEBUG="${WINEDEBUG:--all}"
# No Mono or Gecko installers at wineboot (nothing here needs .NET or MSHTML).
export WINEDLLOVERRIDES="mscoree,mshtml="

passed=0
failed=0
check() { # check NAME OK [DETAIL]
    if [[ "$2" == 1 ]]; then
        passed=$((passed + 1))
        echo "PASS $1"
    else
        failed=$((failed + 1))
        echo "FAIL $1${3:+: $3}"
    fi
}
finish() {
    echo
    echo "${passed} passed, ${failed} failed"
    ((failed == 0))
    exit $?
}
stop_wine() {
    if command -v wineserver >/dev/null 2>&1 && [[ -d "$WINEPREFIX" ]]; then
        wineserver -k >/dev/null 2>&1 || true
    fi
}
trap stop_wine EXIT
now() { date +%s; }

# --- Tools -------------------------------------------------------------------------------
tools_ok=1
rustup target list --installed 2>/dev/null | grep -qx "$TARGET" && ok=1 || ok=0
check "the $TARGET standard library is installed (rustup)" "$ok"
((ok)) || tools_ok=0
for tool in x86_64-w64-mingw32-gcc wine wineboot wineserver winepath; do
    command -v "$tool" >/dev/null 2>&1 && ok=1 || ok=0
    check "$tool is installed" "$ok"
    ((ok)) || tools_ok=0
done
if ((!tools_ok)); then
    check "Windows build and Wine runs (tools missing: scripts/install-test-deps.sh)" 0
    finish
fi

# --- The .exes ----------------------------------------------------------------------------
# One cargo invocation for both programs: their shared dependencies are built once, with the
# features both need. If that fails, the server alone, so that its checks still run.
build() {
    CARGO_PROFILE_DEV_DEBUG=line-tables-only nice -n 15 cargo build --target "$TARGET" "$@"
}
echo "==> cargo build --target $TARGET -p gateway --bin bucketftp-server -p bucketftp --bin bucketftp"
t0=$(now)
app_ok=0
server_ok=0
if build -p gateway --bin bucketftp-server -p bucketftp --bin bucketftp; then
    app_ok=1
    server_ok=1
else
    echo "==> the joint build failed: cargo build --target $TARGET -p gateway --bin bucketftp-server"
    build -p gateway --bin bucketftp-server && server_ok=1
fi
echo "Windows build (server and tray app) took $(($(now) - t0)) s"
[[ -f "$exe" ]] || server_ok=0
[[ -f "$app" ]] || app_ok=0
check "bucketftp-server.exe builds for $TARGET" "$server_ok"
check "bucketftp.exe (the tray app) builds for $TARGET" "$app_ok"
if ((!server_ok)); then
    check "Windows server and app checks (the .exe did not build)" 0
    finish
fi
app_args=()
if ((app_ok)); then
    app_args=(--app "$app" --standin "$fixtures/window_standin.exe")
else
    check "tray app checks under Wine (the app did not build)" 0
fi

# --- Wine fixtures (never shipped) ---------------------------------------------------------
mkdir -p "$fixtures"
x86_64-w64-mingw32-gcc -shared -O2 -Wall -o "$fixtures/bcryptprimitives.dll" \
    tests/windows/bcryptprimitives.c -ladvapi32 &&
    cp "$fixtures/bcryptprimitives.dll" "$out_dir/bcryptprimitives.dll" && ok=1 || ok=0
check "the Wine fixture bcryptprimitives.dll (ProcessPrng) builds, beside the .exe" "$ok"
x86_64-w64-mingw32-gcc -O2 -Wall -o "$fixtures/reset_probe.exe" tests/windows/reset_probe.c -lws2_32 &&
    ok=1 || ok=0
check "the reset probe (tests/windows/reset_probe.c) builds" "$ok"
x86_64-w64-mingw32-gcc -O2 -Wall -o "$fixtures/window_standin.exe" tests/windows/window_standin.c \
    -lws2_32 && ok=1 || ok=0
check "the window stand-in (tests/windows/window_standin.c) builds" "$ok"

# --- The prefix ----------------------------------------------------------------------------
t0=$(now)
if [[ ! -f "$WINEPREFIX/system.reg" ]]; then
    echo "==> wineboot -i (WINEPREFIX=$WINEPREFIX)"
    wineboot -i >/dev/null 2>&1
    wineserver -w >/dev/null 2>&1 || true
fi
[[ -f "$WINEPREFIX/system.reg" && -d "$WINEPREFIX/drive_c/users" ]] && ok=1 || ok=0
echo "Wine prefix ready in $(($(now) - t0)) s"
check "a private Wine prefix ($WINEPREFIX)" "$ok"
if ((!ok)); then
    check "Windows server checks (no Wine prefix)" 0
    finish
fi

# --- The programs under Wine -------------------------------------------------------------------
echo "==> tests/windows/windows_test.py --exe $exe ${app_args[*]}"
t0=$(now)
log="$(mktemp -t bucketftp-wine-XXXXXX.log)"
python3 tests/windows/windows_test.py --exe "$exe" --probe "$fixtures/reset_probe.exe" \
    "${app_args[@]}" 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
echo "Windows checks under Wine took $(($(now) - t0)) s"
summary="$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$log" | tail -n1)"
rm -f "$log"
if [[ -z "$summary" ]]; then
    check "tests/windows/windows_test.py ran to its summary (exit $rc)" 0
else
    p="${summary%% passed*}"
    f="${summary#*, }"
    f="${f%% failed*}"
    passed=$((passed + p))
    failed=$((failed + f))
    if ((rc != 0 && f == 0)); then
        check "tests/windows/windows_test.py exited 0" 0 "exit $rc"
    fi
fi

finish
