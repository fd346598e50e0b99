#!/usr/bin/env python3
"""tests/cluster/cluster_test.py — three bucketftp-server instances behind HAProxy on a 3-node
Garage cluster, all real processes on loopback, under load; one gateway and one Garage node
are killed (SIGKILL) mid-run.

The deployment shown (the README's "Many instances behind a load balancer" describes it):

  FTP clients ──control──> HAProxy LB:FTP          mode tcp, balance source (hash-type
                                                   consistent), tcp-check "220" on each gateway
                                                   ──> gw1 | gw2 | gw3
  FTP clients ──data─────> HAProxy LB:A_n-B_n      one mode-tcp frontend per gateway binding that
                                                   gateway's passive range ──> gw_n, same port
  gw1..gw3    ──S3───────> HAProxy 127.0.0.1:S3    mode http, roundrobin, GET /health on each
                                                   node's admin port ──> Garage nodes 1..3
                                                   (replication factor 3, zones dc1..dc3)

Each gateway runs with `--passive-ports A_n-B_n --masquerade LB`: its passive replies name the
load balancer and a port of its own range, and the load balancer forwards that range to that
gateway only, so a data connection reaches the gateway holding the session. HAProxy starts
every connection it makes to a gateway, control and data, with a PROXY protocol v2 header
naming the client (`send-proxy-v2`; the gateways run with `proxy_protocol = true` and believe
headers from HAProxy's inside address only): the gateways' limits, lockout and audit log see
each client's own address, and a data connection is taken only when its header names its
control connection's client (a client dialing a gateway's passive port directly is refused).
The audit logs are checked for it at the end. Nothing else is shared: the gateways keep no
state of their own; the store is the distributed part.

On loopback: LB = 127.0.0.2 stands for the load balancer's public address (Linux routes all of
127/8 to lo) and HAProxy connects to the gateways from 127.0.0.3 (`source`), as a load balancer
on another host would: the gateways see a non-local peer, relay their data connections and
take headers from 127.0.0.3 only, exactly as in production. Client N binds its control
connection to 127.0.0.(10+N) so that `balance source` spreads the clients. The gateways listen
on 127.0.0.1, Garage's ports and the S3 frontend too; every port is chosen free at runtime
(the passive ranges below the kernel's ephemeral range).

The run: 30 sessions (threads) upload (4 KiB .. 20 MiB of random bytes, paced like a real
client; the larger ones multipart with the 8 MiB default part size), download earlier uploads
(SHA-256 compared) and list their folder for LOAD_SECS. At ~KILL_GW_AT s the gateway with a
multipart upload in flight is killed, KILL_GARAGE_AFTER s later a Garage node. A failed
operation is retried as a whole with a fresh session through HAProxy (at most MAX_ATTEMPTS;
an upload under a new name, see worker()). Then: every upload that got 226 is read back
through a fresh FTP session and straight from Garage; the bucket holds those objects and,
at the names of interrupted uploads, nothing or (when the store completed the upload just
before the kill cut off its 226) the whole object, never a part; and the killed gateway,
restarted with `--abort-stale-uploads 10s`, aborts the multipart uploads it left once
someone logs in. Failed sessions' last control lines go to transcripts.txt, every operation
to ops.jsonl, in the log dir.

Usage: cluster_test.py [-v]     (binary: $BUCKETFTP_BIN, else $CARGO_TARGET_DIR or
                                <repo>/target, /debug/bucketftp-server; builds nothing)
Needs garage (as tests/system/s3servers.py finds it) and haproxy (scripts/install-test-deps.sh).
Logs (garage nodes, haproxy, gateways) stay in <repo>/target/cluster/run-*/ (the last 5 runs).
Prints one line per check, the counts, then `N passed, N failed`; exits 1 on any failure.
Python stdlib only. Never prints the secret key.
"""

import argparse
import collections
import csv
import json
import ftplib
import hashlib
import io
import os
import random
import re
import secrets
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(REPO, "tests", "system"))

import ftp_clients as fc  # noqa: E402  (Results, find_binary, out, SECRETS)
import s3servers  # noqa: E402  (GarageCluster, S3Client, free_port, tail)

LB = "127.0.0.2"  # the load balancer's "public" address: FTP + passive frontends
LB_INSIDE = "127.0.0.3"  # the address HAProxy connects to the gateways from
CLIENT_BASE = 10  # client n binds 127.0.0.(10+n)
OPERATOR = "127.0.0.9"  # the client the janitor step's direct session names in its PROXY header
VERIFY_BASE = 100  # verification sessions bind 127.0.0.(100+n)
GATEWAYS = 3
SESSIONS = 30
LOAD_SECS = 40
KILL_GW_AT = 12  # s into the load: kill the gateway with a multipart upload in flight
KILL_GW_WAIT = 10  # s to wait for one before killing the busiest gateway anyway
KILL_GARAGE_AFTER = 4  # s after the gateway kill: kill a Garage node
GARAGE_VICTIM = 1  # index of the Garage node killed
MAX_ATTEMPTS = 6  # per operation, each with a fresh session after a failure
TIMEOUT = 30  # s: socket timeout of every client connection (a hang fails, never blocks)
PASSIVE_SPAN = 100  # ports per gateway
STALE_AGE = "10s"  # --abort-stale-uploads of the restarted gateway
JANITOR_DEADLINE = 30  # s
MiB = 1024 * 1024
PART = 8 * MiB  # the gateway's default --part-size
PACE = 1 * MiB  # bytes/s per upload: a client on a real link, so multipart uploads take seconds
THINK = (0.3, 1.5)  # s between a session's operations
LARGE = 0.07  # share of uploads of 10-20 MiB (multipart); the rest 4 KiB-4 MiB, log-uniform
CHUNK = 256 * 1024
BUCKET = "cluster-test"
LISTEN_RE = re.compile(r"BucketFTP listening on (\d+\.\d+\.\d+\.\d+):(\d+)")
KEEP_RUNS = 5

R = fc.Results()
out = fc.out
VERBOSE = False


def vout(*parts):
    if VERBOSE:
        out(*parts)


# ---------------------------------------------------------------------------------------------
# Ports and processes
# ---------------------------------------------------------------------------------------------


def bindable(addr, port):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((addr, port))
            return True
        except OSError:
            return False


def free_ranges(count, span, addrs):
    """`count` disjoint ranges of `span` ports, each port bindable on every address in
    `addrs`, below the kernel's ephemeral range (so no outgoing connection takes one)."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            eph_lo = int(f.read().split()[0])
    except (OSError, ValueError):
        eph_lo = 32768
    lo, hi = 20000, min(eph_lo, 65536) - span * count
    for _ in range(200):
        base = random.randrange(lo, hi)
        ports = range(base, base + span * count)
        if all(bindable(a, p) for p in ports for a in addrs):
            return [(base + i * span, base + (i + 1) * span - 1) for i in range(count)]
    raise RuntimeError(f"no {count} free ranges of {span} ports in {lo}-{hi}")


def kill_group(proc, sig=signal.SIGKILL):
    """Signals the process group of a process started with start_new_session=True."""
    if proc is not None and proc.poll() is None:
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            pass
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def haproxy_bin():
    found = shutil.which("haproxy") or ("/usr/sbin/haproxy" if os.path.isfile("/usr/sbin/haproxy") else None)
    if not found:
        raise RuntimeError("haproxy not found; install it with scripts/install-test-deps.sh")
    return found


TEAM_USER = "loader"
SECRET_ENV = "BUCKETFTP_CLUSTER_SECRET"


def write_team_config(binary, work, s3_endpoint, access_key):
    """The one config file every instance runs from: [server] settings shared by all, the
    cluster's storage (its secret from the environment) and one team user. Returns the path and
    the user's password (hashed in the file by `bucketftp-server hash-password`)."""
    password = secrets.token_urlsafe(18)
    fc.SECRETS.add(password)
    hashed = subprocess.run(
        [binary, "hash-password"], input=password + "\n", capture_output=True, text=True, check=True
    ).stdout.strip()
    path = os.path.join(work, "cluster.toml")
    with open(path, "w", encoding="utf-8") as f:
        f.write(f"""# The config all three instances share; each command line adds only its listen port,
# passive range, data folder and janitor age (flags on the command line win over the file).
[server]
masquerade = "{LB}"
no_tls = true
# HAProxy names each client in a PROXY protocol header (send-proxy-v2), on control and data
# connections: limits per address, the lockout and the audit log see the clients, not HAProxy.
proxy_protocol = true
proxy_protocol_from = ["{LB_INSIDE}/32"]
max_sessions = 256
log_level = "info"

[[storage]]
name = "garage-cluster"
endpoint = "{s3_endpoint}"
region = "garage"
path_style = true
access_key_id = "{access_key}"
secret_access_key_env = "{SECRET_ENV}"

[[user]]
name = "{TEAM_USER}"
password_hash = "{hashed}"
storage = "garage-cluster"
bucket = "{BUCKET}"
permissions = "rw"
delete = true
""")
    return path, password


def gateway_args(binary, config, listen_port, prange, data_dir, stale_age="1h"):
    """The command line of one gateway instance: the shared config file, plus what differs
    between instances: the listen port, the passive range and the data folder. `stale_age`:
    --abort-stale-uploads (the instances under load use an hour, far above any upload here, so
    no live upload is ever aborted)."""
    return [
        binary,
        "--config",
        config,
        "--listen",
        f"127.0.0.1:{listen_port}",
        "--passive-ports",
        f"{prange[0]}-{prange[1]}",
        "--data-dir",
        data_dir,
        "--abort-stale-uploads",
        stale_age,
        "--audit-log",
        os.path.join(os.path.dirname(data_dir), f"audit-{os.path.basename(data_dir)}.jsonl"),
    ]


class GatewayProc:
    """One bucketftp-server instance, stdout+stderr to its log file."""

    def __init__(self, n, binary, config, prange, log_dir, work, secret):
        self.n = n  # 1-based
        self.binary = binary
        self.config = config
        self.secret = secret
        self.prange = prange
        self.port = s3servers.free_port(avoid=range(prange[0], prange[1] + 1))
        self.data_dir = os.path.join(work, f"gw{n}")
        self.log = os.path.join(log_dir, f"gateway-{n}.log")
        self.proc = None
        self.killed_at = None

    def start(self, stale_age="1h"):
        args = gateway_args(self.binary, self.config, self.port, self.prange, self.data_dir, stale_age)
        offset = os.path.getsize(self.log) if os.path.exists(self.log) else 0
        logf = open(self.log, "ab")
        logf.write(f"==> {' '.join(args)}\n".encode())
        logf.flush()
        self.proc = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=logf,
            stderr=subprocess.STDOUT,
            env={**os.environ, "RUST_BACKTRACE": "1", "NO_COLOR": "1", SECRET_ENV: self.secret},
            start_new_session=True,
        )
        logf.close()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with open(self.log, "rb") as f:
                f.seek(offset)
                if LISTEN_RE.search(f.read().decode("utf-8", "replace")):
                    return
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise RuntimeError(f"gateway {self.n} did not start; log {self.log}:\n{s3servers.tail(self.log)}")

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def kill(self):
        self.killed_at = time.monotonic()
        kill_group(self.proc)

    def stop(self):
        kill_group(self.proc, signal.SIGTERM)


class HAProxy:
    """HAProxy in the foreground (-db), its config in the work dir, its log (stdout) in the
    log dir, a stats socket for the servers' UP/DOWN states."""

    def __init__(self, work, log_dir, garage_nodes, gateways):
        self.bin = haproxy_bin()
        self.cfg = os.path.join(work, "haproxy.cfg")
        self.sock = os.path.join(work, "haproxy.sock")
        self.log = os.path.join(log_dir, "haproxy.log")
        self.s3_port = s3servers.free_port()
        self.ftp_port = s3servers.free_port()
        self.garage_nodes = garage_nodes
        self.gateways = gateways
        self.proc = None

    @property
    def s3_endpoint(self):
        return f"http://127.0.0.1:{self.s3_port}"

    def config(self):
        garage = "\n".join(
            f"    server garage{i + 1} 127.0.0.1:{g.s3_port} check port {g.admin_port}"
            for i, g in enumerate(self.garage_nodes)
        )
        gws = "\n".join(f"    server gw{gw.n} 127.0.0.1:{gw.port}" for gw in self.gateways)
        passive = "\n".join(f"""
frontend passive-gw{gw.n}
    mode tcp
    option tcplog
    bind {LB}:{gw.prange[0]}-{gw.prange[1]}
    default_backend passive-gw{gw.n}

backend passive-gw{gw.n}
    mode tcp
    # no port: the port the client connected to, i.e. the one gw{gw.n} announced
    server gw{gw.n} 127.0.0.1 source {LB_INSIDE} send-proxy-v2
""" for gw in self.gateways)
        return f"""# written by tests/cluster/cluster_test.py
global
    log stdout format raw local0 info
    stats socket {self.sock} mode 600 level admin
    maxconn 4096

defaults
    log global
    timeout connect 2s
    timeout client 120s
    timeout server 120s
    timeout check 2s
    retries 3
    option redispatch 1

# --- S3: the gateways' endpoint, per request over the Garage nodes ---------------------
frontend s3
    mode http
    option httplog
    bind 127.0.0.1:{self.s3_port}
    default_backend garage

backend garage
    mode http
    balance roundrobin
    # a node is UP while its admin API says it can serve with quorum
    option httpchk GET /health
    http-check expect status 200
    # only when no request was sent yet: never replays an upload or a completion
    retry-on conn-failure
    default-server inter 1s fall 2 rise 2
{garage}

# --- FTP control: one client address sticks to one gateway ----------------------------
frontend ftp
    mode tcp
    option tcplog
    # the control connection is silent while a transfer runs: longer than any transfer
    timeout client 1h
    bind {LB}:{self.ftp_port}
    default_backend gateways

backend gateways
    mode tcp
    timeout server 1h
    balance source
    hash-type consistent
    option tcp-check
    tcp-check expect rstring ^220
    tcp-check send QUIT\\r\\n
    # the client's address in a PROXY header; health checks send one too (LOCAL)
    default-server source {LB_INSIDE} send-proxy-v2 check-send-proxy check inter 1s fall 2 rise 2
{gws}

# --- FTP data: each gateway's passive range to that gateway ---------------------------
{passive}"""

    def start(self):
        with open(self.cfg, "w") as f:
            f.write(self.config())
        r = subprocess.run([self.bin, "-c", "-f", self.cfg], capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError(f"haproxy -c: {r.stdout}{r.stderr}")
        logf = open(self.log, "ab")
        self.proc = subprocess.Popen(
            [self.bin, "-db", "-f", self.cfg],
            stdin=subprocess.DEVNULL,
            stdout=logf,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        logf.close()
        deadline = time.monotonic() + 15
        while not (s3servers.tcp_open(self.ftp_port, LB) and os.path.exists(self.sock)):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"haproxy did not start; log {self.log}:\n{s3servers.tail(self.log)}")
            time.sleep(0.05)

    def stat(self):
        """{(proxy, server): status} from the stats socket ("UP", "DOWN", "UP 1/2", ...)."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(5)
            s.connect(self.sock)
            s.sendall(b"show stat\n")
            data = b""
            while chunk := s.recv(65536):
                data += chunk
        text = data.decode("utf-8", "replace").lstrip("# ")
        return {(row["pxname"], row["svname"]): row["status"] for row in csv.DictReader(io.StringIO(text))}

    def wait_status(self, proxy, server, want, timeout):
        """Seconds until the server's status starts with `want`, or None after `timeout`."""
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout:
            try:
                if self.stat().get((proxy, server), "").startswith(want):
                    return time.monotonic() - t0
            except OSError:
                pass
            time.sleep(0.1)
        return None

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self):
        kill_group(self.proc, signal.SIGTERM)


# ---------------------------------------------------------------------------------------------
# FTP sessions through the load balancer
# ---------------------------------------------------------------------------------------------


class LBFTP(ftplib.FTP):
    """ftplib.FTP that remembers the last passive port (which says which gateway it is on)
    and the session's last control lines (written to the log dir when an operation fails)."""

    last_pasv_port = None

    def __init__(self, *a, **kw):
        self.transcript = collections.deque(maxlen=40)
        super().__init__(*a, **kw)

    def _note(self, line):
        self.transcript.append(f"{time.strftime('%H:%M:%S')}.{int(time.time() * 1000) % 1000:03d} {line}")

    def putline(self, line):
        self._note("> " + ("PASS ****" if line.upper().startswith("PASS ") else line))
        super().putline(line)

    def getline(self):
        line = super().getline()
        self._note("< " + line)
        return line

    def makepasv(self):
        host, port = super().makepasv()
        self.last_pasv_port = port
        return host, port

    def ntransfercmd(self, cmd, rest=None):
        conn, size = super().ntransfercmd(cmd, rest)
        self._note(f"  data connection {conn.getsockname()} -> {conn.getpeername()}")
        return conn, size


def hard_close(sock):
    """Closes with a reset (as a killed client would), so a half-sent upload can never look
    finished to the gateway."""
    if sock is None:
        return
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    try:
        sock.close()
    except OSError:
        pass


class Session:
    def __init__(self, ctx, source_ip):
        self.ctx = ctx
        self.ftp = LBFTP(timeout=TIMEOUT)
        self.ftp.connect(LB, ctx.lb.ftp_port, timeout=TIMEOUT, source_address=(source_ip, 0))
        self.ftp.login(ctx.user, ctx.password)

    @property
    def instance(self):
        return self.ctx.instance_of(self.ftp.last_pasv_port)

    def upload(self, key, data, progress=None):
        conn = self.ftp.transfercmd(f"STOR {key}")
        try:
            t0, sent = time.monotonic(), 0
            while sent < len(data):
                conn.sendall(data[sent : sent + CHUNK])
                sent = min(sent + CHUNK, len(data))
                if progress:
                    progress(sent)
                ahead = sent / PACE - (time.monotonic() - t0)
                if ahead > 0:
                    time.sleep(ahead)
        except BaseException:
            hard_close(conn)
            raise
        conn.close()
        return self.ftp.voidresp()

    def download(self, key):
        h, n = hashlib.sha256(), [0]

        def got(b):
            h.update(b)
            n[0] += len(b)

        resp = self.ftp.retrbinary(f"RETR {key}", got, blocksize=CHUNK)
        return resp, h.hexdigest(), n[0]

    def listing(self, folder):
        return {
            name: int(f.get("size", -1))
            for name, f in self.ftp.mlsd(folder, facts=["type", "size"])
            if f.get("type") == "file"
        }

    def close(self, polite=True):
        if polite:
            try:
                self.ftp.quit()
                return
            except (OSError, EOFError, ftplib.Error):
                pass
        hard_close(self.ftp.sock)


class Corrupt(Exception):
    """A download with the wrong bytes or a listing missing an earlier upload."""


def failure_kind(e):
    if isinstance(e, (socket.timeout, TimeoutError)):
        return "timeout"
    if isinstance(e, EOFError):
        return "closed"
    if isinstance(e, (ConnectionResetError, BrokenPipeError, ConnectionAbortedError)):
        return "reset"
    if isinstance(e, ConnectionRefusedError):
        return "refused"
    if isinstance(e, ftplib.Error):
        return f"reply {str(e)[:3]}"
    if isinstance(e, Corrupt):
        return "corrupt"
    return type(e).__name__


# ---------------------------------------------------------------------------------------------
# The load
# ---------------------------------------------------------------------------------------------


class Context:
    def __init__(self, lb, gateways, user, password, log_dir):
        self.log_dir = log_dir
        self.lb = lb
        self.gateways = gateways
        self.user = user
        self.password = password
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.t0 = time.monotonic()
        self.committed = {}  # key -> (sha256, size): uploads that got 226
        self.ops = []  # one dict per operation
        self.sessions = 0
        self.first_instance = {}  # worker -> instance of its first session
        self.inflight = {}  # worker -> {"instance", "size", "sent"} of a running upload
        self.gw_killed_at = None
        self.garage_killed_at = None
        self.corrupt = []
        self.stale_listings = []

    def note_transcript(self, w, op, sess, e):
        """Appends the failed session's last control lines to <log dir>/transcripts.txt."""
        with self.lock, open(os.path.join(self.log_dir, "transcripts.txt"), "a") as f:
            f.write(f"--- worker {w} {op['op']} {op['key']} on gw{sess.instance}: {failure_kind(e)} {e}\n")
            f.writelines(line + "\n" for line in sess.ftp.transcript)

    def instance_of(self, port):
        if port is None:
            return None
        for gw in self.gateways:
            if gw.prange[0] <= port <= gw.prange[1]:
                return gw.n
        return None

    def now(self):
        return time.monotonic() - self.t0


def pick_size(rng):
    if rng.random() < LARGE:
        return rng.randrange(10 * MiB, 20 * MiB + 1)  # multipart: 2-3 parts
    return int(4096 * (4 * MiB / 4096) ** rng.random())


def worker(ctx, w):
    rng = random.Random(secrets.randbits(64))
    source = f"127.0.0.{CLIENT_BASE + w}"
    folder = f"s{w:02d}"
    mine = {}  # my committed uploads: name -> size
    seq = 0
    sess = None
    while not ctx.stop.is_set():
        roll = rng.random()
        with ctx.lock:
            pool = list(ctx.committed.items())
        if roll < 0.45 or not pool or (roll >= 0.8 and not mine):
            seq += 1
            size = pick_size(rng)
            data = os.urandom(size)
            op = {
                "op": "upload",
                "key": f"{folder}/u{seq:04d}.bin",
                "size": size,
                "sha": hashlib.sha256(data).hexdigest(),
                "abandoned": [],
            }
        elif roll < 0.8:
            key, (sha, size) = rng.choice(pool)
            op = {"op": "download", "key": key, "size": size, "sha": sha}
            data = None
        else:
            op = {"op": "list", "key": folder, "expect": dict(mine)}
            data = None
        op.update(worker=w, failures=[], ok=False, started=ctx.now())
        for attempt in range(1, MAX_ATTEMPTS + 1):
            t_attempt = time.monotonic()
            if attempt > 1 and op["op"] == "upload":
                # A retry saves under a new name: Garage drops the multipart uploads of a key
                # older than its newest complete object, so a retry to the same key would
                # clean up after the killed gateway and leave the janitor nothing to do.
                op["abandoned"].append(op["key"])
                op["key"] = f"{folder}/u{seq:04d}-r{attempt}.bin"
            try:
                if sess is None:
                    sess = Session(ctx, source)
                    with ctx.lock:
                        ctx.sessions += 1
                run_op(ctx, w, sess, op, data)
                op["ok"] = True
                if op["op"] == "upload":
                    mine[op["key"].split("/", 1)[1]] = op["size"]
                break
            except Exception as e:  # noqa: BLE001 - every failure is recorded, then retried
                instance = sess.instance if sess is not None else None
                op["failures"].append(
                    {
                        "kind": failure_kind(e),
                        "secs": time.monotonic() - t_attempt,
                        "instance": instance,
                        "at": ctx.now(),
                        "msg": str(e)[:200],
                    }
                )
                vout(
                    f"  worker {w} {op['op']} {op['key']} attempt {attempt} on gw{instance}: {failure_kind(e)} {str(e)[:120]}"
                )
                if sess is not None:
                    ctx.note_transcript(w, op, sess, e)
                    sess.close(polite=False)
                    sess = None
                if attempt < MAX_ATTEMPTS:
                    time.sleep(min(0.5 * attempt, 2.0))
            finally:
                with ctx.lock:
                    ctx.inflight.pop(w, None)
        op["ended"] = ctx.now()
        with ctx.lock:
            ctx.ops.append(op)
        ctx.stop.wait(rng.uniform(*THINK))
    if sess is not None:
        sess.close()


def run_op(ctx, w, sess, op, data):
    if op["op"] == "upload":
        state = {"instance": None, "size": op["size"], "sent": 0}

        def progress(sent):
            state["sent"] = sent
            state["instance"] = sess.instance

        with ctx.lock:
            ctx.inflight[w] = state
        resp = sess.upload(op["key"], data, progress)
        op["reply"] = resp
        if not resp.startswith("226"):
            raise ftplib.error_reply(resp)
        with ctx.lock:
            ctx.committed[op["key"]] = (op["sha"], op["size"])
    elif op["op"] == "download":
        resp, sha, n = sess.download(op["key"])
        op["reply"] = resp
        if sha != op["sha"] or n != op["size"]:
            with ctx.lock:
                ctx.corrupt.append((op["key"], n, op["size"], resp))
            raise Corrupt(
                f"{op['key']}: {n} bytes, sha {sha[:12]} (want {op['size']}, {op['sha'][:12]}) after {resp!r}"
            )
    else:
        got = sess.listing(op["key"])
        missing = {k: v for k, v in op["expect"].items() if got.get(k) != v}
        if missing:
            with ctx.lock:
                ctx.stale_listings.append((op["key"], sorted(missing)[:5]))
            raise Corrupt(
                f"listing of {op['key']} lacks {len(missing)} earlier uploads: {sorted(missing)[:3]}"
            )
    op["instance"] = sess.instance
    op["pasv"] = sess.ftp.last_pasv_port
    with ctx.lock:
        ctx.first_instance.setdefault(w, sess.instance)


def choose_victim(ctx):
    """The gateway to kill: the one with a multipart upload in flight (≥ one part plus margin
    received, ≥ 1 MiB still to come), waiting up to KILL_GW_WAIT s for one; else the busiest."""
    deadline = time.monotonic() + KILL_GW_WAIT
    while time.monotonic() < deadline:
        with ctx.lock:
            mp = [
                s["instance"]
                for s in ctx.inflight.values()
                if s["instance"] and s["sent"] >= PART + 2 * MiB and s["size"] - s["sent"] >= MiB
            ]
        if mp:
            return max(set(mp), key=mp.count), len(mp)
        time.sleep(0.05)
    with ctx.lock:
        busy = [s["instance"] for s in ctx.inflight.values() if s["instance"]]
    return (max(set(busy), key=busy.count) if busy else 2), 0


# ---------------------------------------------------------------------------------------------
# The run
# ---------------------------------------------------------------------------------------------


def log_dir_for_run():
    base = os.path.join(REPO, "target", "cluster")
    os.makedirs(base, exist_ok=True)
    runs = sorted(d for d in os.listdir(base) if d.startswith("run-"))
    for old in runs[: max(0, len(runs) - (KEEP_RUNS - 1))]:
        shutil.rmtree(os.path.join(base, old), ignore_errors=True)
    d = os.path.join(base, time.strftime("run-%Y%m%d-%H%M%S-") + secrets.token_hex(2))
    os.makedirs(d)
    return d


def fmt_bytes(n):
    return f"{n / MiB:.1f} MiB"


def verify_ftp(ctx, items, n_threads=4):
    """Reads every (key, sha, size) through fresh FTP sessions; returns the list of problems."""
    problems, lock = [], threading.Lock()
    chunks = [items[i::n_threads] for i in range(n_threads)]

    def run(i, chunk):
        sess = None
        for key, (sha, size) in chunk:
            for attempt in range(3):
                try:
                    if sess is None:
                        sess = Session(ctx, f"127.0.0.{VERIFY_BASE + i}")
                    _resp, got, n = sess.download(key)
                    if (got, n) != (sha, size):
                        with lock:
                            problems.append(f"{key}: {n} bytes sha {got[:12]}, want {size} {sha[:12]}")
                    break
                except Exception as e:  # noqa: BLE001
                    if sess is not None:
                        sess.close(polite=False)
                        sess = None
                    if attempt == 2:
                        with lock:
                            problems.append(f"{key}: {failure_kind(e)} {e}")
        if sess is not None:
            sess.close()

    threads = [threading.Thread(target=run, args=(i, c), daemon=True) for i, c in enumerate(chunks)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    return problems


def run_cluster(binary, log_dir, work):
    t_start = time.monotonic()
    cluster = s3servers.GarageCluster(3, log_dir=log_dir)
    fc.SECRETS.add(cluster.secret_key)
    gateways, lb = [], None
    try:
        secs = cluster.start()
        cluster.create_bucket(BUCKET)
        # cluster.start() raises unless every node reports the layout healthy.
        out(f"3-node Garage cluster healthy (replication 3, zones dc1-dc3) in {secs:.1f} s")

        ranges = free_ranges(GATEWAYS, PASSIVE_SPAN, ["127.0.0.1", LB])
        gateways = [
            GatewayProc(n + 1, binary, None, ranges[n], log_dir, work, cluster.secret_key) for n in range(GATEWAYS)
        ]
        lb = HAProxy(work, log_dir, cluster.nodes, gateways)
        config, password = write_team_config(binary, work, lb.s3_endpoint, cluster.access_key)
        for gw in gateways:
            gw.config = config
        lb.start()
        for gw in gateways:
            gw.start()
        up = [lb.wait_status("gateways", f"gw{gw.n}", "UP", 10) for gw in gateways]
        up += [lb.wait_status("garage", f"garage{i + 1}", "UP", 10) for i in range(3)]
        R.check(
            f"HAProxy up: 3 gateways and 3 Garage nodes UP (FTP {LB}:{lb.ftp_port}, S3 {lb.s3_endpoint}, "
            f"passive {', '.join(f'gw{g.n} {g.prange[0]}-{g.prange[1]}' for g in gateways)})",
            all(u is not None for u in up),
            repr(lb.stat()),
        )

        out(f"setup took {time.monotonic() - t_start:.1f} s")
        # The team user of the shared config file: no cloud key reaches the FTP clients.
        ctx = Context(lb, gateways, TEAM_USER, password, log_dir)
        load(ctx, cluster, lb, gateways)
        after_load(ctx, cluster, lb, gateways)
    finally:
        for gw in gateways:
            gw.stop()
        if lb is not None:
            lb.stop()
        cluster.stop()
        out(f"cluster test took {time.monotonic() - t_start:.0f} s")


def load(ctx, cluster, lb, gateways):
    out(f"load: {SESSIONS} sessions for {LOAD_SECS} s through HAProxy")
    ctx.t0 = time.monotonic()
    threads = [threading.Thread(target=worker, args=(ctx, w), daemon=True) for w in range(SESSIONS)]
    for t in threads:
        t.start()

    time.sleep(KILL_GW_AT)
    victim_n, multipart_inflight = choose_victim(ctx)
    victim = gateways[victim_n - 1]
    with ctx.lock:
        inflight = sum(1 for s in ctx.inflight.values() if s["instance"] == victim_n)
    victim.kill()
    ctx.gw_killed_at = ctx.now()
    ctx.victim = victim
    out(
        f"  {ctx.gw_killed_at:5.1f} s: SIGKILL gateway {victim_n} ({inflight} uploads in flight, "
        f"{multipart_inflight} past their first part)"
    )
    R.check(f"gateway {victim_n} killed with a multipart upload in flight", multipart_inflight > 0)
    down = lb.wait_status("gateways", f"gw{victim_n}", "DOWN", 10)
    R.check(
        f"HAProxy marked gw{victim_n} DOWN" + (f" after {down:.1f} s" if down is not None else ""),
        down is not None,
    )

    time.sleep(max(0.0, KILL_GARAGE_AFTER - (ctx.now() - ctx.gw_killed_at)))
    cluster.kill_node(GARAGE_VICTIM)
    ctx.garage_killed_at = ctx.now()
    out(f"  {ctx.garage_killed_at:5.1f} s: SIGKILL Garage node {GARAGE_VICTIM + 1}")
    down = lb.wait_status("garage", f"garage{GARAGE_VICTIM + 1}", "DOWN", 10)
    R.check(
        f"HAProxy marked garage{GARAGE_VICTIM + 1} DOWN"
        + (f" after {down:.1f} s" if down is not None else ""),
        down is not None,
    )

    time.sleep(max(0.0, LOAD_SECS - ctx.now()))
    ctx.stop.set()
    out(f"  {ctx.now():5.1f} s: load stops; sessions finish their operation")
    for t in threads:
        t.join(max(1.0, 150 - ctx.now()))
    out(f"  {ctx.now():5.1f} s: load done")
    R.check(
        "every session finished (none hung)",
        not any(t.is_alive() for t in threads),
        f"{sum(t.is_alive() for t in threads)} still running",
    )


def after_load(ctx, cluster, lb, gateways):
    with ctx.lock:
        ops = list(ctx.ops)
        committed = dict(ctx.committed)
    victim = ctx.victim
    with open(os.path.join(ctx.log_dir, "ops.jsonl"), "w") as f:
        f.writelines(json.dumps(o) + "\n" for o in ops)
    by = lambda kind: [o for o in ops if o["op"] == kind]  # noqa: E731
    uploads, downloads, listings = by("upload"), by("download"), by("list")
    retried = [o for o in ops if o["failures"]]
    gave_up = [o for o in ops if not o["ok"]]
    failures = [f for o in ops for f in o["failures"]]
    on_victim = [f for f in failures if f["instance"] == victim.n and f["at"] >= ctx.gw_killed_at - 0.5]
    hangs = [f for f in failures if f["kind"] == "timeout"]
    bytes_up = sum(o["size"] for o in uploads if o["ok"])
    bytes_down = sum(o["size"] for o in downloads if o["ok"])

    spread = {}
    for inst in ctx.first_instance.values():
        spread[inst] = spread.get(inst, 0) + 1
    R.check(
        f"balance source spread the {SESSIONS} clients over the gateways: "
        + ", ".join(f"gw{k} {v}" for k, v in sorted(spread.items(), key=lambda kv: str(kv[0]))),
        len([k for k in spread if k]) == GATEWAYS,
    )
    R.check(
        f"sessions on the killed gateway failed cleanly: {len(on_victim)} failed attempts "
        f"({', '.join(sorted({f['kind'] for f in on_victim}))}), the last "
        f"{max([f['at'] - ctx.gw_killed_at for f in on_victim], default=0):.1f} s after the kill, no timeout",
        len(on_victim) > 0 and not any(f["kind"] == "timeout" for f in on_victim),
        "; ".join(f"{f['kind']} after {f['secs']:.1f} s: {f['msg']}" for f in on_victim[:5]),
    )
    hung = [o for o in retried if any(f["kind"] == "timeout" for f in o["failures"])]
    R.check(
        f"every failed operation succeeded on retry: {len(retried)} retried, {len(gave_up)} gave up, "
        f"{len(hangs)} timeouts",
        not gave_up and not hangs,
        "; ".join(
            f"{o['op']} {o['key']}: {[f['kind'] + ' ' + f['msg'][:80] for f in o['failures']]}"
            for o in (gave_up + hung)[:5]
        ),
    )
    R.check(f"no download returned wrong bytes ({len(ctx.corrupt)})", not ctx.corrupt, repr(ctx.corrupt[:5]))
    R.check(
        f"every listing showed the session's earlier uploads ({len(ctx.stale_listings)} did not)",
        not ctx.stale_listings,
        repr(ctx.stale_listings[:5]),
    )
    late = [o for o in ops if o["ok"] and o["started"] > ctx.garage_killed_at + 1]
    late_kinds = {k: sum(1 for o in late if o["op"] == k) for k in ("upload", "download", "list")}
    R.check(
        "the cluster kept serving after the Garage node died: "
        + ", ".join(f"{v} {k}s" for k, v in late_kinds.items())
        + " started later succeeded",
        all(late_kinds.values()),
    )
    R.check(
        "the other gateways, HAProxy and the 2 Garage nodes still run",
        all(gw.alive() for gw in gateways if gw is not victim) and lb.alive() and len(cluster.live()) == 2,
    )
    health = [cluster.health(g) for g in cluster.live()]
    R.check(f"Garage with 2 of 3 nodes reports healthy (/health {health})", all(h == 200 for h in health))

    # --- the bytes, through FTP and straight from Garage -----------------------------------
    t_verify = time.monotonic()
    items = sorted(committed.items())
    problems = verify_ftp(ctx, items)
    total = sum(size for _key, (_sha, size) in items)
    R.check(
        f"all {len(items)} uploads that got 226 read back through fresh FTP sessions ({fmt_bytes(total)})",
        not problems and items,
        "; ".join(problems[:5]),
    )
    node = cluster.live()[0]
    s3 = s3servers.S3Client(node.endpoint, cluster.region, cluster.access_key, cluster.secret_key, timeout=60)
    bad = []
    for key, (sha, size) in items:
        body = s3.get_object(BUCKET, key)
        if body is None or len(body) != size or hashlib.sha256(body).hexdigest() != sha:
            bad.append(f"{key}: {None if body is None else len(body)} bytes")
    R.check(
        f"all {len(items)} read straight from Garage ({node.endpoint}) with the right bytes",
        not bad and items,
        "; ".join(bad[:5]),
    )
    listed = s3.list_objects(BUCKET)
    # An interrupted upload may still have been committed: the store finished PutObject or
    # CompleteMultipartUpload just before the kill cut the 226 off. Such an object must be
    # whole (that attempt's bytes); nothing else may be there.
    abandoned = {k: (o["sha"], o["size"]) for o in uploads for k in o["abandoned"]}
    extra = sorted(set(listed) - set(committed) - set(abandoned))
    missing = sorted(set(committed) - set(listed))
    R.check(
        f"the bucket holds the {len(committed)} uploaded objects and nothing else",
        not extra and not missing,
        f"extra {extra[:5]} missing {missing[:5]}",
    )
    visible = sorted(set(abandoned) & set(listed))
    partial = []
    for key in visible:
        body = s3.get_object(BUCKET, key)
        if body is None or (hashlib.sha256(body).hexdigest(), len(body)) != abandoned[key]:
            partial.append(f"{key}: {None if body is None else len(body)} of {abandoned[key][1]} bytes")
    R.check(
        f"no partial object at the {len(abandoned)} names whose upload was interrupted "
        f"({len(visible)} complete: committed just before the kill cut their 226)",
        not partial,
        "; ".join(partial[:5]),
    )
    out(f"verification took {time.monotonic() - t_verify:.1f} s")

    # --- the janitor ----------------------------------------------------------------------------
    before = s3.list_multipart_uploads(BUCKET)
    R.check(
        f"the killed gateway left multipart uploads behind ({len(before)})",
        len(before) > 0,
        "none: the kill hit no multipart upload",
    )
    victim.start(stale_age=STALE_AGE)
    back = lb.wait_status("gateways", f"gw{victim.n}", "UP", 10)
    R.check(
        f"gw{victim.n} restarted with --abort-stale-uploads {STALE_AGE}, UP in HAProxy again"
        + (f" after {back:.1f} s" if back is not None else ""),
        back is not None,
    )
    t0 = time.monotonic()
    ftp = direct_ftp(victim.port, OPERATOR)
    ftp.login(ctx.user, ctx.password)  # the first login to the bucket starts the sweep
    after = before
    while time.monotonic() - t0 < JANITOR_DEADLINE:
        after = s3.list_multipart_uploads(BUCKET)
        if not after:
            break
        time.sleep(0.5)
    ftp.quit()
    R.check(
        f"no multipart upload left after the janitor ({len(before)} -> {len(after)} "
        f"in {time.monotonic() - t0:.1f} s)",
        not after,
        repr(after[:5]),
    )

    # --- the clients' own addresses (PROXY protocol) ----------------------------------------------
    seen = audit_clients(ctx.gateways)
    workers = {f"127.0.0.{CLIENT_BASE + w}" for w in range(SESSIONS)}
    verifiers = {f"127.0.0.{VERIFY_BASE + i}" for i in range(4)}
    others = {ip: n for ip, n in seen.items() if ip not in workers | verifiers and ip != OPERATOR}
    R.check(
        f"the audit logs name the clients, through HAProxy's PROXY headers: {len(set(seen) & workers)} "
        f"of {len(workers)} client addresses, {sum(seen.values())} lines, none naming HAProxy ({LB_INSIDE})",
        len(set(seen) & workers) >= len(workers) // 2 and not others,
        f"other addresses: {dict(list(others.items())[:5])}",
    )

    ok = lambda some: sum(o["ok"] for o in some)  # noqa: E731
    multipart = sum(1 for o in uploads if o["ok"] and o["size"] > PART)
    kinds = ", ".join(f"{k} {v}" for k, v in sorted(count_by(failures, "kind").items()))
    out("")
    out(
        f"counts: sessions {ctx.sessions}, operations {len(ops)} ({len(retried)} retried, {len(gave_up)} failed)"
    )
    out(
        f"counts: uploads ok {ok(uploads)} ({multipart} multipart) / retried "
        f"{sum(bool(o['failures']) for o in uploads)} / failed {len(uploads) - ok(uploads)}, "
        f"downloads ok {ok(downloads)}, listings ok {ok(listings)}"
    )
    out(
        f"counts: bytes up {fmt_bytes(bytes_up)}, down {fmt_bytes(bytes_down)}; failed attempts {len(failures)}: {kinds}"
    )
    out(f"counts: multipart uploads before the janitor {len(before)}, after {len(after)}")


def direct_ftp(port, client):
    """An ftplib session straight to a gateway, from HAProxy's inside address with the PROXY
    header HAProxy would send for `client` (a gateway takes no connection without one)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT, source_address=(LB_INSIDE, 0))
    sock.sendall(f"PROXY TCP4 {client} 127.0.0.1 40000 {port}\r\n".encode())
    ftp = ftplib.FTP(timeout=TIMEOUT)
    ftp.sock = sock
    ftp.af = sock.family
    ftp.file = sock.makefile("r", encoding=ftp.encoding)
    ftp.welcome = ftp.getresp()
    return ftp


def audit_clients(gateways):
    """The client addresses (IP) of every audit line of every gateway, with the line count."""
    seen = collections.Counter()
    for gw in gateways:
        path = os.path.join(os.path.dirname(gw.data_dir), f"audit-{os.path.basename(gw.data_dir)}.jsonl")
        if not os.path.exists(path):
            continue
        with open(path, encoding="utf-8") as f:
            for line in f:
                try:
                    client = json.loads(line).get("client") or ""
                except ValueError:
                    continue
                seen[client.rsplit(":", 1)[0]] += 1
    return seen


def count_by(items, field):
    c = {}
    for i in items:
        c[i[field]] = c.get(i[field], 0) + 1
    return c


def main():
    global VERBOSE
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("-v", "--verbose", action="store_true", help="print every failed attempt")
    VERBOSE = p.parse_args().verbose

    binary = fc.find_binary()
    if not (os.path.isfile(binary) and os.access(binary, os.X_OK)):
        out(
            f"FAIL binary not found: {binary} (cargo build -p gateway --bin bucketftp-server, or BUCKETFTP_BIN)"
        )
        out("0 passed, 1 failed")
        return 1
    try:
        s3servers.garage_bin()
        haproxy_bin()
    except RuntimeError as e:
        out(f"FAIL {e}")
        out("0 passed, 1 failed")
        return 1

    # `timeout` and CI stop with SIGTERM: unwind through the finally blocks that kill the
    # processes started here.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    log_dir = log_dir_for_run()
    work = tempfile.mkdtemp(prefix="bucketftp-cluster-")
    try:
        R.section("cluster run", run_cluster, binary, log_dir, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if R.failed:
        out(f"logs (garage nodes, haproxy, gateways): {log_dir}")
    out(f"{R.passed} passed, {R.failed} failed")
    return 1 if R.failed else 0


if __name__ == "__main__":
    sys.exit(main())
