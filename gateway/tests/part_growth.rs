//! Part sizes that grow as an upload grows, on real servers (`each_store!`: the local
//! store, Garage, moto), with a test-only part ceiling of a handful of parts instead of S3's 10,000 so that small files
//! reach it: an upload that fixed parts would refuse is stored in fewer, larger parts; an
//! upload past the schedule is refused with 552 and stores nothing; a store that needs equal
//! parts (R2's preset) keeps them fixed and says its limit; a resume copies the grown parts.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod faultproxy;
mod ftpops;
#[macro_use]
mod support;

use faultproxy::FaultProxy;
use ftpops::{binary_login, put, refused};
use gateway::{Addressing, GatewayHandle, Provider, S3Settings, TransferLimits};
use suppaftp::tokio::AsyncFtpStream;
use support::{S3Kind, TestS3};
use tokio::io::AsyncWriteExt;

const BUCKET: &str = "growth-bucket";
const MIB: usize = 1024 * 1024;

struct Env {
    s3: TestS3,
    /// Between the gateway and the store: it sees every part request.
    proxy: FaultProxy,
    gw: GatewayHandle,
}

impl Env {
    /// A gateway with 5 MiB first parts, 64 MiB of memory (parts up to 24 MiB) and a ceiling
    /// of `ceiling` parts, so one part per growth step: 5, 10, 20, 24, 24, ... MiB. With
    /// `equal_parts` the user's provider is R2's preset, pointed at the test server.
    async fn start(kind: S3Kind, ceiling: u64, equal_parts: bool) -> Env {
        let s3 = TestS3::start(kind).await;
        s3.create_bucket(BUCKET).await;
        let proxy = FaultProxy::start(&s3.endpoint).await;
        let settings = if equal_parts {
            S3Settings {
                provider: Provider::R2,
                endpoint: Some(proxy.endpoint.clone()),
                region: Some(s3.region.clone()),
                addressing: Some(Addressing::Path),
                checksum: None,
            }
        } else {
            S3Settings::custom(proxy.endpoint.clone(), s3.region.clone())
        };
        let gw = support::start_gateway(settings, |c| {
            c.limits = TransferLimits::new(5 * MIB, 2, 64 * MIB)
                .unwrap()
                .with_part_ceiling(ceiling);
        })
        .await;
        Env { s3, proxy, gw }
    }

    async fn login(&self) -> AsyncFtpStream {
        let user = format!("{}/{BUCKET}", self.s3.access_key);
        binary_login(self.gw.local_addr(), &user, &self.s3.secret_key).await
    }

    /// The number of parts the last multipart upload of `key` sent (UploadPart and
    /// UploadPartCopy requests, as the proxy saw them). Not from the object's `…-N` ETag:
    /// the copy onto itself that records the SHA-256 gives the object a new ETag on some
    /// stores (moto, AWS).
    async fn part_count(&self, key: &str) -> u64 {
        let param = |target: &str, name: &str| {
            target
                .split(['?', '&'])
                .find_map(|p| p.strip_prefix(name).map(str::to_owned))
        };
        let parts: Vec<(String, String)> = self
            .proxy
            .targets("PUT", &format!("/{BUCKET}/{key}?"))
            .iter()
            .filter_map(|t| Some((param(t, "uploadId=")?, param(t, "partNumber=")?)))
            .collect();
        let (last, _) = parts
            .last()
            .unwrap_or_else(|| panic!("{key}: no part was uploaded"));
        let mut numbers: Vec<&String> = parts
            .iter()
            .filter(|(id, _)| id == last)
            .map(|(_, n)| n)
            .collect();
        numbers.sort();
        numbers.dedup();
        numbers.len() as u64
    }

    async fn assert_nothing_left(&self) {
        self.s3.assert_no_uploads_left(BUCKET, "part_growth").await;
    }
}

/// STOR that the server is expected to refuse part-way: the server may reset the data
/// connection while the client still writes, so a failed write is not the outcome; the
/// reply on the control connection is.
async fn put_refused(ftp: &mut AsyncFtpStream, name: &str, body: &[u8]) -> (u32, String) {
    let mut s = ftp.put_with_stream(name).await.unwrap();
    let _ = s.write_all(body).await;
    refused(s.finish().await.expect_err("the upload was accepted"))
}

fn body(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

each_store!(parts_grow_past_the_fixed_part_ceiling);
async fn parts_grow_past_the_fixed_part_ceiling(kind: S3Kind) {
    let env = Env::start(kind, 6, false).await;
    let mut ftp = env.login().await;
    // Fixed 5 MiB parts would need 8 parts; the schedule stores it as 5 + 10 + 20 + 5.
    let data = body(40 * MIB);
    put(&mut ftp, "grown.bin", &data).await.unwrap();
    assert_eq!(env.s3.get(BUCKET, "grown.bin").await.unwrap(), data);
    assert_eq!(env.part_count("grown.bin").await, 4);
    env.assert_nothing_left().await;
}

each_store!(past_the_schedule_is_refused_and_stores_nothing);
async fn past_the_schedule_is_refused_and_stores_nothing(kind: S3Kind) {
    // Three parts: 5 + 10 + 20 = 35 MiB at most.
    let env = Env::start(kind, 3, false).await;
    env.s3.put(BUCKET, "big.bin", b"old".to_vec()).await;
    let mut ftp = env.login().await;
    let (code, text) = put_refused(&mut ftp, "big.bin", &body(40 * MIB)).await;
    assert_eq!(code, 552, "{text}");
    assert!(
        text.contains("35 MiB") && text.contains("memory_limit"),
        "{text}"
    );
    assert_eq!(env.s3.get(BUCKET, "big.bin").await.unwrap(), b"old");
    // Exactly the capacity is stored.
    let mut ftp = env.login().await;
    let data = body(35 * MIB);
    put(&mut ftp, "full.bin", &data).await.unwrap();
    assert_eq!(env.s3.get(BUCKET, "full.bin").await.unwrap(), data);
    assert_eq!(env.part_count("full.bin").await, 3);
    env.assert_nothing_left().await;
}

each_store!(equal_parts_stores_keep_fixed_parts);
async fn equal_parts_stores_keep_fixed_parts(kind: S3Kind) {
    // Six fixed parts of 5 MiB: 30 MiB at most.
    let env = Env::start(kind, 6, true).await;
    let mut ftp = env.login().await;
    let (code, text) = put_refused(&mut ftp, "big.bin", &body(40 * MIB)).await;
    assert_eq!(code, 552, "{text}");
    assert!(
        text.contains("parts of one size") && text.contains("30 MiB"),
        "{text}"
    );
    assert!(env.s3.get(BUCKET, "big.bin").await.is_none());
    let mut ftp = env.login().await;
    let data = body(23 * MIB);
    put(&mut ftp, "fixed.bin", &data).await.unwrap();
    assert_eq!(env.s3.get(BUCKET, "fixed.bin").await.unwrap(), data);
    assert_eq!(env.part_count("fixed.bin").await, 5);
    env.assert_nothing_left().await;
}

each_store!(resume_keeps_the_grown_parts);
async fn resume_keeps_the_grown_parts(kind: S3Kind) {
    let env = Env::start(kind, 6, false).await;
    let mut ftp = env.login().await;
    let first = body(40 * MIB);
    put(&mut ftp, "resumed.bin", &first).await.unwrap();
    // REST at 36 MiB: the whole parts 5 + 10 + 20 MiB are kept inside the store (or re-sent
    // where the store refuses UploadPartCopy), 1 MiB of the old object streams in front of
    // the new tail.
    let tail: Vec<u8> = (0..6 * MIB).map(|i| (i % 13) as u8).collect();
    ftp.resume_transfer(36 * MIB).await.unwrap();
    put(&mut ftp, "resumed.bin", &tail).await.unwrap();
    let mut want = first[..36 * MIB].to_vec();
    want.extend_from_slice(&tail);
    let got = env.s3.get(BUCKET, "resumed.bin").await.unwrap();
    assert_eq!(got.len(), want.len());
    assert!(got == want, "resumed object differs");
    // 5 + 10 + 20 + 7 (1 MiB kept + 6 MiB new, inside the 24 MiB fourth part).
    assert_eq!(env.part_count("resumed.bin").await, 4);
    env.assert_nothing_left().await;
}
