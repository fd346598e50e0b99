//! Listing keys in S3 order from a folder tree.
//!
//! S3 lists keys in UTF-8 byte order, where a folder marker `a/` is the string `"a/"`: so
//! `a-b` < `a.txt` < `a/` < `a/x` < `a0`. Directory order is not that order, so each folder's
//! entries are sorted by their key (folders with the trailing `/`) and walked depth first. That
//! yields global S3 order, because every key below a folder starts with the folder's key and no
//! sibling key is a prefix of another sibling's key.
//!
//! Only the folders that can hold matching keys are read: the walk starts at the folder named
//! by the prefix, skips subtrees that sort entirely before the resume point, and does not
//! descend into a folder that rolls up into a common prefix. The walk stops one item after the
//! page is full. Blocking; runs in `spawn_blocking`.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::keys::{self, Cursor, MAX_KEY_LEN};

/// One listed item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Item {
    /// An object: a file, or a folder marker (`is_dir`, key ends with `/`).
    Object {
        key: String,
        path: PathBuf,
        is_dir: bool,
    },
    /// A common prefix (only with a delimiter).
    Prefix(String),
}

impl Item {
    /// The key or prefix string this item sorts as.
    pub(crate) fn name(&self) -> &str {
        match self {
            Item::Object { key, .. } => key,
            Item::Prefix(p) => p,
        }
    }
}

/// One page of results.
#[derive(Debug, Default)]
pub(crate) struct Page {
    pub items: Vec<Item>,
    /// More items follow the last one.
    pub truncated: bool,
}

/// Lists a bucket folder: keys starting with `prefix`, grouped by `delimiter`, after `cursor`,
/// at most `limit` items (objects plus common prefixes).
pub(crate) fn list(
    bucket_dir: &Path,
    prefix: &str,
    delimiter: Option<&str>,
    cursor: Option<&Cursor>,
    limit: usize,
) -> io::Result<Page> {
    let delimiter = delimiter.filter(|d| !d.is_empty());
    let (dir_key, name_prefix) = match prefix.rfind('/') {
        Some(i) => (&prefix[..=i], &prefix[i + 1..]),
        None => ("", prefix),
    };
    let dir_path = if dir_key.is_empty() {
        bucket_dir.to_path_buf()
    } else {
        match keys::parse_key(dir_key) {
            Ok(pk) if pk.is_dir => pk.path_in(bucket_dir),
            // A prefix no stored key can have.
            _ => return Ok(Page::default()),
        }
    };
    match fs::metadata(&dir_path) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => return Ok(Page::default()),
        Err(e) if crate::store::is_not_found(&e) => return Ok(Page::default()),
        Err(e) => return Err(e),
    }
    let mut walker = Walker {
        prefix,
        delimiter,
        cursor,
        limit,
        page: Page::default(),
        last_prefix: None,
    };
    if limit == 0 {
        return Ok(walker.page);
    }
    if !dir_key.is_empty() && name_prefix.is_empty() {
        // The prefix names a folder: its own marker (key == prefix) comes first.
        walker.visit(
            Child {
                key: dir_key.to_owned(),
                path: dir_path,
                is_dir: true,
            },
            true,
        )?;
    } else {
        walker.visit_dir(&dir_path, dir_key, Some(name_prefix), true)?;
    }
    Ok(walker.page)
}

struct Child {
    key: String,
    path: PathBuf,
    is_dir: bool,
}

#[derive(Debug, PartialEq, Eq)]
enum Flow {
    Continue,
    Stop,
}

#[derive(Debug, PartialEq, Eq)]
enum Offer {
    Emitted,
    RolledUp,
    Skipped,
    Stop,
}

struct Walker<'a> {
    prefix: &'a str,
    delimiter: Option<&'a str>,
    cursor: Option<&'a Cursor>,
    limit: usize,
    page: Page,
    last_prefix: Option<String>,
}

impl Walker<'_> {
    fn push(&mut self, item: Item) -> Offer {
        if self.page.items.len() >= self.limit {
            self.page.truncated = true;
            return Offer::Stop;
        }
        self.page.items.push(item);
        Offer::Emitted
    }

    /// Offers one key to the page.
    fn offer(&mut self, child: &Child) -> Offer {
        let key = child.key.as_str();
        if key.len() > MAX_KEY_LEN {
            return Offer::Skipped;
        }
        if let Some(c) = self.cursor
            && ((c.skip_prefix && key.starts_with(c.after.as_str())) || key <= c.after.as_str())
        {
            return Offer::Skipped;
        }
        if let Some(d) = self.delimiter {
            let rest = &key[self.prefix.len()..];
            if let Some(i) = rest.find(d) {
                let cp = &key[..self.prefix.len() + i + d.len()];
                if self.last_prefix.as_deref() == Some(cp) {
                    return Offer::RolledUp;
                }
                let cp = cp.to_owned();
                self.last_prefix = Some(cp.clone());
                return match self.push(Item::Prefix(cp)) {
                    Offer::Stop => Offer::Stop,
                    _ => Offer::RolledUp,
                };
            }
        }
        self.push(Item::Object {
            key: child.key.clone(),
            path: child.path.clone(),
            is_dir: child.is_dir,
        })
    }

    /// Offers an entry, and walks into it when it is a folder that can hold more items.
    fn visit(&mut self, child: Child, top: bool) -> io::Result<Flow> {
        let offer = self.offer(&child);
        if offer == Offer::Stop {
            return Ok(Flow::Stop);
        }
        if !child.is_dir || child.key.len() >= MAX_KEY_LEN {
            return Ok(Flow::Continue);
        }
        match offer {
            // Every key below starts with the folder key, so it rolls up into the same prefix.
            Offer::RolledUp => return Ok(Flow::Continue),
            Offer::Skipped => {
                if let Some(c) = self.cursor {
                    let k = child.key.as_str();
                    let below_cursor = !c.after.starts_with(k) && k < c.after.as_str();
                    let in_skipped_prefix = c.skip_prefix && k.starts_with(c.after.as_str());
                    if below_cursor || in_skipped_prefix {
                        return Ok(Flow::Continue);
                    }
                } else {
                    // Skipped for its length: nothing below can be a valid key either.
                    return Ok(Flow::Continue);
                }
            }
            Offer::Emitted | Offer::Stop => {}
        }
        self.visit_dir(&child.path, &child.key, None, top)
    }

    /// Walks the entries of one folder in key order.
    fn visit_dir(
        &mut self,
        dir: &Path,
        dir_key: &str,
        name_prefix: Option<&str>,
        top: bool,
    ) -> io::Result<Flow> {
        let children = match read_children(dir, dir_key, name_prefix) {
            Ok(c) => c,
            // The folder being listed must be readable; an unreadable subfolder is skipped.
            Err(e) if top => return Err(e),
            Err(e) => {
                tracing::warn!(error = %e, "skipping an unreadable folder while listing");
                return Ok(Flow::Continue);
            }
        };
        for child in children {
            if self.visit(child, false)? == Flow::Stop {
                return Ok(Flow::Stop);
            }
        }
        Ok(Flow::Continue)
    }
}

/// The listable entries of a folder, as keys, sorted in S3 order.
fn read_children(dir: &Path, dir_key: &str, name_prefix: Option<&str>) -> io::Result<Vec<Child>> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let Ok(name) = entry.file_name().into_string() else {
            tracing::debug!("skipping a file name that is not UTF-8");
            continue;
        };
        if !keys::is_listable_name(&name) {
            continue;
        }
        if let Some(p) = name_prefix
            && !name.starts_with(p)
        {
            continue;
        }
        let Ok(ft) = entry.file_type() else { continue };
        let (is_dir, is_file) = if ft.is_symlink() {
            match fs::metadata(entry.path()) {
                Ok(m) => (m.is_dir(), m.is_file()),
                Err(_) => continue,
            }
        } else {
            (ft.is_dir(), ft.is_file())
        };
        if !is_dir && !is_file {
            continue;
        }
        let mut key = String::with_capacity(dir_key.len() + name.len() + 1);
        key.push_str(dir_key);
        key.push_str(&name);
        if is_dir {
            key.push('/');
        }
        out.push(Child {
            key,
            path: entry.path(),
            is_dir,
        });
    }
    out.sort_unstable_by(|a, b| a.key.cmp(&b.key));
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    struct TempTree(PathBuf);
    impl Drop for TempTree {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    /// Builds a tree from keys: `x/` makes a folder, anything else a file.
    fn tree(name: &str, keys: &[&str]) -> TempTree {
        let dir = std::env::temp_dir().join(format!(
            "localstore-listing-{name}-{}-{}",
            std::process::id(),
            crate::credentials::random_hex_id().unwrap()
        ));
        fs::create_dir_all(&dir).unwrap();
        for k in keys {
            let p = dir.join(k.trim_end_matches('/'));
            if k.ends_with('/') {
                fs::create_dir_all(&p).unwrap();
            } else {
                fs::create_dir_all(p.parent().unwrap()).unwrap();
                fs::write(&p, b"x").unwrap();
            }
        }
        TempTree(dir)
    }

    fn names(page: &Page) -> Vec<String> {
        page.items
            .iter()
            .map(|i| match i {
                Item::Object { key, .. } => key.clone(),
                Item::Prefix(p) => format!("CP:{p}"),
            })
            .collect()
    }

    fn all(dir: &Path, prefix: &str, delim: Option<&str>) -> Vec<String> {
        names(&list(dir, prefix, delim, None, 10_000).unwrap())
    }

    #[test]
    fn s3_byte_order_with_markers() {
        let t = tree("order", &["a-b", "a.txt", "a/x", "a0", "b/", "中/文"]);
        assert_eq!(
            all(&t.0, "", None),
            ["a-b", "a.txt", "a/", "a/x", "a0", "b/", "中/", "中/文"]
        );
    }

    #[test]
    fn delimiter_and_prefix() {
        let t = tree("delim", &["a/x", "a/y/z", "a/e/", "b", "c/"]);
        assert_eq!(all(&t.0, "", Some("/")), ["CP:a/", "b", "CP:c/"]);
        assert_eq!(
            all(&t.0, "a/", Some("/")),
            ["a/", "CP:a/e/", "a/x", "CP:a/y/"]
        );
        // The empty folder's marker is listed under its own prefix.
        assert_eq!(all(&t.0, "a/e/", Some("/")), ["a/e/"]);
        assert_eq!(all(&t.0, "a/e/", None), ["a/e/"]);
        assert_eq!(all(&t.0, "a/y", Some("/")), ["CP:a/y/"]);
        assert_eq!(all(&t.0, "a/y", None), ["a/y/", "a/y/z"]);
        assert_eq!(all(&t.0, "nope/", None), Vec::<String>::new());
        assert_eq!(all(&t.0, "b/", None), Vec::<String>::new());
        assert_eq!(all(&t.0, "a//", None), Vec::<String>::new());
    }

    #[test]
    fn other_delimiters() {
        let t = tree("odelim", &["p-1-x", "p-1-y", "p-2", "q"]);
        assert_eq!(all(&t.0, "", Some("-")), ["CP:p-", "q"]);
        assert_eq!(all(&t.0, "p-", Some("-")), ["CP:p-1-", "p-2"]);
    }

    #[test]
    fn paging_with_cursors() {
        let t = tree("paging", &["a/1", "a/2", "b", "c/", "d/e/f", "g"]);
        let mut seen = Vec::new();
        let mut cursor: Option<Cursor> = None;
        loop {
            let page = list(&t.0, "", Some("/"), cursor.as_ref(), 2).unwrap();
            seen.extend(names(&page));
            if !page.truncated {
                break;
            }
            let last = page.items.last().unwrap();
            cursor = Some(Cursor {
                after: last.name().to_owned(),
                skip_prefix: matches!(last, Item::Prefix(_)),
            });
        }
        assert_eq!(seen, ["CP:a/", "b", "CP:c/", "CP:d/", "g"]);

        let mut seen = Vec::new();
        let mut cursor: Option<Cursor> = None;
        loop {
            let page = list(&t.0, "", None, cursor.as_ref(), 3).unwrap();
            seen.extend(names(&page));
            if !page.truncated {
                break;
            }
            cursor = Some(Cursor {
                after: page.items.last().unwrap().name().to_owned(),
                skip_prefix: false,
            });
        }
        assert_eq!(
            seen,
            ["a/", "a/1", "a/2", "b", "c/", "d/", "d/e/", "d/e/f", "g"]
        );
    }

    #[test]
    fn start_after_inside_a_folder() {
        let t = tree("startafter", &["a/1", "a/2", "a/3", "b"]);
        let c = Cursor {
            after: "a/1".to_owned(),
            skip_prefix: false,
        };
        assert_eq!(
            names(&list(&t.0, "", None, Some(&c), 100).unwrap()),
            ["a/2", "a/3", "b"]
        );
        assert_eq!(
            names(&list(&t.0, "", Some("/"), Some(&c), 100).unwrap()),
            ["CP:a/", "b"]
        );
    }

    #[test]
    fn internal_names_are_hidden() {
        let t = tree(
            "hidden",
            &[".localstore/x", "a/.localstore-tmp-1", "a/b", ".keep"],
        );
        assert_eq!(all(&t.0, "", None), [".keep", "a/", "a/b"]);
    }
}
