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

use tokio::net::{TcpListener, TcpSocket, TcpStream};

/// How long a client has to connect to an announced passive port (libunftp's own value).
const ACCEPT_WITHIN: Duration = Duration::from_secs(15);
/// Ports tried before giving up on a busy range.
const BIND_TRIES: usize = 32;

/// Listens on a free port of `ports` at `bind_ip` and relays the first connection from
/// `client_ip` to `target`. Returns the port to announce.
pub async fn open(
    bind_ip: IpAddr,
    ports: RangeInclusive<u16>,
    client_ip: IpAddr,
    target: SocketAddr,
) -> io::Result<u16> {
    let listener = bind_in_range(bind_ip, ports)?;
    let port = listener.local_addr()?.port();
    tokio::spawn(async move {
        let accepted = tokio::time::timeout(ACCEPT_WITHIN, async {
            loop {
                match listener.accept().await {
                    Ok((stream, from)) if from.ip() == client_ip => return Some(stream),
                    Ok((_, from)) => {
                        tracing::warn!(%from, "data connection from another address refused");
                    }
                    Err(e) => {
                        tracing::debug!(error = %e, "data accept failed");
                        return None;
                    }
                }
            }
        })
        .await;
        if let Ok(Some(client)) = accepted {
            match TcpStream::connect(target).await {
                Ok(inner) => pipe(client, inner).await,
                Err(e) => {
                    tracing::debug!(error = %e, "libunftp's data port did not answer");
                    reset(&client);
                }
            }
        }
    });
    Ok(port)
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
        match socket.bind(SocketAddr::new(ip, port)) {
            Ok(()) => return socket.listen(1),
            Err(e) => last_err = e,
        }
    }
    Err(last_err)
}

/// Copies both ways until both sides are done; an error on either side resets both.
async fn pipe(mut client: TcpStream, mut inner: TcpStream) {
    let _ = client.set_nodelay(true);
    let _ = inner.set_nodelay(true);
    if let Err(e) = tokio::io::copy_bidirectional(&mut client, &mut inner).await {
        tracing::debug!(error = %e, "relayed data connection broke");
        reset(&client);
        reset(&inner);
    }
}

/// Makes the close of `stream` a reset instead of a FIN.
fn reset(stream: &TcpStream) {
    let _ = socket2::SockRef::from(stream).set_linger(Some(Duration::ZERO));
}
