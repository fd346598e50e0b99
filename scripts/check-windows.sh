#!/usr/bin/env bash
# scripts/check-windows.sh — type-checks and lints the whole workspace (tests included) for
# Windows from this Linux machine: `cargo clippy --target x86_64-pc-windows-gnu -- -D warnings`,
# so every `cfg(windows)` branch is compiled by rustc and read by clippy before a release build
# ever runs. Nothing is linked or run (the release workflow builds the real MSVC installer).
# Installs what is missing: the target's standard library (rustup, from static.rust-lang.org)
# and MinGW's C compiler (apt, for the crates that build C); scripts/install-test-deps.sh
# installs both too. Not part of .ci/run, which builds and runs the Windows programs under
# Wine instead (scripts/test-windows.sh); this adds clippy on every cfg(windows) branch,
# tests included.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
TARGET=x86_64-pc-windows-gnu

if ! rustup target list --installed | grep -qx "$TARGET"; then
    echo "==> rustup target add $TARGET"
    rustup target add "$TARGET"
fi
if ! command -v x86_64-w64-mingw32-gcc >/dev/null; then
    echo "==> apt-get install gcc-mingw-w64-x86-64 g++-mingw-w64-x86-64"
    sudo_cmd=()
    [[ "$(id -u)" == 0 ]] || sudo_cmd=(sudo)
    "${sudo_cmd[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
        gcc-mingw-w64-x86-64 g++-mingw-w64-x86-64
fi
echo "==> cargo clippy --target $TARGET --workspace --all-targets -- -D warnings"
cargo clippy --locked --target "$TARGET" --workspace --all-targets -- -D warnings
echo "Windows check: clean"
