//! The [`Shell`] trait: what the actions need from the desktop around them. The real app's
//! implementation is [`crate::shell::TauriShell`]; tests put a recorder in its place.

use std::fmt;

use gateway::Event;

use crate::server::ServerStatus;
use crate::settings::Settings;

/// What the actions need from the desktop around them.
pub trait Shell: Send + Sync {
    /// The server state changed (tray icon, tooltip and menu; the window's header).
    fn server_changed(&self, status: &ServerStatus);
    /// Profiles were added, edited or deleted (tray "Copy login" submenu).
    fn profiles_changed(&self);
    /// The language or other settings changed.
    fn settings_changed(&self, settings: &Settings);
    /// A gateway event, after the Activity model took it.
    fn gateway_event(&self, event: &Event);
    /// Turns "start at login" on or off.
    fn set_start_at_login(&self, on: bool) -> Result<(), ShellError>;
    /// Puts text on the clipboard.
    fn copy_text(&self, text: &str) -> Result<(), ShellError>;
    /// Shows and focuses the window.
    fn show_window(&self);
    /// The banner messages changed (the window reloads them).
    fn notices_changed(&self);
}

/// What the desktop offers the actions besides showing things.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Feature {
    /// Start at login (the autostart plugin).
    StartAtLogin,
    /// The clipboard (the clipboard plugin).
    Clipboard,
}

impl fmt::Display for Feature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Feature::StartAtLogin => "start at login",
            Feature::Clipboard => "the clipboard",
        })
    }
}

/// Why the desktop could not do what an action asked.
#[derive(Debug, thiserror::Error)]
pub enum ShellError {
    /// The plugin behind the feature is not installed (the mock runtime in tests).
    #[error("{0} is not available")]
    Unavailable(Feature),
    /// The platform refused.
    #[error("{source}")]
    Failed {
        /// What was asked.
        feature: Feature,
        /// The platform's error.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}
