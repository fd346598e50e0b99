//! QingStor's qsftpd `qsftpd.yaml` to a BucketFTP config: [`import`], behind
//! [`super::import_qsftpd`].
//!
//! What each key meant was read from qsftpd's own code: it reads scalars into strings as
//! written (`0123` stays `0123`); listens on `listen_host` (default all interfaces) and
//! `listen_port` (0 → 21, −1 → any free port); announces `public_host` (default 127.0.0.1) in
//! passive replies; with no `users` it lets `anonymous` in with any password; every user may
//! read, write and delete.

use std::collections::HashSet;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, Visitor};

use super::toml_out::TomlOut;
use super::{Hasher, ImportError, secret_comment};

/// See [`super::import_qsftpd`].
pub(super) fn import(text: &str, hash: Hasher<'_>) -> Result<String, ImportError> {
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

    let mut out = TomlOut::default();
    out.comment(
        "BucketFTP server config converted from a qsftpd (QingStor FTP server) config \
         (qsftpd.yaml).\n\
         Every source key is either a setting below or a comment saying why it has none. \
         Review it before use.",
    );
    out.table("server");
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

    out.array_table("storage");
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
        out.array_table("user");
        out.string("name", name);
        out.string("password_hash", &password_hash);
        out.string("storage", "qingstor");
        out.string("bucket", &bucket);
        out.string("permissions", "rw");
        out.boolean("delete", true);
    }
    Ok(out.finish())
}

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
    out: &mut TomlOut,
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
        if n < 0 {
            return Err(ImportError::Invalid {
                place: "qsftpd config".into(),
                key: "max_connections".into(),
                value: n.to_string(),
                reason: "expected a number above 0".into(),
            });
        }
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
fn qs_endpoint(out: &mut TomlOut, service: &QsService, zone: &str) -> Result<(), ImportError> {
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::super::import_qsftpd;
    use super::super::testing::{array, fake_hash, parse, s, says, table};
    use super::*;

    const QSFTPD: &str = include_str!("../../../tests/data/qsftpd.yaml");

    fn qs(text: &str) -> Result<String, ImportError> {
        import_qsftpd(text, &mut fake_hash)
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
