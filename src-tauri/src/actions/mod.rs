//! The actions layer: everything the tray menu and the window's commands can do, in one
//! place ([`Core`]). Commands and tray handlers are thin adapters over these methods; what
//! happens on screen (tray refresh, events to the window, clipboard, autostart) goes through
//! the [`Shell`] trait, so the actions run the same under Tauri, the mock runtime and plain
//! tests.
//!
//! One file per area: `core` (the state and opening it), `server`, `profiles`, `probe`
//! (Test connection), `connect` (FileZilla settings, clipboard, login URLs), `export`
//! (FileZilla site file), `settings`, `language`, `notices` (the banner and the window),
//! `tray` (the tray's state as plain data), `error` ([`ActionError`]) and `shell` (the
//! [`Shell`] trait).

mod connect;
mod core;
mod error;
mod export;
mod language;
mod notices;
mod probe;
mod profiles;
mod server;
mod settings;
mod shell;
mod tray;

pub use self::core::{AppPaths, Core, OpenError};
pub use connect::{ConnectInfo, CopyField, HOST, ftp_url, url_user};
pub use error::ActionError;
pub use export::{EXPORT_FILE, ExportError, ExportView, export_dir};
pub use language::StringsView;
pub use notices::Notice;
pub use probe::{PROBE_TIMEOUT, ProbeView, probe_failure};
pub use profiles::{PresetView, ProfileView};
pub use server::{ConfigError, STOP_GRACE, now_ms};
pub use settings::SettingsSaved;
pub use shell::{Feature, Shell, ShellError};
