//! Streaming download: a ranged GetObject whose body is handed to libunftp as an `AsyncRead`,
//! counted on the way for progress events. REST n returns exactly the bytes from n on; REST at
//! the file's size returns nothing; REST past the end is an error that names the size.

use std::pin::Pin;
use std::sync::Mutex;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, ReadBuf};

use crate::control_tap::ControlTap;
use crate::error::Failure;
use crate::events::{Direction, EventBus, SessionId, TransferTracker};
use crate::path::BucketPath;
use crate::s3::error::classify;
use crate::session::S3User;

/// Opens `path` for reading from `start_pos`.
pub async fn open(
    events: &EventBus,
    session: SessionId,
    u: &S3User,
    path: &BucketPath,
    start_pos: u64,
    tap: &ControlTap,
) -> Result<Box<dyn AsyncRead + Send + Sync + Unpin>, Failure> {
    if path.is_root() {
        return Err(Failure::WrongType("the root folder is not a file".into()));
    }
    let key = path.key();
    let mut req = u.client.get_object().bucket(&u.bucket).key(&key);
    if start_pos > 0 {
        req = req.range(format!("bytes={start_pos}-"));
    }
    let out = match req.send().await {
        Ok(o) => o,
        Err(e) => {
            let status = e.raw_response().map(|r| r.status().as_u16());
            let failure = classify(&e);
            if status == Some(416) {
                // The offset is at or past the end: find out which.
                let head = u
                    .client
                    .head_object()
                    .bucket(&u.bucket)
                    .key(&key)
                    .send()
                    .await;
                let size = head
                    .map_err(|e| classify(&e))?
                    .content_length()
                    .unwrap_or(0)
                    .max(0) as u64;
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
                    return Ok(Box::new(tokio::io::empty()));
                }
                return Err(Failure::BadOffset {
                    offset: start_pos,
                    size,
                });
            }
            return Err(failure);
        }
    };
    let size = out.content_length().map(|l| l.max(0) as u64);
    let tracker = TransferTracker::start(
        events,
        session,
        Direction::Download,
        path.display(),
        size,
        tap.data_tls(),
    )
    .mirrored(tap.transfer_counter());
    Ok(Box::new(Counting {
        inner: Box::pin(out.body.into_async_read()),
        tracker: Mutex::new(Some(tracker)),
    }))
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
        if let Poll::Ready(res) = &r
            && let Ok(mut slot) = self.tracker.lock()
        {
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
