//! [`Core`]: the app's state (paths, settings, profiles, secrets, the running gateway,
//! activity, the local bucket, FTPS, banner messages) and how it opens. The actions
//! themselves live in the sibling modules, one area each.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use gateway::S3Settings;
use gateway::s3::local::LocalSetup;

use super::{Notice, Shell};
use crate::activity::Activity;
use crate::i18n::Catalog;
use crate::persist::PersistError;
use crate::profiles::{LOCAL_BUCKET, ProfileStore};
use crate::secrets::SecretStore;
use crate::server::ServerController;
use crate::settings::SettingsStore;

/// Where the app keeps its files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppPaths {
    /// `settings.json`, `profiles.json`.
    pub config_dir: PathBuf,
    /// The FTPS certificate (small: it may roam with a Windows profile), and where earlier
    /// versions kept the local bucket.
    pub data_dir: PathBuf,
    /// The local bucket (`local-store`): a person's files, possibly gigabytes, in the local
    /// data folder (Local AppData on Windows, which a roaming profile does not copy; the same
    /// folder as `data_dir` elsewhere).
    pub local_data_dir: PathBuf,
}

impl AppPaths {
    /// The per-user folders (XDG on Linux, `AppData` on Windows, `Library` on macOS); the
    /// same folders as `bucketftp-server`, so both serve the same local bucket.
    pub fn for_user() -> Option<Self> {
        let dirs = directories::ProjectDirs::from("", "", "BucketFTP")?;
        Some(Self {
            config_dir: dirs.config_dir().to_path_buf(),
            data_dir: dirs.data_dir().to_path_buf(),
            local_data_dir: dirs.data_local_dir().to_path_buf(),
        })
    }

    /// The local bucket's folder.
    pub fn store_dir(&self) -> PathBuf {
        self.local_data_dir.join(gateway::s3::local::STORE_FOLDER)
    }

    /// Where earlier versions kept the local bucket (moved from once, see
    /// [`gateway::s3::local::relocate_store`]).
    pub fn old_store_dir(&self) -> PathBuf {
        self.data_dir.join(gateway::s3::local::STORE_FOLDER)
    }
}

/// The app's state and its actions. Managed by Tauri as `Arc<Core>`.
pub struct Core {
    pub(super) paths: AppPaths,
    pub(super) settings: SettingsStore,
    pub(super) profiles: ProfileStore,
    pub(super) secrets: Arc<dyn SecretStore>,
    pub(super) server: ServerController,
    pub(super) activity: Arc<Mutex<Activity>>,
    pub(super) local: tokio::sync::Mutex<Option<LocalSetup>>,
    pub(super) local_login: Option<LocalLogin>,
    pub(super) tls: Option<gateway::ftp::tls::TlsMaterial>,
    pub(super) catalog: Catalog,
    pub(super) os_locale: Option<String>,
    pub(super) notices: Mutex<Vec<Notice>>,
    pub(super) shell: Arc<dyn Shell>,
}

/// The local bucket's login (its secret stays in its own 0600 credential file).
#[derive(Clone)]
pub(super) struct LocalLogin {
    pub(super) access_key: String,
    pub(super) secret_key: String,
    pub(super) settings: S3Settings,
    pub(super) folder: PathBuf,
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

pub(super) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    }
}

/// The value of `result`; on an error `None`, and a banner message `key` with the error as
/// its `detail`.
fn or_notice<T, E: std::fmt::Display>(
    result: Result<T, E>,
    key: &'static str,
    notices: &mut Vec<Notice>,
) -> Option<T> {
    match result {
        Ok(v) => Some(v),
        Err(e) => {
            notices.push(Notice::new(key, &[("detail", e.to_string())]));
            None
        }
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
        let (settings, corrupt) = SettingsStore::load(&paths.config_dir.join("settings.json"))?;
        notices.extend(corrupt.as_ref().map(Notice::corrupt));
        let (profiles, report) = ProfileStore::load(&paths.config_dir.join("profiles.json"))?;
        notices.extend(report.corrupt.as_ref().map(Notice::corrupt));
        if report.first_run {
            tracing::info!(dir = %paths.config_dir.display(), "first run: profile \"This computer\" created");
        }
        let relocated =
            gateway::s3::local::relocate_store(&paths.old_store_dir(), &paths.store_dir());
        notices.extend(Notice::relocated(
            &relocated,
            &paths.old_store_dir(),
            &paths.store_dir(),
        ));
        let local = gateway::s3::local::start_local(&relocated.folder, LOCAL_BUCKET)
            .await
            .inspect_err(|e| tracing::warn!(error = %e, "local bucket did not start"));
        let local = or_notice(local, "notice.local_failed", &mut notices);
        let local_login = local.as_ref().map(|l| LocalLogin {
            access_key: l.access_key.clone(),
            secret_key: l.secret_key.clone(),
            settings: l.settings.clone(),
            folder: l.folder.clone(),
        });
        let tls = gateway::ftp::tls::load_or_create(&paths.data_dir)
            .inspect_err(|e| tracing::warn!(error = %e, "FTPS off"));
        let tls = or_notice(tls, "notice.tls_failed", &mut notices);
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
}
