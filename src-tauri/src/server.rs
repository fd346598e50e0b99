//! The FTP server's life in the app: at most one running gateway, its state (stopped,
//! running on an address, or the error that stopped it) and the task that feeds its events
//! to the Activity model and the window.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use gateway::{Event, Gateway, GatewayConfig, GatewayHandle};
use serde::Serialize;
use tokio::sync::broadcast::error::RecvError;
use tokio::task::JoinHandle;

/// What the tray and the header show.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum ServerStatus {
    /// Not running.
    Stopped,
    /// Accepting FTP connections.
    Running {
        /// `127.0.0.1:2048`.
        address: String,
    },
    /// The last start failed.
    Error {
        /// Why, in words.
        message: String,
    },
}

struct Running {
    handle: GatewayHandle,
    forwarder: JoinHandle<()>,
}

/// Owns the running gateway.
pub struct ServerController {
    running: tokio::sync::Mutex<Option<Running>>,
    status: Mutex<ServerStatus>,
}

impl std::fmt::Debug for ServerController {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerController")
            .field("status", &self.status())
            .finish()
    }
}

impl Default for ServerController {
    fn default() -> Self {
        Self {
            running: tokio::sync::Mutex::new(None),
            status: Mutex::new(ServerStatus::Stopped),
        }
    }
}

impl ServerController {
    /// The current state.
    pub fn status(&self) -> ServerStatus {
        match self.status.lock() {
            Ok(g) => g.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    fn set(&self, status: ServerStatus) {
        match self.status.lock() {
            Ok(mut g) => *g = status,
            Err(poisoned) => *poisoned.into_inner() = status,
        }
    }

    /// Starts the gateway with `config` unless it runs already; each event goes to
    /// `on_event`. Returns the new state and whether this call started it.
    pub async fn start<E: std::fmt::Display>(
        &self,
        config: impl FnOnce() -> Result<GatewayConfig, E>,
        on_event: Arc<dyn Fn(Event) + Send + Sync>,
    ) -> (ServerStatus, bool) {
        let mut slot = self.running.lock().await;
        if slot.is_some() {
            return (self.status(), false);
        }
        let result = match config() {
            Ok(c) => Gateway::start(c).await.map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        let status = match result {
            Ok(handle) => {
                let address = handle.local_addr().to_string();
                let rx = handle.subscribe();
                let forwarder = tokio::spawn(forward(rx, on_event));
                *slot = Some(Running { handle, forwarder });
                tracing::info!(%address, "FTP server started");
                ServerStatus::Running { address }
            }
            Err(message) => {
                tracing::warn!(%message, "FTP server did not start");
                ServerStatus::Error { message }
            }
        };
        self.set(status.clone());
        (status, true)
    }

    /// Stops the gateway (running sessions get up to `grace`); true when it was running.
    pub async fn stop(&self, grace: Duration) -> bool {
        let mut slot = self.running.lock().await;
        let was_running = match slot.take() {
            Some(Running { handle, forwarder }) => {
                handle.stop(grace).await;
                forwarder.abort();
                tracing::info!("FTP server stopped");
                true
            }
            None => false,
        };
        self.set(ServerStatus::Stopped);
        was_running
    }

    /// True while the gateway runs.
    pub fn is_running(&self) -> bool {
        matches!(self.status(), ServerStatus::Running { .. })
    }
}

async fn forward(
    mut rx: tokio::sync::broadcast::Receiver<Event>,
    on_event: Arc<dyn Fn(Event) + Send + Sync>,
) {
    loop {
        match rx.recv().await {
            Ok(event) => on_event(event),
            Err(RecvError::Lagged(n)) => tracing::debug!(n, "activity missed events"),
            Err(RecvError::Closed) => break,
        }
    }
}
