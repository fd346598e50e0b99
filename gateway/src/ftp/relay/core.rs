//! The relay's protocol core, without I/O (sans-I/O, as rustls is): fed the client's bytes and
//! libunftp's, it returns what to send where ([`Out`]). The shell around it ([`super::run`])
//! owns the sockets, the TLS handshake and the relayed passive connections; where the core
//! needs one of those done before it can go on (a TLS handshake, a passive listener, a
//! download's data delivered) it returns a [`Request`] as its last output and waits for the
//! shell's [`Input::Resumed`], holding everything that came in meanwhile.
//!
//! What it keeps: the commands sent to libunftp and waiting for their replies (in order; a
//! command waits for the replies before it, except ABOR, STAT and QUIT during a transfer and
//! QUIT during a hash, [`policy::interrupts`]; transfers and hashes, a client's own `SITE MD5`
//! included, are waited for past the order wait, [`policy::runs_long`]),
//! the user and the working directory as the client sees them, the client's unread bytes and
//! libunftp's unfinished reply, the hash algorithm `OPTS HASH` selected. What it decides:
//! which commands it answers itself ([`super::policy::decide`]), how libunftp's replies are
//! rewritten (`257` paths, MLST facts, FEAT's MLST and hash lines, passive ports, the reason
//! in front of an error reply, the `213` of a hash command), and one log line per command.
//! The session state the storage backend also reads lives in the tap ([`ControlTap`]: shared
//! memory, no I/O).
//!
//! Hash commands (`HASH <path>`, `XMD5`, `XSHA1`, `XSHA256`, `XCRC`) go to libunftp as
//! `SITE MD5 <path>` (the path in the client's own bytes; an `X…` command's may be quoted, and
//! a byte range after a quoted one is refused, [`wire::x_hash_path`]), which resolves the
//! path, checks the login and calls the backend's `md5()` in a task of its own (its control
//! loop goes on: `QUIT` is answered at once, `ABOR` cannot stop the hash and waits for it);
//! the algorithm goes to the backend through the tap
//! ([`ControlTap::ask_hash`]), and the backend's answer ([`HashAnswer::to_wire`]) comes back
//! in libunftp's `213 <answer>    <absolute path>`, which the core rewrites into the command's
//! own reply.

use std::collections::VecDeque;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Instant;

use super::policy::{self, Action, Protection};
use super::wire::{self, Command, Reply, ReplyAssembler};
use crate::ftp::control_tap::ControlTap;
use crate::ops::events::{Event, EventBus, SessionId};
use crate::storage::hash::{HashAlgo, HashAnswer};

/// The longest command line accepted (RFC 959 has no limit; paths are ≤ 1024 bytes here).
pub(crate) const MAX_LINE: usize = 8192;
/// The unread client bytes the relay holds at most (a line waiting for earlier replies
/// included); past it the session ends.
pub(crate) const MAX_BUFFERED: usize = 64 * 1024;

/// What the core is told.
#[derive(Debug)]
pub(crate) enum Input<'a> {
    /// Bytes from the client (after TLS, if any).
    Client(&'a [u8]),
    /// Bytes from libunftp.
    Inner(&'a [u8]),
    /// A command has waited too long for the replies before it (see [`Core::blocked_since`]):
    /// stop waiting for them, except for transfers and hashes, which may run for hours
    /// ([`policy::runs_long`]).
    OrderWaitExpired,
    /// The answer to the [`Request`] the core made last.
    Resumed(Resumed),
}

/// What the shell does, in order.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Out {
    /// Write to the client.
    Client(Vec<u8>),
    /// Write to libunftp.
    Inner(Vec<u8>),
    /// End the relayed passive data connection now (ABOR during a transfer: libunftp may be
    /// stuck writing a download the client no longer reads).
    AbortPassive,
    /// End the session.
    Close,
    /// Do this and answer with [`Input::Resumed`]; nothing follows it.
    Request(Request),
}

/// I/O the core waits for.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Request {
    /// Set up this session's TLS configurations: [`Resumed::TlsReady`].
    StartTls,
    /// `234` was sent: do the TLS handshake, replaying `prefix` (bytes the client sent after
    /// `AUTH TLS`: the start of its ClientHello) first: [`Resumed::Handshake`].
    Handshake {
        /// The client's bytes already read.
        prefix: Vec<u8>,
    },
    /// Listen on a passive port for the client and join it to libunftp's `inner_port` (a new
    /// one replaces the session's last): [`Resumed::Passive`].
    OpenPassive {
        /// libunftp's passive port on loopback.
        inner_port: u16,
    },
    /// A download's success reply came: wait until its data reached the client's socket
    /// (`true` when there is no relayed connection): [`Resumed::Delivered`].
    AwaitDelivered,
}

/// The outcome of a [`Request`].
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Resumed {
    /// [`Request::StartTls`]: whether the configurations are ready.
    TlsReady(bool),
    /// [`Request::Handshake`]: the protocol version agreed, or `None` when it failed.
    Handshake(Option<String>),
    /// [`Request::OpenPassive`]: the port the client is told, or `None` when no port is free.
    Passive(Option<u16>),
    /// [`Request::AwaitDelivered`]: whether every byte reached the client's socket.
    Delivered(bool),
}

/// What the core knows of the server and the connection.
#[derive(Debug, Clone)]
pub(crate) struct CoreConfig {
    /// The session's id in log lines and events.
    pub session: SessionId,
    /// FTPS is configured.
    pub tls_available: bool,
    /// TLS is required for logins and data.
    pub tls_required: bool,
    /// The address passive replies announce instead of the connection's own.
    pub masquerade: Option<Ipv4Addr>,
    /// The address the client reached.
    pub local_ip: IpAddr,
    /// Where SITE commands are reported.
    pub events: EventBus,
}

/// A command forwarded to libunftp, waiting for its final reply.
#[derive(Debug)]
struct Pending {
    /// The client's command (a hash command stays itself here, though libunftp was sent
    /// `SITE MD5`: its log line, its reply and its events are the client's command's).
    cmd: Command,
    started: Instant,
    /// The algorithm asked for, when `cmd` is a hash command.
    hash: Option<HashAlgo>,
}

/// What the core waits for (see [`Request`]).
#[derive(Debug)]
enum Waiting {
    Tls,
    Handshake {
        started: Instant,
    },
    Passive {
        front: Option<Pending>,
        extended: bool,
    },
    Delivered {
        reply: Reply,
        front: Option<Pending>,
    },
}

/// One session's relay state.
#[derive(Debug)]
pub(crate) struct Core {
    cfg: CoreConfig,
    tap: Arc<ControlTap>,
    pending: VecDeque<Pending>,
    /// The user name of the last USER, shown in log lines once logged in.
    user_tried: Option<String>,
    user: Option<String>,
    /// The working directory, normalised (libunftp keeps it as typed and does not apply it
    /// to MLST's argument).
    cwd: String,
    /// The algorithm of `HASH` (`OPTS HASH`; SHA-256 until then).
    hash_algo: HashAlgo,
    /// Since when a command has been waiting for earlier replies.
    blocked_since: Option<Instant>,
    /// The client's bytes not handled yet.
    lines: Vec<u8>,
    assembler: ReplyAssembler,
    /// libunftp's complete replies not handled yet.
    replies: VecDeque<Reply>,
    waiting: Option<Waiting>,
    closed: bool,
    out: Vec<Out>,
}

/// libunftp's texts for the `226` that answers ABOR (it may come before the interrupted
/// transfer's own reply; `tests/libunftp_contract.rs` pins them).
fn is_abor_reply(reply: &Reply) -> bool {
    reply.code == 226
        && matches!(
            reply.last_text().as_str(),
            "Closed data channel" | "Data channel already closed"
        )
}

impl Core {
    /// A new session: libunftp's greeting comes first, and commands sent before it wait.
    pub(crate) fn new(cfg: CoreConfig, tap: Arc<ControlTap>) -> Core {
        Core {
            cfg,
            tap,
            pending: VecDeque::from([Pending {
                cmd: Command {
                    verb: String::new(),
                    arg: String::new(),
                    line: Vec::new(),
                },
                started: Instant::now(),
                hash: None,
            }]),
            user_tried: None,
            user: None,
            cwd: "/".into(),
            hash_algo: HashAlgo::Sha256,
            blocked_since: None,
            lines: Vec::new(),
            assembler: ReplyAssembler::default(),
            replies: VecDeque::new(),
            waiting: None,
            closed: false,
            out: Vec::new(),
        }
    }

    /// Since when a command has waited for the replies before it (the shell sends
    /// [`Input::OrderWaitExpired`] when that is too long).
    pub(crate) fn blocked_since(&self) -> Option<Instant> {
        self.blocked_since
    }

    /// No command waits for a reply, a transfer included, and no request is open: the
    /// session may be closed for idling.
    pub(crate) fn is_idle(&self) -> bool {
        self.pending.is_empty() && self.waiting.is_none()
    }

    /// Feeds one input; returns what to do, in order.
    pub(crate) fn step(&mut self, input: Input<'_>) -> Vec<Out> {
        if self.closed {
            return Vec::new();
        }
        match input {
            Input::Client(bytes) => {
                self.lines.extend_from_slice(bytes);
                if self.lines.len() > MAX_BUFFERED {
                    self.close_with(b"500 Too much input at once.\r\n");
                }
            }
            Input::Inner(bytes) => {
                let replies = self.assembler.push(bytes);
                self.replies.extend(replies);
            }
            Input::OrderWaitExpired => {
                // A hash of a large file may take minutes too (a hash command's or the
                // client's own SITE MD5), and its reply must not be taken for the next
                // command's.
                self.pending.retain(|p| policy::runs_long(&p.cmd));
                self.blocked_since = None;
            }
            Input::Resumed(resumed) => self.resume(resumed),
        }
        self.run();
        std::mem::take(&mut self.out)
    }

    fn close_with(&mut self, reply: &[u8]) {
        self.out.push(Out::Client(reply.to_vec()));
        self.out.push(Out::Close);
        self.closed = true;
    }

    /// Handles what came in until a request is open, or nothing more can be done.
    fn run(&mut self) {
        loop {
            if self.closed || self.waiting.is_some() {
                return;
            }
            if let Some(reply) = self.replies.pop_front() {
                self.answer(reply);
                continue;
            }
            if self.blocked_since.is_some() && self.pending.is_empty() {
                self.blocked_since = None;
            }
            if self.blocked_since.is_some() || !self.next_line() {
                return;
            }
        }
    }

    /// Handles the next complete command line; `false` when there is none or it must wait.
    fn next_line(&mut self) -> bool {
        let Some(end) = self.lines.iter().position(|b| *b == b'\n') else {
            if self.lines.len() > MAX_LINE {
                self.close_with(b"500 Command line too long.\r\n");
            }
            return false;
        };
        let Some(cmd) = wire::parse_command(&self.lines[..=end]) else {
            self.lines.drain(..=end);
            return true;
        };
        let protection = Protection {
            tls_available: self.cfg.tls_available,
            tls_required: self.cfg.tls_required,
            control_tls: self.tap.control_tls(),
            data_tls: self.tap.data_tls(),
        };
        let action = policy::decide(&cmd, protection);
        // ABOR, STAT and QUIT go at once while a transfer runs (they interrupt it), QUIT
        // while a hash runs; otherwise every command waits for the replies before it.
        let interrupts = action == Action::Forward
            && self
                .pending
                .iter()
                .any(|p| policy::interrupts(&cmd, &p.cmd));
        if !self.pending.is_empty() && !interrupts {
            self.blocked_since.get_or_insert_with(Instant::now);
            return false;
        }
        self.lines.drain(..=end);
        match action {
            Action::Forward => {
                if interrupts && cmd.verb == "ABOR" {
                    // The transfer's reply then says its data was not delivered.
                    self.out.push(Out::AbortPassive);
                }
                let line = self.before_forward(&cmd);
                self.forward(cmd, line, None);
            }
            Action::Hash(algo, path) => {
                let algo = algo.unwrap_or(self.hash_algo);
                // The backend's md5() takes it; libunftp resolves the path (against its
                // working directory) and checks the login, answering 530 without one.
                self.tap.ask_hash(algo);
                // The client's bytes, as every forwarded command's (not the lossy `arg`).
                let mut line = b"SITE MD5 ".to_vec();
                line.extend_from_slice(&path);
                line.extend_from_slice(b"\r\n");
                self.forward(cmd, line, Some(algo));
            }
            Action::SelectHash(algo) => {
                if let Some(algo) = algo {
                    self.hash_algo = algo;
                }
                let reply = format!("200 {}\r\n", self.hash_algo.name());
                self.answer_here(&cmd, reply);
            }
            Action::Answer(reply) => self.answer_here(&cmd, reply),
            Action::SelectFacts(facts, reply) => {
                self.tap.set_facts(facts);
                self.answer_here(&cmd, reply);
            }
            Action::Protect(private, reply) => {
                self.tap.set_data_tls(private);
                self.answer_here(&cmd, reply);
            }
            Action::StartTls => {
                self.waiting = Some(Waiting::Tls);
                self.out.push(Out::Request(Request::StartTls));
            }
        }
        true
    }

    /// Sends `line` to libunftp for `cmd`, which then waits for its reply.
    fn forward(&mut self, cmd: Command, line: Vec<u8>, hash: Option<HashAlgo>) {
        self.pending.push_back(Pending {
            cmd,
            started: Instant::now(),
            hash,
        });
        self.out.push(Out::Inner(line));
    }

    fn answer_here(&mut self, cmd: &Command, reply: String) {
        self.log(cmd, &reply, Instant::now());
        self.out.push(Out::Client(reply.into_bytes()));
    }

    fn resume(&mut self, resumed: Resumed) {
        match (self.waiting.take(), resumed) {
            (Some(Waiting::Tls), Resumed::TlsReady(false)) => {
                self.out.push(Out::Client(
                    b"431 TLS cannot be set up now; try again.\r\n".to_vec(),
                ));
            }
            (Some(Waiting::Tls), Resumed::TlsReady(true)) => {
                self.out.push(Out::Client(
                    b"234 AUTH TLS OK: start the TLS handshake.\r\n".to_vec(),
                ));
                let prefix = std::mem::take(&mut self.lines);
                self.waiting = Some(Waiting::Handshake {
                    started: Instant::now(),
                });
                self.out.push(Out::Request(Request::Handshake { prefix }));
            }
            (Some(Waiting::Handshake { started }), Resumed::Handshake(Some(version))) => {
                self.tap.set_control_tls(true);
                tracing::info!(
                    session = self.cfg.session,
                    cmd = "AUTH TLS",
                    reply = 234,
                    tls = %version,
                    ms = started.elapsed().as_millis() as u64,
                );
            }
            (Some(Waiting::Handshake { .. }), Resumed::Handshake(None)) => {
                self.out.push(Out::Close);
                self.closed = true;
            }
            (Some(Waiting::Passive { front, extended }), Resumed::Passive(port)) => {
                let bytes = match port {
                    Some(port) => match self.announce() {
                        Some(ip) if !extended => wire::format_227(ip, port).into_bytes(),
                        _ => wire::format_229(port).into_bytes(),
                    },
                    None => b"425 No passive port is free; try again.\r\n".to_vec(),
                };
                // The relay's own 425 takes no reason the backend left: none is about it.
                self.send_reply(bytes, front);
            }
            (Some(Waiting::Delivered { reply, front }), Resumed::Delivered(delivered)) => {
                self.finish_answer(reply, front, delivered);
            }
            (waiting, resumed) => {
                // The shell answered something not asked: a bug in the shell, not the
                // client's doing. End the session rather than guess.
                tracing::warn!(
                    session = self.cfg.session,
                    ?waiting,
                    ?resumed,
                    "relay: unexpected resumption"
                );
                self.out.push(Out::Close);
                self.closed = true;
            }
        }
    }

    /// The address PASV announces: the masquerade address, else the one the client reached
    /// (none for IPv6: PASV cannot name it).
    fn announce(&self) -> Option<Ipv4Addr> {
        match (self.cfg.masquerade, self.cfg.local_ip) {
            (Some(m), _) => Some(m),
            (None, IpAddr::V4(v4)) => Some(v4),
            (None, IpAddr::V6(_)) => None,
        }
    }

    /// Session state that changes as a command goes to libunftp, and the line to send.
    fn before_forward(&mut self, cmd: &Command) -> Vec<u8> {
        if policy::is_transfer(&cmd.verb) {
            self.tap.set_transfer_reads(policy::is_download(&cmd.verb));
        }
        match cmd.verb.as_str() {
            "USER" => self.user_tried = Some(wire::one_line(&cmd.arg)),
            "MLSD" | "LIST" | "NLST" => self.tap.set_listing_is_mlsd(cmd.verb == "MLSD"),
            "STOR" | "APPE" | "STOU" => {
                // The upload's commit gate counts client bytes from the end of this line:
                // an ABOR sent right after the 150 cancels it, however late put() begins.
                let unread = self.lines.len() as u64;
                let at = self.tap.client_bytes().saturating_sub(unread);
                self.tap.set_transfer_mark(at);
                self.tap.take_transfer_bytes();
                // A plain data stream's end says nothing of why it ended: the gate will ask
                // whether the client's process still holds its control socket (not behind a
                // load balancer, which needs masquerade and holds the sockets itself).
                if !self.tap.data_tls() && self.cfg.masquerade.is_none() {
                    self.tap.look_up_owner();
                }
            }
            "RETR" => {
                self.tap.take_transfer_bytes();
            }
            // The client's own SITE MD5 gets libunftp's MD5, never a hash command's answer
            // (a request is taken by its reply; this is for one left behind all the same).
            "SITE" => {
                self.tap.take_hash_request();
            }
            // libunftp does not apply the working directory to MLST's argument.
            "MLST" if !cmd.arg.is_empty() && !cmd.arg.starts_with(['/', '\\']) => {
                let path = wire::normalise_shown_path(&format!("{}/{}", self.cwd, cmd.arg));
                return format!("MLST {path}\r\n").into_bytes();
            }
            _ => {}
        }
        cmd.line.clone()
    }

    /// Which waiting command a final reply answers: the first, but libunftp's `226` for ABOR
    /// and its `221` for QUIT answer those at once, before the transfer or hash they passed.
    fn answered(&mut self, reply: &Reply) -> Option<Pending> {
        let jumped = match reply.code {
            _ if is_abor_reply(reply) => Some("ABOR"),
            221 => Some("QUIT"),
            _ => None,
        };
        if let Some(verb) = jumped
            && let Some(i) = self.pending.iter().position(|p| p.cmd.verb == verb)
        {
            return self.pending.remove(i);
        }
        self.pending.pop_front()
    }

    /// One reply from libunftp.
    fn answer(&mut self, reply: Reply) {
        // Noise and preliminary (1xx) replies answer nothing yet: pass them on.
        if reply.code == 0 || reply.is_preliminary() {
            self.out.push(Out::Client(reply.bytes()));
            return;
        }
        let front = self.answered(&reply);
        let verb = front.as_ref().map(|p| p.cmd.verb.as_str()).unwrap_or("");
        // libunftp says a download is done once its last byte is in its socket; relayed, the
        // bytes may still be in this process (lost if it dies while the client sees a clean
        // end and the 226). The success reply waits until they reached the client's socket.
        if (200..300).contains(&reply.code) && policy::is_download(verb) {
            self.waiting = Some(Waiting::Delivered { reply, front });
            self.out.push(Out::Request(Request::AwaitDelivered));
            return;
        }
        self.finish_answer(reply, front, true);
    }

    /// Rewrites a final reply where needed and sends it.
    fn finish_answer(&mut self, reply: Reply, front: Option<Pending>, delivered: bool) {
        let verb = front
            .as_ref()
            .map(|p| p.cmd.verb.clone())
            .unwrap_or_default();
        let arg = front
            .as_ref()
            .map(|p| p.cmd.arg.clone())
            .unwrap_or_default();
        if !delivered {
            let bytes = b"426 The data connection broke before all data was sent.\r\n".to_vec();
            self.send_answer(426, bytes, front);
            return;
        }
        if let Some(algo) = front.as_ref().and_then(|p| p.hash) {
            // Answered: a request the backend did not take (libunftp refused before calling
            // it) must not reach a later SITE MD5.
            self.tap.take_hash_request();
            if reply.code == 213 {
                let bytes = self.hash_reply(algo, &verb, &arg, &reply);
                self.send_reply(bytes, front);
                return;
            }
            // Refusals and failures pass on, with the backend's reason in front.
        }
        let bytes = match (reply.code, verb.as_str()) {
            (257, "PWD" | "XPWD" | "MKD" | "XMKD") if reply.lines.len() == 1 => {
                wire::rewrite_257(&reply.last_text()).into_bytes()
            }
            (250, "MLST") if reply.lines.len() >= 3 => {
                let facts = self.tap.facts();
                let mut out = Vec::new();
                for line in &reply.lines {
                    if line.first() == Some(&b' ') {
                        let text = String::from_utf8_lossy(line);
                        out.extend_from_slice(wire::rewrite_mlst_entry(&text, facts).as_bytes());
                    } else {
                        out.extend_from_slice(line);
                    }
                }
                out
            }
            (211, "FEAT") => self.rewrite_feat(&reply),
            (230, _) => {
                self.user = self.user_tried.clone();
                self.cwd = "/".into();
                reply.bytes()
            }
            (250, "CWD" | "XCWD") => {
                let target = if arg.starts_with(['/', '\\']) {
                    arg
                } else {
                    format!("{}/{arg}", self.cwd)
                };
                self.cwd = wire::normalise_shown_path(&target);
                reply.bytes()
            }
            (200 | 250, "CDUP" | "XCUP") => {
                self.cwd = wire::normalise_shown_path(&format!("{}/..", self.cwd));
                reply.bytes()
            }
            (227, "PASV") | (229, "EPSV") => {
                let extended = reply.code == 229;
                let text = reply.last_text();
                let inner_port = if extended {
                    wire::parse_229(&text)
                } else {
                    wire::parse_227(&text).map(|a| a.port())
                };
                match inner_port {
                    None => reply.bytes(),
                    Some(_) if !extended && self.announce().is_none() => {
                        let bytes = b"425 PASV cannot name an IPv6 address; use EPSV.\r\n";
                        self.send_reply(bytes.to_vec(), front);
                        return;
                    }
                    Some(inner_port) => {
                        self.waiting = Some(Waiting::Passive { front, extended });
                        self.out
                            .push(Out::Request(Request::OpenPassive { inner_port }));
                        return;
                    }
                }
            }
            _ => reply.bytes(),
        };
        self.send_answer(reply.code, bytes, front);
    }

    /// FEAT's reply with the selected MLST facts and, where libunftp lists `SITE MD5` (it
    /// runs it: the option is on and the backend has the feature), the hash commands in its
    /// place: `HASH` with the session's selection, and the `X…` commands. Sorted, as
    /// libunftp sorts its lines.
    fn rewrite_feat(&self, reply: &Reply) -> Vec<u8> {
        let [first, features @ .., last] = &reply.lines[..] else {
            return reply.bytes();
        };
        let mut lines: Vec<Vec<u8>> = Vec::new();
        let mut site_md5 = false;
        for line in features {
            let text = String::from_utf8_lossy(line);
            match text.trim() {
                "MLST" => lines.push(format!("{}\r\n", self.tap.facts().feat_line()).into_bytes()),
                "SITE MD5" => site_md5 = true,
                _ => lines.push(line.clone()),
            }
        }
        if site_md5 {
            lines.push(format!(" {}\r\n", HashAlgo::feat_line(self.hash_algo)).into_bytes());
            for x in ["XCRC", "XMD5", "XSHA1", "XSHA256"] {
                lines.push(format!(" {x}\r\n").into_bytes());
            }
        }
        lines.sort();
        let mut out = first.clone();
        out.extend(lines.concat());
        out.extend_from_slice(last);
        out
    }

    /// A hash command's reply from libunftp's `213 <HashAnswer::to_wire>    <path>`:
    /// `213 <ALGO> <range> <hex> <path as the client gave it>` for `HASH`, `250 <hex>` for
    /// the `X…` commands (as proftpd's mod_digest), `451` when the answer cannot be read.
    fn hash_reply(&self, algo: HashAlgo, verb: &str, arg: &str, reply: &Reply) -> Vec<u8> {
        let text = reply.last_text();
        // One line, and the algorithm asked for (a plain MD5 here means the request was lost).
        let answer = HashAnswer::parse_wire(&text)
            .filter(|a| a.algo == algo)
            .filter(|_| reply.lines.len() == 1);
        match answer {
            Some(answer) if verb == "HASH" => format!(
                "213 {} {} {} {}\r\n",
                answer.algo.name(),
                answer.range(),
                answer.hex,
                wire::one_line(arg)
            )
            .into_bytes(),
            Some(answer) => format!("250 {}\r\n", answer.hex).into_bytes(),
            None => {
                tracing::warn!(
                    session = self.cfg.session,
                    cmd = %verb,
                    asked = %algo,
                    reply = %wire::shorten(&text, wire::LOGGED_CHARS),
                    "relay: the storage's answer to a hash command is not a hash"
                );
                b"451 The file's hash could not be read from the storage's answer.\r\n".to_vec()
            }
        }
    }

    /// Puts the backend's reason in front of an error reply, logs the command, and sends.
    fn send_answer(&mut self, code: u16, bytes: Vec<u8>, front: Option<Pending>) {
        let bytes = self.with_reason(code, bytes, &front);
        self.send_reply(bytes, front);
    }

    /// The reply with the backend's reason (or the refused TLS session's) in front, for an
    /// error reply to libunftp's answer.
    fn with_reason(&mut self, code: u16, mut bytes: Vec<u8>, front: &Option<Pending>) -> Vec<u8> {
        // A data connection refused for its TLS session is the reason, whatever broke after.
        let refused = code >= 400
            && front
                .as_ref()
                .is_some_and(|p| policy::is_transfer(&p.cmd.verb))
            && self.tap.take_data_refused();
        if code >= 400
            && let Some(reason) = self
                .tap
                .take_reason()
                .filter(|_| !refused)
                .or_else(|| refused.then(|| super::data::REUSE_REQUIRED.to_owned()))
        {
            let mut with_reason = format!("{code}-{reason}\r\n").into_bytes();
            with_reason.append(&mut bytes);
            bytes = with_reason;
        }
        bytes
    }

    /// Logs the command a reply answers and sends the reply.
    fn send_reply(&mut self, bytes: Vec<u8>, front: Option<Pending>) {
        if let Some(p) = &front
            && !p.cmd.verb.is_empty()
        {
            self.log(&p.cmd, &String::from_utf8_lossy(&bytes), p.started);
        }
        self.out.push(Out::Client(bytes));
    }

    /// One short line per command: who, what, the reply code, how long it took.
    fn log(&self, cmd: &Command, reply: &str, started: Instant) {
        let code: u16 = reply
            .lines()
            .last()
            .and_then(|l| l.get(..3))
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        let session = self.cfg.session;
        let user = self.user.as_deref().unwrap_or("-");
        let ms = started.elapsed().as_millis() as u64;
        let what = wire::loggable(cmd);
        if cmd.verb == "SITE" {
            let last = reply.lines().last().unwrap_or_default();
            self.cfg
                .events
                .send(Event::site(session, what.clone(), last));
        }
        if matches!(cmd.verb.as_str(), "RETR" | "STOR" | "APPE" | "STOU") {
            let bytes = self.tap.take_transfer_bytes();
            tracing::info!(session, %user, cmd = %what, reply = code, bytes, ms);
        } else {
            tracing::info!(session, %user, cmd = %what, reply = code, ms);
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    //! The core driven with byte sequences, as the shell drives it: what comes out, in order.

    use super::*;

    /// A core for a plain-FTP client on 127.0.0.1 (FTPS available), and its tap (made from a
    /// real loopback socket pair; the core does no I/O on it).
    async fn core() -> (Core, Arc<ControlTap>) {
        let (_ours, theirs) = crate::ftp::relay::loopback_pair("127.0.0.1".parse().unwrap())
            .await
            .unwrap();
        let (_stream, tap) = crate::ftp::control_tap::split(theirs).unwrap();
        let tap = Arc::new(tap);
        let cfg = CoreConfig {
            session: 7,
            tls_available: true,
            tls_required: false,
            masquerade: None,
            local_ip: "127.0.0.1".parse().unwrap(),
            events: EventBus::new(16),
        };
        (Core::new(cfg, tap.clone()), tap)
    }

    fn client(s: &str) -> Out {
        Out::Client(s.as_bytes().to_vec())
    }

    fn inner(s: &str) -> Out {
        Out::Inner(s.as_bytes().to_vec())
    }

    /// Feeds libunftp's greeting.
    fn greeted(core: &mut Core) {
        assert_eq!(
            core.step(Input::Inner(b"220 BucketFTP ready\r\n")),
            vec![client("220 BucketFTP ready\r\n")]
        );
    }

    #[tokio::test]
    async fn pipelined_commands_wait_for_the_greeting_and_each_other() {
        let (mut core, _tap) = core().await;
        // Sent before the greeting, in one read: nothing goes to libunftp yet.
        assert_eq!(
            core.step(Input::Client(b"NOOP\r\nPWD\r\nCWD a/../b\r\n")),
            vec![]
        );
        assert!(core.blocked_since().is_some());
        assert_eq!(
            core.step(Input::Inner(b"220 BucketFTP ready\r\n")),
            vec![client("220 BucketFTP ready\r\n"), inner("NOOP\r\n")]
        );
        assert_eq!(
            core.step(Input::Inner(b"200 OK\r\n")),
            vec![client("200 OK\r\n"), inner("PWD\r\n")]
        );
        // libunftp's PWD reply is rewritten with the normalised path.
        assert_eq!(
            core.step(Input::Inner(b"257 \"/\"\r\n")),
            vec![
                client("257 \"/\" is the current directory\r\n"),
                inner("CWD a/../b\r\n")
            ]
        );
        assert_eq!(
            core.step(Input::Inner(b"250 OK\r\n")),
            vec![client("250 OK\r\n")]
        );
        assert!(core.is_idle());
        // MLST's relative argument gets the working directory the client sees.
        assert_eq!(
            core.step(Input::Client(b"MLST f.txt\r\n")),
            vec![inner("MLST /b/f.txt\r\n")]
        );
    }

    #[tokio::test]
    async fn auth_tls_with_the_client_hello_glued_on() {
        let (mut core, tap) = core().await;
        greeted(&mut core);
        let hello = b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03";
        let mut read = b"AUTH TLS\r\n".to_vec();
        read.extend_from_slice(hello);
        assert_eq!(
            core.step(Input::Client(&read)),
            vec![Out::Request(Request::StartTls)]
        );
        // Bytes that arrive meanwhile are more of the ClientHello.
        assert_eq!(core.step(Input::Client(b"\x00\x00")), vec![]);
        let mut prefix = hello.to_vec();
        prefix.extend_from_slice(b"\x00\x00");
        assert_eq!(
            core.step(Input::Resumed(Resumed::TlsReady(true))),
            vec![
                client("234 AUTH TLS OK: start the TLS handshake.\r\n"),
                Out::Request(Request::Handshake { prefix })
            ]
        );
        assert!(!tap.control_tls());
        assert_eq!(
            core.step(Input::Resumed(Resumed::Handshake(Some("TLSv1_3".into())))),
            vec![]
        );
        assert!(tap.control_tls());
        // A second AUTH on the encrypted connection is the relay's to refuse.
        assert_eq!(
            core.step(Input::Client(b"AUTH TLS\r\n")),
            vec![client(
                "503 The control connection is already encrypted.\r\n"
            )]
        );
    }

    #[tokio::test]
    async fn a_failed_tls_set_up_or_handshake() {
        let (mut core, _tap) = core().await;
        greeted(&mut core);
        core.step(Input::Client(b"AUTH TLS\r\nNOOP\r\n"));
        // Not set up: 431, and the session goes on in plain text with the next command.
        assert_eq!(
            core.step(Input::Resumed(Resumed::TlsReady(false))),
            vec![
                client("431 TLS cannot be set up now; try again.\r\n"),
                inner("NOOP\r\n")
            ]
        );
        let (mut core, _tap) = self::core().await;
        greeted(&mut core);
        core.step(Input::Client(b"AUTH TLS\r\n"));
        core.step(Input::Resumed(Resumed::TlsReady(true)));
        assert_eq!(
            core.step(Input::Resumed(Resumed::Handshake(None))),
            vec![Out::Close]
        );
        assert_eq!(core.step(Input::Client(b"NOOP\r\n")), vec![]);
    }

    #[tokio::test]
    async fn abor_during_a_download() {
        let (mut core, _tap) = core().await;
        greeted(&mut core);
        assert_eq!(
            core.step(Input::Client(b"RETR big.bin\r\n")),
            vec![inner("RETR big.bin\r\n")]
        );
        assert_eq!(
            core.step(Input::Inner(b"150 Sending data\r\n")),
            vec![client("150 Sending data\r\n")]
        );
        // ABOR interrupts: it goes at once, and the relayed data connection ends.
        assert_eq!(
            core.step(Input::Client(b"ABOR\r\n")),
            vec![Out::AbortPassive, inner("ABOR\r\n")]
        );
        // libunftp's 226 for ABOR may come first: it answers ABOR, not the transfer.
        assert_eq!(
            core.step(Input::Inner(b"226 Closed data channel\r\n")),
            vec![client("226 Closed data channel\r\n")]
        );
        assert!(!core.is_idle(), "the download still waits for its reply");
        assert_eq!(
            core.step(Input::Inner(b"426 Connection closed\r\n")),
            vec![client("426 Connection closed\r\n")]
        );
        assert!(core.is_idle());
        // A command that is not an interrupt waits for the transfer's reply.
        core.step(Input::Client(b"RETR big.bin\r\n"));
        assert_eq!(core.step(Input::Client(b"NOOP\r\n")), vec![]);
        assert!(core.blocked_since().is_some());
    }

    #[tokio::test]
    async fn a_download_succeeds_only_once_its_data_is_delivered() {
        let (mut core, _tap) = core().await;
        greeted(&mut core);
        core.step(Input::Client(b"RETR a.bin\r\nNOOP\r\n"));
        assert_eq!(
            core.step(Input::Inner(
                b"150 Sending data\r\n226 Transfer complete\r\n"
            )),
            vec![
                client("150 Sending data\r\n"),
                Out::Request(Request::AwaitDelivered)
            ]
        );
        // Not delivered: the success becomes 426, and the next command goes on.
        assert_eq!(
            core.step(Input::Resumed(Resumed::Delivered(false))),
            vec![
                client("426 The data connection broke before all data was sent.\r\n"),
                inner("NOOP\r\n")
            ]
        );
        core.step(Input::Inner(b"200 OK\r\n"));
        core.step(Input::Client(b"RETR a.bin\r\n"));
        core.step(Input::Inner(
            b"150 Sending data\r\n226 Transfer complete\r\n",
        ));
        assert_eq!(
            core.step(Input::Resumed(Resumed::Delivered(true))),
            vec![client("226 Transfer complete\r\n")]
        );
    }

    #[tokio::test]
    async fn passive_replies_announce_the_relays_port() {
        let (mut core, tap) = core().await;
        greeted(&mut core);
        core.step(Input::Client(b"PASV\r\n"));
        assert_eq!(
            core.step(Input::Inner(
                b"227 Entering Passive Mode (127,0,0,1,195,81)\r\n"
            )),
            vec![Out::Request(Request::OpenPassive { inner_port: 50001 })]
        );
        assert_eq!(
            core.step(Input::Resumed(Resumed::Passive(Some(50100)))),
            vec![client("227 Entering Passive Mode (127,0,0,1,195,180)\r\n")]
        );
        core.step(Input::Client(b"EPSV\r\n"));
        core.step(Input::Inner(
            b"229 Entering Extended Passive Mode (|||50002|)\r\n",
        ));
        assert_eq!(
            core.step(Input::Resumed(Resumed::Passive(None))),
            vec![client("425 No passive port is free; try again.\r\n")]
        );
        // A reason the backend left is not put on the relay's own 425.
        tap.explain("an earlier failure");
        core.step(Input::Client(b"EPSV\r\n"));
        core.step(Input::Inner(
            b"229 Entering Extended Passive Mode (|||50003|)\r\n",
        ));
        assert_eq!(
            core.step(Input::Resumed(Resumed::Passive(None))),
            vec![client("425 No passive port is free; try again.\r\n")]
        );
        // The shell answering what was not asked ends the session.
        assert_eq!(
            core.step(Input::Resumed(Resumed::Delivered(true))),
            vec![Out::Close]
        );
    }

    #[tokio::test]
    async fn a_reply_split_across_reads() {
        let (mut core, tap) = core().await;
        greeted(&mut core);
        assert_eq!(
            core.step(Input::Client(b"OPTS MLST type;size;\r\nFEAT\r\n")),
            vec![client("200 MLST OPTS type;size;\r\n"), inner("FEAT\r\n")]
        );
        assert_eq!(tap.facts().feat_line().matches('*').count(), 2);
        assert_eq!(core.step(Input::Inner(b"211-Exten")), vec![]);
        assert_eq!(core.step(Input::Inner(b"sions:\r\n MLST\r\n SIZ")), vec![]);
        let out = core.step(Input::Inner(b"E\r\n211 END\r\n"));
        let [Out::Client(bytes)] = &out[..] else {
            panic!("one reply: {out:?}")
        };
        let text = String::from_utf8_lossy(bytes);
        assert!(text.starts_with("211-Extensions:\r\n"), "{text}");
        assert!(
            text.contains(&format!("{}\r\n", tap.facts().feat_line())),
            "FEAT's MLST line shows the selected facts: {text}"
        );
        assert!(
            text.contains(" SIZE\r\n") && text.ends_with("211 END\r\n"),
            "{text}"
        );
    }

    #[tokio::test]
    async fn an_error_reply_gets_the_backends_reason_first() {
        let (mut core, tap) = core().await;
        greeted(&mut core);
        core.step(Input::Client(b"DELE x\r\n"));
        tap.explain("x is a folder: use RMD");
        assert_eq!(
            core.step(Input::Inner(b"550 File not found\r\n")),
            vec![client(
                "550-x is a folder: use RMD\r\n550 File not found\r\n"
            )]
        );
    }

    #[tokio::test]
    async fn too_much_or_too_long_input_ends_the_session() {
        let (mut core, _tap) = core().await;
        greeted(&mut core);
        let long = vec![b'A'; MAX_LINE + 1];
        assert_eq!(
            core.step(Input::Client(&long)),
            vec![client("500 Command line too long.\r\n"), Out::Close]
        );
        assert_eq!(core.step(Input::Client(b"NOOP\r\n")), vec![], "closed");
        let (mut core, _tap) = self::core().await;
        // Before the greeting nothing is read: the buffer grows to its limit.
        let many = b"NOOP\r\n".repeat(MAX_BUFFERED / 6 + 1);
        assert_eq!(
            core.step(Input::Client(&many)),
            vec![client("500 Too much input at once.\r\n"), Out::Close]
        );
    }

    const SHA: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
    const MD5: &str = "d41d8cd98f00b204e9800998ecf8427e";

    #[tokio::test]
    async fn opts_hash_is_answered_here_and_selects_hashs_algorithm() {
        let (mut core, tap) = core().await;
        greeted(&mut core);
        assert_eq!(
            core.step(Input::Client(b"OPTS HASH\r\n")),
            vec![client("200 SHA-256\r\n")]
        );
        assert_eq!(
            core.step(Input::Client(b"opts hash md5\r\n")),
            vec![client("200 MD5\r\n")]
        );
        assert_eq!(
            core.step(Input::Client(b"OPTS HASH SHA-512\r\n")),
            vec![client(
                "501 Unknown algorithm, current selection not changed.\r\n"
            )]
        );
        assert_eq!(
            core.step(Input::Client(b"OPTS HASH\r\n")),
            vec![client("200 MD5\r\n")],
            "the refusal changed nothing"
        );
        assert_eq!(
            core.step(Input::Client(b"HASH\r\n")),
            vec![client("501 HASH needs a file name.\r\n")]
        );
        assert!(core.is_idle(), "nothing went to libunftp");
        // HASH asks for the selection, through libunftp's SITE MD5 with the path as given.
        assert_eq!(
            core.step(Input::Client(b"HASH dir/a b.txt\r\n")),
            vec![inner("SITE MD5 dir/a b.txt\r\n")]
        );
        assert_eq!(
            tap.take_hash_request(),
            Some(HashAlgo::Md5),
            "the backend's"
        );
        let answer = format!("213 MD5 0-49 {MD5}    /home/dir/a b.txt\r\n");
        assert_eq!(
            core.step(Input::Inner(answer.as_bytes())),
            vec![client(&format!("213 MD5 0-49 {MD5} dir/a b.txt\r\n"))]
        );
    }

    #[tokio::test]
    async fn x_commands_ask_their_own_algorithm_and_answer_250() {
        let (mut core, tap) = core().await;
        greeted(&mut core);
        core.step(Input::Client(b"OPTS HASH CRC32\r\n"));
        assert_eq!(
            core.step(Input::Client(b"XSHA256 f.bin\r\n")),
            vec![inner("SITE MD5 f.bin\r\n")]
        );
        assert_eq!(tap.take_hash_request(), Some(HashAlgo::Sha256));
        let answer = format!("213 SHA-256 0-0 {SHA}    /f.bin\r\n");
        assert_eq!(
            core.step(Input::Inner(answer.as_bytes())),
            vec![client(&format!("250 {SHA}\r\n"))]
        );
        core.step(Input::Client(b"XMD5 f.bin\r\n"));
        assert_eq!(tap.take_hash_request(), Some(HashAlgo::Md5));
        let answer = format!("213 MD5 0-9 {}    /f.bin\r\n", MD5.to_uppercase());
        assert_eq!(
            core.step(Input::Inner(answer.as_bytes())),
            vec![client(&format!("250 {MD5}\r\n"))],
            "hex in lower case"
        );
    }

    #[tokio::test]
    async fn hash_failures_pass_on_and_leave_no_request_behind() {
        let (mut core, tap) = core().await;
        let mut events = core.cfg.events.subscribe();
        greeted(&mut core);
        // Not logged in: libunftp refuses before the backend takes the request.
        core.step(Input::Client(b"HASH a.txt\r\n"));
        assert_eq!(
            core.step(Input::Inner(b"530 Please authenticate\r\n")),
            vec![client("530 Please authenticate\r\n")]
        );
        assert_eq!(tap.take_hash_request(), None, "taken by the reply");
        // The backend's failure, with its reason in front.
        core.step(Input::Client(b"XSHA1 gone.txt\r\n"));
        tap.take_hash_request();
        tap.explain("gone.txt: no such file");
        assert_eq!(
            core.step(Input::Inner(b"550 File not found\r\n")),
            vec![client(
                "550-gone.txt: no such file\r\n550 File not found\r\n"
            )]
        );
        // A 213 that is not the hash asked for: a 451, not the backend's text.
        for odd in [
            format!("213 {MD5}    /a.txt\r\n"),
            format!("213 MD5 0-9 {MD5}    /a.txt\r\n"),
        ] {
            core.step(Input::Client(b"HASH a.txt\r\n"));
            let out = core.step(Input::Inner(odd.as_bytes()));
            let [Out::Client(bytes)] = &out[..] else {
                panic!("one reply: {out:?}")
            };
            let text = String::from_utf8_lossy(bytes);
            assert!(text.starts_with("451 ") && !text.contains(MD5), "{text}");
        }
        // A request left behind never reaches the client's own SITE MD5, which passes on as
        // it is, and is reported as a SITE command; hash commands are not.
        tap.ask_hash(HashAlgo::Sha1);
        assert_eq!(
            core.step(Input::Client(b"SITE MD5 a.txt\r\n")),
            vec![inner("SITE MD5 a.txt\r\n")]
        );
        assert_eq!(tap.take_hash_request(), None);
        let plain = format!("213 {MD5}    /a.txt\r\n");
        assert_eq!(
            core.step(Input::Inner(plain.as_bytes())),
            vec![client(&plain)]
        );
        let mut sites = Vec::new();
        while let Ok(event) = events.try_recv() {
            if let Event::Changed { command, .. } = event {
                sites.push(command);
            }
        }
        assert_eq!(sites, [Some("SITE MD5 a.txt".to_owned())]);
    }

    #[tokio::test]
    async fn pipelined_hashes_ask_one_at_a_time() {
        let (mut core, tap) = core().await;
        greeted(&mut core);
        assert_eq!(
            core.step(Input::Client(b"HASH a\r\nHASH b\r\nNOOP\r\n")),
            vec![inner("SITE MD5 a\r\n")]
        );
        assert_eq!(tap.take_hash_request(), Some(HashAlgo::Sha256));
        // A long hash does not expire: its reply must not be taken for the next command's.
        assert_eq!(core.step(Input::OrderWaitExpired), vec![]);
        let a = format!("213 SHA-256 0-49 {SHA}    /a\r\n");
        assert_eq!(
            core.step(Input::Inner(a.as_bytes())),
            vec![
                client(&format!("213 SHA-256 0-49 {SHA} a\r\n")),
                inner("SITE MD5 b\r\n")
            ]
        );
        assert_eq!(tap.take_hash_request(), Some(HashAlgo::Sha256));
        let b = format!("213 SHA-256 0-0 {SHA}    /b\r\n");
        assert_eq!(
            core.step(Input::Inner(b.as_bytes())),
            vec![
                client(&format!("213 SHA-256 0-0 {SHA} b\r\n")),
                inner("NOOP\r\n")
            ]
        );
    }

    #[tokio::test]
    async fn a_clients_own_site_md5_outlives_the_order_wait() {
        let (mut core, tap) = core().await;
        let mut events = core.cfg.events.subscribe();
        greeted(&mut core);
        tap.ask_hash(HashAlgo::Sha1);
        assert_eq!(
            core.step(Input::Client(b"site md5 big.iso\r\nNOOP\r\n")),
            vec![inner("site md5 big.iso\r\n")]
        );
        assert_eq!(
            tap.take_hash_request(),
            None,
            "libunftp's MD5, not a left request"
        );
        // The backend reads the whole file: like a hash command's, its 213 must not be taken
        // for NOOP's reply once the order wait is over.
        assert_eq!(core.step(Input::OrderWaitExpired), vec![]);
        let plain = format!("213 {MD5}    /big.iso\r\n");
        assert_eq!(
            core.step(Input::Inner(plain.as_bytes())),
            vec![client(&plain), inner("NOOP\r\n")]
        );
        assert_eq!(
            core.step(Input::Inner(b"200 OK\r\n")),
            vec![client("200 OK\r\n")]
        );
        // Still reported as a SITE command.
        let mut sites = Vec::new();
        while let Ok(event) = events.try_recv() {
            if let Event::Changed { command, .. } = event {
                sites.push(command);
            }
        }
        assert_eq!(sites, [Some("SITE md5 big.iso".to_owned())]);
        // Another SITE command still expires as before.
        core.step(Input::Client(b"SITE CHMOD 644 a\r\nNOOP\r\n"));
        assert_eq!(core.step(Input::OrderWaitExpired), vec![inner("NOOP\r\n")]);
    }

    #[tokio::test]
    async fn hash_commands_forward_the_clients_own_bytes() {
        let (mut core, tap) = core().await;
        greeted(&mut core);
        // Latin-1 é: not UTF-8, forwarded as sent (the lossy text would be U+FFFD).
        assert_eq!(
            core.step(Input::Client(b"XMD5 caf\xe9.txt\r\n")),
            vec![Out::Inner(b"SITE MD5 caf\xe9.txt\r\n".to_vec())]
        );
        assert_eq!(tap.take_hash_request(), Some(HashAlgo::Md5));
        let answer = format!("213 MD5 0-9 {MD5}    /caf\u{fffd}.txt\r\n");
        core.step(Input::Inner(answer.as_bytes()));
        assert_eq!(
            core.step(Input::Client(b"HASH d/\xff b\r\n")),
            vec![Out::Inner(b"SITE MD5 d/\xff b\r\n".to_vec())]
        );
    }

    #[tokio::test]
    async fn x_commands_take_quoted_paths_and_refuse_byte_ranges() {
        let (mut core, tap) = core().await;
        greeted(&mut core);
        let refused = "501 Byte ranges are not supported; ask for the whole file.\r\n";
        for ranged in [
            &b"XCRC \"name\" 0 100\r\n"[..],
            b"xmd5 \"my file.txt\"  7 9 \r\n",
        ] {
            assert_eq!(
                core.step(Input::Client(ranged)),
                vec![client(refused)],
                "{ranged:?}"
            );
        }
        assert!(core.is_idle(), "nothing went to libunftp");
        assert_eq!(
            tap.take_hash_request(),
            None,
            "nothing asked of the backend"
        );
        // A quoted path without a range: the quotes go.
        assert_eq!(
            core.step(Input::Client(b"XMD5 \"my file.txt\"\r\n")),
            vec![inner("SITE MD5 my file.txt\r\n")]
        );
        let answer = format!("213 MD5 0-9 {MD5}    /my file.txt\r\n");
        assert_eq!(
            core.step(Input::Inner(answer.as_bytes())),
            vec![client(&format!("250 {MD5}\r\n"))]
        );
        // Unquoted, trailing digits are the file's name.
        assert_eq!(
            core.step(Input::Client(b"XMD5 name 0 100\r\n")),
            vec![inner("SITE MD5 name 0 100\r\n")]
        );
        core.step(Input::Inner(b"550 File not found\r\n"));
        assert_eq!(
            core.step(Input::Client(b"XCRC \"\"\r\n")),
            vec![client("501 XCRC needs a file name.\r\n")]
        );
    }

    #[tokio::test]
    async fn quit_goes_through_during_a_hash_and_abor_waits() {
        let (mut core, tap) = core().await;
        greeted(&mut core);
        core.step(Input::Client(b"HASH big.iso\r\n"));
        tap.take_hash_request();
        // libunftp's ABOR cannot stop the hash (it runs in a task of its own): ABOR waits,
        // and is answered after the hash.
        assert_eq!(core.step(Input::Client(b"ABOR\r\n")), vec![]);
        assert!(core.blocked_since().is_some());
        let a = format!("213 SHA-256 0-49 {SHA}    /big.iso\r\n");
        assert_eq!(
            core.step(Input::Inner(a.as_bytes())),
            vec![
                client(&format!("213 SHA-256 0-49 {SHA} big.iso\r\n")),
                inner("ABOR\r\n")
            ]
        );
        assert_eq!(
            core.step(Input::Inner(b"226 Data channel already closed\r\n")),
            vec![client("226 Data channel already closed\r\n")]
        );
        // QUIT goes at once, as during a transfer; libunftp's 221 answers it, and a 213 it
        // had queued before it still answers the hash.
        core.step(Input::Client(b"HASH big.iso\r\n"));
        assert_eq!(
            core.step(Input::Client(b"QUIT\r\n")),
            vec![inner("QUIT\r\n")]
        );
        assert_eq!(
            core.step(Input::Inner(b"221 Bye!\r\n")),
            vec![client("221 Bye!\r\n")]
        );
        assert_eq!(
            core.step(Input::Inner(a.as_bytes())),
            vec![client(&format!("213 SHA-256 0-49 {SHA} big.iso\r\n"))]
        );
        assert!(core.is_idle());
        // The same during a client's own SITE MD5.
        core.step(Input::Client(b"SITE MD5 big.iso\r\n"));
        assert_eq!(
            core.step(Input::Client(b"QUIT\r\n")),
            vec![inner("QUIT\r\n")]
        );
    }

    #[tokio::test]
    async fn feat_lists_the_hash_commands_in_place_of_site_md5() {
        let (mut core, _tap) = core().await;
        greeted(&mut core);
        core.step(Input::Client(b"OPTS HASH crc32\r\nFEAT\r\n"));
        let feat = b"211-Extensions supported:\r\n EPSV\r\n MDTM\r\n MLST\r\n SITE MD5\r\n \
                     SIZE\r\n UTF8\r\n211 END\r\n";
        let out = core.step(Input::Inner(feat));
        let expected = "211-Extensions supported:\r\n EPSV\r\n HASH SHA-256;SHA-1;MD5;CRC32*\r\n \
                        MDTM\r\n MLST type*;size*;modify*;\r\n SIZE\r\n UTF8\r\n XCRC\r\n XMD5\r\n \
                        XSHA1\r\n XSHA256\r\n211 END\r\n";
        assert_eq!(out, vec![client(expected)]);
        // Without SITE MD5 (the backend lacks it) no hash command is listed.
        core.step(Input::Client(b"FEAT\r\n"));
        let out = core.step(Input::Inner(
            b"211-Extensions supported:\r\n MLST\r\n211 END\r\n",
        ));
        assert_eq!(
            out,
            vec![client(
                "211-Extensions supported:\r\n MLST type*;size*;modify*;\r\n211 END\r\n"
            )]
        );
    }
}
