//! Converts the configuration of two other FTP servers for object storage into the text of a
//! BucketFTP server config (TOML):
//! - Tencent's COS FTP Server (`conf/vsftpd.conf`, an INI file read by Python's
//!   `ConfigParser`): [`import_cos`], in `cos.rs` (the INI reading in `ini.rs`);
//! - QingStor's qsftpd (`qsftpd.yaml`): [`import_qsftpd`], in `qsftpd.rs`.
//!
//! Both write through `toml_out.rs`, which builds a `toml_edit` document with the comments.
//!
//! Pure: the caller reads the file, passes the password hasher and prints the result. Every
//! key of the source becomes either a setting or a `#` comment saying why it has none, so
//! nothing is dropped silently. The output is deterministic (no dates, source order).
//! Passwords and secret keys are never quoted in comments nor in the errors this module
//! words itself (a YAML syntax error is the parser's own message).

mod cos;
mod ini;
mod qsftpd;
mod toml_out;

use toml_out::TomlOut;

/// Why a config could not be converted. Messages name the line, section or key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImportError {
    /// A line of the INI file that is neither a `[section]`, a `key = value` nor a comment.
    #[error("line {line}: {message}")]
    Syntax {
        /// 1-based line number.
        line: usize,
        /// What is wrong with it.
        message: String,
    },
    /// The YAML file does not parse or has the wrong shape.
    #[error("not a qsftpd config: {0}")]
    Yaml(String),
    /// A section, key or user name that appears twice.
    #[error("line {line}: {what} already appeared on line {first}")]
    Duplicate {
        /// Where it appears again.
        line: usize,
        /// Where it appeared first.
        first: usize,
        /// The section, key or user.
        what: String,
    },
    /// A key that must be set is absent or empty.
    #[error("{place}: `{key}` is missing or empty")]
    Missing {
        /// The section (and its line) or file it belongs in.
        place: String,
        /// The missing key's name in the source config.
        key: String,
    },
    /// A value that cannot be converted.
    #[error("{place}: `{key}` = {value:?}: {reason}")]
    Invalid {
        /// The line and section, or the file.
        place: String,
        /// The key whose value is refused, as the source config names it.
        key: String,
        /// The value as written.
        value: String,
        /// What was expected.
        reason: String,
    },
    /// Something the source allows that this converter does not handle.
    #[error("{place}: {reason}")]
    Unsupported {
        /// The line and section, or the file.
        place: String,
        /// What to do instead.
        reason: String,
    },
    /// The COS config has no `[COS_ACCOUNT_…]` section.
    #[error("no [COS_ACCOUNT_n] section: there is no account to convert")]
    NoAccount,
    /// The qsftpd config has no `zone`.
    #[error(
        "qsftpd config: `zone` is not set; qsftpd looked the bucket's zone up at start, \
         BucketFTP needs it: add e.g. `zone: pek3a` (the zone in the bucket's address)"
    )]
    NoZone,
    /// The password hasher failed.
    #[error("hashing the password of user {user:?} failed: {message}")]
    Hash {
        /// The FTP user whose password was being hashed.
        user: String,
        /// The hasher's message.
        message: String,
    },
}

/// The password hasher the caller passes: plain-text password in, PHC string out.
type Hasher<'a> = &'a mut dyn FnMut(&str) -> Result<String, String>;

/// Converts a COS FTP Server `conf/vsftpd.conf` into a BucketFTP server config (TOML text).
///
/// Each `[COS_ACCOUNT_n]` becomes one `[[storage]]` named after the section
/// (`cos-account-0`) and one `[[user]]` whose password `hash` turns into a PHC string.
pub fn import_cos(
    text: &str,
    hash: &mut dyn FnMut(&str) -> Result<String, String>,
) -> Result<String, ImportError> {
    cos::import(text, hash)
}

/// Converts a qsftpd `qsftpd.yaml` into a BucketFTP server config (TOML text).
///
/// The bucket becomes one `[[storage]]` named `qingstor`; each user with a password becomes
/// a `[[user]]` with read, write and delete on the whole bucket, as qsftpd allowed.
pub fn import_qsftpd(
    text: &str,
    hash: &mut dyn FnMut(&str) -> Result<String, String>,
) -> Result<String, ImportError> {
    qsftpd::import(text, hash)
}

/// The comment above a secret written in plain text.
fn secret_comment(out: &mut TomlOut, source: &str, env: &str) {
    out.comment(&format!(
        "{source} held this secret in plain text, and so does this file: keep it readable by \
         the server's user only, or move the secret to a file (secret_access_key_file = \
         \"/etc/bucketftp/secret\") or the environment (secret_access_key_env = \"{env}\")."
    ));
}

/// What the importers' tests share: a stand-in hasher and readers of the output.
#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod testing {
    /// A stand-in for argon2id that shows what it was given.
    pub(super) fn fake_hash(password: &str) -> Result<String, String> {
        Ok(format!("$fake${password}"))
    }

    /// The comments of `out` as one line, so that a phrase is found wherever it wraps.
    pub(super) fn says(out: &str, phrase: &str) -> bool {
        let prose: Vec<&str> = out
            .lines()
            .filter_map(|l| l.strip_prefix('#'))
            .map(str::trim)
            .collect();
        prose.join(" ").contains(phrase)
    }

    pub(super) fn parse(text: &str) -> toml::Value {
        toml::from_str::<toml::Value>(text).unwrap()
    }

    pub(super) fn table<'a>(v: &'a toml::Value, name: &str) -> &'a toml::Table {
        v.get(name).unwrap().as_table().unwrap()
    }

    pub(super) fn array<'a>(v: &'a toml::Value, name: &str) -> Vec<&'a toml::Table> {
        match v.get(name) {
            Some(a) => a
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t.as_table().unwrap())
                .collect(),
            None => Vec::new(),
        }
    }

    pub(super) fn s<'a>(t: &'a toml::Table, key: &str) -> &'a str {
        t.get(key).unwrap().as_str().unwrap()
    }
}
