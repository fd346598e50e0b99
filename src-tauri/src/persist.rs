//! Files that must survive a crash mid-write: JSON written atomically
//! ([`localstore::atomic`]: temporary file in the same folder, `fsync`, rename over the old
//! file, `fsync` of the folder), and read back with a corrupt file renamed aside
//! (`NAME.corrupt-<unix seconds>`) rather than silently replaced.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use localstore::atomic::{Access, Staged, WriteError, write_atomic};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// What reading a JSON file found.
#[derive(Debug)]
pub enum Loaded<T> {
    /// No file yet (first run).
    Missing,
    /// The file parsed.
    Ok(T),
    /// The file did not parse; it was moved aside.
    Corrupt(Corrupt),
}

/// A file that did not parse and was renamed aside rather than replaced: a fact for the
/// caller to report (the actions layer makes it a banner message).
#[derive(Debug)]
pub struct Corrupt {
    /// The file as it was named.
    pub path: PathBuf,
    /// Where it now is.
    pub kept_at: PathBuf,
    /// Why it did not parse.
    pub error: serde_json::Error,
}

/// A file that could not be read or written.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {source}")]
pub struct PersistError {
    /// The file.
    pub path: PathBuf,
    /// The OS error.
    pub source: io::Error,
}

fn err(path: &Path) -> impl FnOnce(io::Error) -> PersistError + '_ {
    move |source| PersistError {
        path: path.to_path_buf(),
        source,
    }
}

impl From<WriteError> for PersistError {
    fn from(WriteError { path, source }: WriteError) -> Self {
        PersistError { path, source }
    }
}

/// Writes `bytes` as a new file `name` in `dir` (`stem-2.ext`, `stem-3.ext`, … when taken),
/// owner-only, never replacing an existing file and never leaving a half-written one
/// ([`Staged::link_new`]). Returns the path written.
pub fn write_new(dir: &Path, name: &str, bytes: &[u8]) -> Result<PathBuf, PersistError> {
    let staged = Staged::in_dir(dir, name, bytes, Access::OwnerOnly)?;
    for n in 1u32.. {
        let candidate = dir.join(numbered(name, n));
        if staged.link_new(&candidate)? {
            return Ok(candidate);
        }
    }
    Err(err(dir)(io::Error::other("no free file name")))
}

/// `name` for `n == 1`, else `stem-n.ext`. Pure.
fn numbered(name: &str, n: u32) -> String {
    if n == 1 {
        return name.to_owned();
    }
    match name.rsplit_once('.') {
        Some((stem, ext)) if !stem.is_empty() => format!("{stem}-{n}.{ext}"),
        _ => format!("{name}-{n}"),
    }
}

/// Serialises `value` as pretty JSON and writes it atomically.
pub fn save_json<T: Serialize>(path: &Path, value: &T) -> Result<(), PersistError> {
    let mut bytes = serde_json::to_vec_pretty(value).map_err(|e| PersistError {
        path: path.to_path_buf(),
        source: io::Error::other(e),
    })?;
    bytes.push(b'\n');
    Ok(write_atomic(path, &bytes, Access::Default)?)
}

/// Reads `path` as JSON. A file that does not parse is renamed aside and reported; a file
/// that cannot be read (permissions) is an error and left where it is.
pub fn load_json<T: DeserializeOwned>(path: &Path) -> Result<Loaded<T>, PersistError> {
    let bytes = match fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Loaded::Missing),
        Err(e) => return Err(err(path)(e)),
    };
    match serde_json::from_slice(&bytes) {
        Ok(v) => Ok(Loaded::Ok(v)),
        Err(e) => {
            let kept_at = corrupt_name(path);
            fs::rename(path, &kept_at).map_err(err(path))?;
            tracing::warn!(file = %path.display(), kept = %kept_at.display(), error = %e,
                "unreadable file moved aside");
            Ok(Loaded::Corrupt(Corrupt {
                path: path.to_path_buf(),
                kept_at,
                error: e,
            }))
        }
    }
}

/// `NAME.corrupt-<unix seconds>`, with `-2`, `-3`… when that name is taken.
fn corrupt_name(path: &Path) -> PathBuf {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "file".into());
    let mut candidate = path.with_file_name(format!("{name}.corrupt-{secs}"));
    let mut n = 2;
    while candidate.exists() {
        candidate = path.with_file_name(format!("{name}.corrupt-{secs}-{n}"));
        n += 1;
    }
    candidate
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    struct Doc {
        a: u32,
    }

    #[test]
    fn round_trip_and_no_temp_left() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/doc.json");
        assert!(matches!(load_json::<Doc>(&path).unwrap(), Loaded::Missing));
        save_json(&path, &Doc { a: 1 }).unwrap();
        save_json(&path, &Doc { a: 2 }).unwrap();
        assert!(matches!(
            load_json::<Doc>(&path).unwrap(),
            Loaded::Ok(Doc { a: 2 })
        ));
        let names: Vec<_> = fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, vec!["doc.json".to_string()]);
    }

    #[test]
    fn corrupt_file_is_kept_aside_not_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("doc.json");
        fs::write(&path, b"{\"a\": 1,,").unwrap();
        let Loaded::Corrupt(Corrupt {
            path: named,
            kept_at,
            error,
        }) = load_json::<Doc>(&path).unwrap()
        else {
            panic!("expected corrupt");
        };
        assert_eq!(named, path);
        assert!(!path.exists());
        assert_eq!(fs::read(&kept_at).unwrap(), b"{\"a\": 1,,");
        let kept = kept_at.file_name().unwrap().to_string_lossy().into_owned();
        assert!(kept.starts_with("doc.json.corrupt-"), "{kept}");
        assert!(error.is_syntax() || error.is_eof(), "{error}");
        // A second corrupt file the same second gets its own name.
        fs::write(&path, b"nope").unwrap();
        let Loaded::Corrupt(Corrupt {
            kept_at: second, ..
        }) = load_json::<Doc>(&path).unwrap()
        else {
            panic!("expected corrupt");
        };
        assert_ne!(second, kept_at);
        assert!(kept_at.exists() && second.exists());
    }

    #[test]
    fn a_crash_before_rename_leaves_the_old_file() {
        // Simulates a crash mid-write: a stray temp file next to the good one is ignored.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("doc.json");
        save_json(&path, &Doc { a: 7 }).unwrap();
        fs::write(dir.path().join(".doc.json.tmp-999"), b"{\"a\":").unwrap();
        assert!(matches!(
            load_json::<Doc>(&path).unwrap(),
            Loaded::Ok(Doc { a: 7 })
        ));
    }

    #[test]
    fn write_new_never_replaces_and_leaves_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        let first = write_new(dir.path(), "sites.xml", b"one").unwrap();
        let second = write_new(dir.path(), "sites.xml", b"two").unwrap();
        fs::write(dir.path().join("sites-3.xml"), "mine").unwrap();
        let fourth = write_new(dir.path(), "sites.xml", b"four").unwrap();
        assert_eq!(first, dir.path().join("sites.xml"));
        assert_eq!(second, dir.path().join("sites-2.xml"));
        assert_eq!(fourth, dir.path().join("sites-4.xml"));
        assert_eq!(fs::read(&first).unwrap(), b"one");
        assert_eq!(fs::read(&second).unwrap(), b"two");
        assert_eq!(fs::read(dir.path().join("sites-3.xml")).unwrap(), b"mine");
        let mut names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(
            names,
            ["sites-2.xml", "sites-3.xml", "sites-4.xml", "sites.xml"]
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&first).unwrap().permissions().mode();
            assert_eq!(mode & 0o077, 0, "owner only: {mode:o}");
        }
    }

    #[test]
    fn numbered_names() {
        assert_eq!(numbered("a.xml", 1), "a.xml");
        assert_eq!(numbered("a.xml", 2), "a-2.xml");
        assert_eq!(numbered("a.b.xml", 3), "a.b-3.xml");
        assert_eq!(numbered("noext", 2), "noext-2");
        assert_eq!(numbered(".hidden", 2), ".hidden-2");
    }
}
