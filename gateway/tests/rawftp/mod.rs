//! A small FTP client over raw sockets, for tests that must misbehave on purpose: reset a data
//! connection, send ABOR mid-upload, end a TLS data channel without close_notify, hang up the
//! control connection while data still flows. Ready-made clients do not let a test do these.

#![allow(dead_code)] // each test binary uses a different subset

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio_rustls::rustls::pki_types::ServerName;
use tokio_rustls::{TlsConnector, client::TlsStream, rustls};

/// Any byte stream.
pub(crate) trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// A control connection.
pub(crate) struct Raw {
    ctl: BufReader<Box<dyn Io>>,
    addr: SocketAddr,
    tls: Option<TlsConnector>,
    /// The local address control and data connections are made from, when not the default.
    source: Option<IpAddr>,
}

/// A TCP connection to `addr` from `source` (any port), or from the default address.
pub(crate) async fn connect_from(
    addr: SocketAddr,
    source: Option<IpAddr>,
) -> std::io::Result<TcpStream> {
    match source {
        None => TcpStream::connect(addr).await,
        Some(ip) => {
            let socket = match ip {
                IpAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
                IpAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
            };
            socket.bind(SocketAddr::new(ip, 0))?;
            socket.connect(addr).await
        }
    }
}

/// A TLS client config that trusts exactly `cert_pem` (the gateway's certificate).
pub(crate) fn tls_trusting(cert_pem: &std::path::Path) -> TlsConnector {
    tls_trusting_versions(cert_pem, rustls::DEFAULT_VERSIONS)
}

/// The same, limited to the given TLS versions. One connector keeps one client session cache,
/// so its data connections offer to resume the control connection's session.
pub(crate) fn tls_trusting_versions(
    cert_pem: &std::path::Path,
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> TlsConnector {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(cert_pem).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    TlsConnector::from(Arc::new(config))
}

/// Like [`tls_trusting_versions`], and counts the TLS 1.3 tickets the server sends on every
/// connection made with it.
pub(crate) fn tls_counting_tickets(
    cert_pem: &std::path::Path,
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> (TlsConnector, Arc<std::sync::atomic::AtomicUsize>) {
    let base = tls_trusting_versions(cert_pem, versions);
    let mut config = base.config().as_ref().clone();
    let counter = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    config.resumption = rustls::client::Resumption::store(Arc::new(CountingStore {
        inner: rustls::client::ClientSessionMemoryCache::new(64),
        tickets: counter.clone(),
    }));
    (TlsConnector::from(Arc::new(config)), counter)
}

/// A client session store that counts the TLS 1.3 tickets it is given.
#[derive(Debug)]
struct CountingStore {
    inner: rustls::client::ClientSessionMemoryCache,
    tickets: Arc<std::sync::atomic::AtomicUsize>,
}

impl rustls::client::ClientSessionStore for CountingStore {
    fn set_kx_hint(&self, name: ServerName<'static>, group: rustls::NamedGroup) {
        self.inner.set_kx_hint(name, group)
    }
    fn kx_hint(&self, name: &ServerName<'_>) -> Option<rustls::NamedGroup> {
        self.inner.kx_hint(name)
    }
    fn set_tls12_session(
        &self,
        name: ServerName<'static>,
        value: rustls::client::Tls12ClientSessionValue,
    ) {
        self.inner.set_tls12_session(name, value)
    }
    fn tls12_session(
        &self,
        name: &ServerName<'_>,
    ) -> Option<rustls::client::Tls12ClientSessionValue> {
        self.inner.tls12_session(name)
    }
    fn remove_tls12_session(&self, name: &ServerName<'static>) {
        self.inner.remove_tls12_session(name)
    }
    fn insert_tls13_ticket(
        &self,
        name: ServerName<'static>,
        value: rustls::client::Tls13ClientSessionValue,
    ) {
        self.tickets
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.inner.insert_tls13_ticket(name, value)
    }
    fn take_tls13_ticket(
        &self,
        name: &ServerName<'static>,
    ) -> Option<rustls::client::Tls13ClientSessionValue> {
        self.inner.take_tls13_ticket(name)
    }
}

fn server_name() -> ServerName<'static> {
    ServerName::try_from("127.0.0.1").unwrap()
}

impl Raw {
    /// Connects and reads the greeting.
    pub(crate) async fn connect(addr: SocketAddr) -> Raw {
        Raw::connect_from(addr, None).await
    }

    /// Connects from `source` (e.g. 127.0.0.2, a client the gateway relays data for) and
    /// reads the greeting; data connections come from `source` too.
    pub(crate) async fn connect_from(addr: SocketAddr, source: Option<IpAddr>) -> Raw {
        let s = connect_from(addr, source).await.expect("connect");
        let mut raw = Raw {
            ctl: BufReader::new(Box::new(s)),
            addr,
            tls: None,
            source,
        };
        let (code, text) = raw.reply().await;
        assert_eq!(code, 220, "greeting: {text}");
        raw
    }

    /// Reads one (possibly multi-line) reply.
    pub(crate) async fn reply(&mut self) -> (u32, String) {
        let mut all = String::new();
        let mut first_code: Option<String> = None;
        loop {
            let mut line = String::new();
            let n = tokio::time::timeout(Duration::from_secs(30), self.ctl.read_line(&mut line))
                .await
                .unwrap_or_else(|_| panic!("no reply within 30 s; so far: {all:?}"))
                .unwrap_or(0);
            if n == 0 {
                return (0, all);
            }
            all.push_str(&line);
            let code = line.get(..3).unwrap_or("").to_owned();
            match &first_code {
                None => {
                    if line.as_bytes().get(3) == Some(&b'-') {
                        first_code = Some(code);
                    } else {
                        return (code.parse().unwrap_or(0), all);
                    }
                }
                Some(c) => {
                    if line.starts_with(&format!("{c} ")) {
                        return (c.parse().unwrap_or(0), all);
                    }
                }
            }
        }
    }

    /// Sends a command line without reading the reply.
    pub(crate) async fn send(&mut self, cmd: &str) {
        let w = self.ctl.get_mut();
        let _ = w.write_all(format!("{cmd}\r\n").as_bytes()).await;
        let _ = w.flush().await;
    }

    /// Sends a command and reads its reply.
    pub(crate) async fn cmd(&mut self, cmd: &str) -> (u32, String) {
        self.send(cmd).await;
        self.reply().await
    }

    /// AUTH TLS; `login` then sends PBSZ 0 + PROT P.
    pub(crate) async fn auth_tls(mut self, connector: TlsConnector) -> Raw {
        let (code, text) = self.cmd("AUTH TLS").await;
        assert_eq!(code, 234, "{text}");
        let plain = self.ctl.into_inner();
        let tls = tokio::time::timeout(
            Duration::from_secs(10),
            connector.connect(server_name(), plain),
        )
        .await
        .expect("no TLS handshake within 10 s")
        .expect("TLS handshake after AUTH TLS");
        Raw {
            ctl: BufReader::new(Box::new(tls)),
            addr: self.addr,
            tls: Some(connector),
            source: self.source,
        }
    }

    /// AUTH TLS with the ClientHello sent right behind the command, before the `234` is read
    /// (both in one write when the kernel allows): the server must not read the ClientHello
    /// as a command.
    pub(crate) async fn auth_tls_pipelined(self, connector: TlsConnector) -> Raw {
        let stream = PipelinedAuth {
            inner: self.ctl.into_inner(),
            pending: b"AUTH TLS\r\n".to_vec(),
            reply: Vec::new(),
            reply_done: false,
        };
        let tls = tokio::time::timeout(
            Duration::from_secs(10),
            connector.connect(server_name(), stream),
        )
        .await
        .expect("no TLS handshake within 10 s")
        .expect("TLS handshake with a pipelined ClientHello");
        let reply = String::from_utf8_lossy(&tls.get_ref().0.reply).into_owned();
        assert!(reply.starts_with("234 "), "AUTH TLS reply: {reply:?}");
        Raw {
            ctl: BufReader::new(Box::new(tls)),
            addr: self.addr,
            tls: Some(connector),
            source: self.source,
        }
    }

    /// USER + PASS + TYPE I (+ PBSZ/PROT under TLS); panics unless logged in.
    pub(crate) async fn login(&mut self, user: &str, pass: &str) {
        let (code, text) = self.try_login(user, pass).await;
        assert_eq!(code, 230, "login: {text}");
        if self.tls.is_some() {
            assert_eq!(self.cmd("PBSZ 0").await.0, 200);
            assert_eq!(self.cmd("PROT P").await.0, 200);
        }
        assert_eq!(self.cmd("TYPE I").await.0, 200);
    }

    /// USER + PASS, returning PASS's reply.
    pub(crate) async fn try_login(&mut self, user: &str, pass: &str) -> (u32, String) {
        let (code, text) = self.cmd(&format!("USER {user}")).await;
        if code != 331 {
            return (code, text);
        }
        self.cmd(&format!("PASS {pass}")).await
    }

    /// EPSV: the data port.
    pub(crate) async fn epsv(&mut self) -> u16 {
        let (code, text) = self.cmd("EPSV").await;
        assert_eq!(code, 229, "{text}");
        let inner = text
            .split("|||")
            .nth(1)
            .and_then(|r| r.split('|').next())
            .unwrap_or_else(|| panic!("EPSV reply {text}"));
        inner
            .parse()
            .unwrap_or_else(|_| panic!("EPSV port in {text}"))
    }

    /// Opens a passive data connection and sends `cmd` (STOR x, RETR x, ...), expecting 150.
    pub(crate) async fn data(&mut self, cmd: &str) -> DataConn {
        let port = self.epsv().await;
        let tcp = connect_from(SocketAddr::new(self.addr.ip(), port), self.source)
            .await
            .expect("data connect");
        let (code, text) = self.cmd(cmd).await;
        assert_eq!(code, 150, "{cmd}: {text}");
        match &self.tls {
            Some(c) => DataConn::Tls(Box::new(
                c.connect(server_name(), tcp).await.expect("data TLS"),
            )),
            None => DataConn::Plain(tcp),
        }
    }

    /// Drops the control connection (FIN).
    pub(crate) async fn hang_up(mut self) {
        let _ = self.ctl.get_mut().shutdown().await;
    }
}

/// A data connection.
pub(crate) enum DataConn {
    /// Plain TCP.
    Plain(TcpStream),
    /// TLS (PROT P).
    Tls(Box<TlsStream<TcpStream>>),
}

impl DataConn {
    /// Writes all of `buf`; false when the server closed the connection.
    pub(crate) async fn write(&mut self, buf: &[u8]) -> bool {
        match self {
            DataConn::Plain(s) => s.write_all(buf).await.is_ok(),
            DataConn::Tls(s) => s.write_all(buf).await.is_ok(),
        }
    }

    /// A proper end: FIN (and close_notify under TLS).
    pub(crate) async fn finish(self) {
        match self {
            DataConn::Plain(mut s) => {
                let _ = s.shutdown().await;
            }
            DataConn::Tls(mut s) => {
                let _ = s.shutdown().await;
            }
        }
    }

    /// How the TLS handshake of this data connection went (`None` for plain TCP).
    pub(crate) fn handshake_kind(&self) -> Option<rustls::HandshakeKind> {
        match self {
            DataConn::Plain(_) => None,
            DataConn::Tls(s) => s.get_ref().1.handshake_kind(),
        }
    }

    /// Reads until at least `n` bytes came (a download's beginning); fails when it ends first.
    pub(crate) async fn read_at_least(&mut self, n: usize) -> Vec<u8> {
        use tokio::io::AsyncReadExt;
        let mut out = Vec::new();
        let mut buf = vec![0u8; 64 * 1024];
        while out.len() < n {
            let got = match self {
                DataConn::Plain(s) => s.read(&mut buf).await,
                DataConn::Tls(s) => s.read(&mut buf).await,
            }
            .expect("data read");
            assert!(
                got > 0,
                "the data connection ended after {} bytes",
                out.len()
            );
            out.extend_from_slice(&buf[..got]);
        }
        out
    }

    /// Reads to the end (a download or listing).
    pub(crate) async fn read_all(&mut self) -> Vec<u8> {
        use tokio::io::AsyncReadExt;
        let mut out = Vec::new();
        let _ = match self {
            DataConn::Plain(s) => s.read_to_end(&mut out).await,
            DataConn::Tls(s) => s.read_to_end(&mut out).await,
        };
        out
    }

    /// Reads to the end and fails on an end that is not clean (under TLS: a FIN without the
    /// server's close_notify).
    pub(crate) async fn read_to_clean_end(&mut self) -> std::io::Result<Vec<u8>> {
        use tokio::io::AsyncReadExt;
        let mut out = Vec::new();
        match self {
            DataConn::Plain(s) => s.read_to_end(&mut out).await?,
            DataConn::Tls(s) => s.read_to_end(&mut out).await?,
        };
        Ok(out)
    }

    /// Under TLS: sends close_notify (and FIN), then reads what the server sends back on the
    /// raw TCP connection until its FIN. Returns those bytes and whether rustls reads them as
    /// the server's close_notify. Plain: the FIN, then whatever came back, and false.
    pub(crate) async fn close_notify_and_read_answer(self) -> (Vec<u8>, bool) {
        use tokio::io::AsyncReadExt;
        let (mut tcp, conn) = match self {
            DataConn::Plain(s) => (s, None),
            DataConn::Tls(mut s) => {
                let _ = s.shutdown().await;
                let (tcp, conn) = s.into_inner();
                (tcp, Some(conn))
            }
        };
        let mut wire = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(5), tcp.read_to_end(&mut wire)).await;
        let Some(mut conn) = conn else {
            return (wire, false);
        };
        let mut rd = &wire[..];
        while !rd.is_empty() {
            if conn.read_tls(&mut rd).is_err() {
                return (wire, false);
            }
        }
        if conn.process_new_packets().is_err() {
            return (wire, false);
        }
        let mut sink = [0u8; 16];
        let close_notify = matches!(std::io::Read::read(&mut conn.reader(), &mut sink), Ok(0));
        (wire, close_notify)
    }

    /// A TCP reset (SO_LINGER 0).
    pub(crate) fn reset(self) {
        let tcp = match self {
            DataConn::Plain(s) => s,
            DataConn::Tls(s) => s.into_inner().0,
        };
        let _ = tcp.set_zero_linger();
        drop(tcp);
    }

    /// Ends a TLS data channel with a bare FIN, no close_notify.
    pub(crate) async fn fin_without_close_notify(self) {
        let mut tcp = match self {
            DataConn::Plain(s) => s,
            DataConn::Tls(s) => s.into_inner().0,
        };
        let _ = tcp.shutdown().await;
    }
}

/// Deterministic pseudo-random bytes.
pub(crate) fn data(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407)
        | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// A small pseudo-random generator for choosing cut points.
pub(crate) struct Rng(u64);

impl Rng {
    /// Seeded from the clock, printed so a failure can be replayed.
    pub(crate) fn new(label: &str) -> Rng {
        let seed = std::env::var("CANCEL_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos() as u64)
                    .unwrap_or(7)
            });
        eprintln!("{label}: CANCEL_SEED={seed}");
        Rng(seed | 1)
    }

    /// A number in `lo..hi`.
    pub(crate) fn range(&mut self, lo: u64, hi: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        lo + self.0 % (hi - lo).max(1)
    }
}

/// A stream that writes `pending` (the AUTH TLS line) in front of the first write (the
/// ClientHello), and on the read side takes the `234` reply line off before TLS sees bytes.
struct PipelinedAuth {
    inner: Box<dyn Io>,
    pending: Vec<u8>,
    reply: Vec<u8>,
    reply_done: bool,
}

impl AsyncWrite for PipelinedAuth {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        use std::task::Poll;
        if !self.pending.is_empty() {
            let mut joined = std::mem::take(&mut self.pending);
            let command = joined.len();
            joined.extend_from_slice(buf);
            return match std::pin::Pin::new(&mut self.inner).poll_write(cx, &joined) {
                Poll::Ready(Ok(n)) if n >= command => Poll::Ready(Ok(n - command)),
                Poll::Ready(Ok(n)) => {
                    self.pending = joined[n..command].to_vec();
                    Poll::Ready(Ok(0))
                }
                other => {
                    self.pending = joined[..command].to_vec();
                    other
                }
            };
        }
        std::pin::Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

impl AsyncRead for PipelinedAuth {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        use std::task::Poll;
        while !self.reply_done {
            let mut byte = [0u8; 1];
            let mut one = tokio::io::ReadBuf::new(&mut byte);
            match std::pin::Pin::new(&mut self.inner).poll_read(cx, &mut one) {
                Poll::Ready(Ok(())) if one.filled().is_empty() => return Poll::Ready(Ok(())),
                Poll::Ready(Ok(())) => {
                    self.reply.push(byte[0]);
                    if byte[0] == b'\n' {
                        self.reply_done = true;
                    }
                }
                other => return other,
            }
        }
        std::pin::Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}
