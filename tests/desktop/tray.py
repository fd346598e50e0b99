#!/usr/bin/env python3
"""tests/desktop/tray.py — the real `bucketftp` app's tray under Xvfb, with Debian's
`trayer` as the XEmbed tray host and xdotool as the hand on the mouse and keyboard.

Needs DISPLAY (Xvfb) and a D-Bus session with an unlocked Secret Service (single instance
and the keychain use D-Bus): scripts/test-desktop.sh provides them. Config and data folders
are temp dirs. Checks:
  1 without a tray host the app runs (no panic) and its server starts on launch
  2 with trayer, the tray icon is there, showing "running" (green dot)
  3 tray menu Stop: the FTP port refuses connections, the icon shows "stopped" (grey)
  4 tray menu Start: the port accepts connections again, the icon is green again
  5 started with --minimized there is no window (no WebKit process); tray Open window shows it,
    in a window process of its own (`bucketftp --window`, WebKit below it, none below the
    tray process itself)
  6 closing the window (the request a window manager sends) ends the window process and
    every WebKit process; the app, its server and the tray icon stay
  7 a second launch exits at once, leaves the first one running and brings up its window
  8 tray menu Quit: the app exits, its window process with it, and the port closes
Screenshots of the tray in target/e2e-screenshots/tray-*.png. Prints `N passed, N failed`.
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(REPO, "tests", "system"))
sys.path.insert(0, HERE)
import s3servers  # noqa: E402
import xwin  # noqa: E402

TARGET = os.path.join(REPO, os.environ.get("CARGO_TARGET_DIR") or "target")  # absolute stays absolute
APP = os.environ.get("BUCKETFTP_APP") or os.path.join(TARGET, "debug", "bucketftp")
SHOTS = os.path.join(TARGET, "e2e-screenshots")
ICON_CLASS = "tray-icon tray app"


def wait(cond, timeout, step=0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(step)
    return cond()


xdo = xwin.xdo
main_windows = xwin.main_windows


class Tray:
    def __init__(self):
        self.tmp = tempfile.mkdtemp(prefix="bucketftp-tray-")
        home = os.path.join(self.tmp, "home")
        self.env = dict(os.environ)
        self.env.update(
            HOME=home,
            XDG_CONFIG_HOME=os.path.join(home, ".config"),
            XDG_DATA_HOME=os.path.join(home, ".local", "share"),
        )
        self.port = s3servers.free_port(avoid=range(42300, 42401))
        cfg = os.path.join(self.env["XDG_CONFIG_HOME"], "bucketftp")
        os.makedirs(cfg)
        with open(os.path.join(cfg, "settings.json"), "w") as f:
            json.dump({"listen_port": self.port, "passive_ports": "42300-42400", "language": "en"}, f)
        self.app = None
        self.trayer = None
        self.logs = []

    def log_file(self, name):
        path = os.path.join(self.tmp, name)
        self.logs.append(path)
        return open(path, "wb")

    def launch(self, name, *args):
        with self.log_file(name + ".log") as log:
            return subprocess.Popen([APP, *args], env=self.env, stdout=log, stderr=subprocess.STDOUT)

    def port_open(self):
        return s3servers.tcp_open(self.port)

    def icon(self):
        ids = xdo("search", "--classname", ICON_CLASS).split()
        return ids[0] if ids else None

    def geometry(self, wid):
        g = {}
        for line in xdo("getwindowgeometry", "--shell", wid).splitlines():
            k, _, v = line.partition("=")
            g[k] = int(v) if v.lstrip("-").isdigit() else v
        return g

    def icon_rgb(self):
        """Average colour of the status dot's area (bottom right of the icon)."""
        wid = self.icon()
        out = subprocess.run(["import", "-window", wid, "png:-"], capture_output=True, timeout=10).stdout
        g = self.geometry(wid)
        w, h = g["WIDTH"], g["HEIGHT"]
        # The dot sits at 78 % of the icon's (square, centred) image.
        side = min(w, h)
        x0, y0 = (w - side) // 2, (h - side) // 2
        cx, cy = x0 + int(side * 0.78), y0 + int(side * 0.78)
        crop = f"3x3+{cx - 1}+{cy - 1}"
        txt = subprocess.run(["convert", "png:-", "-crop", crop, "-resize", "1x1!", "txt:-"], input=out,
                             capture_output=True, timeout=10).stdout.decode()
        # "0,0: (r,g,b,a)  #RRGGBB ..."
        hexcol = [w for w in txt.split() if w.startswith("#")][-1]
        return tuple(int(hexcol[i:i + 2], 16) for i in (1, 3, 5))

    def shot(self, name):
        os.makedirs(SHOTS, exist_ok=True)
        path = os.path.join(SHOTS, name + ".png")
        subprocess.run(["import", "-window", "root", "-crop", "360x240+920+0", "+repage", path], timeout=10,
                       capture_output=True)
        print(f"  screenshot {os.path.relpath(path, REPO)}", flush=True)

    def menu(self, *keys):
        """Opens the tray menu with a left click on the icon and types `keys`."""
        wid = self.icon()
        g = self.geometry(wid)
        xdo("mousemove", str(g["X"] + g["WIDTH"] // 2), str(g["Y"] + g["HEIGHT"] // 2), "click", "1")
        time.sleep(0.8)
        for k in keys:
            xdo("key", k)
            time.sleep(0.3)

    def stop_all(self):
        for p in (self.app, self.trayer):
            if p is not None and p.poll() is None:
                p.terminate()
                try:
                    p.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()

    def dump_logs(self):
        for path in self.logs:
            try:
                with open(path, "r", errors="replace") as f:
                    print(f"--- {os.path.basename(path)} (tail)\n" + "".join(f.readlines()[-20:]))
            except OSError:
                pass


def greenish(rgb):
    r, g, b = rgb
    return g > 120 and g > r + 40 and g > b + 40


def greyish(rgb):
    r, g, b = rgb
    return max(r, g, b) - min(r, g, b) < 30 and 90 < g < 220


def check_no_tray_host(t):
    t.app = t.launch("app-no-tray", "--minimized")
    assert wait(t.port_open, 30), "server did not start on launch"
    time.sleep(2)
    assert t.app.poll() is None, f"app exited with {t.app.returncode} without a tray host"
    t.app.terminate()
    t.app.wait(timeout=10)
    with open(t.logs[-1], errors="replace") as f:
        assert "panicked" not in f.read(), "panic in the log"
    assert wait(lambda: not t.port_open(), 10), "port still open after the app ended"


def check_icon_present(t):
    with t.log_file("trayer.log") as log:
        t.trayer = subprocess.Popen(
            ["trayer", "--edge", "top", "--align", "right", "--widthtype", "pixel", "--width", "120",
             "--height", "32", "--transparent", "false", "--tint", "0xdddddd"],
            env=t.env, stdout=log, stderr=subprocess.STDOUT)
    time.sleep(1)
    t.app = t.launch("app", "--minimized")
    assert wait(lambda: t.icon() is not None, 30), "no tray icon in trayer"
    assert wait(t.port_open, 30), "server did not start on launch"
    g = t.geometry(t.icon())
    assert g["WIDTH"] > 8 and g["HEIGHT"] > 8, f"icon too small: {g}"
    assert wait(lambda: greenish(t.icon_rgb()), 10), f"icon not green while running: {t.icon_rgb()}"
    t.shot("tray-01-running")
    t.menu()
    t.shot("tray-02-menu")
    xdo("key", "Escape")
    time.sleep(0.3)


def check_stop(t):
    # Disabled items are skipped: the first Down selects "Stop server" while running.
    t.menu("Down", "Return")
    assert wait(lambda: not t.port_open(), 15), "port still accepts after Stop"
    assert wait(lambda: greyish(t.icon_rgb()), 10), f"icon not grey after Stop: {t.icon_rgb()}"
    t.shot("tray-03-stopped")


def check_start(t):
    t.menu("Down", "Return")  # "Start server" while stopped
    assert wait(t.port_open, 15), "port refuses after Start"
    assert wait(lambda: greenish(t.icon_rgb()), 10), f"icon not green after Start: {t.icon_rgb()}"


def children(pid):
    """The pids of `pid`'s child processes."""
    kids = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as f:
                kids += [int(k) for k in f.read().split()]
    except OSError:
        pass
    return kids


def comm(pid):
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return ""


def webkit_children(pid):
    """Names of the WebKit processes directly below `pid`."""
    return [n for n in map(comm, children(pid)) if n.startswith("WebKit")]


def below(pid):
    """Every process below `pid`, as (pid, comm)."""
    out, todo = [], children(pid)
    while todo:
        p = todo.pop()
        out.append((p, comm(p)))
        todo.extend(children(p))
    return out


def webkit_below(pid):
    return [n for _, n in below(pid) if n.startswith("WebKit")]


def window_processes(pid):
    """The tray process's window processes (`bucketftp --window`)."""
    return [k for k in children(pid) if "--window" in xwin.argv(k)]


def check_open_window(t):
    # Started with --minimized: no window and no WebKit processes while idle in the tray.
    assert not main_windows(), "window shown at a minimized start"
    assert not webkit_below(t.app.pid), f"WebKit running while in the tray: {below(t.app.pid)}"
    assert not window_processes(t.app.pid), "a window process at a minimized start"
    t.menu("Down", "Down", "Return")  # Stop server (running), then Open window
    assert wait(main_windows, 20), "no window after Open"
    assert wait(lambda: window_processes(t.app.pid), 10), \
        f"no window process (bucketftp --window) below the app: {below(t.app.pid)}"
    win = window_processes(t.app.pid)[0]
    assert wait(lambda: webkit_children(win), 10), "no WebKit process for the window"
    assert not webkit_children(t.app.pid), \
        f"the tray process itself started WebKit: {webkit_children(t.app.pid)}"
    assert t.port_open(), "opening the window stopped the server"
    time.sleep(1)
    os.makedirs(SHOTS, exist_ok=True)
    path = os.path.join(SHOTS, "tray-04-window-opened.png")
    subprocess.run(["import", "-window", "root", path], timeout=10, capture_output=True)
    print(f"  screenshot {os.path.relpath(path, REPO)}", flush=True)


def check_close_window(t):
    # The × of the title bar (Xvfb has no window manager: the same request, sent by hand).
    wins = main_windows()
    assert wins, "no window to close"
    xwin.close(wins[0])
    assert wait(lambda: not main_windows(), 15), "the window is still shown after closing it"
    # The window process ends with its window, and every WebKit process with it.
    assert wait(lambda: not window_processes(t.app.pid), 15), \
        f"the window process still runs with the window closed: {below(t.app.pid)}"
    assert wait(lambda: not webkit_below(t.app.pid), 15), \
        f"WebKit still runs with the window closed: {below(t.app.pid)}"
    assert t.app.poll() is None, f"closing the window ended the app ({t.app.returncode})"
    assert t.port_open(), "closing the window stopped the server"
    assert t.icon() is not None, "the tray icon went with the window"


def check_single_instance(t):
    second = t.launch("app-second")
    try:
        second.wait(timeout=20)
    except subprocess.TimeoutExpired:
        second.kill()
        raise AssertionError("a second launch kept running")
    assert t.app.poll() is None, "the first instance died"
    assert t.port_open(), "the first instance's server stopped"
    assert wait(main_windows, 20), "the second launch did not bring up the first one's window"


def check_quit(t):
    # The window is open (the second launch brought it up): Quit ends its process too.
    wins = window_processes(t.app.pid)
    assert wins, f"no window process before Quit: {below(t.app.pid)}"
    t.menu("Up", "Return")  # Up from the top wraps to the last item: Quit
    try:
        t.app.wait(timeout=20)
    except subprocess.TimeoutExpired:
        raise AssertionError("Quit did not end the app")
    assert t.app.returncode == 0, f"exit code {t.app.returncode}"
    assert not t.port_open(), "port still open after Quit"
    assert wait(lambda: not any(os.path.exists(f"/proc/{w}") and comm(w) != "" for w in wins), 15), \
        f"the window process outlived Quit: {[(w, xwin.argv(w)) for w in wins]}"


CHECKS = [
    ("runs without a tray host", check_no_tray_host),
    ("tray icon present in trayer, green while running", check_icon_present),
    ("tray Stop: port refuses, icon grey", check_stop),
    ("tray Start: port accepts, icon green", check_start),
    ("tray Open window builds the window (none while minimized)", check_open_window),
    ("closing the window keeps the app in the tray, without WebKit", check_close_window),
    ("second launch shows the first one's window and exits", check_single_instance),
    ("tray Quit ends the app", check_quit),
]


def main():
    if not os.path.isfile(APP):
        print(f"{APP} is missing: cargo build -p bucketftp")
        print(f"0 passed, {len(CHECKS)} failed")
        return 1
    t = Tray()
    passed = failed = 0
    broken = None
    try:
        for name, fn in CHECKS:
            if broken:
                print(f"FAIL {name} (not run: {broken} failed)", flush=True)
                failed += 1
                continue
            t0 = time.monotonic()
            try:
                fn(t)
                passed += 1
                print(f"ok   {name} ({time.monotonic() - t0:.1f} s)", flush=True)
            except Exception as e:  # noqa: BLE001
                failed += 1
                broken = name
                print(f"FAIL {name}: {e}", flush=True)
                traceback.print_exc()
                try:
                    t.shot("tray-failed-" + fn.__name__)
                except Exception:  # noqa: BLE001
                    pass
        if failed:
            t.dump_logs()
    finally:
        t.stop_all()
        shutil.rmtree(t.tmp, ignore_errors=True)
    print(f"{passed} passed, {failed} failed")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
