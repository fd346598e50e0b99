//! An object's bytes as a stream of chunks, for GetObject replies.
//!
//! Each chunk is read on the blocking pool straight into the buffer that is handed over (one
//! copy, from the page cache), and the next chunk is read while the current one is sent. A
//! `tokio::fs::File` behind a `ReaderStream` would copy every byte once more (from the file's
//! own buffer into the stream's) and hop threads for every quarter megabyte.

use std::io::{self, Read};
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use futures::Stream;
use tokio::task::JoinHandle;

/// One chunk's read: the file (to read on from), the bytes still to read after it, and the
/// chunk.
type ChunkRead = (std::fs::File, u64, io::Result<Bytes>);

/// The next `len` bytes of a file, from its current position, in chunks of up to `chunk`
/// bytes. A file that ends early makes the stream end with an `UnexpectedEof` error instead of
/// a short body.
pub(crate) struct FileChunks {
    read: Option<JoinHandle<ChunkRead>>,
    chunk: usize,
}

impl FileChunks {
    pub(crate) fn new(file: std::fs::File, len: u64, chunk: usize) -> Self {
        Self {
            read: start(file, len, chunk),
            chunk,
        }
    }
}

/// Starts reading the next chunk, unless nothing is left.
fn start(mut file: std::fs::File, left: u64, chunk: usize) -> Option<JoinHandle<ChunkRead>> {
    if left == 0 {
        return None;
    }
    let want = usize::try_from(left).map_or(chunk, |l| l.min(chunk));
    Some(tokio::task::spawn_blocking(move || {
        let mut buf = Vec::with_capacity(want);
        // `read_to_end` fills the spare capacity without zeroing it first.
        let (left, chunk) = match (&mut file).take(want as u64).read_to_end(&mut buf) {
            Ok(0) => (
                0,
                Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the file is shorter than its recorded size",
                )),
            ),
            Ok(n) => (left - n as u64, Ok(Bytes::from(buf))),
            Err(e) => (0, Err(e)),
        };
        (file, left, chunk)
    }))
}

impl Stream for FileChunks {
    type Item = io::Result<Bytes>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let Some(read) = self.read.as_mut() else {
            return Poll::Ready(None);
        };
        let done = ready!(Pin::new(read).poll(cx));
        self.read = None;
        let (file, left, bytes) = match done {
            Ok(d) => d,
            Err(e) => return Poll::Ready(Some(Err(io::Error::other(e)))),
        };
        if bytes.is_ok() {
            let chunk = self.chunk;
            self.read = start(file, left, chunk);
        }
        Poll::Ready(Some(bytes))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use std::io::{Seek, SeekFrom, Write};

    use futures::StreamExt;

    use super::*;

    fn file_of(bytes: &[u8]) -> std::fs::File {
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(bytes).unwrap();
        f.seek(SeekFrom::Start(0)).unwrap();
        f
    }

    #[tokio::test]
    async fn chunks_of_a_range_then_the_end() {
        let data: Vec<u8> = (0..=255u8).cycle().take(10_000).collect();
        let mut f = file_of(&data);
        f.seek(SeekFrom::Start(100)).unwrap();
        let chunks: Vec<Bytes> = FileChunks::new(f, 9_000, 4096)
            .map(|c| c.unwrap())
            .collect()
            .await;
        let sizes: Vec<usize> = chunks.iter().map(Bytes::len).collect();
        assert_eq!(sizes, [4096, 4096, 808]);
        assert_eq!(chunks.concat(), &data[100..9_100]);
    }

    #[tokio::test]
    async fn nothing_to_read_is_an_empty_stream() {
        let mut s = FileChunks::new(file_of(b"abc"), 0, 4096);
        assert!(s.next().await.is_none());
    }

    #[tokio::test]
    async fn a_file_shorter_than_its_size_fails_instead_of_ending_short() {
        let mut s = FileChunks::new(file_of(b"abcdef"), 10, 4);
        assert_eq!(&s.next().await.unwrap().unwrap()[..], b"abcd");
        assert_eq!(&s.next().await.unwrap().unwrap()[..], b"ef");
        let err = s.next().await.unwrap().unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
        assert!(s.next().await.is_none());
    }
}
