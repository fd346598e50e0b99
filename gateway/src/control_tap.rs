//! A second handle on a control connection, kept beside the one libunftp owns.
//!
//! libunftp takes the control socket and gives the storage backend no way to talk to the
//! client or to see the connection. This module keeps a duplicate of the socket (`try_clone`,
//! the same kernel socket) for three narrow uses:
//! - `explain`: write the first line of a multi-line FTP reply (`550-why`) just before
//!   libunftp writes its fixed last line with the same code (`550 File not found`), so the
//!   user reads the real reason. Only on a plain-text control channel (never inside TLS), and
//!   only where libunftp is known to answer with that code next.
//! - `state`: peek (without consuming) whether the client closed the control connection or
//!   has sent bytes libunftp has not read yet.
//! - `bytes_received`: how many bytes the kernel has received on the control connection in
//!   all (Linux `TCP_INFO`). libunftp reads an ABOR sent during an upload at once and then
//!   parks it behind the session lock until `put()` returns, so peeking cannot see it; the
//!   kernel's byte count can: any control bytes that arrive while an upload runs mean the
//!   client spoke (ABOR, QUIT) instead of waiting for the `226`.
//!
//! A client that closes only the data connection mid-file, keeps the control connection open
//! and sends nothing (FileZilla's cancel over plain FTP) looks exactly like a finished upload:
//! no server can tell the two apart. Over FTPS the data channel must end with a TLS
//! close_notify, so the same cancel is an error there and nothing is stored.
//! - `close`: shut the socket down when the gateway stops, which ends libunftp's session.

use std::io::{ErrorKind, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// What a peek at the control connection shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ControlState {
    /// Open, nothing unread.
    Idle,
    /// Open, with bytes libunftp has not read yet.
    Pending,
    /// The client closed or reset the connection.
    Closed,
}

/// The duplicate handle. See the module docs.
#[derive(Debug)]
pub struct ControlTap {
    sock: TcpStream,
    tls: AtomicBool,
}

/// Splits an accepted connection into the stream for libunftp and the tap.
pub fn split(
    stream: tokio::net::TcpStream,
) -> std::io::Result<(tokio::net::TcpStream, ControlTap)> {
    let std_stream = stream.into_std()?;
    let dup = std_stream.try_clone()?;
    let stream = tokio::net::TcpStream::from_std(std_stream)?;
    Ok((
        stream,
        ControlTap {
            sock: dup,
            tls: AtomicBool::new(false),
        },
    ))
}

/// Text safe to put on one reply line.
pub fn one_line(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect::<String>()
        .trim()
        .to_owned()
}

impl ControlTap {
    /// Records that the control channel switched to TLS: no more plain-text writes.
    pub fn set_tls(&self, tls: bool) {
        self.tls.store(tls, Ordering::Relaxed);
    }

    /// True while the control channel is plain text.
    pub fn is_plaintext(&self) -> bool {
        !self.tls.load(Ordering::Relaxed)
    }

    /// Writes `code-text` as the first line of the multi-line reply libunftp is about to
    /// finish with `code`. Best effort: skipped under TLS or when the socket would block.
    pub fn explain(&self, code: u16, text: &str) {
        if !self.is_plaintext() {
            return;
        }
        let line = format!("{code}-{}\r\n", one_line(text));
        let mut sock = &self.sock;
        if let Err(e) = sock.write_all(line.as_bytes()) {
            tracing::debug!(error = %e, "could not write reply detail");
        }
    }

    /// Like [`explain`](Self::explain), for replies that follow a `150` preliminary reply
    /// written by another task: waits until `started` is at least `settle` old so that the
    /// `150` line has gone out first.
    pub async fn explain_after(&self, started: Instant, settle: Duration, code: u16, text: &str) {
        let elapsed = started.elapsed();
        if elapsed < settle {
            tokio::time::sleep(settle - elapsed).await;
        }
        self.explain(code, text);
    }

    /// Peeks at the connection without consuming anything.
    pub fn state(&self) -> ControlState {
        let mut byte = [0u8; 1];
        match self.sock.peek(&mut byte) {
            Ok(0) => ControlState::Closed,
            Ok(_) => ControlState::Pending,
            Err(e) if e.kind() == ErrorKind::WouldBlock => ControlState::Idle,
            Err(e) if e.kind() == ErrorKind::Interrupted => ControlState::Idle,
            Err(_) => ControlState::Closed,
        }
    }

    /// Bytes the kernel has received on this connection in all, where the OS tells
    /// (Linux); `None` elsewhere.
    #[cfg(target_os = "linux")]
    #[allow(unsafe_code)]
    pub fn bytes_received(&self) -> Option<u64> {
        use std::os::fd::AsRawFd;
        let fd = self.sock.as_raw_fd();
        // SAFETY: `info` is a plain C struct of integers, zero-initialised and owned here;
        // `len` holds its size, so the kernel writes at most that many bytes into it. `fd` is
        // a valid socket for as long as `self.sock` lives.
        let (rc, info) = unsafe {
            let mut info: libc::tcp_info = std::mem::zeroed();
            let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
            let rc = libc::getsockopt(
                fd,
                libc::IPPROTO_TCP,
                libc::TCP_INFO,
                (&mut info as *mut libc::tcp_info).cast(),
                &mut len,
            );
            (rc, info)
        };
        (rc == 0).then_some(info.tcpi_bytes_received)
    }

    /// Bytes received in all: not known on this OS.
    #[cfg(not(target_os = "linux"))]
    pub fn bytes_received(&self) -> Option<u64> {
        None
    }

    /// Shuts the connection down both ways.
    pub fn close(&self) {
        let _ = self.sock.shutdown(Shutdown::Both);
    }
}

/// The tap as the upload's commit gate: an upload was cancelled, even if its data stream
/// ended cleanly, when the control connection is gone (the client was killed or hung up) or
/// the client sent anything on it since the upload began (ABOR).
impl crate::storage::upload::CommitGate for ControlTap {
    fn mark(&self) -> u64 {
        self.bytes_received().unwrap_or(0)
    }

    fn check(&self, mark: u64) -> Result<(), crate::error::Failure> {
        use crate::error::Failure;
        let state = self.state();
        if state == ControlState::Closed {
            return Err(Failure::Aborted(
                "the control connection closed before the upload finished".into(),
            ));
        }
        let spoke = match self.bytes_received() {
            Some(now) => now > mark,
            None => state == ControlState::Pending,
        };
        if spoke {
            return Err(Failure::Aborted(
                "the client sent a command (ABOR) during the upload".into(),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[test]
    fn one_line_strips_breaks() {
        assert_eq!(one_line(" a\r\nb\0c "), "a  b c");
    }

    #[tokio::test]
    async fn tap_sees_pending_bytes_and_close() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
        let mut client = tokio::net::TcpStream::connect(addr)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let (server, _) = listener.accept().await.unwrap_or_else(|e| panic!("{e}"));
        let (mut server, tap) = split(server).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(tap.state(), ControlState::Idle);
        use crate::storage::upload::CommitGate;
        let mark = tap.mark();
        assert!(tap.check(mark).is_ok());
        client
            .write_all(b"ABOR\r\n")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(tap.state(), ControlState::Pending);
        // Peeking consumed nothing: the owner still reads the bytes.
        let mut buf = [0u8; 6];
        server
            .read_exact(&mut buf)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(&buf, b"ABOR\r\n");
        assert!(
            tap.check(mark).is_err(),
            "bytes arrived since the mark, even though they were read"
        );
        tap.explain(550, "no such\r\nfile");
        let mut line = vec![0u8; 19];
        client
            .read_exact(&mut line)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(line, b"550-no such  file\r\n");
        tap.set_tls(true);
        assert!(!tap.is_plaintext());
        drop(client);
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(tap.state(), ControlState::Closed);
    }
}
