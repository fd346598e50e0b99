#!/usr/bin/env bash
# scripts/run-app.sh — the README's "run the app": builds and starts the desktop tray app
# `bucketftp` (cargo run --release -p bucketftp), which serves the local bucket "This computer"
# on 127.0.0.1:2048 with no cloud account. On Linux it first makes sure the system libraries
# Tauri builds against are there: missing Debian/Ubuntu packages are installed with apt-get (as
# root, or through sudo when it can run without a password prompt or on a terminal); when that
# is not possible it names the packages and stops. Arguments go to the app (e.g. --minimized).
# `HEADLESS=1 scripts/run-app.sh` runs the headless server `bucketftp-server` instead, which
# needs none of them.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"

if [[ "${HEADLESS:-}" == 1 ]]; then
    exec cargo run --release -p gateway --bin bucketftp-server -- "$@"
fi

# pkg-config module -> Debian/Ubuntu package that provides it.
declare -A provides=(
    [webkit2gtk-4.1]=libwebkit2gtk-4.1-dev
    [ayatana-appindicator3-0.1]=libayatana-appindicator3-dev
    [librsvg-2.0]=librsvg2-dev
    [dbus-1]=libdbus-1-dev
)

missing_packages() {
    if ! command -v pkg-config >/dev/null 2>&1; then
        echo pkg-config "${provides[@]}"
        return
    fi
    local module
    for module in "${!provides[@]}"; do
        pkg-config --exists "$module" || echo "${provides[$module]}"
    done
}

# Prints the command prefix that runs apt-get as root, or fails when there is none.
root_prefix() {
    if [[ $(id -u) -eq 0 ]]; then
        return 0
    fi
    command -v sudo >/dev/null 2>&1 || return 1
    if sudo -n true 2>/dev/null || [[ -t 0 ]]; then
        echo sudo
        return 0
    fi
    return 1
}

if [[ "$(uname -s)" == Linux ]]; then
    mapfile -t missing < <(missing_packages | tr ' ' '\n' | sed '/^$/d')
    if ((${#missing[@]})); then
        echo "BucketFTP's desktop app needs these system packages to build: ${missing[*]}" >&2
        if command -v apt-get >/dev/null 2>&1 && prefix="$(root_prefix)"; then
            echo "Installing them with apt-get…" >&2
            # shellcheck disable=SC2086 # $prefix is empty or "sudo"
            $prefix apt-get update -o DPkg::Lock::Timeout=600
            # shellcheck disable=SC2086
            DEBIAN_FRONTEND=noninteractive $prefix apt-get install -y \
                -o DPkg::Lock::Timeout=600 pkg-config "${missing[@]}"
            mapfile -t still < <(missing_packages | tr ' ' '\n' | sed '/^$/d')
            if ((${#still[@]})); then
                echo "Still missing after apt-get: ${still[*]}" >&2
                exit 1
            fi
        else
            echo "Install them, then run this again:" >&2
            echo "    sudo apt-get install pkg-config ${missing[*]}" >&2
            echo "(Fedora: webkit2gtk4.1-devel libayatana-appindicator-gtk3-devel librsvg2-devel" >&2
            echo " dbus-devel.) Or run the headless server, which needs none: HEADLESS=1 $0" >&2
            exit 1
        fi
    fi
fi

exec cargo run --release -p bucketftp -- "$@"
