//! The bucket client: the S3 calls the storage operations are made of, each turning the SDK's
//! reply into our types and its error into a [`Failure`].
//!
//! - HEAD of a file and the one-request probe of a folder (does anything live under it?);
//! - listings: one ListObjectsV2 paging loop ([`Bucket::list`]) for the folder listing and
//!   the walk of a whole prefix; its page-to-page decision is the pure [`Pager`], which the
//!   janitor's ListMultipartUploads loop shares;
//! - folder markers, single and batched deletes (DeleteObjects, one DeleteObject per key
//!   where a store refuses it);
//! - server-side copy (CopyObject, or UploadPartCopy above the provider's copy limit).

use super::digest::{Hasher, stored_hash};
use super::hash::{HashAlgo, HashAnswer};
use crate::units::human_size;
use aws_sdk_s3::Client;
use aws_sdk_s3::operation::head_object::HeadObjectOutput;
use aws_sdk_s3::operation::list_objects_v2::ListObjectsV2Output;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{Delete, ObjectIdentifier};
use futures::stream::{self, TryStreamExt};

use super::listing::ListedObject;
use super::parts::TransferLimits;
use super::{ObjectMeta, Res, multipart, to_system_time};
use crate::error::{Detail, Failure};
use crate::ftp::session::S3User;
use crate::s3::error::{ClassifyExt, classify};

/// Keys deleted per DeleteObjects call (the S3 maximum).
const DELETE_BATCH: usize = 1000;
/// S3 calls running at once for one operation on many keys (the copies of a folder rename,
/// single deletes where DeleteObjects is refused).
pub(super) const PARALLEL: usize = 8;

/// Where the next page of a listing starts, decided from the previous page. Pure.
///
/// A listing is done when the store says the page was the last one (`IsTruncated` not
/// true) or gives no cursor to go on from.
#[derive(Debug)]
pub(crate) struct Pager<C> {
    next: Option<Option<C>>,
}

impl<C> Default for Pager<C> {
    fn default() -> Self {
        Self { next: Some(None) }
    }
}

impl<C> Pager<C> {
    /// The cursor for the next request (`Some(None)` for the first page), or `None` once
    /// every page was read.
    pub(crate) fn next_request(&mut self) -> Option<Option<C>> {
        self.next.take()
    }

    /// Records the page just read: whether the store said more follow, and the cursor it
    /// gave for them.
    pub(crate) fn after_page(&mut self, truncated: Option<bool>, cursor: Option<C>) {
        self.next = match cursor {
            Some(c) if truncated == Some(true) => Some(Some(c)),
            _ => None,
        };
    }
}

/// One page of a ListObjectsV2 reply, in our types.
#[derive(Debug, Default)]
pub(super) struct Page {
    /// The objects (Contents).
    pub(super) objects: Vec<ListedObject>,
    /// The grouped prefixes (CommonPrefixes; only with a delimiter).
    pub(super) common_prefixes: Vec<String>,
}

impl Page {
    fn of(out: &ListObjectsV2Output) -> Self {
        Self {
            objects: out
                .contents()
                .iter()
                .filter_map(|o| {
                    Some(ListedObject {
                        key: o.key()?.to_owned(),
                        size: o.size().unwrap_or(0).max(0) as u64,
                        modified: to_system_time(o.last_modified()),
                    })
                })
                .collect(),
            common_prefixes: out
                .common_prefixes()
                .iter()
                .filter_map(|c| c.prefix().map(str::to_owned))
                .collect(),
        }
    }
}

/// One session's bucket: its client, its name, and the sizes a copy needs.
#[derive(Debug, Clone, Copy)]
pub(super) struct Bucket<'a> {
    client: &'a Client,
    name: &'a str,
    max_copy_object: u64,
    limits: TransferLimits,
}

impl<'a> Bucket<'a> {
    /// The bucket of user `u`; copies above the provider's limit go in parts of `limits`.
    pub(super) fn new(u: &'a S3User, limits: TransferLimits) -> Self {
        Self {
            client: &u.client,
            name: &u.bucket,
            max_copy_object: u.max_copy_object,
            limits,
        }
    }

    /// The file at `key`, or `None` when there is none (or `key` is the root).
    pub(super) async fn head(&self, key: &str) -> Res<Option<ObjectMeta>> {
        Ok(self.head_object(key).await?.map(|h| ObjectMeta {
            len: h.content_length().unwrap_or(0).max(0) as u64,
            dir: false,
            modified: to_system_time(h.last_modified()),
        }))
    }

    /// The HeadObject reply for `key`, or `None` when there is no such object (or `key` is
    /// the root).
    async fn head_object(&self, key: &str) -> Res<Option<HeadObjectOutput>> {
        if key.is_empty() {
            return Ok(None);
        }
        match self
            .client
            .head_object()
            .bucket(self.name)
            .key(key)
            .send()
            .await
        {
            Ok(h) => Ok(Some(h)),
            Err(e) => match classify(e) {
                Failure::NotFound => Ok(None),
                other => Err(other),
            },
        }
    }

    /// The `algo` hash of the file at `key`: the one stored with it when there is one (see
    /// [`stored_hash`]), else read through the hash with bounded memory, pinned to the ETag
    /// the HEAD saw, when the file is at most `max_read` bytes. A folder, or a larger file
    /// without a stored hash, is refused with the reason.
    pub(super) async fn file_hash(
        &self,
        key: &str,
        algo: HashAlgo,
        max_read: u64,
    ) -> Res<HashAnswer> {
        if key.is_empty() {
            return Err(Failure::WrongType(
                "a folder has no hash; ask for a file's".into(),
            ));
        }
        let head = self.head_object(key).await?.ok_or(Failure::NotFound)?;
        let size = head.content_length().unwrap_or(0).max(0) as u64;
        let answer = |hex| HashAnswer { algo, size, hex };
        // An encrypted object's ETag (SSE-KMS, SSE-C) is no MD5 of its bytes.
        let plain = head.sse_customer_algorithm().is_none()
            && head
                .server_side_encryption()
                .is_none_or(|s| *s == aws_sdk_s3::types::ServerSideEncryption::Aes256);
        let etag = head.e_tag().filter(|_| plain);
        if let Some(hex) = stored_hash(algo, head.metadata(), etag) {
            return Ok(answer(hex));
        }
        if size > max_read {
            return Err(Failure::NotAllowed(format!(
                "the file has no stored {algo} hash and is larger ({}) than this server reads \
                 to compute one (max_hash_size {})",
                human_size(size),
                human_size(max_read)
            )));
        }
        let mut req = self.client.get_object().bucket(self.name).key(key);
        if let Some(e) = head.e_tag() {
            req = req.if_match(e);
        }
        let mut body = req.send().await.classified()?.body;
        let mut hasher = Hasher::new(algo);
        let mut read = 0u64;
        while let Some(chunk) = body.try_next().await.map_err(|e| {
            Failure::Transient(Detail::caused_by(format!("reading the file: {e}"), e))
        })? {
            read += chunk.len() as u64;
            hasher.update(&chunk);
        }
        if read != size {
            return Err(Failure::Changed(
                "the file changed on the store while its hash was being computed; ask again".into(),
            ));
        }
        Ok(answer(hasher.finish()))
    }

    /// Whether anything lives under `prefix` (a folder), with the marker's time when the
    /// marker is the first key. The root always exists.
    pub(super) async fn probe_folder(&self, prefix: &str) -> Res<Option<ObjectMeta>> {
        if prefix.is_empty() {
            return Ok(Some(ObjectMeta::folder(None)));
        }
        let page = self.first_keys(prefix, 1).await?;
        if page.objects.is_empty() && page.common_prefixes.is_empty() {
            return Ok(None);
        }
        let modified = page
            .objects
            .first()
            .filter(|o| o.key == prefix)
            .and_then(|o| o.modified);
        Ok(Some(ObjectMeta::folder(modified)))
    }

    /// The first `max_keys` keys under `prefix`, in one request.
    pub(super) async fn first_keys(&self, prefix: &str, max_keys: i32) -> Res<Page> {
        let out = self
            .client
            .list_objects_v2()
            .bucket(self.name)
            .prefix(prefix)
            .max_keys(max_keys)
            .send()
            .await
            .classified()?;
        Ok(Page::of(&out))
    }

    /// Lists `prefix` page by page, grouped at `delimiter` when one is given, handing each
    /// page to `each`.
    pub(super) async fn list(
        &self,
        prefix: &str,
        delimiter: Option<&str>,
        mut each: impl FnMut(Page),
    ) -> Res<()> {
        let mut pager = Pager::default();
        while let Some(token) = pager.next_request() {
            let out = self
                .client
                .list_objects_v2()
                .bucket(self.name)
                .prefix(prefix)
                .set_delimiter(delimiter.map(str::to_owned))
                .set_continuation_token(token)
                .send()
                .await
                .classified()?;
            each(Page::of(&out));
            pager.after_page(
                out.is_truncated(),
                out.next_continuation_token().map(str::to_owned),
            );
        }
        Ok(())
    }

    /// One page (up to 1,000) of the keys under `prefix` at any depth, from `cursor` on
    /// (`None`: the first page), and the cursor of the next page (`None`: that was the last).
    pub(super) async fn keys_page(
        &self,
        prefix: &str,
        cursor: Option<String>,
    ) -> Res<(Vec<ListedObject>, Option<String>)> {
        self.keys_page_after(prefix, cursor, None).await
    }

    /// [`keys_page`](Self::keys_page), the first page beginning after the key `after`.
    pub(super) async fn keys_page_after(
        &self,
        prefix: &str,
        cursor: Option<String>,
        after: Option<String>,
    ) -> Res<(Vec<ListedObject>, Option<String>)> {
        let out = self
            .client
            .list_objects_v2()
            .bucket(self.name)
            .prefix(prefix)
            .set_continuation_token(cursor)
            .set_start_after(after)
            .send()
            .await
            .classified()?;
        let mut pager = Pager::default();
        pager.after_page(
            out.is_truncated(),
            out.next_continuation_token().map(str::to_owned),
        );
        let next = pager.next_request().flatten();
        Ok((Page::of(&out).objects, next))
    }

    /// Writes the empty marker object `prefix` (ends in `/`) that makes a folder.
    pub(super) async fn put_marker(&self, prefix: &str) -> Res<()> {
        self.client
            .put_object()
            .bucket(self.name)
            .key(prefix)
            .content_length(0)
            .body(ByteStream::from_static(b""))
            .send()
            .await
            .classified()?;
        Ok(())
    }

    /// Deletes one key.
    pub(super) async fn delete(&self, key: &str) -> Res<()> {
        self.client
            .delete_object()
            .bucket(self.name)
            .key(key)
            .send()
            .await
            .classified()?;
        Ok(())
    }

    /// Deletes keys in batches; falls back to one DeleteObject per key where a store rejects
    /// DeleteObjects (some reject its checksum header) or a key of the batch.
    pub(super) async fn delete_many(&self, keys: &[String]) -> Res<()> {
        for chunk in keys.chunks(DELETE_BATCH) {
            let ids: Vec<ObjectIdentifier> = chunk
                .iter()
                .filter_map(|k| ObjectIdentifier::builder().key(k).build().ok())
                .collect();
            let delete = Delete::builder()
                .set_objects(Some(ids))
                .quiet(true)
                .build()
                .map_err(|e| Failure::Other(Detail::caused_by(e.to_string(), e)))?;
            let batch = self
                .client
                .delete_objects()
                .bucket(self.name)
                .delete(delete)
                .send()
                .await;
            match batch {
                Ok(out) if out.errors().is_empty() => {}
                Ok(out) => {
                    let failed: Vec<String> = out
                        .errors()
                        .iter()
                        .filter_map(|e| e.key().map(str::to_owned))
                        .collect();
                    for k in failed {
                        self.delete(&k).await?;
                    }
                }
                Err(e) => {
                    tracing::debug!(error = %crate::error::chain(&classify(e)), "DeleteObjects refused; deleting one by one");
                    stream::iter(chunk.iter().map(Ok::<_, Failure>))
                        .try_for_each_concurrent(PARALLEL, |k| self.delete(k))
                        .await?;
                }
            }
        }
        Ok(())
    }

    /// Server-side copy of the object `from` (`size` bytes) to `to`: one CopyObject up to
    /// the provider's limit, a multipart copy above it.
    pub(super) async fn copy(&self, from: &str, to: &str, size: u64) -> Res<()> {
        if size <= self.max_copy_object {
            self.client
                .copy_object()
                .bucket(self.name)
                .key(to)
                .copy_source(multipart::copy_source(self.name, from))
                .send()
                .await
                .classified()?;
            return Ok(());
        }
        multipart::copy_object(
            self.client,
            self.name,
            from,
            to,
            size,
            self.limits.part_size() as u64,
            self.limits.parts_in_flight(),
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::Pager;

    /// The cursors a pager asks for, given what each page says.
    fn requests(pages: &[(Option<bool>, Option<&'static str>)]) -> Vec<Option<&'static str>> {
        let mut pager = Pager::default();
        let mut asked = Vec::new();
        let mut replies = pages.iter();
        while let Some(cursor) = pager.next_request() {
            asked.push(cursor);
            let Some((truncated, next)) = replies.next() else {
                break;
            };
            pager.after_page(*truncated, *next);
        }
        asked
    }

    #[test]
    fn paging_table() {
        assert_eq!(requests(&[(Some(false), None)]), vec![None]);
        assert_eq!(requests(&[(None, None)]), vec![None], "no IsTruncated");
        assert_eq!(
            requests(&[
                (Some(true), Some("a")),
                (Some(true), Some("b")),
                (None, None)
            ]),
            vec![None, Some("a"), Some("b")]
        );
        assert_eq!(
            requests(&[(Some(true), None)]),
            vec![None],
            "truncated without a cursor: nothing to go on from"
        );
        assert_eq!(
            requests(&[(Some(false), Some("a"))]),
            vec![None],
            "a cursor on the last page is ignored"
        );
    }
}
