//! "Test connection" for a profile: proves a key against a store and says plainly what is
//! wrong (unknown key, wrong secret, wrong region, no permission, missing bucket, store
//! unreachable). Used by the desktop shell before it saves a profile.

use crate::error::{Detail, Failure};
use crate::s3::error::{bucket_region_hint, classify};
use crate::s3::{ClientFactory, S3Settings};

/// What a successful test found.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ProbeReport {
    /// The buckets the key can list (empty when ListBuckets is not allowed).
    pub buckets: Vec<String>,
    /// Whether the named bucket could be listed (`None` when no bucket was named).
    pub bucket_ok: Option<bool>,
    /// The region the requests were signed for in the end (the bucket's own, for AWS).
    pub region: String,
}

/// Tests `access_key`/`secret_key` against `settings`, and `bucket` when given.
pub async fn test_connection(
    settings: &S3Settings,
    access_key: &str,
    secret_key: &str,
    bucket: Option<&str>,
) -> Result<ProbeReport, Failure> {
    let factory = ClientFactory::new(settings)
        .map_err(|e| Failure::Other(Detail::caused_by(e.to_string(), e)))?;
    let mut region = factory.resolved().region.clone();
    let mut client = factory.client(access_key, secret_key, None);
    let mut bucket_ok = None;
    if let Some(b) = bucket.filter(|b| !b.is_empty()) {
        let mut result = client.list_objects_v2().bucket(b).max_keys(1).send().await;
        if let Err(e) = &result {
            // AWS tells the bucket's region; try once there.
            if let Some(hint) = bucket_region_hint(e).filter(|h| *h != region) {
                client = factory.client(access_key, secret_key, Some(&hint));
                region = hint;
                result = client.list_objects_v2().bucket(b).max_keys(1).send().await;
            }
        }
        match result {
            Ok(_) => bucket_ok = Some(true),
            Err(e) => {
                return Err(match classify(e) {
                    Failure::NoSuchBucket => Failure::NoSuchBucket,
                    other => other,
                });
            }
        }
    }
    let buckets = match client.list_buckets().send().await {
        Ok(out) => out
            .buckets()
            .iter()
            .filter_map(|b| b.name().map(str::to_owned))
            .collect(),
        // Many keys may use a bucket but not list all buckets: fine when the bucket worked.
        Err(e) => match (classify(e), bucket_ok) {
            (Failure::AccessDenied, Some(true)) => Vec::new(),
            (f, _) => return Err(f),
        },
    };
    Ok(ProbeReport {
        buckets,
        bucket_ok,
        region,
    })
}
