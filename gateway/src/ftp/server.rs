//! The accept loop. We own it (libunftp's `Server::service` per connection) so that each
//! connection gets its own context: a session id, the client address, the relay that owns the
//! client's control connection and talks to libunftp over loopback ([`crate::ftp::relay`]), the
//! state they share (`control_tap`), and an authenticator that hands its S3 client to that
//! session's backend. Each session runs in its own task, so a slow S3 call in one session
//! never stalls another.
//!
//! Before login a session is on probation: a connection from an address locked out after
//! failed logins is answered `421` and closed before any session is set up; sessions not
//! logged in yet are capped per address ([`SessionLimits::max_unauthenticated_per_ip`]); a
//! session not logged in within `login_timeout` is closed whatever it sends, and one whose
//! login was refused because its address is locked out is closed at once. Refusals are logged
//! once per address and minute ([`LogThrottle`]), not once per try.
//!
//! Behind a load balancer (`proxy_protocol`) each connection's PROXY protocol header is read
//! first: the address it names is the client's for all of that (limits, lockout, audit,
//! logs, the data connections' check); a connection without one, or from a source whose
//! headers are not trusted, is closed before anything else.

use std::net::SocketAddr;
use std::ops::RangeInclusive;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use libunftp::ServerBuilder;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::ftp::auth::{S3Authenticator, SlotUserProvider, UserSlot};
use crate::ftp::control_tap::{self, ControlTap};
use crate::ftp::limits::{
    Admission, LogThrottle, LoginLockout, Refusal, SessionCounter, SessionLimits,
};
use crate::ftp::proxy_protocol;
use crate::ftp::relay::{self, RelayConfig};
use crate::ftp::session::{Connection, LoginStage, LoginState, S3User};
use crate::ftp::tls::TlsMaterial;
use crate::ops::events::{Event, EventBus};
use crate::s3::Factories;
use crate::storage::{S3Backend, Shared};

/// What the accept loop needs.
pub(crate) struct ServerParts {
    /// Builds per-login S3 clients.
    pub factories: Arc<Factories>,
    /// Shared by every session's backend.
    pub shared: Arc<Shared>,
    /// Seconds of silence before a session is closed.
    pub idle_timeout: Duration,
    /// A session not logged in by then is closed, whatever it sends.
    pub login_timeout: Duration,
    /// Events.
    pub events: EventBus,
    /// Session limits.
    pub session_limits: SessionLimits,
    /// Live sessions per address.
    pub counter: SessionCounter,
    /// Failed logins per address.
    pub lockout: Arc<LoginLockout>,
    /// Refused connections are logged once per address and period.
    pub refusal_log: LogThrottle,
    /// FTPS, when on (libunftp's data connections use its `data` configuration).
    pub tls: Option<TlsMaterial>,
    /// The relay's settings: control TLS, TLS required, passive ports and address.
    pub relay: Arc<RelayConfig>,
    /// Stale multipart upload cleanup, when on.
    pub janitor: Option<Arc<crate::s3::janitor::Janitor>>,
    /// Team logins, when configured.
    pub users: Option<Arc<crate::team::users::UserTable>>,
}

/// The live sessions' control sockets, so that stop can end them.
pub(crate) type Sessions = Arc<Mutex<Vec<(u64, Arc<ControlTap>)>>>;

/// Accepts until `stop` turns true, then closes every session after `grace`.
pub(crate) async fn accept_loop(
    listener: TcpListener,
    parts: Arc<ServerParts>,
    mut stop: watch::Receiver<Option<Duration>>,
    sessions: Sessions,
) {
    let mut tasks: JoinSet<()> = JoinSet::new();
    let grace = loop {
        tokio::select! {
            changed = stop.changed() => {
                let grace = *stop.borrow();
                match (changed, grace) {
                    (Ok(()), Some(g)) => break g,
                    (Ok(()), None) => continue,
                    (Err(_), _) => break Duration::ZERO,
                }
            }
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let parts = parts.clone();
                    let sessions = sessions.clone();
                    tasks.spawn(async move {
                        let mut stream = stream;
                        let peer = match &parts.relay.proxy {
                            Some(rule) => match proxy_protocol::client_address(&mut stream, peer, rule).await {
                                Ok(client) => client,
                                Err(e) => {
                                    if parts.refusal_log.allow(peer.ip(), Instant::now()) {
                                        tracing::warn!(%peer, error = %e, "connection closed (further ones from this address within a minute are not logged)");
                                    }
                                    return;
                                }
                            },
                            None => peer,
                        };
                        serve(stream, peer, parts, sessions).await
                    });
                }
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
        }
    };
    drop(listener);
    // Drain: let running sessions finish for the grace period, then close them.
    let drained =
        tokio::time::timeout(grace, async { while tasks.join_next().await.is_some() {} }).await;
    if drained.is_err() {
        for (_, tap) in crate::sync::lock(&sessions).iter() {
            tap.close();
        }
        let _ = tokio::time::timeout(Duration::from_secs(5), async {
            while tasks.join_next().await.is_some() {}
        })
        .await;
        tasks.abort_all();
    }
}

async fn serve(
    mut stream: tokio::net::TcpStream,
    peer: SocketAddr,
    parts: Arc<ServerParts>,
    sessions: Sessions,
) {
    let _ = stream.set_nodelay(true);
    let admitted = match parts.lockout.locked(peer.ip(), Instant::now()) {
        Some(wait) => Err(Refusal::LockedOut(wait)),
        None => parts.counter.admit(peer.ip(), parts.session_limits),
    };
    let admission = match admitted {
        Ok(admission) => admission,
        Err(refusal) => {
            use tokio::io::AsyncWriteExt;
            match refusal {
                // The lock was logged when it began.
                Refusal::LockedOut(_) => tracing::debug!(%peer, ?refusal, "connection refused"),
                _ if parts.refusal_log.allow(peer.ip(), Instant::now()) => tracing::warn!(
                    %peer,
                    ?refusal,
                    "connection refused (further refusals of this address within a minute are not logged)"
                ),
                _ => tracing::debug!(%peer, ?refusal, "connection refused"),
            }
            let reply = refusal.reply();
            let _ =
                tokio::time::timeout(Duration::from_secs(2), stream.write_all(reply.as_bytes()))
                    .await;
            let _ = stream.shutdown().await;
            return;
        }
    };
    serve_admitted(stream, peer, &parts, sessions, &admission).await;
    // Dropping the admission gives its places back (also when this task is aborted).
}

/// Serves an admitted connection to its end. Returns whether it logged in (and was counted as
/// such in `parts.counter`).
async fn serve_admitted(
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    parts: &Arc<ServerParts>,
    sessions: Sessions,
    admission: &Admission<'_>,
) -> bool {
    // A second handle on the client's socket: closing it ends the relay however it is
    // stuck (a TLS handshake, a client that does not read).
    let client_socket = match socket2::SockRef::from(&stream).try_clone() {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, %peer, "could not set up the connection");
            return false;
        }
    };
    let inner_ip = relay::inner_address();
    let pair = relay::loopback_pair(inner_ip)
        .await
        .and_then(|(ours, theirs)| control_tap::split(theirs).map(|(t, tap)| (ours, t, tap)));
    let (relay_end, unftp_end, tap) = match pair {
        Ok(x) => x,
        Err(e) => {
            tracing::warn!(error = %e, %peer, "could not set up the connection");
            return false;
        }
    };
    let tap = Arc::new(tap);
    let session = parts.events.next_id();
    crate::sync::lock(&sessions).push((session, tap.clone()));
    parts.events.send(Event::SessionOpened {
        session,
        client: peer,
    });
    tracing::info!(session, %peer, "client connected");

    let login = LoginState::default();
    let conn = Connection {
        session,
        peer,
        tap: tap.clone(),
        events: parts.events.clone(),
        login: login.clone(),
    };
    let slot: UserSlot = Arc::new(Mutex::new(None));
    let backend_shared = parts.shared.clone();
    let backend_conn = conn.clone();
    let built = ServerBuilder::<S3Backend, S3User>::with_user_detail_provider(
        Box::new(move || S3Backend::new(backend_shared.clone(), backend_conn.clone())),
        Arc::new(SlotUserProvider::new(slot.clone())),
    )
    .authenticator(Arc::new(
        S3Authenticator::new(
            parts.factories.clone(),
            conn,
            slot,
            parts.lockout.clone(),
            parts.janitor.clone(),
        )
        .with_users(parts.users.clone()),
    ))
    .greeting("BucketFTP ready")
    .idle_session_timeout(parts.idle_timeout.as_secs())
    // SITE MD5 is the relay's way to run HASH/XMD5/… (the backend reports FEATURE_SITEMD5).
    .sitemd5(libunftp::options::SiteMd5::Accounts);
    // Every data connection is relayed: libunftp listens on any free loopback port and the
    // relay tells the client a port of the range on the address it reached (or the
    // masquerade address).
    let built = built.binder(AnyLoopbackPort);
    // All TLS is the relay's (control connections, and data connections under PROT P, which
    // the relay always relays and which reach libunftp plain: it never sees PROT). libunftp is
    // told of the configuration only so that FEAT lists AUTH TLS, PBSZ and PROT, and PBSZ is
    // answered.
    let built = match &parts.tls {
        Some(tls) => built.ftps_manual::<std::path::PathBuf>(tls.data.clone()),
        None => built,
    };
    let built = built.build();
    let mut logged_in = false;
    match built {
        Ok(server) => {
            let relayed = relay::run(
                stream,
                peer,
                relay_end,
                tap.clone(),
                parts.relay.clone(),
                session,
            );
            let served = async {
                if let Err(e) = server.service(unftp_end).await {
                    tracing::debug!(session, error = %e, "session ended with an error");
                }
                // libunftp is done: make sure the relay sees the end too.
                tap.close();
            };
            let both = async {
                tokio::join!(relayed, served);
            };
            tokio::pin!(both);
            let probation = async {
                match tokio::time::timeout(parts.login_timeout, login.settled()).await {
                    Ok(stage) => stage,
                    Err(_) => LoginStage::Pending,
                }
            };
            let ended = tokio::select! {
                () = &mut both => true,
                stage = probation => {
                    match stage {
                        LoginStage::LoggedIn => {
                            logged_in = true;
                            admission.logged_in();
                        }
                        LoginStage::Pending => {
                            let secs = parts.login_timeout.as_secs();
                            tracing::info!(session, %peer, secs, "not logged in in time: closing");
                            close(&tap, &client_socket);
                        }
                        LoginStage::LockedOut => {
                            tracing::debug!(session, %peer, "address locked out: closing");
                            close(&tap, &client_socket);
                        }
                    }
                    false
                }
            };
            if !ended {
                if logged_in {
                    both.await;
                } else if tokio::time::timeout(CLOSE_WAIT, &mut both).await.is_err() {
                    tracing::warn!(
                        session,
                        "session did not end after its connection was closed"
                    );
                }
            }
        }
        Err(e) => {
            tracing::error!(session, error = %e, "could not build the FTP session");
            parts.events.send(Event::Error {
                session: Some(session),
                message: format!("could not start the FTP session: {e}"),
            });
        }
    }
    crate::sync::lock(&sessions).retain(|(id, _)| *id != session);
    parts.events.send(Event::SessionClosed { session });
    tracing::info!(session, "client disconnected");
    logged_in
}

/// How long a closed session's tasks get to end before they are dropped.
const CLOSE_WAIT: Duration = Duration::from_secs(5);

/// Ends a session from outside: libunftp's end and the client's socket are shut down, so the
/// relay and libunftp both see the end whatever they were waiting for.
fn close(tap: &ControlTap, client: &socket2::Socket) {
    tap.close();
    let _ = client.shutdown(std::net::Shutdown::Both);
}

/// Binds libunftp's passive listeners to any free port on loopback (the relay listens in the
/// passive range for the client).
#[derive(Debug)]
struct AnyLoopbackPort;

#[async_trait::async_trait]
impl libunftp::options::Binder for AnyLoopbackPort {
    async fn bind(
        &mut self,
        local: std::net::IpAddr,
        _ports: RangeInclusive<u16>,
    ) -> std::io::Result<tokio::net::TcpSocket> {
        let socket = match local {
            std::net::IpAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
            std::net::IpAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
        };
        socket.bind(SocketAddr::new(local, 0))?;
        Ok(socket)
    }
}
