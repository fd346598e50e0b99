//! BucketFTP's engine: an FTP server whose file system is an S3-compatible bucket.
//!
//! `Gateway::start(config)` binds the FTP listener and returns a [`GatewayHandle`] with the
//! bound address, an event stream ([`events::Event`]) and a graceful `stop()`. The
//! `bucketftp-server` binary is a thin command line over this; the desktop shell uses the same
//! API. Nothing here knows about Tauri, GTK or webkit.
//!
//! # Layout
//! - [`ftp`]: the FTP side: the accept loop ([`ftp::server`]), the control-connection relay
//!   and its data connections ([`ftp::relay`]), what the relay and the backend share
//!   ([`ftp::control_tap`]), sessions, logins, limits, TLS, the PROXY protocol, and how a data
//!   connection ended.
//! - [`storage`]: the libunftp storage backend over a bucket: folders, listings, downloads,
//!   streaming multipart uploads.
//! - [`s3`]: the S3 clients, provider presets and error classification; the embedded local
//!   store ([`s3::local`]), "Test connection" ([`s3::probe`]) and the stale-upload janitor.
//! - [`team`]: team mode: users, the config file, the vendor config importers, FileZilla site
//!   export.
//! - [`ops`]: what operators watch: events, metrics, the audit log, logging.
//! - [`config`], [`path`], [`error`]: the configuration, pure FTP path ⇄ key mapping, and the
//!   failures with the FTP replies they become.

pub mod config;
pub mod error;
pub mod ftp;
pub mod ops;
pub mod path;
pub mod s3;
pub mod storage;
mod sync;
pub mod team;
pub mod units;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{broadcast, watch};
use tokio::task::JoinHandle;

use ftp::{limits, relay, server};
use ops::audit;
use s3::janitor;

pub use config::GatewayConfig;
pub use error::Failure;
pub use ops::events::{Event, EventBus};
pub use ops::metrics::{Metrics, serve_metrics};
pub use s3::{Addressing, LoginSettings, Provider, S3Settings};
pub use storage::Permissions;
pub use storage::parts::{LimitsError, TransferLimits};

/// Why the gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The S3 settings are unusable.
    #[error(transparent)]
    Settings(#[from] s3::SettingsError),
    /// The audit log file could not be opened for appending.
    #[error("cannot open the audit log {}: {source}", path.display())]
    AuditLog {
        /// The audit log file as configured.
        path: std::path::PathBuf,
        /// Why the OS refused.
        source: std::io::Error,
    },
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The configured listen address.
        addr: SocketAddr,
        /// Why the OS refused (in use, not an address of this host, …).
        source: std::io::Error,
    },
}

/// The gateway, as a library.
pub struct Gateway;

impl Gateway {
    /// Binds the FTP listener and starts accepting sessions.
    pub async fn start(config: GatewayConfig) -> Result<GatewayHandle, StartError> {
        let mut factory = s3::ClientFactory::new(&config.s3)?;
        let audit = match &config.audit_log {
            Some(path) => Some(
                audit::AuditLog::start(path, config.metrics.clone()).map_err(|source| {
                    StartError::AuditLog {
                        path: path.clone(),
                        source,
                    }
                })?,
            ),
            None => None,
        };
        let mut observers = Vec::new();
        if let Some(m) = &config.metrics {
            factory = factory.with_metrics(m.clone());
            observers.push(m.observer());
        }
        observers.extend(audit.as_ref().map(audit::AuditLog::observer));
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .map_err(|source| StartError::Bind {
                addr: config.listen,
                source,
            })?;
        let local_addr = listener.local_addr().map_err(|source| StartError::Bind {
            addr: config.listen,
            source,
        })?;
        let events = EventBus::with_observers(1024, observers);
        let shared = Arc::new(storage::Shared {
            limits: config.limits,
            memory: config.limits.memory_pool(),
            permissions: config.permissions,
            events: events.clone(),
            transfer_timeout: config.transfer_timeout,
            max_file_size: config.max_file_size,
            max_hash_size: config.max_hash_size,
        });
        let parts = Arc::new(server::ServerParts {
            factories: Arc::new(s3::Factories::new(factory, config.login_settings.clone())),
            shared,
            idle_timeout: config.idle_timeout,
            login_timeout: config.login_timeout,
            events: events.clone(),
            session_limits: config.sessions,
            counter: limits::SessionCounter::default(),
            lockout: Arc::new(limits::LoginLockout::new(config.lockout)),
            refusal_log: limits::LogThrottle::new(Duration::from_secs(60)),
            tls: config.tls.clone(),
            relay: Arc::new(relay::RelayConfig {
                control_tls: config.tls.as_ref().map(|t| t.control.clone()),
                data_tls: config.tls.as_ref().map(|t| t.data.clone()),
                data_tls_reading: config.tls.as_ref().map(|t| t.data_reading.clone()),
                require_tls_reuse: config.require_tls_session_reuse,
                require_tls: config.require_tls,
                passive_ports: config.passive_ports.clone(),
                // A zero would end every transfer at once: a second at least.
                idle: config.idle_timeout.max(Duration::from_secs(1)),
                masquerade: config.masquerade,
                events: events.clone(),
                proxy: config.proxy_protocol.clone().map(Arc::new),
            }),
            janitor: config
                .abort_stale_uploads
                .map(|age| Arc::new(janitor::Janitor::new(age))),
            users: config.users.clone(),
        });
        let (stop_tx, stop_rx) = watch::channel(None);
        let sessions: server::Sessions = Arc::new(Mutex::new(Vec::new()));
        let task = tokio::spawn(server::accept_loop(listener, parts, stop_rx, sessions));
        tracing::info!(%local_addr, "FTP gateway listening");
        Ok(GatewayHandle {
            local_addr,
            events,
            stop: stop_tx,
            task,
            audit,
        })
    }
}

/// A running gateway.
pub struct GatewayHandle {
    local_addr: SocketAddr,
    events: EventBus,
    stop: watch::Sender<Option<Duration>>,
    task: JoinHandle<()>,
    audit: Option<audit::AuditLog>,
}

impl GatewayHandle {
    /// The address the FTP listener is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Events from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.events.subscribe()
    }

    /// Stops accepting, lets running sessions finish for up to `grace`, then closes them;
    /// then writes the audit log's last lines.
    pub async fn stop(self, grace: Duration) {
        let _ = self.stop.send(Some(grace));
        let _ = self.task.await;
        if let Some(audit) = self.audit {
            audit.close().await;
        }
    }
}
