//! DELE, MKD, RMD and RNFR/RNTO over key prefixes, so that folders behave as on a disk.
//!
//! A folder is a `name/` marker object or an implicit prefix. MKD writes a marker; RMD
//! deletes only an empty folder; removing a folder's last key (DELE, or moving it away)
//! writes the parent's marker so the folder stays. A rename copies in the store and then
//! deletes the source; a folder rename moves every key under its prefix and, when a copy
//! fails, removes the copies made so far and leaves the source whole.
//!
//! The caller has checked the permissions; these functions check the paths.

use futures::stream::{self, StreamExt};

use super::Res;
use super::bucket::{Bucket, PARALLEL};
use super::listing::ListedObject;
use crate::error::Failure;
use crate::path::{BucketPath, rebase_key};

/// DELE: deletes the file at `p`, keeping its folder.
pub(super) async fn delete_file(b: &Bucket<'_>, p: &BucketPath) -> Res<()> {
    if p.is_root() {
        return Err(Failure::WrongType("the root folder is not a file".into()));
    }
    if b.head(&p.key()).await?.is_none() {
        if b.probe_folder(&p.prefix()).await?.is_some() {
            return Err(Failure::WrongType(format!(
                "{} is a folder; use RMD",
                p.display()
            )));
        }
        return Err(Failure::NotFound);
    }
    b.delete(&p.key()).await?;
    keep_folder(b, &p.parent()).await
}

/// MKD: writes the marker of a new folder at `p`.
pub(super) async fn make_folder(b: &Bucket<'_>, p: &BucketPath) -> Res<()> {
    if p.is_root() {
        return Err(Failure::AlreadyExists("the root folder".into()));
    }
    if b.probe_folder(&p.prefix()).await?.is_some() {
        return Err(Failure::AlreadyExists(format!("folder {}", p.display())));
    }
    if b.head(&p.key()).await?.is_some() {
        return Err(Failure::AlreadyExists(format!(
            "a file named {}",
            p.display()
        )));
    }
    b.put_marker(&p.prefix()).await
}

/// RMD: removes the folder at `p` when nothing but its marker is in it.
pub(super) async fn remove_folder(b: &Bucket<'_>, p: &BucketPath) -> Res<()> {
    if p.is_root() {
        return Err(Failure::AccessDenied);
    }
    let prefix = p.prefix();
    let first = b.first_keys(&prefix, 2).await?;
    if first.objects.iter().any(|o| o.key != prefix) {
        return Err(Failure::NotEmpty);
    }
    if first.objects.is_empty() {
        return Err(Failure::NoSuchFolder);
    }
    b.delete(&prefix).await
}

/// RNFR/RNTO: moves the file or the folder at `from` to `to`.
pub(super) async fn rename(b: &Bucket<'_>, from: &BucketPath, to: &BucketPath) -> Res<()> {
    if from.is_root() || to.is_root() {
        return Err(Failure::AccessDenied);
    }
    if from == to {
        return Ok(());
    }
    if let Some(file) = b.head(&from.key()).await? {
        if b.probe_folder(&to.prefix()).await?.is_some() {
            return Err(Failure::AlreadyExists(format!(
                "a folder named {}",
                to.display()
            )));
        }
        b.copy(&from.key(), &to.key(), file.len).await?;
        b.delete(&from.key()).await?;
        return keep_folder(b, &from.parent()).await;
    }
    // A folder.
    let keys = b.all_keys(&from.prefix()).await?;
    if keys.is_empty() {
        return Err(Failure::NotFound);
    }
    if to.starts_with(from) {
        return Err(Failure::WrongType(
            "cannot move a folder into itself".into(),
        ));
    }
    if b.probe_folder(&to.prefix()).await?.is_some() {
        return Err(Failure::AlreadyExists(format!(
            "a folder named {}",
            to.display()
        )));
    }
    if b.head(&to.key()).await?.is_some() {
        return Err(Failure::AlreadyExists(format!(
            "a file named {}",
            to.display()
        )));
    }
    let (from_prefix, to_prefix) = (from.prefix(), to.prefix());
    let jobs: Vec<_> = keys
        .iter()
        .map(|o| copy_rebased(b, o, &from_prefix, &to_prefix))
        .collect();
    let copied: Vec<Res<String>> = stream::iter(jobs)
        .buffer_unordered(PARALLEL)
        .collect()
        .await;
    let mut done = Vec::new();
    let mut first_err = None;
    for r in copied {
        match r {
            Ok(k) => done.push(k),
            Err(f) => {
                first_err.get_or_insert(f);
            }
        }
    }
    if let Some(f) = first_err {
        // Leave the source whole: remove the partial copy.
        let _ = b.delete_many(&done).await;
        return Err(f);
    }
    let sources: Vec<String> = keys.into_iter().map(|o| o.key).collect();
    b.delete_many(&sources).await?;
    keep_folder(b, &from.parent()).await
}

/// Copies `o` from under `from` to the same place under `to`; the new key.
async fn copy_rebased(b: &Bucket<'_>, o: &ListedObject, from: &str, to: &str) -> Res<String> {
    let dest = rebase_key(&o.key, from, to)
        .ok_or_else(|| Failure::Other("listing returned a foreign key".into()))?;
    b.copy(&o.key, &dest, o.size).await?;
    Ok(dest)
}

/// Keeps `folder` visible after its last key went away, as a disk would.
async fn keep_folder(b: &Bucket<'_>, folder: &BucketPath) -> Res<()> {
    if folder.is_root() {
        return Ok(());
    }
    if b.probe_folder(&folder.prefix()).await?.is_none() {
        b.put_marker(&folder.prefix()).await?;
    }
    Ok(())
}
