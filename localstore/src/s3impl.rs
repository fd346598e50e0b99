//! The [`s3s::S3`] implementation: each S3 operation in terms of the store.
//!
//! s3s has already checked the SigV4 signature, parsed the request and validated the bucket
//! name when a method here runs. Blocking file work runs in `spawn_blocking`; request bodies
//! and object downloads are streamed, never held whole in memory. Commit locks are taken
//! inside the blocking closures, so a client that disconnects mid-commit cannot release a
//! lock while its commit still runs. Operations that are not
//! implemented here fall back to the trait's default `NotImplemented` error.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io::{Seek, SeekFrom};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use s3s::dto::*;
use s3s::{S3, S3Error, S3ErrorCode, S3Request, S3Response, S3Result, s3_error};

use crate::file_stream::FileChunks;
use crate::keys::{self, Cursor};
use crate::listing::{self, Item};
use crate::store::{
    EMPTY_MD5, ObjectInfo, ObjectMeta, Opened, Precondition, Store, internal, io_error, join_time,
    key_error, multipart_etag, split_time,
};

/// Largest page for listings, as S3.
const MAX_PAGE: i32 = 1000;
/// Read size for object downloads: each reply holds at most two such chunks (one being sent,
/// the next being read).
const READ_CHUNK: usize = 1024 * 1024;

/// The S3 service over a [`Store`].
pub(crate) struct LocalS3 {
    pub store: Arc<Store>,
    pub region: &'static str,
}

/// Runs blocking file work off the async threads.
async fn blocking<T, F>(f: F) -> S3Result<T>
where
    F: FnOnce() -> S3Result<T> + Send + 'static,
    T: Send + 'static,
{
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r,
        Err(e) => Err(internal(format!("a worker task failed: {e}"))),
    }
}

fn ts(t: SystemTime) -> Timestamp {
    Timestamp::from(t)
}

fn quoted(etag: &str) -> ETag {
    ETag::Strong(etag.to_owned())
}

fn to_btree(m: Option<HashMap<String, String>>) -> BTreeMap<String, String> {
    m.map(|m| m.into_iter().collect()).unwrap_or_default()
}

fn to_hash(m: &BTreeMap<String, String>) -> Option<HashMap<String, String>> {
    (!m.is_empty()).then(|| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
}

fn page_size(max: Option<i32>) -> S3Result<usize> {
    match max {
        None => Ok(MAX_PAGE as usize),
        Some(n) if n < 0 => Err(S3Error::with_message(
            S3ErrorCode::InvalidArgument,
            "the page size must not be negative",
        )),
        Some(n) => Ok(n.min(MAX_PAGE) as usize),
    }
}

fn is_url_encoding(e: Option<&EncodingType>) -> bool {
    e.is_some_and(|e| e.as_str().eq_ignore_ascii_case(EncodingType::URL))
}

/// Verifies `Content-MD5` (base64) against the received data.
fn check_content_md5(header: Option<&str>, md5: &[u8; 16]) -> S3Result<()> {
    match header {
        Some(h) if h.trim() != keys::base64(md5) => Err(S3Error::with_message(
            S3ErrorCode::BadDigest,
            "the Content-MD5 you specified did not match what was received",
        )),
        _ => Ok(()),
    }
}

/// Second precision, as HTTP dates have.
fn whole_seconds(t: SystemTime) -> Timestamp {
    let (s, _) = split_time(t);
    ts(join_time(s, 0))
}

fn etag_matches(cond: &ETagCondition, etag: &str) -> bool {
    match cond {
        ETagCondition::Any => true,
        ETagCondition::ETag(e) => keys::bare_etag(e.value()) == etag,
    }
}

/// `If-Match`, `If-None-Match`, `If-Modified-Since`, `If-Unmodified-Since` on reads, with the
/// RFC 9110 precedence S3 follows.
fn check_read_conditions(
    info: &ObjectInfo,
    if_match: Option<&ETagCondition>,
    if_none_match: Option<&ETagCondition>,
    if_modified_since: Option<&Timestamp>,
    if_unmodified_since: Option<&Timestamp>,
) -> S3Result<()> {
    let modified = whole_seconds(info.mtime);
    if let Some(c) = if_match {
        if !etag_matches(c, &info.etag) {
            return Err(s3_error!(PreconditionFailed, "If-Match did not match"));
        }
    } else if let Some(t) = if_unmodified_since
        && modified > *t
    {
        return Err(s3_error!(
            PreconditionFailed,
            "the object was modified since"
        ));
    }
    if let Some(c) = if_none_match {
        if etag_matches(c, &info.etag) {
            return Err(s3_error!(NotModified));
        }
    } else if let Some(t) = if_modified_since
        && modified <= *t
    {
        return Err(s3_error!(NotModified));
    }
    Ok(())
}

/// The same checks for `x-amz-copy-source-if-*`, where every failure is `412`.
fn check_copy_conditions(
    info: &ObjectInfo,
    if_match: Option<&ETagCondition>,
    if_none_match: Option<&ETagCondition>,
    if_modified_since: Option<&Timestamp>,
    if_unmodified_since: Option<&Timestamp>,
) -> S3Result<()> {
    check_read_conditions(
        info,
        if_match,
        if_none_match,
        if_modified_since,
        if_unmodified_since,
    )
    .map_err(|e| {
        if *e.code() == S3ErrorCode::NotModified {
            s3_error!(PreconditionFailed, "a copy-source condition did not hold")
        } else {
            e
        }
    })
}

fn write_precondition(
    if_match: Option<&ETagCondition>,
    if_none_match: Option<&ETagCondition>,
) -> S3Result<Precondition> {
    match (if_match, if_none_match) {
        (Some(_), Some(_)) => Err(S3Error::with_message(
            S3ErrorCode::NotImplemented,
            "If-Match together with If-None-Match is not supported",
        )),
        (Some(ETagCondition::Any), None) => Ok(Precondition::IfMatch(None)),
        (Some(ETagCondition::ETag(e)), None) => Ok(Precondition::IfMatch(Some(
            keys::bare_etag(e.value()).to_owned(),
        ))),
        (None, Some(ETagCondition::Any)) => Ok(Precondition::IfNoneMatchAny),
        (None, Some(ETagCondition::ETag(_))) => Err(S3Error::with_message(
            S3ErrorCode::NotImplemented,
            "If-None-Match on writes only supports '*'",
        )),
        (None, None) => Ok(Precondition::None),
    }
}

fn copy_source(src: &CopySource) -> S3Result<(String, String)> {
    match src {
        CopySource::Bucket {
            bucket,
            key,
            version_id,
        } => {
            if version_id.as_deref().is_some_and(|v| v != "null") {
                return Err(S3Error::with_message(
                    S3ErrorCode::NoSuchVersion,
                    "this store does not keep object versions",
                ));
            }
            Ok((bucket.to_string(), key.to_string()))
        }
        _ => Err(S3Error::with_message(
            S3ErrorCode::NotImplemented,
            "access point and outpost copy sources are not supported",
        )),
    }
}

fn check_part_number(n: i32) -> S3Result<()> {
    if (1..=10_000).contains(&n) {
        Ok(())
    } else {
        Err(S3Error::with_message(
            S3ErrorCode::InvalidArgument,
            "part number must be an integer between 1 and 10000, inclusive",
        ))
    }
}

/// A listing page turned into S3 objects and prefixes.
struct Listed {
    objects: Vec<Object>,
    prefixes: Vec<CommonPrefix>,
    last: Option<Item>,
    truncated: bool,
}

/// Runs a listing and stats the listed objects (blocking).
fn list_sync(
    store: &Store,
    bucket: &str,
    prefix: &str,
    delimiter: Option<&str>,
    cursor: Option<&Cursor>,
    limit: usize,
    url: bool,
) -> S3Result<Listed> {
    let bucket_dir = store.existing_bucket_dir_sync(bucket)?;
    let page = listing::list(&bucket_dir, prefix, delimiter, cursor, limit)
        .map_err(|e| io_error(e, "cannot list the bucket"))?;
    let enc = |s: &str| {
        if url {
            keys::url_encode(s)
        } else {
            s.to_owned()
        }
    };
    let mut objects = Vec::new();
    let mut prefixes = Vec::new();
    for item in &page.items {
        match item {
            Item::Prefix(p) => prefixes.push(CommonPrefix {
                prefix: Some(enc(p)),
            }),
            Item::Object { key, path, is_dir } => {
                // An entry removed since the folder was read is left out.
                let Ok(m) = fs::metadata(path) else { continue };
                let (size, etag, mtime) = if *is_dir {
                    (0, EMPTY_MD5.to_owned(), m.modified().unwrap_or(UNIX_EPOCH))
                } else {
                    let info = store.info_for_file_sync(bucket, key, &m);
                    (info.size, info.etag, info.mtime)
                };
                objects.push(Object {
                    key: Some(enc(key)),
                    size: Some(i64::try_from(size).unwrap_or(i64::MAX)),
                    e_tag: Some(quoted(&etag)),
                    last_modified: Some(ts(mtime)),
                    storage_class: Some(ObjectStorageClass::from_static(
                        ObjectStorageClass::STANDARD,
                    )),
                    ..Default::default()
                });
            }
        }
    }
    Ok(Listed {
        objects,
        prefixes,
        last: page.items.last().cloned(),
        truncated: page.truncated,
    })
}

#[async_trait::async_trait]
impl S3 for LocalS3 {
    async fn list_buckets(
        &self,
        _req: S3Request<ListBucketsInput>,
    ) -> S3Result<S3Response<ListBucketsOutput>> {
        let store = self.store.clone();
        let region = self.region;
        let buckets = blocking(move || {
            let entries =
                fs::read_dir(store.root()).map_err(|e| io_error(e, "cannot list buckets"))?;
            let mut out = Vec::new();
            for entry in entries.flatten() {
                let Ok(name) = entry.file_name().into_string() else {
                    continue;
                };
                if !s3s::path::check_bucket_name(&name) {
                    continue;
                }
                let Ok(m) = fs::metadata(entry.path()) else {
                    continue;
                };
                if !m.is_dir() {
                    continue;
                }
                let created = m.created().or_else(|_| m.modified()).unwrap_or(UNIX_EPOCH);
                out.push(Bucket {
                    name: Some(name),
                    creation_date: Some(ts(created)),
                    bucket_region: Some(region.to_owned()),
                });
            }
            out.sort_by(|a, b| a.name.cmp(&b.name));
            Ok(out)
        })
        .await?;
        Ok(S3Response::new(ListBucketsOutput {
            buckets: Some(buckets),
            owner: Some(Owner {
                display_name: Some("local".to_owned()),
                id: Some("local".to_owned()),
            }),
            ..Default::default()
        }))
    }

    async fn create_bucket(
        &self,
        req: S3Request<CreateBucketInput>,
    ) -> S3Result<S3Response<CreateBucketOutput>> {
        let bucket = req.input.bucket;
        let dir = self.store.bucket_dir(&bucket)?;
        let location = format!("/{bucket}");
        blocking(move || match fs::create_dir(&dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Err(S3Error::with_message(
                S3ErrorCode::BucketAlreadyOwnedByYou,
                "the bucket already exists",
            )),
            Err(e) => Err(io_error(e, "cannot create the bucket folder")),
        })
        .await?;
        Ok(S3Response::new(CreateBucketOutput {
            location: Some(location),
        }))
    }

    async fn delete_bucket(
        &self,
        req: S3Request<DeleteBucketInput>,
    ) -> S3Result<S3Response<DeleteBucketOutput>> {
        let store = self.store.clone();
        let bucket = req.input.bucket;
        blocking(move || {
            let dir = store.existing_bucket_dir_sync(&bucket)?;
            let entries = fs::read_dir(&dir).map_err(|e| io_error(e, "cannot read the bucket"))?;
            let mut leftovers = Vec::new();
            for entry in entries {
                let entry = entry.map_err(|e| io_error(e, "cannot read the bucket"))?;
                let name = entry.file_name();
                if name.to_str().is_some_and(keys::is_reserved_name) {
                    leftovers.push(entry.path());
                } else {
                    return Err(S3Error::with_message(
                        S3ErrorCode::BucketNotEmpty,
                        "the bucket you tried to delete is not empty",
                    ));
                }
            }
            for p in leftovers {
                let _ = fs::remove_file(&p);
            }
            fs::remove_dir(&dir).map_err(|e| io_error(e, "cannot remove the bucket folder"))?;
            store.remove_bucket_meta_sync(&bucket);
            store.remove_bucket_uploads_sync(&bucket);
            Ok(())
        })
        .await?;
        Ok(S3Response::new(DeleteBucketOutput::default()))
    }

    async fn head_bucket(
        &self,
        req: S3Request<HeadBucketInput>,
    ) -> S3Result<S3Response<HeadBucketOutput>> {
        let store = self.store.clone();
        let bucket = req.input.bucket;
        blocking(move || store.existing_bucket_dir_sync(&bucket)).await?;
        Ok(S3Response::new(HeadBucketOutput {
            bucket_region: Some(self.region.to_owned()),
            ..Default::default()
        }))
    }

    async fn get_bucket_location(
        &self,
        req: S3Request<GetBucketLocationInput>,
    ) -> S3Result<S3Response<GetBucketLocationOutput>> {
        let store = self.store.clone();
        let bucket = req.input.bucket;
        blocking(move || store.existing_bucket_dir_sync(&bucket)).await?;
        Ok(S3Response::new(GetBucketLocationOutput {
            location_constraint: Some(BucketLocationConstraint::from(self.region.to_owned())),
        }))
    }

    async fn put_object(
        &self,
        req: S3Request<PutObjectInput>,
    ) -> S3Result<S3Response<PutObjectOutput>> {
        let input = req.input;
        let store = self.store.clone();
        let bucket = input.bucket;
        let key = input.key;
        let is_dir = keys::parse_key(&key).map_err(key_error)?.is_dir;
        let pre = write_precondition(input.if_match.as_ref(), input.if_none_match.as_ref())?;
        let bucket_dir = {
            let (store, bucket) = (store.clone(), bucket.clone());
            blocking(move || store.existing_bucket_dir_sync(&bucket)).await?
        };

        if is_dir {
            if input.content_length.is_some_and(|n| n > 0) {
                return Err(S3Error::with_message(
                    S3ErrorCode::InvalidArgument,
                    "a key ending in '/' is a folder and must have an empty body",
                ));
            }
            let received = store.receive(input.body, input.content_length).await?;
            if received.size != 0 {
                return Err(S3Error::with_message(
                    S3ErrorCode::InvalidArgument,
                    "a key ending in '/' is a folder and must have an empty body",
                ));
            }
            drop(received);
            let st = store.clone();
            blocking(move || {
                let _guard = st.key_lock(&bucket, &key);
                let pk = keys::parse_key(&key).map_err(key_error)?;
                st.make_dir_marker_sync(&bucket_dir, &pk, &key)
            })
            .await?;
            return Ok(S3Response::new(PutObjectOutput {
                e_tag: Some(quoted(EMPTY_MD5)),
                size: Some(0),
                ..Default::default()
            }));
        }

        let mut received = store.receive(input.body, input.content_length).await?;
        check_content_md5(input.content_md5.as_deref(), &received.md5)?;
        let meta = ObjectMeta {
            key: key.clone(),
            etag: keys::hex(&received.md5),
            size: received.size,
            mtime_s: 0,
            mtime_ns: 0,
            content_type: input.content_type,
            metadata: to_btree(input.metadata),
        };
        let st = store.clone();
        let meta = blocking(move || {
            let _guard = st.key_lock(&bucket, &key);
            st.commit_file_sync(&bucket_dir, &bucket, &key, &mut received.temp, meta, &pre)
        })
        .await?;
        Ok(S3Response::new(PutObjectOutput {
            e_tag: Some(quoted(&meta.etag)),
            size: Some(i64::try_from(meta.size).unwrap_or(i64::MAX)),
            ..Default::default()
        }))
    }

    async fn get_object(
        &self,
        req: S3Request<GetObjectInput>,
    ) -> S3Result<S3Response<GetObjectOutput>> {
        let input = req.input;
        if input.part_number.is_some() {
            return Err(S3Error::with_message(
                S3ErrorCode::NotImplemented,
                "GetObject with partNumber is not supported",
            ));
        }
        let store = self.store.clone();
        let (bucket, key, range) = (input.bucket, input.key, input.range);
        let (opened, span) = blocking(move || {
            let bucket_dir = store.existing_bucket_dir_sync(&bucket)?;
            let mut opened = store.open_object_sync(&bucket_dir, &bucket, &key)?;
            check_read_conditions(
                &opened.info,
                input.if_match.as_ref(),
                input.if_none_match.as_ref(),
                input.if_modified_since.as_ref(),
                input.if_unmodified_since.as_ref(),
            )?;
            let size = opened.info.size;
            let span = match range {
                None => None,
                Some(r) => Some(r.check(size).map_err(|_| {
                    S3Error::with_message(
                        S3ErrorCode::InvalidRange,
                        format!(
                            "the requested range is not satisfiable for an object of {size} bytes"
                        ),
                    )
                })?),
            };
            if let (Some(sp), Some(f)) = (&span, opened.file.as_mut()) {
                f.seek(SeekFrom::Start(sp.start))
                    .map_err(|e| io_error(e, "cannot read the object"))?;
            }
            Ok((opened, span))
        })
        .await?;
        let Opened { info, file } = opened;
        let len = span.as_ref().map_or(info.size, |s| s.end - s.start);
        let body = match file {
            Some(f) => StreamingBlob::wrap(FileChunks::new(f, len, READ_CHUNK)),
            None => StreamingBlob::wrap(futures::stream::empty::<
                Result<bytes::Bytes, std::io::Error>,
            >()),
        };
        let content_range = span
            .as_ref()
            .map(|s| format!("bytes {}-{}/{}", s.start, s.end - 1, info.size));
        Ok(S3Response::new(GetObjectOutput {
            body: Some(body),
            content_length: Some(i64::try_from(len).unwrap_or(i64::MAX)),
            content_range,
            accept_ranges: Some("bytes".to_owned()),
            content_type: Some(
                info.content_type
                    .clone()
                    .unwrap_or_else(|| "binary/octet-stream".to_owned()),
            ),
            e_tag: Some(quoted(&info.etag)),
            last_modified: Some(ts(info.mtime)),
            metadata: to_hash(&info.metadata),
            ..Default::default()
        }))
    }

    async fn head_object(
        &self,
        req: S3Request<HeadObjectInput>,
    ) -> S3Result<S3Response<HeadObjectOutput>> {
        let input = req.input;
        if input.part_number.is_some() {
            return Err(S3Error::with_message(
                S3ErrorCode::NotImplemented,
                "HeadObject with partNumber is not supported",
            ));
        }
        let store = self.store.clone();
        let info = blocking(move || {
            let bucket_dir = store.existing_bucket_dir_sync(&input.bucket)?;
            let opened = store.open_object_sync(&bucket_dir, &input.bucket, &input.key)?;
            check_read_conditions(
                &opened.info,
                input.if_match.as_ref(),
                input.if_none_match.as_ref(),
                input.if_modified_since.as_ref(),
                input.if_unmodified_since.as_ref(),
            )?;
            Ok(opened.info)
        })
        .await?;
        Ok(S3Response::new(HeadObjectOutput {
            content_length: Some(i64::try_from(info.size).unwrap_or(i64::MAX)),
            accept_ranges: Some("bytes".to_owned()),
            content_type: Some(
                info.content_type
                    .clone()
                    .unwrap_or_else(|| "binary/octet-stream".to_owned()),
            ),
            e_tag: Some(quoted(&info.etag)),
            last_modified: Some(ts(info.mtime)),
            metadata: to_hash(&info.metadata),
            ..Default::default()
        }))
    }

    async fn delete_object(
        &self,
        req: S3Request<DeleteObjectInput>,
    ) -> S3Result<S3Response<DeleteObjectOutput>> {
        let input = req.input;
        keys::parse_key(&input.key).map_err(key_error)?;
        let store = self.store.clone();
        let bucket_dir = {
            let (store, bucket) = (store.clone(), input.bucket.clone());
            blocking(move || store.existing_bucket_dir_sync(&bucket)).await?
        };
        let st = store.clone();
        blocking(move || {
            let _guard = st.key_lock(&input.bucket, &input.key);
            st.delete_object_sync(&bucket_dir, &input.bucket, &input.key)
        })
        .await?;
        Ok(S3Response::new(DeleteObjectOutput::default()))
    }

    async fn delete_objects(
        &self,
        req: S3Request<DeleteObjectsInput>,
    ) -> S3Result<S3Response<DeleteObjectsOutput>> {
        let input = req.input;
        let quiet = input.delete.quiet.unwrap_or(false);
        let keys_in: Vec<String> = input.delete.objects.into_iter().map(|o| o.key).collect();
        if keys_in.len() > 1000 {
            return Err(S3Error::with_message(
                S3ErrorCode::MalformedXML,
                "at most 1000 keys can be deleted in one request",
            ));
        }
        let store = self.store.clone();
        let bucket = input.bucket;
        let (deleted, errors) = blocking(move || {
            let bucket_dir = store.existing_bucket_dir_sync(&bucket)?;
            // Files first, then folders deepest first: a folder's marker deleted together with
            // its children then finds the folder empty and removes it.
            let mut order: Vec<(usize, bool, usize)> = keys_in
                .iter()
                .enumerate()
                .map(|(i, k)| match keys::parse_key(k) {
                    Ok(pk) => (i, pk.is_dir, pk.depth()),
                    Err(_) => (i, false, 0),
                })
                .collect();
            order.sort_by_key(|&(i, is_dir, depth)| {
                (is_dir, std::cmp::Reverse(if is_dir { depth } else { 0 }), i)
            });
            let mut results: Vec<Option<Result<(), S3Error>>> =
                (0..keys_in.len()).map(|_| None).collect();
            for (i, _, _) in order {
                let key = &keys_in[i];
                let res = match keys::parse_key(key) {
                    Err(e) => Err(key_error(e)),
                    Ok(_) => {
                        let _guard = store.key_lock(&bucket, key);
                        store.delete_object_sync(&bucket_dir, &bucket, key)
                    }
                };
                results[i] = Some(res);
            }
            let mut deleted = Vec::new();
            let mut errors = Vec::new();
            for (key, res) in keys_in.into_iter().zip(results) {
                match res {
                    Some(Ok(())) | None => {
                        if !quiet {
                            deleted.push(DeletedObject {
                                key: Some(key),
                                ..Default::default()
                            });
                        }
                    }
                    Some(Err(e)) => errors.push(Error {
                        code: Some(e.code().as_str().to_owned()),
                        message: e.message().map(str::to_owned),
                        key: Some(key),
                        ..Default::default()
                    }),
                }
            }
            Ok((deleted, errors))
        })
        .await?;
        Ok(S3Response::new(DeleteObjectsOutput {
            deleted: Some(deleted),
            errors: (!errors.is_empty()).then_some(errors),
            ..Default::default()
        }))
    }

    async fn copy_object(
        &self,
        req: S3Request<CopyObjectInput>,
    ) -> S3Result<S3Response<CopyObjectOutput>> {
        let input = req.input;
        let (src_bucket, src_key) = copy_source(&input.copy_source)?;
        keys::parse_key(&src_key).map_err(key_error)?;
        let dst_is_dir = keys::parse_key(&input.key).map_err(key_error)?.is_dir;
        let replace = input
            .metadata_directive
            .as_ref()
            .is_some_and(|d| d.as_str().eq_ignore_ascii_case(MetadataDirective::REPLACE));
        let store = self.store.clone();
        let dst_bucket = input.bucket.clone();
        let dst_key = input.key.clone();

        if src_bucket == dst_bucket && src_key == dst_key {
            if !replace {
                return Err(S3Error::with_message(
                    S3ErrorCode::InvalidRequest,
                    "This copy request is illegal because it is trying to copy an object to itself without changing the object's metadata, storage class, website redirect location or encryption attributes.",
                ));
            }
            let st = store.clone();
            let (etag, mtime) = blocking(move || {
                let _guard = st.key_lock(&dst_bucket, &dst_key);
                let bucket_dir = st.existing_bucket_dir_sync(&dst_bucket)?;
                let opened = st.open_object_sync(&bucket_dir, &dst_bucket, &dst_key)?;
                let info = opened.info;
                if let Some(f) = opened.file {
                    let m = f
                        .metadata()
                        .map_err(|e| io_error(e, "cannot read the object"))?;
                    let (s, ns) = split_time(info.mtime);
                    let meta = ObjectMeta {
                        key: dst_key.clone(),
                        etag: info.etag.clone(),
                        size: m.len(),
                        mtime_s: s,
                        mtime_ns: ns,
                        content_type: input.content_type,
                        metadata: to_btree(input.metadata),
                    };
                    st.write_meta_sync(&dst_bucket, &meta)?;
                }
                Ok((info.etag, info.mtime))
            })
            .await?;
            return Ok(S3Response::new(CopyObjectOutput {
                copy_object_result: Some(CopyObjectResult {
                    e_tag: Some(quoted(&etag)),
                    last_modified: Some(ts(mtime)),
                    ..Default::default()
                }),
                ..Default::default()
            }));
        }

        // Copy the data into a temp file (no lock: the open handle keeps reading the version
        // that was opened even if it is replaced meanwhile).
        let st = store.clone();
        let (sb, sk) = (src_bucket.clone(), src_key.clone());
        let (db, content_type, metadata) = (dst_bucket.clone(), input.content_type, input.metadata);
        let (if_match, if_none_match, if_mod, if_unmod) = (
            input.copy_source_if_match,
            input.copy_source_if_none_match,
            input.copy_source_if_modified_since,
            input.copy_source_if_unmodified_since,
        );
        let (dst_dir, copied) = blocking(move || {
            let src_dir = st.existing_bucket_dir_sync(&sb)?;
            let dst_dir = st.existing_bucket_dir_sync(&db)?;
            let opened = st.open_object_sync(&src_dir, &sb, &sk)?;
            check_copy_conditions(
                &opened.info,
                if_match.as_ref(),
                if_none_match.as_ref(),
                if_mod.as_ref(),
                if_unmod.as_ref(),
            )?;
            let info = opened.info;
            if dst_is_dir {
                if info.size != 0 {
                    return Err(S3Error::with_message(
                        S3ErrorCode::InvalidArgument,
                        "a key ending in '/' is a folder and can only receive an empty object",
                    ));
                }
                return Ok((dst_dir, None));
            }
            let (temp, digest) = match opened.file {
                Some(mut f) => st.copy_to_temp_sync(&mut f, 0, info.size, !info.has_sidecar)?,
                None => (st.empty_temp_sync()?, Some(EMPTY_MD5_BYTES)),
            };
            let etag = match digest {
                Some(d) => keys::hex(&d),
                None => info.etag.clone(),
            };
            let (content_type, metadata) = if replace {
                (content_type, to_btree(metadata))
            } else {
                (info.content_type, info.metadata)
            };
            let meta = ObjectMeta {
                key: String::new(),
                etag,
                size: info.size,
                mtime_s: 0,
                mtime_ns: 0,
                content_type,
                metadata,
            };
            Ok((dst_dir, Some((temp, meta))))
        })
        .await?;

        let st = store.clone();
        let (etag, mtime) = blocking(move || {
            let _guard = st.key_lock(&dst_bucket, &dst_key);
            let pk = keys::parse_key(&dst_key).map_err(key_error)?;
            match copied {
                None => {
                    let mtime = st.make_dir_marker_sync(&dst_dir, &pk, &dst_key)?;
                    Ok((EMPTY_MD5.to_owned(), mtime))
                }
                Some((mut temp, meta)) => {
                    let meta = st.commit_file_sync(
                        &dst_dir,
                        &dst_bucket,
                        &dst_key,
                        &mut temp,
                        meta,
                        &Precondition::None,
                    )?;
                    Ok((meta.etag, join_time(meta.mtime_s, meta.mtime_ns)))
                }
            }
        })
        .await?;
        Ok(S3Response::new(CopyObjectOutput {
            copy_object_result: Some(CopyObjectResult {
                e_tag: Some(quoted(&etag)),
                last_modified: Some(ts(mtime)),
                ..Default::default()
            }),
            ..Default::default()
        }))
    }

    async fn list_objects_v2(
        &self,
        req: S3Request<ListObjectsV2Input>,
    ) -> S3Result<S3Response<ListObjectsV2Output>> {
        let input = req.input;
        let limit = page_size(input.max_keys)?;
        let cursor = match (&input.continuation_token, &input.start_after) {
            (Some(t), _) => Some(keys::decode_token(t).ok_or_else(|| {
                S3Error::with_message(
                    S3ErrorCode::InvalidArgument,
                    "the continuation token provided is incorrect",
                )
            })?),
            (None, Some(s)) if !s.is_empty() => Some(Cursor {
                after: s.clone(),
                skip_prefix: false,
            }),
            _ => None,
        };
        let url = is_url_encoding(input.encoding_type.as_ref());
        let store = self.store.clone();
        let prefix = input.prefix.clone().unwrap_or_default();
        let delimiter = input.delimiter.clone();
        let bucket = input.bucket.clone();
        let listed = blocking(move || {
            list_sync(
                &store,
                &bucket,
                &prefix,
                delimiter.as_deref(),
                cursor.as_ref(),
                limit,
                url,
            )
        })
        .await?;
        let next_continuation_token = if listed.truncated {
            listed.last.as_ref().map(|item| {
                keys::encode_token(&Cursor {
                    after: item.name().to_owned(),
                    skip_prefix: matches!(item, Item::Prefix(_)),
                })
            })
        } else {
            None
        };
        let enc = |s: Option<String>| s.map(|s| if url { keys::url_encode(&s) } else { s });
        let key_count = listed.objects.len() + listed.prefixes.len();
        Ok(S3Response::new(ListObjectsV2Output {
            name: Some(input.bucket),
            prefix: enc(Some(input.prefix.unwrap_or_default())),
            delimiter: enc(input.delimiter),
            start_after: enc(input.start_after),
            max_keys: Some(i32::try_from(limit).unwrap_or(MAX_PAGE)),
            key_count: Some(i32::try_from(key_count).unwrap_or(MAX_PAGE)),
            is_truncated: Some(listed.truncated),
            continuation_token: input.continuation_token,
            next_continuation_token,
            contents: (!listed.objects.is_empty()).then_some(listed.objects),
            common_prefixes: (!listed.prefixes.is_empty()).then_some(listed.prefixes),
            encoding_type: input.encoding_type,
            ..Default::default()
        }))
    }

    async fn list_objects(
        &self,
        req: S3Request<ListObjectsInput>,
    ) -> S3Result<S3Response<ListObjectsOutput>> {
        let input = req.input;
        let limit = page_size(input.max_keys)?;
        let prefix = input.prefix.clone().unwrap_or_default();
        let delimiter = input.delimiter.clone().filter(|d| !d.is_empty());
        // A marker that rolls up under the delimiter is a common prefix from the previous
        // page: everything below it was already covered.
        let cursor = input
            .marker
            .as_ref()
            .filter(|m| !m.is_empty())
            .map(|m| Cursor {
                after: m.clone(),
                skip_prefix: delimiter.as_deref().is_some_and(|d| {
                    m.strip_prefix(prefix.as_str())
                        .is_some_and(|rest| rest.contains(d))
                }),
            });
        let url = is_url_encoding(input.encoding_type.as_ref());
        let store = self.store.clone();
        let bucket = input.bucket.clone();
        let (p, d) = (prefix.clone(), delimiter.clone());
        let listed = blocking(move || {
            list_sync(
                &store,
                &bucket,
                &p,
                d.as_deref(),
                cursor.as_ref(),
                limit,
                url,
            )
        })
        .await?;
        let enc = |s: Option<String>| s.map(|s| if url { keys::url_encode(&s) } else { s });
        let next_marker = if listed.truncated {
            enc(listed.last.as_ref().map(|i| i.name().to_owned()))
        } else {
            None
        };
        Ok(S3Response::new(ListObjectsOutput {
            name: Some(input.bucket),
            prefix: enc(Some(prefix)),
            marker: enc(input.marker),
            delimiter: enc(input.delimiter),
            max_keys: Some(i32::try_from(limit).unwrap_or(MAX_PAGE)),
            is_truncated: Some(listed.truncated),
            next_marker,
            contents: (!listed.objects.is_empty()).then_some(listed.objects),
            common_prefixes: (!listed.prefixes.is_empty()).then_some(listed.prefixes),
            encoding_type: input.encoding_type,
            ..Default::default()
        }))
    }

    async fn create_multipart_upload(
        &self,
        req: S3Request<CreateMultipartUploadInput>,
    ) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
        let input = req.input;
        if keys::parse_key(&input.key).map_err(key_error)?.is_dir {
            return Err(S3Error::with_message(
                S3ErrorCode::InvalidArgument,
                "a key ending in '/' is a folder and cannot be uploaded in parts",
            ));
        }
        let store = self.store.clone();
        let (bucket, key) = (input.bucket.clone(), input.key.clone());
        let metadata = to_btree(input.metadata);
        let content_type = input.content_type;
        let upload_id = blocking(move || {
            store.existing_bucket_dir_sync(&bucket)?;
            store.create_upload_sync(&bucket, &key, content_type, metadata)
        })
        .await?;
        Ok(S3Response::new(CreateMultipartUploadOutput {
            bucket: Some(input.bucket),
            key: Some(input.key),
            upload_id: Some(upload_id),
            ..Default::default()
        }))
    }

    async fn upload_part(
        &self,
        req: S3Request<UploadPartInput>,
    ) -> S3Result<S3Response<UploadPartOutput>> {
        let input = req.input;
        check_part_number(input.part_number)?;
        let store = self.store.clone();
        {
            // Fail fast, before receiving the data, when the upload does not exist.
            let (st, id, b, k) = (
                store.clone(),
                input.upload_id.clone(),
                input.bucket.clone(),
                input.key.clone(),
            );
            blocking(move || st.load_upload_sync(&id, &b, &k)).await?;
        }
        let mut received = store.receive(input.body, input.content_length).await?;
        check_content_md5(input.content_md5.as_deref(), &received.md5)?;
        let st = store.clone();
        let (id, b, k, n) = (input.upload_id, input.bucket, input.key, input.part_number);
        let part = blocking(move || {
            let _guard = st.upload_lock(&id);
            st.commit_part_sync(&id, &b, &k, n, &mut received.temp, &received.md5)
        })
        .await?;
        Ok(S3Response::new(UploadPartOutput {
            e_tag: Some(quoted(&part.etag)),
            ..Default::default()
        }))
    }

    async fn upload_part_copy(
        &self,
        req: S3Request<UploadPartCopyInput>,
    ) -> S3Result<S3Response<UploadPartCopyOutput>> {
        let input = req.input;
        check_part_number(input.part_number)?;
        let (src_bucket, src_key) = copy_source(&input.copy_source)?;
        keys::parse_key(&src_key).map_err(key_error)?;
        let range = match input.copy_source_range.as_deref() {
            None => None,
            Some(r) => Some(keys::parse_copy_range(r).ok_or_else(|| {
                S3Error::with_message(
                    S3ErrorCode::InvalidArgument,
                    "the x-amz-copy-source-range value must be of the form bytes=first-last",
                )
            })?),
        };
        let store = self.store.clone();
        let st = store.clone();
        let (id, b, k) = (
            input.upload_id.clone(),
            input.bucket.clone(),
            input.key.clone(),
        );
        let conds = (
            input.copy_source_if_match,
            input.copy_source_if_none_match,
            input.copy_source_if_modified_since,
            input.copy_source_if_unmodified_since,
        );
        let (mut temp, md5) = blocking(move || {
            st.load_upload_sync(&id, &b, &k)?;
            let src_dir = st.existing_bucket_dir_sync(&src_bucket)?;
            let opened = st.open_object_sync(&src_dir, &src_bucket, &src_key)?;
            check_copy_conditions(
                &opened.info,
                conds.0.as_ref(),
                conds.1.as_ref(),
                conds.2.as_ref(),
                conds.3.as_ref(),
            )?;
            let size = opened.info.size;
            let (offset, len) = match range {
                None => (0, size),
                Some((first, last)) if last < size => (first, last - first + 1),
                Some(_) => {
                    return Err(S3Error::with_message(
                        S3ErrorCode::InvalidArgument,
                        format!("Range specified is not valid for source object of size: {size}"),
                    ));
                }
            };
            match opened.file {
                Some(mut f) => {
                    let (temp, digest) = st.copy_to_temp_sync(&mut f, offset, len, true)?;
                    let md5 = digest.ok_or_else(|| internal("missing part digest"))?;
                    Ok((temp, md5))
                }
                None => Ok((st.empty_temp_sync()?, EMPTY_MD5_BYTES)),
            }
        })
        .await?;
        let st = store.clone();
        let (id, b, k, n) = (input.upload_id, input.bucket, input.key, input.part_number);
        let part = blocking(move || {
            let _guard = st.upload_lock(&id);
            st.commit_part_sync(&id, &b, &k, n, &mut temp, &md5)
        })
        .await?;
        Ok(S3Response::new(UploadPartCopyOutput {
            copy_part_result: Some(CopyPartResult {
                e_tag: Some(quoted(&part.etag)),
                last_modified: Some(ts(part.modified())),
                ..Default::default()
            }),
            ..Default::default()
        }))
    }

    async fn complete_multipart_upload(
        &self,
        req: S3Request<CompleteMultipartUploadInput>,
    ) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
        let input = req.input;
        let requested: Vec<CompletedPart> = input
            .multipart_upload
            .and_then(|m| m.parts)
            .unwrap_or_default();
        if requested.is_empty() {
            return Err(S3Error::with_message(
                S3ErrorCode::MalformedXML,
                "you must specify at least one part",
            ));
        }
        let pre = write_precondition(input.if_match.as_ref(), input.if_none_match.as_ref())?;
        let store = self.store.clone();
        let st = store.clone();
        let (id, bucket, key) = (
            input.upload_id.clone(),
            input.bucket.clone(),
            input.key.clone(),
        );
        let etag = blocking(move || {
            let _upload_guard = st.upload_lock(&id);
            let upload = st.load_upload_sync(&id, &bucket, &key)?;
            let bucket_dir = st.existing_bucket_dir_sync(&bucket)?;
            let stored: BTreeMap<i32, _> = st.list_parts_sync(&id)?.into_iter().collect();
            let mut prev = 0;
            let mut paths = Vec::with_capacity(requested.len());
            let mut etags = Vec::with_capacity(requested.len());
            let mut total: u64 = 0;
            for p in &requested {
                let n = p.part_number.ok_or_else(|| {
                    S3Error::with_message(S3ErrorCode::InvalidPart, "a part has no part number")
                })?;
                if n <= prev {
                    return Err(S3Error::with_message(
                        S3ErrorCode::InvalidPartOrder,
                        "the list of parts was not in ascending order",
                    ));
                }
                prev = n;
                let info = stored.get(&n).ok_or_else(|| {
                    S3Error::with_message(
                        S3ErrorCode::InvalidPart,
                        format!("part {n} has not been uploaded"),
                    )
                })?;
                if let Some(e) = &p.e_tag
                    && keys::bare_etag(e.value()) != info.etag
                {
                    return Err(S3Error::with_message(
                        S3ErrorCode::InvalidPart,
                        format!("the ETag given for part {n} does not match the uploaded part"),
                    ));
                }
                total += info.size;
                paths.push(st.part_data_path(&id, n)?);
                etags.push(info.etag.clone());
            }
            let etag = multipart_etag(&etags);
            let mut temp = st.concat_to_temp_sync(&paths)?;
            let meta = ObjectMeta {
                key: key.clone(),
                etag,
                size: total,
                mtime_s: 0,
                mtime_ns: 0,
                content_type: upload.content_type,
                metadata: upload.metadata,
            };
            let meta = {
                // Upload lock (held above) before key lock: the documented order.
                let _key_guard = st.key_lock(&bucket, &key);
                st.commit_file_sync(&bucket_dir, &bucket, &key, &mut temp, meta, &pre)?
            };
            if let Err(e) = st.remove_upload_sync(&id) {
                tracing::warn!(error = %e, "completed upload could not be cleaned up");
            }
            Ok(meta.etag)
        })
        .await?;
        Ok(S3Response::new(CompleteMultipartUploadOutput {
            bucket: Some(input.bucket.clone()),
            key: Some(input.key.clone()),
            e_tag: Some(quoted(&etag)),
            location: Some(format!("/{}/{}", input.bucket, input.key)),
            ..Default::default()
        }))
    }

    async fn abort_multipart_upload(
        &self,
        req: S3Request<AbortMultipartUploadInput>,
    ) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
        let input = req.input;
        let store = self.store.clone();
        let st = store.clone();
        blocking(move || {
            let _guard = st.upload_lock(&input.upload_id);
            st.existing_bucket_dir_sync(&input.bucket)?;
            st.load_upload_sync(&input.upload_id, &input.bucket, &input.key)?;
            st.remove_upload_sync(&input.upload_id)
        })
        .await?;
        Ok(S3Response::new(AbortMultipartUploadOutput::default()))
    }

    async fn list_multipart_uploads(
        &self,
        req: S3Request<ListMultipartUploadsInput>,
    ) -> S3Result<S3Response<ListMultipartUploadsOutput>> {
        let input = req.input;
        let limit = page_size(input.max_uploads)?;
        let store = self.store.clone();
        let bucket = input.bucket.clone();
        let all = blocking(move || {
            store.existing_bucket_dir_sync(&bucket)?;
            store.list_uploads_sync(&bucket)
        })
        .await?;
        let prefix = input.prefix.clone().unwrap_or_default();
        let delimiter = input.delimiter.clone().filter(|d| !d.is_empty());
        let key_marker = input.key_marker.clone().filter(|m| !m.is_empty());
        // With an upload-id marker, uploads of the marker key that come after that upload are
        // still to be listed; without one, the marker key is done.
        let marker_pos = match (&key_marker, &input.upload_id_marker) {
            (Some(k), Some(id)) => all.iter().position(|(i, u)| &u.key == k && i == id),
            _ => None,
        };
        let mut uploads = Vec::new();
        let mut prefixes: Vec<CommonPrefix> = Vec::new();
        let mut truncated = false;
        let mut last: Option<(String, Option<String>)> = None;
        for (pos, (id, u)) in all.iter().enumerate() {
            if !u.key.starts_with(prefix.as_str()) {
                continue;
            }
            if let Some(k) = &key_marker {
                let after_marker = match marker_pos {
                    Some(mp) => u.key > *k || (u.key == *k && pos > mp),
                    None => u.key > *k,
                };
                if !after_marker {
                    continue;
                }
            }
            let cp = delimiter.as_deref().and_then(|d| {
                let rest = &u.key[prefix.len()..];
                rest.find(d)
                    .map(|i| u.key[..prefix.len() + i + d.len()].to_owned())
            });
            if let Some(cp) = &cp
                && prefixes.last().and_then(|p| p.prefix.as_deref()) == Some(cp.as_str())
            {
                continue;
            }
            if uploads.len() + prefixes.len() >= limit {
                truncated = true;
                break;
            }
            match cp {
                Some(cp) => {
                    last = Some((cp.clone(), None));
                    prefixes.push(CommonPrefix { prefix: Some(cp) });
                }
                None => {
                    last = Some((u.key.clone(), Some(id.clone())));
                    uploads.push(MultipartUpload {
                        key: Some(u.key.clone()),
                        upload_id: Some(id.clone()),
                        initiated: Some(ts(u.initiated())),
                        storage_class: Some(StorageClass::from_static(StorageClass::STANDARD)),
                        ..Default::default()
                    });
                }
            }
        }
        let (next_key_marker, next_upload_id_marker) = match (truncated, last) {
            (true, Some((k, id))) => (Some(k), id),
            _ => (None, None),
        };
        Ok(S3Response::new(ListMultipartUploadsOutput {
            bucket: Some(input.bucket),
            prefix: input.prefix,
            delimiter: input.delimiter,
            key_marker: input.key_marker,
            upload_id_marker: input.upload_id_marker,
            max_uploads: Some(i32::try_from(limit).unwrap_or(MAX_PAGE)),
            is_truncated: Some(truncated),
            next_key_marker,
            next_upload_id_marker,
            uploads: (!uploads.is_empty()).then_some(uploads),
            common_prefixes: (!prefixes.is_empty()).then_some(prefixes),
            ..Default::default()
        }))
    }

    async fn list_parts(
        &self,
        req: S3Request<ListPartsInput>,
    ) -> S3Result<S3Response<ListPartsOutput>> {
        let input = req.input;
        let limit = page_size(input.max_parts)?;
        let marker: i32 = input.part_number_marker.unwrap_or(0);
        let store = self.store.clone();
        let (id, b, k) = (
            input.upload_id.clone(),
            input.bucket.clone(),
            input.key.clone(),
        );
        let all = blocking(move || {
            store.existing_bucket_dir_sync(&b)?;
            store.load_upload_sync(&id, &b, &k)?;
            store.list_parts_sync(&id)
        })
        .await?;
        let mut parts = Vec::new();
        let mut truncated = false;
        for (n, p) in all.into_iter().filter(|(n, _)| *n > marker) {
            if parts.len() >= limit {
                truncated = true;
                break;
            }
            parts.push(Part {
                part_number: Some(n),
                e_tag: Some(quoted(&p.etag)),
                size: Some(i64::try_from(p.size).unwrap_or(i64::MAX)),
                last_modified: Some(ts(p.modified())),
                ..Default::default()
            });
        }
        let next = if truncated {
            parts.last().and_then(|p: &Part| p.part_number)
        } else {
            None
        };
        Ok(S3Response::new(ListPartsOutput {
            bucket: Some(input.bucket),
            key: Some(input.key),
            upload_id: Some(input.upload_id),
            part_number_marker: input.part_number_marker,
            next_part_number_marker: next,
            max_parts: Some(i32::try_from(limit).unwrap_or(MAX_PAGE)),
            is_truncated: Some(truncated),
            parts: (!parts.is_empty()).then_some(parts),
            storage_class: Some(StorageClass::from_static(StorageClass::STANDARD)),
            ..Default::default()
        }))
    }
}

/// MD5 of zero bytes, binary.
const EMPTY_MD5_BYTES: [u8; 16] = [
    0xd4, 0x1d, 0x8c, 0xd9, 0x8f, 0x00, 0xb2, 0x04, 0xe9, 0x80, 0x09, 0x98, 0xec, 0xf8, 0x42, 0x7e,
];

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn empty_md5_constant_matches() {
        assert_eq!(keys::hex(&EMPTY_MD5_BYTES), EMPTY_MD5);
    }

    #[test]
    fn content_md5_check() {
        let md5 = EMPTY_MD5_BYTES;
        assert!(check_content_md5(None, &md5).is_ok());
        assert!(check_content_md5(Some("1B2M2Y8AsgTpgAmY7PhCfg=="), &md5).is_ok());
        let err = check_content_md5(Some("AAAAAAAAAAAAAAAAAAAAAA=="), &md5).unwrap_err();
        assert_eq!(*err.code(), S3ErrorCode::BadDigest);
    }

    #[test]
    fn read_conditions() {
        let t = UNIX_EPOCH + std::time::Duration::new(1_700_000_000, 500);
        let info = ObjectInfo {
            size: 1,
            mtime: t,
            etag: "abc".to_owned(),
            content_type: None,
            metadata: BTreeMap::new(),
            has_sidecar: true,
        };
        let yes = ETagCondition::ETag(ETag::Strong("abc".to_owned()));
        let no = ETagCondition::ETag(ETag::Strong("zzz".to_owned()));
        assert!(check_read_conditions(&info, Some(&yes), None, None, None).is_ok());
        let e = check_read_conditions(&info, Some(&no), None, None, None).unwrap_err();
        assert_eq!(*e.code(), S3ErrorCode::PreconditionFailed);
        let e = check_read_conditions(&info, None, Some(&yes), None, None).unwrap_err();
        assert_eq!(*e.code(), S3ErrorCode::NotModified);
        let same_second = whole_seconds(t);
        let e = check_read_conditions(&info, None, None, Some(&same_second), None).unwrap_err();
        assert_eq!(*e.code(), S3ErrorCode::NotModified);
        assert!(check_read_conditions(&info, None, None, None, Some(&same_second)).is_ok());
        let e = check_copy_conditions(&info, None, Some(&yes), None, None).unwrap_err();
        assert_eq!(*e.code(), S3ErrorCode::PreconditionFailed);
    }

    #[test]
    fn page_sizes() {
        assert_eq!(page_size(None).unwrap(), 1000);
        assert_eq!(page_size(Some(5000)).unwrap(), 1000);
        assert_eq!(page_size(Some(0)).unwrap(), 0);
        assert!(page_size(Some(-1)).is_err());
    }
}
