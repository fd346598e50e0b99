//! The no-cloud default: a bucket kept in a folder on this machine, served by the embedded
//! S3 server (`localstore`) on a loopback port and reached through the same S3 code path as
//! any cloud store (within this process without the socket: `s3::direct`). Its credential is
//! generated once and kept (mode 0600) beside the data.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use crate::s3::S3Settings;

/// Why the local bucket could not start.
#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    /// The folder could not be created.
    #[error("cannot create {path}: {source}")]
    Folder {
        /// The data folder that could not be created.
        path: PathBuf,
        /// Why the OS refused.
        source: std::io::Error,
    },
    /// The embedded store failed.
    #[error(transparent)]
    Store(#[from] localstore::LocalStoreError),
}

/// A running local bucket and how to log in to it. `Debug` leaves the secret key out.
pub struct LocalSetup {
    /// The embedded S3 server; `store.stop().await` ends it.
    pub store: localstore::LocalStore,
    /// Settings that reach it.
    pub settings: S3Settings,
    /// The access key id of the store's own credential (the FTP login is `key/bucket`).
    pub access_key: String,
    /// Its secret key (print it only where the user asked to see the login).
    pub secret_key: String,
    /// The bucket's name.
    pub bucket: String,
    /// The folder holding the bucket's files.
    pub folder: PathBuf,
}

impl std::fmt::Debug for LocalSetup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalSetup")
            .field("store", &self.store)
            .field("settings", &self.settings)
            .field("access_key", &self.access_key)
            .field("secret_key", &"<redacted>")
            .field("bucket", &self.bucket)
            .field("folder", &self.folder)
            .finish()
    }
}

impl LocalSetup {
    /// The FTP user name: `ACCESS_KEY_ID/bucket`.
    pub fn ftp_user(&self) -> String {
        format!("{}/{}", self.access_key, self.bucket)
    }
}

/// Starts the embedded store over `root` (buckets are its subfolders) and makes sure
/// `bucket` exists.
pub async fn start_local(root: &Path, bucket: &str) -> Result<LocalSetup, LocalError> {
    std::fs::create_dir_all(root).map_err(|source| LocalError::Folder {
        path: root.to_path_buf(),
        source,
    })?;
    let (access_key, secret_key) = localstore::load_or_create_credentials(root)?;
    let store = localstore::LocalStore::start(localstore::LocalStoreConfig {
        root: root.to_path_buf(),
        access_key: access_key.clone(),
        secret_key: secret_key.clone(),
        bind: SocketAddr::from(([127, 0, 0, 1], 0)),
    })
    .await?;
    store.ensure_bucket(bucket)?;
    let settings = S3Settings::custom(store.endpoint(), store.region());
    Ok(LocalSetup {
        settings,
        access_key,
        secret_key,
        bucket: bucket.to_owned(),
        folder: root.join(bucket),
        store,
    })
}
