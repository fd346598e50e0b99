//! Secret keys live only in the OS keychain: Secret Service on Linux, Credential Manager on
//! Windows, Keychain on macOS (the `keyring` crate). One entry per profile, service
//! `BucketFTP`, user `profile:<id>`. Unit tests use keyring's mock credential builder; the
//! Secret Service test (`#[ignore]`) is run by `scripts/test-desktop.sh` inside a private
//! D-Bus session with an unlocked gnome-keyring.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};

use keyring::{CredentialBuilder, Entry};

/// The keychain service name of the app.
pub const SERVICE: &str = "BucketFTP";

/// The keychain could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the system keychain refused: {0}")]
pub struct SecretError(pub String);

/// Where profile secrets are kept.
pub trait SecretStore: Send + Sync + fmt::Debug {
    /// Stores (or replaces) the secret of profile `id`.
    fn set(&self, id: &str, secret: &str) -> Result<(), SecretError>;
    /// The secret of profile `id`, if one is stored.
    fn get(&self, id: &str) -> Result<Option<String>, SecretError>;
    /// Forgets the secret of profile `id` (no error when there was none).
    fn delete(&self, id: &str) -> Result<(), SecretError>;
}

/// The OS keychain through `keyring`.
pub struct Keychain {
    service: String,
    builder: Option<Box<CredentialBuilder>>,
    /// Entries made so far, reused (keyring's mock keeps a secret only in its entry).
    entries: Mutex<HashMap<String, Arc<Entry>>>,
}

impl fmt::Debug for Keychain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keychain")
            .field("service", &self.service)
            .field("mock", &self.builder.is_some())
            .finish()
    }
}

impl Keychain {
    /// The platform's keychain under `service`.
    pub fn new(service: &str) -> Self {
        Self {
            service: service.to_owned(),
            builder: None,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// A keychain whose entries come from `builder` (tests: `keyring::mock`).
    pub fn with_builder(service: &str, builder: Box<CredentialBuilder>) -> Self {
        Self {
            builder: Some(builder),
            ..Self::new(service)
        }
    }

    /// An in-process keychain for tests and for the mock runtime (keyring's mock).
    pub fn mock() -> Self {
        Self::with_builder(SERVICE, keyring::mock::default_credential_builder())
    }

    fn entry(&self, id: &str) -> Result<Arc<Entry>, SecretError> {
        let mut entries = match self.entries.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        if let Some(e) = entries.get(id) {
            return Ok(Arc::clone(e));
        }
        let user = format!("profile:{id}");
        let entry = match &self.builder {
            Some(b) => {
                Entry::new_with_credential(b.build(None, &self.service, &user).map_err(explain)?)
            }
            None => Entry::new(&self.service, &user).map_err(explain)?,
        };
        let entry = Arc::new(entry);
        entries.insert(id.to_owned(), Arc::clone(&entry));
        Ok(entry)
    }
}

/// Keyring errors in words; never includes the secret.
fn explain(e: keyring::Error) -> SecretError {
    SecretError(match e {
        keyring::Error::NoStorageAccess(inner) => {
            format!(
                "no keychain is available (on Linux: is a Secret Service such as gnome-keyring running and unlocked?): {inner}"
            )
        }
        keyring::Error::PlatformFailure(inner) => format!("keychain failure: {inner}"),
        keyring::Error::TooLong(what, max) => format!("{what} is longer than {max}"),
        keyring::Error::Invalid(what, why) => format!("{what} is invalid: {why}"),
        keyring::Error::BadEncoding(_) => "the stored secret is not text".into(),
        other => other.to_string(),
    })
}

impl SecretStore for Keychain {
    fn set(&self, id: &str, secret: &str) -> Result<(), SecretError> {
        self.entry(id)?.set_password(secret).map_err(explain)
    }

    fn get(&self, id: &str) -> Result<Option<String>, SecretError> {
        match self.entry(id)?.get_password() {
            Ok(s) => Ok(Some(s)),
            Err(keyring::Error::NoEntry) => Ok(None),
            Err(e) => Err(explain(e)),
        }
    }

    fn delete(&self, id: &str) -> Result<(), SecretError> {
        match self.entry(id)?.delete_credential() {
            Ok(()) | Err(keyring::Error::NoEntry) => Ok(()),
            Err(e) => Err(explain(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mock_round_trip() {
        let k = Keychain::mock();
        assert_eq!(k.get("p1"), Ok(None));
        k.set("p1", "s3cr3t").unwrap();
        assert_eq!(k.get("p1"), Ok(Some("s3cr3t".into())));
        k.set("p1", "other").unwrap();
        assert_eq!(k.get("p1"), Ok(Some("other".into())));
        assert_eq!(k.get("p2"), Ok(None));
        k.delete("p1").unwrap();
        assert_eq!(k.get("p1"), Ok(None));
        k.delete("p1").unwrap();
    }

    #[test]
    fn debug_never_shows_secrets() {
        let k = Keychain::mock();
        k.set("p1", "VERY-SECRET").unwrap();
        assert!(!format!("{k:?}").contains("VERY-SECRET"));
    }

    /// Stores, reads (through a second, fresh keychain handle: the secret really went to the
    /// store) and deletes a secret in the real Secret Service. Needs a D-Bus session with an
    /// unlocked keyring: `scripts/test-desktop.sh` runs it with `--ignored`.
    #[test]
    #[ignore = "needs a Secret Service (run by scripts/test-desktop.sh)"]
    fn real_secret_service_round_trip() {
        let service = format!("BucketFTP-test-{}", std::process::id());
        let writer = Keychain::new(&service);
        writer.set("e2e", "secret-ÄÖ-字").unwrap();
        let reader = Keychain::new(&service);
        assert_eq!(reader.get("e2e").unwrap().as_deref(), Some("secret-ÄÖ-字"));
        writer.delete("e2e").unwrap();
        assert_eq!(Keychain::new(&service).get("e2e").unwrap(), None);
    }
}
