//! Streaming upload of one FTP STOR/APPE into one S3 object.
//!
//! The client's bytes are cut into parts in memory (never on disk), sized by the upload's
//! [`PartSchedule`] (`storage/parts.rs`): `part_size` first, growing as the upload grows. A
//! file that ends inside the first part becomes one PutObject ([`Upload::put_single`]);
//! anything larger becomes a multipart upload with up to `parts_in_flight` parts uploading
//! while the next one fills (fewer as parts grow). Every part buffer holds memory of the
//! global [`MemoryPool`], so all sessions together stay under the memory limit; an upload
//! with no part in flight may take its reserve, one with parts in flight waits for the rest.
//!
//! Nothing is visible at the key until PutObject or CompleteMultipartUpload succeeds, and that
//! happens only after the input ended cleanly *and* the [`CommitGate`] agrees the transfer was
//! not cancelled. Every failure path aborts the multipart upload; a dropped upload future (the
//! session was killed) aborts it from a spawned task.
//!
//! Resume (REST n + STOR, APPE): the first n bytes of the existing object are kept server-side.
//! Whole parts are copied with UploadPartCopy; the remainder (and everything, when the store
//! refuses UploadPartCopy) is streamed from a ranged GET in front of the client's bytes. Both the
//! copy and the GET are pinned to the old object's ETag, so a concurrent change fails the upload
//! instead of mixing two versions, and the GET's reply must be exactly the range asked for (a
//! store that ignores Range fails the upload; the old object stays as it was).

use std::sync::Arc;

use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::CompletedPart;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::OwnedSemaphorePermit;
use tokio::task::JoinSet;

use super::multipart::MultipartUpload;
use super::part_buf::PartBuf;
use crate::error::{Detail, Failure};
use crate::ops::events::TransferTracker;
use crate::s3::BodyChecksum;
use crate::s3::error::ClassifyExt;
use crate::s3::reply_header::ReplyHeader;
use crate::units::human_size;

use super::digest::{BodySum, FileDigest, FileSums};

use super::parts::{MemoryPool, PartSchedule, TransferLimits};

/// Decides whether the transfer really completed or was cancelled in a way that looks like a
/// clean end of the data stream (see `control_tap`).
#[async_trait::async_trait]
pub trait CommitGate: Send + Sync {
    /// A mark taken when the upload begins.
    fn mark(&self) -> u64;
    /// `Err` when the upload begun at `mark` must not be committed, as far as is known now.
    fn check(&self, mark: u64) -> Result<(), Failure>;
    /// `Err` when the upload begun at `mark`, whose data stream has just ended cleanly, must
    /// not be committed: asked once, before the commit, and waits only as long as the end of
    /// the stream leaves open whether the client meant it.
    async fn settle(&self, mark: u64) -> Result<(), Failure>;
}

/// How long the parts still uploading when the client's data ends may take, at the measured
/// rate: FileZilla gives up on a reply 20 s after the data connection closed, and the last
/// part and CompleteMultipartUpload come after these.
pub const DRAIN_BUDGET: std::time::Duration = std::time::Duration::from_secs(10);

/// Limits the bytes queued for the store to what it can take within a time budget, at the
/// upload rate measured so far (bytes done over the time any part was uploading). Pure.
#[derive(Debug, Clone)]
pub struct DrainWindow {
    budget: std::time::Duration,
    in_flight: u64,
    parts: usize,
    done: u64,
    busy: std::time::Duration,
    busy_since: Option<std::time::Instant>,
}

impl DrainWindow {
    /// A window with `budget`.
    pub fn new(budget: std::time::Duration) -> Self {
        Self {
            budget,
            in_flight: 0,
            parts: 0,
            done: 0,
            busy: std::time::Duration::ZERO,
            busy_since: None,
        }
    }

    /// A part of `bytes` started at `now`.
    pub fn started(&mut self, bytes: u64, now: std::time::Instant) {
        if self.parts == 0 {
            self.busy_since = Some(now);
        }
        self.parts += 1;
        self.in_flight += bytes;
    }

    /// A part of `bytes` finished at `now`.
    pub fn finished(&mut self, bytes: u64, now: std::time::Instant) {
        self.parts = self.parts.saturating_sub(1);
        self.in_flight = self.in_flight.saturating_sub(bytes);
        self.done += bytes;
        if self.parts == 0
            && let Some(since) = self.busy_since.take()
        {
            self.busy += now.saturating_duration_since(since);
        }
    }

    /// Bytes per second while uploading, once a part has finished.
    pub fn rate(&self, now: std::time::Instant) -> Option<f64> {
        if self.done == 0 {
            return None;
        }
        let busy = self.busy
            + self.busy_since.map_or(std::time::Duration::ZERO, |s| {
                now.saturating_duration_since(s)
            });
        Some(self.done as f64 / busy.as_secs_f64().max(0.001))
    }

    /// Whether a part of `next` bytes may start now. With nothing in flight it always may.
    pub fn allows(&self, next: u64, now: std::time::Instant) -> bool {
        if self.parts == 0 {
            return true;
        }
        match self.rate(now) {
            None => true,
            Some(r) => (self.in_flight + next) as f64 <= r * self.budget.as_secs_f64(),
        }
    }
}

/// Everything one upload needs.
pub struct Upload<'a> {
    /// The session's client.
    pub client: &'a Client,
    /// The bucket.
    pub bucket: &'a str,
    /// The object key.
    pub key: &'a str,
    /// Part size and parallelism.
    pub limits: TransferLimits,
    /// True when the store needs every part but the last to be the same size (R2).
    pub equal_parts: bool,
    /// False when bodies go as `UNSIGNED-PAYLOAD` (see [`crate::s3::payload_signing_needed`]).
    pub sign_payload: bool,
    /// The memory of all transfers' buffers.
    pub memory: Arc<MemoryPool>,
    /// Progress reporting.
    pub tracker: &'a mut TransferTracker,
    /// The cancel check before commit.
    pub gate: &'a dyn CommitGate,
    /// No data for this long cancels the upload.
    pub idle_timeout: std::time::Duration,
    /// The largest object this upload may produce (the server's `max_file_size`).
    pub max_file_size: Option<u64>,
    /// The checksum each request body carries for the store to verify.
    pub checksum: BodyChecksum,
    /// The reply header in which the store reports the object's CRC-64/XZ (OSS, COS).
    pub crc64_report: Option<&'static str>,
}

/// The largest multipart upload whose SHA-256 is written into its metadata afterwards (a
/// CopyObject onto itself, which on some stores copies the data): above it, the copy could
/// keep the final reply past a client's timeout, and `HASH` reads the file instead.
pub const SUMS_IN_PLACE_MAX: u64 = 1 << 30;

/// How an upload's bodies are checked, and what it computes over the whole file.
struct Integrity {
    /// The checksum of each request body.
    kind: BodyChecksum,
    /// The whole file's sums, while every byte of the file passes through this upload (not
    /// when a resume copied its first parts inside the store).
    digest: Option<FileDigest>,
}

/// The body of the reply to the GET of the kept bytes `first..=last` of a resumed upload: it
/// must say it holds exactly them.
fn kept_range(
    out: aws_sdk_s3::operation::get_object::GetObjectOutput,
    first: u64,
    last: u64,
) -> Result<ByteStream, Failure> {
    match out.content_range().map(super::download::content_range) {
        Some(Some((f, l, _))) if (f, l) == (first, last) => Ok(out.body),
        _ => Err(Failure::Other(
            format!(
                "the store answered the byte range {first}-{last} of the existing file with {}, so \
             the bytes to keep could not be read; nothing was stored and the file is unchanged",
                match out.content_range() {
                    Some(r) => format!("{r:?}"),
                    None => "the whole file (it ignored the range)".to_owned(),
                }
            )
            .into(),
        )),
    }
}

/// The reply to a resume whose existing file changed on the store while its bytes were kept.
const CHANGED: &str = "the existing file changed on the store while its first bytes were being \
    kept; nothing was stored: start the upload again";

/// The refusal for an upload past `max` bytes (552).
fn too_large(max: u64) -> Failure {
    Failure::TooLarge(
        format!(
            "larger than this server's limit of {} (max_file_size); nothing was stored",
            human_size(max)
        )
        .into(),
    )
}

/// A data part's outcome and its size.
type DataPartResult = Result<(CompletedPart, u64), Failure>;

impl Upload<'_> {
    /// Runs the upload: `start_pos` bytes of the existing object are kept, then `input`
    /// follows. Returns the number of bytes received from the client.
    pub async fn run<R>(mut self, input: R, start_pos: u64) -> Result<u64, Failure>
    where
        R: AsyncRead + Unpin + Send,
    {
        let schedule = self.limits.schedule(self.equal_parts);
        let mark = self.gate.mark();
        if let Some(max) = self.max_file_size.filter(|m| start_pos > *m) {
            return Err(too_large(max));
        }
        let input = IdleTimeout::new(input, self.idle_timeout);
        // What to keep of the old object.
        let kept = if start_pos > 0 {
            let head = self
                .client
                .head_object()
                .bucket(self.bucket)
                .key(self.key)
                .send()
                .await
                .classified()
                .map_err(|f| match f {
                    Failure::NotFound => Failure::BadOffset {
                        offset: start_pos,
                        size: 0,
                    },
                    other => other,
                })?;
            let size = head.content_length().unwrap_or(0).max(0) as u64;
            if start_pos > size {
                return Err(Failure::BadOffset {
                    offset: start_pos,
                    size,
                });
            }
            Some((start_pos, head.e_tag().map(str::to_owned)))
        } else {
            None
        };

        let mut mpu: Option<MultipartUpload> = None;
        let mut done_parts: Vec<CompletedPart> = Vec::new();
        let mut copied: u64 = 0;

        // Whole parts of the kept prefix are copied inside the store.
        if let Some((kept_len, etag)) = &kept {
            let ranges = schedule.whole_parts_within(*kept_len);
            if let Some(&(_, last)) = ranges.last() {
                let guard = MultipartUpload::create(self.client, self.bucket, self.key).await?;
                match self.copy_parts(&guard, &ranges, etag.as_deref()).await {
                    Ok(parts) => {
                        done_parts = parts;
                        copied = last + 1;
                        mpu = Some(guard);
                    }
                    Err(f @ (Failure::Transient(_) | Failure::Changed(_))) => {
                        guard.abort().await;
                        return Err(resume_words(f));
                    }
                    Err(other) => {
                        tracing::info!(key = self.key, reason = %other, "store refused UploadPartCopy; re-sending the kept bytes instead");
                        guard.abort().await;
                    }
                }
            }
        }

        // The rest of the kept prefix streams in front of the client's bytes.
        let prefix_len = kept.as_ref().map_or(0, |(k, _)| k - copied);
        let prefix: Box<dyn AsyncRead + Unpin + Send> = match &kept {
            Some((kept_len, etag)) if prefix_len > 0 => {
                let mut req = self
                    .client
                    .get_object()
                    .bucket(self.bucket)
                    .key(self.key)
                    .range(format!("bytes={}-{}", copied, kept_len - 1));
                if let Some(e) = etag {
                    req = req.if_match(e);
                }
                let out = req
                    .send()
                    .await
                    .classified()
                    .and_then(|o| kept_range(o, copied, kept_len - 1));
                match out {
                    Ok(body) => Box::new(body.into_async_read()),
                    Err(f) => {
                        if let Some(g) = mpu.take() {
                            g.abort().await;
                        }
                        return Err(resume_words(f));
                    }
                }
            }
            _ => Box::new(tokio::io::empty()),
        };
        let mut reader = prefix.chain(input);

        let result = self
            .stream_parts(
                &mut reader,
                prefix_len,
                &mut mpu,
                done_parts,
                (schedule, mark, start_pos),
            )
            .await;
        match result {
            Ok(n) => Ok(n),
            Err(f) => {
                if let Some(g) = mpu.take() {
                    g.abort().await;
                }
                Err(resume_words(f))
            }
        }
    }

    /// Copies the whole parts (`ranges`, as the schedule cuts them) of the object being
    /// resumed into `upload`.
    async fn copy_parts(
        &self,
        upload: &MultipartUpload,
        ranges: &[(u64, u64)],
        etag: Option<&str>,
    ) -> Result<Vec<CompletedPart>, Failure> {
        let source = super::multipart::copy_source(self.bucket, self.key);
        upload
            .copy_parts(&source, ranges, etag, self.limits.parts_in_flight())
            .await
    }

    /// The commit of a file that fits its first part: one PutObject, whose checksum the
    /// store verifies, with the file's SHA-256 and MD5 in its metadata.
    async fn put_single(&self, body: bytes::Bytes, integrity: Integrity) -> Result<(), Failure> {
        let len = i64::try_from(body.len()).unwrap_or(i64::MAX);
        let (sum, md5) = {
            let body = body.clone();
            let kind = integrity.kind;
            tokio::task::spawn_blocking(move || {
                use md5::Digest;
                let md5 = md5::Md5::digest(&body);
                let sum = match kind {
                    BodyChecksum::Md5 => {
                        BodySum::Md5(aws_smithy_types::base64::encode(md5.as_slice()))
                    }
                    other => BodySum::of(other, &body),
                };
                (sum, md5)
            })
            .await
            .map_err(|e| Failure::Other(Detail::caused_by("checksum task failed", e)))?
        };
        let sums = integrity.digest.map(FileDigest::finish);
        let req = with_body_sum(
            self.client
                .put_object()
                .bucket(self.bucket)
                .key(self.key)
                .content_length(len)
                .set_metadata(sums.as_ref().map(|s| s.metadata(Some(md5.as_slice()))))
                .body(ByteStream::from(body)),
            &sum,
        );
        let reader = self.crc64_report.map(ReplyHeader::new);
        let mut op = req.customize();
        if !self.sign_payload {
            op = op.disable_payload_signing();
        }
        if let Some(r) = &reader {
            op = op.interceptor(r.clone());
        }
        op.send().await.classified()?;
        check_crc64_report(reader.and_then(|r| r.value()), sums.as_ref())
    }

    async fn stream_parts<R>(
        &mut self,
        reader: &mut R,
        prefix_len: u64,
        mpu: &mut Option<MultipartUpload>,
        mut parts: Vec<CompletedPart>,
        (schedule, mark, start_pos): (PartSchedule, u64, u64),
    ) -> Result<u64, Failure>
    where
        R: AsyncRead + Unpin + Send,
    {
        // Bytes the client may still send before the object passes max_file_size.
        let budget = self.max_file_size.map(|m| (m, m.saturating_sub(start_pos)));
        // A resume that copied its first parts in the store: its upload was made without a
        // whole-object checksum, and the copied bytes do not pass through here.
        let mut integrity = match mpu {
            Some(_) => Integrity {
                kind: BodyChecksum::Md5,
                digest: None,
            },
            None => Integrity {
                kind: self.checksum,
                digest: Some(FileDigest::new(self.checksum, self.crc64_report.is_some())),
            },
        };
        let mut total: u64 = 0;
        let mut next_number = parts.len() as u64 + 1;
        let mut set: JoinSet<DataPartResult> = JoinSet::new();
        let mut window = DrainWindow::new(DRAIN_BUDGET);
        loop {
            // Past the last part only one byte is read: enough to know the file is too large.
            let part_size = if next_number > schedule.max_parts() {
                1
            } else {
                // The part filling when the data ends is uploaded after it: at the measured
                // rate it must fit half the drain budget, or a grown part would keep the
                // final reply past the client's timeout.
                let rate = window.rate(std::time::Instant::now());
                let size = schedule.size_at_rate(next_number, rate, DRAIN_BUDGET / 2);
                usize::try_from(size).unwrap_or(usize::MAX)
            };
            // With no part in flight the upload holds no memory, and may take the reserve.
            let permit = self.memory.take(part_size as u64, set.is_empty()).await?;
            let mut buf = PartBuf::new(part_size).map_err(|e| {
                Failure::Other(Detail::caused_by(
                    format!("no memory for a part of {part_size} bytes: {e}"),
                    e,
                ))
            })?;
            let eof = fill(
                reader,
                &mut buf,
                (&mut total, prefix_len),
                &mut *self.tracker,
                integrity.digest.as_mut(),
            )
            .await?;
            if let Some((max, allowed)) = budget
                && client_bytes(total, prefix_len) > allowed
            {
                return Err(too_large(max));
            }
            if start_pos.saturating_add(client_bytes(total, prefix_len)) > schedule.capacity() {
                return Err(schedule.too_large());
            }

            if eof {
                // The commit follows: was this the end the client meant?
                self.gate.settle(mark).await?;
            } else {
                // Cancelled uploads stop at the next part, not at the end.
                self.gate.check(mark)?;
            }
            // The whole file fits one part and nothing was copied: a single PutObject.
            if mpu.is_none() && eof {
                self.put_single(buf.freeze(), integrity).await?;
                drop(permit);
                return Ok(client_bytes(total, prefix_len));
            }
            let upload_id = match mpu {
                Some(upload) => upload.id().to_owned(),
                None => {
                    let full_object =
                        (integrity.kind != BodyChecksum::Md5).then_some(integrity.kind);
                    let upload = MultipartUpload::create_with(
                        self.client,
                        self.bucket,
                        self.key,
                        full_object,
                    )
                    .await?;
                    let id = upload.id().to_owned();
                    *mpu = Some(upload);
                    id
                }
            };

            if !buf.is_empty() || next_number == 1 {
                if next_number > schedule.max_parts() {
                    return Err(schedule.too_large());
                }
                let len = buf.len() as u64;
                while !set.is_empty()
                    && (set.len() >= schedule.in_flight(len)
                        || !window.allows(len, std::time::Instant::now()))
                {
                    if let Some(r) = set.join_next().await {
                        let (part, bytes) = joined_data(r)?;
                        window.finished(bytes, std::time::Instant::now());
                        parts.push(part);
                    }
                }
                window.started(len, std::time::Instant::now());
                let number = i32::try_from(next_number).unwrap_or(i32::MAX);
                next_number += 1;
                let req = self
                    .client
                    .upload_part()
                    .bucket(self.bucket)
                    .key(self.key)
                    .upload_id(upload_id)
                    .part_number(number)
                    .content_length(buf.len() as i64);
                let body = buf.freeze();
                set.spawn(upload_part(
                    req,
                    (body, integrity.kind),
                    self.sign_payload,
                    number,
                    permit,
                ));
            }
            // Reap finished parts early so an S3 failure stops the upload promptly.
            while let Some(r) = set.try_join_next() {
                let (part, bytes) = joined_data(r)?;
                window.finished(bytes, std::time::Instant::now());
                parts.push(part);
            }
            if eof {
                break;
            }
        }
        while let Some(r) = set.join_next().await {
            parts.push(joined_data(r)?.0);
        }
        let sums = integrity.digest.map(FileDigest::finish);
        self.complete(mpu, parts, mark, sums).await?;
        Ok(client_bytes(total, prefix_len))
    }

    /// The commit of a multipart upload, once every part is stored: the gate is asked a last
    /// time, then CompleteMultipartUpload makes the object visible (with the whole object's
    /// checksum, when the upload has one, for the store to check first). Any failure aborts.
    /// Then the SHA-256 goes into the object's metadata (see [`Self::record_sums`]).
    async fn complete(
        &self,
        mpu: &mut Option<MultipartUpload>,
        parts: Vec<CompletedPart>,
        mark: u64,
        sums: Option<FileSums>,
    ) -> Result<(), Failure> {
        self.gate.check(mark)?;
        let upload = mpu
            .take()
            .ok_or_else(|| Failure::Other("multipart upload vanished".into()))?;
        let full_object = sums.as_ref().and_then(|s| s.full_object.as_ref());
        let committed = upload
            .complete_checked(parts, full_object, self.crc64_report)
            .await?;
        check_crc64_report(committed.reported, sums.as_ref())?;
        if let Some(s) = sums.filter(|s| s.bytes <= SUMS_IN_PLACE_MAX) {
            self.record_sums(&s, committed.etag.as_deref()).await;
        }
        Ok(())
    }

    /// Writes a committed multipart object's SHA-256 into its user metadata: S3 takes
    /// metadata only when an upload starts, before the hash is known, so the object is
    /// copied onto itself with the new metadata, pinned to the ETag just committed, as source
    /// and as destination (a newer write in between is left alone). The file is stored either way: a failure here only
    /// means `HASH` reads the file instead, and is logged.
    async fn record_sums(&self, sums: &FileSums, etag: Option<&str>) {
        // Without the new ETag the copy could not be pinned to this upload's object.
        let Some(etag) = etag else {
            return;
        };
        let copied = self
            .client
            .copy_object()
            .bucket(self.bucket)
            .key(self.key)
            .copy_source(super::multipart::copy_source(self.bucket, self.key))
            .copy_source_if_match(etag)
            // And not over a newer write that lands while the copy runs (where the store
            // supports conditional writes; the others ignore it).
            .if_match(etag)
            .metadata_directive(aws_sdk_s3::types::MetadataDirective::Replace)
            .set_metadata(Some(sums.metadata(None)))
            .send()
            .await
            .classified();
        if let Err(f) = copied {
            tracing::info!(key = self.key, reason = %f, "could not record the uploaded file's SHA-256 in its metadata");
        }
    }
}

/// Fails a read that waits longer than `limit` for data: a stalled client cancels its upload.
struct IdleTimeout<R> {
    inner: R,
    limit: std::time::Duration,
    timer: std::pin::Pin<Box<tokio::time::Sleep>>,
}

impl<R> IdleTimeout<R> {
    fn new(inner: R, limit: std::time::Duration) -> Self {
        Self {
            inner,
            limit,
            timer: Box::pin(tokio::time::sleep(limit)),
        }
    }
}

impl<R: AsyncRead + Unpin> AsyncRead for IdleTimeout<R> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        use std::task::Poll;
        match std::pin::Pin::new(&mut self.inner).poll_read(cx, buf) {
            Poll::Ready(r) => {
                let deadline = tokio::time::Instant::now() + self.limit;
                self.timer.as_mut().reset(deadline);
                Poll::Ready(r)
            }
            Poll::Pending => match self.timer.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "no data from the client",
                ))),
                Poll::Pending => Poll::Pending,
            },
        }
    }
}

/// Uploads one part with its checksum (computed here, off the session's task: an MD5 of a
/// grown part takes a while).
async fn upload_part(
    req: aws_sdk_s3::operation::upload_part::builders::UploadPartFluentBuilder,
    (body, kind): (bytes::Bytes, BodyChecksum),
    sign_payload: bool,
    number: i32,
    permit: OwnedSemaphorePermit,
) -> DataPartResult {
    let bytes = body.len() as u64;
    let sum = {
        let body = body.clone();
        tokio::task::spawn_blocking(move || BodySum::of(kind, &body))
            .await
            .map_err(|e| Failure::Other(Detail::caused_by("checksum task failed", e)))?
    };
    let req = with_part_sum(req.body(ByteStream::from(body)), &sum);
    let out = if sign_payload {
        req.send().await
    } else {
        req.customize().disable_payload_signing().send().await
    }
    .classified();
    drop(permit);
    let out = out?;
    let mut part = CompletedPart::builder()
        .part_number(number)
        .set_e_tag(out.e_tag().map(str::to_owned));
    part = match sum {
        BodySum::Crc32c(v) => part.checksum_crc32_c(v),
        BodySum::Crc64nvme(v) => part.checksum_crc64_nvme(v),
        BodySum::Md5(_) => part,
    };
    Ok((part.build(), bytes))
}

/// A PutObject carrying `sum`.
fn with_body_sum(
    req: aws_sdk_s3::operation::put_object::builders::PutObjectFluentBuilder,
    sum: &BodySum,
) -> aws_sdk_s3::operation::put_object::builders::PutObjectFluentBuilder {
    match sum {
        BodySum::Md5(v) => req.content_md5(v),
        BodySum::Crc32c(v) => req.checksum_crc32_c(v),
        BodySum::Crc64nvme(v) => req.checksum_crc64_nvme(v),
    }
}

/// An UploadPart carrying `sum`.
fn with_part_sum(
    req: aws_sdk_s3::operation::upload_part::builders::UploadPartFluentBuilder,
    sum: &BodySum,
) -> aws_sdk_s3::operation::upload_part::builders::UploadPartFluentBuilder {
    match sum {
        BodySum::Md5(v) => req.content_md5(v),
        BodySum::Crc32c(v) => req.checksum_crc32_c(v),
        BodySum::Crc64nvme(v) => req.checksum_crc64_nvme(v),
    }
}

/// Compares the CRC-64 the store reported for the object it wrote with the upload's. A
/// mismatch is reported (451): the object is already replaced, so the words say to upload
/// again. No report, or no CRC of ours, passes.
fn check_crc64_report(reported: Option<String>, sums: Option<&FileSums>) -> Result<(), Failure> {
    let ours = sums.and_then(|s| s.crc64_xz);
    match (reported, ours) {
        (Some(r), Some(ours)) if super::digest::crc64_report_matches(&r, ours) == Some(false) => {
            Err(Failure::Other(
                "the store reports a different CRC-64 for the stored file than for the bytes \
                 sent: the file on the store may be damaged, upload it again"
                    .into(),
            ))
        }
        _ => Ok(()),
    }
}

/// A resume's `412` in its own words: only the kept bytes are read pinned to the ETag.
fn resume_words(f: Failure) -> Failure {
    match f {
        Failure::Changed(_) => Failure::Changed(CHANGED.into()),
        other => other,
    }
}

fn joined_data(r: Result<DataPartResult, tokio::task::JoinError>) -> DataPartResult {
    r.map_err(|e| {
        Failure::Other(Detail::caused_by(
            format!("part upload task failed: {e}"),
            e,
        ))
    })?
}

fn client_bytes(total: u64, prefix_len: u64) -> u64 {
    total.saturating_sub(prefix_len)
}

/// Reads until `buf` is full or the input ends. Returns true at the end of input.
async fn fill<R: AsyncRead + Unpin>(
    reader: &mut R,
    buf: &mut PartBuf,
    (total, prefix_len): (&mut u64, u64),
    tracker: &mut TransferTracker,
    mut digest: Option<&mut FileDigest>,
) -> Result<bool, Failure> {
    while !buf.is_full() {
        let n = reader.read(buf.room()).await.map_err(|e| {
            let words = if e.kind() == std::io::ErrorKind::TimedOut {
                "the client sent no data for too long".to_owned()
            } else {
                format!("data connection failed: {}", e.kind())
            };
            Failure::Aborted(Detail::caused_by(words, e))
        })?;
        if n == 0 {
            return Ok(true);
        }
        if let Some(d) = digest.as_deref_mut() {
            d.update(&buf.room()[..n]);
        }
        buf.filled(n);
        let before = *total;
        *total += n as u64;
        let client_new = client_bytes(*total, prefix_len) - client_bytes(before, prefix_len);
        if client_new > 0 {
            tracker.add(client_new);
        }
    }
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn too_large_names_the_limit() {
        assert!(too_large(1024).to_string().contains("1 KiB"));
        assert_eq!(too_large(1).reply_code(), 552);
    }

    #[test]
    fn drain_window_follows_the_measured_rate() {
        use std::time::{Duration, Instant};
        const MB: u64 = 1_000_000;
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let mut w = DrainWindow::new(s(10));
        assert!(w.allows(8 * MB, t0), "nothing in flight: always");
        w.started(8 * MB, t0);
        assert!(w.allows(8 * MB, t0), "no rate yet: parts_in_flight decides");
        // A slow store: 8 MB in 8 s = 1 MB/s, so 10 s hold 10 MB.
        w.finished(8 * MB, t0 + s(8));
        assert_eq!(w.rate(t0 + s(8)).map(|r| r.round() as u64), Some(MB));
        w.started(8 * MB, t0 + s(8));
        assert!(!w.allows(8 * MB, t0 + s(8)), "16 MB queued would take 16 s");
        assert!(w.allows(2 * MB, t0 + s(8)), "10 MB fits");
        // A fast store: idle time between parts does not count against the rate.
        let mut f = DrainWindow::new(s(10));
        f.started(8 * MB, t0);
        f.finished(8 * MB, t0 + Duration::from_millis(100));
        f.started(8 * MB, t0 + s(5));
        assert!(f.rate(t0 + s(5)).is_some_and(|r| r > 50.0 * MB as f64));
        assert!(f.allows(8 * MB, t0 + s(5)));
    }

    #[test]
    fn client_byte_accounting() {
        assert_eq!(client_bytes(10, 4), 6);
        assert_eq!(client_bytes(3, 4), 0);
    }
}
