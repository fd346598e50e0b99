//! The libunftp storage backend over one S3 bucket per session.
//!
//! Folders are key prefixes: a `name/` marker object and an implicit prefix are both folders.
//! A folder's own marker never shows in its listing; MKD writes a marker; deleting the last
//! file of a folder writes the marker so the folder stays, as on a disk. Renames are done in
//! the store (CopyObject, or UploadPartCopy above the provider's copy limit) then the source
//! is deleted; a folder rename moves every key under its prefix.

pub mod download;
pub mod listing;
pub mod multipart;
pub mod parts;
pub mod upload;

use std::fmt::Debug;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use aws_sdk_s3::Client;
use aws_sdk_s3::types::{Delete, ObjectIdentifier};
use futures::stream::{self, StreamExt, TryStreamExt};
use tokio::io::AsyncRead;
use tokio::sync::Semaphore;
use unftp_core::auth::UserDetail;
use unftp_core::storage::{self as ftp, Fileinfo, Metadata, StorageBackend};

use crate::auth::Connection;
use crate::error::Failure;
use crate::events::{Direction, EventBus, TransferTracker};
use crate::path::{BucketPath, rebase_key};
use crate::s3::error::{ClassifyExt, classify};
use listing::{Entry, FolderListing, ListedObject};
use upload::{TransferLimits, Upload, copy_source};

/// A logged-in FTP user: the session's S3 client and bucket.
#[derive(Clone)]
pub struct S3User {
    /// The login name, `ACCESS_KEY_ID/bucket` (no secret).
    pub name: String,
    /// The bucket this session works in.
    pub bucket: String,
    /// A client signed with this user's credential.
    pub client: Client,
    /// Largest single CopyObject for this user's provider.
    pub max_copy_object: u64,
    /// True when the user's store needs parts of one size (uploads keep fixed parts).
    pub equal_parts: bool,
    /// The user's `/` inside the bucket (the bucket's root for `ACCESS_KEY_ID/bucket`
    /// logins, a home folder for team users).
    pub home: BucketPath,
    /// What this login may do.
    pub rights: crate::users::Rights,
}

// Short on purpose: libunftp logs the user at debug level, and the client's own Debug output
// is kilobytes long.
impl Debug for S3User {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3User")
            .field("name", &self.name)
            .field("bucket", &self.bucket)
            .field("home", &self.home.prefix())
            .field("rights", &self.rights.letters())
            .finish_non_exhaustive()
    }
}

impl std::fmt::Display for S3User {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name)
    }
}

impl UserDetail for S3User {}

/// What every session's backend shares: limits, memory permits, events.
#[derive(Debug, Clone)]
pub struct Shared {
    /// Part size and parallelism.
    pub limits: TransferLimits,
    /// Global part-buffer memory, in KiB permits.
    pub memory: Arc<Semaphore>,
    /// What sessions may change.
    pub permissions: Permissions,
    /// Where transfer events go.
    pub events: EventBus,
    /// An upload with no data for this long is cancelled.
    pub transfer_timeout: Duration,
    /// Uploads that grow past this many bytes are refused (552) and not stored.
    pub max_file_size: Option<u64>,
}

/// What FTP users may change in their buckets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Permissions {
    /// No uploads, deletes, renames or new folders.
    pub read_only: bool,
    /// DELE and RMD allowed.
    pub allow_delete: bool,
}

impl Default for Permissions {
    fn default() -> Self {
        Self {
            read_only: false,
            allow_delete: true,
        }
    }
}

impl Permissions {
    /// `Err` unless both the server and the login allow writing.
    fn write_by(&self, u: &S3User) -> Res<()> {
        self.write()?;
        u.rights.check_write()
    }

    /// `Err` unless both the server and the login allow deleting.
    fn delete_by(&self, u: &S3User) -> Res<()> {
        self.delete()?;
        u.rights.check_delete()
    }

    /// `Err` when writing is off.
    fn write(&self) -> Res<()> {
        if self.read_only {
            return Err(Failure::NotAllowed(
                "the server is in read-only mode".into(),
            ));
        }
        Ok(())
    }

    /// `Err` when deleting is off.
    fn delete(&self) -> Res<()> {
        self.write()?;
        if !self.allow_delete {
            return Err(Failure::NotAllowed(
                "deleting is turned off on this server".into(),
            ));
        }
        Ok(())
    }
}

/// One session's view of the bucket. libunftp creates one per control connection.
#[derive(Clone)]
pub struct S3Backend {
    shared: Arc<Shared>,
    conn: Connection,
    /// The key whose HEAD last failed for a reason other than "not found". libunftp's APPE
    /// treats any metadata error as "offset 0", which would overwrite the file: the next
    /// upload to that key is refused instead.
    unreadable: Arc<Mutex<Option<String>>>,
}

impl Debug for S3Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Backend")
            .field("session", &self.conn.session)
            .finish()
    }
}

/// File or folder facts for MLSD, MLST, SIZE and MDTM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectMeta {
    len: u64,
    dir: bool,
    modified: Option<SystemTime>,
}

impl ObjectMeta {
    fn folder(modified: Option<SystemTime>) -> Self {
        Self {
            len: 0,
            dir: true,
            modified,
        }
    }
}

impl Metadata for ObjectMeta {
    fn len(&self) -> u64 {
        self.len
    }
    fn is_dir(&self) -> bool {
        self.dir
    }
    fn is_file(&self) -> bool {
        !self.dir
    }
    fn is_symlink(&self) -> bool {
        false
    }
    fn modified(&self) -> ftp::Result<SystemTime> {
        self.modified
            .ok_or_else(|| ftp::Error::from(ftp::ErrorKind::PermanentFileNotAvailable))
    }
    fn gid(&self) -> u32 {
        0
    }
    fn uid(&self) -> u32 {
        0
    }
    fn permissions(&self) -> ftp::Permissions {
        ftp::Permissions(if self.dir { 0o755 } else { 0o644 })
    }
}

fn to_system_time(t: Option<&aws_sdk_s3::primitives::DateTime>) -> Option<SystemTime> {
    t.and_then(|d| SystemTime::try_from(*d).ok())
}

type Res<T> = Result<T, Failure>;

/// Keys deleted per DeleteObjects call (the S3 maximum).
const DELETE_BATCH: usize = 1000;
/// Copies running at once during a folder rename.
const RENAME_PARALLEL: usize = 8;

impl S3Backend {
    /// A backend for one session.
    pub fn new(shared: Arc<Shared>, conn: Connection) -> Self {
        Self {
            shared,
            conn,
            unreadable: Arc::new(Mutex::new(None)),
        }
    }

    /// Turns a failure into libunftp's error, leaving the reason with the relay, which puts
    /// it in front of the error reply libunftp then sends (`550-why` / `550 …`).
    fn refuse(&self, f: Failure) -> ftp::Error {
        self.conn.tap.explain(&f.to_string());
        f.into()
    }

    fn remember_unreadable(&self, key: Option<String>) {
        if let Ok(mut g) = self.unreadable.lock() {
            *g = key;
        }
    }

    fn was_unreadable(&self, key: &str) -> bool {
        self.unreadable
            .lock()
            .map(|mut g| g.take().is_some_and(|k| k == key))
            .unwrap_or(false)
    }

    async fn head_file(&self, u: &S3User, key: &str) -> Res<Option<ObjectMeta>> {
        if key.is_empty() {
            return Ok(None);
        }
        match u
            .client
            .head_object()
            .bucket(&u.bucket)
            .key(key)
            .send()
            .await
        {
            Ok(h) => Ok(Some(ObjectMeta {
                len: h.content_length().unwrap_or(0).max(0) as u64,
                dir: false,
                modified: to_system_time(h.last_modified()),
            })),
            Err(e) => match classify(&e) {
                Failure::NotFound => Ok(None),
                other => Err(other),
            },
        }
    }

    /// Whether anything lives under `prefix`, and the marker's time when the marker is the
    /// first key.
    async fn folder_probe(&self, u: &S3User, prefix: &str) -> Res<Option<ObjectMeta>> {
        if prefix.is_empty() {
            return Ok(Some(ObjectMeta::folder(None)));
        }
        let out = u
            .client
            .list_objects_v2()
            .bucket(&u.bucket)
            .prefix(prefix)
            .max_keys(1)
            .send()
            .await
            .classified()?;
        let first = out.contents().first();
        if first.is_none() && out.common_prefixes().is_empty() {
            return Ok(None);
        }
        let modified = first
            .filter(|o| o.key() == Some(prefix))
            .and_then(|o| to_system_time(o.last_modified()));
        Ok(Some(ObjectMeta::folder(modified)))
    }

    async fn stat(&self, u: &S3User, p: &BucketPath) -> Res<ObjectMeta> {
        if p.is_root() {
            return Ok(ObjectMeta::folder(None));
        }
        if let Some(m) = self.head_file(u, &p.key()).await? {
            return Ok(m);
        }
        self.folder_probe(u, &p.prefix())
            .await?
            .ok_or(Failure::NotFound)
    }

    /// Lists every key under `prefix` (no delimiter), paged.
    async fn all_keys(&self, u: &S3User, prefix: &str) -> Res<Vec<ListedObject>> {
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let page = u
                .client
                .list_objects_v2()
                .bucket(&u.bucket)
                .prefix(prefix)
                .set_continuation_token(token.take())
                .send()
                .await
                .classified()?;
            for o in page.contents() {
                if let Some(k) = o.key() {
                    out.push(ListedObject {
                        key: k.to_owned(),
                        size: o.size().unwrap_or(0).max(0) as u64,
                        modified: None,
                    });
                }
            }
            match page.next_continuation_token() {
                Some(t) if page.is_truncated() == Some(true) => token = Some(t.to_owned()),
                _ => break,
            }
        }
        Ok(out)
    }

    async fn list_folder(&self, u: &S3User, p: &BucketPath) -> Res<Vec<Entry>> {
        let prefix = p.prefix();
        let mut listing = FolderListing::default();
        let mut token: Option<String> = None;
        loop {
            let page = u
                .client
                .list_objects_v2()
                .bucket(&u.bucket)
                .prefix(&prefix)
                .delimiter("/")
                .set_continuation_token(token.take())
                .send()
                .await
                .classified()?;
            let objects: Vec<ListedObject> = page
                .contents()
                .iter()
                .filter_map(|o| {
                    Some(ListedObject {
                        key: o.key()?.to_owned(),
                        size: o.size().unwrap_or(0).max(0) as u64,
                        modified: to_system_time(o.last_modified()),
                    })
                })
                .collect();
            let common: Vec<String> = page
                .common_prefixes()
                .iter()
                .filter_map(|c| c.prefix().map(str::to_owned))
                .collect();
            listing.add_page(&prefix, &objects, &common);
            match page.next_continuation_token() {
                Some(t) if page.is_truncated() == Some(true) => token = Some(t.to_owned()),
                _ => break,
            }
        }
        if !listing.exists && !p.is_root() {
            // LIST of a file shows that file, as on a disk.
            if let Some(m) = self.head_file(u, &p.key()).await? {
                return Ok(vec![Entry {
                    name: p.name().unwrap_or_default().to_owned(),
                    is_dir: false,
                    size: m.len,
                    modified: m.modified,
                }]);
            }
            return Err(Failure::NoSuchFolder);
        }
        Ok(listing.into_entries(SystemTime::now()))
    }

    async fn put_marker(&self, u: &S3User, prefix: &str) -> Res<()> {
        u.client
            .put_object()
            .bucket(&u.bucket)
            .key(prefix)
            .content_length(0)
            .body(aws_sdk_s3::primitives::ByteStream::from_static(b""))
            .send()
            .await
            .classified()?;
        Ok(())
    }

    /// Keeps `folder` visible after its last key went away, as a disk would.
    async fn keep_folder(&self, u: &S3User, folder: &BucketPath) -> Res<()> {
        if folder.is_root() {
            return Ok(());
        }
        if self.folder_probe(u, &folder.prefix()).await?.is_none() {
            self.put_marker(u, &folder.prefix()).await?;
        }
        Ok(())
    }

    async fn delete_key(&self, u: &S3User, key: &str) -> Res<()> {
        u.client
            .delete_object()
            .bucket(&u.bucket)
            .key(key)
            .send()
            .await
            .classified()?;
        Ok(())
    }

    /// Deletes keys in batches; falls back to one DeleteObject per key where a store rejects
    /// DeleteObjects (some reject its checksum header).
    async fn delete_keys(&self, u: &S3User, keys: &[String]) -> Res<()> {
        for chunk in keys.chunks(DELETE_BATCH) {
            let ids: Vec<ObjectIdentifier> = chunk
                .iter()
                .filter_map(|k| ObjectIdentifier::builder().key(k).build().ok())
                .collect();
            let delete = Delete::builder()
                .set_objects(Some(ids))
                .quiet(true)
                .build()
                .map_err(|e| Failure::Other(e.to_string()))?;
            let batch = u
                .client
                .delete_objects()
                .bucket(&u.bucket)
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
                        self.delete_key(u, &k).await?;
                    }
                }
                Err(e) => {
                    tracing::debug!(error = %classify(&e), "DeleteObjects refused; deleting one by one");
                    stream::iter(chunk.iter().map(Ok::<_, Failure>))
                        .try_for_each_concurrent(RENAME_PARALLEL, |k| self.delete_key(u, k))
                        .await?;
                }
            }
        }
        Ok(())
    }

    /// Server-side copy of one object, multipart above the provider's CopyObject limit.
    async fn copy_object(&self, u: &S3User, from: &str, to: &str, size: u64) -> Res<()> {
        let source = copy_source(&u.bucket, from);
        if size <= u.max_copy_object {
            u.client
                .copy_object()
                .bucket(&u.bucket)
                .key(to)
                .copy_source(&source)
                .send()
                .await
                .classified()?;
            return Ok(());
        }
        multipart::copy_object(
            &u.client,
            &u.bucket,
            from,
            to,
            size,
            self.shared.limits.part_size() as u64,
            self.shared.limits.parts_in_flight(),
        )
        .await
    }

    async fn copy_rebased(
        &self,
        u: &S3User,
        o: &ListedObject,
        from: &str,
        to: &str,
    ) -> Res<String> {
        let dest = rebase_key(&o.key, from, to)
            .ok_or_else(|| Failure::Other("listing returned a foreign key".into()))?;
        self.copy_object(u, &o.key, &dest, o.size).await?;
        Ok(dest)
    }

    async fn rename_paths(&self, u: &S3User, from: &BucketPath, to: &BucketPath) -> Res<()> {
        self.shared.permissions.write_by(u)?;
        if from.is_root() || to.is_root() {
            return Err(Failure::AccessDenied);
        }
        if from == to {
            return Ok(());
        }
        if let Some(file) = self.head_file(u, &from.key()).await? {
            if self.folder_probe(u, &to.prefix()).await?.is_some() {
                return Err(Failure::AlreadyExists(format!(
                    "a folder named {}",
                    to.display()
                )));
            }
            self.copy_object(u, &from.key(), &to.key(), file.len)
                .await?;
            self.delete_key(u, &from.key()).await?;
            return self.keep_folder(u, &from.parent()).await;
        }
        // A folder.
        let keys = self.all_keys(u, &from.prefix()).await?;
        if keys.is_empty() {
            return Err(Failure::NotFound);
        }
        if to.starts_with(from) {
            return Err(Failure::WrongType(
                "cannot move a folder into itself".into(),
            ));
        }
        if self.folder_probe(u, &to.prefix()).await?.is_some() {
            return Err(Failure::AlreadyExists(format!(
                "a folder named {}",
                to.display()
            )));
        }
        if self.head_file(u, &to.key()).await?.is_some() {
            return Err(Failure::AlreadyExists(format!(
                "a file named {}",
                to.display()
            )));
        }
        let (from_prefix, to_prefix) = (from.prefix(), to.prefix());
        let jobs: Vec<_> = keys
            .iter()
            .map(|o| self.copy_rebased(u, o, &from_prefix, &to_prefix))
            .collect();
        let copied: Vec<Res<String>> = stream::iter(jobs)
            .buffer_unordered(RENAME_PARALLEL)
            .collect()
            .await;
        let mut done = Vec::new();
        let mut first_err = None;
        for r in copied {
            match r {
                Ok(k) => done.push(k),
                Err(f) => {
                    first_err.get_or_insert(f);
                }
            }
        }
        if let Some(f) = first_err {
            // Leave the source whole: remove the partial copy.
            let _ = self.delete_keys(u, &done).await;
            return Err(f);
        }
        let sources: Vec<String> = keys.into_iter().map(|o| o.key).collect();
        self.delete_keys(u, &sources).await?;
        self.keep_folder(u, &from.parent()).await
    }
}

impl S3Backend {
    async fn open_download(
        &self,
        u: &S3User,
        path: &Path,
        start_pos: u64,
        fetch: download::Fetch,
    ) -> ftp::Result<download::Download> {
        let p = parse(u, path)?;
        if let Err(f) = u.rights.check_read() {
            return Err(self.refuse(f));
        }
        download::open(
            &self.shared.events,
            self.conn.session,
            u,
            &p,
            start_pos,
            &self.conn.tap,
            (fetch, &self.shared.memory),
        )
        .await
        .map_err(|f| self.refuse(f))
    }

    async fn delete_file(&self, u: &S3User, p: &BucketPath) -> Res<()> {
        self.shared.permissions.delete_by(u)?;
        if p.is_root() {
            return Err(Failure::WrongType("the root folder is not a file".into()));
        }
        if self.head_file(u, &p.key()).await?.is_none() {
            if self.folder_probe(u, &p.prefix()).await?.is_some() {
                return Err(Failure::WrongType(format!(
                    "{} is a folder; use RMD",
                    p.display()
                )));
            }
            return Err(Failure::NotFound);
        }
        self.delete_key(u, &p.key()).await?;
        self.keep_folder(u, &p.parent()).await
    }

    async fn make_folder(&self, u: &S3User, p: &BucketPath) -> Res<()> {
        self.shared.permissions.write_by(u)?;
        if p.is_root() {
            return Err(Failure::AlreadyExists("the root folder".into()));
        }
        if self.folder_probe(u, &p.prefix()).await?.is_some() {
            return Err(Failure::AlreadyExists(format!("folder {}", p.display())));
        }
        if self.head_file(u, &p.key()).await?.is_some() {
            return Err(Failure::AlreadyExists(format!(
                "a file named {}",
                p.display()
            )));
        }
        self.put_marker(u, &p.prefix()).await
    }

    async fn remove_folder(&self, u: &S3User, p: &BucketPath) -> Res<()> {
        self.shared.permissions.delete_by(u)?;
        if p.is_root() {
            return Err(Failure::AccessDenied);
        }
        let prefix = p.prefix();
        let out = u
            .client
            .list_objects_v2()
            .bucket(&u.bucket)
            .prefix(&prefix)
            .max_keys(2)
            .send()
            .await
            .classified()?;
        let keys: Vec<&str> = out.contents().iter().filter_map(|o| o.key()).collect();
        if keys.iter().any(|k| *k != prefix) {
            return Err(Failure::NotEmpty);
        }
        if keys.is_empty() {
            return Err(Failure::NoSuchFolder);
        }
        self.delete_key(u, &prefix).await
    }
}

/// The bucket location of an FTP path for user `u`: normalised, then placed in the user's
/// home folder.
fn parse(u: &S3User, path: &Path) -> Res<BucketPath> {
    Ok(BucketPath::parse(path)?.within(&u.home)?)
}

#[async_trait]
impl StorageBackend<S3User> for S3Backend {
    type Metadata = ObjectMeta;

    fn supported_features(&self) -> u32 {
        ftp::FEATURE_RESTART
    }

    async fn metadata<P: AsRef<Path> + Send + Debug>(
        &self,
        u: &S3User,
        path: P,
    ) -> ftp::Result<ObjectMeta> {
        let p = parse(u, path.as_ref())?;
        match self.stat(u, &p).await {
            Ok(m) => {
                self.remember_unreadable(None);
                Ok(m)
            }
            Err(Failure::NotFound) => {
                self.remember_unreadable(None);
                Err(Failure::NotFound.into())
            }
            Err(f) => {
                self.remember_unreadable(Some(p.key()));
                Err(f.into())
            }
        }
    }

    async fn list<P: AsRef<Path> + Send + Debug>(
        &self,
        u: &S3User,
        path: P,
    ) -> ftp::Result<Vec<Fileinfo<PathBuf, ObjectMeta>>> {
        let p = parse(u, path.as_ref())?;
        if let Err(f) = u.rights.check_read() {
            return Err(self.refuse(f));
        }
        let entries = match self.list_folder(u, &p).await {
            Ok(e) => e,
            Err(f) => return Err(self.refuse(f)),
        };
        // MLSD lines show `modify` only when the client selected it (`OPTS MLST`); libunftp
        // leaves the fact out when the time is unknown. LIST always shows the time.
        let tap = &self.conn.tap;
        let show_modify =
            !tap.listing_is_mlsd() || tap.facts().contains(crate::relay::wire::Facts::MODIFY);
        Ok(entries
            .into_iter()
            .map(|e| Fileinfo {
                path: PathBuf::from(e.name),
                metadata: ObjectMeta {
                    len: e.size,
                    dir: e.is_dir,
                    modified: e.modified.filter(|_| show_modify),
                },
            })
            .collect())
    }

    async fn get<P: AsRef<Path> + Send + Debug>(
        &self,
        u: &S3User,
        path: P,
        start_pos: u64,
    ) -> ftp::Result<Box<dyn AsyncRead + Send + Sync + Unpin>> {
        let download = self
            .open_download(u, path.as_ref(), start_pos, download::Fetch::Whole)
            .await?;
        Ok(download.into_reader())
    }

    // RETR: ranged GETs in parallel, written to the data connection without a copy.
    async fn get_into<'a, P, W: ?Sized>(
        &self,
        u: &S3User,
        path: P,
        start_pos: u64,
        output: &'a mut W,
    ) -> ftp::Result<u64>
    where
        W: tokio::io::AsyncWrite + Unpin + Sync + Send,
        P: AsRef<Path> + Send + Debug,
    {
        let download = self
            .open_download(u, path.as_ref(), start_pos, download::Fetch::Split)
            .await?;
        download.copy_to(output).await.map_err(|f| self.refuse(f))
    }

    async fn put<P: AsRef<Path> + Send + Debug, R: AsyncRead + Send + Sync + Unpin + 'static>(
        &self,
        u: &S3User,
        input: R,
        path: P,
        start_pos: u64,
    ) -> ftp::Result<u64> {
        let p = parse(u, path.as_ref())?;
        if p.is_root() {
            let f = Failure::WrongType("cannot upload onto the bucket's root folder".into());
            return Err(self.refuse(f));
        }
        if let Err(f) = self.shared.permissions.write_by(u) {
            return Err(self.refuse(f));
        }
        let key = p.key();
        if start_pos == 0 && self.was_unreadable(&key) {
            let f = Failure::Transient(
                "could not read the existing file, so it was not overwritten; try again".into(),
            );
            return Err(self.refuse(f));
        }
        let mut tracker = TransferTracker::start(
            &self.shared.events,
            self.conn.session,
            Direction::Upload,
            p.display(),
            None,
            self.conn.tap.data_tls(),
        )
        .mirrored(self.conn.tap.transfer_counter());
        let result = Upload {
            client: &u.client,
            bucket: &u.bucket,
            key: &key,
            limits: self.shared.limits,
            equal_parts: u.equal_parts,
            memory: self.shared.memory.clone(),
            tracker: &mut tracker,
            gate: self.conn.tap.as_ref(),
            idle_timeout: self.shared.transfer_timeout,
            max_file_size: self.shared.max_file_size,
        }
        .run(input, start_pos)
        .await;
        match result {
            Ok(n) => {
                tracker.finish();
                Ok(n)
            }
            Err(f) => {
                tracing::info!(path = %p.display(), reason = %f, "upload not stored");
                tracker.fail(f.to_string());
                Err(self.refuse(f))
            }
        }
    }

    async fn del<P: AsRef<Path> + Send + Debug>(&self, u: &S3User, path: P) -> ftp::Result<()> {
        let p = parse(u, path.as_ref())?;
        self.delete_file(u, &p).await.map_err(|f| self.refuse(f))
    }

    async fn mkd<P: AsRef<Path> + Send + Debug>(&self, u: &S3User, path: P) -> ftp::Result<()> {
        let p = parse(u, path.as_ref())?;
        self.make_folder(u, &p).await.map_err(|f| self.refuse(f))
    }

    async fn rename<P: AsRef<Path> + Send + Debug>(
        &self,
        u: &S3User,
        from: P,
        to: P,
    ) -> ftp::Result<()> {
        let (f, t) = (parse(u, from.as_ref())?, parse(u, to.as_ref())?);
        self.rename_paths(u, &f, &t)
            .await
            .map_err(|f| self.refuse(f))
    }

    async fn rmd<P: AsRef<Path> + Send + Debug>(&self, u: &S3User, path: P) -> ftp::Result<()> {
        let p = parse(u, path.as_ref())?;
        self.remove_folder(u, &p).await.map_err(|f| self.refuse(f))
    }

    async fn cwd<P: AsRef<Path> + Send + Debug>(&self, u: &S3User, path: P) -> ftp::Result<()> {
        let p = parse(u, path.as_ref())?;
        if p.is_root() {
            // The user's root always exists, even before a home folder holds anything.
            return Ok(());
        }
        match self.folder_probe(u, &p.prefix()).await {
            Ok(Some(_)) => Ok(()),
            Ok(None) => Err(self.refuse(Failure::NoSuchFolder)),
            Err(f) => Err(self.refuse(f)),
        }
    }
}
