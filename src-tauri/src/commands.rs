//! The window's `#[tauri::command]`s: thin adapters from IPC to the actions layer
//! ([`crate::actions::Core`]), all returning `Result<_, ActionError>` (one serialisable
//! error type). Arguments are snake_case in JavaScript too.

use std::sync::Arc;

use tauri::State;

use crate::actions::{
    ActionError, ConnectInfo, CopyField, Core, ExportView, Notice, PresetView, ProbeView,
    ProfileView, SettingsSaved, StringsView,
};
use crate::activity::Snapshot;
use crate::profiles::ProfileInput;
use crate::server::ServerStatus;
use crate::settings::Settings;

type CoreState<'a> = State<'a, Arc<Core>>;

/// The server's state.
#[tauri::command(rename_all = "snake_case")]
pub async fn server_status(core: CoreState<'_>) -> Result<ServerStatus, ActionError> {
    Ok(core.status())
}

/// Starts the FTP server.
#[tauri::command(rename_all = "snake_case")]
pub async fn start_server(core: CoreState<'_>) -> Result<ServerStatus, ActionError> {
    core.start_server().await
}

/// Stops the FTP server.
#[tauri::command(rename_all = "snake_case")]
pub async fn stop_server(core: CoreState<'_>) -> Result<ServerStatus, ActionError> {
    Ok(core.stop_server().await)
}

/// Every profile.
#[tauri::command(rename_all = "snake_case")]
pub async fn list_profiles(core: CoreState<'_>) -> Result<Vec<ProfileView>, ActionError> {
    Ok(core.profiles())
}

/// Adds or edits a profile.
#[tauri::command(rename_all = "snake_case")]
pub async fn save_profile(
    core: CoreState<'_>,
    profile: ProfileInput,
) -> Result<ProfileView, ActionError> {
    core.save_profile(profile)
}

/// Deletes a profile and its secret.
#[tauri::command(rename_all = "snake_case")]
pub async fn delete_profile(core: CoreState<'_>, id: String) -> Result<(), ActionError> {
    core.delete_profile(&id)
}

/// The provider presets with their regions.
#[tauri::command(rename_all = "snake_case")]
pub async fn provider_presets(core: CoreState<'_>) -> Result<Vec<PresetView>, ActionError> {
    Ok(core.presets())
}

/// "Test connection" for a profile form.
#[tauri::command(rename_all = "snake_case")]
pub async fn test_connection(
    core: CoreState<'_>,
    profile: ProfileInput,
) -> Result<ProbeView, ActionError> {
    core.test_connection(profile).await
}

/// The FileZilla settings of a profile.
#[tauri::command(rename_all = "snake_case")]
pub async fn connect_info(
    core: CoreState<'_>,
    profile_id: String,
) -> Result<ConnectInfo, ActionError> {
    core.connect_info(&profile_id)
}

/// A profile's secret, on request.
#[tauri::command(rename_all = "snake_case")]
pub async fn reveal_secret(
    core: CoreState<'_>,
    profile_id: String,
) -> Result<Option<String>, ActionError> {
    core.reveal_secret(&profile_id)
}

/// Copies one FileZilla setting of a profile to the clipboard.
#[tauri::command(rename_all = "snake_case")]
pub async fn copy_field(
    core: CoreState<'_>,
    profile_id: String,
    field: CopyField,
) -> Result<(), ActionError> {
    core.copy(&profile_id, field)
}

/// "Export FileZilla sites…": the Site Manager file in the Downloads folder; secret keys
/// only when `include_secrets`.
#[tauri::command(rename_all = "snake_case")]
pub async fn export_filezilla_sites(
    core: CoreState<'_>,
    include_secrets: bool,
) -> Result<ExportView, ActionError> {
    core.export_filezilla_sites(include_secrets)
}

/// Sessions, transfers, errors and the log tail.
#[tauri::command(rename_all = "snake_case")]
pub async fn activity(core: CoreState<'_>) -> Result<Snapshot, ActionError> {
    Ok(core.activity())
}

/// Banner messages.
#[tauri::command(rename_all = "snake_case")]
pub async fn notices(core: CoreState<'_>) -> Result<Vec<Notice>, ActionError> {
    Ok(core.notices())
}

/// Dismisses a banner message.
#[tauri::command(rename_all = "snake_case")]
pub async fn dismiss_notice(core: CoreState<'_>, index: usize) -> Result<(), ActionError> {
    core.dismiss_notice(index);
    Ok(())
}

/// The settings.
#[tauri::command(rename_all = "snake_case")]
pub async fn get_settings(core: CoreState<'_>) -> Result<Settings, ActionError> {
    Ok(core.settings())
}

/// Saves the settings.
#[tauri::command(rename_all = "snake_case")]
pub async fn save_settings(
    core: CoreState<'_>,
    settings: Settings,
) -> Result<SettingsSaved, ActionError> {
    core.save_settings(settings).await
}

/// The string table of `lang` (default: the language in effect).
#[tauri::command(rename_all = "snake_case")]
pub async fn strings(
    core: CoreState<'_>,
    lang: Option<String>,
) -> Result<StringsView, ActionError> {
    Ok(core.strings(lang.as_deref()))
}

/// Every command, for `Builder::invoke_handler`.
#[macro_export]
#[doc(hidden)]
macro_rules! command_handler {
    () => {
        tauri::generate_handler![
            $crate::commands::server_status,
            $crate::commands::start_server,
            $crate::commands::stop_server,
            $crate::commands::list_profiles,
            $crate::commands::save_profile,
            $crate::commands::delete_profile,
            $crate::commands::provider_presets,
            $crate::commands::test_connection,
            $crate::commands::connect_info,
            $crate::commands::reveal_secret,
            $crate::commands::copy_field,
            $crate::commands::export_filezilla_sites,
            $crate::commands::activity,
            $crate::commands::notices,
            $crate::commands::dismiss_notice,
            $crate::commands::get_settings,
            $crate::commands::save_settings,
            $crate::commands::strings,
        ]
    };
}
