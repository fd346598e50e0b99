//! Multipart uploads in one place, for the three paths that make them: streamed uploads,
//! resumed uploads (the kept prefix is copied part by part inside the store) and renames above
//! the provider's CopyObject limit.
//!
//! [`MultipartUpload`] is the abort guard: created armed, it is disarmed only by a successful
//! `complete`. A failed `complete`, an explicit `abort`, and dropping it (a session killed
//! mid-transfer, a cancelled future) all abort the upload, retrying in the background while
//! the store is unreachable, so that no multipart upload is left behind.

use aws_sdk_s3::Client;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use tokio::task::JoinSet;

use crate::error::{Detail, Failure};
use crate::s3::BodyChecksum;
use crate::s3::error::ClassifyExt;
use crate::s3::reply_header::ReplyHeader;
use crate::storage::digest::BodySum;
use aws_sdk_s3::types::{ChecksumAlgorithm, ChecksumType};

use super::parts::MAX_PARTS;

/// What a completed upload's reply said.
#[derive(Debug, Clone, Default)]
pub struct Committed {
    /// The new object's ETag.
    pub etag: Option<String>,
    /// The value of the header [`MultipartUpload::complete_checked`] was asked to read.
    pub reported: Option<String>,
}

/// One multipart upload in progress; aborts it unless completed (see the module docs).
#[derive(Debug)]
pub struct MultipartUpload {
    client: Client,
    bucket: String,
    key: String,
    upload_id: String,
    armed: bool,
}

impl MultipartUpload {
    /// Starts a multipart upload of `key`. A reply without an upload id is an error.
    ///
    /// Cancel-safe: the request runs in a task of its own, so a caller dropped while it is in
    /// flight (a cancelled transfer, a session ended) does not lose the upload the store has
    /// already made. The task's result is then dropped with no one to take it, and dropping
    /// an armed [`MultipartUpload`] aborts it.
    pub async fn create(client: &Client, bucket: &str, key: &str) -> Result<Self, Failure> {
        Self::create_with(client, bucket, key, None).await
    }

    /// [`create`](Self::create) for an upload whose commit carries the whole object's
    /// checksum of `full_object` (CRC32C or CRC-64/NVME, S3's `FULL_OBJECT` type): every part
    /// then carries its own of the same algorithm, and the store refuses a commit whose
    /// object does not match.
    pub async fn create_with(
        client: &Client,
        bucket: &str,
        key: &str,
        full_object: Option<BodyChecksum>,
    ) -> Result<Self, Failure> {
        let (client, bucket, key) = (client.clone(), bucket.to_owned(), key.to_owned());
        tokio::spawn(async move { Self::create_here(&client, &bucket, &key, full_object).await })
            .await
            .map_err(|e| {
                Failure::Other(Detail::caused_by(
                    format!("starting the multipart upload failed: {e}"),
                    e,
                ))
            })?
    }

    async fn create_here(
        client: &Client,
        bucket: &str,
        key: &str,
        full_object: Option<BodyChecksum>,
    ) -> Result<Self, Failure> {
        let algorithm = match full_object {
            Some(BodyChecksum::Crc32c) => Some(ChecksumAlgorithm::Crc32C),
            Some(BodyChecksum::Crc64nvme) => Some(ChecksumAlgorithm::Crc64Nvme),
            Some(BodyChecksum::Md5) | None => None,
        };
        let out = client
            .create_multipart_upload()
            .bucket(bucket)
            .key(key)
            .set_checksum_algorithm(algorithm.clone())
            .set_checksum_type(algorithm.map(|_| ChecksumType::FullObject))
            .send()
            .await
            .classified()?;
        let upload_id = out
            .upload_id()
            .filter(|id| !id.is_empty())
            .ok_or_else(|| Failure::Other("the store returned no upload id".into()))?
            .to_owned();
        Ok(Self {
            client: client.clone(),
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            upload_id,
            armed: true,
        })
    }

    /// The upload id.
    pub fn id(&self) -> &str {
        &self.upload_id
    }

    /// Copies byte ranges (`first..=last`) of `source` (a CopySource header value) into parts
    /// 1, 2, … of this upload, `parallel` at once; with `if_match`, only while the source
    /// still has that ETag. Returns the parts in order.
    pub async fn copy_parts(
        &self,
        source: &str,
        ranges: &[(u64, u64)],
        if_match: Option<&str>,
        parallel: usize,
    ) -> Result<Vec<CompletedPart>, Failure> {
        let mut set: JoinSet<Result<CompletedPart, Failure>> = JoinSet::new();
        let mut parts = Vec::with_capacity(ranges.len());
        for (i, (first, last)) in ranges.iter().enumerate() {
            if set.len() >= parallel.max(1)
                && let Some(r) = set.join_next().await
            {
                parts.push(joined(r)?);
            }
            let number = i32::try_from(i + 1).unwrap_or(i32::MAX);
            let mut req = self
                .client
                .upload_part_copy()
                .bucket(&self.bucket)
                .key(&self.key)
                .upload_id(&self.upload_id)
                .part_number(number)
                .copy_source(source)
                .copy_source_range(format!("bytes={first}-{last}"));
            if let Some(e) = if_match {
                req = req.copy_source_if_match(e);
            }
            set.spawn(async move {
                let out = req.send().await.classified()?;
                let etag = out
                    .copy_part_result()
                    .and_then(|r| r.e_tag())
                    .map(str::to_owned);
                Ok(CompletedPart::builder()
                    .part_number(number)
                    .set_e_tag(etag)
                    .build())
            });
        }
        while let Some(r) = set.join_next().await {
            parts.push(joined(r)?);
        }
        parts.sort_by_key(|p| p.part_number());
        Ok(parts)
    }

    /// Completes the upload with `parts`: the commit point. On failure the upload is aborted.
    pub async fn complete(self, parts: Vec<CompletedPart>) -> Result<(), Failure> {
        self.complete_checked(parts, None, None).await.map(|_| ())
    }

    /// [`complete`](Self::complete) sending the whole object's checksum (an upload made by
    /// [`create_with`](Self::create_with)), and reading the reply's `report` header (the
    /// CRC-64 OSS and COS report).
    pub async fn complete_checked(
        mut self,
        mut parts: Vec<CompletedPart>,
        full_object: Option<&BodySum>,
        report: Option<&'static str>,
    ) -> Result<Committed, Failure> {
        parts.sort_by_key(|p| p.part_number());
        let mut req = self
            .client
            .complete_multipart_upload()
            .bucket(&self.bucket)
            .key(&self.key)
            .upload_id(&self.upload_id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(parts))
                    .build(),
            );
        match full_object {
            Some(BodySum::Crc32c(v)) => {
                req = req
                    .checksum_crc32_c(v)
                    .checksum_type(ChecksumType::FullObject);
            }
            Some(BodySum::Crc64nvme(v)) => {
                req = req
                    .checksum_crc64_nvme(v)
                    .checksum_type(ChecksumType::FullObject);
            }
            Some(BodySum::Md5(_)) | None => {}
        }
        let reader = report.map(ReplyHeader::new);
        let done = match &reader {
            Some(r) => req.customize().interceptor(r.clone()).send().await,
            None => req.send().await,
        }
        .classified();
        match done {
            Ok(out) => {
                self.armed = false;
                Ok(Committed {
                    etag: out.e_tag().map(str::to_owned),
                    reported: reader.and_then(|r| r.value()),
                })
            }
            Err(f) => {
                self.abort().await;
                Err(f)
            }
        }
    }

    /// Aborts the upload now (retrying in the background while the store is unreachable).
    pub async fn abort(mut self) {
        self.armed = false;
        abort_upload(&self.client, &self.bucket, &self.key, &self.upload_id).await;
    }
}

impl Drop for MultipartUpload {
    fn drop(&mut self) {
        if self.armed {
            let (client, bucket, key, id) = (
                self.client.clone(),
                self.bucket.clone(),
                self.key.clone(),
                self.upload_id.clone(),
            );
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                rt.spawn(async move { abort_upload(&client, &bucket, &key, &id).await });
            }
        }
    }
}

fn joined(
    r: Result<Result<CompletedPart, Failure>, tokio::task::JoinError>,
) -> Result<CompletedPart, Failure> {
    r.map_err(|e| Failure::Other(Detail::caused_by(format!("part copy task failed: {e}"), e)))?
}

/// The byte ranges (`first..=last`) of a `size`-byte object cut into parts of `part` bytes;
/// the last one is shorter. Pure.
pub fn part_ranges(size: u64, part: u64) -> Vec<(u64, u64)> {
    let part = part.max(1);
    (0..size.div_ceil(part))
        .map(|i| (i * part, ((i + 1) * part).min(size) - 1))
        .collect()
}

/// Server-side copy of `from` to `to` (a `size`-byte object) in parts: used by renames above
/// the provider's CopyObject limit. Parts are at least `min_part` bytes and 256 MiB, and few
/// enough for S3's 10,000. Every failure, and dropping the future, aborts the upload.
pub async fn copy_object(
    client: &Client,
    bucket: &str,
    from: &str,
    to: &str,
    size: u64,
    min_part: u64,
    parallel: usize,
) -> Result<(), Failure> {
    let part = min_part
        .max(size.div_ceil(MAX_PARTS))
        .max(256 * 1024 * 1024);
    copy_in_parts(client, bucket, from, to, &part_ranges(size, part), parallel).await
}

/// [`copy_object`] with the parts chosen by the caller (tests use small ones).
pub async fn copy_in_parts(
    client: &Client,
    bucket: &str,
    from: &str,
    to: &str,
    ranges: &[(u64, u64)],
    parallel: usize,
) -> Result<(), Failure> {
    let upload = MultipartUpload::create(client, bucket, to).await?;
    let source = copy_source(bucket, from);
    match upload.copy_parts(&source, ranges, None, parallel).await {
        Ok(parts) => upload.complete(parts).await,
        Err(f) => {
            upload.abort().await;
            Err(f)
        }
    }
}

/// Aborts a multipart upload. When the store cannot be reached, keeps trying in the
/// background (for up to ten minutes) so that no upload is left behind once it is back.
async fn abort_upload(client: &Client, bucket: &str, key: &str, upload_id: &str) {
    if try_abort(client, bucket, key, upload_id).await {
        return;
    }
    let (client, bucket, key, id) = (
        client.clone(),
        bucket.to_owned(),
        key.to_owned(),
        upload_id.to_owned(),
    );
    tokio::spawn(async move {
        let mut wait = std::time::Duration::from_secs(1);
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(600);
        while tokio::time::Instant::now() < deadline {
            tokio::time::sleep(wait).await;
            if try_abort(&client, &bucket, &key, &id).await {
                return;
            }
            wait = (wait * 2).min(std::time::Duration::from_secs(30));
        }
        tracing::warn!(
            key,
            "gave up aborting a multipart upload; a bucket lifecycle rule removes it"
        );
    });
}

/// One abort attempt; true when the upload is gone.
async fn try_abort(client: &Client, bucket: &str, key: &str, upload_id: &str) -> bool {
    let r = client
        .abort_multipart_upload()
        .bucket(bucket)
        .key(key)
        .upload_id(upload_id)
        .send()
        .await;
    match r {
        Ok(_) => {
            tracing::debug!(key, "aborted multipart upload");
            true
        }
        Err(e) => {
            // NoSuchUpload: already gone.
            let no_such_upload = e
                .as_service_error()
                .map(|se| se.is_no_such_upload())
                .unwrap_or(false);
            let f = crate::s3::error::classify(e);
            if no_such_upload || f == Failure::NotFound {
                return true;
            }
            tracing::warn!(key, error = %crate::error::chain(&f), "could not abort multipart upload yet");
            false
        }
    }
}

/// The CopySource header value for `bucket/key`, percent-encoded except for `/`.
pub(super) fn copy_source(bucket: &str, key: &str) -> String {
    use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
    const KEEP: &AsciiSet = &NON_ALPHANUMERIC
        .remove(b'/')
        .remove(b'-')
        .remove(b'_')
        .remove(b'.')
        .remove(b'~');
    format!("{}/{}", bucket, utf8_percent_encode(key, KEEP))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_cover_the_object() {
        assert_eq!(part_ranges(10, 4), vec![(0, 3), (4, 7), (8, 9)]);
        assert_eq!(part_ranges(8, 4), vec![(0, 3), (4, 7)]);
        assert_eq!(part_ranges(0, 4), Vec::<(u64, u64)>::new());
        assert_eq!(part_ranges(3, 0), vec![(0, 0), (1, 1), (2, 2)]);
    }

    #[test]
    fn copy_source_encoding() {
        assert_eq!(copy_source("b", "a/b c.txt"), "b/a/b%20c.txt");
        assert_eq!(copy_source("b", "测试/x+y"), "b/%E6%B5%8B%E8%AF%95/x%2By");
        assert_eq!(copy_source("b", "a-b_c.d~e"), "b/a-b_c.d~e");
    }
}
