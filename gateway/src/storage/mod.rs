//! The libunftp storage backend over one S3 bucket per session.
//!
//! Folders are key prefixes: a `name/` marker object and an implicit prefix are both folders.
//! A folder's own marker never shows in its listing; MKD writes a marker; deleting the last
//! file of a folder writes the marker so the folder stays, as on a disk. Renames are done in
//! the store (CopyObject, or UploadPartCopy above the provider's copy limit) then the source
//! is deleted; a folder rename moves every key under its prefix.
//!
//! - `backend.rs`: [`S3Backend`], the adapter libunftp calls: paths, permissions, errors;
//! - `bucket.rs`: the bucket client (HEAD, paged listing, markers, deletes, copies);
//! - `folders.rs`: DELE, MKD, RMD and renames over key prefixes;
//! - [`listing`]: pure ListObjectsV2 pages to folder entries;
//! - [`upload`], [`multipart`], [`download`]: the transfers; `part_buf.rs`: the upload's part
//!   buffers (on Linux/glibc each a memory mapping, returned to the system when the store has
//!   the part).
//!
//! Here: what all sessions share ([`Shared`], [`Permissions`]) and the facts a stat returns
//! ([`ObjectMeta`]).

mod backend;
mod bucket;
pub mod digest;
pub mod download;
mod folders;
pub mod hash;
pub mod listing;
pub mod multipart;
mod part_buf;
pub mod parts;
pub mod upload;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use unftp_core::storage::{self as ftp, Metadata};

use crate::error::Failure;
use crate::ftp::session::S3User;
use crate::ops::events::EventBus;
use parts::TransferLimits;

pub use backend::S3Backend;
pub(crate) use bucket::Pager;

/// What every session's backend shares: limits, memory permits, events.
#[derive(Debug, Clone)]
pub struct Shared {
    /// Part size and parallelism.
    pub limits: TransferLimits,
    /// The memory of all part buffers and download chunks (with a reserve, see
    /// [`parts::MemoryPool`]).
    pub memory: Arc<parts::MemoryPool>,
    /// What sessions may change.
    pub permissions: Permissions,
    /// Where transfer events go.
    pub events: EventBus,
    /// An upload with no data for this long is cancelled.
    pub transfer_timeout: Duration,
    /// Uploads that grow past this many bytes are refused (552) and not stored.
    pub max_file_size: Option<u64>,
    /// HASH reads files with no stored hash up to this size (see `storage/digest.rs`).
    pub max_hash_size: u64,
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

/// What a storage operation returns: the value, or why it failed.
type Res<T> = Result<T, Failure>;
