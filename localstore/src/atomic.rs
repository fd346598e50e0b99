//! Small files put in place whole: a crash leaves the old content or the new, never half of
//! it. The one helper for the workspace's settings, profiles, certificates, credentials and
//! exports (object writes of the store are staged differently, in `store`).
//!
//! The bytes go to a temporary file in the target's own folder (created when missing; name
//! `.NAME.tmp-<random>`, owner-only when [`Access::OwnerOnly`] on Unix), which is fsynced and
//! then either renamed over the target ([`write_atomic`]) or linked under a name that is
//! still free ([`write_new`], [`Staged::link_new`]: an existing file is never replaced).
//! Finally the folder is fsynced on Unix, so the rename itself survives a crash (Windows has
//! no folder fsync; NTFS journals renames). The temporary file is removed in every case.

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::credentials::random_hex_id;

/// Who may read the new file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Access {
    /// The process's default (umask).
    #[default]
    Default,
    /// Mode 0600 on Unix (keys, secrets); the default elsewhere.
    OwnerOnly,
}

/// A write that failed: the file or folder at fault and the OS error.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {source}")]
pub struct WriteError {
    /// The file or folder that failed.
    pub path: PathBuf,
    /// The OS error.
    #[source]
    pub source: io::Error,
}

fn at(path: &Path) -> impl FnOnce(io::Error) -> WriteError + '_ {
    move |source| WriteError {
        path: path.to_path_buf(),
        source,
    }
}

/// Writes `bytes` to `path`, replacing what was there, so that a crash leaves either the old
/// or the new content.
pub fn write_atomic(path: &Path, bytes: &[u8], access: Access) -> Result<(), WriteError> {
    Staged::next_to(path, bytes, access)?.replace(path)
}

/// Writes `bytes` as the new file `path`; `Ok(false)` (and nothing written) when `path`
/// exists already. Two processes racing for the same name: exactly one gets `Ok(true)`.
pub fn write_new(path: &Path, bytes: &[u8], access: Access) -> Result<bool, WriteError> {
    Staged::next_to(path, bytes, access)?.link_new(path)
}

/// Content written and fsynced to a temporary file, ready to be put in place; the temporary
/// file is removed when this is dropped.
#[derive(Debug)]
pub struct Staged {
    dir: PathBuf,
    tmp: PathBuf,
}

impl Staged {
    /// Stages `bytes` in the folder of `path` (the folder is created when missing).
    pub fn next_to(path: &Path, bytes: &[u8], access: Access) -> Result<Self, WriteError> {
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "file".into());
        Self::in_dir(dir, &name, bytes, access)
    }

    /// Stages `bytes` in `dir` for a file to be called `name` (or a variant of it).
    pub fn in_dir(
        dir: &Path,
        name: &str,
        bytes: &[u8],
        access: Access,
    ) -> Result<Self, WriteError> {
        fs::create_dir_all(dir).map_err(at(dir))?;
        let tmp = dir.join(format!(".{name}.tmp-{}", random_hex_id().map_err(at(dir))?));
        let staged = Self {
            dir: dir.to_path_buf(),
            tmp,
        };
        let mut options = OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        if access == Access::OwnerOnly {
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        }
        #[cfg(not(unix))]
        let _ = access;
        options
            .open(&staged.tmp)
            .and_then(|mut f| {
                f.write_all(bytes)?;
                f.sync_all()
            })
            .map_err(at(&staged.tmp))?;
        Ok(staged)
    }

    /// Renames the content over `path` (in the staging folder) and fsyncs the folder.
    pub fn replace(self, path: &Path) -> Result<(), WriteError> {
        fs::rename(&self.tmp, path).map_err(at(path))?;
        sync_dir(&self.dir).map_err(at(&self.dir))
    }

    /// Links the content as `path` unless that exists (`Ok(false)`); then fsyncs the folder.
    /// May be called again with another name after `Ok(false)`.
    pub fn link_new(&self, path: &Path) -> Result<bool, WriteError> {
        match fs::hard_link(&self.tmp, path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Ok(false),
            // No hard links here (FAT, some network shares): the name is checked, then taken
            // by a rename, which is not atomic against a racing writer.
            Err(_) if path.exists() => return Ok(false),
            Err(_) => fs::rename(&self.tmp, path).map_err(at(path))?,
        }
        sync_dir(&self.dir).map_err(at(&self.dir))?;
        Ok(true)
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.tmp);
    }
}

/// Fsyncs folder `dir` so renames in it reach the disk (Unix; nothing elsewhere).
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    fs::File::open(dir)?.sync_all()?;
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<_> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[cfg(unix)]
    fn mode(path: &Path) -> u32 {
        use std::os::unix::fs::PermissionsExt;
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn replaces_whole_creates_the_folder_and_leaves_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/doc.json");
        write_atomic(&path, b"one", Access::Default).unwrap();
        write_atomic(&path, b"two", Access::Default).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"two");
        assert_eq!(names(&dir.path().join("sub")), ["doc.json"]);
    }

    #[cfg(unix)]
    #[test]
    fn owner_only_is_0600_even_over_an_open_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key.pem");
        fs::write(&path, "old").unwrap();
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        write_atomic(&path, b"secret", Access::OwnerOnly).unwrap();
        assert_eq!(mode(&path), 0o600);
        assert!(write_new(&dir.path().join("new.pem"), b"s", Access::OwnerOnly).unwrap());
        assert_eq!(mode(&dir.path().join("new.pem")), 0o600);
        // Default leaves the mode to the umask: readable by the owner at least, and not
        // forced to 0600 (umask 077 would make it so, which test runners do not set).
        write_atomic(&path, b"public", Access::Default).unwrap();
        assert_eq!(mode(&path) & 0o600, 0o600);
    }

    #[test]
    fn write_new_never_replaces() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("creds.json");
        assert!(write_new(&path, b"first", Access::OwnerOnly).unwrap());
        assert!(!write_new(&path, b"second", Access::OwnerOnly).unwrap());
        assert_eq!(fs::read(&path).unwrap(), b"first");
        assert_eq!(names(dir.path()), ["creds.json"]);
    }

    #[test]
    fn one_staged_file_tries_names_until_one_is_free() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("a.xml"), "mine").unwrap();
        let staged = Staged::in_dir(dir.path(), "a.xml", b"new", Access::Default).unwrap();
        assert!(!staged.link_new(&dir.path().join("a.xml")).unwrap());
        assert!(staged.link_new(&dir.path().join("a-2.xml")).unwrap());
        drop(staged);
        assert_eq!(fs::read(dir.path().join("a.xml")).unwrap(), b"mine");
        assert_eq!(fs::read(dir.path().join("a-2.xml")).unwrap(), b"new");
        assert_eq!(names(dir.path()), ["a-2.xml", "a.xml"]);
    }

    #[test]
    fn racing_writers_of_a_new_file_agree_on_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("race.json");
        let winners: usize = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8u8)
                .map(|i| {
                    let path = &path;
                    s.spawn(move || write_new(path, &[i], Access::Default).unwrap())
                })
                .collect();
            handles
                .into_iter()
                .map(|h| usize::from(h.join().unwrap()))
                .sum()
        });
        assert_eq!(winners, 1);
        assert_eq!(fs::read(&path).unwrap().len(), 1);
        assert_eq!(names(dir.path()), ["race.json"]);
    }

    #[test]
    fn failures_name_the_path_and_leave_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        // The target is a folder: the rename fails.
        let target = dir.path().join("taken");
        fs::create_dir(&target).unwrap();
        fs::write(target.join("inside"), "x").unwrap();
        let e = write_atomic(&target, b"x", Access::Default).unwrap_err();
        assert_eq!(e.path, target);
        assert!(
            e.to_string().starts_with(&target.display().to_string()),
            "{e}"
        );
        assert_eq!(names(dir.path()), ["taken"]);
        // The folder is a file: nothing can be staged there.
        let blocked = dir.path().join("file");
        fs::write(&blocked, "x").unwrap();
        let e = write_atomic(&blocked.join("doc.json"), b"x", Access::Default).unwrap_err();
        assert_eq!(e.path, blocked);
    }
}
