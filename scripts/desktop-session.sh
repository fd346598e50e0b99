# scripts/desktop-session.sh — sourced (not run) by scripts/test-desktop.sh and
# bench/desktop_idle.sh: an isolated desktop for the real app.
#   desktop_isolate DIR   HOME, the XDG folders and XDG_RUNTIME_DIR inside DIR (the user's
#                         settings, keyrings and autostart entries are never touched); cargo
#                         and rustup keep their real homes; no accessibility bus, no Wayland,
#                         no inherited D-Bus session
#   desktop_xvfb DIR      starts Xvfb on a free display (its log in DIR), exports DISPLAY,
#                         sets XVFB_PID; returns 1 with the log on stderr if it did not start
#   DESKTOP_NOISE         an `grep -v -E` pattern for the D-Bus/portal chatter of such a session

DESKTOP_NOISE='^dbus-daemon\[|xdg-desktop-portal|pw\.conf|RealtimeKit|PipeWire|SpiRegistry|max threads value|Gcr-WARNING|^$'

desktop_isolate() {
    local dir="$1"
    export CARGO_HOME="${CARGO_HOME:-$HOME/.cargo}" RUSTUP_HOME="${RUSTUP_HOME:-$HOME/.rustup}"
    export HOME="$dir/home"
    export XDG_CONFIG_HOME="$HOME/.config" XDG_DATA_HOME="$HOME/.local/share" XDG_CACHE_HOME="$HOME/.cache"
    export XDG_RUNTIME_DIR="$dir/runtime"
    mkdir -p "$HOME" "$XDG_RUNTIME_DIR"
    chmod 700 "$XDG_RUNTIME_DIR"
    export NO_AT_BRIDGE=1 GTK_A11Y=none
    unset DBUS_SESSION_BUS_ADDRESS WAYLAND_DISPLAY
}

desktop_xvfb() {
    local dir="$1"
    Xvfb -displayfd 3 -screen 0 1280x900x24 -nolisten tcp 3>"$dir/display" >"$dir/xvfb.log" 2>&1 &
    XVFB_PID=$!
    for _ in $(seq 100); do [[ -s "$dir/display" ]] && break; sleep 0.1; done
    if [[ ! -s "$dir/display" ]]; then
        echo "Xvfb did not start: $(cat "$dir/xvfb.log")" >&2
        return 1
    fi
    export DISPLAY=":$(head -n1 "$dir/display")"
}
