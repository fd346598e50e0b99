//! The control-connection relay: every session's control connection ends here, and the relay
//! talks plain FTP to libunftp over a loopback connection of its own.
//!
//! libunftp parses commands and writes replies itself, and gives the application no say in
//! either. Owning the control stream lets the gateway:
//! - do the `AUTH TLS` handshake itself, with a TLS configuration that issues TLS 1.3 session
//!   tickets on the control connection only, so that data connections (whose TLS libunftp does,
//!   with a configuration that sends no tickets) resume the control session as FileZilla
//!   requires; and with no race between the `234` reply and the client's ClientHello;
//! - answer `OPTS MLST` (RFC 3659 §7.9) and show the selected facts;
//! - show normalised paths in replies (`PWD` after `CWD ..` at the root is `"/"`);
//! - refuse plain-text logins and data connections when TLS is required;
//! - count the client's control bytes for the upload commit gate (ABOR), on every OS;
//! - log one short line per command (the password never).
//!
//! The relay also carries every passive data connection ([`data`]), on every OS and for every
//! client: libunftp accepts a data connection only from its control peer's address (for it,
//! the relay), does no data TLS here, and gives nobody a handle on its data socket. Only the
//! relay can end a download whose client stopped reading (after `idle_timeout`), or one the
//! client aborted (ABOR), and tell a reset from a clean end where the socket layer does not
//! (Wine, see `crate::ftp::data_end`). Measured against data connections straight to libunftp for
//! loopback clients (issue 20): the same throughput, 0.5 CPU-seconds more per GiB downloaded.

pub mod data;
pub mod wire;

use std::collections::VecDeque;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::ops::RangeInclusive;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

use crate::ftp::control_tap::ControlTap;
use crate::ops::events::SessionId;
use wire::{Command, Reply, ReplyAssembler};

/// The longest command line accepted (RFC 959 has no limit; paths are ≤ 1024 bytes here).
const MAX_LINE: usize = 8192;
/// How long a client may take to finish the TLS handshake after `234`.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a command waits for the replies to earlier ones before the relay stops waiting
/// for those (a safety valve: libunftp answers every command; transfers never expire).
const ORDER_WAIT: Duration = Duration::from_secs(120);

/// What the relay needs to know, shared by every session.
#[derive(Debug, Clone)]
pub struct RelayConfig {
    /// The control connection's TLS configuration, when FTPS is on.
    pub control_tls: Option<Arc<rustls::ServerConfig>>,
    /// The data connections' TLS configuration (the relay does their TLS), when FTPS is on.
    pub data_tls: Option<Arc<rustls::ServerConfig>>,
    /// The same, sending TLS 1.3 tickets (downloads and listings; see `tls::DATA_TICKETS`).
    pub data_tls_reading: Option<Arc<rustls::ServerConfig>>,
    /// A TLS data connection must resume its control connection's TLS session.
    pub require_tls_reuse: bool,
    /// Refuse plain-text logins and unencrypted data connections.
    pub require_tls: bool,
    /// The passive ports clients may be told (relayed data connections).
    pub passive_ports: RangeInclusive<u16>,
    /// The session's `idle_timeout`: a session with no command and no transfer for this long
    /// is closed (`421`), and a data connection is reset after this much silence both ways,
    /// or a write the client does not take (a download whose client stopped reading).
    pub idle: Duration,
    /// The address passive replies announce instead of the connection's own.
    pub masquerade: Option<Ipv4Addr>,
    /// Where SITE commands are reported (the audit log's lines).
    pub events: crate::ops::events::EventBus,
    /// Connections start with a PROXY protocol header from these sources (data connections
    /// too): the client's address is the one it names.
    pub proxy: Option<Arc<crate::ftp::proxy_protocol::ProxyRule>>,
}

/// The loopback address the relay connects to libunftp from, for a client at `peer`: ::1 for
/// a client on ::1, else 127.0.0.1.
pub fn inner_address(peer: IpAddr) -> IpAddr {
    match peer.to_canonical() {
        IpAddr::V6(ip) if ip.is_loopback() => IpAddr::V6(ip),
        _ => IpAddr::V4(Ipv4Addr::LOCALHOST),
    }
}

/// A connected pair of loopback sockets on `ip`: (the relay's end, libunftp's end).
pub async fn loopback_pair(ip: IpAddr) -> io::Result<(TcpStream, TcpStream)> {
    let listener = TcpListener::bind(SocketAddr::new(ip, 0)).await?;
    let addr = listener.local_addr()?;
    let connect = TcpStream::connect(addr);
    let (ours, accepted) = tokio::try_join!(connect, async {
        tokio::time::timeout(Duration::from_secs(5), listener.accept())
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "loopback accept timed out"))?
    })?;
    let (theirs, from) = accepted;
    if from != ours.local_addr()? {
        return Err(io::Error::other(
            "another process connected to the loopback listener",
        ));
    }
    ours.set_nodelay(true)?;
    theirs.set_nodelay(true)?;
    Ok((ours, theirs))
}

/// Bytes read before a TLS handshake started, replayed to it first.
#[derive(Debug)]
struct Prefixed {
    prefix: Vec<u8>,
    inner: TcpStream,
}

impl AsyncRead for Prefixed {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if !self.prefix.is_empty() {
            let n = self.prefix.len().min(buf.remaining());
            buf.put_slice(&self.prefix[..n]);
            self.prefix.drain(..n);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for Prefixed {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// The client's control connection, plain or TLS.
enum ClientStream {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::server::TlsStream<Prefixed>>),
    Gone,
}

impl AsyncRead for ClientStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ClientStream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            ClientStream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
            ClientStream::Gone => Poll::Ready(Ok(())),
        }
    }
}

impl AsyncWrite for ClientStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            ClientStream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            ClientStream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
            ClientStream::Gone => Poll::Ready(Err(io::ErrorKind::NotConnected.into())),
        }
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ClientStream::Plain(s) => Pin::new(s).poll_flush(cx),
            ClientStream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
            ClientStream::Gone => Poll::Ready(Ok(())),
        }
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ClientStream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            ClientStream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
            ClientStream::Gone => Poll::Ready(Ok(())),
        }
    }
}

/// A command forwarded to libunftp, waiting for its final reply.
#[derive(Debug)]
struct Pending {
    cmd: Command,
    started: Instant,
}

/// Commands that open a data transfer.
fn is_transfer(verb: &str) -> bool {
    matches!(
        verb,
        "RETR" | "STOR" | "APPE" | "STOU" | "LIST" | "NLST" | "MLSD"
    )
}

/// Transfers whose data flows to the client.
fn is_download(verb: &str) -> bool {
    matches!(verb, "RETR" | "LIST" | "NLST" | "MLSD")
}

/// Commands a client sends while an earlier one is still running, and that must reach
/// libunftp at once (RFC 959 §4.1.3: ABOR, STAT and QUIT interrupt a transfer).
fn is_interrupt(verb: &str) -> bool {
    matches!(verb, "ABOR" | "STAT" | "QUIT")
}

/// libunftp's texts for the `226` that answers ABOR (it may come before the interrupted
/// transfer's own reply).
fn is_abor_reply(reply: &Reply) -> bool {
    reply.code == 226
        && matches!(
            reply.last_text().as_str(),
            "Closed data channel" | "Data channel already closed"
        )
}

/// What the relay does with one command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Pass it to libunftp.
    Forward,
    /// Start TLS on the control connection.
    StartTls,
    /// Answer it here with this reply (which ends with `\r\n`).
    Answer(String),
    /// `OPTS MLST`: select these facts and answer.
    SelectFacts(wire::Facts, String),
    /// `PROT P` (true) or `PROT C` (false): data connections' protection from now on, and
    /// the reply. libunftp never sees `PROT`: its data connections are always plain, and the
    /// relay does the TLS of encrypted ones.
    Protect(bool, String),
}

/// The session state [`decide`] looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Protection {
    /// FTPS is configured.
    pub tls_available: bool,
    /// TLS is required for logins and data.
    pub tls_required: bool,
    /// The control connection is already TLS.
    pub control_tls: bool,
    /// `PROT P` is in force.
    pub data_tls: bool,
}

/// Decides what to do with a command. Pure.
pub fn decide(cmd: &Command, p: Protection) -> Action {
    match cmd.verb.as_str() {
        "AUTH" if p.tls_available => {
            let mech = cmd.arg.trim().to_ascii_uppercase();
            if p.control_tls {
                Action::Answer("503 The control connection is already encrypted.\r\n".into())
            } else if matches!(mech.as_str(), "TLS" | "TLS-C" | "SSL" | "TLS-P") {
                Action::StartTls
            } else {
                Action::Answer(format!(
                    "504 AUTH {} is not supported; use AUTH TLS.\r\n",
                    wire::one_line(&mech)
                ))
            }
        }
        "USER" | "PASS" | "ACCT" if p.tls_required && !p.control_tls => Action::Answer(
            "534 This server requires explicit FTP over TLS: send AUTH TLS first \
             (in FileZilla: Encryption \"Require explicit FTP over TLS\").\r\n"
                .into(),
        ),
        "PROT" if p.tls_required && !cmd.arg.trim().eq_ignore_ascii_case("P") => Action::Answer(
            "534 This server requires encrypted data connections: only PROT P.\r\n".into(),
        ),
        "PROT" if p.tls_available => match cmd.arg.trim().to_ascii_uppercase().as_str() {
            "P" => Action::Protect(true, "200 PROT OK. Securing data channel\r\n".into()),
            "C" => Action::Protect(
                false,
                "200 PROT OK. Switching data channel to plaintext\r\n".into(),
            ),
            "S" | "E" => Action::Answer("536 PROT S and PROT E are not supported.\r\n".into()),
            _ => Action::Answer("504 PROT takes C or P.\r\n".into()),
        },
        "PASV" | "EPSV" | "PORT" | "EPRT" | "LPSV" | "LPRT" if p.tls_required && !p.data_tls => {
            Action::Answer(
                "534 This server requires encrypted data connections: send PROT P first.\r\n"
                    .into(),
            )
        }
        "CCC" if p.control_tls => {
            Action::Answer("534 The control connection stays encrypted.\r\n".into())
        }
        _ => match wire::opts_mlst_arg(cmd) {
            Some(list) => {
                let (facts, reply) = wire::opts_mlst(list);
                Action::SelectFacts(facts, reply)
            }
            None => Action::Forward,
        },
    }
}

/// The unread client bytes the relay holds at most (a line waiting for earlier replies
/// included); past it the session ends.
const MAX_BUFFERED: usize = 64 * 1024;
/// How long a write to the client may take before the session is given up.
const WRITE_TIMEOUT: Duration = Duration::from_secs(60);

/// One session's relay.
struct Relay {
    session: SessionId,
    tap: Arc<ControlTap>,
    cfg: Arc<RelayConfig>,
    /// The client's address (relayed data connections must come from its IP).
    peer: SocketAddr,
    /// The address the client reached us on (relayed passive listeners bind it).
    local: SocketAddr,
    /// The loopback address of the connection to libunftp (its passive ports listen there).
    inner_ip: IpAddr,
    pending: VecDeque<Pending>,
    /// The user name of the last USER, shown in log lines once logged in.
    user_tried: Option<String>,
    user: Option<String>,
    /// The working directory, normalised (libunftp keeps it as typed and does not apply it
    /// to MLST's argument).
    cwd: String,
    /// Since when a command has been waiting for earlier replies.
    blocked_since: Option<Instant>,
    /// The relayed passive connection of this session, if any.
    passive: Option<data::Passive>,
    /// This session's TLS configurations (its own session cache and ticketer), made at its
    /// `AUTH TLS`.
    tls: Option<crate::ftp::tls::SessionTls>,
}

/// Runs the relay until either side closes: `client` is the accepted control connection of
/// the client at `peer` (behind a load balancer, the address its PROXY header named), `inner`
/// the relay's end of the loopback connection to libunftp.
pub async fn run(
    client: TcpStream,
    peer: SocketAddr,
    inner: TcpStream,
    tap: Arc<ControlTap>,
    cfg: Arc<RelayConfig>,
    session: SessionId,
) {
    let peer = canonical(peer);
    let (local, inner_ip) = match (client.local_addr(), inner.local_addr()) {
        (Ok(l), Ok(i)) => (canonical(l), i.ip()),
        _ => return,
    };
    // The commit gate peeks at the client's own socket: a FIN or an ABOR is seen there the
    // moment it arrives, before the relay reads it.
    match socket2::SockRef::from(&client).try_clone() {
        Ok(dup) => {
            let dup: std::net::TcpStream = dup.into();
            if dup.set_nonblocking(true).is_ok() {
                tap.watch_client(dup);
            }
        }
        Err(e) => tracing::debug!(session, error = %e, "cannot watch the client's socket"),
    }
    let mut relay = Relay {
        session,
        tap,
        cfg,
        peer,
        local,
        inner_ip,
        // libunftp's greeting comes first; commands sent before it wait for it.
        pending: VecDeque::from([Pending {
            cmd: Command {
                verb: String::new(),
                arg: String::new(),
                line: Vec::new(),
            },
            started: Instant::now(),
        }]),
        user_tried: None,
        user: None,
        cwd: "/".into(),
        blocked_since: None,
        passive: None,
        tls: None,
    };
    let mut client = ClientStream::Plain(client);
    if let Err(e) = relay.pump(&mut client, inner).await {
        tracing::debug!(session, error = %e, "control connection ended");
    }
    relay.tap.set_client_gone();
    if let Some(p) = relay.passive.take() {
        p.abort();
    }
    let _ = tokio::time::timeout(Duration::from_secs(2), client.shutdown()).await;
}

/// An address with IPv4-mapped IPv6 (`::ffff:a.b.c.d`) written as IPv4.
fn canonical(addr: SocketAddr) -> SocketAddr {
    SocketAddr::new(addr.ip().to_canonical(), addr.port())
}

impl Relay {
    async fn pump(&mut self, client: &mut ClientStream, inner: TcpStream) -> io::Result<()> {
        let (mut inner_rd, mut inner_wr) = inner.into_split();
        let mut from_client = vec![0u8; 8192];
        let mut from_inner = vec![0u8; 16384];
        let mut lines: Vec<u8> = Vec::new();
        let mut replies = ReplyAssembler::default();
        let mut client_open = true;
        // The last command or reply: with no command waiting for its reply (a transfer
        // included), a session silent for `idle` is closed here. libunftp's own idle timeout
        // does not fire while a data connection of the session is open, and the relay opens
        // one to libunftp for every PASV/EPSV (an unused one waits 5 minutes there).
        let mut active = tokio::time::Instant::now();
        loop {
            let wait = match self.blocked_since {
                Some(t) => ORDER_WAIT.saturating_sub(t.elapsed()),
                None => Duration::from_secs(86_400),
            };
            tokio::select! {
                () = tokio::time::sleep_until(active + self.cfg.idle), if self.pending.is_empty() => {
                    tracing::debug!(session = self.session, "session idle: closed");
                    let _ = self
                        .write_client(client, b"421 Session timed out. Closing control connection.\r\n")
                        .await;
                    return Ok(());
                }
                r = client.read(&mut from_client), if client_open => {
                    match r {
                        Ok(0) | Err(_) => {
                            // The client hung up: libunftp sees the end of its connection
                            // and closes the session; the commit gate sees it at once.
                            client_open = false;
                            self.tap.set_client_gone();
                            let _ = inner_wr.shutdown().await;
                        }
                        Ok(n) => {
                            active = tokio::time::Instant::now();
                            self.tap.count_client_bytes(n);
                            lines.extend_from_slice(&from_client[..n]);
                            if lines.len() > MAX_BUFFERED {
                                let _ = self
                                    .write_client(client, b"500 Too much input at once.\r\n")
                                    .await;
                                return Ok(());
                            }
                            if !self.process(client, &mut inner_wr, &mut lines).await? {
                                return Ok(());
                            }
                        }
                    }
                }
                r = inner_rd.read(&mut from_inner) => {
                    let n = r?;
                    if n == 0 {
                        client.flush().await?;
                        return Ok(());
                    }
                    active = tokio::time::Instant::now();
                    for reply in replies.push(&from_inner[..n]) {
                        self.answer_from_libunftp(client, reply).await?;
                    }
                    if self.blocked_since.is_some() && !self.must_wait_for_replies() {
                        self.blocked_since = None;
                        if !self.process(client, &mut inner_wr, &mut lines).await? {
                            return Ok(());
                        }
                    }
                }
                _ = tokio::time::sleep(wait), if self.blocked_since.is_some() => {
                    // A command got no reply in all this time: stop waiting for it, but
                    // never for a transfer, which may run for hours.
                    self.pending.retain(|p| is_transfer(&p.cmd.verb));
                    self.blocked_since = None;
                    if !self.process(client, &mut inner_wr, &mut lines).await? {
                        return Ok(());
                    }
                }
            }
        }
    }

    /// True while commands must wait: libunftp answers some commands from tasks of their
    /// own, so a command sent before the previous reply could be answered first.
    fn must_wait_for_replies(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Handles the complete lines in `buf`. `Ok(false)` ends the session.
    async fn process(
        &mut self,
        client: &mut ClientStream,
        inner: &mut tokio::net::tcp::OwnedWriteHalf,
        buf: &mut Vec<u8>,
    ) -> io::Result<bool> {
        loop {
            let Some(end) = buf.iter().position(|b| *b == b'\n') else {
                if buf.len() > MAX_LINE {
                    self.write_client(client, b"500 Command line too long.\r\n")
                        .await?;
                    return Ok(false);
                }
                return Ok(true);
            };
            let Some(cmd) = wire::parse_command(&buf[..=end]) else {
                buf.drain(..=end);
                continue;
            };
            let protection = Protection {
                tls_available: self.cfg.control_tls.is_some(),
                tls_required: self.cfg.require_tls,
                control_tls: self.tap.control_tls(),
                data_tls: self.tap.data_tls(),
            };
            let action = decide(&cmd, protection);
            // ABOR, STAT and QUIT go at once while a transfer runs (they interrupt it);
            // otherwise every command waits for the replies before it.
            let interrupts = action == Action::Forward
                && is_interrupt(&cmd.verb)
                && self.pending.iter().any(|p| is_transfer(&p.cmd.verb));
            if self.must_wait_for_replies() && !interrupts {
                // Answer in order: wait for the replies to the commands before it.
                self.blocked_since.get_or_insert_with(Instant::now);
                return Ok(true);
            }
            buf.drain(..=end);
            match action {
                Action::Forward => {
                    if interrupts
                        && cmd.verb == "ABOR"
                        && let Some(p) = &self.passive
                    {
                        // The relayed data connection ends now: libunftp may be stuck
                        // writing a download the client no longer reads, and would answer
                        // neither the transfer nor ABOR until it could write again. The
                        // transfer's reply then says it was not delivered.
                        p.abort();
                    }
                    let line = self.before_forward(&cmd, buf.len());
                    self.pending.push_back(Pending {
                        cmd,
                        started: Instant::now(),
                    });
                    inner.write_all(&line).await?;
                }
                Action::Answer(reply) => {
                    self.log(&cmd, &reply, Instant::now());
                    self.write_client(client, reply.as_bytes()).await?;
                }
                Action::SelectFacts(facts, reply) => {
                    self.tap.set_facts(facts);
                    self.log(&cmd, &reply, Instant::now());
                    self.write_client(client, reply.as_bytes()).await?;
                }
                Action::Protect(private, reply) => {
                    self.tap.set_data_tls(private);
                    self.log(&cmd, &reply, Instant::now());
                    self.write_client(client, reply.as_bytes()).await?;
                }
                Action::StartTls => {
                    if !self.start_tls(client, buf).await? {
                        return Ok(false);
                    }
                }
            }
        }
    }

    /// `234`, then the TLS handshake; bytes already read behind the command are the start of
    /// the ClientHello. `Ok(false)` when the handshake failed.
    async fn start_tls(
        &mut self,
        client: &mut ClientStream,
        buf: &mut Vec<u8>,
    ) -> io::Result<bool> {
        let started = Instant::now();
        let (Some(control), Some(data), Some(reading)) = (
            &self.cfg.control_tls,
            &self.cfg.data_tls,
            &self.cfg.data_tls_reading,
        ) else {
            return Ok(false);
        };
        let own = match crate::ftp::tls::SessionTls::new(control, data, reading) {
            Ok(own) => own,
            Err(e) => {
                tracing::warn!(session = self.session, error = %e, "cannot set up TLS");
                let reply = "431 TLS cannot be set up now; try again.\r\n";
                self.write_client(client, reply.as_bytes()).await?;
                return Ok(true);
            }
        };
        let config = own.control.clone();
        self.tls = Some(own);
        let reply = "234 AUTH TLS OK: start the TLS handshake.\r\n";
        self.write_client(client, reply.as_bytes()).await?;
        let prefix = std::mem::take(buf);
        let ClientStream::Plain(tcp) = std::mem::replace(client, ClientStream::Gone) else {
            return Ok(false);
        };
        let acceptor = tokio_rustls::TlsAcceptor::from(config);
        let handshake = acceptor.accept(Prefixed { prefix, inner: tcp });
        match tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake).await {
            Ok(Ok(tls)) => {
                let version = tls
                    .get_ref()
                    .1
                    .protocol_version()
                    .map(|v| format!("{v:?}"))
                    .unwrap_or_default();
                *client = ClientStream::Tls(Box::new(tls));
                self.tap.set_control_tls(true);
                tracing::info!(
                    session = self.session,
                    cmd = "AUTH TLS",
                    reply = 234,
                    tls = %version,
                    ms = started.elapsed().as_millis() as u64,
                );
                Ok(true)
            }
            Ok(Err(e)) => {
                tracing::info!(session = self.session, error = %e, "TLS handshake failed");
                Ok(false)
            }
            Err(_) => {
                tracing::info!(session = self.session, "TLS handshake timed out");
                Ok(false)
            }
        }
    }

    /// Session state that changes as a command goes to libunftp, and the line to send.
    /// `unread` is how many client bytes follow the command in the relay's buffer.
    fn before_forward(&mut self, cmd: &Command, unread: usize) -> Vec<u8> {
        if is_transfer(&cmd.verb) {
            self.tap.set_transfer_reads(is_download(&cmd.verb));
        }
        match cmd.verb.as_str() {
            "USER" => self.user_tried = Some(wire::one_line(&cmd.arg)),
            "MLSD" | "LIST" | "NLST" => self.tap.set_listing_is_mlsd(cmd.verb == "MLSD"),
            "STOR" | "APPE" | "STOU" => {
                // The upload's commit gate counts client bytes from the end of this line:
                // an ABOR sent right after the 150 cancels it, however late put() begins.
                let at = self.tap.client_bytes().saturating_sub(unread as u64);
                self.tap.set_transfer_mark(at);
                self.tap.take_transfer_bytes();
                // A plain data stream's end says nothing of why it ended: the gate will ask
                // whether the client's process still holds its control socket (not behind a
                // load balancer, which needs masquerade and holds the sockets itself).
                if !self.tap.data_tls() && self.cfg.masquerade.is_none() {
                    self.tap.look_up_owner();
                }
            }
            "RETR" => {
                self.tap.take_transfer_bytes();
            }
            // libunftp does not apply the working directory to MLST's argument.
            "MLST" if !cmd.arg.is_empty() && !cmd.arg.starts_with(['/', '\\']) => {
                let path = wire::normalise_shown_path(&format!("{}/{}", self.cwd, cmd.arg));
                return format!("MLST {path}\r\n").into_bytes();
            }
            _ => {}
        }
        cmd.line.clone()
    }

    /// Which waiting command a final reply answers.
    /// Waits until a relayed download's data reached the client's socket. The client may not
    /// read it (it sent ABOR, or left): when anything arrives on its control connection, or it
    /// closes, the data connection is ended and the transfer counts as not delivered.
    async fn wait_delivered(&self, p: &mut data::Passive) -> bool {
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        loop {
            tokio::select! {
                delivered = p.delivered() => return delivered,
                _ = tick.tick() => {
                    if self.tap.client_state() != crate::ftp::control_tap::ControlState::Idle {
                        p.abort();
                        return false;
                    }
                }
            }
        }
    }

    fn answered(&mut self, reply: &Reply) -> Option<Pending> {
        if is_abor_reply(reply)
            && let Some(i) = self.pending.iter().position(|p| p.cmd.verb == "ABOR")
        {
            return self.pending.remove(i);
        }
        self.pending.pop_front()
    }

    /// Rewrites a reply from libunftp where needed and sends it to the client.
    async fn answer_from_libunftp(
        &mut self,
        client: &mut ClientStream,
        reply: Reply,
    ) -> io::Result<()> {
        // Noise and preliminary (1xx) replies answer nothing yet: pass them on.
        if reply.code == 0 || reply.is_preliminary() {
            return self.write_client(client, &reply.bytes()).await;
        }
        let front = self.answered(&reply);
        let verb = front.as_ref().map(|p| p.cmd.verb.as_str()).unwrap_or("");
        let arg = front.as_ref().map(|p| p.cmd.arg.as_str()).unwrap_or("");
        // libunftp says a download is done once its last byte is in its socket; relayed, the
        // bytes may still be in this process (lost if it dies while the client sees a clean
        // end and the 226). The success reply waits until they reached the client's socket.
        let mut undelivered = false;
        if (200..300).contains(&reply.code)
            && is_download(verb)
            && let Some(mut p) = self.passive.take()
        {
            // Taken: the transfer is over, and a later transfer (PORT) must not see this
            // connection's outcome.
            undelivered = !self.wait_delivered(&mut p).await;
        }
        let mut bytes = match (reply.code, verb) {
            (257, "PWD" | "XPWD" | "MKD" | "XMKD") if reply.lines.len() == 1 => {
                wire::rewrite_257(&reply.last_text()).into_bytes()
            }
            (250, "MLST") if reply.lines.len() >= 3 => {
                let facts = self.tap.facts();
                let mut out = Vec::new();
                for line in &reply.lines {
                    if line.first() == Some(&b' ') {
                        let text = String::from_utf8_lossy(line);
                        out.extend_from_slice(wire::rewrite_mlst_entry(&text, facts).as_bytes());
                    } else {
                        out.extend_from_slice(line);
                    }
                }
                out
            }
            (211, "FEAT") => {
                let facts = self.tap.facts();
                let mut out = Vec::new();
                for line in &reply.lines {
                    let text = String::from_utf8_lossy(line);
                    if text.trim() == "MLST" {
                        out.extend_from_slice(format!("{}\r\n", facts.feat_line()).as_bytes());
                    } else {
                        out.extend_from_slice(line);
                    }
                }
                out
            }
            (230, _) => {
                self.user = self.user_tried.clone();
                self.cwd = "/".into();
                reply.bytes()
            }
            (250, "CWD" | "XCWD") => {
                let target = if arg.starts_with(['/', '\\']) {
                    arg.to_owned()
                } else {
                    format!("{}/{arg}", self.cwd)
                };
                self.cwd = wire::normalise_shown_path(&target);
                reply.bytes()
            }
            (200 | 250, "CDUP" | "XCUP") => {
                self.cwd = wire::normalise_shown_path(&format!("{}/..", self.cwd));
                reply.bytes()
            }
            (227, "PASV") => self.relay_passive(&reply, false).await,
            (229, "EPSV") => self.relay_passive(&reply, true).await,
            _ => reply.bytes(),
        };
        let mut code = reply.code;
        if undelivered {
            code = 426;
            bytes = b"426 The data connection broke before all data was sent.\r\n".to_vec();
        }
        // A data connection refused for its TLS session is the reason, whatever broke after.
        let refused = code >= 400
            && front.as_ref().is_some_and(|p| is_transfer(&p.cmd.verb))
            && self.tap.take_data_refused();
        if code >= 400
            && let Some(reason) = self
                .tap
                .take_reason()
                .filter(|_| !refused)
                .or_else(|| refused.then(|| data::REUSE_REQUIRED.to_owned()))
        {
            let mut with_reason = format!("{code}-{reason}\r\n").into_bytes();
            with_reason.append(&mut bytes);
            bytes = with_reason;
        }
        if let Some(p) = &front
            && !p.cmd.verb.is_empty()
        {
            self.log(&p.cmd, &String::from_utf8_lossy(&bytes), p.started);
        }
        self.write_client(client, &bytes).await
    }

    /// Opens a relayed passive listener for libunftp's announced port and rewrites the reply.
    async fn relay_passive(&mut self, reply: &Reply, extended: bool) -> Vec<u8> {
        let text = reply.last_text();
        let inner_port = if extended {
            wire::parse_229(&text)
        } else {
            wire::parse_227(&text).map(|a| a.port())
        };
        let Some(inner_port) = inner_port else {
            return reply.bytes();
        };
        let announce = match (self.cfg.masquerade, self.local.ip()) {
            (Some(m), _) => Some(m),
            (None, IpAddr::V4(v4)) => Some(v4),
            (None, IpAddr::V6(_)) => None,
        };
        if !extended && announce.is_none() {
            return b"425 PASV cannot name an IPv6 address; use EPSV.\r\n".to_vec();
        }
        // One relayed listener per session: a new PASV replaces the last one.
        if let Some(p) = self.passive.take() {
            p.abort();
        }
        let target = SocketAddr::new(self.inner_ip, inner_port);
        let tls = match (&self.tls, self.tap.data_tls()) {
            (Some(own), true) => Some(data::DataTls {
                own: own.clone(),
                require_reuse: self.cfg.require_tls_reuse,
                tap: self.tap.clone(),
            }),
            _ => None,
        };
        let listen = data::Listen {
            bind_ip: self.local.ip(),
            ports: self.cfg.passive_ports.clone(),
            client_ip: self.peer.ip(),
            proxy: self.cfg.proxy.clone(),
            idle: self.cfg.idle,
        };
        match data::open(listen, target, tls, Some(self.tap.clone())).await {
            Ok(passive) => {
                let port = passive.port;
                self.passive = Some(passive);
                match announce {
                    Some(ip) if !extended => wire::format_227(ip, port).into_bytes(),
                    _ => wire::format_229(port).into_bytes(),
                }
            }
            Err(e) => {
                tracing::warn!(session = self.session, error = %e, "no passive port free");
                b"425 No passive port is free; try again.\r\n".to_vec()
            }
        }
    }

    async fn write_client(&self, client: &mut ClientStream, bytes: &[u8]) -> io::Result<()> {
        let write = async {
            client.write_all(bytes).await?;
            client.flush().await
        };
        tokio::time::timeout(WRITE_TIMEOUT, write)
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "the client stopped reading"))?
    }

    /// One short line per command: who, what, the reply code, how long it took.
    fn log(&self, cmd: &Command, reply: &str, started: Instant) {
        let code: u16 = reply
            .lines()
            .last()
            .and_then(|l| l.get(..3))
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        let user = self.user.as_deref().unwrap_or("-");
        let ms = started.elapsed().as_millis() as u64;
        let what = wire::loggable(cmd);
        if cmd.verb == "SITE" {
            let last = reply.lines().last().unwrap_or_default();
            self.cfg.events.send(crate::ops::events::Event::site(
                self.session,
                what.clone(),
                last,
            ));
        }
        if matches!(cmd.verb.as_str(), "RETR" | "STOR" | "APPE" | "STOU") {
            let bytes = self.tap.take_transfer_bytes();
            tracing::info!(session = self.session, %user, cmd = %what, reply = code, bytes, ms);
        } else {
            tracing::info!(session = self.session, %user, cmd = %what, reply = code, ms);
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;

    fn cmd(line: &str) -> Command {
        wire::parse_command(line.as_bytes()).unwrap()
    }

    const OPEN: Protection = Protection {
        tls_available: true,
        tls_required: false,
        control_tls: false,
        data_tls: false,
    };

    #[test]
    fn decisions() {
        assert_eq!(decide(&cmd("AUTH TLS"), OPEN), Action::StartTls);
        assert_eq!(decide(&cmd("auth ssl"), OPEN), Action::StartTls);
        assert!(
            matches!(decide(&cmd("AUTH GSSAPI"), OPEN), Action::Answer(r) if r.starts_with("504"))
        );
        let tls = Protection {
            control_tls: true,
            ..OPEN
        };
        assert!(matches!(decide(&cmd("AUTH TLS"), tls), Action::Answer(r) if r.starts_with("503")));
        let no_tls = Protection {
            tls_available: false,
            ..OPEN
        };
        assert_eq!(decide(&cmd("AUTH TLS"), no_tls), Action::Forward);
        assert_eq!(decide(&cmd("USER a/b"), OPEN), Action::Forward);
        let required = Protection {
            tls_required: true,
            ..OPEN
        };
        assert!(
            matches!(decide(&cmd("USER a/b"), required), Action::Answer(r) if r.starts_with("534"))
        );
        assert!(
            matches!(decide(&cmd("PASS x"), required), Action::Answer(r) if r.starts_with("534"))
        );
        let logged = Protection {
            control_tls: true,
            ..required
        };
        assert_eq!(decide(&cmd("USER a/b"), logged), Action::Forward);
        assert!(matches!(decide(&cmd("EPSV"), logged), Action::Answer(r) if r.starts_with("534")));
        let private = Protection {
            data_tls: true,
            ..logged
        };
        assert_eq!(decide(&cmd("EPSV"), private), Action::Forward);
        assert_eq!(decide(&cmd("PASV"), OPEN), Action::Forward);
        assert!(matches!(
            decide(&cmd("OPTS MLST type;size;"), OPEN),
            Action::SelectFacts(_, r) if r == "200 MLST OPTS type;size;\r\n"
        ));
        assert_eq!(decide(&cmd("OPTS UTF8 ON"), OPEN), Action::Forward);
        assert!(matches!(decide(&cmd("CCC"), tls), Action::Answer(r) if r.starts_with("534")));
        assert!(
            matches!(decide(&cmd("PROT C"), required), Action::Answer(r) if r.starts_with("534"))
        );
        // PROT is the relay's: it does the TLS of data connections.
        assert!(
            matches!(decide(&cmd("PROT P"), required), Action::Protect(true, r) if r.starts_with("200"))
        );
        assert!(
            matches!(decide(&cmd("prot c"), OPEN), Action::Protect(false, r) if r.starts_with("200"))
        );
        assert!(matches!(decide(&cmd("PROT S"), OPEN), Action::Answer(r) if r.starts_with("536")));
        assert!(matches!(decide(&cmd("PROT X"), OPEN), Action::Answer(r) if r.starts_with("504")));
        // Without FTPS, libunftp answers it (502).
        assert_eq!(decide(&cmd("PROT P"), no_tls), Action::Forward);
        // libunftp reads `PASS\r…` and `paſs …` as PASS too.
        assert!(
            matches!(decide(&cmd("PASS\rsecret"), required), Action::Answer(r) if r.starts_with("534"))
        );
    }

    #[test]
    fn libunftp_is_reached_on_the_clients_loopback_family() {
        for (peer, inner) in [
            ("127.0.0.1", "127.0.0.1"),
            ("::1", "::1"),
            ("::ffff:127.0.0.1", "127.0.0.1"),
            ("127.0.0.2", "127.0.0.1"),
            ("192.0.2.7", "127.0.0.1"),
            ("2001:db8::7", "127.0.0.1"),
        ] {
            assert_eq!(
                inner_address(peer.parse().unwrap()).to_string(),
                inner,
                "{peer}"
            );
        }
    }
}
