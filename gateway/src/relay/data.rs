//! Relayed passive data connections, for clients that are not on the loopback address the
//! relay talks to libunftp from (libunftp accepts a data connection only from its control
//! peer's address, which for it is the relay).
//!
//! For each `227`/`229` from libunftp the relay listens on a port of the configured passive
//! range on the address the client reached, tells the client that port, accepts one
//! connection from the client's address, and joins it to libunftp's port on loopback. The
//! bytes (TLS records under `PROT P`, which libunftp encrypts) pass through unchanged; an end
//! of the client's side is passed on as the same kind of end: a FIN as a FIN, a reset as a
//! reset, so a cancelled upload stays an error for libunftp's upload.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::ops::RangeInclusive;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};

/// How long a client has to connect to an announced passive port (libunftp's own value).
const ACCEPT_WITHIN: Duration = Duration::from_secs(15);
/// Silence in both directions after which a relayed data connection is reset.
const IDLE: Duration = Duration::from_secs(300);
/// Ports tried before giving up on a busy range.
const BIND_TRIES: usize = 32;

/// Connects to libunftp's passive port at `target` at once (so no other local process can
/// take it), listens on a free port of `ports` at `bind_ip`, and joins the first connection
/// from `client_ip` to it. Returns the port to announce and a handle that ends the wait.
pub async fn open(
    bind_ip: IpAddr,
    ports: RangeInclusive<u16>,
    client_ip: IpAddr,
    target: SocketAddr,
) -> io::Result<(u16, tokio::task::AbortHandle)> {
    let inner = TcpStream::connect(target).await?;
    let listener = bind_in_range(bind_ip, ports)?;
    let port = listener.local_addr()?.port();
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
            Ok(Some(client)) => pipe(client, inner).await,
            // Never connected: libunftp's side ends with the connection.
            _ => reset(&inner),
        }
    });
    Ok((port, task.abort_handle()))
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
async fn pipe(mut client: TcpStream, mut inner: TcpStream) {
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
                    n => inner_wr.write_all(&up[..n]).await?,
                },
                r = inner_rd.read(&mut down), if down_open => match r? {
                    0 => {
                        client_wr.shutdown().await?;
                        down_open = false;
                    }
                    n => client_wr.write_all(&down[..n]).await?,
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

/// Makes the close of `stream` a reset instead of a FIN.
fn reset(stream: &TcpStream) {
    let _ = socket2::SockRef::from(stream).set_linger(Some(Duration::ZERO));
}
