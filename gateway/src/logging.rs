//! Log set-up shared by `bucketftp-server` and the desktop app: one short line per event.
//!
//! libunftp wraps its handlers in tracing spans at `info` whose fields are the whole session
//! state printed with `Debug` (kilobytes per line, repeated on every line inside them). Our
//! relay logs one line per command instead (who, what, reply, time), so libunftp is kept at
//! `warn` unless the level is `trace`. Colours only when stderr is a terminal, so a log file
//! holds no escape codes.

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
    format!("{level}{store},libunftp=warn,unftp_core=warn")
}

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
        assert_eq!(
            filter_for("info"),
            "info,s3s=off,libunftp=warn,unftp_core=warn"
        );
        assert_eq!(filter_for("debug"), "debug,libunftp=warn,unftp_core=warn");
        assert_eq!(filter_for("trace"), "trace");
        assert_eq!(filter_for("info,gateway=debug"), "info,gateway=debug");
    }
}
