//! Team logins: FTP users from the server's config file, each mapped to a bucket of a named
//! storage, a home prefix inside it, and rights (`r`, `w`, `rw`, delete). Passwords are kept
//! only as argon2id PHC strings; a colleague gets a login without ever seeing a cloud key.
//!
//! The table is swapped whole on reload (SIGHUP): a session keeps the user it logged in as,
//! new logins see the new table.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};

use crate::error::Failure;
use crate::path::BucketPath;
use crate::s3::S3Settings;

/// What a login may do. The server-wide switches (`read_only`, `no_delete`) apply on top.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Rights {
    /// List folders and download files.
    pub read: bool,
    /// Upload, make folders, rename.
    pub write: bool,
    /// Delete files and empty folders (needs `write` too).
    pub delete: bool,
}

/// A `permissions` value other than `r`, `w` or `rw` (the text as given).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("permissions must be \"r\", \"w\" or \"rw\", not {0:?}")]
pub struct BadPermissions(pub String);

impl Rights {
    /// Everything: the `ACCESS_KEY_ID/bucket` login, whose limits are the key's own.
    pub const ALL: Rights = Rights {
        read: true,
        write: true,
        delete: true,
    };

    /// Parses COS-style `permissions`: `"r"`, `"w"` or `"rw"` (any order, any case). Pure.
    pub fn parse(permissions: &str, delete: bool) -> Result<Rights, BadPermissions> {
        let p = permissions.trim().to_ascii_lowercase();
        let (read, write) = match p.as_str() {
            "r" => (true, false),
            "w" => (false, true),
            "rw" | "wr" => (true, true),
            _ => return Err(BadPermissions(permissions.to_owned())),
        };
        Ok(Rights {
            read,
            write,
            delete: delete && write,
        })
    }

    /// `"r"`, `"w"` or `"rw"`, as in the config file.
    pub fn letters(&self) -> &'static str {
        match (self.read, self.write) {
            (true, true) => "rw",
            (false, true) => "w",
            _ => "r",
        }
    }

    /// `Err` unless this login may list and download.
    pub fn check_read(&self) -> Result<(), Failure> {
        if self.read {
            Ok(())
        } else {
            Err(Failure::NotAllowed(
                "this login may only upload (permissions = \"w\")".into(),
            ))
        }
    }

    /// `Err` unless this login may upload, make folders and rename.
    pub fn check_write(&self) -> Result<(), Failure> {
        if self.write {
            Ok(())
        } else {
            Err(Failure::NotAllowed(
                "this login may only read (permissions = \"r\")".into(),
            ))
        }
    }

    /// `Err` unless this login may delete.
    pub fn check_delete(&self) -> Result<(), Failure> {
        self.check_write()?;
        if self.delete {
            Ok(())
        } else {
            Err(Failure::NotAllowed(
                "this login may not delete (delete = false)".into(),
            ))
        }
    }
}

/// A secret that never shows in `Debug` output or logs.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }

    /// The secret itself, for signing requests.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(…)")
    }
}

/// A named S3 connection with its credential (`[[storage]]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Storage {
    /// The `name` users refer to it by in the config file.
    pub name: String,
    /// Provider, endpoint, region, addressing.
    pub settings: S3Settings,
    /// The access key id every user of this storage is signed with.
    pub access_key_id: String,
    /// The secret access key (never printed: see [`Secret`]).
    pub secret: Secret,
}

/// One FTP user (`[[user]]`).
#[derive(Clone, PartialEq, Eq)]
pub struct TeamUser {
    /// The name the user logs in with (no `/`, so it cannot be taken for a key login).
    pub name: String,
    /// argon2id PHC string.
    pub password_hash: String,
    /// Where the user's bucket lives.
    pub storage: Arc<Storage>,
    /// The bucket of `storage` this user works in.
    pub bucket: String,
    /// The user's `/`: a normalised folder inside the bucket (the root when empty).
    pub home: BucketPath,
    /// What the user may do.
    pub rights: Rights,
}

// The password hash stays out of Debug output (an offline guessing target).
impl std::fmt::Debug for TeamUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TeamUser")
            .field("name", &self.name)
            .field("storage", &self.storage.name)
            .field("bucket", &self.bucket)
            .field("home", &self.home.prefix())
            .field("rights", &self.rights)
            .finish_non_exhaustive()
    }
}

/// Every team login, plus whether `ACCESS_KEY_ID/bucket` logins are allowed too.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Directory {
    users: HashMap<String, TeamUser>,
    /// Also accept `ACCESS_KEY_ID/bucket` logins.
    pub key_login: bool,
}

impl Directory {
    /// A directory of `users` (names must be unique: the config loader checks).
    pub fn new(users: Vec<TeamUser>, key_login: bool) -> Self {
        Self {
            users: users.into_iter().map(|u| (u.name.clone(), u)).collect(),
            key_login,
        }
    }

    /// The user named `name`.
    pub fn user(&self, name: &str) -> Option<&TeamUser> {
        self.users.get(name)
    }

    /// How many users there are.
    pub fn len(&self) -> usize {
        self.users.len()
    }

    /// True when there are no team users.
    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }
}

/// The live directory, replaced whole on reload.
#[derive(Debug, Default)]
pub struct UserTable {
    current: RwLock<Arc<Directory>>,
}

impl UserTable {
    /// A table holding `dir`.
    pub fn new(dir: Directory) -> Self {
        Self {
            current: RwLock::new(Arc::new(dir)),
        }
    }

    /// The directory now in force; a reload swaps it whole, so a caller keeps a consistent
    /// one.
    pub fn current(&self) -> Arc<Directory> {
        self.current
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Puts `dir` in force for new logins.
    pub fn replace(&self, dir: Directory) {
        *self
            .current
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(dir);
    }
}

/// Why a password could not be hashed.
#[derive(Debug, thiserror::Error)]
#[error("cannot hash the password: {0}")]
pub struct HashError(String);

/// Hashes `password` as an argon2id PHC string (default parameters, random salt).
pub fn hash_password(password: &str) -> Result<String, HashError> {
    let mut salt_bytes = [0u8; 16];
    aws_lc_rs::rand::fill(&mut salt_bytes).map_err(|e| HashError(e.to_string()))?;
    let salt = SaltString::encode_b64(&salt_bytes).map_err(|e| HashError(e.to_string()))?;
    argon2::Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| HashError(e.to_string()))
}

/// Whether `hash` is an argon2 PHC string this server can verify against. Pure.
pub fn is_password_hash(hash: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|h| h.algorithm.as_str().starts_with("argon2"))
}

/// True when `password` matches the PHC string `hash`. Slow on purpose (tens of ms): call it
/// off the async threads.
pub fn verify_password(hash: &str, password: &str) -> bool {
    match PasswordHash::new(hash) {
        Ok(parsed) => argon2::Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

/// A valid hash of a password nobody knows: unknown user names are checked against it so that
/// a refusal takes as long whether or not the user exists.
pub fn decoy_hash() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| hash_password("bucketftp decoy").unwrap_or_default())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn permissions_table() {
        let r = |p: &str, d: bool| Rights::parse(p, d);
        assert_eq!(
            r("rw", true),
            Ok(Rights {
                read: true,
                write: true,
                delete: true
            })
        );
        assert_eq!(
            r("R", true),
            Ok(Rights {
                read: true,
                write: false,
                delete: false
            })
        );
        assert_eq!(
            r("w", false),
            Ok(Rights {
                read: false,
                write: true,
                delete: false
            })
        );
        assert!(r("rwx", false).is_err());
        assert!(r("", false).is_err());
        assert_eq!(r("wr", false).unwrap().letters(), "rw");
        assert!(r("r", true).unwrap().check_write().is_err());
        assert!(r("w", false).unwrap().check_read().is_err());
        assert!(r("rw", false).unwrap().check_delete().is_err());
        assert!(Rights::ALL.check_delete().is_ok());
    }

    #[test]
    fn hash_round_trip() {
        let h = hash_password("correct horse").unwrap();
        assert!(h.starts_with("$argon2id$v=19$"), "{h}");
        assert!(is_password_hash(&h));
        assert!(verify_password(&h, "correct horse"));
        assert!(!verify_password(&h, "correct horse "));
        assert!(!verify_password("plain", "plain"));
        assert!(!is_password_hash("hunter2"));
        assert!(!is_password_hash("$2b$12$abcdefghijklmnopqrstuv"));
        assert_ne!(hash_password("x").unwrap(), hash_password("x").unwrap());
        assert!(is_password_hash(decoy_hash()));
    }

    #[test]
    fn secrets_do_not_debug_print() {
        let s = Secret::new("wJalrXUtnFEMI");
        assert!(!format!("{s:?}").contains("wJal"));
        let storage = Arc::new(Storage {
            name: "main".into(),
            settings: S3Settings::custom("http://127.0.0.1:1", "r"),
            access_key_id: "AK".into(),
            secret: s,
        });
        let user = TeamUser {
            name: "alice".into(),
            password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2g".into(),
            storage,
            bucket: "bkt".into(),
            home: BucketPath::root(),
            rights: Rights::ALL,
        };
        let dir = Directory::new(vec![user], false);
        let text = format!("{dir:?}");
        assert!(!text.contains("wJal") && !text.contains("argon2"), "{text}");
    }

    #[test]
    fn table_swaps_whole() {
        let t = UserTable::new(Directory::default());
        let before = t.current();
        t.replace(Directory::new(Vec::new(), true));
        assert!(!before.key_login);
        assert!(t.current().key_login);
    }
}
