//! What a client meets first, through the relay that owns the control connection: the
//! `AUTH TLS` handshake even when the ClientHello arrives glued to the command, `OPTS MLST`
//! (RFC 3659 §7.9) and the facts it selects in MLST and MLSD, normalised paths in every reply
//! that shows one, `AK%2Fbucket` logins (FileZilla sends a pasted URL's user undecoded),
//! `--require-tls` refusals, relayed data connections for a client not on 127.0.0.1, and one
//! short log line per command with no secret in it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod rawftp;
#[macro_use]
mod support;

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;

use gateway::{Gateway, GatewayConfig, GatewayHandle, S3Settings};
use rawftp::Raw;
use support::{S3Kind, TestS3, temp_dir};

const BUCKET: &str = "first-contact";

struct Env {
    s3: TestS3,
    gw: GatewayHandle,
    dir: PathBuf,
}

impl Drop for Env {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Env {
    async fn start(tweak: impl FnOnce(&mut GatewayConfig)) -> Env {
        let s3 = TestS3::start(S3Kind::Local).await;
        s3.create_bucket(BUCKET).await;
        let dir = temp_dir("first-contact");
        let mut config =
            GatewayConfig::new(S3Settings::custom(s3.endpoint.clone(), s3.region.clone()));
        config.listen = "127.0.0.1:0".parse().unwrap();
        config.tls = Some(gateway::ftp::tls::load_or_create(&dir).unwrap());
        tweak(&mut config);
        let gw = Gateway::start(config).await.unwrap();
        Env { s3, gw, dir }
    }

    fn user(&self) -> String {
        format!("{}/{BUCKET}", self.s3.access_key)
    }

    fn connector(&self) -> tokio_rustls::TlsConnector {
        rawftp::tls_trusting(&self.dir.join(gateway::ftp::tls::CERT_FILE))
    }

    async fn plain(&self) -> Raw {
        let mut r = Raw::connect(self.gw.local_addr()).await;
        r.login(&self.user(), &self.s3.secret_key).await;
        r
    }
}

/// The entry line of an MLST reply (the one starting with a space).
fn mlst_entry(text: &str) -> String {
    text.lines()
        .find(|l| l.starts_with(' '))
        .unwrap_or_else(|| panic!("no entry line in {text:?}"))
        .to_owned()
}

#[cfg_attr(
    not(test_store = "local"),
    ignore = "store local not selected (BUCKETFTP_TEST_STORES)"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_tls_with_the_client_hello_glued_to_the_command() {
    let env = Env::start(|_| {}).await;
    // libunftp alone read such a ClientHello as a command now and then; the relay does the
    // handshake itself, so every one of these must succeed on the first try.
    for i in 0..30 {
        let mut r = Raw::connect(env.gw.local_addr())
            .await
            .auth_tls_pipelined(env.connector())
            .await;
        let (code, text) = r.try_login(&env.user(), &env.s3.secret_key).await;
        assert_eq!(code, 230, "session {i}: {text}");
        assert_eq!(r.cmd("QUIT").await.0, 221);
    }
}

#[cfg_attr(
    not(test_store = "local"),
    ignore = "store local not selected (BUCKETFTP_TEST_STORES)"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opts_mlst_selects_the_facts_of_mlst_and_mlsd() {
    let env = Env::start(|_| {}).await;
    env.s3.put(BUCKET, "中文.txt", b"12345".to_vec()).await;
    let mut r = env.plain().await;

    let (code, feat) = r.cmd("FEAT").await;
    assert_eq!(code, 211, "{feat}");
    assert!(feat.contains(" MLST type*;size*;modify*;\r\n"), "{feat}");
    let (code, text) = r.cmd("MLST /中文.txt").await;
    assert_eq!(code, 250, "{text}");
    assert!(mlst_entry(&text).contains("modify="), "{text}");

    // Select type and size only (ftplib's mlsd(facts=[...]) sends this first).
    let (code, text) = r.cmd("OPTS MLST type;size;").await;
    assert_eq!((code, text.as_str()), (200, "200 MLST OPTS type;size;\r\n"));
    let (_, feat) = r.cmd("FEAT").await;
    assert!(feat.contains(" MLST type*;size*;modify;\r\n"), "{feat}");
    let (_, text) = r.cmd("MLST /中文.txt").await;
    assert_eq!(mlst_entry(&text), " type=file;size=5; /中文.txt", "{text}");
    let mut dc = r.data("MLSD /").await;
    let listing = String::from_utf8_lossy(&dc.read_all().await).into_owned();
    assert_eq!(r.reply().await.0, 226);
    assert!(listing.contains("type=file;size=5; 中文.txt"), "{listing}");
    assert!(!listing.contains("modify="), "{listing}");
    assert!(
        listing
            .lines()
            .all(|l| l.starts_with("type=") && l.contains(";size=")),
        "MLSD lines carry type and size, as the 200 said: {listing}"
    );
    // LIST still shows times.
    let mut dc = r.data("LIST /").await;
    let list = String::from_utf8_lossy(&dc.read_all().await).into_owned();
    assert_eq!(r.reply().await.0, 226);
    assert!(list.contains("中文.txt"), "{list}");
    // MDTM is not an MLST fact: it still answers.
    let (code, text) = r.cmd("MDTM /中文.txt").await;
    assert_eq!(code, 213, "{text}");

    // Unknown facts are ignored; type and size stay (libunftp writes them into every MLSD
    // line, and the reply says so); selecting modify brings it back.
    let (code, text) = r.cmd("OPTS MLST Modify;unix.mode;").await;
    assert_eq!(
        (code, text.as_str()),
        (200, "200 MLST OPTS type;size;modify;\r\n")
    );
    let (_, text) = r.cmd("MLST /中文.txt").await;
    let entry = mlst_entry(&text);
    assert!(entry.starts_with(" type=file;size=5;modify="), "{entry}");
    let mut dc = r.data("MLSD").await;
    let listing = String::from_utf8_lossy(&dc.read_all().await).into_owned();
    assert_eq!(r.reply().await.0, 226);
    assert!(listing.contains("modify="), "{listing}");
}

#[cfg_attr(
    not(test_store = "local"),
    ignore = "store local not selected (BUCKETFTP_TEST_STORES)"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replies_show_normalised_paths() {
    let env = Env::start(|_| {}).await;
    env.s3.put(BUCKET, "a/b/f.txt", b"x".to_vec()).await;
    let mut r = env.plain().await;
    let (code, text) = r.cmd("CWD ../../..").await;
    assert_eq!(code, 250, "{text}");
    assert!(!text.contains(".."), "{text}");
    assert_eq!(
        r.cmd("PWD").await,
        (257, "257 \"/\" is the current directory\r\n".into())
    );
    assert_eq!(r.cmd("CWD a/./b").await.0, 250);
    assert_eq!(
        r.cmd("PWD").await.1,
        "257 \"/a/b\" is the current directory\r\n"
    );
    assert_eq!(r.cmd("CWD ../../../..").await.0, 250);
    assert_eq!(
        r.cmd("PWD").await.1,
        "257 \"/\" is the current directory\r\n"
    );
    let (code, text) = r.cmd("MKD x/../new folder").await;
    assert_eq!(
        (code, text.as_str()),
        (257, "257 \"/new folder\" created\r\n")
    );
    assert_eq!(r.cmd("CWD /a/b/..").await.0, 250);
    let (code, text) = r.cmd("MLST").await;
    assert_eq!(code, 250, "{text}");
    assert!(mlst_entry(&text).ends_with(" /a"), "{text}");
    let (code, text) = r.cmd("MLST ../a/./b/f.txt").await;
    assert_eq!(code, 250, "{text}");
    assert!(mlst_entry(&text).ends_with(" /a/b/f.txt"), "{text}");
    // MLST's argument is taken in the working directory (libunftp alone takes it from /).
    let (code, text) = r.cmd("MLST b/f.txt").await;
    assert_eq!(code, 250, "{text}");
    assert!(
        mlst_entry(&text).starts_with(" type=file;size=1;"),
        "the file in /a/b, not a /b/f.txt: {text}"
    );
    assert!(mlst_entry(&text).ends_with(" /a/b/f.txt"), "{text}");
    // Relative paths after a CWD with `..` still reach the right objects.
    let mut dc = r.data("RETR b/f.txt").await;
    assert_eq!(dc.read_all().await, b"x");
    assert_eq!(r.reply().await.0, 226);
}

/// Commands sent together (pipelined) are answered in order, each error reply with its
/// reason and the code libunftp sends, even where libunftp answers from tasks of its own or
/// with another code than the reason's (STAT of a missing path).
#[cfg_attr(
    not(test_store = "local"),
    ignore = "store local not selected (BUCKETFTP_TEST_STORES)"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_commands_are_answered_in_order_with_their_reasons() {
    let env = Env::start(|_| {}).await;
    env.s3.put(BUCKET, "here.txt", b"abc".to_vec()).await;
    for round in 0..10 {
        let mut r = env.plain().await;
        r.send("CWD /nope\r\nPWD\r\nSIZE here.txt\r\nSTAT /missing\r\nMDTM /missing\r\nNOOP")
            .await;
        let (code, text) = r.reply().await;
        assert_eq!(code, 550, "round {round} CWD: {text}");
        assert!(text.starts_with("550-"), "reason first: {text}");
        let (code, text) = r.reply().await;
        assert_eq!(code, 257, "round {round} PWD: {text}");
        let (code, text) = r.reply().await;
        assert_eq!(
            (code, text.as_str()),
            (213, "213 3\r\n"),
            "round {round} SIZE"
        );
        let (code, text) = r.reply().await;
        assert!(code >= 400, "round {round} STAT: {text}");
        let first = text.lines().next().unwrap_or_default();
        assert!(
            first.starts_with(&format!("{code}-")),
            "the reason carries the reply's own code: {text}"
        );
        let (code, text) = r.reply().await;
        assert_eq!(code, 550, "round {round} MDTM: {text}");
        let (code, text) = r.reply().await;
        assert_eq!(code, 200, "round {round} NOOP: {text}");
    }
}

#[cfg_attr(
    not(test_store = "local"),
    ignore = "store local not selected (BUCKETFTP_TEST_STORES)"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_percent_encoded_slash_separates_key_and_bucket() {
    let env = Env::start(|_| {}).await;
    for sep in ["%2F", "%2f"] {
        let mut r = Raw::connect(env.gw.local_addr()).await;
        let user = format!("{}{sep}{BUCKET}", env.s3.access_key);
        let (code, text) = r.try_login(&user, &env.s3.secret_key).await;
        assert_eq!(code, 230, "{user}: {text}");
    }
}

#[cfg_attr(
    not(test_store = "local"),
    ignore = "store local not selected (BUCKETFTP_TEST_STORES)"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn require_tls_refuses_plain_logins_and_data() {
    let env = Env::start(|c| c.require_tls = true).await;
    let mut r = Raw::connect(env.gw.local_addr()).await;
    let (code, text) = r.cmd(&format!("USER {}", env.user())).await;
    assert_eq!(code, 534, "{text}");
    assert!(text.contains("AUTH TLS"), "{text}");
    let mut r = Raw::connect(env.gw.local_addr())
        .await
        .auth_tls(env.connector())
        .await;
    let (code, text) = r.try_login(&env.user(), &env.s3.secret_key).await;
    assert_eq!(code, 230, "{text}");
    let (code, text) = r.cmd("EPSV").await;
    assert_eq!(code, 534, "no PROT P yet: {text}");
    assert!(text.contains("PROT P"), "{text}");
    assert_eq!(r.cmd("PBSZ 0").await.0, 200);
    assert_eq!(r.cmd("PROT P").await.0, 200);
    // No way back to plain data connections, pipelined or not.
    r.send("PROT C\r\nPASV").await;
    assert_eq!(r.reply().await.0, 534, "PROT C refused");
    assert_eq!(r.reply().await.0, 227, "PROT P still in force");
    let mut dc = r.data("STOR secure.txt").await;
    assert!(dc.write(b"encrypted").await);
    dc.finish().await;
    assert_eq!(r.reply().await.0, 226);
    assert_eq!(
        env.s3.get(BUCKET, "secure.txt").await.as_deref(),
        Some(&b"encrypted"[..])
    );
    // The reason for a refusal reaches the client over TLS too (the loopback leg is plain).
    let (code, text) = r.cmd("CWD /no-such-folder").await;
    assert_eq!(code, 550, "{text}");
    assert!(text.starts_with("550-"), "reason line expected: {text}");
}

#[cfg_attr(
    not(test_store = "local"),
    ignore = "store local not selected (BUCKETFTP_TEST_STORES)"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_not_on_127_0_0_1_get_relayed_data_connections() {
    let env = Env::start(|c| {
        c.passive_ports = 61000..=61010;
    })
    .await;
    let source = Some(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2)));
    for tls in [false, true] {
        let mut r = Raw::connect_from(env.gw.local_addr(), source).await;
        if tls {
            r = r.auth_tls(env.connector()).await;
        }
        r.login(&env.user(), &env.s3.secret_key).await;
        let (code, text) = r.cmd("PASV").await;
        assert_eq!(code, 227, "{text}");
        let port: Vec<u16> = text
            .split(['(', ')'])
            .nth(1)
            .unwrap_or_default()
            .split(',')
            .filter_map(|n| n.parse().ok())
            .collect();
        let announced = port[4] * 256 + port[5];
        assert!(
            (61000..=61010).contains(&announced),
            "PASV announces a port of the range: {text}"
        );
        // Give up that PASV (its listener times out) and use EPSV through `data`.
        let body = rawftp::data(3 * 1024 * 1024 + 7, 3);
        let key = format!("relayed-{tls}.bin");
        let mut dc = r.data(&format!("STOR {key}")).await;
        assert!(dc.write(&body).await);
        dc.finish().await;
        let (code, text) = r.reply().await;
        assert_eq!(code, 226, "{text}");
        assert_eq!(env.s3.get(BUCKET, &key).await.as_deref(), Some(&body[..]));
        let mut dc = r.data(&format!("RETR {key}")).await;
        assert_eq!(dc.read_all().await, body);
        assert_eq!(r.reply().await.0, 226);
        if tls {
            assert_eq!(dc.handshake_kind(), Some(rustls::HandshakeKind::Resumed));
        }
    }
    // A data connection from another address than the control connection's is refused at
    // once, and the client's own connection still gets the data.
    let mut r = Raw::connect_from(env.gw.local_addr(), source).await;
    r.login(&env.user(), &env.s3.secret_key).await;
    let port = r.epsv().await;
    let data_addr = std::net::SocketAddr::new(env.gw.local_addr().ip(), port);
    let stranger =
        rawftp::connect_from(data_addr, Some(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 3)))).await;
    // Refused: reset while connecting, or closed before any byte.
    if let Ok(mut stranger) = stranger {
        use tokio::io::AsyncReadExt;
        let mut buf = [0u8; 16];
        let n = tokio::time::timeout(std::time::Duration::from_secs(5), stranger.read(&mut buf))
            .await
            .expect("the stranger's connection was left open");
        assert!(matches!(n, Ok(0) | Err(_)), "the stranger got {n:?}");
    }
    let mut own = rawftp::connect_from(data_addr, source).await.unwrap();
    let (code, text) = r.cmd("RETR relayed-false.bin").await;
    assert_eq!(code, 150, "{text}");
    let mut got = Vec::new();
    {
        use tokio::io::AsyncReadExt;
        let _ = own.read_to_end(&mut got).await;
    }
    assert_eq!(r.reply().await.0, 226);
    assert_eq!(got.len(), 3 * 1024 * 1024 + 7);
}

/// The binary's log at `info` for a scripted session: one short line per event, no colour
/// codes in a file, and the secret at no level.
#[cfg_attr(
    not(test_store = "local"),
    ignore = "store local not selected (BUCKETFTP_TEST_STORES)"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_are_short_lines_without_secrets() {
    let s3 = TestS3::start(S3Kind::Local).await;
    s3.create_bucket(BUCKET).await;
    for level in ["info", "debug"] {
        let dir = temp_dir("log-lines");
        let log = dir.join("server.log");
        let port = support::free_port();
        let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_bucketftp-server"))
            .args([
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--log-level",
                level,
            ])
            .args([
                "--endpoint",
                &s3.endpoint,
                "--region",
                &s3.region,
                "--path-style",
            ])
            .arg("--data-dir")
            .arg(&dir)
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while tokio::net::TcpStream::connect(addr).await.is_err() {
            assert!(std::time::Instant::now() < deadline, "server did not start");
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        let connector = rawftp::tls_trusting(&dir.join(gateway::ftp::tls::CERT_FILE));
        let user = format!("{}/{BUCKET}", s3.access_key);
        let mut commands = 0;
        for tls in [false, true] {
            let mut r = Raw::connect(addr).await;
            if tls {
                r = r.auth_tls(connector.clone()).await;
            }
            r.login(&user, &s3.secret_key).await;
            for i in 0..20 {
                let mut dc = r.data(&format!("STOR dir/file-{i}.txt")).await;
                assert!(dc.write(b"some bytes").await);
                dc.finish().await;
                assert_eq!(r.reply().await.0, 226);
                let mut dc = r.data("MLSD /dir").await;
                let _ = dc.read_all().await;
                assert_eq!(r.reply().await.0, 226);
                assert_eq!(r.cmd("CWD dir").await.0, 250);
                assert_eq!(r.cmd("PWD").await.0, 257);
                assert_eq!(r.cmd("CDUP").await.0, 250);
                commands += 7; // EPSV STOR EPSV MLSD CWD PWD CDUP
            }
            let (code, _) = r.try_login(&user, "not-the-secret").await;
            assert_ne!(code, 230);
            r.cmd("QUIT").await;
        }
        let _ = child.start_kill();
        let _ = child.wait().await;
        let text = std::fs::read_to_string(&log).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        let longest = lines.iter().map(|l| l.len()).max().unwrap_or(0);
        eprintln!(
            "{level}: {commands} commands, {} lines, {} bytes, longest line {longest} bytes",
            lines.len(),
            text.len()
        );
        assert!(
            !text.contains(&s3.secret_key),
            "the secret is in the {level} log"
        );
        assert!(!text.contains('\u{1b}'), "colour codes in a log file");
        if level == "info" {
            assert!(longest <= 300, "a {longest}-byte line at info");
            assert!(
                lines.len() < commands * 2,
                "{} lines for {commands} commands",
                lines.len()
            );
            assert!(
                text.contains("cmd=\"PASS ****\"") || text.contains("cmd=PASS ****"),
                "commands are logged, the password masked"
            );
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
