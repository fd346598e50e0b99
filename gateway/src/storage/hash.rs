//! Whole-file hashes as FTP clients ask for them (`HASH`, draft-bryan-ftpext-hash, and the
//! older `XMD5`/`XSHA1`/`XSHA256`/`XCRC`): the algorithms, their names on the wire, and the
//! answer the storage backend hands the relay. Pure; the hashing itself is in
//! `storage/digest.rs`.
//!
//! The relay turns a hash command into libunftp's `SITE MD5 <path>` (so libunftp resolves the
//! path against the working directory, checks the login and runs the backend off the control
//! loop) after leaving the algorithm with the session's tap; the backend answers
//! [`HashAnswer::to_wire`], libunftp replies `213 <that>    <path>`, and the relay rewrites the
//! reply into the command's own shape ([`HashAnswer::parse_wire`]).

use std::fmt;

/// A hash algorithm a client may ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HashAlgo {
    /// SHA-256 (the default: the one kept for every file uploaded here).
    Sha256,
    /// SHA-1.
    Sha1,
    /// MD5.
    Md5,
    /// CRC-32 (ISO-HDLC, as zip and `cksum -a crc32b`).
    Crc32,
}

impl HashAlgo {
    /// Every algorithm, in the order FEAT lists them.
    pub const ALL: [HashAlgo; 4] = [
        HashAlgo::Sha256,
        HashAlgo::Sha1,
        HashAlgo::Md5,
        HashAlgo::Crc32,
    ];

    /// The name on the wire (the IANA hash names the draft uses).
    pub fn name(self) -> &'static str {
        match self {
            HashAlgo::Sha256 => "SHA-256",
            HashAlgo::Sha1 => "SHA-1",
            HashAlgo::Md5 => "MD5",
            HashAlgo::Crc32 => "CRC32",
        }
    }

    /// The algorithm `OPTS HASH <name>` names; case does not matter.
    pub fn parse(name: &str) -> Option<HashAlgo> {
        Self::ALL
            .into_iter()
            .find(|a| a.name().eq_ignore_ascii_case(name.trim()))
    }

    /// The algorithm of an `X…` command (`XMD5`, `XSHA1`, `XSHA256`, `XCRC`), upper case.
    pub fn of_x_command(verb: &str) -> Option<HashAlgo> {
        match verb {
            "XSHA256" => Some(HashAlgo::Sha256),
            "XSHA1" => Some(HashAlgo::Sha1),
            "XMD5" => Some(HashAlgo::Md5),
            "XCRC" => Some(HashAlgo::Crc32),
            _ => None,
        }
    }

    /// FEAT's `HASH` line with `selected` marked: `HASH SHA-256*;SHA-1;MD5;CRC32`.
    pub fn feat_line(selected: HashAlgo) -> String {
        let names: Vec<String> = Self::ALL
            .into_iter()
            .map(|a| {
                if a == selected {
                    format!("{}*", a.name())
                } else {
                    a.name().to_owned()
                }
            })
            .collect();
        format!("HASH {}", names.join(";"))
    }
}

impl fmt::Display for HashAlgo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A file's hash: the algorithm, the file's size and the digest in lower-case hex.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HashAnswer {
    /// The algorithm.
    pub algo: HashAlgo,
    /// The file's size in bytes.
    pub size: u64,
    /// The digest, lower-case hex.
    pub hex: String,
}

impl HashAnswer {
    /// The byte range hashed as `HASH` replies show it: `0-<last>` (`0-0` for an empty file).
    pub fn range(&self) -> String {
        format!("0-{}", self.size.saturating_sub(1))
    }

    /// What the backend returns to libunftp: `<ALGO> <range> <hex>`.
    pub fn to_wire(&self) -> String {
        format!("{} {} {}", self.algo.name(), self.range(), self.hex)
    }

    /// Reads [`to_wire`](Self::to_wire) back from the start of libunftp's reply text (what
    /// follows is the path libunftp appends).
    pub fn parse_wire(text: &str) -> Option<HashAnswer> {
        let mut words = text.split_whitespace();
        let algo = HashAlgo::parse(words.next()?)?;
        let (first, last) = words.next()?.split_once('-')?;
        let (first, last) = (first.parse::<u64>().ok()?, last.parse::<u64>().ok()?);
        let hex = words.next()?;
        if first != 0 || hex.is_empty() || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        // `0-0` is an empty file or a one-byte one; the range cannot tell, nor need it.
        let size = if last == 0 { 0 } else { last + 1 };
        Some(HashAnswer {
            algo,
            size,
            hex: hex.to_ascii_lowercase(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_back() {
        for a in HashAlgo::ALL {
            assert_eq!(HashAlgo::parse(a.name()), Some(a));
            assert_eq!(HashAlgo::parse(&a.name().to_lowercase()), Some(a));
        }
        assert_eq!(HashAlgo::parse("SHA-512"), None);
        assert_eq!(HashAlgo::parse(""), None);
        assert_eq!(HashAlgo::of_x_command("XSHA256"), Some(HashAlgo::Sha256));
        assert_eq!(HashAlgo::of_x_command("XCRC"), Some(HashAlgo::Crc32));
        assert_eq!(HashAlgo::of_x_command("HASH"), None);
    }

    #[test]
    fn feat_line_marks_the_selection() {
        assert_eq!(
            HashAlgo::feat_line(HashAlgo::Sha256),
            "HASH SHA-256*;SHA-1;MD5;CRC32"
        );
        assert_eq!(
            HashAlgo::feat_line(HashAlgo::Md5),
            "HASH SHA-256;SHA-1;MD5*;CRC32"
        );
    }

    #[test]
    fn the_wire_form_round_trips() {
        let a = HashAnswer {
            algo: HashAlgo::Md5,
            size: 50,
            hex: "d41d8cd98f00b204e9800998ecf8427e".into(),
        };
        assert_eq!(a.to_wire(), "MD5 0-49 d41d8cd98f00b204e9800998ecf8427e");
        let reply_text = format!("{}    /dir/a file.txt", a.to_wire());
        assert_eq!(HashAnswer::parse_wire(&reply_text), Some(a));
        let empty = HashAnswer {
            algo: HashAlgo::Crc32,
            size: 0,
            hex: "00000000".into(),
        };
        assert_eq!(empty.range(), "0-0");
        assert_eq!(HashAnswer::parse_wire(&empty.to_wire()), Some(empty));
        assert_eq!(
            HashAnswer::parse_wire("d41d8cd98f00b204e9800998ecf8427e    /a"),
            None
        );
        assert_eq!(HashAnswer::parse_wire("MD5 5-9 abc"), None);
        assert_eq!(HashAnswer::parse_wire("MD5 0-9 xyz"), None);
    }
}
