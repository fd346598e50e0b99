//! "Test connection": a profile form (or a saved profile) tried against its store within
//! [`PROBE_TIMEOUT`], the outcome in words.

use std::collections::BTreeMap;
use std::time::Duration;

use gateway::Failure;
use serde::Serialize;

use super::{ActionError, Core};
use crate::profiles::ProfileInput;

/// How long "Test connection" waits for the store.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(20);

/// The outcome of "Test connection", in words (a translation key plus arguments).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProbeView {
    /// True when the key works.
    pub ok: bool,
    /// Translation key (`probe.*`).
    pub key: &'static str,
    /// Placeholder values.
    pub args: BTreeMap<&'static str, String>,
    /// Buckets the key can list.
    pub buckets: Vec<String>,
}

/// A failed probe in words. Pure.
pub fn probe_failure(f: &Failure) -> (&'static str, Vec<(&'static str, String)>) {
    match f {
        Failure::InvalidAccessKey => ("probe.bad_key", vec![]),
        Failure::BadSecret => ("probe.bad_secret", vec![]),
        Failure::AccessDenied => ("probe.denied", vec![]),
        Failure::NoSuchBucket => ("probe.no_bucket", vec![]),
        Failure::WrongRegion(Some(r)) => ("probe.wrong_region", vec![("region", r.clone())]),
        Failure::WrongRegion(None) => ("probe.wrong_region_unknown", vec![]),
        // The words and their causes: a TLS or DNS failure of the endpoint is named.
        Failure::Transient(d) => (
            "probe.unreachable",
            vec![("detail", gateway::error::chain(d))],
        ),
        other => (
            "probe.other",
            vec![("detail", gateway::error::chain(other))],
        ),
    }
}

impl Core {
    /// Tests a profile form (or a saved profile: `id` set, empty secret uses the stored one).
    pub async fn test_connection(&self, input: ProfileInput) -> Result<ProbeView, ActionError> {
        let saved = (!input.id.is_empty())
            .then(|| self.profiles.get(&input.id))
            .flatten();
        let (settings, access_key, secret, bucket) = match saved.filter(|p| p.local) {
            Some(local) => {
                let l = self.local_login.as_ref().ok_or_else(|| {
                    ActionError::LocalUnavailable("the local bucket did not start".into())
                })?;
                (
                    l.settings.clone(),
                    l.access_key.clone(),
                    l.secret_key.clone(),
                    local.bucket,
                )
            }
            None => {
                let profile = input.to_profile("probe")?;
                let secret = match input.secret.trim() {
                    "" if !input.id.is_empty() => self.secret_of(&input.id)?,
                    "" => None,
                    s => Some(s.to_owned()),
                };
                let secret = secret.ok_or(ActionError::SecretRequired)?;
                (
                    profile.s3_settings(),
                    profile.access_key,
                    secret,
                    profile.bucket,
                )
            }
        };
        let bucket_arg = (!bucket.is_empty()).then_some(bucket.as_str());
        let probe =
            gateway::s3::probe::test_connection(&settings, &access_key, &secret, bucket_arg);
        let view = match tokio::time::timeout(PROBE_TIMEOUT, probe).await {
            Err(_) => ProbeView {
                ok: false,
                key: "probe.timeout",
                args: BTreeMap::new(),
                buckets: vec![],
            },
            Ok(Err(f)) => {
                let (key, args) = probe_failure(&f);
                ProbeView {
                    ok: false,
                    key,
                    args: args.into_iter().collect(),
                    buckets: vec![],
                }
            }
            Ok(Ok(report)) => {
                let mut args = BTreeMap::from([("region", report.region.clone())]);
                let key = if report.bucket_ok == Some(true) {
                    args.insert("bucket", bucket.clone());
                    "probe.ok_bucket"
                } else if !report.buckets.is_empty() {
                    args.insert("buckets", report.buckets.join(", "));
                    "probe.ok_buckets"
                } else {
                    "probe.ok_none"
                };
                ProbeView {
                    ok: true,
                    key,
                    args,
                    buckets: report.buckets,
                }
            }
        };
        Ok(view)
    }
}
