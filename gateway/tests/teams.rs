//! Team logins end to end: `[[user]]` entries (argon2id passwords, a storage, a bucket, a
//! home folder, rights, the delete switch, `HASH` as a read) against every selected store,
//! `max_file_size`,
//! and the `bucketftp-server --config` binary itself: a flag on the command line winning
//! over the file, start-up errors naming file, line and key, `hash-password`, and SIGHUP
//! reloads that keep running sessions.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod ftpops;
mod rawftp;
#[macro_use]
mod support;

use std::io::{BufRead, BufReader, Write as _};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use ftpops::{appe, get, put, refused};
use gateway::path::BucketPath;
use gateway::team::users::{
    Directory, Rights, Secret, Storage, TeamUser, UserTable, hash_password,
};
use gateway::{Gateway, GatewayConfig, GatewayHandle, S3Settings, TransferLimits};
use suppaftp::tokio::AsyncFtpStream;
use support::{S3Kind, TestS3};

const BUCKET: &str = "team-bucket";
const MIB: usize = 1024 * 1024;

fn user(name: &str, hash: &str, storage: &Arc<Storage>, home: &str, rights: Rights) -> TeamUser {
    TeamUser {
        name: name.into(),
        password_hash: hash.into(),
        storage: storage.clone(),
        bucket: BUCKET.into(),
        home: BucketPath::parse_str(home).unwrap(),
        rights,
    }
}

struct Team {
    s3: TestS3,
    gw: GatewayHandle,
    table: Arc<UserTable>,
    storage: Arc<Storage>,
    hash: String,
}

impl Team {
    async fn start(kind: S3Kind, max_file_size: Option<u64>) -> Team {
        let s3 = TestS3::start(kind).await;
        s3.create_bucket(BUCKET).await;
        let settings = S3Settings::custom(s3.endpoint.clone(), s3.region.clone());
        let storage = Arc::new(Storage {
            name: "main".into(),
            settings: settings.clone(),
            access_key_id: s3.access_key.clone(),
            secret: Secret::new(s3.secret_key.clone()),
        });
        // One hash for every user keeps the test fast; each user's password is the same.
        let hash = hash_password("team-pass").unwrap();
        let users = vec![
            user(
                "alice",
                &hash,
                &storage,
                "team/alice/",
                Rights::parse("rw", true).unwrap(),
            ),
            user(
                "bob",
                &hash,
                &storage,
                "team/bob",
                Rights::parse("r", true).unwrap(),
            ),
            user(
                "carol",
                &hash,
                &storage,
                "",
                Rights::parse("w", false).unwrap(),
            ),
        ];
        let table = Arc::new(UserTable::new(Directory::new(users, false)));
        let mut config = GatewayConfig::new(settings);
        config.listen = "127.0.0.1:0".parse().unwrap();
        config.limits = TransferLimits::new(5 * MIB, 2, 64 * MIB).unwrap();
        config.users = Some(table.clone());
        config.max_file_size = max_file_size;
        let gw = Gateway::start(config).await.unwrap();
        Team {
            s3,
            gw,
            table,
            storage,
            hash,
        }
    }

    async fn try_login(&self, name: &str, password: &str) -> Result<AsyncFtpStream, (u32, String)> {
        let mut ftp = AsyncFtpStream::connect(self.gw.local_addr()).await.unwrap();
        ftp.login(name, password).await.map_err(refused)?;
        ftp.transfer_type(suppaftp::types::FileType::Binary)
            .await
            .unwrap();
        Ok(ftp)
    }

    async fn login(&self, name: &str) -> AsyncFtpStream {
        self.try_login(name, "team-pass")
            .await
            .unwrap_or_else(|e| panic!("{name}: {e:?}"))
    }
}

async fn names(ftp: &mut AsyncFtpStream, dir: &str) -> Vec<String> {
    let mut n: Vec<String> = ftp
        .nlst(Some(dir))
        .await
        .unwrap_or_else(|e| panic!("NLST {dir}: {e}"))
        .into_iter()
        .map(|l| {
            l.trim_end()
                .rsplit('/')
                .next()
                .unwrap_or_default()
                .to_owned()
        })
        .collect();
    n.sort();
    n
}

each_store!(homes_keep_users_apart);
each_store!(rights_and_the_delete_switch);
each_store!(who_may_log_in);
each_store!(hash_needs_the_read_right);

/// A home folder is the user's `/`: listings, uploads, renames and every `..` stay inside it.
async fn homes_keep_users_apart(kind: S3Kind) {
    let t = Team::start(kind, None).await;
    t.s3.put(BUCKET, "outside.txt", b"not alice's".to_vec())
        .await;
    t.s3.put(BUCKET, "team/bob/readme.txt", b"bob's".to_vec())
        .await;
    t.s3.put(BUCKET, "team/alice/old.txt", b"old".to_vec())
        .await;

    let mut a = t.login("alice").await;
    assert_eq!(a.pwd().await.unwrap(), "/");
    assert_eq!(names(&mut a, "/").await, vec!["old.txt"]);
    put(&mut a, "new.txt", b"hello").await.unwrap();
    assert_eq!(
        t.s3.get(BUCKET, "team/alice/new.txt").await.unwrap(),
        b"hello"
    );
    assert_eq!(get(&mut a, "/old.txt", 0).await.unwrap(), b"old");

    // Escapes: `..` stops at the home folder, so these name paths inside it.
    for path in [
        "../outside.txt",
        "../../outside.txt",
        "/../../team/bob/readme.txt",
        "..\\..\\outside.txt",
        "../bob/readme.txt",
    ] {
        let (code, _) = refused(get(&mut a, path, 0).await.unwrap_err());
        assert_eq!(code, 550, "{path}");
    }
    a.cwd("../../..").await.unwrap();
    assert_eq!(a.pwd().await.unwrap(), "/");
    assert_eq!(names(&mut a, "/").await, vec!["new.txt", "old.txt"]);
    put(&mut a, "../../escape.txt", b"stays").await.unwrap();
    assert_eq!(
        t.s3.get(BUCKET, "team/alice/escape.txt").await.unwrap(),
        b"stays"
    );
    assert!(t.s3.get(BUCKET, "escape.txt").await.is_none());

    a.mkdir("sub").await.unwrap();
    assert!(t.s3.get(BUCKET, "team/alice/sub/").await.is_some());
    a.rename("new.txt", "/../sub/moved.txt").await.unwrap();
    assert_eq!(
        t.s3.get(BUCKET, "team/alice/sub/moved.txt").await.unwrap(),
        b"hello"
    );
    let (code, _) = refused(a.rename("sub", "/").await.unwrap_err());
    assert_eq!(code, 550, "renaming onto the home folder");
    a.rm("sub/moved.txt").await.unwrap();
    assert!(t.s3.get(BUCKET, "team/alice/sub/moved.txt").await.is_none());

    // Nothing outside the home folder changed.
    assert_eq!(
        t.s3.get(BUCKET, "outside.txt").await.unwrap(),
        b"not alice's"
    );
    assert_eq!(
        t.s3.get(BUCKET, "team/bob/readme.txt").await.unwrap(),
        b"bob's"
    );
    let mut keys = t.s3.keys(BUCKET, "").await;
    keys.sort();
    let others = t.s3.listed("", &["outside.txt", "team/bob/readme.txt"]);
    assert!(
        keys.iter()
            .all(|k| k.starts_with("team/alice/") || others.contains(k)),
        "{keys:?}"
    );

    // A home folder with nothing in it yet still opens.
    t.s3.put(BUCKET, "team/bob/readme.txt", b"bob's".to_vec())
        .await;
    let mut c = t.login("carol").await;
    c.cwd("/").await.unwrap();
}

/// `r` reads only, `w` writes only, `delete = false` keeps files: every refusal is 550 with
/// the reason, and nothing changes in the bucket.
async fn rights_and_the_delete_switch(kind: S3Kind) {
    let t = Team::start(kind, None).await;
    t.s3.put(BUCKET, "team/bob/readme.txt", b"bob's".to_vec())
        .await;
    t.s3.put(BUCKET, "keep.txt", b"keep".to_vec()).await;

    let mut b = t.login("bob").await;
    assert_eq!(names(&mut b, "/").await, vec!["readme.txt"]);
    assert_eq!(get(&mut b, "readme.txt", 0).await.unwrap(), b"bob's");
    let read_only = "may only read";
    let (code, text) = refused(put(&mut b, "x.txt", b"x").await.unwrap_err());
    assert_eq!(code, 550);
    assert!(text.contains(read_only), "{text}");
    let (code, text) = refused(b.mkdir("d").await.unwrap_err());
    assert!(code == 550 && text.contains(read_only), "{code} {text}");
    let (code, text) = refused(b.rm("readme.txt").await.unwrap_err());
    assert!(code == 550 && text.contains(read_only), "{code} {text}");
    let (code, text) = refused(b.rename("readme.txt", "r2.txt").await.unwrap_err());
    assert!(code == 550 && text.contains(read_only), "{code} {text}");
    let (code, _) = refused(appe(&mut b, "readme.txt", b"more").await.unwrap_err());
    assert_eq!(code, 550);
    assert_eq!(
        t.s3.keys(BUCKET, "team/bob/").await,
        t.s3.listed("team/bob/", &["team/bob/readme.txt"])
    );
    assert_eq!(
        t.s3.get(BUCKET, "team/bob/readme.txt").await.unwrap(),
        b"bob's"
    );

    let mut c = t.login("carol").await;
    put(&mut c, "drop.txt", b"dropped").await.unwrap();
    assert_eq!(t.s3.get(BUCKET, "drop.txt").await.unwrap(), b"dropped");
    let write_only = "may only upload";
    let (code, text) = refused(c.nlst(Some("/")).await.unwrap_err());
    assert!(code == 550 && text.contains(write_only), "{code} {text}");
    let (code, text) = refused(get(&mut c, "keep.txt", 0).await.unwrap_err());
    assert!(code == 550 && text.contains(write_only), "{code} {text}");
    let (code, text) = refused(c.rm("keep.txt").await.unwrap_err());
    assert!(
        code == 550 && text.contains("may not delete"),
        "{code} {text}"
    );
    c.mkdir("inbox").await.unwrap();
    let (code, text) = refused(c.rmdir("inbox").await.unwrap_err());
    assert!(
        code == 550 && text.contains("may not delete"),
        "{code} {text}"
    );
    assert_eq!(t.s3.get(BUCKET, "keep.txt").await.unwrap(), b"keep");
    assert!(t.s3.get(BUCKET, "inbox/").await.is_some());

    // alice (rw, delete = true) may delete.
    let mut a = t.login("alice").await;
    put(&mut a, "gone.txt", b"x").await.unwrap();
    a.rm("gone.txt").await.unwrap();
    assert!(t.s3.get(BUCKET, "team/alice/gone.txt").await.is_none());
}

/// `HASH` and the `X…` hash commands tell what a file holds, so they are reads: refused to
/// a write-only login (550, the reason), even for the file it just uploaded; answered to a
/// login that may read, for the very same object.
async fn hash_needs_the_read_right(kind: S3Kind) {
    use md5::{Digest as _, Md5};
    use sha2::Sha256;
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    let t = Team::start(kind, None).await;
    let body = b"what bob may read".to_vec();
    t.s3.put(BUCKET, "team/bob/readme.txt", body.clone()).await;

    // carol: permissions "w", home "/" (the bucket's root).
    let mut c = rawftp::Raw::connect(t.gw.local_addr()).await;
    c.login("carol", "team-pass").await;
    let mut dc = c.data("STOR mine.txt").await;
    assert!(dc.write(b"carol's own").await);
    dc.finish().await;
    assert_eq!(c.reply().await.0, 226, "{kind:?}: carol uploads");
    for cmd in [
        "HASH team/bob/readme.txt",
        "XMD5 team/bob/readme.txt",
        "XSHA256 team/bob/readme.txt",
        "HASH mine.txt",
        "XMD5 mine.txt",
    ] {
        let (code, text) = c.cmd(cmd).await;
        assert_eq!(code, 550, "{kind:?}: carol (w): {cmd}: {text}");
        assert!(
            text.contains("may only upload"),
            "{kind:?}: carol (w): {cmd}: the reason: {text}"
        );
    }
    // Still a working session: the refusals were about reading, nothing else.
    assert_eq!(c.cmd("NOOP").await.0, 200);

    // bob: permissions "r", home team/bob: the same object.
    let mut b = rawftp::Raw::connect(t.gw.local_addr()).await;
    b.login("bob", "team-pass").await;
    let last = body.len() - 1;
    let (code, text) = b.cmd("HASH readme.txt").await;
    assert_eq!(
        (code, text.trim()),
        (
            213,
            format!(
                "213 SHA-256 0-{last} {} readme.txt",
                hex(&Sha256::digest(&body))
            )
            .as_str()
        ),
        "{kind:?}: bob (r): HASH"
    );
    let (code, text) = b.cmd("XMD5 readme.txt").await;
    assert_eq!(
        (code, text.trim()),
        (250, format!("250 {}", hex(&Md5::digest(&body))).as_str()),
        "{kind:?}: bob (r): XMD5"
    );
}

/// Only configured users log in (wrong password and unknown user get the same 530), unless
/// key logins are on; a replaced table takes effect for the next login.
async fn who_may_log_in(kind: S3Kind) {
    let t = Team::start(kind, None).await;
    let (code, wrong_pw) = refused_login(&t, "alice", "nope").await;
    assert_eq!(code, 530);
    let (code, unknown) = refused_login(&t, "mallory", "team-pass").await;
    assert_eq!(code, 530);
    assert!(
        wrong_pw.contains("wrong user name or password"),
        "{wrong_pw}"
    );
    assert_eq!(
        wrong_pw, unknown,
        "the refusal must not tell which part was wrong"
    );
    let key_user = format!("{}/{BUCKET}", t.s3.access_key);
    let (code, _) = refused_login(&t, &key_user, &t.s3.secret_key).await;
    assert_eq!(code, 530, "ACCESS_KEY_ID/bucket without key_login");
    assert!(refused_login(&t, "alice", "").await.0 == 530);

    let mut kept = t.login("alice").await;
    // Reload: bob goes, dave comes, key logins are allowed.
    let dave = user(
        "dave",
        &t.hash,
        &t.storage,
        "team/dave/",
        Rights::parse("rw", false).unwrap(),
    );
    let alice = user(
        "alice",
        &t.hash,
        &t.storage,
        "team/alice/",
        Rights::parse("rw", true).unwrap(),
    );
    t.table.replace(Directory::new(vec![alice, dave], true));
    t.login("dave").await;
    assert_eq!(refused_login(&t, "bob", "team-pass").await.0, 530);
    // With key logins on, a name that is neither a user nor ACCESS_KEY_ID/bucket still gets
    // the team refusal, not a hint about the name's form.
    assert_eq!(refused_login(&t, "mallory", "team-pass").await.1, wrong_pw);
    t.try_login(&key_user, &t.s3.secret_key).await.unwrap();
    // The session that logged in before the reload carries on.
    put(&mut kept, "still.txt", b"here").await.unwrap();
    assert_eq!(
        t.s3.get(BUCKET, "team/alice/still.txt").await.unwrap(),
        b"here"
    );
}

async fn refused_login(t: &Team, name: &str, password: &str) -> (u32, String) {
    match t.try_login(name, password).await {
        Ok(_) => panic!("{name} logged in"),
        Err(e) => e,
    }
}

/// An upload that grows past `max_file_size` is refused with 552 and nothing is stored: the
/// old object stays and no multipart upload is left.
#[cfg_attr(
    not(test_store = "local"),
    ignore = "store local not selected (BUCKETFTP_TEST_STORES)"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_file_size_refuses_with_552() {
    let t = Team::start(S3Kind::Local, Some(7 * MIB as u64)).await;
    t.s3.put(BUCKET, "team/alice/big.bin", b"old".to_vec())
        .await;
    let mut a = t.login("alice").await;
    // Multipart (5 MiB parts) past the limit.
    let body: Vec<u8> = (0..12 * MIB).map(|i| (i % 251) as u8).collect();
    let (code, text) = refused(put(&mut a, "big.bin", &body).await.unwrap_err());
    assert_eq!(code, 552, "{text}");
    assert!(text.contains("7 MiB"), "{text}");
    // One part, just past the limit.
    let mut a = t.login("alice").await;
    let (code, _) = refused(
        put(&mut a, "small.bin", &body[..7 * MIB + 1])
            .await
            .unwrap_err(),
    );
    assert_eq!(code, 552);
    // An append that would pass it.
    let mut a = t.login("alice").await;
    put(&mut a, "log.bin", &body[..4 * MIB]).await.unwrap();
    let (code, _) = refused(appe(&mut a, "log.bin", &body[..4 * MIB]).await.unwrap_err());
    assert_eq!(code, 552);
    // At the limit is fine.
    put(&mut a, "exact.bin", &body[..7 * MIB]).await.unwrap();

    assert_eq!(
        t.s3.get(BUCKET, "team/alice/big.bin").await.unwrap(),
        b"old"
    );
    assert!(t.s3.get(BUCKET, "team/alice/small.bin").await.is_none());
    assert_eq!(
        t.s3.get(BUCKET, "team/alice/log.bin").await.unwrap().len(),
        4 * MIB
    );
    assert_eq!(
        t.s3.get(BUCKET, "team/alice/exact.bin")
            .await
            .unwrap()
            .len(),
        7 * MIB
    );
    t.s3.assert_no_uploads_left(BUCKET, "after the quota refusals")
        .await;
}

// ------------------------------------------------------------------ the binary

const BIN: &str = env!("CARGO_BIN_EXE_bucketftp-server");

/// `bucketftp-server hash-password` with `password` on standard input.
fn hash_with_binary(password: &str) -> String {
    let mut child = Command::new(BIN)
        .arg("hash-password")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{password}\n").as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

fn config_text(s3: &TestS3, users: &[(&str, &str)]) -> String {
    let mut text = format!(
        "[server]\nlisten = \"127.0.0.1:1\"\nno_tls = true\n\n[[storage]]\nname = \"main\"\nendpoint = \"{}\"\nregion = \"{}\"\npath_style = true\naccess_key_id = \"{}\"\nsecret_access_key_env = \"TEAM_TEST_SECRET\"\n",
        s3.endpoint, s3.region, s3.access_key
    );
    for (name, hash) in users {
        text.push_str(&format!(
            "\n[[user]]\nname = \"{name}\"\npassword_hash = \"{hash}\"\nstorage = \"main\"\nbucket = \"{BUCKET}\"\nhome = \"{name}/\"\npermissions = \"rw\"\n"
        ));
    }
    text
}

struct Server {
    child: Child,
    port: u16,
    stderr: std::path::PathBuf,
}

impl Server {
    fn start(config: &Path, s3: &TestS3, dir: &Path) -> Server {
        let stderr = dir.join("server.log");
        let mut child = Command::new(BIN)
            .args(["--config"])
            .arg(config)
            // The file says port 1; the command line wins.
            .args(["--listen", "127.0.0.1:0", "--data-dir"])
            .arg(dir)
            .env("TEAM_TEST_SECRET", &s3.secret_key)
            .env_remove("RUST_BACKTRACE")
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let port = loop {
            let line = lines
                .next()
                .unwrap_or_else(|| {
                    panic!(
                        "no ready line; log: {}",
                        std::fs::read_to_string(&stderr).unwrap_or_default()
                    )
                })
                .unwrap();
            if let Some(addr) = line.strip_prefix("BucketFTP listening on ") {
                break addr.rsplit(':').next().unwrap().parse().unwrap();
            }
        };
        std::thread::spawn(move || for _ in lines {});
        Server {
            child,
            port,
            stderr,
        }
    }

    fn hup(&self) {
        let status = Command::new("kill")
            .args(["-HUP", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits until the log has `n` lines containing `needle`.
    async fn wait_log(&self, needle: &str, n: usize) {
        for _ in 0..100 {
            let log = std::fs::read_to_string(&self.stderr).unwrap_or_default();
            if log.matches(needle).count() >= n {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("no {needle:?} in the log");
    }

    async fn login(&self, name: &str, password: &str) -> Result<AsyncFtpStream, (u32, String)> {
        let mut ftp = AsyncFtpStream::connect(("127.0.0.1", self.port))
            .await
            .unwrap();
        ftp.login(name, password).await.map_err(refused)?;
        Ok(ftp)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `--config`: the command line wins over `[server]`, `hash-password` output logs in, SIGHUP
/// puts new users in force without dropping sessions, a broken file on reload keeps the old
/// users, and a broken file at start exits non-zero naming file, line and key.
#[cfg_attr(
    not(test_store = "local"),
    ignore = "store local not selected (BUCKETFTP_TEST_STORES)"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_file_reload_and_errors() {
    let s3 = TestS3::start(S3Kind::Local).await;
    s3.create_bucket(BUCKET).await;
    let dir = support::temp_dir("teams-config");
    let config = dir.join("bucketftp.toml");
    let alice_hash = hash_with_binary("alice-pass-1");
    assert!(
        alice_hash.starts_with("$argon2id$"),
        "hash-password printed {alice_hash:?}"
    );
    std::fs::write(&config, config_text(&s3, &[("alice", &alice_hash)])).unwrap();

    let server = Server::start(&config, &s3, &dir);
    let mut kept = server.login("alice", "alice-pass-1").await.unwrap();
    assert_eq!(
        server
            .login("alice", "alice-pass-2")
            .await
            .err()
            .map(|e| e.0),
        Some(530)
    );
    assert_eq!(
        server.login("dave", "dave-pass").await.err().map(|e| e.0),
        Some(530)
    );

    // New password for alice, a new user dave.
    let alice2 = hash_with_binary("alice-pass-2");
    let dave = hash_with_binary("dave-pass");
    std::fs::write(
        &config,
        config_text(&s3, &[("alice", &alice2), ("dave", &dave)]),
    )
    .unwrap();
    server.hup();
    server.wait_log("config reloaded", 1).await;
    server.login("dave", "dave-pass").await.unwrap();
    server.login("alice", "alice-pass-2").await.unwrap();
    assert_eq!(
        server
            .login("alice", "alice-pass-1")
            .await
            .err()
            .map(|e| e.0),
        Some(530)
    );
    kept.transfer_type(suppaftp::types::FileType::Binary)
        .await
        .unwrap();
    put(&mut kept, "after-reload.txt", b"kept").await.unwrap();
    assert_eq!(
        s3.get(BUCKET, "alice/after-reload.txt").await.unwrap(),
        b"kept"
    );

    // A broken file: logged, and the users stay as they were.
    std::fs::write(&config, "[[user]]\nname = \"x\"\n").unwrap();
    server.hup();
    server.wait_log("config reload failed", 1).await;
    server.login("dave", "dave-pass").await.unwrap();
    let log = std::fs::read_to_string(&server.stderr).unwrap();
    assert!(log.contains("bucketftp.toml:1"), "{log}");
    for secret in [
        s3.secret_key.as_str(),
        "alice-pass-1",
        "alice-pass-2",
        "dave-pass",
    ] {
        assert!(!log.contains(secret), "a secret reached the log");
    }
    drop(server);

    // Start-up errors: exit status 1 and `file:line: key: why`.
    for (text, want) in [
        (
            "[server]\nlisten = \"127.0.0.1:0\"\npart_size = \"8 parsecs\"\n",
            ":3: [server] part_size: ",
        ),
        (
            "[server]\n\nlisten_port = 21\n",
            ":3: [server] listen_port: unknown key",
        ),
        (
            "[server]\nalow_remote = false\n",
            ":2: [server] alow_remote: unknown key",
        ),
        (
            &config_text(&s3, &[("alice", "hunter2")]) as &str,
            ":15: [[user]] \"alice\" password_hash: not an argon2 hash",
        ),
    ] {
        std::fs::write(&config, text).unwrap();
        let out = Command::new(BIN)
            .arg("--config")
            .arg(&config)
            .env("TEAM_TEST_SECRET", &s3.secret_key)
            .env_remove("RUST_BACKTRACE")
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(err.contains(&format!("bucketftp.toml{want}")), "{err}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// `import-cos` and `import-qsftpd` print configs this server loads, with every plain-text
/// password hashed, and the server starts from them.
#[test]
fn imported_configs_load_and_start() {
    use gateway::team::config_file::ConfigFile;
    use gateway::team::users::verify_password;
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    let dir = support::temp_dir("teams-import");
    type Logins<'a> = &'a [(&'a str, &'a str)];
    let cases: [(&str, &str, Logins); 2] = [
        (
            "import-cos",
            "cos-vsftpd.conf",
            &[("auditor", "Audit#2024"), ("partner", "two words")],
        ),
        (
            "import-qsftpd",
            "qsftpd.yaml",
            &[("editor", "correct horse"), ("robot", "0123")],
        ),
    ];
    for (command, source, logins) in cases {
        let out = Command::new(BIN)
            .arg(command)
            .arg(data.join(source))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8(out.stdout).unwrap();
        for (_, password) in logins {
            assert!(
                !text.contains(&format!("\"{password}\"")),
                "{command}: a plain-text password in the output"
            );
        }
        let path = dir.join(format!("{command}.toml"));
        std::fs::write(&path, &text).unwrap();
        let file = ConfigFile::parse(&path, text).unwrap_or_else(|e| panic!("{command}: {e}"));
        let users = file.directory(false, &|_| None).unwrap();
        assert_eq!(users.len(), logins.len(), "{command}");
        for (name, password) in logins {
            let u = users
                .user(name)
                .unwrap_or_else(|| panic!("{command}: no user {name}"));
            assert!(
                verify_password(&u.password_hash, password),
                "{command}: {name}"
            );
        }
        // The server starts from it (the command line moves it to a free loopback port).
        let mut child = Command::new(BIN)
            .arg("--config")
            .arg(&path)
            .args(["--listen", "127.0.0.1:0", "--data-dir"])
            .arg(&dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let ready = lines
            .by_ref()
            .map_while(Result::ok)
            .find(|l| l.starts_with("BucketFTP listening on 127.0.0.1:"));
        let _ = child.kill();
        let _ = child.wait();
        assert!(
            ready.is_some(),
            "{command}: the server did not start from the imported config"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// SIGHUP never ends a server, with or without a config file to reload (`systemctl reload`).
#[tokio::test]
async fn sighup_without_a_config_keeps_serving() {
    let dir = support::temp_dir("teams-hup");
    let log = dir.join("server.log");
    let mut child = Command::new(BIN)
        .args(["--listen", "127.0.0.1:0", "--local"])
        .arg(dir.join("store"))
        .arg("--data-dir")
        .arg(&dir)
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let port: u16 = lines
        .by_ref()
        .map_while(Result::ok)
        .find_map(|l| {
            l.strip_prefix("BucketFTP listening on ")
                .and_then(|a| a.rsplit(':').next()?.parse().ok())
        })
        .unwrap();
    std::thread::spawn(move || for _ in lines {});
    for handled in 1..=2 {
        let ok = Command::new("kill")
            .args(["-HUP", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(ok.success());
        // The server has handled this SIGHUP when it logged so.
        let log = &log;
        support::eventually(
            Duration::from_secs(10),
            "SIGHUP: nothing to reload",
            move || async move {
                let text = std::fs::read_to_string(log).unwrap_or_default();
                text.matches("SIGHUP: nothing to reload").count() >= handled
            },
        )
        .await;
    }
    assert!(
        child.try_wait().unwrap().is_none(),
        "SIGHUP ended the server"
    );
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_ok());
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
}
