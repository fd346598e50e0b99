//! A throttling store: S3 answering `503 SlowDown` (through `faultproxy`, in front of each
//! selected store). A few refusals are retried and the FTP client never notices; a store that
//! keeps refusing becomes `451` with the reason in words, the old object stays as it was and
//! no multipart upload is left behind. The proxy's request count also shows that a listing
//! costs one ListObjectsV2 per 1,000 entries and no HEAD per object.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod faultproxy;
mod ftpops;
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
    env.s3
        .assert_no_uploads_left(BUCKET, &format!("{kind:?}"))
        .await;

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
#[cfg_attr(
    not(test_store = "local"),
    ignore = "store local not selected (BUCKETFTP_TEST_STORES)"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listing_costs_one_request_per_page() {
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
#[cfg_attr(
    not(test_store = "local"),
    ignore = "store local not selected (BUCKETFTP_TEST_STORES)"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_bucket_region_is_found_at_login() {
    let s3 = TestS3::start(S3Kind::Local).await;
    s3.create_bucket(BUCKET).await;
    let proxy = FaultProxy::start(&s3.endpoint).await;
    proxy.bucket_in_region(&s3.region);
    let mut config = GatewayConfig::new(S3Settings {
        provider: gateway::Provider::Aws,
        endpoint: Some(proxy.endpoint.clone()),
        region: None,
        addressing: Some(gateway::Addressing::Path),
        checksum: None,
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

each_store!(a_big_part_upload_leaves_memory_for_a_download);
/// One upload whose parts have grown to the largest size cannot take the memory every other
/// transfer needs: with its largest part held by the store (the proxy) while the next one
/// fills, a download on another session still gets chunks (from the reserve) and completes.
async fn a_big_part_upload_leaves_memory_for_a_download(kind: S3Kind) {
    use gateway::storage::download::CHUNK;
    // 5 MiB first parts, 32 MiB of memory, one part per growth step: 5, 10, then the
    // largest parts, two of which take all the memory an upload may have. (Small parts: the
    // store must take a largest part within 5 s at the rate measured, or it gets smaller ones.)
    let limits = gateway::TransferLimits::new(5 * MIB, 2, 32 * MIB)
        .unwrap()
        .with_part_ceiling(6);
    let s3 = TestS3::start(kind).await;
    s3.create_bucket(BUCKET).await;
    let proxy = FaultProxy::start(&s3.endpoint).await;
    let settings = S3Settings::custom(proxy.endpoint.clone(), s3.region.clone());
    let gw = support::start_gateway(settings, |c| c.limits = limits).await;
    let env = Env { s3, proxy, gw };
    let file = data(3 * CHUNK as usize + 1000, 7);
    env.s3.put(BUCKET, "read.bin", file.clone()).await;

    // The upload fills part 4 (a largest part), which the store holds, and starts part 5.
    let schedule = limits.schedule(false);
    assert_eq!(
        schedule.size(4),
        schedule.size(6),
        "part 4 is a largest part"
    );
    env.proxy.hold("PUT", "partNumber=4");
    let mut raw = Raw::connect(env.gw.local_addr()).await;
    raw.login(&env.user(), &env.s3.secret_key).await;
    let mut dc = raw.data("STOR big.bin").await;
    let mut sent = data(schedule.offset(5) as usize + MIB, 8);
    for chunk in sent.chunks(MIB) {
        assert!(dc.write(chunk).await, "{kind:?}: upload refused early");
    }
    for _ in 0..500 {
        if env.proxy.held() > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(env.proxy.held(), 1, "{kind:?}: part 4 reached the store");

    // A download meanwhile: its chunks need memory while the upload holds its two parts.
    let mut ftp = env.ftp().await;
    let got = tokio::time::timeout(Duration::from_secs(30), async {
        let mut stream = ftp.retr_as_stream("read.bin").await.expect("RETR");
        let mut back = Vec::new();
        tokio::io::AsyncReadExt::read_to_end(&mut stream, &mut back)
            .await
            .unwrap();
        stream.finish().await.unwrap();
        back
    })
    .await
    .unwrap_or_else(|_| panic!("{kind:?}: the download waited behind the upload's parts"));
    assert!(got == file, "{kind:?}: downloaded bytes differ");
    assert_eq!(env.proxy.held(), 1, "{kind:?}: the part was held all along");

    // The store takes the part: the upload completes whole.
    env.proxy.release();
    let tail = data(3 * MIB, 9);
    assert!(dc.write(&tail).await);
    dc.finish().await;
    let (code, text) = raw.reply().await;
    assert_eq!(code, 226, "{kind:?}: {text}");
    sent.extend_from_slice(&tail);
    let stored = env.s3.get(BUCKET, "big.bin").await.unwrap();
    assert!(stored == sent, "{kind:?}: stored object differs");
}

each_store!(without_an_etag_chunks_are_pinned_to_the_date);
/// A store that sends no ETag: the chunks after the first are pinned to Last-Modified
/// (`If-Unmodified-Since`), so an overwrite mid-download still fails it, in words.
async fn without_an_etag_chunks_are_pinned_to_the_date(kind: S3Kind) {
    use gateway::storage::download::CHUNK;
    use tokio::io::AsyncReadExt;
    let env = Env::start(kind).await;
    let chunk = CHUNK as usize;
    let old = data(6 * chunk, 1);
    env.s3.put(BUCKET, "dated.bin", old.clone()).await;
    // Dates are to the second: the overwrite must come in a later one.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    env.proxy.drop_reply_headers("GET", "dated.bin", &["ETag"]);
    let mut ftp = env.ftp().await;
    let mut stream = ftp.retr_as_stream("dated.bin").await.unwrap();
    let mut got = vec![0u8; MIB];
    stream.read_exact(&mut got).await.unwrap();
    // The client stalls (see download.rs's an_overwrite_mid_download_fails_it).
    env.s3.put(BUCKET, "dated.bin", data(6 * chunk, 2)).await;
    let mut rest = Vec::new();
    let _ = stream.read_to_end(&mut rest).await;
    got.extend_from_slice(&rest);
    let reply = stream.finish().await;
    assert!(env.proxy.edited() >= 2, "{kind:?}: ETags were dropped");
    assert!(
        got.len() < old.len(),
        "{kind:?}: the whole object arrived after an overwrite"
    );
    assert!(got == old[..got.len()], "{kind:?}: two versions were mixed");
    let (code, text) = ftpops::refused(reply.unwrap_err());
    assert_eq!(code, 451, "{kind:?}: {text}");
    assert!(
        text.contains("changed on the store during the download") && text.contains("again"),
        "{kind:?}: {text}"
    );
}

each_store!(without_validators_the_rest_is_one_stream);
/// A store that sends neither ETag nor Last-Modified: nothing to pin chunks to, so the rest
/// of the file after the first chunk is one GET stream.
async fn without_validators_the_rest_is_one_stream(kind: S3Kind) {
    use gateway::storage::download::CHUNK;
    use tokio::io::AsyncReadExt;
    let env = Env::start(kind).await;
    let file = data(4 * CHUNK as usize + 5, 3);
    env.s3.put(BUCKET, "plain.bin", file.clone()).await;
    env.proxy
        .drop_reply_headers("GET", "plain.bin", &["ETag", "Last-Modified"]);
    let mut ftp = env.ftp().await;
    for offset in [0, CHUNK as usize + 3] {
        let before = env.proxy.edited();
        ftp.resume_transfer(offset).await.unwrap();
        let mut stream = ftp.retr_as_stream("plain.bin").await.unwrap();
        let mut got = Vec::new();
        stream.read_to_end(&mut got).await.unwrap();
        stream.finish().await.unwrap();
        assert!(
            got == file[offset..],
            "{kind:?}: REST {offset}: bytes differ"
        );
        assert_eq!(
            env.proxy.edited() - before,
            2,
            "{kind:?}: REST {offset}: the first chunk and one GET for the rest"
        );
    }
}

each_store!(a_resume_whose_kept_bytes_come_back_unranged_is_refused);
/// Resume (REST + STOR) where the store ignores the Range of the GET for the kept bytes that
/// are not copied inside the store: refused in words, the old object stays, and the multipart
/// upload that copied the whole parts is aborted.
async fn a_resume_whose_kept_bytes_come_back_unranged_is_refused(kind: S3Kind) {
    let env = Env::start(kind).await;
    let old = data(12 * MIB, 4);
    env.s3.put(BUCKET, "resumed.bin", old.clone()).await;
    env.proxy.ignore_range("GET", "resumed.bin");
    let mut raw = Raw::connect(env.gw.local_addr()).await;
    raw.login(&env.user(), &env.s3.secret_key).await;
    // 7 MiB kept: the first 5 MiB part copied inside the store, 2 MiB from a ranged GET.
    let (code, text) = raw.cmd(&format!("REST {}", 7 * MIB)).await;
    assert_eq!(code, 350, "{text}");
    let mut dc = raw.data("STOR resumed.bin").await;
    let _ = dc.write(&data(MIB, 5)).await;
    dc.finish().await;
    let (code, text) = raw.reply().await;
    assert_eq!(code, 451, "{kind:?}: {text}");
    assert!(
        text.contains("ignored the range") && text.contains("nothing was stored"),
        "{kind:?}: {text}"
    );
    assert_eq!(env.proxy.edited(), 1, "{kind:?}: the kept bytes' GET");
    env.proxy.clear();
    assert!(
        env.s3.get(BUCKET, "resumed.bin").await.unwrap() == old,
        "{kind:?}: the old object changed"
    );
    env.s3
        .assert_no_uploads_left(BUCKET, &format!("{kind:?}"))
        .await;
}

each_store!(loopback_uploads_go_unsigned);
/// The store is on loopback (the proxy), so upload bodies go as `UNSIGNED-PAYLOAD` (no
/// SHA-256 pass over every byte) and the store takes them; other requests stay signed.
async fn loopback_uploads_go_unsigned(kind: S3Kind) {
    let env = Env::start(kind).await;
    let small = data(MIB, 31);
    let large = data(11 * MIB + 5, 32);
    assert_eq!(env.raw_stor("single.bin", &small).await.0, 226, "{kind:?}");
    assert_eq!(env.raw_stor("parts.bin", &large).await.0, 226, "{kind:?}");
    let puts = env.proxy.payload_hashes("PUT", "x-id=PutObject");
    let parts = env.proxy.payload_hashes("PUT", "partNumber=");
    assert_eq!(puts, ["UNSIGNED-PAYLOAD"], "{kind:?}: the PutObject");
    assert_eq!(parts.len(), 3, "{kind:?}: 5 MiB parts of 11 MiB: {parts:?}");
    assert!(
        parts.iter().all(|h| h == "UNSIGNED-PAYLOAD"),
        "{kind:?}: the UploadParts: {parts:?}"
    );
    // A request with a body the gateway does not stream (CompleteMultipartUpload) is signed.
    let complete = env.proxy.payload_hashes("POST", "uploadId=");
    assert_eq!(complete.len(), 1, "{kind:?}: {complete:?}");
    assert!(
        complete[0].len() == 64 && complete[0].bytes().all(|b| b.is_ascii_hexdigit()),
        "{kind:?}: CompleteMultipartUpload keeps its signed hash: {complete:?}"
    );
    assert_eq!(
        env.s3.get(BUCKET, "single.bin").await.as_deref(),
        Some(&small[..])
    );
    assert_eq!(
        env.s3.get(BUCKET, "parts.bin").await.as_deref(),
        Some(&large[..])
    );
}

each_store!(a_copy_dropped_while_its_upload_is_made_leaves_none);
/// A copy dropped while its CreateMultipartUpload is in flight: the store makes the upload
/// (the proxy holds the request until the caller is gone, then lets it through), and the
/// upload is still aborted, though the dropped caller never learned its id.
async fn a_copy_dropped_while_its_upload_is_made_leaves_none(kind: S3Kind) {
    use gateway::storage::multipart::{copy_in_parts, part_ranges};
    let s3 = TestS3::start(kind).await;
    s3.create_bucket(BUCKET).await;
    s3.put(BUCKET, "src.bin", vec![7u8; 8192]).await;
    let proxy = FaultProxy::start(&s3.endpoint).await;
    proxy.hold("POST", "uploads");
    let client = support::s3_client(&proxy.endpoint, &s3.region, &s3.access_key, &s3.secret_key);
    let task = tokio::spawn(async move {
        let ranges = part_ranges(8192, 4096);
        copy_in_parts(&client, BUCKET, "src.bin", "dst.bin", &ranges, 1).await
    });
    for _ in 0..500 {
        if proxy.held() > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        proxy.held(),
        1,
        "the CreateMultipartUpload never reached the proxy"
    );
    task.abort();
    let _ = task.await;
    proxy.release();
    // The store makes the upload now: it is listed, or already aborted (through the proxy).
    let mut made = false;
    for _ in 0..500 {
        made = !s3.multipart_uploads(BUCKET).await.is_empty()
            || !proxy.payload_hashes("DELETE", "uploadId=").is_empty();
        if made {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(made, "the held CreateMultipartUpload never made an upload");
    s3.assert_no_uploads_left(BUCKET, "left behind by a copy dropped mid-create")
        .await;
    assert!(s3.get(BUCKET, "dst.bin").await.is_none());
}

each_store!(a_folder_move_deletes_only_what_it_copied);
/// A file written into a folder while the folder is being moved (here: while the move's
/// DeleteObjects is held at the proxy, after every copy was made) is not deleted with the
/// sources: it was never copied, and stays where it was written.
async fn a_folder_move_deletes_only_what_it_copied(kind: S3Kind) {
    let env = Env::start(kind).await;
    for i in 0..5 {
        env.s3
            .put(BUCKET, &format!("proj/f{i}.txt"), vec![b'a' + i as u8; 10])
            .await;
    }
    env.proxy.hold("POST", "delete");
    let mut ftp = env.ftp().await;
    let moving = tokio::spawn(async move {
        let r = ftp.rename("proj", "archive").await;
        (ftp, r)
    });
    for _ in 0..500 {
        if env.proxy.held() > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(env.proxy.held() > 0, "the move never came to its delete");
    env.s3
        .put(BUCKET, "proj/written-meanwhile.txt", b"keep me".to_vec())
        .await;
    env.proxy.release();
    let (_ftp, r) = moving.await.unwrap();
    r.expect("folder rename");
    for i in 0..5 {
        assert_eq!(
            env.s3.get(BUCKET, &format!("archive/f{i}.txt")).await,
            Some(vec![b'a' + i as u8; 10])
        );
        assert_eq!(env.s3.get(BUCKET, &format!("proj/f{i}.txt")).await, None);
    }
    assert_eq!(
        env.s3
            .get(BUCKET, "proj/written-meanwhile.txt")
            .await
            .as_deref(),
        Some(&b"keep me"[..]),
        "a file the move never copied was deleted"
    );
}
