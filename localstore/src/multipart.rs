//! Multipart upload state on disk.
//!
//! One folder per upload: `.localstore/uploads/<upload-id>/` holding `upload.json` (bucket,
//! key, start time, content type, metadata, checksum algorithm and type) and, per part `n`,
//! `<n>.part` (the data) and `<n>.json` (its MD5, size, and its checksum of the upload's
//! algorithm). Every file is written atomically. Aborting or completing
//! moves the folder away in one rename. All functions block.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use s3s::{S3Error, S3ErrorCode, S3Result};
use serde::{Deserialize, Serialize};

use crate::checksum::{Algo, Kind, Stored};
use crate::credentials::random_hex_id;
use crate::keys;
use crate::store::{Store, TempPath, io_error, join_time, split_time};

const UPLOAD_FILE: &str = "upload.json";

/// `upload.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct UploadInfo {
    pub bucket: String,
    pub key: String,
    pub initiated_s: i64,
    pub initiated_ns: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: BTreeMap<String, String>,
    /// `x-amz-checksum-algorithm` at creation: every part gets a checksum of it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checksum_algorithm: Option<Algo>,
    /// `x-amz-checksum-type` at creation (or its default); set with the algorithm.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checksum_type: Option<Kind>,
}

impl UploadInfo {
    pub(crate) fn initiated(&self) -> SystemTime {
        join_time(self.initiated_s, self.initiated_ns)
    }
}

/// `<n>.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct PartInfo {
    /// Bare MD5 hex of the part data.
    pub etag: String,
    pub size: u64,
    pub modified_s: i64,
    pub modified_ns: u32,
    /// The part's checksum of the upload's algorithm (when it has one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checksum: Option<Stored>,
}

impl PartInfo {
    pub(crate) fn modified(&self) -> SystemTime {
        join_time(self.modified_s, self.modified_ns)
    }
}

pub(crate) fn no_such_upload() -> S3Error {
    S3Error::with_message(
        S3ErrorCode::NoSuchUpload,
        "the multipart upload does not exist: it may have been aborted or completed",
    )
}

impl Store {
    fn upload_dir(&self, id: &str) -> S3Result<PathBuf> {
        if !keys::is_valid_upload_id(id) {
            return Err(no_such_upload());
        }
        Ok(self.uploads.join(id))
    }

    /// Path of part `n`'s data file.
    pub(crate) fn part_data_path(&self, id: &str, n: i32) -> S3Result<PathBuf> {
        Ok(self.upload_dir(id)?.join(format!("{n:05}.part")))
    }

    fn part_info_path(&self, id: &str, n: i32) -> S3Result<PathBuf> {
        Ok(self.upload_dir(id)?.join(format!("{n:05}.json")))
    }

    /// Starts an upload and returns its id. `checksum` is the algorithm and type every part
    /// and the object get a checksum of.
    pub(crate) fn create_upload_sync(
        &self,
        bucket: &str,
        key: &str,
        content_type: Option<String>,
        metadata: BTreeMap<String, String>,
        checksum: Option<(Algo, Kind)>,
    ) -> S3Result<String> {
        let err = |e| io_error(e, "cannot start the multipart upload");
        let id = random_hex_id().map_err(err)?;
        let dir = self.uploads.join(&id);
        fs::create_dir(&dir).map_err(err)?;
        let (s, ns) = split_time(SystemTime::now());
        let info = UploadInfo {
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            initiated_s: s,
            initiated_ns: ns,
            content_type,
            metadata,
            checksum_algorithm: checksum.map(|(a, _)| a),
            checksum_type: checksum.map(|(_, k)| k),
        };
        let json = serde_json::to_vec(&info).map_err(|e| err(io::Error::other(e)))?;
        self.write_small_file_sync(&dir.join(UPLOAD_FILE), &json)
            .map_err(err)?;
        Ok(id)
    }

    /// Loads an upload, checking that it belongs to `bucket`/`key`.
    pub(crate) fn load_upload_sync(
        &self,
        id: &str,
        bucket: &str,
        key: &str,
    ) -> S3Result<UploadInfo> {
        let dir = self.upload_dir(id)?;
        let info = read_upload(&dir).ok_or_else(no_such_upload)?;
        if info.bucket != bucket || info.key != key {
            return Err(no_such_upload());
        }
        Ok(info)
    }

    /// Records part `n` (data already in `temp`, its checksum `checksum`). Replaces an earlier
    /// upload of the same part. Call with the upload's lock held.
    #[allow(clippy::too_many_arguments)] // the part's identity, its data and its two digests
    pub(crate) fn commit_part_sync(
        &self,
        id: &str,
        bucket: &str,
        key: &str,
        n: i32,
        temp: &mut TempPath,
        md5: &[u8; 16],
        checksum: Option<Stored>,
    ) -> S3Result<PartInfo> {
        self.load_upload_sync(id, bucket, key)?;
        let err = |e| io_error(e, "cannot store the part");
        let m = fs::metadata(temp.path()).map_err(err)?;
        let (s, ns) = split_time(m.modified().unwrap_or(UNIX_EPOCH));
        let info = PartInfo {
            etag: keys::hex(md5),
            size: m.len(),
            modified_s: s,
            modified_ns: ns,
            checksum,
        };
        let json = serde_json::to_vec(&info).map_err(|e| err(io::Error::other(e)))?;
        self.write_small_file_sync(&self.part_info_path(id, n)?, &json)
            .map_err(err)?;
        Store::rename_temp_sync(temp, &self.part_data_path(id, n)?).map_err(err)?;
        Ok(info)
    }

    /// The parts of an upload whose data and record agree, sorted by number.
    pub(crate) fn list_parts_sync(&self, id: &str) -> S3Result<Vec<(i32, PartInfo)>> {
        let dir = self.upload_dir(id)?;
        let entries = match fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(no_such_upload()),
            Err(e) => return Err(io_error(e, "cannot list the parts")),
        };
        let mut parts = Vec::new();
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(num) = name.to_str().and_then(|n| n.strip_suffix(".json")) else {
                continue;
            };
            let Ok(n) = num.parse::<i32>() else { continue };
            let Some(info) = fs::read(entry.path())
                .ok()
                .and_then(|b| serde_json::from_slice::<PartInfo>(&b).ok())
            else {
                continue;
            };
            let data_ok = fs::metadata(self.part_data_path(id, n)?)
                .is_ok_and(|m| m.is_file() && m.len() == info.size);
            if data_ok {
                parts.push((n, info));
            }
        }
        parts.sort_by_key(|(n, _)| *n);
        Ok(parts)
    }

    /// Every upload in progress for `bucket`, sorted by key, then start time, then id.
    pub(crate) fn list_uploads_sync(&self, bucket: &str) -> S3Result<Vec<(String, UploadInfo)>> {
        let entries =
            fs::read_dir(&self.uploads).map_err(|e| io_error(e, "cannot list uploads"))?;
        let mut out = Vec::new();
        for entry in entries.flatten() {
            let Ok(id) = entry.file_name().into_string() else {
                continue;
            };
            if !keys::is_valid_upload_id(&id) {
                continue;
            }
            if let Some(info) = read_upload(&entry.path())
                && info.bucket == bucket
            {
                out.push((id, info));
            }
        }
        out.sort_by(|a, b| {
            (a.1.key.as_str(), a.1.initiated(), a.0.as_str()).cmp(&(
                b.1.key.as_str(),
                b.1.initiated(),
                b.0.as_str(),
            ))
        });
        Ok(out)
    }

    /// Removes an upload and its parts. Call with the upload's lock held.
    pub(crate) fn remove_upload_sync(&self, id: &str) -> S3Result<()> {
        let dir = self.upload_dir(id)?;
        match self.remove_dir_atomically_sync(&dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(no_such_upload()),
            Err(e) => Err(io_error(e, "cannot remove the multipart upload")),
        }
    }

    /// Removes every upload of a bucket (used when the bucket is deleted).
    pub(crate) fn remove_bucket_uploads_sync(&self, bucket: &str) {
        if let Ok(list) = self.list_uploads_sync(bucket) {
            for (id, _) in list {
                let _ = self.remove_upload_sync(&id);
            }
        }
    }
}

fn read_upload(dir: &Path) -> Option<UploadInfo> {
    let bytes = fs::read(dir.join(UPLOAD_FILE)).ok()?;
    serde_json::from_slice(&bytes).ok()
}
