//! Which process on this host holds the client's end of a TCP connection, and whether it
//! still does: the upload commit gate's proof that a plain-FTP client was not killed.
//!
//! When a process is killed, the kernel first takes its file table away and only then closes
//! the sockets it held, sending their FINs. So at the moment the FIN of a killed client's data
//! connection arrives, the process no longer holds its control socket, although that socket's
//! own FIN may come only milliseconds later (measured here: up to 10 ms on a loaded machine).
//! A client that finished its upload and waits for the reply still holds it. Reading this
//! takes one `readlink` of `/proc/PID/fd/N`, no wait.
//!
//! Linux only: the client's socket is found by its addresses in `/proc/net/tcp{,6}` (so only a
//! client on this host, in this network namespace, is found), and its process by scanning the
//! `/proc/PID/fd` folders of the processes of the socket's user. Elsewhere, and where a
//! process's folders cannot be read, [`SocketOwner::find`] finds nothing and the gate waits
//! for the control connection instead (`control_tap::SETTLE`). The parsing is pure and
//! table-tested; the reading is a thin shell around it.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// A process holding a socket: the socket's inode, one of its file descriptors and its
/// user, as found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SocketOwner {
    /// The process (thread group) id.
    pub pid: u32,
    /// A file descriptor of `pid` that is the socket.
    pub fd: u32,
    /// The socket's inode number.
    pub inode: u64,
    /// The socket's user id.
    pub uid: u32,
}

/// Whether the socket is still held by a process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Owner {
    /// A live process holds it.
    Holds,
    /// No process holds it any more: its owner is exiting or gone.
    Gone,
    /// It cannot be told (the folders cannot be read).
    Unknown,
}

/// One socket of `/proc/net/tcp{,6}`: its local and remote address, user and inode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcSocket {
    /// The socket's own address.
    pub local: SocketAddr,
    /// The address it is connected to.
    pub remote: SocketAddr,
    /// The socket's user id.
    pub uid: u32,
    /// Its inode number (0 for a socket no process holds any more).
    pub inode: u64,
}

/// Parses `0100007F:0800` (IPv4) or the 32-digit IPv6 form of `/proc/net/tcp{,6}`: the kernel
/// prints each 32-bit word of the address as the number it is in this host's byte order. Pure.
pub fn parse_proc_addr(text: &str) -> Option<SocketAddr> {
    let (addr, port) = text.split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    let word = |s: &str| u32::from_str_radix(s, 16).ok().map(u32::to_ne_bytes);
    let ip = match addr.len() {
        8 => IpAddr::V4(Ipv4Addr::from(word(addr)?)),
        32 => {
            let mut bytes = [0u8; 16];
            for (i, chunk) in bytes.chunks_mut(4).enumerate() {
                chunk.copy_from_slice(&word(addr.get(i * 8..i * 8 + 8)?)?);
            }
            IpAddr::V6(Ipv6Addr::from(bytes))
        }
        _ => return None,
    };
    Some(SocketAddr::new(ip, port))
}

/// Parses one line of `/proc/net/tcp{,6}` (`sl local rem st queues tr retr uid timeout inode
/// …`); `None` for the header and malformed lines. Pure.
pub fn parse_proc_line(line: &str) -> Option<ProcSocket> {
    let fields: Vec<&str> = line.split_whitespace().collect();
    if fields.len() < 10 || !fields[0].ends_with(':') {
        return None;
    }
    Some(ProcSocket {
        local: parse_proc_addr(fields[1])?,
        remote: parse_proc_addr(fields[2])?,
        uid: fields[7].parse().ok()?,
        inode: fields[9].parse().ok()?,
    })
}

/// The same address with an IPv4-mapped IPv6 address written as IPv4.
fn canonical(a: SocketAddr) -> SocketAddr {
    SocketAddr::new(a.ip().to_canonical(), a.port())
}

/// The socket among `sockets` whose own address is `client` and whose peer is `server`: the
/// client's end of the connection, when the client is on this host. Pure.
pub fn client_end(
    sockets: impl IntoIterator<Item = ProcSocket>,
    client: SocketAddr,
    server: SocketAddr,
) -> Option<ProcSocket> {
    let (client, server) = (canonical(client), canonical(server));
    sockets
        .into_iter()
        .find(|s| s.inode != 0 && canonical(s.local) == client && canonical(s.remote) == server)
}

/// `socket:[INODE]` → INODE. Pure.
pub fn socket_inode(link: &str) -> Option<u64> {
    link.strip_prefix("socket:[")?
        .strip_suffix(']')?
        .parse()
        .ok()
}

impl SocketOwner {
    /// The process on this host that holds the client's end of the connection from `client`
    /// to `server`; `None` when the client is elsewhere or cannot be seen. Blocking: reads
    /// `/proc`.
    pub fn find(client: SocketAddr, server: SocketAddr) -> Option<SocketOwner> {
        imp::find(client, server)
    }

    /// Whether the process found still holds the socket. When it does not, and no other
    /// process does either, the owner is gone; when another one does (the socket was passed
    /// on, or a child inherited it), that says nothing of the client: unknown. Blocking:
    /// reads `/proc`.
    pub fn still_holds(&self) -> Owner {
        imp::still_holds(self)
    }
}

#[cfg(target_os = "linux")]
mod imp {
    use super::{Owner, SocketOwner, client_end, parse_proc_line, socket_inode};
    use std::net::SocketAddr;
    use std::os::unix::fs::MetadataExt;

    pub(super) fn find(client: SocketAddr, server: SocketAddr) -> Option<SocketOwner> {
        let sockets = ["/proc/net/tcp", "/proc/net/tcp6"]
            .iter()
            .filter_map(|p| std::fs::read_to_string(p).ok())
            .flat_map(|text| text.lines().filter_map(parse_proc_line).collect::<Vec<_>>());
        let socket = client_end(sockets, client, server)?;
        let (pid, fd) = holder(socket.inode, socket.uid)?;
        Some(SocketOwner {
            pid,
            fd,
            inode: socket.inode,
            uid: socket.uid,
        })
    }

    pub(super) fn still_holds(owner: &SocketOwner) -> Owner {
        match std::fs::read_link(format!("/proc/{}/fd/{}", owner.pid, owner.fd)) {
            Ok(link) if socket_inode(&link.to_string_lossy()) == Some(owner.inode) => Owner::Holds,
            Ok(_) => rescan(owner),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => rescan(owner),
            Err(_) => Owner::Unknown,
        }
    }

    /// The recorded descriptor no longer is the socket: if no process of the user holds it,
    /// the owner is gone; if another one does (it was passed on, or inherited), the client
    /// may still have died: unknown.
    fn rescan(owner: &SocketOwner) -> Owner {
        match holder(owner.inode, owner.uid) {
            Some(_) => Owner::Unknown,
            None => Owner::Gone,
        }
    }

    /// A process of user `uid` (all, for root's sockets and a root server) with a descriptor
    /// that is socket `inode`.
    fn holder(inode: u64, uid: u32) -> Option<(u32, u32)> {
        let me = std::process::id();
        let mut pids: Vec<u32> = std::fs::read_dir("/proc")
            .ok()?
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let pid: u32 = e.file_name().to_str()?.parse().ok()?;
                let owner = e.metadata().ok()?.uid();
                (uid == 0 || owner == uid).then_some(pid)
            })
            .collect();
        // Newest processes first: a client usually started after this server.
        pids.sort_unstable_by(|a, b| b.cmp(a));
        pids.retain(|p| *p != me);
        pids.push(me);
        pids.into_iter().find_map(|pid| {
            std::fs::read_dir(format!("/proc/{pid}/fd"))
                .ok()?
                .filter_map(|e| e.ok())
                .find_map(|e| {
                    let link = std::fs::read_link(e.path()).ok()?;
                    (socket_inode(&link.to_string_lossy()) == Some(inode))
                        .then(|| e.file_name().to_str()?.parse().ok())
                        .flatten()
                })
                .map(|fd| (pid, fd))
        })
    }
}

#[cfg(not(target_os = "linux"))]
mod imp {
    use super::{Owner, SocketOwner};
    use std::net::SocketAddr;

    pub(super) fn find(_client: SocketAddr, _server: SocketAddr) -> Option<SocketOwner> {
        None
    }

    pub(super) fn still_holds(_owner: &SocketOwner) -> Owner {
        Owner::Unknown
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;

    #[test]
    fn proc_addresses() {
        let a = |s: &str| parse_proc_addr(s);
        assert_eq!(a("0100007F:0800"), Some("127.0.0.1:2048".parse().unwrap()));
        assert_eq!(a("0200007F:D431"), Some("127.0.0.2:54321".parse().unwrap()));
        assert_eq!(a("00000000:0016"), Some("0.0.0.0:22".parse().unwrap()));
        assert_eq!(
            a("00000000000000000000000001000000:0800"),
            Some("[::1]:2048".parse().unwrap())
        );
        assert_eq!(
            a("0000000000000000FFFF00000100007F:0800"),
            Some("[::ffff:127.0.0.1]:2048".parse().unwrap())
        );
        assert_eq!(a("0100007F"), None);
        assert_eq!(a("0100007:0800"), None);
        assert_eq!(a("XX00007F:0800"), None);
    }

    #[test]
    fn proc_lines_and_the_client_end() {
        let header = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when \
                      retrnsmt   uid  timeout inode";
        assert_eq!(parse_proc_line(header), None);
        let server_end = "   1: 0100007F:0800 0100007F:D431 01 00000000:00000000 00:00000000 \
                          00000000  1000        0 4242 1 0000000000000000 20 4 30 10 -1";
        let client = "   2: 0100007F:D431 0100007F:0800 01 00000000:00000000 00:00000000 \
                      00000000  1000        0 4343 1 0000000000000000 20 4 30 10 -1";
        let orphan = "   3: 0200007F:D431 0100007F:0800 04 00000000:00000000 00:00000000 \
                      00000000  1000        0 0 1 0000000000000000 20 4 30 10 -1";
        let parsed = parse_proc_line(client).unwrap();
        assert_eq!(parsed.uid, 1000);
        assert_eq!(parsed.inode, 4343);
        let all: Vec<_> = [server_end, client, orphan]
            .iter()
            .filter_map(|l| parse_proc_line(l))
            .collect();
        let c: SocketAddr = "127.0.0.1:54321".parse().unwrap();
        let s: SocketAddr = "127.0.0.1:2048".parse().unwrap();
        assert_eq!(client_end(all.clone(), c, s).map(|p| p.inode), Some(4343));
        // A dual-stack server sees the client as IPv4-mapped IPv6.
        let mapped: SocketAddr = "[::ffff:127.0.0.1]:54321".parse().unwrap();
        assert_eq!(
            client_end(all.clone(), mapped, s).map(|p| p.inode),
            Some(4343)
        );
        // A socket whose process closed it (inode 0) is nobody's.
        let c2: SocketAddr = "127.0.0.2:54321".parse().unwrap();
        assert_eq!(client_end(all.clone(), c2, s), None);
        // A client on another host has no line here.
        let remote: SocketAddr = "192.0.2.7:54321".parse().unwrap();
        assert_eq!(client_end(all, remote, s), None);
    }

    #[test]
    fn socket_links() {
        assert_eq!(socket_inode("socket:[4343]"), Some(4343));
        assert_eq!(socket_inode("pipe:[4343]"), None);
        assert_eq!(socket_inode("/dev/null"), None);
    }

    /// This process's own connection is found, and is held until it is closed.
    #[cfg(target_os = "linux")]
    #[test]
    fn finds_this_process_and_sees_the_socket_go() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let server = listener.local_addr().unwrap();
        let client = std::net::TcpStream::connect(server).unwrap();
        let (_accepted, from) = listener.accept().unwrap();
        let owner = SocketOwner::find(from, server).unwrap();
        assert_eq!(owner.pid, std::process::id());
        assert_eq!(owner.still_holds(), Owner::Holds);
        drop(client);
        assert_eq!(owner.still_holds(), Owner::Gone);
    }

    /// Another process's connection: held while it lives, gone once it is killed, even
    /// before anything of that reaches this side.
    #[cfg(target_os = "linux")]
    #[test]
    fn a_killed_client_process_no_longer_holds_its_socket() {
        use std::io::Read;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let server = listener.local_addr().unwrap();
        let mut child = std::process::Command::new("python3")
            .arg("-c")
            .arg(format!(
                "import socket, time\n\
                 s = socket.create_connection(('127.0.0.1', {}))\n\
                 s.sendall(b'x')\n\
                 time.sleep(60)",
                server.port()
            ))
            .spawn()
            .unwrap();
        let (mut accepted, from) = listener.accept().unwrap();
        let mut one = [0u8; 1];
        accepted.read_exact(&mut one).unwrap();
        let owner = SocketOwner::find(from, server).unwrap();
        assert_eq!(owner.pid, child.id());
        assert_eq!(owner.still_holds(), Owner::Holds);
        child.kill().unwrap();
        // The moment the FIN of the killed process's socket arrives, and before the process
        // is reaped, no process holds the socket any more.
        assert_eq!(accepted.read(&mut one).unwrap(), 0, "the FIN");
        assert_eq!(owner.still_holds(), Owner::Gone);
        child.wait().unwrap();
    }
}
