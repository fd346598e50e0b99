//! Pure mapping between FTP paths and S3 keys.
//!
//! libunftp hands the backend `cwd.join(arg)` without normalising it, so `..`, `.`, `//`,
//! backslashes and absolute paths all arrive here. Every path is reduced to a list of clean
//! segments inside the bucket: `..` at the root stays at the root, so nothing can escape the
//! bucket or name another one. Keys never start with `/`; a folder's prefix ends with `/`.

use std::path::Path;

/// S3's limit on the length of a key, in bytes of UTF-8.
pub const MAX_KEY_BYTES: usize = 1024;
/// Longest single name (path segment) we accept, in bytes: what common file systems allow, so a
/// downloaded file can be written back to disk.
pub const MAX_SEGMENT_BYTES: usize = 255;

/// Why a path was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// The path holds a NUL byte or another control character.
    #[error("file name contains a control character")]
    ControlCharacter,
    /// One name in the path is longer than [`MAX_SEGMENT_BYTES`].
    #[error("file name is longer than {MAX_SEGMENT_BYTES} bytes")]
    SegmentTooLong,
    /// The whole key is longer than [`MAX_KEY_BYTES`].
    #[error("path is longer than {MAX_KEY_BYTES} bytes")]
    KeyTooLong,
    /// The path is not valid UTF-8.
    #[error("file name is not valid UTF-8")]
    NotUtf8,
}

/// A normalised location inside the bucket: zero segments is the user's root. A team user's
/// paths sit under a home folder (`base`): keys and prefixes include it, while `display`,
/// `is_root` and `starts_with` see only the part the user sees.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BucketPath {
    base: Vec<String>,
    segments: Vec<String>,
}

impl BucketPath {
    /// The bucket's root folder.
    pub fn root() -> Self {
        Self {
            base: Vec::new(),
            segments: Vec::new(),
        }
    }

    /// This path as seen by a user whose `/` is `home`: the same segments below `home`'s
    /// key. Nothing can leave `home`, because `..` was already resolved against the user's
    /// root. Fails when the resulting key is too long.
    pub fn within(self, home: &BucketPath) -> Result<Self, PathError> {
        if home.key().is_empty() {
            return Ok(self);
        }
        let mut base = home.base.clone();
        base.extend(home.segments.iter().cloned());
        let path = Self {
            base,
            segments: self.segments,
        };
        if path.prefix().len() > MAX_KEY_BYTES {
            return Err(PathError::KeyTooLong);
        }
        Ok(path)
    }

    fn all(&self) -> impl Iterator<Item = &str> {
        self.base
            .iter()
            .chain(self.segments.iter())
            .map(String::as_str)
    }

    /// Normalises an FTP path as libunftp passes it (see the module docs).
    pub fn parse(path: &Path) -> Result<Self, PathError> {
        let text = path.to_str().ok_or(PathError::NotUtf8)?;
        Self::parse_str(text)
    }

    /// Normalises an FTP path given as text.
    pub fn parse_str(text: &str) -> Result<Self, PathError> {
        if text.chars().any(char::is_control) {
            return Err(PathError::ControlCharacter);
        }
        let mut segments: Vec<String> = Vec::new();
        for seg in text.split(['/', '\\']) {
            match seg {
                "" | "." => {}
                ".." => {
                    segments.pop();
                }
                name => {
                    if name.len() > MAX_SEGMENT_BYTES {
                        return Err(PathError::SegmentTooLong);
                    }
                    segments.push(name.to_owned());
                }
            }
        }
        let path = Self {
            base: Vec::new(),
            segments,
        };
        // The folder form is the longest key this path can produce.
        if path.prefix().len() > MAX_KEY_BYTES {
            return Err(PathError::KeyTooLong);
        }
        Ok(path)
    }

    /// True for the user's root (the bucket's root, or the home folder).
    pub fn is_root(&self) -> bool {
        self.segments.is_empty()
    }

    /// The object key of this path as a file: `a/b/c.txt`; empty for the bucket's root.
    pub fn key(&self) -> String {
        self.all().collect::<Vec<_>>().join("/")
    }

    /// The key prefix of this path as a folder: `a/b/`, or empty for the bucket's root. This
    /// is also the key of the folder's marker object.
    pub fn prefix(&self) -> String {
        let mut p = self.key();
        if !p.is_empty() {
            p.push('/');
        }
        p
    }

    /// The last name, if any.
    pub fn name(&self) -> Option<&str> {
        self.segments.last().map(String::as_str)
    }

    /// The containing folder (the root's parent is the root).
    pub fn parent(&self) -> Self {
        let mut segments = self.segments.clone();
        segments.pop();
        Self {
            base: self.base.clone(),
            segments,
        }
    }

    /// True when `self` is `other` or lies inside it.
    pub fn starts_with(&self, other: &BucketPath) -> bool {
        self.base == other.base && self.segments.starts_with(&other.segments)
    }

    /// The FTP form of this path: `/a/b`.
    pub fn display(&self) -> String {
        format!("/{}", self.segments.join("/"))
    }
}

/// Splits a listed key under `prefix` into the name shown in the folder, and whether it is a
/// folder marker (`name/`). Returns `None` for the folder's own marker (the key equal to the
/// prefix) and for keys that do not belong directly to the folder.
pub fn child_name<'a>(prefix: &str, key: &'a str) -> Option<(&'a str, bool)> {
    let rest = key.strip_prefix(prefix)?;
    if rest.is_empty() {
        return None;
    }
    match rest.find('/') {
        None => Some((rest, false)),
        Some(i) if i + 1 == rest.len() && i > 0 => Some((&rest[..i], true)),
        Some(_) => None,
    }
}

/// The name a common prefix (`prefix` + `name/`) stands for, if it is directly under `prefix`.
pub fn common_prefix_name<'a>(prefix: &str, common: &'a str) -> Option<&'a str> {
    let rest = common.strip_prefix(prefix)?;
    let name = rest.strip_suffix('/')?;
    if name.is_empty() || name.contains('/') {
        None
    } else {
        Some(name)
    }
}

/// Maps a key under the folder `from` (a prefix ending in `/`) to the same place under `to`.
pub fn rebase_key(key: &str, from: &str, to: &str) -> Option<String> {
    key.strip_prefix(from).map(|rest| format!("{to}{rest}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Result<(String, String), PathError> {
        BucketPath::parse_str(s).map(|b| (b.key(), b.prefix()))
    }

    #[test]
    fn normalisation_table() {
        let cases: &[(&str, &str, &str)] = &[
            ("/", "", ""),
            ("", "", ""),
            ("/a", "a", "a/"),
            ("a/b/c.txt", "a/b/c.txt", "a/b/c.txt/"),
            ("/a/./b", "a/b", "a/b/"),
            ("/a//b///c", "a/b/c", "a/b/c/"),
            ("/a/b/../c", "a/c", "a/c/"),
            ("/../../etc/passwd", "etc/passwd", "etc/passwd/"),
            ("/a/../../..", "", ""),
            ("\\a\\b", "a/b", "a/b/"),
            (
                "/a\\..\\..\\other-bucket/x",
                "other-bucket/x",
                "other-bucket/x/",
            ),
            (
                "/测试 フォルダ/file name.txt",
                "测试 フォルダ/file name.txt",
                "测试 フォルダ/file name.txt/",
            ),
            ("/dir with space/", "dir with space", "dir with space/"),
            ("/...", "...", ".../"),
        ];
        for (input, key, prefix) in cases {
            assert_eq!(
                p(input),
                Ok((key.to_string(), prefix.to_string())),
                "input {input:?}"
            );
        }
    }

    #[test]
    fn refuses_bad_names() {
        assert_eq!(p("/a\0b"), Err(PathError::ControlCharacter));
        assert_eq!(p("/a\nb"), Err(PathError::ControlCharacter));
        let long = "x".repeat(256);
        assert_eq!(p(&format!("/{long}")), Err(PathError::SegmentTooLong));
        let ok = "x".repeat(255);
        assert!(p(&format!("/{ok}")).is_ok());
        let deep = vec!["y".repeat(200); 6].join("/");
        assert_eq!(p(&deep), Err(PathError::KeyTooLong));
    }

    #[test]
    fn child_names() {
        assert_eq!(child_name("a/", "a/"), None);
        assert_eq!(child_name("a/", "a/f.txt"), Some(("f.txt", false)));
        assert_eq!(child_name("a/", "a/sub/"), Some(("sub", true)));
        assert_eq!(child_name("a/", "a/sub/deep"), None);
        assert_eq!(child_name("a/", "b/f"), None);
        assert_eq!(child_name("", "top.txt"), Some(("top.txt", false)));
        assert_eq!(child_name("", "dir/"), Some(("dir", true)));
        assert_eq!(child_name("a/", "a//"), None);
        assert_eq!(common_prefix_name("a/", "a/sub/"), Some("sub"));
        assert_eq!(common_prefix_name("a/", "a//"), None);
        assert_eq!(common_prefix_name("", "x/"), Some("x"));
    }

    #[test]
    fn rebase_and_relations() {
        assert_eq!(
            rebase_key("old/x/y.txt", "old/", "new dir/"),
            Some("new dir/x/y.txt".to_string())
        );
        assert_eq!(rebase_key("other/y", "old/", "new/"), None);
        let a = BucketPath::parse_str("/a/b").unwrap_or_else(|_| BucketPath::root());
        let ab = BucketPath::parse_str("/a/b/c").unwrap_or_else(|_| BucketPath::root());
        assert!(ab.starts_with(&a));
        assert!(!a.starts_with(&ab));
        assert_eq!(ab.parent(), a);
        assert_eq!(ab.name(), Some("c"));
        assert_eq!(a.display(), "/a/b");
        assert!(BucketPath::root().is_root());
    }

    #[test]
    fn home_folders_hold_every_path() {
        let home = BucketPath::parse_str("team/alice/").unwrap_or_else(|_| BucketPath::root());
        let at = |s: &str| {
            BucketPath::parse_str(s)
                .and_then(|p| p.within(&home))
                .unwrap_or_else(|e| panic!("{s}: {e}"))
        };
        for (input, key, display) in [
            ("/", "team/alice", "/"),
            ("/x.txt", "team/alice/x.txt", "/x.txt"),
            (
                "/../../bob/secret.txt",
                "team/alice/bob/secret.txt",
                "/bob/secret.txt",
            ),
            ("..\\..\\..", "team/alice", "/"),
            ("/a/../../../b/", "team/alice/b", "/b"),
        ] {
            let p = at(input);
            assert_eq!(p.key(), key, "{input}");
            assert_eq!(p.display(), display, "{input}");
        }
        let root = at("/");
        assert!(root.is_root());
        assert_eq!(root.prefix(), "team/alice/");
        assert_eq!(at("/d/f").parent(), at("/d"));
        assert!(at("/d/f").starts_with(&at("/d")));
        assert!(
            !at("/d")
                .starts_with(&BucketPath::parse_str("/d").unwrap_or_else(|_| BucketPath::root()))
        );
        // The home itself counts towards the key length.
        let long_home = BucketPath::parse_str(&vec!["h".repeat(200); 4].join("/"))
            .unwrap_or_else(|_| BucketPath::root());
        let deep = BucketPath::parse_str(&vec!["y".repeat(200); 2].join("/"))
            .unwrap_or_else(|_| BucketPath::root());
        assert_eq!(deep.within(&long_home), Err(PathError::KeyTooLong));
        assert_eq!(
            BucketPath::root().within(&BucketPath::root()),
            Ok(BucketPath::root())
        );
    }
}
