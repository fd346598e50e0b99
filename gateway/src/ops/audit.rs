//! The audit log: one JSON object per line for every login (accepted or refused), every
//! finished or failed transfer, every change (DELE, RMD, MKD, RNFR/RNTO, SITE, done or refused)
//! and every logout, appended to a file.
//!
//! ```text
//! {"time":"2025-05-01T09:30:00.123Z","event":"login","session":3,"client":"127.0.0.1:50022","user":"AK/bucket","outcome":"ok"}
//! {"time":"2025-05-01T09:30:01.456Z","event":"transfer","session":3,"client":"127.0.0.1:50022","user":"AK/bucket","outcome":"ok","direction":"upload","path":"/a.txt","bytes":1048576}
//! {"time":"2025-05-01T09:30:02.001Z","event":"rename","session":3,"client":"127.0.0.1:50022","user":"AK/bucket","outcome":"ok","from":"/a.txt","to":"/b.txt"}
//! {"time":"2025-05-01T09:30:02.500Z","event":"delete","session":3,"client":"127.0.0.1:50022","user":"AK/bucket","outcome":"failed","path":"/c.txt","reason":"no such file"}
//! {"time":"2025-05-01T09:30:03.000Z","event":"logout","session":3,"client":"127.0.0.1:50022","user":"AK/bucket","outcome":"ok"}
//! ```
//!
//! `event` is `login`, `transfer`, `delete`, `rmdir`, `mkdir`, `rename`, `site` or `logout`
//! (a session that had logged in ended, by QUIT or otherwise). `outcome` is `ok`, `failed` or
//! `locked` (a login refused because the address is locked out); failed lines carry a
//! `reason`. Renames carry `from` and `to`, SITE lines the `command` as logged. A line is built
//! only from the fields of [`AuditLine`], which has no place for a secret (events carry none
//! either).
//!
//! The log is fed as an [`EventBus`](crate::ops::events::EventBus) observer that only stamps the
//! time and pushes the event into a bounded queue ([`QUEUE`] events): when the writer falls
//! behind (a slow disk, a flood of refused logins) further events are dropped and counted
//! (`bucketftp_audit_events_dropped_total` when metrics are on), never held in memory without
//! bound. One writer task learns each session's client and user (from `SessionOpened` and
//! `LoggedIn`), writes the lines and flushes each. The file is created with mode 0640 on Unix
//! and always appended to.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use time::OffsetDateTime;
use tokio::io::AsyncWriteExt as _;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::ops::events::{ChangeKind, Direction, Event, Observer, SessionId, TransferId};
use crate::ops::metrics::Metrics;

/// Events the queue between the observer and the writer holds; more are dropped.
pub(crate) const QUEUE: usize = 10_000;

/// What a line is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum AuditKind {
    /// A login attempt.
    Login,
    /// A finished or failed transfer.
    Transfer,
    /// DELE.
    Delete,
    /// RMD.
    Rmdir,
    /// MKD.
    Mkdir,
    /// RNFR/RNTO.
    Rename,
    /// A SITE command.
    Site,
    /// A session that had logged in ended.
    Logout,
}

impl From<ChangeKind> for AuditKind {
    fn from(kind: ChangeKind) -> Self {
        match kind {
            ChangeKind::Delete => AuditKind::Delete,
            ChangeKind::Rmdir => AuditKind::Rmdir,
            ChangeKind::Mkdir => AuditKind::Mkdir,
            ChangeKind::Rename => AuditKind::Rename,
            ChangeKind::Site => AuditKind::Site,
        }
    }
}

/// How it ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum AuditOutcome {
    /// Accepted, or transferred completely.
    Ok,
    /// Refused, or failed (cancelled included).
    Failed,
    /// A login refused because the client's address is locked out.
    Locked,
}

/// One line of the audit log, exactly as serialised.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub(crate) struct AuditLine {
    /// RFC 3339, UTC, milliseconds.
    pub time: String,
    /// Login or transfer.
    pub event: AuditKind,
    /// The session, when known.
    pub session: Option<SessionId>,
    /// The client's address, when known.
    pub client: Option<SocketAddr>,
    /// The user (`ACCESS_KEY_ID/bucket`; for a refused login the name tried).
    pub user: Option<String>,
    /// How it ended.
    pub outcome: AuditOutcome,
    /// Transfers: upload or download.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub direction: Option<Direction>,
    /// Transfers, DELE, RMD, MKD: the FTP path.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Renames: the old path.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// Renames: the new path.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    /// SITE: the command as logged.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    /// Transfers: bytes moved.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bytes: Option<u64>,
    /// Refusals and failures: why, in words.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// What the writer task knows of sessions and running transfers, learnt from events.
#[derive(Debug, Default)]
pub(crate) struct AuditState {
    sessions: HashMap<SessionId, (SocketAddr, Option<String>)>,
    transfers: HashMap<TransferId, (SessionId, Direction, String)>,
}

impl AuditState {
    /// Takes in one event; returns the line it makes, if any. Pure.
    pub(crate) fn line(&mut self, time: String, event: &Event) -> Option<AuditLine> {
        let login = |session: SessionId, client, user: &str, outcome, reason| AuditLine {
            user: Some(user.to_owned()),
            reason,
            ..AuditLine::bare(
                time.clone(),
                AuditKind::Login,
                Some(session),
                client,
                outcome,
            )
        };
        match event {
            Event::SessionOpened { session, client } => {
                self.sessions.insert(*session, (*client, None));
                None
            }
            Event::SessionClosed { session } => {
                let (client, user) = self.sessions.remove(session)?;
                let user = user?;
                Some(AuditLine {
                    user: Some(user),
                    ..AuditLine::bare(
                        time,
                        AuditKind::Logout,
                        Some(*session),
                        Some(client),
                        AuditOutcome::Ok,
                    )
                })
            }
            Event::Changed {
                session,
                kind,
                path,
                from,
                to,
                command,
                failure,
            } => {
                let known = self.sessions.get(session);
                let outcome = if failure.is_some() {
                    AuditOutcome::Failed
                } else {
                    AuditOutcome::Ok
                };
                Some(AuditLine {
                    user: known.and_then(|(_, u)| u.clone()),
                    path: path.clone(),
                    from: from.clone(),
                    to: to.clone(),
                    command: command.clone(),
                    reason: failure.clone(),
                    ..AuditLine::bare(
                        time,
                        (*kind).into(),
                        Some(*session),
                        known.map(|(c, _)| *c),
                        outcome,
                    )
                })
            }
            Event::LoggedIn { session, user } => {
                let client = self.sessions.get_mut(session).map(|(client, u)| {
                    *u = Some(user.clone());
                    *client
                });
                Some(login(*session, client, user, AuditOutcome::Ok, None))
            }
            Event::LoginFailed {
                session,
                user,
                reason,
                locked,
            } => {
                let client = self.sessions.get(session).map(|(c, _)| *c);
                let outcome = if *locked {
                    AuditOutcome::Locked
                } else {
                    AuditOutcome::Failed
                };
                Some(login(*session, client, user, outcome, Some(reason.clone())))
            }
            Event::TransferStarted {
                session,
                transfer,
                direction,
                path,
                ..
            } => {
                self.transfers
                    .insert(*transfer, (*session, *direction, path.clone()));
                None
            }
            Event::TransferFinished { transfer, bytes } => {
                Some(self.transfer(time, *transfer, *bytes, None))
            }
            Event::TransferFailed {
                transfer,
                bytes,
                reason,
            } => Some(self.transfer(time, *transfer, *bytes, Some(reason.clone()))),
            Event::TransferProgress { .. } | Event::Error { .. } => None,
        }
    }

    fn transfer(
        &mut self,
        time: String,
        transfer: TransferId,
        bytes: u64,
        failure: Option<String>,
    ) -> AuditLine {
        let started = self.transfers.remove(&transfer);
        let session = started.as_ref().map(|(s, _, _)| *s);
        let known = session.and_then(|s| self.sessions.get(&s));
        let outcome = if failure.is_some() {
            AuditOutcome::Failed
        } else {
            AuditOutcome::Ok
        };
        AuditLine {
            user: known.and_then(|(_, u)| u.clone()),
            direction: started.as_ref().map(|(_, d, _)| *d),
            path: started.map(|(_, _, p)| p),
            bytes: Some(bytes),
            reason: failure,
            ..AuditLine::bare(
                time,
                AuditKind::Transfer,
                session,
                known.map(|(c, _)| *c),
                outcome,
            )
        }
    }
}

impl AuditLine {
    /// A line with the fields every line has and none of the others.
    fn bare(
        time: String,
        event: AuditKind,
        session: Option<SessionId>,
        client: Option<SocketAddr>,
        outcome: AuditOutcome,
    ) -> Self {
        AuditLine {
            time,
            event,
            session,
            client,
            user: None,
            outcome,
            direction: None,
            path: None,
            from: None,
            to: None,
            command: None,
            bytes: None,
            reason: None,
        }
    }
}

/// `time` as RFC 3339 in UTC with milliseconds (`2025-05-01T09:30:00.123Z`).
pub(crate) fn rfc3339(time: OffsetDateTime) -> String {
    let time = time.to_offset(time::UtcOffset::UTC);
    let time = time.replace_millisecond(time.millisecond()).unwrap_or(time);
    time.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| time.unix_timestamp().to_string())
}

#[derive(Debug)]
enum Message {
    Event(OffsetDateTime, Event),
    Close,
}

/// A running audit log: the writer task and the way to feed it.
#[derive(Debug)]
pub(crate) struct AuditLog {
    tx: mpsc::Sender<Message>,
    task: JoinHandle<()>,
    dropped: Arc<Dropped>,
}

/// Events dropped because the queue was full, and where to count them.
#[derive(Debug)]
struct Dropped {
    count: AtomicU64,
    metrics: Option<Arc<Metrics>>,
}

impl Dropped {
    fn one(&self) {
        let n = self.count.fetch_add(1, Ordering::Relaxed) + 1;
        if let Some(m) = &self.metrics {
            m.audit_event_dropped();
        }
        // A few lines for a long run of drops: the 1st, 2nd, 4th, 8th…
        if n.is_power_of_two() {
            tracing::warn!(
                dropped = n,
                "audit log: the writer is behind; events dropped"
            );
        }
    }
}

impl AuditLog {
    /// Opens (creates, mode 0640 on Unix) `path` for appending and starts the writer task,
    /// with a queue of [`QUEUE`] events; drops are counted in `metrics` when given. Must be
    /// called within a tokio runtime.
    pub(crate) fn start(path: &Path, metrics: Option<Arc<Metrics>>) -> std::io::Result<Self> {
        Self::with_queue(path, QUEUE, metrics)
    }

    /// [`start`](Self::start) with a queue of `capacity` events.
    pub(crate) fn with_queue(
        path: &Path,
        capacity: usize,
        metrics: Option<Arc<Metrics>>,
    ) -> std::io::Result<Self> {
        let mut options = std::fs::OpenOptions::new();
        options.create(true).append(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt as _;
            options.mode(0o640);
        }
        let file = tokio::fs::File::from_std(options.open(path)?);
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let task = tokio::spawn(write_lines(file, rx, path.display().to_string()));
        let dropped = Arc::new(Dropped {
            count: AtomicU64::new(0),
            metrics,
        });
        Ok(Self { tx, task, dropped })
    }

    /// The [`EventBus`](crate::ops::events::EventBus) observer: stamps the time and queues the
    /// events the log needs; never blocks, no I/O. A full queue drops the event (counted).
    pub(crate) fn observer(&self) -> Observer {
        let tx = self.tx.clone();
        let dropped = self.dropped.clone();
        Arc::new(move |event: &Event| {
            if !matches!(event, Event::TransferProgress { .. } | Event::Error { .. }) {
                let message = Message::Event(OffsetDateTime::now_utc(), event.clone());
                if let Err(mpsc::error::TrySendError::Full(_)) = tx.try_send(message) {
                    dropped.one();
                }
            }
        })
    }

    /// Events dropped so far because the queue was full (the metric
    /// `bucketftp_audit_events_dropped_total` counts them for operators).
    #[cfg(test)]
    pub(crate) fn dropped(&self) -> u64 {
        self.dropped.count.load(Ordering::Relaxed)
    }

    /// Writes every event queued so far, then stops the writer (later events are dropped).
    pub(crate) async fn close(self) {
        let _ = self.tx.send(Message::Close).await;
        let _ = self.task.await;
    }
}

async fn write_lines(mut file: tokio::fs::File, mut rx: mpsc::Receiver<Message>, path: String) {
    let mut state = AuditState::default();
    let mut failing = false;
    while let Some(Message::Event(time, event)) = rx.recv().await {
        let Some(line) = state.line(rfc3339(time), &event) else {
            continue;
        };
        let mut text = match serde_json::to_string(&line) {
            Ok(t) => t,
            Err(e) => {
                tracing::warn!(error = %e, "audit log: cannot serialise a line");
                continue;
            }
        };
        text.push('\n');
        let written = async {
            file.write_all(text.as_bytes()).await?;
            file.flush().await
        }
        .await;
        match written {
            // Said once per run of failures, not per line.
            Err(e) if !failing => {
                failing = true;
                tracing::error!(%path, error = %e, "cannot write the audit log");
            }
            Err(_) => {}
            Ok(()) => failing = false,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;

    const T: &str = "2025-05-01T09:30:00.123Z";

    fn opened(state: &mut AuditState) {
        assert_eq!(
            state.line(
                T.into(),
                &Event::SessionOpened {
                    session: 3,
                    client: "127.0.0.1:50022".parse().unwrap(),
                }
            ),
            None
        );
    }

    #[test]
    fn login_lines() {
        let mut s = AuditState::default();
        opened(&mut s);
        let failed = s
            .line(
                T.into(),
                &Event::LoginFailed {
                    session: 3,
                    user: "AK/bucket".into(),
                    reason: "wrong secret key (password) for this access key id".into(),
                    locked: false,
                },
            )
            .unwrap();
        assert_eq!(
            serde_json::to_string(&failed).unwrap(),
            r#"{"time":"2025-05-01T09:30:00.123Z","event":"login","session":3,"client":"127.0.0.1:50022","user":"AK/bucket","outcome":"failed","reason":"wrong secret key (password) for this access key id"}"#
        );
        let ok = s
            .line(
                T.into(),
                &Event::LoggedIn {
                    session: 3,
                    user: "AK/bucket".into(),
                },
            )
            .unwrap();
        assert_eq!(
            serde_json::to_string(&ok).unwrap(),
            r#"{"time":"2025-05-01T09:30:00.123Z","event":"login","session":3,"client":"127.0.0.1:50022","user":"AK/bucket","outcome":"ok"}"#
        );
        let locked = s
            .line(
                T.into(),
                &Event::LoginFailed {
                    session: 4,
                    user: "AK/bucket".into(),
                    reason: "too many failed logins".into(),
                    locked: true,
                },
            )
            .unwrap();
        assert_eq!(locked.outcome, AuditOutcome::Locked);
        assert_eq!(locked.client, None, "session 4 never opened");
    }

    /// A login line's keys are exactly these: no field can hold a password, whatever the
    /// event held.
    #[test]
    fn login_line_has_no_place_for_a_secret() {
        let mut s = AuditState::default();
        opened(&mut s);
        let line = s
            .line(
                T.into(),
                &Event::LoginFailed {
                    session: 3,
                    user: "AK/bucket".into(),
                    reason: "no".into(),
                    locked: false,
                },
            )
            .unwrap();
        let value = serde_json::to_value(&line).unwrap();
        let mut keys: Vec<&str> = value
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            [
                "client", "event", "outcome", "reason", "session", "time", "user"
            ]
        );
    }

    #[test]
    fn transfer_lines() {
        let mut s = AuditState::default();
        opened(&mut s);
        s.line(
            T.into(),
            &Event::LoggedIn {
                session: 3,
                user: "AK/bucket".into(),
            },
        );
        for (transfer, direction) in [(7, Direction::Upload), (8, Direction::Download)] {
            let started = Event::TransferStarted {
                session: 3,
                transfer,
                direction,
                path: "/dir/a b.txt".into(),
                size: None,
                secure: true,
            };
            assert_eq!(s.line(T.into(), &started), None);
        }
        let progress = Event::TransferProgress {
            transfer: 7,
            bytes: 5,
        };
        assert_eq!(s.line(T.into(), &progress), None);
        let done = s
            .line(
                T.into(),
                &Event::TransferFinished {
                    transfer: 7,
                    bytes: 10,
                },
            )
            .unwrap();
        assert_eq!(
            serde_json::to_string(&done).unwrap(),
            r#"{"time":"2025-05-01T09:30:00.123Z","event":"transfer","session":3,"client":"127.0.0.1:50022","user":"AK/bucket","outcome":"ok","direction":"upload","path":"/dir/a b.txt","bytes":10}"#
        );
        let failed = s
            .line(
                T.into(),
                &Event::TransferFailed {
                    transfer: 8,
                    bytes: 2,
                    reason: "cancelled".into(),
                },
            )
            .unwrap();
        assert_eq!(failed.outcome, AuditOutcome::Failed);
        assert_eq!(failed.direction, Some(Direction::Download));
        assert_eq!(failed.reason.as_deref(), Some("cancelled"));
        assert!(s.transfers.is_empty());
        s.line(T.into(), &Event::SessionClosed { session: 3 });
        assert!(s.sessions.is_empty());
    }

    #[test]
    fn change_and_logout_lines() {
        let mut s = AuditState::default();
        opened(&mut s);
        s.line(
            T.into(),
            &Event::LoggedIn {
                session: 3,
                user: "AK/bucket".into(),
            },
        );
        let change = |kind, path: Option<&str>, from: Option<&str>, to: Option<&str>, failure| {
            Event::Changed {
                session: 3,
                kind,
                path: path.map(Into::into),
                from: from.map(Into::into),
                to: to.map(Into::into),
                command: None,
                failure,
            }
        };
        let json = |s: &mut AuditState, e: &Event| {
            serde_json::to_string(&s.line(T.into(), e).unwrap()).unwrap()
        };
        let head = r#"{"time":"2025-05-01T09:30:00.123Z","#;
        let who = r#""session":3,"client":"127.0.0.1:50022","user":"AK/bucket","#;
        let table = [
            (
                change(ChangeKind::Rename, None, Some("/a"), Some("/b"), None),
                r#""event":"rename",~"outcome":"ok","from":"/a","to":"/b"}"#,
            ),
            (
                change(
                    ChangeKind::Delete,
                    Some("/c"),
                    None,
                    None,
                    Some("no such file".into()),
                ),
                r#""event":"delete",~"outcome":"failed","path":"/c","reason":"no such file"}"#,
            ),
            (
                change(ChangeKind::Mkdir, Some("/d"), None, None, None),
                r#""event":"mkdir",~"outcome":"ok","path":"/d"}"#,
            ),
            (
                change(ChangeKind::Rmdir, Some("/d"), None, None, None),
                r#""event":"rmdir",~"outcome":"ok","path":"/d"}"#,
            ),
            (
                Event::site(3, "SITE CHMOD 600 /a".into(), "502 Unknown SITE command"),
                r#""event":"site",~"outcome":"failed","command":"SITE CHMOD 600 /a","reason":"502 Unknown SITE command"}"#,
            ),
            (
                Event::SessionClosed { session: 3 },
                r#""event":"logout",~"outcome":"ok"}"#,
            ),
        ];
        for (event, want) in table {
            let want = format!("{head}{}", want.replace('~', who));
            assert_eq!(json(&mut s, &event), want);
        }
        // A session that never logged in has no logout line.
        s.line(
            T.into(),
            &Event::SessionOpened {
                session: 4,
                client: "127.0.0.1:50023".parse().unwrap(),
            },
        );
        assert_eq!(s.line(T.into(), &Event::SessionClosed { session: 4 }), None);
    }

    /// The queue holds `capacity` events; the observer drops the rest and counts them, in the
    /// log's own count and in the metrics. (The writer task runs on this test's one thread, so
    /// it cannot drain the queue while the events are sent.)
    #[tokio::test]
    async fn a_full_queue_drops_and_counts() {
        let dir = std::env::temp_dir().join(format!("bucketftp-audit-q-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("audit.log");
        let metrics = Arc::new(Metrics::new());
        let log = AuditLog::with_queue(&path, 3, Some(metrics.clone())).unwrap();
        let bus = crate::ops::events::EventBus::with_observers(16, vec![log.observer()]);
        bus.send(Event::SessionOpened {
            session: 1,
            client: "127.0.0.1:1".parse().unwrap(),
        });
        for _ in 0..10 {
            bus.send(Event::LoginFailed {
                session: 1,
                user: "AK/b".into(),
                reason: "no".into(),
                locked: false,
            });
        }
        assert_eq!(log.dropped(), 8);
        assert!(
            metrics
                .render()
                .contains("bucketftp_audit_events_dropped_total 8"),
            "{}",
            metrics.render()
        );
        log.close().await;
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 2, "{text}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn time_is_rfc3339_utc_millis() {
        let t = OffsetDateTime::from_unix_timestamp_nanos(1_746_091_800_123_456_789).unwrap();
        assert_eq!(rfc3339(t), "2025-05-01T09:30:00.123Z");
    }

    #[tokio::test]
    async fn writes_lines_to_a_0640_file() {
        let dir = std::env::temp_dir().join(format!("bucketftp-audit-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("audit.log");
        std::fs::write(&path, "earlier line\n").unwrap();
        let log = AuditLog::start(&path, None).unwrap();
        let bus = crate::ops::events::EventBus::with_observers(16, vec![log.observer()]);
        bus.send(Event::SessionOpened {
            session: 1,
            client: "127.0.0.1:1".parse().unwrap(),
        });
        bus.send(Event::LoggedIn {
            session: 1,
            user: "AK/b".into(),
        });
        log.close().await;
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert_eq!(lines[0], "earlier line", "appended, not truncated");
        let v: serde_json::Value = serde_json::from_str(lines[1]).unwrap();
        assert_eq!(v["event"], "login");
        assert_eq!(v["client"], "127.0.0.1:1");

        let fresh = dir.join("fresh.log");
        drop(AuditLog::start(&fresh, None).unwrap());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&fresh).unwrap().permissions().mode();
            assert_eq!(mode & 0o077 & !0o040, 0, "mode {mode:o}");
        }
        assert!(AuditLog::start(&dir.join("missing/dir/audit.log"), None).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
