//! Relayed passive data connections, for clients that are not on the loopback address the
//! relay talks to libunftp from (libunftp accepts a data connection only from its control
//! peer's address, which for it is the relay).
//!
//! For each `227`/`229` from libunftp the relay listens on a port of the configured passive
//! range on the address the client reached, tells the client that port, accepts one
//! connection from the client's address, and joins it to libunftp's port on loopback. The
//! bytes (TLS records under `PROT P`, which libunftp encrypts) pass through unchanged; an end
//! of the client's side is passed on as the same kind of end: a FIN as a FIN, a reset as a
//! reset, so a cancelled upload stays an error for libunftp's upload. The relay learns when
//! libunftp's end has been passed on ([`Passive::delivered`]): a download's success reply
//! must not overtake its last bytes.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::ops::RangeInclusive;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::oneshot;

/// How long a client has to connect to an announced passive port (libunftp's own value).
const ACCEPT_WITHIN: Duration = Duration::from_secs(15);
/// Silence in both directions after which a relayed data connection is reset.
const IDLE: Duration = Duration::from_secs(300);
/// Ports tried before giving up on a busy range.
const BIND_TRIES: usize = 32;

/// One relayed passive connection.
#[derive(Debug)]
pub struct Passive {
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
    pub fn abort(&self) {
        self.task.abort();
    }

    /// Waits until everything libunftp sent has been written to the client's socket and
    /// followed by a FIN (`true`), or until that can no longer happen: the client never
    /// connected, or the connection broke (`false`). Once written, the bytes reach the client
    /// even if this process dies; before, they would be lost with it while the client saw a
    /// clean end. Once known, the answer is kept.
    pub async fn delivered(&mut self) -> bool {
        if let Some(rx) = self.delivered.as_mut() {
            self.outcome = rx.await.unwrap_or(false);
            self.delivered = None;
        }
        self.outcome
    }
}

/// Connects to libunftp's passive port at `target` at once (so no other local process can
/// take it), listens on a free port of `ports` at `bind_ip`, and joins the first connection
/// from `client_ip` to it.
pub async fn open(
    bind_ip: IpAddr,
    ports: RangeInclusive<u16>,
    client_ip: IpAddr,
    target: SocketAddr,
) -> io::Result<Passive> {
    let inner = TcpStream::connect(target).await?;
    let listener = bind_in_range(bind_ip, ports)?;
    let port = listener.local_addr()?.port();
    let (delivered_tx, delivered) = oneshot::channel();
    let task = tokio::spawn(async move {
        let accepted = tokio::time::timeout(ACCEPT_WITHIN, async {
            loop {
                match listener.accept().await {
                    Ok((stream, from)) if from.ip().to_canonical() == client_ip => {
                        return Some(stream);
                    }
                    Ok((stranger, from)) => {
                        tracing::debug!(%from, "data connection from another address refused");
                        reset(&stranger);
                    }
                    Err(e) => {
                        tracing::debug!(error = %e, "data accept failed");
                        return None;
                    }
                }
            }
        })
        .await;
        drop(listener);
        match accepted {
            Ok(Some(client)) => pipe(client, inner, delivered_tx).await,
            // Never connected: libunftp's side ends with the connection.
            _ => reset(&inner),
        }
    });
    Ok(Passive {
        port,
        task: task.abort_handle(),
        delivered: Some(delivered),
        outcome: false,
    })
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
            Ok(()) => return socket.listen(1),
            Err(e) => last_err = e,
        }
    }
    Err(last_err)
}

/// Copies both ways until both sides are done; an error on either side resets both, and so
/// does silence in both directions for [`IDLE`] (a client that keeps its side open forever).
/// `delivered` gets `true` once libunftp's end has been passed on to the client (dropped
/// unsent when the connection breaks first).
async fn pipe(mut client: TcpStream, mut inner: TcpStream, delivered: oneshot::Sender<bool>) {
    let mut delivered = Some(delivered);
    let _ = client.set_nodelay(true);
    let _ = inner.set_nodelay(true);
    let (mut client_rd, mut client_wr) = client.split();
    let (mut inner_rd, mut inner_wr) = inner.split();
    let mut up = [0u8; 64 * 1024];
    let mut down = [0u8; 64 * 1024];
    let (mut up_open, mut down_open) = (true, true);
    let outcome: io::Result<()> = async {
        while up_open || down_open {
            tokio::select! {
                r = client_rd.read(&mut up), if up_open => match r? {
                    0 => {
                        inner_wr.shutdown().await?;
                        up_open = false;
                    }
                    n => write_within(&mut inner_wr, &up[..n]).await?,
                },
                r = inner_rd.read(&mut down), if down_open => match r? {
                    0 => {
                        client_wr.shutdown().await?;
                        down_open = false;
                        if let Some(tx) = delivered.take() {
                            let _ = tx.send(true);
                        }
                    }
                    n => write_within(&mut client_wr, &down[..n]).await?,
                },
                _ = tokio::time::sleep(IDLE) => {
                    return Err(io::Error::new(io::ErrorKind::TimedOut, "data connection idle"));
                }
            }
        }
        Ok(())
    }
    .await;
    if let Err(e) = outcome {
        tracing::debug!(error = %e, "relayed data connection broke");
        reset(&client);
        reset(&inner);
    }
}

/// Writes `buf`, failing when the peer takes nothing for [`IDLE`] (a client that keeps its
/// side open but never reads).
async fn write_within<W: AsyncWriteExt + Unpin>(w: &mut W, buf: &[u8]) -> io::Result<()> {
    tokio::time::timeout(IDLE, w.write_all(buf))
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
    use super::*;

    /// libunftp's side (a listener), a relayed passive connection to it, and both ends.
    async fn relayed() -> (Passive, TcpStream, TcpStream) {
        let unftp = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let free = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = free.local_addr().unwrap().port();
        drop(free);
        let lo: IpAddr = "127.0.0.1".parse().unwrap();
        let passive = open(lo, port..=port, lo, unftp.local_addr().unwrap())
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
        let mut passive = open(lo, port..=port, lo, unftp.local_addr().unwrap())
            .await
            .unwrap();
        passive.abort();
        assert!(!passive.delivered().await, "no client ever connected");
    }
}
