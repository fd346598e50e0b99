//! Pure folder listing: turns ListObjectsV2 pages (delimiter `/`) into the entries of one FTP
//! folder. Markers (`name/`) and common prefixes are both folders; the folder's own marker is
//! not an entry; a name that is both a marker and a prefix appears once. Keys that cannot be
//! shown as one FTP name (`a//b`) are skipped.

use std::collections::BTreeMap;
use std::time::SystemTime;

use crate::path::{child_name, common_prefix_name};

/// One object as ListObjectsV2 returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedObject {
    /// The full key, folder prefix included.
    pub key: String,
    /// Bytes (0 for a folder marker).
    pub size: u64,
    /// LastModified, when the store gives a usable one.
    pub modified: Option<SystemTime>,
}

/// One entry of an FTP folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The name shown: the key's last segment, without a folder's `/`.
    pub name: String,
    /// True for folders.
    pub is_dir: bool,
    /// Size in bytes (0 for folders).
    pub size: u64,
    /// Last-modified time, when the store gives one.
    pub modified: Option<SystemTime>,
}

/// Accumulates pages of one folder's listing.
#[derive(Debug, Default)]
pub struct FolderListing {
    entries: BTreeMap<(String, bool), Entry>,
    /// True once the folder's own marker or anything under it was seen: the folder exists.
    pub exists: bool,
}

impl FolderListing {
    /// Adds one page.
    pub fn add_page(&mut self, prefix: &str, objects: &[ListedObject], common_prefixes: &[String]) {
        if !objects.is_empty() || !common_prefixes.is_empty() {
            self.exists = true;
        }
        for o in objects {
            if let Some((name, is_dir)) = child_name(prefix, &o.key) {
                self.insert(Entry {
                    name: name.to_owned(),
                    is_dir,
                    size: if is_dir { 0 } else { o.size },
                    modified: o.modified,
                });
            }
        }
        for cp in common_prefixes {
            if let Some(name) = common_prefix_name(prefix, cp) {
                self.insert(Entry {
                    name: name.to_owned(),
                    is_dir: true,
                    size: 0,
                    modified: None,
                });
            }
        }
    }

    fn insert(&mut self, e: Entry) {
        let slot = (e.name.clone(), e.is_dir);
        match self.entries.get_mut(&slot) {
            // A marker gives a folder a time; a prefix alone does not.
            Some(existing) => {
                if existing.modified.is_none() {
                    existing.modified = e.modified;
                }
            }
            None => {
                self.entries.insert(slot, e);
            }
        }
    }

    /// The entries, sorted by name (folders before files of the same name). Folders the
    /// store gives no time for (prefixes without a marker) get `now`, so that LIST lines stay
    /// parseable.
    pub fn into_entries(self, now: SystemTime) -> Vec<Entry> {
        let mut v: Vec<Entry> = self
            .entries
            .into_values()
            .map(|mut e| {
                if e.is_dir && e.modified.is_none() {
                    e.modified = Some(now);
                }
                e
            })
            .collect();
        v.sort_by(|a, b| a.name.cmp(&b.name).then(b.is_dir.cmp(&a.is_dir)));
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(key: &str, size: u64) -> ListedObject {
        ListedObject {
            key: key.into(),
            size,
            modified: Some(SystemTime::UNIX_EPOCH),
        }
    }

    #[test]
    fn folder_entries() {
        let mut l = FolderListing::default();
        l.add_page(
            "docs/",
            &[
                obj("docs/", 0),
                obj("docs/a.txt", 3),
                obj("docs/名前 1.txt", 4),
                obj("docs//weird", 1),
            ],
            &["docs/sub/".into(), "docs//".into()],
        );
        l.add_page(
            "docs/",
            &[obj("docs/z.bin", 9)],
            &["docs/sub/".into(), "docs/空/".into()],
        );
        assert!(l.exists);
        let names: Vec<(String, bool, u64)> = l
            .into_entries(SystemTime::UNIX_EPOCH)
            .into_iter()
            .map(|e| (e.name, e.is_dir, e.size))
            .collect();
        assert_eq!(
            names,
            vec![
                ("a.txt".into(), false, 3),
                ("sub".into(), true, 0),
                ("z.bin".into(), false, 9),
                ("名前 1.txt".into(), false, 4),
                ("空".into(), true, 0),
            ]
        );
    }

    #[test]
    fn marker_listed_without_delimiter_grouping_is_a_folder() {
        // Some stores return a child's marker in Contents rather than CommonPrefixes.
        let mut l = FolderListing::default();
        l.add_page(
            "",
            &[obj("photos/", 0), obj("photos.txt", 2)],
            &["photos/".into()],
        );
        let e = l.into_entries(SystemTime::UNIX_EPOCH);
        assert_eq!(e.len(), 2);
        assert!(e[0].is_dir && e[0].name == "photos" && e[0].modified.is_some());
        assert!(!e[1].is_dir && e[1].name == "photos.txt");
    }

    #[test]
    fn empty_listing_means_missing_folder() {
        let mut l = FolderListing::default();
        l.add_page("nothing/", &[], &[]);
        assert!(!l.exists);
        assert!(l.into_entries(SystemTime::UNIX_EPOCH).is_empty());
        let mut marker_only = FolderListing::default();
        marker_only.add_page("empty/", &[obj("empty/", 0)], &[]);
        assert!(marker_only.exists);
        assert!(marker_only.into_entries(SystemTime::UNIX_EPOCH).is_empty());
    }
}
