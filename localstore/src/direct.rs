//! In-process requests: a client in the same process as a running [`crate::LocalStore`] may
//! hand it S3 requests as values instead of over its loopback HTTP connection.
//!
//! Every running store is listed here under the address clients reach it at (its
//! [`crate::LocalStore::endpoint`]: a wildcard bind is listed as loopback), from `start` until
//! `stop` (or drop). [`direct`] finds the store behind an address; [`Direct::call`] runs one
//! request through the very service the HTTP listener uses (same signature check, same
//! operations, same errors), so the only thing skipped is the socket: no copy of the body
//! through the kernel, no HTTP framing. The request body streams into the store as the caller
//! produces it, and the reply's body streams out as the caller reads it. Dropping the future
//! drops the request part-way, as a closed connection does over HTTP.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

use bytes::Bytes;
use s3s::service::S3Service;

/// The body of a reply to [`Direct::call`] (an HTTP body of `Bytes` frames).
pub use s3s::Body;

/// The error type of a request body handed to [`Direct::call`].
pub type BodyError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// The stores running in this process, by listen address, each with its registration number.
static RUNNING: Mutex<Option<HashMap<SocketAddr, (u64, S3Service)>>> = Mutex::new(None);

/// Numbers registrations, so that a store dropped after another took its address unlists only
/// itself.
static NEXT: AtomicU64 = AtomicU64::new(0);

/// A running store's service, reached without a socket. Cheap to clone.
#[derive(Clone)]
pub struct Direct {
    service: S3Service,
}

impl std::fmt::Debug for Direct {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Direct").finish_non_exhaustive()
    }
}

/// Why an in-process request got no reply.
#[derive(Debug, thiserror::Error)]
#[error("the local store failed the request: {0}")]
pub struct DirectError(BodyError);

/// The store of this process listening on `addr`, if one is running.
#[must_use]
pub fn direct(addr: SocketAddr) -> Option<Direct> {
    let running = RUNNING.lock().unwrap_or_else(PoisonError::into_inner);
    running
        .as_ref()
        .and_then(|m| m.get(&addr))
        .map(|(_, service)| Direct {
            service: service.clone(),
        })
}

impl Direct {
    /// Runs one S3 request, shaped as it would be sent over HTTP (the URI may be absolute;
    /// without a `Host` header the URI's authority is used, as an HTTP client would send it
    /// and as SigV4 signed it). The reply is what an HTTP client would receive: no body for
    /// a HEAD request or a status that has none (the service writes an error document for
    /// every error, which the HTTP server leaves out for those).
    ///
    /// # Errors
    /// [`DirectError`] when the service could produce no reply at all. S3 errors, including
    /// a request body that failed part-way (`IncompleteBody`), are replies.
    pub async fn call<B>(&self, req: http::Request<B>) -> Result<http::Response<Body>, DirectError>
    where
        B: http_body::Body<Data = Bytes> + Send + Sync + 'static,
        BodyError: From<B::Error>,
    {
        let (mut parts, body) = req.into_parts();
        if !parts.headers.contains_key(http::header::HOST)
            && let Some(host) = host_header(&parts.uri)
        {
            parts.headers.insert(http::header::HOST, host);
        }
        let head = parts.method == http::Method::HEAD;
        let req = http::Request::from_parts(parts, Body::http_body(body));
        let reply = self
            .service
            .call(req)
            .await
            .map_err(|e| DirectError(e.into()))?;
        Ok(if head || !status_has_body(reply.status()) {
            reply.map(|_| Body::empty())
        } else {
            reply
        })
    }
}

/// The `Host` header an HTTP/1.1 client sends for `uri`: its authority, without the port
/// when it is the scheme's default (as SigV4 signs it). Pure.
fn host_header(uri: &http::Uri) -> Option<http::HeaderValue> {
    let authority = uri.authority()?;
    let default_port = match uri.scheme_str() {
        Some("https") => 443,
        _ => 80,
    };
    let host = match authority.port_u16() {
        Some(p) if p == default_port => authority.host(),
        _ => authority.as_str(),
    };
    http::HeaderValue::from_str(host).ok()
}

/// Whether a reply with `status` may carry a body (RFC 9110: not 1xx, 204 or 304). Pure.
fn status_has_body(status: http::StatusCode) -> bool {
    !(status.is_informational()
        || status == http::StatusCode::NO_CONTENT
        || status == http::StatusCode::NOT_MODIFIED)
}

/// Lists a started store under `addr` until dropped.
pub(crate) struct Registration {
    addr: SocketAddr,
    number: u64,
}

impl Registration {
    pub(crate) fn new(addr: SocketAddr, service: S3Service) -> Self {
        let number = NEXT.fetch_add(1, Ordering::Relaxed);
        let mut running = RUNNING.lock().unwrap_or_else(PoisonError::into_inner);
        running
            .get_or_insert_with(HashMap::new)
            .insert(addr, (number, service));
        Self { addr, number }
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        let mut running = RUNNING.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(m) = running.as_mut()
            && m.get(&self.addr).is_some_and(|(n, _)| *n == self.number)
        {
            m.remove(&self.addr);
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;

    #[test]
    fn host_header_as_an_http_client_sends_it() {
        let table = [
            ("http://127.0.0.1:9000/b/k", Some("127.0.0.1:9000")),
            ("http://127.0.0.1:80/b/k", Some("127.0.0.1")),
            ("https://127.0.0.1:443/b", Some("127.0.0.1")),
            ("https://127.0.0.1:80/b", Some("127.0.0.1:80")),
            ("http://[::1]:9000/", Some("[::1]:9000")),
            ("/b/k", None),
        ];
        for (uri, want) in table {
            let got = host_header(&uri.parse().unwrap());
            assert_eq!(got.as_ref().map(|h| h.to_str().unwrap()), want, "{uri}");
        }
    }

    #[test]
    fn replies_without_a_body() {
        use http::StatusCode;
        for (status, body) in [
            (StatusCode::OK, true),
            (StatusCode::NOT_FOUND, true),
            (StatusCode::PARTIAL_CONTENT, true),
            (StatusCode::NO_CONTENT, false),
            (StatusCode::NOT_MODIFIED, false),
            (StatusCode::CONTINUE, false),
        ] {
            assert_eq!(status_has_body(status), body, "{status}");
        }
    }
}
