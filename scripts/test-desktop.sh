#!/usr/bin/env bash
# scripts/test-desktop.sh — tests of the desktop app (src-tauri) that need the real desktop
# stack, run by scripts/test.sh after the Rust tests:
#   1. the keychain: a secret stored, read back and deleted through a real Secret Service
#      (gnome-keyring-daemon, unlocked, inside a private dbus-run-session);
#   2. the app itself: the real `bucketftp` binary under Xvfb with throw-away config/data
#      folders and a free port. On first run it must create the "This computer" profile,
#      start the FTP server, take a curl upload into the local bucket folder, and not panic.
#      Screenshots go to target/e2e-screenshots/.
# Prints `N passed, N failed` last; exits non-zero on any failure. Never prints a secret.
set -uo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO" || exit 2
SHOTS="$REPO/target/e2e-screenshots"
mkdir -p "$SHOTS"
WORK="$(mktemp -d -t bucketftp-desktop-XXXXXX)"
app_pid=""
cleanup() {
    [[ -n "$app_pid" ]] && kill "$app_pid" 2>/dev/null
    [[ -n "${KEEP_WORK:-}" ]] || rm -rf "$WORK"
}
trap cleanup EXIT

passed=0
failed=0
check() { # check NAME CONDITION-EXIT-CODE [DETAIL]
    if [[ "$2" == 0 ]]; then
        echo "PASS $1"
        passed=$((passed + 1))
    else
        echo "FAIL $1 ${3:-}"
        failed=$((failed + 1))
    fi
}

echo "==> cargo build -p bucketftp (tests and app)"
if ! cargo build -p bucketftp --bins --tests; then
    echo "the desktop app does not build"
    echo "0 passed, 1 failed"
    exit 1
fi
APP="${CARGO_TARGET_DIR:-$REPO/target}/debug/bucketftp"

# --- 1. Keychain through a real Secret Service ------------------------------------------
echo "==> keychain round trip (gnome-keyring in a private D-Bus session)"
dbus-run-session -- bash -c '
    printf "bucketftp-test" | gnome-keyring-daemon --unlock --components=secrets >/dev/null 2>&1
    cargo test -q -p bucketftp --lib -- --ignored real_secret_service_round_trip
' >"$WORK/keychain.log" 2>&1
rc=$?
grep -q "1 passed" "$WORK/keychain.log"
check "secret stored, read and deleted through the Secret Service" $((rc | $?)) "$(tail -n 5 "$WORK/keychain.log")"

# --- 2. The app under Xvfb ----------------------------------------------------------------
echo "==> the app under Xvfb"
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
mkdir -p "$WORK/config/bucketftp" "$WORK/data" "$WORK/cache"
cat >"$WORK/config/bucketftp/settings.json" <<EOF
{ "listen_port": $port, "passive_ports": "50000-50999", "part_size_mib": 8, "parts_in_flight": 4,
  "read_only": false, "allow_delete": true, "start_server_on_launch": true, "start_at_login": false,
  "language": "en", "default_profile": "" }
EOF
cat >"$WORK/session.sh" <<EOF
#!/usr/bin/env bash
printf "bucketftp-test" | gnome-keyring-daemon --unlock --components=secrets >/dev/null 2>&1
export XDG_CONFIG_HOME="$WORK/config" XDG_DATA_HOME="$WORK/data" XDG_CACHE_HOME="$WORK/cache"
"$APP" >"$WORK/app.log" 2>&1 &
echo \$! >"$WORK/app.pid"
for _ in \$(seq 100); do
    (echo >/dev/tcp/127.0.0.1/$port) 2>/dev/null && break
    sleep 0.2
done
sleep 2
import -window root "$SHOTS/desktop-1-first-run.png" 2>/dev/null
creds="$WORK/data/bucketftp/local-store/local-credentials.json"
if [[ -f "\$creds" ]]; then
    python3 - "\$creds" "$WORK/netrc" <<'PY'
import json, os, sys
c = json.load(open(sys.argv[1]))
fd = os.open(sys.argv[2], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
os.write(fd, ("machine 127.0.0.1 login %s/local password %s\n" % (c["access_key_id"], c["secret_access_key"])).encode())
os.close(fd)
PY
    head -c 1048577 /dev/urandom >"$WORK/upload.bin"
    curl -sS --netrc-file "$WORK/netrc" -T "$WORK/upload.bin" "ftp://127.0.0.1:$port/desktop%20smoke/upload.bin" --ftp-create-dirs >"$WORK/curl.log" 2>&1
    echo \$? >"$WORK/curl.rc"
fi
sleep 1
import -window root "$SHOTS/desktop-2-after-upload.png" 2>/dev/null
kill "\$(cat "$WORK/app.pid")" 2>/dev/null
wait 2>/dev/null
EOF
chmod +x "$WORK/session.sh"
timeout 120 dbus-run-session -- xvfb-run -a -s "-screen 0 1280x800x24" "$WORK/session.sh" >"$WORK/xvfb.log" 2>&1

grep -q "first run: profile" "$WORK/app.log"
check "first run creates the \"This computer\" profile" $? "$(grep -c . "$WORK/app.log") log lines"
grep -q "FTP server started" "$WORK/app.log"
check "FTP server starts on launch on the configured port" $?
[[ -f "$WORK/config/bucketftp/profiles.json" ]] && ! grep -q secret "$WORK/config/bucketftp/profiles.json"
check "profiles.json written, without a secret" $?
[[ "$(cat "$WORK/curl.rc" 2>/dev/null)" == 0 ]] && cmp -s "$WORK/upload.bin" "$WORK/data/bucketftp/local-store/local/desktop smoke/upload.bin"
check "curl upload lands in the local bucket folder" $? "$(cat "$WORK/curl.log" 2>/dev/null)"
! grep -qi "panicked" "$WORK/app.log"
check "no panic in the app log" $?
[[ -s "$SHOTS/desktop-1-first-run.png" ]]
check "screenshot taken ($SHOTS/desktop-1-first-run.png)" $?

echo
echo "${passed} passed, ${failed} failed"
((failed == 0))
