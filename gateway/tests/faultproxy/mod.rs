//! A fault-injecting HTTP proxy in front of a real S3 server, for the failure tests: the
//! requests a test picks (by method and a piece of the request target, e.g. `PUT` +
//! `partNumber=`) are answered `503 SlowDown` as a throttled AWS S3 answers them, and, when
//! asked, requests signed for another region than the bucket's get AWS's `301
//! PermanentRedirect` with the `x-amz-bucket-region` header; every other request goes to the
//! real server unchanged. Nothing here imitates S3 beyond those two error replies: listings,
//! uploads and reads are the real server's. Two more faults alter the real server's traffic
//! without imitating it: a reply's headers can be edited on the way back (an ETag or
//! Last-Modified dropped, a `206` range turned into a `200` without Content-Range, as from a
//! store that ignores Range), and requests can be held until the test releases them (a store
//! slow to take a part).
//!
//! One more damages a request on its way to the server: one byte in the middle of the body
//! of a chosen request is flipped (a bad buffer, a broken middlebox), everything else about
//! the request stays as the client sent it.
//!
//! And a request can be altered more deeply: some of its headers left out (a part's
//! `x-amz-checksum-*`, so that the store cannot check the part itself), one byte of its body
//! flipped (with its `x-amz-checksum-*` computed again over the damaged body, if asked: the
//! damage then looks done before the client computed it), or XML elements taken out of its
//! body (the parts' checksums of a CompleteMultipartUpload). Such a request is signed again
//! (SigV4, with the secret key the test gives) so that the store takes it as the client's;
//! before altering, the proxy checks that its signing reproduces the client's signature, so
//! a request it cannot sign faithfully is reported ([`FaultProxy::altered`] panics) instead
//! of being refused for its signature.
//!
//! Each client connection carries one request (the proxy asks the server to close after its
//! reply), so every request is looked at.

#![allow(dead_code)] // each test binary uses a different subset

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use sha2::Digest as _;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Which requests fail, and how often.
#[derive(Debug, Clone)]
struct Rule {
    method: String,
    target_contains: String,
    /// `None`: every matching request; `Some(n)`: the next `n`.
    remaining: Option<usize>,
}

/// How the replies to some requests are edited.
#[derive(Debug, Clone)]
struct ReplyEdit {
    method: String,
    target_contains: String,
    /// Header names (lower case) left out of the reply.
    drop: Vec<String>,
    /// `206 Partial Content` becomes `200 OK` and Content-Range goes.
    ignore_range: bool,
}

/// How some requests are altered (and signed again), see [`FaultProxy::alter`].
#[derive(Debug, Clone, Default)]
pub(crate) struct Alteration {
    /// Header names (lower case) left out of the request (and of its signed headers).
    pub strip_headers: Vec<String>,
    /// One bit of the body's middle byte turned.
    pub flip_byte: bool,
    /// XML elements (`<Name>…</Name>`, every occurrence) taken out of the body.
    pub strip_elements: Vec<String>,
    /// The request's `x-amz-checksum-*` header computed again over the altered body (damage
    /// done before the client computed it: the store finds nothing wrong with the body).
    pub recompute_checksum: bool,
}

/// An [`Alteration`] waiting for its requests.
#[derive(Debug, Clone)]
struct Alter {
    method: String,
    target_contains: String,
    how: Alteration,
    secret_key: String,
    remaining: usize,
}

#[derive(Debug, Default)]
struct State {
    rules: Mutex<Vec<Rule>>,
    edits: Mutex<Vec<ReplyEdit>>,
    edited: AtomicUsize,
    /// (method, piece of the target) of requests that wait for `release`.
    holds: Mutex<Vec<(String, String)>>,
    held: AtomicUsize,
    bucket_region: Mutex<Option<String>>,
    redirects: AtomicUsize,
    faults: AtomicUsize,
    forwarded: AtomicUsize,
    /// Bodies to damage: (method, piece of the target, how many more).
    flips: Mutex<Vec<(String, String, usize)>>,
    flipped: AtomicUsize,
    /// (method, target, `x-amz-content-sha256`) of every request, in arrival order.
    payload_hashes: Mutex<Vec<(String, String, String)>>,
    alters: Mutex<Vec<Alter>>,
    /// (method, target, headers actually left out) of each altered request.
    altered: Mutex<Vec<(String, String, Vec<String>)>>,
    /// Why a request could not be altered faithfully.
    alter_errors: Mutex<Vec<String>>,
}

/// The running proxy; dropping it stops accepting.
pub(crate) struct FaultProxy {
    /// `http://127.0.0.1:PORT`, to give the gateway as its endpoint.
    pub endpoint: String,
    state: Arc<State>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

const SLOW_DOWN: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>SlowDown</Code>\
<Message>Please reduce your request rate.</Message><RequestId>fault-proxy</RequestId></Error>";

const PERMANENT_REDIRECT: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error>\
<Code>PermanentRedirect</Code><Message>The bucket you are attempting to access must be \
addressed using the specified endpoint.</Message><RequestId>fault-proxy</RequestId></Error>";

impl FaultProxy {
    /// Listens on a free loopback port and forwards to `upstream` (`http://host:port`).
    pub(crate) async fn start(upstream: &str) -> FaultProxy {
        let upstream: SocketAddr = upstream
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .parse()
            .unwrap_or_else(|e| panic!("upstream {upstream}: {e}"));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(State::default());
        let st = state.clone();
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let st = st.clone();
                tokio::spawn(async move {
                    let _ = serve(client, upstream, &st).await;
                });
            }
        });
        FaultProxy {
            endpoint: format!("http://{addr}"),
            state,
            task,
        }
    }

    /// Answers `503 SlowDown` to requests with `method` whose target contains
    /// `target_contains`: the next `times` of them, or all with `None`.
    pub(crate) fn slow_down(&self, method: &str, target_contains: &str, times: Option<usize>) {
        if let Ok(mut rules) = self.state.rules.lock() {
            rules.push(Rule {
                method: method.to_owned(),
                target_contains: target_contains.to_owned(),
                remaining: times,
            });
        }
    }

    /// From now on, requests signed for a region other than `region` get `301
    /// PermanentRedirect` naming `region` in `x-amz-bucket-region`, as AWS answers them.
    pub(crate) fn bucket_in_region(&self, region: &str) {
        if let Ok(mut r) = self.state.bucket_region.lock() {
            *r = Some(region.to_owned());
        }
    }

    /// Leaves the headers named in `drop` out of the replies to requests with `method` whose
    /// target contains `target_contains`.
    pub(crate) fn drop_reply_headers(&self, method: &str, target_contains: &str, drop: &[&str]) {
        self.edit(ReplyEdit {
            method: method.to_owned(),
            target_contains: target_contains.to_owned(),
            drop: drop.iter().map(|h| h.to_ascii_lowercase()).collect(),
            ignore_range: false,
        });
    }

    /// Answers the matching requests as a store that ignores Range would label its reply:
    /// `200 OK` and no Content-Range (the body is still the real server's range).
    pub(crate) fn ignore_range(&self, method: &str, target_contains: &str) {
        self.edit(ReplyEdit {
            method: method.to_owned(),
            target_contains: target_contains.to_owned(),
            drop: vec!["content-range".to_owned()],
            ignore_range: true,
        });
    }

    fn edit(&self, edit: ReplyEdit) {
        if let Ok(mut edits) = self.state.edits.lock() {
            edits.push(edit);
        }
    }

    /// How many replies were edited so far.
    pub(crate) fn edited(&self) -> usize {
        self.state.edited.load(Ordering::SeqCst)
    }

    /// Holds requests with `method` whose target contains `target_contains` (before their
    /// body is read) until [`release`](Self::release).
    pub(crate) fn hold(&self, method: &str, target_contains: &str) {
        if let Ok(mut holds) = self.state.holds.lock() {
            holds.push((method.to_owned(), target_contains.to_owned()));
        }
    }

    /// How many requests were held so far.
    pub(crate) fn held(&self) -> usize {
        self.state.held.load(Ordering::SeqCst)
    }

    /// Lets held requests (and later ones) go.
    pub(crate) fn release(&self) {
        if let Ok(mut holds) = self.state.holds.lock() {
            holds.clear();
        }
    }

    /// Flips one bit of the middle byte of the body of the next `times` requests with
    /// `method` whose target contains `target_contains` (and a body).
    pub(crate) fn flip_body_byte(&self, method: &str, target_contains: &str, times: usize) {
        if let Ok(mut flips) = self.state.flips.lock() {
            flips.push((method.to_owned(), target_contains.to_owned(), times));
        }
    }

    /// Alters the next `times` requests with `method` whose target contains
    /// `target_contains` as `how` says, and signs them again with `secret_key` (the key of the
    /// access key the client signs with).
    pub(crate) fn alter(
        &self,
        method: &str,
        target_contains: &str,
        how: Alteration,
        secret_key: &str,
        times: usize,
    ) {
        if let Ok(mut alters) = self.state.alters.lock() {
            alters.push(Alter {
                method: method.to_owned(),
                target_contains: target_contains.to_owned(),
                how,
                secret_key: secret_key.to_owned(),
                remaining: times,
            });
        }
    }

    /// "Strip these request headers and flip a byte of the body" of the next matching
    /// request: [`alter`](Self::alter) with those two.
    pub(crate) fn strip_headers_and_flip(
        &self,
        method: &str,
        target_contains: &str,
        headers: &[&str],
        secret_key: &str,
    ) {
        let how = Alteration {
            strip_headers: headers.iter().map(|h| h.to_ascii_lowercase()).collect(),
            flip_byte: true,
            ..Alteration::default()
        };
        self.alter(method, target_contains, how, secret_key, 1);
    }

    /// The requests altered so far: (method, target, the headers that were there and were
    /// left out). Panics when one could not be altered faithfully (its signature).
    pub(crate) fn altered(&self) -> Vec<(String, String, Vec<String>)> {
        let errors = self
            .state
            .alter_errors
            .lock()
            .map(|e| e.clone())
            .unwrap_or_default();
        assert!(errors.is_empty(), "fault proxy: {errors:?}");
        self.state
            .altered
            .lock()
            .map(|a| a.clone())
            .unwrap_or_default()
    }

    /// How many request bodies were damaged so far.
    pub(crate) fn flipped(&self) -> usize {
        self.state.flipped.load(Ordering::SeqCst)
    }

    /// How many requests got the region redirect so far.
    pub(crate) fn redirects(&self) -> usize {
        self.state.redirects.load(Ordering::SeqCst)
    }

    /// Forwards everything again: no more fault replies nor alterations (those not used yet
    /// are forgotten).
    pub(crate) fn clear(&self) {
        if let Ok(mut rules) = self.state.rules.lock() {
            rules.clear();
        }
        if let Ok(mut alters) = self.state.alters.lock() {
            alters.clear();
        }
    }

    /// How many requests got the fault reply so far.
    pub(crate) fn faults(&self) -> usize {
        self.state.faults.load(Ordering::SeqCst)
    }

    /// How many requests went to the real server so far.
    pub(crate) fn forwarded(&self) -> usize {
        self.state.forwarded.load(Ordering::SeqCst)
    }

    /// The target of every request with `method` whose target contains `target_contains`, in
    /// arrival order.
    pub(crate) fn targets(&self, method: &str, target_contains: &str) -> Vec<String> {
        self.seen(method, target_contains)
            .into_iter()
            .map(|(target, _)| target)
            .collect()
    }

    /// The `x-amz-content-sha256` header (empty when missing) of every request with
    /// `method` whose target contains `target_contains`, in arrival order.
    pub(crate) fn payload_hashes(&self, method: &str, target_contains: &str) -> Vec<String> {
        self.seen(method, target_contains)
            .into_iter()
            .map(|(_, hash)| hash)
            .collect()
    }

    /// (target, `x-amz-content-sha256`) of every request with `method` whose target contains
    /// `target_contains`, in arrival order.
    fn seen(&self, method: &str, target_contains: &str) -> Vec<(String, String)> {
        self.state
            .payload_hashes
            .lock()
            .map(|seen| {
                seen.iter()
                    .filter(|(m, t, _)| m == method && t.contains(target_contains))
                    .map(|(_, t, h)| (t.clone(), h.clone()))
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// The region of a SigV4 `Authorization` header's credential scope
/// (`Credential=AK/DATE/REGION/s3/aws4_request`).
fn signed_region(authorization: &str) -> Option<&str> {
    let scope = authorization.split("Credential=").nth(1)?;
    scope.split(['/', ',']).nth(2)
}

/// True when a rule takes this request (and counts it down).
fn take_fault(state: &State, method: &str, target: &str) -> bool {
    let Ok(mut rules) = state.rules.lock() else {
        return false;
    };
    for rule in rules.iter_mut() {
        if rule.method == method && target.contains(&rule.target_contains) {
            match &mut rule.remaining {
                None => return true,
                Some(0) => continue,
                Some(n) => {
                    *n -= 1;
                    return true;
                }
            }
        }
    }
    false
}

async fn serve(mut client: TcpStream, upstream: SocketAddr, state: &State) -> std::io::Result<()> {
    // Read the request head.
    let mut buf = Vec::with_capacity(8192);
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        if buf.len() > 64 * 1024 {
            return Ok(());
        }
        let mut chunk = [0u8; 8192];
        let n = client.read(&mut chunk).await?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let request_line = lines.next().unwrap_or_default().to_owned();
    let mut parts = request_line.split(' ');
    let method = parts.next().unwrap_or_default().to_owned();
    let target = parts.next().unwrap_or_default().to_owned();
    let headers: Vec<&str> = lines.filter(|l| !l.is_empty()).collect();
    let content_length: usize = headers
        .iter()
        .find_map(|h| {
            let (k, v) = h.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().ok())?
        })
        .unwrap_or(0);

    let header = |name: &str| {
        headers.iter().find_map(|h| {
            let (k, v) = h.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_owned())
        })
    };
    if let Ok(mut seen) = state.payload_hashes.lock() {
        let hash = header("x-amz-content-sha256").unwrap_or_default();
        seen.push((method.clone(), target.clone(), hash));
    }
    let signed = headers
        .iter()
        .find_map(|h| {
            let (k, v) = h.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case("authorization")
                .then(|| signed_region(v.trim()).map(str::to_owned))?
        })
        .unwrap_or_default();
    let wrong_region = state
        .bucket_region
        .lock()
        .ok()
        .and_then(|r| r.clone())
        .filter(|r| *r != signed);
    let reply = if let Some(region) = wrong_region {
        state.redirects.fetch_add(1, Ordering::SeqCst);
        let body = PERMANENT_REDIRECT;
        Some(format!(
            "HTTP/1.1 301 Moved Permanently\r\nContent-Type: application/xml\r\n\
             Content-Length: {}\r\nx-amz-bucket-region: {region}\r\n\
             x-amz-request-id: fault-proxy\r\nConnection: close\r\n\r\n{body}",
            body.len()
        ))
    } else if take_fault(state, &method, &target) {
        state.faults.fetch_add(1, Ordering::SeqCst);
        Some(format!(
            "HTTP/1.1 503 Slow Down\r\nContent-Type: application/xml\r\nContent-Length: {}\r\n\
             x-amz-request-id: fault-proxy\r\nConnection: close\r\n\r\n{SLOW_DOWN}",
            SLOW_DOWN.len()
        ))
    } else {
        None
    };
    if let Some(reply) = reply {
        // Take the body first, as a server does, then refuse.
        let mut left = content_length.saturating_sub(buf.len() - head_end);
        let mut sink = vec![0u8; 64 * 1024];
        while left > 0 {
            let n = client.read(&mut sink[..left.min(64 * 1024)]).await?;
            if n == 0 {
                break;
            }
            left -= n;
        }
        client.write_all(reply.as_bytes()).await?;
        let _ = client.shutdown().await;
        return Ok(());
    }

    let matches = |m: &str, t: &str| m == method && target.contains(t);
    let is_held = || {
        state
            .holds
            .lock()
            .map(|h| h.iter().any(|(m, t)| matches(m, t)))
            .unwrap_or(false)
    };
    if is_held() {
        state.held.fetch_add(1, Ordering::SeqCst);
        while is_held() {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }
    let edit = state.edits.lock().ok().and_then(|edits| {
        edits
            .iter()
            .find(|e| matches(&e.method, &e.target_contains))
            .cloned()
    });

    let alter = state.alters.lock().ok().and_then(|mut alters| {
        alters
            .iter_mut()
            .find(|a| a.remaining > 0 && matches(&a.method, &a.target_contains))
            .map(|a| {
                a.remaining -= 1;
                a.clone()
            })
    });
    if let Some(alter) = alter {
        while buf.len() - head_end < content_length {
            let mut chunk = vec![0u8; 64 * 1024];
            let n = client.read(&mut chunk).await?;
            if n == 0 {
                return Ok(());
            }
            buf.extend_from_slice(&chunk[..n]);
        }
        let body = buf[head_end..head_end + content_length].to_vec();
        let (out, body) = match altered_request(&request_line, &headers, body, &alter) {
            Ok((out, body, stripped)) => {
                if alter.how.flip_byte {
                    state.flipped.fetch_add(1, Ordering::SeqCst);
                }
                if let Ok(mut done) = state.altered.lock() {
                    done.push((method.clone(), target.clone(), stripped));
                }
                (out, body)
            }
            Err(e) => {
                if let Ok(mut errors) = state.alter_errors.lock() {
                    errors.push(format!("{method} {target}: {e}"));
                }
                let refusal = "HTTP/1.1 500 Fault Proxy\r\nContent-Length: 0\r\n\
                               Connection: close\r\n\r\n";
                client.write_all(refusal.as_bytes()).await?;
                return Ok(());
            }
        };
        let mut server = TcpStream::connect(upstream).await?;
        server.write_all(out.as_bytes()).await?;
        server.write_all(&body).await?;
        state.forwarded.fetch_add(1, Ordering::SeqCst);
        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
        return Ok(());
    }

    // Forward: the same head with `Connection: close` (not a signed header), then the rest.
    let mut out = String::with_capacity(head.len() + 24);
    out.push_str(&request_line);
    out.push_str("\r\n");
    for h in &headers {
        let name = h.split(':').next().unwrap_or_default().trim();
        if !name.eq_ignore_ascii_case("connection") {
            out.push_str(h);
            out.push_str("\r\n");
        }
    }
    out.push_str("Connection: close\r\n\r\n");
    let flip = content_length > 0
        && state.flips.lock().is_ok_and(|mut flips| {
            flips
                .iter_mut()
                .find(|(m, t, n)| *n > 0 && matches(m, t))
                .map(|(_, _, n)| *n -= 1)
                .is_some()
        });
    if flip {
        // The whole body, then one bit of its middle byte turned.
        while buf.len() - head_end < content_length {
            let mut chunk = vec![0u8; 64 * 1024];
            let n = client.read(&mut chunk).await?;
            if n == 0 {
                return Ok(());
            }
            buf.extend_from_slice(&chunk[..n]);
        }
        buf[head_end + content_length / 2] ^= 0x01;
        state.flipped.fetch_add(1, Ordering::SeqCst);
    }
    let mut server = TcpStream::connect(upstream).await?;
    server.write_all(out.as_bytes()).await?;
    server.write_all(&buf[head_end..]).await?;
    state.forwarded.fetch_add(1, Ordering::SeqCst);
    match edit {
        None => {
            let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
        }
        Some(edit) => {
            // Only for requests without a body still to come (GET, HEAD): the reply head is
            // read whole, edited, and the body follows unchanged.
            let mut reply = Vec::with_capacity(4096);
            let end = loop {
                if let Some(i) = reply.windows(4).position(|w| w == b"\r\n\r\n") {
                    break i + 4;
                }
                let mut chunk = [0u8; 4096];
                let n = server.read(&mut chunk).await?;
                if n == 0 {
                    return Ok(());
                }
                reply.extend_from_slice(&chunk[..n]);
            };
            let head = String::from_utf8_lossy(&reply[..end]).into_owned();
            let mut lines = head.split("\r\n").filter(|l| !l.is_empty());
            let mut status = lines.next().unwrap_or_default().to_owned();
            if edit.ignore_range && status.contains(" 206 ") {
                status = "HTTP/1.1 200 OK".to_owned();
            }
            let mut out = status + "\r\n";
            for h in lines {
                let name = h.split(':').next().unwrap_or_default().trim();
                if !edit.drop.contains(&name.to_ascii_lowercase()) {
                    out.push_str(h);
                    out.push_str("\r\n");
                }
            }
            out.push_str("\r\n");
            state.edited.fetch_add(1, Ordering::SeqCst);
            client.write_all(out.as_bytes()).await?;
            client.write_all(&reply[end..]).await?;
            let _ = tokio::io::copy(&mut server, &mut client).await;
            let _ = client.shutdown().await;
        }
    }
    Ok(())
}

/// The head (with `Connection: close`) and body of `alter`'s version of a request, signed
/// again, and the headers that were left out. An error when the client's signature cannot be
/// reproduced first (the request is then not one this proxy can sign faithfully).
fn altered_request(
    request_line: &str,
    headers: &[&str],
    mut body: Vec<u8>,
    alter: &Alter,
) -> Result<(String, Vec<u8>, Vec<String>), String> {
    let mut parts = request_line.split(' ');
    let method = parts.next().unwrap_or_default();
    let target = parts.next().unwrap_or_default();
    let mut hs: Vec<(String, String)> = headers
        .iter()
        .filter_map(|h| {
            let (k, v) = h.split_once(':')?;
            Some((k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        })
        .filter(|(k, _)| k != "connection")
        .collect();
    let get = |hs: &[(String, String)], name: &str| {
        hs.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
    };
    let auth = get(&hs, "authorization").ok_or("no Authorization header")?;
    let auth = SigV4::parse(&auth).ok_or_else(|| format!("not a SigV4 Authorization: {auth}"))?;
    let date = get(&hs, "x-amz-date").ok_or("no x-amz-date")?;
    let payload = get(&hs, "x-amz-content-sha256").ok_or("no x-amz-content-sha256")?;
    let again = auth.signature(&alter.secret_key, method, target, &hs, &date, &payload);
    if again != auth.signature {
        return Err("the proxy's SigV4 does not reproduce the client's signature".into());
    }

    // The alteration.
    let stripped: Vec<String> = hs
        .iter()
        .map(|(k, _)| k.clone())
        .filter(|k| alter.how.strip_headers.contains(k))
        .collect();
    hs.retain(|(k, _)| !stripped.contains(k));
    let mut signed = auth.clone();
    signed.signed_headers.retain(|h| !stripped.contains(h));
    let mut body_changed = false;
    for name in &alter.how.strip_elements {
        let (open, close) = (format!("<{name}>"), format!("</{name}>"));
        let mut text = String::from_utf8(body.clone()).map_err(|_| "a body that is not text")?;
        while let Some(start) = text.find(&open) {
            let end = text[start..]
                .find(&close)
                .ok_or_else(|| format!("<{name}> not closed"))?;
            text.replace_range(start..start + end + close.len(), "");
            body_changed = true;
        }
        body = text.into_bytes();
    }
    if alter.how.flip_byte {
        if body.is_empty() {
            return Err("no body to flip a byte of".into());
        }
        let middle = body.len() / 2;
        body[middle] ^= 0x01;
        body_changed = true;
    }
    let mut payload = payload;
    if body_changed {
        for (k, v) in hs.iter_mut() {
            match k.as_str() {
                "content-length" => *v = body.len().to_string(),
                // A signed payload is signed again; UNSIGNED-PAYLOAD stays.
                "x-amz-content-sha256" if v.len() == 64 => {
                    *v = hex(&sha2::Sha256::digest(&body));
                    payload = v.clone();
                }
                "content-md5" => {
                    *v = aws_smithy_types::base64::encode(md5::Md5::digest(&body).as_slice());
                }
                k if alter.how.recompute_checksum && k.starts_with("x-amz-checksum-") => {
                    *v = checksum_of(k, &body)
                        .ok_or_else(|| format!("{k}: an algorithm the proxy does not know"))?;
                }
                _ => {}
            }
        }
    }
    signed.signature = signed.signature(&alter.secret_key, method, target, &hs, &date, &payload);
    for (k, v) in hs.iter_mut() {
        if k == "authorization" {
            *v = signed.header();
        }
    }
    let mut out = format!("{request_line}\r\n");
    for (k, v) in &hs {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    out.push_str("Connection: close\r\n\r\n");
    Ok((out, body, stripped))
}

/// A SigV4 `Authorization` header's parts.
#[derive(Debug, Clone)]
struct SigV4 {
    /// `AK/DATE/REGION/SERVICE/aws4_request`.
    credential: String,
    signed_headers: Vec<String>,
    signature: String,
}

impl SigV4 {
    fn parse(header: &str) -> Option<SigV4> {
        let rest = header.strip_prefix("AWS4-HMAC-SHA256")?;
        let field = |name: &str| {
            rest.split(',')
                .find_map(|f| f.trim().strip_prefix(name)?.strip_prefix('='))
                .map(str::to_owned)
        };
        Some(SigV4 {
            credential: field("Credential")?,
            signed_headers: field("SignedHeaders")?
                .split(';')
                .map(str::to_owned)
                .collect(),
            signature: field("Signature")?,
        })
    }

    fn header(&self) -> String {
        format!(
            "AWS4-HMAC-SHA256 Credential={}, SignedHeaders={}, Signature={}",
            self.credential,
            self.signed_headers.join(";"),
            self.signature
        )
    }

    /// The signature of a request with these signed headers (values from `headers`).
    fn signature(
        &self,
        secret_key: &str,
        method: &str,
        target: &str,
        headers: &[(String, String)],
        amz_date: &str,
        payload_hash: &str,
    ) -> String {
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        let mut params: Vec<String> = query
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|p| {
                if p.contains('=') {
                    p.to_owned()
                } else {
                    format!("{p}=")
                }
            })
            .collect();
        params.sort();
        let mut canonical_headers = String::new();
        for name in &self.signed_headers {
            let values: Vec<String> = headers
                .iter()
                .filter(|(k, _)| k == name)
                .map(|(_, v)| v.split_whitespace().collect::<Vec<_>>().join(" "))
                .collect();
            canonical_headers.push_str(&format!("{name}:{}\n", values.join(",")));
        }
        let canonical = format!(
            "{method}\n{path}\n{}\n{canonical_headers}\n{}\n{payload_hash}",
            params.join("&"),
            self.signed_headers.join(";")
        );
        let scope = self
            .credential
            .split_once('/')
            .map_or("", |(_, scope)| scope);
        let mut fields = scope.split('/');
        let (day, region, service) = (
            fields.next().unwrap_or_default(),
            fields.next().unwrap_or_default(),
            fields.next().unwrap_or_default(),
        );
        let to_sign = format!(
            "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
            hex(&sha2::Sha256::digest(canonical.as_bytes()))
        );
        let mut key = hmac_sha256(format!("AWS4{secret_key}").as_bytes(), day.as_bytes());
        for part in [region, service, "aws4_request"] {
            key = hmac_sha256(&key, part.as_bytes());
        }
        hex(&hmac_sha256(&key, to_sign.as_bytes()))
    }
}

/// The value of checksum header `name` (`x-amz-checksum-crc32c`…) for `body`: base64 of the
/// big-endian digest.
fn checksum_of(name: &str, body: &[u8]) -> Option<String> {
    use crc_fast::CrcAlgorithm;
    let crc32 = |algo| {
        (crc_fast::checksum(algo, body) as u32)
            .to_be_bytes()
            .to_vec()
    };
    let digest = match name.strip_prefix("x-amz-checksum-")? {
        "crc32" => crc32(CrcAlgorithm::Crc32IsoHdlc),
        "crc32c" => crc32(CrcAlgorithm::Crc32Iscsi),
        "crc64nvme" => crc_fast::checksum(CrcAlgorithm::Crc64Nvme, body)
            .to_be_bytes()
            .to_vec(),
        "sha1" => sha1::Sha1::digest(body).to_vec(),
        "sha256" => sha2::Sha256::digest(body).to_vec(),
        _ => return None,
    };
    Some(aws_smithy_types::base64::encode(&digest))
}

/// HMAC-SHA256 (RFC 2104).
fn hmac_sha256(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut block = [0u8; 64];
    if key.len() > 64 {
        block[..32].copy_from_slice(&sha2::Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let mut inner = sha2::Sha256::new();
    inner.update(block.map(|b| b ^ 0x36));
    inner.update(data);
    let mut outer = sha2::Sha256::new();
    outer.update(block.map(|b| b ^ 0x5c));
    outer.update(inner.finalize());
    outer.finalize().to_vec()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
