//! The Connect tab and the copy buttons: a profile's FileZilla settings (host, port,
//! `AK/bucket`, the Quickconnect URL, never the secret unless asked for) and the clipboard.

use std::fmt::Write as _;
use std::net::SocketAddr;

use serde::Serialize;

use super::{ActionError, Core};
use crate::server::ServerStatus;

/// The FTP host shown to the user.
pub const HOST: &str = "127.0.0.1";

/// The exact FileZilla settings for a profile.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ConnectInfo {
    /// The profile.
    pub profile_id: String,
    /// 127.0.0.1
    pub host: String,
    /// The FTP port.
    pub port: u16,
    /// `AK/bucket`.
    pub user: String,
    /// True when the profile has no default bucket (the user must add one).
    pub bucket_missing: bool,
    /// `ftp://AK/bucket@127.0.0.1:2048/` for Quickconnect (never with the password).
    pub url: String,
    /// True when a secret is stored.
    pub has_secret: bool,
    /// FTPS certificate fingerprint when FTPS is offered.
    pub fingerprint: Option<String>,
    /// True while the server runs.
    pub running: bool,
}

/// A field of [`ConnectInfo`] to copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CopyField {
    /// 127.0.0.1
    Host,
    /// The port.
    Port,
    /// `AK/bucket`.
    User,
    /// The secret key.
    Password,
    /// The `ftp://` URL for Quickconnect (no password: FileZilla asks for the secret key).
    Url,
}

/// The user part of an `ftp://` URL as FileZilla's Quickconnect reads it. FileZilla splits a
/// URL but does not percent-decode it, so the login stays literal (`AK/bucket`, slash
/// included); only what would break the URL is encoded: `@`, `:`, `%`, space and control
/// characters. Pure.
pub fn url_user(user: &str) -> String {
    let mut out = String::with_capacity(user.len());
    for c in user.chars() {
        if matches!(c, '@' | ':' | '%' | ' ') || c.is_control() {
            let mut buf = [0u8; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                let _ = write!(out, "%{b:02X}");
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// `ftp://AK/bucket@host:port/` for FileZilla's Quickconnect. Never carries a password:
/// FileZilla asks for it (the secret key). Pure.
pub fn ftp_url(user: &str, host: &str, port: u16) -> String {
    format!("ftp://{}@{host}:{port}/", url_user(user))
}

impl Core {
    pub(super) fn port(&self) -> u16 {
        match self.server.status() {
            ServerStatus::Running { address } => address
                .parse::<SocketAddr>()
                .map(|a| a.port())
                .unwrap_or_else(|_| self.settings.get().listen_port),
            _ => self.settings.get().listen_port,
        }
    }

    /// The FileZilla settings of a profile (no secret).
    pub fn connect_info(&self, profile_id: &str) -> Result<ConnectInfo, ActionError> {
        let p = self
            .profiles
            .get(profile_id)
            .ok_or_else(|| ActionError::NoProfile(profile_id.to_owned()))?;
        let v = self.view(p);
        let port = self.port();
        Ok(ConnectInfo {
            profile_id: v.profile.id.clone(),
            host: HOST.into(),
            port,
            bucket_missing: v.profile.bucket.is_empty(),
            url: ftp_url(&v.user, HOST, port),
            user: v.user,
            has_secret: v.has_secret,
            fingerprint: self.tls.as_ref().map(|t| t.fingerprint.clone()),
            running: self.server.is_running(),
        })
    }

    /// The secret of a profile, shown only when the user asks.
    pub fn reveal_secret(&self, profile_id: &str) -> Result<Option<String>, ActionError> {
        self.secret_of(profile_id)
    }

    /// The text a copy button puts on the clipboard.
    pub fn copy_text(&self, profile_id: &str, field: CopyField) -> Result<String, ActionError> {
        let info = self.connect_info(profile_id)?;
        Ok(match field {
            CopyField::Host => info.host,
            CopyField::Port => info.port.to_string(),
            CopyField::User => info.user,
            CopyField::Url => info.url,
            CopyField::Password => self
                .secret_of(profile_id)?
                .ok_or(ActionError::SecretRequired)?,
        })
    }

    /// Copies a field of a profile's FileZilla settings to the clipboard.
    pub fn copy(&self, profile_id: &str, field: CopyField) -> Result<(), ActionError> {
        let text = self.copy_text(profile_id, field)?;
        self.shell.copy_text(&text).map_err(ActionError::Clipboard)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_the_ones_filezilla_quickconnect_understands() {
        // FileZilla does not percent-decode: the slash of `AK/bucket` stays literal.
        assert_eq!(
            ftp_url("AKID/bucket", "127.0.0.1", 2048),
            "ftp://AKID/bucket@127.0.0.1:2048/"
        );
        let table = [
            ("AKID/bucket", "AKID/bucket"),
            ("AK/my.bucket-1", "AK/my.bucket-1"),
            ("a@b", "a%40b"),
            ("a:b", "a%3Ab"),
            ("100%", "100%25"),
            ("a b", "a%20b"),
            ("a\tb\n", "a%09b%0A"),
            ("AK/桶", "AK/桶"),
            ("AK/", "AK/"),
        ];
        for (user, encoded) in table {
            assert_eq!(url_user(user), encoded, "{user:?}");
        }
    }
}
