//! Random local credentials, persisted in `local-credentials.json`.
//!
//! The file is written once ([`crate::atomic::write_new`]: mode 0600 on unix, never replacing
//! an existing file), so two processes starting at the same time still agree on one key pair. Later calls read it back. The secret is never logged or put in an error.

use std::fs;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::LocalStoreError;
use crate::atomic::{Access, WriteError, write_new};

/// The credentials file name inside the directory given to [`load_or_create_credentials`].
pub const CREDENTIALS_FILE: &str = "local-credentials.json";

/// On-disk form. Deliberately not `Debug`: it holds the secret.
#[derive(Serialize, Deserialize)]
struct CredentialsFile {
    version: u32,
    access_key_id: String,
    secret_access_key: String,
}

/// Returns the local store's access key and secret, creating random ones on first use.
///
/// The pair lives in `dir/local-credentials.json` (mode 0600 on unix). `dir` is created if
/// missing. Every later call, from this or another process, returns the same pair.
///
/// # Errors
/// [`LocalStoreError::CredentialsIo`] when the folder or file cannot be read or written,
/// [`LocalStoreError::CorruptCredentials`] when the file exists but is not a valid key pair
/// (it is never overwritten silently), [`LocalStoreError::Random`] when the OS random
/// generator fails.
pub fn load_or_create_credentials(dir: &Path) -> Result<(String, String), LocalStoreError> {
    let path = dir.join(CREDENTIALS_FILE);
    if let Some(pair) = read_existing(&path)? {
        return Ok(pair);
    }
    let file = CredentialsFile {
        version: 1,
        access_key_id: format!("LOCAL{}", random_string(15, UPPER_DIGITS)?),
        secret_access_key: random_string(40, BASE62)?,
    };
    // serde_json cannot fail on a struct of strings; map it anyway rather than panic.
    let json = serde_json::to_vec_pretty(&file).map_err(|e| LocalStoreError::CredentialsIo {
        path: path.clone(),
        source: std::io::Error::other(e.to_string()),
    })?;
    match write_new(&path, &json, Access::OwnerOnly) {
        Ok(true) => Ok((file.access_key_id, file.secret_access_key)),
        // Another process won the race: use its pair.
        Ok(false) => read_existing(&path)?.ok_or_else(|| LocalStoreError::CorruptCredentials {
            path: path.clone(),
            reason: "it disappeared while being created".to_owned(),
        }),
        Err(WriteError { path, source }) => Err(LocalStoreError::CredentialsIo { path, source }),
    }
}

/// Reads and validates an existing file; `Ok(None)` when there is none.
fn read_existing(path: &Path) -> Result<Option<(String, String)>, LocalStoreError> {
    let bytes = match fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(LocalStoreError::CredentialsIo {
                path: path.to_path_buf(),
                source,
            });
        }
    };
    let corrupt = |reason: &str| LocalStoreError::CorruptCredentials {
        path: path.to_path_buf(),
        reason: reason.to_owned(),
    };
    // The serde error text could quote file content (the secret), so it is not passed on.
    let file: CredentialsFile =
        serde_json::from_slice(&bytes).map_err(|_| corrupt("not valid credentials JSON"))?;
    if !is_token(&file.access_key_id) || !is_token(&file.secret_access_key) {
        return Err(corrupt(
            "the access key or secret is empty or has characters other than printable ASCII",
        ));
    }
    tighten_permissions(path);
    Ok(Some((file.access_key_id, file.secret_access_key)))
}

fn is_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_graphic())
}

#[cfg(unix)]
fn tighten_permissions(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = fs::metadata(path)
        && meta.permissions().mode() & 0o077 != 0
    {
        let _ = fs::set_permissions(path, fs::Permissions::from_mode(0o600));
    }
}

#[cfg(not(unix))]
fn tighten_permissions(_path: &Path) {}

const UPPER_DIGITS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
const BASE62: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/// `len` characters drawn uniformly from `alphabet` (rejection sampling, no modulo bias).
fn random_string(len: usize, alphabet: &[u8]) -> Result<String, LocalStoreError> {
    let n = alphabet.len();
    let limit = 256 - (256 % n);
    let mut out = String::with_capacity(len);
    let mut buf = [0u8; 64];
    while out.len() < len {
        getrandom::fill(&mut buf).map_err(|e| LocalStoreError::Random(e.to_string()))?;
        for &b in &buf {
            if usize::from(b) < limit && out.len() < len {
                out.push(char::from(alphabet[usize::from(b) % n]));
            }
        }
    }
    Ok(out)
}

/// 16 random bytes as 32 hex digits (upload ids, temp file names).
pub(crate) fn random_hex_id() -> std::io::Result<String> {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b).map_err(|e| std::io::Error::other(e.to_string()))?;
    Ok(crate::keys::hex(&b))
}
