//! The actions layer: everything the tray menu and the window's commands can do, in one
//! place ([`Core`]). Commands and tray handlers are thin adapters over these methods; what
//! happens on screen (tray refresh, events to the window, clipboard, autostart) goes through
//! the [`Shell`] trait, so the actions run the same under Tauri, the mock runtime and plain
//! tests.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use gateway::filezilla::Site;
use gateway::local::LocalSetup;
use gateway::{Event, Failure, GatewayConfig, Provider, S3Settings};
use serde::{Serialize, Serializer};

use crate::activity::{Activity, Snapshot};
use crate::i18n::{Catalog, Lang};
use crate::persist::PersistError;
use crate::profiles::{LOCAL_BUCKET, LOCAL_PROFILE_ID, Profile, ProfileInput, ProfileStore};
use crate::secrets::{SecretError, SecretStore};
use crate::server::{ServerController, ServerStatus};
use crate::settings::{SaveError, Settings, SettingsStore};

/// How long Stop lets running transfers finish.
pub const STOP_GRACE: Duration = Duration::from_secs(3);
/// How long "Test connection" waits for the store.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(20);
/// The FTP host shown to the user.
pub const HOST: &str = "127.0.0.1";

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
    fn set_start_at_login(&self, on: bool) -> Result<(), String>;
    /// Puts text on the clipboard.
    fn copy_text(&self, text: &str) -> Result<(), String>;
    /// Shows and focuses the window.
    fn show_window(&self);
    /// The banner messages changed (the window reloads them).
    fn notices_changed(&self);
}

/// A message for the window's banner: a translation key plus arguments.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Notice {
    /// Translation key (`notice.*`).
    pub key: &'static str,
    /// Placeholder values.
    pub args: BTreeMap<&'static str, String>,
}

impl Notice {
    fn new(key: &'static str, args: &[(&'static str, String)]) -> Self {
        Self {
            key,
            args: args.iter().cloned().collect(),
        }
    }

    /// A settings or profiles file that did not parse and was kept aside.
    pub fn corrupt(file: &Path, kept: &Path, reason: &str) -> Self {
        Self::new(
            "notice.corrupt",
            &[
                ("file", file.display().to_string()),
                ("kept", kept.display().to_string()),
                ("reason", reason.to_owned()),
            ],
        )
    }
}

/// Every way an action fails; serialises as `{kind, key, field, message}` for the window,
/// which shows `key` translated (with `detail`) and falls back to `message`.
#[derive(Debug, thiserror::Error)]
pub enum ActionError {
    /// A form field is wrong.
    #[error("{detail}")]
    Invalid {
        /// The field at fault.
        field: &'static str,
        /// Translation key.
        key: &'static str,
        /// English detail.
        detail: String,
    },
    /// No such profile.
    #[error("no profile {0:?}")]
    NoProfile(String),
    /// The built-in profile cannot be deleted or edited.
    #[error("the built-in profile cannot be deleted or edited")]
    Builtin,
    /// A new profile needs its secret.
    #[error("enter the secret key")]
    SecretRequired,
    /// The keychain failed.
    #[error(transparent)]
    Keychain(#[from] SecretError),
    /// A file could not be written.
    #[error("cannot save {0}")]
    Save(#[from] PersistError),
    /// The FTP server did not start.
    #[error("the FTP server could not start: {0}")]
    Start(String),
    /// The local bucket is not running.
    #[error("the local bucket is not available: {0}")]
    LocalUnavailable(String),
    /// Start at login could not be changed.
    #[error("could not change start at login: {0}")]
    Autostart(String),
    /// The clipboard refused.
    #[error("could not copy: {0}")]
    Clipboard(String),
    /// The FileZilla site file could not be written.
    #[error("could not export the FileZilla sites: {0}")]
    Export(String),
}

impl ActionError {
    /// The translation key of the message.
    pub fn key(&self) -> &'static str {
        match self {
            ActionError::Invalid { key, .. } => key,
            ActionError::NoProfile(_) => "err.no_profile",
            ActionError::Builtin => "err.builtin",
            ActionError::SecretRequired => "err.secret_required",
            ActionError::Keychain(_) => "err.keychain",
            ActionError::Save(_) => "err.save",
            ActionError::Start(_) => "err.start",
            ActionError::LocalUnavailable(_) => "err.local_unavailable",
            ActionError::Autostart(_) => "err.autostart",
            ActionError::Clipboard(_) => "err.clipboard",
            ActionError::Export(_) => "err.export",
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            ActionError::Invalid { .. } => "invalid",
            ActionError::NoProfile(_) => "no_profile",
            ActionError::Builtin => "builtin",
            ActionError::SecretRequired => "secret_required",
            ActionError::Keychain(_) => "keychain",
            ActionError::Save(_) => "save",
            ActionError::Start(_) => "start",
            ActionError::LocalUnavailable(_) => "local_unavailable",
            ActionError::Autostart(_) => "autostart",
            ActionError::Clipboard(_) => "clipboard",
            ActionError::Export(_) => "export",
        }
    }

    fn detail(&self) -> String {
        match self {
            ActionError::Invalid { detail, .. } => detail.clone(),
            ActionError::Keychain(e) => e.0.clone(),
            ActionError::Save(e) => e.to_string(),
            ActionError::Start(d)
            | ActionError::LocalUnavailable(d)
            | ActionError::Autostart(d)
            | ActionError::Clipboard(d)
            | ActionError::Export(d) => d.clone(),
            other => other.to_string(),
        }
    }
}

impl Serialize for ActionError {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Body<'a> {
            kind: &'a str,
            key: &'a str,
            field: Option<&'a str>,
            detail: String,
            message: String,
        }
        let field = match self {
            ActionError::Invalid { field, .. } => Some(*field),
            ActionError::SecretRequired => Some("secret"),
            _ => None,
        };
        Body {
            kind: self.kind(),
            key: self.key(),
            field,
            detail: self.detail(),
            message: self.to_string(),
        }
        .serialize(s)
    }
}

impl From<crate::profiles::InvalidProfile> for ActionError {
    fn from(e: crate::profiles::InvalidProfile) -> Self {
        ActionError::Invalid {
            field: e.field,
            key: e.key,
            detail: e.detail,
        }
    }
}

impl From<SaveError> for ActionError {
    fn from(e: SaveError) -> Self {
        match e {
            SaveError::Invalid(i) => ActionError::Invalid {
                field: i.field,
                key: i.key,
                detail: i.detail,
            },
            SaveError::Write(w) => ActionError::Save(w),
        }
    }
}

/// A profile as the Profiles list shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProfileView {
    /// The saved profile (for "This computer": with the local key filled in).
    #[serde(flatten)]
    pub profile: Profile,
    /// True when the keychain (or, for the local bucket, its credential file) has a secret.
    pub has_secret: bool,
    /// The FileZilla user `AK/bucket`.
    pub user: String,
    /// The local bucket's folder.
    pub folder: Option<String>,
}

/// A provider preset for the Profiles form.
#[derive(Debug, Clone, Serialize)]
pub struct PresetView {
    /// `aws`, `oss`, …
    pub id: Provider,
    /// English name (the window shows `provider.<id>` translated).
    pub label: &'static str,
    /// Endpoint with `{region}`; `None` when the SDK knows it or the user must give it.
    pub endpoint_template: Option<&'static str>,
    /// Region used when none is chosen.
    pub default_region: &'static str,
    /// Regions offered.
    pub regions: Vec<&'static str>,
    /// Preferred addressing.
    pub addressing: gateway::Addressing,
    /// True when the user must give the endpoint.
    pub endpoint_required: bool,
}

/// The outcome of "Test connection", in words (a translation key plus arguments).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProbeView {
    /// True when the key works.
    pub ok: bool,
    /// Translation key (`probe.*`).
    pub key: &'static str,
    /// Placeholder values.
    pub args: BTreeMap<&'static str, String>,
    /// Buckets the key can list.
    pub buckets: Vec<String>,
}

/// The exact FileZilla settings for a profile.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ConnectInfo {
    /// The profile.
    pub profile_id: String,
    /// 127.0.0.1
    pub host: String,
    /// The FTP port.
    pub port: u16,
    /// `AK/bucket`.
    pub user: String,
    /// True when the profile has no default bucket (the user must add one).
    pub bucket_missing: bool,
    /// `ftp://AK/bucket@127.0.0.1:2048/` for Quickconnect (never with the password).
    pub url: String,
    /// True when a secret is stored.
    pub has_secret: bool,
    /// FTPS certificate fingerprint when FTPS is offered.
    pub fingerprint: Option<String>,
    /// True while the server runs.
    pub running: bool,
}

/// A field of [`ConnectInfo`] to copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CopyField {
    /// 127.0.0.1
    Host,
    /// The port.
    Port,
    /// `AK/bucket`.
    User,
    /// The secret key.
    Password,
    /// The `ftp://` URL for Quickconnect (no password: FileZilla asks for the secret key).
    Url,
}

/// The outcome of "Export FileZilla sites…".
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ExportView {
    /// The file written (never an existing file replaced).
    pub path: String,
    /// Sites in the file.
    pub sites: usize,
    /// True when secret keys are in the file (the user ticked "Include the secret keys").
    pub with_secrets: bool,
    /// Profiles left out because they have no default bucket or access key (display names).
    pub skipped: Vec<String>,
}

/// The base name of the exported Site Manager file.
pub const EXPORT_FILE: &str = "bucketftp-sites.xml";

/// Where exports go: the user's Downloads folder, else the home folder.
pub fn export_dir() -> Option<PathBuf> {
    let dirs = directories::UserDirs::new()?;
    Some(
        dirs.download_dir()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| dirs.home_dir().to_path_buf()),
    )
}

/// Result of saving settings.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SettingsSaved {
    /// The saved settings.
    pub settings: Settings,
    /// True when the running server restarted to apply them.
    pub restarted: bool,
}

/// The window's string table.
#[derive(Debug, Clone, Serialize)]
pub struct StringsView {
    /// Language code in effect.
    pub lang: Lang,
    /// Key → text.
    pub strings: std::collections::HashMap<String, String>,
    /// Languages offered: code and own name.
    pub languages: Vec<(Lang, &'static str)>,
    /// "Version 0.1.0" in this language (Settings shows it).
    pub version: String,
}

/// Where the app keeps its files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppPaths {
    /// `settings.json`, `profiles.json`.
    pub config_dir: PathBuf,
    /// The local bucket and the FTPS certificate.
    pub data_dir: PathBuf,
}

impl AppPaths {
    /// The per-user folders (XDG on Linux, `AppData` on Windows, `Library` on macOS); the
    /// same data folder as `bucketftp-server`, so both serve the same local bucket.
    pub fn for_user() -> Option<Self> {
        let dirs = directories::ProjectDirs::from("", "", "BucketFTP")?;
        Some(Self {
            config_dir: dirs.config_dir().to_path_buf(),
            data_dir: dirs.data_dir().to_path_buf(),
        })
    }
}

/// The app's state and its actions. Managed by Tauri as `Arc<Core>`.
pub struct Core {
    paths: AppPaths,
    settings: SettingsStore,
    profiles: ProfileStore,
    secrets: Arc<dyn SecretStore>,
    server: ServerController,
    activity: Arc<Mutex<Activity>>,
    local: tokio::sync::Mutex<Option<LocalSetup>>,
    local_login: Option<LocalLogin>,
    tls: Option<gateway::tls::TlsMaterial>,
    catalog: Catalog,
    os_locale: Option<String>,
    notices: Mutex<Vec<Notice>>,
    shell: Arc<dyn Shell>,
}

/// The local bucket's login (its secret stays in its own 0600 credential file).
#[derive(Clone)]
struct LocalLogin {
    access_key: String,
    secret_key: String,
    settings: S3Settings,
    folder: PathBuf,
}

impl std::fmt::Debug for Core {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Core")
            .field("paths", &self.paths)
            .field("server", &self.server)
            .finish_non_exhaustive()
    }
}

/// Why the app cannot open at all.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// A settings or profiles file cannot be read (not: does not parse).
    #[error("cannot read {0}")]
    Read(#[from] PersistError),
    /// The string tables are broken (a build mistake).
    #[error(transparent)]
    Catalog(#[from] crate::i18n::CatalogError),
}

/// Now, in Unix milliseconds.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    }
}

/// The user part of an `ftp://` URL as FileZilla's Quickconnect reads it. FileZilla splits a
/// URL but does not percent-decode it, so the login stays literal (`AK/bucket`, slash
/// included); only what would break the URL is encoded: `@`, `:`, `%`, space and control
/// characters. Pure.
pub fn url_user(user: &str) -> String {
    let mut out = String::with_capacity(user.len());
    for c in user.chars() {
        if matches!(c, '@' | ':' | '%' | ' ') || c.is_control() {
            let mut buf = [0u8; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                let _ = write!(out, "%{b:02X}");
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// `ftp://AK/bucket@host:port/` for FileZilla's Quickconnect. Never carries a password:
/// FileZilla asks for it (the secret key). Pure.
pub fn ftp_url(user: &str, host: &str, port: u16) -> String {
    format!("ftp://{}@{host}:{port}/", url_user(user))
}

/// A failed probe in words. Pure.
pub fn probe_failure(f: &Failure) -> (&'static str, Vec<(&'static str, String)>) {
    match f {
        Failure::InvalidAccessKey => ("probe.bad_key", vec![]),
        Failure::BadSecret => ("probe.bad_secret", vec![]),
        Failure::AccessDenied => ("probe.denied", vec![]),
        Failure::NoSuchBucket => ("probe.no_bucket", vec![]),
        Failure::WrongRegion(Some(r)) => ("probe.wrong_region", vec![("region", r.clone())]),
        Failure::WrongRegion(None) => ("probe.wrong_region_unknown", vec![]),
        Failure::Transient(d) => ("probe.unreachable", vec![("detail", d.clone())]),
        other => ("probe.other", vec![("detail", other.to_string())]),
    }
}

impl Core {
    /// Loads settings and profiles, starts the local bucket and prepares FTPS. Unreadable
    /// (corrupt) files, a local bucket that does not start and FTPS problems become notices;
    /// only a file that cannot be read at all stops the app.
    pub async fn open(
        paths: AppPaths,
        secrets: Arc<dyn SecretStore>,
        shell: Arc<dyn Shell>,
    ) -> Result<Self, OpenError> {
        let catalog = Catalog::load()?;
        let mut notices = Vec::new();
        let (settings, n) = SettingsStore::load(&paths.config_dir.join("settings.json"))?;
        notices.extend(n);
        let (profiles, report) = ProfileStore::load(&paths.config_dir.join("profiles.json"))?;
        notices.extend(report.notice);
        if report.first_run {
            tracing::info!(dir = %paths.config_dir.display(), "first run: profile \"This computer\" created");
        }
        let local =
            match gateway::local::start_local(&paths.data_dir.join("local-store"), LOCAL_BUCKET)
                .await
            {
                Ok(l) => Some(l),
                Err(e) => {
                    tracing::warn!(error = %e, "local bucket did not start");
                    notices.push(Notice::new(
                        "notice.local_failed",
                        &[("detail", e.to_string())],
                    ));
                    None
                }
            };
        let local_login = local.as_ref().map(|l| LocalLogin {
            access_key: l.access_key.clone(),
            secret_key: l.secret_key.clone(),
            settings: l.settings.clone(),
            folder: l.folder.clone(),
        });
        let tls = match gateway::tls::load_or_create(&paths.data_dir) {
            Ok(t) => Some(t),
            Err(e) => {
                tracing::warn!(error = %e, "FTPS off");
                notices.push(Notice::new(
                    "notice.tls_failed",
                    &[("detail", e.to_string())],
                ));
                None
            }
        };
        Ok(Self {
            paths,
            settings,
            profiles,
            secrets,
            server: ServerController::default(),
            activity: Arc::new(Mutex::new(Activity::default())),
            local: tokio::sync::Mutex::new(local),
            local_login,
            tls,
            catalog,
            os_locale: sys_locale::get_locale(),
            notices: Mutex::new(notices),
            shell,
        })
    }

    /// Where the files are.
    pub fn paths(&self) -> &AppPaths {
        &self.paths
    }

    // ----- server ------------------------------------------------------------------------

    /// The server's state.
    pub fn status(&self) -> ServerStatus {
        self.server.status()
    }

    /// The gateway configuration from the settings and profiles.
    pub fn gateway_config(&self) -> Result<GatewayConfig, String> {
        let s = self.settings.get();
        s.validate().map_err(|e| e.to_string())?;
        let default = self
            .endpoint_settings(&s.default_profile)
            .or_else(|| self.endpoint_settings(LOCAL_PROFILE_ID))
            .ok_or_else(|| {
                "no profile can serve logins: the local bucket is not running and the default profile is gone".to_owned()
            })?;
        let mut config = GatewayConfig::new(default);
        config.listen = SocketAddr::from(([127, 0, 0, 1], s.listen_port));
        config.passive_ports = s.passive_range().map_err(|e| e.to_string())?;
        config.limits = s.transfer_limits().map_err(|e| e.to_string())?;
        config.permissions = gateway::Permissions {
            read_only: s.read_only,
            allow_delete: s.allow_delete,
        };
        config.tls = self.tls.clone();
        if s.require_tls && self.tls.is_none() {
            return Err(
                "\"Require TLS\" is on but FTPS is off (no certificate), so no one could log in: turn \"Require TLS\" off in Settings".to_owned(),
            );
        }
        config.require_tls = s.require_tls;
        let local = self
            .local_login
            .as_ref()
            .map(|l| (l.access_key.clone(), l.settings.clone()));
        config.login_settings = Some(Arc::new(self.profiles.logins(local)));
        Ok(config)
    }

    fn endpoint_settings(&self, profile_id: &str) -> Option<S3Settings> {
        let p = self.profiles.get(profile_id)?;
        if p.local {
            self.local_login.as_ref().map(|l| l.settings.clone())
        } else {
            Some(p.s3_settings())
        }
    }

    /// Starts the FTP server (no-op when it runs).
    pub async fn start_server(&self) -> Result<ServerStatus, ActionError> {
        let activity = Arc::clone(&self.activity);
        let shell = Arc::clone(&self.shell);
        let on_event: Arc<dyn Fn(Event) + Send + Sync> = Arc::new(move |event: Event| {
            lock(&activity).apply(&event, now_ms());
            shell.gateway_event(&event);
        });
        let (status, changed) = self.server.start(|| self.gateway_config(), on_event).await;
        if changed {
            match &status {
                ServerStatus::Running { address } => lock(&self.activity).note(
                    now_ms(),
                    "log.server_started",
                    &[("address", address.clone())],
                ),
                ServerStatus::Error { message } => {
                    lock(&self.activity).server_failed(now_ms(), message)
                }
                ServerStatus::Stopped => {}
            }
            self.shell.server_changed(&status);
        }
        match status {
            ServerStatus::Error { message } => Err(ActionError::Start(message)),
            s => Ok(s),
        }
    }

    /// Stops the FTP server; running transfers get [`STOP_GRACE`].
    pub async fn stop_server(&self) -> ServerStatus {
        if self.server.stop(STOP_GRACE).await {
            lock(&self.activity).server_stopped(now_ms());
        }
        let status = self.server.status();
        self.shell.server_changed(&status);
        status
    }

    /// Stops everything before the app exits.
    pub async fn shutdown(&self) {
        self.server.stop(STOP_GRACE).await;
        if let Some(local) = self.local.lock().await.take() {
            local.store.stop().await;
        }
    }

    // ----- profiles ----------------------------------------------------------------------

    fn view(&self, p: Profile) -> ProfileView {
        if p.local {
            let mut profile = p;
            let (has_secret, folder) = match &self.local_login {
                Some(l) => {
                    profile.access_key = l.access_key.clone();
                    profile.endpoint = l.settings.endpoint.clone();
                    profile.region = l.settings.region.clone();
                    (true, Some(l.folder.display().to_string()))
                }
                None => (false, None),
            };
            let user = format!("{}/{}", profile.access_key, profile.bucket);
            return ProfileView {
                profile,
                has_secret,
                user,
                folder,
            };
        }
        let has_secret = matches!(self.secrets.get(&p.id), Ok(Some(_)));
        let user = format!("{}/{}", p.access_key, p.bucket);
        ProfileView {
            profile: p,
            has_secret,
            user,
            folder: None,
        }
    }

    /// Every profile, "This computer" first.
    pub fn profiles(&self) -> Vec<ProfileView> {
        self.profiles
            .all()
            .into_iter()
            .map(|p| self.view(p))
            .collect()
    }

    /// Adds (empty `id`) or edits a profile; a non-empty secret goes to the keychain.
    pub fn save_profile(&self, input: ProfileInput) -> Result<ProfileView, ActionError> {
        let is_new = input.id.trim().is_empty();
        let id = if is_new {
            self.profiles.new_id()
        } else {
            let existing = self
                .profiles
                .get(&input.id)
                .ok_or_else(|| ActionError::NoProfile(input.id.clone()))?;
            if existing.local {
                return Err(ActionError::Builtin);
            }
            existing.id
        };
        let profile = input.to_profile(&id)?;
        let secret = input.secret.trim();
        if is_new && secret.is_empty() {
            return Err(ActionError::SecretRequired);
        }
        if !secret.is_empty() {
            self.secrets.set(&id, secret)?;
        }
        if let Err(e) = self.profiles.put(profile.clone()) {
            if is_new {
                let _ = self.secrets.delete(&id);
            }
            return Err(e.into());
        }
        self.shell.profiles_changed();
        Ok(self.view(profile))
    }

    /// Deletes a profile and its secret.
    pub fn delete_profile(&self, id: &str) -> Result<(), ActionError> {
        let p = self
            .profiles
            .get(id)
            .ok_or_else(|| ActionError::NoProfile(id.to_owned()))?;
        if p.local {
            return Err(ActionError::Builtin);
        }
        self.secrets.delete(id)?;
        self.profiles.remove(id)?;
        let s = self.settings.get();
        if s.default_profile == id {
            self.settings.save(Settings {
                default_profile: LOCAL_PROFILE_ID.into(),
                ..s
            })?;
        }
        self.shell.profiles_changed();
        Ok(())
    }

    /// The provider presets, in menu order.
    pub fn presets(&self) -> Vec<PresetView> {
        Provider::ALL
            .iter()
            .map(|p| {
                let pre = p.preset();
                PresetView {
                    id: *p,
                    label: pre.label,
                    endpoint_template: pre.endpoint_template,
                    default_region: pre.default_region,
                    regions: pre.regions.to_vec(),
                    addressing: pre.addressing,
                    endpoint_required: pre.endpoint_required,
                }
            })
            .collect()
    }

    fn secret_of(&self, id: &str) -> Result<Option<String>, ActionError> {
        let p = self
            .profiles
            .get(id)
            .ok_or_else(|| ActionError::NoProfile(id.to_owned()))?;
        if p.local {
            return match &self.local_login {
                Some(l) => Ok(Some(l.secret_key.clone())),
                None => Err(ActionError::LocalUnavailable(
                    "the local bucket did not start".into(),
                )),
            };
        }
        Ok(self.secrets.get(id)?)
    }

    /// Tests a profile form (or a saved profile: `id` set, empty secret uses the stored one).
    pub async fn test_connection(&self, input: ProfileInput) -> Result<ProbeView, ActionError> {
        let saved = (!input.id.is_empty())
            .then(|| self.profiles.get(&input.id))
            .flatten();
        let (settings, access_key, secret, bucket) = match saved.filter(|p| p.local) {
            Some(local) => {
                let l = self.local_login.as_ref().ok_or_else(|| {
                    ActionError::LocalUnavailable("the local bucket did not start".into())
                })?;
                (
                    l.settings.clone(),
                    l.access_key.clone(),
                    l.secret_key.clone(),
                    local.bucket,
                )
            }
            None => {
                let profile = input.to_profile("probe")?;
                let secret = match input.secret.trim() {
                    "" if !input.id.is_empty() => self.secret_of(&input.id)?,
                    "" => None,
                    s => Some(s.to_owned()),
                };
                let secret = secret.ok_or(ActionError::SecretRequired)?;
                (
                    profile.s3_settings(),
                    profile.access_key,
                    secret,
                    profile.bucket,
                )
            }
        };
        let bucket_arg = (!bucket.is_empty()).then_some(bucket.as_str());
        let probe = gateway::probe::test_connection(&settings, &access_key, &secret, bucket_arg);
        let view = match tokio::time::timeout(PROBE_TIMEOUT, probe).await {
            Err(_) => ProbeView {
                ok: false,
                key: "probe.timeout",
                args: BTreeMap::new(),
                buckets: vec![],
            },
            Ok(Err(f)) => {
                let (key, args) = probe_failure(&f);
                ProbeView {
                    ok: false,
                    key,
                    args: args.into_iter().collect(),
                    buckets: vec![],
                }
            }
            Ok(Ok(report)) => {
                let mut args = BTreeMap::from([("region", report.region.clone())]);
                let key = if report.bucket_ok == Some(true) {
                    args.insert("bucket", bucket.clone());
                    "probe.ok_bucket"
                } else if !report.buckets.is_empty() {
                    args.insert("buckets", report.buckets.join(", "));
                    "probe.ok_buckets"
                } else {
                    "probe.ok_none"
                };
                ProbeView {
                    ok: true,
                    key,
                    args,
                    buckets: report.buckets,
                }
            }
        };
        Ok(view)
    }

    // ----- connect -----------------------------------------------------------------------

    fn port(&self) -> u16 {
        match self.server.status() {
            ServerStatus::Running { address } => address
                .parse::<SocketAddr>()
                .map(|a| a.port())
                .unwrap_or_else(|_| self.settings.get().listen_port),
            _ => self.settings.get().listen_port,
        }
    }

    /// The FileZilla settings of a profile (no secret).
    pub fn connect_info(&self, profile_id: &str) -> Result<ConnectInfo, ActionError> {
        let p = self
            .profiles
            .get(profile_id)
            .ok_or_else(|| ActionError::NoProfile(profile_id.to_owned()))?;
        let v = self.view(p);
        let port = self.port();
        Ok(ConnectInfo {
            profile_id: v.profile.id.clone(),
            host: HOST.into(),
            port,
            bucket_missing: v.profile.bucket.is_empty(),
            url: ftp_url(&v.user, HOST, port),
            user: v.user,
            has_secret: v.has_secret,
            fingerprint: self.tls.as_ref().map(|t| t.fingerprint.clone()),
            running: self.server.is_running(),
        })
    }

    /// The secret of a profile, shown only when the user asks.
    pub fn reveal_secret(&self, profile_id: &str) -> Result<Option<String>, ActionError> {
        self.secret_of(profile_id)
    }

    /// The text a copy button puts on the clipboard.
    pub fn copy_text(&self, profile_id: &str, field: CopyField) -> Result<String, ActionError> {
        let info = self.connect_info(profile_id)?;
        Ok(match field {
            CopyField::Host => info.host,
            CopyField::Port => info.port.to_string(),
            CopyField::User => info.user,
            CopyField::Url => info.url,
            CopyField::Password => self
                .secret_of(profile_id)?
                .ok_or(ActionError::SecretRequired)?,
        })
    }

    /// Copies a field of a profile's FileZilla settings to the clipboard.
    pub fn copy(&self, profile_id: &str, field: CopyField) -> Result<(), ActionError> {
        let text = self.copy_text(profile_id, field)?;
        self.shell.copy_text(&text).map_err(ActionError::Clipboard)
    }

    // ----- FileZilla site export --------------------------------------------------------

    /// One FileZilla site per profile (127.0.0.1, the server's port, `AK/bucket`, explicit
    /// TLS when FTPS is offered). Secret keys only when `include_secrets`; profiles without a
    /// stored secret then still ask for the password. Profiles with no access key or default
    /// bucket are left out and named in the second list.
    pub fn filezilla_sites(
        &self,
        include_secrets: bool,
    ) -> Result<(Vec<Site>, Vec<String>), ActionError> {
        let port = self.port();
        let mut sites = Vec::new();
        let mut skipped = Vec::new();
        for v in self.profiles() {
            let name = self.display_name(&v.profile);
            if v.profile.access_key.is_empty() || v.profile.bucket.is_empty() {
                skipped.push(name);
                continue;
            }
            let secret = if include_secrets {
                self.secret_of(&v.profile.id)?
            } else {
                None
            };
            sites.push(Site {
                name: format!("BucketFTP - {name}"),
                host: HOST.into(),
                port,
                user: v.user,
                secret,
                explicit_tls: self.tls.is_some(),
            });
        }
        Ok((sites, skipped))
    }

    /// Writes the FileZilla Site Manager file into `dir` as `bucketftp-sites.xml` (or
    /// `bucketftp-sites-2.xml`, … when taken: an existing file is never replaced), atomically.
    pub fn export_filezilla_sites_to(
        &self,
        dir: &Path,
        include_secrets: bool,
    ) -> Result<ExportView, ActionError> {
        let (sites, skipped) = self.filezilla_sites(include_secrets)?;
        if sites.is_empty() {
            return Err(ActionError::Export(
                "no profile has an access key and a default bucket".into(),
            ));
        }
        let xml = gateway::filezilla::site_manager_xml(&sites);
        let path = crate::persist::write_new(dir, EXPORT_FILE, xml.as_bytes())
            .map_err(|e| ActionError::Export(e.to_string()))?;
        tracing::info!(file = %path.display(), sites = sites.len(), with_secrets = include_secrets,
            "FileZilla sites exported");
        Ok(ExportView {
            path: path.display().to_string(),
            sites: sites.len(),
            with_secrets: include_secrets && sites.iter().any(|s| s.secret.is_some()),
            skipped,
        })
    }

    /// "Export FileZilla sites…" from the window: into the Downloads folder (else home).
    pub fn export_filezilla_sites(&self, include_secrets: bool) -> Result<ExportView, ActionError> {
        let dir = export_dir()
            .ok_or_else(|| ActionError::Export("no Downloads or home folder".into()))?;
        self.export_filezilla_sites_to(&dir, include_secrets)
    }

    /// The tray's "Export FileZilla sites…": into the Downloads folder (else home), never
    /// with secrets; see [`Core::tray_export_sites_to`].
    pub fn tray_export_sites(&self) {
        match export_dir() {
            Some(dir) => self.tray_export_sites_to(&dir),
            None => self.announce_export(Err(ActionError::Export(
                "no Downloads or home folder".into(),
            ))),
        }
    }

    /// The tray's export into `dir`: never with secrets; the outcome (the file and how to
    /// import it, or what went wrong) becomes a banner message and the window opens.
    pub fn tray_export_sites_to(&self, dir: &Path) {
        let result = self.export_filezilla_sites_to(dir, false);
        self.announce_export(result);
    }

    fn announce_export(&self, result: Result<ExportView, ActionError>) {
        let notice = match result {
            Ok(v) => Notice::new(
                "notice.exported",
                &[("path", v.path), ("sites", v.sites.to_string())],
            ),
            Err(e) => {
                tracing::warn!(error = %e, "export from the tray failed");
                Notice::new("notice.export_failed", &[("detail", e.detail())])
            }
        };
        lock(&self.notices).push(notice);
        self.shell.notices_changed();
        self.shell.show_window();
    }

    // ----- activity ----------------------------------------------------------------------

    /// What the Activity view shows.
    pub fn activity(&self) -> Snapshot {
        lock(&self.activity).snapshot()
    }

    /// Messages for the banner (corrupt files moved aside, local bucket or FTPS problems).
    pub fn notices(&self) -> Vec<Notice> {
        lock(&self.notices).clone()
    }

    /// Removes the banner message at `index`.
    pub fn dismiss_notice(&self, index: usize) {
        let mut n = lock(&self.notices);
        if index < n.len() {
            n.remove(index);
        }
    }

    // ----- settings ----------------------------------------------------------------------

    /// The settings.
    pub fn settings(&self) -> Settings {
        self.settings.get()
    }

    /// Validates and saves settings; applies "start at login" and restarts a running server
    /// when a server setting changed.
    pub async fn save_settings(&self, new: Settings) -> Result<SettingsSaved, ActionError> {
        new.validate().map_err(SaveError::Invalid)?;
        if self.profiles.get(&new.default_profile).is_none() {
            return Err(ActionError::Invalid {
                field: "default_profile",
                key: "err.default_profile",
                detail: format!("no profile {:?}", new.default_profile),
            });
        }
        let old = self.settings.get();
        if new.start_at_login != old.start_at_login {
            self.shell
                .set_start_at_login(new.start_at_login)
                .map_err(ActionError::Autostart)?;
        }
        self.settings.save(new.clone())?;
        self.shell.settings_changed(&new);
        let mut restarted = false;
        if self.server.is_running() && old.server_differs(&new) {
            self.stop_server().await;
            self.start_server().await?;
            restarted = true;
        }
        Ok(SettingsSaved {
            settings: new,
            restarted,
        })
    }

    // ----- language ----------------------------------------------------------------------

    /// The language in effect.
    pub fn language(&self) -> Lang {
        Lang::resolve(&self.settings.get().language, self.os_locale.as_deref())
    }

    /// A string in the current language.
    pub fn t(&self, key: &str, args: &[(&str, &str)]) -> String {
        self.catalog.t(self.language(), key, args)
    }

    /// The window's strings in `lang` (default: the language in effect).
    pub fn strings(&self, lang: Option<&str>) -> StringsView {
        let lang = lang
            .and_then(Lang::from_code)
            .unwrap_or_else(|| self.language());
        StringsView {
            lang,
            strings: self.catalog.table(lang),
            languages: Lang::ALL.iter().map(|l| (*l, l.native_name())).collect(),
            version: self
                .catalog
                .t(lang, "settings.version", &[("version", crate::VERSION)]),
        }
    }

    /// The display name of a profile in the current language.
    pub fn display_name(&self, p: &Profile) -> String {
        if p.local {
            self.t("profile.local_name", &[])
        } else {
            p.name.clone()
        }
    }

    /// Shows the window.
    pub fn open_window(&self) {
        self.shell.show_window();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_the_ones_filezilla_quickconnect_understands() {
        // FileZilla does not percent-decode: the slash of `AK/bucket` stays literal.
        assert_eq!(
            ftp_url("AKID/bucket", "127.0.0.1", 2048),
            "ftp://AKID/bucket@127.0.0.1:2048/"
        );
        let table = [
            ("AKID/bucket", "AKID/bucket"),
            ("AK/my.bucket-1", "AK/my.bucket-1"),
            ("a@b", "a%40b"),
            ("a:b", "a%3Ab"),
            ("100%", "100%25"),
            ("a b", "a%20b"),
            ("a\tb\n", "a%09b%0A"),
            ("AK/桶", "AK/桶"),
            ("AK/", "AK/"),
        ];
        for (user, encoded) in table {
            assert_eq!(url_user(user), encoded, "{user:?}");
        }
    }

    #[test]
    fn export_goes_to_a_folder_of_the_user() {
        if let Some(dir) = export_dir() {
            assert!(dir.is_absolute(), "{}", dir.display());
        }
    }
}
