//! The audit log: one JSON object per line for every login (accepted or refused) and every
//! finished or failed transfer, appended to a file.
//!
//! ```text
//! {"time":"2025-05-01T09:30:00.123Z","event":"login","session":3,"client":"127.0.0.1:50022","user":"AK/bucket","outcome":"ok"}
//! {"time":"2025-05-01T09:30:01.456Z","event":"transfer","session":3,"client":"127.0.0.1:50022","user":"AK/bucket","outcome":"ok","direction":"upload","path":"/a.txt","bytes":1048576}
//! ```
//!
//! `outcome` is `ok`, `failed` or `locked` (a login refused because the address is locked
//! out); failed lines carry a `reason`. A line is built only from the fields of
//! [`AuditLine`], which has no place for a secret (events carry none either).
//!
//! The log is fed as an [`EventBus`](crate::events::EventBus) observer that only stamps the
//! time and pushes the event into an unbounded channel; one writer task learns each
//! session's client and user (from `SessionOpened` and `LoggedIn`), writes the lines and
//! flushes each. The file is created with mode 0640 on Unix and always appended to.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use time::OffsetDateTime;
use tokio::io::AsyncWriteExt as _;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::events::{Direction, Event, Observer, SessionId, TransferId};

/// What a line is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AuditKind {
    /// A login attempt.
    Login,
    /// A finished or failed transfer.
    Transfer,
}

/// How it ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AuditOutcome {
    /// Accepted, or transferred completely.
    Ok,
    /// Refused, or failed (cancelled included).
    Failed,
    /// A login refused because the client's address is locked out.
    Locked,
}

/// One line of the audit log, exactly as serialised.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct AuditLine {
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
    /// Transfers: the FTP path.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Transfers: bytes moved.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bytes: Option<u64>,
    /// Refusals and failures: why, in words.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// What the writer task knows of sessions and running transfers, learnt from events.
#[derive(Debug, Default)]
pub struct AuditState {
    sessions: HashMap<SessionId, (SocketAddr, Option<String>)>,
    transfers: HashMap<TransferId, (SessionId, Direction, String)>,
}

impl AuditState {
    /// Takes in one event; returns the line it makes, if any. Pure.
    pub fn line(&mut self, time: String, event: &Event) -> Option<AuditLine> {
        let login = |session: SessionId, client, user: &str, outcome, reason| AuditLine {
            time: time.clone(),
            event: AuditKind::Login,
            session: Some(session),
            client,
            user: Some(user.to_owned()),
            outcome,
            direction: None,
            path: None,
            bytes: None,
            reason,
        };
        match event {
            Event::SessionOpened { session, client } => {
                self.sessions.insert(*session, (*client, None));
                None
            }
            Event::SessionClosed { session } => {
                self.sessions.remove(session);
                None
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
        AuditLine {
            time,
            event: AuditKind::Transfer,
            session,
            client: known.map(|(c, _)| *c),
            user: known.and_then(|(_, u)| u.clone()),
            outcome: if failure.is_some() {
                AuditOutcome::Failed
            } else {
                AuditOutcome::Ok
            },
            direction: started.as_ref().map(|(_, d, _)| *d),
            path: started.map(|(_, _, p)| p),
            bytes: Some(bytes),
            reason: failure,
        }
    }
}

/// `time` as RFC 3339 in UTC with milliseconds (`2025-05-01T09:30:00.123Z`).
pub fn rfc3339(time: OffsetDateTime) -> String {
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
pub struct AuditLog {
    tx: mpsc::UnboundedSender<Message>,
    task: JoinHandle<()>,
}

impl AuditLog {
    /// Opens (creates, mode 0640 on Unix) `path` for appending and starts the writer task.
    /// Must be called within a tokio runtime.
    pub fn start(path: &Path) -> std::io::Result<Self> {
        let mut options = std::fs::OpenOptions::new();
        options.create(true).append(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt as _;
            options.mode(0o640);
        }
        let file = tokio::fs::File::from_std(options.open(path)?);
        let (tx, rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(write_lines(file, rx, path.display().to_string()));
        Ok(Self { tx, task })
    }

    /// The [`EventBus`](crate::events::EventBus) observer: stamps the time and queues the
    /// events the log needs; never blocks, no I/O.
    pub fn observer(&self) -> Observer {
        let tx = self.tx.clone();
        Arc::new(move |event: &Event| {
            if !matches!(event, Event::TransferProgress { .. } | Event::Error { .. }) {
                let _ = tx.send(Message::Event(OffsetDateTime::now_utc(), event.clone()));
            }
        })
    }

    /// Writes every event queued so far, then stops the writer (later events are dropped).
    pub async fn close(self) {
        let _ = self.tx.send(Message::Close);
        let _ = self.task.await;
    }
}

async fn write_lines(
    mut file: tokio::fs::File,
    mut rx: mpsc::UnboundedReceiver<Message>,
    path: String,
) {
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
        let log = AuditLog::start(&path).unwrap();
        let bus = crate::events::EventBus::with_observers(16, vec![log.observer()]);
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
        drop(AuditLog::start(&fresh).unwrap());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&fresh).unwrap().permissions().mode();
            assert_eq!(mode & 0o077 & !0o040, 0, "mode {mode:o}");
        }
        assert!(AuditLog::start(&dir.join("missing/dir/audit.log")).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
