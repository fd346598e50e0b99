//! The libunftp adapter: `StorageBackend<S3User>` for [`S3Backend`]. Each command parses
//! its path into the user's home, checks the permissions, calls the bucket client, the
//! folder operations, the upload or the download, and turns a [`Failure`] into libunftp's
//! error, leaving the reason in the control tap for the relay to show (`550-why`). Every
//! change (DELE, RMD, MKD, RNFR/RNTO), done or refused, is reported as an
//! [`Event::Changed`] (the audit log's line).

use std::fmt::{self, Debug};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use async_trait::async_trait;
use tokio::io::AsyncRead;
use unftp_core::storage::{self as ftp, Fileinfo, StorageBackend};

use super::bucket::Bucket;
use super::listing::{Entry, FolderListing};
use super::upload::{CommitGate, Upload};
use super::{ObjectMeta, Res, Shared, download, folders};
use crate::error::Failure;
use crate::ftp::control_tap::ControlTap;
use crate::ftp::session::{Connection, S3User};
use crate::ftp::text::Facts;
use crate::ops::events::{ChangeKind, Direction, Event, TransferTracker};
use crate::path::BucketPath;

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
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Backend")
            .field("session", &self.conn.session)
            .finish()
    }
}

/// The bucket location of an FTP path for user `u`: normalised, then placed in the user's
/// home folder.
fn parse(u: &S3User, path: &Path) -> Res<BucketPath> {
    Ok(BucketPath::parse(path)?.within(&u.home)?)
}

/// A change to report: which command, on what.
struct Change {
    kind: ChangeKind,
    target: Target,
}

/// What a change was made on, as paths the events show.
enum Target {
    /// DELE, RMD, MKD.
    Path(String),
    /// RNFR/RNTO: from, to.
    Rename(String, String),
}

/// A path that could not be parsed, as an event shows it: one line, cut.
fn as_given(path: &Path) -> String {
    crate::ftp::text::shorten(&path.to_string_lossy(), crate::ftp::text::LOGGED_CHARS)
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
        u.rights.check_read().map_err(|f| self.refuse(f))?;
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

    /// The backend of the session that arrived on `conn`, sharing `shared` with all others.
    pub fn new(shared: Arc<Shared>, conn: Connection) -> Self {
        Self {
            shared,
            conn,
            unreadable: Arc::new(Mutex::new(None)),
        }
    }

    fn bucket<'a>(&self, u: &'a S3User) -> Bucket<'a> {
        Bucket::new(u, self.shared.limits)
    }

    /// Turns a failure into libunftp's error, leaving the reason with the relay, which puts
    /// it in front of the error reply libunftp then sends (`550-why` / `550 …`).
    ///
    /// A failure that keeps an underlying error (the connector's, an io error) logs the whole
    /// chain at debug level; the client reads only the failure's words.
    fn refuse(&self, f: Failure) -> ftp::Error {
        if f.has_cause() {
            tracing::debug!(session = self.conn.session, error = %crate::error::chain(&f), "storage failure");
        }
        self.conn.tap.explain(&f.to_string());
        f.into()
    }

    /// Runs the change `op` when the permission check `allowed` passed, and reports it; a
    /// failure of either becomes libunftp's error through [`refuse`](Self::refuse).
    async fn checked(
        &self,
        change: Change,
        allowed: Res<()>,
        op: impl Future<Output = Res<()>>,
    ) -> ftp::Result<()> {
        let done = match allowed {
            Ok(()) => op.await,
            Err(f) => Err(f),
        };
        self.report(change, done.as_ref().err());
        done.map_err(|f| self.refuse(f))
    }

    /// Reports a change and its failure, if any, to the event stream.
    fn report(&self, change: Change, failure: Option<&Failure>) {
        let (path, from, to) = match change.target {
            Target::Path(p) => (Some(p), None, None),
            Target::Rename(from, to) => (None, Some(from), Some(to)),
        };
        self.shared.events.send(Event::Changed {
            session: self.conn.session,
            kind: change.kind,
            path,
            from,
            to,
            command: None,
            failure: failure.map(ToString::to_string),
        });
    }

    /// Parses the path of a change; a path that cannot be parsed is reported as it came.
    fn parse_change(&self, u: &S3User, kind: ChangeKind, path: &Path) -> ftp::Result<BucketPath> {
        parse(u, path).map_err(|f| {
            self.report(
                Change {
                    kind,
                    target: Target::Path(as_given(path)),
                },
                Some(&f),
            );
            f.into()
        })
    }

    fn remember_unreadable(&self, key: Option<String>) {
        *crate::sync::lock(&self.unreadable) = key;
    }

    fn was_unreadable(&self, key: &str) -> bool {
        crate::sync::lock(&self.unreadable)
            .take()
            .is_some_and(|k| k == key)
    }

    async fn stat(&self, u: &S3User, p: &BucketPath) -> Res<ObjectMeta> {
        if p.is_root() {
            return Ok(ObjectMeta::folder(None));
        }
        let b = self.bucket(u);
        if let Some(m) = b.head(&p.key()).await? {
            return Ok(m);
        }
        b.probe_folder(&p.prefix()).await?.ok_or(Failure::NotFound)
    }

    /// The entries of the folder at `p`; for a file, that file alone, as on a disk.
    async fn list_folder(&self, u: &S3User, p: &BucketPath) -> Res<Vec<Entry>> {
        let b = self.bucket(u);
        let prefix = p.prefix();
        let mut listing = FolderListing::default();
        b.list(&prefix, Some("/"), |page| {
            listing.add_page(&prefix, &page.objects, &page.common_prefixes);
        })
        .await?;
        if !listing.exists && !p.is_root() {
            if let Some(m) = b.head(&p.key()).await? {
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

    async fn upload<R: AsyncRead + Send + Sync + Unpin + 'static>(
        &self,
        u: &S3User,
        p: &BucketPath,
        input: R,
        start_pos: u64,
    ) -> Res<u64> {
        if p.is_root() {
            return Err(Failure::WrongType(
                "cannot upload onto the bucket's root folder".into(),
            ));
        }
        self.shared.permissions.write_by(u)?;
        let key = p.key();
        if start_pos == 0 && self.was_unreadable(&key) {
            return Err(Failure::Transient(
                "could not read the existing file, so it was not overwritten; try again".into(),
            ));
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
            sign_payload: u.sign_payload,
            memory: self.shared.memory.clone(),
            tracker: &mut tracker,
            gate: self.conn.tap.as_ref(),
            idle_timeout: self.shared.transfer_timeout,
            max_file_size: self.shared.max_file_size,
            checksum: u.checksum,
            crc64_report: u.crc64_report,
        }
        .run(input, start_pos)
        .await;
        match &result {
            Ok(_) => tracker.finish(),
            Err(f) => {
                tracing::info!(path = %p.display(), reason = %f, "upload not stored");
                tracker.fail(f.to_string());
            }
        }
        result
    }

    async fn change_directory(&self, u: &S3User, p: &BucketPath) -> Res<()> {
        if p.is_root() {
            // The user's root always exists, even before a home folder holds anything.
            return Ok(());
        }
        match self.bucket(u).probe_folder(&p.prefix()).await? {
            Some(_) => Ok(()),
            None => Err(Failure::NoSuchFolder),
        }
    }
}

#[async_trait]
impl StorageBackend<S3User> for S3Backend {
    type Metadata = ObjectMeta;

    fn supported_features(&self) -> u32 {
        ftp::FEATURE_RESTART | ftp::FEATURE_SITEMD5
    }

    /// `SITE MD5`, and the hash commands the relay turns into it (`HASH`, `XSHA256`, …):
    /// with the algorithm the relay left on the tap, the answer is [`HashAnswer::to_wire`];
    /// a plain `SITE MD5` gets the MD5's hex, as libunftp expects.
    ///
    /// [`HashAnswer::to_wire`]: super::hash::HashAnswer::to_wire
    async fn md5<P: AsRef<Path> + Send + Debug>(&self, u: &S3User, path: P) -> ftp::Result<String> {
        let asked = self.conn.tap.take_hash_request();
        let algo = asked.unwrap_or(super::hash::HashAlgo::Md5);
        // A hash tells what a file holds: as much a read as RETR.
        u.rights.check_read().map_err(|f| self.refuse(f))?;
        let p = parse(u, path.as_ref()).map_err(|f| self.refuse(f))?;
        let key = if p.is_root() { String::new() } else { p.key() };
        match self
            .bucket(u)
            .file_hash(&key, algo, self.shared.max_hash_size)
            .await
        {
            Ok(answer) if asked.is_some() => Ok(answer.to_wire()),
            Ok(answer) => Ok(answer.hex),
            Err(f) => Err(self.refuse(f)),
        }
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
        u.rights.check_read().map_err(|f| self.refuse(f))?;
        let entries = self.list_folder(u, &p).await.map_err(|f| self.refuse(f))?;
        // MLSD lines show `modify` only when the client selected it (`OPTS MLST`); libunftp
        // leaves the fact out when the time is unknown. LIST always shows the time.
        let tap = &self.conn.tap;
        let show_modify = !tap.listing_is_mlsd() || tap.facts().contains(Facts::MODIFY);
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
        self.upload(u, &p, input, start_pos)
            .await
            .map_err(|f| self.refuse(f))
    }

    async fn del<P: AsRef<Path> + Send + Debug>(&self, u: &S3User, path: P) -> ftp::Result<()> {
        let kind = ChangeKind::Delete;
        let p = self.parse_change(u, kind, path.as_ref())?;
        let b = self.bucket(u);
        let target = Target::Path(p.display());
        self.checked(
            Change { kind, target },
            self.shared.permissions.delete_by(u),
            folders::delete_file(&b, &p),
        )
        .await
    }

    async fn mkd<P: AsRef<Path> + Send + Debug>(&self, u: &S3User, path: P) -> ftp::Result<()> {
        let kind = ChangeKind::Mkdir;
        let p = self.parse_change(u, kind, path.as_ref())?;
        let b = self.bucket(u);
        let target = Target::Path(p.display());
        self.checked(
            Change { kind, target },
            self.shared.permissions.write_by(u),
            folders::make_folder(&b, &p),
        )
        .await
    }

    async fn rename<P: AsRef<Path> + Send + Debug>(
        &self,
        u: &S3User,
        from: P,
        to: P,
    ) -> ftp::Result<()> {
        let kind = ChangeKind::Rename;
        let (from, to) = match (parse(u, from.as_ref()), parse(u, to.as_ref())) {
            (Ok(f), Ok(t)) => (f, t),
            (Err(e), _) | (_, Err(e)) => {
                let target = Target::Rename(as_given(from.as_ref()), as_given(to.as_ref()));
                self.report(Change { kind, target }, Some(&e));
                return Err(e.into());
            }
        };
        let b = self.bucket(u);
        let target = Target::Rename(from.display(), to.display());
        self.checked(
            Change { kind, target },
            self.shared.permissions.write_by(u),
            folders::rename(&b, &from, &to),
        )
        .await
    }

    async fn rmd<P: AsRef<Path> + Send + Debug>(&self, u: &S3User, path: P) -> ftp::Result<()> {
        let kind = ChangeKind::Rmdir;
        let p = self.parse_change(u, kind, path.as_ref())?;
        let b = self.bucket(u);
        let target = Target::Path(p.display());
        self.checked(
            Change { kind, target },
            self.shared.permissions.delete_by(u),
            folders::remove_folder(&b, &p),
        )
        .await
    }

    async fn cwd<P: AsRef<Path> + Send + Debug>(&self, u: &S3User, path: P) -> ftp::Result<()> {
        let p = parse(u, path.as_ref())?;
        self.change_directory(u, &p)
            .await
            .map_err(|f| self.refuse(f))
    }
}

/// The tap as the upload's commit gate: the decision is the tap's
/// ([`ControlTap::upload_mark`], [`ControlTap::check_commit`], [`ControlTap::settle`]); the
/// trait is the upload's.
#[async_trait::async_trait]
impl CommitGate for ControlTap {
    fn mark(&self) -> u64 {
        self.upload_mark()
    }

    fn check(&self, mark: u64) -> Result<(), Failure> {
        self.check_commit(mark)
    }

    async fn settle(&self, mark: u64) -> Result<(), Failure> {
        ControlTap::settle(self, mark).await
    }
}
