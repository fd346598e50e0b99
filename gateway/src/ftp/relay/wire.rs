//! The FTP text the relay reads and rewrites, as pure functions: command lines, replies
//! assembled from a byte stream, the MLST fact selection (`OPTS MLST`, RFC 3659 §7.9), the
//! argument of `OPTS HASH`, paths shown in replies, passive-mode addresses, and what a command
//! looks like in a log line, and the path of an `X…` hash command (quoted, or refused for a
//! byte range).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use crate::ftp::text::Facts;
pub use crate::ftp::text::{LOGGED_CHARS, one_line, shorten};
use crate::path::BucketPath;

/// One command line from the client, split into its verb (upper case) and its argument.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    /// `STOR`, `OPTS`, … in upper case.
    pub verb: String,
    /// Everything after the first space, without the line end (lossy UTF-8: for logs and
    /// the relay's own decisions; [`Command::raw_arg`] is what the client sent).
    pub arg: String,
    /// The line as it goes to libunftp: without leading Telnet sequences, with its line end.
    pub line: Vec<u8>,
}

impl Command {
    /// The argument as the client sent it (bytes, not necessarily UTF-8): what follows the
    /// verb's separator in [`Command::line`], without the line end.
    pub fn raw_arg(&self) -> &[u8] {
        let Some(end) = self
            .line
            .iter()
            .position(|b| matches!(b, b' ' | b'\r' | b'\n'))
        else {
            return &[];
        };
        let mut arg = self.line.get(end + 1..).unwrap_or_default();
        while let [rest @ .., b'\r' | b'\n'] = arg {
            arg = rest;
        }
        arg
    }
}

/// Where a command starts: after Telnet sequences (IAC …, which some clients send before
/// ABOR) and leading blanks.
fn command_start(line: &[u8]) -> usize {
    let mut i = 0;
    while i < line.len() {
        match line[i] {
            // IAC WILL/WONT/DO/DONT take an option byte; other IAC commands stand alone.
            0xff => {
                i += if matches!(line.get(i + 1), Some(0xfb..=0xfe)) {
                    3
                } else {
                    2
                }
            }
            b if b.is_ascii_control() || b == b' ' => i += 1,
            _ => break,
        }
    }
    i.min(line.len())
}

/// Splits a command line (with or without its line end) the way libunftp does: the verb runs
/// to the first space, CR or LF and is compared in Unicode upper case (so the relay and
/// libunftp always agree on which command a line is). `None` for an empty line.
pub fn parse_command(line: &[u8]) -> Option<Command> {
    let clean = &line[command_start(line)..];
    let end = clean
        .iter()
        .position(|b| matches!(b, b' ' | b'\r' | b'\n'))
        .unwrap_or(clean.len());
    if end == 0 {
        return None;
    }
    let verb = String::from_utf8_lossy(&clean[..end]).to_uppercase();
    let rest = String::from_utf8_lossy(clean.get(end + 1..).unwrap_or_default()).into_owned();
    let arg = rest.trim_end_matches(['\r', '\n']).to_owned();
    let mut line = clean.to_vec();
    if !line.ends_with(b"\n") {
        line.extend_from_slice(b"\r\n");
    }
    Some(Command { verb, arg, line })
}

/// What a command shows in a log line: one line of at most [`LOGGED_CHARS`] characters and
/// `…` (however long the verb or the argument), the password never.
pub fn loggable(cmd: &Command) -> String {
    let verb = one_line(&cmd.verb);
    let text = if verb.starts_with("PASS") || verb.starts_with("ACCT") {
        format!("{verb} ****")
    } else {
        let arg = one_line(&cmd.arg);
        if arg.is_empty() {
            verb
        } else {
            format!("{verb} {arg}")
        }
    };
    shorten(&text, LOGGED_CHARS)
}

/// The `200` reply to `OPTS MLST …`, and the selection now in force.
pub fn opts_mlst(arg_after_mlst: &str) -> (Facts, String) {
    let facts = Facts::parse_selection(arg_after_mlst);
    (facts, format!("200 MLST OPTS {}\r\n", facts.list()))
}

/// If `cmd` is `OPTS <option> …` (any case), what follows the option's name, trimmed.
fn opts_arg<'a>(cmd: &'a Command, option: &str) -> Option<&'a str> {
    if cmd.verb != "OPTS" {
        return None;
    }
    let arg = cmd.arg.trim_start();
    let (name, rest) = arg.split_once(' ').unwrap_or((arg, ""));
    name.eq_ignore_ascii_case(option).then_some(rest.trim())
}

/// If `cmd` is `OPTS MLST …`, the fact list after `MLST`.
pub fn opts_mlst_arg(cmd: &Command) -> Option<&str> {
    opts_arg(cmd, "MLST")
}

/// If `cmd` is `OPTS HASH …`, the algorithm's name after `HASH` (empty when none).
pub fn opts_hash_arg(cmd: &Command) -> Option<&str> {
    opts_arg(cmd, "HASH")
}

/// The path of an `X…` hash command (`XMD5`, `XSHA1`, `XSHA256`, `XCRC`) from its raw
/// argument, or `None` when it asks for a byte range. Some clients (CuteFTP, Serv-U's
/// convention) send `XCRC "<path>" <start> <end>`; BucketFTP hashes whole files only. The rule:
/// - a quoted path (the text between the first and the last `"`, as it is) followed by two
///   decimal numbers separated by spaces is a range: `None`;
/// - a quoted path followed by nothing (blanks aside) is that path, without the quotes;
/// - anything else is the path as the client sent it, so `XMD5 name 0 100` asks for the
///   file `name 0 100`: an unquoted name ending in digits is a legitimate file name.
pub fn x_hash_path(raw: &[u8]) -> Option<&[u8]> {
    let trimmed = raw.trim_ascii();
    let Some(after_open) = trimmed.strip_prefix(b"\"") else {
        return Some(raw);
    };
    let Some(close) = after_open.iter().rposition(|b| *b == b'"') else {
        return Some(raw);
    };
    let (path, rest) = (&after_open[..close], &after_open[close + 1..]);
    if rest.is_empty() {
        return Some(path);
    }
    let numbers: Vec<&[u8]> = rest
        .split(|b| *b == b' ')
        .filter(|w| !w.is_empty())
        .collect();
    let is_range = rest.starts_with(b" ")
        && numbers.len() == 2
        && numbers.iter().all(|n| n.iter().all(u8::is_ascii_digit));
    if is_range { None } else { Some(raw) }
}

/// One complete FTP reply: its code and its raw lines (each with its line end).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The three-digit code.
    pub code: u16,
    /// The lines as they came, `ddd-…` first and `ddd …` last for a multi-line reply.
    pub lines: Vec<Vec<u8>>,
}

impl Reply {
    /// A preliminary (1xx) reply: another reply to the same command follows.
    pub fn is_preliminary(&self) -> bool {
        self.code < 200
    }

    /// The whole reply as bytes.
    pub fn bytes(&self) -> Vec<u8> {
        self.lines.concat()
    }

    /// The text of the last line after `ddd `, without the line end.
    pub fn last_text(&self) -> String {
        let last = self.lines.last().map(Vec::as_slice).unwrap_or_default();
        let text = String::from_utf8_lossy(last.get(4..).unwrap_or_default()).into_owned();
        text.trim_end_matches(['\r', '\n']).to_owned()
    }
}

/// Assembles replies from the bytes libunftp writes.
#[derive(Debug, Default)]
pub struct ReplyAssembler {
    partial: Vec<u8>,
    lines: Vec<Vec<u8>>,
    code: Option<[u8; 3]>,
}

fn code_of(line: &[u8]) -> Option<[u8; 3]> {
    let c = line.get(..3)?;
    c.iter().all(u8::is_ascii_digit).then(|| [c[0], c[1], c[2]])
}

impl ReplyAssembler {
    /// Feeds bytes; returns every reply they complete.
    pub fn push(&mut self, bytes: &[u8]) -> Vec<Reply> {
        let mut done = Vec::new();
        self.partial.extend_from_slice(bytes);
        while let Some(end) = self.partial.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = self.partial.drain(..=end).collect();
            self.lines.push(line);
            let line = self.lines.last().map(Vec::as_slice).unwrap_or_default();
            let Some(code) = code_of(line) else {
                // A text line inside a multi-line reply (or noise): keep collecting.
                if self.code.is_none() {
                    // Not inside a reply: pass it on as it is.
                    done.push(Reply {
                        code: 0,
                        lines: std::mem::take(&mut self.lines),
                    });
                }
                continue;
            };
            let sep = line.get(3).copied();
            match self.code {
                None if sep == Some(b'-') => self.code = Some(code),
                Some(open) if open != code || sep != Some(b' ') => {}
                _ => {
                    let code = u16::from(code[0] - b'0') * 100
                        + u16::from(code[1] - b'0') * 10
                        + u16::from(code[2] - b'0');
                    self.code = None;
                    done.push(Reply {
                        code,
                        lines: std::mem::take(&mut self.lines),
                    });
                }
            }
        }
        done
    }
}

/// An FTP path as a reply may show it: normalised, `/` at the top, no `.` or `..`.
pub fn normalise_shown_path(path: &str) -> String {
    BucketPath::parse_str(path).map_or_else(|_| path.to_owned(), |p| p.display())
}

/// RFC 959's quoting of a path in a 257 reply: `"` doubled.
fn quote(path: &str) -> String {
    format!("\"{}\"", path.replace('"', "\"\""))
}

/// Rewrites a `257` reply (PWD, MKD) so that the path is normalised and quoted:
/// `257 "/a/.."` becomes `257 "/" is the current directory`, libunftp's MKD reply
/// `257 /a/b` becomes `257 "/a/b" created`.
pub fn rewrite_257(text: &str) -> String {
    if let Some(rest) = text.strip_prefix('"') {
        // PWD: the path runs to the last quote.
        let path = rest.rfind('"').map_or(rest, |end| &rest[..end]);
        format!(
            "257 {} is the current directory\r\n",
            quote(&normalise_shown_path(path))
        )
    } else {
        format!(
            "257 {} created\r\n",
            quote(&normalise_shown_path(text.trim()))
        )
    }
}

/// Rewrites the entry line of an MLST reply (` facts path`): only the selected facts, the path
/// normalised.
pub fn rewrite_mlst_entry(line: &str, facts: Facts) -> String {
    let body = line.trim_end_matches(['\r', '\n']);
    let body = body.strip_prefix(' ').unwrap_or(body);
    let (fact_text, path) = body.split_once(' ').unwrap_or((body, ""));
    format!(
        " {} {}\r\n",
        facts.filter(fact_text),
        normalise_shown_path(path)
    )
}

/// The address in a `227 Entering Passive Mode (h1,h2,h3,h4,p1,p2)` reply.
pub fn parse_227(text: &str) -> Option<SocketAddr> {
    let inner = text.split_once('(')?.1.split_once(')')?.0;
    let nums: Vec<u8> = inner
        .split(',')
        .map(|n| n.trim().parse().ok())
        .collect::<Option<_>>()?;
    let [a, b, c, d, p1, p2] = nums.as_slice() else {
        return None;
    };
    Some(SocketAddr::new(
        IpAddr::V4(Ipv4Addr::new(*a, *b, *c, *d)),
        u16::from(*p1) << 8 | u16::from(*p2),
    ))
}

/// A `227` reply announcing `ip:port`.
pub fn format_227(ip: Ipv4Addr, port: u16) -> String {
    let [a, b, c, d] = ip.octets();
    format!(
        "227 Entering Passive Mode ({a},{b},{c},{d},{},{})\r\n",
        port >> 8,
        port & 0xff
    )
}

/// The port in a `229 Entering Extended Passive Mode (|||port|)` reply.
pub fn parse_229(text: &str) -> Option<u16> {
    let inner = text.split_once('(')?.1.split_once(')')?.0;
    inner.trim_matches('|').parse().ok()
}

/// A `229` reply announcing `port`.
pub fn format_229(port: u16) -> String {
    format!("229 Entering Extended Passive Mode (|||{port}|)\r\n")
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;

    #[test]
    fn one_line_strips_breaks() {
        assert_eq!(one_line(" a\r\nb\0c "), "a  b c");
    }

    #[test]
    fn commands() {
        let c = parse_command(b"stor a b.txt\r\n").unwrap();
        assert_eq!((c.verb.as_str(), c.arg.as_str()), ("STOR", "a b.txt"));
        let c = parse_command(b"\xff\xf4\xff\xf2ABOR\r\n").unwrap();
        assert_eq!(c.verb, "ABOR");
        assert_eq!(c.line, b"ABOR\r\n", "forwarded without the Telnet bytes");
        // libunftp's split (space, CR or LF) and Unicode upper case: these are PASS to it.
        for odd in [
            &b"PASS\rhunter2\r\n"[..],
            "pa\u{17f}s hunter2\r\n".as_bytes(),
        ] {
            let c = parse_command(odd).unwrap();
            assert_eq!(c.verb, "PASS", "{odd:?}");
            assert!(!loggable(&c).contains("hunter2"), "{}", loggable(&c));
        }
        let long = format!("CWD {}\r\n", "é".repeat(500));
        let shown = loggable(&parse_command(long.as_bytes()).unwrap());
        assert!(shown.chars().count() < 210, "{shown}");
        // A junk line without a space is all verb: cut as well.
        let junk = format!("{}\r\n", "X".repeat(12 * 1024));
        let shown = loggable(&parse_command(junk.as_bytes()).unwrap());
        assert_eq!(shown.chars().count(), LOGGED_CHARS + 1, "{shown}");
        assert!(shown.ends_with('…'));
        let pass = format!("PASS{} hunter2\r\n", "X".repeat(500));
        let shown = loggable(&parse_command(pass.as_bytes()).unwrap());
        assert!(
            !shown.contains("hunter2") && shown.chars().count() <= 201,
            "{shown}"
        );
        assert_eq!(shorten("a\nb", 5), "a b");
        assert_eq!(shorten("abcdef", 3), "abc…");
        assert_eq!(
            loggable(&parse_command(b"DELE a\x1b[31mb\r\n").unwrap()),
            "DELE a [31mb"
        );
        assert_eq!(parse_command(b"\r\n"), None);
        let c = parse_command(b"PWD").unwrap();
        assert_eq!((c.verb.as_str(), c.arg.as_str()), ("PWD", ""));
        let pass = parse_command(b"PASS hunter2\r\n").unwrap();
        assert_eq!(loggable(&pass), "PASS ****");
        assert_eq!(loggable(&parse_command(b"CWD /a\r\n").unwrap()), "CWD /a");
    }

    #[test]
    fn raw_arguments() {
        let c = parse_command(b"XMD5 caf\xe9 1.txt\r\n").unwrap();
        assert_eq!(c.raw_arg(), b"caf\xe9 1.txt");
        assert_eq!(c.arg, "caf\u{fffd} 1.txt", "the lossy one is for logs");
        assert_eq!(parse_command(b"PASS\rx y\r\n").unwrap().raw_arg(), b"x y");
        assert_eq!(parse_command(b"NOOP\r\n").unwrap().raw_arg(), b"");
        assert_eq!(parse_command(b"PWD").unwrap().raw_arg(), b"");
        assert_eq!(parse_command(b"HASH  a \n").unwrap().raw_arg(), b" a ");
    }

    #[test]
    fn x_hash_paths_and_ranges() {
        let path = |raw: &[u8]| x_hash_path(raw).map(<[u8]>::to_vec);
        assert_eq!(path(b"\"name\" 0 100"), None);
        assert_eq!(path(b" \"my file.txt\"   12  345 "), None);
        assert_eq!(path(b"\"my file.txt\""), Some(b"my file.txt".to_vec()));
        assert_eq!(path(b"\"a\"b\" "), Some(b"a\"b".to_vec()));
        assert_eq!(path(b"\"\""), Some(b"".to_vec()));
        // Unquoted: the name as sent, digits and all.
        assert_eq!(path(b"name 0 100"), Some(b"name 0 100".to_vec()));
        assert_eq!(path(b"caf\xe9"), Some(b"caf\xe9".to_vec()));
        // Quoted but not a range (one number, a word, no space): the whole argument.
        for odd in [
            &b"\"a\" 5"[..],
            b"\"a\" 0 x",
            b"\"a\"0 1",
            b"\"a\" 0 1 2",
            b"\"open",
        ] {
            assert_eq!(path(odd), Some(odd.to_vec()), "{odd:?}");
        }
    }

    #[test]
    fn opts_mlst_selection() {
        let c = parse_command(b"OPTS MLST type;size;modify;\r\n").unwrap();
        let arg = opts_mlst_arg(&c).unwrap();
        assert_eq!(
            opts_mlst(arg),
            (Facts::ALL, "200 MLST OPTS type;size;modify;\r\n".into())
        );
        let (f, reply) = opts_mlst("Size;unix.mode;TYPE;");
        assert_eq!(reply, "200 MLST OPTS type;size;\r\n");
        assert!(f.contains(Facts::SIZE) && !f.contains(Facts::MODIFY));
        assert_eq!(opts_mlst("").1, "200 MLST OPTS type;size;\r\n");
        assert_eq!(
            opts_mlst("modify;").1,
            "200 MLST OPTS type;size;modify;\r\n"
        );
        assert!(opts_mlst_arg(&parse_command(b"OPTS UTF8 ON").unwrap()).is_none());
        assert_eq!(
            opts_hash_arg(&parse_command(b"opts Hash  sha-1 \r\n").unwrap()),
            Some("sha-1")
        );
        assert_eq!(
            opts_hash_arg(&parse_command(b"OPTS HASH").unwrap()),
            Some("")
        );
        assert!(opts_hash_arg(&parse_command(b"OPTS MLST").unwrap()).is_none());
        assert_eq!(
            opts_mlst_arg(&parse_command(b"opts mlst").unwrap()),
            Some("")
        );
        assert_eq!(Facts::ALL.feat_line(), " MLST type*;size*;modify*;");
        assert_eq!(
            Facts::parse_selection("type").feat_line(),
            " MLST type*;size*;modify;"
        );
        assert_eq!(
            Facts::parse_selection("type;").filter("type=file;size=3;modify=20240101000000;"),
            "type=file;size=3;"
        );
        assert_eq!(
            Facts::TYPE.filter("type=file;size=3;modify=20240101000000;"),
            "type=file;"
        );
        assert_eq!(
            Facts::ALL.filter("type=dir;size=0;unix.uid=5;"),
            "type=dir;size=0;unix.uid=5;",
            "facts we do not select on pass through"
        );
    }

    #[test]
    fn replies_are_assembled_across_reads() {
        let mut a = ReplyAssembler::default();
        assert!(a.push(b"220 Bucket").is_empty());
        let r = a.push(b"FTP ready\r\n211-Extensions supported:\r\n MLST\r\n");
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].code, 220);
        assert_eq!(r[0].last_text(), "BucketFTP ready");
        let r = a.push(b" SIZE\r\n211 END\r\n150 Opening\r\n");
        assert_eq!(r.len(), 2);
        assert_eq!(r[0].code, 211);
        assert_eq!(r[0].lines.len(), 4);
        assert!(r[1].is_preliminary());
        // A reason line written before libunftp's own line joins the same reply.
        let r = a.push(b"550-no such file\r\n550 File not found\r\n");
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].bytes(), b"550-no such file\r\n550 File not found\r\n");
        // Inner lines that look like other codes do not end the reply.
        let r = a.push(b"250- Listing\r\n200 x\r\n250 End\r\n");
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].lines.len(), 3);
    }

    #[test]
    fn shown_paths_are_normalised() {
        assert_eq!(
            rewrite_257("\"/../../..\""),
            "257 \"/\" is the current directory\r\n"
        );
        assert_eq!(
            rewrite_257("\"/a/./b/../c\" is current"),
            "257 \"/a/c\" is the current directory\r\n"
        );
        assert_eq!(rewrite_257("/x/../new dir"), "257 \"/new dir\" created\r\n");
        assert_eq!(
            rewrite_257("/say \"hi\""),
            "257 \"/say \"\"hi\"\"\" created\r\n"
        );
        assert_eq!(normalise_shown_path("//a\\b/."), "/a/b");
        assert_eq!(
            rewrite_mlst_entry(
                " type=dir;size=0;modify=20240101000000; /a/..\r\n",
                Facts::ALL
            ),
            " type=dir;size=0;modify=20240101000000; /\r\n"
        );
        assert_eq!(
            rewrite_mlst_entry(
                " type=file;size=3;modify=20240101000000; /中文/x.txt\r\n",
                Facts::parse_selection("size;")
            ),
            " type=file;size=3; /中文/x.txt\r\n"
        );
    }

    #[test]
    fn passive_addresses() {
        let addr = parse_227("Entering Passive Mode (127,0,0,1,195,81)").unwrap();
        assert_eq!(addr, "127.0.0.1:50001".parse().unwrap());
        assert_eq!(
            format_227(Ipv4Addr::new(10, 0, 0, 5), 50001),
            "227 Entering Passive Mode (10,0,0,5,195,81)\r\n"
        );
        assert_eq!(parse_227("Entering Passive Mode (1,2,3)"), None);
        assert_eq!(
            parse_229("Entering Extended Passive Mode (|||50001|)"),
            Some(50001)
        );
        assert_eq!(
            format_229(7),
            "229 Entering Extended Passive Mode (|||7|)\r\n"
        );
    }
}
