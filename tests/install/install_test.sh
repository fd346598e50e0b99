#!/usr/bin/env bash
# tests/install/install_test.sh — installs the packages made by scripts/package.sh into a clean
# Debian 12 (bookworm) root and runs them there. Run as root (namespaces, chroot).
#
#   1. A base root (mmdebstrap --variant=apt, plus Xvfb and D-Bus for the test only) from the
#      Debian mirror this machine's apt uses. It is cached as a tarball outside the work tree
#      (${BUCKETFTP_ROOT_CACHE:-/var/cache/bucketftp}/bookworm-base-<hash>.tar, the hash over
#      the package list and the sources), and unpacked afresh for each run. The packages under
#      test are never cached; the .debs apt downloads for their dependencies are (apt-archives/).
#   2. Desktop: `apt-get install ./bucketftp_*.deb` (dependencies from the registry), then
#      `bucketftp --version` without a display, the .desktop entry and icons under /usr/share,
#      and in a private network, PID and mount namespace (its own loopback: port 2048 of the
#      host is not touched; every process dies with the namespace, every mount goes with it):
#      Xvfb, a private D-Bus session (dbus-run-session), `/usr/bin/bucketftp --minimized` with an
#      empty HOME; wait for 127.0.0.1:2048; read the local bucket's login from the credential
#      file the app wrote (never printed); upload and download a file with curl over explicit
#      FTPS and compare.
#   3. Headless: a fresh root, `apt-get install ./bucketftp-server_*.deb`, `bucketftp-server
#      --version`, the unit and env file in place, then the unit's own ExecStart line serving
#      the local bucket in /var/lib/bucketftp, and the same curl round trip.
#   4. The .rpm: `rpm -qpR` (runtime dependencies) and `rpm -qpl` (binary, .desktop, icons).
#
# Usage: tests/install/install_test.sh [DIST_DIR]   (default: ${CARGO_TARGET_DIR:-target}/dist)
# Prints a transcript; the last line is `N passed, N failed`. A missing tool or package is a
# failure.
set -uo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
SELF="$REPO/tests/install/install_test.sh"

# ---------------------------------------------------------------------------------------
# Inside the namespaces (re-executed by the outer script through unshare).
# ---------------------------------------------------------------------------------------
# Mounts the kernel file systems into ROOT. The mount namespace is private: everything
# mounted here disappears with it, also when a step fails.
mount_root() {
    local root="$1"
    mount --make-rprivate /
    mount -t proc proc "$root/proc"
    mount -t sysfs -o ro sysfs "$root/sys" 2>/dev/null || mount --rbind -o ro /sys "$root/sys"
    mount -t tmpfs -o mode=0755 tmpfs "$root/dev"
    local d
    for d in null zero full random urandom tty; do
        touch "$root/dev/$d"
        mount --bind "/dev/$d" "$root/dev/$d"
    done
    mkdir -p "$root/dev/pts" "$root/dev/shm"
    mount -t devpts -o newinstance,ptmxmode=0666,mode=0620 devpts "$root/dev/pts"
    ln -s pts/ptmx "$root/dev/ptmx"
    mount -t tmpfs -o mode=1777 tmpfs "$root/dev/shm"
    ln -s /proc/self/fd "$root/dev/fd"
    mount -t tmpfs -o mode=1777 tmpfs "$root/tmp"
}

if [[ "${1:-}" == --inner-install ]]; then
    # $2: root, $3: package file (inside the root, e.g. /pkgs/x.deb); host network.
    root="$2"
    set -e
    mount_root "$root"
    mount --bind "$INSTALL_APT_ARCHIVES" "$root/var/cache/apt/archives"
    cp /etc/resolv.conf "$root/etc/resolv.conf"
    export DEBIAN_FRONTEND=noninteractive
    chroot "$root" apt-get -q update >/dev/null
    chroot "$root" apt-get -q -y --no-install-recommends install "$3"
    exit 0
fi

if [[ "${1:-}" == --inner-run ]]; then
    # $2: root, $3: desktop|server, $4: results file. Private network: bring loopback up.
    root="$2" kind="$3" results="$4"
    ok() { echo "ok - $*"; echo "ok $*" >>"$results"; }
    fail() { echo "FAIL - $*"; echo "FAIL $*" >>"$results"; }
    ip link set lo up || { fail "loopback in the private network namespace"; exit 0; }
    mount_root "$root" || { fail "mounting /proc, /sys, /dev into the root"; exit 0; }
    work="$(mktemp -d)"
    payload="$work/payload.bin"
    head -c 3000000 /dev/urandom >"$payload"

    wait_port() { # port seconds
        local i
        for ((i = 0; i < $2 * 10; i++)); do
            (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
            sleep 0.1
        done
        return 1
    }
    # The local bucket's login from the credential file the app wrote: a netrc for curl,
    # mode 0600; the secret is never printed.
    make_netrc() { # credential-file netrc
        python3 - "$1" "$2" <<'EOF'
import json, os, sys
c = json.load(open(sys.argv[1]))
fd = os.open(sys.argv[2], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
os.write(fd, ("machine 127.0.0.1 login %s/local password %s\n"
              % (c["access_key_id"], c["secret_access_key"])).encode())
os.close(fd)
print("login: user %s/local, password: %d characters (not shown)"
      % (c["access_key_id"], len(c["secret_access_key"])))
EOF
    }
    round_trip() { # credential-file what
        local cred="$1" what="$2" i
        for ((i = 0; i < 100; i++)); do [[ -s "$cred" ]] && break; sleep 0.1; done
        if [[ ! -s "$cred" ]]; then fail "$what: the local bucket's credential file ${cred#"$root"}"; return; fi
        if make_netrc "$cred" "$work/netrc"; then ok "$what: login read from ${cred#"$root"}"; else
            fail "$what: credential file unreadable"; return; fi
        if curl -sS --ssl-reqd -k --netrc-file "$work/netrc" -T "$payload" \
            "ftp://127.0.0.1:2048/install-test/payload.bin" --ftp-create-dirs; then
            ok "$what: curl upload over explicit FTPS (3,000,000 bytes)"
        else fail "$what: curl upload"; fi
        if curl -sS --ssl-reqd -k --netrc-file "$work/netrc" -o "$work/back.bin" \
            "ftp://127.0.0.1:2048/install-test/payload.bin" && cmp -s "$payload" "$work/back.bin"; then
            ok "$what: curl download, identical bytes"
        else fail "$what: curl download equals the upload"; fi
        local listing
        listing="$(curl -sS --ssl-reqd -k --netrc-file "$work/netrc" "ftp://127.0.0.1:2048/install-test/")"
        if grep -q payload.bin <<<"$listing"; then ok "$what: LIST shows the file"; else fail "$what: LIST"; fi
    }

    if [[ "$kind" == desktop ]]; then
        home=/home/tester
        mkdir -p "$root$home"
        chroot "$root" /usr/bin/Xvfb :42 -screen 0 1280x800x24 -nolisten tcp >"$work/xvfb.log" 2>&1 &
        for ((i = 0; i < 50; i++)); do [[ -e "$root/tmp/.X11-unix/X42" ]] && break; sleep 0.1; done
        if [[ -e "$root/tmp/.X11-unix/X42" ]]; then ok "Xvfb :42 runs inside the root"; else
            fail "Xvfb inside the root"; cat "$work/xvfb.log"; fi
        chroot "$root" /usr/bin/env -i HOME="$home" DISPLAY=:42 LANG=C.UTF-8 PATH=/usr/bin:/bin \
            XDG_RUNTIME_DIR=/tmp/runtime /bin/sh -c \
            'mkdir -m 0700 -p /tmp/runtime && exec dbus-run-session -- /usr/bin/bucketftp --minimized' \
            >"$work/app.log" 2>&1 &
        app_pid=$!
        if wait_port 2048 60; then ok "bucketftp --minimized listens on 127.0.0.1:2048 (empty HOME, Xvfb, private D-Bus)"; else
            fail "bucketftp did not listen on 127.0.0.1:2048 within 60 s"; sed 's/^/  app: /' "$work/app.log" | tail -n 30; fi
        round_trip "$root$home/.local/share/bucketftp/local-store/local-credentials.json" desktop
        if kill -0 "$app_pid" 2>/dev/null; then ok "the app is still running after the transfers"; else
            fail "the app exited"; fi
        if grep -q -i -E 'panick|error' "$work/app.log"; then
            echo "  app log lines with 'error' (for reading; not a failure by itself):"
            grep -i -E 'panick|error' "$work/app.log" | head -n 5 | sed 's/^/    /'
        fi
    else
        exec_line="$(sed -n 's/^ExecStart=//p' "$root/lib/systemd/system/bucketftp-server.service")"
        args="$(sed -n 's/^BUCKETFTP_ARGS="\(.*\)"$/\1/p' "$root/etc/bucketftp/bucketftp-server.env")"
        echo "  the unit's ExecStart, BUCKETFTP_ARGS=\"$args\": $exec_line"
        mkdir -p "$root/var/lib/bucketftp"
        chmod 0700 "$root/var/lib/bucketftp"
        # shellcheck disable=SC2086 # word splitting as systemd does for an unquoted $VAR
        chroot "$root" /usr/bin/env -i PATH=/usr/bin:/bin BUCKETFTP_ARGS="$args" \
            ${exec_line//\$BUCKETFTP_ARGS/$args} >"$work/server.log" 2>&1 &
        if wait_port 2048 30; then ok "bucketftp-server (the unit's command line) listens on 127.0.0.1:2048"; else
            fail "bucketftp-server did not listen on 127.0.0.1:2048 within 30 s"
            grep -v -i password "$work/server.log" | tail -n 20 | sed 's/^/  server: /'; fi
        if grep -q 'FTP login: user "LOCAL' "$work/server.log"; then ok "bucketftp-server printed the local login line"; else
            fail "bucketftp-server's login line"; fi
        round_trip "$root/var/lib/bucketftp/local-store/local-credentials.json" server
    fi
    rm -rf "$work"
    # Leaving: PID 1 of this namespace ends, the kernel kills every process left in it, and
    # the mount namespace (with /proc, /sys, /dev, /tmp of the root) goes away.
    exit 0
fi

# ---------------------------------------------------------------------------------------
# Outside: build or reuse the base root, run the phases, count.
# ---------------------------------------------------------------------------------------
TARGET_DIR="${CARGO_TARGET_DIR:-$REPO/target}"
[[ "$TARGET_DIR" == /* ]] || TARGET_DIR="$REPO/$TARGET_DIR"
DIST="${1:-$TARGET_DIR/dist}"
CACHE="${BUCKETFTP_ROOT_CACHE:-/var/cache/bucketftp}"
BASE_PACKAGES="xvfb,dbus"
SOURCES_FILE="${BUCKETFTP_DEBIAN_SOURCES:-/etc/apt/sources.list.d/debian.sources}"

passed=0
failed=0
ok() { echo "ok - $*"; passed=$((passed + 1)); }
fail() { echo "FAIL - $*"; failed=$((failed + 1)); }
finish() {
    echo
    echo "${passed} passed, ${failed} failed"
    ((failed == 0))
    exit
}

echo "==> install test: packages from $DIST"
if ((EUID != 0)); then fail "must run as root (namespaces, chroot)"; finish; fi
missing=()
for tool in mmdebstrap unshare chroot rpm curl python3 ip dpkg-deb sha256sum; do
    command -v "$tool" >/dev/null || missing+=("$tool")
done
if ((${#missing[@]})); then fail "missing tools: ${missing[*]} (apt-get install mmdebstrap rpm curl iproute2)"; finish; fi
ok "tools: mmdebstrap $(mmdebstrap --version | awk '{print $2}'), $(rpm --version)"

shopt -s nullglob
desktop_debs=("$DIST"/bucketftp_*.deb)
server_debs=("$DIST"/bucketftp-server_*.deb)
rpms=("$DIST"/bucketftp-*.rpm)
[[ ${#desktop_debs[@]} == 1 ]] || { fail "one bucketftp_*.deb in $DIST (found ${#desktop_debs[@]}: run scripts/package.sh)"; }
[[ ${#server_debs[@]} == 1 ]] || { fail "one bucketftp-server_*.deb in $DIST (found ${#server_debs[@]})"; }
[[ ${#rpms[@]} == 1 ]] || { fail "one bucketftp-*.rpm in $DIST (found ${#rpms[@]})"; }
if [[ -f "$DIST/SHA256SUMS" ]] && (cd "$DIST" && sha256sum --quiet -c SHA256SUMS); then
    ok "SHA256SUMS match the artefacts"
else fail "SHA256SUMS in $DIST"; fi

# --- the base root (cached) -------------------------------------------------------------
if [[ ! -r "$SOURCES_FILE" ]] || ! grep -q debian "$SOURCES_FILE"; then
    fail "no Debian sources in $SOURCES_FILE (set BUCKETFTP_DEBIAN_SOURCES)"; finish
fi
key="$( (echo "bookworm apt $BASE_PACKAGES"; grep -v '^#' "$SOURCES_FILE") | sha256sum | cut -c1-16)"
BASE="$CACHE/bookworm-base-$key.tar"
mkdir -p "$CACHE/apt-archives/partial"
if [[ -f "$BASE" && -s "$BASE" ]]; then
    ok "base root cached: $BASE ($(du -h "$BASE" | cut -f1))"
else
    echo "  making the base root with mmdebstrap (bookworm, --variant=apt, $BASE_PACKAGES)"
    t0=$SECONDS
    if mmdebstrap --quiet --variant=apt --include="$BASE_PACKAGES" --skip=cleanup/apt/lists \
        bookworm "$BASE.partial.tar" "$SOURCES_FILE"; then
        mv "$BASE.partial.tar" "$BASE"
        ok "base root made in $((SECONDS - t0)) s: $BASE ($(du -h "$BASE" | cut -f1))"
    else
        rm -f "$BASE.partial.tar"
        fail "mmdebstrap bookworm"; finish
    fi
fi

WORK="$(mktemp -d -p /var/tmp bucketftp-install-XXXXXX)"
trap 'rm -rf "$WORK"' EXIT

# unpack_root NAME -> path of a fresh root with the packages under test in /pkgs
unpack_root() {
    local root="$WORK/$1"
    mkdir -p "$root"
    tar -C "$root" -xf "$BASE" || return 1
    mkdir -p "$root/pkgs"
    cp -- "${desktop_debs[@]}" "${server_debs[@]}" "$root/pkgs/"
    echo "$root"
}
# install_in ROOT FILE-IN-ROOT
install_in() {
    local log="$WORK/apt-$3.log"
    INSTALL_APT_ARCHIVES="$CACHE/apt-archives" timeout 900 \
        unshare --mount --pid --fork --kill-child "$SELF" --inner-install "$1" "$2" >"$log" 2>&1
    grep -E '^(Setting up bucketftp|E:|W:|Unpacking bucketftp)|newly installed' "$log" | sed 's/^/  apt: /'
    if chroot "$1" dpkg-query -W -f='${Status}' "$3" 2>/dev/null | grep -q 'install ok installed'; then
        return 0
    fi
    tail -n 25 "$log" | sed 's/^/  apt (tail): /'
    return 1
}
# run_in ROOT KIND: the private-network phase; its ok/FAIL lines are counted here.
run_in() {
    local results="$WORK/results-$2"
    : >"$results"
    timeout 300 unshare --mount --pid --net --fork --kill-child "$SELF" --inner-run "$1" "$2" "$results"
    passed=$((passed + $(grep -c '^ok' "$results")))
    failed=$((failed + $(grep -c '^FAIL' "$results")))
    grep -q . "$results" || fail "$2: the namespace phase reported nothing"
}

# --- desktop .deb -------------------------------------------------------------------------
if [[ ${#desktop_debs[@]} == 1 ]]; then
    deb="${desktop_debs[0]##*/}"
    echo "==> desktop: $deb"
    dpkg-deb -f "${desktop_debs[0]}" Depends | sed 's/^/  Depends: /'
    if root="$(unpack_root desktop)"; then
        t0=$SECONDS
        # Tauri names the package after the product in kebab case ("bucket-ftp").
        pkg="$(dpkg-deb -f "${desktop_debs[0]}" Package)"
        if install_in "$root" "/pkgs/$deb" "$pkg"; then
            ok "apt-get install ./$deb in a clean bookworm root ($((SECONDS - t0)) s, dependencies from the registry)"
            want="$(dpkg-deb -f "${desktop_debs[0]}" Version)"
            got="$(chroot "$root" /usr/bin/env -i PATH=/usr/bin:/bin /usr/bin/bucketftp --version 2>&1)"
            if [[ "$got" == "bucketftp $want" ]]; then ok "bucketftp --version without a display: $got"; else
                fail "bucketftp --version: '$got' (want 'bucketftp $want')"; fi
            desktop_file="$(chroot "$root" dpkg -L "$pkg" | grep '^/usr/share/applications/.*\.desktop$' | head -n1)"
            if [[ -n "$desktop_file" ]] && grep -q '^Exec=bucketftp' "$root$desktop_file" &&
                grep -q '^Icon=bucketftp' "$root$desktop_file" && grep -q '^Type=Application' "$root$desktop_file"; then
                ok "desktop entry $desktop_file (Exec=bucketftp, Icon=bucketftp)"
                sed 's/^/    /' "$root$desktop_file"
            else fail "desktop entry under /usr/share/applications"; fi
            icons="$(chroot "$root" dpkg -L "$pkg" | grep -c '^/usr/share/icons/hicolor/.*/apps/bucketftp.png$')"
            if ((icons >= 8)); then ok "$icons hicolor icons: $(chroot "$root" dpkg -L "$pkg" |
                sed -n 's|^/usr/share/icons/hicolor/\([^/]*\)/apps/bucketftp.png$|\1|p' | sort -V | tr '\n' ' ')"
            else fail "hicolor icons: $icons (want 8 sizes)"; fi
            run_in "$root" desktop
        else
            fail "apt-get install ./$deb"
        fi
    else fail "unpacking the base root"; fi
fi

# --- headless .deb ------------------------------------------------------------------------
if [[ ${#server_debs[@]} == 1 ]]; then
    deb="${server_debs[0]##*/}"
    echo "==> headless: $deb"
    dpkg-deb -f "${server_debs[0]}" Depends | sed 's/^/  Depends: /'
    if root="$(unpack_root server)"; then
        t0=$SECONDS
        if install_in "$root" "/pkgs/$deb" bucketftp-server; then
            ok "apt-get install ./$deb in a clean bookworm root ($((SECONDS - t0)) s)"
            want="$(dpkg-deb -f "${server_debs[0]}" Version)"
            got="$(chroot "$root" /usr/bin/bucketftp-server --version 2>&1)"
            if [[ "$got" == "bucketftp-server $want" ]]; then ok "bucketftp-server --version: $got"; else
                fail "bucketftp-server --version: '$got' (want 'bucketftp-server $want')"; fi
            if [[ -f "$root/lib/systemd/system/bucketftp-server.service" && -f "$root/etc/bucketftp/bucketftp-server.env" ]] &&
                grep -q '^User=bucketftp' "$root/lib/systemd/system/bucketftp-server.service" &&
                grep -q '^ExecReload=' "$root/lib/systemd/system/bucketftp-server.service"; then
                ok "systemd unit /lib/systemd/system/bucketftp-server.service (User=bucketftp, ExecReload) and /etc/bucketftp/bucketftp-server.env"
            else fail "systemd unit and env file"; fi
            etc_mode="$(chroot "$root" stat -c '%a %G' /etc/bucketftp)"
            if chroot "$root" getent passwd bucketftp >/dev/null && [[ "$etc_mode" == "750 bucketftp" ]]; then
                ok "postinst made the system user bucketftp; /etc/bucketftp is 750, group bucketftp"
            else fail "postinst: user bucketftp / /etc/bucketftp mode ($etc_mode)"; fi
            if command -v systemd-analyze >/dev/null; then
                score="$(systemd-analyze security --offline=yes --root="$root" bucketftp-server.service 2>/dev/null |
                    sed -n 's/.*Overall exposure level for bucketftp-server.service: //p')"
                if [[ -n "$score" ]]; then ok "systemd-analyze security (offline): exposure $score"; else
                    echo "  (systemd-analyze security --offline not available here)"; fi
            fi
            run_in "$root" server
        else
            fail "apt-get install ./$deb"
        fi
    else fail "unpacking the base root"; fi
fi

# --- rpm ---------------------------------------------------------------------------------
if [[ ${#rpms[@]} == 1 ]]; then
    echo "==> rpm: ${rpms[0]##*/}"
    requires="$(rpm -qpR "${rpms[0]}" 2>/dev/null)"
    sed 's/^/  Requires: /' <<<"$requires"
    for dep in webkit2gtk4.1 gtk3 libayatana-appindicator-gtk3; do
        if grep -q "^$dep" <<<"$requires"; then ok "rpm requires $dep"; else fail "rpm requires $dep"; fi
    done
    files="$(rpm -qpl "${rpms[0]}" 2>/dev/null)"
    for f in /usr/bin/bucketftp '/usr/share/applications/.*\.desktop' '/usr/share/icons/hicolor/128x128/apps/bucketftp.png'; do
        if grep -q "^$f\$" <<<"$files"; then ok "rpm holds $(grep "^$f\$" <<<"$files" | head -n1)"; else fail "rpm holds $f"; fi
    done
fi

finish
