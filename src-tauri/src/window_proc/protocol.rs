//! The messages between the tray process and its window process: one JSON object per line,
//! over the window process's standard input (to the window) and standard output (to the
//! tray). Pure: encoding, decoding and nothing else.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// From the window process to the tray process.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "snake_case")]
pub enum ToTray {
    /// The page invoked command `cmd` with the arguments object `args`; the tray answers
    /// with a [`ToWindow::Reply`] of the same `id`.
    Call {
        /// Chosen by the window process, unique among its open calls.
        id: u64,
        /// The command's name, as the page invoked it.
        cmd: String,
        /// The arguments object, as the page passed it.
        args: Value,
    },
}

/// From the tray process to the window process.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "snake_case")]
pub enum ToWindow {
    /// The answer to [`ToTray::Call`] `id`: `Ok` resolves the page's promise, `Err` rejects
    /// it (a serialised `ActionError`).
    Reply {
        /// The call's id.
        id: u64,
        /// The command's result.
        result: Result<Value, Value>,
    },
    /// An event for the page (`server-status`, `gateway-event`, ...).
    Event {
        /// The event's name.
        name: String,
        /// Its payload.
        payload: Value,
    },
    /// Show, un-minimise and focus the window (the tray's "Open window", a second launch).
    Show,
    /// Close the window and end the window process (the app quits).
    Close,
}

/// One message as a line (JSON, then `\n`).
pub fn encode<T: Serialize>(message: &T) -> String {
    // Serialising these enums cannot fail: their keys are strings and `Value`s are
    // already JSON. Should it ever, an empty object is a line the peer ignores.
    let mut line = serde_json::to_string(message).unwrap_or_else(|_| "{}".to_owned());
    line.push('\n');
    line
}

/// The message in `line`, or `None` for a line that is not one (a library printing to
/// standard output, say): the reader skips it.
pub fn decode<T: for<'de> Deserialize<'de>>(line: &str) -> Option<T> {
    let line = line.trim();
    if !line.starts_with('{') {
        return None;
    }
    serde_json::from_str(line).ok()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn messages_round_trip_as_single_lines() {
        let to_tray = [ToTray::Call {
            id: 7,
            cmd: "save_profile".into(),
            args: json!({"profile": {"name": "a\nb"}}),
        }];
        for m in to_tray {
            let line = encode(&m);
            assert!(
                line.ends_with('\n') && line.matches('\n').count() == 1,
                "{line}"
            );
            assert_eq!(decode::<ToTray>(&line), Some(m));
        }
        let to_window = [
            ToWindow::Reply {
                id: 1,
                result: Ok(json!({"state": "running"})),
            },
            ToWindow::Reply {
                id: 2,
                result: Err(json!({"kind": "no_profile"})),
            },
            ToWindow::Event {
                name: "profiles-changed".into(),
                payload: Value::Null,
            },
            ToWindow::Show,
            ToWindow::Close,
        ];
        for m in to_window {
            let line = encode(&m);
            assert_eq!(line.matches('\n').count(), 1, "{line}");
            assert_eq!(decode::<ToWindow>(&line), Some(m));
        }
    }

    #[test]
    fn other_lines_are_skipped() {
        assert_eq!(decode::<ToWindow>(""), None);
        assert_eq!(
            decode::<ToWindow>("Gtk-Message: 12:00: Failed to load module"),
            None
        );
        assert_eq!(decode::<ToWindow>("{\"t\":\"unknown\"}"), None);
        assert_eq!(decode::<ToTray>("{\"t\":\"call\",\"id\":1}"), None);
        assert_eq!(
            decode::<ToWindow>("  {\"t\":\"show\"}\r\n"),
            Some(ToWindow::Show)
        );
    }
}
