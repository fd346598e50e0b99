//! The tray icon and its menu: the server state, Start / Stop, Open window, "Copy FileZilla
//! login" per profile (the Quickconnect URL, never the secret), "Export FileZilla sites…"
//! (never with secrets), Quit. The menu is a pure model ([`menu`]: ids, [`TrayState`],
//! [`menu_model`]) built here into Tauri menu items; clicks go to the actions layer. Without
//! a tray host (or the appindicator library) the app logs it and runs on with its window.

pub mod menu;

use std::sync::Arc;

use tauri::image::Image;
use tauri::menu::{IsMenuItem, Menu, MenuItem, PredefinedMenuItem, Submenu};
use tauri::tray::TrayIconBuilder;
use tauri::{AppHandle, Manager, Runtime};

pub use menu::{
    Entry, Icon, TrayAction, TrayProfile, TrayState, ids, menu_model, parse_menu_id, state_words,
};

use crate::actions::{CopyField, Core};

/// The tray icon's id.
pub const TRAY_ID: &str = "bucketftp";

// The tray pictures. Linux and Windows show the coloured bucket with a status dot; the macOS
// menu bar wants template images (black + alpha, tinted for light and dark menu bars), so the
// status is a filled dot, a ring or a barred dot there (icons/make_icons.py draws both).
#[cfg(not(target_os = "macos"))]
const ICON_RUNNING: &[u8] = include_bytes!("../../../icons/tray-running.png");
#[cfg(not(target_os = "macos"))]
const ICON_STOPPED: &[u8] = include_bytes!("../../../icons/tray-stopped.png");
#[cfg(not(target_os = "macos"))]
const ICON_ERROR: &[u8] = include_bytes!("../../../icons/tray-error.png");
#[cfg(target_os = "macos")]
const ICON_RUNNING: &[u8] = include_bytes!("../../../icons/tray-template-running.png");
#[cfg(target_os = "macos")]
const ICON_STOPPED: &[u8] = include_bytes!("../../../icons/tray-template-stopped.png");
#[cfg(target_os = "macos")]
const ICON_ERROR: &[u8] = include_bytes!("../../../icons/tray-template-error.png");
/// Whether the tray picture is a template image (macOS only; ignored elsewhere).
const ICON_AS_TEMPLATE: bool = cfg!(target_os = "macos");

/// The picture of `icon`.
fn picture(icon: Icon) -> &'static [u8] {
    match icon {
        Icon::Running => ICON_RUNNING,
        Icon::Stopped => ICON_STOPPED,
        Icon::Error => ICON_ERROR,
    }
}

/// The tooltip and picture for the current state.
fn tooltip_and_picture(core: &Core) -> (String, &'static [u8]) {
    let (_, tooltip, icon) = state_words(&core.status(), &|k, a| core.t(k, a));
    (tooltip, picture(icon))
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
            Entry::Submenu {
                id,
                label,
                enabled,
                items,
            } => {
                let children = build_entries(app, items)?;
                let refs: Vec<&dyn IsMenuItem<R>> = children.iter().map(|b| b.as_ref()).collect();
                out.push(Box::new(Submenu::with_id_and_items(
                    app,
                    id.as_str(),
                    label,
                    *enabled,
                    &refs,
                )?));
            }
        }
    }
    Ok(out)
}

fn build_menu<R: Runtime>(app: &AppHandle<R>, core: &Core) -> tauri::Result<Menu<R>> {
    let entries = build_entries(app, &menu_model(&core.tray_state(), &|k, a| core.t(k, a)))?;
    let refs: Vec<&dyn IsMenuItem<R>> = entries.iter().map(|b| b.as_ref()).collect();
    Menu::with_items(app, &refs)
}

/// Creates the tray icon. Errors (no tray host, no appindicator) are returned for logging;
/// the app keeps running without a tray.
pub fn create<R: Runtime>(app: &AppHandle<R>) -> tauri::Result<()> {
    let core = app.state::<Arc<Core>>().inner().clone();
    let (tooltip, icon) = tooltip_and_picture(&core);
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
    let (tooltip, icon) = tooltip_and_picture(&core);
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
