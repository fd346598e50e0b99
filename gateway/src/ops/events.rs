//! The gateway's event stream: sessions opening and closing, logins, transfers with byte
//! progress, and changes (DELE, RMD, MKD, RNFR/RNTO, SITE), broadcast to any number of
//! listeners (the desktop shell's Activity view, logs, tests). Events carry user names
//! (`ACCESS_KEY_ID/bucket`), paths and reasons — never secrets.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::broadcast;

/// Identifies one FTP control connection for its lifetime.
pub type SessionId = u64;
/// Identifies one transfer.
pub type TransferId = u64;

/// Which way the bytes go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// Client to bucket (STOR, APPE).
    Upload,
    /// Bucket to client (RETR).
    Download,
}

/// What a command changes (or tried to change).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChangeKind {
    /// DELE: a file deleted.
    Delete,
    /// RMD: a folder removed.
    Rmdir,
    /// MKD: a folder made.
    Mkdir,
    /// RNFR/RNTO: a file or folder renamed.
    Rename,
    /// A SITE command (none changes anything on object storage; kept for the audit trail).
    Site,
}

/// Something that happened in the gateway.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    /// A client connected.
    SessionOpened {
        /// The id this session's later events carry.
        session: SessionId,
        /// The client's address.
        client: SocketAddr,
    },
    /// A client logged in.
    LoggedIn {
        /// The session it happened in (see `SessionOpened`).
        session: SessionId,
        /// `ACCESS_KEY_ID/bucket`.
        user: String,
    },
    /// A login was refused.
    LoginFailed {
        /// The session it happened in (see `SessionOpened`).
        session: SessionId,
        /// The user name tried.
        user: String,
        /// Why, in words.
        reason: String,
        /// Refused without asking the store: the client's address is locked out after too
        /// many failed logins.
        #[serde(default)]
        locked: bool,
    },
    /// A client disconnected.
    SessionClosed {
        /// The session it happened in (see `SessionOpened`).
        session: SessionId,
    },
    /// A transfer began.
    TransferStarted {
        /// The session it happened in (see `SessionOpened`).
        session: SessionId,
        /// The id this transfer's progress and outcome events carry.
        transfer: TransferId,
        /// Upload or download.
        direction: Direction,
        /// The file's FTP path as the client sees it (in its home folder).
        path: String,
        /// Total bytes when known (downloads).
        size: Option<u64>,
        /// The data connection is encrypted (FTPS with `PROT P`). A plain-FTP upload cannot
        /// be told from a cancelled one when the client only closes the data connection, so
        /// the desktop marks such uploads.
        #[serde(default)]
        secure: bool,
    },
    /// Bytes moved so far (sent at most every 250 ms per transfer).
    TransferProgress {
        /// Which transfer (from its `TransferStarted`).
        transfer: TransferId,
        /// Bytes so far.
        bytes: u64,
    },
    /// The transfer completed; for uploads the object is durable.
    TransferFinished {
        /// Which transfer (from its `TransferStarted`).
        transfer: TransferId,
        /// Total bytes.
        bytes: u64,
    },
    /// The transfer failed or was cancelled.
    TransferFailed {
        /// Which transfer (from its `TransferStarted`).
        transfer: TransferId,
        /// Bytes moved before the failure.
        bytes: u64,
        /// Why, in words.
        reason: String,
    },
    /// A command that changes the bucket, or a SITE command, done or refused.
    Changed {
        /// The session it happened in (see `SessionOpened`).
        session: SessionId,
        /// Which command.
        kind: ChangeKind,
        /// DELE, RMD, MKD: the FTP path as the client sees it (in its home folder).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        path: Option<String>,
        /// RNFR/RNTO: the old path.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        from: Option<String>,
        /// RNFR/RNTO: the new path.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        to: Option<String>,
        /// SITE: the command as logged (one line, cut; see `relay::wire::loggable`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        command: Option<String>,
        /// Why it was refused or failed; `None`: done.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        failure: Option<String>,
    },
    /// Any other error worth showing a person.
    Error {
        /// The session, if any.
        session: Option<SessionId>,
        /// What went wrong.
        message: String,
    },
}

impl Event {
    /// The event of a SITE command (`command` as logged) answered with `reply` (the reply's
    /// last line): refused when its code is 4xx or 5xx.
    pub fn site(session: SessionId, command: String, reply: &str) -> Event {
        let refused = reply
            .get(..3)
            .and_then(|c| c.parse::<u16>().ok())
            .is_none_or(|code| code >= 400);
        Event::Changed {
            session,
            kind: ChangeKind::Site,
            path: None,
            from: None,
            to: None,
            command: Some(command),
            failure: refused.then(|| reply.trim_end().to_owned()),
        }
    }
}

/// A synchronous observer of every event (metrics, the audit log). It runs inside
/// [`EventBus::send`] on the sender's task, so it must be quick and must never block or do
/// I/O: count, or hand the event to a channel.
pub type Observer = Arc<dyn Fn(&Event) + Send + Sync>;

/// Sends events to every subscriber; cheap to clone. Sending never blocks: a slow subscriber
/// misses events (it sees `RecvError::Lagged`), the gateway never waits for it. Observers
/// see every event, in order, as it is sent.
#[derive(Clone)]
pub struct EventBus {
    tx: broadcast::Sender<Event>,
    next_id: Arc<AtomicU64>,
    observers: Arc<[Observer]>,
}

impl std::fmt::Debug for EventBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventBus")
            .field("subscribers", &self.tx.receiver_count())
            .field("observers", &self.observers.len())
            .finish_non_exhaustive()
    }
}

impl EventBus {
    /// A bus that keeps up to `capacity` events per lagging subscriber.
    pub fn new(capacity: usize) -> Self {
        Self::with_observers(capacity, Vec::new())
    }

    /// A bus whose `observers` are called with every event sent (see [`Observer`]).
    pub fn with_observers(capacity: usize, observers: Vec<Observer>) -> Self {
        let (tx, _) = broadcast::channel(capacity.max(16));
        Self {
            tx,
            next_id: Arc::new(AtomicU64::new(1)),
            observers: observers.into(),
        }
    }

    /// Calls the observers, then sends the event to the subscribers (dropped when nobody
    /// listens).
    pub fn send(&self, event: Event) {
        tracing::debug!(?event, "event");
        for observe in self.observers.iter() {
            observe(&event);
        }
        let _ = self.tx.send(event);
    }

    /// A new subscription, seeing events from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.tx.subscribe()
    }

    /// A fresh id for a session or a transfer.
    pub fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }
}

/// Tracks one transfer's bytes and reports start, throttled progress and the outcome.
/// Dropping it before `finish`/`fail` reports the transfer as failed (cancelled).
#[derive(Debug)]
pub struct TransferTracker {
    bus: EventBus,
    id: TransferId,
    bytes: u64,
    last_report: Instant,
    done: bool,
    mirror: Option<Arc<AtomicU64>>,
}

const PROGRESS_EVERY: Duration = Duration::from_millis(250);

impl TransferTracker {
    /// Announces a transfer.
    pub fn start(
        bus: &EventBus,
        session: SessionId,
        direction: Direction,
        path: String,
        size: Option<u64>,
        secure: bool,
    ) -> Self {
        let id = bus.next_id();
        bus.send(Event::TransferStarted {
            session,
            transfer: id,
            direction,
            path,
            size,
            secure,
        });
        Self {
            bus: bus.clone(),
            id,
            bytes: 0,
            last_report: Instant::now(),
            done: false,
            mirror: None,
        }
    }

    /// Also adds every counted byte to `counter` (the session's log line reads it).
    pub fn mirrored(mut self, counter: Arc<AtomicU64>) -> Self {
        self.mirror = Some(counter);
        self
    }

    /// Counts `n` more bytes.
    pub fn add(&mut self, n: u64) {
        self.bytes += n;
        if let Some(m) = &self.mirror {
            m.fetch_add(n, Ordering::Relaxed);
        }
        if self.last_report.elapsed() >= PROGRESS_EVERY {
            self.last_report = Instant::now();
            self.bus.send(Event::TransferProgress {
                transfer: self.id,
                bytes: self.bytes,
            });
        }
    }

    /// Bytes counted so far.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Reports success.
    pub fn finish(mut self) {
        self.done = true;
        self.bus.send(Event::TransferFinished {
            transfer: self.id,
            bytes: self.bytes,
        });
    }

    /// Reports failure.
    pub fn fail(mut self, reason: impl Into<String>) {
        self.done = true;
        self.bus.send(Event::TransferFailed {
            transfer: self.id,
            bytes: self.bytes,
            reason: reason.into(),
        });
    }
}

impl Drop for TransferTracker {
    fn drop(&mut self) {
        if !self.done {
            self.bus.send(Event::TransferFailed {
                transfer: self.id,
                bytes: self.bytes,
                reason: "cancelled".into(),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tracker_reports_outcome_once() {
        let bus = EventBus::new(64);
        let mut rx = bus.subscribe();
        let mut t = TransferTracker::start(&bus, 7, Direction::Upload, "/a".into(), None, false);
        t.add(10);
        t.add(5);
        assert_eq!(t.bytes(), 15);
        t.finish();
        let mut seen = Vec::new();
        while let Ok(e) = rx.try_recv() {
            seen.push(e);
        }
        assert!(matches!(
            seen.first(),
            Some(Event::TransferStarted { session: 7, .. })
        ));
        assert!(matches!(
            seen.last(),
            Some(Event::TransferFinished { bytes: 15, .. })
        ));
        assert_eq!(
            seen.iter()
                .filter(|e| matches!(e, Event::TransferFailed { .. }))
                .count(),
            0
        );
    }

    #[test]
    fn dropped_tracker_is_a_failure() {
        let bus = EventBus::new(64);
        let mut rx = bus.subscribe();
        drop(TransferTracker::start(
            &bus,
            1,
            Direction::Download,
            "/b".into(),
            Some(3),
            false,
        ));
        let _started = rx.try_recv();
        assert!(matches!(rx.try_recv(), Ok(Event::TransferFailed { .. })));
    }

    #[test]
    fn observers_see_every_event() {
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = seen.clone();
        let observer: Observer = Arc::new(move |e: &Event| {
            crate::sync::lock(&sink).push(e.clone());
        });
        // No subscriber at all: observers still see the events.
        let bus = EventBus::with_observers(16, vec![observer]);
        bus.send(Event::SessionClosed { session: 1 });
        TransferTracker::start(&bus, 1, Direction::Upload, "/a".into(), None, false).finish();
        let seen = crate::sync::lock(&seen).clone();
        assert_eq!(seen.len(), 3);
        assert_eq!(seen[0], Event::SessionClosed { session: 1 });
        assert!(matches!(seen[2], Event::TransferFinished { .. }));
    }

    #[test]
    fn login_failed_without_locked_reads_as_not_locked() {
        let e: Result<Event, _> = serde_json::from_str(
            r#"{"type":"login_failed","session":1,"user":"AK/b","reason":"no"}"#,
        );
        assert!(matches!(e, Ok(Event::LoginFailed { locked: false, .. })));
    }

    #[test]
    fn site_events() {
        let table = [
            ("502 Unknown SITE command", Some("502 Unknown SITE command")),
            ("200 OK\r\n", None),
            ("", Some("")),
        ];
        for (reply, failure) in table {
            match Event::site(1, "SITE CHMOD 600 a".into(), reply) {
                Event::Changed {
                    kind: ChangeKind::Site,
                    command,
                    failure: f,
                    ..
                } => {
                    assert_eq!(command.as_deref(), Some("SITE CHMOD 600 a"));
                    assert_eq!(f.as_deref(), failure, "{reply:?}");
                }
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn events_serialise_without_surprises() {
        let e = Event::LoggedIn {
            session: 3,
            user: "AK/bucket".into(),
        };
        let json = serde_json::to_string(&e).unwrap_or_default();
        assert_eq!(
            json,
            r#"{"type":"logged_in","session":3,"user":"AK/bucket"}"#
        );
        let e = Event::Changed {
            session: 3,
            kind: ChangeKind::Rename,
            path: None,
            from: Some("/a".into()),
            to: Some("/b".into()),
            command: None,
            failure: None,
        };
        let json = serde_json::to_string(&e).unwrap_or_default();
        assert_eq!(
            json,
            r#"{"type":"changed","session":3,"kind":"rename","from":"/a","to":"/b"}"#
        );
    }
}
