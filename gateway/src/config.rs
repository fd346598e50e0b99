//! The gateway's configuration and the pure parsers the command line and settings use
//! (sizes like `8MiB`, port ranges like `50000-50100`, durations like `15m`), and
//! [`tls_rule`]: whether TLS is required, from the listen address and the options given.

use std::net::{Ipv4Addr, SocketAddr};
use std::ops::RangeInclusive;
use std::time::Duration;

use crate::ftp::limits::{LockoutPolicy, SessionLimits};
use crate::ftp::tls::TlsMaterial;
use crate::s3::S3Settings;
use crate::storage::parts::TransferLimits;
pub use crate::units::human_size;

/// Everything `Gateway::start` needs.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// FTP listen address (`127.0.0.1:2048` by default).
    pub listen: SocketAddr,
    /// Where the buckets are.
    pub s3: S3Settings,
    /// Passive data ports.
    pub passive_ports: RangeInclusive<u16>,
    /// Part size, parallelism and memory limit.
    pub limits: TransferLimits,
    /// Idle time before a session is closed.
    pub idle_timeout: Duration,
    /// A session not logged in by then is closed, whatever it sends (NOOP included).
    pub login_timeout: Duration,
    /// An upload that receives no data for this long is cancelled.
    pub transfer_timeout: Duration,
    /// Sessions in all and per client address.
    pub sessions: SessionLimits,
    /// Failed-login lockout per client address.
    pub lockout: LockoutPolicy,
    /// FTPS (AUTH TLS); `None` turns TLS off.
    pub tls: Option<TlsMaterial>,
    /// Refuse logins and transfers that are not protected by TLS (`bucketftp-server` decides
    /// it with [`tls_rule`]: on by default on a listener other than loopback).
    pub require_tls: bool,
    /// A TLS data connection must resume its control connection's TLS session (vsftpd's
    /// `require_ssl_reuse`): no one else can take a passive port's connection. Off for
    /// clients that cannot resume (Python's stock `ftplib.FTP_TLS`).
    pub require_tls_session_reuse: bool,
    /// Control and passive data connections start with a PROXY protocol header from a load
    /// balancer among these sources, naming the client (`proxy_protocol`); `None`: off.
    pub proxy_protocol: Option<crate::ftp::proxy_protocol::ProxyRule>,
    /// The address passive replies announce (behind NAT); `None` uses the control
    /// connection's local address.
    pub masquerade: Option<Ipv4Addr>,
    /// Abort multipart uploads older than this in each bucket after its first login (left by
    /// a killed gateway); `None` leaves them to the bucket's lifecycle rule.
    pub abort_stale_uploads: Option<Duration>,
    /// Per-login settings (saved profiles); `None`: every login uses `s3`.
    pub login_settings: Option<std::sync::Arc<dyn crate::s3::LoginSettings>>,
    /// What users may change (server-wide; team users' own rights apply on top).
    pub permissions: crate::storage::Permissions,
    /// Uploads that grow past this many bytes are refused with 552 and not stored.
    pub max_file_size: Option<u64>,
    /// HASH and the `X…` hash commands read a file with no stored hash through the hash up
    /// to this size; a larger one is refused (550) with the reason.
    pub max_hash_size: u64,
    /// Team logins from the config file; `None`: only `ACCESS_KEY_ID/bucket` logins. The
    /// table can be replaced while the gateway runs (SIGHUP).
    pub users: Option<std::sync::Arc<crate::team::users::UserTable>>,
    /// Prometheus metrics this gateway feeds (sessions, logins, transfers, S3 requests).
    pub metrics: Option<std::sync::Arc<crate::ops::metrics::Metrics>>,
    /// A JSON-lines audit log of logins and transfers, appended to.
    pub audit_log: Option<std::path::PathBuf>,
}

/// The default [`GatewayConfig::max_hash_size`]: 1 GiB, read at a few hundred MB/s in a few
/// seconds, well inside a client's reply timeout.
pub const DEFAULT_MAX_HASH_SIZE: u64 = 1 << 30;

impl GatewayConfig {
    /// Defaults around the given S3 settings.
    pub fn new(s3: S3Settings) -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 2048)),
            s3,
            passive_ports: 49152..=65534,
            limits: TransferLimits::default(),
            idle_timeout: Duration::from_secs(600),
            login_timeout: Duration::from_secs(60),
            transfer_timeout: Duration::from_secs(60),
            sessions: SessionLimits::default(),
            lockout: LockoutPolicy::default(),
            tls: None,
            require_tls: false,
            require_tls_session_reuse: true,
            proxy_protocol: None,
            masquerade: None,
            abort_stale_uploads: None,
            login_settings: None,
            permissions: crate::storage::Permissions::default(),
            max_file_size: None,
            max_hash_size: DEFAULT_MAX_HASH_SIZE,
            users: None,
            metrics: None,
            audit_log: None,
        }
    }
}

/// Whether plain FTP is allowed, as [`tls_rule`] decides it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsRule {
    /// Logins and transfers need TLS (`require_tls`, set or by default on a listener that is
    /// not loopback).
    Required,
    /// Plain FTP allowed on a loopback listener (the default there: the desktop case).
    PlainOnLoopback,
    /// Plain FTP allowed on a listener other clients reach (`require_tls = false`): passwords
    /// cross the network in clear.
    PlainOnNetwork,
}

impl TlsRule {
    /// The gateway's `require_tls`.
    pub fn require_tls(self) -> bool {
        self == TlsRule::Required
    }

    /// The start-up warning this rule needs, if any.
    pub fn warning(self) -> Option<&'static str> {
        (self == TlsRule::PlainOnNetwork).then_some(
            "warning: require_tls = false on an address other than loopback: FTP passwords (and files) cross the network in clear",
        )
    }
}

/// Why the TLS options cannot be used together.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TlsRuleError {
    /// `require_tls` with TLS off.
    #[error("require_tls needs TLS, which is off (--no-tls)")]
    RequiredWithoutTls,
    /// A listener that is not loopback requires TLS by default, and TLS is off.
    #[error(
        "listening on {0} (not loopback) requires TLS by default, and TLS is off (--no-tls): turn TLS on, or set require_tls = false (--require-tls=false), with which passwords cross the network in clear"
    )]
    RemoteWithoutTls(SocketAddr),
}

/// Whether TLS is required on `listen`, with TLS on or off and `require_tls` as given (`None`:
/// not set). Not set, it is required on any address but loopback. Pure.
pub fn tls_rule(
    listen: SocketAddr,
    tls_on: bool,
    require_tls: Option<bool>,
) -> Result<TlsRule, TlsRuleError> {
    let loopback = listen.ip().to_canonical().is_loopback();
    match (require_tls, tls_on) {
        (Some(true), false) => Err(TlsRuleError::RequiredWithoutTls),
        (Some(true), true) => Ok(TlsRule::Required),
        _ if loopback => Ok(TlsRule::PlainOnLoopback),
        (Some(false), _) => Ok(TlsRule::PlainOnNetwork),
        (None, true) => Ok(TlsRule::Required),
        (None, false) => Err(TlsRuleError::RemoteWithoutTls(listen)),
    }
}

/// Why a size, port range or duration written as text was refused; each variant holds the
/// text as given.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// No number where a size was expected.
    #[error("{0:?} is not a size")]
    NotASize(String),
    /// A size unit other than B, k/KiB, M/MiB, G/GiB.
    #[error("unknown size unit {unit:?} in {text:?}")]
    SizeUnit {
        /// The unit as written.
        unit: String,
        /// The whole text.
        text: String,
    },
    /// Not a whole number of seconds, minutes, hours or days.
    #[error("{0:?} is not a duration like 30s, 15m or 2h")]
    NotADuration(String),
    /// A duration unit other than s, m, h, d.
    #[error("unknown duration unit {unit:?} in {text:?}")]
    DurationUnit {
        /// The unit as written.
        unit: String,
        /// The whole text.
        text: String,
    },
    /// A size or duration too large to hold.
    #[error("{0:?} is out of range")]
    OutOfRange(String),
    /// Not one port or two joined by `-`.
    #[error("{0:?} is not a port range like 50000-50100")]
    NotAPortRange(String),
    /// Port 0, or the first port after the last.
    #[error("{0:?}: the first port must be between 1 and the last")]
    PortOrder(String),
}

/// Parses a byte size: `8388608`, `8MiB`, `8M`, `512k`, `1GiB`, `1.5MiB`, and what
/// [`human_size`] writes (`20 GiB`, `100 bytes`).
pub fn parse_size(text: &str) -> Result<usize, ParseError> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| ParseError::NotASize(text.to_owned()))?;
    let mult: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" | "byte" | "bytes" => 1.0,
        "k" | "kb" | "kib" => 1024.0,
        "m" | "mb" | "mib" => 1024.0 * 1024.0,
        "g" | "gb" | "gib" => 1024.0 * 1024.0 * 1024.0,
        "t" | "tb" | "tib" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        other => {
            return Err(ParseError::SizeUnit {
                unit: other.to_owned(),
                text: text.to_owned(),
            });
        }
    };
    let bytes = n * mult;
    if !bytes.is_finite() || bytes < 0.0 || bytes > usize::MAX as f64 {
        return Err(ParseError::OutOfRange(text.to_owned()));
    }
    Ok(bytes as usize)
}

/// Parses a port range `A-B` (or a single port).
pub fn parse_port_range(text: &str) -> Result<RangeInclusive<u16>, ParseError> {
    let (a, b) = match text.split_once('-') {
        Some((a, b)) => (a.trim(), b.trim()),
        None => (text.trim(), text.trim()),
    };
    let port = |p: &str| {
        p.parse::<u16>()
            .map_err(|_| ParseError::NotAPortRange(text.to_owned()))
    };
    let (a, b) = (port(a)?, port(b)?);
    if a == 0 || a > b {
        return Err(ParseError::PortOrder(text.to_owned()));
    }
    Ok(a..=b)
}

/// Parses a duration: a whole number with a unit, `30s`, `15m`, `2h`, `1d`; a bare number
/// counts in `bare` units (e.g. hours, where a flag took hours before it took units).
pub fn parse_duration(text: &str, bare: Duration) -> Result<Duration, ParseError> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| ParseError::NotADuration(text.to_owned()))?;
    let unit_secs = match unit.trim().to_ascii_lowercase().as_str() {
        "" => bare.as_secs(),
        "s" | "sec" | "secs" => 1,
        "m" | "min" | "mins" => 60,
        "h" | "hour" | "hours" => 3600,
        "d" | "day" | "days" => 86_400,
        other => {
            return Err(ParseError::DurationUnit {
                unit: other.to_owned(),
                text: text.to_owned(),
            });
        }
    };
    n.checked_mul(unit_secs)
        .map(Duration::from_secs)
        .ok_or_else(|| ParseError::OutOfRange(text.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("8MiB"), Ok(8 * 1024 * 1024));
        assert_eq!(parse_size("8m"), Ok(8 * 1024 * 1024));
        assert_eq!(parse_size("512k"), Ok(512 * 1024));
        assert_eq!(parse_size("1GiB"), Ok(1 << 30));
        assert_eq!(parse_size("1.5MiB"), Ok(1572864));
        assert_eq!(parse_size("100"), Ok(100));
        assert_eq!(
            parse_size("8 parsecs"),
            Err(ParseError::SizeUnit {
                unit: "parsecs".into(),
                text: "8 parsecs".into()
            })
        );
        assert_eq!(
            parse_size("8 parsecs").map_err(|e| e.to_string()),
            Err("unknown size unit \"parsecs\" in \"8 parsecs\"".into())
        );
        assert_eq!(parse_size("MiB"), Err(ParseError::NotASize("MiB".into())));
    }

    #[test]
    fn sizes_in_words() {
        const KIB: u64 = 1024;
        const MIB: u64 = 1024 * KIB;
        const GIB: u64 = 1024 * MIB;
        // bytes, words, whether the words read back to the same bytes.
        let table = [
            (0, "0 bytes", true),
            (100, "100 bytes", true),
            (1024, "1 KiB", true),
            (1536, "1.5 KiB", true),
            (1536 * KIB, "1.5 MiB", true),
            (1536 * KIB + 1, "1.5 MiB", false),
            (8 * MIB, "8 MiB", true),
            (20 * GIB, "20 GiB", true),
            (200 * GIB, "200 GiB", true),
            (78_125 * MIB, "76.3 GiB", false),
            (5 * 1024 * GIB, "5 TiB", true),
            (3 * 1024 * 1024 * GIB, "3072 TiB", true),
        ];
        for (bytes, words, exact) in table {
            assert_eq!(human_size(bytes), words, "{bytes}");
            let back = parse_size(words).map(|n| n as u64);
            assert_eq!(back == Ok(bytes), exact, "{words}: {back:?}");
        }
    }

    #[test]
    fn port_ranges() {
        assert_eq!(parse_port_range("50000-50100"), Ok(50000..=50100));
        assert_eq!(parse_port_range("2121"), Ok(2121..=2121));
        assert_eq!(
            parse_port_range("10-5"),
            Err(ParseError::PortOrder("10-5".into()))
        );
        assert_eq!(
            parse_port_range("0-5"),
            Err(ParseError::PortOrder("0-5".into()))
        );
        assert_eq!(
            parse_port_range("a-b"),
            Err(ParseError::NotAPortRange("a-b".into()))
        );
    }

    #[test]
    fn tls_rules() {
        use TlsRule::*;
        let at = |a: &str| {
            a.parse::<SocketAddr>()
                .unwrap_or(SocketAddr::from(([0; 4], 0)))
        };
        // listen, TLS on, require_tls given, the rule.
        type Case = (
            &'static str,
            bool,
            Option<bool>,
            Result<TlsRule, TlsRuleError>,
        );
        let table: [Case; 13] = [
            // Loopback: the desktop default is unchanged.
            ("127.0.0.1:2048", true, None, Ok(PlainOnLoopback)),
            ("127.0.0.1:2048", false, None, Ok(PlainOnLoopback)),
            ("[::1]:2048", true, None, Ok(PlainOnLoopback)),
            ("[::ffff:127.0.0.1]:2048", true, None, Ok(PlainOnLoopback)),
            ("127.0.0.1:2048", true, Some(true), Ok(Required)),
            ("127.0.0.1:2048", true, Some(false), Ok(PlainOnLoopback)),
            // Elsewhere: required unless said otherwise.
            ("0.0.0.0:2121", true, None, Ok(Required)),
            ("[::]:2121", true, None, Ok(Required)),
            ("10.0.0.11:2121", true, Some(false), Ok(PlainOnNetwork)),
            ("10.0.0.11:2121", false, Some(false), Ok(PlainOnNetwork)),
            ("10.0.0.11:2121", true, Some(true), Ok(Required)),
            (
                "10.0.0.11:2121",
                false,
                None,
                Err(TlsRuleError::RemoteWithoutTls(at("10.0.0.11:2121"))),
            ),
            (
                "127.0.0.1:2048",
                false,
                Some(true),
                Err(TlsRuleError::RequiredWithoutTls),
            ),
        ];
        for (listen, tls, require, want) in table {
            assert_eq!(
                tls_rule(at(listen), tls, require),
                want,
                "{listen} tls {tls} require {require:?}"
            );
        }
        assert!(Required.require_tls() && !PlainOnNetwork.require_tls());
        assert!(
            PlainOnNetwork
                .warning()
                .is_some_and(|w| w.contains("in clear"))
        );
        assert_eq!(PlainOnLoopback.warning(), None);
    }

    #[test]
    fn durations() {
        let hour = Duration::from_secs(3600);
        let secs = Duration::from_secs;
        assert_eq!(parse_duration("30s", hour), Ok(secs(30)));
        assert_eq!(parse_duration("15m", hour), Ok(secs(900)));
        assert_eq!(parse_duration("2h", hour), Ok(secs(7200)));
        assert_eq!(parse_duration("1d", hour), Ok(secs(86_400)));
        assert_eq!(parse_duration(" 45 min ", hour), Ok(secs(2700)));
        assert_eq!(parse_duration("24", hour), Ok(secs(86_400)), "bare: hours");
        assert_eq!(parse_duration("24", secs(1)), Ok(secs(24)), "bare: seconds");
        assert_eq!(parse_duration("0", hour), Ok(Duration::ZERO));
        assert!(parse_duration("", hour).is_err());
        assert!(parse_duration("h", hour).is_err());
        assert!(parse_duration("1.5h", hour).is_err());
        assert!(parse_duration("-1s", hour).is_err());
        assert!(matches!(
            parse_duration("3 fortnights", hour),
            Err(ParseError::DurationUnit { .. })
        ));
        assert!(matches!(
            parse_duration("18446744073709551615h", hour),
            Err(ParseError::OutOfRange(_))
        ));
    }
}
