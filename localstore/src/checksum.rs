//! Flexible checksums (`x-amz-checksum-*`) as AWS S3 checks and keeps them.
//!
//! A request may carry one checksum of its body, in a header (`x-amz-checksum-crc32c: …`) or
//! in a trailer of an `aws-chunked` body (named by `x-amz-trailer`): base64 of the big-endian
//! digest. The store hashes the body with that algorithm while it streams to disk
//! ([`Hasher`], fed by `Store::receive` next to the MD5) and refuses a mismatch with
//! `BadDigest`, before anything is committed. Nothing is computed for a request without one.
//!
//! An object keeps the checksum it was stored with ([`Stored`], in its sidecar): for a
//! multipart upload created with `x-amz-checksum-algorithm`, either the CRC of the whole
//! object (`FULL_OBJECT`, CRC32/CRC32C/CRC64NVME: the parts' CRCs are combined, no data is
//! read again) or the checksum of the parts' checksums with a `-N` suffix (`COMPOSITE`), as
//! AWS computes them. Pure: no I/O here.

use s3s::crypto::{Checksum as _, Crc32, Crc32c, Crc64Nvme, Sha1, Sha256};
use s3s::{S3Error, S3ErrorCode, S3Result};
use serde::{Deserialize, Serialize};

use crate::keys;

/// A checksum algorithm of S3's flexible checksums.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub(crate) enum Algo {
    Crc32,
    Crc32c,
    Crc64Nvme,
    Sha1,
    Sha256,
}

impl Algo {
    /// Every algorithm, in the order [`claim_of`] takes their headers.
    pub(crate) const ALL: [Algo; 5] = [
        Algo::Crc32,
        Algo::Crc32c,
        Algo::Crc64Nvme,
        Algo::Sha1,
        Algo::Sha256,
    ];

    /// The name in `x-amz-checksum-algorithm` and in messages: `CRC32C`.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Algo::Crc32 => "CRC32",
            Algo::Crc32c => "CRC32C",
            Algo::Crc64Nvme => "CRC64NVME",
            Algo::Sha1 => "SHA1",
            Algo::Sha256 => "SHA256",
        }
    }

    /// The header (or trailer) carrying a value: `x-amz-checksum-crc32c`.
    pub(crate) fn header(self) -> &'static str {
        match self {
            Algo::Crc32 => "x-amz-checksum-crc32",
            Algo::Crc32c => "x-amz-checksum-crc32c",
            Algo::Crc64Nvme => "x-amz-checksum-crc64nvme",
            Algo::Sha1 => "x-amz-checksum-sha1",
            Algo::Sha256 => "x-amz-checksum-sha256",
        }
    }

    /// Bytes in a digest.
    fn digest_len(self) -> usize {
        match self {
            Algo::Crc32 | Algo::Crc32c => 4,
            Algo::Crc64Nvme => 8,
            Algo::Sha1 => 20,
            Algo::Sha256 => 32,
        }
    }

    /// The algorithm an `x-amz-checksum-algorithm` (or SDK) value names; case does not matter.
    pub(crate) fn parse(name: &str) -> Option<Algo> {
        Self::ALL
            .into_iter()
            .find(|a| a.name().eq_ignore_ascii_case(name.trim()))
    }

    /// The algorithm whose header `name` is (any case).
    pub(crate) fn of_header(name: &str) -> Option<Algo> {
        Self::ALL
            .into_iter()
            .find(|a| a.header().eq_ignore_ascii_case(name.trim()))
    }

    /// The CRC parameters, for the algorithms whose values combine.
    fn crc(self) -> Option<crc_fast::CrcAlgorithm> {
        match self {
            Algo::Crc32 => Some(crc_fast::CrcAlgorithm::Crc32IsoHdlc),
            Algo::Crc32c => Some(crc_fast::CrcAlgorithm::Crc32Iscsi),
            Algo::Crc64Nvme => Some(crc_fast::CrcAlgorithm::Crc64Nvme),
            Algo::Sha1 | Algo::Sha256 => None,
        }
    }
}

/// How a multipart object's checksum covers it (`x-amz-checksum-type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub(crate) enum Kind {
    /// The checksum of the object's bytes (every single-part object, and CRC multipart
    /// uploads that ask for it).
    FullObject,
    /// The checksum of the parts' checksums, with a `-N` suffix.
    Composite,
}

impl Kind {
    /// The wire name: `FULL_OBJECT`, `COMPOSITE`.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Kind::FullObject => "FULL_OBJECT",
            Kind::Composite => "COMPOSITE",
        }
    }

    /// The kind an `x-amz-checksum-type` value names; case does not matter.
    pub(crate) fn parse(name: &str) -> Option<Kind> {
        [Kind::FullObject, Kind::Composite]
            .into_iter()
            .find(|k| k.name().eq_ignore_ascii_case(name.trim()))
    }

    /// The default of an upload created with `algo` and no `x-amz-checksum-type`, as AWS:
    /// CRC64NVME is full-object only, the others default to composite.
    pub(crate) fn default_for(algo: Algo) -> Kind {
        match algo {
            Algo::Crc64Nvme => Kind::FullObject,
            _ => Kind::Composite,
        }
    }

    /// Whether AWS accepts this kind with `algo` (full-object needs a CRC, composite anything
    /// but CRC64NVME).
    pub(crate) fn allows(self, algo: Algo) -> bool {
        match self {
            Kind::FullObject => algo.crc().is_some(),
            Kind::Composite => algo != Algo::Crc64Nvme,
        }
    }
}

/// A checksum kept with an object or part: base64 value (with `-N` when composite).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Stored {
    pub algorithm: Algo,
    pub value: String,
    #[serde(rename = "type")]
    pub kind: Kind,
}

impl Stored {
    /// The full-object checksum `digest` of `algo`.
    pub(crate) fn full(algo: Algo, digest: &[u8]) -> Stored {
        Stored {
            algorithm: algo,
            value: keys::base64(digest),
            kind: Kind::FullObject,
        }
    }

    /// The digest bytes (without a composite's `-N`).
    fn digest(&self) -> Option<Vec<u8>> {
        let b64 = match self.kind {
            Kind::FullObject => self.value.as_str(),
            Kind::Composite => self
                .value
                .rsplit_once('-')
                .map_or(self.value.as_str(), |(v, _)| v),
        };
        keys::unbase64(b64).filter(|d| d.len() == self.algorithm.digest_len())
    }

    /// The response fields: the value under its algorithm, and the type.
    pub(crate) fn to_dto(&self) -> s3s::dto::Checksum {
        let mut out = s3s::dto::Checksum {
            checksum_type: Some(s3s::dto::ChecksumType::from_static(self.kind.name())),
            ..Default::default()
        };
        let v = Some(self.value.clone());
        match self.algorithm {
            Algo::Crc32 => out.checksum_crc32 = v,
            Algo::Crc32c => out.checksum_crc32c = v,
            Algo::Crc64Nvme => out.checksum_crc64nvme = v,
            Algo::Sha1 => out.checksum_sha1 = v,
            Algo::Sha256 => out.checksum_sha256 = v,
        }
        out
    }
}

/// A checksum a client sent: the algorithm and the decoded digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Claim {
    pub algo: Algo,
    pub digest: Vec<u8>,
}

impl Claim {
    /// Decodes the value of `algo`'s header; `InvalidRequest` when it is not the base64 of a
    /// digest of that algorithm (as AWS answers, also for an empty value).
    pub(crate) fn parse(algo: Algo, value: &str) -> S3Result<Claim> {
        keys::unbase64(value.trim())
            .filter(|d| d.len() == algo.digest_len())
            .map(|digest| Claim { algo, digest })
            .ok_or_else(|| {
                invalid_request(format!("Value for {} header is invalid.", algo.header()))
            })
    }
}

/// The one checksum among a request's checksum headers, given in the order of
/// [`Algo::ALL`]: `None` without any, `InvalidRequest` for two or more (even empty ones) or
/// a malformed value, as AWS.
pub(crate) fn claim_of(values: [Option<&str>; 5]) -> S3Result<Option<Claim>> {
    let mut given = Algo::ALL
        .into_iter()
        .zip(values)
        .filter_map(|(a, v)| Some((a, v?)));
    let Some((algo, value)) = given.next() else {
        return Ok(None);
    };
    if given.next().is_some() {
        return Err(invalid_request(
            "Expecting a single x-amz-checksum- header. Multiple checksum Types are not allowed.",
        ));
    }
    Claim::parse(algo, value).map(Some)
}

/// The checksum algorithm whose value a request body carries: its header's `claim`, or the
/// trailer `x-amz-trailer` names. `x-amz-sdk-checksum-algorithm` (`sdk`), when sent, must
/// name the same one, as AWS requires. Checked before the body is read.
pub(crate) fn body_algo(
    claim: Option<&Claim>,
    trailer: Option<&str>,
    sdk: Option<&str>,
) -> S3Result<Option<Algo>> {
    let trailer = trailer.and_then(Algo::of_header);
    let algo = match (claim, trailer) {
        (Some(_), Some(_)) => {
            return Err(invalid_request(
                "Expecting a single x-amz-checksum- header. Multiple checksum Types are not allowed.",
            ));
        }
        (Some(c), None) => Some(c.algo),
        (None, t) => t,
    };
    if let Some(sdk) = sdk {
        match algo {
            Some(a) if Algo::parse(sdk) == Some(a) => {}
            Some(_) => {
                return Err(invalid_request(
                    "Value for x-amz-sdk-checksum-algorithm header is invalid.",
                ));
            }
            None => {
                return Err(invalid_request(
                    "x-amz-sdk-checksum-algorithm specified, but no corresponding x-amz-checksum-* or x-amz-trailer headers were found.",
                ));
            }
        }
    }
    Ok(algo)
}

/// What to check of one request body (PutObject, UploadPart): the checksum its header
/// claims, or the algorithm of the checksum its trailer will carry.
#[derive(Debug)]
pub(crate) struct BodyCheck {
    claim: Option<Claim>,
    algo: Option<Algo>,
}

impl BodyCheck {
    /// From the request's checksum header values (order of [`Algo::ALL`]), its headers
    /// (`x-amz-trailer`) and its `x-amz-sdk-checksum-algorithm`. Fails as [`claim_of`] and
    /// [`body_algo`] do, before the body is read.
    pub(crate) fn new(
        values: [Option<&str>; 5],
        headers: &http::HeaderMap,
        sdk: Option<&str>,
    ) -> S3Result<BodyCheck> {
        let claim = claim_of(values)?;
        let trailer = headers.get("x-amz-trailer").and_then(|v| v.to_str().ok());
        let algo = body_algo(claim.as_ref(), trailer, sdk)?;
        Ok(BodyCheck { claim, algo })
    }

    /// The algorithm to compute while the body streams in.
    pub(crate) fn algo(&self) -> Option<Algo> {
        self.algo
    }

    /// After the body was read: `BadDigest` unless its checksum (header, or trailer from
    /// `trailers`) matches `digests`. Returns the verified checksum.
    pub(crate) fn verify(
        &self,
        digests: &Digests,
        trailers: Option<&s3s::TrailingHeaders>,
    ) -> S3Result<Option<Stored>> {
        let Some(algo) = self.algo else {
            return Ok(None);
        };
        match &self.claim {
            Some(claim) => digests.verify(claim)?,
            None => {
                let sent = trailers.and_then(|t| {
                    t.read(|h| {
                        h.get(algo.header())
                            .and_then(|v| v.to_str().ok())
                            .map(str::to_owned)
                    })
                    .flatten()
                });
                let Some(sent) = sent else {
                    return Err(invalid_request(format!(
                        "x-amz-trailer names {} but the body carried no such trailer.",
                        algo.header()
                    )));
                };
                digests.verify(&Claim::parse(algo, &sent)?)?;
            }
        }
        Ok(digests.stored(Some(algo)))
    }
}

/// `BadDigest`, as AWS words it.
pub(crate) fn bad_digest(algo: Algo) -> S3Error {
    S3Error::with_message(
        S3ErrorCode::BadDigest,
        format!(
            "The {} you specified did not match the calculated checksum.",
            algo.name()
        ),
    )
}

/// `InvalidRequest` (400) with `msg`.
pub(crate) fn invalid_request(msg: impl Into<String>) -> S3Error {
    S3Error::with_message(S3ErrorCode::InvalidRequest, msg.into())
}

/// One running digest.
enum Running {
    Crc32(Crc32),
    Crc32c(Crc32c),
    Crc64Nvme(Crc64Nvme),
    Sha1(Sha1),
    Sha256(Sha256),
}

/// The digests of some algorithms over one stream of bytes; with none, `update` costs
/// nothing.
#[derive(Default)]
pub(crate) struct Hasher {
    running: Vec<(Algo, Running)>,
}

impl Hasher {
    /// Hashes with each algorithm of `algos` (duplicates and `None`s ignored).
    pub(crate) fn of(algos: impl IntoIterator<Item = Option<Algo>>) -> Hasher {
        let mut running: Vec<(Algo, Running)> = Vec::new();
        for algo in algos.into_iter().flatten() {
            if running.iter().any(|(a, _)| *a == algo) {
                continue;
            }
            let r = match algo {
                Algo::Crc32 => Running::Crc32(Crc32::new()),
                Algo::Crc32c => Running::Crc32c(Crc32c::new()),
                Algo::Crc64Nvme => Running::Crc64Nvme(Crc64Nvme::new()),
                Algo::Sha1 => Running::Sha1(Sha1::new()),
                Algo::Sha256 => Running::Sha256(Sha256::new()),
            };
            running.push((algo, r));
        }
        Hasher { running }
    }

    /// Whether no algorithm runs.
    pub(crate) fn is_empty(&self) -> bool {
        self.running.is_empty()
    }

    pub(crate) fn update(&mut self, data: &[u8]) {
        for (_, r) in &mut self.running {
            match r {
                Running::Crc32(h) => h.update(data),
                Running::Crc32c(h) => h.update(data),
                Running::Crc64Nvme(h) => h.update(data),
                Running::Sha1(h) => h.update(data),
                Running::Sha256(h) => h.update(data),
            }
        }
    }

    pub(crate) fn finish(self) -> Digests {
        Digests(
            self.running
                .into_iter()
                .map(|(a, r)| {
                    let d = match r {
                        Running::Crc32(h) => h.finalize().to_vec(),
                        Running::Crc32c(h) => h.finalize().to_vec(),
                        Running::Crc64Nvme(h) => h.finalize().to_vec(),
                        Running::Sha1(h) => h.finalize().to_vec(),
                        Running::Sha256(h) => h.finalize().to_vec(),
                    };
                    (a, d)
                })
                .collect(),
        )
    }
}

/// Finished digests, by algorithm.
#[derive(Debug, Default, Clone)]
pub(crate) struct Digests(Vec<(Algo, Vec<u8>)>);

impl Digests {
    /// The digest of `algo`, if it was computed.
    pub(crate) fn get(&self, algo: Algo) -> Option<&[u8]> {
        self.0
            .iter()
            .find(|(a, _)| *a == algo)
            .map(|(_, d)| d.as_slice())
    }

    /// The full-object checksum of `algo`, if it was computed.
    pub(crate) fn stored(&self, algo: Option<Algo>) -> Option<Stored> {
        let algo = algo?;
        self.get(algo).map(|d| Stored::full(algo, d))
    }

    /// `Ok` when `claim` matches what was computed; `BadDigest` otherwise (also when its
    /// algorithm was not computed, which the callers rule out).
    pub(crate) fn verify(&self, claim: &Claim) -> S3Result<()> {
        match self.get(claim.algo) {
            Some(d) if d == claim.digest.as_slice() => Ok(()),
            _ => Err(bad_digest(claim.algo)),
        }
    }
}

/// The full-object CRC of parts from their CRCs and sizes (`parts` in order), without reading
/// any data. `None` for a non-CRC algorithm or a part whose stored value does not decode.
pub(crate) fn combine_crcs<'a>(
    algo: Algo,
    parts: impl IntoIterator<Item = (&'a Stored, u64)>,
) -> Option<Stored> {
    let crc = algo.crc()?;
    let mut acc: Option<u64> = None;
    for (stored, len) in parts {
        if stored.algorithm != algo {
            return None;
        }
        let part = be_u64(&stored.digest()?);
        acc = Some(match acc {
            None => part,
            Some(a) => crc_fast::checksum_combine(crc, a, part, len),
        });
    }
    let value = acc?;
    let bytes = value.to_be_bytes();
    Some(Stored::full(algo, &bytes[8 - algo.digest_len()..]))
}

/// The composite checksum of parts (`parts` in order): the checksum of their concatenated
/// digests, base64, `-N`. `None` when a stored value does not decode or is of another
/// algorithm.
pub(crate) fn composite<'a>(
    algo: Algo,
    parts: impl IntoIterator<Item = &'a Stored>,
) -> Option<Stored> {
    let mut h = Hasher::of([Some(algo)]);
    let mut n = 0usize;
    for stored in parts {
        if stored.algorithm != algo {
            return None;
        }
        h.update(&stored.digest()?);
        n += 1;
    }
    let digest = h.finish().get(algo)?.to_vec();
    Some(Stored {
        algorithm: algo,
        value: format!("{}-{n}", keys::base64(&digest)),
        kind: Kind::Composite,
    })
}

/// Whether `claim` (a checksum sent with CompleteMultipartUpload) names `stored`: same
/// algorithm and digest; a composite's `-N` is not part of the claim.
pub(crate) fn claim_matches(claim: &Claim, stored: &Stored) -> bool {
    claim.algo == stored.algorithm && stored.digest().as_deref() == Some(claim.digest.as_slice())
}

/// A claim on CompleteMultipartUpload: like [`claim_of`], but a composite value may end in
/// `-N`, which is dropped.
pub(crate) fn complete_claim_of(values: [Option<&str>; 5]) -> S3Result<Option<Claim>> {
    fn strip(v: Option<&str>) -> Option<&str> {
        v.map(|v| match v.trim().rsplit_once('-') {
            Some((b64, n)) if !n.is_empty() && n.bytes().all(|c| c.is_ascii_digit()) => b64,
            _ => v,
        })
    }
    claim_of(values.map(strip))
}

fn be_u64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn digest_of(algo: Algo, data: &[u8]) -> Vec<u8> {
        let mut h = Hasher::of([Some(algo)]);
        h.update(data);
        h.finish().get(algo).unwrap().to_vec()
    }

    #[test]
    fn known_values_as_aws_encodes_them() {
        // Check values of "123456789" for each CRC, and the SHA-256 of nothing.
        assert_eq!(
            digest_of(Algo::Crc32, b"123456789"),
            0xcbf4_3926u32.to_be_bytes()
        );
        assert_eq!(
            digest_of(Algo::Crc32c, b"123456789"),
            0xe306_9283u32.to_be_bytes()
        );
        assert_eq!(
            digest_of(Algo::Crc64Nvme, b"123456789"),
            0xae8b_1486_0a79_9888u64.to_be_bytes()
        );
        assert_eq!(
            keys::base64(&digest_of(Algo::Sha256, b"")),
            "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="
        );
        assert_eq!(
            keys::base64(&digest_of(Algo::Sha1, b"")),
            "2jmj7l5rSw0yVb/vlWAYkK/YBwk="
        );
    }

    #[test]
    fn one_claim_at_most_and_well_formed() {
        assert_eq!(claim_of([None; 5]).unwrap(), None);
        let c = claim_of([None, Some("4waSgw=="), None, None, None])
            .unwrap()
            .unwrap();
        assert_eq!(c.algo, Algo::Crc32c);
        assert_eq!(c.digest, 0xe306_9283u32.to_be_bytes());
        let two = claim_of([Some("AAAAAA=="), Some("AAAAAA=="), None, None, None]).unwrap_err();
        assert_eq!(*two.code(), S3ErrorCode::InvalidRequest);
        // An empty value, a SHA-1-sized value for CRC32C, and junk.
        for bad in ["", "2jmj7l5rSw0yVb/vlWAYkK/YBwk=", "not base64"] {
            let e = claim_of([None, Some(bad), None, None, None]).unwrap_err();
            assert_eq!(*e.code(), S3ErrorCode::InvalidRequest, "{bad:?}");
            assert!(
                e.message().unwrap().contains("x-amz-checksum-crc32c"),
                "{e:?}"
            );
        }
    }

    #[test]
    fn body_algorithm_from_header_trailer_and_sdk_name() {
        let c = Claim::parse(Algo::Sha256, "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=").unwrap();
        assert_eq!(body_algo(None, None, None).unwrap(), None);
        assert_eq!(body_algo(Some(&c), None, None).unwrap(), Some(Algo::Sha256));
        assert_eq!(
            body_algo(Some(&c), None, Some("sha256")).unwrap(),
            Some(Algo::Sha256)
        );
        assert_eq!(
            body_algo(None, Some("x-amz-checksum-crc32"), Some("CRC32")).unwrap(),
            Some(Algo::Crc32)
        );
        // A trailer that is no checksum is not ours to check.
        assert_eq!(body_algo(None, Some("x-amz-meta-x"), None).unwrap(), None);
        for (claim, trailer, sdk) in [
            (Some(&c), None, Some("CRC32")),
            (None, None, Some("CRC32")),
            (Some(&c), Some("x-amz-checksum-crc32"), None),
        ] {
            let e = body_algo(claim, trailer, sdk).unwrap_err();
            assert_eq!(*e.code(), S3ErrorCode::InvalidRequest);
        }
    }

    #[test]
    fn body_checks_verify_after_the_body() {
        let mut h = Hasher::default();
        h.update(b"123456789");
        let none = BodyCheck::new([None; 5], &http::HeaderMap::new(), None).unwrap();
        assert_eq!(none.algo(), None);
        assert!(Hasher::of([none.algo()]).is_empty(), "nothing computed");
        assert_eq!(none.verify(&h.finish(), None).unwrap(), None);

        let check = BodyCheck::new(
            [None, Some("4waSgw=="), None, None, None],
            &http::HeaderMap::new(),
            Some("CRC32C"),
        )
        .unwrap();
        let digests = |data: &[u8]| {
            let mut h = Hasher::of([check.algo()]);
            h.update(data);
            h.finish()
        };
        let stored = check.verify(&digests(b"123456789"), None).unwrap().unwrap();
        assert_eq!(
            stored,
            Stored::full(Algo::Crc32c, &0xe306_9283u32.to_be_bytes())
        );
        let e = check.verify(&digests(b"12345678"), None).unwrap_err();
        assert_eq!(*e.code(), S3ErrorCode::BadDigest);

        // A trailer announced but never sent.
        let mut headers = http::HeaderMap::new();
        headers.insert("x-amz-trailer", "x-amz-checksum-crc32".parse().unwrap());
        let check = BodyCheck::new([None; 5], &headers, None).unwrap();
        assert_eq!(check.algo(), Some(Algo::Crc32));
        let mut h = Hasher::of([check.algo()]);
        h.update(b"x");
        let e = check.verify(&h.finish(), None).unwrap_err();
        assert_eq!(*e.code(), S3ErrorCode::InvalidRequest);
    }

    #[test]
    fn verify_is_bad_digest_on_mismatch() {
        let mut h = Hasher::of([Some(Algo::Crc32c), None, Some(Algo::Crc32c)]);
        h.update(b"1234");
        h.update(b"56789");
        let d = h.finish();
        assert!(d.get(Algo::Crc32).is_none());
        let good = Claim::parse(Algo::Crc32c, "4waSgw==").unwrap();
        d.verify(&good).unwrap();
        let bad = Claim::parse(Algo::Crc32c, "AAAAAA==").unwrap();
        let e = d.verify(&bad).unwrap_err();
        assert_eq!(*e.code(), S3ErrorCode::BadDigest);
        assert_eq!(
            e.message(),
            Some("The CRC32C you specified did not match the calculated checksum.")
        );
        assert_eq!(e.status_code(), Some(http::StatusCode::BAD_REQUEST));
        assert!(Hasher::of([None]).is_empty());
    }

    #[test]
    fn combined_part_crcs_equal_the_whole_objects_crc() {
        let data: Vec<u8> = (0..100_000u32).map(|i| (i * 7 + i / 13) as u8).collect();
        for algo in [Algo::Crc32, Algo::Crc32c, Algo::Crc64Nvme] {
            for cuts in [&[0usize, 100_000][..], &[0, 1, 5000, 5000, 99_999, 100_000]] {
                let parts: Vec<(Stored, u64)> = cuts
                    .windows(2)
                    .map(|w| {
                        let p = &data[w[0]..w[1]];
                        (Stored::full(algo, &digest_of(algo, p)), p.len() as u64)
                    })
                    .collect();
                let whole = combine_crcs(algo, parts.iter().map(|(s, l)| (s, *l))).unwrap();
                assert_eq!(
                    whole,
                    Stored::full(algo, &digest_of(algo, &data)),
                    "{algo:?}"
                );
            }
        }
        let sha = Stored::full(Algo::Sha256, &digest_of(Algo::Sha256, b"x"));
        assert_eq!(combine_crcs(Algo::Sha256, [(&sha, 1)]), None);
        let crc = Stored::full(Algo::Crc32, &digest_of(Algo::Crc32, b"x"));
        assert_eq!(
            combine_crcs(Algo::Crc32c, [(&crc, 1)]),
            None,
            "other algorithm"
        );
    }

    #[test]
    fn composite_is_the_checksum_of_the_part_checksums() {
        let p1 = Stored::full(Algo::Sha256, &digest_of(Algo::Sha256, b"one"));
        let p2 = Stored::full(Algo::Sha256, &digest_of(Algo::Sha256, b"two"));
        let c = composite(Algo::Sha256, [&p1, &p2]).unwrap();
        let mut cat = digest_of(Algo::Sha256, b"one");
        cat.extend(digest_of(Algo::Sha256, b"two"));
        let want = format!("{}-2", keys::base64(&digest_of(Algo::Sha256, &cat)));
        assert_eq!(c.value, want);
        assert_eq!(c.kind, Kind::Composite);
        let claim = complete_claim_of([None, None, None, None, Some(&want)])
            .unwrap()
            .unwrap();
        assert!(claim_matches(&claim, &c));
        let dto = c.to_dto();
        assert_eq!(dto.checksum_sha256.as_deref(), Some(want.as_str()));
        assert_eq!(dto.checksum_type.unwrap().as_str(), "COMPOSITE");
    }

    #[test]
    fn kinds_and_names() {
        assert_eq!(Algo::parse("crc64nvme"), Some(Algo::Crc64Nvme));
        assert_eq!(Algo::parse("MD5"), None);
        assert_eq!(Algo::of_header("X-Amz-Checksum-Sha1"), Some(Algo::Sha1));
        assert_eq!(Kind::parse("full_object"), Some(Kind::FullObject));
        assert_eq!(Kind::default_for(Algo::Crc64Nvme), Kind::FullObject);
        assert_eq!(Kind::default_for(Algo::Crc32), Kind::Composite);
        assert!(!Kind::FullObject.allows(Algo::Sha256));
        assert!(!Kind::Composite.allows(Algo::Crc64Nvme));
        assert!(Kind::FullObject.allows(Algo::Crc32c));
        let s = Stored::full(Algo::Crc64Nvme, &[0; 8]);
        let json = serde_json::to_string(&s).unwrap();
        assert_eq!(
            json,
            r#"{"algorithm":"CRC64NVME","value":"AAAAAAAAAAA=","type":"FULL_OBJECT"}"#
        );
        assert_eq!(serde_json::from_str::<Stored>(&json).unwrap(), s);
    }
}
