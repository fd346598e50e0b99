//! A throttling store: S3 answering `503 SlowDown` (through `faultproxy`, in front of each
//! selected store). A few refusals are retried and the FTP client never notices; a store that
//! keeps refusing becomes `451` with the reason in words, the old object stays as it was and
//! no multipart upload is left behind. The proxy's request count also shows that a listing
//! costs one ListObjectsV2 per 1,000 entries and no HEAD per object.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod faultproxy;
mod rawftp;
#[macro_use]
mod support;

use std::time::Duration;

use faultproxy::FaultProxy;
use gateway::{Gateway, GatewayConfig, GatewayHandle, S3Settings};
use rawftp::{Raw, data};
use suppaftp::tokio::AsyncFtpStream;
use support::{S3Kind, TestS3};

const BUCKET: &str = "faults-bucket";
const MIB: usize = 1024 * 1024;

struct Env {
    s3: TestS3,
    proxy: FaultProxy,
    gw: GatewayHandle,
}

impl Env {
    async fn start(kind: S3Kind) -> Env {
        let s3 = TestS3::start(kind).await;
        s3.create_bucket(BUCKET).await;
        let proxy = FaultProxy::start(&s3.endpoint).await;
        let settings = S3Settings::custom(proxy.endpoint.clone(), s3.region.clone());
        let gw = support::start_gateway(settings, |c| c.limits = support::small_parts(2)).await;
        Env { s3, proxy, gw }
    }

    fn user(&self) -> String {
        format!("{}/{BUCKET}", self.s3.access_key)
    }

    async fn ftp(&self) -> AsyncFtpStream {
        let mut ftp = AsyncFtpStream::connect(self.gw.local_addr())
            .await
            .expect("connect");
        ftp.login(self.user(), self.s3.secret_key.clone())
            .await
            .expect("login");
        ftp.transfer_type(suppaftp::types::FileType::Binary)
            .await
            .expect("TYPE I");
        ftp
    }

    /// A raw STOR of `body` that ends properly; returns the final reply.
    async fn raw_stor(&self, key: &str, body: &[u8]) -> (u32, String) {
        let mut raw = Raw::connect(self.gw.local_addr()).await;
        raw.login(&self.user(), &self.s3.secret_key).await;
        let mut dc = raw.data(&format!("STOR {key}")).await;
        for chunk in body.chunks(MIB) {
            assert!(
                dc.write(chunk).await,
                "the gateway closed the data connection"
            );
        }
        dc.finish().await;
        raw.reply().await
    }
}

each_store!(throttling_is_retried_then_451);
async fn throttling_is_retried_then_451(kind: S3Kind) {
    let env = Env::start(kind).await;

    // A few refusals are retried: the client sees nothing.
    env.proxy.slow_down("GET", "list-type=2", Some(2));
    let mut ftp = env.ftp().await;
    let body = data(MIB, 1);
    env.proxy.slow_down("PUT", "x-id=PutObject", Some(2));
    ftp.put_file("retried.bin", &mut &body[..])
        .await
        .unwrap_or_else(|e| panic!("{kind:?}: upload through two SlowDowns: {e}"));
    assert_eq!(
        env.proxy.faults(),
        4,
        "{kind:?}: the two listings and two PUTs refused"
    );
    assert_eq!(
        env.s3.get(BUCKET, "retried.bin").await.as_deref(),
        Some(&body[..]),
        "{kind:?}: object after retries"
    );
    let _ = ftp.quit().await;

    // A store that keeps refusing the upload: 451 with the reason, the old object stays.
    let old = b"the old content".to_vec();
    env.s3.put(BUCKET, "kept.bin", old.clone()).await;
    env.proxy.slow_down("PUT", "x-id=PutObject", None);
    let (code, text) = env.raw_stor("kept.bin", &data(MIB, 2)).await;
    assert_eq!(code, 451, "{kind:?}: single PUT refused for good: {text}");
    assert!(
        text.contains("SlowDown"),
        "{kind:?}: the reason is told: {text}"
    );
    assert_eq!(
        env.s3.get(BUCKET, "kept.bin").await.as_deref(),
        Some(&old[..]),
        "{kind:?}: old object after a refused PUT"
    );

    // The same for a multipart upload whose parts are refused: aborted, nothing left.
    env.proxy.clear();
    env.proxy.slow_down("PUT", "partNumber=", None);
    let (code, text) = env.raw_stor("kept.bin", &data(12 * MIB, 3)).await;
    assert_eq!(code, 451, "{kind:?}: parts refused for good: {text}");
    assert!(
        text.contains("SlowDown"),
        "{kind:?}: the reason is told: {text}"
    );
    env.proxy.clear();
    assert_eq!(
        env.s3.get(BUCKET, "kept.bin").await.as_deref(),
        Some(&old[..]),
        "{kind:?}: old object after refused parts"
    );
    let left = env
        .s3
        .multipart_uploads_settled(BUCKET, 50, Duration::from_millis(100))
        .await;
    assert!(
        left.is_empty(),
        "{kind:?}: multipart uploads left: {left:?}"
    );

    // And the store is usable again at once.
    let mut ftp = env.ftp().await;
    let fresh = data(6 * MIB, 4);
    ftp.put_file("kept.bin", &mut &fresh[..])
        .await
        .unwrap_or_else(|e| panic!("{kind:?}: upload after the throttling: {e}"));
    assert_eq!(
        env.s3.get(BUCKET, "kept.bin").await.as_deref(),
        Some(&fresh[..])
    );
    assert!(env.proxy.forwarded() > 0);
}

/// The request counter of the proxy also shows what a listing costs: one ListObjectsV2 per
/// 1,000 entries, no HEAD per object.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listing_costs_one_request_per_page() {
    require_store!(Local);
    use futures::StreamExt;
    let env = Env::start(S3Kind::Local).await;
    let keys: Vec<String> = (0..3_000).map(|i| format!("many/f{i:05}.txt")).collect();
    let client = env.s3.client.clone();
    let puts: Vec<_> = futures::stream::iter(keys.into_iter().map(|k| {
        let c = client.clone();
        async move {
            c.put_object()
                .bucket(BUCKET)
                .key(k)
                .body(aws_sdk_s3::primitives::ByteStream::from_static(b"1"))
                .send()
                .await
                .map(|_| ())
        }
    }))
    .buffer_unordered(64)
    .collect()
    .await;
    assert!(puts.iter().all(|r| r.is_ok()), "direct puts");
    let mut ftp = env.ftp().await;
    let before = env.proxy.forwarded();
    let lines = ftp.mlsd(Some("/many")).await.expect("MLSD");
    let requests = env.proxy.forwarded() - before;
    assert_eq!(lines.len(), 3_000);
    // 3 pages of 1,000; a request or two more are fine (a folder check), 3,000 HEADs are not.
    assert!(
        (3..=5).contains(&requests),
        "MLSD of 3,000 objects took {requests} S3 requests"
    );
    println!("MLSD of 3,000 objects: {requests} S3 requests");
}

/// AWS without a region: the first call is signed for us-east-1, the store answers `301
/// PermanentRedirect` with the bucket's region (as AWS does, here from the proxy), and the
/// login and everything after it use that region.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_bucket_region_is_found_at_login() {
    require_store!(Local);
    let s3 = TestS3::start(S3Kind::Local).await;
    s3.create_bucket(BUCKET).await;
    let proxy = FaultProxy::start(&s3.endpoint).await;
    proxy.bucket_in_region(&s3.region);
    let mut config = GatewayConfig::new(S3Settings {
        provider: gateway::Provider::Aws,
        endpoint: Some(proxy.endpoint.clone()),
        region: None,
        addressing: Some(gateway::Addressing::Path),
    });
    config.listen = "127.0.0.1:0".parse().unwrap();
    let gw = Gateway::start(config).await.expect("gateway");
    let env = Env { s3, proxy, gw };
    let mut ftp = env.ftp().await;
    assert_eq!(env.proxy.redirects(), 1, "one call signed for us-east-1");
    let body = data(2 * MIB, 5);
    ftp.put_file("regional.bin", &mut &body[..])
        .await
        .expect("upload in the found region");
    let mut back = Vec::new();
    let mut stream = ftp.retr_as_stream("regional.bin").await.expect("RETR");
    tokio::io::AsyncReadExt::read_to_end(&mut stream, &mut back)
        .await
        .unwrap();
    stream.finish().await.unwrap();
    assert_eq!(back, body);
    assert_eq!(
        env.s3.get(BUCKET, "regional.bin").await.as_deref(),
        Some(&body[..])
    );
    assert_eq!(
        env.proxy.redirects(),
        1,
        "no call after the login was misdirected"
    );

    // A region set by hand is not second-guessed, but a wrong one is named in the refusal.
    let mut config =
        GatewayConfig::new(S3Settings::custom(env.proxy.endpoint.clone(), "us-east-1"));
    config.listen = "127.0.0.1:0".parse().unwrap();
    let pinned = Gateway::start(config).await.expect("gateway");
    let mut raw = Raw::connect(pinned.local_addr()).await;
    let (code, text) = raw.try_login(&env.user(), &env.s3.secret_key).await;
    assert_eq!(code, 530, "{text}");
    assert!(
        text.contains(&format!("lives in region {}", env.s3.region)),
        "the refusal names the bucket's region: {text}"
    );
}
