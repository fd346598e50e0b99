//! The HTTP side: SigV4 key lookup, the accept loop and per-connection serving.
//!
//! Each accepted connection is served by hyper (HTTP/1.1 or HTTP/2) in its own task. On
//! shutdown the listener closes first, open connections finish their current request (up to
//! a grace period), and whatever is left is dropped.

use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use s3s::S3Result;
use s3s::auth::{S3Auth, SecretKey};
use s3s::service::S3Service;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;

/// How long open connections may take to finish after `stop`.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
/// A client must send complete request headers within this time.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(60);

/// Accepts exactly one access key. Unknown keys get `InvalidAccessKeyId`, as on AWS.
pub(crate) struct SingleKeyAuth {
    pub access_key: String,
    pub secret: SecretKey,
}

#[async_trait::async_trait]
impl S3Auth for SingleKeyAuth {
    async fn get_secret_key(&self, access_key: &str) -> S3Result<SecretKey> {
        if access_key == self.access_key {
            Ok(self.secret.clone())
        } else {
            Err(s3s::s3_error!(
                InvalidAccessKeyId,
                "The AWS Access Key Id you provided does not exist in our records."
            ))
        }
    }
}

/// Accepts connections until `shutdown` changes or its sender is dropped.
pub(crate) async fn serve(
    listener: TcpListener,
    service: S3Service,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            _ = shutdown.changed() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => {
                    conns.spawn(serve_connection(stream, service.clone(), shutdown.clone()));
                }
                Err(e) => {
                    // E.g. out of file descriptors: back off instead of spinning.
                    tracing::warn!(error = %e, "localstore: accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
    drop(listener);
    let drained = tokio::time::timeout(SHUTDOWN_GRACE, async {
        while conns.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::debug!("localstore: closing connections that outlived the grace period");
    }
    conns.shutdown().await;
}

async fn serve_connection(
    stream: TcpStream,
    service: S3Service,
    mut shutdown: watch::Receiver<bool>,
) {
    let _ = stream.set_nodelay(true);
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    let conn = builder.serve_connection(TokioIo::new(stream), service);
    tokio::pin!(conn);
    tokio::select! {
        res = conn.as_mut() => {
            if let Err(e) = res {
                tracing::debug!(error = %e, "localstore: connection ended with an error");
            }
        }
        _ = shutdown.changed() => {
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        }
    }
}
