//! [`ActionError`]: every way an action fails, serialised for the window as
//! `{kind, key, field, detail, message}`.

use serde::{Serialize, Serializer};

use super::{ExportError, ShellError};
use crate::form::FieldError;
use crate::persist::PersistError;
use crate::secrets::SecretError;
use crate::settings::SaveError;

/// Every way an action fails; serialises as `{kind, key, field, message}` for the window,
/// which shows `key` translated (with `detail`) and falls back to `message`.
#[derive(Debug, thiserror::Error)]
pub enum ActionError {
    /// A form field is wrong.
    #[error("{}", .0.detail)]
    Invalid(#[from] FieldError),
    /// No such profile.
    #[error("no profile {0:?}")]
    NoProfile(String),
    /// The built-in profile cannot be deleted or edited.
    #[error("the built-in profile cannot be deleted or edited")]
    Builtin,
    /// A new profile needs its secret.
    #[error("enter the secret key")]
    SecretRequired,
    /// The keychain failed.
    #[error(transparent)]
    Keychain(#[from] SecretError),
    /// A file could not be written.
    #[error("cannot save {0}")]
    Save(#[from] PersistError),
    /// The FTP server did not start: the words of the server's `Error` status, which is
    /// state the window shows as it is (the typed start error became that status).
    #[error("the FTP server could not start: {0}")]
    Start(String),
    /// The local bucket is not running.
    #[error("the local bucket is not available: {0}")]
    LocalUnavailable(String),
    /// Start at login could not be changed.
    #[error("could not change start at login: {0}")]
    Autostart(ShellError),
    /// The clipboard refused.
    #[error("could not copy: {0}")]
    Clipboard(ShellError),
    /// The FileZilla site file could not be written.
    #[error("could not export the FileZilla sites: {0}")]
    Export(#[from] ExportError),
    /// The page's request could not be carried out: an unknown command, a malformed
    /// argument, or the tray process gone from under the window.
    #[error("the request failed: {0}")]
    Request(String),
}

impl ActionError {
    /// The translation key of the message.
    pub fn key(&self) -> &'static str {
        match self {
            ActionError::Invalid(e) => e.key,
            ActionError::NoProfile(_) => "err.no_profile",
            ActionError::Builtin => "err.builtin",
            ActionError::SecretRequired => "err.secret_required",
            ActionError::Keychain(_) => "err.keychain",
            ActionError::Save(_) => "err.save",
            ActionError::Start(_) => "err.start",
            ActionError::LocalUnavailable(_) => "err.local_unavailable",
            ActionError::Autostart(_) => "err.autostart",
            ActionError::Clipboard(_) => "err.clipboard",
            ActionError::Export(_) => "err.export",
            ActionError::Request(_) => "err.request",
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            ActionError::Invalid(_) => "invalid",
            ActionError::NoProfile(_) => "no_profile",
            ActionError::Builtin => "builtin",
            ActionError::SecretRequired => "secret_required",
            ActionError::Keychain(_) => "keychain",
            ActionError::Save(_) => "save",
            ActionError::Start(_) => "start",
            ActionError::LocalUnavailable(_) => "local_unavailable",
            ActionError::Autostart(_) => "autostart",
            ActionError::Clipboard(_) => "clipboard",
            ActionError::Export(_) => "export",
            ActionError::Request(_) => "request",
        }
    }

    pub(super) fn detail(&self) -> String {
        match self {
            ActionError::Invalid(e) => e.detail.clone(),
            ActionError::Keychain(e) => e.0.clone(),
            ActionError::Save(e) => e.to_string(),
            ActionError::Start(d) | ActionError::LocalUnavailable(d) | ActionError::Request(d) => {
                d.clone()
            }
            ActionError::Export(e) => e.to_string(),
            ActionError::Autostart(e) | ActionError::Clipboard(e) => e.to_string(),
            other => other.to_string(),
        }
    }
}

impl Serialize for ActionError {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Body<'a> {
            kind: &'a str,
            key: &'a str,
            field: Option<&'a str>,
            detail: String,
            message: String,
        }
        let field = match self {
            ActionError::Invalid(e) => Some(e.field),
            ActionError::SecretRequired => Some("secret"),
            _ => None,
        };
        Body {
            kind: self.kind(),
            key: self.key(),
            field,
            detail: self.detail(),
            message: self.to_string(),
        }
        .serialize(s)
    }
}

impl From<SaveError> for ActionError {
    fn from(e: SaveError) -> Self {
        match e {
            SaveError::Invalid(e) => ActionError::Invalid(e),
            SaveError::Write(w) => ActionError::Save(w),
        }
    }
}
