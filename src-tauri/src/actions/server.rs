//! Starting and stopping the FTP server: the gateway configuration from settings and
//! profiles, the event feed into Activity and the window, shutdown.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use gateway::{Event, GatewayConfig, S3Settings};

use super::core::lock;
use super::{ActionError, Core};
use crate::activity::Snapshot;
use crate::form::FieldError;
use crate::profiles::LOCAL_PROFILE_ID;
use crate::server::ServerStatus;

/// How long Stop lets running transfers finish.
pub const STOP_GRACE: Duration = Duration::from_secs(3);

/// Now, in Unix milliseconds.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Why the settings and profiles make no gateway configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A setting is wrong (a settings file edited by hand).
    #[error("setting {0}")]
    Invalid(#[from] FieldError),
    /// The part size and parallelism make no valid transfer limits (caught by `validate`
    /// first; kept so the engine's check is never skipped).
    #[error("transfer limits: {0}")]
    Limits(#[from] gateway::LimitsError),
    /// Neither the default profile nor the local bucket can serve logins.
    #[error(
        "no profile can serve logins: the local bucket is not running and the default profile is gone"
    )]
    NoProfile,
    /// "Require TLS" without a certificate would refuse every login.
    #[error(
        "\"Require TLS\" is on but FTPS is off (no certificate), so no one could log in: turn \"Require TLS\" off in Settings"
    )]
    TlsWithoutCertificate,
}

impl Core {
    /// The server's state.
    pub fn status(&self) -> ServerStatus {
        self.server.status()
    }

    /// The gateway configuration from the settings and profiles.
    pub fn gateway_config(&self) -> Result<GatewayConfig, ConfigError> {
        let s = self.settings.get();
        s.validate()?;
        let default = self
            .endpoint_settings(&s.default_profile)
            .or_else(|| self.endpoint_settings(LOCAL_PROFILE_ID))
            .ok_or(ConfigError::NoProfile)?;
        let mut config = GatewayConfig::new(default);
        config.listen = SocketAddr::from(([127, 0, 0, 1], s.listen_port));
        config.passive_ports = s.passive_range()?;
        config.limits = s.transfer_limits()?;
        config.permissions = gateway::Permissions {
            read_only: s.read_only,
            allow_delete: s.allow_delete,
        };
        config.tls = self.tls.clone();
        if s.require_tls && self.tls.is_none() {
            return Err(ConfigError::TlsWithoutCertificate);
        }
        config.require_tls = s.require_tls;
        let local = self
            .local_login
            .as_ref()
            .map(|l| (l.access_key.clone(), l.settings.clone()));
        config.login_settings = Some(Arc::new(self.profiles.logins(local)));
        Ok(config)
    }

    pub(super) fn endpoint_settings(&self, profile_id: &str) -> Option<S3Settings> {
        let p = self.profiles.get(profile_id)?;
        if p.local {
            self.local_login.as_ref().map(|l| l.settings.clone())
        } else {
            Some(p.s3_settings())
        }
    }

    /// Starts the FTP server (no-op when it runs).
    pub async fn start_server(&self) -> Result<ServerStatus, ActionError> {
        let activity = Arc::clone(&self.activity);
        let shell = Arc::clone(&self.shell);
        let on_event: Arc<dyn Fn(Event) + Send + Sync> = Arc::new(move |event: Event| {
            lock(&activity).apply(&event, now_ms());
            shell.gateway_event(&event);
        });
        let (status, changed) = self.server.start(|| self.gateway_config(), on_event).await;
        if changed {
            match &status {
                ServerStatus::Running { address } => lock(&self.activity).note(
                    now_ms(),
                    "log.server_started",
                    &[("address", address.clone())],
                ),
                ServerStatus::Error { message } => {
                    lock(&self.activity).server_failed(now_ms(), message)
                }
                ServerStatus::Stopped => {}
            }
            self.shell.server_changed(&status);
        }
        match status {
            ServerStatus::Error { message } => Err(ActionError::Start(message)),
            s => Ok(s),
        }
    }

    /// Stops the FTP server; running transfers get [`STOP_GRACE`].
    pub async fn stop_server(&self) -> ServerStatus {
        if self.server.stop(STOP_GRACE).await {
            lock(&self.activity).server_stopped(now_ms());
        }
        let status = self.server.status();
        self.shell.server_changed(&status);
        status
    }

    /// Stops everything before the app exits.
    pub async fn shutdown(&self) {
        self.server.stop(STOP_GRACE).await;
        if let Some(local) = self.local.lock().await.take() {
            local.store.stop().await;
        }
    }

    /// What the Activity view shows.
    pub fn activity(&self) -> Snapshot {
        lock(&self.activity).snapshot()
    }
}
