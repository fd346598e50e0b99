//! The failures the gateway reports to FTP clients. Each variant names the FTP reply it
//! becomes (`reply_kind`); the message is what a person reads after the code. Messages never
//! carry secrets: S3 error texts name keys and buckets, never credentials.
//!
//! A failure's words may rest on an underlying error (the connector's DNS or TLS failure, an
//! io error): the words are a [`Detail`], which keeps that error as its `source()`, so the
//! whole story can be logged with [`chain`] while the client reads only the words.

use std::error::Error as StdError;
use std::fmt;
use std::sync::Arc;

use unftp_core::storage::{Error as StorageError, ErrorKind};

/// An underlying error, shared so that a [`Detail`] (and the [`Failure`] holding it) stays
/// `Clone`.
pub type Cause = Arc<dyn StdError + Send + Sync + 'static>;

/// The words of a failure that a person reads, and the error they rest on, if any: the
/// error is the `source()`, never part of the words.
#[derive(Clone)]
pub struct Detail {
    words: String,
    cause: Option<Cause>,
}

impl Detail {
    /// Words with the error they rest on.
    pub fn caused_by(
        words: impl Into<String>,
        cause: impl StdError + Send + Sync + 'static,
    ) -> Self {
        Self {
            words: words.into(),
            cause: Some(Arc::new(cause)),
        }
    }

    /// The words a person reads.
    pub fn words(&self) -> &str {
        &self.words
    }

    /// Whether an underlying error is kept.
    pub fn has_cause(&self) -> bool {
        self.cause.is_some()
    }

    /// The same words with `cause` as the underlying error, unless one is kept already.
    pub fn or_caused_by(mut self, cause: Cause) -> Self {
        self.cause.get_or_insert(cause);
        self
    }
}

impl fmt::Display for Detail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.words)
    }
}

impl fmt::Debug for Detail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Detail");
        d.field("words", &self.words);
        if let Some(c) = &self.cause {
            d.field("cause", c);
        }
        d.finish()
    }
}

impl StdError for Detail {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.cause
            .as_deref()
            .map(|c| c as &(dyn StdError + 'static))
    }
}

/// Equal when the words are: the words are what a failure means (what the client reads and
/// what the tests and the code match on); the cause is for logs, and errors in general
/// cannot be compared (io errors, SDK errors have no `PartialEq`).
impl PartialEq for Detail {
    fn eq(&self, other: &Self) -> bool {
        self.words == other.words
    }
}

impl Eq for Detail {}

impl From<String> for Detail {
    fn from(words: String) -> Self {
        Self { words, cause: None }
    }
}

impl From<&str> for Detail {
    fn from(words: &str) -> Self {
        words.to_owned().into()
    }
}

/// `err` and each error beneath it (`source()`), joined by `": "`; a source whose text the
/// line already ends with is skipped, so words that quote their cause, and a [`Failure`]
/// that shows its [`Detail`], are not repeated. For logs: the client reads only `err`.
pub fn chain(err: &dyn StdError) -> String {
    let mut line = err.to_string();
    let mut next = err.source();
    while let Some(e) = next {
        let text = e.to_string();
        if !text.is_empty() && !line.ends_with(&text) {
            line.push_str(": ");
            line.push_str(&text);
        }
        next = e.source();
    }
    line
}

/// A failure, in words a person understands, with the FTP reply it becomes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Failure {
    /// 550: the file or folder does not exist.
    #[error("no such file or folder")]
    NotFound,
    /// 550: the folder does not exist.
    #[error("no such folder")]
    NoSuchFolder,
    /// 550: the bucket does not exist.
    #[error("bucket does not exist")]
    NoSuchBucket,
    /// 550: the storage service refused the key this operation.
    #[error("permission denied by the storage service")]
    AccessDenied,
    /// 530 at login, 550 later: the access key id is unknown.
    #[error("the access key id is not known to the storage service")]
    InvalidAccessKey,
    /// 530 at login, 550 later: the secret does not match the key.
    #[error("the secret key does not match the access key id")]
    BadSecret,
    /// 550: RMD of a folder that still holds files.
    #[error("folder is not empty")]
    NotEmpty,
    /// 550: the target of a rename or MKD already exists.
    #[error("{0} already exists")]
    AlreadyExists(String),
    /// 550: the server's settings forbid this (read-only mode, deleting off).
    #[error("not allowed: {0}")]
    NotAllowed(String),
    /// 553: a name the bucket cannot hold (NUL, too long, not UTF-8).
    #[error("file name not allowed: {0}")]
    BadName(String),
    /// 550: a REST offset past the end of the file.
    #[error("restart offset {offset} is beyond the end of the file ({size} bytes)")]
    BadOffset {
        /// The offset asked for.
        offset: u64,
        /// The file's size.
        size: u64,
    },
    /// 550: an operation on a folder that only works on files, or the reverse.
    #[error("{0}")]
    WrongType(String),
    /// 552: larger than the storage service or the part size allows.
    #[error("file too large: {0}")]
    TooLarge(#[source] Detail),
    /// 552: the account's quota is used up.
    #[error("storage quota exceeded: {0}")]
    QuotaExceeded(#[source] Detail),
    /// 426: the transfer was cancelled or the connection broke; nothing was stored.
    #[error("transfer aborted, nothing was stored: {0}")]
    Aborted(#[source] Detail),
    /// 426: a download stopped because the data connection failed or was closed; the
    /// client has part of the file, the file on the store is as it was.
    #[error(
        "download stopped, the client received only part of the file (the file on the store \
         is unchanged): {0}"
    )]
    Interrupted(#[source] Detail),
    /// 451: the object changed on the store while it was being read (`412
    /// PreconditionFailed` to a request pinned to its ETag or date); the words say what that
    /// meant for the transfer.
    #[error("{0}")]
    Changed(#[source] Detail),
    /// 451: the service was busy or unreachable even after retries; try again.
    #[error("storage service unavailable, try again: {0}")]
    Transient(#[source] Detail),
    /// 451: the bucket lives in another region than the one configured: the bucket's region
    /// when the store said it (AWS's `x-amz-bucket-region`).
    #[error("{}", wrong_region_text(.0.as_deref()))]
    WrongRegion(Option<String>),
    /// 451: any other storage error.
    #[error("storage error: {0}")]
    Other(#[source] Detail),
}

impl Failure {
    /// The libunftp error kind, which decides the reply code.
    pub fn reply_kind(&self) -> ErrorKind {
        match self {
            Failure::NotFound => ErrorKind::PermanentFileNotAvailable,
            Failure::NoSuchFolder => ErrorKind::PermanentDirectoryNotAvailable,
            Failure::NotEmpty => ErrorKind::PermanentDirectoryNotEmpty,
            Failure::NoSuchBucket
            | Failure::NotAllowed(_)
            | Failure::AccessDenied
            | Failure::InvalidAccessKey
            | Failure::BadSecret => ErrorKind::PermissionDenied,
            Failure::AlreadyExists(_) | Failure::BadOffset { .. } | Failure::WrongType(_) => {
                ErrorKind::PermanentFileNotAvailable
            }
            Failure::BadName(_) => ErrorKind::FileNameNotAllowedError,
            Failure::TooLarge(_) | Failure::QuotaExceeded(_) => {
                ErrorKind::ExceededStorageAllocationError
            }
            Failure::Aborted(_) | Failure::Interrupted(_) => ErrorKind::ConnectionClosed,
            Failure::Changed(_)
            | Failure::Transient(_)
            | Failure::WrongRegion(_)
            | Failure::Other(_) => ErrorKind::LocalError,
        }
    }

    /// The words and underlying error of a failure that carries them.
    pub fn detail(&self) -> Option<&Detail> {
        match self {
            Failure::TooLarge(d)
            | Failure::QuotaExceeded(d)
            | Failure::Aborted(d)
            | Failure::Interrupted(d)
            | Failure::Changed(d)
            | Failure::Transient(d)
            | Failure::Other(d) => Some(d),
            _ => None,
        }
    }

    /// Whether the failure keeps an underlying error, worth a [`chain`] in the logs.
    pub fn has_cause(&self) -> bool {
        self.detail().is_some_and(Detail::has_cause)
    }

    /// The same failure with `cause` as the underlying error of its words, when it carries
    /// words and has no cause yet; other failures are returned as they are.
    pub fn or_caused_by(self, cause: Cause) -> Self {
        match self {
            Failure::TooLarge(d) => Failure::TooLarge(d.or_caused_by(cause)),
            Failure::QuotaExceeded(d) => Failure::QuotaExceeded(d.or_caused_by(cause)),
            Failure::Aborted(d) => Failure::Aborted(d.or_caused_by(cause)),
            Failure::Interrupted(d) => Failure::Interrupted(d.or_caused_by(cause)),
            Failure::Changed(d) => Failure::Changed(d.or_caused_by(cause)),
            Failure::Transient(d) => Failure::Transient(d.or_caused_by(cause)),
            Failure::Other(d) => Failure::Other(d.or_caused_by(cause)),
            other => other,
        }
    }

    /// The three-digit reply code this failure becomes (libunftp's mapping of the kind).
    /// Only tests need the number: the server hands libunftp the kind.
    #[cfg(test)]
    pub(crate) fn reply_code(&self) -> u16 {
        match self.reply_kind() {
            ErrorKind::TransientFileNotAvailable => 450,
            ErrorKind::ConnectionClosed => 426,
            ErrorKind::LocalError => 451,
            ErrorKind::InsufficientStorageSpaceError => 452,
            ErrorKind::CommandNotImplemented => 502,
            ErrorKind::PageTypeUnknown => 551,
            ErrorKind::ExceededStorageAllocationError => 552,
            ErrorKind::FileNameNotAllowedError => 553,
            ErrorKind::PermanentFileNotAvailable
            | ErrorKind::PermanentDirectoryNotAvailable
            | ErrorKind::PermanentDirectoryNotEmpty
            | ErrorKind::PermissionDenied => 550,
        }
    }
}

impl From<Failure> for StorageError {
    fn from(f: Failure) -> Self {
        StorageError::new(f.reply_kind(), f)
    }
}

impl From<crate::path::PathError> for Failure {
    fn from(e: crate::path::PathError) -> Self {
        Failure::BadName(e.to_string())
    }
}

fn wrong_region_text(region: Option<&str>) -> String {
    match region {
        Some(r) => format!("the bucket lives in region {r}; set that region"),
        None => "the bucket lives in another region than the one set; set its region".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reply_codes() {
        let table = [
            (Failure::NotFound, 550),
            (Failure::NotEmpty, 550),
            (Failure::AccessDenied, 550),
            (Failure::BadName("x".into()), 553),
            (Failure::TooLarge("x".into()), 552),
            (Failure::Aborted("x".into()), 426),
            (Failure::Interrupted("x".into()), 426),
            (Failure::Changed("x".into()), 451),
            (Failure::Transient("x".into()), 451),
            (Failure::BadOffset { offset: 9, size: 3 }, 550),
        ];
        for (f, code) in table {
            assert_eq!(f.reply_code(), code, "{f}");
        }
        assert_eq!(
            Failure::WrongRegion(Some("eu-west-1".into())).to_string(),
            "the bucket lives in region eu-west-1; set that region"
        );
        assert_eq!(Failure::WrongRegion(None).reply_code(), 451);
        let text = Failure::Interrupted("data connection failed: broken pipe".into()).to_string();
        assert!(
            text.contains("only part of the file") && !text.contains("nothing was stored"),
            "{text}"
        );
    }

    #[test]
    fn detail_keeps_its_cause_out_of_the_words() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "connection refused");
        let f = Failure::Transient(Detail::caused_by("storage service unreachable", io));
        // The client reads exactly the words of old.
        assert_eq!(
            f.to_string(),
            "storage service unavailable, try again: storage service unreachable"
        );
        assert!(f.has_cause());
        let detail = f.source().map(ToString::to_string);
        assert_eq!(detail.as_deref(), Some("storage service unreachable"));
        assert_eq!(
            chain(&f),
            "storage service unavailable, try again: storage service unreachable: connection \
             refused"
        );
        // Equal by the words: the cause is for logs.
        assert_eq!(f, Failure::Transient("storage service unreachable".into()));
        assert!(!Failure::Transient("x".into()).has_cause());
        assert!(
            Failure::Transient("x".into())
                .source()
                .is_some_and(|d| d.source().is_none())
        );
    }

    #[test]
    fn chain_skips_what_the_line_already_says() {
        let io = std::io::Error::other("broken pipe");
        let f = Failure::Other(Detail::caused_by(
            "part upload task failed: broken pipe",
            io,
        ));
        assert_eq!(
            chain(&f),
            "storage error: part upload task failed: broken pipe"
        );
        // A plain error with no source is its own text.
        let io = std::io::Error::other("disk full");
        assert_eq!(chain(&io), "disk full");
        // A cause added to a failure that has one already does not replace it.
        let first: Cause = Arc::new(std::io::Error::other("first"));
        let second: Cause = Arc::new(std::io::Error::other("second"));
        let f = Failure::Aborted("x".into())
            .or_caused_by(first)
            .or_caused_by(second);
        assert_eq!(chain(&f), "transfer aborted, nothing was stored: x: first");
        assert_eq!(
            Failure::NotFound.or_caused_by(Arc::new(std::io::Error::other("y"))),
            Failure::NotFound
        );
    }
}
