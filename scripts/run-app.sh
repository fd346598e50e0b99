#!/usr/bin/env bash
# scripts/run-app.sh — the README's "run the app": builds and starts the desktop tray app
# `bucketftp` (cargo run --release -p bucketftp), which serves the local bucket "This computer"
# on 127.0.0.1:2048 with no cloud account. On Linux it first checks the system libraries Tauri
# builds against and, when some are missing, says which packages to install instead of
# failing deep inside a -sys crate's build script. Arguments go to the app (e.g. --minimized).
# `HEADLESS=1 scripts/run-app.sh` runs the headless server `bucketftp-server` instead, which
# needs none of them.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"

if [[ "${HEADLESS:-}" == 1 ]]; then
    exec cargo run --release -p gateway --bin bucketftp-server -- "$@"
fi

if [[ "$(uname -s)" == Linux ]]; then
    # pkg-config module -> Debian/Ubuntu package that provides it.
    declare -A provides=(
        [webkit2gtk-4.1]=libwebkit2gtk-4.1-dev
        [ayatana-appindicator3-0.1]=libayatana-appindicator3-dev
        [librsvg-2.0]=librsvg2-dev
        [dbus-1]=libdbus-1-dev
    )
    missing=()
    if ! command -v pkg-config >/dev/null 2>&1; then
        missing=(pkg-config "${provides[@]}")
    else
        for module in "${!provides[@]}"; do
            pkg-config --exists "$module" || missing+=("${provides[$module]}")
        done
    fi
    if ((${#missing[@]})); then
        echo "BucketFTP's desktop app needs these system packages to build:" >&2
        echo "    sudo apt-get install ${missing[*]}" >&2
        echo "(Fedora: webkit2gtk4.1-devel libayatana-appindicator-gtk3-devel librsvg2-devel" >&2
        echo " dbus-devel.) Or run the headless server, which needs none: HEADLESS=1 $0" >&2
        exit 1
    fi
fi

exec cargo run --release -p bucketftp -- "$@"
