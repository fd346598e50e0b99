//! The FTP side of the gateway: everything between a client's sockets and libunftp.
//!
//! - [`server`]: the accept loop; per connection a [`relay`] task and a libunftp session
//!   joined by a loopback connection, and what happens before login.
//! - [`relay`]: owns the client's control connection (TLS, command policy, reply rewriting)
//!   and carries every passive data connection ([`relay::data`]).
//! - [`control_tap`]: what the relay and the storage backend share about one session.
//! - [`session`]: one session's connection facts and its logged-in user.
//! - [`auth`]: `ACCESS_KEY_ID/bucket` and team logins.
//! - [`limits`]: session limits and the failed-login lockout (pure bookkeeping).
//! - [`tls`]: the FTPS certificate and rustls configurations.
//! - [`proxy_protocol`]: the client's address behind a load balancer.
//! - [`text`]: the MLST facts and one-line reply text (a leaf: it imports nothing).
//! - [`data_end`], [`peer_process`]: how a data connection ended, and whether a local
//!   client's process still lives (the upload commit gate's evidence).

pub mod auth;
pub(crate) mod control_tap;
pub(crate) mod data_end;
pub mod limits;
pub mod peer_process;
pub mod proxy_protocol;
pub mod relay;
pub(crate) mod server;
pub(crate) mod session;
pub mod text;
pub mod tls;
