//! The contract between BucketFTP's control-connection relay and libunftp, checked against
//! libunftp alone: no relay, no S3, a small in-memory storage back-end and a one-user
//! authenticator written here, one accepted TCP connection handed to `Server::service` as
//! `server.rs` does, and a raw socket on the other end.
//!
//! The relay (`gateway/src/ftp/relay/mod.rs`, `gateway/src/ftp/relay/wire.rs`) reads libunftp's replies
//! and rewrites some of them by their exact code, shape and text: the `257` of PWD and MKD, the
//! MLST entry line, the `MLST` line of FEAT, the `227`/`229` ports, the `226` texts that answer
//! ABOR, the `213` of `SITE MD5` (which the relay sends for HASH and the `X…` hash commands)
//! and the `SITE MD5` line of FEAT. A libunftp upgrade that changes any of these fails here first, in a test that names
//! what it broke; each assertion message names the relay code that depends on it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use gateway::ftp::relay::wire::{self, ReplyAssembler};
use gateway::ftp::text::Facts;
use gateway::storage::hash::{HashAlgo, HashAnswer};
use libunftp::ServerBuilder;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use unftp_core::auth::{
    AuthenticationError, Authenticator, Credentials, Principal, UserDetail, UserDetailError,
    UserDetailProvider,
};
use unftp_core::storage::{self as ftp, Fileinfo, StorageBackend};

const GREETING: &str = "Contract test ready";
const USER: &str = "alice";
const PASSWORD: &str = "wonderland";
/// The most any single step may take: a reply, a data connection's end, a storage call.
const WAIT: Duration = Duration::from_secs(20);
/// Every file's modification time: 2024-01-02 03:04:05 UTC.
const MODIFIED_SECS: u64 = 1_704_164_645;

// ---------------------------------------------------------------------------------------------
// The in-memory storage back-end.

/// Everything stored, shared by the test and every back-end libunftp makes.
#[derive(Debug, Default)]
struct Store {
    files: Mutex<BTreeMap<PathBuf, Vec<u8>>>,
    folders: Mutex<BTreeSet<PathBuf>>,
    /// Counts `get` and `put` calls as they begin, so a test can wait for a transfer to be
    /// running (rather than sleep).
    gets: watch::Sender<u32>,
    puts: watch::Sender<u32>,
    /// The back-end reports `FEATURE_SITEMD5` (as BucketFTP's does).
    site_md5: bool,
}

impl Store {
    fn put_file(&self, path: &str, bytes: &[u8]) {
        self.files
            .lock()
            .unwrap()
            .insert(PathBuf::from(path), bytes.to_vec());
    }

    fn file(&self, path: &str) -> Option<Vec<u8>> {
        self.files.lock().unwrap().get(Path::new(path)).cloned()
    }

    fn has_folder(&self, path: &str) -> bool {
        self.folders.lock().unwrap().contains(Path::new(path))
    }
}

/// What the back-end's `md5()` answers for a file of `len` bytes: a hash command's answer, as
/// BucketFTP's back-end gives it when the relay asked for one (the digest is made up: only
/// the shape matters here).
fn hash_answer(len: u64) -> HashAnswer {
    HashAnswer {
        algo: HashAlgo::Sha256,
        size: len,
        hex: "ab".repeat(32),
    }
}

/// A path as stored: absolute (libunftp passes most paths joined to the working directory,
/// MLST's argument as typed).
fn key(path: &Path) -> PathBuf {
    Path::new("/").join(path)
}

#[derive(Debug, Clone)]
struct Meta {
    len: u64,
    dir: bool,
}

impl ftp::Metadata for Meta {
    fn len(&self) -> u64 {
        self.len
    }
    fn is_dir(&self) -> bool {
        self.dir
    }
    fn is_file(&self) -> bool {
        !self.dir
    }
    fn is_symlink(&self) -> bool {
        false
    }
    fn modified(&self) -> ftp::Result<SystemTime> {
        Ok(SystemTime::UNIX_EPOCH + Duration::from_secs(MODIFIED_SECS))
    }
    fn gid(&self) -> u32 {
        0
    }
    fn uid(&self) -> u32 {
        0
    }
}

#[derive(Debug)]
struct MemBackend {
    store: Arc<Store>,
}

fn not_found() -> ftp::Error {
    ftp::Error::from(ftp::ErrorKind::PermanentFileNotAvailable)
}

#[async_trait]
impl StorageBackend<TestUser> for MemBackend {
    type Metadata = Meta;

    fn supported_features(&self) -> u32 {
        if self.store.site_md5 {
            ftp::FEATURE_SITEMD5
        } else {
            0
        }
    }

    async fn md5<P: AsRef<Path> + Send + fmt::Debug>(
        &self,
        _user: &TestUser,
        path: P,
    ) -> ftp::Result<String> {
        let len = self
            .store
            .files
            .lock()
            .unwrap()
            .get(&key(path.as_ref()))
            .map(|bytes| bytes.len() as u64)
            .ok_or_else(not_found)?;
        Ok(hash_answer(len).to_wire())
    }

    async fn metadata<P: AsRef<Path> + Send + fmt::Debug>(
        &self,
        _user: &TestUser,
        path: P,
    ) -> ftp::Result<Meta> {
        let path = key(path.as_ref());
        if path == Path::new("/") || self.store.folders.lock().unwrap().contains(&path) {
            return Ok(Meta { len: 0, dir: true });
        }
        match self.store.files.lock().unwrap().get(&path) {
            Some(bytes) => Ok(Meta {
                len: bytes.len() as u64,
                dir: false,
            }),
            None => Err(not_found()),
        }
    }

    async fn list<P: AsRef<Path> + Send + fmt::Debug>(
        &self,
        _user: &TestUser,
        path: P,
    ) -> ftp::Result<Vec<Fileinfo<PathBuf, Meta>>> {
        let dir = key(path.as_ref());
        let mut out = Vec::new();
        for folder in self.store.folders.lock().unwrap().iter() {
            if folder.parent() == Some(dir.as_path()) {
                out.push(Fileinfo {
                    path: folder.clone(),
                    metadata: Meta { len: 0, dir: true },
                });
            }
        }
        for (file, bytes) in self.store.files.lock().unwrap().iter() {
            if file.parent() == Some(dir.as_path()) {
                out.push(Fileinfo {
                    path: file.clone(),
                    metadata: Meta {
                        len: bytes.len() as u64,
                        dir: false,
                    },
                });
            }
        }
        Ok(out)
    }

    async fn get<P: AsRef<Path> + Send + fmt::Debug>(
        &self,
        _user: &TestUser,
        path: P,
        start_pos: u64,
    ) -> ftp::Result<Box<dyn AsyncRead + Send + Sync + Unpin>> {
        self.store.gets.send_modify(|n| *n += 1);
        let bytes = self
            .store
            .files
            .lock()
            .unwrap()
            .get(&key(path.as_ref()))
            .cloned()
            .ok_or_else(not_found)?;
        let start = usize::try_from(start_pos)
            .unwrap_or(usize::MAX)
            .min(bytes.len());
        Ok(Box::new(io::Cursor::new(bytes[start..].to_vec())))
    }

    async fn put<
        P: AsRef<Path> + Send + fmt::Debug,
        R: AsyncRead + Send + Sync + Unpin + 'static,
    >(
        &self,
        _user: &TestUser,
        mut input: R,
        path: P,
        _start_pos: u64,
    ) -> ftp::Result<u64> {
        self.store.puts.send_modify(|n| *n += 1);
        let mut bytes = Vec::new();
        input.read_to_end(&mut bytes).await?;
        let len = bytes.len() as u64;
        self.store
            .files
            .lock()
            .unwrap()
            .insert(key(path.as_ref()), bytes);
        Ok(len)
    }

    async fn del<P: AsRef<Path> + Send + fmt::Debug>(
        &self,
        _user: &TestUser,
        path: P,
    ) -> ftp::Result<()> {
        match self.store.files.lock().unwrap().remove(&key(path.as_ref())) {
            Some(_) => Ok(()),
            None => Err(not_found()),
        }
    }

    async fn mkd<P: AsRef<Path> + Send + fmt::Debug>(
        &self,
        _user: &TestUser,
        path: P,
    ) -> ftp::Result<()> {
        self.store
            .folders
            .lock()
            .unwrap()
            .insert(key(path.as_ref()));
        Ok(())
    }

    async fn rename<P: AsRef<Path> + Send + fmt::Debug>(
        &self,
        _user: &TestUser,
        from: P,
        to: P,
    ) -> ftp::Result<()> {
        let mut files = self.store.files.lock().unwrap();
        let bytes = files.remove(&key(from.as_ref())).ok_or_else(not_found)?;
        files.insert(key(to.as_ref()), bytes);
        Ok(())
    }

    async fn rmd<P: AsRef<Path> + Send + fmt::Debug>(
        &self,
        _user: &TestUser,
        path: P,
    ) -> ftp::Result<()> {
        if self
            .store
            .folders
            .lock()
            .unwrap()
            .remove(&key(path.as_ref()))
        {
            Ok(())
        } else {
            Err(ftp::ErrorKind::PermanentDirectoryNotAvailable.into())
        }
    }

    async fn cwd<P: AsRef<Path> + Send + fmt::Debug>(
        &self,
        _user: &TestUser,
        path: P,
    ) -> ftp::Result<()> {
        let path = key(path.as_ref());
        if path == Path::new("/") || self.store.folders.lock().unwrap().contains(&path) {
            Ok(())
        } else {
            Err(ftp::ErrorKind::PermanentDirectoryNotAvailable.into())
        }
    }
}

// ---------------------------------------------------------------------------------------------
// One user, one password.

#[derive(Debug, Clone, PartialEq, Eq)]
struct TestUser(String);

impl fmt::Display for TestUser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl UserDetail for TestUser {}

#[derive(Debug)]
struct TestUsers;

#[async_trait]
impl UserDetailProvider for TestUsers {
    type User = TestUser;

    async fn provide_user_detail(
        &self,
        principal: &Principal,
    ) -> Result<TestUser, UserDetailError> {
        Ok(TestUser(principal.username.clone()))
    }
}

#[derive(Debug)]
struct OneUser;

#[async_trait]
impl Authenticator for OneUser {
    async fn authenticate(
        &self,
        username: &str,
        creds: &Credentials,
    ) -> Result<Principal, AuthenticationError> {
        if username != USER {
            return Err(AuthenticationError::BadUser);
        }
        if creds.password.as_deref() != Some(PASSWORD) {
            return Err(AuthenticationError::BadPassword);
        }
        Ok(Principal {
            username: username.to_owned(),
        })
    }
}

/// `server.rs`'s `AnyLoopbackPort`: passive listeners on any free port of the control
/// connection's local address.
#[derive(Debug)]
struct AnyLoopbackPort;

#[async_trait]
impl libunftp::options::Binder for AnyLoopbackPort {
    async fn bind(&mut self, local: IpAddr, _ports: RangeInclusive<u16>) -> io::Result<TcpSocket> {
        let socket = match local {
            IpAddr::V4(_) => TcpSocket::new_v4()?,
            IpAddr::V6(_) => TcpSocket::new_v6()?,
        };
        socket.bind(SocketAddr::new(local, 0))?;
        Ok(socket)
    }
}

// ---------------------------------------------------------------------------------------------
// The server: one connection, served the way `server.rs` serves it.

/// A rustls configuration with a fresh self-signed certificate (for FEAT's FTPS lines only:
/// no TLS is spoken here; in BucketFTP the relay does all TLS, see `serve_admitted`).
fn tls_config() -> Arc<rustls::ServerConfig> {
    let generated = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let cert = generated.cert.der().clone();
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(rustls::pki_types::PrivatePkcs8KeyDer::from(
        generated.signing_key.serialize_der(),
    ));
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert], key)
        .unwrap();
    Arc::new(config)
}

struct Served {
    client: Client,
    store: Arc<Store>,
    server: JoinHandle<()>,
}

/// libunftp serving one connection from a client on 127.0.0.1, with FTPS configured or not.
async fn serve(tls: Option<Arc<rustls::ServerConfig>>) -> Served {
    serve_store(tls, Store::default()).await
}

/// The same, with this store (and the features it says the back-end has).
async fn serve_store(tls: Option<Arc<rustls::ServerConfig>>, store: Store) -> Served {
    let store = Arc::new(store);
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let shared = store.clone();
    let server = tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        let builder = ServerBuilder::<MemBackend, TestUser>::with_user_detail_provider(
            Box::new(move || MemBackend {
                store: shared.clone(),
            }),
            Arc::new(TestUsers),
        )
        .authenticator(Arc::new(OneUser))
        .greeting(GREETING)
        .idle_session_timeout(60)
        .sitemd5(libunftp::options::SiteMd5::Accounts)
        .binder(AnyLoopbackPort);
        let builder = match tls {
            Some(config) => builder.ftps_manual::<PathBuf>(config),
            None => builder,
        };
        let server = builder
            .build()
            .expect("libunftp builds as server.rs builds it");
        server
            .service(stream)
            .await
            .expect("the session ends cleanly");
    });
    let stream = TcpStream::connect(addr).await.unwrap();
    Served {
        client: Client::new(stream),
        store,
        server,
    }
}

impl Served {
    /// Reads the greeting and logs in.
    async fn logged_in(tls: Option<Arc<rustls::ServerConfig>>) -> Served {
        let mut s = serve(tls).await;
        let greeting = s.client.reply().await;
        assert_eq!(greeting.code, 220, "{greeting:?}");
        s.client.login().await;
        s
    }

    /// QUIT, and libunftp's session ends.
    async fn quit(mut self) {
        let bye = self.client.cmd("QUIT").await;
        assert_eq!(bye.code, 221, "QUIT: {bye:?}");
        tokio::time::timeout(WAIT, self.server)
            .await
            .expect("the session ends after QUIT")
            .unwrap();
    }
}

// ---------------------------------------------------------------------------------------------
// The raw client.

/// One reply as it came: the code and every line without its CRLF.
#[derive(Debug, Clone)]
struct Reply {
    code: u16,
    lines: Vec<String>,
}

impl Reply {
    /// The text of the last line, after `ddd `.
    fn text(&self) -> &str {
        self.lines.last().and_then(|l| l.get(4..)).unwrap_or("")
    }

    fn is_multiline(&self) -> bool {
        self.lines.len() > 1
    }
}

struct Client {
    rd: BufReader<OwnedReadHalf>,
    wr: OwnedWriteHalf,
    local_ip: IpAddr,
}

impl Client {
    fn new(stream: TcpStream) -> Client {
        let local_ip = stream.local_addr().unwrap().ip();
        let (rd, wr) = stream.into_split();
        Client {
            rd: BufReader::new(rd),
            wr,
            local_ip,
        }
    }

    async fn send_raw(&mut self, bytes: &[u8]) {
        self.wr.write_all(bytes).await.unwrap();
    }

    async fn send(&mut self, line: &str) {
        self.send_raw(format!("{line}\r\n").as_bytes()).await;
    }

    async fn cmd(&mut self, line: &str) -> Reply {
        self.send(line).await;
        self.reply().await
    }

    /// The next complete reply (all lines of a multi-line one). Every line must end with CRLF,
    /// and the relay's own `wire::ReplyAssembler` must see the same bytes as exactly this one
    /// reply (the relay pairs replies with commands by it).
    async fn reply(&mut self) -> Reply {
        let mut raw = Vec::new();
        let mut lines = Vec::new();
        let mut open: Option<String> = None;
        loop {
            let mut line = Vec::new();
            let n = tokio::time::timeout(WAIT, self.rd.read_until(b'\n', &mut line))
                .await
                .unwrap_or_else(|_| panic!("no reply within {WAIT:?}; so far {lines:?}"))
                .unwrap();
            assert!(n > 0, "the control connection closed; so far {lines:?}");
            raw.extend_from_slice(&line);
            assert!(
                line.ends_with(b"\r\n"),
                "libunftp ends reply lines with CRLF (wire::ReplyAssembler, rewrites write CRLF): {line:?}"
            );
            let text = String::from_utf8(line[..line.len() - 2].to_vec()).unwrap();
            let code = text
                .get(..3)
                .filter(|c| c.bytes().all(|b| b.is_ascii_digit()));
            let sep = text.as_bytes().get(3).copied();
            lines.push(text.clone());
            match (&open, code) {
                (None, Some(c)) if sep == Some(b'-') => open = Some(c.to_owned()),
                (None, Some(_)) => break,
                (None, None) => panic!("a reply line without a code: {text:?}"),
                (Some(o), Some(c)) if c == o && sep == Some(b' ') => break,
                (Some(_), _) => {}
            }
        }
        let code: u16 = lines[0][..3].parse().unwrap();
        let assembled = ReplyAssembler::default().push(&raw);
        assert_eq!(
            assembled.len(),
            1,
            "wire::ReplyAssembler must read libunftp's reply {lines:?} as one reply"
        );
        assert_eq!(
            assembled[0].code, code,
            "wire::ReplyAssembler's code: {lines:?}"
        );
        assert_eq!(
            assembled[0].lines.len(),
            lines.len(),
            "wire::ReplyAssembler's lines: {lines:?}"
        );
        Reply { code, lines }
    }

    async fn login(&mut self) {
        let user = self.cmd(&format!("USER {USER}")).await;
        assert_eq!(user.code, 331, "USER: {user:?}");
        let pass = self.cmd(&format!("PASS {PASSWORD}")).await;
        assert_eq!(
            pass.code, 230,
            "PASS: the relay takes `230` as the login (answer_from_libunftp sets user and cwd): {pass:?}"
        );
    }

    /// EPSV, and the port it names (parsed by the relay's own `wire::parse_229`).
    async fn epsv(&mut self) -> u16 {
        let reply = self.cmd("EPSV").await;
        assert_eq!(reply.code, 229, "EPSV: {reply:?}");
        assert!(!reply.is_multiline(), "EPSV: {reply:?}");
        wire::parse_229(reply.text()).unwrap_or_else(|| {
            panic!("relay_passive parses EPSV's reply with wire::parse_229: {reply:?}")
        })
    }

    /// A data connection to libunftp's passive `port` (on the control connection's address),
    /// from `source`.
    async fn data_from(&self, source: Ipv4Addr, port: u16) -> io::Result<TcpStream> {
        let socket = TcpSocket::new_v4()?;
        socket.bind(SocketAddr::new(IpAddr::V4(source), 0))?;
        socket.connect(SocketAddr::new(self.local_ip, port)).await
    }
}

/// Reads a data connection to its end (an error after some bytes counts as an end).
async fn read_to_end(stream: &mut TcpStream) -> (Vec<u8>, io::Result<()>) {
    let mut out = Vec::new();
    let result = tokio::time::timeout(WAIT, stream.read_to_end(&mut out))
        .await
        .expect("the data connection ends in time")
        .map(|_| ());
    (out, result)
}

/// Waits until `counter` passes `past` (a storage call began).
async fn wait_past(counter: &watch::Sender<u32>, past: u32) {
    let mut rx = counter.subscribe();
    tokio::time::timeout(WAIT, rx.wait_for(|n| *n > past))
        .await
        .expect("the storage call begins in time")
        .unwrap();
}

fn is_abor_text(text: &str) -> bool {
    matches!(text, "Closed data channel" | "Data channel already closed")
}

// ---------------------------------------------------------------------------------------------
// The contract.

/// Greeting, login, PWD/MKD/CWD/CDUP, and pipelined commands.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn greeting_login_paths_and_pipelining() {
    let mut s = serve(None).await;
    let c = &mut s.client;

    // 1. The greeting.
    let greeting = c.reply().await;
    assert_eq!(
        greeting.lines,
        [format!("220 {GREETING}")],
        "libunftp's greeting is `220 <greeting>` (the relay's first pending reply is the greeting)"
    );

    // 2. Login: a bad password, then the good one.
    let user = c.cmd(&format!("USER {USER}")).await;
    assert_eq!(user.code, 331, "USER: {user:?}");
    let bad = c.cmd("PASS not-the-password").await;
    assert_eq!(
        bad.code, 530,
        "a refused PASS is 530 (the relay passes it on; only 230 marks a login): {bad:?}"
    );
    c.login().await;

    // 3. PWD: single-line 257 with the path quoted, which wire::rewrite_257 reads.
    let pwd = c.cmd("PWD").await;
    assert_eq!(pwd.code, 257, "PWD: {pwd:?}");
    assert!(
        !pwd.is_multiline(),
        "the relay rewrites only single-line 257 replies (answer_from_libunftp): {pwd:?}"
    );
    assert!(
        pwd.text().starts_with("\"/\""),
        "wire::rewrite_257 reads PWD's path between the first and the last quote: {pwd:?}"
    );
    assert_eq!(
        wire::rewrite_257(pwd.text()),
        "257 \"/\" is the current directory\r\n",
        "wire::rewrite_257 on libunftp's PWD reply {pwd:?}"
    );

    // MKD: single-line 257 with the new folder's path, NOT quoted (libunftp 0.24: `257 /dir`);
    // wire::rewrite_257 quotes it.
    let mkd = c.cmd("MKD dir").await;
    assert_eq!(mkd.code, 257, "MKD: {mkd:?}");
    assert!(
        !mkd.is_multiline(),
        "the relay rewrites only single-line 257 replies: {mkd:?}"
    );
    assert_eq!(
        mkd.text(),
        "/dir",
        "libunftp's MKD reply is `257 <absolute path>` unquoted; wire::rewrite_257 takes a text \
         not starting with a quote for MKD's"
    );
    assert_eq!(
        wire::rewrite_257(mkd.text()),
        "257 \"/dir\" created\r\n",
        "wire::rewrite_257 on libunftp's MKD reply {mkd:?}"
    );
    assert!(
        s.store.has_folder("/dir"),
        "MKD reached the storage back-end"
    );

    // 4. CWD and CDUP: the relay tracks the working directory on 250 (CWD), 200/250 (CDUP).
    let cwd = c.cmd("CWD dir").await;
    assert_eq!(
        cwd.code, 250,
        "the relay follows CWD only on a 250 (answer_from_libunftp): {cwd:?}"
    );
    let pwd = c.cmd("PWD").await;
    assert_eq!(pwd.lines, ["257 \"/dir\""], "PWD after CWD: {pwd:?}");
    let cdup = c.cmd("CDUP").await;
    assert!(
        matches!(cdup.code, 200 | 250),
        "the relay follows CDUP only on a 200 or 250: {cdup:?}"
    );
    let pwd = c.cmd("PWD").await;
    assert_eq!(pwd.lines, ["257 \"/\""], "PWD after CDUP: {pwd:?}");
    let missing = c.cmd("CWD nowhere").await;
    assert_eq!(missing.code, 550, "CWD to a missing folder: {missing:?}");

    // 11. Pipelined commands: one final reply each, in order (the relay pairs replies with
    // its queue of pending commands in order).
    c.send_raw(b"NOOP\r\nPWD\r\nTYPE I\r\nNOOP\r\n").await;
    let mut codes = Vec::new();
    for _ in 0..4 {
        codes.push(c.reply().await.code);
    }
    assert_eq!(
        codes,
        [200, 257, 200, 200],
        "pipelined NOOP, PWD, TYPE I, NOOP: one final reply each, in order"
    );

    s.quit().await;
}

/// FEAT, without and with FTPS configured.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn feat_lists_mlst_and_the_ftps_commands() {
    // 5. Without FTPS.
    let mut s = Served::logged_in(None).await;
    let feat = s.client.cmd("FEAT").await;
    assert_eq!(feat.code, 211, "FEAT: {feat:?}");
    assert!(feat.is_multiline(), "FEAT is a multi-line 211: {feat:?}");
    assert_eq!(
        feat.lines.iter().filter(|l| l.trim() == "MLST").count(),
        1,
        "the relay replaces the FEAT line whose trimmed text is exactly `MLST` with its own \
         facts line (answer_from_libunftp, Facts::feat_line): {feat:?}"
    );
    for ftps in ["AUTH TLS", "PBSZ", "PROT"] {
        assert!(
            !feat.lines.iter().any(|l| l.trim() == ftps),
            "without FTPS, FEAT does not list {ftps}: {feat:?}"
        );
    }
    s.quit().await;

    // With FTPS: server.rs hands libunftp the TLS configuration (`ftps_manual`) only so that
    // FEAT lists AUTH TLS, PBSZ and PROT and PBSZ is answered; the relay does all TLS.
    let mut s = Served::logged_in(Some(tls_config())).await;
    let feat = s.client.cmd("FEAT").await;
    assert_eq!(feat.code, 211, "FEAT: {feat:?}");
    for line in ["MLST", "AUTH TLS", "PBSZ", "PROT"] {
        assert!(
            feat.lines.iter().any(|l| l.trim() == line),
            "with ftps_manual, FEAT lists `{line}` (server.rs relies on this for FEAT): {feat:?}"
        );
    }
    let pbsz = s.client.cmd("PBSZ 0").await;
    assert_eq!(
        pbsz.code, 200,
        "PBSZ goes to libunftp, which answers it (server.rs): {pbsz:?}"
    );
    s.quit().await;
}

/// MLST's reply shape.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mlst_reply_has_its_entry_line() {
    let mut s = Served::logged_in(None).await;
    s.store.put_file("/hello.txt", b"hello");

    // 6. The relay sends MLST an absolute path (libunftp does not apply the working directory
    // to MLST's argument; Relay::before_forward).
    let mlst = s.client.cmd("MLST /hello.txt").await;
    assert_eq!(mlst.code, 250, "MLST: {mlst:?}");
    assert!(
        mlst.lines.len() >= 3,
        "the relay rewrites MLST replies of at least 3 lines (answer_from_libunftp): {mlst:?}"
    );
    let entries: Vec<&String> = mlst.lines.iter().filter(|l| l.starts_with(' ')).collect();
    assert_eq!(
        entries.len(),
        1,
        "the relay rewrites every MLST line starting with a space as the entry line \
         (wire::rewrite_mlst_entry): exactly one such line: {mlst:?}"
    );
    assert_eq!(
        entries[0].as_str(),
        " type=file;size=5;modify=20240102030405; /hello.txt",
        "the MLST entry line: ` facts path`, the path as sent: {mlst:?}"
    );
    assert_eq!(
        wire::rewrite_mlst_entry(entries[0], Facts::TYPE),
        " type=file; /hello.txt\r\n",
        "wire::rewrite_mlst_entry keeps only the selected facts of libunftp's line"
    );
    assert_eq!(
        wire::rewrite_mlst_entry(entries[0], Facts::ALL),
        format!("{}\r\n", entries[0]),
        "wire::rewrite_mlst_entry with every fact selected leaves libunftp's line as it is"
    );

    let folder = s.client.cmd("MLST /").await;
    assert_eq!(folder.code, 250, "MLST /: {folder:?}");
    assert!(
        folder.lines.iter().any(|l| l.starts_with(" type=dir;")),
        "MLST of a folder: {folder:?}"
    );

    // 12 (MLST's share). A missing path: a 550 whose text libunftp takes from the storage
    // error's Display.
    let missing = s.client.cmd("MLST /missing").await;
    assert_eq!(missing.code, 550, "MLST of a missing path: {missing:?}");
    assert_eq!(
        missing.lines,
        ["550 storage error: 550 Permanent file not available"],
        "MLST of a missing path"
    );
    s.quit().await;
}

/// PASV and EPSV replies, transfers both ways, and a storage error during RETR.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passive_replies_transfers_and_storage_errors() {
    let mut s = Served::logged_in(None).await;
    let body: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    s.store.put_file("/data.bin", &body);
    let c = &mut s.client;

    // 7. PASV: `227 Entering Passive Mode (h1,h2,h3,h4,p1,p2)`, read by wire::parse_227.
    let pasv = c.cmd("PASV").await;
    assert_eq!(pasv.code, 227, "PASV: {pasv:?}");
    assert!(
        pasv.text().starts_with("Entering Passive Mode ("),
        "PASV's text: {pasv:?}"
    );
    let addr = wire::parse_227(pasv.text()).unwrap_or_else(|| {
        panic!("relay_passive parses PASV's reply with wire::parse_227: {pasv:?}")
    });
    assert_eq!(
        addr.ip(),
        IpAddr::V4(Ipv4Addr::LOCALHOST),
        "PASV names the control connection's local address (the relay connects to \
         libunftp's inner address and port): {pasv:?}"
    );

    // 9. RETR over the PASV port: 150, the bytes, 226.
    let mut data = c.data_from(Ipv4Addr::LOCALHOST, addr.port()).await.unwrap();
    let retr = c.cmd("RETR data.bin").await;
    assert_eq!(retr.code, 150, "RETR: {retr:?}");
    let (got, end) = read_to_end(&mut data).await;
    end.unwrap();
    assert!(
        got == body,
        "RETR delivered {} of {} bytes",
        got.len(),
        body.len()
    );
    let done = c.reply().await;
    assert_eq!(
        done.code, 226,
        "a finished RETR is 226 (the relay waits for delivery on a 2xx to a download): {done:?}"
    );

    // 7. EPSV: `229 Entering Extended Passive Mode (|||port|)`, read by wire::parse_229.
    let port = c.epsv().await;

    // 9. STOR over the EPSV port: 150, the bytes, 226, and the file holds them.
    let mut data = c.data_from(Ipv4Addr::LOCALHOST, port).await.unwrap();
    let stor = c.cmd("STOR up.bin").await;
    assert_eq!(stor.code, 150, "STOR: {stor:?}");
    data.write_all(&body).await.unwrap();
    data.shutdown().await.unwrap();
    drop(data);
    let done = c.reply().await;
    assert_eq!(done.code, 226, "a finished STOR is 226: {done:?}");
    assert!(
        s.store.file("/up.bin").as_deref() == Some(&body[..]),
        "STOR stored the bytes sent"
    );

    // 12. A storage error: RETR of a missing file. libunftp says 150 first (it has a data
    // connection), then the storage error's code; the relay passes the code on (putting its
    // own reason line in front when it has one).
    let port = c.epsv().await;
    let mut data = c.data_from(Ipv4Addr::LOCALHOST, port).await.unwrap();
    let retr = c.cmd("RETR missing.bin").await;
    assert_eq!(
        retr.code, 150,
        "RETR of a missing file starts as any RETR: {retr:?}"
    );
    let (got, _) = read_to_end(&mut data).await;
    assert!(got.is_empty(), "no data for a missing file");
    let failed = c.reply().await;
    assert_eq!(
        failed.lines,
        ["550 File not found"],
        "a PermanentFileNotAvailable storage error during RETR"
    );

    // RETR with no passive connection set up: 425.
    let retr = c.cmd("RETR data.bin").await;
    assert_eq!(
        retr.lines,
        ["425 No data connection established"],
        "RETR without PASV/EPSV"
    );

    s.quit().await;
}

/// 8. libunftp accepts a passive data connection only from its control connection's peer
/// address. The relay connects to libunftp's passive port from the same loopback address as
/// its control connection (relay::inner_address, data::open's target).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passive_port_serves_only_the_control_peer_address() {
    let mut s = Served::logged_in(None).await;
    s.store.put_file("/data.bin", b"the payload");
    let c = &mut s.client;

    let port = c.epsv().await;
    // Another loopback address (Linux routes all of 127/8 to lo).
    let mut stranger = c
        .data_from(Ipv4Addr::new(127, 0, 0, 2), port)
        .await
        .expect("the passive port accepts the TCP connection from 127.0.0.2");
    let (got, _) = read_to_end(&mut stranger).await;
    assert!(
        got.is_empty(),
        "libunftp closes a data connection from another address without sending anything"
    );
    // libunftp accepts once per PASV/EPSV: after the stranger, the port is gone. A
    // connection from the right address made before the listener closed is never served
    // either (it ends without data); poll until the port refuses.
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        match c.data_from(Ipv4Addr::LOCALHOST, port).await {
            Err(e) => {
                assert_eq!(
                    e.kind(),
                    io::ErrorKind::ConnectionRefused,
                    "after a connection from another address, libunftp's passive port is closed"
                );
                break;
            }
            Ok(mut late) => {
                let (got, _) = read_to_end(&mut late).await;
                assert!(
                    got.is_empty(),
                    "a connection after the stranger is not served"
                );
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the passive port did not close"
        );
        tokio::task::yield_now().await;
    }
    // A transfer command after that gets its 150 and then nothing: no data loop runs. The next
    // reply is NOOP's.
    let retr = c.cmd("RETR data.bin").await;
    assert_eq!(
        retr.lines,
        ["150 Sending data"],
        "RETR after the stranger: {retr:?}"
    );
    let noop = c.cmd("NOOP").await;
    assert_eq!(
        noop.code, 200,
        "RETR whose data connection was refused has no final reply before NOOP's: {noop:?}"
    );

    // The same from 127.0.0.1, the control connection's address, on a new EPSV: served.
    let port = c.epsv().await;
    let mut data = c.data_from(Ipv4Addr::LOCALHOST, port).await.unwrap();
    let retr = c.cmd("RETR data.bin").await;
    assert_eq!(retr.code, 150, "RETR: {retr:?}");
    let (got, end) = read_to_end(&mut data).await;
    end.unwrap();
    assert_eq!(
        got, b"the payload",
        "RETR over a connection from the control peer's address"
    );
    let done = c.reply().await;
    assert_eq!(done.code, 226, "RETR: {done:?}");

    s.quit().await;
}

/// 10. ABOR: the 226 texts the relay matches (`is_abor_reply`), with and without a transfer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abor_reply_texts() {
    let mut s = Served::logged_in(None).await;
    let big = vec![7u8; 32 * 1024 * 1024];
    s.store.put_file("/big.bin", &big);
    let store = s.store.clone();
    let c = &mut s.client;

    // No PASV/EPSV yet: no data channel.
    let abor = c.cmd("ABOR").await;
    assert_eq!(
        abor.lines,
        ["226 Data channel already closed"],
        "ABOR with no data channel (relay::is_abor_reply matches this text)"
    );

    // ABOR during a download the client does not read, the data connection then reset: what
    // the relay does on ABOR (it ends its relayed data connection, Relay::process). libunftp
    // holds the session lock for the whole transfer, so ABOR is answered only once the
    // transfer has ended (with 0.24.0: the ABOR's 226 first, then the transfer's own reply;
    // the relay pairs them by text, Relay::answered, so either order is accepted here).
    let port = c.epsv().await;
    let data = c.data_from(Ipv4Addr::LOCALHOST, port).await.unwrap();
    let gets = *store.gets.borrow();
    let retr = c.cmd("RETR big.bin").await;
    assert_eq!(retr.code, 150, "RETR: {retr:?}");
    wait_past(&store.gets, gets).await;
    c.send("ABOR").await;
    socket2::SockRef::from(&data)
        .set_linger(Some(Duration::ZERO))
        .unwrap();
    drop(data); // a reset
    let first = c.reply().await;
    let second = c.reply().await;
    let (abor, transfer) = if first.code == 226 && is_abor_text(first.text()) {
        (first, second)
    } else {
        (second, first)
    };
    assert_eq!(
        abor.lines,
        ["226 Closed data channel"],
        "ABOR during a download (relay::is_abor_reply pairs it with the ABOR): {abor:?}, \
         other {transfer:?}"
    );
    assert!(
        !(transfer.code == 226 && is_abor_text(transfer.text())),
        "the interrupted RETR has its own final reply, not an ABOR text: {transfer:?}"
    );
    assert_eq!(
        transfer.lines,
        ["426 Connection closed"],
        "the final reply of a RETR whose data connection was reset"
    );

    // ABOR with no transfer after that: the data channel was taken by the last ABOR.
    let abor = c.cmd("ABOR").await;
    assert_eq!(
        abor.lines,
        ["226 Data channel already closed"],
        "ABOR after ABOR (relay::is_abor_reply)"
    );

    // ABOR during an upload, its data connection then closed cleanly: libunftp cannot tell
    // this upload from a finished one (BucketFTP's commit gate decides, not libunftp).
    let port = c.epsv().await;
    let mut data = c.data_from(Ipv4Addr::LOCALHOST, port).await.unwrap();
    let puts = *store.puts.borrow();
    let stor = c.cmd("STOR cut.bin").await;
    assert_eq!(stor.code, 150, "STOR: {stor:?}");
    data.write_all(b"partial").await.unwrap();
    wait_past(&store.puts, puts).await;
    c.send("ABOR").await;
    data.shutdown().await.unwrap();
    drop(data);
    let first = c.reply().await;
    let second = c.reply().await;
    let (abor, transfer) = if first.code == 226 && is_abor_text(first.text()) {
        (first, second)
    } else {
        (second, first)
    };
    assert_eq!(
        abor.lines,
        ["226 Closed data channel"],
        "ABOR during an upload (relay::is_abor_reply): {abor:?}, other {transfer:?}"
    );
    assert_eq!(
        transfer.lines,
        ["226 File successfully written"],
        "the final reply of the interrupted STOR"
    );
    assert_eq!(store.file("/cut.bin").as_deref(), Some(&b"partial"[..]));

    // ABOR after a finished transfer: libunftp still has the data channel's abort handle
    // (it is cleared only by ABOR), so the text is "Closed data channel" again.
    let port = c.epsv().await;
    let mut data = c.data_from(Ipv4Addr::LOCALHOST, port).await.unwrap();
    let retr = c.cmd("RETR cut.bin").await;
    assert_eq!(retr.code, 150, "RETR: {retr:?}");
    let (got, _) = read_to_end(&mut data).await;
    assert_eq!(got, b"partial");
    assert_eq!(c.reply().await.code, 226);
    let abor = c.cmd("ABOR").await;
    assert!(
        abor.code == 226 && is_abor_text(abor.text()),
        "ABOR after a finished transfer is one of relay::is_abor_reply's texts: {abor:?}"
    );
    assert_eq!(
        abor.lines,
        ["226 Closed data channel"],
        "ABOR after a finished transfer"
    );

    s.quit().await;
}

/// 13. SITE MD5, which the relay sends in place of `HASH <path>` and `XMD5`/`XSHA1`/`XSHA256`/
/// `XCRC` (core.rs: Action::Hash, hash_reply), and FEAT's `SITE MD5` line, which the relay
/// replaces with the hash commands (rewrite_feat). Unknown commands (RANG) pass on as they are.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn site_md5_reply_shapes() {
    let store = Store {
        site_md5: true,
        ..Store::default()
    };
    let mut s = serve_store(None, store).await;
    s.store.put_file("/dir/hello.txt", b"hello");
    s.store.put_file("/dir/a b.txt", b"");
    s.store
        .folders
        .lock()
        .unwrap()
        .insert(PathBuf::from("/dir"));
    let c = &mut s.client;
    assert_eq!(c.reply().await.code, 220);

    // Before login: libunftp refuses (the relay lets it answer HASH without a login).
    let early = c.cmd("SITE MD5 hello.txt").await;
    assert_eq!(
        early.lines,
        ["530 Please authenticate"],
        "SITE MD5 before login (the relay passes libunftp's refusal on as HASH's reply)"
    );
    let rang = c.cmd("RANG 0 9").await;
    assert_eq!(rang.lines, ["530 Please authenticate"], "RANG before login");
    let feat = c.cmd("FEAT").await;
    assert_eq!(
        feat.lines.iter().filter(|l| *l == " SITE MD5").count(),
        1,
        "with sitemd5 on and FEATURE_SITEMD5, FEAT lists ` SITE MD5` (rewrite_feat lists the \
         hash commands only then, in its place): {feat:?}"
    );
    c.login().await;

    // 213 <what md5() returned>    <absolute path>: relative paths joined to the working
    // directory, the text as the back-end gave it (HashAnswer::parse_wire reads it back).
    let cwd = c.cmd("CWD dir").await;
    assert_eq!(cwd.code, 250, "CWD: {cwd:?}");
    let wire = hash_answer(5).to_wire();
    for path in ["hello.txt", "/dir/hello.txt"] {
        let md5 = c.cmd(&format!("SITE MD5 {path}")).await;
        assert_eq!(
            md5.lines,
            [format!("213 {wire}    /dir/hello.txt")],
            "SITE MD5 {path}: `213 <md5()'s text>    <absolute path>` (hash_reply)"
        );
        assert_eq!(
            HashAnswer::parse_wire(md5.text()),
            Some(hash_answer(5)),
            "HashAnswer::parse_wire reads libunftp's 213 text"
        );
    }
    let spaced = c.cmd("SITE MD5 a b.txt").await;
    assert_eq!(
        spaced.lines,
        [format!("213 {}    /dir/a b.txt", hash_answer(0).to_wire())],
        "SITE MD5 of a path with a space: the whole rest of the line is the path"
    );
    // The back-end's error: a storage error reply, which the relay passes on with its reason.
    let missing = c.cmd("SITE MD5 missing.txt").await;
    assert_eq!(
        missing.lines,
        ["550 File not found"],
        "SITE MD5 of a missing file (md5() answers PermanentFileNotAvailable)"
    );
    let rang = c.cmd("RANG 0 9").await;
    assert_eq!(
        rang.lines,
        ["500 Command not implemented"],
        "an unknown command after login (RANG is not implemented; the relay passes it on)"
    );
    s.quit().await;

    // A back-end without FEATURE_SITEMD5: no FEAT line, and 502.
    let mut s = Served::logged_in(None).await;
    let feat = s.client.cmd("FEAT").await;
    assert!(
        !feat.lines.iter().any(|l| l.contains("MD5")),
        "without FEATURE_SITEMD5, FEAT does not list SITE MD5: {feat:?}"
    );
    let md5 = s.client.cmd("SITE MD5 hello.txt").await;
    assert_eq!(
        md5.lines,
        ["502 Not supported by the selected storage back-end."],
        "SITE MD5 when the back-end lacks FEATURE_SITEMD5"
    );
    s.quit().await;
}
