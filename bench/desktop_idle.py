#!/usr/bin/env python3
"""bench/desktop_idle.py — the RSS readings of bench/desktop_idle.sh, which sets up the
display, D-Bus, keyring and tray host this needs (run that, not this). Prints figures."""

import os
import socket
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "tests", "desktop"))
import xwin  # noqa: E402

APP = os.environ["BUCKETFTP_APP"]
PORT = int(os.environ["FTP_PORT"])
SETTLE = float(os.environ.get("SETTLE_SECS", "10"))


def port_open():
    try:
        with socket.create_connection(("127.0.0.1", PORT), timeout=1):
            return True
    except OSError:
        return False


def wait(cond, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.2)
    return False


def report(label, pid):
    tree = xwin.process_tree_rss_kib(pid)
    total = sum(rss for _, rss in tree.values())
    print(f"{label}: {total / 1024:.1f} MiB in all", flush=True)
    for p, (comm, rss) in sorted(tree.items()):
        print(f"    {comm:<24} pid {p:<8} {rss / 1024:7.1f} MiB", flush=True)
    # What the app's own RSS is made of: its private heap vs library pages (shared with other
    # programs on a desktop; under Xvfb Mesa's software GL brings in libLLVM).
    m = xwin.memory_rollup_kib(pid)
    if m:
        print(f"    app: anonymous {m.get('Anonymous', 0) / 1024:.1f} MiB, PSS {m.get('Pss', 0) / 1024:.1f} MiB, "
              f"shared clean {m.get('Shared_Clean', 0) / 1024:.1f} MiB; most resident: "
              + ", ".join(f"{os.path.basename(n)} {k / 1024:.1f} MiB" for n, k in xwin.biggest_mappings_kib(pid)),
              flush=True)
    return total / 1024


def main():
    log = open(os.path.join(os.environ["HOME"], "app.log"), "wb")
    app = subprocess.Popen([APP, "--minimized"], stdout=log, stderr=subprocess.STDOUT)
    try:
        if not wait(port_open, 60):
            log.flush()
            with open(log.name, errors="replace") as f:
                tail = "".join(f.readlines()[-15:])
            print(f"the app's FTP server did not start; its log ends:\n{tail}")
            return 1
        time.sleep(SETTLE)
        idle = report("1. idle in the tray (--minimized, server running, no window)", app.pid)

        second = subprocess.run([APP], stdout=log, stderr=subprocess.STDOUT, timeout=30)
        if not wait(xwin.main_windows, 30):
            print(f"no window after a second launch (it exited with {second.returncode})")
            return 1
        time.sleep(SETTLE)
        report("2. window open", app.pid)

        xwin.close(xwin.main_windows()[0])
        if not wait(lambda: not xwin.main_windows(), 20):
            print("the window did not close")
            return 1
        time.sleep(SETTLE)
        after = report("3. window closed again (back in the tray)", app.pid)
        print(f"targets: idle {idle:.1f} MiB (target <= 80: {'met' if idle <= 80 else 'NOT met'}); "
              f"after closing {after:.1f} MiB = {100 * (after / idle - 1):+.1f}% of idle "
              f"(target <= +10% within {SETTLE:.0f} s: {'met' if after <= idle * 1.1 else 'NOT met'})",
              flush=True)
    finally:
        app.terminate()
        try:
            app.wait(timeout=20)
        except subprocess.TimeoutExpired:
            app.kill()
        log.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
