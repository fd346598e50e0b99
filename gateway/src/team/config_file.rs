//! `bucketftp-server --config FILE`: the TOML file a team server runs from.
//!
//! - `[server]` holds the command-line options, named as the long flags with `_` for `-`
//!   (`passive_ports = "60000-60100"`, `part_size = "8MiB"`, `allow_remote = true`). The
//!   binary turns each key into its flag, so the file and the command line share one parser;
//!   a flag given on the command line comes later and wins. A `false` switch stands for no
//!   flag, except for the keys of [`FALSE_IS_SAID`] (`require_tls = false` is
//!   `--require-tls=false`: its default depends on the listen address;
//!   `require_tls_session_reuse = false` is `--require-tls-session-reuse=false`: on by default).
//! - `[[storage]]`: named S3 connections, each with its key; the secret comes from the file,
//!   an environment variable or a file of its own.
//! - `[[user]]`: FTP users, each with an argon2id `password_hash`, a storage, a bucket, a
//!   `home` folder, `permissions` and a `delete` switch ([`crate::team::users`]).
//!
//! Every mistake is reported with the file, the line and the key. Parsing is pure; only
//! [`ConfigFile::directory`] reads the environment and secret files.

use std::collections::HashSet;
use std::ffi::OsString;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;
use toml::Spanned;

use crate::path::BucketPath;
use crate::s3::{Addressing, Provider, S3Settings};
use crate::team::users::{Directory, Rights, Secret, Storage, TeamUser, is_password_hash};

/// A mistake in the config file: where, which key, and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.render())]
pub struct ConfigError {
    /// The config file the mistake is in.
    pub file: PathBuf,
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// The key (`[server] part_size`, `[[user]] "alice" password_hash`), when known.
    pub key: Option<String>,
    /// What is wrong.
    pub message: String,
}

impl ConfigError {
    fn render(&self) -> String {
        let mut out = self.file.display().to_string();
        if let Some(line) = self.line {
            out.push_str(&format!(":{line}"));
        }
        out.push_str(": ");
        if let Some(key) = &self.key {
            out.push_str(key);
            out.push_str(": ");
        }
        out.push_str(&self.message);
        out
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Document {
    #[serde(default)]
    server: Option<Spanned<toml::Table>>,
    #[serde(default)]
    storage: Vec<Spanned<StorageEntry>>,
    #[serde(default)]
    user: Vec<Spanned<UserEntry>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StorageEntry {
    name: String,
    provider: Option<String>,
    endpoint: Option<String>,
    region: Option<String>,
    path_style: Option<bool>,
    checksum: Option<String>,
    access_key_id: String,
    secret_access_key: Option<String>,
    secret_access_key_env: Option<String>,
    secret_access_key_file: Option<PathBuf>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct UserEntry {
    name: String,
    password_hash: Option<String>,
    /// Only so that a plain-text password gets a clear refusal instead of "unknown field".
    password: Option<toml::Value>,
    storage: String,
    bucket: String,
    #[serde(default)]
    home: String,
    permissions: String,
    #[serde(default)]
    delete: bool,
}

/// `[server]` switches whose `false` is passed on (`--key=false`) rather than dropped: their
/// default is not always false.
pub const FALSE_IS_SAID: &[&str] = &["require_tls", "require_tls_session_reuse"];

/// One `[server]` key as command-line arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerOption {
    /// The key, e.g. `part_size`.
    pub key: String,
    /// The 1-based line of the key, for error messages.
    pub line: usize,
    /// The arguments it stands for: `["--part-size", "8MiB"]`, `["--allow-remote"]`, or none
    /// for a `false` switch.
    pub args: Vec<OsString>,
    /// What to check the key with: `args`, or the switch itself for a `false` switch (so that
    /// a misspelt `alow_remote = false` is still an unknown key).
    pub check: Vec<OsString>,
}

/// A config file read and parsed as TOML, kept with its text so errors can name lines.
pub struct ConfigFile {
    path: PathBuf,
    text: String,
    doc: Document,
}

// The text and entries hold secrets and password hashes: Debug shows the path only.
impl std::fmt::Debug for ConfigFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConfigFile")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl ConfigFile {
    /// Reads and parses `path`.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: path.to_path_buf(),
            line: None,
            key: None,
            message: format!("cannot read the file: {e}"),
        })?;
        Self::parse(path, text)
    }

    /// Parses `text` as the file `path` (checks syntax and every value that needs no I/O).
    pub fn parse(path: &Path, text: String) -> Result<Self, ConfigError> {
        let doc: Document = match toml::from_str(&text) {
            Ok(d) => d,
            Err(e) => {
                return Err(ConfigError {
                    file: path.to_path_buf(),
                    line: e.span().map(|s| line_at(&text, s.start)),
                    key: None,
                    message: e.message().trim().to_owned(),
                });
            }
        };
        let file = Self {
            path: path.to_path_buf(),
            text,
            doc,
        };
        file.server_options()?;
        file.check_entries()?;
        Ok(file)
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The table entry `table` (`[[user]] "alice"`) spanning `span`, for its errors.
    fn entry<'a>(&'a self, table: String, span: Range<usize>) -> Entry<'a> {
        Entry {
            file: self,
            table,
            span,
        }
    }

    /// The `[server]` keys as command-line arguments, in file order.
    pub fn server_options(&self) -> Result<Vec<ServerOption>, ConfigError> {
        let Some(server) = &self.doc.server else {
            return Ok(Vec::new());
        };
        let span = server.span();
        let mut out: Vec<ServerOption> = Vec::new();
        for (key, value) in server.get_ref() {
            let line = line_of_key(&self.text, &span, key);
            let fail = |msg: String| ConfigError {
                file: self.path.clone(),
                line: Some(line),
                key: Some(format!("[server] {key}")),
                message: msg,
            };
            if key == "config" {
                return Err(fail("a config file cannot name another one".into()));
            }
            let flag = OsString::from(format!("--{}", key.replace('_', "-")));
            let said = FALSE_IS_SAID.contains(&key.as_str());
            let check = match value {
                toml::Value::Boolean(false) if !said => vec![flag.clone()],
                _ => Vec::new(),
            };
            let args = match value {
                toml::Value::Boolean(false) if said => {
                    let mut arg = flag;
                    arg.push("=false");
                    vec![arg]
                }
                toml::Value::String(s) => vec![flag, OsString::from(s)],
                toml::Value::Integer(n) => vec![flag, OsString::from(n.to_string())],
                toml::Value::Float(f) => vec![flag, OsString::from(f.to_string())],
                toml::Value::Boolean(true) => vec![flag],
                toml::Value::Boolean(false) => Vec::new(),
                // A list (proxy_protocol_from = ["10.0.0.0/8", …]): one comma-separated value.
                toml::Value::Array(items) if items.iter().all(toml::Value::is_str) => {
                    let items: Vec<&str> = items.iter().filter_map(toml::Value::as_str).collect();
                    vec![flag, OsString::from(items.join(","))]
                }
                other => {
                    return Err(fail(format!(
                        "expected a string, a number, true/false or a list of strings, found {}",
                        other.type_str()
                    )));
                }
            };
            let check = if check.is_empty() {
                args.clone()
            } else {
                check
            };
            out.push(ServerOption {
                key: key.clone(),
                line,
                args,
                check,
            });
        }
        out.sort_by_key(|o| o.line);
        Ok(out)
    }

    /// An error about `[server] key` (the binary checks the values with its own parser).
    pub fn server_error(&self, option: &ServerOption, message: String) -> ConfigError {
        ConfigError {
            file: self.path.clone(),
            line: Some(option.line),
            key: Some(format!("[server] {}", option.key)),
            message,
        }
    }

    fn check_entries(&self) -> Result<(), ConfigError> {
        let mut storages = HashSet::new();
        for s in &self.doc.storage {
            let (e, at) = (s.get_ref(), self.storage_entry(s));
            if e.name.trim().is_empty() {
                return Err(at.key("name", "must not be empty".into()));
            }
            if !storages.insert(e.name.as_str()) {
                return Err(at.key("name", "a storage of this name is already defined".into()));
            }
            let sources = [
                e.secret_access_key.is_some(),
                e.secret_access_key_env.is_some(),
                e.secret_access_key_file.is_some(),
            ];
            if sources.iter().filter(|b| **b).count() != 1 {
                return Err(at.missing(
                    "secret_access_key",
                    "give exactly one of secret_access_key, secret_access_key_env and secret_access_key_file".into(),
                ));
            }
            if e.access_key_id.trim().is_empty() {
                return Err(at.key("access_key_id", "must not be empty".into()));
            }
            settings(e, &at)?;
        }
        let mut users = HashSet::new();
        for u in &self.doc.user {
            let (e, at) = (u.get_ref(), self.user_entry(u));
            let bad_name = e.name.is_empty()
                || e.name.contains('/')
                || e.name.chars().any(|c| c.is_whitespace() || c.is_control());
            if bad_name {
                return Err(at.key(
                    "name",
                    "a user name must be non-empty, without spaces and without `/` (names with `/` are ACCESS_KEY_ID/bucket logins)".into(),
                ));
            }
            if !users.insert(e.name.as_str()) {
                return Err(at.key("name", "a user of this name is already defined".into()));
            }
            if e.password.is_some() {
                return Err(at.key(
                    "password",
                    "plain-text passwords are refused; put the output of `bucketftp-server hash-password` in password_hash".into(),
                ));
            }
            match &e.password_hash {
                None => {
                    return Err(at.missing(
                        "password_hash",
                        "missing; make one with `bucketftp-server hash-password`".into(),
                    ));
                }
                Some(h) if !is_password_hash(h) => {
                    return Err(at.key(
                        "password_hash",
                        "not an argon2 hash (plain-text passwords are refused); make one with `bucketftp-server hash-password`".into(),
                    ));
                }
                Some(_) => {}
            }
            if !storages.contains(e.storage.as_str()) {
                return Err(at.key(
                    "storage",
                    format!("no [[storage]] is named {:?}", e.storage),
                ));
            }
            user_fields(e, &at)?;
        }
        Ok(())
    }

    fn storage_entry(&self, s: &Spanned<StorageEntry>) -> Entry<'_> {
        let name = &s.get_ref().name;
        let table = if name.trim().is_empty() {
            "[[storage]]".to_owned()
        } else {
            format!("[[storage]] {name:?}")
        };
        self.entry(table, s.span())
    }

    fn user_entry(&self, u: &Spanned<UserEntry>) -> Entry<'_> {
        self.entry(format!("[[user]] {:?}", u.get_ref().name), u.span())
    }

    /// `[server] key_login = true` in the file.
    pub fn key_login(&self) -> bool {
        self.doc.server.as_ref().is_some_and(|t| {
            t.get_ref().get("key_login").and_then(toml::Value::as_bool) == Some(true)
        })
    }

    /// The first storage's settings (the default for `ACCESS_KEY_ID/bucket` logins when the
    /// command line names no endpoint).
    pub fn first_storage_settings(&self) -> Option<S3Settings> {
        let s = self.doc.storage.first()?;
        settings(s.get_ref(), &self.storage_entry(s)).ok()
    }

    /// The team users, with each storage's secret read from where the file says (an
    /// environment variable through `env`, or a file).
    pub fn directory(
        &self,
        key_login: bool,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Directory, ConfigError> {
        let mut storages: Vec<Arc<Storage>> = Vec::new();
        for s in &self.doc.storage {
            let (e, at) = (s.get_ref(), self.storage_entry(s));
            let secret = if let Some(v) = &e.secret_access_key {
                v.clone()
            } else if let Some(var) = &e.secret_access_key_env {
                env(var).filter(|v| !v.is_empty()).ok_or_else(|| {
                    at.key(
                        "secret_access_key_env",
                        format!("the environment variable {var} is not set"),
                    )
                })?
            } else if let Some(f) = &e.secret_access_key_file {
                let text = std::fs::read_to_string(f).map_err(|err| {
                    at.key(
                        "secret_access_key_file",
                        format!("cannot read {}: {err}", f.display()),
                    )
                })?;
                let first = text.lines().next().unwrap_or_default().trim().to_owned();
                if first.is_empty() {
                    return Err(at.key(
                        "secret_access_key_file",
                        format!("{} is empty", f.display()),
                    ));
                }
                first
            } else {
                // check_entries made sure one source is given.
                String::new()
            };
            storages.push(Arc::new(Storage {
                name: e.name.clone(),
                settings: settings(e, &at)?,
                access_key_id: e.access_key_id.trim().to_owned(),
                secret: Secret::new(secret),
            }));
        }
        let mut users = Vec::new();
        for u in &self.doc.user {
            let (e, at) = (u.get_ref(), self.user_entry(u));
            let storage = storages
                .iter()
                .find(|s| s.name == e.storage)
                .cloned()
                .ok_or_else(|| {
                    at.key(
                        "storage",
                        format!("no [[storage]] is named {:?}", e.storage),
                    )
                })?;
            let (bucket, home, rights) = user_fields(e, &at)?;
            users.push(TeamUser {
                name: e.name.clone(),
                password_hash: e.password_hash.clone().unwrap_or_default(),
                storage,
                bucket,
                home,
                rights,
            });
        }
        Ok(Directory::new(users, key_login))
    }
}

/// One `[[storage]]` or `[[user]]` entry of a file, to name in errors.
struct Entry<'a> {
    file: &'a ConfigFile,
    table: String,
    span: Range<usize>,
}

impl Entry<'_> {
    fn error(&self, key: &str, line: usize, message: String) -> ConfigError {
        ConfigError {
            file: self.file.path.clone(),
            line: Some(line),
            key: Some(format!("{} {key}", self.table)),
            message,
        }
    }

    /// What is wrong with `key`, at its line.
    fn key(&self, key: &str, message: String) -> ConfigError {
        self.error(key, line_of_key(&self.file.text, &self.span, key), message)
    }

    /// What is wrong about `key` that the entry lacks or cannot pin to one line: at the
    /// entry's first line.
    fn missing(&self, key: &str, message: String) -> ConfigError {
        self.error(key, line_at(&self.file.text, self.span.start), message)
    }
}

/// A storage entry's connection settings, checked.
fn settings(e: &StorageEntry, at: &Entry<'_>) -> Result<S3Settings, ConfigError> {
    let provider = match &e.provider {
        Some(p) => p
            .parse::<Provider>()
            .map_err(|err| at.key("provider", err.to_string()))?,
        None => Provider::Custom,
    };
    let checksum = match &e.checksum {
        Some(c) => Some(
            c.parse::<crate::s3::BodyChecksum>()
                .map_err(|err| at.key("checksum", err))?,
        ),
        None => None,
    };
    let settings = S3Settings {
        provider,
        endpoint: e.endpoint.clone(),
        region: e.region.clone(),
        addressing: e.path_style.map(|p| {
            if p {
                Addressing::Path
            } else {
                Addressing::VirtualHost
            }
        }),
        checksum,
    };
    let resolved = settings
        .resolve()
        .map_err(|err| at.key("endpoint", err.to_string()))?;
    if resolved.discover_region {
        // Team users' buckets are fixed: say their region rather than look it up per login.
        return Err(at.missing(
            "region",
            "give the buckets' region (e.g. region = \"eu-west-1\")".into(),
        ));
    }
    Ok(settings)
}

/// A user entry's bucket (as the login parser reads it), home folder and rights, checked.
fn user_fields(e: &UserEntry, at: &Entry<'_>) -> Result<(String, BucketPath, Rights), ConfigError> {
    let bucket = crate::ftp::auth::parse_login(&format!("user/{}", e.bucket))
        .map_err(|err| at.key("bucket", err.to_string()))?
        .bucket;
    let home = home_path(&e.home).map_err(|err| at.key("home", err.to_string()))?;
    let rights = Rights::parse(&e.permissions, e.delete)
        .map_err(|err| at.key("permissions", err.to_string()))?;
    Ok((bucket, home, rights))
}

/// A `home` value as a folder: `team/alice/`, `/team/alice`, or empty for the whole bucket.
/// `..` is refused rather than resolved, so a typo cannot widen a home. Pure.
fn home_path(home: &str) -> Result<BucketPath, HomeError> {
    if home.split(['/', '\\']).any(|s| s == "..") {
        return Err(HomeError::DotDot);
    }
    Ok(BucketPath::parse_str(home)?)
}

/// Why a user's `home` is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
enum HomeError {
    /// A `..` segment.
    #[error("must not contain `..`")]
    DotDot,
    /// Not a path a bucket key can start with.
    #[error(transparent)]
    Path(#[from] crate::path::PathError),
}

/// The 1-based line holding byte `offset` of `text`. Pure.
fn line_at(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    text.as_bytes()[..end]
        .iter()
        .filter(|b| **b == b'\n')
        .count()
        + 1
}

/// The line of `key = …` (or `"key" = …`) in the table that starts at `span` (up to the next
/// table header), or the table's first line. Pure.
fn line_of_key(text: &str, span: &Range<usize>, key: &str) -> usize {
    let start = span.start.min(text.len());
    let quoted = format!("\"{key}\"");
    let mut offset = start;
    for (i, line) in text
        .get(start..)
        .unwrap_or_default()
        .split_inclusive('\n')
        .enumerate()
    {
        let t = line.trim_start();
        if i > 0 && t.starts_with('[') {
            break;
        }
        let rest = t
            .strip_prefix(quoted.as_str())
            .or_else(|| t.strip_prefix(key));
        if rest.is_some_and(|r| r.trim_start().starts_with('=')) {
            return line_at(text, offset);
        }
        offset += line.len();
    }
    line_at(text, start)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$bwUOpynb/gzxe7Wvx6g3Eg$/2NrHYFkG8sxVeyseO4WM4SSh/u8zkLDvRFQkI4lRrA";

    fn sample() -> String {
        format!(
            r#"# a team server
[server]
listen = "0.0.0.0:2121"
allow_remote = true
passive_ports = "60000-60100"
idle_timeout = 900
no_tls = false
max_file_size = "20GiB"

[[storage]]
name = "main"
provider = "cos"
region = "ap-guangzhou"
access_key_id = "AKIDEXAMPLE"
secret_access_key_env = "MAIN_SECRET"

[[storage]]
name = "lab"
endpoint = "http://127.0.0.1:3900"
region = "garage"
path_style = true
access_key_id = "GKlab"
secret_access_key = "inline-secret"

[[user]]
name = "alice"
password_hash = "{HASH}"
storage = "main"
bucket = "examplebucket-1250000000"
home = "team/alice/"
permissions = "rw"
delete = true

[[user]]
name = "bob"
password_hash = "{HASH}"
storage = "lab"
bucket = "shared"
permissions = "r"
"#
        )
    }

    fn parse(text: &str) -> Result<ConfigFile, ConfigError> {
        ConfigFile::parse(Path::new("team.toml"), text.to_owned())
    }

    #[test]
    fn server_keys_become_flags() {
        let f = parse(&sample()).unwrap();
        let opts = f.server_options().unwrap();
        let flat: Vec<(String, usize, Vec<String>)> = opts
            .iter()
            .map(|o| (o.key.clone(), o.line, strings(&o.args)))
            .collect();
        let want = |k: &str, line: usize, args: &[&str]| {
            (
                k.to_owned(),
                line,
                args.iter().map(|a| (*a).to_owned()).collect::<Vec<_>>(),
            )
        };
        assert_eq!(
            flat,
            vec![
                want("listen", 3, &["--listen", "0.0.0.0:2121"]),
                want("allow_remote", 4, &["--allow-remote"]),
                want("passive_ports", 5, &["--passive-ports", "60000-60100"]),
                want("idle_timeout", 6, &["--idle-timeout", "900"]),
                want("no_tls", 7, &[]),
                want("max_file_size", 8, &["--max-file-size", "20GiB"]),
            ]
        );
        let e = f.server_error(&opts[3], "bad".into());
        assert_eq!(e.to_string(), "team.toml:6: [server] idle_timeout: bad");
    }

    /// Arguments as text.
    fn strings(args: &[OsString]) -> Vec<String> {
        args.iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect()
    }

    /// Each option's arguments, as text.
    fn args_of(opts: &[ServerOption]) -> Vec<Vec<String>> {
        opts.iter().map(|o| strings(&o.args)).collect()
    }

    #[test]
    fn lists_are_one_comma_separated_value() {
        let text = "[server]\nproxy_protocol = true\nproxy_protocol_from = [\"10.0.0.0/8\", \"192.0.2.1\"]\n";
        let opts = parse(text).unwrap().server_options().unwrap();
        let args = args_of(&opts);
        assert_eq!(
            args,
            vec![
                vec!["--proxy-protocol".to_owned()],
                vec![
                    "--proxy-protocol-from".to_owned(),
                    "10.0.0.0/8,192.0.2.1".to_owned()
                ]
            ]
        );
        let bad = "[server]\nproxy_protocol_from = [1, 2]\n";
        let refused = parse(bad).map(|f| f.server_options().is_err());
        assert!(
            !matches!(refused, Ok(false)),
            "a list of numbers is refused"
        );
    }

    #[test]
    fn require_tls_false_is_said() {
        let text = "[server]\nrequire_tls = false\nread_only = false\nno_delete = true\nrequire_tls_session_reuse = false\n";
        let opts = parse(text).unwrap().server_options().unwrap();
        let args = args_of(&opts);
        assert_eq!(
            args,
            vec![
                vec!["--require-tls=false".to_owned()],
                vec![],
                vec!["--no-delete".to_owned()],
                vec!["--require-tls-session-reuse=false".to_owned()]
            ]
        );
        assert_eq!(opts[0].check, opts[0].args);
        assert_eq!(opts[1].check, vec![OsString::from("--read-only")]);
    }

    #[test]
    fn users_and_storages_resolve() {
        let f = parse(&sample()).unwrap();
        let env = |v: &str| (v == "MAIN_SECRET").then(|| "from-env".to_owned());
        let dir = f.directory(false, &env).unwrap();
        assert_eq!(dir.len(), 2);
        let alice = dir.user("alice").unwrap();
        assert_eq!(alice.storage.secret.expose(), "from-env");
        assert_eq!(alice.storage.settings.provider, Provider::Cos);
        assert_eq!(alice.home.prefix(), "team/alice/");
        assert_eq!(alice.rights, Rights::parse("rw", true).unwrap());
        let bob = dir.user("bob").unwrap();
        assert_eq!(bob.storage.secret.expose(), "inline-secret");
        assert!(bob.home.is_root());
        assert!(!bob.rights.write && !bob.rights.delete);
        assert!(dir.user("carol").is_none());
        // The secret never shows in Debug output.
        assert!(!format!("{dir:?}").contains("inline-secret"));
        // A missing environment variable is named with its line.
        let e = f.directory(false, &|_| None).unwrap_err();
        assert_eq!(e.line, Some(15), "{e}");
        assert!(e.to_string().contains("MAIN_SECRET is not set"), "{e}");
        assert_eq!(
            f.first_storage_settings().map(|s| s.provider),
            Some(Provider::Cos)
        );
    }

    #[test]
    fn secret_files_are_read() {
        let dir = std::env::temp_dir().join(format!("bucketftp-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let secret = dir.join("secret");
        std::fs::write(&secret, "from-file\n").unwrap();
        let text = sample().replace(
            "secret_access_key_env = \"MAIN_SECRET\"",
            &format!(
                "secret_access_key_file = {:?}",
                secret.display().to_string()
            ),
        );
        let d = parse(&text).unwrap().directory(false, &|_| None).unwrap();
        assert_eq!(
            d.user("alice").unwrap().storage.secret.expose(),
            "from-file"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// Each broken variant of the sample fails at the right line and key.
    #[test]
    fn mistakes_name_line_and_key() {
        let cases: Vec<(String, usize, &str, &str)> = vec![
            (
                sample().replacen(
                    &format!("password_hash = \"{HASH}\""),
                    "password = \"hunter2\"",
                    1,
                ),
                27,
                "[[user]] \"alice\" password",
                "plain-text passwords are refused",
            ),
            (
                sample().replacen(HASH, "hunter2", 1),
                27,
                "[[user]] \"alice\" password_hash",
                "not an argon2 hash",
            ),
            (
                sample().replacen("storage = \"lab\"", "storage = \"lib\"", 1),
                37,
                "[[user]] \"bob\" storage",
                "no [[storage]] is named \"lib\"",
            ),
            (
                sample().replacen("name = \"bob\"", "name = \"alice\"", 1),
                35,
                "[[user]] \"alice\" name",
                "already defined",
            ),
            (
                sample().replacen("permissions = \"r\"", "permissions = \"rx\"", 1),
                39,
                "[[user]] \"bob\" permissions",
                "\"r\", \"w\" or \"rw\"",
            ),
            (
                sample().replacen("home = \"team/alice/\"", "home = \"team/../bob\"", 1),
                30,
                "[[user]] \"alice\" home",
                "must not contain `..`",
            ),
            (
                sample().replacen("bucket = \"shared\"", "bucket = \"Shared\"", 1),
                38,
                "[[user]] \"bob\" bucket",
                "not a valid bucket name",
            ),
            (
                sample().replacen("provider = \"cos\"", "provider = \"coss\"", 1),
                12,
                "[[storage]] \"main\" provider",
                "coss",
            ),
            (
                sample().replacen("secret_access_key = \"inline-secret\"", "", 1),
                17,
                "[[storage]] \"lab\" secret_access_key",
                "exactly one of",
            ),
            (
                sample().replacen("name = \"alice\"", "name = \"team/alice\"", 1),
                26,
                "[[user]] \"team/alice\" name",
                "without `/`",
            ),
            (
                sample().replacen(
                    "provider = \"cos\"\nregion = \"ap-guangzhou\"",
                    "provider = \"aws\"",
                    1,
                ),
                10,
                "[[storage]] \"main\" region",
                "give the buckets' region",
            ),
            (
                sample().replacen("[server]\n", "[server]\ntags = [1, 2]\n", 1),
                3,
                "[server] tags",
                "expected a string",
            ),
        ];
        for (text, line, key, words) in cases {
            let e = parse(&text).unwrap_err();
            assert_eq!((e.line, e.key.as_deref()), (Some(line), Some(key)), "{e}");
            assert!(e.message.contains(words), "{e}");
            assert!(
                e.to_string()
                    .starts_with(&format!("team.toml:{line}: {key}: ")),
                "{e}"
            );
        }
    }

    #[test]
    fn syntax_and_unknown_keys() {
        let e = parse("[server]\nlisten = \"a\"\nx = [\n").unwrap_err();
        assert_eq!(e.line, Some(3), "{e}");
        let e = parse(&sample().replacen("delete = true", "delete_enable = true", 1)).unwrap_err();
        assert!(e.message.contains("delete_enable"), "{e}");
        assert!(e.line.is_some(), "{e}");
        let e = parse("[sever]\nlisten = \"x\"\n").unwrap_err();
        assert!(e.message.contains("sever"), "{e}");
        assert!(parse("").unwrap().server_options().unwrap().is_empty());
    }

    #[test]
    fn line_helpers() {
        let t = "a = 1\n[t]\n  b = 2\n\"c\" = 3\n[u]\nb = 4\n";
        assert_eq!(line_at(t, 0), 1);
        assert_eq!(line_at(t, 6), 2);
        assert_eq!(line_of_key(t, &(6..7), "b"), 3);
        assert_eq!(line_of_key(t, &(6..7), "c"), 4);
        // Stops at the next table.
        assert_eq!(line_of_key(t, &(6..7), "zz"), 2);
        assert_eq!(home_path("/team/alice").unwrap().prefix(), "team/alice/");
        assert!(home_path("").unwrap().is_root());
        assert_eq!(home_path("team/../x"), Err(HomeError::DotDot));
        assert!(matches!(home_path("a\0b"), Err(HomeError::Path(_))));
    }
}
