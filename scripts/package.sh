#!/usr/bin/env bash
# scripts/package.sh — builds BucketFTP's Linux packages from a clean checkout (Debian 12, no
# network but the package registries) into "${CARGO_TARGET_DIR:-target}/dist/":
#   bucketftp_<ver>_<arch>.deb, bucketftp-<ver>-1.<arch>.rpm   the desktop tray app, made by
#       Tauri's bundler (npm @tauri-apps/cli, pinned with integrity hashes by
#       installers/tauri-cli/package-lock.json, `npm ci` into a cache folder outside the work
#       tree) with `tauri build`, i.e. with the custom-protocol feature;
#   bucketftp-server_<ver>_<arch>.deb                          the headless server (dpkg-deb):
#       /usr/bin/bucketftp-server, the hardened systemd unit, /etc/bucketftp/*.env, docs;
#   bucketftp-server-<ver>-linux-<machine>.tar.gz              the same binary, README, unit;
#   SHA256SUMS.
# Prints each step's time, the release binaries' sizes and the artefacts' sizes.
#
# Options: --bundles LIST   Tauri bundles to make (default deb,rpm; the release workflow adds
#                           appimage, which downloads its tools from GitHub)
#          --server-only    only the headless server's .deb and .tar.gz
# AppImage, Windows and macOS builds happen only in .github/workflows/release.yml
# (see installers/README.md). Needs: cargo, npm, dpkg-deb, rpm (rpmbuild is not needed).
set -euo pipefail

BUNDLES=deb,rpm
SERVER_ONLY=0
while (($#)); do
    case "$1" in
    --bundles) BUNDLES="$2"; shift 2 ;;
    --server-only) SERVER_ONLY=1; shift ;;
    *) echo "usage: scripts/package.sh [--bundles deb,rpm[,appimage]] [--server-only]" >&2; exit 2 ;;
    esac
done

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"

TAURI_CLI_VERSION="$(sed -n 's/.*"@tauri-apps\/cli": "\(.*\)".*/\1/p' installers/tauri-cli/package.json)"
TARGET_DIR="${CARGO_TARGET_DIR:-$REPO/target}"
[[ "$TARGET_DIR" == /* ]] || TARGET_DIR="$REPO/$TARGET_DIR"
export CARGO_TARGET_DIR="$TARGET_DIR"
CLI_DIR="${BUCKETFTP_TAURI_CLI_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/bucketftp/tauri-cli-$TAURI_CLI_VERSION}"
DIST="$TARGET_DIR/dist"

step_start=$SECONDS
step() {
    echo "==> $* (+$((SECONDS - step_start)) s)"
}
need() {
    command -v "$1" >/dev/null || { echo "package.sh: $1 is missing ($2)" >&2; exit 1; }
}
need cargo "rustup"
((SERVER_ONLY)) || need npm "apt-get install npm, or Node.js 18+"
need dpkg-deb "apt-get install dpkg"
need sha256sum "coreutils"

VERSION="$(cargo pkgid -p gateway | sed 's/.*[#@]//')"
DEB_ARCH="$(dpkg --print-architecture)"
MACHINE="$(uname -m)"
# Reproducible timestamps in the headless packages: the last commit's time.
SOURCE_DATE_EPOCH="${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}"
export SOURCE_DATE_EPOCH
echo "BucketFTP $VERSION for $DEB_ARCH, target dir $TARGET_DIR"

if ((!SERVER_ONLY)); then
    # --- the Tauri CLI, pinned -----------------------------------------------------------
    TAURI="$CLI_DIR/node_modules/.bin/tauri"
    if [[ ! -x "$TAURI" ]] || [[ "$("$TAURI" --version)" != "tauri-cli $TAURI_CLI_VERSION" ]]; then
        step "npm ci: @tauri-apps/cli@$TAURI_CLI_VERSION into $CLI_DIR"
        mkdir -p "$CLI_DIR"
        cp installers/tauri-cli/package.json installers/tauri-cli/package-lock.json "$CLI_DIR/"
        npm ci --prefix "$CLI_DIR" --no-audit --no-fund
    fi
    "$TAURI" --version

    # --- the desktop app: tauri build (custom-protocol, release, the bundles) -------------
    step "tauri build --bundles $BUNDLES"
    rm -rf "$TARGET_DIR/release/bundle"
    (cd src-tauri && "$TAURI" build --ci --bundles "$BUNDLES")
fi

# --- the headless server -----------------------------------------------------------------
# Resolved together with the desktop crate (and its custom-protocol feature), the server's
# dependencies get the same features as in the desktop build just made, so cargo reuses them
# instead of building every dependency again for a gateway-only feature set.
if ((SERVER_ONLY)); then
    server_build=(cargo build --release --locked -p gateway --bin bucketftp-server)
else
    server_build=(cargo build --release --locked -p gateway -p bucketftp --bin bucketftp-server
        --features tauri/custom-protocol)
fi
step "${server_build[*]}"
"${server_build[@]}"
SERVER_BIN="$TARGET_DIR/release/bucketftp-server"
# The desktop binary as packaged (target/release/bucketftp may be rebuilt by others later).
DESKTOP_BIN="$(ls "$TARGET_DIR"/release/bundle/deb/*/data/usr/bin/bucketftp 2>/dev/null | head -n1)"

WORK="$(mktemp -d -t bucketftp-package-XXXXXX)"
trap 'rm -rf "$WORK"' EXIT

# Depends of the server binary: the Debian packages of its shared libraries, libc6 at the
# newest GLIBC symbol version it uses.
server_depends() {
    local libs=() lib path pkg glibc
    mapfile -t libs < <(readelf -d "$SERVER_BIN" | sed -n 's/.*Shared library: \[\(.*\)\]/\1/p')
    local pkgs=()
    for lib in "${libs[@]}"; do
        path="$(ldconfig -p | awk -v l="$lib" '$1 == l && /x86-64|AArch64|aarch64|64bit/ {print $NF; exit}')"
        [[ -n "$path" ]] || path="$(ldconfig -p | awk -v l="$lib" '$1 == l {print $NF; exit}')"
        [[ -n "$path" ]] || { echo "package.sh: no $lib on this machine" >&2; exit 1; }
        pkg="$(dpkg -S "$(readlink -f "$path")" 2>/dev/null | head -n1 | cut -d: -f1)"
        [[ -n "$pkg" ]] || pkg="$(dpkg -S "$path" | head -n1 | cut -d: -f1)"
        pkgs+=("$pkg")
    done
    glibc="$(objdump -T "$SERVER_BIN" | grep -o 'GLIBC_[0-9.]*' | sed 's/GLIBC_//' | sort -uV | tail -n1)"
    local out=() p
    while read -r p; do
        [[ -n "$p" ]] || continue
        if [[ "$p" == libc6 && -n "$glibc" ]]; then out+=("libc6 (>= $glibc)"); else out+=("$p"); fi
    done < <(printf '%s\n' "${pkgs[@]}" | sort -u)
    local IFS=,
    echo "${out[*]}" | sed 's/,/, /g'
}

# --- bucketftp-server .deb -----------------------------------------------------------------
step "dpkg-deb: bucketftp-server_${VERSION}_${DEB_ARCH}.deb"
ROOT="$WORK/deb"
install -D -m 0755 "$SERVER_BIN" "$ROOT/usr/bin/bucketftp-server"
install -D -m 0644 installers/linux/bucketftp-server.service "$ROOT/lib/systemd/system/bucketftp-server.service"
install -D -m 0644 installers/linux/bucketftp-server.env "$ROOT/etc/bucketftp/bucketftp-server.env"
install -D -m 0644 README.md "$ROOT/usr/share/doc/bucketftp-server/README.md"
install -D -m 0644 installers/linux/copyright "$ROOT/usr/share/doc/bucketftp-server/copyright"
mkdir -p "$ROOT/DEBIAN"
install -m 0755 installers/linux/server-postinst "$ROOT/DEBIAN/postinst"
install -m 0755 installers/linux/server-prerm "$ROOT/DEBIAN/prerm"
install -m 0755 installers/linux/server-postrm "$ROOT/DEBIAN/postrm"
echo /etc/bucketftp/bucketftp-server.env >"$ROOT/DEBIAN/conffiles"
cat >"$ROOT/DEBIAN/control" <<EOF
Package: bucketftp-server
Version: $VERSION
Architecture: $DEB_ARCH
Maintainer: BucketFTP developers <bucketftp@users.noreply.github.com>
Installed-Size: $(du -sk --exclude=DEBIAN "$ROOT" | cut -f1)
Depends: $(server_depends)
Section: net
Priority: optional
Description: FTP server for S3-compatible buckets (headless)
 bucketftp-server lets FTP clients (FileZilla, WinSCP, curl, lftp) work with
 S3-compatible object storage: AWS S3, Aliyun OSS, Tencent COS, Cloudflare R2,
 MinIO and others. Log in with user ACCESS_KEY_ID/bucket and the secret key.
 Run it as a service: edit /etc/bucketftp/bucketftp-server.env, then
 systemctl enable --now bucketftp-server.
EOF
find "$ROOT" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
SERVER_DEB="$WORK/bucketftp-server_${VERSION}_${DEB_ARCH}.deb"
dpkg-deb --root-owner-group -Zxz --build "$ROOT" "$SERVER_DEB" >/dev/null
dpkg-deb --info "$SERVER_DEB" | sed -n 's/^ \(Depends\|Version\|Installed-Size\):/  \1:/p'

# --- bucketftp-server .tar.gz --------------------------------------------------------------
TAR_NAME="bucketftp-server-${VERSION}-linux-${MACHINE}"
step "tar: $TAR_NAME.tar.gz"
mkdir -p "$WORK/$TAR_NAME"
install -m 0755 "$SERVER_BIN" "$WORK/$TAR_NAME/bucketftp-server"
install -m 0644 README.md installers/linux/bucketftp-server.service installers/linux/bucketftp-server.env \
    "$WORK/$TAR_NAME/"
tar -C "$WORK" --sort=name --owner=0 --group=0 --numeric-owner --mtime="@$SOURCE_DATE_EPOCH" \
    -cf - "$TAR_NAME" | gzip -9n >"$WORK/$TAR_NAME.tar.gz"

# --- dist -------------------------------------------------------------------------------
step "collect into $DIST"
rm -rf "$DIST"
mkdir -p "$DIST"
shopt -s nullglob
desktop=("$TARGET_DIR"/release/bundle/*/*.{deb,rpm,AppImage})
if ((!SERVER_ONLY)); then
    IFS=, read -r -a wanted <<<"$BUNDLES"
    ((${#desktop[@]} == ${#wanted[@]})) ||
        { echo "package.sh: expected ${#wanted[@]} desktop packages ($BUNDLES), got: ${desktop[*]}" >&2; exit 1; }
    # Tauri names them after the product (BucketFTP_…); the package inside is `bucketftp`,
    # and so are the file names in dist (apt-get install ./bucketftp_*.deb).
    for f in "${desktop[@]}"; do
        name="${f##*/}"
        cp "$f" "$DIST/${name,,}"
    done
fi
cp "$SERVER_DEB" "$WORK/$TAR_NAME.tar.gz" "$DIST/"
(cd "$DIST" && sha256sum -- * >SHA256SUMS)

echo
echo "release binaries (stripped):"
for b in "$DESKTOP_BIN" "$SERVER_BIN"; do
    [[ -f "$b" ]] || continue
    printf '  %-52s %8s\n' "${b##*/}" "$(numfmt --to=iec-i --suffix=B "$(stat -c %s "$b")")"
done
echo "artefacts in $DIST:"
(cd "$DIST" && for f in *; do printf '  %-52s %8s\n' "$f" "$(numfmt --to=iec-i --suffix=B "$(stat -c %s "$f")")"; done)
echo "package.sh: done in $((SECONDS - step_start)) s"
