//! The checksums of an upload and the hashes of a stored file. Pure computation, no I/O.
//!
//! - [`BodySum`]: the checksum one request body (a PutObject, an UploadPart) carries for the
//!   store to verify: `Content-MD5` or a flexible `x-amz-checksum-*` header, as the provider's
//!   [`BodyChecksum`] says.
//! - [`FileDigest`]: what an upload computes over every byte of the file as it streams, in
//!   order: the SHA-256 kept in the object's user metadata ([`META_SHA256`]), the whole
//!   object's CRC a `FULL_OBJECT` multipart upload sends with its commit, and the CRC-64/XZ
//!   OSS and COS report after a write.
//! - [`Hasher`]: one of the algorithms a client asks for with `HASH`, for files that have no
//!   stored hash; [`stored_hash`] finds the ones that do.
//!
//! The names in user metadata: `sha256` (lower-case hex) is ours; `md5chksum` (base64 of the
//! MD5) is rclone's, so `rclone check` and `rclone md5sum` read what BucketFTP stored.

use std::collections::HashMap;

use aws_smithy_types::base64;
use crc_fast::CrcAlgorithm;
use md5::Md5;
use sha1::Sha1;
use sha2::{Digest, Sha256};

use super::hash::HashAlgo;
use crate::s3::BodyChecksum;

/// User metadata key of the file's SHA-256 (lower-case hex): `x-amz-meta-sha256`.
pub const META_SHA256: &str = "sha256";
/// User metadata key of the file's MD5 (base64), as rclone names it: `x-amz-meta-md5chksum`.
pub const META_MD5: &str = "md5chksum";

/// The checksum of one request body, as its header value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodySum {
    /// `Content-MD5`: base64 of the MD5.
    Md5(String),
    /// `x-amz-checksum-crc32c`: base64 of the big-endian CRC32C.
    Crc32c(String),
    /// `x-amz-checksum-crc64nvme`: base64 of the big-endian CRC-64/NVME.
    Crc64nvme(String),
}

impl BodySum {
    /// The checksum of `body` that `kind` says the store checks.
    pub fn of(kind: BodyChecksum, body: &[u8]) -> BodySum {
        match kind {
            BodyChecksum::Md5 => BodySum::Md5(base64::encode(Md5::digest(body).as_slice())),
            BodyChecksum::Crc32c => BodySum::Crc32c(crc32_b64(crc_fast::checksum(
                CrcAlgorithm::Crc32Iscsi,
                body,
            ))),
            BodyChecksum::Crc64nvme => BodySum::Crc64nvme(base64::encode(
                crc_fast::checksum(CrcAlgorithm::Crc64Nvme, body).to_be_bytes(),
            )),
        }
    }
}

/// Base64 of a CRC-32 as the `x-amz-checksum-crc32*` headers carry it (four big-endian bytes).
fn crc32_b64(crc: u64) -> String {
    // A CRC-32's value fits 32 bits; crc-fast returns it widened.
    base64::encode((crc as u32).to_be_bytes())
}

/// The CRC algorithm of a `FULL_OBJECT` multipart upload with `kind`, if it has one.
fn full_object_crc(kind: BodyChecksum) -> Option<CrcAlgorithm> {
    match kind {
        BodyChecksum::Md5 => None,
        BodyChecksum::Crc32c => Some(CrcAlgorithm::Crc32Iscsi),
        BodyChecksum::Crc64nvme => Some(CrcAlgorithm::Crc64Nvme),
    }
}

/// What one upload computes over the file's bytes as they stream, in order.
pub struct FileDigest {
    sha256: Sha256,
    full: Option<(BodyChecksum, crc_fast::Digest)>,
    crc64_xz: Option<crc_fast::Digest>,
    bytes: u64,
}

/// A finished [`FileDigest`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileSums {
    /// The SHA-256, lower-case hex.
    pub sha256: String,
    /// The whole object's checksum for a `FULL_OBJECT` commit (as [`BodySum`]).
    pub full_object: Option<BodySum>,
    /// The CRC-64/XZ (what OSS and COS call `crc64ecma`).
    pub crc64_xz: Option<u64>,
    /// The bytes hashed.
    pub bytes: u64,
}

impl FileDigest {
    /// A digest for an upload whose requests carry `kind`; `crc64_xz` when the store reports
    /// the object's CRC-64/XZ.
    pub fn new(kind: BodyChecksum, crc64_xz: bool) -> Self {
        Self {
            sha256: Sha256::new(),
            full: full_object_crc(kind).map(|a| (kind, crc_fast::Digest::new(a))),
            crc64_xz: crc64_xz.then(|| crc_fast::Digest::new(CrcAlgorithm::Crc64Xz)),
            bytes: 0,
        }
    }

    /// The next bytes of the file.
    pub fn update(&mut self, data: &[u8]) {
        self.sha256.update(data);
        if let Some((_, crc)) = &mut self.full {
            crc.update(data);
        }
        if let Some(crc) = &mut self.crc64_xz {
            crc.update(data);
        }
        self.bytes += data.len() as u64;
    }

    /// The sums of every byte given.
    pub fn finish(self) -> FileSums {
        FileSums {
            sha256: hex(self.sha256.finalize().as_slice()),
            full_object: self.full.map(|(kind, crc)| match kind {
                BodyChecksum::Crc64nvme => {
                    BodySum::Crc64nvme(base64::encode(crc.finalize().to_be_bytes()))
                }
                _ => BodySum::Crc32c(crc32_b64(crc.finalize())),
            }),
            crc64_xz: self.crc64_xz.map(|c| c.finalize()),
            bytes: self.bytes,
        }
    }
}

impl FileSums {
    /// The user metadata that records these sums on the object; `md5` when the upload had
    /// the file's MD5 (a file sent in one request).
    pub fn metadata(&self, md5: Option<&[u8]>) -> HashMap<String, String> {
        let mut m = HashMap::from([(META_SHA256.to_owned(), self.sha256.clone())]);
        if let Some(md5) = md5 {
            m.insert(META_MD5.to_owned(), base64::encode(md5));
        }
        m
    }
}

/// Whether the CRC-64/XZ a store reported (`x-oss-hash-crc64ecma`: decimal) is `ours`. A
/// header that is not a number counts as no report (`None`).
pub fn crc64_report_matches(reported: &str, ours: u64) -> Option<bool> {
    reported.trim().parse::<u64>().ok().map(|r| r == ours)
}

/// One running hash of the algorithms a client may ask for.
pub enum Hasher {
    /// SHA-256.
    Sha256(Sha256),
    /// SHA-1.
    Sha1(Sha1),
    /// MD5.
    Md5(Md5),
    /// CRC-32 (ISO-HDLC).
    Crc32(crc_fast::Digest),
}

impl Hasher {
    /// A new hash of `algo`.
    pub fn new(algo: HashAlgo) -> Self {
        match algo {
            HashAlgo::Sha256 => Hasher::Sha256(Sha256::new()),
            HashAlgo::Sha1 => Hasher::Sha1(Sha1::new()),
            HashAlgo::Md5 => Hasher::Md5(Md5::new()),
            HashAlgo::Crc32 => Hasher::Crc32(crc_fast::Digest::new(CrcAlgorithm::Crc32IsoHdlc)),
        }
    }

    /// The next bytes.
    pub fn update(&mut self, data: &[u8]) {
        match self {
            Hasher::Sha256(h) => h.update(data),
            Hasher::Sha1(h) => h.update(data),
            Hasher::Md5(h) => h.update(data),
            Hasher::Crc32(h) => h.update(data),
        }
    }

    /// The digest in lower-case hex (a CRC-32 as eight digits).
    pub fn finish(self) -> String {
        match self {
            Hasher::Sha256(h) => hex(h.finalize().as_slice()),
            Hasher::Sha1(h) => hex(h.finalize().as_slice()),
            Hasher::Md5(h) => hex(h.finalize().as_slice()),
            Hasher::Crc32(h) => format!("{:08x}", h.finalize() as u32),
        }
    }
}

/// The hash of `algo` an object already carries, lower-case hex: SHA-256 from [`META_SHA256`];
/// MD5 from [`META_MD5`] or else from an ETag that is a plain MD5 (a single-part upload's,
/// not a multipart one's `…-N`). `None`: the object has to be read.
pub fn stored_hash(
    algo: HashAlgo,
    metadata: Option<&HashMap<String, String>>,
    etag: Option<&str>,
) -> Option<String> {
    let meta = |k: &str| metadata.and_then(|m| m.get(k)).map(|v| v.trim());
    match algo {
        HashAlgo::Sha256 => meta(META_SHA256)
            .filter(|v| v.len() == 64 && v.bytes().all(|b| b.is_ascii_hexdigit()))
            .map(str::to_ascii_lowercase),
        HashAlgo::Md5 => meta(META_MD5)
            .and_then(|v| base64::decode(v).ok())
            .filter(|d| d.len() == 16)
            .map(|d| hex(&d))
            .or_else(|| {
                let e = etag?.trim().trim_matches('"');
                (e.len() == 32 && e.bytes().all(|b| b.is_ascii_hexdigit()))
                    .then(|| e.to_ascii_lowercase())
            }),
        HashAlgo::Sha1 | HashAlgo::Crc32 => None,
    }
}

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            // Writing to a String cannot fail.
            let _ = write!(s, "{b:02x}");
            s
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    const DATA: &[u8] = b"123456789";

    #[test]
    fn body_sums_match_the_published_check_values() {
        // Check values of the CRC catalogue ("123456789") and RFC 1321.
        assert_eq!(
            BodySum::of(BodyChecksum::Crc32c, DATA),
            BodySum::Crc32c(base64::encode(0xe306_9283_u32.to_be_bytes()))
        );
        assert_eq!(
            BodySum::of(BodyChecksum::Crc64nvme, DATA),
            BodySum::Crc64nvme(base64::encode(0xae8b_1486_0a79_9888_u64.to_be_bytes()))
        );
        assert_eq!(
            BodySum::of(BodyChecksum::Md5, b""),
            BodySum::Md5("1B2M2Y8AsgTpgAmY7PhCfg==".into())
        );
    }

    #[test]
    fn the_file_digest_is_the_same_however_the_bytes_come() {
        let mut whole = FileDigest::new(BodyChecksum::Crc64nvme, true);
        whole.update(DATA);
        let mut pieces = FileDigest::new(BodyChecksum::Crc64nvme, true);
        for b in DATA.chunks(2) {
            pieces.update(b);
        }
        let (a, b) = (whole.finish(), pieces.finish());
        assert_eq!(a, b);
        assert_eq!(
            a.sha256,
            "15e2b0d3c33891ebb0f1ef609ec419420c20e320ce94c65fbc8c3312448eb225"
        );
        assert_eq!(
            a.full_object,
            Some(BodySum::of(BodyChecksum::Crc64nvme, DATA))
        );
        assert_eq!(
            a.crc64_xz,
            Some(0x995d_c9bb_df19_39fa),
            "CRC-64/XZ check value"
        );
        assert_eq!(a.bytes, 9);
        let md5 = FileDigest::new(BodyChecksum::Md5, false).finish();
        assert_eq!(md5.full_object, None, "Content-MD5 has no full-object form");
        assert_eq!(md5.crc64_xz, None);
    }

    #[test]
    fn the_metadata_names_rclone_reads() {
        let mut d = FileDigest::new(BodyChecksum::Md5, false);
        d.update(b"");
        let m = d.finish().metadata(Some(&Md5::digest(b"")));
        assert_eq!(
            m.get("md5chksum").map(String::as_str),
            Some("1B2M2Y8AsgTpgAmY7PhCfg==")
        );
        assert_eq!(
            m.get("sha256").map(String::as_str),
            Some("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        );
    }

    #[test]
    fn hashers_match_the_known_values() {
        let run = |a| {
            let mut h = Hasher::new(a);
            h.update(&DATA[..4]);
            h.update(&DATA[4..]);
            h.finish()
        };
        assert_eq!(run(HashAlgo::Crc32), "cbf43926");
        assert_eq!(run(HashAlgo::Md5), "25f9e794323b453885f5181f1b624d0b");
        assert_eq!(
            run(HashAlgo::Sha1),
            "f7c3bc1d808e04732adf679965ccc34ca7ae3441"
        );
        assert_eq!(
            run(HashAlgo::Sha256),
            "15e2b0d3c33891ebb0f1ef609ec419420c20e320ce94c65fbc8c3312448eb225"
        );
    }

    #[test]
    fn stored_hashes() {
        let sha = "15e2b0d3c33891ebb0f1ef609ec419420c20e320ce94c65fbc8c3312448eb225";
        let meta = HashMap::from([
            (META_SHA256.to_owned(), sha.to_uppercase()),
            (
                META_MD5.to_owned(),
                base64::encode(Md5::digest(DATA).as_slice()),
            ),
        ]);
        assert_eq!(
            stored_hash(HashAlgo::Sha256, Some(&meta), None).as_deref(),
            Some(sha)
        );
        assert_eq!(
            stored_hash(HashAlgo::Md5, Some(&meta), Some("\"ffff\"")).as_deref(),
            Some("25f9e794323b453885f5181f1b624d0b")
        );
        let etag = "\"25F9E794323B453885F5181F1B624D0B\"";
        assert_eq!(
            stored_hash(HashAlgo::Md5, None, Some(etag)).as_deref(),
            Some("25f9e794323b453885f5181f1b624d0b")
        );
        assert_eq!(
            stored_hash(
                HashAlgo::Md5,
                None,
                Some("\"25f9e794323b453885f5181f1b624d0b-2\"")
            ),
            None,
            "a multipart ETag is no MD5"
        );
        let bad = HashMap::from([(META_SHA256.to_owned(), "not a hash".to_owned())]);
        assert_eq!(stored_hash(HashAlgo::Sha256, Some(&bad), None), None);
        assert_eq!(stored_hash(HashAlgo::Sha1, Some(&meta), Some(etag)), None);
    }

    #[test]
    fn crc64_reports() {
        assert_eq!(
            crc64_report_matches("11051210869376104954", 0x995d_c9bb_df19_39fa),
            Some(true)
        );
        assert_eq!(crc64_report_matches("1", 2), Some(false));
        assert_eq!(crc64_report_matches("", 2), None);
    }
}
