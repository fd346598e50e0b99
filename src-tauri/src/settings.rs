//! The app's settings (`settings.json` in the config folder): FTP listen port, passive ports,
//! transfer sizes, permissions, Require TLS, what starts when, the language, and which profile serves
//! access keys that match no saved profile. Validation is pure and names the field at fault.

use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::sync::RwLock;

use serde::{Deserialize, Serialize};

use crate::form::{FieldError, invalid};
use crate::persist::{self, Corrupt, Loaded, PersistError};
use crate::profiles::LOCAL_PROFILE_ID;

/// Default FTP port of the desktop app.
pub const DEFAULT_PORT: u16 = 2048;
const MIB: usize = 1024 * 1024;

/// Everything the Settings view edits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Settings {
    /// FTP port on 127.0.0.1.
    pub listen_port: u16,
    /// Passive data ports, `A-B`.
    pub passive_ports: String,
    /// Multipart part size in MiB (5 to 5120).
    pub part_size_mib: u32,
    /// Parts uploading at once per upload (1 to 32).
    pub parts_in_flight: u32,
    /// No uploads, deletes, renames or new folders.
    pub read_only: bool,
    /// DELE and RMD allowed.
    pub allow_delete: bool,
    /// Refuse logins and transfers not protected by TLS (FileZilla: "Require explicit FTP
    /// over TLS"), so a stopped upload can always be told from a finished one.
    pub require_tls: bool,
    /// Start the FTP server when the app starts.
    pub start_server_on_launch: bool,
    /// Start the app when the user logs in.
    pub start_at_login: bool,
    /// `auto` (the OS language), `en`, `zh-CN` or `ja`.
    pub language: String,
    /// The profile whose endpoint serves logins whose access key matches no profile.
    pub default_profile: String,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            listen_port: DEFAULT_PORT,
            passive_ports: "49152-65534".into(),
            part_size_mib: 8,
            parts_in_flight: 4,
            read_only: false,
            allow_delete: true,
            require_tls: false,
            start_server_on_launch: true,
            start_at_login: false,
            language: "auto".into(),
            default_profile: LOCAL_PROFILE_ID.into(),
        }
    }
}

impl Settings {
    /// Checks every field. Pure.
    pub fn validate(&self) -> Result<(), FieldError> {
        if self.listen_port == 0 {
            return Err(invalid(
                "listen_port",
                "err.port",
                "the port must be between 1 and 65535",
            ));
        }
        let passive = self.passive_range()?;
        if passive.contains(&self.listen_port) {
            return Err(invalid(
                "passive_ports",
                "err.passive_overlap",
                "the passive ports must not include the listen port",
            ));
        }
        // The engine's own check, so the form and the engine share one set of bounds.
        match self.transfer_limits() {
            Ok(_) => {}
            Err(e @ gateway::LimitsError::PartsInFlight(_)) => {
                return Err(invalid(
                    "parts_in_flight",
                    "err.parts_in_flight",
                    e.to_string(),
                ));
            }
            Err(e) => return Err(invalid("part_size_mib", "err.part_size", e.to_string())),
        }
        if !matches!(self.language.as_str(), "auto" | "en" | "zh-CN" | "ja") {
            return Err(invalid(
                "language",
                "err.language",
                format!("unknown language {:?}", self.language),
            ));
        }
        Ok(())
    }

    /// The passive port range.
    pub fn passive_range(&self) -> Result<RangeInclusive<u16>, FieldError> {
        gateway::config::parse_port_range(&self.passive_ports)
            .map_err(|e| invalid("passive_ports", "err.passive_ports", e.to_string()))
    }

    /// The gateway's transfer limits: memory for at least two uploads at full speed, and
    /// never less than the engine's default (which lets parts grow far enough for 5 TiB).
    pub fn transfer_limits(&self) -> Result<gateway::TransferLimits, gateway::LimitsError> {
        let part_size = (self.part_size_mib as usize).saturating_mul(MIB);
        let parts = self.parts_in_flight as usize;
        let memory = part_size
            .saturating_mul(parts.saturating_add(1))
            .saturating_mul(2)
            .max(gateway::TransferLimits::default().memory_limit());
        gateway::TransferLimits::new(part_size, parts, memory)
    }

    /// True when `other` differs in a field the running FTP server uses (so it must restart).
    pub fn server_differs(&self, other: &Settings) -> bool {
        self.listen_port != other.listen_port
            || self.passive_ports != other.passive_ports
            || self.part_size_mib != other.part_size_mib
            || self.parts_in_flight != other.parts_in_flight
            || self.read_only != other.read_only
            || self.allow_delete != other.allow_delete
            || self.require_tls != other.require_tls
            || self.default_profile != other.default_profile
    }
}

/// The settings file and its current content.
#[derive(Debug)]
pub struct SettingsStore {
    path: PathBuf,
    current: RwLock<Settings>,
}

impl SettingsStore {
    /// Reads `path`; missing means defaults, corrupt means defaults plus the [`Corrupt`]
    /// fact (where the old file was kept).
    pub fn load(path: &Path) -> Result<(Self, Option<Corrupt>), PersistError> {
        let (settings, corrupt) = match persist::load_json::<Settings>(path)? {
            Loaded::Missing => (Settings::default(), None),
            Loaded::Ok(s) => (s, None),
            Loaded::Corrupt(c) => (Settings::default(), Some(c)),
        };
        Ok((
            Self {
                path: path.to_path_buf(),
                current: RwLock::new(settings),
            },
            corrupt,
        ))
    }

    /// The current settings.
    pub fn get(&self) -> Settings {
        match self.current.read() {
            Ok(g) => g.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Validates, writes and adopts `settings`.
    pub fn save(&self, settings: Settings) -> Result<(), SaveError> {
        settings.validate().map_err(SaveError::Invalid)?;
        persist::save_json(&self.path, &settings).map_err(SaveError::Write)?;
        match self.current.write() {
            Ok(mut g) => *g = settings,
            Err(poisoned) => *poisoned.into_inner() = settings,
        }
        Ok(())
    }
}

/// Why settings were not saved.
#[derive(Debug, thiserror::Error)]
pub enum SaveError {
    /// A field is wrong.
    #[error("setting {0}")]
    Invalid(FieldError),
    /// The file could not be written.
    #[error("cannot write settings: {0}")]
    Write(PersistError),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_sensible() {
        let s = Settings::default();
        assert_eq!(s.validate(), Ok(()));
        assert_eq!(s.listen_port, 2048);
        assert!(s.start_server_on_launch);
        let l = s.transfer_limits().unwrap();
        assert_eq!(l.part_size(), 8 * MIB);
    }

    #[test]
    fn validation_names_the_field() {
        type Change = Box<dyn Fn(&mut Settings)>;
        let cases: Vec<(Change, &str)> = vec![
            (Box::new(|s| s.listen_port = 0), "listen_port"),
            (
                Box::new(|s| s.passive_ports = "9-1".into()),
                "passive_ports",
            ),
            (
                Box::new(|s| s.passive_ports = "2000-3000".into()),
                "passive_ports",
            ),
            (Box::new(|s| s.part_size_mib = 4), "part_size_mib"),
            (Box::new(|s| s.parts_in_flight = 0), "parts_in_flight"),
            (Box::new(|s| s.language = "fr".into()), "language"),
        ];
        for (change, field) in cases {
            let mut s = Settings::default();
            change(&mut s);
            assert_eq!(s.validate().map_err(|e| e.field), Err(field));
        }
    }

    #[test]
    fn big_parts_get_enough_memory() {
        let s = Settings {
            part_size_mib: 512,
            parts_in_flight: 8,
            ..Settings::default()
        };
        assert!(s.transfer_limits().is_ok());
    }

    #[test]
    fn older_files_fill_missing_fields_with_defaults() {
        let s: Settings = serde_json::from_str(r#"{"listen_port": 2121}"#).unwrap();
        assert_eq!(s.listen_port, 2121);
        assert_eq!(s.part_size_mib, 8);
        assert_eq!(s.default_profile, "local");
        assert!(!s.require_tls);
    }

    #[test]
    fn require_tls_is_a_server_setting() {
        let old = Settings::default();
        let new = Settings {
            require_tls: true,
            ..old.clone()
        };
        assert!(old.server_differs(&new));
        let lang = Settings {
            language: "ja".into(),
            ..old.clone()
        };
        assert!(!old.server_differs(&lang));
    }

    #[test]
    fn store_refuses_invalid_and_keeps_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("settings.json");
        let (store, corrupt) = SettingsStore::load(&path).unwrap();
        assert!(corrupt.is_none());
        let good = Settings {
            listen_port: 2121,
            ..Settings::default()
        };
        store.save(good.clone()).unwrap();
        let bad = Settings {
            listen_port: 0,
            ..Settings::default()
        };
        assert!(matches!(store.save(bad), Err(SaveError::Invalid(_))));
        assert_eq!(store.get(), good);
        let (again, _) = SettingsStore::load(&path).unwrap();
        assert_eq!(again.get(), good);
    }

    #[test]
    fn a_corrupt_file_means_defaults_and_is_reported_as_a_fact() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("settings.json");
        std::fs::write(&path, "{\"listen_port\": 21,").unwrap();
        let (store, corrupt) = SettingsStore::load(&path).unwrap();
        assert_eq!(store.get(), Settings::default());
        let c = corrupt.unwrap();
        assert_eq!(c.path, path);
        assert_eq!(
            std::fs::read_to_string(&c.kept_at).unwrap(),
            "{\"listen_port\": 21,"
        );
    }
}
