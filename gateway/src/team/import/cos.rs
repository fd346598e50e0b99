//! Tencent COS FTP Server's `conf/vsftpd.conf` (read by [`super::ini`]) to a BucketFTP
//! config: [`import`], behind [`super::import_cos`].
//!
//! What each source key meant was read from COS FTP Server's own code: it listens on every
//! interface; `passive_port = A,B` is a range; a `masquerade_address` that is not an IPv4
//! address is ignored; `authority` grants read for `R` and write for `W`; deleting needs
//! write and `delete_enable` (default true); the FTP root is the bucket's root (`home_dir` is
//! a local folder that only tells accounts apart); `max_connection_num` counts control and
//! data sockets, so (N − 1) / 2 clients fit.

use std::collections::HashMap;
use std::net::Ipv4Addr;

use super::ini::{self, Entry, Section};
use super::toml_out::TomlOut;
use super::{Hasher, ImportError, secret_comment};
use crate::config::{human_size, parse_size};

const MIB: u64 = 1024 * 1024;
const GIB: u64 = 1024 * MIB;

/// Keys whose value may contain ` #`: `ConfigParser` (Python 2) ends a value only at ` ;`,
/// and a password or secret must stay exactly what the server accepted.
const VERBATIM_KEYS: &[&str] = &["cos_secretkey", "ftp_login_user_password"];

/// See [`super::import_cos`].
pub(super) fn import(text: &str, hash: Hasher<'_>) -> Result<String, ImportError> {
    let sections = ini::parse(text, VERBATIM_KEYS)?;
    let mut accounts = Vec::new();
    let (mut network, mut file_option, mut optional) = (None, None, None);
    let mut others = Vec::new();
    for section in &sections {
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

    let mut out = TomlOut::default();
    out.comment(
        "BucketFTP server config converted from a Tencent COS FTP Server config \
         (conf/vsftpd.conf).\n\
         Every source key is either a setting below or a comment saying why it has none. \
         Review it before use.",
    );
    out.table("server");
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
    Ok(out.finish())
}

/// Keys of `[NETWORK]` that COS FTP Server reads.
const NETWORK_KEYS: &[&str] = &["listen_port", "passive_port", "masquerade_address"];

fn cos_network(
    out: &mut TomlOut,
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
    out: &mut TomlOut,
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
        out.string("max_file_size", &size_setting(bytes));
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
    out: &mut TomlOut,
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
                    out.string("part_size", &size_setting(n));
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
                    // At most i64::MAX, as (u64::MAX - 1) / 2 is.
                    let sessions = i64::try_from((n - 1) / 2).unwrap_or(i64::MAX).max(1);
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
    out: &mut TomlOut,
    section: &Section,
    names: &mut Names,
    users: &mut HashMap<String, usize>,
    homes: &mut HashMap<String, String>,
    hash: Hasher<'_>,
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

    out.array_table("storage");
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
            out.array_table("user");
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

/// A size setting: as people read it when that reads back to the same bytes (`20 GiB`,
/// `1.5 MiB`), else the plain byte count.
fn size_setting(bytes: u64) -> String {
    let words = human_size(bytes);
    match parse_size(&words) {
        Ok(n) if u64::try_from(n) == Ok(bytes) => words,
        _ => bytes.to_string(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::super::import_cos;
    use super::super::testing::{array, fake_hash, parse, s, says, table};
    use super::super::toml_out::WIDTH;
    use super::*;

    const COS: &str = include_str!("../../../tests/data/cos-vsftpd.conf");

    fn cos(text: &str) -> Result<String, ImportError> {
        import_cos(text, &mut fake_hash)
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
        assert_eq!(s(server, "max_file_size"), "20 GiB");
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
    fn sizes_read_back() {
        assert_eq!(size_setting(21474836480), "20 GiB");
        assert_eq!(size_setting(1536 * 1024), "1.5 MiB");
        assert_eq!(size_setting(1536 * 1024 + 1), "1572865");
    }
}
