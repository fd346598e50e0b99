//! Relayed passive data connections: for clients that are not on the loopback address the
//! relay talks to libunftp from (libunftp accepts a data connection only from its control
//! peer's address, which for it is the relay), and for every encrypted (`PROT P`) data
//! connection, whose TLS the relay does itself.
//!
//! For each `227`/`229` from libunftp the relay listens on a port of the configured passive
//! range on the address the client reached, tells the client that port, accepts one
//! connection from the client's address, and joins it to libunftp's port on loopback, where
//! libunftp always speaks plain FTP data. An end of the client's side is passed on as the
//! same kind of end: a FIN as a FIN, a reset as a reset, so a cancelled upload stays an error
//! for libunftp's upload. Under TLS, the client's close_notify is the end: it is recorded in
//! the tap (the upload's commit gate needs no wait for it), passed on as a FIN, and answered
//! with the relay's own close_notify at once (clients such as Python's `ftplib` wait for it);
//! an end without close_notify is passed on as a reset. A download's end from libunftp
//! becomes close_notify and FIN. The relay learns when libunftp's end has been passed on
//! ([`Passive::delivered`]): a download's success reply must not overtake its last bytes.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::ops::RangeInclusive;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::oneshot;

use crate::ftp::control_tap::ControlTap;
use crate::ftp::data_end::EndChecked;
use crate::ftp::proxy_protocol::{self, ProxyRule};

/// How long a client has to connect to an announced passive port (libunftp's own value).
const ACCEPT_WITHIN: Duration = Duration::from_secs(15);
/// Ports tried before giving up on a busy range.
const BIND_TRIES: usize = 32;
/// How long a client may take for the TLS handshake of a data connection.
const HANDSHAKE_WITHIN: Duration = Duration::from_secs(20);
/// Bytes copied per read, each way.
const COPY_BUF: usize = 256 * 1024;

/// Checks (PROXY header, TLS handshake) of one passive port's connections that run at once;
/// a new connection beyond them ends the oldest, so strangers stalling theirs cannot keep
/// the client out.
const HANDSHAKES_AT_ONCE: usize = 8;

/// TLS on a relayed data connection: the data configurations (they resume the control
/// session), the session's token, and the tap that learns of the client's close_notify.
#[derive(Clone)]
pub(crate) struct DataTls {
    /// The session's TLS configurations: each data connection gets its own from them, with
    /// TLS 1.3 tickets for a connection whose transfer is already known to be a download or
    /// a listing when its ClientHello arrives (the client reads it to the end, tickets
    /// included; see [`crate::ftp::tls`]).
    pub own: crate::ftp::tls::SessionTls,
    /// A data connection must resume this control session (both configurations resume only
    /// the sessions of this control session's own cache and ticketer: `tls::SessionTls`);
    /// any other is closed before a byte of the transfer moves.
    pub require_reuse: bool,
    /// The session's tap.
    pub tap: Arc<ControlTap>,
}

impl std::fmt::Debug for DataTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DataTls")
    }
}

/// One relayed passive connection.
#[derive(Debug)]
pub(crate) struct Passive {
    /// The port of the configured range the relay listens on for the client, announced in
    /// the `227`/`229` reply instead of libunftp's.
    pub port: u16,
    task: tokio::task::AbortHandle,
    delivered: Option<oneshot::Receiver<bool>>,
    outcome: bool,
}

impl Drop for Passive {
    /// A relayed connection never outlives its handle (a new PASV, the session's end).
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Passive {
    /// Ends the wait for the client, or the connection.
    pub(crate) fn abort(&self) {
        self.task.abort();
    }

    /// Waits until everything libunftp sent has been written to the client's socket and
    /// followed by a FIN (`true`), or until that can no longer happen: the client never
    /// connected, or the connection broke (`false`). Once written, the bytes reach the client
    /// even if this process dies; before, they would be lost with it while the client saw a
    /// clean end. Once known, the answer is kept.
    pub(crate) async fn delivered(&mut self) -> bool {
        if let Some(rx) = self.delivered.as_mut() {
            self.outcome = rx.await.unwrap_or(false);
            self.delivered = None;
        }
        self.outcome
    }
}

/// Where a relayed passive connection listens, whom it accepts, and how long it may idle.
#[derive(Debug, Clone)]
pub(crate) struct Listen {
    /// The address the client reached (the listener binds it).
    pub bind_ip: IpAddr,
    /// The configured passive range.
    pub ports: RangeInclusive<u16>,
    /// The client's address: connections from any other are reset.
    pub client_ip: IpAddr,
    /// Connections start with a PROXY protocol header from these sources.
    pub proxy: Option<Arc<ProxyRule>>,
    /// Silence (or a write the client does not take) after which the connection is reset.
    pub idle: Duration,
}

/// Connects to libunftp's passive port at `target` at once (so no other local process can
/// take it), listens on a free port of `listen.ports`, and joins the first connection from
/// the client to it, doing its TLS when `tls` is given. `tap` (the session's) learns whether
/// this connection broke.
pub(crate) async fn open(
    listen: Listen,
    target: SocketAddr,
    tls: Option<DataTls>,
    tap: Option<Arc<ControlTap>>,
) -> io::Result<Passive> {
    let Listen {
        bind_ip,
        ports,
        client_ip,
        proxy,
        idle,
    } = listen;
    let inner = TcpStream::connect(target).await?;
    let number = tap.as_ref().map(|tap| {
        tap.set_transfer_reads(false);
        tap.next_data_connection()
    });
    // Every way this connection ends other than both sides' clean ends: the tap knows
    // before libunftp sees the reset of its side.
    let broken = move |inner: &TcpStream| {
        if let (Some(tap), Some(number)) = (&tap, number) {
            tap.data_connection_broke(number);
        }
        reset(inner);
    };
    let listener = bind_in_range(bind_ip, ports)?;
    let port = listener.local_addr()?.port();
    let (delivered_tx, delivered) = oneshot::channel();
    let task = tokio::spawn(async move {
        let deadline = tokio::time::Instant::now() + ACCEPT_WITHIN;
        let from = Sources {
            client_ip,
            proxy: proxy.clone(),
        };
        match tls {
            None => {
                let vet = |stream: TcpStream, _from: SocketAddr| async move { Ok(stream) };
                let (client, _) = accept_client(&listener, &from, deadline, vet).await;
                drop(listener);
                match client {
                    // A reset that the socket layer reports as a clean end is still a reset.
                    Some(client) => {
                        let client = EndChecked::new(client);
                        pipe(client, inner, delivered_tx, None, broken, idle).await
                    }
                    // Never connected: libunftp's side ends with the connection.
                    None => broken(&inner),
                }
            }
            Some(tls) => {
                let vetting = tls.clone();
                let vet = move |stream: TcpStream, from: SocketAddr| {
                    tls_handshake(stream, from, vetting.clone())
                };
                let (client, not_resumed) = accept_client(&listener, &from, deadline, vet).await;
                drop(listener);
                if let (None, true, Some(number)) = (&client, not_resumed, number) {
                    // No connection of this session's came: the transfer's error reply says
                    // why the one that looked like the client's was closed.
                    tls.tap.data_connection_refused(number);
                }
                match client {
                    Some(stream) => {
                        pipe(stream, inner, delivered_tx, Some(tls.tap), broken, idle).await
                    }
                    None => broken(&inner),
                }
            }
        }
    });
    Ok(Passive {
        port,
        task: task.abort_handle(),
        delivered: Some(delivered),
        outcome: false,
    })
}

/// Where the client's data connection may come from: its control connection's address, told
/// by the PROXY protocol header when the connection comes through a trusted load balancer.
struct Sources {
    client_ip: IpAddr,
    proxy: Option<Arc<ProxyRule>>,
}

/// The first connection of the client's before `deadline` that `vet` passes, and whether one
/// was refused for its TLS session. Each connection's checks (its PROXY header, `vet`: the
/// TLS handshake) run side by side, at most [`HANDSHAKES_AT_ONCE`], a new connection ending
/// the oldest check beyond them: a stranger (from the same address: a load balancer, another
/// process on the client's machine) who connects first, or stalls, does not keep the client
/// out. Every connection that fails is closed.
async fn accept_client<T, F, Fut>(
    listener: &TcpListener,
    sources: &Sources,
    deadline: tokio::time::Instant,
    vet: F,
) -> (Option<T>, bool)
where
    T: Send + 'static,
    F: Fn(TcpStream, SocketAddr) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = Result<T, Refused>> + Send + 'static,
{
    let mut checks = tokio::task::JoinSet::new();
    // The running checks, oldest first: when they are many, the oldest goes (a stranger
    // stalling its handshake; the client's own takes milliseconds).
    let mut running: std::collections::VecDeque<tokio::task::AbortHandle> = Default::default();
    // Accepting until the deadline; checks begun by then may finish.
    let mut open = true;
    let mut not_resumed = false;
    loop {
        tokio::select! {
            accepted = listener.accept(), if open => match accepted {
                Ok((stream, from)) => {
                    let _ = stream.set_nodelay(true);
                    running.retain(|h| !h.is_finished());
                    if running.len() >= HANDSHAKES_AT_ONCE
                        && let Some(oldest) = running.pop_front()
                    {
                        oldest.abort();
                    }
                    match &sources.proxy {
                        Some(rule) if rule.trusts(from.ip()) => {
                            let (rule, client_ip, vet) = (rule.clone(), sources.client_ip, vet.clone());
                            running.push_back(checks.spawn(async move {
                                let mut stream = stream;
                                match proxy_protocol::client_address(&mut stream, from, &rule).await {
                                    Ok(client) if client.ip() == client_ip => vet(stream, client).await,
                                    Ok(client) => {
                                        tracing::debug!(%client, "data connection of another client refused");
                                        reset(&stream);
                                        Err(Refused::Failed)
                                    }
                                    Err(e) => {
                                        tracing::debug!(%from, error = %e, "data connection refused");
                                        reset(&stream);
                                        Err(Refused::Failed)
                                    }
                                }
                            }));
                        }
                        Some(_) => {
                            tracing::debug!(%from, "data connection from an untrusted source refused (PROXY protocol)");
                            reset(&stream);
                        }
                        None if from.ip().to_canonical() == sources.client_ip => {
                            running.push_back(checks.spawn(vet(stream, from)));
                        }
                        None => {
                            tracing::debug!(%from, "data connection from another address refused");
                            reset(&stream);
                        }
                    }
                }
                Err(e) => {
                    // A connection that went before it was accepted, or no file descriptor
                    // free for a moment: the port stays open.
                    tracing::debug!(error = %e, "data accept failed");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            },
            Some(done) = checks.join_next() => match done {
                Ok(Ok(stream)) => return (Some(stream), not_resumed),
                Ok(Err(Refused::NotResumed)) => not_resumed = true,
                Ok(Err(Refused::Failed)) | Err(_) => {}
            },
            () = tokio::time::sleep_until(deadline), if open => open = false,
            else => {}
        }
        if !open && checks.is_empty() {
            return (None, not_resumed);
        }
    }
}

/// Why a data connection's TLS handshake did not give the transfer its connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refused {
    /// The handshake failed or timed out.
    Failed,
    /// It succeeded without resuming this control connection's session.
    NotResumed,
}

/// The server side of a data connection's TLS handshake, within [`HANDSHAKE_WITHIN`]: tickets
/// only where the transfer is known to be read to its end, and (with `require_reuse`) refused
/// unless it resumed one of this control connection's TLS sessions.
async fn tls_handshake(
    client: TcpStream,
    from: SocketAddr,
    tls: DataTls,
) -> Result<tokio_rustls::server::TlsStream<TcpStream>, Refused> {
    let handshake = async {
        let acceptor = rustls::server::Acceptor::default();
        let start = tokio_rustls::LazyConfigAcceptor::new(acceptor, client).await?;
        // Chosen when the ClientHello is in: most clients send the transfer command first.
        let config = tls.own.data_connection(tls.tap.transfer_reads());
        start.into_stream(config).await
    };
    let stream = match tokio::time::timeout(HANDSHAKE_WITHIN, handshake).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(e)) => {
            tracing::debug!(%from, error = %e, "data connection TLS handshake failed");
            return Err(Refused::Failed);
        }
        Err(_) => {
            tracing::debug!(%from, "data connection TLS handshake timed out");
            return Err(Refused::Failed);
        }
    };
    if tls.require_reuse && !resumed(stream.get_ref().1.handshake_kind()) {
        tracing::info!(
            %from,
            "data connection refused: its TLS session is not this control connection's"
        );
        reset(stream.get_ref().0);
        return Err(Refused::NotResumed);
    }
    Ok(stream)
}

/// The reason a transfer's error reply gives when its data connection did not resume the
/// control connection's TLS session.
pub(crate) const REUSE_REQUIRED: &str = "The data connection was refused: it must resume this control connection's TLS session (FileZilla, WinSCP, curl, lftp and rclone do; a client that cannot needs the server's require_tls_session_reuse off).";

/// Whether a data connection's handshake resumed a TLS session: with the control session's
/// own cache and ticketer, one of that session's. Pure.
pub(crate) fn resumed(kind: Option<rustls::HandshakeKind>) -> bool {
    kind == Some(rustls::HandshakeKind::Resumed)
}

/// A port from `ports` picked from a varying starting point, so that sessions do not all
/// queue for the first free one.
fn bind_in_range(ip: IpAddr, ports: RangeInclusive<u16>) -> io::Result<TcpListener> {
    let (first, last) = (u32::from(*ports.start()), u32::from(*ports.end()));
    let span = last.saturating_sub(first) + 1;
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let mut last_err = io::Error::new(io::ErrorKind::AddrInUse, "no free passive port");
    for i in 0..(BIND_TRIES as u32).min(span) {
        let port = first + (seed.wrapping_add(i.wrapping_mul(7919)) % span);
        let socket = match ip {
            IpAddr::V4(_) => TcpSocket::new_v4()?,
            IpAddr::V6(_) => TcpSocket::new_v6()?,
        };
        // The range holds at most 65,535 ports, so `port` fits in a u16.
        let port = u16::try_from(port).unwrap_or(u16::MAX);
        socket.set_reuseaddr(true)?;
        match socket.bind(SocketAddr::new(ip, port)) {
            Ok(()) => return socket.listen(16),
            Err(e) => last_err = e,
        }
    }
    Err(last_err)
}

/// The TCP connection under a relayed client stream, to reset it.
trait Tcp {
    fn tcp(&self) -> &TcpStream;
}

impl Tcp for TcpStream {
    fn tcp(&self) -> &TcpStream {
        self
    }
}

impl Tcp for EndChecked {
    fn tcp(&self) -> &TcpStream {
        self.get_ref()
    }
}

impl Tcp for tokio_rustls::server::TlsStream<TcpStream> {
    fn tcp(&self) -> &TcpStream {
        self.get_ref().0
    }
}

/// Acknowledges what the client sent at once instead of up to 40 ms later (Linux's delayed
/// ACK): a client whose socket holds writes smaller than a segment back until its earlier
/// ones are acknowledged (Nagle's algorithm, the default) would otherwise send its first data
/// after the TLS handshake, and the close_notify that ends its upload, only when that timer
/// fires (Python's `ftplib` waited 45 ms per file). Elsewhere nothing is done.
struct Acker(#[cfg(target_os = "linux")] Option<socket2::Socket>);

impl Acker {
    #[cfg(target_os = "linux")]
    fn new(tcp: &TcpStream) -> Acker {
        Acker(socket2::SockRef::from(tcp).try_clone().ok())
    }

    #[cfg(not(target_os = "linux"))]
    fn new(_tcp: &TcpStream) -> Acker {
        Acker()
    }

    /// Sends the acknowledgement of everything read so far, if one is pending.
    fn ack_now(&self) {
        #[cfg(target_os = "linux")]
        if let Some(s) = &self.0 {
            let _ = s.set_tcp_quickack(true);
        }
    }
}

/// Copies both ways until both sides are done; an error on either side resets both, and so
/// does silence in both directions for `idle` (a client that keeps its side open forever), or
/// a write to the client that it does not take within `idle` (a download whose client stopped
/// reading: libunftp's write fails in turn, and the download gives its buffers back).
/// `delivered` gets `true` once libunftp's end has been passed on to the client (dropped
/// unsent when the connection breaks first). With `tls_tap`, `client` is a TLS stream: its
/// clean end (`Ok(0)`) is the client's close_notify, recorded in the tap before the FIN goes
/// to libunftp and answered with ours; its end without close_notify is an error. When the
/// connection breaks, `broken` ends libunftp's side (and tells the tap).
async fn pipe<C>(
    mut client: C,
    mut inner: TcpStream,
    delivered: oneshot::Sender<bool>,
    tls_tap: Option<Arc<ControlTap>>,
    broken: impl FnOnce(&TcpStream),
    idle: Duration,
) where
    C: AsyncRead + AsyncWrite + Unpin + Tcp,
{
    let mut delivered = Some(delivered);
    let _ = inner.set_nodelay(true);
    let acker = Acker::new(client.tcp());
    // Under TLS the client's last handshake message has just been read: a client that holds
    // its first data back until that is acknowledged must not wait for the timer either.
    acker.ack_now();
    let outcome: io::Result<()> = {
        let (mut client_rd, mut client_wr) = tokio::io::split(&mut client);
        let (mut inner_rd, mut inner_wr) = inner.split();
        let mut up = vec![0u8; COPY_BUF];
        let mut down = vec![0u8; COPY_BUF];
        let (mut up_open, mut down_open) = (true, true);
        // Whether our side towards the client is closed (under TLS: close_notify sent).
        let mut client_closed = false;
        async {
            while up_open || down_open {
                tokio::select! {
                    r = client_rd.read(&mut up), if up_open => match r? {
                        0 => {
                            up_open = false;
                            if let Some(tap) = &tls_tap {
                                tap.set_data_closed_cleanly();
                            }
                            inner_wr.shutdown().await?;
                            if tls_tap.is_some() && !client_closed {
                                // Answer the close_notify: nothing more goes to the client.
                                client_closed = true;
                                shutdown_within(&mut client_wr, idle).await?;
                            }
                        }
                        n => {
                            acker.ack_now();
                            write_within(&mut inner_wr, &up[..n], idle).await?
                        }
                    },
                    r = inner_rd.read(&mut down), if down_open => match r? {
                        0 => {
                            down_open = false;
                            if !client_closed {
                                client_closed = true;
                                shutdown_within(&mut client_wr, idle).await?;
                            }
                            if let Some(tx) = delivered.take() {
                                let _ = tx.send(true);
                            }
                        }
                        _ if client_closed => {
                            return Err(io::Error::new(
                                io::ErrorKind::BrokenPipe,
                                "the client closed the data connection during a download",
                            ));
                        }
                        n => write_within(&mut client_wr, &down[..n], idle).await?,
                    },
                    _ = tokio::time::sleep(idle) => {
                        return Err(io::Error::new(io::ErrorKind::TimedOut, "data connection idle"));
                    }
                }
            }
            Ok(())
        }
        .await
    };
    if let Err(e) = outcome {
        tracing::debug!(error = %e, "relayed data connection broke");
        reset(client.tcp());
        broken(&inner);
    }
}

/// Writes `buf`, failing when the peer takes nothing for `idle` (a client that keeps its
/// side open but never reads).
async fn write_within<W: AsyncWriteExt + Unpin>(
    w: &mut W,
    buf: &[u8],
    idle: Duration,
) -> io::Result<()> {
    tokio::time::timeout(idle, w.write_all(buf))
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "data connection stalled"))?
}

/// Ends our side towards the client (under TLS: the records rustls still holds, then
/// close_notify, then FIN), failing when the client takes nothing for `idle`.
async fn shutdown_within<W: AsyncWriteExt + Unpin>(w: &mut W, idle: Duration) -> io::Result<()> {
    tokio::time::timeout(idle, w.shutdown())
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "data connection stalled"))?
}

/// Makes the close of `stream` a reset instead of a FIN.
fn reset(stream: &TcpStream) {
    let _ = socket2::SockRef::from(stream).set_linger(Some(Duration::ZERO));
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    #[test]
    fn only_a_resumed_handshake_is_the_sessions() {
        use rustls::HandshakeKind::{Full, FullWithHelloRetryRequest, Resumed};
        assert!(resumed(Some(Resumed)));
        assert!(!resumed(Some(Full)));
        assert!(!resumed(Some(FullWithHelloRetryRequest)));
        assert!(!resumed(None));
    }

    use super::*;

    /// Listening on `port` of `lo` for a client on `lo`.
    fn listen(lo: IpAddr, port: u16) -> Listen {
        Listen {
            bind_ip: lo,
            ports: port..=port,
            client_ip: lo,
            proxy: None,
            idle: Duration::from_secs(300),
        }
    }

    /// libunftp's side (a listener), a relayed passive connection to it, and both ends.
    async fn relayed() -> (Passive, TcpStream, TcpStream) {
        let unftp = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let free = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = free.local_addr().unwrap().port();
        drop(free);
        let lo: IpAddr = "127.0.0.1".parse().unwrap();
        let passive = open(listen(lo, port), unftp.local_addr().unwrap(), None, None)
            .await
            .unwrap();
        let (inner, _) = unftp.accept().await.unwrap();
        let client = TcpStream::connect((lo, passive.port)).await.unwrap();
        (passive, inner, client)
    }

    #[tokio::test]
    async fn delivered_only_once_the_client_socket_has_every_byte() {
        let (mut passive, mut inner, mut client) = relayed().await;
        // More than all the socket buffers on the way hold, so the relay cannot be done
        // before the client reads.
        const LEN: usize = 64 << 20;
        let writer = tokio::spawn(async move {
            let chunk = vec![7u8; 1 << 20];
            for _ in 0..LEN >> 20 {
                inner.write_all(&chunk).await.unwrap();
            }
            inner.shutdown().await.unwrap();
            inner
        });
        let early = tokio::time::timeout(Duration::from_millis(300), passive.delivered()).await;
        assert!(
            early.is_err(),
            "delivered while the client had read nothing"
        );
        let mut got = 0;
        let mut buf = vec![0u8; 1 << 16];
        loop {
            match client.read(&mut buf).await.unwrap() {
                0 => break,
                n => got += n,
            }
        }
        assert_eq!(got, LEN);
        let _inner = writer.await.unwrap();
        assert!(passive.delivered().await);
        assert!(passive.delivered().await, "the answer is kept");
    }

    #[tokio::test]
    async fn not_delivered_when_the_client_resets_or_never_comes() {
        let (mut passive, mut inner, client) = relayed().await;
        socket2::SockRef::from(&client)
            .set_linger(Some(Duration::ZERO))
            .unwrap();
        drop(client);
        let chunk = vec![7u8; 1 << 20];
        // The relay's writes to the reset client fail; libunftp's side is reset in turn.
        for _ in 0..64 {
            if inner.write_all(&chunk).await.is_err() {
                break;
            }
        }
        let _ = inner.shutdown().await;
        assert!(!passive.delivered().await);
        assert!(!passive.delivered().await, "the answer is kept");

        let unftp = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let lo: IpAddr = "127.0.0.1".parse().unwrap();
        let free = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = free.local_addr().unwrap().port();
        drop(free);
        let mut passive = open(listen(lo, port), unftp.local_addr().unwrap(), None, None)
            .await
            .unwrap();
        passive.abort();
        assert!(!passive.delivered().await, "no client ever connected");
    }
}
