//! The tray menu as data, apart from Tauri: the menu ids and what a click on each asks for
//! ([`parse_menu_id`]), the state the tray shows ([`TrayState`], plain data the actions
//! layer builds) and the menu, state line, tooltip and picture for it ([`menu_model`],
//! [`state_words`]), all pure. `tray/mod.rs` turns the model into Tauri menu items.

use crate::server::ServerStatus;

/// Text in the user's language for a key and placeholder values (`Core::t` in the app).
pub type Translate<'a> = dyn Fn(&str, &[(&str, &str)]) -> String + 'a;

/// Menu item ids.
pub mod ids {
    /// The state line (disabled).
    pub const STATUS: &str = "status";
    /// Start the server.
    pub const START: &str = "server-start";
    /// Stop the server.
    pub const STOP: &str = "server-stop";
    /// Show the window.
    pub const OPEN: &str = "open-window";
    /// The "Copy FileZilla login" submenu.
    pub const COPY_MENU: &str = "copy-login";
    /// Prefix of one profile's copy item: `copy-login:<profile id>`.
    pub const COPY_PREFIX: &str = "copy-login:";
    /// Write the FileZilla Site Manager file.
    pub const EXPORT: &str = "export-sites";
    /// Quit the app.
    pub const QUIT: &str = "quit";
}

/// What a menu click asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrayAction {
    /// Start the server.
    Start,
    /// Stop the server.
    Stop,
    /// Show the window.
    Open,
    /// Copy a profile's FileZilla login (the Quickconnect URL without password).
    CopyLogin(String),
    /// Export the FileZilla sites (without secrets) to the Downloads folder.
    ExportSites,
    /// Quit.
    Quit,
}

/// The action of a menu id. Pure.
pub fn parse_menu_id(id: &str) -> Option<TrayAction> {
    match id {
        ids::START => Some(TrayAction::Start),
        ids::STOP => Some(TrayAction::Stop),
        ids::OPEN => Some(TrayAction::Open),
        ids::QUIT => Some(TrayAction::Quit),
        ids::EXPORT => Some(TrayAction::ExportSites),
        other => other
            .strip_prefix(ids::COPY_PREFIX)
            .filter(|p| !p.is_empty())
            .map(|p| TrayAction::CopyLogin(p.to_owned())),
    }
}

/// One entry of the menu model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// A clickable (or disabled) item.
    Item {
        /// Its id.
        id: String,
        /// Its text.
        label: String,
        /// Clickable.
        enabled: bool,
    },
    /// A line.
    Separator,
    /// A submenu.
    Submenu {
        /// Its id.
        id: String,
        /// Its text.
        label: String,
        /// Opens (false when it has no items).
        enabled: bool,
        /// Its items.
        items: Vec<Entry>,
    },
}

fn item(id: &str, label: String, enabled: bool) -> Entry {
    Entry::Item {
        id: id.to_owned(),
        label,
        enabled,
    }
}

/// What the tray shows: the server's state and the profiles. Plain data; see
/// `Core::tray_state`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrayState {
    /// The server's state.
    pub server: ServerStatus,
    /// The profiles, "This computer" first.
    pub profiles: Vec<TrayProfile>,
}

/// One profile in the "Copy FileZilla login" submenu.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrayProfile {
    /// The profile's id.
    pub id: String,
    /// Its name in the user's language.
    pub name: String,
    /// The FileZilla user `AK/bucket`.
    pub user: String,
    /// True when it has an access key and a default bucket, so its login can be copied.
    pub has_login: bool,
}

/// The tray picture.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Icon {
    /// The server runs (green).
    Running,
    /// The server is stopped (grey).
    Stopped,
    /// The last start failed (red).
    Error,
}

/// The menu's state line, the tooltip and the picture of a server state. Pure.
pub fn state_words(status: &ServerStatus, t: &Translate) -> (String, String, Icon) {
    match status {
        ServerStatus::Running { address } => (
            t("tray.status_running", &[("address", address)]),
            t("tray.tooltip_running", &[("address", address)]),
            Icon::Running,
        ),
        ServerStatus::Stopped => (
            t("tray.status_stopped", &[]),
            t("tray.tooltip_stopped", &[]),
            Icon::Stopped,
        ),
        ServerStatus::Error { message } => {
            // Keep the menu line short; the window shows the whole message.
            let short: String = message.chars().take(60).collect();
            (
                t("tray.status_error", &[("message", &short)]),
                t("tray.tooltip_error", &[("message", &short)]),
                Icon::Error,
            )
        }
    }
}

/// The menu for `state`, labelled by `t`. Pure.
pub fn menu_model(state: &TrayState, t: &Translate) -> Vec<Entry> {
    let running = matches!(state.server, ServerStatus::Running { .. });
    let (line, _, _) = state_words(&state.server, t);
    let copies: Vec<Entry> = state
        .profiles
        .iter()
        .map(|p| {
            item(
                &format!("{}{}", ids::COPY_PREFIX, p.id),
                format!("{} ({})", p.name, p.user),
                p.has_login,
            )
        })
        .collect();
    vec![
        item(ids::STATUS, line, false),
        Entry::Separator,
        item(ids::START, t("tray.start", &[]), !running),
        item(ids::STOP, t("tray.stop", &[]), running),
        Entry::Separator,
        item(ids::OPEN, t("tray.open", &[]), true),
        Entry::Submenu {
            id: ids::COPY_MENU.into(),
            label: t("tray.copy_login", &[]),
            enabled: !copies.is_empty(),
            items: copies,
        },
        item(ids::EXPORT, t("tray.export_sites", &[]), true),
        Entry::Separator,
        item(ids::QUIT, t("tray.quit", &[]), true),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::i18n::{Catalog, Lang};

    #[test]
    fn menu_ids_round_trip() {
        assert_eq!(parse_menu_id(ids::START), Some(TrayAction::Start));
        assert_eq!(parse_menu_id(ids::STOP), Some(TrayAction::Stop));
        assert_eq!(parse_menu_id(ids::OPEN), Some(TrayAction::Open));
        assert_eq!(parse_menu_id(ids::QUIT), Some(TrayAction::Quit));
        assert_eq!(parse_menu_id(ids::EXPORT), Some(TrayAction::ExportSites));
        assert_eq!(
            parse_menu_id("copy-login:p17"),
            Some(TrayAction::CopyLogin("p17".into()))
        );
        assert_eq!(parse_menu_id("copy-login:"), None);
        assert_eq!(parse_menu_id(ids::STATUS), None);
        assert_eq!(parse_menu_id("nonsense"), None);
    }

    fn profile(id: &str, name: &str, user: &str, has_login: bool) -> TrayProfile {
        TrayProfile {
            id: id.into(),
            name: name.into(),
            user: user.into(),
            has_login,
        }
    }

    /// Every item as `(id, enabled)`, submenu items after their submenu.
    fn flat(entries: &[Entry]) -> Vec<(String, bool)> {
        let mut out = Vec::new();
        for e in entries {
            match e {
                Entry::Item { id, enabled, .. } => out.push((id.clone(), *enabled)),
                Entry::Separator => out.push(("-".into(), false)),
                Entry::Submenu {
                    id, enabled, items, ..
                } => {
                    out.push((id.clone(), *enabled));
                    out.extend(flat(items));
                }
            }
        }
        out
    }

    fn label_of<'a>(entries: &'a [Entry], want: &str) -> Option<&'a str> {
        entries.iter().find_map(|e| match e {
            Entry::Item { id, label, .. } | Entry::Submenu { id, label, .. } if id == want => {
                Some(label.as_str())
            }
            Entry::Submenu { items, .. } => label_of(items, want),
            _ => None,
        })
    }

    #[test]
    fn menu_model_per_state() {
        let catalog = Catalog::load().unwrap();
        let en = |k: &str, a: &[(&str, &str)]| catalog.t(Lang::En, k, a);
        let local = profile("local", "This computer", "LOCALKEY/local", true);
        let long_error = "x".repeat(100);
        // The menu is the same skeleton in every state; what changes is Start / Stop, the
        // copy submenu, the state line, the tooltip and the picture.
        struct Case {
            state: TrayState,
            start: bool,
            copies: Vec<(&'static str, bool)>,
            line: String,
            tooltip: String,
            icon: Icon,
        }
        let table = vec![
            Case {
                state: TrayState {
                    server: ServerStatus::Stopped,
                    profiles: vec![local.clone()],
                },
                start: true,
                copies: vec![("copy-login:local", true)],
                line: "○ Stopped".into(),
                tooltip: "BucketFTP: stopped".into(),
                icon: Icon::Stopped,
            },
            Case {
                state: TrayState {
                    server: ServerStatus::Running {
                        address: "127.0.0.1:2048".into(),
                    },
                    profiles: vec![local.clone(), profile("p1", "Work", "AKW/", false)],
                },
                start: false,
                copies: vec![("copy-login:local", true), ("copy-login:p1", false)],
                line: "● Running on 127.0.0.1:2048".into(),
                tooltip: "BucketFTP: running on 127.0.0.1:2048".into(),
                icon: Icon::Running,
            },
            // The local bucket did not start and no profile is left: an empty submenu is
            // disabled; the error line is cut to 60 characters.
            Case {
                state: TrayState {
                    server: ServerStatus::Error {
                        message: long_error.clone(),
                    },
                    profiles: vec![],
                },
                start: true,
                copies: vec![],
                line: format!("⚠ Error: {}", &long_error[..60]),
                tooltip: format!("BucketFTP: error: {}", &long_error[..60]),
                icon: Icon::Error,
            },
        ];
        for case in table {
            let Case {
                state,
                start,
                copies,
                line,
                tooltip,
                icon,
            } = case;
            let mut items = vec![
                (ids::STATUS, false),
                ("-", false),
                (ids::START, start),
                (ids::STOP, !start),
                ("-", false),
                (ids::OPEN, true),
                (ids::COPY_MENU, !copies.is_empty()),
            ];
            items.extend(copies);
            items.extend([(ids::EXPORT, true), ("-", false), (ids::QUIT, true)]);
            let model = menu_model(&state, &en);
            let got = flat(&model);
            let want: Vec<(String, bool)> =
                items.iter().map(|(i, e)| (i.to_string(), *e)).collect();
            assert_eq!(got, want, "{state:?}");
            assert_eq!(label_of(&model, ids::STATUS), Some(line.as_str()));
            assert_eq!(
                state_words(&state.server, &en),
                (line, tooltip, icon),
                "{state:?}"
            );
            // Every clickable id parses to its action; the state line does not.
            for (id, _) in &want {
                let expect_action = !matches!(id.as_str(), "-" | ids::STATUS | ids::COPY_MENU);
                assert_eq!(parse_menu_id(id).is_some(), expect_action, "{id}");
            }
        }
        let model = menu_model(
            &TrayState {
                server: ServerStatus::Stopped,
                profiles: vec![local],
            },
            &en,
        );
        assert_eq!(
            label_of(&model, "copy-login:local"),
            Some("This computer (LOCALKEY/local)")
        );
        assert_eq!(label_of(&model, ids::START), Some("Start server"));
    }
}
