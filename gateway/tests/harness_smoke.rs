//! Smoke tests of the test harness itself (`tests/support`): each real S3 server starts,
//! takes objects, lists them, tracks and aborts multipart uploads, and survives (the local
//! store, Garage) or forgets (moto) a kill + restart; `BUCKETFTP_TEST_STORES` is read as
//! documented. They use no gateway code beyond the client factory, so they tell a broken test
//! environment apart from a broken gateway.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[macro_use]
mod support;

use aws_sdk_s3::primitives::ByteStream;
use support::{S3Kind, TestS3, parse_stores};

#[test]
fn the_stores_variable_selects_stores() {
    use S3Kind::{Garage, Local, Moto};
    assert_eq!(
        parse_stores(None),
        vec![Local],
        "unset: the local store only"
    );
    assert_eq!(parse_stores(Some("garage")), vec![Garage]);
    assert_eq!(
        parse_stores(Some(" moto, local ,garage,moto")),
        vec![Moto, Local, Garage]
    );
    assert_eq!(parse_stores(Some("all")), vec![Local, Garage, Moto]);
    for bad in ["", " , ", "minio", "local,garag"] {
        let r = std::panic::catch_unwind(|| parse_stores(Some(bad)));
        assert!(r.is_err(), "{bad:?} accepted");
    }
}

/// put / get / keys / missing key / multipart create + abort on a fresh server of `kind`.
async fn basic_roundtrip(kind: S3Kind) -> TestS3 {
    let s3 = TestS3::start(kind).await;
    let bucket = "smoke-bucket";
    s3.create_bucket(bucket).await;

    s3.put(bucket, "dir/a.txt", b"hello".to_vec()).await;
    s3.put(bucket, "dir/sub/b.bin", vec![7u8; 100_000]).await;
    s3.put(bucket, "top 测试.txt", Vec::new()).await;
    assert_eq!(
        s3.get(bucket, "dir/a.txt").await.as_deref(),
        Some(&b"hello"[..])
    );
    assert_eq!(
        s3.get(bucket, "dir/sub/b.bin").await.map(|b| b.len()),
        Some(100_000)
    );
    assert_eq!(s3.get(bucket, "top 测试.txt").await, Some(Vec::new()));
    assert_eq!(s3.get(bucket, "missing").await, None);
    let stored = ["dir/a.txt", "dir/sub/b.bin", "top 测试.txt"];
    assert_eq!(s3.keys(bucket, "dir/").await, s3.listed("dir/", &stored));
    assert_eq!(s3.keys(bucket, "").await, s3.listed("", &stored));

    // Multipart: create, upload one part, see it listed, abort, see nothing left.
    // (Not completed here: moto's ListParts reply is unparseable by the Rust SDK, and Garage
    // stores tiny objects inline and refuses UploadPartCopy from them — measured and noted in
    // the team's ../shared/DESIGN.md, outside this repository.)
    let created = s3
        .client
        .create_multipart_upload()
        .bucket(bucket)
        .key("big/obj")
        .send()
        .await
        .expect("CreateMultipartUpload");
    let upload_id = created.upload_id().unwrap_or_default().to_owned();
    assert!(!upload_id.is_empty(), "no upload id");
    s3.client
        .upload_part()
        .bucket(bucket)
        .key("big/obj")
        .upload_id(&upload_id)
        .part_number(1)
        .body(ByteStream::from(vec![1u8; 1024]))
        .send()
        .await
        .expect("UploadPart");
    assert_eq!(
        s3.multipart_uploads(bucket).await,
        vec![("big/obj".to_owned(), upload_id.clone())]
    );
    s3.client
        .abort_multipart_upload()
        .bucket(bucket)
        .key("big/obj")
        .upload_id(&upload_id)
        .send()
        .await
        .expect("AbortMultipartUpload");
    assert!(s3.multipart_uploads(bucket).await.is_empty());
    assert_eq!(s3.get(bucket, "big/obj").await, None);
    s3
}

#[cfg_attr(
    not(test_store = "local"),
    ignore = "store local not selected (BUCKETFTP_TEST_STORES)"
)]
#[tokio::test]
async fn local_roundtrip_and_restart() {
    let mut s3 = basic_roundtrip(S3Kind::Local).await;
    let bucket = "smoke-bucket";
    // The local store knows one key: there is no key without access.
    assert!(s3.create_key_without_access().await.is_none());

    // A wrong secret is refused (the store checks signatures).
    let wrong = s3.client_with(&s3.access_key, "not-the-secret");
    assert!(
        wrong.list_buckets().send().await.is_err(),
        "a wrong secret was accepted"
    );

    // Stopped and started again on the same port over the same folder: data survives.
    s3.kill();
    assert!(!s3.is_running());
    s3.restart().await;
    assert!(s3.is_running());
    assert_eq!(
        s3.get(bucket, "dir/a.txt").await.as_deref(),
        Some(&b"hello"[..])
    );
    let stored = ["dir/a.txt", "dir/sub/b.bin", "top 测试.txt"];
    assert_eq!(s3.keys(bucket, "").await, s3.listed("", &stored));
}

#[cfg_attr(
    not(test_store = "garage"),
    ignore = "store garage not selected (BUCKETFTP_TEST_STORES)"
)]
#[tokio::test]
async fn garage_roundtrip_key_without_access_and_restart() {
    let mut s3 = basic_roundtrip(S3Kind::Garage).await;
    let bucket = "smoke-bucket";

    // A valid key with no permission on the bucket is refused both ways.
    let (ak, sk) = s3
        .create_key_without_access()
        .await
        .expect("Garage must provide a key without access");
    let other = s3.client_with(&ak, &sk);
    assert!(
        other.list_buckets().send().await.is_ok(),
        "the key is valid"
    );
    let read = other
        .get_object()
        .bucket(bucket)
        .key("dir/a.txt")
        .send()
        .await;
    assert!(read.is_err(), "read with a key without access succeeded");
    let write = other
        .put_object()
        .bucket(bucket)
        .key("intruder")
        .body(ByteStream::from_static(b"x"))
        .send()
        .await;
    assert!(write.is_err(), "write with a key without access succeeded");
    assert_eq!(s3.get(bucket, "intruder").await, None);

    // Kill -9 and restart on the same port: data survives.
    s3.kill();
    assert!(
        s3.client.list_buckets().send().await.is_err(),
        "killed server still answers"
    );
    s3.restart().await;
    assert_eq!(
        s3.get(bucket, "dir/a.txt").await.as_deref(),
        Some(&b"hello"[..])
    );
    assert_eq!(s3.keys(bucket, "").await.len(), 3);
}

#[cfg_attr(
    not(test_store = "moto"),
    ignore = "store moto not selected (BUCKETFTP_TEST_STORES)"
)]
#[tokio::test]
async fn moto_roundtrip_and_restart() {
    let mut s3 = basic_roundtrip(S3Kind::Moto).await;
    // moto enforces no permissions: there is no key without access.
    assert!(s3.create_key_without_access().await.is_none());

    // moto keeps everything in memory: after a restart the bucket is gone.
    s3.kill();
    s3.restart().await;
    let missing = s3.client.head_bucket().bucket("smoke-bucket").send().await;
    assert!(missing.is_err(), "moto kept a bucket across a restart");
    s3.create_bucket("smoke-bucket").await;
    assert!(s3.keys("smoke-bucket", "").await.is_empty());
}
