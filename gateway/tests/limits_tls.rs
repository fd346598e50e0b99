//! Safe to leave running: session limits, the login lockout, idle and data-connection
//! timeouts, masquerade, FTPS with real clients (curl, lftp), and no secret in any output.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod rawftp;
#[macro_use]
mod support;

use std::time::{Duration, Instant};

use gateway::ftp::limits::{LockoutPolicy, SessionLimits};
use gateway::{Gateway, GatewayConfig, GatewayHandle, S3Settings};
use rawftp::Raw;
use support::{S3Kind, TestS3, temp_dir};

const BUCKET: &str = "limits-bucket";

async fn start(s3: &TestS3, tweak: impl FnOnce(&mut GatewayConfig)) -> GatewayHandle {
    let mut config = GatewayConfig::new(S3Settings::custom(s3.endpoint.clone(), s3.region.clone()));
    config.listen = "127.0.0.1:0".parse().unwrap();
    tweak(&mut config);
    Gateway::start(config).await.unwrap()
}

fn user(s3: &TestS3) -> String {
    format!("{}/{BUCKET}", s3.access_key)
}

#[cfg_attr(
    not(test_store = "local"),
    ignore = "store local not selected (BUCKETFTP_TEST_STORES)"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_limits_answer_421() {
    let s3 = TestS3::start(S3Kind::Local).await;
    s3.create_bucket(BUCKET).await;
    let gw = start(&s3, |c| {
        c.sessions = SessionLimits {
            max_sessions: 3,
            max_per_ip: 2,
        }
    })
    .await;
    let addr = gw.local_addr();
    // Logged in: only sessions not logged in yet have a lower limit (see limits_before_login
    // in hostile.rs).
    let mut a = Raw::connect(addr).await;
    a.login(&user(&s3), &s3.secret_key).await;
    let mut b = Raw::connect(addr).await;
    b.login(&user(&s3), &s3.secret_key).await;
    // A third from the same address is over the per-address limit.
    let text = greeting(addr).await;
    assert!(text.starts_with("421 "), "{text:?}");
    assert!(text.contains("your address"), "{text}");
    drop((a, b));
    // Once they are gone, there is room again.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut again = loop {
        match suppaftp::tokio::AsyncFtpStream::connect(addr).await {
            Ok(ftp) => break ftp,
            Err(e) => {
                assert!(Instant::now() < deadline, "no room after they ended: {e}");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    again.login(user(&s3), s3.secret_key.clone()).await.unwrap();
}

/// The first reply of a new connection (everything the server sent when it closes it).
async fn greeting(addr: std::net::SocketAddr) -> String {
    use tokio::io::AsyncBufReadExt;
    let s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut line = String::new();
    let _ = tokio::time::timeout(
        Duration::from_secs(5),
        tokio::io::BufReader::new(s).read_line(&mut line),
    )
    .await;
    line
}

#[cfg_attr(
    not(test_store = "local"),
    ignore = "store local not selected (BUCKETFTP_TEST_STORES)"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lockout_refuses_without_asking_the_store() {
    let mut s3 = TestS3::start(S3Kind::Local).await;
    s3.create_bucket(BUCKET).await;
    let metrics = std::sync::Arc::new(gateway::Metrics::new());
    let gw = start(&s3, |c| {
        c.lockout = LockoutPolicy {
            max_failures: 3,
            window: Duration::from_secs(2),
        };
        c.metrics = Some(metrics.clone());
    })
    .await;
    for _ in 0..3 {
        let mut r = Raw::connect(gw.local_addr()).await;
        let (code, text) = r.try_login(&user(&s3), "wrong").await;
        assert_eq!(code, 530, "{text}");
        assert!(text.contains("wrong secret"), "{text}");
    }
    // The store was asked about each wrong secret, and the gateway counted it.
    let asked = s3_requests(&metrics);
    assert!(asked >= 3.0, "S3 requests counted: {asked}");
    // Locked: a new connection is refused at once, before any login, so the store is not
    // asked (it is down: no answer either way).
    s3.kill();
    let text = greeting(gw.local_addr()).await;
    assert!(text.starts_with("421 "), "{text}");
    assert!(text.contains("Too many failed logins"), "{text}");
    assert_eq!(s3_requests(&metrics), asked, "the store was asked");
    // After the window (2 s after the last failure), logins work again; until then every
    // new connection is refused the same way.
    s3.restart().await;
    let addr = gw.local_addr();
    support::eventually(
        Duration::from_secs(10),
        "the lockout's end",
        move || async move {
            let text = greeting(addr).await;
            if text.starts_with("220 ") {
                return true;
            }
            assert!(text.starts_with("421 Too many failed logins"), "{text}");
            false
        },
    )
    .await;
    assert_eq!(
        s3_requests(&metrics),
        asked,
        "the store was asked while locked"
    );
    let mut r = Raw::connect(addr).await;
    r.login(&user(&s3), &s3.secret_key).await;
}

/// Every S3 request the gateway's clients made so far (`bucketftp_s3_requests_total`).
fn s3_requests(metrics: &gateway::Metrics) -> f64 {
    metrics
        .render()
        .lines()
        .filter(|l| l.starts_with("bucketftp_s3_requests_total{"))
        .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
        .sum()
}

#[cfg_attr(
    not(test_store = "local"),
    ignore = "store local not selected (BUCKETFTP_TEST_STORES)"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_sessions_and_unused_passive_ports_time_out() {
    let s3 = TestS3::start(S3Kind::Local).await;
    s3.create_bucket(BUCKET).await;
    let gw = start(&s3, |c| {
        c.idle_timeout = Duration::from_secs(1);
        c.masquerade = Some(std::net::Ipv4Addr::new(203, 0, 113, 7));
    })
    .await;
    let mut r = Raw::connect(gw.local_addr()).await;
    r.login(&user(&s3), &s3.secret_key).await;
    // Masquerade: PASV announces the configured address.
    let (code, text) = r.cmd("PASV").await;
    assert_eq!(code, 227, "{text}");
    assert!(text.contains("(203,0,113,7,"), "{text}");
    // EPSV, never connected: the relay's port, open until the session ends (15 s at most).
    let port = r.epsv().await;
    assert!(
        std::net::TcpListener::bind(("127.0.0.1", port)).is_err(),
        "the passive port {port} is not listening"
    );
    // Idle for 1 s: the relay says so and closes the session.
    let (code, text) = r.reply().await;
    assert_eq!(code, 421, "{text}");
    assert!(text.contains("Session timed out"), "{text}");
    assert_eq!(
        r.reply().await,
        (0, String::new()),
        "the control connection's end"
    );
    // The unused passive port closes with it. Its address is free again once it does: a bind
    // asks without connecting (a connection would be taken as the transfer's, closing the
    // port whatever the session did).
    support::eventually(
        Duration::from_secs(20),
        "the unused passive port closed",
        || async { std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() },
    )
    .await;
    let connect = tokio::net::TcpStream::connect(("127.0.0.1", port)).await;
    assert!(
        connect.is_err(),
        "the passive port {port} still takes connections"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_listen_needs_explicit_option() {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_bucketftp-server"))
        .args([
            "--listen",
            "0.0.0.0:0",
            "--endpoint",
            "http://127.0.0.1:9",
            "--no-tls",
        ])
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--allow-remote"), "{err}");
}

/// Runs the real binary at trace level against the local store with TLS required, drives a full
/// session with curl (FTPS), lftp (FTPS) and a wrong password, and scans everything written
/// (stdout, stderr, replies) for the secret.
#[cfg_attr(
    not(test_store = "local"),
    ignore = "store local not selected (BUCKETFTP_TEST_STORES)"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ftps_with_curl_and_lftp_and_no_secret_anywhere() {
    let s3 = TestS3::start(S3Kind::Local).await;
    s3.create_bucket(BUCKET).await;
    let dir = temp_dir("ftps");
    let log = dir.join("server.log");
    let mut child = support::server_command(&s3, &dir, &["--require-tls", "--log-level", "trace"])
        .env("RUST_LOG", "trace")
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let (addr, mut printed, mut lines) = support::listen_address(&mut child).await;
    assert!(printed.contains("SHA-256 fingerprint"), "{printed}");
    let cert = dir.join(gateway::ftp::tls::CERT_FILE);
    let body = rawftp::data(3 * 1024 * 1024 + 11, 77);
    let file = dir.join("up.bin");
    std::fs::write(&file, &body).unwrap();
    let creds = format!("{},{}", user(&s3), s3.secret_key);
    let netrc = dir.join("netrc");
    write_private(
        &netrc,
        &format!(
            "machine 127.0.0.1 login {} password {}\n",
            user(&s3),
            s3.secret_key
        ),
    );
    let base = format!("ftp://127.0.0.1:{}", addr.port());

    // Plain FTP is refused when TLS is required.
    let plain = curl(
        &[
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{response_code}",
            "--netrc-file",
        ],
        &netrc,
        &format!("{base}/"),
        &[],
    )
    .await;
    assert_ne!(plain.0, 0, "plain login accepted with --require-tls");

    // curl --ssl-reqd: upload, list, download, rename, delete.
    let up = curl(
        &["-sS", "--ssl-reqd", "--cacert"],
        &cert,
        &format!("{base}/tls%20dir/up.bin"),
        &[
            "--ftp-create-dirs",
            "-T",
            &file.to_string_lossy(),
            "--netrc-file",
            &netrc.to_string_lossy(),
        ],
    )
    .await;
    assert_eq!(up.0, 0, "curl FTPS upload: {}", up.1);
    assert_eq!(
        s3.get(BUCKET, "tls dir/up.bin").await.as_deref(),
        Some(&body[..])
    );
    let down = dir.join("down.bin");
    let get = curl(
        &["-sS", "--ssl-reqd", "--cacert"],
        &cert,
        &format!("{base}/tls%20dir/up.bin"),
        &[
            "-o",
            &down.to_string_lossy(),
            "--netrc-file",
            &netrc.to_string_lossy(),
        ],
    )
    .await;
    assert_eq!(get.0, 0, "curl FTPS download: {}", get.1);
    assert_eq!(std::fs::read(&down).unwrap_or_default(), body);

    // lftp with ssl-force: mirror a folder up, list it, rename, remove.
    let src = dir.join("tree");
    std::fs::create_dir_all(src.join("子 dir")).unwrap();
    std::fs::write(src.join("子 dir/a.txt"), b"lftp over tls").unwrap();
    let script = format!(
        "set ftp:ssl-force true; set ftp:ssl-protect-data true; set ssl:ca-file {}; set ssl:check-hostname no; \
         mirror -R {} /tree; cls -1 /tree; mv /tree /tree2; rm -r /tree2; bye",
        cert.display(),
        src.display()
    );
    let lftp = tokio::process::Command::new("lftp")
        .args([
            "-u",
            &creds,
            "-p",
            &addr.port().to_string(),
            "-e",
            &script,
            "127.0.0.1",
        ])
        .output()
        .await
        .expect("lftp");
    let lftp_out = format!(
        "{}{}",
        String::from_utf8_lossy(&lftp.stdout),
        String::from_utf8_lossy(&lftp.stderr)
    );
    assert!(lftp.status.success(), "lftp FTPS: {lftp_out}");
    assert!(lftp_out.contains("子 dir"), "lftp listing: {lftp_out}");
    assert!(
        s3.keys(BUCKET, "tree").await.is_empty(),
        "lftp rm -r left keys"
    );

    // A wrong password too, so the refusal path is in the log.
    let bad = curl(
        &["-sS", "--ssl-reqd", "--cacert"],
        &cert,
        &format!("{base}/"),
        &["-u", &format!("{}:not-the-secret", user(&s3))],
    )
    .await;
    assert_ne!(bad.0, 0);

    let _ = child.start_kill();
    let _ = child.wait().await;
    while let Ok(Some(line)) = lines.next_line().await {
        printed.push_str(&line);
    }
    let logged = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        logged.len() > 10_000,
        "trace log suspiciously short ({} bytes)",
        logged.len()
    );
    assert!(logged.contains("TRACE"), "not a trace-level log");
    for (what, text) in [
        ("stdout", &printed),
        ("log", &logged),
        ("curl", &format!("{}{}{}", up.1, get.1, bad.1)),
        ("lftp", &lftp_out),
    ] {
        assert!(
            !text.contains(&s3.secret_key),
            "the secret key appears in {what}"
        );
    }
    let _ = std::fs::remove_dir_all(dir);
}

fn write_private(path: &std::path::Path, text: &str) {
    localstore::atomic::write_atomic(path, text.as_bytes(), localstore::atomic::Access::OwnerOnly)
        .unwrap();
}

/// Runs curl: flags, then one path argument (`--cacert FILE` or `--netrc-file FILE`), the URL
/// and extra arguments. Returns (exit code, stderr + stdout).
async fn curl(
    flags: &[&str],
    file_arg: &std::path::Path,
    url: &str,
    extra: &[&str],
) -> (i32, String) {
    let out = tokio::process::Command::new("curl")
        .args(flags)
        .arg(file_arg)
        .arg(url)
        .args(extra)
        .args(["--max-time", "60"])
        .output()
        .await
        .expect("curl");
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        ),
    )
}

/// FTPS data connections resume the control connection's TLS session, with TLS 1.2 (session
/// ids) and TLS 1.3 (tickets), as FileZilla requires before it trusts a data connection. TLS 1.3
/// tickets come on the control connection and on downloads' data connections, never on an
/// upload's (an upload-only client never reads them, and unread bytes turn its close into a
/// reset).
#[cfg_attr(
    not(test_store = "local"),
    ignore = "store local not selected (BUCKETFTP_TEST_STORES)"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ftps_data_connections_resume_the_tls_session() {
    use std::sync::atomic::Ordering;
    use tokio_rustls::rustls::{self, HandshakeKind};
    let s3 = TestS3::start(S3Kind::Local).await;
    s3.create_bucket(BUCKET).await;
    let dir = temp_dir("ftps-resume");
    let tls = gateway::ftp::tls::load_or_create(&dir).unwrap();
    let gw = start(&s3, |c| c.tls = Some(tls)).await;
    let cert = dir.join(gateway::ftp::tls::CERT_FILE);
    for versions in [
        &[&rustls::version::TLS12][..],
        &[&rustls::version::TLS13][..],
    ] {
        let tls13 = versions == [&rustls::version::TLS13];
        let (connector, tickets) = rawftp::tls_counting_tickets(&cert, versions);
        let mut ctl = Raw::connect(gw.local_addr())
            .await
            .auth_tls(connector)
            .await;
        ctl.login(&user(&s3), &s3.secret_key).await;
        let after_login = tickets.load(Ordering::SeqCst);
        if tls13 {
            assert_eq!(
                after_login,
                gateway::ftp::tls::CONTROL_TICKETS,
                "tickets on the control connection"
            );
        }
        let mut dc = ctl.data("STOR resumed.txt").await;
        assert_eq!(
            dc.handshake_kind(),
            Some(HandshakeKind::Resumed),
            "{versions:?} upload"
        );
        assert!(dc.write(b"over a resumed session\n").await);
        dc.finish().await;
        let (code, text) = ctl.reply().await;
        assert_eq!(code, 226, "{versions:?}: {text}");
        let mut dc = ctl.data("RETR resumed.txt").await;
        assert_eq!(
            dc.handshake_kind(),
            Some(HandshakeKind::Resumed),
            "{versions:?} download"
        );
        let after_upload = tickets.load(Ordering::SeqCst);
        assert_eq!(
            after_upload, after_login,
            "{versions:?}: no tickets on an upload's data connection"
        );
        assert_eq!(dc.read_all().await, b"over a resumed session\n");
        let (code, text) = ctl.reply().await;
        assert_eq!(code, 226, "{versions:?}: {text}");
        if tls13 {
            assert_eq!(
                tickets.load(Ordering::SeqCst),
                after_upload + gateway::ftp::tls::DATA_TICKETS,
                "tickets on a download's data connection"
            );
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

each_store!(a_stranger_cannot_take_a_tls_data_connection);
/// A stranger from the client's own address (behind a load balancer every connection is; on a
/// desktop any local process is) connects to the announced passive port first and does a
/// full TLS handshake: it gets no byte of the download and cannot supply the upload's bytes,
/// and the client's own connection, which resumes the control session, is still served.
async fn a_stranger_cannot_take_a_tls_data_connection(kind: S3Kind) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let s3 = TestS3::start(kind).await;
    s3.create_bucket(BUCKET).await;
    let secret = rawftp::data(256 * 1024, 41);
    s3.put(BUCKET, "payroll.bin", secret.clone()).await;
    let dir = temp_dir("ftps-stranger");
    let tls = gateway::ftp::tls::load_or_create(&dir).unwrap();
    let gw = start(&s3, |c| c.tls = Some(tls)).await;
    let cert = dir.join(gateway::ftp::tls::CERT_FILE);
    let client_tls = rawftp::tls_trusting(&cert);
    let mut ctl = Raw::connect(gw.local_addr())
        .await
        .auth_tls(client_tls.clone())
        .await;
    ctl.login(&user(&s3), &s3.secret_key).await;
    let data_addr = |port| std::net::SocketAddr::new(gw.local_addr().ip(), port);

    // The download: the stranger is first on the port, with a TLS session of its own.
    let port = ctl.epsv().await;
    let stranger_tls = rawftp::tls_trusting(&cert);
    let stranger_tcp = tokio::net::TcpStream::connect(data_addr(port))
        .await
        .unwrap();
    let stranger = tokio::spawn(async move {
        let mut got = Vec::new();
        if let Ok(mut s) = stranger_tls.connect(server_name(), stranger_tcp).await {
            let _ = tokio::time::timeout(Duration::from_secs(20), s.read_to_end(&mut got)).await;
        }
        got
    });
    let tcp = tokio::net::TcpStream::connect(data_addr(port))
        .await
        .unwrap();
    let (code, text) = ctl.cmd("RETR payroll.bin").await;
    assert_eq!(code, 150, "{text}");
    let mut dc = client_tls
        .connect(server_name(), tcp)
        .await
        .expect("the client's data TLS");
    let mut back = Vec::new();
    dc.read_to_end(&mut back)
        .await
        .expect("the client's download");
    let (code, text) = ctl.reply().await;
    assert_eq!(code, 226, "{text}");
    assert!(back == secret, "the client got its file");
    let stolen = stranger.await.unwrap();
    assert!(
        stolen.is_empty(),
        "the stranger read {} bytes of the download",
        stolen.len()
    );

    // The upload: the stranger is first again and sends its own bytes.
    let port = ctl.epsv().await;
    let stranger_tls = rawftp::tls_trusting(&cert);
    let stranger_tcp = tokio::net::TcpStream::connect(data_addr(port))
        .await
        .unwrap();
    let stranger = tokio::spawn(async move {
        if let Ok(mut s) = stranger_tls.connect(server_name(), stranger_tcp).await {
            let _ = s.write_all(b"forged payroll").await;
            let _ = s.shutdown().await;
        }
    });
    // The stranger's handshake is done before the client comes.
    stranger.await.unwrap();
    let tcp = tokio::net::TcpStream::connect(data_addr(port))
        .await
        .unwrap();
    let (code, text) = ctl.cmd("STOR payroll.bin").await;
    assert_eq!(code, 150, "{text}");
    let mut dc = client_tls
        .connect(server_name(), tcp)
        .await
        .expect("the client's data TLS");
    let mine = rawftp::data(300 * 1024, 42);
    dc.write_all(&mine).await.unwrap();
    dc.shutdown().await.unwrap();
    let (code, text) = ctl.reply().await;
    assert_eq!(code, 226, "{text}");
    assert!(
        s3.get(BUCKET, "payroll.bin").await.as_deref() == Some(&mine[..]),
        "the object is the client's upload, not the stranger's"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

each_store!(a_data_connection_must_resume_its_own_session);
/// A data connection that does not resume its control connection's TLS session (its own full
/// handshake, or another session's ticket) is refused, and the transfer's error reply says
/// why; with `require_tls_session_reuse` off it is served.
async fn a_data_connection_must_resume_its_own_session(kind: S3Kind) {
    use tokio::io::AsyncReadExt;
    let s3 = TestS3::start(kind).await;
    s3.create_bucket(BUCKET).await;
    s3.put(BUCKET, "a.txt", b"resumed or nothing".to_vec())
        .await;
    let dir = temp_dir("ftps-reuse");
    let tls = gateway::ftp::tls::load_or_create(&dir).unwrap();
    let cert = dir.join(gateway::ftp::tls::CERT_FILE);
    for require in [true, false] {
        let gw = start(&s3, |c| {
            c.tls = Some(tls.clone());
            c.require_tls_session_reuse = require;
        })
        .await;
        let data_addr = |port| std::net::SocketAddr::new(gw.local_addr().ip(), port);
        // Another session of the same client program: its tickets are not this session's.
        let shared = rawftp::tls_trusting(&cert);
        let mut other = Raw::connect(gw.local_addr())
            .await
            .auth_tls(shared.clone())
            .await;
        other.login(&user(&s3), &s3.secret_key).await;
        let mut ctl = Raw::connect(gw.local_addr())
            .await
            .auth_tls(rawftp::tls_trusting(&cert))
            .await;
        ctl.login(&user(&s3), &s3.secret_key).await;
        for (how, connector) in [
            ("a full handshake", rawftp::tls_trusting(&cert)),
            ("another session's ticket", shared.clone()),
        ] {
            let port = ctl.epsv().await;
            let tcp = tokio::net::TcpStream::connect(data_addr(port))
                .await
                .unwrap();
            let (code, text) = ctl.cmd("RETR a.txt").await;
            assert_eq!(code, 150, "{text}");
            let mut got = Vec::new();
            if let Ok(mut dc) = connector.connect(server_name(), tcp).await {
                let _ = dc.read_to_end(&mut got).await;
            }
            let (code, text) = ctl.reply().await;
            if require {
                assert!(got.is_empty(), "{how}: read {got:?}");
                assert!(code >= 400, "{how}: {code} {text}");
                assert!(
                    text.contains("must resume this control connection's TLS session"),
                    "{how}: the reply says why: {text}"
                );
            } else {
                assert_eq!(code, 226, "{how}, reuse not required: {text}");
                assert_eq!(got, b"resumed or nothing", "{how}, reuse not required");
            }
        }
        // The session still works with its own connection.
        let mut dc = ctl.data("RETR a.txt").await;
        assert_eq!(dc.read_all().await, b"resumed or nothing");
        assert_eq!(ctl.reply().await.0, 226);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

each_store!(a_client_that_uses_each_ticket_once_keeps_working);
/// rustls uses each TLS 1.3 ticket once: 30 transfers in one session, uploads several in a
/// row as a person's folder upload makes them, each data connection resumed.
async fn a_client_that_uses_each_ticket_once_keeps_working(kind: S3Kind) {
    use tokio_rustls::rustls::HandshakeKind;
    let s3 = TestS3::start(kind).await;
    s3.create_bucket(BUCKET).await;
    let dir = temp_dir("ftps-tickets");
    let tls = gateway::ftp::tls::load_or_create(&dir).unwrap();
    let gw = start(&s3, |c| c.tls = Some(tls)).await;
    let cert = dir.join(gateway::ftp::tls::CERT_FILE);
    let mut ctl = Raw::connect(gw.local_addr())
        .await
        .auth_tls(rawftp::tls_trusting(&cert))
        .await;
    ctl.login(&user(&s3), &s3.secret_key).await;
    let mut n = 0;
    for round in 0..5 {
        // A listing, five uploads, a download.
        let mut dc = ctl.data("MLSD").await;
        assert_eq!(
            dc.handshake_kind(),
            Some(HandshakeKind::Resumed),
            "MLSD, round {round}"
        );
        dc.read_all().await;
        assert_eq!(ctl.reply().await.0, 226);
        for i in 0..5 {
            let body = rawftp::data(1000 + i, (round * 10 + i) as u64);
            let mut dc = ctl.data(&format!("STOR f{round}-{i}.bin")).await;
            assert_eq!(
                dc.handshake_kind(),
                Some(HandshakeKind::Resumed),
                "STOR {round}-{i}"
            );
            assert!(dc.write(&body).await);
            dc.finish().await;
            let (code, text) = ctl.reply().await;
            assert_eq!(code, 226, "STOR {round}-{i}: {text}");
        }
        let mut dc = ctl.data(&format!("RETR f{round}-0.bin")).await;
        assert_eq!(
            dc.handshake_kind(),
            Some(HandshakeKind::Resumed),
            "RETR, round {round}"
        );
        assert_eq!(dc.read_all().await, rawftp::data(1000, (round * 10) as u64));
        assert_eq!(ctl.reply().await.0, 226);
        n += 7;
    }
    assert_eq!(n, 35);
    let _ = std::fs::remove_dir_all(&dir);
}

each_store!(a_refused_handshake_plants_nothing_to_resume);
/// A stranger's refused full handshake leaves nothing it could resume on the next passive
/// port: no TLS 1.2 session in the cache, no ticket (TLS 1.3 tickets go to downloads'
/// connections only once they resumed). Twice in a row, over TLS 1.2 and TLS 1.3, with the
/// stranger's ClientHello after the RETR, the stranger reads nothing and the client gets its
/// file.
async fn a_refused_handshake_plants_nothing_to_resume(kind: S3Kind) {
    use tokio::io::AsyncReadExt;
    use tokio_rustls::rustls::version::{TLS12, TLS13};
    let s3 = TestS3::start(kind).await;
    s3.create_bucket(BUCKET).await;
    let secret = rawftp::data(64 * 1024, 43);
    s3.put(BUCKET, "secret.bin", secret.clone()).await;
    let dir = temp_dir("ftps-plant");
    let tls = gateway::ftp::tls::load_or_create(&dir).unwrap();
    let gw = start(&s3, |c| c.tls = Some(tls)).await;
    let cert = dir.join(gateway::ftp::tls::CERT_FILE);
    let data_addr = |port| std::net::SocketAddr::new(gw.local_addr().ip(), port);
    let client_tls = rawftp::tls_trusting(&cert);
    let mut ctl = Raw::connect(gw.local_addr())
        .await
        .auth_tls(client_tls.clone())
        .await;
    ctl.login(&user(&s3), &s3.secret_key).await;
    for versions in [&[&TLS12][..], &[&TLS13][..]] {
        let planter = rawftp::tls_trusting_versions(&cert, versions);
        for round in 1..=2 {
            let port = ctl.epsv().await;
            let tcp = tokio::net::TcpStream::connect(data_addr(port))
                .await
                .unwrap();
            let (code, text) = ctl.cmd("RETR secret.bin").await;
            assert_eq!(code, 150, "{text}");
            let stranger_tcp = tokio::net::TcpStream::connect(data_addr(port))
                .await
                .unwrap();
            // The stranger's handshake first, to its end: the gateway closes the connection
            // it refused.
            let mut stolen = Vec::new();
            let ended = tokio::time::timeout(Duration::from_secs(30), async {
                if let Ok(mut s) = planter.connect(server_name(), stranger_tcp).await {
                    let _ = s.read_to_end(&mut stolen).await;
                }
            })
            .await;
            assert!(
                ended.is_ok(),
                "{versions:?} round {round}: the stranger's connection is still open"
            );
            assert!(
                stolen.is_empty(),
                "{versions:?} round {round}: the stranger read {} bytes",
                stolen.len()
            );
            let mut dc = client_tls
                .connect(server_name(), tcp)
                .await
                .expect("the client's data TLS");
            let mut back = Vec::new();
            dc.read_to_end(&mut back)
                .await
                .expect("the client's download");
            let (code, text) = ctl.reply().await;
            assert_eq!(code, 226, "{versions:?} round {round}: {text}");
            assert!(
                back == secret,
                "{versions:?} round {round}: the client's file"
            );
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// The name the test clients give the gateway's certificate.
fn server_name() -> rustls::pki_types::ServerName<'static> {
    rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap()
}
