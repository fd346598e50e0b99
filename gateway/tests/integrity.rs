//! Integrity end to end, on each selected store: every request body carries a checksum the
//! store verifies, so a byte flipped on the way (by `faultproxy`, between the gateway and
//! the real store) fails the upload with 451 and the reason, the old object stays and no
//! multipart upload is left; each uploaded file's SHA-256 is kept in its metadata; and
//! `HASH`, `XSHA256`, `XMD5`, `XSHA1`, `XCRC` answer what `sha256sum`, `md5sum`… say of the
//! bytes sent, for small, multipart and resumed (REST, APPE) uploads and for objects put by
//! another tool, read through the hash up to `max_hash_size`.
//!
//! With a flexible checksum a multipart upload is `FULL_OBJECT` and its commit carries the
//! whole object's CRC: a part damaged on the way in a way its store does not notice (its
//! checksum header stripped, which the local store takes and Garage refuses, or computed
//! over the damaged bytes) is still caught, by the store refusing CompleteMultipartUpload,
//! so the old object stays. A user without the read right cannot `HASH` a file: that is a
//! read (`teams.rs` has the test, with team users).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod faultproxy;
mod ftpops;
mod rawftp;
#[macro_use]
mod support;

use faultproxy::{Alteration, FaultProxy};
use gateway::s3::BodyChecksum;
use gateway::{GatewayHandle, S3Settings};
use md5::Md5;
use rawftp::{Raw, data};
use sha1::Sha1;
use sha2::{Digest, Sha256};
use support::{S3Kind, TestS3};

const BUCKET: &str = "integrity-bucket";
const MIB: usize = 1024 * 1024;

struct Env {
    s3: TestS3,
    proxy: FaultProxy,
    gw: GatewayHandle,
}

impl Env {
    async fn start(kind: S3Kind, checksum: Option<BodyChecksum>, max_hash_size: u64) -> Env {
        let s3 = TestS3::start(kind).await;
        s3.create_bucket(BUCKET).await;
        let proxy = FaultProxy::start(&s3.endpoint).await;
        let mut settings = S3Settings::custom(proxy.endpoint.clone(), s3.region.clone());
        settings.checksum = checksum;
        let gw = support::start_gateway(settings, |c| {
            c.limits = support::small_parts(2);
            c.max_hash_size = max_hash_size;
        })
        .await;
        Env { s3, proxy, gw }
    }

    async fn raw(&self) -> Raw {
        let mut raw = Raw::connect(self.gw.local_addr()).await;
        raw.login(
            &format!("{}/{BUCKET}", self.s3.access_key),
            &self.s3.secret_key,
        )
        .await;
        raw
    }

    /// `cmd` (a STOR or APPE) sending `body`; returns the final reply.
    async fn send(&self, raw: &mut Raw, cmd: &str, body: &[u8]) -> (u32, String) {
        let mut dc = raw.data(cmd).await;
        for chunk in body.chunks(MIB) {
            assert!(
                dc.write(chunk).await,
                "the gateway closed the data connection"
            );
        }
        dc.finish().await;
        raw.reply().await
    }

    async fn stor(&self, key: &str, body: &[u8]) -> (u32, String) {
        let mut raw = self.raw().await;
        self.send(&mut raw, &format!("STOR {key}"), body).await
    }

    async fn metadata(&self, key: &str) -> std::collections::HashMap<String, String> {
        let head = self
            .s3
            .client
            .head_object()
            .bucket(BUCKET)
            .key(key)
            .send()
            .await
            .unwrap_or_else(|e| panic!("HEAD {key}: {e}"));
        head.metadata().cloned().unwrap_or_default()
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn sha256(b: &[u8]) -> String {
    hex(&Sha256::digest(b))
}

fn md5(b: &[u8]) -> String {
    hex(&Md5::digest(b))
}

/// The checksums each store is asked to verify (each is tried with a flipped byte below, so
/// a store that ignored one would fail the test). moto 5.2.5 verifies none: it echoes
/// `x-amz-checksum-*` and ignores `Content-MD5` (see `moto_checks_nothing`).
fn checksums(kind: S3Kind) -> Vec<BodyChecksum> {
    match kind {
        S3Kind::Local => vec![
            BodyChecksum::Md5,
            BodyChecksum::Crc32c,
            BodyChecksum::Crc64nvme,
        ],
        S3Kind::Garage => vec![BodyChecksum::Md5, BodyChecksum::Crc32c],
        S3Kind::Moto => vec![],
    }
}

/// moto stores a damaged part whatever checksum it carries: pinned here, so that the other
/// stores' refusals above mean the store checked, and so that a moto that learns to check
/// shows up (then it joins [`checksums`]).
#[cfg_attr(
    not(test_store = "moto"),
    ignore = "store moto not selected (BUCKETFTP_TEST_STORES)"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moto_checks_nothing() {
    let env = Env::start(S3Kind::Moto, Some(BodyChecksum::Md5), 1 << 30).await;
    env.proxy.flip_body_byte("PUT", "partNumber=2", 1);
    let body = data(12 * MIB, 1);
    let (code, text) = env.stor("damaged.bin", &body).await;
    assert_eq!(env.proxy.flipped(), 1, "the part was damaged");
    assert_eq!(code, 226, "moto took the damaged part: {text}");
    let stored = env.s3.get(BUCKET, "damaged.bin").await.expect("stored");
    assert_ne!(stored, body, "moto stored the damaged bytes");
}

/// The stores that check request bodies (moto checks none: [`moto_checks_nothing`]).
mod a_flipped_byte_fails_the_upload_and_the_old_file_stays {
    use super::*;

    #[cfg_attr(
        not(test_store = "local"),
        ignore = "store local not selected (BUCKETFTP_TEST_STORES)"
    )]
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn local() {
        flipped_byte(S3Kind::Local).await
    }

    #[cfg_attr(
        not(test_store = "garage"),
        ignore = "store garage not selected (BUCKETFTP_TEST_STORES)"
    )]
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn garage() {
        flipped_byte(S3Kind::Garage).await
    }
}

async fn flipped_byte(kind: S3Kind) {
    let tried = checksums(kind);
    assert!(!tried.is_empty(), "{kind:?} checks some checksum");
    for checksum in tried {
        let what = format!("{kind:?} with {checksum}");
        let env = Env::start(kind, Some(checksum), 1 << 30).await;
        let old = b"the old content".to_vec();
        env.s3.put(BUCKET, "kept.bin", old.clone()).await;

        // One byte of one part of a multipart upload.
        env.proxy.flip_body_byte("PUT", "partNumber=2", 1);
        let (code, text) = env.stor("kept.bin", &data(12 * MIB, 1)).await;
        assert_eq!(env.proxy.flipped(), 1, "{what}: the part was damaged");
        assert_eq!(code, 451, "{what}: a damaged part fails the upload: {text}");
        assert!(
            text.to_ascii_lowercase().contains("digest")
                || text.to_ascii_lowercase().contains("checksum")
                || text.to_ascii_lowercase().contains("md5"),
            "{what}: the reason is told: {text}"
        );
        assert_eq!(
            env.s3.get(BUCKET, "kept.bin").await.as_deref(),
            Some(&old[..]),
            "{what}: the old object after a damaged part"
        );
        env.s3.assert_no_uploads_left(BUCKET, &what).await;

        // One byte of a single PutObject.
        env.proxy.flip_body_byte("PUT", "x-id=PutObject", 1);
        let (code, text) = env.stor("kept.bin", &data(MIB, 2)).await;
        assert_eq!(env.proxy.flipped(), 2, "{what}: the PUT was damaged");
        assert_eq!(code, 451, "{what}: a damaged PUT fails: {text}");
        assert_eq!(
            env.s3.get(BUCKET, "kept.bin").await.as_deref(),
            Some(&old[..]),
            "{what}: the old object after a damaged PUT"
        );

        // Undamaged, both kinds go through, with the SHA-256 in the metadata.
        for (len, seed) in [(MIB, 3), (12 * MIB, 4)] {
            let body = data(len, seed);
            let (code, text) = env.stor("kept.bin", &body).await;
            assert_eq!(code, 226, "{what}: {len} bytes undamaged: {text}");
            assert_eq!(
                env.s3.get(BUCKET, "kept.bin").await.as_deref(),
                Some(&body[..]),
                "{what}: {len} bytes stored"
            );
            let meta = env.metadata("kept.bin").await;
            assert_eq!(
                meta.get("sha256"),
                Some(&sha256(&body)),
                "{what}: {len} bytes: the SHA-256 in the metadata ({meta:?})"
            );
        }
        env.s3.assert_no_uploads_left(BUCKET, &what).await;
    }
}

/// The flexible checksums each store is tried with for the commit-time refusal: a store
/// listed here refuses a `FULL_OBJECT` commit whose CRC does not match the parts it took.
fn full_object_checksums(kind: S3Kind) -> Vec<BodyChecksum> {
    match kind {
        S3Kind::Local | S3Kind::Garage => vec![BodyChecksum::Crc64nvme, BodyChecksum::Crc32c],
        S3Kind::Moto => vec![],
    }
}

/// The stores that refuse a `FULL_OBJECT` commit whose CRC is not the parts' (moto checks no
/// checksum at all: [`moto_checks_nothing`]).
mod a_damaged_part_the_store_took_fails_the_commit {
    use super::*;

    #[cfg_attr(
        not(test_store = "local"),
        ignore = "store local not selected (BUCKETFTP_TEST_STORES)"
    )]
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn local() {
        commit_refused(S3Kind::Local).await
    }

    #[cfg_attr(
        not(test_store = "garage"),
        ignore = "store garage not selected (BUCKETFTP_TEST_STORES)"
    )]
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn garage() {
        commit_refused(S3Kind::Garage).await
    }
}

/// How part 2 is damaged on its way to the store, and what the commit lists.
#[derive(Debug, Clone, Copy)]
enum Damage {
    /// A byte flipped and its `x-amz-checksum-*` header left out: the store has nothing to
    /// check the part against. The commit lists the parts' CRCs (as the gateway sends it) or
    /// not (`parts_listed: false`: taken out on the way, so only the whole object's CRC can
    /// tell).
    Stripped { parts_listed: bool },
    /// A byte flipped before the part's CRC was computed (the proxy computes the header again
    /// over the damaged body): the store finds the part sound. The commit lists no part CRC.
    Recomputed,
}

/// The damages each store is tried with, and whether it takes the damaged part (then the
/// commit is what refuses it). Garage 2.5 refuses a part without a checksum in an upload
/// created with one ("Requested checksum verification without providing checksum"); the
/// local store computes the part's CRC itself and takes it.
fn damages(kind: S3Kind) -> Vec<(Damage, bool)> {
    match kind {
        S3Kind::Local => vec![
            (Damage::Stripped { parts_listed: true }, true),
            (
                Damage::Stripped {
                    parts_listed: false,
                },
                true,
            ),
            (Damage::Recomputed, true),
        ],
        S3Kind::Garage => vec![
            (Damage::Stripped { parts_listed: true }, false),
            (Damage::Recomputed, true),
        ],
        S3Kind::Moto => vec![],
    }
}

/// Part 2 of a multipart upload is damaged on the way (see [`Damage`]; the proxy signs it
/// again) so that the store takes it; the commit carries the whole object's CRC of the bytes
/// sent, which the parts the store holds do not make: refused, 451 with the reason, the old
/// object stays, no upload is left. Without the whole object's CRC in the commit (or without
/// `FULL_OBJECT`), the damaged object would be committed where no part CRC is listed.
async fn commit_refused(kind: S3Kind) {
    let tried = full_object_checksums(kind);
    assert!(!tried.is_empty(), "{kind:?} checks a full-object CRC");
    for checksum in tried {
        let (header, element) = match checksum {
            BodyChecksum::Crc32c => ("x-amz-checksum-crc32c", "ChecksumCRC32C"),
            BodyChecksum::Crc64nvme => ("x-amz-checksum-crc64nvme", "ChecksumCRC64NVME"),
            BodyChecksum::Md5 => unreachable!("MD5 has no full-object checksum"),
        };
        let env = Env::start(kind, Some(checksum), 1 << 30).await;
        let secret = env.s3.secret_key.clone();
        let old = b"the old content".to_vec();
        env.s3.put(BUCKET, "kept.bin", old.clone()).await;

        for (damage, part_taken) in damages(kind) {
            let what = format!("{kind:?} with {checksum}, {damage:?}");
            let before = env.proxy.altered().len();
            let parts_listed = match damage {
                Damage::Stripped { parts_listed } => {
                    env.proxy
                        .strip_headers_and_flip("PUT", "partNumber=2", &[header], &secret);
                    parts_listed
                }
                Damage::Recomputed => {
                    let part = Alteration {
                        flip_byte: true,
                        recompute_checksum: true,
                        ..Alteration::default()
                    };
                    env.proxy.alter("PUT", "partNumber=2", part, &secret, 1);
                    false
                }
            };
            // The commit goes through the proxy's hands too, so that it is seen.
            let commit = Alteration {
                strip_elements: if parts_listed {
                    vec![]
                } else {
                    vec![element.to_owned()]
                },
                ..Alteration::default()
            };
            env.proxy.alter("POST", "uploadId=", commit, &secret, 1);
            let (code, text) = env.stor("kept.bin", &data(12 * MIB, 1)).await;
            let altered = env.proxy.altered()[before..].to_vec();
            let part = altered
                .iter()
                .find(|(m, t, _)| m == "PUT" && t.contains("partNumber=2"))
                .unwrap_or_else(|| panic!("{what}: part 2 was not altered: {altered:?}"));
            if let Damage::Stripped { .. } = damage {
                assert_eq!(
                    part.2,
                    [header],
                    "{what}: part 2 carried {header}, and lost it"
                );
            }
            let committed = altered
                .iter()
                .any(|(m, t, _)| m == "POST" && t.contains("uploadId="));
            assert_eq!(
                committed, part_taken,
                "{what}: the commit is sent when (only when) the store took the damaged part"
            );
            assert_eq!(code, 451, "{what}: the upload fails: {text}");
            let reason = text.to_ascii_lowercase();
            assert!(
                reason.contains("checksum") || reason.contains("digest"),
                "{what}: the reason is told: {text}"
            );
            assert_eq!(
                env.s3.get(BUCKET, "kept.bin").await.as_deref(),
                Some(&old[..]),
                "{what}: the old object stays"
            );
            env.s3.assert_no_uploads_left(BUCKET, &what).await;
            // The commit's alteration is left unused when the part was refused.
            env.proxy.clear();
        }

        // Undamaged, the same upload commits, as a FULL_OBJECT upload with the file's CRC.
        let body = data(12 * MIB, 2);
        let (code, text) = env.stor("kept.bin", &body).await;
        assert_eq!(code, 226, "{kind:?} with {checksum}: undamaged: {text}");
        let head = env
            .s3
            .client
            .head_object()
            .bucket(BUCKET)
            .key("kept.bin")
            .checksum_mode(aws_sdk_s3::types::ChecksumMode::Enabled)
            .send()
            .await
            .expect("HEAD kept.bin");
        let (stored, ours) = match checksum {
            BodyChecksum::Crc32c => (
                head.checksum_crc32_c(),
                aws_smithy_types::base64::encode(
                    (crc_fast::checksum(crc_fast::CrcAlgorithm::Crc32Iscsi, &body) as u32)
                        .to_be_bytes(),
                ),
            ),
            _ => (
                head.checksum_crc64_nvme(),
                aws_smithy_types::base64::encode(
                    crc_fast::checksum(crc_fast::CrcAlgorithm::Crc64Nvme, &body).to_be_bytes(),
                ),
            ),
        };
        assert_eq!(
            (stored, head.checksum_type().map(|t| t.as_str())),
            (Some(ours.as_str()), Some("FULL_OBJECT")),
            "{kind:?} with {checksum}: the object's checksum is the whole file's CRC"
        );
    }
}

/// What `cmd` answers with: the reply code and the text after it.
async fn ask(raw: &mut Raw, cmd: &str) -> (u32, String) {
    let (code, text) = raw.cmd(cmd).await;
    let text = text
        .strip_prefix(&format!("{code} "))
        .unwrap_or(&text)
        .trim()
        .to_owned();
    (code, text)
}

each_store!(hash_commands_answer_what_the_files_hold);
async fn hash_commands_answer_what_the_files_hold(kind: S3Kind) {
    // max_hash_size 14 MiB: files with no stored hash are read below it; big.bin (15 MiB)
    // is above it, so its SHA-256 can only come from its metadata.
    let env = Env::start(kind, None, 14 * MIB as u64).await;
    let mut raw = env.raw().await;

    let feat = ask(&mut raw, "FEAT").await.1;
    assert!(
        feat.contains("HASH SHA-256*;SHA-1;MD5;CRC32"),
        "{kind:?}: FEAT: {feat}"
    );
    for x in ["XCRC", "XMD5", "XSHA1", "XSHA256"] {
        assert!(feat.contains(x), "{kind:?}: FEAT lists {x}: {feat}");
    }

    // Uploaded here: small, multipart, resumed with REST + STOR and with APPE.
    let small = data(100_000, 11);
    let big = data(15 * MIB, 12);
    assert_eq!(env.stor("small.bin", &small).await.0, 226);
    assert_eq!(env.stor("big.bin", &big).await.0, 226);
    // REST: the first 7 MiB first (a cancelled upload), then the rest from 7 MiB on.
    let resumed = data(13 * MIB, 13);
    assert_eq!(env.stor("resumed.bin", &resumed[..7 * MIB]).await.0, 226);
    assert_eq!(ask(&mut raw, &format!("REST {}", 7 * MIB)).await.0, 350);
    let (code, text) = env
        .send(&mut raw, "STOR resumed.bin", &resumed[7 * MIB..])
        .await;
    assert_eq!(code, 226, "{kind:?}: REST + STOR: {text}");
    let appended = data(2 * MIB + 5, 14);
    assert_eq!(env.stor("appended.bin", &appended[..MIB]).await.0, 226);
    let (code, text) = env
        .send(&mut raw, "APPE appended.bin", &appended[MIB..])
        .await;
    assert_eq!(code, 226, "{kind:?}: APPE: {text}");
    // Put by another tool: no stored hash.
    let foreign = data(2 * MIB, 15);
    env.s3.put(BUCKET, "foreign.bin", foreign.clone()).await;
    let too_big = data(17 * MIB, 16);
    env.s3.put(BUCKET, "too-big.bin", too_big.clone()).await;

    for (name, body) in [
        ("small.bin", &small),
        ("resumed.bin", &resumed),
        ("appended.bin", &appended),
        ("foreign.bin", &foreign),
    ] {
        let last = body.len() - 1;
        let (code, text) = ask(&mut raw, &format!("HASH {name}")).await;
        assert_eq!(
            (code, text.trim()),
            (
                213,
                format!("SHA-256 0-{last} {} {name}", sha256(body)).as_str()
            ),
            "{kind:?}: HASH {name}"
        );
        let (code, text) = ask(&mut raw, &format!("XSHA256 {name}")).await;
        assert_eq!(
            (code, text.trim()),
            (250, sha256(body).as_str()),
            "{kind:?}: XSHA256 {name}"
        );
        let (code, text) = ask(&mut raw, &format!("XMD5 {name}")).await;
        assert_eq!(
            (code, text.trim()),
            (250, md5(body).as_str()),
            "{kind:?}: XMD5 {name}"
        );
    }
    // big.bin: its SHA-256 is stored, so answered above max_hash_size; its MD5 is not (a
    // multipart upload's ETag is no MD5), and reading it is refused. Except on moto, whose
    // CopyObject (the copy onto itself that records the SHA-256) gives the object a plain
    // ETag, the MD5 of its bytes, as AWS's does: that ETag answers.
    let last = big.len() - 1;
    let (code, text) = ask(&mut raw, "HASH big.bin").await;
    assert_eq!(
        (code, text.trim()),
        (
            213,
            format!("SHA-256 0-{last} {} big.bin", sha256(&big)).as_str()
        ),
        "{kind:?}: HASH of a multipart upload above max_hash_size"
    );
    let (code, text) = ask(&mut raw, "XMD5 big.bin").await;
    if kind == S3Kind::Moto {
        assert_eq!(
            (code, text.as_str()),
            (250, md5(&big).as_str()),
            "{kind:?}: XMD5 of big.bin from the ETag its copy got"
        );
    } else {
        assert_eq!(
            code, 550,
            "{kind:?}: XMD5 of big.bin is read, above the limit: {text}"
        );
        assert!(
            text.contains("max_hash_size"),
            "{kind:?}: the reason: {text}"
        );
    }
    // The uploaded files' SHA-256 is stored, not read back.
    for (name, body) in [("small.bin", &small), ("big.bin", &big)] {
        assert_eq!(
            env.metadata(name).await.get("sha256"),
            Some(&sha256(body)),
            "{kind:?}: {name}'s stored SHA-256"
        );
    }
    assert!(
        env.metadata("small.bin").await.contains_key("md5chksum"),
        "{kind:?}: a single-part file keeps its MD5 as rclone names it"
    );

    // OPTS HASH selects; the other algorithms; the selection shows in FEAT.
    assert_eq!(
        ask(&mut raw, "OPTS HASH SHA-1").await,
        (200, "SHA-1".into())
    );
    let (code, text) = ask(&mut raw, "HASH small.bin").await;
    assert_eq!(
        (code, text.trim()),
        (
            213,
            format!("SHA-1 0-99999 {} small.bin", hex(&Sha1::digest(&small))).as_str()
        ),
        "{kind:?}: HASH with SHA-1"
    );
    assert!(
        ask(&mut raw, "FEAT")
            .await
            .1
            .contains("HASH SHA-256;SHA-1*;MD5;CRC32")
    );
    assert_eq!(ask(&mut raw, "OPTS HASH CRC32").await.0, 200);
    let crc = format!("{:08x}", crc32fast_of(&small));
    let (code, text) = ask(&mut raw, "HASH small.bin").await;
    assert_eq!(
        (code, text.trim()),
        (213, format!("CRC32 0-99999 {crc} small.bin").as_str())
    );
    assert_eq!(ask(&mut raw, "XCRC small.bin").await, (250, crc.clone()));
    let (code, text) = ask(&mut raw, "OPTS HASH SHA-512").await;
    assert_eq!(code, 501, "{kind:?}: an unknown algorithm: {text}");
    assert_eq!(ask(&mut raw, "OPTS HASH").await, (200, "CRC32".into()));

    // Refusals: above max_hash_size with no stored hash; a missing file; a folder.
    assert_eq!(ask(&mut raw, "OPTS HASH SHA-256").await.0, 200);
    let (code, text) = ask(&mut raw, "HASH too-big.bin").await;
    assert_eq!(code, 550, "{kind:?}: above max_hash_size: {text}");
    assert!(
        text.contains("max_hash_size"),
        "{kind:?}: the reason: {text}"
    );
    let (code, text) = ask(&mut raw, "HASH nothing-here.bin").await;
    assert_eq!(code, 550, "{kind:?}: a missing file: {text}");
    let (code, text) = ask(&mut raw, "XMD5").await;
    assert_eq!(code, 501, "{kind:?}: no file name: {text}");
    let _ = raw.cmd("QUIT").await;
}

/// CRC-32 (ISO-HDLC), bit by bit: an independent reference for `XCRC`.
fn crc32fast_of(data: &[u8]) -> u32 {
    let mut crc = 0xffff_ffffu32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xedb8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

each_store!(a_reply_header_is_read_from_a_real_reply);
/// `ReplyHeader` (how the upload reads OSS's and COS's `x-…-hash-crc64ecma`) against a real
/// store's reply: here its ETag header, which every store sends, equals what the SDK parsed.
async fn a_reply_header_is_read_from_a_real_reply(kind: S3Kind) {
    let s3 = TestS3::start(kind).await;
    s3.create_bucket(BUCKET).await;
    let reader = gateway::s3::reply_header::ReplyHeader::new("etag");
    let absent = gateway::s3::reply_header::ReplyHeader::new("x-no-such-header");
    let out = s3
        .client
        .put_object()
        .bucket(BUCKET)
        .key("reply-header.bin")
        .body(data(1000, 21).into())
        .customize()
        .interceptor(reader.clone())
        .interceptor(absent.clone())
        .send()
        .await
        .unwrap_or_else(|e| panic!("{kind:?}: PUT: {e}"));
    let etag = out.e_tag().map(str::to_owned);
    assert!(etag.is_some(), "{kind:?}: the store sent an ETag");
    assert_eq!(reader.value(), etag, "{kind:?}: the header as read");
    assert_eq!(absent.value(), None, "{kind:?}: a header the reply lacks");
}
