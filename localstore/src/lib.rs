//! Embedded S3-compatible server over a local folder.
//!
//! BucketFTP uses this when the user has no cloud account: [`LocalStore::start`] serves a
//! folder over HTTP on `127.0.0.1`, and the gateway talks to it with `aws-sdk-s3` exactly as
//! to any S3 server (path style, region [`LocalStore::region`], SigV4 with the configured
//! key); from the same process its requests skip the socket ([`direct`]). Users see their
//! files as ordinary files in that folder.
//!
//! ```no_run
//! # async fn demo() -> Result<(), localstore::LocalStoreError> {
//! use localstore::{LocalStore, LocalStoreConfig, load_or_create_credentials};
//! let root = std::path::PathBuf::from("/home/me/BucketFTP");
//! let (access_key, secret_key) = load_or_create_credentials(&root.join(".config"))?;
//! let store = LocalStore::start(LocalStoreConfig {
//!     root,
//!     access_key,
//!     secret_key,
//!     bind: "127.0.0.1:0".parse().expect("literal address"),
//! })
//! .await?;
//! store.ensure_bucket("files")?;
//! println!("S3 endpoint {} region {}", store.endpoint(), store.region());
//! store.stop().await;
//! # Ok(()) }
//! ```
//!
//! # Layout
//!
//! On disk, under `root`:
//! - `<bucket>/` — one folder per bucket (only names valid as S3 bucket names count).
//! - `<bucket>/a/b/c.txt` — object `a/b/c.txt`. Every folder below a bucket is also a
//!   zero-byte folder-marker object `a/`, `a/b/`.
//! - `.localstore/tmp/` — temp files; every write lands here, is fsynced and renamed into
//!   place. Leftovers older than an hour are removed at start.
//! - `.localstore/meta/<bucket>/<xx>/<md5(key)>.json` — per-object sidecar: ETag, content
//!   type, user metadata, flexible checksum, and the size + mtime of the file it describes (a stale sidecar is
//!   ignored; files dropped in by hand get an ETag synthesized from size and mtime).
//! - `.localstore/uploads/<upload-id>/` — multipart uploads: `upload.json`, `<n>.part`,
//!   `<n>.json`.
//!
//! Names starting with `.localstore` are reserved: never listed, never accepted in keys.
//!
//! In the source: `keys` (pure key/path rules), `listing` (S3-ordered tree walk), `store`
//! (atomic writes, sidecars, locks), `multipart` (upload state), `s3impl` (the S3 operations),
//! `checksum` (the `x-amz-checksum-*` algorithms, verified while a body streams in),
//! `server` (auth, accept loop), `credentials` (the persisted local key pair), [`atomic`]
//! (the workspace's one atomic small-file write), `file_stream` (GetObject bodies read straight
//! from the file), [`direct`] (requests from the same process, without a socket).

pub mod atomic;
mod checksum;
mod credentials;
pub mod direct;
mod error;
mod file_stream;
mod keys;
mod listing;
mod multipart;
mod s3impl;
mod server;
mod store;

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;

use s3s::auth::SecretKey;
use s3s::service::S3ServiceBuilder;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use credentials::{CREDENTIALS_FILE, load_or_create_credentials};
pub use error::LocalStoreError;

/// The address clients reach a store bound to `bound` at: a wildcard address becomes the
/// loopback address of the same family.
fn client_addr(bound: SocketAddr) -> SocketAddr {
    let ip = match bound.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    SocketAddr::new(ip, bound.port())
}

/// The SigV4 region clients must sign with.
pub const REGION: &str = "local";

/// How to run a [`LocalStore`].
#[derive(Clone)]
pub struct LocalStoreConfig {
    /// The folder holding one sub-folder per bucket. Created if missing.
    pub root: PathBuf,
    /// The only access key accepted.
    pub access_key: String,
    /// Its secret. Never logged (the `Debug` output redacts it).
    pub secret_key: String,
    /// Where to listen; `127.0.0.1:0` picks a free port.
    pub bind: SocketAddr,
}

impl fmt::Debug for LocalStoreConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalStoreConfig")
            .field("root", &self.root)
            .field("access_key", &self.access_key)
            .field("secret_key", &"<redacted>")
            .field("bind", &self.bind)
            .finish()
    }
}

/// A running local S3 server. Dropping it without [`LocalStore::stop`] also shuts the server
/// down, without waiting.
pub struct LocalStore {
    /// Lists the store for in-process clients ([`direct`]) until it stops; first, so a drop
    /// unlists it before anything else goes, as `stop` does.
    registration: direct::Registration,
    addr: SocketAddr,
    store: Arc<store::Store>,
    shutdown: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl fmt::Debug for LocalStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalStore")
            .field("addr", &self.addr)
            .field("root", &self.store.root())
            .finish_non_exhaustive()
    }
}

impl LocalStore {
    /// Prepares `cfg.root`, binds `cfg.bind`, and serves S3 on it in a background task.
    /// Returns once the socket is listening.
    ///
    /// # Errors
    /// [`LocalStoreError::EmptyCredentials`], [`LocalStoreError::Root`] when the folder cannot
    /// be created or written, [`LocalStoreError::Bind`] when the address is taken.
    pub async fn start(cfg: LocalStoreConfig) -> Result<LocalStore, LocalStoreError> {
        if cfg.access_key.is_empty() || cfg.secret_key.is_empty() {
            return Err(LocalStoreError::EmptyCredentials);
        }
        let root = cfg.root.clone();
        let store = match tokio::task::spawn_blocking(move || store::Store::open(&root)).await {
            Ok(r) => Arc::new(r?),
            Err(e) => {
                return Err(LocalStoreError::Root {
                    path: cfg.root.clone(),
                    source: std::io::Error::other(e.to_string()),
                });
            }
        };
        let listener = tokio::net::TcpListener::bind(cfg.bind)
            .await
            .map_err(|source| LocalStoreError::Bind {
                addr: cfg.bind,
                source,
            })?;
        let addr = listener
            .local_addr()
            .map_err(|source| LocalStoreError::Bind {
                addr: cfg.bind,
                source,
            })?;

        let mut builder = S3ServiceBuilder::new(s3impl::LocalS3 {
            store: store.clone(),
            region: REGION,
        });
        builder.set_auth(server::SingleKeyAuth {
            access_key: cfg.access_key,
            secret: SecretKey::from(cfg.secret_key),
        });
        let service = builder.build();
        let registration = direct::Registration::new(client_addr(addr), service.clone());
        let (shutdown, rx) = watch::channel(false);
        let task = tokio::spawn(server::serve(listener, service, rx));
        tracing::info!(%addr, root = %store.root().display(), "local S3 store listening");
        Ok(LocalStore {
            registration,
            addr,
            store,
            shutdown,
            task,
        })
    }

    /// The URL clients use, e.g. `http://127.0.0.1:49152`. A wildcard bind address is
    /// reported as the loopback address of the same family. In this process,
    /// [`direct::direct`] of that address reaches the store without a socket.
    #[must_use]
    pub fn endpoint(&self) -> String {
        format!("http://{}", client_addr(self.addr))
    }

    /// The SigV4 signing region clients must use: `"local"`.
    #[must_use]
    pub fn region(&self) -> &'static str {
        REGION
    }

    /// The address actually bound (useful with port 0).
    #[must_use]
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Creates the bucket folder `<root>/<name>/` if it does not exist.
    ///
    /// # Errors
    /// [`LocalStoreError::InvalidBucketName`] when `name` breaks the S3 bucket naming rules,
    /// [`LocalStoreError::CreateBucket`] when the folder cannot be created (or a file of that
    /// name is in the way).
    pub fn ensure_bucket(&self, name: &str) -> Result<(), LocalStoreError> {
        if !s3s::path::check_bucket_name(name) {
            return Err(LocalStoreError::InvalidBucketName(name.to_owned()));
        }
        let path = self.store.root().join(name);
        match std::fs::create_dir(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && path.is_dir() => Ok(()),
            Err(source) => Err(LocalStoreError::CreateBucket { path, source }),
        }
    }

    /// Stops accepting connections, lets open requests finish (up to a few seconds), and ends
    /// the server task. In-process clients ([`direct`]) reach it no more from the start of the
    /// call; a request of theirs already under way finishes on its own.
    pub async fn stop(self) {
        drop(self.registration);
        let _ = self.shutdown.send(true);
        if let Err(e) = self.task.await {
            tracing::warn!(error = %e, "local S3 store task ended abnormally");
        }
        tracing::info!(addr = %self.addr, "local S3 store stopped");
    }
}
