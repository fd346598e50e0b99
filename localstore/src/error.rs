//! The crate's public error type, [`LocalStoreError`].
//!
//! These errors come from starting the server, creating buckets by hand and handling the
//! credentials file. Errors that happen while serving S3 requests never surface here: they
//! become S3 error replies (see `s3impl`). No variant ever carries a secret.

use std::path::PathBuf;

/// Errors from [`crate::LocalStore`] and [`crate::load_or_create_credentials`].
#[derive(Debug, thiserror::Error)]
pub enum LocalStoreError {
    /// The storage root (or an internal folder inside it) could not be created or used.
    #[error("cannot use storage folder {path}: {source}")]
    Root {
        /// The folder that failed.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },

    /// The listening socket could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address that was asked for.
        addr: std::net::SocketAddr,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },

    /// A bucket name breaks the S3 bucket naming rules.
    #[error(
        "invalid bucket name {0:?}: use 3-63 characters: lowercase letters, digits, '.' and '-', starting and ending with a letter or digit"
    )]
    InvalidBucketName(String),

    /// A bucket folder could not be created.
    #[error("cannot create bucket folder {path}: {source}")]
    CreateBucket {
        /// The bucket folder.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },

    /// The access key or secret key in the configuration is empty.
    #[error("the access key and the secret key must not be empty")]
    EmptyCredentials,

    /// Reading or writing the credentials file failed.
    #[error("cannot access credentials file {path}: {source}")]
    CredentialsIo {
        /// The credentials file (or its folder).
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },

    /// The credentials file exists but does not hold a valid key pair.
    #[error(
        "credentials file {path} is damaged ({reason}); delete it to generate new local credentials"
    )]
    CorruptCredentials {
        /// The credentials file.
        path: PathBuf,
        /// What is wrong with it (never includes the secret).
        reason: String,
    },

    /// The operating system's random number generator failed.
    #[error("cannot generate random credentials: {0}")]
    Random(String),
}
