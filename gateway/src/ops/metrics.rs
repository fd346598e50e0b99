//! Prometheus metrics for one gateway: sessions, logins, transfers and S3 requests, in the
//! Prometheus text format ([`Metrics::render`], served by [`serve_metrics`]).
//!
//! Nothing here is global: each gateway gets its own [`Metrics`] (in an `Arc`) with its own
//! registry, so several gateways in one process (tests, the desktop app) never mix counts.
//! It is fed from two places and needs no plumbing through the other modules:
//! - the [`EventBus`](crate::ops::events::EventBus): [`Metrics::observer`] maps sessions, logins
//!   and transfers to counters;
//! - every S3 client a [`ClientFactory`](crate::s3::ClientFactory) builds: an SDK interceptor
//!   ([`Metrics::s3_interceptor`]) counts and times each operation.
//!
//! Series (no label carries a user name, a path or anything else unbounded):
//! - `bucketftp_sessions_open` (gauge)
//! - `bucketftp_logins_total{outcome="ok|failed|locked"}`
//! - `bucketftp_transfers_total{direction="upload|download",outcome="ok|failed"}`
//! - `bucketftp_transfer_bytes_total{direction}`: bytes over FTP data connections, counted as
//!   they move (failed transfers' bytes included)
//! - `bucketftp_s3_requests_total{operation,status}`: one per SDK operation (retries inside it
//!   included), `status` the final HTTP status code or `error` when no response came
//! - `bucketftp_s3_request_duration_seconds{operation}` (histogram): the whole operation,
//!   retries included; for GetObject up to the response head, not the streamed body
//! - `bucketftp_multipart_uploads_aborted_total`: successful AbortMultipartUpload calls
//! - `bucketftp_audit_events_dropped_total`: events the audit log dropped because its writer
//!   was behind (its queue is bounded, see [`crate::ops::audit`])

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::{
    BeforeSerializationInterceptorContextRef, FinalizerInterceptorContextRef,
};
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::{ConfigBag, Storable, StoreReplace};
use bytes::Bytes;
use http_body_util::Full;
use prometheus::{
    HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts, Registry, TextEncoder,
};

use crate::ops::events::{Direction, Event, Observer, TransferId};

/// The content type of [`Metrics::render`]'s text.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4";

/// S3 latency buckets, seconds: from a fast local store to a slow multi-part upload part.
const LATENCY_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// One gateway's metrics. Share it in an `Arc`.
pub struct Metrics {
    registry: Registry,
    sessions_open: IntGauge,
    logins: IntCounterVec,
    transfers: IntCounterVec,
    transfer_bytes: IntCounterVec,
    s3_requests: IntCounterVec,
    s3_latency: HistogramVec,
    multipart_aborted: IntCounter,
    audit_dropped: IntCounter,
    /// Transfers under way: their direction and the bytes already counted.
    running: Mutex<HashMap<TransferId, (Direction, u64)>>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics")
            .field("sessions_open", &self.sessions_open.get())
            .finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

fn direction_label(d: Direction) -> &'static str {
    match d {
        Direction::Upload => "upload",
        Direction::Download => "download",
    }
}

impl Metrics {
    /// Fresh metrics, every counter at zero, in a registry of their own.
    // Invariant: the names, labels and buckets are constants that the Prometheus rules
    // accept, each registered once in a fresh registry (every test here builds them).
    #[allow(clippy::expect_used)]
    pub fn new() -> Self {
        Self::build().expect("constant metric definitions are valid")
    }

    fn build() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let sessions_open = IntGauge::new("bucketftp_sessions_open", "FTP sessions open now")?;
        let logins = IntCounterVec::new(
            Opts::new("bucketftp_logins_total", "FTP logins by outcome"),
            &["outcome"],
        )?;
        let transfers = IntCounterVec::new(
            Opts::new(
                "bucketftp_transfers_total",
                "Finished FTP transfers by direction and outcome",
            ),
            &["direction", "outcome"],
        )?;
        let transfer_bytes = IntCounterVec::new(
            Opts::new(
                "bucketftp_transfer_bytes_total",
                "Bytes moved over FTP data connections, by direction",
            ),
            &["direction"],
        )?;
        let s3_requests = IntCounterVec::new(
            Opts::new(
                "bucketftp_s3_requests_total",
                "S3 operations by operation name and final HTTP status (error: no response)",
            ),
            &["operation", "status"],
        )?;
        let s3_latency = HistogramVec::new(
            HistogramOpts::new(
                "bucketftp_s3_request_duration_seconds",
                "Duration of S3 operations (retries included), by operation name",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
            &["operation"],
        )?;
        let multipart_aborted = IntCounter::new(
            "bucketftp_multipart_uploads_aborted_total",
            "Multipart uploads aborted (successful AbortMultipartUpload calls)",
        )?;
        registry.register(Box::new(sessions_open.clone()))?;
        registry.register(Box::new(logins.clone()))?;
        registry.register(Box::new(transfers.clone()))?;
        registry.register(Box::new(transfer_bytes.clone()))?;
        registry.register(Box::new(s3_requests.clone()))?;
        registry.register(Box::new(s3_latency.clone()))?;
        let audit_dropped = IntCounter::new(
            "bucketftp_audit_events_dropped_total",
            "Events the audit log dropped because its writer was behind",
        )?;
        registry.register(Box::new(multipart_aborted.clone()))?;
        registry.register(Box::new(audit_dropped.clone()))?;
        // Every known label value shows from the start, at zero.
        for outcome in ["ok", "failed", "locked"] {
            logins.with_label_values(&[outcome]);
        }
        for direction in [Direction::Upload, Direction::Download].map(direction_label) {
            transfer_bytes.with_label_values(&[direction]);
            for outcome in ["ok", "failed"] {
                transfers.with_label_values(&[direction, outcome]);
            }
        }
        Ok(Self {
            registry,
            sessions_open,
            logins,
            transfers,
            transfer_bytes,
            s3_requests,
            s3_latency,
            multipart_aborted,
            audit_dropped,
            running: Mutex::new(HashMap::new()),
        })
    }

    /// Every series in the Prometheus text format ([`CONTENT_TYPE`]).
    pub fn render(&self) -> String {
        let mut out = String::new();
        if let Err(e) = TextEncoder::new().encode_utf8(&self.registry.gather(), &mut out) {
            tracing::warn!(error = %e, "cannot render the metrics");
        }
        out
    }

    /// An [`EventBus`](crate::ops::events::EventBus) observer feeding these metrics.
    pub fn observer(self: &Arc<Self>) -> Observer {
        let metrics = self.clone();
        Arc::new(move |event: &Event| metrics.observe(event))
    }

    /// Counts one event (what [`Metrics::observer`] calls). Never blocks for long: one short
    /// lock for transfer events.
    pub fn observe(&self, event: &Event) {
        match event {
            Event::SessionOpened { .. } => self.sessions_open.inc(),
            Event::SessionClosed { .. } => self.sessions_open.dec(),
            Event::LoggedIn { .. } => self.logins.with_label_values(&["ok"]).inc(),
            Event::LoginFailed { locked, .. } => {
                let outcome = if *locked { "locked" } else { "failed" };
                self.logins.with_label_values(&[outcome]).inc();
            }
            Event::TransferStarted {
                transfer,
                direction,
                ..
            } => {
                self.running_map().insert(*transfer, (*direction, 0));
            }
            Event::TransferProgress { transfer, bytes } => {
                if let Some((direction, counted)) = self.running_map().get_mut(transfer) {
                    self.count_bytes(*direction, counted, *bytes);
                }
            }
            Event::TransferFinished { transfer, bytes } => self.ended(*transfer, *bytes, "ok"),
            Event::TransferFailed {
                transfer, bytes, ..
            } => self.ended(*transfer, *bytes, "failed"),
            Event::Changed { .. } | Event::Error { .. } => {}
        }
    }

    /// Counts one event the audit log dropped.
    pub fn audit_event_dropped(&self) {
        self.audit_dropped.inc();
    }

    fn running_map(&self) -> std::sync::MutexGuard<'_, HashMap<TransferId, (Direction, u64)>> {
        crate::sync::lock(&self.running)
    }

    /// Adds the bytes of `total` not yet `counted`.
    fn count_bytes(&self, direction: Direction, counted: &mut u64, total: u64) {
        let new = total.saturating_sub(*counted);
        if new > 0 {
            self.transfer_bytes
                .with_label_values(&[direction_label(direction)])
                .inc_by(new);
            *counted = total;
        }
    }

    fn ended(&self, transfer: TransferId, bytes: u64, outcome: &str) {
        // A transfer this observer never saw start has no direction to count it under.
        let Some((direction, mut counted)) = self.running_map().remove(&transfer) else {
            return;
        };
        self.count_bytes(direction, &mut counted, bytes);
        self.transfers
            .with_label_values(&[direction_label(direction), outcome])
            .inc();
    }

    /// Counts one finished S3 operation: its final HTTP status (`None`: no response came),
    /// how long it took, and whether it succeeded.
    pub fn s3_request(
        &self,
        operation: &str,
        status: Option<u16>,
        elapsed: Option<Duration>,
        succeeded: bool,
    ) {
        let status = status.map_or_else(|| "error".to_owned(), |s| s.to_string());
        self.s3_requests
            .with_label_values(&[operation, status.as_str()])
            .inc();
        if let Some(d) = elapsed {
            self.s3_latency
                .with_label_values(&[operation])
                .observe(d.as_secs_f64());
        }
        if succeeded && operation == "AbortMultipartUpload" {
            self.multipart_aborted.inc();
        }
    }

    /// An SDK interceptor reporting every operation of the client it is attached to.
    pub fn s3_interceptor(self: &Arc<Self>) -> S3Interceptor {
        S3Interceptor {
            metrics: self.clone(),
        }
    }
}

/// Counts and times S3 operations into [`Metrics`] (see [`Metrics::s3_interceptor`]).
#[derive(Debug, Clone)]
pub struct S3Interceptor {
    metrics: Arc<Metrics>,
}

/// When the operation began, kept in the operation's config bag.
#[derive(Debug, Clone, Copy)]
struct OperationStart(Instant);

impl Storable for OperationStart {
    type Storer = StoreReplace<Self>;
}

impl Intercept for S3Interceptor {
    fn name(&self) -> &'static str {
        "BucketFtpMetrics"
    }

    fn read_before_execution(
        &self,
        _context: &BeforeSerializationInterceptorContextRef<'_>,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        cfg.interceptor_state()
            .store_put(OperationStart(Instant::now()));
        Ok(())
    }

    fn read_after_execution(
        &self,
        context: &FinalizerInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let operation = cfg.load::<Metadata>().map_or("unknown", Metadata::name);
        let elapsed = cfg.load::<OperationStart>().map(|s| s.0.elapsed());
        let status = context.response().map(|r| r.status().as_u16());
        let succeeded = matches!(context.output_or_error(), Some(Ok(_)));
        self.metrics
            .s3_request(operation, status, elapsed, succeeded);
        Ok(())
    }
}

/// Serves `GET /metrics` (the [`Metrics::render`] text, [`CONTENT_TYPE`]) over HTTP/1.1 on
/// `listener`, 404 for anything else. Runs until its task is aborted.
pub async fn serve_metrics(listener: tokio::net::TcpListener, metrics: Arc<Metrics>) {
    use hyper_util::rt::{TokioIo, TokioTimer};
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                tracing::warn!(error = %e, "metrics: accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let response = respond(&metrics, req.method(), req.uri().path());
                async move { Ok::<_, Infallible>(response) }
            });
            let served = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(Duration::from_secs(10))
                .serve_connection(TokioIo::new(stream), service)
                .await;
            if let Err(e) = served {
                tracing::debug!(%peer, error = %e, "metrics connection ended with an error");
            }
        });
    }
}

fn respond(metrics: &Metrics, method: &hyper::Method, path: &str) -> hyper::Response<Full<Bytes>> {
    use hyper::header::{CONTENT_TYPE as CT, HeaderValue};
    if method == hyper::Method::GET && path == "/metrics" {
        let mut r = hyper::Response::new(Full::new(Bytes::from(metrics.render())));
        r.headers_mut()
            .insert(CT, HeaderValue::from_static(CONTENT_TYPE));
        r
    } else {
        let mut r = hyper::Response::new(Full::new(Bytes::from_static(b"not found\n")));
        *r.status_mut() = hyper::StatusCode::NOT_FOUND;
        r.headers_mut()
            .insert(CT, HeaderValue::from_static("text/plain"));
        r
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;
    use crate::ops::events::EventBus;

    /// The value of the series line starting with `series ` (name and labels as rendered).
    fn value(text: &str, series: &str) -> Option<f64> {
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
            .and_then(|v| v.trim().parse().ok())
    }

    fn feed(bus: &EventBus) {
        bus.send(Event::SessionOpened {
            session: 1,
            client: "127.0.0.1:5000".parse().unwrap(),
        });
        bus.send(Event::SessionOpened {
            session: 2,
            client: "127.0.0.1:5001".parse().unwrap(),
        });
        bus.send(Event::LoginFailed {
            session: 1,
            user: "AK/b".into(),
            reason: "wrong secret key".into(),
            locked: false,
        });
        bus.send(Event::LoginFailed {
            session: 2,
            user: "AK/b".into(),
            reason: "too many failed logins".into(),
            locked: true,
        });
        bus.send(Event::LoggedIn {
            session: 1,
            user: "AK/b".into(),
        });
        for (transfer, direction) in [(10, Direction::Upload), (11, Direction::Download)] {
            bus.send(Event::TransferStarted {
                session: 1,
                transfer,
                direction,
                path: "/f".into(),
                size: None,
                secure: false,
            });
        }
        bus.send(Event::TransferProgress {
            transfer: 10,
            bytes: 400,
        });
        bus.send(Event::TransferFinished {
            transfer: 10,
            bytes: 1000,
        });
        bus.send(Event::TransferFailed {
            transfer: 11,
            bytes: 30,
            reason: "cancelled".into(),
        });
        // Not seen starting: not counted, and no panic.
        bus.send(Event::TransferFinished {
            transfer: 99,
            bytes: 5,
        });
        bus.send(Event::SessionClosed { session: 2 });
    }

    #[test]
    fn events_become_series() {
        let m = Arc::new(Metrics::new());
        let bus = EventBus::with_observers(16, vec![m.observer()]);
        feed(&bus);
        let t = m.render();
        assert_eq!(value(&t, "bucketftp_sessions_open"), Some(1.0));
        assert_eq!(
            value(&t, r#"bucketftp_logins_total{outcome="ok"}"#),
            Some(1.0)
        );
        assert_eq!(
            value(&t, r#"bucketftp_logins_total{outcome="failed"}"#),
            Some(1.0)
        );
        assert_eq!(
            value(&t, r#"bucketftp_logins_total{outcome="locked"}"#),
            Some(1.0)
        );
        assert_eq!(
            value(
                &t,
                r#"bucketftp_transfers_total{direction="upload",outcome="ok"}"#
            ),
            Some(1.0)
        );
        assert_eq!(
            value(
                &t,
                r#"bucketftp_transfers_total{direction="download",outcome="failed"}"#
            ),
            Some(1.0)
        );
        assert_eq!(
            value(
                &t,
                r#"bucketftp_transfers_total{direction="download",outcome="ok"}"#
            ),
            Some(0.0)
        );
        assert_eq!(
            value(&t, r#"bucketftp_transfer_bytes_total{direction="upload"}"#),
            Some(1000.0)
        );
        assert_eq!(
            value(
                &t,
                r#"bucketftp_transfer_bytes_total{direction="download"}"#
            ),
            Some(30.0)
        );
        assert!(
            m.running_map().is_empty(),
            "finished transfers are forgotten"
        );
    }

    #[test]
    fn s3_requests_count_and_time() {
        let m = Metrics::new();
        m.s3_request(
            "PutObject",
            Some(200),
            Some(Duration::from_millis(20)),
            true,
        );
        m.s3_request(
            "PutObject",
            Some(503),
            Some(Duration::from_millis(3)),
            false,
        );
        m.s3_request("UploadPart", None, Some(Duration::from_secs(1)), false);
        m.s3_request("AbortMultipartUpload", Some(204), None, true);
        m.s3_request("AbortMultipartUpload", Some(404), None, false);
        let t = m.render();
        let requests = |op: &str, status: &str| {
            value(
                &t,
                &format!(r#"bucketftp_s3_requests_total{{operation="{op}",status="{status}"}}"#),
            )
        };
        assert_eq!(requests("PutObject", "200"), Some(1.0));
        assert_eq!(requests("PutObject", "503"), Some(1.0));
        assert_eq!(requests("UploadPart", "error"), Some(1.0));
        assert_eq!(requests("AbortMultipartUpload", "404"), Some(1.0));
        assert_eq!(
            value(
                &t,
                r#"bucketftp_s3_request_duration_seconds_count{operation="PutObject"}"#
            ),
            Some(2.0)
        );
        assert_eq!(
            value(
                &t,
                r#"bucketftp_s3_request_duration_seconds_bucket{operation="PutObject",le="0.005"}"#
            ),
            Some(1.0)
        );
        assert_eq!(
            value(&t, "bucketftp_multipart_uploads_aborted_total"),
            Some(1.0)
        );
    }

    #[test]
    fn gateways_do_not_share_counts() {
        let a = Metrics::new();
        let b = Metrics::new();
        a.observe(&Event::LoggedIn {
            session: 1,
            user: "AK/b".into(),
        });
        assert_eq!(
            value(&b.render(), r#"bucketftp_logins_total{outcome="ok"}"#),
            Some(0.0)
        );
    }

    #[tokio::test]
    async fn serves_metrics_and_404() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let m = Arc::new(Metrics::new());
        m.observe(&Event::LoggedIn {
            session: 1,
            user: "AK/b".into(),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(serve_metrics(listener, m));
        let get = |path: &'static str| async move {
            let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
            let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
            s.write_all(req.as_bytes()).await.unwrap();
            let mut out = String::new();
            s.read_to_string(&mut out).await.unwrap();
            out
        };
        let ok = get("/metrics").await;
        assert!(ok.starts_with("HTTP/1.1 200"), "{ok}");
        assert!(
            ok.to_ascii_lowercase()
                .contains("content-type: text/plain; version=0.0.4"),
            "{ok}"
        );
        assert!(
            ok.contains(r#"bucketftp_logins_total{outcome="ok"} 1"#),
            "{ok}"
        );
        let missing = get("/").await;
        assert!(missing.starts_with("HTTP/1.1 404"), "{missing}");
        server.abort();
    }
}
