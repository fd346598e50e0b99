//! Pure helpers: object key validation and key-to-path mapping, continuation tokens,
//! copy-source ranges, and small encoders (hex, base64, URL encoding).
//!
//! Nothing here touches the file system, so everything is covered by table tests.

use std::path::{Path, PathBuf};

/// Names starting with this (ASCII case-insensitive) are internal: the `.localstore` folder
/// at the root, and temporary files that may appear inside a bucket folder. They are never
/// listed, and keys using them as a path segment are rejected.
pub(crate) const RESERVED_PREFIX: &str = ".localstore";

/// The longest key S3 accepts, in UTF-8 bytes.
pub(crate) const MAX_KEY_LEN: usize = 1024;

/// The longest single path segment most file systems accept, in bytes.
const MAX_SEGMENT_LEN: usize = 255;

/// A validated object key, split into path segments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ParsedKey<'a> {
    /// The path segments (at least one, none empty).
    pub segments: Vec<&'a str>,
    /// `true` when the key ends with `/`: a folder marker, stored as a directory.
    pub is_dir: bool,
}

impl ParsedKey<'_> {
    /// The file system path of this key inside `bucket_dir`.
    pub(crate) fn path_in(&self, bucket_dir: &Path) -> PathBuf {
        let mut p = bucket_dir.to_path_buf();
        for s in &self.segments {
            p.push(s);
        }
        p
    }

    /// The number of folder levels above the object (0 for a top-level key).
    pub(crate) fn depth(&self) -> usize {
        self.segments.len()
    }
}

/// Why a key was rejected. The message is shown to S3 clients.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum KeyError {
    /// Empty key.
    #[error("the object key is empty")]
    Empty,
    /// Longer than 1024 bytes.
    #[error("the object key is longer than 1024 bytes")]
    TooLong,
    /// A forbidden character or shape.
    #[error("invalid object key: {0}")]
    Invalid(&'static str),
}

/// Checks an object key and splits it into path segments.
///
/// Rejected: empty keys, keys over 1024 bytes, NUL, backslash, a leading `/`, empty segments
/// (`a//b`), `.` and `..` segments, segments longer than 255 bytes and segments starting with
/// [`RESERVED_PREFIX`]. On Windows, characters and names Windows cannot store are rejected too.
pub(crate) fn parse_key(key: &str) -> Result<ParsedKey<'_>, KeyError> {
    if key.is_empty() {
        return Err(KeyError::Empty);
    }
    if key.len() > MAX_KEY_LEN {
        return Err(KeyError::TooLong);
    }
    if key.contains('\0') {
        return Err(KeyError::Invalid("it contains a NUL character"));
    }
    if key.contains('\\') {
        return Err(KeyError::Invalid("it contains a backslash"));
    }
    if key.starts_with('/') {
        return Err(KeyError::Invalid("it starts with '/'"));
    }
    let (body, is_dir) = match key.strip_suffix('/') {
        Some(b) => (b, true),
        None => (key, false),
    };
    let mut segments = Vec::new();
    for seg in body.split('/') {
        check_segment(seg)?;
        segments.push(seg);
    }
    Ok(ParsedKey { segments, is_dir })
}

fn check_segment(seg: &str) -> Result<(), KeyError> {
    if seg.is_empty() {
        return Err(KeyError::Invalid(
            "it contains an empty path segment ('//')",
        ));
    }
    if seg == "." || seg == ".." {
        return Err(KeyError::Invalid("it contains a '.' or '..' path segment"));
    }
    if seg.len() > MAX_SEGMENT_LEN {
        return Err(KeyError::Invalid("a path segment is longer than 255 bytes"));
    }
    if is_reserved_name(seg) {
        return Err(KeyError::Invalid(
            "a path segment starting with '.localstore' is reserved",
        ));
    }
    if cfg!(windows) {
        check_windows_segment(seg)?;
    }
    Ok(())
}

/// Names Windows cannot store. Only applied on Windows.
fn check_windows_segment(seg: &str) -> Result<(), KeyError> {
    if seg
        .chars()
        .any(|c| matches!(c, '<' | '>' | ':' | '"' | '|' | '?' | '*') || (c as u32) < 0x20)
    {
        return Err(KeyError::Invalid(
            "it contains a character Windows cannot store in a file name (<>:\"|?* or a control character)",
        ));
    }
    if seg.ends_with('.') || seg.ends_with(' ') {
        return Err(KeyError::Invalid(
            "a path segment ends with '.' or a space, which Windows cannot store",
        ));
    }
    let stem = seg.split('.').next().unwrap_or(seg).to_ascii_uppercase();
    let device = matches!(stem.as_str(), "CON" | "PRN" | "AUX" | "NUL")
        || ((stem.starts_with("COM") || stem.starts_with("LPT"))
            && stem.len() == 4
            && stem.as_bytes()[3].is_ascii_digit());
    if device {
        return Err(KeyError::Invalid(
            "a path segment is a reserved Windows device name",
        ));
    }
    Ok(())
}

/// `true` for names that belong to localstore itself.
pub(crate) fn is_reserved_name(name: &str) -> bool {
    name.len() >= RESERVED_PREFIX.len()
        && name.as_bytes()[..RESERVED_PREFIX.len()].eq_ignore_ascii_case(RESERVED_PREFIX.as_bytes())
}

/// `true` when a directory entry name can be listed as part of a key.
pub(crate) fn is_listable_name(name: &str) -> bool {
    !name.is_empty()
        && !is_reserved_name(name)
        && !name.contains('\\')
        && !name.contains('\0')
        && name != "."
        && name != ".."
}

/// Where a listing resumes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Cursor {
    /// Keys `<=` this are skipped.
    pub after: String,
    /// When set, every key starting with `after` is skipped as well (the previous page ended on
    /// a common prefix, which stands for all of them).
    pub skip_prefix: bool,
}

/// Encodes a continuation token. Tokens are opaque to clients.
pub(crate) fn encode_token(cursor: &Cursor) -> String {
    let tag = if cursor.skip_prefix { 'p' } else { 'k' };
    let mut s = String::with_capacity(1 + cursor.after.len() * 2);
    s.push(tag);
    s.push_str(&hex(cursor.after.as_bytes()));
    s
}

/// Decodes a token made by [`encode_token`]; `None` when it is not one.
pub(crate) fn decode_token(token: &str) -> Option<Cursor> {
    let mut chars = token.chars();
    let skip_prefix = match chars.next()? {
        'p' => true,
        'k' => false,
        _ => return None,
    };
    let bytes = unhex(chars.as_str())?;
    let after = String::from_utf8(bytes).ok()?;
    Some(Cursor { after, skip_prefix })
}

/// Lower-case hex.
pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    s
}

/// Inverse of [`hex`]; accepts either case.
pub(crate) fn unhex(s: &str) -> Option<Vec<u8>> {
    fn nibble(c: u8) -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            b'A'..=b'F' => Some(c - b'A' + 10),
            _ => None,
        }
    }
    let b = s.as_bytes();
    if !b.len().is_multiple_of(2) {
        return None;
    }
    b.chunks_exact(2)
        .map(|pair| Some((nibble(pair[0])? << 4) | nibble(pair[1])?))
        .collect()
}

/// Standard base64 with padding (used to compare `Content-MD5`).
pub(crate) fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b0 = u32::from(chunk[0]);
        let b1 = u32::from(chunk.get(1).copied().unwrap_or(0));
        let b2 = u32::from(chunk.get(2).copied().unwrap_or(0));
        let n = (b0 << 16) | (b1 << 8) | b2;
        let idx = |shift: u32| char::from(ALPHABET[((n >> shift) & 0x3f) as usize]);
        out.push(idx(18));
        out.push(idx(12));
        out.push(if chunk.len() > 1 { idx(6) } else { '=' });
        out.push(if chunk.len() > 2 { idx(0) } else { '=' });
    }
    out
}

/// Inverse of [`base64`]: standard alphabet, padding required, and only the canonical
/// encoding of the bytes (unused low bits zero), so that one byte string has one spelling.
pub(crate) fn unbase64(s: &str) -> Option<Vec<u8>> {
    fn sextet(c: u8) -> Option<u32> {
        match c {
            b'A'..=b'Z' => Some(u32::from(c - b'A')),
            b'a'..=b'z' => Some(u32::from(c - b'a') + 26),
            b'0'..=b'9' => Some(u32::from(c - b'0') + 52),
            b'+' => Some(62),
            b'/' => Some(63),
            _ => None,
        }
    }
    let b = s.as_bytes();
    if !b.len().is_multiple_of(4) {
        return None;
    }
    let mut out = Vec::with_capacity(b.len() / 4 * 3);
    let quads = b.len() / 4;
    for (i, quad) in b.chunks_exact(4).enumerate() {
        let pad = quad.iter().rev().take_while(|&&c| c == b'=').count();
        if pad > 2 || (pad > 0 && i + 1 != quads) {
            return None;
        }
        let mut n: u32 = 0;
        for &c in &quad[..4 - pad] {
            n = (n << 6) | sextet(c)?;
        }
        n <<= 6 * pad as u32;
        let bytes = n.to_be_bytes();
        out.extend_from_slice(&bytes[1..4 - pad]);
    }
    (base64(&out) == s).then_some(out)
}

/// Percent-encodes a key for `encoding-type=url` listings: everything except unreserved
/// characters and `/`.
pub(crate) fn url_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for &b in s.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'/') {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push_str(&hex(&[b]).to_ascii_uppercase());
        }
    }
    out
}

/// Parses `x-amz-copy-source-range` (`bytes=first-last`, inclusive).
pub(crate) fn parse_copy_range(s: &str) -> Option<(u64, u64)> {
    let rest = s.trim().strip_prefix("bytes=")?;
    let (a, b) = rest.split_once('-')?;
    let first: u64 = a.trim().parse().ok()?;
    let last: u64 = b.trim().parse().ok()?;
    (first <= last).then_some((first, last))
}

/// Strips the quotes (and a `W/` prefix) from an ETag as clients send it.
pub(crate) fn bare_etag(s: &str) -> &str {
    let s = s.trim();
    let s = s.strip_prefix("W/").unwrap_or(s);
    s.strip_prefix('"')
        .and_then(|x| x.strip_suffix('"'))
        .unwrap_or(s)
}

/// Upload ids are 32 lower-case hex digits; anything else cannot name an upload folder.
pub(crate) fn is_valid_upload_id(id: &str) -> bool {
    id.len() == 32
        && id
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_and_unicode_keys() {
        let cases: &[(&str, &[&str], bool)] = &[
            ("a", &["a"], false),
            ("a/b/c.txt", &["a", "b", "c.txt"], false),
            ("dir/", &["dir"], true),
            ("x/y/", &["x", "y"], true),
            (
                "中文/日本語 ファイル.txt",
                &["中文", "日本語 ファイル.txt"],
                false,
            ),
            ("a+b%20c d", &["a+b%20c d"], false),
            ("...", &["..."], false),
            (".hidden", &[".hidden"], false),
            ("a/.b", &["a", ".b"], false),
            ("localstore", &["localstore"], false),
        ];
        for (key, segs, is_dir) in cases {
            let p = parse_key(key).unwrap_or_else(|e| panic!("{key:?} rejected: {e}"));
            assert_eq!(&p.segments, segs, "{key:?}");
            assert_eq!(p.is_dir, *is_dir, "{key:?}");
        }
    }

    #[test]
    fn rejects_bad_keys() {
        let long = "a".repeat(1025);
        let long_seg = format!("{}/x", "b".repeat(256));
        let cases: &[&str] = &[
            "",
            "/",
            "/a",
            "a//b",
            "a/./b",
            "a/../b",
            "..",
            ".",
            "../x",
            "a/..",
            "a\\b",
            "a\0b",
            "//",
            "a//",
            ".localstore",
            ".localstore/x",
            "a/.LocalStore-tmp-1",
            long.as_str(),
            long_seg.as_str(),
        ];
        for key in cases {
            assert!(parse_key(key).is_err(), "{key:?} should be rejected");
        }
        assert_eq!(parse_key(&long), Err(KeyError::TooLong));
    }

    #[test]
    fn key_path_mapping() {
        let p = parse_key("a/b/c.txt").unwrap();
        assert_eq!(
            p.path_in(Path::new("/root/bkt")),
            Path::new("/root/bkt/a/b/c.txt")
        );
        assert_eq!(p.depth(), 3);
    }

    #[test]
    fn tokens_round_trip() {
        for (after, skip_prefix) in [("", false), ("a/b/", true), ("中文 x+y", false)] {
            let c = Cursor {
                after: after.to_owned(),
                skip_prefix,
            };
            assert_eq!(decode_token(&encode_token(&c)), Some(c));
        }
        assert_eq!(decode_token("zzz"), None);
        assert_eq!(decode_token("k0"), None);
        assert_eq!(decode_token(""), None);
        assert_eq!(decode_token("kff"), None, "not UTF-8");
    }

    #[test]
    fn encoders() {
        assert_eq!(hex(&[0x00, 0xab, 0xff]), "00abff");
        assert_eq!(unhex("00ABff"), Some(vec![0x00, 0xab, 0xff]));
        assert_eq!(unhex("0"), None);
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
        for s in [
            &b""[..],
            b"f",
            b"fo",
            b"foo",
            b"foob",
            b"fooba",
            b"foobar",
            &[0xff; 32],
        ] {
            assert_eq!(unbase64(&base64(s)).as_deref(), Some(s));
        }
        // Wrong length, bad characters, padding in the middle, non-canonical trailing bits.
        for bad in [
            "Zg=", "Zg", "Z===", "Zm9v!A==", "Zg==Zg==", "Zh==", "Zm9=", "====",
        ] {
            assert_eq!(unbase64(bad), None, "{bad}");
        }
        assert_eq!(url_encode("a b/ü+c"), "a%20b/%C3%BC%2Bc");
    }

    #[test]
    fn copy_ranges() {
        assert_eq!(parse_copy_range("bytes=0-9"), Some((0, 9)));
        assert_eq!(parse_copy_range("bytes=5-5"), Some((5, 5)));
        assert_eq!(parse_copy_range("bytes=9-0"), None);
        assert_eq!(parse_copy_range("bytes=-9"), None);
        assert_eq!(parse_copy_range("0-9"), None);
    }

    #[test]
    fn etags_and_upload_ids() {
        assert_eq!(bare_etag("\"abc\""), "abc");
        assert_eq!(bare_etag("W/\"abc\""), "abc");
        assert_eq!(bare_etag("abc-3"), "abc-3");
        assert!(is_valid_upload_id("0123456789abcdef0123456789abcdef"));
        assert!(!is_valid_upload_id("../../etc/passwd"));
        assert!(!is_valid_upload_id("0123456789ABCDEF0123456789abcdef"));
    }

    #[test]
    fn reserved_and_listable_names() {
        assert!(is_reserved_name(".localstore"));
        assert!(is_reserved_name(".LOCALSTORE-tmp-abc"));
        assert!(!is_reserved_name(".local"));
        assert!(is_listable_name("a b"));
        assert!(!is_listable_name("a\\b"));
        assert!(!is_listable_name(".localstore-tmp-1"));
    }
}
