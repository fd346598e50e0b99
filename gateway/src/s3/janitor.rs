//! Removes multipart uploads left behind when the gateway itself was killed mid-upload (the
//! one case where it cannot abort them). Off unless configured: other programs may use the
//! bucket too, so only uploads older than the configured age are aborted, once per bucket per
//! run, in the background after the first login to that bucket. A bucket lifecycle rule
//! (AbortIncompleteMultipartUpload) does the same job on the store's side.

use std::collections::HashSet;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use aws_sdk_s3::Client;

use crate::s3::error::classify;
use crate::storage::Pager;

/// Aborts stale multipart uploads.
#[derive(Debug)]
pub struct Janitor {
    age: Duration,
    swept: Mutex<HashSet<String>>,
}

/// True when an upload started at `initiated` is older than `age` at `now`. Pure.
pub(crate) fn is_stale(initiated: SystemTime, now: SystemTime, age: Duration) -> bool {
    now.duration_since(initiated).is_ok_and(|d| d >= age)
}

impl Janitor {
    /// Aborts uploads older than `age`.
    pub fn new(age: Duration) -> Self {
        Self {
            age,
            swept: Mutex::new(HashSet::new()),
        }
    }

    /// Sweeps `bucket` in the background, the first time only.
    pub fn sweep_once(&self, client: &Client, bucket: &str) {
        let first = crate::sync::lock(&self.swept).insert(bucket.to_owned());
        if !first {
            return;
        }
        let (client, bucket, age) = (client.clone(), bucket.to_owned(), self.age);
        tokio::spawn(async move {
            let n = sweep(&client, &bucket, age).await;
            if n > 0 {
                tracing::info!(%bucket, aborted = n, "aborted stale multipart uploads");
            }
        });
    }
}

/// Aborts the uploads in `bucket` older than `age`; how many were aborted. A listing error
/// ends the sweep (logged at debug level).
async fn sweep(client: &Client, bucket: &str, age: Duration) -> usize {
    let mut aborted = 0;
    let mut pager = Pager::default();
    while let Some(markers) = pager.next_request() {
        let (key_marker, id_marker) = markers.unzip();
        let page = match client
            .list_multipart_uploads()
            .bucket(bucket)
            .set_key_marker(key_marker)
            .set_upload_id_marker(id_marker.flatten())
            .send()
            .await
        {
            Ok(p) => p,
            Err(e) => {
                tracing::debug!(%bucket, error = %classify(&e), "cannot list multipart uploads");
                return aborted;
            }
        };
        let now = SystemTime::now();
        for u in page.uploads() {
            let started = u.initiated().and_then(|t| SystemTime::try_from(*t).ok());
            let (Some(key), Some(id), Some(started)) = (u.key(), u.upload_id(), started) else {
                continue;
            };
            if is_stale(started, now, age)
                && client
                    .abort_multipart_upload()
                    .bucket(bucket)
                    .key(key)
                    .upload_id(id)
                    .send()
                    .await
                    .is_ok()
            {
                aborted += 1;
            }
        }
        // The next page starts after the last key and upload id of this one.
        let next = page.next_key_marker().map(|k| {
            (
                k.to_owned(),
                page.next_upload_id_marker().map(str::to_owned),
            )
        });
        pager.after_page(page.is_truncated(), next);
    }
    aborted
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn staleness() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let day = Duration::from_secs(86_400);
        assert!(is_stale(t0, t0 + day, day));
        assert!(!is_stale(t0, t0 + day - Duration::from_secs(1), day));
        assert!(
            !is_stale(t0 + day, t0, day),
            "clock skew: a future start is not stale"
        );
        assert!(is_stale(t0, t0, Duration::ZERO));
    }
}
