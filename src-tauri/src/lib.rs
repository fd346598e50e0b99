//! BucketFTP desktop: a tray app that runs the FTP-to-S3 gateway (`gateway` crate) on
//! 127.0.0.1:2048, with a window (static web UI in `ui/`) for profiles, the FileZilla login,
//! live activity and settings.
//!
//! # Layout
//! - [`actions`]: the actions layer ([`actions::Core`]): every operation the tray and the
//!   window can trigger; screen effects go through the [`actions::Shell`] trait.
//! - [`commands`]: the window's commands: name and arguments to an action, one table.
//! - [`window_proc`]: the window runs in its own process (`bucketftp --window`), which
//!   ends when the window closes; the tray process never creates a webview.
//! - [`tray`]: the tray icon, its menu model and ids.
//! - [`shell`]: the Tauri implementation of `Shell` (events, tray refresh, clipboard,
//!   autostart, window) and the event names.
//! - [`server`]: the running gateway and its state.
//! - [`activity`]: sessions, transfers, errors and log tail from gateway events.
//! - [`profiles`], [`settings`], [`persist`]: the JSON files (atomic writes, corrupt files
//!   kept aside and reported as [`persist::Corrupt`]) and the per-login endpoint settings
//!   handed to the gateway; [`form`]: the one form-field error of both.
//! - [`secrets`]: secret keys in the OS keychain.
//! - [`i18n`]: English, 简体中文, 日本語.
//! - `webkit_network` (Linux): ends WebKit's network process when no window is left.
//!
//! [`build_app`] is generic over the Tauri runtime so tests drive it with
//! `tauri::test::mock_builder()`; [`run`] is the real app.

#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

pub mod actions;
pub mod activity;
pub mod commands;
pub mod form;
pub mod i18n;
pub mod persist;
pub mod profiles;
pub mod secrets;
pub mod server;
pub mod settings;
pub mod shell;
pub mod tray;
#[cfg(target_os = "linux")]
pub mod webkit_network;
pub mod window_proc;

use std::sync::Arc;

use tauri::{Manager, RunEvent, Runtime, WindowEvent};

use crate::actions::{AppPaths, Core};
use crate::secrets::{Keychain, SecretStore};
use crate::shell::{MAIN_WINDOW, TauriShell};
use crate::window_proc::host::WindowHost;

/// The app's version (the workspace's `version`, which the packages carry too).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// What `bucketftp --version` / `-V` prints, or `None` when the arguments do not ask for
/// it. Checked before anything starts (no GTK, no tray), so it works on a server too.
pub fn version_request(args: impl IntoIterator<Item = String>) -> Option<String> {
    args.into_iter()
        .any(|a| a == "--version" || a == "-V")
        .then(|| format!("bucketftp {VERSION}"))
}

/// The command-line flag autostart passes: start in the tray without the window.
pub const MINIMIZED_FLAG: &str = "--minimized";

/// How the app starts.
pub struct Boot {
    /// Config and data folders (`None`: the user's, from `directories`).
    pub paths: Option<AppPaths>,
    /// Where secrets go (`None`: the OS keychain).
    pub secrets: Option<Arc<dyn SecretStore>>,
    /// Create the tray icon.
    pub tray: bool,
    /// Keep the window hidden at start.
    pub start_hidden: bool,
    /// Honour "start server on launch".
    pub autostart_server: bool,
}

impl Boot {
    /// The real app's boot from its command line.
    pub fn from_args(args: impl IntoIterator<Item = String>) -> Self {
        let start_hidden = args.into_iter().any(|a| a == MINIMIZED_FLAG);
        Self {
            paths: None,
            secrets: None,
            tray: true,
            start_hidden,
            autostart_server: true,
        }
    }
}

/// Why the app could not set itself up.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// No home folder to keep settings in.
    #[error("cannot find a folder for settings (is HOME set?)")]
    NoHome,
    /// Settings or profiles unreadable, or the string tables broken.
    #[error(transparent)]
    Open(#[from] actions::OpenError),
}

/// Installs the commands, the state, the tray and the window behaviour on `builder`.
pub fn build_app<R: Runtime>(builder: tauri::Builder<R>, boot: Boot) -> tauri::Builder<R> {
    builder
        .invoke_handler(commands::invoke_handler)
        .setup(move |app| {
            if let Err(e) = setup(app, boot) {
                // Tauri would panic on a setup error: say it plainly and leave instead.
                tracing::error!(error = %e, "BucketFTP cannot start");
                eprintln!("BucketFTP cannot start: {e}");
                std::process::exit(1);
            }
            Ok(())
        })
        .on_window_event(|window, event| {
            // Closing the window keeps the app (and the server) running in the tray; the
            // window itself goes, and its WebKit page process with it. Without a tray (no
            // appindicator library) nothing would be left to reach the app by: closing the
            // window quits, like any windowed program.
            if let WindowEvent::CloseRequested { .. } = event
                && window.label() == MAIN_WINDOW
                && window.app_handle().tray_by_id(tray::TRAY_ID).is_none()
            {
                window.app_handle().exit(0);
            }
            #[cfg(target_os = "linux")]
            if let WindowEvent::Destroyed = event
                && window.label() == MAIN_WINDOW
            {
                webkit_network::end_when_idle(window.app_handle());
            }
        })
}

fn setup<R: Runtime>(app: &mut tauri::App<R>, boot: Boot) -> Result<(), SetupError> {
    let paths = match boot.paths {
        Some(p) => p,
        None => AppPaths::for_user().ok_or(SetupError::NoHome)?,
    };
    let secrets = boot
        .secrets
        .unwrap_or_else(|| Arc::new(Keychain::new(secrets::SERVICE)));
    let shell = Arc::new(TauriShell::new(app.handle().clone()));
    let core = tauri::async_runtime::block_on(Core::open(paths, secrets, shell))?;
    let core = Arc::new(core);
    app.manage(Arc::clone(&core));

    let mut tray_ok = false;
    if boot.tray {
        // tray-icon panics when the appindicator library cannot be loaded: catch that too,
        // so a desktop without it still gets the window.
        let handle = app.handle().clone();
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| tray::create(&handle))) {
            Ok(Ok(())) => tray_ok = true,
            Ok(Err(e)) => tracing::warn!(error = %e, "no tray icon; the window stays the way in"),
            Err(_) => tracing::warn!(
                "no tray icon (is libayatana-appindicator3-1 installed?); the window stays the way in"
            ),
        }
    }
    // macOS: a menu-bar app without a Dock icon (Info.plist's LSUIElement says the same
    // before the first frame); without a tray the Dock icon is the way back to the window.
    #[cfg(target_os = "macos")]
    app.set_activation_policy(if tray_ok {
        tauri::ActivationPolicy::Accessory
    } else {
        tauri::ActivationPolicy::Regular
    });
    if !boot.start_hidden || !tray_ok {
        shell::show_main_window(app.handle());
    }
    if boot.autostart_server && core.settings().start_server_on_launch {
        let core = Arc::clone(&core);
        tauri::async_runtime::spawn(async move {
            if let Err(e) = core.start_server().await {
                tracing::warn!(error = %e, "server did not start on launch");
            }
        });
    }
    Ok(())
}

/// The app's configuration and assets (`tauri.conf.json`, `ui/`), for the tray process
/// and the window process alike.
pub fn context() -> tauri::Context<tauri::Wry> {
    tauri::generate_context!()
}

/// Runs the desktop app until Quit.
pub fn run() {
    gateway::ops::logging::init("info");
    let boot = Boot::from_args(std::env::args().skip(1));
    let builder = tauri::Builder::default()
        // First: a second launch only focuses this one's window.
        .plugin(tauri_plugin_single_instance::init(|app, _argv, _cwd| {
            shell::show_main_window(app);
        }))
        .plugin(tauri_plugin_autostart::init(
            tauri_plugin_autostart::MacosLauncher::LaunchAgent,
            Some(vec![MINIMIZED_FLAG]),
        ))
        .plugin(tauri_plugin_clipboard_manager::init());
    // The window opens in a process of its own (see `window_proc`); only if this
    // program cannot find its own executable does it open here.
    let builder = match WindowHost::for_this_exe() {
        Ok(host) => builder.manage(Arc::new(host)),
        Err(e) => {
            tracing::warn!(error = %e, "the window will open in the tray process");
            builder
        }
    };
    let app = match build_app(builder, boot).build(context()) {
        Ok(app) => app,
        Err(e) => {
            eprintln!("BucketFTP could not start: {e}");
            std::process::exit(1);
        }
    };
    app.run(|handle, event| match event {
        // Closing the window does not quit: the app lives in the tray (the window is built
        // again by "Open window", a second launch or the single-instance hand-over).
        RunEvent::ExitRequested {
            code: None, api, ..
        } => api.prevent_exit(),
        RunEvent::Exit => {
            if let Some(host) = handle.try_state::<Arc<WindowHost>>() {
                host.close();
            }
            if let Some(core) = handle.try_state::<Arc<Core>>() {
                let core = Arc::clone(core.inner());
                tauri::async_runtime::block_on(async move { core.shutdown().await });
            }
        }
        _ => {}
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn version_flag() {
        let line = format!("bucketftp {}", env!("CARGO_PKG_VERSION"));
        assert_eq!(version_request(args(&["--version"])), Some(line.clone()));
        assert_eq!(version_request(args(&["--minimized", "-V"])), Some(line));
        assert_eq!(version_request(args(&[])), None);
        assert_eq!(version_request(args(&["--minimized"])), None);
    }
}
