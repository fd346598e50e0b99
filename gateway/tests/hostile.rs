//! Hostile clients end to end (issue 20): the login lockout cannot be walked around with one's
//! own account or with parallel attempts; connections that never log in are closed and
//! capped; a locked-out address's tries and junk command lines cost a bounded number of short
//! log lines; the audit log records every change and logout; a listener that is not loopback
//! requires TLS unless told otherwise. Real FTP clients (suppaftp, or a bare socket where a
//! test must misbehave) against the gateway against the selected stores.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod ftpops;
#[macro_use]
mod support;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ftpops::{put, refused};
use gateway::ftp::limits::{LockoutPolicy, SessionLimits};
use gateway::path::BucketPath;
use gateway::team::users::{
    Directory, Rights, Secret, Storage, TeamUser, UserTable, hash_password,
};
use gateway::{Gateway, GatewayConfig, GatewayHandle, S3Settings};
use suppaftp::tokio::AsyncFtpStream;
use support::{S3Kind, TestS3};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

const BUCKET: &str = "hostile-bucket";
const PASSWORD: &str = "team-pass";

/// A control connection over a bare socket, for clients that misbehave on purpose.
struct Bare {
    ctl: BufReader<TcpStream>,
}

impl Bare {
    /// Connects and reads the greeting: the connection and the greeting's code and text.
    async fn connect(addr: SocketAddr) -> (Bare, u32, String) {
        let s = TcpStream::connect(addr).await.expect("connect");
        let mut bare = Bare {
            ctl: BufReader::new(s),
        };
        let (code, text) = bare.reply().await.unwrap_or((0, String::new()));
        (bare, code, text)
    }

    /// Connects and expects `220`.
    async fn greeted(addr: SocketAddr) -> Bare {
        let (bare, code, text) = Bare::connect(addr).await;
        assert_eq!(code, 220, "greeting: {text}");
        bare
    }

    /// One reply (multi-line replies whole); `None` when the server closed the connection.
    async fn reply(&mut self) -> Option<(u32, String)> {
        let mut all = String::new();
        loop {
            let mut line = String::new();
            let n = tokio::time::timeout(Duration::from_secs(30), self.ctl.read_line(&mut line))
                .await
                .unwrap_or_else(|_| panic!("no reply within 30 s; so far: {all:?}"))
                .unwrap_or(0);
            if n == 0 {
                return None;
            }
            all.push_str(&line);
            if line.as_bytes().get(3) != Some(&b'-') && line.len() >= 3 {
                let code = line[..3].parse().unwrap_or(0);
                if code != 0 {
                    return Some((code, all));
                }
            }
        }
    }

    async fn send(&mut self, line: &str) -> std::io::Result<()> {
        let w = self.ctl.get_mut();
        w.write_all(format!("{line}\r\n").as_bytes()).await?;
        w.flush().await
    }

    /// Sends a command and reads its reply; `None` when the connection is closed.
    async fn cmd(&mut self, line: &str) -> Option<(u32, String)> {
        self.send(line).await.ok()?;
        self.reply().await
    }
}

fn team_user(name: &str, hash: &str, storage: &Arc<Storage>) -> TeamUser {
    TeamUser {
        name: name.into(),
        password_hash: hash.into(),
        storage: storage.clone(),
        bucket: BUCKET.into(),
        home: BucketPath::parse_str(&format!("team/{name}/")).unwrap(),
        rights: Rights::parse("rw", true).unwrap(),
    }
}

/// A gateway with the team users alice and bob (password [`PASSWORD`]) and the lockout
/// `policy`.
async fn team_gateway(s3: &TestS3, policy: LockoutPolicy) -> GatewayHandle {
    team_gateway_with(s3, policy, |_| {}).await
}

/// [`team_gateway`], with `tweak` applied to its config.
async fn team_gateway_with(
    s3: &TestS3,
    policy: LockoutPolicy,
    tweak: impl FnOnce(&mut GatewayConfig),
) -> GatewayHandle {
    s3.create_bucket(BUCKET).await;
    let settings = S3Settings::custom(s3.endpoint.clone(), s3.region.clone());
    let storage = Arc::new(Storage {
        name: "main".into(),
        settings: settings.clone(),
        access_key_id: s3.access_key.clone(),
        secret: Secret::new(s3.secret_key.clone()),
    });
    let hash = hash_password(PASSWORD).unwrap();
    let users = vec![
        team_user("alice", &hash, &storage),
        team_user("bob", &hash, &storage),
    ];
    let mut config = GatewayConfig::new(settings);
    config.listen = "127.0.0.1:0".parse().unwrap();
    config.users = Some(Arc::new(UserTable::new(Directory::new(users, false))));
    config.lockout = policy;
    tweak(&mut config);
    Gateway::start(config).await.unwrap()
}

/// Connects and logs in with suppaftp; a refusal at the greeting or at the login is its code
/// and text.
async fn try_login(
    addr: SocketAddr,
    name: &str,
    password: &str,
) -> Result<AsyncFtpStream, (u32, String)> {
    let mut ftp = AsyncFtpStream::connect(addr).await.map_err(refused)?;
    ftp.login(name, password).await.map_err(refused)?;
    Ok(ftp)
}

async fn refused_login(addr: SocketAddr, name: &str, password: &str) -> (u32, String) {
    match try_login(addr, name, password).await {
        Ok(_) => panic!("{name} logged in"),
        Err(e) => e,
    }
}

const LOCKOUT: LockoutPolicy = LockoutPolicy {
    max_failures: 3,
    window: Duration::from_secs(300),
};

each_store!(lockout_cannot_be_walked_around);
each_store!(parallel_attempts_count_before_they_end);
each_store!(sessions_that_do_not_log_in_are_closed_and_capped);
each_store!(locked_out_tries_and_junk_lines_cost_few_log_lines);
each_store!(audit_log_records_changes_and_logouts);
each_store!(remote_listener_requires_tls_by_default);
each_store!(behind_a_balancer_the_proxy_header_names_the_client);

/// Point 3: from one address, wrong passwords for bob alternate with good logins of alice
/// (the attacker's own account). Alice's logins do not wipe bob's failures: after the third,
/// the address is locked out, for bob's right password and for alice too.
async fn lockout_cannot_be_walked_around(kind: S3Kind) {
    let s3 = TestS3::start(kind).await;
    let gw = team_gateway(&s3, LOCKOUT).await;
    let addr = gw.local_addr();
    for round in 0..LOCKOUT.max_failures {
        let (code, text) = refused_login(addr, "bob", "guess").await;
        assert_eq!(code, 530, "round {round}: {text}");
        assert!(
            text.contains("wrong user name or password"),
            "round {round}: {text}"
        );
        if round + 1 == LOCKOUT.max_failures {
            break;
        }
        let mut alice = try_login(addr, "alice", PASSWORD)
            .await
            .unwrap_or_else(|e| panic!("round {round}: alice refused: {e:?}"));
        alice.quit().await.unwrap();
    }
    for name in ["bob", "alice"] {
        let (code, text) = refused_login(addr, name, PASSWORD).await;
        assert!(matches!(code, 421 | 530), "{name}: {code} {text}");
        assert!(
            text.to_lowercase().contains("too many failed logins"),
            "{name}: {text}"
        );
    }
}

/// Point 3: attempts running at once hold their places in the count. Eight connections send a
/// wrong password for bob at the same moment: exactly `max_failures` of them are checked; the
/// rest are refused as locked out (or closed), none of them after a check of the password.
async fn parallel_attempts_count_before_they_end(kind: S3Kind) {
    let s3 = TestS3::start(kind).await;
    let gw = team_gateway(&s3, LOCKOUT).await;
    let addr = gw.local_addr();
    let mut clients = Vec::new();
    for _ in 0..8 {
        let mut c = Bare::greeted(addr).await;
        let (code, text) = c.cmd("USER bob").await.expect("USER");
        assert_eq!(code, 331, "{text}");
        clients.push(c);
    }
    let replies = futures::future::join_all(clients.iter_mut().map(|c| c.cmd("PASS guess"))).await;
    let checked = replies
        .iter()
        .filter(|r| matches!(r, Some((530, t)) if t.contains("wrong user name or password")))
        .count();
    assert_eq!(checked, LOCKOUT.max_failures as usize, "{replies:?}");
    for r in &replies {
        match r {
            Some((530, _)) | None => {}
            other => panic!("{other:?} in {replies:?}"),
        }
    }
}

/// Point 4: a connection that does not log in within `login_timeout` is closed although it
/// keeps sending NOOP; a logged-in session is not; connections not logged in are capped per
/// address below the per-address session limit.
async fn sessions_that_do_not_log_in_are_closed_and_capped(kind: S3Kind) {
    let s3 = TestS3::start(kind).await;
    s3.create_bucket(BUCKET).await;
    let login_timeout = Duration::from_secs(2);
    let gw = support::start_gateway(
        S3Settings::custom(s3.endpoint.clone(), s3.region.clone()),
        |c| {
            c.login_timeout = login_timeout;
            c.sessions = SessionLimits {
                max_sessions: 64,
                max_per_ip: 4,
            };
        },
    )
    .await;
    let addr = gw.local_addr();
    let user = format!("{}/{BUCKET}", s3.access_key);
    let mut logged_in = try_login(addr, &user, &s3.secret_key).await.unwrap();

    // Two may wait for their login (half of max_per_ip); a third is refused.
    let mut waiting = Bare::greeted(addr).await;
    let mut second = Bare::greeted(addr).await;
    let (_third, code, text) = Bare::connect(addr).await;
    assert_eq!(code, 421, "third connection not logged in: {text}");
    assert!(text.contains("not logged in"), "{text}");
    // Once one of them logs in, there is a place again.
    assert_eq!(second.cmd(&format!("USER {user}")).await.unwrap().0, 331);
    let (code, text) = second
        .cmd(&format!("PASS {}", s3.secret_key))
        .await
        .unwrap();
    assert_eq!(code, 230, "{text}");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_c, code, text) = Bare::connect(addr).await;
        if code == 220 {
            break;
        }
        // The place is given back when the session is counted as logged in, just after 230.
        assert!(Instant::now() < deadline, "still refused: {code} {text}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // NOOP does not keep a connection that never logged in alive.
    let started = Instant::now();
    let deadline = started + login_timeout + Duration::from_secs(20);
    loop {
        assert!(
            Instant::now() < deadline,
            "still open after {:?}",
            started.elapsed()
        );
        match waiting.cmd("NOOP").await {
            Some((200, _)) => tokio::time::sleep(Duration::from_millis(100)).await,
            Some((421, _)) | None => break,
            Some(other) => panic!("NOOP: {other:?}"),
        }
    }
    assert!(
        started.elapsed() >= login_timeout - Duration::from_millis(500),
        "closed before the login timeout: {:?}",
        started.elapsed()
    );
    // The sessions that logged in are still there, idle longer than the login timeout.
    logged_in.noop().await.unwrap();
    assert_eq!(second.cmd("NOOP").await.map(|r| r.0), Some(200));
}

/// Lines of the file at `path` (empty before it exists).
fn log_lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// Waits until `path` has at least `n` lines containing `needle`.
async fn wait_for_lines(path: &Path, needle: &str, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let lines = log_lines(path);
        if lines.iter().filter(|l| l.contains(needle)).count() >= n {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "no {n} lines with {needle:?} in:\n{}",
            lines.join("\n")
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Point 4, with the real binary's log: a 12 KB junk command and a 5,000-character user name
/// are logged cut to a couple of hundred characters; once the address is locked out, twenty
/// more tries write no line at all (the lock itself is one line).
async fn locked_out_tries_and_junk_lines_cost_few_log_lines(kind: S3Kind) {
    let s3 = TestS3::start(kind).await;
    s3.create_bucket(BUCKET).await;
    let dir = support::temp_dir("hostile-log");
    let log = dir.join("server.log");
    let mut child = support::server_command(
        &s3,
        &dir,
        &["--max-login-failures", "2", "--log-level", "info"],
    )
    .env_remove("RUST_LOG")
    .stderr(std::fs::File::create(&log).unwrap())
    .spawn()
    .unwrap();
    let (addr, _printed, _lines) = support::listen_address(&mut child).await;

    // Junk: a 12 KB line that is all verb, then a 5,000-character user name (a failed login).
    let mut junk = Bare::greeted(addr).await;
    let (code, text) = junk.cmd(&"X".repeat(12 * 1024)).await.expect("junk line");
    assert_eq!(code / 100, 5, "{text}");
    assert_eq!(
        junk.cmd(&format!("USER {}", "u".repeat(5000)))
            .await
            .unwrap()
            .0,
        331
    );
    assert_eq!(junk.cmd("PASS guess").await.unwrap().0, 530);
    assert_eq!(junk.cmd("QUIT").await.unwrap().0, 221);
    // The second failure locks the address.
    let mut second = Bare::greeted(addr).await;
    assert_eq!(second.cmd("USER bob").await.unwrap().0, 331);
    assert_eq!(second.cmd("PASS guess").await.unwrap().0, 530);
    assert_eq!(second.cmd("QUIT").await.unwrap().0, 221);
    wait_for_lines(&log, "address locked out", 1).await;
    wait_for_lines(&log, "client disconnected", 2).await;

    let before = log_lines(&log).len();
    for attempt in 0..20 {
        let (mut c, code, text) = Bare::connect(addr).await;
        if code == 220 {
            // Not refused at once: the login must be.
            let _ = c.cmd("USER bob").await;
            let r = c.cmd(&format!("PASS {PASSWORD}")).await;
            assert!(
                matches!(r, Some((530, _)) | None),
                "attempt {attempt}: {r:?}"
            );
        } else {
            assert_eq!(code, 421, "attempt {attempt}: {text}");
            assert!(
                text.to_lowercase().contains("too many failed logins"),
                "{text}"
            );
        }
    }
    // Every try has had its answer, and each line is written before its answer.
    let lines = log_lines(&log);
    let added = &lines[before..];
    assert!(
        added.len() <= 1,
        "{} log lines for 20 tries of a locked-out address:\n{}",
        added.len(),
        added.join("\n")
    );
    assert_eq!(
        lines
            .iter()
            .filter(|l| l.contains("address locked out"))
            .count(),
        1,
        "{}",
        lines.join("\n")
    );
    for line in &lines {
        assert!(
            line.chars().count() <= 600,
            "a log line of {} characters: {}…",
            line.chars().count(),
            line.chars().take(300).collect::<String>()
        );
    }
    let _ = child.kill().await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// Point 5: MKD, STOR, RNFR/RNTO, DELE (done and refused), RMD and the logout each write an
/// audit line with the session's client and user; the rename has `from` and `to`.
async fn audit_log_records_changes_and_logouts(kind: S3Kind) {
    let s3 = TestS3::start(kind).await;
    s3.create_bucket(BUCKET).await;
    let dir = support::temp_dir("hostile-audit");
    let audit = dir.join("audit.log");
    let gw = support::start_gateway(
        S3Settings::custom(s3.endpoint.clone(), s3.region.clone()),
        |c| c.audit_log = Some(audit.clone()),
    )
    .await;
    let user = format!("{}/{BUCKET}", s3.access_key);
    let mut ftp = ftpops::binary_login(gw.local_addr(), &user, &s3.secret_key).await;
    ftp.mkdir("d").await.unwrap();
    put(&mut ftp, "d/a.txt", b"audit me").await.unwrap();
    ftp.rename("d/a.txt", "d/b.txt").await.unwrap();
    ftp.rm("d/b.txt").await.unwrap();
    let (code, _) = refused(ftp.rm("d/missing.txt").await.unwrap_err());
    assert_eq!(code, 550);
    ftp.rmdir("d").await.unwrap();
    ftp.quit().await.unwrap();
    // The logout is written when the server has closed the session.
    wait_for_lines(&audit, r#""event":"logout""#, 1).await;
    gw.stop(Duration::from_secs(5)).await;

    let lines: Vec<serde_json::Value> = log_lines(&audit)
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let text = log_lines(&audit).join("\n");
    let events: Vec<&str> = lines.iter().map(|l| l["event"].as_str().unwrap()).collect();
    assert_eq!(
        events,
        [
            "login", "mkdir", "transfer", "rename", "delete", "delete", "rmdir", "logout"
        ],
        "{text}"
    );
    let session = &lines[0]["session"];
    for l in &lines {
        assert_eq!(&l["session"], session, "{l}");
        assert_eq!(l["user"], user.as_str(), "{l}");
        assert!(
            l["client"].as_str().unwrap().starts_with("127.0.0.1:"),
            "{l}"
        );
        assert!(l["time"].as_str().unwrap().ends_with('Z'), "{l}");
    }
    let field = |i: usize, key: &str| lines[i][key].as_str().map(str::to_owned);
    assert_eq!(field(1, "path").as_deref(), Some("/d"));
    assert_eq!(field(1, "outcome").as_deref(), Some("ok"));
    assert_eq!(field(3, "from").as_deref(), Some("/d/a.txt"));
    assert_eq!(field(3, "to").as_deref(), Some("/d/b.txt"));
    assert_eq!(field(3, "path"), None);
    assert_eq!(field(4, "path").as_deref(), Some("/d/b.txt"));
    assert_eq!(field(4, "outcome").as_deref(), Some("ok"));
    assert_eq!(field(5, "path").as_deref(), Some("/d/missing.txt"));
    assert_eq!(field(5, "outcome").as_deref(), Some("failed"));
    assert!(field(5, "reason").is_some(), "{}", lines[5]);
    assert_eq!(field(6, "path").as_deref(), Some("/d"));
    // (moto's key is `testing`/`testing`: its secret is in every user name.)
    if !user.contains(&s3.secret_key) {
        assert!(
            !text.contains(&s3.secret_key),
            "secret key in the audit log"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Point 6: `--listen` on an address other than loopback requires TLS by default (a plain
/// `USER` gets 534); `--require-tls=false` (or `require_tls = false` in the config file) allows
/// plain FTP and the start-up output says that passwords then cross the network in clear.
async fn remote_listener_requires_tls_by_default(kind: S3Kind) {
    let s3 = TestS3::start(kind).await;
    s3.create_bucket(BUCKET).await;
    let dir = support::temp_dir("hostile-tls");
    let user = format!("{}/{BUCKET}", s3.access_key);
    let config = dir.join("server.toml");
    std::fs::write(&config, "[server]\nrequire_tls = false\n").unwrap();
    let config = config.to_string_lossy().into_owned();
    let remote = ["--listen", "0.0.0.0:0", "--allow-remote"];
    let cases: [(&[&str], bool); 3] = [
        (&[], true),
        (&["--require-tls=false"], false),
        (&["--config", &config], false),
    ];
    for (extra, required) in cases {
        let args: Vec<&str> = remote.iter().chain(extra).copied().collect();
        let mut child = support::server_command(&s3, &dir, &args).spawn().unwrap();
        let (listen, printed, _lines) = support::listen_address(&mut child).await;
        assert!(listen.ip().is_unspecified(), "{printed}");
        let addr = SocketAddr::from(([127, 0, 0, 1], listen.port()));
        if required {
            assert!(printed.contains("TLS required"), "{printed}");
            let mut plain = Bare::greeted(addr).await;
            let (code, text) = plain.cmd(&format!("USER {user}")).await.unwrap();
            assert_eq!(code, 534, "plain USER on a remote listener: {text}");
        } else {
            assert!(
                printed.contains("cross the network in clear"),
                "{extra:?}: {printed}"
            );
            let mut ftp = try_login(addr, &user, &s3.secret_key)
                .await
                .unwrap_or_else(|e| panic!("{extra:?}: {e:?}"));
            ftp.quit().await.unwrap();
        }
        let _ = child.kill().await;
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Point 5, SITE commands: each writes an audit line with the command as logged. The relay is
/// the only part that sees a SITE command (libunftp answers unknown ones itself): it sends
/// `Event::site` for each.
#[cfg_attr(
    not(test_store = "local"),
    ignore = "store local not selected (BUCKETFTP_TEST_STORES)"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_log_records_site_commands() {
    let s3 = TestS3::start(S3Kind::Local).await;
    s3.create_bucket(BUCKET).await;
    let dir = support::temp_dir("hostile-site");
    let audit = dir.join("audit.log");
    let gw = support::start_gateway(
        S3Settings::custom(s3.endpoint.clone(), s3.region.clone()),
        |c| c.audit_log = Some(audit.clone()),
    )
    .await;
    let user = format!("{}/{BUCKET}", s3.access_key);
    let mut ftp = ftpops::binary_login(gw.local_addr(), &user, &s3.secret_key).await;
    let (code, _) = refused(ftp.site("CHMOD 600 a.txt").await.unwrap_err());
    assert_eq!(code / 100, 5);
    ftp.quit().await.unwrap();
    wait_for_lines(&audit, r#""event":"logout""#, 1).await;
    gw.stop(Duration::from_secs(5)).await;
    let text = log_lines(&audit).join("\n");
    let site: Vec<serde_json::Value> = log_lines(&audit)
        .iter()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|l| l["event"] == "site")
        .collect();
    assert_eq!(site.len(), 1, "{text}");
    assert_eq!(site[0]["command"], "SITE CHMOD 600 a.txt", "{text}");
    assert_eq!(site[0]["outcome"], "failed", "{text}");
    assert_eq!(site[0]["user"], user.as_str(), "{text}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A control connection through a load balancer: the PROXY header first, then the greeting.
async fn via_balancer(addr: SocketAddr, source: &str, header: &[u8]) -> Option<(Bare, u32)> {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket
        .bind(SocketAddr::new(source.parse().unwrap(), 0))
        .unwrap();
    let mut s = socket.connect(addr).await.expect("connect");
    s.write_all(header).await.unwrap();
    let mut bare = Bare {
        ctl: BufReader::new(s),
    };
    let (code, _) = bare.reply().await?;
    Some((bare, code))
}

fn proxy_v1(client: &str, port: u16) -> Vec<u8> {
    format!("PROXY TCP4 {client} 127.0.0.1 {port} 21\r\n").into_bytes()
}

/// Behind a load balancer (PROXY protocol): the client its header names is the one the audit
/// log, the lockout and the data connection check see; one client's wrong passwords lock out
/// that client, not everyone behind the balancer; a connection without a header, or from a
/// source whose headers are not trusted, is closed before the greeting; a data connection is
/// taken only when its header names the control connection's client.
async fn behind_a_balancer_the_proxy_header_names_the_client(kind: S3Kind) {
    let s3 = TestS3::start(kind).await;
    let dir = support::temp_dir("hostile-proxy");
    let audit = dir.join("audit.log");
    // Team users: a wrong password is wrong on every store (moto takes any secret key).
    let gw = team_gateway_with(&s3, LOCKOUT, |c| {
        c.audit_log = Some(audit.clone());
        c.proxy_protocol = Some(gateway::ftp::proxy_protocol::ProxyRule::new(vec![
            gateway::ftp::proxy_protocol::parse_source("127.0.0.1/32").unwrap(),
        ]));
    })
    .await;
    let addr = gw.local_addr();

    // No header, or a header from a source that is not the balancer: closed, no greeting.
    let (mut bare, code, _) = Bare::connect(addr).await;
    assert_eq!(code, 0, "a connection without a header gets no greeting");
    assert!(bare.cmd("NOOP").await.is_none());
    assert!(
        via_balancer(addr, "127.0.0.2", &proxy_v1("203.0.113.7", 40000))
            .await
            .is_none(),
        "a header from an untrusted source"
    );

    // An attacker at 203.0.113.66 guesses until locked out ...
    for _ in 0..3 {
        let (mut c, code) = via_balancer(addr, "127.0.0.1", &proxy_v1("203.0.113.66", 40001))
            .await
            .expect("greeting");
        assert_eq!(code, 220);
        c.cmd("USER bob").await;
        let (code, _) = c.cmd("PASS wrong").await.unwrap_or((0, String::new()));
        assert_eq!(code, 530);
    }
    let locked = via_balancer(addr, "127.0.0.1", &proxy_v1("203.0.113.66", 40002)).await;
    assert_eq!(
        locked.map(|(_, c)| c),
        Some(421),
        "the attacker is locked out"
    );

    // ... and the client at 203.0.113.7, behind the same balancer, is not.
    let (mut c, code) = via_balancer(addr, "127.0.0.1", &proxy_v1("203.0.113.7", 40003))
        .await
        .expect("greeting");
    assert_eq!(code, 220);
    c.cmd("USER alice").await;
    let (code, text) = c.cmd(&format!("PASS {PASSWORD}")).await.unwrap();
    assert_eq!(code, 230, "{text}");
    assert_eq!(c.cmd("TYPE I").await.unwrap().0, 200);

    // Its data connection comes through the balancer too: only one whose header names it is
    // taken.
    let (code, text) = c.cmd("EPSV").await.unwrap();
    assert_eq!(code, 229, "{text}");
    let port: u16 = text
        .split("|||")
        .nth(1)
        .and_then(|r| r.split('|').next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("{text}"));
    let data_at = SocketAddr::new(addr.ip(), port);
    let mut stranger = TcpStream::connect(data_at).await.unwrap();
    stranger
        .write_all(&proxy_v1("203.0.113.8", 40004))
        .await
        .unwrap();
    let _ = stranger.write_all(b"forged").await;
    let _ = stranger.shutdown().await;
    let mut mine = TcpStream::connect(data_at).await.unwrap();
    mine.write_all(&proxy_v1("203.0.113.7", 40005))
        .await
        .unwrap();
    c.send("STOR behind-lb.txt").await.unwrap();
    let (code, text) = c.reply().await.unwrap();
    assert_eq!(code, 150, "{text}");
    mine.write_all(b"through the balancer").await.unwrap();
    mine.shutdown().await.unwrap();
    let (code, text) = c.reply().await.unwrap();
    assert_eq!(code, 226, "{text}");
    assert_eq!(
        s3.get(BUCKET, "team/alice/behind-lb.txt").await.as_deref(),
        Some(&b"through the balancer"[..])
    );
    c.cmd("QUIT").await;

    // The audit log names the clients, not the balancer.
    wait_for_lines(&audit, r#""event":"logout""#, 1).await;
    gw.stop(Duration::from_secs(5)).await;
    let lines = log_lines(&audit);
    let of = |event: &str, client: &str| {
        lines
            .iter()
            .filter(|l| l.contains(&format!(r#""event":"{event}""#)) && l.contains(client))
            .count()
    };
    assert_eq!(of("login", "203.0.113.66:"), 3, "{}", lines.join("\n"));
    assert_eq!(of("login", "203.0.113.7:40003"), 1, "{}", lines.join("\n"));
    assert_eq!(
        of("transfer", "203.0.113.7:40003"),
        1,
        "{}",
        lines.join("\n")
    );
    assert!(
        !lines.iter().any(|l| l.contains("\"client\":\"127.0.0.1")),
        "no line names the balancer: {}",
        lines.join("\n")
    );
    let _ = std::fs::remove_dir_all(&dir);
}
