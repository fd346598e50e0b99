//! The no-cloud default: a bucket kept in a folder on this machine, served by the embedded
//! S3 server (`localstore`) on a loopback port and reached through the same S3 code path as
//! any cloud store (within this process without the socket: `s3::direct`). Its credential is
//! generated once and kept (mode 0600) beside the data.
//!
//! Where the folder is by default ([`default_store_dirs`]): the user's *local* data folder
//! (`directories`' `data_local_dir`: Local AppData on Windows), because a person's files,
//! possibly gigabytes, must not be copied to a domain server at every logon and logoff as
//! everything under Roaming AppData is. Earlier versions kept it in `data_dir` (Roaming on
//! Windows; the same folder as `data_local_dir` on Linux and macOS): [`relocate_store`]
//! moves such a folder once, safely, before the store starts.

use std::io;
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
        source: io::Error,
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
    let mut settings = S3Settings::custom(store.endpoint(), store.region());
    // The embedded store checks CRC-64/NVME as AWS does (and the whole object's on a
    // multipart commit); it costs next to nothing, where Content-MD5 costs a core's second.
    settings.checksum = Some(crate::s3::BodyChecksum::Crc64nvme);
    Ok(LocalSetup {
        settings,
        access_key,
        secret_key,
        bucket: bucket.to_owned(),
        folder: root.join(bucket),
        store,
    })
}

/// The folder name of the local bucket's store inside the data folder.
pub const STORE_FOLDER: &str = "local-store";

/// The local store's default folder for this user, and where earlier versions kept it:
/// `(<data_local_dir>/local-store, <data_dir>/local-store)`. The two are the same folder
/// except on Windows (Local and Roaming AppData). `None` when the OS names no home folder.
pub fn default_store_dirs() -> Option<(PathBuf, PathBuf)> {
    let dirs = directories::ProjectDirs::from("", "", "BucketFTP")?;
    Some((
        dirs.data_local_dir().join(STORE_FOLDER),
        dirs.data_dir().join(STORE_FOLDER),
    ))
}

/// What [`relocate_store`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Relocation {
    /// Nothing to move: the old folder does not exist, or is the new one.
    Nothing,
    /// The old folder was moved to the new place (renamed, or copied across volumes and
    /// then removed).
    Moved,
    /// Both folders hold something: the new one is used and the old one is left as it is
    /// (a person's files are never merged or deleted on a guess).
    BothExist,
    /// The old folder could not be moved (in use by another program, no permission, a
    /// copy that failed): it stays where it was and is used from there this time.
    KeptOld(String),
}

/// The store folder to use, and what was done to get it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Relocated {
    /// The folder to start the store over.
    pub folder: PathBuf,
    /// What happened.
    pub how: Relocation,
}

/// Moves the local store from `old` (where earlier versions kept it) to `new`, once:
/// - nothing to do when `old` is `new`, does not exist, or `new` already holds something
///   (then `old` is left alone);
/// - otherwise one rename, which on the same volume moves everything at once or nothing;
/// - across volumes (a redirected Roaming folder) a copy into `<new>.partial` beside
///   `new`, renamed to `new` when complete, and only then the old folder removed: an
///   interruption leaves the old folder whole and the copy is redone at the next start;
/// - any other failure (the folder is in use by another program) keeps `old` in use.
pub fn relocate_store(old: &Path, new: &Path) -> Relocated {
    relocate_with(old, new, &|from, to| std::fs::rename(from, to))
}

fn relocate_with(
    old: &Path,
    new: &Path,
    rename: &dyn Fn(&Path, &Path) -> io::Result<()>,
) -> Relocated {
    let done = |folder: &Path, how| Relocated {
        folder: folder.to_path_buf(),
        how,
    };
    if old == new || !old.is_dir() {
        return done(new, Relocation::Nothing);
    }
    if has_entries(new) {
        return done(new, Relocation::BothExist);
    }
    let partial = partial_of(new);
    let prepared = (|| -> io::Result<()> {
        if partial.exists() {
            std::fs::remove_dir_all(&partial)?;
        }
        if new.exists() {
            std::fs::remove_dir(new)?; // empty: `has_entries` said so
        }
        if let Some(parent) = new.parent() {
            std::fs::create_dir_all(parent)?;
        }
        Ok(())
    })();
    if let Err(e) = prepared {
        return done(old, Relocation::KeptOld(format!("{}: {e}", new.display())));
    }
    match rename(old, new) {
        Ok(()) => done(new, Relocation::Moved),
        Err(e) if e.kind() == io::ErrorKind::CrossesDevices => {
            let copied = copy_tree(old, &partial).and_then(|()| rename(&partial, new));
            match copied {
                Ok(()) => {
                    if let Err(e) = std::fs::remove_dir_all(old) {
                        tracing::warn!(old = %old.display(), error = %e, "the local bucket was copied; its old folder could not be removed");
                    }
                    done(new, Relocation::Moved)
                }
                Err(e) => {
                    let _ = std::fs::remove_dir_all(&partial);
                    done(
                        old,
                        Relocation::KeptOld(format!("copy to {}: {e}", new.display())),
                    )
                }
            }
        }
        // Another program of ours (the tray app and the server started together) moved it
        // first: the bucket is where it went.
        Err(_) if !old.exists() && has_entries(new) => done(new, Relocation::Moved),
        Err(e) => done(old, Relocation::KeptOld(e.to_string())),
    }
}

/// `<new>.partial`, beside `new`.
fn partial_of(new: &Path) -> PathBuf {
    let mut name = new.file_name().unwrap_or_default().to_os_string();
    name.push(".partial");
    new.with_file_name(name)
}

fn has_entries(dir: &Path) -> bool {
    std::fs::read_dir(dir).is_ok_and(|mut d| d.next().is_some())
}

/// Copies the folder `from` to `to` (created), files flushed to disk; fails on an entry that
/// is neither a file nor a folder.
fn copy_tree(from: &Path, to: &Path) -> io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        let kind = entry.file_type()?;
        if kind.is_dir() {
            copy_tree(&entry.path(), &target)?;
        } else if kind.is_file() {
            std::fs::copy(entry.path(), &target)?;
            std::fs::File::open(&target)?.sync_all()?;
        } else {
            // A link or another kind of entry: not copied, so the old folder must stay.
            return Err(io::Error::other(format!(
                "{} is neither a file nor a folder",
                entry.path().display()
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;

    /// A fresh folder for one test.
    fn scratch(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("bucketftp-relocate-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// Roaming-like and Local-like folders with a store (a credential, a bucket, a file).
    fn old_store(dir: &Path) -> (PathBuf, PathBuf) {
        let old = dir
            .join("Roaming")
            .join("BucketFTP")
            .join("data")
            .join(STORE_FOLDER);
        let new = dir
            .join("Local")
            .join("BucketFTP")
            .join("data")
            .join(STORE_FOLDER);
        std::fs::create_dir_all(old.join("local").join("sub 子")).unwrap();
        std::fs::write(old.join("local-credentials.json"), b"{}").unwrap();
        std::fs::write(
            old.join("local").join("sub 子").join("a.bin"),
            vec![7u8; 100_000],
        )
        .unwrap();
        (old, new)
    }

    fn same_tree(folder: &Path) -> bool {
        std::fs::read(folder.join("local").join("sub 子").join("a.bin")).ok()
            == Some(vec![7u8; 100_000])
            && folder.join("local-credentials.json").is_file()
    }

    #[test]
    fn moves_once_by_rename() {
        let dir = scratch("rename");
        let (old, new) = old_store(&dir);
        let r = relocate_store(&old, &new);
        assert_eq!(
            r,
            Relocated {
                folder: new.clone(),
                how: Relocation::Moved
            }
        );
        assert!(same_tree(&new));
        assert!(!old.exists());
        // The next start has nothing to move.
        assert_eq!(relocate_store(&old, &new).how, Relocation::Nothing);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn nothing_to_move() {
        let dir = scratch("nothing");
        let new = dir.join("new");
        assert_eq!(
            relocate_store(&dir.join("missing"), &new),
            Relocated {
                folder: new.clone(),
                how: Relocation::Nothing
            }
        );
        let (old, _) = old_store(&dir);
        // Linux and macOS: the old and the new folder are one.
        assert_eq!(
            relocate_store(&old, &old),
            Relocated {
                folder: old.clone(),
                how: Relocation::Nothing
            }
        );
        assert!(same_tree(&old));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn both_exist_leaves_both_alone() {
        let dir = scratch("both");
        let (old, new) = old_store(&dir);
        std::fs::create_dir_all(new.join("local")).unwrap();
        std::fs::write(new.join("local").join("newer.bin"), b"x").unwrap();
        let r = relocate_store(&old, &new);
        assert_eq!(
            r,
            Relocated {
                folder: new.clone(),
                how: Relocation::BothExist
            }
        );
        assert!(same_tree(&old), "the old folder is untouched");
        assert!(new.join("local").join("newer.bin").is_file());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn an_empty_new_folder_is_no_obstacle() {
        let dir = scratch("empty");
        let (old, new) = old_store(&dir);
        std::fs::create_dir_all(&new).unwrap();
        assert_eq!(relocate_store(&old, &new).how, Relocation::Moved);
        assert!(same_tree(&new));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn across_volumes_copies_then_removes_and_redoes_an_interrupted_copy() {
        let dir = scratch("cross");
        let (old, new) = old_store(&dir);
        // A copy interrupted by an earlier crash.
        let partial = partial_of(&new);
        std::fs::create_dir_all(partial.join("local")).unwrap();
        std::fs::write(partial.join("local").join("half.bin"), b"half").unwrap();
        let cross = |from: &Path, to: &Path| {
            if from == old.as_path() {
                Err(io::Error::from(io::ErrorKind::CrossesDevices))
            } else {
                std::fs::rename(from, to)
            }
        };
        let r = relocate_with(&old, &new, &cross);
        assert_eq!(
            r,
            Relocated {
                folder: new.clone(),
                how: Relocation::Moved
            }
        );
        assert!(same_tree(&new));
        assert!(
            !new.join("local").join("half.bin").exists(),
            "the interrupted copy was redone"
        );
        assert!(!partial.exists());
        assert!(!old.exists(), "removed only after the copy was complete");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_folder_in_use_stays_and_is_used() {
        let dir = scratch("busy");
        let (old, new) = old_store(&dir);
        let busy = |_: &Path, _: &Path| Err(io::Error::from(io::ErrorKind::PermissionDenied));
        let r = relocate_with(&old, &new, &busy);
        assert_eq!(r.folder, old);
        assert!(matches!(r.how, Relocation::KeptOld(_)));
        assert!(same_tree(&old));
        assert!(!partial_of(&new).exists());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_failed_copy_keeps_the_old_folder_whole() {
        let dir = scratch("copyfail");
        let (old, new) = old_store(&dir);
        let cross_then_fail =
            |_: &Path, _: &Path| Err(io::Error::from(io::ErrorKind::CrossesDevices));
        let r = relocate_with(&old, &new, &cross_then_fail);
        assert_eq!(r.folder, old);
        assert!(matches!(r.how, Relocation::KeptOld(_)));
        assert!(same_tree(&old));
        assert!(!partial_of(&new).exists(), "the partial copy is cleaned up");
        assert!(!new.exists());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
