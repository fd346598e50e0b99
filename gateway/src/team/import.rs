//! Converts the configuration of two other FTP servers for object storage into the text of a
//! BucketFTP server config (TOML):
//! - Tencent's COS FTP Server (`conf/vsftpd.conf`, an INI file read by Python's
//!   `ConfigParser`): [`import_cos`];
//! - QingStor's qsftpd (`qsftpd.yaml`): [`import_qsftpd`].
//!
//! Pure: the caller reads the file, passes the password hasher and prints the result. Every
//! key of the source becomes either a setting or a `#` comment saying why it has none, so
//! nothing is dropped silently. The output is deterministic (no dates, source order).
//! Passwords and secret keys are never quoted in comments nor in the errors this module
//! words itself (a YAML syntax error is the parser's own message).
//!
//! What each source key meant was read from the two servers' own code:
//! - COS FTP Server listens on every interface; `passive_port = A,B` is a range; a
//!   `masquerade_address` that is not an IPv4 address is ignored; `authority` grants read for
//!   `R` and write for `W`; deleting needs write and `delete_enable` (default true); the FTP
//!   root is the bucket's root (`home_dir` is a local folder that only tells accounts apart);
//!   `max_connection_num` counts control and data sockets, so (N − 1) / 2 clients fit.
//! - qsftpd reads scalars into strings as written (`0123` stays `0123`); listens on
//!   `listen_host` (default all interfaces) and `listen_port` (0 → 21, −1 → any free port);
//!   announces `public_host` (default 127.0.0.1) in passive replies; with no `users` it lets
//!   `anonymous` in with any password; every user may read, write and delete.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, Visitor};

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

/// Converts a COS FTP Server `conf/vsftpd.conf` into a BucketFTP server config (TOML text).
///
/// Each `[COS_ACCOUNT_n]` becomes one `[[storage]]` named after the section
/// (`cos-account-0`) and one `[[user]]` whose password `hash` turns into a PHC string.
pub fn import_cos(
    text: &str,
    hash: &mut dyn FnMut(&str) -> Result<String, String>,
) -> Result<String, ImportError> {
    let ini = parse_ini(text)?;
    let mut accounts = Vec::new();
    let (mut network, mut file_option, mut optional) = (None, None, None);
    let mut others = Vec::new();
    for section in &ini {
        match section.name.as_str() {
            n if n.starts_with("COS_ACCOUNT") => accounts.push(section),
            "NETWORK" => network = Some(section),
            "FILE_OPTION" => file_option = Some(section),
            "OPTIONAL" => optional = Some(section),
            "DEFAULT" => {
                return Err(ImportError::Unsupported {
                    place: format!("line {} [DEFAULT]", section.line),
                    reason: "values inherited by every section are not converted: copy them \
                             into the sections that use them"
                        .into(),
                });
            }
            _ => others.push(section),
        }
    }
    if accounts.is_empty() {
        return Err(ImportError::NoAccount);
    }

    let mut out = Toml::default();
    out.comment(
        "BucketFTP server config converted from a Tencent COS FTP Server config \
         (conf/vsftpd.conf).\n\
         Every source key is either a setting below or a comment saying why it has none. \
         Review it before use.",
    );
    out.table("[server]");
    let mut notes = Vec::new();
    cos_network(&mut out, network, &mut notes)?;
    cos_file_option(&mut out, file_option, &mut notes)?;
    cos_optional(&mut out, optional, &mut notes)?;
    for section in others {
        notes.push(format!(
            "[{}] (line {}): COS FTP Server reads no such section; not converted.",
            section.name, section.line
        ));
    }
    out.notes(&notes);

    let mut names = Names::default();
    let mut users: HashMap<String, usize> = HashMap::new();
    let mut homes: HashMap<String, String> = HashMap::new();
    for section in accounts {
        cos_account(&mut out, section, &mut names, &mut users, &mut homes, hash)?;
    }
    Ok(out.text)
}

/// Converts a qsftpd `qsftpd.yaml` into a BucketFTP server config (TOML text).
///
/// The bucket becomes one `[[storage]]` named `qingstor`; each user with a password becomes
/// a `[[user]]` with read, write and delete on the whole bucket, as qsftpd allowed.
pub fn import_qsftpd(
    text: &str,
    hash: &mut dyn FnMut(&str) -> Result<String, String>,
) -> Result<String, ImportError> {
    let yaml_error = |e: serde_yaml_ng::Error| ImportError::Yaml(e.to_string());
    let tree: serde_yaml_ng::Value = serde_yaml_ng::from_str(text).map_err(yaml_error)?;
    let serde_yaml_ng::Value::Mapping(top) = &tree else {
        return Err(ImportError::Yaml(
            "the document is not a mapping of settings".into(),
        ));
    };
    let mut config: QsConfig = serde_yaml_ng::from_str(text).map_err(yaml_error)?;
    let service = config.qingstor.take().unwrap_or_default();
    let file = "qsftpd config";
    let required = |value: &Option<Text>, key: &str| match value {
        Some(t) if !t.0.trim().is_empty() => Ok(t.0.trim().to_owned()),
        _ => Err(ImportError::Missing {
            place: file.into(),
            key: key.into(),
        }),
    };
    let bucket = required(&config.bucket_name, "bucket_name")?;
    let access_key_id = required(&service.access_key_id, "qingstor.access_key_id")?;
    let secret = match &service.secret_access_key {
        Some(t) if !t.0.is_empty() => t.0.clone(),
        _ => {
            return Err(ImportError::Missing {
                place: file.into(),
                key: "qingstor.secret_access_key".into(),
            });
        }
    };
    let zone = set(&config.zone).ok_or(ImportError::NoZone)?;

    let mut out = Toml::default();
    out.comment(
        "BucketFTP server config converted from a qsftpd (QingStor FTP server) config \
         (qsftpd.yaml).\n\
         Every source key is either a setting below or a comment saying why it has none. \
         Review it before use.",
    );
    out.table("[server]");
    let mut notes = Vec::new();
    qs_server(&mut out, &config, &mut notes)?;
    if set(&config.cache_path).is_some() {
        notes.push(
            "cache_path: not converted: BucketFTP streams uploads to the bucket and keeps no \
             cache folder."
                .into(),
        );
    }
    for key in unknown_keys(top, QS_KEYS) {
        notes.push(format!("{key}: qsftpd reads no such key; not converted."));
    }
    out.notes(&notes);

    out.table("[[storage]]");
    out.string("name", "qingstor");
    out.string("provider", "qingstor");
    out.string("region", &zone);
    qs_endpoint(&mut out, &service, &zone)?;
    out.string("access_key_id", &access_key_id);
    secret_comment(&mut out, "qsftpd.yaml", "QINGSTOR_SECRET_ACCESS_KEY");
    out.string("secret_access_key", &secret);
    let mut notes = Vec::new();
    if set(&service.log_level).is_some() {
        notes.push(
            "qingstor.log_level: not converted: BucketFTP logs storage errors at the \
             [server] log_level."
                .into(),
        );
    }
    if let Some(serde_yaml_ng::Value::Mapping(qs)) = top.get("qingstor") {
        for key in unknown_keys(qs, QS_SERVICE_KEYS) {
            notes.push(format!(
                "qingstor.{key}: qsftpd reads no such key; not converted."
            ));
        }
    }
    out.notes(&notes);

    // Users: the ones that cannot be converted are said first, then a table for each other.
    let mut notes = Vec::new();
    let mut accepted: Vec<(&str, String)> = Vec::new();
    let mut seen = HashSet::new();
    match &config.users {
        None => notes.push(
            "users: not set, so qsftpd let `anonymous` log in with any password. BucketFTP \
             has no anonymous login: add a [[user]] table for each person."
                .into(),
        ),
        Some(Users(users)) => {
            for (name, password) in users {
                let password = password.as_ref().map_or("", |t| t.0.as_str());
                if name == "anonymous" {
                    notes.push(
                        "users: anonymous: qsftpd let anyone log in as `anonymous` with any \
                         password. BucketFTP has no anonymous login; not converted."
                            .into(),
                    );
                    continue;
                }
                if name.trim().is_empty() || password.is_empty() {
                    let missing = if password.is_empty() {
                        "no password"
                    } else {
                        "no name"
                    };
                    notes.push(format!(
                        "users: {name:?}: {missing}; BucketFTP needs a name and a password, so \
                         no [[user]] was written for it."
                    ));
                    continue;
                }
                if !seen.insert(name.as_str()) {
                    return Err(ImportError::Unsupported {
                        place: "qsftpd config".into(),
                        reason: format!("user {name:?} appears twice in `users`"),
                    });
                }
                let password_hash = hash(password).map_err(|message| ImportError::Hash {
                    user: name.clone(),
                    message,
                })?;
                accepted.push((name, password_hash));
            }
        }
    }
    if accepted.is_empty() {
        notes.push(
            "No [[user]] was written: add one (name, password_hash, storage = \"qingstor\", \
             bucket, permissions) before starting the server."
                .into(),
        );
    }
    out.notes(&notes);
    for (name, password_hash) in accepted {
        out.table("[[user]]");
        out.string("name", name);
        out.string("password_hash", &password_hash);
        out.string("storage", "qingstor");
        out.string("bucket", &bucket);
        out.string("permissions", "rw");
        out.boolean("delete", true);
    }
    Ok(out.text)
}

// ---------------------------------------------------------------------------------------
// COS FTP Server

/// Keys of `[NETWORK]` that COS FTP Server reads.
const NETWORK_KEYS: &[&str] = &["listen_port", "passive_port", "masquerade_address"];

fn cos_network(
    out: &mut Toml,
    section: Option<&Section>,
    notes: &mut Vec<String>,
) -> Result<(), ImportError> {
    let port = match section.and_then(|s| s.value("listen_port")) {
        Some(e) => parse_port(e, section_name(section, "NETWORK"), "listen_port")?,
        None => {
            out.comment(
                "[NETWORK] listen_port is not set: COS FTP Server's documented default, 2121.",
            );
            2121
        }
    };
    out.comment("COS FTP Server listened on every interface.");
    out.string("listen", &format!("0.0.0.0:{port}"));
    out.boolean("allow_remote", true);

    if let Some(e) = section.and_then(|s| s.value("passive_port")) {
        let place = place(e, "NETWORK");
        let invalid = || ImportError::Invalid {
            place: place.clone(),
            key: "passive_port".into(),
            value: e.value.clone(),
            reason: "expected a port range like 60000,65535".into(),
        };
        let mut parts = e.value.split(',').map(str::trim);
        let first = parts.next().and_then(|p| p.parse::<u16>().ok());
        let last = match parts.next() {
            Some(p) => p.parse::<u16>().ok(),
            // One port: COS FTP Server took it up to 65535.
            None => Some(65535),
        };
        match (first, last, parts.next()) {
            (Some(a), Some(b), None) if a > 0 && a <= b => {
                out.string("passive_ports", &format!("{a}-{b}"));
            }
            _ => return Err(invalid()),
        }
    } else {
        out.comment("[NETWORK] passive_port is not set: BucketFTP's default range applies.");
    }

    if let Some(e) = section.and_then(|s| s.value("masquerade_address")) {
        if e.value.parse::<Ipv4Addr>().is_ok() {
            out.string("masquerade", &e.value);
        } else {
            out.comment(&format!(
                "[NETWORK] masquerade_address = {:?}: COS FTP Server ignored it (it takes only \
                 IPv4 addresses). BucketFTP also takes a host name; uncomment to use it:",
                e.value,
            ));
            out.commented("masquerade", &e.value);
        }
    }
    if let Some(s) = section {
        unknown_entries(s, NETWORK_KEYS, notes);
    }
    Ok(())
}

fn cos_file_option(
    out: &mut Toml,
    section: Option<&Section>,
    notes: &mut Vec<String>,
) -> Result<(), ImportError> {
    let Some(section) = section else {
        return Ok(());
    };
    if let Some(e) = section.value("single_file_max_size") {
        let bytes = e
            .value
            .parse::<u64>()
            .ok()
            .filter(|&n| n > 0)
            .ok_or_else(|| ImportError::Invalid {
                place: place(e, "FILE_OPTION"),
                key: e.key.clone(),
                value: e.value.clone(),
                reason: "expected a positive number of bytes".into(),
            })?;
        out.string("max_file_size", &format_size(bytes));
    }
    unknown_entries(section, &["single_file_max_size"], notes);
    Ok(())
}

/// Keys of `[OPTIONAL]` that COS FTP Server reads.
const OPTIONAL_KEYS: &[&str] = &[
    "config_check_enable",
    "min_part_size",
    "upload_thread_num",
    "max_connection_num",
    "max_list_file",
    "log_level",
    "log_dir",
    "log_rotate_enabled",
    "log_rotate_when",
    "log_backup_count",
];

fn cos_optional(
    out: &mut Toml,
    section: Option<&Section>,
    notes: &mut Vec<String>,
) -> Result<(), ImportError> {
    let Some(section) = section else {
        return Ok(());
    };
    for e in section.entries.iter().filter(|e| !e.value.is_empty()) {
        let v = e.value.as_str();
        match e.key.as_str() {
            "min_part_size" => match v.parse::<u64>() {
                Ok(n) if (5 * MIB..=5 * GIB).contains(&n) => {
                    out.string("part_size", &format_size(n));
                }
                Ok(n) if n > 0 && n < 5 * MIB => notes.push(format!(
                    "min_part_size = {v}: below 5 MiB, the smallest part S3 takes; BucketFTP's \
                     default part size applies."
                )),
                _ => notes.push(format!(
                    "min_part_size = {v:?}: COS FTP Server's default; BucketFTP's own default \
                     part size applies."
                )),
            },
            "max_connection_num" => match v.parse::<u64>() {
                Ok(n) if n > 0 => {
                    let sessions = ((n - 1) / 2).max(1);
                    out.comment(&format!(
                        "[OPTIONAL] max_connection_num = {n} counted control and data \
                         connections, so (N - 1) / 2 clients fitted."
                    ));
                    out.integer("max_sessions", sessions);
                    out.comment(
                        "BucketFTP also limits the sessions from one client address \
                         (max_sessions_per_ip); raise it if many clients share one address.",
                    );
                }
                _ => notes.push(format!(
                    "max_connection_num = {v:?}: COS FTP Server ignored it (it takes a number \
                     above 0); BucketFTP's default max_sessions applies."
                )),
            },
            "log_level" => {
                let level = match v.to_ascii_lowercase().as_str() {
                    "debug" => "debug",
                    "error" => "error",
                    "info" => "info",
                    _ => {
                        out.comment(&format!(
                            "[OPTIONAL] log_level = {v:?}: COS FTP Server used INFO for this \
                             value (it knows INFO, DEBUG and ERROR)."
                        ));
                        "info"
                    }
                };
                out.string("log_level", level);
            }
            "config_check_enable" => notes.push(format!(
                "config_check_enable = {v}: not converted: it turned COS FTP Server's check at start \
                 that its worst-case memory use fits the machine on or off; BucketFTP caps \
                 upload buffers with memory_limit instead."
            )),
            "upload_thread_num" => notes.push(format!(
                "upload_thread_num = {v}: not converted: a thread pool shared by all uploads; \
                 BucketFTP bounds the parts each upload sends at once (parts_in_flight) and \
                 the buffer memory of all of them (memory_limit)."
            )),
            "max_list_file" => notes.push(format!(
                "max_list_file = {v}: not converted: BucketFTP never truncates listings."
            )),
            "log_dir" => notes.push(format!(
                "log_dir = {v:?}: not converted: BucketFTP logs to standard error (the journal \
                 when systemd runs it)."
            )),
            "log_rotate_enabled" | "log_rotate_when" | "log_backup_count" => {
                notes.push(format!(
                    "{} = {v}: not converted: BucketFTP writes no log files of its own to \
                     rotate (the journal rotates its logs).",
                    e.key
                ));
            }
            _ => {}
        }
    }
    unknown_entries(section, OPTIONAL_KEYS, notes);
    Ok(())
}

/// Keys of a `[COS_ACCOUNT_n]` that COS FTP Server reads.
const ACCOUNT_KEYS: &[&str] = &[
    "cos_secretid",
    "cos_secretkey",
    "cos_bucket",
    "cos_region",
    "cos_protocol",
    "cos_endpoint",
    "home_dir",
    "ftp_login_user_name",
    "ftp_login_user_password",
    "authority",
    "delete_enable",
];

fn cos_account(
    out: &mut Toml,
    section: &Section,
    names: &mut Names,
    users: &mut HashMap<String, usize>,
    homes: &mut HashMap<String, String>,
    hash: &mut dyn FnMut(&str) -> Result<String, String>,
) -> Result<(), ImportError> {
    let sname = section.name.as_str();
    let required = |key: &str| {
        section.value(key).ok_or_else(|| ImportError::Missing {
            place: format!("line {} [{sname}]", section.line),
            key: key.into(),
        })
    };
    let invalid = |e: &Entry, reason: &str| ImportError::Invalid {
        place: place(e, sname),
        key: e.key.clone(),
        value: e.value.clone(),
        reason: reason.into(),
    };
    let access_key_id = required("cos_secretid")?;
    let secret = required("cos_secretkey")?;
    let bucket = required("cos_bucket")?;
    if bucket.value.contains(char::is_whitespace) || bucket.value.contains('/') {
        return Err(invalid(bucket, "not a bucket name"));
    }
    let user = required("ftp_login_user_name")?;
    let authority = required("authority")?;
    let (permissions, may_write) = match authority.value.to_ascii_uppercase().as_str() {
        "RW" | "WR" => ("rw", true),
        "RO" | "R" => ("r", false),
        "WO" | "W" => ("w", true),
        _ => return Err(invalid(authority, "expected RW, RO or WO")),
    };
    let delete_enable = match section.value("delete_enable") {
        None => true,
        Some(e) => match e.value.to_ascii_lowercase().as_str() {
            "1" | "yes" | "true" | "on" => true,
            "0" | "no" | "false" | "off" => false,
            _ => return Err(invalid(e, "expected true or false")),
        },
    };
    let scheme = match section.value("cos_protocol") {
        None => "https".to_owned(),
        Some(e) => match e.value.to_ascii_lowercase().as_str() {
            s @ ("http" | "https") => s.to_owned(),
            _ => return Err(invalid(e, "expected https or http")),
        },
    };
    let endpoint = match section.value("cos_endpoint") {
        None => None,
        Some(e) => {
            let v = e.value.trim_end_matches('/');
            if v.is_empty() || v.contains(char::is_whitespace) {
                return Err(invalid(e, "not a host name"));
            }
            Some(if v.starts_with("http://") || v.starts_with("https://") {
                v.to_owned()
            } else {
                format!("{scheme}://{v}")
            })
        }
    };
    let region = match section.value("cos_region") {
        Some(e) if e.value.contains(char::is_whitespace) => {
            return Err(invalid(e, "not a region"));
        }
        Some(e) => e.value.clone(),
        None => endpoint
            .as_deref()
            .and_then(region_of_cos_endpoint)
            .ok_or_else(|| ImportError::Missing {
                place: format!("line {} [{sname}]", section.line),
                key: "cos_region".into(),
            })?,
    };
    let storage = names.take(&section.name);

    out.table("[[storage]]");
    out.comment(&format!("From [{sname}] (line {}).", section.line));
    out.string("name", &storage);
    out.string("provider", "cos");
    if section.value("cos_region").is_none() {
        out.comment("cos_region is not set: this is the region in cos_endpoint.");
    }
    out.string("region", &region);
    match &endpoint {
        Some(endpoint) => out.string("endpoint", endpoint),
        None if scheme == "http" => {
            out.comment(
                "cos_protocol = http: BucketFTP reaches COS over https unless told otherwise; \
                 to keep plain http, uncomment:",
            );
            out.commented("endpoint", &format!("http://cos.{region}.myqcloud.com"));
        }
        None => {}
    }
    out.string("access_key_id", &access_key_id.value);
    secret_comment(
        out,
        "vsftpd.conf",
        &format!(
            "{}_SECRET_KEY",
            storage.replace('-', "_").to_ascii_uppercase()
        ),
    );
    out.string("secret_access_key", &secret.value);

    let mut notes = Vec::new();
    let password = section.value("ftp_login_user_password");
    match password {
        None => notes.push(format!(
            "ftp_login_user_password is empty: BucketFTP needs a password, so no [[user]] \
             was written for {:?}.",
            user.value
        )),
        Some(password) => {
            if let Some(first) = users.insert(user.value.clone(), user.line) {
                return Err(ImportError::Duplicate {
                    line: user.line,
                    first,
                    what: format!("ftp_login_user_name {:?}", user.value),
                });
            }
            let password_hash = hash(&password.value).map_err(|message| ImportError::Hash {
                user: user.value.clone(),
                message,
            })?;
            out.table("[[user]]");
            out.string("name", &user.value);
            if password.inline_comment {
                out.comment(
                    "The password line had text after \" ;\", which COS FTP Server read as a \
                     comment; so does this conversion.",
                );
            }
            out.string("password_hash", &password_hash);
            out.string("storage", &storage);
            let appid = bucket.value.rsplit_once('-').map(|(_, id)| id);
            if !appid.is_some_and(|id| !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit())) {
                out.comment(
                    "COS bucket names end in -APPID (examplebucket-1250000000); check this one.",
                );
            }
            out.string("bucket", &bucket.value);
            out.string("permissions", permissions);
            if delete_enable && !may_write {
                out.comment(&format!(
                    "delete_enable is true, but authority = {} gives no write access, which \
                     deleting needs.",
                    authority.value
                ));
            }
            out.boolean("delete", delete_enable && may_write);
        }
    }
    if let Some(home) = section.value("home_dir") {
        notes.push(format!(
            "home_dir = {:?}: not converted: a local folder of COS FTP Server that only told \
             accounts apart; this user sees the whole bucket, as there.",
            home.value
        ));
        let key = home.value.trim_end_matches('/').to_owned();
        if let Some(other) = homes.insert(key, sname.to_owned()) {
            notes.push(format!(
                "[{other}] has the same home_dir, so COS FTP Server used one account's bucket \
                 and keys for both users; here each user has its own account's."
            ));
        }
    }
    unknown_entries(section, ACCOUNT_KEYS, &mut notes);
    out.notes(&notes);
    Ok(())
}

/// The region in a COS endpoint like `cos.ap-guangzhou.myqcloud.com`.
fn region_of_cos_endpoint(endpoint: &str) -> Option<String> {
    let host = endpoint.split_once("://").map_or(endpoint, |(_, h)| h);
    let mut labels = host.split('.');
    let first = labels.next()?;
    let region = labels.next()?;
    (first.starts_with("cos") && labels.next().is_some() && !region.is_empty())
        .then(|| region.to_owned())
}

/// Storage names derived from section names, kept unique.
#[derive(Default)]
struct Names(Vec<String>);

impl Names {
    fn take(&mut self, section: &str) -> String {
        let base: String = section
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_lowercase()
                } else {
                    '-'
                }
            })
            .collect();
        let mut name = base.clone();
        let mut n = 2;
        while self.0.contains(&name) {
            name = format!("{base}-{n}");
            n += 1;
        }
        self.0.push(name.clone());
        name
    }
}

// ---------------------------------------------------------------------------------------
// INI, as Python's ConfigParser reads it

/// One `[section]` of the INI file.
#[derive(Debug)]
struct Section {
    name: String,
    line: usize,
    entries: Vec<Entry>,
}

/// One `key = value` line (with its continuation lines).
#[derive(Debug)]
struct Entry {
    /// Lowercase, as `ConfigParser` folds option names.
    key: String,
    /// Trimmed, inline comment removed.
    value: String,
    line: usize,
    /// Text after ` ;` was dropped as a comment.
    inline_comment: bool,
}

impl Section {
    /// The entry for `key` when its value is not empty.
    fn value(&self, key: &str) -> Option<&Entry> {
        self.entries
            .iter()
            .find(|e| e.key == key)
            .filter(|e| !e.value.is_empty())
    }
}

/// Keys whose value may contain ` #`: `ConfigParser` (Python 2) ends a value only at ` ;`,
/// and a password or secret must stay exactly what the server accepted.
const VERBATIM_KEYS: &[&str] = &["cos_secretkey", "ftp_login_user_password"];

/// Parses the INI dialect of Python's `ConfigParser`: `[section]` headers, `key = value` or
/// `key: value`, keys folded to lowercase, full-line comments starting with `#` or `;`,
/// indented lines continuing the previous value, `""` for an empty value. A value ends at
/// ` ;` (as in Python 2) and, except for passwords and secrets, at ` #` (the README's
/// examples put comments there). Duplicate sections and keys are errors.
fn parse_ini(text: &str) -> Result<Vec<Section>, ImportError> {
    let mut sections: Vec<Section> = Vec::new();
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    for (index, raw) in text.lines().enumerate() {
        let line = index + 1;
        let trimmed = raw.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') || trimmed.starts_with(';') {
            continue;
        }
        // Indented: continues the previous value (a section header still starts a section).
        if raw.starts_with(char::is_whitespace)
            && !trimmed.starts_with('[')
            && let Some(entry) = sections.last_mut().and_then(|s| s.entries.last_mut())
        {
            let more = strip_inline_comment(trimmed, &entry.key).0;
            if !more.is_empty() {
                entry.value.push('\n');
                entry.value.push_str(&more);
            }
            continue;
        }
        if let Some(rest) = trimmed.strip_prefix('[') {
            let Some((name, _)) = rest.split_once(']') else {
                return Err(ImportError::Syntax {
                    line,
                    message: "a section header without `]`".into(),
                });
            };
            if name.is_empty() {
                return Err(ImportError::Syntax {
                    line,
                    message: "a section header without a name".into(),
                });
            }
            if let Some(first) = sections.iter().find(|s| s.name == name) {
                return Err(ImportError::Duplicate {
                    line,
                    first: first.line,
                    what: format!("section [{name}]"),
                });
            }
            sections.push(Section {
                name: name.to_owned(),
                line,
                entries: Vec::new(),
            });
            continue;
        }
        let Some(at) = trimmed.find(['=', ':']) else {
            return Err(ImportError::Syntax {
                line,
                message: "expected `[section]`, `key = value` or a comment".into(),
            });
        };
        let key = trimmed[..at].trim().to_lowercase();
        if key.is_empty() {
            return Err(ImportError::Syntax {
                line,
                message: "a value without a key".into(),
            });
        }
        let Some(section) = sections.last_mut() else {
            return Err(ImportError::Syntax {
                line,
                message: format!("`{key}` comes before any [section]"),
            });
        };
        if let Some(first) = section.entries.iter().find(|e| e.key == key) {
            return Err(ImportError::Duplicate {
                line,
                first: first.line,
                what: format!("[{}] `{key}`", section.name),
            });
        }
        let (mut value, inline_comment) = strip_inline_comment(trimmed[at + 1..].trim(), &key);
        if value == "\"\"" {
            value.clear();
        }
        section.entries.push(Entry {
            key,
            value,
            line,
            inline_comment,
        });
    }
    Ok(sections)
}

/// Cuts `value` at an inline comment: ` ;`, and ` #` unless `key` is verbatim. A value
/// that starts with `#` or `;` is all comment, except for verbatim keys.
fn strip_inline_comment(value: &str, key: &str) -> (String, bool) {
    let verbatim = VERBATIM_KEYS.contains(&key);
    let is_mark = |c: char| c == ';' || (c == '#' && !verbatim);
    if !verbatim && value.starts_with(is_mark) {
        return (String::new(), true);
    }
    let mut prev_space = false;
    for (i, c) in value.char_indices() {
        if prev_space && is_mark(c) {
            return (value[..i].trim_end().to_owned(), true);
        }
        prev_space = c.is_whitespace();
    }
    (value.to_owned(), false)
}

fn section_name<'a>(section: Option<&'a Section>, default: &'a str) -> &'a str {
    section.map_or(default, |s| s.name.as_str())
}

fn place(e: &Entry, section: &str) -> String {
    format!("line {} [{section}]", e.line)
}

fn parse_port(e: &Entry, section: &str, key: &str) -> Result<u16, ImportError> {
    e.value
        .parse::<u16>()
        .ok()
        .filter(|&p| p > 0)
        .ok_or_else(|| ImportError::Invalid {
            place: place(e, section),
            key: key.into(),
            value: e.value.clone(),
            reason: "expected a port from 1 to 65535".into(),
        })
}

/// Comments for the keys of `section` that the source server does not read.
fn unknown_entries(section: &Section, known: &[&str], notes: &mut Vec<String>) {
    for e in &section.entries {
        if !known.contains(&e.key.as_str()) {
            notes.push(format!(
                "[{}] {} (line {}): COS FTP Server reads no such key; not converted.",
                section.name, e.key, e.line
            ));
        }
    }
}

// ---------------------------------------------------------------------------------------
// qsftpd

/// Top-level keys qsftpd reads.
const QS_KEYS: &[&str] = &[
    "qingstor",
    "listen_host",
    "listen_port",
    "public_host",
    "start_port",
    "end_port",
    "max_connections",
    "bucket_name",
    "log_level",
    "zone",
    "cache_path",
    "users",
];

/// Keys of `qingstor:` qsftpd reads.
const QS_SERVICE_KEYS: &[&str] = &[
    "access_key_id",
    "secret_access_key",
    "host",
    "port",
    "protocol",
    "log_level",
];

/// `qsftpd.yaml`, every scalar as written.
#[derive(Debug, Default, Deserialize)]
struct QsConfig {
    qingstor: Option<QsService>,
    listen_host: Option<Text>,
    listen_port: Option<Text>,
    public_host: Option<Text>,
    start_port: Option<Text>,
    end_port: Option<Text>,
    max_connections: Option<Text>,
    bucket_name: Option<Text>,
    log_level: Option<Text>,
    zone: Option<Text>,
    cache_path: Option<Text>,
    users: Option<Users>,
}

/// The `qingstor:` block.
#[derive(Debug, Default, Deserialize)]
struct QsService {
    access_key_id: Option<Text>,
    secret_access_key: Option<Text>,
    host: Option<Text>,
    port: Option<Text>,
    protocol: Option<Text>,
    log_level: Option<Text>,
}

/// A scalar's text as written (`0123` stays `0123`), as Go's yaml.v2 fills a string field.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Text(String);

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Text;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a single value")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Text, E> {
                Ok(Text(v.to_owned()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Text, E> {
                Ok(Text(v.to_string()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Text, E> {
                Ok(Text(v.to_string()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Text, E> {
                Ok(Text(v.to_string()))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Text, E> {
                Ok(Text(v.to_string()))
            }
        }
        d.deserialize_str(V)
    }
}

/// `users:`: name → password, in file order.
#[derive(Debug, Default)]
struct Users(Vec<(String, Option<Text>)>);

impl<'de> Deserialize<'de> for Users {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Users;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a mapping of user name to password")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Users, A::Error> {
                let mut users = Vec::new();
                while let Some((name, password)) = map.next_entry::<Text, Option<Text>>()? {
                    users.push((name.0, password));
                }
                Ok(Users(users))
            }
        }
        d.deserialize_map(V)
    }
}

/// The trimmed value when it is set and not empty.
fn set(value: &Option<Text>) -> Option<String> {
    value
        .as_ref()
        .map(|t| t.0.trim().to_owned())
        .filter(|t| !t.is_empty())
}

fn qs_int(value: &Option<Text>, key: &str) -> Result<Option<i64>, ImportError> {
    set(value)
        .map(|v| {
            v.parse::<i64>().map_err(|_| ImportError::Invalid {
                place: "qsftpd config".into(),
                key: key.into(),
                value: v.clone(),
                reason: "expected a whole number".into(),
            })
        })
        .transpose()
}

fn qs_port(value: Option<i64>, key: &str) -> Result<u16, ImportError> {
    let v = value.unwrap_or_default();
    u16::try_from(v)
        .ok()
        .filter(|&p| p > 0)
        .ok_or_else(|| ImportError::Invalid {
            place: "qsftpd config".into(),
            key: key.into(),
            value: v.to_string(),
            reason: "expected a port from 1 to 65535".into(),
        })
}

fn qs_server(
    out: &mut Toml,
    config: &QsConfig,
    notes: &mut Vec<String>,
) -> Result<(), ImportError> {
    // Listen address: qsftpd's defaults are all interfaces and port 21; -1 means any port.
    let port = match qs_int(&config.listen_port, "listen_port")? {
        None | Some(0) => 21,
        Some(-1) => {
            out.comment("listen_port = -1: the system picked a free port at each start.");
            0
        }
        p => qs_port(p, "listen_port")?,
    };
    let host = set(&config.listen_host).unwrap_or_else(|| "0.0.0.0".into());
    let ip = if host.eq_ignore_ascii_case("localhost") {
        IpAddr::V4(Ipv4Addr::LOCALHOST)
    } else if let Ok(ip) = host.parse::<IpAddr>() {
        ip
    } else {
        out.comment(&format!(
            "listen_host = {host:?}: BucketFTP listens on an address, not a name; this listens \
             on every interface."
        ));
        IpAddr::V4(Ipv4Addr::UNSPECIFIED)
    };
    if (1..1024).contains(&port) {
        out.comment(&format!(
            "Port {port} needs root or the CAP_NET_BIND_SERVICE capability."
        ));
    }
    out.string("listen", &SocketAddr::new(ip, port).to_string());
    if !ip.is_loopback() {
        out.boolean("allow_remote", true);
    }

    // Passive ports: qsftpd's defaults were 1024 and 65535.
    let start = qs_int(&config.start_port, "start_port")?.filter(|&p| p != 0);
    let end = qs_int(&config.end_port, "end_port")?.filter(|&p| p != 0);
    if start.is_some() || end.is_some() {
        let a = qs_port(start.or(Some(1024)), "start_port")?;
        let b = qs_port(end.or(Some(65535)), "end_port")?;
        if a > b {
            return Err(ImportError::Invalid {
                place: "qsftpd config".into(),
                key: "start_port".into(),
                value: a.to_string(),
                reason: format!("is above end_port ({b})"),
            });
        }
        out.string("passive_ports", &format!("{a}-{b}"));
    }

    // The address passive replies announce: qsftpd's default 127.0.0.1 only worked locally.
    if let Some(public) = set(&config.public_host) {
        match public.parse::<IpAddr>() {
            Ok(IpAddr::V4(v4)) if !v4.is_loopback() && !v4.is_unspecified() => {
                out.string("masquerade", &v4.to_string());
            }
            Ok(IpAddr::V4(_)) => notes.push(format!(
                "public_host = {public:?}: not converted: BucketFTP announces the address \
                 each client connected to."
            )),
            Ok(IpAddr::V6(_)) => notes.push(format!(
                "public_host = {public:?}: not converted: an IPv6 address; clients on IPv6 use \
                 EPSV, which needs none."
            )),
            Err(_) => {
                out.comment(&format!(
                    "public_host = {public:?}: qsftpd took only IP addresses here. BucketFTP \
                     also takes a host name; uncomment to use it:"
                ));
                out.commented("masquerade", &public);
            }
        }
    }

    if let Some(n) = qs_int(&config.max_connections, "max_connections")?.filter(|&n| n != 0) {
        let n = u64::try_from(n).map_err(|_| ImportError::Invalid {
            place: "qsftpd config".into(),
            key: "max_connections".into(),
            value: n.to_string(),
            reason: "expected a number above 0".into(),
        })?;
        out.comment("max_connections: qsftpd read this limit but did not enforce it.");
        out.integer("max_sessions", n);
    }

    if let Some(level) = set(&config.log_level) {
        let mapped = match level.to_ascii_lowercase().as_str() {
            "debug" => "debug",
            "info" => "info",
            "warn" | "warning" => "warn",
            "error" | "fatal" | "panic" => "error",
            _ => {
                out.comment(&format!(
                    "log_level = {level:?}: not a level BucketFTP knows; info is used."
                ));
                "info"
            }
        };
        out.string("log_level", mapped);
    }
    Ok(())
}

/// qsftpd spoke QingStor's own API at `protocol://host:port`; BucketFTP speaks the
/// S3-compatible one, which the `qingstor` provider finds at `s3.ZONE.qingstor.com`.
fn qs_endpoint(out: &mut Toml, service: &QsService, zone: &str) -> Result<(), ImportError> {
    let host = set(&service.host).unwrap_or_else(|| "qingstor.com".into());
    let protocol = set(&service.protocol)
        .unwrap_or_else(|| "https".into())
        .to_ascii_lowercase();
    let port = match qs_int(&service.port, "qingstor.port")? {
        None | Some(0) => None,
        p => Some(qs_port(p, "qingstor.port")?),
    };
    let default_port = if protocol == "http" { 80 } else { 443 };
    let port = port.filter(|&p| p != default_port);
    if host == "qingstor.com" && protocol == "https" && port.is_none() {
        return Ok(());
    }
    let port_part = port.map(|p| format!(":{p}")).unwrap_or_default();
    out.comment(&format!(
        "qingstor: host {host:?}, port {}, protocol {protocol:?} addressed QingStor's own API. \
         BucketFTP uses its S3-compatible API at s3.ZONE.HOST; check the address and \
         uncomment:",
        port.unwrap_or(default_port),
    ));
    out.commented(
        "endpoint",
        &format!("{protocol}://s3.{zone}.{host}{port_part}"),
    );
    Ok(())
}

/// Keys of `map` that are not in `known`, in file order.
fn unknown_keys(map: &serde_yaml_ng::Mapping, known: &[&str]) -> Vec<String> {
    map.keys()
        .filter_map(|k| match k {
            serde_yaml_ng::Value::String(s) if known.contains(&s.as_str()) => None,
            serde_yaml_ng::Value::String(s) => Some(s.clone()),
            other => Some(format!("{other:?}")),
        })
        .collect()
}

// ---------------------------------------------------------------------------------------
// Output

const MIB: u64 = 1024 * 1024;
const GIB: u64 = 1024 * MIB;

/// `20GiB`, `8MiB`, or the plain byte count.
fn format_size(bytes: u64) -> String {
    if bytes >= GIB && bytes.is_multiple_of(GIB) {
        format!("{}GiB", bytes / GIB)
    } else if bytes >= MIB && bytes.is_multiple_of(MIB) {
        format!("{}MiB", bytes / MIB)
    } else {
        bytes.to_string()
    }
}

/// A TOML string literal.
fn quote(value: &str) -> String {
    toml::Value::String(value.to_owned()).to_string()
}

/// The comment above a secret written in plain text.
fn secret_comment(out: &mut Toml, source: &str, env: &str) {
    out.comment(&format!(
        "{source} held this secret in plain text, and so does this file: keep it readable by \
         the server's user only, or move the secret to a file (secret_access_key_file = \
         \"/etc/bucketftp/secret\") or the environment (secret_access_key_env = \"{env}\")."
    ));
}

/// Comment lines are wrapped to this many columns.
const WIDTH: usize = 96;

/// TOML text being written.
#[derive(Default)]
struct Toml {
    text: String,
}

impl Toml {
    /// `# text`, wrapped at [`WIDTH`] columns, control characters (not allowed in TOML
    /// comments) replaced.
    fn comment(&mut self, text: &str) {
        for line in text.lines() {
            if line.chars().count() + 2 <= WIDTH {
                self.comment_line(line);
                continue;
            }
            let mut current = String::new();
            for word in line.split(' ') {
                if !current.is_empty() && current.chars().count() + word.chars().count() + 3 > WIDTH
                {
                    self.comment_line(&current);
                    current.clear();
                }
                if !current.is_empty() {
                    current.push(' ');
                }
                current.push_str(word);
            }
            self.comment_line(&current);
        }
    }

    /// `# key = "value"`: a setting the reader may uncomment, never wrapped.
    fn commented(&mut self, key: &str, value: &str) {
        self.comment_line(&format!("{key} = {}", quote(value)));
    }

    /// One `# line`; control characters, which TOML comments may not hold, become `?`.
    fn comment_line(&mut self, line: &str) {
        self.text.push('#');
        if !line.is_empty() {
            self.text.push(' ');
            self.text.extend(
                line.chars()
                    .map(|c| if c.is_control() && c != '\t' { '?' } else { c }),
            );
        }
        self.text.push('\n');
    }

    /// Comments for keys that have no counterpart.
    fn notes(&mut self, notes: &[String]) {
        for note in notes {
            self.comment(note);
        }
    }

    fn table(&mut self, header: &str) {
        if !self.text.is_empty() {
            self.text.push('\n');
        }
        self.text.push_str(header);
        self.text.push('\n');
    }

    fn string(&mut self, key: &str, value: &str) {
        self.text.push_str(&format!("{key} = {}\n", quote(value)));
    }

    fn integer(&mut self, key: &str, value: u64) {
        self.text.push_str(&format!("{key} = {value}\n"));
    }

    fn boolean(&mut self, key: &str, value: bool) {
        self.text.push_str(&format!("{key} = {value}\n"));
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const COS: &str = include_str!("../../tests/data/cos-vsftpd.conf");
    const QSFTPD: &str = include_str!("../../tests/data/qsftpd.yaml");

    /// A stand-in for argon2id that shows what it was given.
    fn fake_hash(password: &str) -> Result<String, String> {
        Ok(format!("$fake${password}"))
    }

    /// The comments of `out` as one line, so that a phrase is found wherever it wraps.
    fn says(out: &str, phrase: &str) -> bool {
        let prose: Vec<&str> = out
            .lines()
            .filter_map(|l| l.strip_prefix('#'))
            .map(str::trim)
            .collect();
        prose.join(" ").contains(phrase)
    }

    fn parse(text: &str) -> toml::Value {
        toml::from_str::<toml::Value>(text).unwrap()
    }

    fn cos(text: &str) -> Result<String, ImportError> {
        import_cos(text, &mut fake_hash)
    }

    fn qs(text: &str) -> Result<String, ImportError> {
        import_qsftpd(text, &mut fake_hash)
    }

    fn table<'a>(v: &'a toml::Value, name: &str) -> &'a toml::Table {
        v.get(name).unwrap().as_table().unwrap()
    }

    fn array<'a>(v: &'a toml::Value, name: &str) -> Vec<&'a toml::Table> {
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

    fn s<'a>(t: &'a toml::Table, key: &str) -> &'a str {
        t.get(key).unwrap().as_str().unwrap()
    }

    #[test]
    fn cos_server_settings() {
        let out = cos(COS).unwrap();
        let v = parse(&out);
        let server = table(&v, "server");
        assert_eq!(s(server, "listen"), "0.0.0.0:2121");
        assert_eq!(server["allow_remote"].as_bool(), Some(true));
        assert_eq!(s(server, "passive_ports"), "60000-60100");
        assert_eq!(s(server, "masquerade"), "203.0.113.7");
        assert_eq!(s(server, "max_file_size"), "20GiB");
        assert_eq!(server["max_sessions"].as_integer(), Some(100));
        assert_eq!(s(server, "log_level"), "debug");
        assert!(server.get("part_size").is_none());
        assert_eq!(server.len(), 7, "{server:?}");
        assert!(out.starts_with("# BucketFTP server config converted from a Tencent COS"));
    }

    #[test]
    fn cos_accounts() {
        let v = parse(&cos(COS).unwrap());
        let storage = array(&v, "storage");
        let users = array(&v, "user");
        assert_eq!((storage.len(), users.len()), (2, 2));

        assert_eq!(s(storage[0], "name"), "cos-account-0");
        assert_eq!(s(storage[0], "provider"), "cos");
        assert_eq!(s(storage[0], "region"), "ap-shanghai");
        assert!(
            storage[0].get("endpoint").is_none(),
            "a blank cos_endpoint is unset"
        );
        assert_eq!(
            s(storage[0], "access_key_id"),
            "AKIDauditorExample0000000000"
        );
        assert_eq!(
            s(storage[0], "secret_access_key"),
            "auditorSecretKeyExample00000"
        );

        assert_eq!(s(storage[1], "name"), "cos-account-1");
        assert_eq!(s(storage[1], "region"), "ap-guangzhou");
        // cos_protocol is case-insensitive; the ` #` comment is not part of the endpoint.
        assert_eq!(
            s(storage[1], "endpoint"),
            "https://cos.ap-guangzhou.tencentcos.cn"
        );
        assert_eq!(
            s(storage[1], "secret_access_key"),
            "partnerSecretKeyExample11111"
        );

        assert_eq!(s(users[0], "name"), "auditor");
        // `#` stays in a password; ` ;` starts a comment, as in ConfigParser.
        assert_eq!(s(users[0], "password_hash"), "$fake$Audit#2024");
        assert_eq!(s(users[0], "storage"), "cos-account-0");
        assert_eq!(s(users[0], "bucket"), "reports-1250000000");
        assert_eq!(s(users[0], "permissions"), "r");
        assert_eq!(users[0]["delete"].as_bool(), Some(false));
        assert!(users[0].get("home").is_none());

        assert_eq!(s(users[1], "name"), "partner");
        assert_eq!(s(users[1], "password_hash"), "$fake$two words");
        assert_eq!(s(users[1], "storage"), "cos-account-1");
        assert_eq!(s(users[1], "bucket"), "uploads-1250000000");
        assert_eq!(s(users[1], "permissions"), "rw");
        assert_eq!(users[1]["delete"].as_bool(), Some(true));
    }

    #[test]
    fn cos_unmapped_keys_become_comments() {
        let out = cos(COS).unwrap();
        for expected in [
            "home_dir = \"/srv/cosftp/auditor\": not converted",
            "home_dir = \"/srv/cosftp/partner/\": not converted",
            "max_list_file = 5000: not converted: BucketFTP never truncates listings.",
            "log_dir = \"/var/log/cosftp\": not converted: BucketFTP logs to standard error",
            "log_rotate_enabled = true: not converted",
            "log_rotate_when = D: not converted",
            "log_backup_count = 30: not converted",
            "config_check_enable = false: not converted",
            "upload_thread_num = 16: not converted",
            "min_part_size = \"default\": COS FTP Server's default",
            "[OPTIONAL] max_connection_num = 201 counted control and data connections",
            "secret_access_key_file",
            "The password line had text after \" ;\"",
        ] {
            assert!(says(&out, expected), "no {expected:?} in\n{out}");
        }
        for line in out.lines().filter(|l| l.starts_with('#')) {
            assert!(line.chars().count() <= WIDTH, "too wide: {line:?}");
        }
        // Secrets and passwords never appear in comments.
        for secret in [
            "SecretKeyExample",
            "Audit#2024",
            "two words",
            "finance team",
        ] {
            for line in out.lines().filter(|l| l.starts_with('#')) {
                assert!(!line.contains(secret), "{secret:?} in comment {line:?}");
            }
        }
    }

    #[test]
    fn cos_output_is_deterministic() {
        assert_eq!(cos(COS).unwrap(), cos(COS).unwrap());
    }

    const MINIMAL_COS: &str = "[COS_ACCOUNT_0]\n\
        cos_secretid = AKID\ncos_secretkey = KEY\ncos_bucket = b-1250000000\n\
        cos_region = ap-beijing\nhome_dir = /home/u\nftp_login_user_name = u\n\
        ftp_login_user_password = p\nauthority = WO\n\
        [NETWORK]\nlisten_port = 21\n";

    #[test]
    fn cos_defaults_and_variants() {
        let out = cos(MINIMAL_COS).unwrap();
        let v = parse(&out);
        let server = table(&v, "server");
        assert_eq!(s(server, "listen"), "0.0.0.0:21");
        assert!(server.get("passive_ports").is_none());
        let user = array(&v, "user")[0];
        assert_eq!(s(user, "permissions"), "w");
        // delete_enable defaults to true in COS FTP Server.
        assert_eq!(user["delete"].as_bool(), Some(true));

        // One passive port runs up to 65535; a host name masquerade is offered, commented.
        let text = MINIMAL_COS.replace(
            "listen_port = 21\n",
            "listen_port = 21\npassive_port = 61000\nmasquerade_address = ftp.example.com\n\
             unknown_thing = 1\n",
        );
        let out = cos(&text).unwrap();
        let server = table(&parse(&out), "server").clone();
        assert_eq!(s(&server, "passive_ports"), "61000-65535");
        assert!(server.get("masquerade").is_none());
        assert!(out.contains("# masquerade = \"ftp.example.com\""), "{out}");
        assert!(says(
            &out,
            "[NETWORK] unknown_thing (line 14): COS FTP Server reads no such key"
        ));

        // http without an endpoint: a commented suggestion; a region from the endpoint.
        let text = MINIMAL_COS.replace("cos_region = ap-beijing\n", "cos_protocol = http\n");
        assert_eq!(
            cos(&text),
            Err(ImportError::Missing {
                place: "line 1 [COS_ACCOUNT_0]".into(),
                key: "cos_region".into()
            })
        );
        let text = MINIMAL_COS.replace(
            "cos_region = ap-beijing\n",
            "cos_protocol = http\ncos_endpoint = cos.ap-nanjing.myqcloud.com\n",
        );
        let v = parse(&cos(&text).unwrap());
        let storage = array(&v, "storage")[0];
        assert_eq!(s(storage, "region"), "ap-nanjing");
        assert_eq!(s(storage, "endpoint"), "http://cos.ap-nanjing.myqcloud.com");
        let text = MINIMAL_COS.replace(
            "cos_region = ap-beijing\n",
            "cos_region = ap-beijing\ncos_protocol = http\n",
        );
        assert!(
            cos(&text)
                .unwrap()
                .contains("# endpoint = \"http://cos.ap-beijing.myqcloud.com\"")
        );

        // Read-only with delete_enable: no delete, and a comment says why.
        let text = MINIMAL_COS.replace("authority = WO", "authority = ro\ndelete_enable = yes");
        let out = cos(&text).unwrap();
        let user = array(&parse(&out), "user")[0].clone();
        assert_eq!(
            (s(&user, "permissions"), user["delete"].as_bool()),
            ("r", Some(false))
        );
        assert!(says(&out, "gives no write access"));

        // An empty password: a comment, no user.
        let text = MINIMAL_COS.replace("ftp_login_user_password = p", "ftp_login_user_password =");
        let out = cos(&text).unwrap();
        assert!(array(&parse(&out), "user").is_empty());
        assert_eq!(array(&parse(&out), "storage").len(), 1);
        assert!(says(&out, "ftp_login_user_password is empty"));
    }

    #[test]
    fn cos_values_are_quoted() {
        let text = MINIMAL_COS.replace("ftp_login_user_name = u", "ftp_login_user_name = o\"b\\i");
        let v = parse(&cos(&text).unwrap());
        assert_eq!(s(array(&v, "user")[0], "name"), "o\"b\\i");
    }

    #[test]
    fn cos_errors() {
        let cases: &[(&str, &str)] = &[
            ("", "no [COS_ACCOUNT_n] section"),
            ("key = 1\n", "line 1: `key` comes before any [section]"),
            ("[COS_ACCOUNT_0\n", "line 1: a section header without `]`"),
            ("[NETWORK]\njust words\n", "line 2: expected `[section]`"),
            (
                "[NETWORK]\nlisten_port = 1\nLISTEN_PORT = 2\n",
                "line 3: [NETWORK] `listen_port` already appeared on line 2",
            ),
            (
                "[A]\n[A]\n",
                "line 2: section [A] already appeared on line 1",
            ),
            ("[DEFAULT]\nx = 1\n", "line 1 [DEFAULT]: values inherited"),
        ];
        for (text, message) in cases {
            let err = cos(text).unwrap_err().to_string();
            assert!(err.starts_with(message), "{text:?}: {err}");
        }
        let bad = [
            (
                "listen_port = 21",
                "listen_port = 70000",
                "line 11 [NETWORK]: `listen_port` = \"70000\": expected a port",
            ),
            (
                "listen_port = 21",
                "listen_port = 21\npassive_port = 65000,60000",
                "line 12 [NETWORK]: `passive_port` = \"65000,60000\"",
            ),
            (
                "authority = WO",
                "authority = everything",
                "line 9 [COS_ACCOUNT_0]: `authority` = \"everything\": expected RW, RO or WO",
            ),
            (
                "authority = WO",
                "authority = RW\ndelete_enable = maybe",
                "line 10 [COS_ACCOUNT_0]: `delete_enable`",
            ),
            (
                "cos_secretid = AKID\n",
                "",
                "line 1 [COS_ACCOUNT_0]: `cos_secretid` is missing or empty",
            ),
            (
                "cos_region = ap-beijing",
                "cos_region = ap-beijing\ncos_protocol = ftp",
                "line 6 [COS_ACCOUNT_0]: `cos_protocol`",
            ),
            (
                "[NETWORK]",
                "[FILE_OPTION]\nsingle_file_max_size = 20G\n[NETWORK]",
                "line 11 [FILE_OPTION]: `single_file_max_size` = \"20G\"",
            ),
        ];
        for (from, to, message) in bad {
            let text = MINIMAL_COS.replace(from, to);
            let err = cos(&text).unwrap_err().to_string();
            assert!(err.starts_with(message), "{text:?}: {err}");
        }
        let two = format!(
            "{MINIMAL_COS}{}",
            MINIMAL_COS
                .replace("COS_ACCOUNT_0", "COS_ACCOUNT_1")
                .replace("[NETWORK]\nlisten_port = 21\n", "")
        );
        assert_eq!(
            cos(&two),
            Err(ImportError::Duplicate {
                line: 18,
                first: 7,
                what: "ftp_login_user_name \"u\"".into()
            })
        );
        let failing = import_cos(MINIMAL_COS, &mut |_| Err("no memory".into()));
        assert_eq!(
            failing,
            Err(ImportError::Hash {
                user: "u".into(),
                message: "no memory".into()
            })
        );
    }

    #[test]
    fn ini_comments_and_continuations() {
        let ini = parse_ini(
            "\u{feff}; top\n[S]\nA = 1 ; note\nb: x # note\nc = \"\"\nd = one\n  two\n   # not more\ne = #all comment\n",
        )
        .unwrap();
        let values: Vec<(&str, &str)> = ini[0]
            .entries
            .iter()
            .map(|e| (e.key.as_str(), e.value.as_str()))
            .collect();
        assert_eq!(
            values,
            [
                ("a", "1"),
                ("b", "x"),
                ("c", ""),
                ("d", "one\ntwo"),
                ("e", "")
            ]
        );
        assert_eq!(
            strip_inline_comment("pa ss #1 ;x", "ftp_login_user_password"),
            ("pa ss #1".into(), true)
        );
    }

    #[test]
    fn sizes() {
        assert_eq!(format_size(21474836480), "20GiB");
        assert_eq!(format_size(8 * MIB), "8MiB");
        assert_eq!(format_size(1536 * 1024), "1572864");
        assert_eq!(format_size(214748364800), "200GiB");
    }

    #[test]
    fn qsftpd_settings() {
        let out = qs(QSFTPD).unwrap();
        let v = parse(&out);
        let server = table(&v, "server");
        assert_eq!(s(server, "listen"), "0.0.0.0:2121");
        assert_eq!(server["allow_remote"].as_bool(), Some(true));
        assert_eq!(s(server, "passive_ports"), "50000-50999");
        assert_eq!(s(server, "masquerade"), "198.51.100.20");
        assert_eq!(server["max_sessions"].as_integer(), Some(200));
        assert_eq!(s(server, "log_level"), "info");
        assert_eq!(server.len(), 6, "{server:?}");

        let storage = array(&v, "storage");
        assert_eq!(storage.len(), 1);
        assert_eq!(s(storage[0], "name"), "qingstor");
        assert_eq!(s(storage[0], "provider"), "qingstor");
        assert_eq!(s(storage[0], "region"), "sh1a");
        assert!(storage[0].get("endpoint").is_none());
        assert_eq!(s(storage[0], "access_key_id"), "QYACCESSKEYEXAMPLE00");
        assert_eq!(
            s(storage[0], "secret_access_key"),
            "qsSecretAccessKeyExample0123456789abcdef"
        );

        let users = array(&v, "user");
        let names: Vec<&str> = users.iter().map(|u| s(u, "name")).collect();
        assert_eq!(names, ["editor", "robot"]);
        assert_eq!(s(users[0], "password_hash"), "$fake$correct horse");
        // Scalars are read as written, as qsftpd's YAML library does.
        assert_eq!(s(users[1], "password_hash"), "$fake$0123");
        for user in &users {
            assert_eq!(s(user, "storage"), "qingstor");
            assert_eq!(s(user, "bucket"), "media-archive");
            assert_eq!(s(user, "permissions"), "rw");
            assert_eq!(user["delete"].as_bool(), Some(true));
        }

        for expected in [
            "cache_path: not converted",
            "qingstor.log_level: not converted",
            "users: anonymous: qsftpd let anyone log in as `anonymous`",
            "users: \"intern\": no password",
            "max_connections: qsftpd read this limit but did not enforce it.",
            "secret_access_key_env = \"QINGSTOR_SECRET_ACCESS_KEY\"",
        ] {
            assert!(says(&out, expected), "no {expected:?} in\n{out}");
        }
        assert!(out.starts_with("# BucketFTP server config converted from a qsftpd"));
        assert_eq!(out, qs(QSFTPD).unwrap());
    }

    const MINIMAL_QS: &str = "qingstor:\n  access_key_id: AK\n  secret_access_key: SK\n\
        bucket_name: b\nzone: pek3b\ncache_path: /tmp/q\n";

    #[test]
    fn qsftpd_defaults_and_variants() {
        // qsftpd's defaults: all interfaces on port 21; no users means anonymous only.
        let out = qs(MINIMAL_QS).unwrap();
        let v = parse(&out);
        let server = table(&v, "server");
        assert_eq!(s(server, "listen"), "0.0.0.0:21");
        assert!(says(&out, "Port 21 needs root"));
        assert!(server.get("passive_ports").is_none());
        assert!(server.get("masquerade").is_none());
        assert!(array(&v, "user").is_empty());
        assert!(says(
            &out,
            "users: not set, so qsftpd let `anonymous` log in"
        ));
        assert!(says(&out, "No [[user]] was written"));

        // Loopback listening: no allow_remote; the loopback public host is not announced.
        let text = format!(
            "{MINIMAL_QS}listen_host: 127.0.0.1\nlisten_port: 2121\npublic_host: 127.0.0.1\n\
             start_port: 6000\nlog_level: warning\nextra: 1\nusers:\n  u: p\n"
        );
        let out = qs(&text).unwrap();
        let v = parse(&out);
        let server = table(&v, "server");
        assert_eq!(s(server, "listen"), "127.0.0.1:2121");
        assert!(server.get("allow_remote").is_none());
        assert!(server.get("masquerade").is_none());
        assert_eq!(s(server, "passive_ports"), "6000-65535");
        assert_eq!(s(server, "log_level"), "warn");
        assert!(says(&out, "extra: qsftpd reads no such key"));
        assert!(says(&out, "public_host = \"127.0.0.1\": not converted"));

        // A private QingStor: the S3 endpoint is offered, commented.
        let text = MINIMAL_QS.replace(
            "  secret_access_key: SK\n",
            "  secret_access_key: SK\n  host: qs.example.net\n  port: 8080\n  protocol: http\n",
        );
        let out = qs(&text).unwrap();
        assert!(
            out.contains("# endpoint = \"http://s3.pek3b.qs.example.net:8080\""),
            "{out}"
        );
        assert!(array(&parse(&out), "storage")[0].get("endpoint").is_none());

        // IPv6 listening.
        let out = qs(&format!(
            "{MINIMAL_QS}listen_host: \"::\"\nlisten_port: -1\n"
        ))
        .unwrap();
        assert_eq!(s(table(&parse(&out), "server"), "listen"), "[::]:0");
    }

    #[test]
    fn qsftpd_errors() {
        let cases: &[(&str, &str)] = &[
            (
                "- a\n- b\n",
                "not a qsftpd config: the document is not a mapping",
            ),
            ("users: [\n", "not a qsftpd config: "),
            (
                "zone: pek3b\n",
                "qsftpd config: `bucket_name` is missing or empty",
            ),
            (
                "bucket_name: b\nzone: pek3b\n",
                "qsftpd config: `qingstor.access_key_id` is missing",
            ),
        ];
        for (text, message) in cases {
            let err = qs(text).unwrap_err().to_string();
            assert!(err.starts_with(message), "{text:?}: {err}");
        }
        let no_zone = MINIMAL_QS.replace("zone: pek3b\n", "");
        assert_eq!(qs(&no_zone), Err(ImportError::NoZone));
        let bad_port = format!("{MINIMAL_QS}listen_port: twenty-one\n");
        assert!(
            qs(&bad_port).unwrap_err().to_string().starts_with(
                "qsftpd config: `listen_port` = \"twenty-one\": expected a whole number"
            )
        );
        let bad_range = format!("{MINIMAL_QS}start_port: 7000\nend_port: 6000\n");
        assert!(
            qs(&bad_range)
                .unwrap_err()
                .to_string()
                .contains("is above end_port (6000)")
        );
        let failing = import_qsftpd(&format!("{MINIMAL_QS}users:\n  u: p\n"), &mut |_| {
            Err("x".into())
        });
        assert_eq!(
            failing,
            Err(ImportError::Hash {
                user: "u".into(),
                message: "x".into()
            })
        );
    }
}
