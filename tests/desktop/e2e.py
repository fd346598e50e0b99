#!/usr/bin/env python3
"""tests/desktop/e2e.py — the real `bucketftp` desktop app driven through WebDriver.

tauri-driver (crates.io) in front of WebKitWebDriver (Debian's webkit2gtk-driver), Selenium
from .venv-test. Needs an X display (Xvfb) and a D-Bus session with an unlocked Secret
Service: scripts/test-desktop.sh provides all three and runs this with the venv's python.

Steps, each with a screenshot under target/e2e-screenshots/:
  01 the window at first start (profile "This computer"), shown by the window process
     (`bucketftp --window`, a child of the tray process): every step goes through the pipe
  02 a profile against a throw-away Garage S3 server (tests/system/s3servers.py) filled in
  03 "Test connection" says the bucket is reachable; the profile is saved (secret in the
     keychain, not in profiles.json)
  04 the FTP server started from the window
  05 Activity: a live FTP session (ftplib, logged in with the profile's key) and a finished
     curl upload of a file that then is in Garage
  06 Connect: the profile's FileZilla settings, the secret revealed on request
  -- "Start at login" on writes an autostart entry (with --minimized), off removes it
  07 the language switched to 简体中文 in Settings
All config/data folders are temp dirs (HOME, XDG_CONFIG_HOME, XDG_DATA_HOME).
Prints `N passed, N failed`; exits non-zero on failure.
"""

import ftplib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(REPO, "tests", "system"))
import s3servers  # noqa: E402
import xwin  # noqa: E402

from selenium import webdriver  # noqa: E402
from selenium.common.exceptions import StaleElementReferenceException  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.options import ArgOptions  # noqa: E402
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402

TARGET = os.path.join(REPO, os.environ.get("CARGO_TARGET_DIR") or "target")  # absolute stays absolute
APP = os.environ.get("BUCKETFTP_APP") or os.path.join(TARGET, "debug", "bucketftp")
SHOTS = os.path.join(TARGET, "e2e-screenshots")
BUCKET = "e2e"
SECRETS = set()


def free_port():
    return s3servers.free_port()


def say(msg):
    for s in SECRETS:
        msg = msg.replace(s, "<secret>")
    print(msg, flush=True)


def descendants(pid):
    """Every process below `pid` (from /proc), deepest last."""
    out = []
    todo = [pid]
    while todo:
        p = todo.pop()
        try:
            tasks = os.listdir(f"/proc/{p}/task")
        except OSError:
            continue
        for t in tasks:
            try:
                with open(f"/proc/{p}/task/{t}/children") as f:
                    kids = [int(x) for x in f.read().split()]
            except OSError:
                kids = []
            out.extend(kids)
            todo.extend(kids)
    return out


def wait_port(port, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if s3servers.tcp_open(port):
            return True
        time.sleep(0.1)
    return False


class Run:
    def __init__(self):
        self.tmp = tempfile.mkdtemp(prefix="bucketftp-e2e-")
        self.home = os.path.join(self.tmp, "home")
        self.env = dict(os.environ)
        self.env.update(
            HOME=self.home,
            XDG_CONFIG_HOME=os.path.join(self.home, ".config"),
            XDG_DATA_HOME=os.path.join(self.home, ".local", "share"),
            RUST_LOG="info,s3s=off",
        )
        self.ftp_port = s3servers.free_port(avoid=range(42000, 42101))
        self.driver_port = free_port()
        self.native_port = free_port()
        cfg = os.path.join(self.env["XDG_CONFIG_HOME"], "bucketftp")
        os.makedirs(cfg)
        # The app would start its server at launch on 2048; this run starts it from the
        # window, on a free port, in English.
        with open(os.path.join(cfg, "settings.json"), "w") as f:
            json.dump(
                {
                    "listen_port": self.ftp_port,
                    "passive_ports": "42000-42100",
                    "start_server_on_launch": False,
                    "language": "en",
                },
                f,
            )
        self.cfg_dir = cfg
        self.garage = None
        self.tauri_driver = None
        self.driver = None
        self.log = open(os.path.join(self.tmp, "tauri-driver.log"), "wb")

    # ----- set-up -----
    def start_garage(self):
        self.garage = s3servers.Garage()
        SECRETS.add(self.garage.secret_key)
        self.garage.start()
        self.garage.create_bucket(BUCKET)

    def start_app(self):
        self.tauri_driver = subprocess.Popen(
            ["tauri-driver", "--port", str(self.driver_port), "--native-port", str(self.native_port)],
            env=self.env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        if not wait_port(self.driver_port):
            raise RuntimeError("tauri-driver did not listen")
        opts = ArgOptions()
        opts.set_capability("browserName", "wry")
        opts.set_capability("tauri:options", {"application": APP})
        self.driver = webdriver.Remote(command_executor=f"http://127.0.0.1:{self.driver_port}", options=opts)
        self.driver.implicitly_wait(0)
        self.until(lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-ready") == "1", 60, "window ready")

    def stop(self):
        # tauri-driver's descendants (WebKitWebDriver, the app), by pid, before it goes.
        kids = descendants(self.tauri_driver.pid) if self.tauri_driver is not None else []
        if self.driver is not None:
            try:
                self.driver.quit()
            except Exception:  # noqa: BLE001 - best effort at teardown
                pass
        if self.tauri_driver is not None:
            try:
                os.killpg(self.tauri_driver.pid, 15)
            except OSError:
                pass
            self.tauri_driver.wait(timeout=10)
        for pid in kids:
            try:
                os.kill(pid, 15)
            except OSError:
                pass
        if self.garage is not None:
            self.garage.stop()
        self.log.close()
        shutil.rmtree(self.tmp, ignore_errors=True)

    # ----- helpers -----
    def until(self, cond, timeout, what):
        try:
            # The UI re-renders lists on events: a node read mid-render is read again.
            return WebDriverWait(self.driver, timeout, poll_frequency=0.2,
                                 ignored_exceptions=[StaleElementReferenceException]).until(cond)
        except Exception as e:  # noqa: BLE001
            raise AssertionError(f"timed out waiting for {what}") from e

    def el(self, id_):
        return self.driver.find_element(By.ID, id_)

    def text(self, id_):
        return self.el(id_).text

    def fill(self, id_, value):
        e = self.el(id_)
        e.clear()
        e.send_keys(value)

    def shot(self, name):
        os.makedirs(SHOTS, exist_ok=True)
        path = os.path.join(SHOTS, name + ".png")
        # Let WebKit paint what the DOM already holds: two animation frames, then a beat.
        self.driver.execute_async_script(
            "const done = arguments[arguments.length - 1];"
            "requestAnimationFrame(() => requestAnimationFrame(() => setTimeout(done, 150)));")
        self.driver.save_screenshot(path)
        say(f"  screenshot {os.path.relpath(path, REPO)}")


def parent(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return None


def step_first_window(r):
    r.until(lambda d: "This computer" in r.text("profile-list"), 20, "profile This computer")
    assert "/local" in r.text("profile-list")
    assert r.text("status-text") == "Stopped", r.text("status-text")
    # The page under test is the window process's (`bucketftp --window`), a child of the
    # tray process: every step below goes through the pipe between the two.
    below = descendants(r.tauri_driver.pid)
    apps = [p for p in below if [os.path.basename(a) for a in xwin.argv(p)[:1]] == [os.path.basename(APP)]]
    windows = [p for p in apps if "--window" in xwin.argv(p)]
    trays = [p for p in apps if "--window" not in xwin.argv(p)]
    assert len(windows) == 1 and len(trays) == 1, \
        f"expected one tray and one window process: {[(p, xwin.argv(p)) for p in below]}"
    assert parent(windows[0]) == trays[0], "the window process is not the tray process's child"
    r.shot("01-first-start")


def step_fill_profile(r):
    g = r.garage
    r.el("profiles-add").click()
    r.until(lambda d: r.el("profile-form").is_displayed(), 10, "profile form")
    r.fill("pf-name", "Garage")
    Select(r.el("pf-provider")).select_by_value("custom")
    r.fill("pf-region", g.region)
    r.fill("pf-endpoint", g.endpoint)
    Select(r.el("pf-addressing")).select_by_value("path")
    r.fill("pf-access-key", g.access_key)
    r.fill("pf-secret", g.secret_key)
    r.fill("pf-bucket", BUCKET)
    r.shot("02-profile-form")


def step_test_and_save(r):
    r.el("pf-test").click()
    r.until(lambda d: "ok" in (r.el("pf-result").get_attribute("class") or "")
            or "bad" in (r.el("pf-result").get_attribute("class") or ""), 30, "test result")
    result = r.text("pf-result")
    say(f"  test connection: {result}")
    assert "ok" in r.el("pf-result").get_attribute("class"), result
    assert f"“{BUCKET}” is reachable" in result, result
    r.shot("03-test-connection")
    r.el("pf-save").click()
    r.until(lambda d: "Garage" in r.text("profile-list"), 10, "saved profile in the list")
    assert "secret in keychain" in r.text("profile-list")
    with open(os.path.join(r.cfg_dir, "profiles.json")) as f:
        text = f.read()
    assert r.garage.access_key in text and r.garage.secret_key not in text, "secret in profiles.json"


def step_start_server(r):
    r.el("server-start").click()
    r.until(lambda d: r.text("status-text").startswith("Running on"), 20, "server running")
    assert wait_port(r.ftp_port, 5), "FTP port not open"
    r.shot("04-server-started")


def step_activity(r):
    g = r.garage
    user = f"{g.access_key}/{BUCKET}"
    r.el("tab-activity").click()
    ftp = ftplib.FTP()
    ftp.connect("127.0.0.1", r.ftp_port, timeout=20)
    ftp.login(user, g.secret_key)
    try:
        r.until(lambda d: user in r.text("sessions-body"), 15, "live session in Activity")
        body = os.path.join(r.tmp, "e2e-upload.txt")
        with open(body, "wb") as f:
            f.write(b"uploaded by the desktop e2e test\n" * 1000)
        # curl: a real FTP client uploading through the app to Garage.
        env = dict(os.environ)
        cp = subprocess.run(
            ["curl", "-sS", "--max-time", "60", "-T", body, f"ftp://127.0.0.1:{r.ftp_port}/e2e-upload.txt",
             "--user", f"{user}:{g.secret_key}"],
            capture_output=True, text=True, env=env, timeout=90,
        )
        assert cp.returncode == 0, f"curl failed ({cp.returncode}): {cp.stderr}"
        r.until(lambda d: "e2e-upload.txt" in r.text("transfers-body") and "Done" in r.text("transfers-body"), 20,
                "finished transfer in Activity")
        assert "e2e-upload.txt" in ftp.nlst(), "upload not listed"
        # curl uploaded over plain FTP: the row says what that risks.
        assert "Plain FTP" in r.text("transfers-body"), "no plain-FTP note on the upload"
        r.shot("05-activity")
        assert "logged in" in r.text("log-tail")
    finally:
        try:
            ftp.quit()
        except Exception:  # noqa: BLE001
            ftp.close()
    # The object is in Garage itself (read back through the app's FTP with curl).
    cp = subprocess.run(["curl", "-sS", f"ftp://127.0.0.1:{r.ftp_port}/e2e-upload.txt", "--user",
                         f"{user}:{g.secret_key}"], capture_output=True, timeout=60)
    assert cp.stdout == b"uploaded by the desktop e2e test\n" * 1000, "download differs"
    r.until(lambda d: user not in r.text("sessions-body"), 15, "sessions closed")


def step_connect(r):
    g = r.garage
    r.el("tab-connect").click()
    Select(r.el("cn-profile")).select_by_visible_text("Garage")
    r.until(lambda d: r.text("cn-user") == f"{g.access_key}/{BUCKET}", 10, "connect user")
    assert r.text("cn-host") == "127.0.0.1"
    assert r.text("cn-port") == str(r.ftp_port)
    assert g.secret_key not in r.driver.page_source, "secret shown before asked"
    r.el("cn-reveal").click()
    r.until(lambda d: r.text("cn-password") == g.secret_key, 10, "secret revealed (from the keychain)")
    r.el("cn-reveal").click()
    r.until(lambda d: g.secret_key not in r.text("cn-password"), 10, "secret hidden again")
    # FileZilla does not percent-decode Quickconnect URLs: the slash stays literal, no password.
    assert r.text("cn-url") == f"ftp://{g.access_key}/{BUCKET}@127.0.0.1:{r.ftp_port}/"
    assert r.text("cn-encryption") == "Require explicit FTP over TLS"
    assert "Always trust this certificate" in r.text("cn-fp-hint-row")
    r.driver.execute_script("arguments[0].scrollIntoView()", r.el("cn-export"))
    r.el("cn-export").click()
    r.until(lambda d: r.text("cn-export-message"), 10, "export message")
    assert "bucketftp-sites" in r.text("cn-export-message"), r.text("cn-export-message")
    assert "File › Import…" in r.text("cn-export-message")
    assert g.secret_key not in r.driver.page_source, "secret shown by the export"
    r.shot("06-connect")


def step_start_at_login(r):
    autostart = os.path.join(r.env["XDG_CONFIG_HOME"], "autostart")
    r.el("tab-settings").click()
    r.until(lambda d: r.el("st-start-at-login").is_displayed(), 10, "settings form")
    assert not r.el("st-start-at-login").is_selected()
    r.el("st-start-at-login").click()
    r.el("st-save").click()
    r.until(lambda d: r.text("st-message") == "Settings saved.", 15, "settings saved")
    entries = os.listdir(autostart) if os.path.isdir(autostart) else []
    assert entries, f"no autostart entry in {autostart}"
    with open(os.path.join(autostart, entries[0])) as f:
        desktop = f.read()
    assert "--minimized" in desktop, desktop
    r.el("st-start-at-login").click()
    r.el("st-save").click()
    r.until(lambda d: not os.listdir(autostart), 15, "autostart entry removed")


def step_chinese(r):
    r.el("tab-settings").click()

    # The form is re-rendered on every settings event (the saves of the step before may still
    # be arriving), which replaces the <select>: choose again until the choice holds.
    def choose_chinese(d):
        try:
            sel = Select(r.el("st-language"))
            if len(sel.options) != 4:
                return False
            sel.select_by_value("zh-CN")
            time.sleep(0.5)
            return r.el("st-language").get_attribute("value") == "zh-CN"
        except StaleElementReferenceException:
            return False

    r.until(choose_chinese, 15, "Chinese chosen in the language list")
    r.el("st-save").click()
    r.until(lambda d: r.text("tab-activity") == "活动", 15, "Chinese tabs")
    assert r.text("tab-profiles") == "配置"
    r.until(lambda d: r.text("st-message") == "设置已保存。", 15, "saved message in Chinese")
    assert r.text("status-text").startswith("运行中"), r.text("status-text")
    r.shot("07-chinese")
    r.el("tab-activity").click()
    r.until(lambda d: "完成" in r.text("transfers-body"), 10, "Activity in Chinese")
    r.shot("08-activity-chinese")


STEPS = [
    ("window at first start", step_first_window),
    ("profile against Garage filled in", step_fill_profile),
    ("test connection + save (secret only in keychain)", step_test_and_save),
    ("start the server from the window", step_start_server),
    ("session and finished curl upload in Activity", step_activity),
    ("Connect view, secret on request", step_connect),
    ("start at login writes and removes the autostart entry", step_start_at_login),
    ("switch language to Chinese", step_chinese),
]


def main():
    if not os.path.isfile(APP):
        print(f"{APP} is missing: cargo build -p bucketftp")
        print(f"0 passed, {len(STEPS)} failed")
        return 1
    shutil.rmtree(SHOTS, ignore_errors=True)
    r = Run()
    passed = failed = 0
    try:
        try:
            r.start_garage()
            r.start_app()
        except Exception as e:  # noqa: BLE001
            say(f"FAIL set-up: {e}")
            traceback.print_exc()
            print(f"0 passed, {len(STEPS)} failed")
            return 1
        broken = None
        for name, fn in STEPS:
            if broken:
                say(f"FAIL {name} (not run: {broken} failed)")
                failed += 1
                continue
            t0 = time.monotonic()
            try:
                fn(r)
                passed += 1
                say(f"ok   {name} ({time.monotonic() - t0:.1f} s)")
            except Exception as e:  # noqa: BLE001
                failed += 1
                broken = name
                say(f"FAIL {name}: {e}")
                try:
                    r.shot("failed-" + fn.__name__)
                except Exception:  # noqa: BLE001
                    pass
                say(traceback.format_exc())
    finally:
        r.stop()
    print(f"{passed} passed, {failed} failed")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
