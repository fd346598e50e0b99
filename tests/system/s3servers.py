#!/usr/bin/env python3
"""tests/system/s3servers.py — starts a throw-away single-node Garage S3 server on 127.0.0.1
for BucketFTP's system test (ftp_clients.py) and benchmark (bench/throughput.sh).

Python stdlib only. Same recipe as the Rust harness (gateway/tests/support/mod.rs):
temp dir + garage.toml on free ports, `garage server`, `layout assign` + `layout apply`,
`key import`, `bucket create`, `bucket allow --read --write --owner`.

As a library:   g = Garage(); g.start(); g.create_bucket("b"); ...; g.stop()
As a command:   s3servers.py garage --bucket NAME --env-file PATH
    starts Garage, creates the bucket, writes S3_ENDPOINT, S3_REGION, S3_ACCESS_KEY,
    S3_SECRET_KEY, S3_BUCKET, GARAGE_PID as shell assignments to PATH (mode 600), then waits
    until SIGTERM/SIGINT and stops Garage, deleting its data.

Garage binary: $GARAGE_BIN, else `garage` on PATH, else ~/.cargo/bin/garage.
Secrets are never printed.
"""

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
import urllib.request

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
    """One single-node Garage server in its own temp dir. Region "garage"."""

    region = "garage"

    def __init__(self):
        self.bin = garage_bin()
        self.dir = tempfile.mkdtemp(prefix="bucketftp-garage-")
        self.cfg = os.path.join(self.dir, "garage.toml")
        self.log = os.path.join(self.dir, "server.log")
        self.proc = None
        self.s3_port = 0
        self.rpc_port = 0
        # Garage key ids are "GK" + 24 hex digits; secrets 64 hex digits.
        self.access_key = "GK" + secrets.token_hex(12)
        self.secret_key = secrets.token_hex(32)

    @property
    def endpoint(self):
        return f"http://127.0.0.1:{self.s3_port}"

    def _write_config(self):
        self.s3_port, self.rpc_port = free_port(), free_port()
        cfg = f"""# Garage single-node test config written by tests/system/s3servers.py
metadata_dir = "{self.dir}/meta"
data_dir = "{self.dir}/data"
db_engine = "sqlite"
replication_factor = 1
rpc_bind_addr = "127.0.0.1:{self.rpc_port}"
rpc_public_addr = "127.0.0.1:{self.rpc_port}"
rpc_secret = "{secrets.token_hex(32)}"

[s3_api]
s3_region = "garage"
api_bind_addr = "127.0.0.1:{self.s3_port}"
"""
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
        node = self.cli("node", "id", "-q").strip().split("@")[0]
        self.cli("layout", "assign", "-z", "dc1", "-c", "1G", node)
        self.cli("layout", "apply", "--version", "1")
        self.import_key(self.access_key, self.secret_key, "test")
        self.cli("key", "allow", "--create-bucket", self.access_key)
        return time.monotonic() - t0

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
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def stop(self):
        self.kill()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()


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
