//! The failures the gateway reports to FTP clients. Each variant names the FTP reply it
//! becomes (`reply_kind`); the message is what a person reads after the code. Messages never
//! carry secrets: S3 error texts name keys and buckets, never credentials.

use unftp_core::storage::{Error as StorageError, ErrorKind};

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
    TooLarge(String),
    /// 552: the account's quota is used up.
    #[error("storage quota exceeded: {0}")]
    QuotaExceeded(String),
    /// 426: the transfer was cancelled or the connection broke; nothing was stored.
    #[error("transfer aborted, nothing was stored: {0}")]
    Aborted(String),
    /// 426: a download stopped because the data connection failed or was closed; the
    /// client has part of the file, the file on the store is as it was.
    #[error(
        "download stopped, the client received only part of the file (the file on the store \
         is unchanged): {0}"
    )]
    Interrupted(String),
    /// 451: the object changed on the store while it was being read (`412
    /// PreconditionFailed` to a request pinned to its ETag or date); the words say what that
    /// meant for the transfer.
    #[error("{0}")]
    Changed(String),
    /// 451: the service was busy or unreachable even after retries; try again.
    #[error("storage service unavailable, try again: {0}")]
    Transient(String),
    /// 451: the bucket lives in another region than the one configured: the bucket's region
    /// when the store said it (AWS's `x-amz-bucket-region`).
    #[error("{}", wrong_region_text(.0.as_deref()))]
    WrongRegion(Option<String>),
    /// 451: any other storage error.
    #[error("storage error: {0}")]
    Other(String),
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
}
