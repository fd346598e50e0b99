//! What the storage backend knows of its session's control connection.
//!
//! libunftp gives the storage backend no way to talk to the client or to see the connection.
//! Every session's control connection runs through our relay ([`crate::relay`]): the client
//! talks to the relay, and the relay talks plain FTP to libunftp over a loopback connection.
//! The tap is the state the relay and the backend share, plus a duplicate handle on libunftp's
//! end of that loopback connection:
//! - `explain`: write the first line of a multi-line FTP reply (`550-why`) just before
//!   libunftp writes its fixed last line with the same code (`550 File not found`), so the
//!   user reads the real reason. The loopback leg is always plain text, so this works on FTPS
//!   sessions too (the relay encrypts it with the rest of the reply).
//! - `client_bytes`: how many bytes the client has sent on the control connection in all,
//!   counted by the relay as it reads them. libunftp reads an ABOR sent during an upload at once
//!   and parks it behind the session lock until `put()` returns; the count still moves, so any
//!   control bytes that arrive while an upload runs mean the client spoke (ABOR, QUIT) instead
//!   of waiting for the `226`. The same on every OS.
//! - `client_gone`: the relay saw the client close or reset the control connection.
//! - the session's TLS state (control channel, `PROT P` data channel) and the MLST facts the
//!   client selected with `OPTS MLST`.
//! - `close`: shut libunftp's end down when the gateway stops, which ends the session.
//!
//! A client that closes only the data connection mid-file, keeps the control connection open
//! and sends nothing (FileZilla's cancel over plain FTP) looks exactly like a finished upload:
//! no server can tell the two apart. Over FTPS the data channel must end with a TLS
//! close_notify, so the same cancel is an error there and nothing is stored.

use std::io::{ErrorKind, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::relay::wire::Facts;

/// What a peek at libunftp's end of the control connection shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ControlState {
    /// Open, nothing unread.
    Idle,
    /// Open, with bytes libunftp has not read yet.
    Pending,
    /// The relay closed it (the client went away) or it was reset.
    Closed,
}

/// The shared session state. See the module docs.
#[derive(Debug)]
pub struct ControlTap {
    sock: TcpStream,
    client_bytes: AtomicU64,
    client_gone: AtomicBool,
    control_tls: AtomicBool,
    data_tls: AtomicBool,
    facts: AtomicU8,
    listing_is_mlsd: AtomicBool,
    transfer_bytes: Arc<AtomicU64>,
}

/// Splits libunftp's end of the loopback connection into the stream for libunftp and the tap.
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
            client_bytes: AtomicU64::new(0),
            client_gone: AtomicBool::new(false),
            control_tls: AtomicBool::new(false),
            data_tls: AtomicBool::new(false),
            facts: AtomicU8::new(Facts::ALL.bits()),
            listing_is_mlsd: AtomicBool::new(false),
            transfer_bytes: Arc::new(AtomicU64::new(0)),
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
    /// The relay read `n` more bytes from the client.
    pub fn count_client_bytes(&self, n: usize) {
        self.client_bytes.fetch_add(n as u64, Ordering::SeqCst);
    }

    /// Bytes the client has sent on the control connection so far.
    pub fn client_bytes(&self) -> u64 {
        self.client_bytes.load(Ordering::SeqCst)
    }

    /// The relay saw the client close or reset the control connection.
    pub fn set_client_gone(&self) {
        self.client_gone.store(true, Ordering::SeqCst);
    }

    /// Records that the control channel switched to TLS.
    pub fn set_control_tls(&self, tls: bool) {
        self.control_tls.store(tls, Ordering::SeqCst);
    }

    /// True once the control channel is TLS.
    pub fn control_tls(&self) -> bool {
        self.control_tls.load(Ordering::SeqCst)
    }

    /// Records the data channel protection (`PROT P` accepted: true; `PROT C`: false).
    pub fn set_data_tls(&self, tls: bool) {
        self.data_tls.store(tls, Ordering::SeqCst);
    }

    /// True when data connections are TLS (`PROT P`).
    pub fn data_tls(&self) -> bool {
        self.data_tls.load(Ordering::SeqCst)
    }

    /// The MLST facts the client selected (`OPTS MLST`); all by default.
    pub fn facts(&self) -> Facts {
        Facts::from_bits(self.facts.load(Ordering::SeqCst))
    }

    /// Records the client's `OPTS MLST` selection.
    pub fn set_facts(&self, facts: Facts) {
        self.facts.store(facts.bits(), Ordering::SeqCst);
    }

    /// Records whether the listing command now being forwarded is MLSD (whose lines carry
    /// the selected facts) rather than LIST or NLST.
    pub fn set_listing_is_mlsd(&self, mlsd: bool) {
        self.listing_is_mlsd.store(mlsd, Ordering::SeqCst);
    }

    /// True when the listing now running is an MLSD.
    pub fn listing_is_mlsd(&self) -> bool {
        self.listing_is_mlsd.load(Ordering::SeqCst)
    }

    /// The counter a transfer's tracker adds its bytes to (see `TransferTracker::mirrored`).
    pub fn transfer_counter(&self) -> Arc<AtomicU64> {
        self.transfer_bytes.clone()
    }

    /// Bytes moved by the transfers since the last call, for the log line of a command.
    pub fn take_transfer_bytes(&self) -> u64 {
        self.transfer_bytes.swap(0, Ordering::Relaxed)
    }

    /// Writes `code-text` as the first line of the multi-line reply libunftp is about to
    /// finish with `code`. Best effort: skipped when the socket would block.
    pub fn explain(&self, code: u16, text: &str) {
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

    /// Peeks at libunftp's end without consuming anything.
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

    /// Shuts libunftp's end down both ways.
    pub fn close(&self) {
        let _ = self.sock.shutdown(Shutdown::Both);
    }
}

/// The decision of the commit gate, apart from how its inputs are read: an upload begun when
/// the client had sent `mark` control bytes must not be committed when the control connection
/// is gone, or when the client has sent anything since.
pub fn may_commit(mark: u64, now: u64, connection_gone: bool) -> Result<(), &'static str> {
    if connection_gone {
        return Err("the control connection closed before the upload finished");
    }
    if now > mark {
        return Err("the client sent a command (ABOR) during the upload");
    }
    Ok(())
}

/// The tap as the upload's commit gate: see [`may_commit`].
impl crate::storage::upload::CommitGate for ControlTap {
    fn mark(&self) -> u64 {
        self.client_bytes()
    }

    fn check(&self, mark: u64) -> Result<(), crate::error::Failure> {
        let gone = self.client_gone.load(Ordering::SeqCst) || self.state() == ControlState::Closed;
        may_commit(mark, self.client_bytes(), gone)
            .map_err(|why| crate::error::Failure::Aborted(why.into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    #[test]
    fn one_line_strips_breaks() {
        assert_eq!(one_line(" a\r\nb\0c "), "a  b c");
    }

    #[test]
    fn commit_decision_table() {
        assert!(may_commit(10, 10, false).is_ok());
        assert!(may_commit(10, 16, false).is_err(), "ABOR arrived");
        assert!(may_commit(10, 10, true).is_err(), "client gone");
        assert!(may_commit(0, 0, true).is_err());
    }

    #[tokio::test]
    async fn tap_counts_sees_close_and_explains() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
        let mut relay = tokio::net::TcpStream::connect(addr)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let (server, _) = listener.accept().await.unwrap_or_else(|e| panic!("{e}"));
        let (_server, tap) = split(server).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(tap.state(), ControlState::Idle);
        use crate::storage::upload::CommitGate;
        let mark = tap.mark();
        assert!(tap.check(mark).is_ok());
        tap.count_client_bytes(6);
        assert!(tap.check(mark).is_err(), "bytes arrived since the mark");
        assert!(tap.check(tap.mark()).is_ok());
        tap.explain(550, "no such\r\nfile");
        let mut line = vec![0u8; 19];
        relay
            .read_exact(&mut line)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(line, b"550-no such  file\r\n");
        drop(relay);
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(tap.state(), ControlState::Closed);
        let tap2_mark = tap.mark();
        assert!(tap.check(tap2_mark).is_err(), "closed");
    }
}
