#!/usr/bin/env python3
"""tests/windows/windows_test.py — the Windows build of bucketftp-server, run under Wine.

Run by scripts/test-windows.sh, which builds `bucketftp-server.exe`
(x86_64-pc-windows-gnu), puts the Wine fixture `bcryptprimitives.dll` beside it, prepares a
private WINEPREFIX and exports it. Every client runs on Linux; only the server is the .exe:

  probe     how Wine reports a TCP connection its peer reset, to a Windows program
            (tests/windows/reset_probe.c, built by the script): a recv() already waiting gets
            WSAECONNRESET; after a poll Wine 8.0 reports a clean end (the defect
            gateway/src/ftp/data_end.rs covers); either way the reset connection has no peer
            (getpeername: WSAENOTCONN) while a connection ended by a FIN still has one.
  version   `--version` prints the version of the workspace.
  default   no flags: the local bucket and the certificate in the default folders under
            C:\\users\\<user>\\AppData (the bucket under Local AppData, never Roaming); curl
            uploads 30 MiB as 上传.bin over FTP, downloads it over FTPS byte for byte, lists the
            CJK name (NLST and MLSD); lftp and ftplib read it back; the bytes are on disk.
  local     tests/system/ftp_clients.py's whole local mode (ftplib's FileZilla sequence, a
            relayed client from 127.0.0.2, curl, lftp; FTP and FTPS) against the .exe, its
            bucket in a folder given as a Windows path with a space under C:\\users.
  garage    the same clients against the .exe on a Garage (tests/system/s3servers.py).
  team      `--config FILE`: one `[[user]]` on Garage with a hash from the .exe's own
            `hash-password`; the login, its home folder, `delete = false`, a wrong password.
  app       (with --app) the tray app bucketftp.exe under Wine + Xvfb: a local bucket kept in
            Roaming AppData by an earlier version (made by the server .exe) moves to Local
            AppData at the app's start and keeps its files and login; `--minimized` serves
            127.0.0.1:2048 (curl FTP up, FTPS down); a second launch exits at once and asks
            the first for its window, which without WebView2 tells the person in a message
            box what is missing and where to get it while the tray keeps serving; its icon is
            in Wine's system tray; `wineserver -k` ends every process (the tray menu, and so
            Quit, cannot be opened under Wine 8.0: Shell_NotifyIconGetRect is a stub there).
  commands  (with --app and --standin) the tray app's command table, driven through the
            window process's pipe the way the page drives it, by tests/windows/
            window_standin.c standing in for the window (BUCKETFTP_WINDOW_PROGRAM; WebView2
            cannot run here): a Garage profile saved with its secret puts it in Wine's
            Credential Manager and in no file under the app's folders; its login works over
            FTPS; stop_server and start_server close and reopen 127.0.0.1:2048; after a
            restart the profile, its secret and its login are still there; start at login
            writes and removes the value under HKCU\...\CurrentVersion\Run; deleting the
            profile removes its credential.
  cancel    the commit gate's cancel trials against the .exe on Garage, TRIALS each (10 by
            default): the client killed (curl, and a client that kills itself at its last
            byte), the data connection reset (from 127.0.0.1 and from 127.0.0.2; the relay
            carries the data of both), ABOR then the data
            closed, a TLS data stream ended without close_notify, a stall past the transfer
            timeout, the control connection closed mid-upload. Each trial must leave the
            object's old content and no multipart upload; complete uploads (FTP and FTPS)
            must still be stored.

Usage: windows_test.py --exe PATH --probe PATH [--app PATH --standin PATH] [--only SECTION,...] [--trials N]
                       [--cases TEXT,...]
Prints PASS/FAIL per check, then `N passed, N failed`; exits 1 on any failure.
"""

import argparse
import ftplib
import glob
import hashlib
import io
import json
import os
import random
import re
import secrets
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(REPO, "tests", "system"))

import ftp_clients  # noqa: E402  (tests/system)
import s3servers  # noqa: E402
from ftp_clients import MiB, R, SECRETS, TIMEOUT, out  # noqa: E402

SECTIONS = ["probe", "version", "default", "local", "garage", "team", "cancel", "app", "commands"]
CANCEL_BUCKET = "win-cancel"
UPLOAD = 20 * MiB


# ---------------------------------------------------------------------------------------------
# Wine
# ---------------------------------------------------------------------------------------------


class Wine:
    """The .exe under test and the ways to run it."""

    def __init__(self, exe, work):
        self.exe = exe
        self.prefix = os.environ.get("WINEPREFIX", "")
        # ftp_clients.Gateway runs one executable: a script that runs the .exe under Wine.
        self.launcher = os.path.join(work, "bucketftp-server-wine")
        with open(self.launcher, "w", encoding="utf-8") as f:
            f.write(f'#!/bin/sh\nexec wine "{exe}" "$@"\n')
        os.chmod(self.launcher, 0o755)

    def run(self, *args, stdin=None, timeout=180, env=None):
        return subprocess.run(
            ["wine", self.exe, *args],
            input=stdin,
            capture_output=True,
            timeout=timeout,
            env=env,
        )

    def gateway(self, args, work, want_login):
        return ftp_clients.Gateway(self.launcher, args, work, want_login)

    def user_dir(self):
        """C:\\users\\<user> of the prefix, on this machine."""
        users = os.path.join(self.prefix, "drive_c", "users")
        names = [n for n in os.listdir(users) if n not in ("Public",)] if os.path.isdir(users) else []
        return os.path.join(users, names[0]) if names else None


def unix_path(win_path):
    return ftp_clients.host_path(win_path)


def windows_path(unix):
    r = subprocess.run(["winepath", "-w", unix], capture_output=True, text=True, timeout=120)
    return r.stdout.strip()


def sha(data):
    return hashlib.sha256(data).hexdigest()


def curl(*args):
    return subprocess.run(["curl", "-sS", "--max-time", str(TIMEOUT * 3), *args], stdin=subprocess.DEVNULL, capture_output=True, timeout=TIMEOUT * 4)


def netrc_for(work, user, password):
    path = os.path.join(work, "netrc")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(f"machine 127.0.0.1 login {user} password {password}\n")
    return path


def lftp(work, user, password, port, commands):
    script = os.path.join(work, "lftp.script")
    fd = os.open(script, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(
            "set ftp:ssl-allow no\nset cmd:fail-exit yes\nset net:max-retries 1\nset net:timeout 30\n"
            f'open -u "{user}","{password}" -p {port} 127.0.0.1\n' + "".join(c + "\n" for c in commands) + "bye\n"
        )
    r = subprocess.run(["lftp", "-f", script], capture_output=True, stdin=subprocess.DEVNULL, timeout=TIMEOUT * 3, env={**os.environ, "HOME": work})
    os.unlink(script)
    return r


def text_of(r):
    return (r.stdout + r.stderr).decode("utf-8", "replace")[-800:]


# ---------------------------------------------------------------------------------------------
# probe: what a Windows program sees of a reset, under Wine
# ---------------------------------------------------------------------------------------------

PROBE_RE = re.compile(r"^bytes (\d+) end (\S+) peer (\S+) so_error (-?\d+) send0 (\S+)$", re.M)


def probe_run(probe, mode, end, nbytes):
    """Runs reset_probe.exe MODE, connects, sends `nbytes`, ends with a FIN or a reset
    (`rst`); returns the probe's findings as a dict."""
    p = subprocess.Popen(["wine", probe, mode], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        first = p.stdout.readline()
        m = re.match(r"port (\d+)", first)
        if not m:
            raise RuntimeError(f"the probe printed {first!r}")
        s = socket.create_connection(("127.0.0.1", int(m.group(1))), timeout=TIMEOUT)
        s.sendall(b"x" * nbytes)
        time.sleep(0.2)
        if end == "rst":
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.close()
        rest, _ = p.communicate(timeout=TIMEOUT)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    m = PROBE_RE.search(rest)
    if not m:
        raise RuntimeError(f"the probe printed {rest!r}")
    return {"bytes": int(m.group(1)), "end": m.group(2), "peer": m.group(3), "send0": m.group(5)}


def section_probe(wine, work, probe):
    n = 1_000_000
    fin = probe_run(probe, "poll", "fin", n)
    R.check("probe: a FIN is a clean end after every byte, and the peer is still known", fin["bytes"] == n and fin["end"] == "EOF" and fin["peer"] == "ok", str(fin))
    waiting = probe_run(probe, "block", "rst", n)
    R.check("probe: a reset is WSAECONNRESET (10054) to a recv() already waiting", waiting["end"] == "error:10054", str(waiting))
    polled = [probe_run(probe, "poll", "rst", n) for _ in range(3)]
    ends = sorted({r["end"] for r in polled})
    out(f"probe: a reset seen after a poll (an event loop's way) comes to the program as: {', '.join(ends)}"
        + ("  <- Wine turns the reset into a clean end" if "EOF" in ends else ""))
    R.check(
        "probe: a reset connection has no peer (getpeername: WSAENOTCONN 10057), whatever recv() said",
        all(r["peer"] == "error:10057" for r in polled + [waiting]),
        str(polled),
    )


# ---------------------------------------------------------------------------------------------
# version
# ---------------------------------------------------------------------------------------------


def workspace_version():
    with open(os.path.join(REPO, "Cargo.toml"), encoding="utf-8") as f:
        text = f.read()
    section = text.split("[workspace.package]", 1)[1]
    return re.search(r'^version\s*=\s*"([^"]+)"', section, re.M).group(1)


def section_version(wine, work):
    r = wine.run("--version")
    want = f"bucketftp-server {workspace_version()}"
    got = r.stdout.decode("utf-8", "replace").strip()
    R.check(f"--version prints '{want}'", r.returncode == 0 and got == want, f"exit {r.returncode}: {got!r} {r.stderr[-300:]!r}")


# ---------------------------------------------------------------------------------------------
# default folders: the local bucket under C:\users\<user>\AppData\Local
# ---------------------------------------------------------------------------------------------


LOCAL_BUCKET_RE = re.compile(r'Local bucket "([^"]+)" stored in (.+) \(embedded S3 endpoint')


def section_default(wine, work):
    home = wine.user_dir()
    R.check("the prefix has a user folder under C:\\users", home is not None, wine.prefix)
    if home is None:
        return
    for sub in ("Local", "Roaming"):
        shutil.rmtree(os.path.join(home, "AppData", sub, "BucketFTP"), ignore_errors=True)
    # Earlier versions kept the local bucket in Roaming AppData: that layout, with a file.
    roaming_data = os.path.join(home, "AppData", "Roaming", "BucketFTP", "data")
    old_file = secrets.token_bytes(MiB + 5)
    old_src = os.path.join(work, "old.bin")
    with open(old_src, "wb") as f:
        f.write(old_file)
    gw = wine.gateway(["--listen", "127.0.0.1:0", "--data-dir", windows_path(roaming_data)], work, want_login=True)
    try:
        old_login = gw.login
        r = curl("--netrc-file", netrc_for(work, *gw.login), "-T", old_src, f"ftp://127.0.0.1:{gw.port}/old.bin")
        R.check("a local bucket kept in Roaming AppData, as earlier versions did, holds old.bin", r.returncode == 0, text_of(r))
    finally:
        gw.stop()
    gw = wine.gateway(["--listen", "127.0.0.1:0"], work, want_login=True)
    try:
        printed = "".join(gw.stdout_lines)
        m = LOCAL_BUCKET_RE.search(printed)
        folder = m.group(2) if m else ""
        R.check(
            "the local bucket's default folder is under C:\\users\\<user>\\AppData\\Local (bulk data does not roam)",
            re.match(r"^C:\\users\\[^\\]+\\AppData\\Local\\BucketFTP\\", folder, re.I) is not None,
            folder or printed[-500:],
        )
        R.check("the server says it moved the bucket from Roaming to Local AppData", "Moved the local bucket from" in printed, printed[-600:])
        R.check("nothing is left of it under Roaming AppData", not os.path.exists(os.path.join(roaming_data, "local-store")))
        if gw.login is None:
            R.check("local mode prints the login", False, printed[-500:])
            return
        user, password = gw.login
        R.check("the moved bucket keeps its login", gw.login == old_login)
        old_dst = os.path.join(work, "old-dst.bin")
        r = curl("--netrc-file", netrc_for(work, user, password), "-o", old_dst, f"ftp://127.0.0.1:{gw.port}/old.bin")
        R.check("the moved bucket serves old.bin byte for byte", r.returncode == 0 and open(old_dst, "rb").read() == old_file, text_of(r))
        store = unix_path(folder) if folder else ""
        netrc = netrc_for(work, user, password)
        base = f"ftp://127.0.0.1:{gw.port}"
        name = "上传.bin"
        data = secrets.token_bytes(30 * MiB)
        src = os.path.join(work, "src.bin")
        with open(src, "wb") as f:
            f.write(data)
        dst = os.path.join(work, "dst.bin")
        r = curl("--netrc-file", netrc, "-T", src, base + "/" + urllib.parse.quote(name))
        R.check("curl uploads 30 MiB as 上传.bin over FTP", r.returncode == 0, text_of(r))
        r = curl("--netrc-file", netrc, "--ssl-reqd", "-k", "-o", dst, base + "/" + urllib.parse.quote(name))
        got = open(dst, "rb").read() if os.path.exists(dst) else b""
        R.check("curl downloads it over FTPS byte for byte", r.returncode == 0 and got == data, text_of(r))
        r = curl("--netrc-file", netrc, "--ssl-reqd", "-k", "--list-only", base + "/")
        R.check("curl --list-only (NLST, FTPS) lists 上传.bin", r.returncode == 0 and name in r.stdout.decode("utf-8", "replace").split(), text_of(r))
        ftp, _ = ftp_clients.connect(gw.port, user, password)
        try:
            listed = dict(ftp.mlsd("/"))
            R.check("ftplib MLSD lists 上传.bin with its size", listed.get(name, {}).get("size") == str(len(data)), str(listed)[:300])
            buf = bytearray()
            ftp.retrbinary(f"RETR /{name}", buf.extend)
            R.check("ftplib (FTPS) downloads it byte for byte", bytes(buf) == data)
        finally:
            try:
                ftp.quit()
            except ftplib.all_errors:
                ftp.close()
        os.makedirs(os.path.join(work, "lftp-dst"), exist_ok=True)
        r = lftp(work, user, password, gw.port, [f'get "/{name}" -o "{os.path.join(work, "lftp-dst", "x.bin")}"'])
        lg = os.path.join(work, "lftp-dst", "x.bin")
        R.check("lftp downloads it byte for byte", r.returncode == 0 and os.path.exists(lg) and open(lg, "rb").read() == data, text_of(r))
        on_disk = []
        for root, _dirs, files in os.walk(store or "/nonexistent"):
            for fn in files:
                p = os.path.join(root, fn)
                if os.path.getsize(p) == len(data):
                    on_disk.append(p)
        R.check(
            "the object's 30 MiB are in that folder on the Windows drive",
            any(sha(open(p, "rb").read()) == sha(data) for p in on_disk),
            f"{store}: {on_disk}",
        )
        roaming = os.path.join(home, "AppData", "Roaming", "BucketFTP")
        big = [os.path.join(r_, f) for r_, _d, fs in os.walk(roaming) for f in fs if os.path.getsize(os.path.join(r_, f)) > MiB]
        R.check("nothing big under Roaming AppData", not big, str(big))
        R.check("the server is still running", gw.alive(), s3servers.tail(gw.log_path, 20))
    finally:
        gw.stop()


def section_local_path(wine, work):
    """`--local DIR` and `--data-dir DIR` given as Windows paths (with a space) under
    C:\\users: the bucket's files land there, the certificate too."""
    home = wine.user_dir()
    if home is None:
        R.check("the prefix has a user folder under C:\\users", False, wine.prefix)
        return
    base = os.path.join(home, "BucketFTP test")
    shutil.rmtree(base, ignore_errors=True)
    os.makedirs(base)
    win_base = windows_path(base)
    R.check("the folder is C:\\users\\<user>\\BucketFTP test", re.match(r"^C:\\users\\[^\\]+\\BucketFTP test$", win_base, re.I) is not None, win_base)
    gw = wine.gateway(["--listen", "127.0.0.1:0", "--local", win_base + "\\store", "--data-dir", win_base + "\\data"], work, want_login=True)
    try:
        if gw.login is None:
            R.check("--local C:\\…: the server prints the login", False, "".join(gw.stdout_lines)[-500:])
            return
        user, password = gw.login
        netrc = netrc_for(work, user, password)
        url = f"ftp://127.0.0.1:{gw.port}/" + urllib.parse.quote("文件夹/数据 1.bin")
        data = secrets.token_bytes(6 * MiB + 1)
        src = os.path.join(work, "local-src.bin")
        with open(src, "wb") as f:
            f.write(data)
        r = curl("--netrc-file", netrc, "--ftp-create-dirs", "-T", src, url)
        R.check("--local C:\\…: curl uploads 文件夹/数据 1.bin", r.returncode == 0, text_of(r))
        dst = os.path.join(work, "local-dst.bin")
        r = curl("--netrc-file", netrc, "--ssl-reqd", "-k", "-o", dst, url)
        R.check("--local C:\\…: curl downloads it over FTPS byte for byte", r.returncode == 0 and open(dst, "rb").read() == data, text_of(r))
        found = [
            os.path.join(r_, f)
            for r_, _d, fs in os.walk(os.path.join(base, "store"))
            for f in fs
            if os.path.getsize(os.path.join(r_, f)) == len(data) and open(os.path.join(r_, f), "rb").read() == data
        ]
        R.check("--local C:\\…: the bytes are in that folder on the Windows drive", bool(found), base)
        certs = [f for _r, _d, fs in os.walk(os.path.join(base, "data")) for f in fs]
        R.check("--data-dir C:\\…: the FTPS certificate is kept there", bool(certs), str(certs))
    finally:
        gw.stop()
        shutil.rmtree(base, ignore_errors=True)


# ---------------------------------------------------------------------------------------------
# tests/system/ftp_clients.py against the .exe
# ---------------------------------------------------------------------------------------------


def section_local(wine, work):
    """ftp_clients.py's local mode (its checks are prefixed `[local]`)."""
    ftp_clients.mode_local(wine.launcher, work)


def section_garage(wine, work):
    """ftp_clients.py's Garage mode (its checks are prefixed `[garage]`)."""
    ftp_clients.mode_garage(wine.launcher, work)


# ---------------------------------------------------------------------------------------------
# --config: a team server with one user
# ---------------------------------------------------------------------------------------------


def section_team(wine, work, garage):
    password = "team pass " + secrets.token_hex(6)
    SECRETS.add(password)
    r = wine.run("hash-password", stdin=(password + "\n").encode())
    hashed = r.stdout.decode("utf-8", "replace").strip()
    R.check("hash-password (the .exe, password on stdin) prints an argon2id hash", r.returncode == 0 and hashed.startswith("$argon2id$"), text_of(r))
    if not hashed.startswith("$argon2id$"):
        return
    bucket = "win-team"
    garage.create_bucket(bucket)
    s3 = s3servers.S3Client(garage.endpoint, garage.region, garage.access_key, garage.secret_key)
    base = 51000 + secrets.randbelow(90) * 100
    cfg = os.path.join(work, "bucketftp.toml")
    with open(cfg, "w", encoding="utf-8") as f:
        f.write(
            f"""[server]
listen = "127.0.0.1:0"
passive_ports = "{base}-{base + 99}"
log_level = "info"

[[storage]]
name = "garage"
endpoint = "{garage.endpoint}"
region = "{garage.region}"
path_style = true
access_key_id = "{garage.access_key}"
secret_access_key_env = "BUCKETFTP_WINE_TEST_SECRET"

[[user]]
name = "alice"
password_hash = "{hashed}"
storage = "garage"
bucket = "{bucket}"
home = "team/alice/"
permissions = "rw"
delete = false
"""
        )
    os.environ["BUCKETFTP_WINE_TEST_SECRET"] = garage.secret_key
    gw = wine.gateway(["--config", cfg, "--data-dir", os.path.join(work, "team-data")], work, want_login=False)
    try:
        ftp, _ = ftp_clients.connect(gw.port, "alice", password)
        try:
            data = secrets.token_bytes(3 * MiB + 5)
            resp = ftp_clients.stor_via(ftp, "EPSV", "STOR 报告.bin", data)
            R.check("team user alice: STOR 报告.bin over FTPS -> 226", resp.startswith("226"), resp)
            R.check("team user alice: it is in her home folder in the bucket", s3.get_object(bucket, "team/alice/报告.bin") == data)
            R.check("team user alice: MLSD / lists it", "报告.bin" in dict(ftp.mlsd("/")))
            R.check("team user alice: RETR is the same", ftp_clients.retr_via(ftp, "EPSV", "RETR 报告.bin") == data)
            ftp_clients.expect_error("team user alice: DELE refused (delete = false)", "550", ftp.delete, "报告.bin")
        finally:
            try:
                ftp.quit()
            except ftplib.all_errors:
                ftp.close()
        try:
            bad, _ = ftp_clients.connect(gw.port, "alice", "wrong " + secrets.token_hex(4))
            bad.close()
            R.check("team: a wrong password is refused", False, "logged in")
        except ftplib.error_perm as e:
            R.check("team: a wrong password is refused (530)", str(e).startswith("530"), str(e))
        try:
            other, _ = ftp_clients.connect(gw.port, f"{garage.access_key}/{bucket}", garage.secret_key)
            other.close()
            R.check("team: ACCESS_KEY_ID/bucket logins are off (key_login = false)", False, "logged in")
        except ftplib.error_perm as e:
            R.check("team: ACCESS_KEY_ID/bucket logins are off (530)", str(e).startswith("530"), str(e))
        R.check("team: the server is still running", gw.alive(), s3servers.tail(gw.log_path, 20))
    finally:
        gw.stop()
        os.environ.pop("BUCKETFTP_WINE_TEST_SECRET", None)


# ---------------------------------------------------------------------------------------------
# Cancel trials
# ---------------------------------------------------------------------------------------------


class Raw:
    """An FTP control connection driven command by command."""

    def __init__(self, port, source="127.0.0.1"):
        self.source = source
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT, source_address=(source, 0))
        self.buf = b""
        self.ctx = None
        code, text = self.reply()
        if code != 220:
            raise RuntimeError(f"greeting: {text}")

    def line(self):
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError("the control connection closed")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line.decode("utf-8", "replace")

    def reply(self):
        first = self.line()
        lines = [first]
        if first[3:4] == "-":
            while True:
                line = self.line()
                lines.append(line)
                if line[:3] == first[:3] and line[3:4] == " ":
                    break
        return int(first[:3]), "\n".join(lines)

    def send(self, line):
        self.sock.sendall(line.encode("utf-8") + b"\r\n")

    def cmd(self, line, want=None):
        self.send(line)
        code, text = self.reply()
        if want is not None and code not in want:
            raise RuntimeError(f"{line.split()[0]}: {text}")
        return code, text

    def auth_tls(self):
        self.cmd("AUTH TLS", (234,))
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        self.sock = ctx.wrap_socket(self.sock, server_hostname="127.0.0.1")
        self.ctx = ctx
        return self

    def login(self, user, password):
        self.cmd(f"USER {user}", (331,))
        self.cmd(f"PASS {password}", (230,))
        self.cmd("TYPE I", (200,))
        if self.ctx:
            self.cmd("PBSZ 0", (200,))
            self.cmd("PROT P", (200,))
        return self

    def data(self, command):
        _code, text = self.cmd("EPSV", (229,))
        port = int(re.search(r"\(\|\|\|(\d+)\|\)", text).group(1))
        d = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT, source_address=(self.source, 0))
        self.cmd(command, (125, 150))
        if self.ctx:
            d = self.ctx.wrap_socket(d, server_hostname="127.0.0.1", session=self.sock.session)
        return d

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def reset(sock):
    """Closes with a reset (RST) instead of a FIN."""
    try:
        raw = sock
        if isinstance(sock, ssl.SSLSocket):
            raw = socket.socket(fileno=sock.detach())
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        raw.close()
    except OSError:
        pass


def send_upto(d, body, cut):
    sent = 0
    try:
        while sent < cut:
            n = min(cut - sent, MiB)
            d.sendall(body[sent : sent + n])
            sent += n
    except OSError:
        pass
    return sent


class Audit:
    """Follows the gateway's audit log: the outcome of each finished upload, by path."""

    def __init__(self, path):
        self.path = path
        self.pos = 0
        self.seen = {}

    def _read(self):
        if not os.path.exists(self.path):
            return
        with open(self.path, "rb") as f:
            f.seek(self.pos)
            chunk = f.read()
        done = chunk.rfind(b"\n") + 1
        self.pos += done
        for raw in chunk[:done].splitlines():
            try:
                line = json.loads(raw)
            except ValueError:
                continue
            if line.get("event") == "transfer" and line.get("direction") == "upload":
                self.seen[line.get("path")] = line

    def wait(self, path, timeout=60):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._read()
            if path in self.seen:
                return self.seen.pop(path)
            time.sleep(0.05)
        return None


KILL_AT_LAST_BYTE = r"""
import os, re, signal, socket, sys
port, user, password, key, cut, path = sys.argv[1:7]
c = socket.create_connection(("127.0.0.1", int(port)))
buf = b""
def reply():
    global buf
    while True:
        while b"\r\n" not in buf:
            more = c.recv(4096)
            if not more:
                sys.exit(3)
            buf += more
        line, buf = buf.split(b"\r\n", 1)
        if line[3:4] == b" ":
            return line.decode()
def cmd(text):
    c.sendall(text.encode() + b"\r\n")
    return reply()
reply()
cmd("USER " + user)
cmd("PASS " + password)
cmd("TYPE I")
port = int(re.search(r"\(\|\|\|(\d+)\|\)", cmd("EPSV")).group(1))
d = socket.create_connection(("127.0.0.1", port))
if not cmd("STOR " + key).startswith(("125", "150")):
    sys.exit(4)
with open(path, "rb") as f:
    d.sendall(f.read(int(cut)))
os.kill(os.getpid(), signal.SIGKILL)
"""


class CancelEnv:
    def __init__(self, wine, work, garage):
        self.garage = garage
        self.s3 = s3servers.S3Client(garage.endpoint, garage.region, garage.access_key, garage.secret_key)
        garage.create_bucket(CANCEL_BUCKET)
        self.user = f"{garage.access_key}/{CANCEL_BUCKET}"
        self.password = garage.secret_key
        self.audit = Audit(os.path.join(work, "audit.jsonl"))
        base = 52000 + secrets.randbelow(90) * 100
        self.gw = wine.gateway(
            [
                "--listen", "127.0.0.1:0",
                "--data-dir", os.path.join(work, "cancel-data"),
                "--endpoint", garage.endpoint,
                "--region", garage.region,
                "--path-style",
                "--passive-ports", f"{base}-{base + 99}",
                "--part-size", "5MiB",
                "--transfer-timeout", "2",
                "--audit-log", self.audit.path,
                "--log-level", "info",
            ],
            work,
            want_login=False,
        )
        self.body = secrets.token_bytes(UPLOAD)
        self.body_path = os.path.join(work, "cancel-body.bin")
        with open(self.body_path, "wb") as f:
            f.write(self.body)
        self.netrc = netrc_for(work, self.user, self.password)

    def login(self, tls=False, source="127.0.0.1"):
        raw = Raw(self.gw.port, source)
        if tls:
            raw.auth_tls()
        return raw.login(self.user, self.password)

    def uploads_of(self, key):
        """The multipart uploads of `key`, asked again for up to 5 s (aborts run after the reply)."""
        left = []
        for _ in range(50):
            left = [u for u in self.s3.list_multipart_uploads(CANCEL_BUCKET) if u[0] == key]
            if not left:
                return []
            time.sleep(0.1)
        return left


def run_case(env, case, i, rng):
    key = f"{re.sub(r'[^a-z0-9]+', '-', case.lower()).strip('-')}-{i}.bin"
    old = f"old content of {key}".encode()
    status, _h, body = env.s3.request("PUT", CANCEL_BUCKET, key, body=old)
    if status != 200:
        return False, f"could not put the old object: HTTP {status} {body[:200]!r}"
    cut = rng.randrange(0, UPLOAD)
    note = f"cut at {cut}"
    problem = None
    if case == "killed (curl, SIGKILL)":
        url = f"ftp://127.0.0.1:{env.gw.port}/{key}"
        p = subprocess.Popen(
            ["curl", "-v", "-sS", "--limit-rate", "10M", "--netrc-file", env.netrc, "-T", env.body_path, url],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        started = threading.Event()

        def watch():
            for line in p.stderr:
                if line.startswith((b"< 150", b"< 125")):
                    started.set()
            started.set()

        threading.Thread(target=watch, daemon=True).start()
        if not started.wait(TIMEOUT) or p.poll() is not None:
            p.kill()
            p.wait()
            return False, "curl never started its upload"
        delay = rng.uniform(0, 1.5)
        time.sleep(delay)
        p.kill()
        p.wait()
        note = f"killed {delay:.2f} s after 150"
    elif case == "killed at its last byte":
        cut = rng.randrange(0, 8 * MiB)
        note = f"cut at {cut}"
        r = subprocess.run(
            [sys.executable, "-c", KILL_AT_LAST_BYTE, str(env.gw.port), env.user, env.password, key, str(cut), env.body_path],
            capture_output=True,
            timeout=TIMEOUT * 2,
        )
        if r.returncode != -signal.SIGKILL:
            return False, f"the client did not get as far as killing itself: exit {r.returncode} {r.stderr[-300:]!r}"
    else:
        tls = case == "TLS data without close_notify"
        source = "127.0.0.2" if "127.0.0.2" in case else "127.0.0.1"
        ctl = env.login(tls=tls, source=source)
        try:
            d = ctl.data(f"STOR {key}")
            sent = send_upto(d, env.body, cut)
            note = f"cut at {sent}"
            if case.startswith("data connection reset"):
                reset(d)
                code, text = ctl.reply()
                if code == 226:
                    problem = f"the reset upload got 226: {text}"
            elif case == "ABOR then data closed":
                ctl.send("ABOR")
                time.sleep(rng.uniform(0, 0.02))
                try:
                    d.shutdown(socket.SHUT_WR)
                except OSError:
                    pass  # the server may have ended the data connection first
                d.close()
                c1, t1 = ctl.reply()
                c2, t2 = ctl.reply()
                if not ({c1, c2} & {426, 451}):
                    problem = f"no failure reply after ABOR: {t1} / {t2}"
            elif tls:
                # SSLSocket.shutdown() drops the TLS layer first: a FIN without close_notify.
                try:
                    d.shutdown(socket.SHUT_WR)
                except OSError:
                    pass
                code, text = ctl.reply()
                d.close()
                if code == 226:
                    problem = f"the upload without close_notify got 226: {text}"
            elif case == "stall past the transfer timeout":
                code, text = ctl.reply()
                reset(d)
                if code not in (426, 451):
                    problem = f"stalled upload: {text}"
            elif case == "control connection closed":
                ctl.close()
                more = min(UPLOAD - sent, 4 * MiB)
                send_upto(d, env.body[sent:], more)
                try:
                    d.shutdown(socket.SHUT_WR)
                except OSError:
                    pass
                d.close()
        finally:
            ctl.close()
    line = env.audit.wait(f"/{key}")
    content = env.s3.get_object(CANCEL_BUCKET, key)
    left = env.uploads_of(key)
    if line is None:
        problem = problem or "the gateway logged no end of this upload within 60 s"
    elif line.get("outcome") == "ok":
        problem = problem or f"the upload was stored ({line.get('bytes')} bytes)"
    if content != old:
        problem = problem or f"the object changed ({len(content or b'')} bytes)"
    if left:
        problem = problem or f"multipart uploads left: {left}"
    return problem is None, f"{note}; {problem}" if problem else note


CASES = [
    "killed (curl, SIGKILL)",
    "killed at its last byte",
    "data connection reset",
    "data connection reset (from 127.0.0.2, relayed)",
    "ABOR then data closed",
    "TLS data without close_notify",
    "stall past the transfer timeout",
    "control connection closed",
]


def complete_upload(env, tls, i, rng):
    key = f"complete-{'tls' if tls else 'plain'}-{i}.bin"
    size = rng.randrange(0, 12 * MiB)
    ctl = env.login(tls=tls)
    try:
        d = ctl.data(f"STOR {key}")
        d.sendall(env.body[:size])
        if tls:
            d.unwrap()
        d.close()
        code, text = ctl.reply()
    finally:
        ctl.close()
    stored = env.s3.get_object(CANCEL_BUCKET, key)
    return code == 226 and stored == env.body[:size], f"{size} bytes: {text}; stored {len(stored or b'')}"


def section_cancel(wine, work, garage, trials, cases=None):
    R.check(f"cancel: {trials} trials per case (at least one)", trials >= 1)
    env = CancelEnv(wine, work, garage)
    rng = random.Random(int.from_bytes(secrets.token_bytes(4), "big"))
    try:
        for tls in (False, True):
            for i in range(3):
                ok, detail = complete_upload(env, tls, i, rng)
                R.check(f"complete {'FTPS' if tls else 'FTP'} upload {i + 1} is stored (226, same bytes)", ok, detail)
        for case in CASES:
            if cases and not any(c in case for c in cases):
                continue
            bad = 0
            for i in range(trials):
                try:
                    ok, detail = run_case(env, case, i, rng)
                except Exception as e:  # noqa: BLE001 - one trial's failure, the rest go on
                    ok, detail = False, f"{type(e).__name__}: {e}"
                bad += 0 if ok else 1
                R.check(f"cancel: {case}, trial {i + 1}/{trials}: old object kept, no multipart upload", ok, detail)
            out(f"cancel: {case}: {trials - bad} of {trials} trials clean")
        R.check("cancel: the server is still running", env.gw.alive(), s3servers.tail(env.gw.log_path, 20))
    finally:
        env.gw.stop()


# ---------------------------------------------------------------------------------------------
# The tray app under Wine + Xvfb
# ---------------------------------------------------------------------------------------------

APP_PORT = 2048


def start_xvfb(work):
    """Xvfb on a free display: (process, ":N")."""
    r, w = os.pipe()
    log = open(os.path.join(work, "xvfb.log"), "wb")
    p = subprocess.Popen(
        ["Xvfb", "-displayfd", str(w), "-screen", "0", "1280x900x24", "-nolisten", "tcp"],
        pass_fds=(w,),
        stdout=log,
        stderr=log,
    )
    os.close(w)
    number = b""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not number.endswith(b"\n"):
        chunk = os.read(r, 16)
        if not chunk:
            break
        number += chunk
    os.close(r)
    if not number.strip():
        p.kill()
        raise RuntimeError("Xvfb did not start")
    return p, ":" + number.decode().strip()


def greeting(port, timeout):
    """The FTP greeting on 127.0.0.1:port, waiting up to `timeout` s for it; None if none."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
                line = s.recv(200).decode("utf-8", "replace")
                if line.startswith("220"):
                    return line.strip()
        except OSError:
            pass
        time.sleep(0.5)
    return None


def app_processes():
    """Command lines of the Wine processes of bucketftp.exe still running."""
    r = subprocess.run(["pgrep", "-af", "bucketftp.exe"], capture_output=True, text=True)
    return [line for line in r.stdout.splitlines() if "pgrep" not in line and "bucketftp-server" not in line]


def x_windows(display, name):
    r = subprocess.run(["xdotool", "search", "--name", name], capture_output=True, text=True, env={**os.environ, "DISPLAY": display})
    return r.stdout.split()


def section_app(wine, work, app_exe):
    home = wine.user_dir()
    if home is None:
        R.check("app: the prefix has a user folder", False)
        return
    roaming = os.path.join(home, "AppData", "Roaming", "BucketFTP")
    local = os.path.join(home, "AppData", "Local", "BucketFTP")
    for d in (roaming, local):
        shutil.rmtree(d, ignore_errors=True)
    # An earlier version kept the local bucket in Roaming AppData: the server .exe makes that
    # layout with --data-dir, and stores a file in it.
    old_file = secrets.token_bytes(MiB + 17)
    src = os.path.join(work, "old.bin")
    with open(src, "wb") as f:
        f.write(old_file)
    gw = wine.gateway(["--listen", "127.0.0.1:0", "--data-dir", windows_path(os.path.join(roaming, "data"))], work, want_login=True)
    try:
        user, password = gw.login
        r = curl("--netrc-file", netrc_for(work, user, password), "-T", src, f"ftp://127.0.0.1:{gw.port}/" + urllib.parse.quote("旧文件.bin"))
        R.check("app: a local bucket in Roaming AppData, as earlier versions kept it, holds 旧文件.bin", r.returncode == 0, text_of(r))
    finally:
        gw.stop()
    old_store = os.path.join(roaming, "data", "local-store")
    # A Wine session started without a display (every section before this one) keeps its
    # windows off-screen: the app starts a new one, on Xvfb.
    subprocess.run(["wineserver", "-k"], capture_output=True, timeout=60)
    subprocess.run(["wineserver", "-w"], capture_output=True, timeout=60)

    xvfb, display = start_xvfb(work)
    env = {**os.environ, "DISPLAY": display}
    log_path = os.path.join(work, "app.log")
    log = open(log_path, "wb")
    app = subprocess.Popen(["wine", app_exe, "--minimized"], stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        hello = greeting(APP_PORT, 120)
        R.check(f"app: bucketftp.exe --minimized serves FTP on 127.0.0.1:{APP_PORT}", hello is not None, s3servers.tail(log_path, 30))
        if hello is None:
            return
        trays = []
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not trays:
            trays = x_windows(display, "Wine System Tray")
            time.sleep(0.5)
        R.check("app: its icon is in Wine's system tray", bool(trays))
        creds_path = os.path.join(local, "data", "local-store", "local-credentials.json")
        R.check(
            "app: the local bucket moved from Roaming to Local AppData at start",
            os.path.isfile(creds_path) and not os.path.exists(old_store),
            f"Local: {os.path.exists(creds_path)}, Roaming still there: {os.path.exists(old_store)}",
        )
        if not os.path.isfile(creds_path):
            return
        with open(creds_path, encoding="utf-8") as f:
            creds = json.load(f)
        SECRETS.add(creds["secret_access_key"])
        netrc = netrc_for(work, f"{creds['access_key_id']}/local", creds["secret_access_key"])
        base = f"ftp://127.0.0.1:{APP_PORT}/"
        dst = os.path.join(work, "app-dst.bin")
        r = curl("--netrc-file", netrc, "--ssl-reqd", "-k", "-o", dst, base + urllib.parse.quote("旧文件.bin"))
        R.check(
            "app: the moved bucket keeps its login and serves the file stored before the move (FTPS)",
            r.returncode == 0 and open(dst, "rb").read() == old_file,
            text_of(r),
        )
        data = secrets.token_bytes(5 * MiB + 3)
        src2 = os.path.join(work, "app-src.bin")
        with open(src2, "wb") as f:
            f.write(data)
        r1 = curl("--netrc-file", netrc, "-T", src2, base + "app%20round%20trip.bin")
        r2 = curl("--netrc-file", netrc, "--ssl-reqd", "-k", "-o", dst, base + "app%20round%20trip.bin")
        R.check("app: curl round trip on 127.0.0.1:2048 (FTP up, FTPS down, byte for byte)", r1.returncode == r2.returncode == 0 and open(dst, "rb").read() == data, text_of(r1) + text_of(r2))
        on_disk = os.path.join(local, "data", "local-store", "local", "app round trip.bin")
        R.check("app: the new file is under Local AppData", os.path.isfile(on_disk) and os.path.getsize(on_disk) == len(data), on_disk)

        # A second launch: exits at once, and asks the first one for its window.
        t0 = time.monotonic()
        second = subprocess.run(["wine", app_exe], stdin=subprocess.DEVNULL, capture_output=True, env=env, timeout=120)
        took = time.monotonic() - t0
        R.check(f"app: a second launch exits at once (exit {second.returncode}, {took:.1f} s)", second.returncode == 0 and took < 20, text_of(second))
        # The first has no WebView2 to show a window with: it says so, in words, on screen.
        told = False
        boxes = []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not (told and boxes):
            with open(log_path, "rb") as f:
                text = f.read().decode("utf-8", "replace")
            told = "WebView2" in text and "https://developer.microsoft.com/microsoft-edge/webview2/" in text
            boxes = x_windows(display, "^BucketFTP$")
            time.sleep(0.5)
        R.check("app: without WebView2 the first instance says what is missing and where to get it", told, s3servers.tail(log_path, 20))
        R.check("app: ... in a message box titled BucketFTP on the screen", bool(boxes), str(boxes))
        shot = os.environ.get("BUCKETFTP_WINE_SCREENSHOT")
        if shot:
            subprocess.run(["import", "-window", "root", shot], env=env, capture_output=True)
        for w in boxes:
            subprocess.run(["xdotool", "key", "--window", w, "Return"], env=env, capture_output=True)
        R.check("app: the tray keeps serving while and after it says so", greeting(APP_PORT, 10) is not None)
        R.check("app: the server is still the first instance's", app.poll() is None)

        # The tray menu (Start/Stop, Quit) cannot be opened under Wine 8.0: its
        # Shell_NotifyIconGetRect is a stub, and tray-icon drops a click whose icon rectangle
        # it cannot get. Quit is checked on Linux (tests/desktop/tray.py); on Windows it is
        # the windows-2022 job's. Here the prefix's processes are ended the way Wine ends them.
        out("app: NOTE the tray menu's Quit is not reachable under Wine 8.0 (Shell_NotifyIconGetRect is a stub); ending the prefix with wineserver -k")
        subprocess.run(["wineserver", "-k"], capture_output=True, timeout=60)
        try:
            app.wait(30)
        except subprocess.TimeoutExpired:
            pass
        R.check("app: wineserver -k ends the app", app.poll() is not None)
        R.check("app: afterwards nothing serves 127.0.0.1:2048", greeting(APP_PORT, 2) is None)
        left = app_processes()
        R.check("app: afterwards no bucketftp.exe process is left", not left, str(left))
    finally:
        if app.poll() is None:
            app.kill()
            app.wait()
        subprocess.run(["wineserver", "-k"], capture_output=True)
        xvfb.kill()
        xvfb.wait()
        log.close()


class StandIn:
    """The test's end of tests/windows/window_standin.c: the tray's window process, as seen
    from the tray. `call` sends one call of the command table as the page makes it and waits
    for its reply; events on the way are kept in `events`."""

    def __init__(self, listener, timeout):
        listener.settimeout(timeout)
        self.sock, _ = listener.accept()
        self.sock.settimeout(60)
        self.buf = b""
        self.next_id = 1
        self.events = []

    def line(self):
        while b"\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError("the tray closed the window's pipe")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return line.decode("utf-8", "replace").strip()

    def call(self, cmd, **args):
        """(ok, value): the reply's `Ok` or `Err`."""
        n = self.next_id
        self.next_id += 1
        self.sock.sendall((json.dumps({"t": "call", "id": n, "cmd": cmd, "args": args}) + "\n").encode())
        while True:
            text = self.line()
            if not text.startswith("{"):
                continue
            msg = json.loads(text)
            if msg.get("t") == "event":
                self.events.append(msg.get("name"))
            elif msg.get("t") == "reply" and msg.get("id") == n:
                result = msg.get("result", {})
                return ("Ok" in result, result.get("Ok", result.get("Err")))

    def close(self):
        self.sock.close()


RUN_KEY = "HKCU\\Software\\Microsoft\\Windows\\CurrentVersion\\Run"
MACHINE_RUN_KEY = "HKLM\\Software\\Microsoft\\Windows\\CurrentVersion\\Run"
CRED_KEY = "HKCU\\Software\\Wine\\Credential Manager"


def reg_query(key):
    r = subprocess.run(["wine", "reg", "query", key, "/s"], capture_output=True, timeout=120)
    return r.returncode, r.stdout.decode("utf-8", "replace")


def run_value(key_text):
    """The Run key's value that starts bucketftp.exe, if any (its line)."""
    return [line.strip() for line in key_text.splitlines() if "bucketftp.exe" in line.lower()]


def files_holding_file(path, needle):
    """Whether the file at `path` holds `needle` (UTF-8 or UTF-16-LE)."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError:
        return False
    return needle.encode() in data or needle.encode("utf-16-le") in data


def files_holding(root, needle):
    """Files under `root` whose bytes contain `needle` (UTF-8 or UTF-16-LE)."""
    found = []
    for d, _, names in os.walk(root):
        found += [os.path.join(d, n) for n in names if files_holding_file(os.path.join(d, n), needle)]
    return found


def section_commands(wine, work, app_exe, standin_exe, garage):
    """The tray app's command table under Wine, driven through the window process's pipe
    (tests/windows/window_standin.c in its place: BUCKETFTP_WINDOW_PROGRAM), the way the
    page drives it: a profile's secret goes into Wine's Credential Manager and no file,
    survives a restart, and its login works; start at login writes and removes the Run
    value; Stop and Start stop and start the FTP server."""
    home = wine.user_dir()
    if home is None:
        R.check("commands: the prefix has a user folder", False)
        return
    bucket = "win-profile"
    garage.create_bucket(bucket)
    s3 = s3servers.S3Client(garage.endpoint, garage.region, garage.access_key, garage.secret_key)
    subprocess.run(["wineserver", "-k"], capture_output=True, timeout=60)
    subprocess.run(["wineserver", "-w"], capture_output=True, timeout=60)
    # A first start: no settings or profiles of an earlier run, start at login off.
    app_dirs = [os.path.join(home, "AppData", "Roaming", "BucketFTP"), os.path.join(home, "AppData", "Local", "BucketFTP")]
    for d in app_dirs:
        shutil.rmtree(d, ignore_errors=True)
    for key in (RUN_KEY, MACHINE_RUN_KEY):
        subprocess.run(["wine", "reg", "delete", key, "/v", "BucketFTP", "/f"], capture_output=True, timeout=120)
    xvfb, display = start_xvfb(work)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(4)
    env = {
        **os.environ,
        "DISPLAY": display,
        "BUCKETFTP_WINDOW_PROGRAM": windows_path(standin_exe),
        "BUCKETFTP_STANDIN_PORT": str(listener.getsockname()[1]),
    }
    logs = []
    apps = []

    def launch(name):
        log_path = os.path.join(work, f"{name}.log")
        logs.append(log_path)
        log = open(log_path, "wb")
        app = subprocess.Popen(["wine", app_exe, "--minimized"], stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env)
        log.close()
        apps.append(app)
        return app, log_path

    def open_window():
        """A second launch asks the first for its window: the stand-in connects."""
        second = subprocess.run(["wine", app_exe], stdin=subprocess.DEVNULL, capture_output=True, env=env, timeout=120)
        if second.returncode != 0:
            raise RuntimeError(f"second launch: exit {second.returncode}: {text_of(second)}")
        return StandIn(listener, 60)

    def ftp_round_trip(user, password, name):
        data = secrets.token_bytes(3 * MiB + 11)
        ftp, _ = ftp_clients.connect(APP_PORT, user, password)
        try:
            ftp.storbinary(f"STOR {name}", io.BytesIO(data))
            got = bytearray()
            ftp.retrbinary(f"RETR {name}", got.extend)
        finally:
            try:
                ftp.quit()
            except Exception:  # noqa: BLE001
                ftp.close()
        return bytes(got) == data and s3.get_object(bucket, name) == data

    win = None
    try:
        app, log_path = launch("commands-app")
        if greeting(APP_PORT, 120) is None:
            R.check(f"commands: the app serves 127.0.0.1:{APP_PORT}", False, s3servers.tail(log_path, 30))
            return
        try:
            win = open_window()
        except (OSError, RuntimeError) as e:
            R.check("commands: a second launch starts the window process (the stand-in), which reaches the tray", False, f"{e}; " + s3servers.tail(log_path, 20))
            return
        R.check("commands: a second launch starts the window process (the stand-in), which reaches the tray", win.sock is not None)

        ok, settings = win.call("get_settings")
        R.check("commands: get_settings (start at login off at first)", ok and isinstance(settings, dict) and settings.get("start_at_login") is False, str(settings)[:300])
        if not ok:
            return
        settings["start_at_login"] = True
        ok, v = win.call("save_settings", settings=settings)
        R.check("commands: save_settings with start at login on", ok, str(v)[:300])
        rc, text = reg_query(RUN_KEY)
        R.check(f"commands: start at login writes a value starting bucketftp.exe under {RUN_KEY}", rc == 0 and bool(run_value(text)), text[-500:])
        R.check("commands: ... with --minimized", any("--minimized" in v for v in run_value(text)), str(run_value(text)))
        R.check("commands: ... its path in quotes (a path with a space is one program)", any(re.search(r'REG_SZ\s+"[^"]+bucketftp\.exe"', v, re.I) for v in run_value(text)), str(run_value(text)))
        rc, text = reg_query(MACHINE_RUN_KEY)
        R.check(f"commands: ... for this user only: nothing under {MACHINE_RUN_KEY} (Wine runs it as an administrator)", not run_value(text), text[-500:])

        profile = {
            "id": "",
            "name": "Garage under Wine",
            "provider": "custom",
            "region": garage.region,
            "endpoint": garage.endpoint,
            "addressing": "path",
            "access_key": garage.access_key,
            "secret": garage.secret_key,
            "bucket": bucket,
        }
        ok, view = win.call("save_profile", profile=profile)
        R.check("commands: save_profile (a Garage profile with its secret)", ok and bool(view.get("id")), str(view)[:300])
        if not ok:
            return
        pid = view["id"]
        rc, creds = reg_query(CRED_KEY)
        R.check(f"commands: the secret is in the Credential Manager (a credential for profile:{pid} under {CRED_KEY})", rc == 0 and f"profile:{pid}" in creds, creds[-500:])
        in_registry = [f for f in glob.glob(os.path.join(wine.prefix, "*.reg")) if files_holding_file(f, garage.secret_key)]
        R.check("commands: the Credential Manager keeps it encrypted (it is in none of the prefix's registry files)", not in_registry, str(in_registry))
        holding = [f for d in app_dirs for f in files_holding(d, garage.secret_key)]
        R.check("commands: the secret is in no file under the app's folders (Roaming and Local AppData)", not holding, str(holding))
        ok, info = win.call("connect_info", profile_id=pid)
        R.check("commands: connect_info gives the profile's login", ok and info.get("user") == f"{garage.access_key}/{bucket}" and info.get("has_secret") is True, str(info)[:300])
        user = f"{garage.access_key}/{bucket}"
        R.check("commands: the profile's login works (FTPS up and down, the object in Garage)", ftp_round_trip(user, garage.secret_key, "wine-profile-1.bin"))

        ok, v = win.call("stop_server")
        R.check("commands: stop_server", ok, str(v)[:300])
        R.check(f"commands: after Stop nothing serves 127.0.0.1:{APP_PORT}", greeting(APP_PORT, 2) is None)
        ok, v = win.call("start_server")
        R.check("commands: start_server", ok, str(v)[:300])
        R.check(f"commands: after Start 127.0.0.1:{APP_PORT} serves again", greeting(APP_PORT, 30) is not None)

        # A restart: the profile, its secret (from the Credential Manager) and its login stay.
        win.close()
        win = None
        subprocess.run(["wineserver", "-k"], capture_output=True, timeout=60)
        subprocess.run(["wineserver", "-w"], capture_output=True, timeout=60)
        app, log_path = launch("commands-app-2")
        if greeting(APP_PORT, 120) is None:
            R.check("commands: the app serves again after a restart", False, s3servers.tail(log_path, 30))
            return
        R.check("commands: after a restart the profile's login works", ftp_round_trip(user, garage.secret_key, "wine-profile-2.bin"))
        win = open_window()
        ok, profiles = win.call("list_profiles")
        mine = [p for p in (profiles or []) if p.get("id") == pid] if ok else []
        R.check("commands: after a restart the profile is listed, with its secret", bool(mine) and mine[0].get("has_secret") is True, str(profiles)[:400])
        ok, secret = win.call("reveal_secret", profile_id=pid)
        R.check("commands: after a restart its secret comes back from the Credential Manager", ok and secret == garage.secret_key)

        ok, settings = win.call("get_settings")
        settings["start_at_login"] = False
        ok, v = win.call("save_settings", settings=settings)
        rc, text = reg_query(RUN_KEY)
        R.check("commands: start at login off removes the Run value", ok and not run_value(text), text[-500:])
        leaked = [p for p in logs if files_holding_file(p, garage.secret_key)]
        R.check("commands: the secret is in neither run's log", not leaked, str(leaked))
        ok, v = win.call("delete_profile", id=pid)
        rc, creds = reg_query(CRED_KEY)
        R.check("commands: delete_profile removes its credential", ok and f"profile:{pid}" not in creds, creds[-500:])
    except (OSError, EOFError, RuntimeError, ValueError, ftplib.Error) as e:
        R.check("commands: the run went through", False, f"{type(e).__name__}: {e}; " + "".join(s3servers.tail(p, 15) for p in logs))
    finally:
        if win is not None:
            win.close()
        listener.close()
        subprocess.run(["wineserver", "-k"], capture_output=True, timeout=60)
        for app in apps:
            try:
                app.wait(30)
            except subprocess.TimeoutExpired:
                app.kill()
                app.wait()
        xvfb.kill()
        xvfb.wait()


# ---------------------------------------------------------------------------------------------


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--exe", required=True)
    p.add_argument("--probe", help="reset_probe.exe (tests/windows/reset_probe.c), for the probe section")
    p.add_argument("--app", help="bucketftp.exe, the tray app, for the app and commands sections (left out without it)")
    p.add_argument("--standin", help="window_standin.exe (tests/windows/window_standin.c), for the commands section")
    p.add_argument("--only", default="", help=f"sections, of {','.join(SECTIONS)} (default: all; app only with --app)")
    p.add_argument("--trials", type=int, default=int(os.environ.get("CANCEL_TRIALS", "10")))
    p.add_argument("--cases", default="", help="only the cancel cases whose names contain one of these (comma-separated)")
    a = p.parse_args()
    only = [s for s in a.only.split(",") if s] or [s for s in SECTIONS if s not in ("app", "commands") or a.app]
    unknown = [s for s in only if s not in SECTIONS]
    if unknown:
        p.error(f"unknown sections {unknown}; known: {SECTIONS}")
    if not os.path.isfile(a.exe):
        out(f"FAIL the .exe is not there: {a.exe}")
        out("0 passed, 1 failed")
        return 1
    tools = ["wine", "winepath", "wineserver", "curl", "lftp"] + (["Xvfb", "xdotool"] if {"app", "commands"} & set(only) else [])
    for tool in tools:
        R.check(f"{tool} is installed", shutil.which(tool) is not None)
    t0 = time.monotonic()
    work = tempfile.mkdtemp(prefix="bucketftp-wine-")
    wine = Wine(os.path.abspath(a.exe), work)
    garage = None
    try:
        for name in only:
            t = time.monotonic()
            R.prefix = f"[{name}] "
            if name in ("team", "cancel", "commands") and garage is None:
                garage = s3servers.Garage()
                SECRETS.add(garage.secret_key)
                try:
                    garage.start()
                except Exception as e:  # noqa: BLE001
                    R.check("Garage starts (tests/system/s3servers.py)", False, str(e))
                    garage = None
                    continue
            section_work = os.path.join(work, name)
            os.makedirs(section_work)
            if name == "probe":
                if a.probe and os.path.isfile(a.probe):
                    R.section(name, section_probe, wine, section_work, a.probe)
                else:
                    R.check("probe: reset_probe.exe was built (--probe)", False, str(a.probe))
            elif name == "version":
                R.section(name, section_version, wine, section_work)
            elif name == "default":
                R.section(name, section_default, wine, section_work)
                R.section("--local C:\\...", section_local_path, wine, section_work)
            elif name == "local":
                R.section(name, section_local, wine, section_work)
            elif name == "garage":
                R.section(name, section_garage, wine, section_work)
            elif name == "team":
                R.section(name, section_team, wine, section_work, garage)
            elif name == "app":
                if a.app and os.path.isfile(a.app):
                    R.section(name, section_app, wine, section_work, os.path.abspath(a.app))
                else:
                    R.check("app: bucketftp.exe was built (--app)", False, str(a.app))
            elif name == "commands":
                if not (a.app and os.path.isfile(a.app)):
                    R.check("commands: bucketftp.exe was built (--app)", False, str(a.app))
                elif not (a.standin and os.path.isfile(a.standin)):
                    R.check("commands: window_standin.exe was built (--standin)", False, str(a.standin))
                else:
                    R.section(name, section_commands, wine, section_work, os.path.abspath(a.app), os.path.abspath(a.standin), garage)
            elif name == "cancel":
                R.section(name, section_cancel, wine, section_work, garage, a.trials, [c for c in a.cases.split(",") if c])
            R.prefix = ""
            out(f"section {name} took {time.monotonic() - t:.0f} s")
    finally:
        if garage is not None:
            garage.stop()
        shutil.rmtree(work, ignore_errors=True)
    R.prefix = ""
    out(f"Windows server test took {time.monotonic() - t0:.0f} s")
    out(f"{R.passed} passed, {R.failed} failed")
    return 1 if R.failed else 0


if __name__ == "__main__":
    sys.exit(main())
