"""tests/desktop/xwin.py — X11 and /proc helpers for the desktop tests and the idle benchmark.

Xvfb runs no window manager, so nothing sends the "close" a person's click on the title
bar's × makes; `close(wid)` sends that same request (a WM_PROTOCOLS / WM_DELETE_WINDOW
client message, python-xlib), which GTK turns into the window's close event. `xdotool
windowclose` would destroy the X window under GTK's feet instead.
"""

import os
import subprocess
import time

from Xlib import X, display, protocol


def xdo(*args):
    """Runs xdotool; its output, stripped. `xdotool search` walks every window and aborts
    with an X `BadWindow` error, printing nothing, when one is destroyed during the walk (a
    window just closed): such a run is repeated, up to 5 times."""
    for _ in range(5):
        r = subprocess.run(["xdotool", *args], capture_output=True, text=True, timeout=10)
        if "BadWindow" not in r.stderr:
            break
        time.sleep(0.2)
    return r.stdout.strip()


def main_windows():
    """Visible windows titled exactly "BucketFTP" (xdotool's --name is case-insensitive and
    would also match the tray icon's window, named "bucketftp")."""
    ids = xdo("search", "--onlyvisible", "--name", "^BucketFTP$").split()
    return [w for w in ids if xdo("getwindowname", w) == "BucketFTP"]


def close(wid):
    """Asks window `wid` (an int or a decimal string) to close, as a window manager would."""
    d = display.Display(os.environ.get("DISPLAY"))
    try:
        win = d.create_resource_object("window", int(wid))
        protocols = d.intern_atom("WM_PROTOCOLS")
        delete = d.intern_atom("WM_DELETE_WINDOW")
        event = protocol.event.ClientMessage(
            window=win, client_type=protocols, data=(32, [delete, X.CurrentTime, 0, 0, 0]))
        win.send_event(event, event_mask=X.NoEventMask, propagate=False)
        d.sync()  # a flush alone can lose the request when the connection closes
    finally:
        d.close()


def argv(pid):
    """A process's command line (from /proc), or [] when it is gone."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return [a.decode(errors="replace") for a in f.read().split(b"\0") if a]
    except OSError:
        return []


def process_tree_rss_kib(pid):
    """VmRSS of `pid` and of every process below it, in KiB: {pid: (comm, rss)}."""
    out = {}
    todo = [int(pid)]
    while todo:
        p = todo.pop()
        try:
            with open(f"/proc/{p}/status") as f:
                fields = dict(line.split(":", 1) for line in f if ":" in line)
            comm = fields.get("Name", "?").strip()
            rss = int(fields.get("VmRSS", "0 kB").split()[0])
            out[p] = (comm, rss)
            for t in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{t}/children") as f:
                    todo.extend(int(x) for x in f.read().split())
        except (OSError, ValueError):
            continue
    return out


def memory_rollup_kib(pid):
    """The main figures of /proc/PID/smaps_rollup, in KiB: Rss, Pss, Anonymous, Shared_Clean."""
    out = {}
    try:
        with open(f"/proc/{int(pid)}/smaps_rollup") as f:
            for line in f:
                k, _, v = line.partition(":")
                if k in ("Rss", "Pss", "Anonymous", "Shared_Clean") and v.split():
                    out[k] = int(v.split()[0])
    except OSError:
        pass
    return out


def biggest_mappings_kib(pid, n=3):
    """The `n` files (or anonymous memory) holding the most resident pages of `pid`."""
    rss = {}
    name = ""
    try:
        with open(f"/proc/{int(pid)}/smaps") as f:
            for line in f:
                first = line.split()
                if first and "-" in first[0] and not first[0].endswith(":"):
                    name = first[5] if len(first) > 5 else "[anonymous]"
                elif line.startswith("Rss:"):
                    rss[name] = rss.get(name, 0) + int(first[1])
    except OSError:
        pass
    return sorted(rss.items(), key=lambda kv: -kv[1])[:n]
