//! Storage profiles (`profiles.json` in the config folder): name, provider preset, region,
//! endpoint, addressing, access key id and default bucket. Secrets are not here: they live in
//! the OS keychain ([`crate::secrets`]). The built-in profile "This computer" (id `local`)
//! serves the embedded local bucket; its endpoint and key are filled in at run time.
//!
//! [`ProfileLogins`] hands the gateway each profile's endpoint settings by access key, so a
//! FileZilla login whose key matches a profile reaches that profile's store.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use gateway::{Addressing, Provider, S3Settings};
use serde::{Deserialize, Serialize};

use crate::form::{FieldError, invalid};
use crate::persist::{self, Corrupt, Loaded, PersistError};

/// Id of the built-in "This computer" profile.
pub const LOCAL_PROFILE_ID: &str = "local";
/// Name of the local bucket (the same as the headless server's default).
pub const LOCAL_BUCKET: &str = "local";

/// One saved profile (no secret).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Profile {
    /// Stable id (`local` for the built-in one).
    pub id: String,
    /// Name shown in menus.
    pub name: String,
    /// True for the built-in local bucket.
    #[serde(default)]
    pub local: bool,
    /// Provider preset.
    pub provider: Provider,
    /// Region (`None`: the preset's default).
    #[serde(default)]
    pub region: Option<String>,
    /// Endpoint URL (`None`: from the preset).
    #[serde(default)]
    pub endpoint: Option<String>,
    /// Addressing style (`None`: the preset's).
    #[serde(default)]
    pub addressing: Option<Addressing>,
    /// Access key id.
    #[serde(default)]
    pub access_key: String,
    /// Default bucket (used in the FileZilla login `AK/bucket`).
    #[serde(default)]
    pub bucket: String,
}

impl Profile {
    /// The built-in "This computer" profile.
    pub fn local() -> Self {
        Self {
            id: LOCAL_PROFILE_ID.into(),
            name: "This computer".into(),
            local: true,
            provider: Provider::Custom,
            region: None,
            endpoint: None,
            addressing: Some(Addressing::Path),
            access_key: String::new(),
            bucket: LOCAL_BUCKET.into(),
        }
    }

    /// The endpoint settings the gateway uses for this profile.
    pub fn s3_settings(&self) -> S3Settings {
        S3Settings {
            provider: self.provider,
            endpoint: self.endpoint.clone().filter(|e| !e.trim().is_empty()),
            region: self.region.clone().filter(|r| !r.trim().is_empty()),
            addressing: self.addressing,
            checksum: None,
        }
    }
}

/// A profile as the Profiles form sends it: `id` empty for a new one, `secret` empty to keep
/// the stored one.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct ProfileInput {
    /// Id of the profile being edited; empty for a new one.
    pub id: String,
    /// Name.
    pub name: String,
    /// Provider preset.
    pub provider: Option<Provider>,
    /// Region.
    pub region: String,
    /// Endpoint URL.
    pub endpoint: String,
    /// Addressing style (`None`: the preset's).
    pub addressing: Option<Addressing>,
    /// Access key id.
    pub access_key: String,
    /// Secret key; empty keeps the stored one.
    pub secret: String,
    /// Default bucket.
    pub bucket: String,
}

fn opt(s: &str) -> Option<String> {
    let t = s.trim();
    (!t.is_empty()).then(|| t.to_owned())
}

impl ProfileInput {
    /// Turns the form into a profile with `id`, checking each field. Pure.
    pub fn to_profile(&self, id: &str) -> Result<Profile, FieldError> {
        let name = self.name.trim();
        if name.is_empty() {
            return Err(invalid("name", "err.name", "give the profile a name"));
        }
        let provider = self
            .provider
            .ok_or_else(|| invalid("provider", "err.provider", "choose a provider"))?;
        let access_key = self.access_key.trim();
        if access_key.is_empty()
            || access_key.contains('/')
            || access_key.contains(char::is_whitespace)
        {
            return Err(invalid(
                "access_key",
                "err.access_key",
                "the access key id must be one word without '/'",
            ));
        }
        let bucket = self.bucket.trim();
        if bucket.contains('/') {
            return Err(invalid("bucket", "err.bucket", "a bucket name has no '/'"));
        }
        let profile = Profile {
            id: id.to_owned(),
            name: name.to_owned(),
            local: false,
            provider,
            region: opt(&self.region),
            endpoint: opt(&self.endpoint),
            addressing: self.addressing,
            access_key: access_key.to_owned(),
            bucket: bucket.to_owned(),
        };
        profile
            .s3_settings()
            .resolve()
            .map_err(|e| invalid("endpoint", "err.endpoint", e.to_string()))?;
        Ok(profile)
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct ProfilesFile {
    version: u32,
    profiles: Vec<Profile>,
}

/// The profiles file and its current content, shared with [`ProfileLogins`].
#[derive(Debug)]
pub struct ProfileStore {
    path: PathBuf,
    list: Arc<RwLock<Vec<Profile>>>,
}

/// What loading the profiles found besides the profiles.
#[derive(Debug, Default)]
pub struct LoadReport {
    /// True when there was no file (first run): "This computer" was created.
    pub first_run: bool,
    /// Set when the file did not parse and was moved aside.
    pub corrupt: Option<Corrupt>,
}

fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    match lock.read() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    }
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    match lock.write() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    }
}

impl ProfileStore {
    /// Reads `path`. The first run (no file) creates "This computer" and writes the file; a
    /// corrupt file is moved aside and the store starts with "This computer" only.
    pub fn load(path: &Path) -> Result<(Self, LoadReport), PersistError> {
        let mut report = LoadReport::default();
        let mut profiles = match persist::load_json::<ProfilesFile>(path)? {
            Loaded::Ok(f) => f.profiles,
            Loaded::Missing => {
                report.first_run = true;
                Vec::new()
            }
            Loaded::Corrupt(c) => {
                report.corrupt = Some(c);
                Vec::new()
            }
        };
        if !profiles.iter().any(|p| p.id == LOCAL_PROFILE_ID) {
            profiles.insert(0, Profile::local());
        }
        let store = Self {
            path: path.to_path_buf(),
            list: Arc::new(RwLock::new(profiles)),
        };
        if report.first_run || report.corrupt.is_some() {
            store.write_file()?;
        }
        Ok((store, report))
    }

    fn write_file(&self) -> Result<(), PersistError> {
        let file = ProfilesFile {
            version: 1,
            profiles: read(&self.list).clone(),
        };
        persist::save_json(&self.path, &file)
    }

    /// Every profile, "This computer" first.
    pub fn all(&self) -> Vec<Profile> {
        read(&self.list).clone()
    }

    /// One profile.
    pub fn get(&self, id: &str) -> Option<Profile> {
        read(&self.list).iter().find(|p| p.id == id).cloned()
    }

    /// Adds or replaces `profile` and writes the file; on a write error the list is as before.
    pub fn put(&self, profile: Profile) -> Result<(), PersistError> {
        let before = self.all();
        {
            let mut list = write(&self.list);
            match list.iter_mut().find(|p| p.id == profile.id) {
                Some(slot) => *slot = profile,
                None => list.push(profile),
            }
        }
        self.write_file()
            .inspect_err(|_| *write(&self.list) = before)
    }

    /// Removes a profile and writes the file; true when it existed.
    pub fn remove(&self, id: &str) -> Result<bool, PersistError> {
        let before = self.all();
        let removed = {
            let mut list = write(&self.list);
            let n = list.len();
            list.retain(|p| p.id != id);
            list.len() != n
        };
        if removed {
            self.write_file()
                .inspect_err(|_| *write(&self.list) = before)?;
        }
        Ok(removed)
    }

    /// A fresh id for a new profile.
    pub fn new_id(&self) -> String {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let mut n: u128 = 0;
        loop {
            let id = format!("p{:x}", nanos + n);
            if self.get(&id).is_none() {
                return id;
            }
            n += 1;
        }
    }

    /// The per-login settings view the gateway consults.
    pub fn logins(&self, local: Option<(String, S3Settings)>) -> ProfileLogins {
        ProfileLogins {
            profiles: Arc::clone(&self.list),
            local,
        }
    }
}

/// [`gateway::LoginSettings`] over the live profile list: edits apply to the next login.
#[derive(Debug)]
pub struct ProfileLogins {
    profiles: Arc<RwLock<Vec<Profile>>>,
    /// The local store's access key and settings.
    local: Option<(String, S3Settings)>,
}

impl gateway::LoginSettings for ProfileLogins {
    fn settings_for(&self, access_key: &str) -> Option<S3Settings> {
        if let Some((key, settings)) = &self.local
            && key == access_key
        {
            return Some(settings.clone());
        }
        read(&self.profiles)
            .iter()
            .find(|p| !p.local && p.access_key == access_key)
            .map(Profile::s3_settings)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gateway::LoginSettings;

    fn input(name: &str, ak: &str) -> ProfileInput {
        ProfileInput {
            name: name.into(),
            provider: Some(Provider::Minio),
            endpoint: "http://127.0.0.1:9000".into(),
            access_key: ak.into(),
            bucket: "b".into(),
            ..ProfileInput::default()
        }
    }

    #[test]
    fn form_validation() {
        assert!(input("m", "AK").to_profile("x").is_ok());
        let table: Vec<(ProfileInput, &str)> = vec![
            (input(" ", "AK"), "name"),
            (input("m", ""), "access_key"),
            (input("m", "A/K"), "access_key"),
            (
                ProfileInput {
                    bucket: "a/b".into(),
                    ..input("m", "AK")
                },
                "bucket",
            ),
            (
                ProfileInput {
                    endpoint: String::new(),
                    ..input("m", "AK")
                },
                "endpoint",
            ),
            (
                ProfileInput {
                    endpoint: "ftp://x".into(),
                    ..input("m", "AK")
                },
                "endpoint",
            ),
            (
                ProfileInput {
                    provider: None,
                    ..input("m", "AK")
                },
                "provider",
            ),
        ];
        for (i, field) in table {
            assert_eq!(i.to_profile("x").map_err(|e| e.field), Err(field), "{i:?}");
        }
        // OSS needs no endpoint: the preset has one.
        let oss = ProfileInput {
            provider: Some(Provider::Oss),
            endpoint: String::new(),
            region: "cn-beijing".into(),
            ..input("o", "AK")
        };
        let p = oss.to_profile("o").unwrap();
        assert_eq!(p.endpoint, None);
        assert_eq!(p.region.as_deref(), Some("cn-beijing"));
    }

    #[test]
    fn first_run_creates_this_computer_and_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("profiles.json");
        let (store, report) = ProfileStore::load(&path).unwrap();
        assert!(report.first_run);
        assert_eq!(store.all(), vec![Profile::local()]);
        assert!(path.exists());
        let (_, again) = ProfileStore::load(&path).unwrap();
        assert!(!again.first_run);
    }

    #[test]
    fn put_remove_and_logins() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("profiles.json");
        let (store, _) = ProfileStore::load(&path).unwrap();
        let id = store.new_id();
        store
            .put(input("m", "AKM").to_profile(&id).unwrap())
            .unwrap();
        let local = S3Settings::custom("http://127.0.0.1:1", "r");
        let logins = store.logins(Some(("LOCALKEY".into(), local.clone())));
        assert_eq!(logins.settings_for("LOCALKEY"), Some(local));
        let m = logins.settings_for("AKM").unwrap();
        assert_eq!(m.endpoint.as_deref(), Some("http://127.0.0.1:9000"));
        assert_eq!(logins.settings_for("OTHER"), None);
        // Edits are live for the next login.
        let mut edited = store.get(&id).unwrap();
        edited.endpoint = Some("http://127.0.0.1:9001".into());
        store.put(edited).unwrap();
        assert_eq!(
            logins.settings_for("AKM").unwrap().endpoint.as_deref(),
            Some("http://127.0.0.1:9001")
        );
        let (reloaded, _) = ProfileStore::load(&path).unwrap();
        assert_eq!(reloaded.all(), store.all());
        assert!(store.remove(&id).unwrap());
        assert!(!store.remove(&id).unwrap());
        assert_eq!(logins.settings_for("AKM"), None);
    }

    #[test]
    fn corrupt_file_keeps_a_copy_and_restarts_with_this_computer() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("profiles.json");
        std::fs::write(&path, "{ not json").unwrap();
        let (store, report) = ProfileStore::load(&path).unwrap();
        let corrupt = report.corrupt.unwrap();
        assert_eq!(corrupt.path, path);
        assert_eq!(store.all(), vec![Profile::local()]);
        let kept: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("profiles.json.corrupt-"))
            .collect();
        assert_eq!(kept.len(), 1);
        assert_eq!(corrupt.kept_at, dir.path().join(&kept[0]));
        assert_eq!(
            std::fs::read_to_string(dir.path().join(&kept[0])).unwrap(),
            "{ not json"
        );
    }

    #[test]
    fn the_file_never_holds_a_secret() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("profiles.json");
        let (store, _) = ProfileStore::load(&path).unwrap();
        let i = ProfileInput {
            secret: "TOPSECRET-123".into(),
            ..input("m", "AKM")
        };
        store.put(i.to_profile("p1").unwrap()).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(!text.contains("TOPSECRET"), "{text}");
        assert!(text.contains("AKM"));
    }
}
