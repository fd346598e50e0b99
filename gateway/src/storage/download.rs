//! Streaming download. REST n returns exactly the bytes from n on; REST at the file's size
//! returns nothing; REST past the end is an error that names the size.
//!
//! RETR goes through [`Download::copy_to`]: the object is fetched as ranged GETs of
//! [`CHUNK`] bytes, the first streamed straight to the client while up to [`CHUNKS_AHEAD`]
//! following ones download in parallel (each holding memory permits, pinned to the first
//! reply's ETag, or to its Last-Modified date when the store sent no ETag, so a concurrent
//! overwrite fails the download instead of mixing versions), and every chunk the SDK hands
//! over is written to the data connection as it is, with no copy into an intermediate
//! buffer. A first reply with neither validator cannot pin anything: the rest of the object
//! then comes as one GET stream right after the first chunk, checked to be the range and size
//! the first reply announced. [`Download::into_reader`] (libunftp's `get`) is one plain
//! streamed GET, counted on the way.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::ByteStream;
use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::task::JoinHandle;

use crate::error::{Detail, Failure};
use crate::ftp::control_tap::ControlTap;
use crate::ftp::session::S3User;
use crate::ops::events::{Direction, EventBus, SessionId, TransferTracker};
use crate::path::BucketPath;
use crate::s3::error::{ClassifyExt, classify};

use super::parts::{Held, MemoryPool};

/// Bytes per ranged GET of a split download (kept with the memory rules: the first upload
/// part is never smaller).
pub use super::parts::CHUNK;
/// Chunks downloading ahead of the one being written to the client.
pub const CHUNKS_AHEAD: usize = 3;

/// An opened download: the first reply, and where the rest comes from.
pub struct Download {
    body: Option<ByteStream>,
    tracker: Option<TransferTracker>,
    rest: Option<Rest>,
    /// The bytes the client must get, when the store said.
    expected: Option<u64>,
}

/// The chunks after the first of a split download.
struct Rest {
    client: Client,
    bucket: String,
    key: String,
    pin: Validator,
    next: u64,
    size: u64,
    memory: Arc<MemoryPool>,
}

/// What the chunks after the first are pinned to, from the first reply.
enum Validator {
    /// `If-Match` on the ETag.
    ETag(String),
    /// `If-Unmodified-Since` on Last-Modified (to the second, as HTTP dates go).
    Date(aws_sdk_s3::primitives::DateTime),
    /// Nothing to pin to: the rest is one GET stream.
    None,
}

/// The reply to a download whose object changed on the store part-way.
const CHANGED: &str = "the file changed on the store during the download, so the download was \
    stopped before two versions could mix; the client has an incomplete copy of the old version: \
    download the file again";

/// How to fetch an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fetch {
    /// One GET of everything from the offset on.
    Whole,
    /// Ranged GETs of [`CHUNK`] bytes, [`CHUNKS_AHEAD`] ahead in parallel.
    Split,
}

/// Opens `path` for reading from `start_pos`.
pub async fn open(
    events: &EventBus,
    session: SessionId,
    u: &S3User,
    path: &BucketPath,
    start_pos: u64,
    tap: &ControlTap,
    (fetch, memory): (Fetch, &Arc<MemoryPool>),
) -> Result<Download, Failure> {
    if path.is_root() {
        return Err(Failure::WrongType("the root folder is not a file".into()));
    }
    let key = path.key();
    let mut req = u.client.get_object().bucket(&u.bucket).key(&key);
    match fetch {
        Fetch::Split => {
            // A REST near u64::MAX asks for a range the store refuses (416), not a wrapped one.
            let last = start_pos.saturating_add(CHUNK - 1);
            req = req.range(format!("bytes={start_pos}-{last}"));
        }
        Fetch::Whole if start_pos > 0 => req = req.range(format!("bytes={start_pos}-")),
        Fetch::Whole => {}
    }
    let out = match req.send().await {
        Ok(o) => o,
        Err(e) => {
            let status = e.raw_response().map(|r| r.status().as_u16());
            let failure = classify(e);
            if status == Some(416) {
                // The offset is at or past the end: find out which.
                let head = u
                    .client
                    .head_object()
                    .bucket(&u.bucket)
                    .key(&key)
                    .send()
                    .await;
                let size = head.map_err(classify)?.content_length().unwrap_or(0).max(0) as u64;
                if start_pos == size {
                    let tracker = TransferTracker::start(
                        events,
                        session,
                        Direction::Download,
                        path.display(),
                        Some(0),
                        tap.data_tls(),
                    );
                    tracker.finish();
                    return Ok(Download {
                        body: None,
                        tracker: None,
                        rest: None,
                        expected: Some(0),
                    });
                }
                return Err(Failure::BadOffset {
                    offset: start_pos,
                    size,
                });
            }
            return Err(failure);
        }
    };
    // What the reply holds: a ranged reply must start at the offset asked for; a reply
    // without Content-Range is the whole object, which only an offset of 0 may take.
    let (first_len, object_size) = match out.content_range().map(content_range) {
        Some(Some((first, last, total))) if first == start_pos => (Some(last - first + 1), total),
        Some(_) => {
            return Err(Failure::Other(
                format!(
                    "the store answered the byte range from {start_pos} with {:?}",
                    out.content_range().unwrap_or_default()
                )
                .into(),
            ));
        }
        None if start_pos > 0 => {
            return Err(Failure::Other(
                "the store ignored the byte range of a resumed download".into(),
            ));
        }
        None => {
            let len = out.content_length().map(|l| l.max(0) as u64);
            (len, len)
        }
    };
    let size = object_size.map(|total| total.saturating_sub(start_pos));
    let tracker = TransferTracker::start(
        events,
        session,
        Direction::Download,
        path.display(),
        size,
        tap.data_tls(),
    )
    .mirrored(tap.transfer_counter());
    let rest = match (fetch, object_size, first_len) {
        (Fetch::Split, Some(total), Some(first)) if start_pos + first < total => Some(Rest {
            client: u.client.clone(),
            bucket: u.bucket.clone(),
            key,
            pin: match (out.e_tag(), out.last_modified()) {
                (Some(etag), _) if !etag.is_empty() => Validator::ETag(etag.to_owned()),
                (_, Some(date)) => Validator::Date(*date),
                _ => Validator::None,
            },
            next: start_pos + first,
            size: total,
            memory: memory.clone(),
        }),
        _ => None,
    };
    Ok(Download {
        body: Some(out.body),
        tracker: Some(tracker),
        rest,
        expected: size,
    })
}

/// `bytes 0-99/1234` → `(0, 99, Some(1234))`; `bytes 0-99/*` → `(0, 99, None)`. Pure.
pub(crate) fn content_range(value: &str) -> Option<(u64, u64, Option<u64>)> {
    let (range, total) = value.strip_prefix("bytes ")?.split_once('/')?;
    let (first, last) = range.split_once('-')?;
    let (first, last) = (first.trim().parse().ok()?, last.trim().parse().ok()?);
    let total = match total.trim() {
        "*" => None,
        t => Some(t.parse().ok()?),
    };
    (first <= last && total.is_none_or(|t| last < t)).then_some((first, last, total))
}

impl Download {
    /// The download as a reader (one streamed GET), counted for progress events.
    pub fn into_reader(self) -> Box<dyn AsyncRead + Send + Sync + Unpin> {
        match (self.body, self.tracker) {
            (Some(body), tracker) => Box::new(Counting {
                inner: Box::pin(body.into_async_read()),
                tracker: Mutex::new(tracker),
            }),
            _ => Box::new(tokio::io::empty()),
        }
    }

    /// Writes the whole download to `out` (see the module docs); returns the bytes written.
    /// A failure, including the client going away, is reported on the transfer's event.
    pub async fn copy_to<W>(mut self, out: &mut W) -> Result<u64, Failure>
    where
        W: AsyncWrite + Unpin + ?Sized,
    {
        let result = match self.write_all(out).await {
            Ok(n) if self.expected.is_some_and(|e| e != n) => Err(Failure::Transient(
                format!(
                    "the store sent {n} bytes of {}",
                    self.expected.unwrap_or_default()
                )
                .into(),
            )),
            Err(Failure::Changed(_)) => Err(Failure::Changed(CHANGED.into())),
            other => other,
        };
        if let Some(tracker) = self.tracker.take() {
            match &result {
                Ok(_) => tracker.finish(),
                Err(f) => tracker.fail(format!("download failed: {f}")),
            }
        }
        result
    }

    async fn write_all<W>(&mut self, out: &mut W) -> Result<u64, Failure>
    where
        W: AsyncWrite + Unpin + ?Sized,
    {
        let mut written = 0;
        if let Some(body) = self.body.take() {
            written += self.write_stream(body, out).await?;
        }
        let Some(rest) = self.rest.take() else {
            return Ok(written);
        };
        if let Validator::None = rest.pin {
            let body = rest.stream().await?;
            return Ok(written + self.write_stream(body, out).await?);
        }
        let mut ahead = Ahead::default();
        let mut next = rest.next;
        loop {
            // Memory is taken here, in order: a download waits for memory only while it holds
            // none, so downloads never wait on each other's chunks.
            while ahead.0.len() < CHUNKS_AHEAD && next < rest.size {
                let last = (next + CHUNK).min(rest.size) - 1;
                let bytes = last - next + 1;
                let permit = match rest.memory.try_take(bytes) {
                    Some(p) => p,
                    None if !ahead.0.is_empty() => break,
                    None => rest.memory.take(bytes, true).await?,
                };
                ahead
                    .0
                    .push_back(tokio::spawn(rest.fetch(next, last, permit)));
                next = last + 1;
            }
            let Some(task) = ahead.0.pop_front() else {
                break;
            };
            let (pieces, permit) = task.await.map_err(|e| {
                Failure::Other(Detail::caused_by(format!("download task failed: {e}"), e))
            })??;
            for piece in &pieces {
                written += self.deliver(out, piece).await?;
            }
            drop(permit);
        }
        Ok(written)
    }

    /// Writes every piece of `body` to `out` as the SDK hands it over.
    async fn write_stream<W>(&mut self, mut body: ByteStream, out: &mut W) -> Result<u64, Failure>
    where
        W: AsyncWrite + Unpin + ?Sized,
    {
        let mut written = 0;
        while let Some(piece) = body.next().await {
            let piece = piece.map_err(|e| {
                Failure::Transient(Detail::caused_by(format!("reading from the store: {e}"), e))
            })?;
            written += self.deliver(out, &piece).await?;
        }
        Ok(written)
    }

    /// Writes `bytes` to the client's data connection and counts them for progress events; a
    /// failure there is the client going away.
    async fn deliver<W>(&mut self, out: &mut W, bytes: &[u8]) -> Result<u64, Failure>
    where
        W: AsyncWrite + Unpin + ?Sized,
    {
        out.write_all(bytes).await.map_err(|e| {
            Failure::Interrupted(Detail::caused_by(
                format!("data connection failed: {}", e.kind()),
                e,
            ))
        })?;
        let n = bytes.len() as u64;
        if let Some(t) = self.tracker.as_mut() {
            t.add(n);
        }
        Ok(n)
    }
}

/// The chunks downloading ahead, in order; dropping it (the client went away, a chunk
/// failed) cancels them.
#[derive(Default)]
struct Ahead(VecDeque<JoinHandle<Result<Fetched, Failure>>>);

/// A chunk fetched ahead: the pieces the SDK handed over, and the memory they hold.
type Fetched = (Vec<Bytes>, Held);

impl Drop for Ahead {
    fn drop(&mut self) {
        for task in &self.0 {
            task.abort();
        }
    }
}

impl Rest {
    /// Fetches bytes `first..=last` whole, as the pieces the SDK handed over (joining them
    /// would copy every byte once more); `permit` (memory for them) is held until written.
    fn fetch(
        &self,
        first: u64,
        last: u64,
        permit: Held,
    ) -> impl Future<Output = Result<Fetched, Failure>> + Send + 'static {
        let mut req = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(&self.key)
            .range(format!("bytes={first}-{last}"));
        match &self.pin {
            Validator::ETag(etag) => req = req.if_match(etag),
            Validator::Date(date) => req = req.if_unmodified_since(*date),
            Validator::None => {}
        }
        async move {
            let out = req.send().await.classified()?;
            let pieces: Vec<Bytes> = out
                .body
                .collect()
                .await
                .map_err(|e| {
                    Failure::Transient(Detail::caused_by(format!("reading from the store: {e}"), e))
                })?
                .into_segments()
                .collect();
            let received: u64 = pieces.iter().map(|p| p.len() as u64).sum();
            if received != last - first + 1 {
                return Err(Failure::Transient(
                    format!(
                        "the store sent {received} bytes for a range of {}",
                        last - first + 1
                    )
                    .into(),
                ));
            }
            Ok((pieces, permit))
        }
    }
}

impl Rest {
    /// Everything from `next` on as one GET, for a first reply with no validator to pin
    /// chunks to: the reply must be exactly that range of an object of the announced size.
    async fn stream(&self) -> Result<ByteStream, Failure> {
        let last = self.size - 1;
        let out = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(&self.key)
            .range(format!("bytes={}-{last}", self.next))
            .send()
            .await
            .classified()?;
        match out.content_range().map(content_range) {
            Some(Some((first, l, Some(total))))
                if (first, l, total) == (self.next, last, self.size) =>
            {
                Ok(out.body)
            }
            _ => Err(Failure::Changed(
                format!(
                    "the store answered the rest of the file ({}-{last} of {} bytes) with {:?}",
                    self.next,
                    self.size,
                    out.content_range().unwrap_or_default()
                )
                .into(),
            )),
        }
    }
}

/// Counts bytes read and reports the outcome; dropping it early reports a cancel.
struct Counting<R> {
    inner: Pin<Box<R>>,
    // A Mutex makes the reader Sync as libunftp requires; only the reading task touches it.
    tracker: Mutex<Option<TransferTracker>>,
}

impl<R: AsyncRead> AsyncRead for Counting<R> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = self.inner.as_mut().poll_read(cx, buf);
        let n = (buf.filled().len() - before) as u64;
        if let Poll::Ready(res) = &r {
            let mut slot = crate::sync::lock(&self.tracker);
            {
                match res {
                    Ok(()) if n > 0 => {
                        if let Some(t) = slot.as_mut() {
                            t.add(n);
                        }
                    }
                    Ok(()) => {
                        if let Some(t) = slot.take() {
                            t.finish();
                        }
                    }
                    Err(e) => {
                        if let Some(t) = slot.take() {
                            t.fail(format!("download failed: {e}"));
                        }
                    }
                }
            }
        }
        r
    }
}

#[cfg(test)]
mod tests {
    use super::content_range;

    #[test]
    fn content_ranges() {
        assert_eq!(content_range("bytes 0-99/1234"), Some((0, 99, Some(1234))));
        assert_eq!(content_range("bytes 5-5/6"), Some((5, 5, Some(6))));
        assert_eq!(content_range("bytes 0-99/*"), Some((0, 99, None)));
        for bad in [
            "bytes 9-0/10",
            "bytes 0-10/10",
            "items 0-1/2",
            "bytes 0-/10",
            "bytes x-1/2",
            "",
        ] {
            assert_eq!(content_range(bad), None, "{bad:?}");
        }
    }
}
