//! Ends WebKit's network process once the window is gone (Linux).
//!
//! WebKitGTK starts one network process for the window's web context and never ends it on
//! its own, and Tauri (tauri-runtime-wry) keeps that context for the app's lifetime on Linux
//! (tauri-apps/tauri#14626), so after the first window the tray would carry ~60 MiB for good.
//! WebKitGTK has no API to end it; it does start a new one when a page next needs it (checked
//! with WebKitGTK 2.50: the window reopens and loads normally). So a few seconds after the
//! window is destroyed, if no webview exists, the app's own `WebKitNetworkProcess` children
//! get SIGTERM.
//!
//! The signal goes through a pidfd, never `kill(pid)`: WebKit (in this process) reaps its
//! network process when that exits, and the kernel may then give the number to an unrelated
//! process between the read of `/proc` and the signal. A pidfd names one process for good.
//! So each pid found is opened with `pidfd_open(2)` first, then its `/proc/PID/stat` is read
//! again, and only if that still shows this process's network child does the signal go, with
//! `pidfd_send_signal(2)`. If the process behind the number changed after `pidfd_open`, the
//! re-read sees the new one, which is either not our network child (no signal) or is one
//! (then the pidfd names the old, dead process and the signal goes nowhere): an unrelated
//! process can never get it. Without a pidfd (`ENOSYS` before Linux 5.3, `ESRCH` when the
//! process is gone) nothing is signalled: the network process stays, which only costs memory.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
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

/// The pid in `/proc/PID/stat` line `line` if that process is one of `parent`'s WebKit
/// network processes.
fn network_child_pid(line: &str, parent: u32) -> Option<u32> {
    let (pid, comm, ppid) = parse_stat(line)?;
    (ppid == parent && comm.starts_with(NETWORK_COMM)).then_some(pid)
}

/// The pids of `parent`'s WebKit network processes, from the `/proc` at `proc_root`.
pub fn network_children(proc_root: &Path, parent: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir(proc_root) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| std::fs::read_to_string(e.path().join("stat")).ok())
        .filter_map(|line| network_child_pid(&line, parent))
        .collect()
}

/// Whether `stat`, `/proc/PID/stat` of `pid` read after its pidfd was opened, still shows
/// one of `parent`'s network processes: only then does the pidfd get the signal.
fn should_signal(stat: &str, pid: u32, parent: u32) -> bool {
    network_child_pid(stat, parent) == Some(pid)
}

/// A pidfd for the process that has number `pid` now (`pidfd_open(2)`, Linux 5.3 and later).
fn pidfd_open(pid: u32) -> io::Result<OwnedFd> {
    let pid = libc::pid_t::try_from(pid).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    // The arguments are passed as `long`, which is what syscall(2) reads them as.
    let (pid, flags) = (libc::c_long::from(pid), libc::c_long::from(0u8));
    // SAFETY: pidfd_open(2) takes a pid and flags (none), no pointers; it only creates a
    // file descriptor, which the caller gets to own below.
    #[allow(unsafe_code)]
    let rc = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, flags) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    let raw = RawFd::try_from(rc).map_err(|_| io::Error::from_raw_os_error(libc::EBADF))?;
    // SAFETY: on success pidfd_open(2) returned a new file descriptor that nothing else in
    // this process holds; the `OwnedFd` is its one owner and closes it when dropped.
    #[allow(unsafe_code)]
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    Ok(fd)
}

/// Sends `signal` to the process `pidfd` names (`pidfd_send_signal(2)`, Linux 5.1 and later):
/// `ESRCH` once that process has been reaped, whoever has its number now.
fn pidfd_send_signal(pidfd: BorrowedFd<'_>, signal: libc::c_int) -> io::Result<()> {
    let (fd, signal) = (
        libc::c_long::from(pidfd.as_raw_fd()),
        libc::c_long::from(signal),
    );
    let (info, flags) = (std::ptr::null::<libc::siginfo_t>(), libc::c_long::from(0u8));
    // SAFETY: the only pointer, `info`, is null, which pidfd_send_signal(2) takes as "no
    // siginfo" and never reads; `fd` is borrowed, so it stays open (and names the same
    // process) for the whole call. The signal reaches only the process the pidfd names,
    // never another that took its number later.
    #[allow(unsafe_code)]
    let rc = unsafe { libc::syscall(libc::SYS_pidfd_send_signal, fd, signal, info, flags) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Sends SIGTERM to `pid`, found as one of `parent`'s network processes, if it still is one,
/// through a pidfd (see the module docs for why that reaches no other process).
fn end_network_child(pid: u32, parent: u32) {
    // The pidfd comes first: it names whichever process has the number now, for good.
    let pidfd = match pidfd_open(pid) {
        Ok(fd) => fd,
        Err(e) => {
            // No kill(2) instead, which could reach an unrelated process that took the
            // number: the network process stays, which only costs memory.
            tracing::debug!(pid, error = %e, "no pidfd for WebKit's network process; left running");
            return;
        }
    };
    // Then the re-check, which sees the process that has the number at or after
    // `pidfd_open`: if that is still our network child, either it is the one the pidfd
    // names, or the pidfd names an earlier process that is gone and the signal goes nowhere.
    let still_ours = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .is_ok_and(|line| should_signal(&line, pid, parent));
    if !still_ours {
        tracing::debug!(pid, "no longer WebKit's network process; not signalled");
        return;
    }
    match pidfd_send_signal(pidfd.as_fd(), libc::SIGTERM) {
        Ok(()) => tracing::debug!(pid, "ended WebKit's network process (no window)"),
        Err(e) => tracing::debug!(pid, error = %e, "cannot signal WebKit's network process"),
    }
}

/// After the last webview closed: ends the network process unless a window came back.
pub fn end_when_idle<R: Runtime>(app: &AppHandle<R>) {
    let app = app.clone();
    std::thread::spawn(move || {
        std::thread::sleep(DELAY);
        if !app.webview_windows().is_empty() {
            return;
        }
        let parent = std::process::id();
        for pid in network_children(Path::new("/proc"), parent) {
            end_network_child(pid, parent);
        }
    });
}

#[cfg(test)]
mod tests {
    use std::io::{BufRead, BufReader};
    use std::os::unix::process::ExitStatusExt;
    use std::process::{Command, Stdio};

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

    #[test]
    fn signals_only_what_is_still_our_network_child() {
        assert!(should_signal(
            "8489 (WebKitNetworkPr) S 7845 7845",
            8489,
            7845
        ));
        // The number now belongs to another parent's process, or another of our children.
        assert!(!should_signal("8489 (WebKitNetworkPr) S 1 1", 8489, 7845));
        assert!(!should_signal("8489 (sleep) S 7845 7845", 8489, 7845));
        // Not the line of the pid asked about, or no line at all.
        assert!(!should_signal(
            "8490 (WebKitNetworkPr) S 7845 7845",
            8489,
            7845
        ));
        assert!(!should_signal("", 8489, 7845));
    }

    #[test]
    fn a_pidfd_signal_reaches_the_child() {
        let mut child = Command::new("sleep").arg("30").spawn().unwrap();
        let sent =
            pidfd_open(child.id()).and_then(|fd| pidfd_send_signal(fd.as_fd(), libc::SIGTERM));
        if sent.is_err() {
            let _ = child.kill();
        }
        let status = child.wait().unwrap();
        sent.unwrap();
        assert_eq!(status.signal(), Some(libc::SIGTERM));
    }

    #[test]
    fn a_reaped_childs_pid_names_nothing() {
        let mut child = Command::new("sleep").arg("30").spawn().unwrap();
        let pid = child.id();
        let early = pidfd_open(pid);
        child.kill().unwrap();
        child.wait().unwrap();
        // A pidfd opened before the child was reaped still names it: the signal goes nowhere.
        let early = early.unwrap();
        let sent = pidfd_send_signal(early.as_fd(), libc::SIGTERM);
        assert_eq!(sent.unwrap_err().raw_os_error(), Some(libc::ESRCH));
        // And the number, free now, gets no pidfd.
        assert_eq!(
            pidfd_open(pid).unwrap_err().raw_os_error(),
            Some(libc::ESRCH)
        );
    }

    #[test]
    fn ends_a_network_child_of_ours() {
        // A shell that names itself like the network process, says so, then waits on stdin.
        let mut child = Command::new("sh")
            .arg("-c")
            .arg("printf WebKitNetworkPr > /proc/$$/comm && echo ready && read x")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line, "ready\n");
        end_network_child(child.id(), std::process::id());
        // wait() closes stdin first: a child left running ends by itself, not by a signal.
        assert_eq!(child.wait().unwrap().signal(), Some(libc::SIGTERM));
    }

    #[test]
    fn leaves_other_children_alone() {
        let mut child = Command::new("sleep").arg("30").spawn().unwrap();
        end_network_child(child.id(), std::process::id());
        // A SIGTERM sent above would already have set the exit signal; SIGKILL shows none was.
        child.kill().unwrap();
        assert_eq!(child.wait().unwrap().signal(), Some(libc::SIGKILL));
    }
}
