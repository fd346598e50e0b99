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
//!   has sent bytes libunftp has not read yet (an ABOR queued behind a running transfer).
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

    /// Shuts the connection down both ways.
    pub fn close(&self) {
        let _ = self.sock.shutdown(Shutdown::Both);
    }
}

/// The tap as the upload's commit gate: an upload whose control connection is gone was
/// cancelled (the client was killed or hung up), even if its data stream ended cleanly.
impl crate::storage::upload::CommitGate for ControlTap {
    fn check(&self) -> Result<(), crate::error::Failure> {
        match self.state() {
            ControlState::Closed => Err(crate::error::Failure::Aborted(
                "the control connection closed before the upload finished".into(),
            )),
            ControlState::Idle | ControlState::Pending => Ok(()),
        }
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
