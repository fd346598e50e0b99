//! Test support: real S3-compatible servers on 127.0.0.1 for BucketFTP's end-to-end tests.
//!
//! Include it from a test file with `mod support;`. It starts a throw-away server process
//! per [`TestS3`] — Garage 2.5.0 (real, persistent) or moto 5.2.5 (in memory) — on free
//! ports in a fresh temp dir, and gives a ready `aws_sdk_s3::Client` configured exactly like
//! the gateway's (path style, static credentials, `WhenRequired` checksums).
//!
//! Finding the servers (install both with `scripts/install-test-deps.sh`):
//! - Garage: `$GARAGE_BIN`, else `garage` on `PATH`, else `~/.cargo/bin/garage`.
//! - moto: `$MOTO_SERVER`, else `<repo>/.venv-test/bin/moto_server`.
//!
//! Rules of use:
//! - One `TestS3` per test. It is tied to the test's thread and tokio runtime: the server is
//!   started under `setpriv --pdeathsig KILL` (when available), so it dies with the thread
//!   that started it — never keep a `TestS3` in a `static` shared between tests.
//! - Drop kills the server (SIGKILL) and deletes its temp dir. If the test is panicking, Drop
//!   first prints the tail of the server's log to stderr (libtest shows it for failed tests).
//! - Nothing here prints a secret key.

#![allow(dead_code)] // each test binary uses a different subset of these helpers

use std::fmt::Write as _;
use std::io::Read as _;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use aws_sdk_s3::Client;
use aws_sdk_s3::config::{
    BehaviorVersion, Builder, Credentials, Region, RequestChecksumCalculation,
    ResponseChecksumValidation,
};
use aws_sdk_s3::primitives::ByteStream;

/// Which S3-compatible server a [`TestS3`] runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum S3Kind {
    /// Garage 2.x single node (sqlite metadata, replication 1). Data survives `kill` + `restart`.
    Garage,
    /// moto server (in memory, accepts any credentials, enforces no permissions).
    /// Data is lost on `kill`/`restart`.
    Moto,
}

/// How long a server may take to become ready before `start` panics.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// A running S3-compatible server plus a client for it. See the module docs.
pub struct TestS3 {
    /// Which server this is.
    pub kind: S3Kind,
    /// `http://127.0.0.1:PORT` — the S3 API endpoint.
    pub endpoint: String,
    /// The signing region (`garage` for Garage, `us-east-1` for moto).
    pub region: String,
    /// Access key id that owns every bucket made with [`TestS3::create_bucket`].
    pub access_key: String,
    /// Its secret. Never print it.
    pub secret_key: String,
    /// A client for `endpoint` with `access_key`, configured like the gateway's.
    pub client: Client,
    child: Option<Child>,
    dir: PathBuf,
    s3_port: u16,
    rpc_port: u16,
    bin: PathBuf,
    log_path: PathBuf,
    /// Set when the failure was already reported: Drop then prints no log tail.
    quiet_drop: bool,
}

/// A new empty folder under the system's temp folder, named after `label`, this process and
/// a counter.
pub fn temp_dir(label: &str) -> std::path::PathBuf {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let d = std::env::temp_dir().join(format!("bucketftp-{label}-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap_or_else(|e| panic!("{e}"));
    d
}

/// A free TCP port on 127.0.0.1 (bind to port 0, read the port, close). Another process may
/// take it before it is used; `TestS3::start` retries with new ports if a bind fails.
pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0")
        .unwrap_or_else(|e| panic!("free_port: cannot bind 127.0.0.1:0: {e}"));
    l.local_addr()
        .unwrap_or_else(|e| panic!("free_port: local_addr: {e}"))
        .port()
}

/// An `aws_sdk_s3::Client` configured the way the gateway configures its own.
pub fn s3_client(endpoint: &str, region: &str, access_key: &str, secret_key: &str) -> Client {
    let conf = Builder::new()
        .behavior_version(BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(Region::new(region.to_owned()))
        .force_path_style(true)
        .credentials_provider(Credentials::new(
            access_key,
            secret_key,
            None,
            None,
            "bucketftp-test",
        ))
        .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
        .response_checksum_validation(ResponseChecksumValidation::WhenRequired)
        .build();
    Client::from_conf(conf)
}

/// `n` random bytes as lowercase hex, from /dev/urandom.
fn random_hex(n: usize) -> String {
    let mut buf = vec![0u8; n];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .unwrap_or_else(|e| panic!("reading /dev/urandom: {e}"));
    buf.iter().fold(String::with_capacity(2 * n), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

fn unique_temp_dir(prefix: &str) -> PathBuf {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!(
        "{prefix}-{}-{n}-{}",
        std::process::id(),
        random_hex(4)
    ));
    std::fs::create_dir_all(&dir)
        .unwrap_or_else(|e| panic!("cannot create temp dir {}: {e}", dir.display()));
    dir
}

/// The last `n` lines of a file, for failure messages.
fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| format!("<cannot read: {e}>"));
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

fn repo_root() -> PathBuf {
    // CARGO_MANIFEST_DIR is <repo>/gateway for the gateway's tests.
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut dir = manifest.as_path();
    loop {
        if dir.join("Cargo.lock").is_file() || dir.join(".git").exists() {
            return dir.to_path_buf();
        }
        match dir.parent() {
            Some(p) => dir = p,
            None => return manifest,
        }
    }
}

fn garage_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("GARAGE_BIN") {
        let p = PathBuf::from(p);
        assert!(
            p.is_file(),
            "GARAGE_BIN={} does not exist; run scripts/install-test-deps.sh",
            p.display()
        );
        return p;
    }
    if let Some(p) = which("garage") {
        return p;
    }
    if let Some(home) = std::env::var_os("HOME") {
        let p = PathBuf::from(home).join(".cargo/bin/garage");
        if p.is_file() {
            return p;
        }
    }
    panic!(
        "garage binary not found ($GARAGE_BIN, PATH, ~/.cargo/bin/garage); \
         install it with scripts/install-test-deps.sh (cargo install garage --locked --version 2.5.0)"
    )
}

fn moto_bin() -> PathBuf {
    let p = match std::env::var_os("MOTO_SERVER") {
        Some(p) => PathBuf::from(p),
        None => repo_root().join(".venv-test/bin/moto_server"),
    };
    assert!(
        p.is_file(),
        "moto_server not found at {} ($MOTO_SERVER or <repo>/.venv-test/bin/moto_server); \
         install it with scripts/install-test-deps.sh",
        p.display()
    );
    p
}

/// Spawns `bin args` with stdout+stderr appended to `log`, killed when the spawning thread dies
/// (via `setpriv --pdeathsig KILL` when setpriv exists).
fn spawn_logged(bin: &Path, args: &[&str], log: &Path, envs: &[(&str, &str)]) -> Child {
    let out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap_or_else(|e| panic!("cannot open log {}: {e}", log.display()));
    let err = out
        .try_clone()
        .unwrap_or_else(|e| panic!("cannot clone log handle: {e}"));
    let setpriv = Path::new("/usr/bin/setpriv");
    let mut cmd = if setpriv.is_file() {
        let mut c = Command::new(setpriv);
        c.args(["--pdeathsig", "KILL", "--"]).arg(bin);
        c
    } else {
        Command::new(bin)
    };
    cmd.args(args).stdin(Stdio::null()).stdout(out).stderr(err);
    for (k, v) in envs {
        cmd.env(k, v);
    }
    cmd.spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()))
}

fn tcp_open(port: u16) -> bool {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
}

/// True when the log, from byte `from` on, says the server could not bind its port.
fn bind_failed(log: &Path, from: usize) -> bool {
    let text = std::fs::read(log).unwrap_or_default();
    let text = String::from_utf8_lossy(text.get(from..).unwrap_or_default());
    text.contains("Address already in use") || text.contains("AddrInUse")
}

impl TestS3 {
    /// Starts a fresh server of `kind` and waits until it answers S3 requests with the test
    /// credentials. Panics with the server's log tail if it cannot start.
    pub async fn start(kind: S3Kind) -> TestS3 {
        let t0 = Instant::now();
        let (bin, region) = match kind {
            S3Kind::Garage => (garage_bin(), "garage"),
            S3Kind::Moto => (moto_bin(), "us-east-1"),
        };
        let (access_key, secret_key) = match kind {
            // Garage key ids are "GK" + 24 hex digits; secrets are 64 hex digits.
            S3Kind::Garage => (format!("GK{}", random_hex(12)), random_hex(32)),
            // moto accepts any credentials.
            S3Kind::Moto => ("testing".to_owned(), "testing".to_owned()),
        };
        let mut attempt = 0;
        loop {
            attempt += 1;
            let dir = unique_temp_dir(match kind {
                S3Kind::Garage => "bucketftp-garage",
                S3Kind::Moto => "bucketftp-moto",
            });
            let s3_port = free_port();
            let rpc_port = if kind == S3Kind::Garage {
                free_port()
            } else {
                0
            };
            let endpoint = format!("http://127.0.0.1:{s3_port}");
            let client = s3_client(&endpoint, region, &access_key, &secret_key);
            let mut s3 = TestS3 {
                kind,
                endpoint,
                region: region.to_owned(),
                access_key: access_key.clone(),
                secret_key: secret_key.clone(),
                client,
                child: None,
                log_path: dir.join("server.log"),
                dir,
                s3_port,
                rpc_port,
                bin: bin.clone(),
                quiet_drop: false,
            };
            if kind == S3Kind::Garage {
                s3.write_garage_config();
            }
            match s3.launch(true).await {
                Ok(()) => {
                    eprintln!(
                        "[support] {kind:?} ready at {} in {} ms (dir {})",
                        s3.endpoint,
                        t0.elapsed().as_millis(),
                        s3.dir.display()
                    );
                    return s3;
                }
                Err(msg) => {
                    s3.kill();
                    s3.quiet_drop = true;
                    if attempt < 3 && bind_failed(&s3.log_path, 0) {
                        // A port we picked was taken meanwhile: start over with new ports
                        // (dropping `s3` removes its dir).
                        continue;
                    }
                    panic!(
                        "{kind:?} failed to start ({msg}); server binary {}; log {}:\n{}",
                        bin.display(),
                        s3.log_path.display(),
                        tail(&s3.log_path, 40)
                    );
                }
            }
        }
    }

    /// `start(S3Kind::Garage)`.
    pub async fn garage() -> TestS3 {
        Self::start(S3Kind::Garage).await
    }

    /// `start(S3Kind::Moto)`.
    pub async fn moto() -> TestS3 {
        Self::start(S3Kind::Moto).await
    }

    fn config_path(&self) -> PathBuf {
        self.dir.join("garage.toml")
    }

    fn write_garage_config(&self) {
        let d = self.dir.display();
        let cfg = format!(
            r#"# Garage single-node test config written by gateway/tests/support
metadata_dir = "{d}/meta"
data_dir = "{d}/data"
db_engine = "sqlite"
replication_factor = 1
rpc_bind_addr = "127.0.0.1:{rpc}"
rpc_public_addr = "127.0.0.1:{rpc}"
rpc_secret = "{secret}"

[s3_api]
s3_region = "garage"
api_bind_addr = "127.0.0.1:{s3}"
"#,
            rpc = self.rpc_port,
            s3 = self.s3_port,
            secret = random_hex(32),
        );
        let path = self.config_path();
        std::fs::write(&path, cfg)
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
        // Garage refuses a world-readable file holding rpc_secret.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600));
        }
    }

    /// Spawns the server process and waits for readiness. `first` = fresh data dir (Garage:
    /// assign the layout and import the key; moto: nothing to set up).
    async fn launch(&mut self, first: bool) -> Result<(), String> {
        let deadline = Instant::now() + READY_TIMEOUT;
        match self.kind {
            S3Kind::Garage => {
                let cfg = self.config_path();
                let cfg = cfg.to_string_lossy().into_owned();
                self.child = Some(spawn_logged(
                    &self.bin,
                    &["-c", &cfg, "server"],
                    &self.log_path,
                    &[("RUST_LOG", "garage=info"), ("RUST_BACKTRACE", "1")],
                ));
                // 1. RPC up: `garage status` succeeds.
                loop {
                    self.check_alive()?;
                    if tcp_open(self.rpc_port) && self.garage_cli(&["status"]).await.is_ok() {
                        break;
                    }
                    if Instant::now() > deadline {
                        return Err("`garage status` never succeeded".into());
                    }
                    tokio::time::sleep(Duration::from_millis(25)).await;
                }
                if first {
                    // 2. One-node layout, then the test key.
                    let id = self.garage_cli(&["node", "id", "-q"]).await?;
                    let id = id.trim().split('@').next().unwrap_or_default().to_owned();
                    self.garage_cli(&["layout", "assign", "-z", "dc1", "-c", "1G", &id])
                        .await?;
                    self.garage_cli(&["layout", "apply", "--version", "1"])
                        .await?;
                    let (ak, sk) = (self.access_key.clone(), self.secret_key.clone());
                    self.garage_cli(&["key", "import", "--yes", "-n", "test", &ak, &sk])
                        .await?;
                    self.garage_cli(&["key", "allow", "--create-bucket", &ak])
                        .await?;
                }
            }
            S3Kind::Moto => {
                let port = self.s3_port.to_string();
                self.child = Some(spawn_logged(
                    &self.bin,
                    &["-H", "127.0.0.1", "-p", &port],
                    &self.log_path,
                    &[("PYTHONUNBUFFERED", "1")],
                ));
                loop {
                    self.check_alive()?;
                    if tcp_open(self.s3_port) {
                        break;
                    }
                    if Instant::now() > deadline {
                        return Err(format!("port {} never opened", self.s3_port));
                    }
                    tokio::time::sleep(Duration::from_millis(25)).await;
                }
            }
        }
        // 3. S3 answers ListBuckets with our credentials.
        loop {
            self.check_alive()?;
            match self.client.list_buckets().send().await {
                Ok(_) => return Ok(()),
                Err(e) => {
                    if Instant::now() > deadline {
                        return Err(format!("ListBuckets never succeeded: {e:?}"));
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    fn check_alive(&mut self) -> Result<(), String> {
        match self.child.as_mut().map(|c| c.try_wait()) {
            Some(Ok(Some(status))) => Err(format!("server exited early with {status}")),
            Some(Err(e)) => Err(format!("cannot poll server process: {e}")),
            _ => Ok(()),
        }
    }

    /// Runs `garage -c <cfg> ARGS...`; Ok(stdout) or Err(message with stdout+stderr).
    /// Callers must not pass commands whose output contains a secret (`key create`, `key info
    /// --show-secret`): it would end up in a panic message.
    async fn garage_cli(&self, args: &[&str]) -> Result<String, String> {
        assert_eq!(
            self.kind,
            S3Kind::Garage,
            "garage CLI on a {:?} server",
            self.kind
        );
        let out = tokio::process::Command::new(&self.bin)
            .arg("-c")
            .arg(self.config_path())
            .args(args)
            .stdin(Stdio::null())
            .output()
            .await
            .map_err(|e| format!("cannot run {}: {e}", self.bin.display()))?;
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        if out.status.success() {
            Ok(stdout)
        } else {
            // `key import` is the one command given a secret; never echo its arguments.
            let shown = if args.first() == Some(&"key") {
                args[..2.min(args.len())].join(" ")
            } else {
                args.join(" ")
            };
            Err(format!(
                "`garage {shown}` failed ({}): {}{}",
                out.status,
                stdout,
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    }

    /// Creates `name`, readable and writable (and owned) by `access_key`.
    pub async fn create_bucket(&self, name: &str) {
        match self.kind {
            S3Kind::Garage => {
                // Create through the CLI so the bucket is a global alias any key can be granted.
                let r = async {
                    self.garage_cli(&["bucket", "create", name]).await?;
                    self.garage_cli(&[
                        "bucket",
                        "allow",
                        "--read",
                        "--write",
                        "--owner",
                        name,
                        "--key",
                        &self.access_key,
                    ])
                    .await
                }
                .await;
                if let Err(e) = r {
                    panic!("create_bucket({name}) on Garage: {e}");
                }
            }
            S3Kind::Moto => {
                if let Err(e) = self.client.create_bucket().bucket(name).send().await {
                    panic!("create_bucket({name}) on moto: {e:?}");
                }
            }
        }
    }

    /// A second valid key pair that can neither read nor write any bucket.
    /// `Some` on Garage (a key with no bucket permissions). `None` on moto: moto accepts any
    /// credentials and enforces no IAM by default, so no such key exists there — tests that
    /// need one should skip with a message when this returns `None`.
    pub async fn create_key_without_access(&self) -> Option<(String, String)> {
        match self.kind {
            S3Kind::Garage => {
                let (ak, sk) = (format!("GK{}", random_hex(12)), random_hex(32));
                if let Err(e) = self
                    .garage_cli(&["key", "import", "--yes", "-n", "no-access", &ak, &sk])
                    .await
                {
                    panic!("create_key_without_access on Garage: {e}");
                }
                Some((ak, sk))
            }
            S3Kind::Moto => None,
        }
    }

    /// A client like `self.client` but signing with another key pair.
    pub fn client_with(&self, access_key: &str, secret_key: &str) -> Client {
        s3_client(&self.endpoint, &self.region, access_key, secret_key)
    }

    /// The object's bytes, or None if there is no such key. Panics on any other error.
    pub async fn get(&self, bucket: &str, key: &str) -> Option<Vec<u8>> {
        match self
            .client
            .get_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
        {
            Ok(out) => match out.body.collect().await {
                Ok(b) => Some(b.into_bytes().to_vec()),
                Err(e) => panic!("get({bucket}, {key}): reading body: {e}"),
            },
            Err(e) => {
                if e.as_service_error().is_some_and(|se| se.is_no_such_key()) {
                    None
                } else {
                    panic!("get({bucket}, {key}): {e:?}")
                }
            }
        }
    }

    /// PutObject. Panics on error.
    pub async fn put(&self, bucket: &str, key: &str, body: Vec<u8>) {
        if let Err(e) = self
            .client
            .put_object()
            .bucket(bucket)
            .key(key)
            .body(ByteStream::from(body))
            .send()
            .await
        {
            panic!("put({bucket}, {key}): {e:?}");
        }
    }

    /// Every key under `prefix` (ListObjectsV2, all pages, no delimiter), in S3 order.
    pub async fn keys(&self, bucket: &str, prefix: &str) -> Vec<String> {
        let mut keys = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let out = self
                .client
                .list_objects_v2()
                .bucket(bucket)
                .prefix(prefix)
                .set_continuation_token(token.take())
                .send()
                .await
                .unwrap_or_else(|e| panic!("keys({bucket}, {prefix}): {e:?}"));
            keys.extend(
                out.contents()
                    .iter()
                    .filter_map(|o| o.key().map(str::to_owned)),
            );
            match (out.is_truncated(), out.next_continuation_token()) {
                (Some(true), Some(t)) => token = Some(t.to_owned()),
                _ => return keys,
            }
        }
    }

    /// Every in-progress multipart upload in `bucket` as (key, upload id), all pages.
    pub async fn multipart_uploads(&self, bucket: &str) -> Vec<(String, String)> {
        let mut all = Vec::new();
        let mut key_marker: Option<String> = None;
        let mut id_marker: Option<String> = None;
        loop {
            let out = self
                .client
                .list_multipart_uploads()
                .bucket(bucket)
                .set_key_marker(key_marker.take())
                .set_upload_id_marker(id_marker.take())
                .send()
                .await
                .unwrap_or_else(|e| panic!("multipart_uploads({bucket}): {e:?}"));
            all.extend(out.uploads().iter().map(|u| {
                (
                    u.key().unwrap_or_default().to_owned(),
                    u.upload_id().unwrap_or_default().to_owned(),
                )
            }));
            if out.is_truncated() != Some(true) {
                return all;
            }
            key_marker = out.next_key_marker().map(str::to_owned);
            id_marker = out.next_upload_id_marker().map(str::to_owned);
            if key_marker.is_none() && id_marker.is_none() {
                return all;
            }
        }
    }

    /// [`multipart_uploads`](Self::multipart_uploads), asked again every `every` up to `tries`
    /// more times while some are left (aborts run in the background): what is left then.
    pub async fn multipart_uploads_settled(
        &self,
        bucket: &str,
        tries: usize,
        every: Duration,
    ) -> Vec<(String, String)> {
        let mut left = self.multipart_uploads(bucket).await;
        for _ in 0..tries {
            if left.is_empty() {
                break;
            }
            tokio::time::sleep(every).await;
            left = self.multipart_uploads(bucket).await;
        }
        left
    }

    /// SIGKILLs the server now (no clean shutdown). Idempotent. The temp dir stays until Drop.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Whether the server process is running.
    pub fn is_running(&mut self) -> bool {
        self.child.is_some() && self.check_alive().is_ok()
    }

    /// Kills the server if it runs, then starts it again on the same port and temp dir.
    /// Garage keeps its data (buckets, keys, objects, incomplete multipart uploads).
    /// moto keeps nothing: it starts empty, so buckets must be created again.
    pub async fn restart(&mut self) {
        self.kill();
        let t0 = Instant::now();
        let mut tries = 0;
        loop {
            tries += 1;
            let log_len = std::fs::metadata(&self.log_path).map_or(0, |m| m.len() as usize);
            match self.launch(false).await {
                Ok(()) => break,
                // The old socket may linger for a moment; retry the same port a few times.
                Err(_) if tries < 20 && bind_failed(&self.log_path, log_len) => {
                    self.kill();
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
                Err(msg) => {
                    let log_tail = tail(&self.log_path, 40);
                    self.kill();
                    self.quiet_drop = true;
                    panic!(
                        "{:?} failed to restart on {} ({msg}); log {}:\n{log_tail}",
                        self.kind,
                        self.endpoint,
                        self.log_path.display()
                    );
                }
            }
        }
        eprintln!(
            "[support] {:?} restarted at {} in {} ms",
            self.kind,
            self.endpoint,
            t0.elapsed().as_millis()
        );
    }

    /// Path of the server's combined stdout/stderr log.
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }
}

impl Drop for TestS3 {
    fn drop(&mut self) {
        if std::thread::panicking() && !self.quiet_drop {
            eprintln!(
                "[support] test failed; last lines of {:?} log {}:\n{}",
                self.kind,
                self.log_path.display(),
                tail(&self.log_path, 30)
            );
        }
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `both!(scenario)`: runs `async fn scenario(kind: S3Kind)` of the including test file once
/// against Garage and once against moto, as two tests `scenario::garage` and `scenario::moto`.
#[allow(unused_macros)] // only some test binaries use it
macro_rules! both {
    ($name:ident) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn garage() {
                super::$name(super::S3Kind::Garage).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn moto() {
                super::$name(super::S3Kind::Moto).await
            }
        }
    };
}
