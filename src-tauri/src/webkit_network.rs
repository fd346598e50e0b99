//! Ends WebKit's network process once the window is gone (Linux).
//!
//! WebKitGTK starts one network process for the window's web context and never ends it on
//! its own, and Tauri (tauri-runtime-wry) keeps that context for the app's lifetime on Linux
//! (tauri-apps/tauri#14626), so after the first window the tray would carry ~60 MiB for good.
//! WebKitGTK has no API to end it; it does start a new one when a page next needs it (checked
//! with WebKitGTK 2.50: the window reopens and loads normally). So a few seconds after the
//! window is destroyed, if no webview exists, the app's own `WebKitNetworkProcess` children
//! get SIGTERM.

use std::path::Path;
use std::time::Duration;

use tauri::{AppHandle, Manager, Runtime};

/// How long after the window's `Destroyed` event (the webview is torn down after it).
const DELAY: Duration = Duration::from_secs(2);

/// The start of the network process's command name (`comm` is cut at 15 bytes).
const NETWORK_COMM: &str = "WebKitNetworkPr";

/// `(pid, comm, ppid)` from a `/proc/PID/stat` line; `comm` may hold spaces and parentheses.
pub fn parse_stat(line: &str) -> Option<(u32, &str, u32)> {
    let open = line.find('(')?;
    let close = line.rfind(')')?;
    let pid = line.get(..open)?.trim().parse().ok()?;
    let comm = line.get(open + 1..close)?;
    let mut rest = line.get(close + 1..)?.split_whitespace();
    let _state = rest.next()?;
    let ppid = rest.next()?.parse().ok()?;
    Some((pid, comm, ppid))
}

/// The pids of `parent`'s WebKit network processes, from the `/proc` at `proc_root`.
pub fn network_children(proc_root: &Path, parent: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir(proc_root) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| std::fs::read_to_string(e.path().join("stat")).ok())
        .filter_map(|line| {
            let (pid, comm, ppid) = parse_stat(&line)?;
            (ppid == parent && comm.starts_with(NETWORK_COMM)).then_some(pid)
        })
        .collect()
}

/// After the last webview closed: ends the network process unless a window came back.
pub fn end_when_idle<R: Runtime>(app: &AppHandle<R>) {
    let app = app.clone();
    std::thread::spawn(move || {
        std::thread::sleep(DELAY);
        if !app.webview_windows().is_empty() {
            return;
        }
        for pid in network_children(Path::new("/proc"), std::process::id()) {
            let Ok(pid) = libc::pid_t::try_from(pid) else {
                continue;
            };
            // SAFETY: kill(2) takes no pointers; `pid` is this process's own child, which
            // WebKit reaps, so the number cannot have been reused by an unrelated process yet.
            #[allow(unsafe_code)]
            let rc = unsafe { libc::kill(pid, libc::SIGTERM) };
            if rc == 0 {
                tracing::debug!(pid, "ended WebKit's network process (no window)");
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_lines() {
        assert_eq!(
            parse_stat("8489 (WebKitNetworkPr) S 7845 7845 7000 0 -1"),
            Some((8489, "WebKitNetworkPr", 7845))
        );
        assert_eq!(parse_stat("12 (a (b) c) R 3 4"), Some((12, "a (b) c", 3)));
        assert_eq!(parse_stat("garbage"), None);
        assert_eq!(parse_stat("1 (x) S"), None);
    }

    #[test]
    fn finds_only_the_parents_network_processes() {
        let dir = tempfile::tempdir().unwrap();
        for (pid, line) in [
            ("10", "10 (WebKitNetworkPr) S 1 1"),
            ("11", "11 (WebKitNetworkPr) S 2 2"),
            ("12", "12 (WebKitWebProces) S 1 1"),
        ] {
            std::fs::create_dir(dir.path().join(pid)).unwrap();
            std::fs::write(dir.path().join(pid).join("stat"), line).unwrap();
        }
        assert_eq!(network_children(dir.path(), 1), vec![10]);
        assert!(network_children(&dir.path().join("missing"), 1).is_empty());
    }
}
