//! The tray icon and its menu: the server state, Start / Stop, Open window, "Copy FileZilla
//! login" per profile (the Quickconnect URL, never the secret), "Export FileZilla sites…"
//! (never with secrets), Quit. The menu is described by a pure model ([`menu_model`]) and then
//! built; its ids are the constants in [`ids`]. Clicks go to the actions layer. Without a
//! tray host (or the appindicator library) the app logs it and runs on with its window.

use std::sync::Arc;

use tauri::image::Image;
use tauri::menu::{IsMenuItem, Menu, MenuItem, PredefinedMenuItem, Submenu};
use tauri::tray::TrayIconBuilder;
use tauri::{AppHandle, Manager, Runtime};

use crate::actions::{CopyField, Core};
use crate::server::ServerStatus;

/// The tray icon's id.
pub const TRAY_ID: &str = "bucketftp";

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

// The tray pictures. Linux and Windows show the coloured bucket with a status dot; the macOS
// menu bar wants template images (black + alpha, tinted for light and dark menu bars), so the
// status is a filled dot, a ring or a barred dot there (icons/make_icons.py draws both).
#[cfg(not(target_os = "macos"))]
const ICON_RUNNING: &[u8] = include_bytes!("../../icons/tray-running.png");
#[cfg(not(target_os = "macos"))]
const ICON_STOPPED: &[u8] = include_bytes!("../../icons/tray-stopped.png");
#[cfg(not(target_os = "macos"))]
const ICON_ERROR: &[u8] = include_bytes!("../../icons/tray-error.png");
#[cfg(target_os = "macos")]
const ICON_RUNNING: &[u8] = include_bytes!("../../icons/tray-template-running.png");
#[cfg(target_os = "macos")]
const ICON_STOPPED: &[u8] = include_bytes!("../../icons/tray-template-stopped.png");
#[cfg(target_os = "macos")]
const ICON_ERROR: &[u8] = include_bytes!("../../icons/tray-template-error.png");
/// Whether the tray picture is a template image (macOS only; ignored elsewhere).
const ICON_AS_TEMPLATE: bool = cfg!(target_os = "macos");

/// The state line, tooltip key and icon of a server state.
fn state_words(core: &Core, status: &ServerStatus) -> (String, String, &'static [u8]) {
    match status {
        ServerStatus::Running { address } => (
            core.t("tray.status_running", &[("address", address)]),
            core.t("tray.tooltip_running", &[("address", address)]),
            ICON_RUNNING,
        ),
        ServerStatus::Stopped => (
            core.t("tray.status_stopped", &[]),
            core.t("tray.tooltip_stopped", &[]),
            ICON_STOPPED,
        ),
        ServerStatus::Error { message } => {
            // Keep the menu line short; the window shows the whole message.
            let short: String = message.chars().take(60).collect();
            (
                core.t("tray.status_error", &[("message", &short)]),
                core.t("tray.tooltip_error", &[("message", &short)]),
                ICON_ERROR,
            )
        }
    }
}

/// The menu for the current state, profiles and language. Pure given `core`'s state.
pub fn menu_model(core: &Core) -> Vec<Entry> {
    let status = core.status();
    let running = matches!(status, ServerStatus::Running { .. });
    let (line, _, _) = state_words(core, &status);
    let copies = core
        .profiles()
        .into_iter()
        .map(|p| {
            let name = core.display_name(&p.profile);
            item(
                &format!("{}{}", ids::COPY_PREFIX, p.profile.id),
                format!("{name} ({})", p.user),
                !p.profile.access_key.is_empty() && !p.profile.bucket.is_empty(),
            )
        })
        .collect();
    vec![
        item(ids::STATUS, line, false),
        Entry::Separator,
        item(ids::START, core.t("tray.start", &[]), !running),
        item(ids::STOP, core.t("tray.stop", &[]), running),
        Entry::Separator,
        item(ids::OPEN, core.t("tray.open", &[]), true),
        Entry::Submenu {
            id: ids::COPY_MENU.into(),
            label: core.t("tray.copy_login", &[]),
            items: copies,
        },
        item(ids::EXPORT, core.t("tray.export_sites", &[]), true),
        Entry::Separator,
        item(ids::QUIT, core.t("tray.quit", &[]), true),
    ]
}

fn build_entries<R: Runtime>(
    app: &AppHandle<R>,
    entries: &[Entry],
) -> tauri::Result<Vec<Box<dyn IsMenuItem<R>>>> {
    let mut out: Vec<Box<dyn IsMenuItem<R>>> = Vec::new();
    for e in entries {
        match e {
            Entry::Item { id, label, enabled } => out.push(Box::new(MenuItem::with_id(
                app,
                id.as_str(),
                label,
                *enabled,
                None::<&str>,
            )?)),
            Entry::Separator => out.push(Box::new(PredefinedMenuItem::separator(app)?)),
            Entry::Submenu { id, label, items } => {
                let children = build_entries(app, items)?;
                let refs: Vec<&dyn IsMenuItem<R>> = children.iter().map(|b| b.as_ref()).collect();
                out.push(Box::new(Submenu::with_id_and_items(
                    app,
                    id.as_str(),
                    label,
                    !items.is_empty(),
                    &refs,
                )?));
            }
        }
    }
    Ok(out)
}

fn build_menu<R: Runtime>(app: &AppHandle<R>, core: &Core) -> tauri::Result<Menu<R>> {
    let entries = build_entries(app, &menu_model(core))?;
    let refs: Vec<&dyn IsMenuItem<R>> = entries.iter().map(|b| b.as_ref()).collect();
    Menu::with_items(app, &refs)
}

/// Creates the tray icon. Errors (no tray host, no appindicator) are returned for logging;
/// the app keeps running without a tray.
pub fn create<R: Runtime>(app: &AppHandle<R>) -> tauri::Result<()> {
    let core = app.state::<Arc<Core>>().inner().clone();
    let (_, tooltip, icon) = state_words(&core, &core.status());
    TrayIconBuilder::with_id(TRAY_ID)
        .icon(Image::from_bytes(icon)?)
        .icon_as_template(ICON_AS_TEMPLATE)
        .tooltip(tooltip)
        .menu(&build_menu(app, &core)?)
        .show_menu_on_left_click(true)
        .on_menu_event(|app, event| on_menu(app, event.id().as_ref()))
        .build(app)?;
    Ok(())
}

/// Rebuilds the menu and sets the icon and tooltip for the current state.
pub fn refresh<R: Runtime>(app: &AppHandle<R>) {
    let Some(tray) = app.tray_by_id(TRAY_ID) else {
        return;
    };
    let Some(core) = app.try_state::<Arc<Core>>().map(|s| s.inner().clone()) else {
        return;
    };
    let (_, tooltip, icon) = state_words(&core, &core.status());
    let result = (|| -> tauri::Result<()> {
        tray.set_menu(Some(build_menu(app, &core)?))?;
        tray.set_icon(Some(Image::from_bytes(icon)?))?;
        tray.set_icon_as_template(ICON_AS_TEMPLATE)?;
        tray.set_tooltip(Some(tooltip))?;
        Ok(())
    })();
    if let Err(e) = result {
        tracing::warn!(error = %e, "tray not updated");
    }
}

fn on_menu<R: Runtime>(app: &AppHandle<R>, id: &str) {
    let Some(action) = parse_menu_id(id) else {
        return;
    };
    let Some(core) = app.try_state::<Arc<Core>>().map(|s| s.inner().clone()) else {
        return;
    };
    let app = app.clone();
    tauri::async_runtime::spawn(async move { run(&app, &core, action).await });
}

/// Carries out a tray action through the actions layer.
pub async fn run<R: Runtime>(app: &AppHandle<R>, core: &Core, action: TrayAction) {
    match action {
        TrayAction::Start => {
            if let Err(e) = core.start_server().await {
                tracing::warn!(error = %e, "start from the tray failed");
            }
        }
        TrayAction::Stop => {
            core.stop_server().await;
        }
        TrayAction::Open => core.open_window(),
        TrayAction::CopyLogin(id) => {
            if let Err(e) = core.copy(&id, CopyField::Url) {
                tracing::warn!(error = %e, "copy login failed");
            }
        }
        TrayAction::ExportSites => core.tray_export_sites(),
        TrayAction::Quit => {
            core.shutdown().await;
            app.exit(0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
