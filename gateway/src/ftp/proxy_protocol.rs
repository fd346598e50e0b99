//! The PROXY protocol (HAProxy's, version 1 text and version 2 binary) in front of control and
//! data connections, for a server behind a load balancer (`proxy_protocol`).
//!
//! Behind a TCP balancer every connection comes from the balancer's address: per-address
//! session limits, the login lockout, the audit log, the metrics and the check that a data
//! connection comes from its control connection's client would all see one address. With
//! `send-proxy-v2` (or `send-proxy`) the balancer starts each connection with a header naming
//! the client's address, and the server takes that as the client's.
//!
//! A header is believed only from the sources of `proxy_protocol_from` ([`ProxyRule`]; by
//! default loopback): anyone else could name any address. With the protocol on, a connection
//! from elsewhere, or without a valid header within [`HEADER_WITHIN`], is closed. A `LOCAL`
//! header (the balancer's own health check) or one with no addresses keeps the connection's
//! own address.
//!
//! The header is read to its last byte and not one byte further (the rest of the stream is the
//! client's: TLS, FTP data). Parsing is the `ppp` crate's; reading and trust are here.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use ipnet::IpNet;
use ppp::v2::{Addresses as V2Addresses, Command};
use ppp::{HeaderResult, v1};
use tokio::io::{AsyncRead, AsyncReadExt};

/// How long a connection may take to send its header.
pub const HEADER_WITHIN: Duration = Duration::from_secs(5);

/// The version 2 signature.
const V2_SIGNATURE: &[u8; 12] = b"\r\n\r\n\0\r\nQUIT\n";
/// The longest version 1 header (the protocol's own limit).
const V1_MAX: usize = 107;
/// The longest version 2 header read: the 16 fixed bytes and addresses with some TLVs.
const V2_MAX: usize = 16 + 1024;

/// Whose PROXY protocol headers are believed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyRule {
    from: Vec<IpNet>,
}

impl ProxyRule {
    /// Headers from the addresses in `from`; an empty list means loopback only.
    pub fn new(from: Vec<IpNet>) -> Self {
        let from = if from.is_empty() {
            // Both prefix lengths are in range: `new` cannot fail here.
            [
                (IpAddr::from([127, 0, 0, 0]), 8),
                (IpAddr::from(std::net::Ipv6Addr::LOCALHOST), 128),
            ]
            .into_iter()
            .filter_map(|(ip, len)| IpNet::new(ip, len).ok())
            .collect()
        } else {
            from
        };
        Self { from }
    }

    /// Whether a header from `ip` is believed.
    pub fn trusts(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.from.iter().any(|net| net.contains(&ip))
    }

    /// The sources, as configured (for the start-up line).
    pub fn sources(&self) -> &[IpNet] {
        &self.from
    }
}

/// `a.b.c.d/n`, `x::y/n`, or a bare address (one host). Pure.
pub fn parse_source(text: &str) -> Result<IpNet, String> {
    let text = text.trim();
    text.parse::<IpNet>()
        .or_else(|_| text.parse::<IpAddr>().map(IpNet::from))
        .map(|n| n.trunc())
        .map_err(|_| format!("{text:?} is not an address or a CIDR block (10.0.0.0/8)"))
}

/// Why a connection's header was not taken.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// The connection came from an address whose headers are not believed.
    #[error("a connection from {0}, whose PROXY protocol headers are not trusted")]
    Untrusted(IpAddr),
    /// Not a PROXY protocol header, or a broken one.
    #[error("no valid PROXY protocol header: {0}")]
    Invalid(String),
    /// Nothing, or not all of it, within [`HEADER_WITHIN`].
    #[error("no PROXY protocol header within {} s", HEADER_WITHIN.as_secs())]
    Timeout,
    /// Reading failed.
    #[error("reading the PROXY protocol header: {0}")]
    Io(#[from] std::io::Error),
}

/// The client's address a whole header names: `None` for a `LOCAL` header or one without
/// addresses (`UNKNOWN`, unspecified). Pure.
pub fn source_of(header: &[u8]) -> Result<Option<SocketAddr>, ProxyError> {
    match HeaderResult::parse(header) {
        HeaderResult::V1(Ok(h)) => Ok(match h.addresses {
            v1::Addresses::Tcp4(a) => Some(SocketAddr::from((a.source_address, a.source_port))),
            v1::Addresses::Tcp6(a) => Some(SocketAddr::from((a.source_address, a.source_port))),
            v1::Addresses::Unknown => None,
        }),
        HeaderResult::V2(Ok(h)) if h.command == Command::Local => Ok(None),
        HeaderResult::V2(Ok(h)) => Ok(match h.addresses {
            V2Addresses::IPv4(a) => Some(SocketAddr::from((a.source_address, a.source_port))),
            V2Addresses::IPv6(a) => Some(SocketAddr::from((a.source_address, a.source_port))),
            V2Addresses::Unspecified | V2Addresses::Unix(_) => None,
        }),
        HeaderResult::V1(Err(e)) => Err(ProxyError::Invalid(format!("{e:?}"))),
        HeaderResult::V2(Err(e)) => Err(ProxyError::Invalid(format!("{e:?}"))),
    }
}

/// Reads one whole header from `stream`, and nothing after it.
pub async fn read_header<S: AsyncRead + Unpin>(stream: &mut S) -> Result<Vec<u8>, ProxyError> {
    let mut buf = vec![0u8; 12];
    stream.read_exact(&mut buf).await?;
    if buf[..] == V2_SIGNATURE[..] {
        let mut fixed = [0u8; 4];
        stream.read_exact(&mut fixed).await?;
        buf.extend_from_slice(&fixed);
        let len = usize::from(u16::from_be_bytes([fixed[2], fixed[3]]));
        if buf.len() + len > V2_MAX {
            return Err(ProxyError::Invalid(format!(
                "a version 2 header of {len} bytes"
            )));
        }
        let start = buf.len();
        buf.resize(start + len, 0);
        stream.read_exact(&mut buf[start..]).await?;
        return Ok(buf);
    }
    if !buf.starts_with(b"PROXY ") {
        return Err(ProxyError::Invalid(
            "the connection does not start with one".into(),
        ));
    }
    // Version 1: up to CRLF, a byte at a time (what follows is the client's).
    while !buf.ends_with(b"\r\n") {
        if buf.len() >= V1_MAX {
            return Err(ProxyError::Invalid(
                "a version 1 header without its end".into(),
            ));
        }
        buf.push(stream.read_u8().await?);
    }
    Ok(buf)
}

/// The client's address for a connection from `peer` with the protocol on: the one its header
/// names (`peer` itself for a `LOCAL` header), once `peer` is trusted and the header is read
/// within [`HEADER_WITHIN`].
pub async fn client_address<S: AsyncRead + Unpin>(
    stream: &mut S,
    peer: SocketAddr,
    rule: &ProxyRule,
) -> Result<SocketAddr, ProxyError> {
    if !rule.trusts(peer.ip()) {
        return Err(ProxyError::Untrusted(peer.ip()));
    }
    let header = tokio::time::timeout(HEADER_WITHIN, read_header(stream))
        .await
        .map_err(|_| ProxyError::Timeout)??;
    let client = source_of(&header)?.unwrap_or(peer);
    Ok(SocketAddr::new(client.ip().to_canonical(), client.port()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;

    fn v2(command: u8, family: u8, addresses: &[u8]) -> Vec<u8> {
        let mut h = V2_SIGNATURE.to_vec();
        h.push(0x20 | command);
        h.push(family);
        h.extend_from_slice(&(addresses.len() as u16).to_be_bytes());
        h.extend_from_slice(addresses);
        h
    }

    #[test]
    fn headers_name_the_client() {
        let v1 = b"PROXY TCP4 203.0.113.7 10.0.0.1 51234 21\r\n";
        assert_eq!(
            source_of(v1).unwrap(),
            Some("203.0.113.7:51234".parse().unwrap())
        );
        let v1_6 = b"PROXY TCP6 2001:db8::7 2001:db8::1 51234 21\r\n";
        assert_eq!(
            source_of(v1_6).unwrap(),
            Some("[2001:db8::7]:51234".parse().unwrap())
        );
        assert_eq!(source_of(b"PROXY UNKNOWN\r\n").unwrap(), None);
        // PROXY, TCP over IPv4: 203.0.113.9:4000 -> 10.0.0.1:21.
        let mut a = vec![203, 0, 113, 9, 10, 0, 0, 1];
        a.extend_from_slice(&4000u16.to_be_bytes());
        a.extend_from_slice(&21u16.to_be_bytes());
        assert_eq!(
            source_of(&v2(1, 0x11, &a)).unwrap(),
            Some("203.0.113.9:4000".parse().unwrap())
        );
        // LOCAL (a health check): the connection's own address.
        assert_eq!(source_of(&v2(0, 0x00, &[])).unwrap(), None);
        assert!(source_of(b"GET / HTTP/1.1\r\n").is_err());
        assert!(source_of(b"PROXY TCP4 nonsense\r\n").is_err());
    }

    #[tokio::test]
    async fn reads_the_header_and_nothing_more() {
        let mut a = vec![203, 0, 113, 9, 10, 0, 0, 1];
        a.extend_from_slice(&4000u16.to_be_bytes());
        a.extend_from_slice(&21u16.to_be_bytes());
        for header in [
            b"PROXY TCP4 203.0.113.7 10.0.0.1 51234 21\r\n".to_vec(),
            v2(1, 0x11, &a),
        ] {
            let mut input = header.clone();
            input.extend_from_slice(b"USER x\r\n");
            let mut rd = &input[..];
            assert_eq!(read_header(&mut rd).await.unwrap(), header);
            assert_eq!(rd, b"USER x\r\n", "the client's bytes stay");
        }
        let mut junk = &b"USER anonymous\r\n"[..];
        assert!(matches!(
            read_header(&mut junk).await,
            Err(ProxyError::Invalid(_))
        ));
        let long = [b"PROXY ".to_vec(), vec![b'1'; 200]].concat();
        assert!(read_header(&mut &long[..]).await.is_err());
    }

    #[test]
    fn trust_is_by_source() {
        let rule = ProxyRule::new(vec![parse_source("10.1.0.0/16").unwrap()]);
        assert!(rule.trusts("10.1.2.3".parse().unwrap()));
        assert!(rule.trusts("::ffff:10.1.2.3".parse().unwrap()));
        assert!(!rule.trusts("10.2.0.1".parse().unwrap()));
        let default = ProxyRule::new(Vec::new());
        assert!(default.trusts("127.0.0.3".parse().unwrap()));
        assert!(default.trusts("::1".parse().unwrap()));
        assert!(!default.trusts("192.0.2.1".parse().unwrap()));
        assert_eq!(
            parse_source("192.0.2.1").unwrap().to_string(),
            "192.0.2.1/32"
        );
        assert!(parse_source("10.0.0.0/33").is_err());
        assert!(parse_source("lb.example.com").is_err());
    }
}
