//! What the storage backend knows of its session's control connection.
//!
//! libunftp gives the storage backend no way to talk to the client or to see the connection.
//! Every session's control connection runs through our relay ([`crate::ftp::relay`]): the client
//! talks to the relay, and the relay talks plain FTP to libunftp over a loopback connection.
//! The tap is the state the relay and the backend share:
//! - `explain`: the reason for the error reply libunftp is about to send (its texts are fixed
//!   per error kind); the relay puts it in front of that reply as `550-why`, with the code
//!   libunftp actually sends, encrypted with the rest on FTPS sessions.
//! - the commit gate's inputs: how many bytes the client has sent on the control connection
//!   (counted by the relay as it reads them), where the current upload's command ended in
//!   that count (so an ABOR sent right after the `150` counts), whether the client is gone,
//!   and a duplicate handle on the client's own socket to peek at: bytes the relay has not
//!   read yet, or the client's FIN, are seen there at once, however busy the relay is. The
//!   same on every OS.
//! - the session's TLS state (control channel, `PROT P` data channel) and the MLST facts the
//!   client selected with `OPTS MLST`.
//! - `close`: shut libunftp's end down when the gateway stops, which ends the session.
//!
//! - the end of the data stream: whether the client ended its TLS data stream with a
//!   close_notify (the relay terminates data TLS and records it), and, for a client on this
//!   host, which process holds its control socket ([`crate::ftp::peer_process`]).
//!
//! When an upload's data stream ends, [`ControlTap::settle`] decides whether it was the end the
//! client meant, with no fixed wait where the end says so itself:
//! - a TLS data stream that ended with the client's close_notify was ended on purpose (a
//!   killed client sends none: its upload fails with a read error before this);
//! - over plain FTP, a client on this host whose process still holds its control socket was
//!   not killed: a dying process loses its file table before the kernel sends the FINs of its
//!   sockets, so when the data connection's FIN arrives the process of a killed client no
//!   longer holds the socket (Linux; measured: the control FIN itself comes up to 10 ms after
//!   the data FIN on a loaded machine);
//! - otherwise (a remote client over plain FTP, or where the owner cannot be read) the gate
//!   waits up to [`SETTLE`] for the relay to see the control connection close or a command
//!   arrive, returning at once when it does.
//!
//! Before each of these the gate asks what is already known: the control connection closed,
//! or a byte (ABOR) arrived since the upload command, counted by the relay or still unread in
//! the client's socket. A client that closes only the data connection mid-file, keeps the
//! control connection open and sends nothing (FileZilla's cancel over plain FTP) looks exactly
//! like a finished upload: no server can tell the two apart. Over FTPS the data channel must
//! end with a TLS close_notify, so the same cancel is an error there and nothing is stored.

use std::io::ErrorKind;
use std::net::{Shutdown, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use crate::error::Failure;
use crate::ftp::peer_process::{Owner, SocketOwner};
use crate::ftp::text::{Facts, one_line};
use crate::storage::hash::HashAlgo;

/// How long after the end of a plain-FTP data stream the gate waits for the control
/// connection to close or a command to arrive, when nothing else tells a finished upload from
/// a killed client (a remote client, or a process whose sockets cannot be read): a killed
/// client's control connection closes a moment after its data connection.
pub(crate) const SETTLE: Duration = Duration::from_millis(40);

/// How long a reason waits for its error reply before it is dropped as stale.
const REASON_FRESH: Duration = Duration::from_secs(60);
/// `transfer_mark` before any upload command was forwarded.
const NO_MARK: u64 = u64::MAX;

/// What a peek at a control socket shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ControlState {
    /// Open, nothing unread.
    Idle,
    /// Open, with bytes libunftp has not read yet.
    Pending,
    /// Closed (FIN) or reset.
    Closed,
}

fn peek(sock: &TcpStream) -> ControlState {
    let mut byte = [0u8; 1];
    match sock.peek(&mut byte) {
        Ok(0) => ControlState::Closed,
        Ok(_) => ControlState::Pending,
        Err(e) if e.kind() == ErrorKind::WouldBlock => ControlState::Idle,
        Err(e) if e.kind() == ErrorKind::Interrupted => ControlState::Idle,
        Err(_) => ControlState::Closed,
    }
}

/// The shared session state. See the module docs.
#[derive(Debug)]
pub struct ControlTap {
    sock: TcpStream,
    client: OnceLock<TcpStream>,
    reason: Mutex<Option<(String, Instant)>>,
    /// The algorithm of the hash command the relay turned into `SITE MD5` (see
    /// `storage/hash.rs`), until the backend takes it.
    hash_request: Mutex<Option<HashAlgo>>,
    transfer_mark: AtomicU64,
    client_bytes: AtomicU64,
    client_gone: AtomicBool,
    control_tls: AtomicBool,
    data_tls: AtomicBool,
    facts: AtomicU8,
    listing_is_mlsd: AtomicBool,
    transfer_bytes: Arc<AtomicU64>,
    /// The client's TLS data stream of the current upload ended with its close_notify.
    data_closed_cleanly: AtomicBool,
    /// The number of the session's current data connection (bumped by every passive reply).
    data_generation: AtomicU64,
    /// The number of the last relayed data connection that broke (a reset, a TLS end without
    /// close_notify, a failed handshake): its end reaches libunftp as a reset, which Wine
    /// may pass on as a clean end (see [`crate::ftp::data_end`]), so the gate asks here too. Only
    /// the current connection's break counts: an earlier transfer's never fails a later one.
    broken_generation: AtomicU64,
    /// The number of the last data connection whose TLS session was refused (it did not
    /// resume this session's): the transfer's error reply says so.
    refused_generation: AtomicU64,
    /// The transfer command forwarded since the last passive reply reads its data connection
    /// to the end (RETR, LIST, NLST, MLSD): TLS tickets sent on it arrive.
    transfer_reads: AtomicBool,
    /// Woken by the relay whenever the client sends a byte or closes its control connection.
    control_event: Notify,
    /// The process on this host that holds the client's control socket, once looked up.
    owner: tokio::sync::OnceCell<Option<SocketOwner>>,
    /// The relay asked for that process: the client is not behind a proxy that would hold
    /// its sockets alive after the client died.
    owner_wanted: AtomicBool,
}

/// Splits libunftp's end of the loopback connection into the stream for libunftp and the tap.
pub(crate) fn split(
    stream: tokio::net::TcpStream,
) -> std::io::Result<(tokio::net::TcpStream, ControlTap)> {
    let std_stream = stream.into_std()?;
    let dup = std_stream.try_clone()?;
    let stream = tokio::net::TcpStream::from_std(std_stream)?;
    Ok((
        stream,
        ControlTap {
            sock: dup,
            client: OnceLock::new(),
            reason: Mutex::new(None),
            hash_request: Mutex::new(None),
            transfer_mark: AtomicU64::new(NO_MARK),
            client_bytes: AtomicU64::new(0),
            client_gone: AtomicBool::new(false),
            control_tls: AtomicBool::new(false),
            data_tls: AtomicBool::new(false),
            facts: AtomicU8::new(Facts::ALL.bits()),
            listing_is_mlsd: AtomicBool::new(false),
            transfer_bytes: Arc::new(AtomicU64::new(0)),
            data_closed_cleanly: AtomicBool::new(false),
            data_generation: AtomicU64::new(0),
            broken_generation: AtomicU64::new(0),
            refused_generation: AtomicU64::new(0),
            transfer_reads: AtomicBool::new(false),
            control_event: Notify::new(),
            owner: tokio::sync::OnceCell::new(),
            owner_wanted: AtomicBool::new(false),
        },
    ))
}

impl ControlTap {
    /// Keeps a duplicate of the client's own control socket for the commit gate to peek at.
    pub fn watch_client(&self, client: TcpStream) {
        let _ = self.client.set(client);
    }

    /// The relay forwarded an upload command (STOR, APPE, STOU) that ended at `client_bytes`
    /// bytes of the client's control stream. Its data stream has not ended yet.
    pub fn set_transfer_mark(&self, client_bytes: u64) {
        self.data_closed_cleanly.store(false, Ordering::SeqCst);
        self.transfer_mark.store(client_bytes, Ordering::SeqCst);
    }

    /// The relay read `n` more bytes from the client.
    pub fn count_client_bytes(&self, n: usize) {
        self.client_bytes.fetch_add(n as u64, Ordering::SeqCst);
        self.control_event.notify_waiters();
    }

    /// The relay received the client's close_notify on the current TLS data connection,
    /// before it passed the end of the stream on to libunftp.
    pub fn set_data_closed_cleanly(&self) {
        self.data_closed_cleanly.store(true, Ordering::SeqCst);
    }

    /// A passive reply announced a new data connection: its number. What broke before is
    /// forgotten.
    pub fn next_data_connection(&self) -> u64 {
        self.data_generation.fetch_add(1, Ordering::SeqCst) + 1
    }

    /// Data connection `number` broke; nothing changes if it is no longer the current one.
    pub fn data_connection_broke(&self, number: u64) {
        if self.data_generation.load(Ordering::SeqCst) == number {
            self.broken_generation.store(number, Ordering::SeqCst);
        }
    }

    /// Data connection `number` was refused for not resuming this session's TLS session.
    pub fn data_connection_refused(&self, number: u64) {
        if self.data_generation.load(Ordering::SeqCst) == number {
            self.refused_generation.store(number, Ordering::SeqCst);
        }
    }

    /// Whether the current data connection was refused (`data_connection_refused`); asked
    /// once, by the transfer's error reply.
    pub fn take_data_refused(&self) -> bool {
        let current = self.data_generation.load(Ordering::SeqCst);
        current != 0
            && self
                .refused_generation
                .compare_exchange(current, 0, Ordering::SeqCst, Ordering::SeqCst)
                .is_ok()
    }

    /// Whether the current data connection broke.
    fn data_broken(&self) -> bool {
        let current = self.data_generation.load(Ordering::SeqCst);
        current != 0 && self.broken_generation.load(Ordering::SeqCst) == current
    }

    /// The relay forwarded a transfer command (`true`: one whose data flows to the client),
    /// or opened a new passive connection (`false`).
    pub fn set_transfer_reads(&self, reads: bool) {
        self.transfer_reads.store(reads, Ordering::SeqCst);
    }

    /// Whether the transfer of the current passive connection is known to be a download or
    /// a listing.
    pub fn transfer_reads(&self) -> bool {
        self.transfer_reads.load(Ordering::SeqCst)
    }

    /// Bytes the client has sent on the control connection so far.
    pub fn client_bytes(&self) -> u64 {
        self.client_bytes.load(Ordering::SeqCst)
    }

    /// The relay saw the client close or reset the control connection.
    pub fn set_client_gone(&self) {
        self.client_gone.store(true, Ordering::SeqCst);
        self.control_event.notify_waiters();
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

    /// Leaves the reason for the error reply libunftp is about to send.
    pub fn explain(&self, text: &str) {
        *crate::sync::lock(&self.reason) = Some((one_line(text), Instant::now()));
    }

    /// Leaves the algorithm of a hash command for the backend's `SITE MD5` that follows.
    pub fn ask_hash(&self, algo: HashAlgo) {
        *crate::sync::lock(&self.hash_request) = Some(algo);
    }

    /// The algorithm the relay asked for, if the `SITE MD5` now running is a hash command's.
    pub fn take_hash_request(&self) -> Option<HashAlgo> {
        crate::sync::lock(&self.hash_request).take()
    }

    /// The reason left for an error reply, if it is fresh.
    pub fn take_reason(&self) -> Option<String> {
        let taken = crate::sync::lock(&self.reason).take();
        taken
            .filter(|(_, at)| at.elapsed() < REASON_FRESH)
            .map(|(text, _)| text)
    }

    /// Peeks at libunftp's end without consuming anything.
    pub fn state(&self) -> ControlState {
        peek(&self.sock)
    }

    /// Peeks at the client's own socket: bytes the relay has not read yet, or its end.
    pub fn client_state(&self) -> ControlState {
        self.client.get().map_or(ControlState::Idle, peek)
    }

    /// Shuts libunftp's end down both ways.
    pub fn close(&self) {
        let _ = self.sock.shutdown(Shutdown::Both);
    }
}

/// The decision of the commit gate, apart from how its inputs are read: an upload whose
/// command ended at `mark` bytes of the client's control stream must not be committed when the
/// control connection is gone, or when the client has sent anything since (counted by the
/// relay, or still unread in the client's socket).
pub(crate) fn may_commit(
    mark: u64,
    now: u64,
    client: ControlState,
    connection_gone: bool,
) -> Result<(), &'static str> {
    if connection_gone || client == ControlState::Closed {
        return Err("the control connection closed before the upload finished");
    }
    if now > mark || client == ControlState::Pending {
        return Err("the client sent a command (ABOR) during the upload");
    }
    Ok(())
}

/// The tap's side of the upload's commit gate (the storage backend implements the upload's
/// `CommitGate` with these): see [`may_commit`].
impl ControlTap {
    /// Where the current upload began in the count of the client's control bytes: the end
    /// of its command line, or now when no upload command was forwarded.
    pub fn upload_mark(&self) -> u64 {
        match self.transfer_mark.load(Ordering::SeqCst) {
            NO_MARK => self.client_bytes(),
            mark => mark,
        }
    }

    /// `Err` when the upload begun at `mark` must not be committed: the client is gone or
    /// sent something since.
    pub fn check_commit(&self, mark: u64) -> Result<(), Failure> {
        if self.data_broken() {
            return Err(Failure::Aborted(
                "the data connection broke before the upload finished".into(),
            ));
        }
        let gone = self.client_gone.load(Ordering::SeqCst) || self.state() == ControlState::Closed;
        may_commit(mark, self.client_bytes(), self.client_state(), gone)
            .map_err(|why| Failure::Aborted(why.into()))
    }

    /// Starts looking up the process on this host that holds the client's control socket
    /// (once per session; nothing for a client on another host), so that the first upload's
    /// end need not wait for it. Only for a client that talks to the gateway itself: a proxy
    /// on this host (a load balancer, which needs `masquerade`) holds the sockets of a client
    /// that died.
    pub fn look_up_owner(self: &Arc<Self>) {
        if self.owner_wanted.swap(true, Ordering::SeqCst) || self.client.get().is_none() {
            return;
        }
        let tap = self.clone();
        tokio::spawn(async move {
            let _ = tap.owner().await;
        });
    }

    /// The owner of the client's control socket, looked up once.
    async fn owner(&self) -> Option<SocketOwner> {
        let sock = self.client.get()?;
        let (client, server) = (sock.peer_addr().ok()?, sock.local_addr().ok()?);
        // Only a client on this host can be found: do not read /proc for any other.
        let (c, s) = (client.ip().to_canonical(), server.ip().to_canonical());
        if !(c.is_loopback() || c == s) {
            return None;
        }
        *self
            .owner
            .get_or_init(|| async move {
                tokio::task::spawn_blocking(move || SocketOwner::find(client, server))
                    .await
                    .ok()
                    .flatten()
            })
            .await
    }

    /// The commit gate at the end of an upload's data stream (see the module docs): `Ok` when
    /// the upload begun at `mark` ended as the client meant it to.
    pub async fn settle(&self, mark: u64) -> Result<(), Failure> {
        let event = self.control_event.notified();
        tokio::pin!(event);
        event.as_mut().enable();
        self.check_commit(mark)?;
        // Under PROT P every data connection is the relay's TLS pipe, whose clean end is the
        // client's close_notify (an end without one reaches the upload as a reset).
        if self.data_tls() && self.data_closed_cleanly.load(Ordering::SeqCst) {
            return Ok(());
        }
        // Only when the relay asked for it: not behind a load balancer.
        let owner = if self.owner_wanted.load(Ordering::SeqCst) {
            tokio::time::timeout(SETTLE, self.owner())
                .await
                .ok()
                .flatten()
        } else {
            None
        };
        if let Some(owner) = owner {
            // One readlink of /proc: quick enough to do here.
            match owner.still_holds() {
                Owner::Holds => return self.check_commit(mark),
                Owner::Gone => {
                    return Err(Failure::Aborted(
                        "the client's process ended before the upload finished".into(),
                    ));
                }
                Owner::Unknown => {}
            }
        }
        let _ = tokio::time::timeout(SETTLE, event).await;
        self.check_commit(mark)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Waits until `done` is true (a socket's state reaching the tap), asking every 5 ms;
    /// fails naming `what` after 10 s.
    async fn until(what: &str, mut done: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !done() {
            assert!(Instant::now() < deadline, "not within 10 s: {what}");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    #[test]
    fn commit_decision_table() {
        use ControlState::*;
        assert!(may_commit(10, 10, Idle, false).is_ok());
        assert!(may_commit(10, 16, Idle, false).is_err(), "ABOR counted");
        assert!(
            may_commit(10, 10, Pending, false).is_err(),
            "ABOR not read yet"
        );
        assert!(may_commit(10, 10, Closed, false).is_err(), "client's FIN");
        assert!(may_commit(10, 10, Idle, true).is_err(), "client gone");
        assert!(may_commit(0, 0, Idle, true).is_err());
    }

    #[tokio::test]
    async fn tap_counts_sees_close_and_explains() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
        let relay = tokio::net::TcpStream::connect(addr)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let (server, _) = listener.accept().await.unwrap_or_else(|e| panic!("{e}"));
        let (_server, tap) = split(server).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(tap.state(), ControlState::Idle);
        let mark = tap.upload_mark();
        assert!(tap.check_commit(mark).is_ok());
        tap.count_client_bytes(6);
        assert!(
            tap.check_commit(mark).is_err(),
            "bytes arrived since the mark"
        );
        assert!(tap.check_commit(tap.upload_mark()).is_ok());
        // An upload's mark is where its command ended, not when put() began.
        tap.set_transfer_mark(3);
        assert_eq!(tap.upload_mark(), 3);
        assert!(
            tap.check_commit(tap.upload_mark()).is_err(),
            "bytes after the STOR line"
        );
        tap.set_transfer_mark(tap.client_bytes());
        tap.explain("no such\r\nfile");
        assert_eq!(tap.take_reason().as_deref(), Some("no such  file"));
        assert_eq!(tap.take_reason(), None, "taken once");
        // A FIN from the client, before the relay read it, is seen on its socket.
        let (client, server_side) = {
            let l = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            let a = l.local_addr().unwrap_or_else(|e| panic!("{e}"));
            let c = tokio::net::TcpStream::connect(a)
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            let (s, _) = l.accept().await.unwrap_or_else(|e| panic!("{e}"));
            (c, s)
        };
        let std_side = server_side.into_std().unwrap_or_else(|e| panic!("{e}"));
        tap.watch_client(std_side.try_clone().unwrap_or_else(|e| panic!("{e}")));
        let mark = tap.upload_mark();
        assert!(tap.check_commit(mark).is_ok());
        drop(client);
        until("the client's FIN seen", || tap.check_commit(mark).is_err()).await;
        drop(std_side);
        drop(relay);
        until("the relay's close seen", || {
            tap.state() == ControlState::Closed
        })
        .await;
        let tap2_mark = tap.upload_mark();
        assert!(tap.check_commit(tap2_mark).is_err(), "closed");
    }

    /// Only the current data connection's break or refusal counts: an earlier one never
    /// fails a later transfer, and a refusal is told once.
    #[tokio::test]
    async fn breaks_and_refusals_belong_to_their_data_connection() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
        let _relay = tokio::net::TcpStream::connect(addr)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let (server, _) = listener.accept().await.unwrap_or_else(|e| panic!("{e}"));
        let (_server, tap) = split(server).unwrap_or_else(|e| panic!("{e}"));
        let mark = tap.upload_mark();
        let first = tap.next_data_connection();
        tap.data_connection_broke(first);
        assert!(tap.check_commit(mark).is_err(), "the current one broke");
        let second = tap.next_data_connection();
        assert!(
            tap.check_commit(mark).is_ok(),
            "a new one: the old break is gone"
        );
        tap.data_connection_broke(first);
        assert!(tap.check_commit(mark).is_ok(), "a late break of an old one");
        tap.data_connection_refused(first);
        assert!(!tap.take_data_refused(), "an old one's refusal");
        tap.data_connection_refused(second);
        assert!(tap.take_data_refused());
        assert!(!tap.take_data_refused(), "told once");
    }
}
