//! The Activity view's model: live sessions, recent transfers (direction, name, bytes,
//! progress, speed, outcome), the last errors and a log tail, built from the gateway's event
//! stream. Pure: `apply(event, now)`; the UI only displays the snapshot. Log and error lines
//! are a translation key plus arguments, so they show in the UI's language.

use std::collections::{BTreeMap, VecDeque};

use gateway::Event;
use gateway::ops::events::Direction;
use serde::Serialize;

const MAX_TRANSFERS: usize = 50;
const MAX_ERRORS: usize = 20;
const MAX_LOG: usize = 200;

/// A connected client.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SessionView {
    /// Session id.
    pub id: u64,
    /// Client address.
    pub client: String,
    /// `AK/bucket` once logged in.
    pub user: Option<String>,
    /// Connected at (Unix ms).
    pub since_ms: u64,
}

/// How a transfer ended.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Outcome {
    /// Still moving bytes.
    Running,
    /// Completed (for uploads: the object is durable).
    Done,
    /// Failed or cancelled.
    Failed {
        /// Why, in words.
        reason: String,
    },
}

/// One transfer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TransferView {
    /// Transfer id.
    pub id: u64,
    /// Its session.
    pub session: u64,
    /// The session's user, if known.
    pub user: Option<String>,
    /// Upload or download.
    pub direction: Direction,
    /// The FTP path.
    pub path: String,
    /// The file name (last path segment).
    pub name: String,
    /// Total bytes when known.
    pub size: Option<u64>,
    /// Bytes so far.
    pub bytes: u64,
    /// 0–100 when the size is known.
    pub percent: Option<f64>,
    /// Average bytes per second since the start.
    pub speed_bps: u64,
    /// Started at (Unix ms).
    pub started_ms: u64,
    /// Ended at (Unix ms).
    pub ended_ms: Option<u64>,
    /// Running, done or failed.
    pub outcome: Outcome,
    /// An upload over a plain (unencrypted) data connection: if the client stops it by
    /// closing the connection, the server cannot tell and keeps the partial file. The view
    /// shows `activity.insecure_upload` under it.
    pub insecure: bool,
}

/// A log or error line: translation key plus arguments.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Line {
    /// When (Unix ms).
    pub at_ms: u64,
    /// Translation key (`log.*` in `ui/locales`).
    pub key: &'static str,
    /// Values for the key's placeholders.
    pub args: BTreeMap<&'static str, String>,
}

/// What the Activity view shows.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Snapshot {
    /// Connected clients, oldest first.
    pub sessions: Vec<SessionView>,
    /// Recent transfers, newest first.
    pub transfers: Vec<TransferView>,
    /// Recent errors, newest first.
    pub errors: Vec<Line>,
    /// Log tail, oldest first.
    pub log: Vec<Line>,
}

/// The model.
#[derive(Debug, Default)]
pub struct Activity {
    sessions: BTreeMap<u64, SessionView>,
    transfers: VecDeque<TransferView>,
    errors: VecDeque<Line>,
    log: VecDeque<Line>,
}

fn file_name(path: &str) -> String {
    path.trim_end_matches('/')
        .rsplit('/')
        .next()
        .filter(|s| !s.is_empty())
        .unwrap_or(path)
        .to_owned()
}

fn dir_word(d: Direction) -> String {
    match d {
        Direction::Upload => "upload".into(),
        Direction::Download => "download".into(),
    }
}

impl Activity {
    /// Appends a log line (and, for errors, an error line).
    pub fn note(&mut self, at_ms: u64, key: &'static str, args: &[(&'static str, String)]) {
        let line = Line {
            at_ms,
            key,
            args: args.iter().cloned().collect(),
        };
        self.log.push_back(line);
        while self.log.len() > MAX_LOG {
            self.log.pop_front();
        }
    }

    fn error(&mut self, at_ms: u64, key: &'static str, args: &[(&'static str, String)]) {
        self.note(at_ms, key, args);
        self.errors.push_front(Line {
            at_ms,
            key,
            args: args.iter().cloned().collect(),
        });
        self.errors.truncate(MAX_ERRORS);
    }

    fn transfer(&mut self, id: u64) -> Option<&mut TransferView> {
        self.transfers.iter_mut().find(|t| t.id == id)
    }

    /// Updates the model with one gateway event seen at `now_ms`.
    pub fn apply(&mut self, event: &Event, now_ms: u64) {
        match event {
            Event::SessionOpened { session, client } => {
                self.sessions.insert(
                    *session,
                    SessionView {
                        id: *session,
                        client: client.to_string(),
                        user: None,
                        since_ms: now_ms,
                    },
                );
                self.note(
                    now_ms,
                    "log.session_opened",
                    &[("client", client.to_string())],
                );
            }
            Event::LoggedIn { session, user } => {
                if let Some(s) = self.sessions.get_mut(session) {
                    s.user = Some(user.clone());
                }
                self.note(now_ms, "log.logged_in", &[("user", user.clone())]);
            }
            Event::LoginFailed { user, reason, .. } => {
                self.error(
                    now_ms,
                    "log.login_failed",
                    &[("user", user.clone()), ("reason", reason.clone())],
                );
            }
            Event::SessionClosed { session } => {
                self.sessions.remove(session);
                self.note(
                    now_ms,
                    "log.session_closed",
                    &[("session", session.to_string())],
                );
            }
            Event::TransferStarted {
                session,
                transfer,
                direction,
                path,
                size,
                secure,
            } => {
                let user = self.sessions.get(session).and_then(|s| s.user.clone());
                self.transfers.push_front(TransferView {
                    id: *transfer,
                    session: *session,
                    user,
                    direction: *direction,
                    path: path.clone(),
                    name: file_name(path),
                    size: *size,
                    bytes: 0,
                    percent: size.map(|_| 0.0),
                    speed_bps: 0,
                    started_ms: now_ms,
                    ended_ms: None,
                    outcome: Outcome::Running,
                    insecure: *direction == Direction::Upload && !*secure,
                });
                // Keep running transfers; drop the oldest finished ones beyond the limit.
                while self.transfers.len() > MAX_TRANSFERS {
                    match self
                        .transfers
                        .iter()
                        .rposition(|t| t.outcome != Outcome::Running)
                    {
                        Some(i) => {
                            self.transfers.remove(i);
                        }
                        None => break,
                    }
                }
                self.note(
                    now_ms,
                    "log.transfer_started",
                    &[("direction", dir_word(*direction)), ("path", path.clone())],
                );
            }
            Event::TransferProgress { transfer, bytes } => {
                if let Some(t) = self.transfer(*transfer) {
                    t.progress(*bytes, now_ms);
                }
            }
            Event::TransferFinished { transfer, bytes } => {
                let Some(t) = self.transfer(*transfer) else {
                    return;
                };
                t.progress(*bytes, now_ms);
                if t.size.is_some() {
                    t.percent = Some(100.0);
                }
                t.ended_ms = Some(now_ms);
                t.outcome = Outcome::Done;
                let args = [
                    ("direction", dir_word(t.direction)),
                    ("path", t.path.clone()),
                    ("bytes", bytes.to_string()),
                ];
                self.note(now_ms, "log.transfer_finished", &args);
            }
            Event::TransferFailed {
                transfer,
                bytes,
                reason,
            } => {
                let Some(t) = self.transfer(*transfer) else {
                    return;
                };
                t.progress(*bytes, now_ms);
                t.ended_ms = Some(now_ms);
                t.outcome = Outcome::Failed {
                    reason: reason.clone(),
                };
                let args = [
                    ("direction", dir_word(t.direction)),
                    ("path", t.path.clone()),
                    ("reason", reason.clone()),
                ];
                self.error(now_ms, "log.transfer_failed", &args);
            }
            Event::Error { message, .. } => {
                self.error(now_ms, "log.error", &[("message", message.clone())]);
            }
            // Deletes, renames, folders and SITE commands are for the audit log; the Activity
            // view shows sessions and transfers.
            Event::Changed { .. } => {}
        }
    }

    /// The server stopped: its sessions are gone.
    pub fn server_stopped(&mut self, now_ms: u64) {
        self.sessions.clear();
        for t in self.transfers.iter_mut() {
            if t.outcome == Outcome::Running {
                t.outcome = Outcome::Failed {
                    reason: "server stopped".into(),
                };
                t.ended_ms = Some(now_ms);
            }
        }
        self.note(now_ms, "log.server_stopped", &[]);
    }

    /// A server start failed.
    pub fn server_failed(&mut self, now_ms: u64, message: &str) {
        self.error(
            now_ms,
            "log.server_failed",
            &[("message", message.to_owned())],
        );
    }

    /// What the view shows now.
    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            sessions: self.sessions.values().cloned().collect(),
            transfers: self.transfers.iter().cloned().collect(),
            errors: self.errors.iter().cloned().collect(),
            log: self.log.iter().cloned().collect(),
        }
    }
}

impl TransferView {
    fn progress(&mut self, bytes: u64, now_ms: u64) {
        self.bytes = bytes;
        let elapsed = now_ms.saturating_sub(self.started_ms).max(1);
        self.speed_bps = bytes.saturating_mul(1000) / elapsed;
        if let Some(size) = self.size {
            self.percent = Some(if size == 0 {
                100.0
            } else {
                (bytes as f64 * 100.0 / size as f64).min(100.0)
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr() -> std::net::SocketAddr {
        "127.0.0.1:50000".parse().unwrap()
    }

    #[test]
    fn a_session_with_an_upload() {
        let mut a = Activity::default();
        a.apply(
            &Event::SessionOpened {
                session: 1,
                client: addr(),
            },
            1_000,
        );
        a.apply(
            &Event::LoggedIn {
                session: 1,
                user: "AK/b".into(),
            },
            1_100,
        );
        a.apply(
            &Event::TransferStarted {
                session: 1,
                transfer: 9,
                direction: Direction::Upload,
                path: "/dir/文件.bin".into(),
                size: None,
                secure: true,
            },
            2_000,
        );
        a.apply(
            &Event::TransferProgress {
                transfer: 9,
                bytes: 500,
            },
            2_500,
        );
        let s = a.snapshot();
        assert_eq!(s.sessions.len(), 1);
        assert_eq!(s.sessions[0].user.as_deref(), Some("AK/b"));
        let t = &s.transfers[0];
        assert_eq!(
            (t.name.as_str(), t.bytes, t.speed_bps),
            ("文件.bin", 500, 1000)
        );
        assert_eq!(t.user.as_deref(), Some("AK/b"));
        assert_eq!(t.percent, None);
        assert_eq!(t.outcome, Outcome::Running);
        a.apply(
            &Event::TransferFinished {
                transfer: 9,
                bytes: 1000,
            },
            3_000,
        );
        a.apply(&Event::SessionClosed { session: 1 }, 3_100);
        let s = a.snapshot();
        assert!(s.sessions.is_empty());
        assert_eq!(s.transfers[0].outcome, Outcome::Done);
        assert_eq!(s.transfers[0].ended_ms, Some(3_000));
        assert!(s.errors.is_empty());
        let keys: Vec<_> = s.log.iter().map(|l| l.key).collect();
        assert_eq!(
            keys,
            [
                "log.session_opened",
                "log.logged_in",
                "log.transfer_started",
                "log.transfer_finished",
                "log.session_closed"
            ]
        );
    }

    #[test]
    fn downloads_show_progress_and_failures_become_errors() {
        let mut a = Activity::default();
        a.apply(
            &Event::TransferStarted {
                session: 2,
                transfer: 3,
                direction: Direction::Download,
                path: "/a.txt".into(),
                size: Some(200),
                secure: false,
            },
            0,
        );
        a.apply(
            &Event::TransferProgress {
                transfer: 3,
                bytes: 50,
            },
            100,
        );
        assert_eq!(a.snapshot().transfers[0].percent, Some(25.0));
        a.apply(
            &Event::TransferFailed {
                transfer: 3,
                bytes: 60,
                reason: "cancelled".into(),
            },
            200,
        );
        a.apply(
            &Event::LoginFailed {
                session: 4,
                user: "X/y".into(),
                reason: "the secret key does not match".into(),
                locked: false,
            },
            300,
        );
        let s = a.snapshot();
        assert_eq!(
            s.transfers[0].outcome,
            Outcome::Failed {
                reason: "cancelled".into()
            }
        );
        assert_eq!(s.errors.len(), 2);
        assert_eq!(s.errors[0].key, "log.login_failed");
        assert_eq!(s.errors[0].args["user"], "X/y");
    }

    #[test]
    fn bounded_and_running_transfers_kept() {
        let mut a = Activity::default();
        a.apply(
            &Event::TransferStarted {
                session: 1,
                transfer: 0,
                direction: Direction::Upload,
                path: "/long".into(),
                size: None,
                secure: true,
            },
            0,
        );
        for i in 1..200u64 {
            a.apply(
                &Event::TransferStarted {
                    session: 1,
                    transfer: i,
                    direction: Direction::Upload,
                    path: format!("/f{i}"),
                    size: None,
                    secure: true,
                },
                i,
            );
            a.apply(
                &Event::TransferFinished {
                    transfer: i,
                    bytes: 1,
                },
                i,
            );
            a.apply(
                &Event::Error {
                    session: None,
                    message: "m".into(),
                },
                i,
            );
        }
        let s = a.snapshot();
        assert_eq!(s.transfers.len(), MAX_TRANSFERS);
        assert!(s.transfers.iter().any(|t| t.id == 0), "running one kept");
        assert_eq!(s.errors.len(), MAX_ERRORS);
        assert_eq!(s.log.len(), MAX_LOG);
        a.server_stopped(500);
        let s = a.snapshot();
        assert!(s.transfers.iter().all(|t| t.outcome != Outcome::Running));
    }

    #[test]
    fn plain_ftp_uploads_are_marked_insecure() {
        let mut a = Activity::default();
        let cases = [
            (1, Direction::Upload, false, true),
            (2, Direction::Upload, true, false),
            (3, Direction::Download, false, false),
            (4, Direction::Download, true, false),
        ];
        for (id, direction, secure, _) in cases {
            a.apply(
                &Event::TransferStarted {
                    session: 1,
                    transfer: id,
                    direction,
                    path: format!("/f{id}"),
                    size: None,
                    secure,
                },
                id,
            );
        }
        let s = a.snapshot();
        for (id, direction, secure, insecure) in cases {
            let t = s.transfers.iter().find(|t| t.id == id).unwrap();
            assert_eq!(t.insecure, insecure, "{direction:?} secure={secure}");
        }
        // The mark stays after the transfer ends and reaches the window as a field.
        a.apply(
            &Event::TransferFinished {
                transfer: 1,
                bytes: 5,
            },
            10,
        );
        let json = serde_json::to_value(a.snapshot()).unwrap();
        let t1 = json["transfers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["id"] == 1)
            .unwrap();
        assert_eq!(t1["insecure"], true);
        assert_eq!(t1["outcome"]["state"], "done");
    }
}
