//! End-to-end: a gateway with Prometheus metrics and an audit log, against the local
//! store. The
//! metrics are scraped over real HTTP before and after a refused login, an accepted one, an
//! upload and a download; the audit file is read after the gateway stops.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[macro_use]
mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use gateway::{Gateway, GatewayConfig, Metrics, S3Settings, TransferLimits};
use suppaftp::tokio::AsyncFtpStream;
use support::{S3Kind, TestS3};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const BUCKET: &str = "metrics-bucket";
const MIB: usize = 1024 * 1024;
const WRONG_SECRET: &str = "not-the-secret-4711";

/// GETs `path` from `addr`: (status line, content type, body).
async fn http_get(addr: std::net::SocketAddr, path: &str) -> (String, String, String) {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    s.write_all(request.as_bytes()).await.unwrap();
    let mut reply = String::new();
    s.read_to_string(&mut reply).await.unwrap();
    let (head, body) = reply.split_once("\r\n\r\n").unwrap();
    let status = head.lines().next().unwrap_or_default().to_owned();
    let content_type = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-type")
                .then(|| v.trim().to_owned())
        })
        .unwrap_or_default();
    (status, content_type, body.to_owned())
}

/// The sum of every series of `name` whose labels contain all of `labels` (0 when none).
fn sum(text: &str, name: &str, labels: &[&str]) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            let rest = series.strip_prefix(name)?;
            let matches = (rest.is_empty() || rest.starts_with('{'))
                && labels.iter().all(|want| rest.contains(want));
            matches.then(|| value.parse::<f64>().ok()).flatten()
        })
        .sum()
}

#[cfg_attr(
    not(test_store = "local"),
    ignore = "store local not selected (BUCKETFTP_TEST_STORES)"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_and_audit_log_follow_a_session() {
    let s3 = TestS3::start(S3Kind::Local).await;
    s3.create_bucket(BUCKET).await;

    let metrics = Arc::new(Metrics::new());
    let metrics_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let metrics_addr = metrics_listener.local_addr().unwrap();
    let server = tokio::spawn(gateway::serve_metrics(metrics_listener, metrics.clone()));

    let dir = support::temp_dir("metrics-audit");
    let audit_path = dir.join("audit.log");
    let mut config = GatewayConfig::new(S3Settings::custom(s3.endpoint.clone(), s3.region.clone()));
    config.listen = "127.0.0.1:0".parse().unwrap();
    config.limits = TransferLimits::new(5 * MIB, 2, 32 * MIB).unwrap();
    config.metrics = Some(metrics.clone());
    config.audit_log = Some(audit_path.clone());
    let gw = Gateway::start(config).await.unwrap();

    let (status, content_type, before) = http_get(metrics_addr, "/metrics").await;
    assert!(status.starts_with("HTTP/1.1 200"), "{status}");
    assert_eq!(content_type, "text/plain; version=0.0.4");
    let (status, _, _) = http_get(metrics_addr, "/nothing-here").await;
    assert!(status.starts_with("HTTP/1.1 404"), "{status}");

    let user = format!("{}/{BUCKET}", s3.access_key);
    // A refused login: a wrong secret (the store checks signatures).
    let mut wrong = AsyncFtpStream::connect(gw.local_addr()).await.unwrap();
    assert!(
        wrong
            .login(user.clone(), WRONG_SECRET.to_owned())
            .await
            .is_err()
    );
    let _ = wrong.quit().await;

    // An accepted login, one upload and one download.
    let body: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    let mut ftp = AsyncFtpStream::connect(gw.local_addr()).await.unwrap();
    ftp.login(user.clone(), s3.secret_key.clone())
        .await
        .unwrap();
    ftp.transfer_type(suppaftp::types::FileType::Binary)
        .await
        .unwrap();
    let mut up = ftp.put_with_stream("m.bin").await.unwrap();
    up.write_all(&body).await.unwrap();
    up.finish().await.unwrap();
    let mut down = ftp.retr_as_stream("m.bin").await.unwrap();
    let mut got = Vec::new();
    down.read_to_end(&mut got).await.unwrap();
    down.finish().await.unwrap();
    assert_eq!(got, body);
    ftp.quit().await.unwrap();

    // The download's end and the sessions' close are reported as the server sees them:
    // scrape until they show (or give up and let the assertions below say what is missing).
    let size = body.len() as f64;
    let deadline = Instant::now() + Duration::from_secs(10);
    let after = loop {
        let (_, _, text) = http_get(metrics_addr, "/metrics").await;
        let settled = sum(&text, "bucketftp_transfers_total", &[r#"outcome="ok""#]) >= 2.0
            && sum(&text, "bucketftp_sessions_open", &[]) == 0.0;
        if settled || Instant::now() > deadline {
            break text;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let moved =
        |name: &str, labels: &[&str]| sum(&after, name, labels) - sum(&before, name, labels);
    assert_eq!(
        moved("bucketftp_logins_total", &[r#"outcome="ok""#]),
        1.0,
        "{after}"
    );
    assert_eq!(
        moved("bucketftp_logins_total", &[r#"outcome="failed""#]),
        1.0,
        "{after}"
    );
    assert_eq!(
        moved("bucketftp_logins_total", &[r#"outcome="locked""#]),
        0.0,
        "{after}"
    );
    for direction in ["upload", "download"] {
        let d = format!(r#"direction="{direction}""#);
        assert_eq!(
            moved("bucketftp_transfers_total", &[&d, r#"outcome="ok""#]),
            1.0,
            "{after}"
        );
        assert_eq!(
            moved("bucketftp_transfers_total", &[&d, r#"outcome="failed""#]),
            0.0,
            "{after}"
        );
        assert_eq!(
            moved("bucketftp_transfer_bytes_total", &[&d]),
            size,
            "{after}"
        );
    }
    assert_eq!(sum(&after, "bucketftp_sessions_open", &[]), 0.0, "{after}");
    let put = [r#"operation="PutObject""#];
    assert!(moved("bucketftp_s3_requests_total", &put) > 0.0, "{after}");
    assert!(
        sum(
            &after,
            "bucketftp_s3_requests_total",
            &[r#"operation="PutObject""#, r#"status="200""#]
        ) > 0.0,
        "{after}"
    );
    assert!(
        sum(
            &after,
            "bucketftp_s3_requests_total",
            &[r#"operation="ListObjectsV2""#, r#"status="403""#]
        ) >= 1.0,
        "the refused login's probe: {after}"
    );
    assert!(
        moved("bucketftp_s3_request_duration_seconds_count", &put) > 0.0,
        "{after}"
    );
    assert!(
        moved("bucketftp_s3_request_duration_seconds_count", &[]) >= 3.0,
        "{after}"
    );

    gw.stop(Duration::from_secs(5)).await;
    server.abort();

    let text = std::fs::read_to_string(&audit_path).unwrap();
    assert!(
        !text.contains(&s3.secret_key),
        "secret key in the audit log"
    );
    assert!(
        !text.contains(WRONG_SECRET),
        "tried password in the audit log"
    );
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let of = |event: &str| -> Vec<&serde_json::Value> {
        lines.iter().filter(|l| l["event"] == event).collect()
    };
    let logins = of("login");
    assert_eq!(logins.len(), 2, "{text}");
    assert_eq!(logins[0]["outcome"], "failed");
    assert_eq!(logins[1]["outcome"], "ok");
    for l in &logins {
        assert_eq!(l["user"], user.as_str());
        assert!(
            l["client"].as_str().unwrap().starts_with("127.0.0.1:"),
            "{l}"
        );
        assert!(l["time"].as_str().unwrap().ends_with('Z'), "{l}");
    }
    let transfers = of("transfer");
    assert_eq!(transfers.len(), 2, "{text}");
    for (t, direction) in transfers.iter().zip(["upload", "download"]) {
        assert_eq!(t["direction"], direction, "{t}");
        assert_eq!(t["outcome"], "ok", "{t}");
        assert_eq!(t["bytes"], body.len(), "{t}");
        assert_eq!(t["user"], user.as_str(), "{t}");
        assert_eq!(t["session"], logins[1]["session"], "{t}");
        assert!(t["path"].as_str().unwrap().ends_with("m.bin"), "{t}");
    }
    let logouts = of("logout");
    assert_eq!(logouts.len(), 1, "only the session that logged in: {text}");
    assert_eq!(logouts[0]["session"], logins[1]["session"]);
    assert_eq!(logouts[0]["user"], user.as_str());
    assert_eq!(lines.len(), 5, "{text}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn an_unusable_audit_path_stops_the_start() {
    let mut config = GatewayConfig::new(S3Settings::custom("http://127.0.0.1:9", "x"));
    config.listen = "127.0.0.1:0".parse().unwrap();
    config.audit_log = Some(support::temp_dir("audit-bad").join("no/such/dir/audit.log"));
    let err = Gateway::start(config).await.err().unwrap();
    assert!(matches!(err, gateway::StartError::AuditLog { .. }), "{err}");
    assert!(
        err.to_string().contains("cannot open the audit log"),
        "{err}"
    );
}
