//! The [`Shell`] of the real app: Tauri events to the window, the tray, the clipboard
//! plugin, the autostart plugin (on Windows `auto-launch` itself, for the current user
//! only) and the main window. Plugins that are not registered (the
//! mock runtime in tests) make the matching call fail with a message instead of panicking.

use std::sync::Arc;

use serde::Serialize;
use tauri::{AppHandle, Emitter, Manager, Runtime};

use crate::actions::{Feature, Shell, ShellError};
use crate::server::ServerStatus;
use crate::settings::Settings;
use crate::window_proc::host::WindowHost;

/// Names of the events the window listens to.
pub mod events {
    /// Payload: [`crate::server::ServerStatus`].
    pub const SERVER_STATUS: &str = "server-status";
    /// Payload: a [`gateway::Event`].
    pub const GATEWAY_EVENT: &str = "gateway-event";
    /// No payload: reload the profiles.
    pub const PROFILES_CHANGED: &str = "profiles-changed";
    /// Payload: [`crate::settings::Settings`].
    pub const SETTINGS_CHANGED: &str = "settings-changed";
    /// No payload: reload the banner messages.
    pub const NOTICES_CHANGED: &str = "notices-changed";
}

/// The label of the main window.
pub const MAIN_WINDOW: &str = "main";

/// The Tauri side of the actions.
pub struct TauriShell<R: Runtime> {
    app: AppHandle<R>,
}

impl<R: Runtime> TauriShell<R> {
    /// A shell over `app`.
    pub fn new(app: AppHandle<R>) -> Self {
        Self { app }
    }

    /// Emits `name` to the pages of this process and to the window process, if open.
    fn emit<S: Serialize + Clone>(&self, name: &str, payload: S) {
        if let Some(host) = self.app.try_state::<Arc<WindowHost>>() {
            host.event(name, &payload);
        }
        let _ = self.app.emit(name, payload);
    }
}

/// Shows, un-minimises and focuses the main window. In the tray process (which has a
/// [`WindowHost`]) that is the window process's job: it is told to, or started. Elsewhere
/// (the window process itself; tests on the mock runtime) the window is created here from
/// `tauri.conf.json` when it does not exist.
pub fn show_main_window<R: Runtime>(app: &AppHandle<R>) {
    if let Some(host) = app.try_state::<Arc<WindowHost>>() {
        host.show(app);
        return;
    }
    if let Some(w) = app.get_webview_window(MAIN_WINDOW) {
        let _ = w.show();
        let _ = w.unminimize();
        let _ = w.set_focus();
        return;
    }
    let Some(config) = app
        .config()
        .app
        .windows
        .iter()
        .find(|w| w.label == MAIN_WINDOW)
        .cloned()
    else {
        tracing::warn!("no main window in the configuration");
        return;
    };
    match tauri::WebviewWindowBuilder::from_config(app, &config).and_then(|b| b.build()) {
        Ok(w) => {
            let _ = w.set_focus();
        }
        Err(e) => tracing::warn!(error = %e, "cannot open the window"),
    }
}

impl<R: Runtime> Shell for TauriShell<R> {
    fn server_changed(&self, status: &ServerStatus) {
        self.emit(events::SERVER_STATUS, status);
        crate::tray::refresh(&self.app);
    }

    fn profiles_changed(&self) {
        self.emit(events::PROFILES_CHANGED, ());
        crate::tray::refresh(&self.app);
    }

    fn settings_changed(&self, settings: &Settings) {
        self.emit(events::SETTINGS_CHANGED, settings);
        crate::tray::refresh(&self.app);
    }

    fn gateway_event(&self, event: &gateway::Event) {
        self.emit(events::GATEWAY_EVENT, event);
    }

    #[cfg(windows)]
    fn set_start_at_login(&self, on: bool) -> Result<(), ShellError> {
        let failed = |source: Box<dyn std::error::Error + Send + Sync>| ShellError::Failed {
            feature: Feature::StartAtLogin,
            source,
        };
        let exe = std::env::current_exe().map_err(|e| failed(Box::new(e)))?;
        let launcher = windows_login_entry(&self.app.package_info().name, &exe)
            .map_err(|e| failed(Box::new(e)))?;
        let result = if on {
            launcher.enable()
        } else {
            launcher.disable()
        };
        match result {
            // Already off: nothing to remove.
            Err(auto_launch::Error::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            r => r.map_err(|e| failed(Box::new(e))),
        }
    }

    #[cfg(not(windows))]
    fn set_start_at_login(&self, on: bool) -> Result<(), ShellError> {
        let feature = Feature::StartAtLogin;
        let Some(manager) = self
            .app
            .try_state::<tauri_plugin_autostart::AutoLaunchManager>()
        else {
            return Err(ShellError::Unavailable(feature));
        };
        let result = if on {
            manager.enable()
        } else {
            manager.disable()
        };
        result.map_err(|e| ShellError::Failed {
            feature,
            source: Box::new(e),
        })
    }

    fn copy_text(&self, text: &str) -> Result<(), ShellError> {
        let feature = Feature::Clipboard;
        let Some(clipboard) = self
            .app
            .try_state::<tauri_plugin_clipboard_manager::Clipboard<R>>()
        else {
            return Err(ShellError::Unavailable(feature));
        };
        clipboard
            .write_text(text.to_owned())
            .map_err(|e| ShellError::Failed {
                feature,
                source: Box::new(e),
            })
    }

    fn show_window(&self) {
        show_main_window(&self.app);
    }

    fn notices_changed(&self) {
        self.emit(events::NOTICES_CHANGED, ());
    }
}

/// The Windows start-at-login entry: a value named `name` under
/// `HKCU\Software\Microsoft\Windows\CurrentVersion\Run` starting `exe --minimized`. Always
/// the current user's: the autostart plugin's default mode writes under HKLM when the process
/// may (an elevated start, such as the installer's "Run BucketFTP"), which would start the
/// app for every user of the machine. Turning it off removes this user's value (and one under
/// HKLM too, when the app may).
#[cfg(windows)]
fn windows_login_entry(
    name: &str,
    exe: &std::path::Path,
) -> Result<auto_launch::AutoLaunch, auto_launch::Error> {
    auto_launch::AutoLaunchBuilder::new()
        .set_app_name(name)
        // Quoted: Windows reads an unquoted path with a space ("C:\Users\Ann Lee\...") as
        // the program "C:\Users\Ann.exe" and its arguments.
        .set_app_path(&format!("\"{}\"", exe.display()))
        .set_args(&[crate::MINIMIZED_FLAG])
        .set_windows_enable_mode(auto_launch::WindowsEnableMode::CurrentUser)
        .build()
}
