//! Login: `ACCESS_KEY_ID/bucket` as the user, the secret key as the password (the OSS-FTP
//! convention), or a team user from the config file ([`crate::team::users`]) whose password is
//! checked against its argon2id hash and whose bucket is reached with the storage's key. A login is accepted only after one cheap call on the bucket (ListObjectsV2,
//! one key) proves the key can read it; a refusal says which part was wrong. For AWS without
//! a configured region, the bucket's region comes from the reply and the call is retried.
//!
//! libunftp's authenticator returns only a name, so each connection gets its own
//! authenticator and user-detail provider sharing a one-slot hand-off: the authenticator puts
//! the session's S3 client there, the provider takes it.
//!
//! Every attempt goes through the address's lockout ([`crate::ftp::limits::LoginLockout`]): it
//! takes its place in the count before anything is checked and settles it at the end (a
//! failure, a success that clears only its own name's failures, or neither when the store
//! could not be reached). The failure that locks the address is logged once; refusals while
//! it is locked are not logged one by one, and end the session.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use unftp_core::auth::{
    AuthenticationError, Authenticator, Credentials, Principal, UserDetailError, UserDetailProvider,
};

use crate::error::{Detail, Failure};
use crate::ftp::limits::{LoginLockout, Outcome, Wait, address_key};
use crate::ftp::session::{Connection, LoginStage, S3User};
use crate::ops::events::Event;
use crate::s3::Factories;
use crate::s3::error::{bucket_region_hint, classify};
use crate::s3::janitor::Janitor;
use crate::team::users::{TeamUser, UserTable, decoy_hash, verify_password};

/// A parsed login name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Login {
    /// The access key id before the `/`: picks the profile settings and signs requests.
    pub access_key: String,
    /// The bucket after the `/`, checked against S3's naming rules.
    pub bucket: String,
}

/// Why a login name is malformed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LoginError {
    /// No `/` between key and bucket.
    #[error("user name must be ACCESS_KEY_ID/bucket")]
    NoBucket,
    /// The bucket name breaks S3's naming rules.
    #[error("{0:?} is not a valid bucket name")]
    BadBucket(String),
    /// The access key id is empty or has spaces or control characters.
    #[error("the access key id is empty or malformed")]
    BadKey,
}

/// Parses `AK/bucket` (a trailing `/` is allowed). The separator may also come
/// percent-encoded, `AK%2Fbucket` or `AK%2fbucket`, as URLs put it and some clients send it
/// without decoding; an access key id never contains `%`. Pure.
pub fn parse_login(user: &str) -> Result<Login, LoginError> {
    let user = user.trim();
    let (ak, bucket) = match user.split_once('/') {
        Some(parts) => parts,
        None => ["%2F", "%2f"]
            .iter()
            .find_map(|sep| user.split_once(sep))
            .ok_or(LoginError::NoBucket)?,
    };
    let bucket = bucket
        .strip_suffix("%2F")
        .or_else(|| bucket.strip_suffix("%2f"))
        .unwrap_or(bucket);
    let bucket = bucket.strip_suffix('/').unwrap_or(bucket);
    if ak.is_empty() || ak.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(LoginError::BadKey);
    }
    if bucket.is_empty() {
        return Err(LoginError::NoBucket);
    }
    let valid_chars = bucket
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.' || c == '_');
    let edges_ok = bucket.starts_with(|c: char| c.is_ascii_alphanumeric())
        && bucket.ends_with(|c: char| c.is_ascii_alphanumeric());
    if !(3..=63).contains(&bucket.len()) || !valid_chars || !edges_ok || bucket.contains("..") {
        return Err(LoginError::BadBucket(bucket.to_owned()));
    }
    Ok(Login {
        access_key: ak.to_owned(),
        bucket: bucket.to_owned(),
    })
}

/// The text a refused login shows, by cause.
pub fn refusal_text(f: &Failure, login: &Login) -> String {
    match f {
        Failure::InvalidAccessKey => format!(
            "access key id {} is not known to the storage service",
            login.access_key
        ),
        Failure::BadSecret => "wrong secret key (password) for this access key id".to_owned(),
        Failure::NoSuchBucket => format!("bucket {} does not exist", login.bucket),
        Failure::AccessDenied => format!("this key may not list bucket {}", login.bucket),
        other => format!("cannot reach bucket {}: {other}", login.bucket),
    }
}

/// Password checks running at once, across all sessions.
fn verify_slots() -> &'static Arc<tokio::sync::Semaphore> {
    static SLOTS: std::sync::OnceLock<Arc<tokio::sync::Semaphore>> = std::sync::OnceLock::new();
    SLOTS.get_or_init(|| {
        let cpus = std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get);
        Arc::new(tokio::sync::Semaphore::new(cpus))
    })
}

/// The one-slot hand-off between authenticator and user-detail provider.
pub type UserSlot = Arc<Mutex<Option<S3User>>>;

/// A refused user name as logs, events and the audit log show it: one line, cut to
/// [`LOGGED_CHARS`](crate::ftp::text::LOGGED_CHARS) characters. Pure.
pub fn shown_name(name: &str) -> String {
    crate::ftp::text::shorten(name, crate::ftp::text::LOGGED_CHARS)
}

/// A login attempt's place in its address's lockout count, from its start to its outcome.
/// Dropped unsettled (the client left, libunftp gave up on it), it is settled as neutral.
struct Attempt<'a> {
    lockout: &'a LoginLockout,
    ip: std::net::IpAddr,
    user: &'a str,
    settled: bool,
}

impl Attempt<'_> {
    /// Settles the attempt; returns the lock's length when this failure locked the address.
    fn settle(mut self, outcome: Outcome) -> Option<std::time::Duration> {
        self.settled = true;
        self.lockout
            .finish(self.ip, self.user, outcome, std::time::Instant::now())
    }
}

impl Drop for Attempt<'_> {
    fn drop(&mut self) {
        if !self.settled {
            self.lockout.finish(
                self.ip,
                self.user,
                Outcome::Neutral,
                std::time::Instant::now(),
            );
        }
    }
}

/// Checks `AK/bucket` + secret against the store.
#[derive(Debug)]
pub struct S3Authenticator {
    factories: Arc<Factories>,
    conn: Connection,
    slot: UserSlot,
    lockout: Arc<LoginLockout>,
    janitor: Option<Arc<Janitor>>,
    users: Option<Arc<UserTable>>,
}

impl S3Authenticator {
    /// An authenticator for one connection.
    pub fn new(
        factories: Arc<Factories>,
        conn: Connection,
        slot: UserSlot,
        lockout: Arc<LoginLockout>,
        janitor: Option<Arc<Janitor>>,
    ) -> Self {
        Self {
            factories,
            conn,
            slot,
            lockout,
            janitor,
            users: None,
        }
    }

    /// Team logins from the config file: with users configured, only they log in (plus
    /// `ACCESS_KEY_ID/bucket` when the table allows key logins).
    pub fn with_users(mut self, users: Option<Arc<UserTable>>) -> Self {
        self.users = users;
        self
    }

    /// Checks a team user's password (off the async threads) and then that the user's
    /// storage can list the home folder. `Err(None)`: wrong name or password.
    async fn team_login(
        &self,
        user: Option<TeamUser>,
        password: &str,
    ) -> Result<S3User, Option<Failure>> {
        let hash = user.as_ref().map(|u| u.password_hash.clone());
        let password = password.to_owned();
        // argon2 takes ~19 MiB and tens of ms per check: a few at a time, off the async
        // threads (the permit is dropped with the closure).
        let permit = verify_slots().clone().acquire_owned().await.ok();
        let matches = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            match &hash {
                Some(h) => verify_password(h, &password),
                None => verify_password(decoy_hash(), &password),
            }
        })
        .await
        .unwrap_or(false);
        let user = match user {
            Some(u) if matches => u,
            _ => return Err(None),
        };
        let storage = &user.storage;
        let factory = self
            .factories
            .for_settings(&storage.settings)
            .map_err(|e| {
                Some(Failure::Other(Detail::caused_by(
                    format!("storage {}: {e}", storage.name),
                    e,
                )))
            })?;
        let client = factory.client(&storage.access_key_id, storage.secret.expose(), None);
        let home = user.home.prefix();
        client
            .list_objects_v2()
            .bucket(&user.bucket)
            .prefix(&home)
            .max_keys(1)
            .send()
            .await
            .map_err(|e| Some(classify(e)))?;
        Ok(S3User {
            name: user.name.clone(),
            bucket: user.bucket.clone(),
            client,
            max_copy_object: factory.resolved().max_copy_object,
            equal_parts: factory.resolved().equal_parts,
            sign_payload: factory.resolved().sign_payload,
            checksum: factory.resolved().checksum,
            crc64_report: factory.resolved().object_crc64_header,
            home: user.home.clone(),
            rights: user.rights,
        })
    }

    fn logged_in(&self, attempt: Attempt<'_>, username: &str, user: S3User) -> Principal {
        attempt.settle(Outcome::Succeeded);
        self.conn.login.set(LoginStage::LoggedIn);
        if let Some(j) = &self.janitor {
            j.sweep_once(&user.client, &user.bucket);
        }
        *crate::sync::lock(&self.slot) = Some(user);
        tracing::info!(session = self.conn.session, user = %username, peer = %self.conn.peer, "logged in");
        self.conn.events.send(Event::LoggedIn {
            session: self.conn.session,
            user: username.to_owned(),
        });
        Principal {
            username: username.to_owned(),
        }
    }

    async fn probe(&self, login: &Login, secret: &str) -> Result<S3User, Failure> {
        let factory = self.factories.for_key(&login.access_key).map_err(|e| {
            Failure::Other(Detail::caused_by(
                format!("this key's profile settings are unusable: {e}"),
                e,
            ))
        })?;
        let mut region: Option<String> = None;
        for _attempt in 0..2 {
            let client = factory.client(&login.access_key, secret, region.as_deref());
            let r = client
                .list_objects_v2()
                .bucket(&login.bucket)
                .max_keys(1)
                .send()
                .await;
            match r {
                Ok(_) => {
                    return Ok(S3User {
                        name: format!("{}/{}", login.access_key, login.bucket),
                        bucket: login.bucket.clone(),
                        client,
                        max_copy_object: factory.resolved().max_copy_object,
                        equal_parts: factory.resolved().equal_parts,
                        sign_payload: factory.resolved().sign_payload,
                        checksum: factory.resolved().checksum,
                        crc64_report: factory.resolved().object_crc64_header,
                        home: crate::path::BucketPath::root(),
                        rights: crate::team::users::Rights::ALL,
                    });
                }
                Err(e) => {
                    let hint = bucket_region_hint(&e);
                    let f = classify(e);
                    let can_retry = factory.resolved().discover_region && region.is_none();
                    match (hint, can_retry) {
                        (Some(h), true) if !matches!(f, Failure::InvalidAccessKey) => {
                            tracing::info!(bucket = %login.bucket, region = %h, "bucket lives in another region; retrying there");
                            region = Some(h);
                        }
                        _ => return Err(f),
                    }
                }
            }
        }
        Err(Failure::WrongRegion(region))
    }

    /// Refuses the attempt and settles it: `counts` when the mistake was the client's (a
    /// failure for the lockout), else neutral. The failure that locks the address says so in
    /// the one log line of its lock.
    fn refuse(
        &self,
        attempt: Attempt<'_>,
        username: &str,
        reason: String,
        counts: bool,
    ) -> AuthenticationError {
        let outcome = if counts {
            Outcome::Failed
        } else {
            Outcome::Neutral
        };
        if let Some(window) = attempt.settle(outcome) {
            tracing::warn!(
                session = self.conn.session,
                peer = %self.conn.peer,
                address = %address_key(self.conn.peer.ip()),
                secs = window.as_secs(),
                "too many failed logins: address locked out (its refusals are not logged one by one)"
            );
        }
        self.refuse_as(username, reason, false)
    }

    /// `locked`: refused because the address is locked out (logged at debug level only: the
    /// lock was logged when it began).
    fn refuse_as(&self, username: &str, reason: String, locked: bool) -> AuthenticationError {
        let user = shown_name(username);
        if locked {
            tracing::debug!(session = self.conn.session, %user, %reason, "login refused");
        } else {
            tracing::info!(session = self.conn.session, %user, %reason, "login refused");
        }
        self.conn.events.send(Event::LoginFailed {
            session: self.conn.session,
            user,
            reason: reason.clone(),
            locked,
        });
        self.conn.tap.explain(&reason);
        AuthenticationError::new(reason)
    }

    /// Takes the attempt's place in the lockout count, waiting while attempts running from
    /// the same address could lock it; `Err(wait)` when the address is locked out.
    async fn begin<'a>(&'a self, username: &'a str) -> Result<Attempt<'a>, std::time::Duration> {
        let ip = self.conn.peer.ip();
        loop {
            let settled = self.lockout.settled().notified();
            tokio::pin!(settled);
            settled.as_mut().enable();
            match self.lockout.begin(ip, std::time::Instant::now()) {
                Ok(()) => {
                    return Ok(Attempt {
                        lockout: &self.lockout,
                        ip,
                        user: username,
                        settled: false,
                    });
                }
                Err(Wait::Locked(wait)) => return Err(wait),
                Err(Wait::Busy) => settled.await,
            }
        }
    }
}

#[async_trait]
impl Authenticator for S3Authenticator {
    async fn authenticate(
        &self,
        username: &str,
        creds: &Credentials,
    ) -> Result<Principal, AuthenticationError> {
        let attempt = match self.begin(username).await {
            Ok(a) => a,
            Err(wait) => {
                // Locked out: refused without asking the store, and the session ends (a new
                // connection from the address is refused at once, see `server`).
                let reason = format!(
                    "too many failed logins from your address; try again in {} s",
                    wait.as_secs().max(1)
                );
                let refused = self.refuse_as(username, reason, true);
                self.conn.login.set(LoginStage::LockedOut);
                return Err(refused);
            }
        };
        if let Some(table) = &self.users {
            let dir = table.current();
            let team_user = dir.user(username).cloned();
            // With team users, every name that is not an allowed ACCESS_KEY_ID/bucket login
            // gets the team refusal, so a refusal never tells whether a user exists. Without
            // any (a config file of storages only), logins are ACCESS_KEY_ID/bucket as usual.
            let key_shaped = dir.key_login && parse_login(username).is_ok();
            if team_user.is_some() || (!dir.is_empty() && !key_shaped) {
                let password = creds.password.as_deref().unwrap_or_default();
                return match self.team_login(team_user, password).await {
                    Ok(user) => Ok(self.logged_in(attempt, username, user)),
                    Err(None) => Err(self.refuse(
                        attempt,
                        username,
                        "wrong user name or password".into(),
                        true,
                    )),
                    Err(Some(f)) => {
                        // The password was right: the storage is unreachable or refuses the
                        // configured key, which is the server's problem, not the user's.
                        tracing::warn!(session = self.conn.session, user = %username, error = %crate::error::chain(&f), "team login: the user's storage refused");
                        Err(self.refuse(
                            attempt,
                            username,
                            format!("the storage for this login is not usable: {f}"),
                            false,
                        ))
                    }
                };
            }
        }
        let login = match parse_login(username) {
            Ok(l) => l,
            Err(e) => return Err(self.refuse(attempt, username, e.to_string(), true)),
        };
        let secret = match creds.password.as_deref() {
            Some(s) if !s.is_empty() => s,
            _ => {
                return Err(self.refuse(
                    attempt,
                    username,
                    "the password (secret key) is empty".into(),
                    true,
                ));
            }
        };
        match self.probe(&login, secret).await {
            Ok(user) => Ok(self.logged_in(attempt, username, user)),
            Err(f) => {
                // Only credential mistakes count towards the lockout, not an unreachable store.
                let counts = matches!(
                    f,
                    Failure::BadSecret
                        | Failure::InvalidAccessKey
                        | Failure::AccessDenied
                        | Failure::NoSuchBucket
                );
                Err(self.refuse(attempt, username, refusal_text(&f, &login), counts))
            }
        }
    }
}

/// Hands the authenticated session's user to libunftp.
#[derive(Debug)]
pub struct SlotUserProvider {
    slot: UserSlot,
}

impl SlotUserProvider {
    /// A provider reading `slot`.
    pub fn new(slot: UserSlot) -> Self {
        Self { slot }
    }
}

#[async_trait]
impl UserDetailProvider for SlotUserProvider {
    type User = S3User;

    async fn provide_user_detail(&self, principal: &Principal) -> Result<S3User, UserDetailError> {
        let taken = crate::sync::lock(&self.slot).take();
        taken.ok_or_else(|| UserDetailError::UserNotFound {
            username: principal.username.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn login_table() {
        let ok = |u: &str, ak: &str, b: &str| {
            assert_eq!(
                parse_login(u),
                Ok(Login {
                    access_key: ak.into(),
                    bucket: b.into()
                }),
                "{u}"
            )
        };
        ok("AKIA123/my-bucket", "AKIA123", "my-bucket");
        ok(" AK/bucket.v2/ ", "AK", "bucket.v2");
        ok("LTAI5t/oss_bucket1", "LTAI5t", "oss_bucket1");
        // FileZilla sends the user part of a pasted URL without percent-decoding it.
        ok("AKIA123%2Fmy-bucket", "AKIA123", "my-bucket");
        ok("AKIA123%2fmy-bucket", "AKIA123", "my-bucket");
        ok("AKIA123%2Fmy-bucket%2F", "AKIA123", "my-bucket");
        assert_eq!(parse_login("AKIA123%2F"), Err(LoginError::NoBucket));
        assert_eq!(parse_login("%2Fbucket"), Err(LoginError::BadKey));
        assert!(matches!(
            parse_login("AK%2Fa%2Fb"),
            Err(LoginError::BadBucket(_))
        ));
        assert_eq!(parse_login("AKIA123"), Err(LoginError::NoBucket));
        assert_eq!(parse_login("AK/"), Err(LoginError::NoBucket));
        assert_eq!(parse_login("/bucket"), Err(LoginError::BadKey));
        assert_eq!(parse_login("A K/bucket"), Err(LoginError::BadKey));
        assert!(matches!(
            parse_login("AK/Bucket"),
            Err(LoginError::BadBucket(_))
        ));
        assert!(matches!(
            parse_login("AK/ab"),
            Err(LoginError::BadBucket(_))
        ));
        assert!(matches!(
            parse_login("AK/a/b"),
            Err(LoginError::BadBucket(_))
        ));
        assert!(matches!(
            parse_login("AK/-abc"),
            Err(LoginError::BadBucket(_))
        ));
        assert!(matches!(
            parse_login("AK/a..b"),
            Err(LoginError::BadBucket(_))
        ));
    }

    #[test]
    fn refusals_say_which_part_is_wrong() {
        let l = Login {
            access_key: "AK1".into(),
            bucket: "bkt".into(),
        };
        assert!(refusal_text(&Failure::BadSecret, &l).contains("wrong secret"));
        assert!(refusal_text(&Failure::NoSuchBucket, &l).contains("bucket bkt does not exist"));
        assert!(refusal_text(&Failure::InvalidAccessKey, &l).contains("AK1"));
        assert!(refusal_text(&Failure::AccessDenied, &l).contains("may not list"));
    }
}
