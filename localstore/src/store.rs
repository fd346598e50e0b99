//! The file system side: folders, atomic writes, ETag sidecars and commit locking.
//!
//! Layout under the root (see the crate docs): bucket `b` is `<root>/b`, key `a/b.txt` is
//! `<root>/b/a/b.txt`, every folder is a zero-byte marker object `a/`. Internal state lives in
//! `<root>/.localstore/` (`tmp/`, `meta/`, `uploads/`), which is never a bucket because bucket
//! names cannot start with a dot.
//!
//! Every write lands in `.localstore/tmp/` first, is fsynced, and is renamed into place, so a
//! crash never exposes a half-written object. ETags, content types, user metadata and
//! checksums live in JSON sidecars under `.localstore/meta/<bucket>/`; a sidecar records the
//! size and mtime of the file it describes and is ignored when they no longer match (the user
//! edited the file by hand).
//! Functions named `*_sync` block and run inside `spawn_blocking`.

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures::StreamExt;
use s3s::crypto::{Checksum, Md5};
use s3s::dto::StreamingBlob;
use s3s::{S3Error, S3ErrorCode, S3Result, s3_error};
use serde::{Deserialize, Serialize};
use tokio::io::AsyncWriteExt;

use crate::LocalStoreError;
use crate::atomic::sync_dir;
use crate::checksum::{Digests, Hasher, Stored};
use crate::credentials::random_hex_id;
use crate::keys::{self, ParsedKey, RESERVED_PREFIX};

/// MD5 of zero bytes: the ETag of every folder marker and empty file.
pub(crate) const EMPTY_MD5: &str = "d41d8cd98f00b204e9800998ecf8427e";

/// Name of the internal folder under the root.
pub(crate) const INTERNAL_DIR: &str = ".localstore";

const LOCK_STRIPES: usize = 64;
/// Internal leftovers older than this are removed at start.
const STALE_AFTER: Duration = Duration::from_secs(3600);
const COPY_BUF: usize = 1 << 20;
/// How much of a received chunk is hashed and written at a time.
const RECEIVE_SLICE: usize = 256 << 10;

/// The file system state shared by all requests.
pub(crate) struct Store {
    root: PathBuf,
    tmp: PathBuf,
    meta: PathBuf,
    pub(crate) uploads: PathBuf,
    key_locks: Box<[Mutex<()>]>,
    upload_locks: Box<[Mutex<()>]>,
}

/// The sidecar for one object file.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ObjectMeta {
    /// The object key (guards against hash collisions).
    pub key: String,
    /// Bare ETag (no quotes).
    pub etag: String,
    /// Size of the file this sidecar describes.
    pub size: u64,
    /// Modification time of that file: seconds since the epoch (negative before 1970).
    pub mtime_s: i64,
    /// Nanoseconds part of the modification time.
    pub mtime_ns: u32,
    /// `Content-Type` given at upload.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    /// User metadata (`x-amz-meta-*`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: BTreeMap<String, String>,
    /// The flexible checksum it was stored with (`x-amz-checksum-*`), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checksum: Option<Stored>,
}

/// What a client sees of an object.
#[derive(Debug, Clone)]
pub(crate) struct ObjectInfo {
    pub size: u64,
    pub mtime: SystemTime,
    /// Bare ETag (no quotes).
    pub etag: String,
    pub content_type: Option<String>,
    pub metadata: BTreeMap<String, String>,
    /// The flexible checksum kept in the sidecar.
    pub checksum: Option<Stored>,
    /// `true` when the sidecar matched (the ETag is a real MD5 or multipart ETag).
    pub has_sidecar: bool,
}

/// An object opened for reading: its info, and the open file (`None` for folder markers).
pub(crate) struct Opened {
    pub info: ObjectInfo,
    pub file: Option<fs::File>,
}

/// Conditions checked under the commit lock right before an object is replaced.
#[derive(Debug, Clone)]
pub(crate) enum Precondition {
    None,
    /// `If-None-Match: *`: fail when the object exists.
    IfNoneMatchAny,
    /// `If-Match: "etag"` (bare) or `If-Match: *` (`None`): fail unless it exists and matches.
    IfMatch(Option<String>),
}

/// A temporary file that is deleted on drop unless it was renamed into place.
pub(crate) struct TempPath {
    path: PathBuf,
    armed: bool,
}

impl TempPath {
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }
    fn disarm(&mut self) {
        self.armed = false;
    }
}

impl Drop for TempPath {
    fn drop(&mut self) {
        if self.armed {
            let _ = fs::remove_file(&self.path);
        }
    }
}

/// A received request body, on disk.
pub(crate) struct Received {
    pub temp: TempPath,
    pub size: u64,
    pub md5: [u8; 16],
    /// The digests the caller asked for (flexible checksums).
    pub digests: Digests,
}

impl Store {
    /// Prepares the root and its internal folders, and removes leftovers of a previous run.
    pub(crate) fn open(root: &Path) -> Result<Store, LocalStoreError> {
        let internal = root.join(INTERNAL_DIR);
        let tmp = internal.join("tmp");
        let meta = internal.join("meta");
        let uploads = internal.join("uploads");
        for dir in [root, &internal, &tmp, &meta, &uploads] {
            fs::create_dir_all(dir).map_err(|source| LocalStoreError::Root {
                path: dir.to_path_buf(),
                source,
            })?;
        }
        // Leftovers of a crashed run: temp files, and upload folders whose `upload.json` was
        // never written. Only old entries go, in case another process shares the root.
        let stale = |p: &Path| {
            fs::symlink_metadata(p)
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age > STALE_AFTER)
        };
        for (dir, only_incomplete) in [(&tmp, false), (&uploads, true)] {
            let Ok(entries) = fs::read_dir(dir) else {
                continue;
            };
            for e in entries.flatten() {
                let p = e.path();
                if !stale(&p) || (only_incomplete && p.join("upload.json").exists()) {
                    continue;
                }
                let _ = if p.is_dir() {
                    fs::remove_dir_all(&p)
                } else {
                    fs::remove_file(&p)
                };
            }
        }
        let stripes = || (0..LOCK_STRIPES).map(|_| Mutex::new(())).collect();
        Ok(Store {
            root: root.to_path_buf(),
            tmp,
            meta,
            uploads,
            key_locks: stripes(),
            upload_locks: stripes(),
        })
    }

    /// The storage root.
    pub(crate) fn root(&self) -> &Path {
        &self.root
    }

    /// The folder of a bucket (not checked for existence). Rejects names that break the S3
    /// rules, which also keeps every bucket path a direct child of the root.
    pub(crate) fn bucket_dir(&self, bucket: &str) -> S3Result<PathBuf> {
        if !s3s::path::check_bucket_name(bucket) {
            return Err(s3_error!(InvalidBucketName, "invalid bucket name"));
        }
        Ok(self.root.join(bucket))
    }

    /// The folder of an existing bucket, or `NoSuchBucket`.
    pub(crate) fn existing_bucket_dir_sync(&self, bucket: &str) -> S3Result<PathBuf> {
        let dir = self.bucket_dir(bucket)?;
        match fs::metadata(&dir) {
            Ok(m) if m.is_dir() => Ok(dir),
            Ok(_) => Err(no_such_bucket(bucket)),
            Err(e) if is_not_found(&e) => Err(no_such_bucket(bucket)),
            Err(e) => Err(io_error(e, "cannot read the bucket folder")),
        }
    }

    /// Locks a bucket + key: commits and deletes of one key run one at a time. Blocks, so it
    /// is only called on blocking threads (inside `spawn_blocking`), where a client that goes
    /// away cannot drop the guard while the work it protects still runs.
    ///
    /// Lock order: an upload lock may be held while taking a key lock, never the reverse, so
    /// the two stripe sets cannot deadlock.
    pub(crate) fn key_lock(&self, bucket: &str, key: &str) -> MutexGuard<'_, ()> {
        lock(stripe(&self.key_locks, bucket, key))
    }

    /// Locks a multipart upload id: part commits, completion and abort. Blocking, like
    /// [`Store::key_lock`].
    pub(crate) fn upload_lock(&self, upload_id: &str) -> MutexGuard<'_, ()> {
        lock(stripe(&self.upload_locks, "", upload_id))
    }

    /// A fresh, empty temp file path under `.localstore/tmp/`.
    pub(crate) fn temp_path(&self) -> io::Result<TempPath> {
        Ok(TempPath {
            path: self.tmp.join(format!("{}.tmp", random_hex_id()?)),
            armed: true,
        })
    }

    /// A new temp file, created (never an existing one) and open for writing; the path
    /// removes it when dropped unarmed.
    fn new_temp_file(&self) -> io::Result<(TempPath, fs::File)> {
        let temp = self.temp_path()?;
        let file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(temp.path())?;
        Ok((temp, file))
    }

    /// Streams a request body into a temp file, computing its MD5 and the digests of
    /// `hasher` on the way (each slice is hashed once, while it is in the CPU cache, and never
    /// read back). Nothing is visible to clients until the temp file is committed.
    pub(crate) async fn receive(
        &self,
        body: Option<StreamingBlob>,
        expected_len: Option<i64>,
        mut hasher: Hasher,
    ) -> S3Result<Received> {
        let temp = self
            .temp_path()
            .map_err(|e| io_error(e, "cannot create a temp file"))?;
        let file = tokio::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(temp.path())
            .await
            .map_err(|e| io_error(e, "cannot create a temp file"))?;
        let mut out = tokio::io::BufWriter::with_capacity(COPY_BUF, file);
        let mut md5 = Md5::new();
        let mut size: u64 = 0;
        if let Some(mut body) = body {
            while let Some(chunk) = body.next().await {
                let chunk: Bytes = chunk.map_err(body_error)?;
                size += chunk.len() as u64;
                // Slice by slice, so the bytes MD5 just read are still in the CPU cache when
                // they are copied out (an in-process client hands over whole 8 MiB parts).
                for slice in chunk.chunks(RECEIVE_SLICE) {
                    md5.update(slice);
                    hasher.update(slice);
                    out.write_all(slice)
                        .await
                        .map_err(|e| io_error(e, "cannot write the object data"))?;
                }
            }
        }
        out.flush()
            .await
            .map_err(|e| io_error(e, "cannot write the object data"))?;
        let file = out.into_inner();
        file.sync_all()
            .await
            .map_err(|e| io_error(e, "cannot write the object data"))?;
        drop(file);
        if let Some(expected) = expected_len
            && u64::try_from(expected).ok() != Some(size)
        {
            return Err(s3_error!(
                IncompleteBody,
                "the request body is shorter or longer than Content-Length"
            ));
        }
        Ok(Received {
            temp,
            size,
            md5: md5.finalize(),
            digests: hasher.finish(),
        })
    }

    fn meta_path(&self, bucket: &str, key: &str) -> PathBuf {
        let h = keys::hex(&Md5::checksum(key.as_bytes()));
        self.meta
            .join(bucket)
            .join(&h[..2])
            .join(format!("{h}.json"))
    }

    /// The sidecar of `key`, if there is one and it still describes the file `fmeta`.
    pub(crate) fn read_meta_sync(
        &self,
        bucket: &str,
        key: &str,
        fmeta: &fs::Metadata,
    ) -> Option<ObjectMeta> {
        let bytes = fs::read(self.meta_path(bucket, key)).ok()?;
        let meta: ObjectMeta = serde_json::from_slice(&bytes).ok()?;
        let (s, ns) = split_time(fmeta.modified().ok()?);
        (meta.key == key && meta.size == fmeta.len() && meta.mtime_s == s && meta.mtime_ns == ns)
            .then_some(meta)
    }

    pub(crate) fn write_meta_sync(&self, bucket: &str, meta: &ObjectMeta) -> S3Result<()> {
        let path = self.meta_path(bucket, &meta.key);
        let json = serde_json::to_vec(meta)
            .map_err(|e| internal(format!("cannot encode metadata: {e}")))?;
        self.write_small_file_sync(&path, &json)
            .map_err(|e| io_error(e, "cannot write object metadata"))
    }

    /// Removes the sidecar of `key` (best effort).
    pub(crate) fn remove_meta_sync(&self, bucket: &str, key: &str) {
        let _ = fs::remove_file(self.meta_path(bucket, key));
    }

    /// Removes every sidecar of a bucket (best effort).
    pub(crate) fn remove_bucket_meta_sync(&self, bucket: &str) {
        let _ = fs::remove_dir_all(self.meta.join(bucket));
    }

    /// Writes a small file atomically: temp file, fsync, rename. Creates parent folders.
    pub(crate) fn write_small_file_sync(&self, path: &Path, data: &[u8]) -> io::Result<()> {
        let (mut temp, mut f) = self.new_temp_file()?;
        f.write_all(data)?;
        f.sync_all()?;
        drop(f);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent)?;
        }
        fs::rename(temp.path(), path)?;
        temp.disarm();
        Ok(())
    }

    /// ETag and sidecar data for an object file.
    pub(crate) fn info_for_file_sync(
        &self,
        bucket: &str,
        key: &str,
        fmeta: &fs::Metadata,
    ) -> ObjectInfo {
        let mtime = fmeta.modified().unwrap_or(UNIX_EPOCH);
        match self.read_meta_sync(bucket, key, fmeta) {
            Some(m) => ObjectInfo {
                size: fmeta.len(),
                mtime,
                etag: m.etag,
                content_type: m.content_type,
                metadata: m.metadata,
                checksum: m.checksum,
                has_sidecar: true,
            },
            None => ObjectInfo {
                size: fmeta.len(),
                mtime,
                etag: synthetic_etag(fmeta.len(), mtime),
                content_type: None,
                metadata: BTreeMap::new(),
                checksum: None,
                has_sidecar: false,
            },
        }
    }

    /// Opens an object (file or folder marker) for reading. `NoSuchKey` when it is missing.
    pub(crate) fn open_object_sync(
        &self,
        bucket_dir: &Path,
        bucket: &str,
        key: &str,
    ) -> S3Result<Opened> {
        let pk = keys::parse_key(key).map_err(key_error)?;
        let path = pk.path_in(bucket_dir);
        let m = match fs::metadata(&path) {
            Ok(m) => m,
            Err(e) if is_not_found(&e) => return Err(no_such_key(key)),
            Err(e) => return Err(io_error(e, "cannot read the object")),
        };
        if pk.is_dir {
            if !m.is_dir() {
                return Err(no_such_key(key));
            }
            return Ok(Opened {
                info: ObjectInfo {
                    size: 0,
                    mtime: m.modified().unwrap_or(UNIX_EPOCH),
                    etag: EMPTY_MD5.to_owned(),
                    content_type: None,
                    metadata: BTreeMap::new(),
                    checksum: None,
                    has_sidecar: true,
                },
                file: None,
            });
        }
        if !m.is_file() {
            return Err(no_such_key(key));
        }
        let file = match fs::File::open(&path) {
            Ok(f) => f,
            Err(e) if is_not_found(&e) => return Err(no_such_key(key)),
            Err(e) => return Err(io_error(e, "cannot open the object")),
        };
        // Describe what was actually opened, not what was there a moment before.
        let m = file
            .metadata()
            .map_err(|e| io_error(e, "cannot read the object"))?;
        if !m.is_file() {
            return Err(no_such_key(key));
        }
        Ok(Opened {
            info: self.info_for_file_sync(bucket, key, &m),
            file: Some(file),
        })
    }

    /// Creates every folder in `segs` under `bucket_dir` (like `mkdir -p`). A file in the way
    /// is a name conflict, never replaced.
    fn ensure_dirs_sync(bucket_dir: &Path, segs: &[&str], key: &str) -> S3Result<()> {
        let mut p = bucket_dir.to_path_buf();
        for (i, s) in segs.iter().enumerate() {
            p.push(s);
            let conflict = || {
                name_conflict(format!(
                    "cannot store '{key}': '{}' is a file, so it cannot be a folder",
                    segs[..=i].join("/")
                ))
            };
            match fs::metadata(&p) {
                Ok(m) if m.is_dir() => {}
                Ok(_) => return Err(conflict()),
                Err(e) if e.kind() == io::ErrorKind::NotFound => match fs::create_dir(&p) {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                        if !p.is_dir() {
                            return Err(conflict());
                        }
                    }
                    Err(e) => return Err(io_error(e, "cannot create a folder")),
                },
                Err(e) if e.kind() == io::ErrorKind::NotADirectory => return Err(conflict()),
                Err(e) => return Err(io_error(e, "cannot create a folder")),
            }
        }
        Ok(())
    }

    /// `PutObject` of a folder marker: `mkdir -p`. Returns the folder's mtime.
    pub(crate) fn make_dir_marker_sync(
        &self,
        bucket_dir: &Path,
        pk: &ParsedKey<'_>,
        key: &str,
    ) -> S3Result<SystemTime> {
        Self::ensure_dirs_sync(bucket_dir, &pk.segments, key)?;
        let m = fs::metadata(pk.path_in(bucket_dir))
            .map_err(|e| io_error(e, "cannot read the folder"))?;
        Ok(m.modified().unwrap_or(UNIX_EPOCH))
    }

    /// Moves a finished temp file into place as object `key`, writing its sidecar first.
    /// Must be called with the lock of `bucket`/`key` held.
    pub(crate) fn commit_file_sync(
        &self,
        bucket_dir: &Path,
        bucket: &str,
        key: &str,
        temp: &mut TempPath,
        mut meta: ObjectMeta,
        pre: &Precondition,
    ) -> S3Result<ObjectMeta> {
        let pk = keys::parse_key(key).map_err(key_error)?;
        if pk.is_dir {
            return Err(internal("a folder key cannot receive file data"));
        }
        let n = pk.segments.len();
        Self::ensure_dirs_sync(bucket_dir, &pk.segments[..n.saturating_sub(1)], key)?;
        let dest = pk.path_in(bucket_dir);
        let existing = match fs::metadata(&dest) {
            Ok(m) if m.is_dir() => {
                return Err(name_conflict(format!(
                    "cannot store '{key}': a folder with that name exists"
                )));
            }
            Ok(m) => Some(m),
            Err(e) if is_not_found(&e) => None,
            Err(e) => return Err(io_error(e, "cannot read the destination")),
        };
        match (pre, &existing) {
            (Precondition::None, _) => {}
            (Precondition::IfNoneMatchAny, None) => {}
            (Precondition::IfNoneMatchAny, Some(_)) => {
                return Err(s3_error!(PreconditionFailed, "the object already exists"));
            }
            (Precondition::IfMatch(_), None) => return Err(no_such_key(key)),
            (Precondition::IfMatch(want), Some(m)) => {
                let current = self.info_for_file_sync(bucket, key, m);
                if want.as_deref().is_some_and(|w| w != current.etag) {
                    return Err(s3_error!(PreconditionFailed, "the ETag does not match"));
                }
            }
        }

        meta.key = key.to_owned();
        let tm = fs::metadata(temp.path()).map_err(|e| io_error(e, "cannot read the temp file"))?;
        set_meta_stat(&mut meta, &tm);
        self.write_meta_sync(bucket, &meta)?;

        match fs::rename(temp.path(), &dest) {
            Ok(()) => temp.disarm(),
            Err(e) if e.kind() == io::ErrorKind::CrossesDevices => {
                // The bucket folder is on another file system (e.g. a symlink to another disk):
                // copy next to the destination, then rename there.
                let parent = dest.parent().unwrap_or(bucket_dir);
                let mut staged = TempPath {
                    path: parent.join(format!(
                        "{RESERVED_PREFIX}-tmp-{}",
                        random_hex_id().map_err(|e| io_error(e, "random"))?
                    )),
                    armed: true,
                };
                copy_file_synced(temp.path(), staged.path())
                    .map_err(|e| io_error(e, "cannot copy into the bucket folder"))?;
                let sm = fs::metadata(staged.path())
                    .map_err(|e| io_error(e, "cannot read the temp file"))?;
                set_meta_stat(&mut meta, &sm);
                self.write_meta_sync(bucket, &meta)?;
                fs::rename(staged.path(), &dest).map_err(|e| rename_error(e, key))?;
                staged.disarm();
            }
            Err(e) => return Err(rename_error(e, key)),
        }
        if let Some(parent) = dest.parent() {
            // Best effort: the object is in place either way.
            let _ = sync_dir(parent);
        }
        Ok(meta)
    }

    /// Deletes object `key` (file or empty folder). Missing objects are not an error; a folder
    /// that still has children stays. Must be called with the lock of `bucket`/`key` held.
    pub(crate) fn delete_object_sync(
        &self,
        bucket_dir: &Path,
        bucket: &str,
        key: &str,
    ) -> S3Result<()> {
        let pk = keys::parse_key(key).map_err(key_error)?;
        let path = pk.path_in(bucket_dir);
        let m = match fs::metadata(&path) {
            Ok(m) => m,
            Err(e) if is_not_found(&e) => return Ok(()),
            Err(e) => return Err(io_error(e, "cannot read the object")),
        };
        if pk.is_dir {
            if !m.is_dir() {
                return Ok(());
            }
            match fs::remove_dir(&path) {
                Ok(()) => {}
                Err(e)
                    if is_not_found(&e)
                        || e.kind() == io::ErrorKind::DirectoryNotEmpty
                        || dir_not_empty_raw(&e) => {}
                Err(e) => return Err(io_error(e, "cannot remove the folder")),
            }
        } else {
            if !m.is_file() {
                return Ok(());
            }
            match fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if is_not_found(&e) => {}
                Err(e) => return Err(io_error(e, "cannot delete the file")),
            }
            self.remove_meta_sync(bucket, key);
        }
        Ok(())
    }

    /// Copies `len` bytes of `src` starting at `offset` into a new temp file (fsynced).
    /// With `md5`, the MD5 of the copied bytes is computed on the way, and so are the digests
    /// of `hasher`; with neither, no data passes through user space.
    pub(crate) fn copy_to_temp_sync(
        &self,
        src: &mut fs::File,
        offset: u64,
        len: u64,
        md5: bool,
        hasher: Hasher,
    ) -> S3Result<(TempPath, Option<[u8; 16]>, Digests)> {
        let err = |e| io_error(e, "cannot copy the object data");
        let (temp, mut out) = self.new_temp_file().map_err(err)?;
        src.seek(SeekFrom::Start(offset)).map_err(err)?;
        let mut limited = Read::take(&mut *src, len);
        let (digest, digests) = if md5 || !hasher.is_empty() {
            let mut md5 = md5.then(Md5::new);
            let mut hasher = hasher;
            copy_hashing(&mut limited, &mut out, |data| {
                if let Some(m) = md5.as_mut() {
                    m.update(data);
                }
                hasher.update(data);
            })
            .map_err(err)?;
            (md5.map(Md5::finalize), hasher.finish())
        } else {
            // On Linux this becomes copy_file_range: no data passes through user space.
            io::copy(&mut limited, &mut out).map_err(err)?;
            (None, Digests::default())
        };
        let written = out.stream_position().map_err(err)?;
        if written != len {
            return Err(internal(
                "the source object changed while it was being copied",
            ));
        }
        out.sync_all().map_err(err)?;
        Ok((temp, digest, digests))
    }

    /// A new, empty temp file (fsynced).
    pub(crate) fn empty_temp_sync(&self) -> S3Result<TempPath> {
        let err = |e| io_error(e, "cannot create a temp file");
        let (temp, f) = self.new_temp_file().map_err(err)?;
        f.sync_all().map_err(err)?;
        Ok(temp)
    }

    /// Appends the files `parts` into a new temp file (fsynced), in order, computing the
    /// digests of `hasher` over the whole when it has any (otherwise no data passes through
    /// user space).
    pub(crate) fn concat_to_temp_sync(
        &self,
        parts: &[PathBuf],
        mut hasher: Hasher,
    ) -> S3Result<(TempPath, Digests)> {
        let err = |e| io_error(e, "cannot assemble the multipart object");
        let (temp, mut out) = self.new_temp_file().map_err(err)?;
        for p in parts {
            let mut f = fs::File::open(p).map_err(err)?;
            if hasher.is_empty() {
                io::copy(&mut f, &mut out).map_err(err)?;
            } else {
                copy_hashing(&mut f, &mut out, |data| hasher.update(data)).map_err(err)?;
            }
        }
        out.sync_all().map_err(err)?;
        Ok((temp, hasher.finish()))
    }

    /// Moves a temp file to `dest` (same file system: inside `.localstore`).
    pub(crate) fn rename_temp_sync(temp: &mut TempPath, dest: &Path) -> io::Result<()> {
        fs::rename(temp.path(), dest)?;
        temp.disarm();
        Ok(())
    }

    /// Moves a folder under `.localstore/tmp/` and deletes it there, so it disappears from its
    /// old place atomically.
    pub(crate) fn remove_dir_atomically_sync(&self, dir: &Path) -> io::Result<()> {
        let grave = self.tmp.join(format!("{}.deleted", random_hex_id()?));
        fs::rename(dir, &grave)?;
        fs::remove_dir_all(&grave)
    }
}

/// The guarded data is `()`, so a panic while locked leaves nothing inconsistent: a poisoned
/// lock is simply taken over.
fn lock(m: &Mutex<()>) -> MutexGuard<'_, ()> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn stripe<'a>(locks: &'a [Mutex<()>], a: &str, b: &str) -> &'a Mutex<()> {
    // FNV-1a: stable, cheap, good enough to spread names over the stripes.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in a.bytes().chain([0]).chain(b.bytes()) {
        h ^= u64::from(byte);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    let n = locks.len() as u64;
    // `h % n` < `locks.len()`, so the index is always in range and the fallback unused.
    &locks[usize::try_from(h % n).unwrap_or(0)]
}

fn set_meta_stat(meta: &mut ObjectMeta, m: &fs::Metadata) {
    meta.size = m.len();
    let (s, ns) = split_time(m.modified().unwrap_or(UNIX_EPOCH));
    meta.mtime_s = s;
    meta.mtime_ns = ns;
}

/// Reads `file` from its start to its end, computing its MD5 (with `md5`) and the digests of
/// `hasher`. Writes nothing.
pub(crate) fn hash_file_sync(
    file: &mut fs::File,
    md5: bool,
    mut hasher: Hasher,
) -> S3Result<(Option<[u8; 16]>, Digests)> {
    let err = |e| io_error(e, "cannot read the object");
    file.seek(SeekFrom::Start(0)).map_err(err)?;
    let mut md5 = md5.then(Md5::new);
    copy_hashing(file, &mut io::sink(), |data| {
        if let Some(m) = md5.as_mut() {
            m.update(data);
        }
        hasher.update(data);
    })
    .map_err(err)?;
    Ok((md5.map(Md5::finalize), hasher.finish()))
}

/// Copies `from` to `to` through a buffer, handing every block to `hash` first.
fn copy_hashing(
    from: &mut impl Read,
    to: &mut impl Write,
    mut hash: impl FnMut(&[u8]),
) -> io::Result<()> {
    let mut buf = vec![0u8; COPY_BUF];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        hash(&buf[..n]);
        to.write_all(&buf[..n])?;
    }
}

fn copy_file_synced(from: &Path, to: &Path) -> io::Result<()> {
    let mut src = fs::File::open(from)?;
    let mut dst = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(to)?;
    io::copy(&mut src, &mut dst)?;
    dst.sync_all()
}

/// Splits a time into whole seconds since the epoch (negative before 1970) and nanoseconds.
pub(crate) fn split_time(t: SystemTime) -> (i64, u32) {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => (
            i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
            d.subsec_nanos(),
        ),
        Err(e) => {
            let d = e.duration();
            let secs = i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
            if d.subsec_nanos() == 0 {
                (-secs, 0)
            } else {
                (-secs - 1, 1_000_000_000 - d.subsec_nanos())
            }
        }
    }
}

/// Inverse of [`split_time`].
pub(crate) fn join_time(s: i64, ns: u32) -> SystemTime {
    if s >= 0 {
        UNIX_EPOCH + Duration::new(s.unsigned_abs(), ns)
    } else {
        UNIX_EPOCH - Duration::from_secs(s.unsigned_abs()) + Duration::from_nanos(u64::from(ns))
    }
}

/// A stable ETag for a file that has no sidecar (dropped in by hand): derived from size and
/// mtime, so it changes whenever the file does. It ends in `-0` so that no client takes it
/// for the file's MD5 (as a single-part upload's ETag is): it is not one.
pub(crate) fn synthetic_etag(size: u64, mtime: SystemTime) -> String {
    let (s, ns) = split_time(mtime);
    let h = keys::hex(&Md5::checksum(
        format!("localstore:{size}:{s}.{ns:09}").as_bytes(),
    ));
    format!("{h}-0")
}

/// The multipart ETag: MD5 of the concatenated binary part MD5s, then `-N`.
pub(crate) fn multipart_etag(part_etags: &[String]) -> String {
    let mut md5 = Md5::new();
    for e in part_etags {
        match keys::unhex(e) {
            Some(bytes) => md5.update(&bytes),
            None => md5.update(e.as_bytes()),
        }
    }
    format!("{}-{}", keys::hex(&md5.finalize()), part_etags.len())
}

// ---- error mapping -------------------------------------------------------------------------

pub(crate) fn is_not_found(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::NotFound | io::ErrorKind::NotADirectory | io::ErrorKind::InvalidFilename
    )
}

/// `ENOTEMPTY`/`EEXIST` from `rmdir` on platforms where Rust does not map it.
fn dir_not_empty_raw(e: &io::Error) -> bool {
    #[cfg(unix)]
    {
        // 39 ENOTEMPTY on Linux, 66 on macOS/BSD; some systems answer EEXIST (17).
        matches!(e.raw_os_error(), Some(39 | 66 | 17))
    }
    #[cfg(not(unix))]
    {
        // ERROR_DIR_NOT_EMPTY
        e.raw_os_error() == Some(145)
    }
}

pub(crate) fn no_such_bucket(bucket: &str) -> S3Error {
    S3Error::with_message(
        S3ErrorCode::NoSuchBucket,
        format!("the bucket '{bucket}' does not exist"),
    )
}

pub(crate) fn no_such_key(key: &str) -> S3Error {
    S3Error::with_message(
        S3ErrorCode::NoSuchKey,
        format!("the key '{key}' does not exist"),
    )
}

pub(crate) fn key_error(e: keys::KeyError) -> S3Error {
    match e {
        keys::KeyError::TooLong => {
            S3Error::with_message(S3ErrorCode::KeyTooLongError, e.to_string())
        }
        _ => S3Error::with_message(S3ErrorCode::InvalidArgument, e.to_string()),
    }
}

/// A file/folder name clash: `409 Conflict`, code `ObjectNameConflict`.
pub(crate) fn name_conflict(msg: String) -> S3Error {
    let mut e = S3Error::with_message(S3ErrorCode::Custom("ObjectNameConflict".into()), msg);
    e.set_status_code(http_status(409));
    e
}

pub(crate) fn internal(msg: impl Into<String>) -> S3Error {
    S3Error::with_message(S3ErrorCode::InternalError, msg.into())
}

fn http_status(code: u16) -> http::StatusCode {
    http::StatusCode::from_u16(code).unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR)
}

fn rename_error(e: io::Error, key: &str) -> S3Error {
    if e.kind() == io::ErrorKind::IsADirectory || e.kind() == io::ErrorKind::DirectoryNotEmpty {
        return name_conflict(format!(
            "cannot store '{key}': a folder with that name exists"
        ));
    }
    io_error(e, "cannot move the object into place")
}

/// Maps a file system error to an S3 error. The message says what failed and why, without
/// paths.
pub(crate) fn io_error(e: io::Error, what: &str) -> S3Error {
    use io::ErrorKind as K;
    let (code, status) = match e.kind() {
        K::PermissionDenied | K::ReadOnlyFilesystem => (S3ErrorCode::AccessDenied, None),
        K::InvalidFilename => (S3ErrorCode::InvalidArgument, None),
        K::StorageFull | K::QuotaExceeded | K::FileTooLarge => {
            (S3ErrorCode::Custom("InsufficientStorage".into()), Some(507))
        }
        _ => (S3ErrorCode::InternalError, None),
    };
    let mut err = S3Error::with_message(code, format!("{what}: {e}"));
    if let Some(s) = status {
        err.set_status_code(http_status(s));
    }
    err.set_source(Box::new(e));
    err
}

/// Turns a failed request body stream into an S3 error (keeps s3s's own errors, such as a
/// payload signature mismatch).
fn body_error(e: s3s::StdError) -> S3Error {
    match e.downcast::<S3Error>() {
        Ok(s3) => *s3,
        Err(other) => S3Error::with_message(
            S3ErrorCode::IncompleteBody,
            format!("the request body could not be read completely: {other}"),
        ),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn time_round_trip() {
        for t in [
            UNIX_EPOCH,
            UNIX_EPOCH + Duration::new(1_700_000_000, 123_456_789),
            UNIX_EPOCH - Duration::new(5, 250),
            UNIX_EPOCH - Duration::from_secs(7),
        ] {
            let (s, ns) = split_time(t);
            assert!(ns < 1_000_000_000);
            assert_eq!(join_time(s, ns), t);
        }
    }

    #[test]
    fn etags() {
        // Three identical parts of "a": md5("a") = 0cc175b9c0f1b6a831c399e269772661.
        let p = "0cc175b9c0f1b6a831c399e269772661".to_owned();
        let e = multipart_etag(&[p.clone(), p.clone(), p]);
        assert!(e.ends_with("-3"), "{e}");
        assert_eq!(e.len(), 32 + 2);
        let t = UNIX_EPOCH + Duration::new(1_700_000_000, 1);
        assert_eq!(synthetic_etag(10, t), synthetic_etag(10, t));
        assert_ne!(synthetic_etag(10, t), synthetic_etag(11, t));
        assert_ne!(
            synthetic_etag(10, t),
            synthetic_etag(10, t + Duration::from_nanos(1))
        );
        assert_eq!(keys::hex(&Md5::checksum(b"")), EMPTY_MD5);
    }
}
