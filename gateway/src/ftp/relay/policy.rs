//! The relay's command policy, pure: which commands the relay answers itself (AUTH TLS, PROT,
//! OPTS MLST, OPTS HASH, refusals when TLS is required), which it turns into another command
//! (the hash commands, into libunftp's `SITE MD5`), which kinds of command open or read a
//! transfer, which run long (a transfer, a hash) and which may go past a running one.

use super::wire;
use super::wire::Command;
use crate::storage::hash::HashAlgo;

/// Commands that open a data transfer.
pub(crate) fn is_transfer(verb: &str) -> bool {
    matches!(
        verb,
        "RETR" | "STOR" | "APPE" | "STOU" | "LIST" | "NLST" | "MLSD"
    )
}

/// Transfers whose data flows to the client.
pub(crate) fn is_download(verb: &str) -> bool {
    matches!(verb, "RETR" | "LIST" | "NLST" | "MLSD")
}

/// Commands a client sends while an earlier one is still running, and that must reach
/// libunftp at once (RFC 959 §4.1.3: ABOR, STAT and QUIT interrupt a transfer).
pub(crate) fn is_interrupt(verb: &str) -> bool {
    matches!(verb, "ABOR" | "STAT" | "QUIT")
}

/// The hash commands (`HASH`, draft-bryan-ftpext-hash, and the older `XMD5`, `XSHA1`,
/// `XSHA256`, `XCRC`): the relay sends libunftp `SITE MD5` in their place.
pub(crate) fn is_hash(verb: &str) -> bool {
    verb == "HASH" || HashAlgo::of_x_command(verb).is_some()
}

/// The client's own `SITE MD5 …`, as libunftp splits it: the word after `SITE` (up to a
/// space, CR or LF) in Unicode upper case.
pub(crate) fn is_site_md5(cmd: &Command) -> bool {
    if cmd.verb != "SITE" {
        return false;
    }
    let word = cmd.arg.split([' ', '\r', '\n']).next().unwrap_or_default();
    word.to_uppercase() == "MD5"
}

/// Commands whose reply may take minutes or hours: transfers, and hashes (a hash command,
/// or the client's own `SITE MD5`: the backend may read the whole file). Their replies are
/// waited for past the order wait, and `QUIT` does not wait for them.
pub(crate) fn runs_long(cmd: &Command) -> bool {
    is_transfer(&cmd.verb) || is_hash(&cmd.verb) || is_site_md5(cmd)
}

/// Whether `cmd` goes to libunftp at once while `running` waits for its reply: ABOR, STAT
/// and QUIT during a transfer (they interrupt it), and QUIT during a hash (libunftp answers
/// `221` and closes; its hash runs in a task of its own). ABOR and STAT wait for a hash:
/// libunftp cannot stop it (its ABOR ends data connections only), and a `226` or a `211`
/// before the hash's `213` would only confuse the client.
pub(crate) fn interrupts(cmd: &Command, running: &Command) -> bool {
    (is_interrupt(&cmd.verb) && is_transfer(&running.verb))
        || (cmd.verb == "QUIT" && runs_long(running))
}

/// What the relay does with one command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Action {
    /// Pass it to libunftp.
    Forward,
    /// Start TLS on the control connection.
    StartTls,
    /// Answer it here with this reply (which ends with `\r\n`).
    Answer(String),
    /// `OPTS MLST`: select these facts and answer.
    SelectFacts(crate::ftp::text::Facts, String),
    /// `PROT P` (true) or `PROT C` (false): data connections' protection from now on, and
    /// the reply. libunftp never sees `PROT`: its data connections are always plain, and the
    /// relay does the TLS of encrypted ones.
    Protect(bool, String),
    /// `OPTS HASH [name]`: select this algorithm (`None`: keep the selection) and answer
    /// `200 <the selection>`.
    SelectHash(Option<HashAlgo>),
    /// A hash command: ask for this algorithm (`None`: the session's selection, for `HASH`)
    /// with libunftp's `SITE MD5 <path>`, the path being these bytes of the client's line.
    Hash(Option<HashAlgo>, Vec<u8>),
}

/// The session state [`decide`] looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Protection {
    /// FTPS is configured.
    pub(crate) tls_available: bool,
    /// TLS is required for logins and data.
    pub(crate) tls_required: bool,
    /// The control connection is already TLS.
    pub(crate) control_tls: bool,
    /// `PROT P` is in force.
    pub(crate) data_tls: bool,
}

/// Decides what to do with a command. Pure.
pub(crate) fn decide(cmd: &Command, p: Protection) -> Action {
    match cmd.verb.as_str() {
        "AUTH" if p.tls_available => {
            let mech = cmd.arg.trim().to_ascii_uppercase();
            if p.control_tls {
                Action::Answer("503 The control connection is already encrypted.\r\n".into())
            } else if matches!(mech.as_str(), "TLS" | "TLS-C" | "SSL" | "TLS-P") {
                Action::StartTls
            } else {
                Action::Answer(format!(
                    "504 AUTH {} is not supported; use AUTH TLS.\r\n",
                    wire::one_line(&mech)
                ))
            }
        }
        "USER" | "PASS" | "ACCT" if p.tls_required && !p.control_tls => Action::Answer(
            "534 This server requires explicit FTP over TLS: send AUTH TLS first \
             (in FileZilla: Encryption \"Require explicit FTP over TLS\").\r\n"
                .into(),
        ),
        "PROT" if p.tls_required && !cmd.arg.trim().eq_ignore_ascii_case("P") => Action::Answer(
            "534 This server requires encrypted data connections: only PROT P.\r\n".into(),
        ),
        "PROT" if p.tls_available => match cmd.arg.trim().to_ascii_uppercase().as_str() {
            "P" => Action::Protect(true, "200 PROT OK. Securing data channel\r\n".into()),
            "C" => Action::Protect(
                false,
                "200 PROT OK. Switching data channel to plaintext\r\n".into(),
            ),
            "S" | "E" => Action::Answer("536 PROT S and PROT E are not supported.\r\n".into()),
            _ => Action::Answer("504 PROT takes C or P.\r\n".into()),
        },
        "PASV" | "EPSV" | "PORT" | "EPRT" | "LPSV" | "LPRT" if p.tls_required && !p.data_tls => {
            Action::Answer(
                "534 This server requires encrypted data connections: send PROT P first.\r\n"
                    .into(),
            )
        }
        "CCC" if p.control_tls => {
            Action::Answer("534 The control connection stays encrypted.\r\n".into())
        }
        verb if is_hash(verb) => {
            // `HASH` takes its argument as the path (the draft's ranges are `RANG`'s); an
            // `X…` command's may be quoted, or ask for a byte range ([`wire::x_hash_path`]).
            let x = HashAlgo::of_x_command(verb);
            let path = match x {
                Some(_) => wire::x_hash_path(cmd.raw_arg()),
                None => Some(cmd.raw_arg()),
            };
            match path {
                None => Action::Answer(
                    "501 Byte ranges are not supported; ask for the whole file.\r\n".into(),
                ),
                Some(path) if path.trim_ascii().is_empty() => {
                    Action::Answer(format!("501 {verb} needs a file name.\r\n"))
                }
                Some(path) => Action::Hash(x, path.to_vec()),
            }
        }
        _ => {
            if let Some(list) = wire::opts_mlst_arg(cmd) {
                let (facts, reply) = wire::opts_mlst(list);
                Action::SelectFacts(facts, reply)
            } else if let Some(name) = wire::opts_hash_arg(cmd) {
                if name.is_empty() {
                    Action::SelectHash(None)
                } else if let Some(algo) = HashAlgo::parse(name) {
                    Action::SelectHash(Some(algo))
                } else {
                    Action::Answer(
                        "501 Unknown algorithm, current selection not changed.\r\n".into(),
                    )
                }
            } else {
                Action::Forward
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;

    fn cmd(line: &str) -> Command {
        wire::parse_command(line.as_bytes()).unwrap()
    }

    const OPEN: Protection = Protection {
        tls_available: true,
        tls_required: false,
        control_tls: false,
        data_tls: false,
    };

    #[test]
    fn decisions() {
        assert_eq!(decide(&cmd("AUTH TLS"), OPEN), Action::StartTls);
        assert_eq!(decide(&cmd("auth ssl"), OPEN), Action::StartTls);
        assert!(
            matches!(decide(&cmd("AUTH GSSAPI"), OPEN), Action::Answer(r) if r.starts_with("504"))
        );
        let tls = Protection {
            control_tls: true,
            ..OPEN
        };
        assert!(matches!(decide(&cmd("AUTH TLS"), tls), Action::Answer(r) if r.starts_with("503")));
        let no_tls = Protection {
            tls_available: false,
            ..OPEN
        };
        assert_eq!(decide(&cmd("AUTH TLS"), no_tls), Action::Forward);
        assert_eq!(decide(&cmd("USER a/b"), OPEN), Action::Forward);
        let required = Protection {
            tls_required: true,
            ..OPEN
        };
        assert!(
            matches!(decide(&cmd("USER a/b"), required), Action::Answer(r) if r.starts_with("534"))
        );
        assert!(
            matches!(decide(&cmd("PASS x"), required), Action::Answer(r) if r.starts_with("534"))
        );
        let logged = Protection {
            control_tls: true,
            ..required
        };
        assert_eq!(decide(&cmd("USER a/b"), logged), Action::Forward);
        assert!(matches!(decide(&cmd("EPSV"), logged), Action::Answer(r) if r.starts_with("534")));
        let private = Protection {
            data_tls: true,
            ..logged
        };
        assert_eq!(decide(&cmd("EPSV"), private), Action::Forward);
        assert_eq!(decide(&cmd("PASV"), OPEN), Action::Forward);
        assert!(matches!(
            decide(&cmd("OPTS MLST type;size;"), OPEN),
            Action::SelectFacts(_, r) if r == "200 MLST OPTS type;size;\r\n"
        ));
        assert_eq!(decide(&cmd("OPTS UTF8 ON"), OPEN), Action::Forward);
        assert!(matches!(decide(&cmd("CCC"), tls), Action::Answer(r) if r.starts_with("534")));
        assert!(
            matches!(decide(&cmd("PROT C"), required), Action::Answer(r) if r.starts_with("534"))
        );
        // PROT is the relay's: it does the TLS of data connections.
        assert!(
            matches!(decide(&cmd("PROT P"), required), Action::Protect(true, r) if r.starts_with("200"))
        );
        assert!(
            matches!(decide(&cmd("prot c"), OPEN), Action::Protect(false, r) if r.starts_with("200"))
        );
        assert!(matches!(decide(&cmd("PROT S"), OPEN), Action::Answer(r) if r.starts_with("536")));
        assert!(matches!(decide(&cmd("PROT X"), OPEN), Action::Answer(r) if r.starts_with("504")));
        // Without FTPS, libunftp answers it (502).
        assert_eq!(decide(&cmd("PROT P"), no_tls), Action::Forward);
        // The hash commands: the relay's to turn into SITE MD5, or to refuse without a path;
        // their login and TLS rules are those of any command libunftp answers (530 there).
        assert_eq!(
            decide(&cmd("HASH /a b.txt"), OPEN),
            Action::Hash(None, b"/a b.txt".to_vec())
        );
        assert_eq!(
            decide(&cmd("xsha256 a"), required),
            Action::Hash(Some(HashAlgo::Sha256), b"a".to_vec())
        );
        assert_eq!(
            decide(&cmd("XCRC a"), OPEN),
            Action::Hash(Some(HashAlgo::Crc32), b"a".to_vec())
        );
        // X commands: quotes stripped, a quoted path's byte range refused, an unquoted name
        // ending in digits left alone; HASH's argument is its path, quotes and all.
        assert_eq!(
            decide(&cmd("XMD5 \"my file.txt\""), OPEN),
            Action::Hash(Some(HashAlgo::Md5), b"my file.txt".to_vec())
        );
        assert_eq!(
            decide(&cmd("XCRC \"name\" 0 100"), OPEN),
            Action::Answer("501 Byte ranges are not supported; ask for the whole file.\r\n".into())
        );
        assert_eq!(
            decide(&cmd("XMD5 name 0 100"), OPEN),
            Action::Hash(Some(HashAlgo::Md5), b"name 0 100".to_vec())
        );
        assert_eq!(
            decide(&cmd("HASH \"q\" 0 1"), OPEN),
            Action::Hash(None, b"\"q\" 0 1".to_vec())
        );
        for bare in [
            "HASH",
            "HASH  ",
            "XMD5",
            "XSHA1 ",
            "XCRC \"\"",
            "XMD5  \" \" ",
        ] {
            assert!(
                matches!(decide(&cmd(bare), OPEN), Action::Answer(r) if r.starts_with("501 ")),
                "{bare:?}"
            );
        }
        assert!(is_hash("XSHA1") && !is_hash("SITE") && !is_hash("RANG"));
        // What runs long, and what goes past it.
        for long in [
            "SITE MD5 a",
            "site md5 a",
            "SITE Md5",
            "HASH a",
            "XCRC a",
            "RETR a",
        ] {
            assert!(runs_long(&cmd(long)), "{long:?}");
        }
        for short in [
            "SITE CHMOD 644 a",
            "SITE  MD5 a",
            "SITE MD5X a",
            "NOOP",
            "SIZE a",
        ] {
            assert!(!runs_long(&cmd(short)), "{short:?}");
        }
        let (hash, retr) = (cmd("HASH a"), cmd("RETR a"));
        assert!(interrupts(&cmd("QUIT"), &hash) && interrupts(&cmd("QUIT"), &retr));
        assert!(interrupts(&cmd("ABOR"), &retr) && interrupts(&cmd("STAT"), &retr));
        assert!(!interrupts(&cmd("ABOR"), &hash) && !interrupts(&cmd("STAT"), &hash));
        assert!(!interrupts(&cmd("QUIT"), &cmd("SITE CHMOD 644 a")));
        assert!(interrupts(&cmd("QUIT"), &cmd("SITE MD5 a")));
        assert_eq!(decide(&cmd("OPTS HASH"), OPEN), Action::SelectHash(None));
        assert_eq!(
            decide(&cmd("opts hash md5"), OPEN),
            Action::SelectHash(Some(HashAlgo::Md5))
        );
        assert_eq!(
            decide(&cmd("OPTS HASH SHA-512"), OPEN),
            Action::Answer("501 Unknown algorithm, current selection not changed.\r\n".into())
        );
        // RANG (the draft's byte ranges) is not implemented: libunftp answers it as any
        // command it does not know.
        assert_eq!(decide(&cmd("RANG 0 9"), OPEN), Action::Forward);
        // libunftp reads `PASS\r…` and `paſs …` as PASS too.
        assert!(
            matches!(decide(&cmd("PASS\rsecret"), required), Action::Answer(r) if r.starts_with("534"))
        );
    }
}
