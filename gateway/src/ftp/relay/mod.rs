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
//! The relay is a protocol core without I/O ([`core`]: fed client bytes and libunftp's
//! replies, it says what to send where, and asks for the TLS handshake, a passive listener or
//! a download's delivery when it needs them) inside a small I/O shell ([`run`]: the sockets,
//! the control connection's TLS, the timers). Its other parts, one job each: [`policy`] (which
//! commands the relay answers itself), [`wire`] (FTP text: commands, replies, paths, facts,
//! passive addresses), [`data`] (relayed passive data connections and their TLS).
//!
//! The relay also carries every passive data connection ([`data`]), on every OS and for every
//! client: libunftp accepts a data connection only from its control peer's address (for it,
//! the relay), does no data TLS here, and gives nobody a handle on its data socket. Only the
//! relay can end a download whose client stopped reading (after `idle_timeout`), or one the
//! client aborted (ABOR), and tell a reset from a clean end where the socket layer does not
//! (Wine, see `crate::ftp::data_end`). Measured against data connections straight to libunftp for
//! loopback clients (issue 20): the same throughput, 0.5 CPU-seconds more per GiB downloaded.

mod core;
pub(crate) mod data;
mod policy;
pub mod wire;

use std::collections::VecDeque;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::ops::RangeInclusive;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::either::Either;

use self::core::{Core, CoreConfig, Input, Out, Request, Resumed};
use crate::ftp::control_tap::ControlTap;
use crate::ops::events::SessionId;
/// How long a client may take to finish the TLS handshake after `234`.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a command waits for the replies to earlier ones before the relay stops waiting
/// for those (a safety valve: libunftp answers every command; transfers and hash commands,
/// which may run for minutes, never expire).
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

/// The loopback address the relay connects to libunftp from: 127.0.0.1 for every client
/// (the relay carries every data connection, so libunftp never sees the client's address or
/// its family; a host without IPv6 loopback, or a PROXY header naming ::1, changes nothing).
pub fn inner_address() -> IpAddr {
    IpAddr::V4(Ipv4Addr::LOCALHOST)
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

/// The client's control connection: plain until `AUTH TLS`, then TLS over the TCP stream with
/// the bytes read before the handshake replayed first.
type ClientStream = Either<TcpStream, Box<tokio_rustls::server::TlsStream<Prefixed>>>;

/// A TCP stream whose first bytes were already read: they are read again first.
type Prefixed = tokio::io::Join<
    tokio::io::Chain<io::Cursor<Vec<u8>>, tokio::net::tcp::OwnedReadHalf>,
    tokio::net::tcp::OwnedWriteHalf,
>;

/// How long a write to the client may take before the session is given up.
const WRITE_TIMEOUT: Duration = Duration::from_secs(60);

/// One session's relay: the protocol core and the I/O it asks for.
struct Relay {
    core: Core,
    tap: Arc<ControlTap>,
    cfg: Arc<RelayConfig>,
    session: SessionId,
    /// The client's address (relayed data connections must come from its IP).
    peer: SocketAddr,
    /// The address the client reached us on (relayed passive listeners bind it).
    local: SocketAddr,
    /// The loopback address of the connection to libunftp (its passive ports listen there).
    inner_ip: IpAddr,
    /// The relayed passive connection of this session, if any.
    passive: Option<data::Passive>,
    /// This session's TLS configurations (its own session cache and ticketer), made at its
    /// `AUTH TLS`.
    tls: Option<crate::ftp::tls::SessionTls>,
}

/// How a pump of the connection ended.
enum Pumped {
    /// The session is over.
    Ended,
    /// The core asked for the TLS handshake, with the client's bytes read so far.
    Handshake(Vec<u8>),
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
    let core = Core::new(
        CoreConfig {
            session,
            tls_available: cfg.control_tls.is_some(),
            tls_required: cfg.require_tls,
            masquerade: cfg.masquerade,
            local_ip: local.ip(),
            events: cfg.events.clone(),
        },
        tap.clone(),
    );
    let mut relay = Relay {
        core,
        tap,
        cfg,
        session,
        peer,
        local,
        inner_ip,
        passive: None,
        tls: None,
    };
    let (mut inner_rd, mut inner_wr) = inner.into_split();
    let mut client: ClientStream = Either::Left(client);
    loop {
        match relay.pump(&mut client, &mut inner_rd, &mut inner_wr).await {
            Ok(Pumped::Ended) => break,
            Err(e) => {
                tracing::debug!(session, error = %e, "control connection ended");
                break;
            }
            Ok(Pumped::Handshake(prefix)) => {
                let (tls, version) = relay.handshake(client, prefix).await;
                let outs = relay.core.step(Input::Resumed(Resumed::Handshake(version)));
                let Some(tls) = tls else {
                    // The TCP connection went with the failed handshake.
                    relay.end(None).await;
                    return;
                };
                client = tls;
                match relay.execute(outs, &mut client, &mut inner_wr).await {
                    Ok(None) => {}
                    Ok(Some(_)) => break,
                    Err(e) => {
                        tracing::debug!(session, error = %e, "control connection ended");
                        break;
                    }
                }
            }
        }
    }
    relay.end(Some(&mut client)).await;
}

/// An address with IPv4-mapped IPv6 (`::ffff:a.b.c.d`) written as IPv4.
fn canonical(addr: SocketAddr) -> SocketAddr {
    SocketAddr::new(addr.ip().to_canonical(), addr.port())
}

impl Relay {
    /// Moves bytes between the client, the core and libunftp until the session ends or the
    /// core asks for the TLS handshake.
    async fn pump(
        &mut self,
        client: &mut ClientStream,
        inner_rd: &mut tokio::net::tcp::OwnedReadHalf,
        inner_wr: &mut tokio::net::tcp::OwnedWriteHalf,
    ) -> io::Result<Pumped> {
        let mut from_client = vec![0u8; 8192];
        let mut from_inner = vec![0u8; 16384];
        let mut client_open = true;
        // The last command or reply: with no command waiting for its reply (a transfer
        // included), a session silent for `idle` is closed here. libunftp's own idle timeout
        // does not fire while a data connection of the session is open, and the relay opens
        // one to libunftp for every PASV/EPSV (an unused one waits 5 minutes there).
        let mut active = tokio::time::Instant::now();
        loop {
            let blocked = self.core.blocked_since();
            let wait = blocked
                .map(|t| ORDER_WAIT.saturating_sub(t.elapsed()))
                .unwrap_or(Duration::from_secs(86_400));
            let outs = tokio::select! {
                () = tokio::time::sleep_until(active + self.cfg.idle), if self.core.is_idle() => {
                    tracing::debug!(session = self.session, "session idle: closed");
                    let _ = write_client(client, b"421 Session timed out. Closing control connection.\r\n").await;
                    return Ok(Pumped::Ended);
                }
                r = client.read(&mut from_client), if client_open => match r {
                    Ok(0) | Err(_) => {
                        // The client hung up: libunftp sees the end of its connection and
                        // closes the session; the commit gate sees it at once.
                        client_open = false;
                        self.tap.set_client_gone();
                        let _ = inner_wr.shutdown().await;
                        continue;
                    }
                    Ok(n) => {
                        active = tokio::time::Instant::now();
                        self.tap.count_client_bytes(n);
                        self.core.step(Input::Client(&from_client[..n]))
                    }
                },
                r = inner_rd.read(&mut from_inner) => {
                    let n = r?;
                    if n == 0 {
                        client.flush().await?;
                        return Ok(Pumped::Ended);
                    }
                    active = tokio::time::Instant::now();
                    self.core.step(Input::Inner(&from_inner[..n]))
                }
                () = tokio::time::sleep(wait), if blocked.is_some() => {
                    self.core.step(Input::OrderWaitExpired)
                }
            };
            if let Some(done) = self.execute(outs, client, inner_wr).await? {
                return Ok(done);
            }
        }
    }

    /// Does what the core said, in order, answering its requests; `Some` when the pump must
    /// stop (the session ends, or the TLS handshake is due).
    async fn execute(
        &mut self,
        outs: Vec<Out>,
        client: &mut ClientStream,
        inner_wr: &mut tokio::net::tcp::OwnedWriteHalf,
    ) -> io::Result<Option<Pumped>> {
        let mut queue = VecDeque::from(outs);
        while let Some(out) = queue.pop_front() {
            let resumed = match out {
                Out::Client(bytes) => {
                    write_client(client, &bytes).await?;
                    continue;
                }
                Out::Inner(bytes) => {
                    inner_wr.write_all(&bytes).await?;
                    continue;
                }
                Out::AbortPassive => {
                    if let Some(p) = &self.passive {
                        p.abort();
                    }
                    continue;
                }
                Out::Close => return Ok(Some(Pumped::Ended)),
                Out::Request(Request::Handshake { prefix }) => {
                    return Ok(Some(Pumped::Handshake(prefix)));
                }
                Out::Request(Request::StartTls) => Resumed::TlsReady(self.set_up_tls()),
                Out::Request(Request::OpenPassive { inner_port }) => {
                    Resumed::Passive(self.open_passive(inner_port).await)
                }
                Out::Request(Request::AwaitDelivered) => {
                    // Taken: the transfer is over, and a later transfer must not see this
                    // connection's outcome.
                    let delivered = match self.passive.take() {
                        Some(mut p) => self.wait_delivered(&mut p).await,
                        None => true,
                    };
                    Resumed::Delivered(delivered)
                }
            };
            let more = self.core.step(Input::Resumed(resumed));
            for out in more.into_iter().rev() {
                queue.push_front(out);
            }
        }
        Ok(None)
    }

    /// This session's TLS configurations, with a session cache and ticketer of its own.
    fn set_up_tls(&mut self) -> bool {
        let (Some(control), Some(data), Some(reading)) = (
            &self.cfg.control_tls,
            &self.cfg.data_tls,
            &self.cfg.data_tls_reading,
        ) else {
            return false;
        };
        match crate::ftp::tls::SessionTls::new(control, data, reading) {
            Ok(own) => {
                self.tls = Some(own);
                true
            }
            Err(e) => {
                tracing::warn!(session = self.session, error = %e, "cannot set up TLS");
                false
            }
        }
    }

    /// The TLS handshake on the control connection after `234`, replaying `prefix` (the start
    /// of the ClientHello, read with the command) first: the TLS stream (`None` when it
    /// failed) and the protocol version agreed.
    async fn handshake(
        &mut self,
        client: ClientStream,
        prefix: Vec<u8>,
    ) -> (Option<ClientStream>, Option<String>) {
        let (Either::Left(tcp), Some(own)) = (client, &self.tls) else {
            return (None, None);
        };
        let acceptor = tokio_rustls::TlsAcceptor::from(own.control.clone());
        let (rd, wr) = tcp.into_split();
        let stream = tokio::io::join(io::Cursor::new(prefix).chain(rd), wr);
        match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
            Ok(Ok(tls)) => {
                let version = tls
                    .get_ref()
                    .1
                    .protocol_version()
                    .map(|v| format!("{v:?}"))
                    .unwrap_or_default();
                (Some(Either::Right(Box::new(tls))), Some(version))
            }
            Ok(Err(e)) => {
                tracing::info!(session = self.session, error = %e, "TLS handshake failed");
                (None, None)
            }
            Err(_) => {
                tracing::info!(session = self.session, "TLS handshake timed out");
                (None, None)
            }
        }
    }

    /// Opens a relayed passive listener for libunftp's `inner_port` (replacing the session's
    /// last one): the port the client is told, or `None` when no port is free.
    async fn open_passive(&mut self, inner_port: u16) -> Option<u16> {
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
                Some(port)
            }
            Err(e) => {
                tracing::warn!(session = self.session, error = %e, "no passive port free");
                None
            }
        }
    }

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

    /// The session's end: the commit gate learns the client is gone, the passive connection
    /// goes, and the client's connection is shut down.
    async fn end(&mut self, client: Option<&mut ClientStream>) {
        self.tap.set_client_gone();
        if let Some(p) = self.passive.take() {
            p.abort();
        }
        if let Some(client) = client {
            let _ = tokio::time::timeout(Duration::from_secs(2), client.shutdown()).await;
        }
    }
}

/// Writes to the client, giving up when it takes nothing for [`WRITE_TIMEOUT`].
async fn write_client(client: &mut ClientStream, bytes: &[u8]) -> io::Result<()> {
    let write = async {
        client.write_all(bytes).await?;
        client.flush().await
    };
    tokio::time::timeout(WRITE_TIMEOUT, write)
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "the client stopped reading"))?
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;

    #[test]
    fn libunftp_is_always_reached_on_127_0_0_1() {
        assert_eq!(inner_address().to_string(), "127.0.0.1");
    }
}
