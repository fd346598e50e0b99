//! What one FTP session is: the [`Connection`] it arrived on (made by the accept loop before
//! login) and the [`S3User`] it became (made by the authenticator at login). The
//! authenticator, the storage backend and the accept loop all hold these; keeping them here,
//! apart from all three, means none of those modules has to import another to name them.
//! [`LoginState`] is how the authenticator tells the accept loop that the session logged in
//! (or was refused because its address is locked out).

use std::fmt::{self, Debug, Display};
use std::net::SocketAddr;
use std::sync::Arc;

use aws_sdk_s3::Client;
use unftp_core::auth::UserDetail;

use crate::ftp::control_tap::ControlTap;
use crate::ops::events::{EventBus, SessionId};
use crate::path::BucketPath;
use crate::team::users::Rights;

/// Per-connection facts the authenticator and the backend need, fixed when the client
/// connects.
#[derive(Debug, Clone)]
pub struct Connection {
    /// The id every event and log line of this session carries.
    pub session: SessionId,
    /// The client's address, as the relay accepted it (the lockout counts per address).
    pub peer: SocketAddr,
    /// The state this session's relay shares with the backend: reasons for error replies,
    /// the commit gate's inputs, TLS state, MLST facts.
    pub tap: Arc<ControlTap>,
    /// Where login and transfer events of this session go.
    pub events: EventBus,
    /// Set by the authenticator, watched by the accept loop (login timeout, session limits).
    pub login: LoginState,
}

/// Where a session stands with its login.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginStage {
    /// Not logged in yet.
    Pending,
    /// Logged in.
    LoggedIn,
    /// A login was refused because the client's address is locked out: the session ends.
    LockedOut,
}

/// One session's [`LoginStage`], shared by the authenticator (which sets it) and the accept
/// loop (which waits for it to leave `Pending`). Cheap to clone.
#[derive(Debug, Clone)]
pub struct LoginState(Arc<tokio::sync::watch::Sender<LoginStage>>);

impl Default for LoginState {
    fn default() -> Self {
        Self(Arc::new(tokio::sync::watch::Sender::new(
            LoginStage::Pending,
        )))
    }
}

impl LoginState {
    /// Moves to `stage` (a session that logged in stays logged in).
    pub fn set(&self, stage: LoginStage) {
        self.0.send_if_modified(|now| {
            let change = *now != stage && *now != LoginStage::LoggedIn;
            if change {
                *now = stage;
            }
            change
        });
    }

    /// The stage now.
    pub fn get(&self) -> LoginStage {
        *self.0.borrow()
    }

    /// Waits until the stage is no longer `Pending`, and returns it.
    pub async fn settled(&self) -> LoginStage {
        let mut rx = self.0.subscribe();
        match rx.wait_for(|s| *s != LoginStage::Pending).await {
            Ok(stage) => *stage,
            // The sender lives in `self`: it cannot be dropped while this waits.
            Err(_) => self.get(),
        }
    }
}

/// A logged-in FTP user: the session's S3 client, bucket, home folder and rights.
#[derive(Clone)]
pub struct S3User {
    /// The login name, `ACCESS_KEY_ID/bucket` or a team user's name (never the secret).
    pub name: String,
    /// The bucket every path of this session is in.
    pub bucket: String,
    /// A client signed with this user's credential.
    pub client: Client,
    /// Largest single CopyObject for this user's provider.
    pub max_copy_object: u64,
    /// True when the user's store needs parts of one size (uploads keep fixed parts).
    pub equal_parts: bool,
    /// True when upload bodies are signed (see [`crate::s3::payload_signing_needed`]).
    pub sign_payload: bool,
    /// The checksum every upload request carries for the store to verify.
    pub checksum: crate::s3::BodyChecksum,
    /// The reply header in which the store reports a written object's CRC-64 (OSS, COS).
    pub crc64_report: Option<&'static str>,
    /// The user's `/` inside the bucket (the bucket's root for `ACCESS_KEY_ID/bucket`
    /// logins, a home folder for team users).
    pub home: BucketPath,
    /// What this login may do.
    pub rights: Rights,
}

// Short on purpose: libunftp logs the user at debug level, and the client's own Debug output
// is kilobytes long.
impl Debug for S3User {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3User")
            .field("name", &self.name)
            .field("bucket", &self.bucket)
            .field("home", &self.home.prefix())
            .field("rights", &self.rights.letters())
            .finish_non_exhaustive()
    }
}

impl Display for S3User {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

impl UserDetail for S3User {}
