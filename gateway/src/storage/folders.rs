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
    if b.first_keys(&from.prefix(), 1).await?.objects.is_empty() {
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
    // Page by page (1,000 keys at most in memory, whatever the folder holds): copy, then,
    // once every key is copied, delete the sources. On a failure the destination, which did
    // not exist before, is removed again and the source stays whole.
    if let Err(f) = copy_folder(b, &from_prefix, &to_prefix).await {
        let _ = delete_pairs(b, &from_prefix, &to_prefix, Side::Copies).await;
        return Err(f);
    }
    delete_pairs(b, &from_prefix, &to_prefix, Side::Sources).await?;
    delete_empty_markers(b, &from_prefix).await?;
    keep_folder(b, &from.parent()).await
}

/// Deletes the folder markers (`…/`) left under `prefix`, deepest first: a store that keeps
/// folders as directories (the local one) lists them, and refuses to delete one before its
/// contents, which were deleted after it. A folder that still holds a key stays.
async fn delete_empty_markers(b: &Bucket<'_>, prefix: &str) -> Res<()> {
    let mut markers = Vec::new();
    let mut cursor = None;
    loop {
        let (keys, next) = b.keys_page(prefix, cursor).await?;
        markers.extend(
            keys.into_iter()
                .filter(|o| o.key.ends_with('/'))
                .map(|o| o.key),
        );
        match next {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    // Deeper markers sort after their parents: deleted in reverse, children go first.
    markers.reverse();
    for marker in markers {
        let _ = b.delete(&marker).await;
    }
    Ok(())
}

/// Which key of each source/copy pair [`delete_pairs`] deletes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    /// The source (the copy is there: a finished move).
    Sources,
    /// The copy (a failed move is undone).
    Copies,
}

/// Copies every key under `from` to the same place under `to`, a listing page at a time.
async fn copy_folder(b: &Bucket<'_>, from: &str, to: &str) -> Res<()> {
    let mut cursor = None;
    loop {
        let (keys, next) = b.keys_page(from, cursor).await?;
        let jobs: Vec<_> = keys.iter().map(|o| copy_rebased(b, o, from, to)).collect();
        let copied: Vec<Res<String>> = stream::iter(jobs)
            .buffer_unordered(PARALLEL)
            .collect()
            .await;
        if let Some(f) = copied.into_iter().find_map(Result::err) {
            return Err(f);
        }
        match next {
            Some(c) => cursor = Some(c),
            None => return Ok(()),
        }
    }
}

/// Deletes one key of each pair of a key under `from` and its copy under `to` (the same
/// size): only keys that were copied are deleted, never one written while the move ran. A
/// listing page of the sources at a time (each seen once), matched with the page of the
/// copies listed from the same place: a common prefix replaced keeps the order.
async fn delete_pairs(b: &Bucket<'_>, from: &str, to: &str, side: Side) -> Res<()> {
    let mut cursor = None;
    let mut after: Option<String> = None;
    loop {
        let (sources, next) = b.keys_page(from, cursor).await?;
        let Some(last) = sources.last() else {
            return Ok(());
        };
        let (copies, _) = b.keys_page_after(to, None, after.clone()).await?;
        after = rebase_key(&last.key, from, to);
        let copied: std::collections::HashMap<&str, u64> =
            copies.iter().map(|o| (o.key.as_str(), o.size)).collect();
        let pairs: Vec<String> = sources
            .iter()
            .filter_map(|o| {
                let copy = rebase_key(&o.key, from, to)?;
                (copied.get(copy.as_str()) == Some(&o.size)).then(|| match side {
                    Side::Sources => o.key.clone(),
                    Side::Copies => copy,
                })
            })
            .collect();
        b.delete_many(&pairs).await?;
        match next {
            Some(c) => cursor = Some(c),
            None => return Ok(()),
        }
    }
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
