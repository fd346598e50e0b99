//! Test support: real S3-compatible servers on 127.0.0.1 for BucketFTP's end-to-end tests.
//!
//! Include it from a test file with `#[macro_use] mod support;`. Each [`TestS3`] is a
//! throw-away store in a fresh temp dir with a ready `aws_sdk_s3::Client` built by the
//! gateway's own [`ClientFactory`] (so tests talk to the store exactly as the gateway does):
//! - [`S3Kind::Local`]: the embedded store (`localstore`), started in the test process the way
//!   the gateway's local mode starts it. Needs nothing installed.
//! - [`S3Kind::Garage`]: a Garage 2.5.0 process (real, persistent): `$GARAGE_BIN`, else
//!   `garage` on `PATH`, else `~/.cargo/bin/garage`.
//! - [`S3Kind::Moto`]: a moto 5.2.5 process (in memory): `$MOTO_SERVER`, else
//!   `<repo>/.venv-test/bin/moto_server`.
//!
//! `scripts/install-test-deps.sh` installs Garage and moto.
//!
//! # Which stores run
//! `BUCKETFTP_TEST_STORES` (see [`STORES_VAR`]) lists the stores the tests run against,
//! comma-separated: `local`, `garage`, `moto`, or `all`. Unset, it is `local`, so
//! `cargo test -p gateway` works on a machine without Garage or moto; `scripts/test.sh` (CI)
//! selects all three. A name it does not know fails every test. A selected store that cannot
//! start fails the test: it is never skipped.
//!
//! - [`each_store!`]`(scenario)` makes one test per store, `scenario::local`,
//!   `scenario::garage` and `scenario::moto`.
//! - A test that needs one store's own behaviour carries
//!   `#[cfg_attr(not(test_store = "garage"), ignore = "store garage not selected (...)")]`.
//! - A test of a store that is not selected is reported as ignored, with that reason, never
//!   as passed: `gateway/build.rs` turns the variable into `test_store` cfgs (and cargo
//!   rebuilds when it changes).
//! - [`TestS3::start`] panics for a store that is not selected: a test that forgot the
//!   check fails instead of needing a server the machine may not have.
//!
//! # Rules of use
//! - One `TestS3` per test. It is tied to the test's thread and tokio runtime: the local store
//!   runs on that runtime, and server processes are started under `setpriv --pdeathsig KILL`
//!   (when available), so they die with the thread that started them — never keep a `TestS3`
//!   in a `static` shared between tests.
//! - Drop stops the store (SIGKILL for a process) and deletes its temp dir. If the test is
//!   panicking, Drop first prints the tail of the server's log to stderr (libtest shows it
//!   for failed tests).
//! - Nothing here prints a secret key.

#![allow(dead_code)] // each test binary uses a different subset of these helpers

use std::fmt::Write as _;
use std::io::Write as _;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::ByteStream;
use gateway::S3Settings;
use gateway::s3::ClientFactory;
use localstore::{LocalStore, LocalStoreConfig};

/// The environment variable that selects the stores (see the module docs).
pub(crate) const STORES_VAR: &str = "BUCKETFTP_TEST_STORES";

/// Which S3-compatible server a [`TestS3`] runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum S3Kind {
    /// The embedded store (`localstore`) in this process: checks signatures, one key.
    /// Data survives `kill` + `restart` (it is a folder).
    Local,
    /// Garage 2.x single node (sqlite metadata, replication 1). Data survives `kill` + `restart`.
    Garage,
    /// moto server (in memory, accepts any credentials, enforces no permissions).
    /// Data is lost on `kill`/`restart`.
    Moto,
}

impl S3Kind {
    /// Every store, in the order tests run them.
    pub(crate) const ALL: [S3Kind; 3] = [S3Kind::Local, S3Kind::Garage, S3Kind::Moto];

    /// The store's name in [`STORES_VAR`].
    pub(crate) fn name(self) -> &'static str {
        match self {
            S3Kind::Local => "local",
            S3Kind::Garage => "garage",
            S3Kind::Moto => "moto",
        }
    }
}

/// The stores a value of [`STORES_VAR`] names (`None`: unset). Panics on a name it does not
/// know or a list naming none, so a typo fails the tests instead of running fewer.
pub(crate) fn parse_stores(value: Option<&str>) -> Vec<S3Kind> {
    let Some(value) = value else {
        return vec![S3Kind::Local];
    };
    let mut kinds = Vec::new();
    for name in value.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        let named: &[S3Kind] = match name.to_ascii_lowercase().as_str() {
            "all" => &S3Kind::ALL,
            "local" => &[S3Kind::Local],
            "garage" => &[S3Kind::Garage],
            "moto" => &[S3Kind::Moto],
            _ => {
                panic!("{STORES_VAR}={value:?}: unknown store {name:?} (local, garage, moto, all)")
            }
        };
        for kind in named {
            if !kinds.contains(kind) {
                kinds.push(*kind);
            }
        }
    }
    assert!(
        !kinds.is_empty(),
        "{STORES_VAR}={value:?} names no store (local, garage, moto, all)"
    );
    kinds
}

/// The stores [`STORES_VAR`] selects for this run.
pub(crate) fn selected_stores() -> Vec<S3Kind> {
    let value = std::env::var(STORES_VAR).ok();
    let stores = parse_stores(value.as_deref());
    // The `test_store` cfgs that mark unselected tests ignored come from the value at build
    // time (gateway/build.rs): both must name the same stores.
    let built = parse_stores(Some(env!("BUCKETFTP_TEST_STORES_BUILT")));
    let mut sorted = stores.clone();
    sorted.sort_by_key(|k| k.name());
    let mut built_sorted = built;
    built_sorted.sort_by_key(|k| k.name());
    assert_eq!(
        sorted, built_sorted,
        "{STORES_VAR} names other stores than the test binaries were built for: run them \
         through cargo test (it rebuilds when the variable changes)"
    );
    stores
}

/// How long a server may take to become ready before `start` panics.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// A running S3-compatible server plus a client for it. See the module docs.
pub(crate) struct TestS3 {
    /// Which server this is.
    pub kind: S3Kind,
    /// `http://127.0.0.1:PORT` — the S3 API endpoint.
    pub endpoint: String,
    /// The signing region (`local`, `garage`, `us-east-1` for moto).
    pub region: String,
    /// Access key id that owns every bucket made with [`TestS3::create_bucket`].
    pub access_key: String,
    /// Its secret. Never print it.
    pub secret_key: String,
    /// A client for `endpoint` with `access_key`, configured like the gateway's.
    pub client: Client,
    child: Option<Child>,
    /// The running embedded store ([`S3Kind::Local`]).
    local: Option<LocalStore>,
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
pub(crate) fn temp_dir(label: &str) -> PathBuf {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let d = std::env::temp_dir().join(format!("bucketftp-{label}-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A free TCP port on 127.0.0.1 (bind to port 0, read the port, close). Another process may
/// take it before it is used; `TestS3::start` retries with new ports if a bind fails.
pub(crate) fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("free_port: cannot bind 127.0.0.1:0");
    l.local_addr().expect("free_port: local_addr").port()
}

/// How often [`eventually`] and [`eventually_some`] ask again.
const POLL_EVERY: Duration = Duration::from_millis(10);

/// Waits until `f` answers `Some`, asking at once and then every 10 ms: its value. Panics
/// naming `what` when `within` has passed without one. A wait for a state, not a fixed sleep.
pub(crate) async fn eventually_some<T, F, Fut>(within: Duration, what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not within {within:?}: {what}"
        );
        tokio::time::sleep(POLL_EVERY).await;
    }
}

/// Waits until `f` answers true (see [`eventually_some`]); panics naming `what` when `within`
/// has passed first.
pub(crate) async fn eventually<F, Fut>(within: Duration, what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    eventually_some(within, what, || {
        let fut = f();
        async move { fut.await.then_some(()) }
    })
    .await;
}

/// A client for a path-style store at `endpoint`, built by the gateway's own
/// [`ClientFactory`] (the code that makes every client of a running gateway).
pub(crate) fn s3_client(
    endpoint: &str,
    region: &str,
    access_key: &str,
    secret_key: &str,
) -> Client {
    ClientFactory::new(&S3Settings::custom(endpoint, region))
        .expect("test endpoints are http:// URLs")
        .client(access_key, secret_key, None)
}

/// A gateway on a free port of 127.0.0.1 reaching the store through `settings`, with
/// `tweak` applied to its config first.
pub(crate) async fn start_gateway(
    settings: S3Settings,
    tweak: impl FnOnce(&mut gateway::GatewayConfig),
) -> gateway::GatewayHandle {
    let mut config = gateway::GatewayConfig::new(settings);
    config.listen = SocketAddr::from(([127, 0, 0, 1], 0));
    tweak(&mut config);
    gateway::Gateway::start(config).await.expect("gateway")
}

/// A command for the `bucketftp-server` binary in endpoint mode on a free port of 127.0.0.1
/// against `s3` (path-style), with `dir` as its data folder, `args` added, stdout piped (see
/// [`listen_address`]) and killed when dropped.
pub(crate) fn server_command(s3: &TestS3, dir: &Path, args: &[&str]) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_bucketftp-server"));
    command
        .args(["--listen", "127.0.0.1:0", "--endpoint", &s3.endpoint])
        .args(["--region", &s3.region, "--path-style", "--data-dir"])
        .arg(dir)
        .args(args)
        .stdout(Stdio::piped())
        .kill_on_drop(true);
    command
}

/// Reads a [`server_command`] child's stdout up to its `BucketFTP listening on ADDR` line.
/// Returns the address, every line printed so far, and the reader: keep it while the server
/// runs (a closed pipe would fail its next print).
pub(crate) async fn listen_address(
    child: &mut tokio::process::Child,
) -> (
    SocketAddr,
    String,
    tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStdout>>,
) {
    use tokio::io::AsyncBufReadExt as _;
    let stdout = child.stdout.take().expect("server_command pipes stdout");
    let mut lines = tokio::io::BufReader::new(stdout).lines();
    let mut printed = String::new();
    loop {
        let line = lines
            .next_line()
            .await
            .ok()
            .flatten()
            .unwrap_or_else(|| panic!("no listen line: {printed}"));
        printed.push_str(&line);
        printed.push('\n');
        if let Some(addr) = line.strip_prefix("BucketFTP listening on ") {
            return (addr.parse().unwrap(), printed, lines);
        }
    }
}

/// Transfer limits for tests: 5 MiB parts (the S3 minimum, so a few MiB make a multipart
/// upload), `parts_in_flight` at once, 64 MiB of buffers.
pub(crate) fn small_parts(parts_in_flight: usize) -> gateway::TransferLimits {
    const MIB: usize = 1024 * 1024;
    gateway::TransferLimits::new(5 * MIB, parts_in_flight, 64 * MIB).unwrap()
}

/// `n` random bytes as lowercase hex, from /dev/urandom.
fn random_hex(n: usize) -> String {
    let mut buf = vec![0u8; n];
    getrandom::fill(&mut buf).expect("the OS's random source");
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
    let err = out.try_clone().expect("cannot clone log handle");
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
    /// credentials. Panics with the server's log tail if it cannot start, and for a store
    /// [`STORES_VAR`] does not select (see the module docs).
    pub(crate) async fn start(kind: S3Kind) -> TestS3 {
        assert!(
            selected_stores().contains(&kind),
            "{kind:?} is not selected by {STORES_VAR}: give the test \
             #[cfg_attr(not(test_store = \"{}\"), ignore = ...)], or make it with each_store!",
            kind.name()
        );
        let t0 = Instant::now();
        let (bin, region, access_key, secret_key) = match kind {
            // The gateway's local mode keeps a generated key pair beside the data (read at
            // the first launch, below).
            S3Kind::Local => (
                PathBuf::new(),
                localstore::REGION,
                String::new(),
                String::new(),
            ),
            // Garage key ids are "GK" + 24 hex digits; secrets are 64 hex digits.
            S3Kind::Garage => (
                garage_bin(),
                "garage",
                format!("GK{}", random_hex(12)),
                random_hex(32),
            ),
            // moto accepts any credentials.
            S3Kind::Moto => (
                moto_bin(),
                "us-east-1",
                "testing".to_owned(),
                "testing".to_owned(),
            ),
        };
        let mut attempt = 0;
        loop {
            attempt += 1;
            let dir = unique_temp_dir(&format!("bucketftp-{}", kind.name()));
            let (access_key, secret_key) = if kind == S3Kind::Local {
                localstore::load_or_create_credentials(&dir).expect("local store credentials")
            } else {
                (access_key.clone(), secret_key.clone())
            };
            // The local store binds port 0 at the first launch and keeps that port.
            let s3_port = if kind == S3Kind::Local {
                0
            } else {
                free_port()
            };
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
                access_key,
                secret_key,
                client,
                child: None,
                local: None,
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

    /// Starts the embedded store over the temp dir, on `s3_port` (0 at the first launch: a
    /// free port, which it then keeps). A failure is also appended to the log file, so
    /// [`bind_failed`] and the failure messages see it as for a server process.
    async fn launch_local(&mut self) -> Result<(), String> {
        let started = LocalStore::start(LocalStoreConfig {
            root: self.dir.clone(),
            access_key: self.access_key.clone(),
            secret_key: self.secret_key.clone(),
            bind: SocketAddr::from(([127, 0, 0, 1], self.s3_port)),
        })
        .await;
        let store = match started {
            Ok(store) => store,
            Err(e) => {
                let msg = format!("local store: {e}");
                let _ = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&self.log_path)
                    .and_then(|mut log| writeln!(log, "{msg}"));
                return Err(msg);
            }
        };
        if self.s3_port == 0 {
            self.s3_port = store.local_addr().port();
            self.endpoint = store.endpoint();
            self.client = s3_client(
                &self.endpoint,
                &self.region,
                &self.access_key,
                &self.secret_key,
            );
        }
        self.local = Some(store);
        Ok(())
    }

    /// Spawns the server process and waits for readiness. `first` = fresh data dir (Garage:
    /// assign the layout and import the key; moto: nothing to set up).
    async fn launch(&mut self, first: bool) -> Result<(), String> {
        let deadline = Instant::now() + READY_TIMEOUT;
        match self.kind {
            S3Kind::Local => self.launch_local().await?,
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
        if let Some(store) = &self.local {
            return if tcp_open(store.local_addr().port()) {
                Ok(())
            } else {
                Err("the local store stopped listening".into())
            };
        }
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
    pub(crate) async fn create_bucket(&self, name: &str) {
        match self.kind {
            S3Kind::Local => {
                // As the gateway's local mode does: a folder in the store's root.
                let store = self.local.as_ref().expect("the local store is running");
                if let Err(e) = store.ensure_bucket(name) {
                    panic!("create_bucket({name}) on the local store: {e}");
                }
            }
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
    /// `Some` on Garage (a key with no bucket permissions). `None` on the local store (it
    /// knows one key) and on moto (it accepts any credentials and enforces no IAM by
    /// default): no such key exists there.
    pub(crate) async fn create_key_without_access(&self) -> Option<(String, String)> {
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
            S3Kind::Local | S3Kind::Moto => None,
        }
    }

    /// A client like `self.client` but signing with another key pair.
    pub(crate) fn client_with(&self, access_key: &str, secret_key: &str) -> Client {
        s3_client(&self.endpoint, &self.region, access_key, secret_key)
    }

    /// The object's bytes, or None if there is no such key. Panics on any other error.
    pub(crate) async fn get(&self, bucket: &str, key: &str) -> Option<Vec<u8>> {
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
    pub(crate) async fn put(&self, bucket: &str, key: &str, body: Vec<u8>) {
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
    pub(crate) async fn keys(&self, bucket: &str, prefix: &str) -> Vec<String> {
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

    /// What [`keys`](Self::keys)`(bucket, prefix)` lists, sorted, when the bucket holds just
    /// `stored`: the local store keeps objects as files in folders, and lists every folder
    /// above an object as a folder marker (`a/`, `a/b/`) too.
    pub(crate) fn listed(&self, prefix: &str, stored: &[&str]) -> Vec<String> {
        let mut keys: Vec<String> = stored.iter().map(|k| (*k).to_owned()).collect();
        if self.kind == S3Kind::Local {
            for key in stored {
                keys.extend(key.match_indices('/').map(|(i, _)| key[..=i].to_owned()));
            }
        }
        keys.retain(|k| k.starts_with(prefix));
        keys.sort();
        keys.dedup();
        keys
    }

    /// Every in-progress multipart upload in `bucket` as (key, upload id), all pages.
    pub(crate) async fn multipart_uploads(&self, bucket: &str) -> Vec<(String, String)> {
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
    pub(crate) async fn multipart_uploads_settled(
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

    /// Asserts that no multipart upload is left in `bucket` (aborts run in the background:
    /// asked again every 250 ms for up to 30 s while some are); `what` says after what.
    pub(crate) async fn assert_no_uploads_left(&self, bucket: &str, what: &str) {
        let left = self
            .multipart_uploads_settled(bucket, 120, Duration::from_millis(250))
            .await;
        assert!(left.is_empty(), "{what}: multipart uploads left: {left:?}");
    }

    /// SIGKILLs the server now (no clean shutdown; the local store is dropped, which closes
    /// its listener and ends its connections after their current request). Idempotent. The
    /// temp dir stays until Drop.
    pub(crate) fn kill(&mut self) {
        self.local = None;
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Whether the server process is running.
    pub(crate) fn is_running(&mut self) -> bool {
        (self.child.is_some() || self.local.is_some()) && self.check_alive().is_ok()
    }

    /// Kills the server if it runs, then starts it again on the same port and temp dir.
    /// Garage and the local store keep their data (buckets, keys, objects, incomplete
    /// multipart uploads).
    /// moto keeps nothing: it starts empty, so buckets must be created again.
    pub(crate) async fn restart(&mut self) {
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
    pub(crate) fn log_path(&self) -> &Path {
        &self.log_path
    }
}

impl Drop for TestS3 {
    fn drop(&mut self) {
        if std::thread::panicking() && !self.quiet_drop && self.kind != S3Kind::Local {
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

/// `each_store!(scenario)`: runs `async fn scenario(kind: S3Kind)` of the including test file
/// once per store, as the tests `scenario::local`, `scenario::garage` and `scenario::moto`.
/// Each is ignored, saying why, when its store is not selected (see the module docs).
#[allow(unused_macros)] // only some test binaries use it
macro_rules! each_store {
    ($name:ident) => {
        mod $name {
            #[cfg_attr(
                not(test_store = "local"),
                ignore = "store local not selected (BUCKETFTP_TEST_STORES)"
            )]
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn local() {
                super::$name($crate::support::S3Kind::Local).await
            }
            #[cfg_attr(
                not(test_store = "garage"),
                ignore = "store garage not selected (BUCKETFTP_TEST_STORES)"
            )]
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn garage() {
                super::$name($crate::support::S3Kind::Garage).await
            }
            #[cfg_attr(
                not(test_store = "moto"),
                ignore = "store moto not selected (BUCKETFTP_TEST_STORES)"
            )]
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn moto() {
                super::$name($crate::support::S3Kind::Moto).await
            }
        }
    };
}
