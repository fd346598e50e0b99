//! Log set-up shared by `bucketftp-server` and the desktop app: one short line per event.
//!
//! libunftp wraps its handlers in tracing spans at `info` whose fields are the whole session
//! state printed with `Debug` (kilobytes per line, repeated on every line inside them). Our
//! relay logs one line per command instead (who, what, reply, time), so libunftp is kept at
//! `warn` unless the level is `trace`. Its control loop and its PASS handler are kept at
//! `error`: their warnings repeat what the relay and the authenticator already log (an unknown
//! command, a refused login), whole (a 12 KB junk line, the user name tried), once per try.
//! rustls warns at every TLS handshake whose ClientHello names an IP address as the server
//! name (lftp does, on every data connection, and the relay does data connections' TLS): that
//! one module is kept at `error`.
//! Colours only when stderr is a terminal, so a log file holds no escape codes.

use std::io::IsTerminal;

/// The filter for a `--log-level` value (or a full filter such as `info,gateway=debug`).
/// Pure.
pub fn filter_for(level: &str) -> String {
    let level = level.trim();
    if level.eq_ignore_ascii_case("trace") || level.contains('=') {
        return level.to_owned();
    }
    // The embedded store logs refused requests (a wrong password) as errors: quiet below
    // debug.
    let store = if level.eq_ignore_ascii_case("debug") {
        ""
    } else {
        ",s3s=off"
    };
    format!("{level}{store},{QUIETED}")
}

/// The filter directives for libunftp and rustls (see the module docs).
const QUIETED: &str = "libunftp=warn,libunftp::server::controlchan::control_loop=error,\
libunftp::server::controlchan::commands::pass=error,unftp_core=warn,\
rustls::msgs::handshake=error";

/// Installs the subscriber: `RUST_LOG` when set, else [`filter_for`]`(level)`. A second call
/// does nothing.
pub fn init(level: &str) {
    let filter = std::env::var("RUST_LOG").unwrap_or_else(|_| filter_for(level));
    let filter = tracing_subscriber::EnvFilter::try_new(&filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(filter_for("info")));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .try_init();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters() {
        assert_eq!(filter_for("info"), format!("info,s3s=off,{QUIETED}"));
        assert_eq!(filter_for("debug"), format!("debug,{QUIETED}"));
        assert!(
            tracing_subscriber::EnvFilter::try_new(filter_for("info")).is_ok(),
            "{}",
            filter_for("info")
        );
        assert_eq!(filter_for("trace"), "trace");
        assert_eq!(filter_for("info,gateway=debug"), "info,gateway=debug");
    }
}
