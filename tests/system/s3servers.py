#!/usr/bin/env python3
"""tests/system/s3servers.py — starts a throw-away single-node Garage S3 server on 127.0.0.1
for BucketFTP's system test (ftp_clients.py) and benchmark (bench/throughput.sh), or a
3-node Garage cluster for the cluster test (tests/cluster/cluster_test.py); and a minimal
SigV4 S3 client (S3Client) for checking a bucket directly.

Python stdlib only. Same recipe as the Rust harness (gateway/tests/support/mod.rs):
temp dir + garage.toml on free ports, `garage server`, `layout assign` + `layout apply`,
`key import`, `bucket create`, `bucket allow --read --write --owner`.

As a library:   g = Garage(); g.start(); g.create_bucket("b"); ...; g.stop()
                c = GarageCluster(3); c.start(); c.create_bucket("b"); c.kill_node(1); c.stop()
As a command:   s3servers.py garage --bucket NAME --env-file PATH
    starts Garage, creates the bucket, writes S3_ENDPOINT, S3_REGION, S3_ACCESS_KEY,
    S3_SECRET_KEY, S3_BUCKET, GARAGE_PID as shell assignments to PATH (mode 600), then waits
    until SIGTERM/SIGINT and stops Garage, deleting its data.

Garage binary: $GARAGE_BIN, else `garage` on PATH, else ~/.cargo/bin/garage.
Secrets are never printed.
"""

import datetime
import hashlib
import hmac
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import xml.etree.ElementTree as ET

READY_TIMEOUT = 30.0


def free_port(avoid=range(0)):
    """A free TCP port on 127.0.0.1 (bind port 0, read it, close), outside `avoid` (e.g. the
    passive port range a server is about to be given, which must not hold its listen port)."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in avoid:
            return port


def tcp_open(port, host="127.0.0.1"):
    try:
        with socket.create_connection((host, port), timeout=0.2):
            return True
    except OSError:
        return False


def garage_bin():
    env = os.environ.get("GARAGE_BIN")
    if env:
        if not os.path.isfile(env):
            raise RuntimeError(f"GARAGE_BIN={env} does not exist; run scripts/install-test-deps.sh")
        return env
    found = shutil.which("garage")
    if found:
        return found
    home = os.path.expanduser("~/.cargo/bin/garage")
    if os.path.isfile(home):
        return home
    raise RuntimeError(
        "garage binary not found ($GARAGE_BIN, PATH, ~/.cargo/bin/garage); "
        "install it with scripts/install-test-deps.sh"
    )


def tail(path, n=40):
    try:
        with open(path, "r", errors="replace") as f:
            return "".join(f.readlines()[-n:])
    except OSError as e:
        return f"<cannot read {path}: {e}>"


class Garage:
    """One Garage server in its own temp dir. Region "garage". Alone (the default: start()
    makes a single-node layout and a key) or one node of a GarageCluster (launch() only;
    the cluster shares the rpc_secret and the replication factor and sets up the layout).
    `log` puts the server's log elsewhere (kept after stop(), which deletes the temp dir)."""

    region = "garage"

    def __init__(self, rpc_secret=None, replication_factor=1, admin_api=False, log=None):
        self.bin = garage_bin()
        self.dir = tempfile.mkdtemp(prefix="bucketftp-garage-")
        self.cfg = os.path.join(self.dir, "garage.toml")
        self.log = log or os.path.join(self.dir, "server.log")
        self.proc = None
        self.s3_port = 0
        self.rpc_port = 0
        self.admin_port = 0
        self.rpc_secret = rpc_secret or secrets.token_hex(32)
        self.replication_factor = replication_factor
        self.admin_api = admin_api
        # Garage key ids are "GK" + 24 hex digits; secrets 64 hex digits.
        self.access_key = "GK" + secrets.token_hex(12)
        self.secret_key = secrets.token_hex(32)

    @property
    def endpoint(self):
        return f"http://127.0.0.1:{self.s3_port}"

    def _write_config(self):
        self.s3_port, self.rpc_port = free_port(), free_port()
        admin = ""
        if self.admin_api:
            # Only the unauthenticated endpoints (/health, /metrics) are used: no token.
            self.admin_port = free_port()
            admin = f"""
[admin]
api_bind_addr = "127.0.0.1:{self.admin_port}"
"""
        cfg = f"""# Garage test config written by tests/system/s3servers.py
metadata_dir = "{self.dir}/meta"
data_dir = "{self.dir}/data"
db_engine = "sqlite"
replication_factor = {self.replication_factor}
rpc_bind_addr = "127.0.0.1:{self.rpc_port}"
rpc_public_addr = "127.0.0.1:{self.rpc_port}"
rpc_secret = "{self.rpc_secret}"

[s3_api]
s3_region = "garage"
api_bind_addr = "127.0.0.1:{self.s3_port}"
{admin}"""
        fd = os.open(self.cfg, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(cfg)

    def cli(self, *args, secret_args=False):
        """Runs `garage -c cfg ARGS`; returns stdout; raises RuntimeError on failure.
        With secret_args the arguments are left out of the error message."""
        r = subprocess.run(
            [self.bin, "-c", self.cfg, *args],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=60,
        )
        if r.returncode != 0:
            shown = " ".join(args[:2]) if secret_args else " ".join(args)
            raise RuntimeError(f"`garage {shown}` failed ({r.returncode}): {r.stdout}{r.stderr}")
        return r.stdout

    def start(self):
        """Starts the server and sets up layout + key. Returns seconds to ready."""
        t0 = time.monotonic()
        self.launch()
        node = self.node_id()
        self.cli("layout", "assign", "-z", "dc1", "-c", "1G", node)
        self.cli("layout", "apply", "--version", "1")
        self.import_key(self.access_key, self.secret_key, "test")
        self.cli("key", "allow", "--create-bucket", self.access_key)
        return time.monotonic() - t0

    def node_id(self):
        """The full node id (public key)."""
        return self.cli("node", "id", "-q").strip().split("@")[0]

    def launch(self):
        """Starts `garage server` on free ports (new ones when a port was taken meanwhile)
        and waits until it answers `garage status` and HTTP on its S3 port."""
        for attempt in range(3):
            self._write_config()
            logf = open(self.log, "ab")
            self.proc = subprocess.Popen(
                [self.bin, "-c", self.cfg, "server"],
                stdin=subprocess.DEVNULL,
                stdout=logf,
                stderr=subprocess.STDOUT,
                env={**os.environ, "RUST_LOG": "garage=info"},
                start_new_session=True,
            )
            logf.close()
            try:
                self._wait_ready()
                break
            except RuntimeError as e:
                self.kill()
                with open(self.log, "r", errors="replace") as f:
                    in_use = "Address already in use" in f.read()
                if attempt < 2 and in_use:
                    continue
                raise RuntimeError(f"Garage failed to start ({e}); log {self.log}:\n{tail(self.log)}") from None

    def _wait_ready(self):
        deadline = time.monotonic() + READY_TIMEOUT
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited early with {self.proc.returncode}")
            if tcp_open(self.rpc_port):
                try:
                    self.cli("status")
                    break
                except (RuntimeError, subprocess.TimeoutExpired):
                    pass
            if time.monotonic() > deadline:
                raise RuntimeError("`garage status` never succeeded")
            time.sleep(0.025)
        # The S3 port answers HTTP (an anonymous request gets a 4xx: that is enough).
        while True:
            try:
                urllib.request.urlopen(self.endpoint + "/", timeout=2)
                return
            except urllib.error.HTTPError:
                return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("S3 port never answered")
            time.sleep(0.025)

    def import_key(self, access_key, secret_key, name):
        self.cli("key", "import", "--yes", "-n", name, access_key, secret_key, secret_args=True)

    def create_bucket(self, name, key=None):
        self.cli("bucket", "create", name)
        self.cli("bucket", "allow", "--read", "--write", "--owner", name, "--key", key or self.access_key)

    def kill(self):
        """SIGKILL to the server's process group (it was started in a session of its own)."""
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait()

    def stop(self):
        self.kill()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()


class GarageCluster:
    """`n` Garage nodes on loopback, one zone each (dc1…dcN), replication factor `n`, one
    shared rpc_secret; each node has its own data/meta dirs and its own RPC, S3 API and
    admin API ports. start(): launch all, `node connect` the first to the others, `layout
    assign` + `layout apply`, wait until every node's admin /health says 200, import a key.
    Logs go to `log_dir` (kept) when given."""

    region = "garage"

    def __init__(self, n=3, log_dir=None):
        secret = secrets.token_hex(32)
        self.nodes = [
            Garage(
                rpc_secret=secret,
                replication_factor=n,
                admin_api=True,
                log=os.path.join(log_dir, f"garage-{i + 1}.log") if log_dir else None,
            )
            for i in range(n)
        ]
        self.access_key = "GK" + secrets.token_hex(12)
        self.secret_key = secrets.token_hex(32)

    def live(self):
        return [g for g in self.nodes if g.proc is not None and g.proc.poll() is None]

    def cli(self, *args, secret_args=False):
        """`garage ARGS` through the first live node."""
        return self.live()[0].cli(*args, secret_args=secret_args)

    def start(self):
        """Returns seconds until the cluster is healthy, with a key that may create buckets."""
        t0 = time.monotonic()
        for g in self.nodes:
            g.launch()
        ids = [g.node_id() for g in self.nodes]
        first = self.nodes[0]
        for g, node in zip(self.nodes[1:], ids[1:]):
            first.cli("node", "connect", f"{node}@127.0.0.1:{g.rpc_port}")
        for i, node in enumerate(ids):
            first.cli("layout", "assign", "-z", f"dc{i + 1}", "-c", "1G", node)
        first.cli("layout", "apply", "--version", "1")
        self.wait_healthy()
        first.import_key(self.access_key, self.secret_key, "test")
        first.cli("key", "allow", "--create-bucket", self.access_key)
        return time.monotonic() - t0

    def health(self, g):
        """The HTTP status of node g's admin /health (200: it can serve with quorum)."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{g.admin_port}/health", timeout=2) as r:
                return r.status
        except urllib.error.HTTPError as e:
            return e.code
        except OSError:
            return None

    def wait_healthy(self, timeout=READY_TIMEOUT):
        """Until every live node reports 200 on /health and `garage status` lists no node down."""
        deadline = time.monotonic() + timeout
        while True:
            if all(self.health(g) == 200 for g in self.live()):
                return
            if time.monotonic() > deadline:
                states = {g.admin_port: self.health(g) for g in self.live()}
                raise RuntimeError(f"Garage cluster not healthy after {timeout:.0f} s: /health {states}")
            time.sleep(0.1)

    def create_bucket(self, name, key=None):
        self.cli("bucket", "create", name)
        self.cli("bucket", "allow", "--read", "--write", "--owner", name, "--key", key or self.access_key)

    def kill_node(self, i):
        """SIGKILL to node i."""
        self.nodes[i].kill()

    def stop(self):
        for g in self.nodes:
            g.stop()


def _xml_children(elem, name):
    return [c for c in elem if c.tag.rsplit("}", 1)[-1] == name]


def _xml_text(elem, name, default=None):
    found = _xml_children(elem, name)
    return found[0].text if found and found[0].text is not None else default


class S3Client:
    """A minimal S3 client for checks from tests: AWS Signature V4, path-style addressing,
    stdlib only (urllib). Not for bulk data: every body is read into memory."""

    def __init__(self, endpoint, region, access_key, secret_key, timeout=30):
        self.endpoint = endpoint.rstrip("/")
        self.host = urllib.parse.urlsplit(self.endpoint).netloc
        self.region = region
        self.access_key = access_key
        self.secret_key = secret_key
        self.timeout = timeout

    def request(self, method, bucket, key="", query=None, body=b""):
        """Returns (status, headers, body); HTTP errors are returned, not raised."""
        path = "/" + urllib.parse.quote(bucket, safe="")
        if key:
            path += "/" + urllib.parse.quote(key, safe="/~")
        q = sorted((query or {}).items())
        canonical_query = "&".join(
            f"{urllib.parse.quote(k, safe='~')}={urllib.parse.quote(str(v), safe='~')}" for k, v in q
        )
        now = datetime.datetime.now(datetime.timezone.utc)
        amz_date = now.strftime("%Y%m%dT%H%M%SZ")
        day = amz_date[:8]
        payload_hash = hashlib.sha256(body).hexdigest()
        headers = {"host": self.host, "x-amz-content-sha256": payload_hash, "x-amz-date": amz_date}
        signed = ";".join(sorted(headers))
        canonical = "\n".join(
            [
                method,
                path,
                canonical_query,
                "".join(f"{k}:{headers[k]}\n" for k in sorted(headers)),
                signed,
                payload_hash,
            ]
        )
        scope = f"{day}/{self.region}/s3/aws4_request"
        to_sign = "\n".join(
            ["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()]
        )
        k = ("AWS4" + self.secret_key).encode()
        for part in (day, self.region, "s3", "aws4_request"):
            k = hmac.new(k, part.encode(), hashlib.sha256).digest()
        signature = hmac.new(k, to_sign.encode(), hashlib.sha256).hexdigest()
        headers["authorization"] = (
            f"AWS4-HMAC-SHA256 Credential={self.access_key}/{scope}, "
            f"SignedHeaders={signed}, Signature={signature}"
        )
        del headers["host"]  # urllib sends it from the URL, byte for byte the same
        url = self.endpoint + path + (f"?{canonical_query}" if canonical_query else "")
        data = body if method in ("PUT", "POST") else None
        req = urllib.request.Request(url, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as r:
                return r.status, dict(r.headers), r.read()
        except urllib.error.HTTPError as e:
            return e.code, dict(e.headers), e.read()

    def _ok(self, what, status, body):
        if status // 100 != 2:
            raise RuntimeError(f"S3 {what}: HTTP {status}: {body[:300]!r}")

    def get_object(self, bucket, key):
        """The object's bytes, or None when it does not exist."""
        status, _h, body = self.request("GET", bucket, key)
        if status == 404:
            return None
        self._ok(f"GET {key}", status, body)
        return body

    def _pages(self, what, bucket, query, markers):
        """The XML root of every page of a paged bucket listing: `markers` maps each query
        parameter of the next page to the reply element that gives its value; the listing ends
        when IsTruncated is not "true" or the first marker is missing."""
        q = dict(query)
        while True:
            status, _h, body = self.request("GET", bucket, query=q)
            self._ok(what, status, body)
            root = ET.fromstring(body)
            yield root
            nexts = {param: _xml_text(root, tag) for param, tag in markers.items()}
            if _xml_text(root, "IsTruncated") != "true" or not next(iter(nexts.values())):
                return
            q = dict(query)
            q.update({param: value for param, value in nexts.items() if value})

    def list_objects(self, bucket, prefix=""):
        """{key: size} of every object under prefix (ListObjectsV2, all pages)."""
        found = {}
        query = {"list-type": "2", "prefix": prefix}
        markers = {"continuation-token": "NextContinuationToken"}
        for root in self._pages("ListObjectsV2", bucket, query, markers):
            for c in _xml_children(root, "Contents"):
                found[_xml_text(c, "Key")] = int(_xml_text(c, "Size", "0"))
        return found

    def list_multipart_uploads(self, bucket):
        """[(key, upload_id)] of every multipart upload in progress (all pages)."""
        found = []
        markers = {"key-marker": "NextKeyMarker", "upload-id-marker": "NextUploadIdMarker"}
        for root in self._pages("ListMultipartUploads", bucket, {"uploads": ""}, markers):
            for u in _xml_children(root, "Upload"):
                found.append((_xml_text(u, "Key"), _xml_text(u, "UploadId")))
        return found


def _serve(argv):
    import argparse

    p = argparse.ArgumentParser(description="Run a throw-away Garage until SIGTERM/SIGINT.")
    p.add_argument("kind", choices=["garage"])
    p.add_argument("--bucket", default="bench")
    p.add_argument("--env-file", required=True)
    a = p.parse_args(argv)
    g = Garage()
    stop = {"now": False}

    def on_signal(_sig, _frame):
        stop["now"] = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        secs = g.start()
        g.create_bucket(a.bucket)
        env = {
            "S3_ENDPOINT": g.endpoint,
            "S3_REGION": g.region,
            "S3_ACCESS_KEY": g.access_key,
            "S3_SECRET_KEY": g.secret_key,
            "S3_BUCKET": a.bucket,
            "GARAGE_PID": str(g.proc.pid),
        }
        tmp = a.env_file + ".tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.writelines(f"{k}='{v}'\n" for k, v in env.items())
        os.replace(tmp, a.env_file)
        print(f"garage ready at {g.endpoint} in {secs * 1000:.0f} ms", file=sys.stderr, flush=True)
        while not stop["now"] and g.proc.poll() is None:
            time.sleep(0.2)
        if g.proc.poll() is not None:
            print(f"garage exited unexpectedly; log tail:\n{tail(g.log)}", file=sys.stderr)
            return 1
        return 0
    finally:
        g.stop()


if __name__ == "__main__":
    sys.exit(_serve(sys.argv[1:]))
