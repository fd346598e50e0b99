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

use crate::checksum::{self, Algo, BodyCheck, Hasher, Kind, Stored};
use crate::file_stream::FileChunks;
use crate::keys::{self, Cursor};
use crate::listing::{self, Item};
use crate::store::{
    EMPTY_MD5, ObjectInfo, ObjectMeta, Opened, Precondition, Store, hash_file_sync, internal,
    io_error, join_time, key_error, multipart_etag, split_time,
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

/// The request's `x-amz-checksum-*` values, in the order of [`Algo::ALL`].
macro_rules! checksum_values {
    ($input:expr) => {
        [
            $input.checksum_crc32.as_deref(),
            $input.checksum_crc32c.as_deref(),
            $input.checksum_crc64nvme.as_deref(),
            $input.checksum_sha1.as_deref(),
            $input.checksum_sha256.as_deref(),
        ]
    };
}

/// Sets the five `checksum_*` fields of a response from an `Option<&Stored>`.
macro_rules! put_checksum {
    ($out:expr, $stored:expr) => {
        if let Some(stored) = $stored {
            let d = stored.to_dto();
            $out.checksum_crc32 = d.checksum_crc32;
            $out.checksum_crc32c = d.checksum_crc32c;
            $out.checksum_crc64nvme = d.checksum_crc64nvme;
            $out.checksum_sha1 = d.checksum_sha1;
            $out.checksum_sha256 = d.checksum_sha256;
        }
    };
}

/// `x-amz-checksum-type` of a response.
fn checksum_type(stored: Option<&Stored>) -> Option<ChecksumType> {
    stored.map(|c| ChecksumType::from_static(c.kind.name()))
}

/// Whether `x-amz-checksum-mode: ENABLED` asks for the object's checksum.
fn checksum_mode_enabled(mode: Option<&ChecksumMode>) -> bool {
    mode.is_some_and(|m| m.as_str().eq_ignore_ascii_case(ChecksumMode::ENABLED))
}

/// The algorithm an `x-amz-checksum-algorithm` value names, or `InvalidRequest`.
fn parse_algorithm(a: Option<&ChecksumAlgorithm>, header: &str) -> S3Result<Option<Algo>> {
    a.map(|a| {
        Algo::parse(a.as_str()).ok_or_else(|| {
            checksum::invalid_request(format!("Value for {header} header is invalid."))
        })
    })
    .transpose()
}

/// The checksum algorithm and type of a new multipart upload, checked as AWS does: a type
/// needs an algorithm, CRC64NVME is full-object only, full-object needs a CRC.
fn upload_checksum(
    algorithm: Option<&ChecksumAlgorithm>,
    kind: Option<&ChecksumType>,
) -> S3Result<Option<(Algo, Kind)>> {
    let algo = parse_algorithm(algorithm, "x-amz-checksum-algorithm")?;
    let kind = kind
        .map(|k| {
            Kind::parse(k.as_str()).ok_or_else(|| {
                checksum::invalid_request("Value for x-amz-checksum-type header is invalid.")
            })
        })
        .transpose()?;
    match (algo, kind) {
        (None, None) => Ok(None),
        (None, Some(_)) => Err(checksum::invalid_request(
            "The x-amz-checksum-type header can only be used with the x-amz-checksum-algorithm header.",
        )),
        (Some(a), kind) => {
            let kind = kind.unwrap_or(Kind::default_for(a));
            if kind.allows(a) {
                Ok(Some((a, kind)))
            } else {
                Err(checksum::invalid_request(format!(
                    "The {} checksum type cannot be used with the {} checksum algorithm.",
                    kind.name(),
                    a.name().to_ascii_lowercase()
                )))
            }
        }
    }
}

/// The checksum a CompleteMultipartUpload names for part `n` of an upload with algorithm
/// `algo`: when given, it must be the part's (`InvalidPart` otherwise, as a wrong ETag); a
/// composite upload needs it for every part (`InvalidRequest`), as on AWS.
fn check_completed_part_checksum(
    p: &CompletedPart,
    n: i32,
    algo: Algo,
    kind: Option<Kind>,
    stored: Option<&Stored>,
) -> S3Result<()> {
    match checksum::claim_of(checksum_values!(p))? {
        Some(c) if c.algo != algo => Err(checksum_type_mismatch(algo, c.algo)),
        Some(c) => {
            if stored.is_some_and(|s| checksum::claim_matches(&c, s)) {
                Ok(())
            } else {
                Err(S3Error::with_message(
                    S3ErrorCode::InvalidPart,
                    format!(
                        "the {} checksum given for part {n} does not match the uploaded part",
                        algo.name()
                    ),
                ))
            }
        }
        None if kind == Some(Kind::Composite) => Err(checksum::invalid_request(format!(
            "The upload was created using a {} checksum. The complete request must include the checksum for each part. It was missing for part {n} in the request.",
            algo.name().to_ascii_lowercase()
        ))),
        None => Ok(()),
    }
}

/// A part's checksum of another algorithm than its upload's, as AWS words it.
fn checksum_type_mismatch(want: Algo, got: Algo) -> S3Error {
    checksum::invalid_request(format!(
        "Checksum Type mismatch occurred, expected checksum Type: {}, actual checksum Type: {}",
        want.name().to_ascii_lowercase(),
        got.name().to_ascii_lowercase()
    ))
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
        let check = BodyCheck::new(
            checksum_values!(input),
            &req.headers,
            input
                .checksum_algorithm
                .as_ref()
                .map(ChecksumAlgorithm::as_str),
        )?;
        let trailers = req.trailing_headers;
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
            let received = store
                .receive(input.body, input.content_length, Hasher::of([check.algo()]))
                .await?;
            if received.size != 0 {
                return Err(S3Error::with_message(
                    S3ErrorCode::InvalidArgument,
                    "a key ending in '/' is a folder and must have an empty body",
                ));
            }
            check_content_md5(input.content_md5.as_deref(), &received.md5)?;
            check.verify(&received.digests, trailers.as_ref())?;
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

        let mut received = store
            .receive(input.body, input.content_length, Hasher::of([check.algo()]))
            .await?;
        // A mismatch returns here: the temp file is dropped, nothing was stored.
        check_content_md5(input.content_md5.as_deref(), &received.md5)?;
        let checksum = check.verify(&received.digests, trailers.as_ref())?;
        let meta = ObjectMeta {
            key: key.clone(),
            etag: keys::hex(&received.md5),
            size: received.size,
            mtime_s: 0,
            mtime_ns: 0,
            content_type: input.content_type,
            metadata: to_btree(input.metadata),
            checksum,
        };
        let st = store.clone();
        let meta = blocking(move || {
            let _guard = st.key_lock(&bucket, &key);
            st.commit_file_sync(&bucket_dir, &bucket, &key, &mut received.temp, meta, &pre)
        })
        .await?;
        let mut out = PutObjectOutput {
            e_tag: Some(quoted(&meta.etag)),
            size: Some(i64::try_from(meta.size).unwrap_or(i64::MAX)),
            checksum_type: checksum_type(meta.checksum.as_ref()),
            ..Default::default()
        };
        put_checksum!(out, meta.checksum.as_ref());
        Ok(S3Response::new(out))
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
        let want_checksum = checksum_mode_enabled(input.checksum_mode.as_ref());
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
        // The checksum describes the whole object: a range gets none, as on AWS.
        let checksum = info
            .checksum
            .as_ref()
            .filter(|_| want_checksum && span.is_none());
        let mut out = GetObjectOutput {
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
            checksum_type: checksum_type(checksum),
            ..Default::default()
        };
        put_checksum!(out, checksum);
        Ok(S3Response::new(out))
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
        let want_checksum = checksum_mode_enabled(input.checksum_mode.as_ref());
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
        let checksum = info.checksum.as_ref().filter(|_| want_checksum);
        let mut out = HeadObjectOutput {
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
            checksum_type: checksum_type(checksum),
            ..Default::default()
        };
        put_checksum!(out, checksum);
        Ok(S3Response::new(out))
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
        let new_algo = parse_algorithm(
            input.checksum_algorithm.as_ref(),
            "x-amz-checksum-algorithm",
        )?;
        let store = self.store.clone();
        let dst_bucket = input.bucket.clone();
        let dst_key = input.key.clone();
        let conds = (
            input.copy_source_if_match,
            input.copy_source_if_none_match,
            input.copy_source_if_modified_since,
            input.copy_source_if_unmodified_since,
        );

        if src_bucket == dst_bucket && src_key == dst_key {
            if !replace {
                return Err(S3Error::with_message(
                    S3ErrorCode::InvalidRequest,
                    "This copy request is illegal because it is trying to copy an object to itself without changing the object's metadata, storage class, website redirect location or encryption attributes.",
                ));
            }
            // Metadata only: the sidecar is replaced atomically (temp file, rename) under the
            // key's lock, after the copy-source conditions were checked under that same lock;
            // the data file is not touched, so its ETag and mtime stay.
            let st = store.clone();
            let (content_type, metadata) = (input.content_type, to_btree(input.metadata));
            let (etag, mtime, checksum) = blocking(move || {
                let _guard = st.key_lock(&dst_bucket, &dst_key);
                let bucket_dir = st.existing_bucket_dir_sync(&dst_bucket)?;
                let opened = st.open_object_sync(&bucket_dir, &dst_bucket, &dst_key)?;
                check_copy_conditions(
                    &opened.info,
                    conds.0.as_ref(),
                    conds.1.as_ref(),
                    conds.2.as_ref(),
                    conds.3.as_ref(),
                )?;
                let info = opened.info;
                let Some(mut f) = opened.file else {
                    // A folder marker has no sidecar: nothing to keep.
                    return Ok((info.etag, info.mtime, None));
                };
                // A file dropped in by hand gets its real MD5 as ETag (a sidecar's ETag is
                // always one), and a newly asked-for checksum is computed; both read the file
                // once, neither writes it.
                let new_algo = new_algo.filter(|a| {
                    info.checksum
                        .as_ref()
                        .is_none_or(|c| c.algorithm != *a || c.kind != Kind::FullObject)
                });
                let (md5, digests) = if !info.has_sidecar || new_algo.is_some() {
                    hash_file_sync(&mut f, !info.has_sidecar, Hasher::of([new_algo]))?
                } else {
                    (None, checksum::Digests::default())
                };
                let m = f
                    .metadata()
                    .map_err(|e| io_error(e, "cannot read the object"))?;
                let (s, ns) = split_time(info.mtime);
                let meta = ObjectMeta {
                    key: dst_key.clone(),
                    etag: md5.map_or(info.etag, |d| keys::hex(&d)),
                    size: m.len(),
                    mtime_s: s,
                    mtime_ns: ns,
                    content_type,
                    metadata,
                    checksum: digests.stored(new_algo).or(info.checksum),
                };
                st.write_meta_sync(&dst_bucket, &meta)?;
                Ok((meta.etag, info.mtime, meta.checksum))
            })
            .await?;
            let mut result = CopyObjectResult {
                e_tag: Some(quoted(&etag)),
                last_modified: Some(ts(mtime)),
                checksum_type: checksum_type(checksum.as_ref()),
                ..Default::default()
            };
            put_checksum!(result, checksum.as_ref());
            return Ok(S3Response::new(CopyObjectOutput {
                copy_object_result: Some(result),
                ..Default::default()
            }));
        }

        // Copy the data into a temp file (no lock: the open handle keeps reading the version
        // that was opened even if it is replaced meanwhile).
        let st = store.clone();
        let (sb, sk) = (src_bucket.clone(), src_key.clone());
        let (db, content_type, metadata) = (dst_bucket.clone(), input.content_type, input.metadata);
        let (dst_dir, copied) = blocking(move || {
            let src_dir = st.existing_bucket_dir_sync(&sb)?;
            let dst_dir = st.existing_bucket_dir_sync(&db)?;
            let opened = st.open_object_sync(&src_dir, &sb, &sk)?;
            check_copy_conditions(
                &opened.info,
                conds.0.as_ref(),
                conds.1.as_ref(),
                conds.2.as_ref(),
                conds.3.as_ref(),
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
            // The copy keeps the source's full-object checksum (same bytes), unless another
            // algorithm is asked for; that one is computed on the way. A composite checksum
            // describes the source's parts, which the copy does not have.
            let new_algo = new_algo.filter(|a| {
                info.checksum
                    .as_ref()
                    .is_none_or(|c| c.algorithm != *a || c.kind != Kind::FullObject)
            });
            let (temp, digest, digests) = match opened.file {
                Some(mut f) => st.copy_to_temp_sync(
                    &mut f,
                    0,
                    info.size,
                    !info.has_sidecar,
                    Hasher::of([new_algo]),
                )?,
                None => (
                    st.empty_temp_sync()?,
                    Some(EMPTY_MD5_BYTES),
                    Hasher::of([new_algo]).finish(),
                ),
            };
            let checksum = digests
                .stored(new_algo)
                .or_else(|| info.checksum.filter(|c| c.kind == Kind::FullObject));
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
                checksum,
            };
            Ok((dst_dir, Some((temp, meta))))
        })
        .await?;

        let st = store.clone();
        let (etag, mtime, checksum) = blocking(move || {
            let _guard = st.key_lock(&dst_bucket, &dst_key);
            let pk = keys::parse_key(&dst_key).map_err(key_error)?;
            match copied {
                None => {
                    let mtime = st.make_dir_marker_sync(&dst_dir, &pk, &dst_key)?;
                    Ok((EMPTY_MD5.to_owned(), mtime, None))
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
                    let mtime = join_time(meta.mtime_s, meta.mtime_ns);
                    Ok((meta.etag, mtime, meta.checksum))
                }
            }
        })
        .await?;
        let mut result = CopyObjectResult {
            e_tag: Some(quoted(&etag)),
            last_modified: Some(ts(mtime)),
            checksum_type: checksum_type(checksum.as_ref()),
            ..Default::default()
        };
        put_checksum!(result, checksum.as_ref());
        Ok(S3Response::new(CopyObjectOutput {
            copy_object_result: Some(result),
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
        let checksum = upload_checksum(
            input.checksum_algorithm.as_ref(),
            input.checksum_type.as_ref(),
        )?;
        let store = self.store.clone();
        let (bucket, key) = (input.bucket.clone(), input.key.clone());
        let metadata = to_btree(input.metadata);
        let content_type = input.content_type;
        let upload_id = blocking(move || {
            store.existing_bucket_dir_sync(&bucket)?;
            store.create_upload_sync(&bucket, &key, content_type, metadata, checksum)
        })
        .await?;
        Ok(S3Response::new(CreateMultipartUploadOutput {
            bucket: Some(input.bucket),
            key: Some(input.key),
            upload_id: Some(upload_id),
            checksum_algorithm: checksum.map(|(a, _)| ChecksumAlgorithm::from_static(a.name())),
            checksum_type: checksum.map(|(_, k)| ChecksumType::from_static(k.name())),
            ..Default::default()
        }))
    }

    async fn upload_part(
        &self,
        req: S3Request<UploadPartInput>,
    ) -> S3Result<S3Response<UploadPartOutput>> {
        let input = req.input;
        check_part_number(input.part_number)?;
        let check = BodyCheck::new(
            checksum_values!(input),
            &req.headers,
            input
                .checksum_algorithm
                .as_ref()
                .map(ChecksumAlgorithm::as_str),
        )?;
        let trailers = req.trailing_headers;
        let store = self.store.clone();
        let upload = {
            // Fail fast, before receiving the data, when the upload does not exist.
            let (st, id, b, k) = (
                store.clone(),
                input.upload_id.clone(),
                input.bucket.clone(),
                input.key.clone(),
            );
            blocking(move || st.load_upload_sync(&id, &b, &k)).await?
        };
        let upload_algo = upload.checksum_algorithm;
        if let (Some(want), Some(got)) = (upload_algo, check.algo())
            && want != got
        {
            return Err(checksum_type_mismatch(want, got));
        }
        // The part's checksum of the upload's algorithm is computed even when the part comes
        // without one: the object's checksum is made of them.
        let mut received = store
            .receive(
                input.body,
                input.content_length,
                Hasher::of([check.algo(), upload_algo]),
            )
            .await?;
        // A mismatch returns here: the temp file is dropped, the part is not recorded.
        check_content_md5(input.content_md5.as_deref(), &received.md5)?;
        let verified = check.verify(&received.digests, trailers.as_ref())?;
        let part_checksum = received.digests.stored(upload_algo);
        let st = store.clone();
        let (id, b, k, n) = (input.upload_id, input.bucket, input.key, input.part_number);
        let part = blocking(move || {
            let _guard = st.upload_lock(&id);
            st.commit_part_sync(
                &id,
                &b,
                &k,
                n,
                &mut received.temp,
                &received.md5,
                part_checksum,
            )
        })
        .await?;
        let mut out = UploadPartOutput {
            e_tag: Some(quoted(&part.etag)),
            ..Default::default()
        };
        put_checksum!(out, part.checksum.as_ref().or(verified.as_ref()));
        Ok(S3Response::new(out))
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
        let (mut temp, md5, part_checksum) = blocking(move || {
            let upload_algo = st.load_upload_sync(&id, &b, &k)?.checksum_algorithm;
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
            let hasher = Hasher::of([upload_algo]);
            match opened.file {
                Some(mut f) => {
                    let (temp, digest, digests) =
                        st.copy_to_temp_sync(&mut f, offset, len, true, hasher)?;
                    let md5 = digest.ok_or_else(|| internal("missing part digest"))?;
                    Ok((temp, md5, digests.stored(upload_algo)))
                }
                None => Ok((
                    st.empty_temp_sync()?,
                    EMPTY_MD5_BYTES,
                    hasher.finish().stored(upload_algo),
                )),
            }
        })
        .await?;
        let st = store.clone();
        let (id, b, k, n) = (input.upload_id, input.bucket, input.key, input.part_number);
        let part = blocking(move || {
            let _guard = st.upload_lock(&id);
            st.commit_part_sync(&id, &b, &k, n, &mut temp, &md5, part_checksum)
        })
        .await?;
        let mut result = CopyPartResult {
            e_tag: Some(quoted(&part.etag)),
            last_modified: Some(ts(part.modified())),
            ..Default::default()
        };
        put_checksum!(result, part.checksum.as_ref());
        Ok(S3Response::new(UploadPartCopyOutput {
            copy_part_result: Some(result),
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
        let claim = checksum::complete_claim_of(checksum_values!(input))?;
        let claimed_kind = input
            .checksum_type
            .as_ref()
            .map(|k| {
                Kind::parse(k.as_str()).ok_or_else(|| {
                    checksum::invalid_request("Value for x-amz-checksum-type header is invalid.")
                })
            })
            .transpose()?;
        let store = self.store.clone();
        let st = store.clone();
        let (id, bucket, key) = (
            input.upload_id.clone(),
            input.bucket.clone(),
            input.key.clone(),
        );
        let (etag, object_checksum) = blocking(move || {
            let _upload_guard = st.upload_lock(&id);
            let upload = st.load_upload_sync(&id, &bucket, &key)?;
            let algo = upload.checksum_algorithm;
            let kind = upload.checksum_type.or(algo.map(Kind::default_for));
            if let Some(k) = claimed_kind
                && Some(k) != kind
            {
                return Err(checksum::invalid_request(format!(
                    "The upload was created using the {} checksum mode. The complete request must use the same checksum mode.",
                    kind.map_or("null", Kind::name)
                )));
            }
            if let (Some(a), Some(c)) = (algo, &claim)
                && c.algo != a
            {
                return Err(checksum_type_mismatch(a, c.algo));
            }
            let bucket_dir = st.existing_bucket_dir_sync(&bucket)?;
            let stored: BTreeMap<i32, _> = st.list_parts_sync(&id)?.into_iter().collect();
            let mut prev = 0;
            let mut paths = Vec::with_capacity(requested.len());
            let mut etags = Vec::with_capacity(requested.len());
            let mut sums = Vec::with_capacity(requested.len());
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
                if let Some(a) = algo {
                    check_completed_part_checksum(p, n, a, kind, info.checksum.as_ref())?;
                }
                total += info.size;
                paths.push(st.part_data_path(&id, n)?);
                etags.push(info.etag.clone());
                sums.push((info.checksum.clone(), info.size));
            }
            let etag = multipart_etag(&etags);
            // The object's checksum: composite from the parts' checksums; full-object by
            // combining the parts' CRCs; else (a part without one, or a checksum sent for an
            // upload created without an algorithm) computed while the parts are assembled.
            let mut object_checksum = None;
            let mut compute = None;
            match (algo, kind) {
                (Some(a), Some(Kind::Composite)) => {
                    let parts: Option<Vec<&Stored>> =
                        sums.iter().map(|(c, _)| c.as_ref()).collect();
                    object_checksum = Some(
                        parts
                            .and_then(|p| checksum::composite(a, p))
                            .ok_or_else(|| {
                                checksum::invalid_request(format!(
                                    "A part of this upload has no {} checksum.",
                                    a.name()
                                ))
                            })?,
                    );
                }
                (Some(a), _) => {
                    let parts: Option<Vec<(&Stored, u64)>> = sums
                        .iter()
                        .map(|(c, len)| c.as_ref().map(|c| (c, *len)))
                        .collect();
                    object_checksum = parts.and_then(|p| checksum::combine_crcs(a, p));
                    if object_checksum.is_none() {
                        compute = Some(a);
                    }
                }
                (None, _) => compute = claim.as_ref().map(|c| c.algo),
            }
            let verify = |sum: &Option<Stored>| match (&claim, sum) {
                (Some(c), Some(sum)) if !checksum::claim_matches(c, sum) => {
                    Err(checksum::bad_digest(c.algo))
                }
                _ => Ok(()),
            };
            // Refused before anything is assembled when the checksum is known already; in
            // every case before the commit: the old object stays, the upload stays.
            verify(&object_checksum)?;
            let (mut temp, digests) = st.concat_to_temp_sync(&paths, Hasher::of([compute]))?;
            if compute.is_some() {
                object_checksum = digests.stored(compute);
                verify(&object_checksum)?;
            }
            let meta = ObjectMeta {
                key: key.clone(),
                etag,
                size: total,
                mtime_s: 0,
                mtime_ns: 0,
                content_type: upload.content_type,
                metadata: upload.metadata,
                checksum: object_checksum,
            };
            let meta = {
                // Upload lock (held above) before key lock: the documented order.
                let _key_guard = st.key_lock(&bucket, &key);
                st.commit_file_sync(&bucket_dir, &bucket, &key, &mut temp, meta, &pre)?
            };
            if let Err(e) = st.remove_upload_sync(&id) {
                tracing::warn!(error = %e, "completed upload could not be cleaned up");
            }
            Ok((meta.etag, meta.checksum))
        })
        .await?;
        let mut out = CompleteMultipartUploadOutput {
            bucket: Some(input.bucket.clone()),
            key: Some(input.key.clone()),
            e_tag: Some(quoted(&etag)),
            location: Some(format!("/{}/{}", input.bucket, input.key)),
            checksum_type: checksum_type(object_checksum.as_ref()),
            ..Default::default()
        };
        put_checksum!(out, object_checksum.as_ref());
        Ok(S3Response::new(out))
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
            let mut part = Part {
                part_number: Some(n),
                e_tag: Some(quoted(&p.etag)),
                size: Some(i64::try_from(p.size).unwrap_or(i64::MAX)),
                last_modified: Some(ts(p.modified())),
                ..Default::default()
            };
            put_checksum!(part, p.checksum.as_ref());
            parts.push(part);
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
            checksum: None,
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
