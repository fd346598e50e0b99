//! How a data connection ended, when the socket layer reports less than the network did.
//!
//! A client that cancels an upload by resetting its data connection (RST) must see the upload
//! fail: over plain FTP the reset is the only thing that tells the cancel from a finished
//! upload. Linux reports it to the reader as `ECONNRESET`, and so does Windows
//! (`WSAECONNRESET`). Wine does not always: when the program waits for the socket through
//! an event loop (tokio's, on Windows an AFD poll), wineserver polls the Linux socket for it,
//! sees `POLLERR | POLLHUP` and reads the socket's pending error with
//! `getsockopt(SO_ERROR)`, which clears it; the program's next `recv()` then returns 0, a
//! clean end of stream. `tests/windows/reset_probe.c` shows it under Wine 8.0: a `recv()`
//! already waiting gets `WSAECONNRESET`, a `recv()` after a poll gets 0
//! (`scripts/test-windows.sh` runs it; the same upload cut by a reset was committed by the
//! Windows build under Wine until the relay used [`EndChecked`]).
//!
//! The socket still knows: a connection that was reset is closed, so asking for its peer's
//! address fails with "not connected" (`ENOTCONN`, `WSAENOTCONN`), while a connection the
//! peer ended with a FIN still has its peer (it is half-closed) until this side closes too.
//! [`EndChecked`] asks at every clean end of stream and turns a reset that came through as a
//! clean end back into [`io::ErrorKind::ConnectionReset`]. The question is not asked once
//! this side has sent its own FIN (a download's end): the peer's FIN then closes the
//! connection, which has no peer any more though nothing was reset. On Linux the question is
//! never needed (the reset arrives as an error first).

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// Whether a stream that just reported its end (a read of 0 bytes) was reset instead,
/// judged from what asking for its peer's address gave. Pure.
pub(crate) fn ended_by_reset(peer: &io::Result<SocketAddr>) -> bool {
    matches!(peer, Err(e) if e.kind() == io::ErrorKind::NotConnected)
}

/// A TCP stream whose clean end is checked: see the module docs.
#[derive(Debug)]
pub(crate) struct EndChecked {
    inner: TcpStream,
    /// This side has sent its FIN: once the peer's comes too, the connection is closed and
    /// has no peer any more, though nothing was reset. No question is asked then.
    shut: bool,
}

impl EndChecked {
    /// Wraps `inner`.
    pub(crate) fn new(inner: TcpStream) -> Self {
        Self { inner, shut: false }
    }

    /// The TCP stream.
    pub(crate) fn get_ref(&self) -> &TcpStream {
        &self.inner
    }
}

impl AsyncRead for EndChecked {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let room = buf.remaining() > 0;
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) if room && buf.filled().len() == before => {
                if !this.shut && ended_by_reset(&this.inner.peer_addr()) {
                    Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::ConnectionReset,
                        "the connection was reset (the socket layer reported a clean end)",
                    )))
                } else {
                    Poll::Ready(Ok(()))
                }
            }
            other => other,
        }
    }
}

impl AsyncWrite for EndChecked {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let done = Pin::new(&mut this.inner).poll_shutdown(cx);
        if matches!(done, Poll::Ready(Ok(()))) {
            this.shut = true;
        }
        done
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use std::time::Duration;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    use super::*;

    /// A connected pair on loopback: (the client's end, the server's end).
    async fn pair() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (server, _) = listener.accept().await.unwrap();
        (client, server)
    }

    fn abort(stream: TcpStream) {
        socket2::SockRef::from(&stream)
            .set_linger(Some(Duration::ZERO))
            .unwrap();
        drop(stream);
    }

    /// Reads to the end: the bytes read, and how it ended.
    async fn drain<R: AsyncRead + Unpin>(r: &mut R) -> (usize, io::Result<()>) {
        let mut total = 0;
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match r.read(&mut buf).await {
                Ok(0) => return (total, Ok(())),
                Ok(n) => total += n,
                Err(e) => return (total, Err(e)),
            }
        }
    }

    #[test]
    fn only_not_connected_means_reset() {
        let addr: SocketAddr = "127.0.0.1:21".parse().unwrap();
        assert!(!ended_by_reset(&Ok(addr)));
        assert!(ended_by_reset(&Err(io::ErrorKind::NotConnected.into())));
        assert!(!ended_by_reset(&Err(io::ErrorKind::Other.into())));
    }

    /// What Wine does, done here on Linux: the reset's pending error is read and cleared
    /// (`SO_ERROR`) before the program reads, so a plain read sees a clean end. The wrapped
    /// stream reports the reset. (Windows keeps the reset for the read whatever `SO_ERROR`
    /// says: there the Wine run, `tests/windows/reset_probe.c`, is the test.)
    #[cfg(not(windows))]
    #[tokio::test]
    async fn a_reset_whose_error_was_cleared_is_still_a_reset() {
        for wrapped in [false, true] {
            let (mut client, server) = pair().await;
            client.write_all(&[7u8; 100_000]).await.unwrap();
            abort(client);
            tokio::time::sleep(Duration::from_millis(100)).await;
            // wineserver's `sock_error()`: getsockopt(SO_ERROR) clears the reset.
            let cleared = socket2::SockRef::from(&server).take_error().unwrap();
            assert_eq!(
                cleared.map(|e| e.kind()),
                Some(io::ErrorKind::ConnectionReset)
            );
            let ended = if wrapped {
                drain(&mut EndChecked::new(server)).await.1
            } else {
                let mut server = server;
                drain(&mut server).await.1
            };
            if wrapped {
                let e = ended.unwrap_err();
                assert_eq!(e.kind(), io::ErrorKind::ConnectionReset, "{e}");
            } else {
                assert!(
                    ended.is_ok(),
                    "without the check the reset looks like an end"
                );
            }
        }
    }

    #[tokio::test]
    async fn a_clean_end_stays_clean_and_every_byte_arrives() {
        let (mut client, server) = pair().await;
        let mut server = EndChecked::new(server);
        let writer = tokio::spawn(async move {
            client.write_all(&vec![1u8; 3_000_000]).await.unwrap();
            client.shutdown().await.unwrap();
            client
        });
        let (n, ended) = drain(&mut server).await;
        assert_eq!(n, 3_000_000);
        assert!(ended.is_ok());
        // The connection is half-closed, not reset: the server can still answer.
        server.write_all(b"226 done\r\n").await.unwrap();
        let mut client = writer.await.unwrap();
        let mut reply = Vec::new();
        drop(server);
        client.read_to_end(&mut reply).await.unwrap();
        assert_eq!(reply, b"226 done\r\n");
    }

    #[tokio::test]
    async fn a_reset_reported_as_an_error_passes_through() {
        let (mut client, server) = pair().await;
        client.write_all(b"some bytes").await.unwrap();
        abort(client);
        tokio::time::sleep(Duration::from_millis(100)).await;
        let (_, ended) = drain(&mut EndChecked::new(server)).await;
        assert_eq!(ended.unwrap_err().kind(), io::ErrorKind::ConnectionReset);
    }

    #[tokio::test]
    async fn an_empty_buffer_is_not_an_end() {
        let (mut client, server) = pair().await;
        let mut server = EndChecked::new(server);
        client.write_all(b"x").await.unwrap();
        abort(client);
        tokio::time::sleep(Duration::from_millis(100)).await;
        let _ = socket2::SockRef::from(server.get_ref()).take_error();
        // A read into no room returns at once without asking the socket.
        let mut none = [0u8; 0];
        assert_eq!(server.read(&mut none).await.unwrap(), 0);
    }
}
