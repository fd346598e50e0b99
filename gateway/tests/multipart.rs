//! The multipart module that uploads, resumes and renames share, against each selected store: a
//! server-side copy in parts gives the same bytes; a failed copy and a copy whose future is
//! dropped (a session killed mid-rename) leave no multipart upload behind.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[macro_use]
mod support;

use std::time::Duration;

use gateway::storage::multipart::{copy_in_parts, part_ranges};
use support::{S3Kind, TestS3};

const BUCKET: &str = "multipart-bucket";
const MIB: u64 = 1024 * 1024;

async fn store(kind: S3Kind) -> TestS3 {
    let s3 = TestS3::start(kind).await;
    s3.create_bucket(BUCKET).await;
    s3
}

each_store!(copy_in_parts_gives_the_same_bytes);
async fn copy_in_parts_gives_the_same_bytes(kind: S3Kind) {
    let s3 = store(kind).await;
    let body: Vec<u8> = (0..12 * MIB).map(|i| (i % 253) as u8).collect();
    s3.put(BUCKET, "src.bin", body.clone()).await;
    let ranges = part_ranges(body.len() as u64, 5 * MIB);
    assert_eq!(ranges.len(), 3);
    copy_in_parts(&s3.client, BUCKET, "src.bin", "dst.bin", &ranges, 2)
        .await
        .unwrap();
    assert_eq!(s3.get(BUCKET, "dst.bin").await.unwrap(), body);
    assert!(s3.multipart_uploads(BUCKET).await.is_empty());
}

each_store!(a_failed_copy_leaves_no_upload);
async fn a_failed_copy_leaves_no_upload(kind: S3Kind) {
    let s3 = store(kind).await;
    let ranges = part_ranges(12 * MIB, 5 * MIB);
    let r = copy_in_parts(&s3.client, BUCKET, "missing.bin", "dst.bin", &ranges, 2).await;
    assert!(r.is_err());
    s3.assert_no_uploads_left(BUCKET, "left behind").await;
    assert!(s3.get(BUCKET, "dst.bin").await.is_none());
}

each_store!(a_dropped_copy_leaves_no_upload);
/// A rename dropped half-way (the session's task is cancelled) aborts its upload.
async fn a_dropped_copy_leaves_no_upload(kind: S3Kind) {
    let s3 = store(kind).await;
    s3.put(BUCKET, "src.bin", vec![7u8; 8192]).await;
    // Thousands of one-byte part copies, one at a time: slow enough to cancel mid-way (the
    // parts are never completed, so their size does not matter).
    let ranges = part_ranges(8192, 1);
    let client = s3.client.clone();
    let task = tokio::spawn(async move {
        copy_in_parts(&client, BUCKET, "src.bin", "dst.bin", &ranges, 1).await
    });
    let mut seen = false;
    for _ in 0..200 {
        if !s3.multipart_uploads(BUCKET).await.is_empty() {
            seen = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(seen, "the copy never started a multipart upload");
    assert!(
        !task.is_finished(),
        "the copy finished before it could be dropped"
    );
    task.abort();
    let _ = task.await;
    s3.assert_no_uploads_left(BUCKET, "left behind by a dropped copy")
        .await;
    assert!(s3.get(BUCKET, "dst.bin").await.is_none());
}
