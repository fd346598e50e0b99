//! End-to-end: a real FTP client (suppaftp) against the gateway against a real S3 server
//! (the embedded local store, Garage, moto), verifying results directly in S3 as well as
//! through FTP. Every scenario runs once per selected store (`each_store!`); the tests after
//! them need no particular store and run on the local one, except the S3 restart (Garage).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod ftpops;
mod rawftp;
#[macro_use]
mod support;

use std::time::Duration;

use ftpops::{appe, get, put, refused};
use gateway::ops::events::Event;
use gateway::{GatewayHandle, S3Settings};
use rawftp::data;
use suppaftp::tokio::AsyncFtpStream;
use suppaftp::{FtpError, Status};
use support::{S3Kind, TestS3};
use tokio::io::AsyncWriteExt;

const BUCKET: &str = "e2e-bucket";
const MIB: usize = 1024 * 1024;

struct Env {
    s3: TestS3,
    gw: Option<GatewayHandle>,
}

impl Env {
    async fn start(kind: S3Kind) -> Env {
        let s3 = TestS3::start(kind).await;
        s3.create_bucket(BUCKET).await;
        let settings = S3Settings::custom(s3.endpoint.clone(), s3.region.clone());
        let gw = support::start_gateway(settings, |c| c.limits = support::small_parts(3)).await;
        Env { s3, gw: Some(gw) }
    }

    fn gw(&self) -> &GatewayHandle {
        self.gw.as_ref().expect("gateway stopped")
    }

    fn user(&self) -> String {
        format!("{}/{BUCKET}", self.s3.access_key)
    }

    async fn connect(&self) -> AsyncFtpStream {
        AsyncFtpStream::connect(self.gw().local_addr())
            .await
            .expect("connect")
    }

    async fn login(&self) -> AsyncFtpStream {
        let mut ftp = self.connect().await;
        ftp.login(self.user(), self.s3.secret_key.clone())
            .await
            .expect("login");
        ftp.transfer_type(suppaftp::types::FileType::Binary)
            .await
            .expect("TYPE I");
        ftp
    }

    async fn s3_get(&self, key: &str) -> Option<Vec<u8>> {
        self.s3.get(BUCKET, key).await
    }
}

async fn put_at(
    ftp: &mut AsyncFtpStream,
    name: &str,
    offset: usize,
    body: &[u8],
) -> Result<(), FtpError> {
    ftp.resume_transfer(offset).await?;
    put(ftp, name, body).await
}

/// MLSD of a folder as (name, facts).
async fn mlsd(ftp: &mut AsyncFtpStream, dir: &str) -> Vec<(String, String)> {
    ftp.mlsd(Some(dir))
        .await
        .unwrap_or_else(|e| panic!("MLSD {dir}: {e}"))
        .into_iter()
        .filter_map(|l| {
            let (facts, name) = l.split_once(' ')?;
            Some((name.trim_end().to_owned(), facts.to_owned()))
        })
        .collect()
}

// ---------------------------------------------------------------- login

each_store!(login_and_refusals);
async fn login_and_refusals(kind: S3Kind) {
    let env = Env::start(kind).await;
    let mut ftp = env.login().await;
    assert!(ftp.pwd().await.is_ok());

    let mut bad = env.connect().await;
    let (code, text) = refused(bad.login("no-slash-here", "x").await.expect_err("accepted"));
    assert_eq!(code, 530);
    assert!(text.contains("ACCESS_KEY_ID/bucket"), "{text}");

    let mut nob = env.connect().await;
    let user = format!("{}/no-such-bucket-here", env.s3.access_key);
    let (code, text) = refused(
        nob.login(user, env.s3.secret_key.clone())
            .await
            .expect_err("accepted"),
    );
    assert_eq!(code, 530);
    assert!(text.contains("does not exist"), "{text}");
    assert!(
        !text.contains(&env.s3.secret_key),
        "secret leaked into a reply"
    );

    if kind != S3Kind::Moto {
        // moto accepts any secret; the local store and Garage check signatures.
        let mut wrong = env.connect().await;
        let (code, text) = refused(
            wrong
                .login(env.user(), "wrong-secret".into())
                .await
                .expect_err("accepted"),
        );
        assert_eq!(code, 530);
        assert!(
            text.contains("wrong secret") || text.contains("not known"),
            "{text}"
        );
    }
    // Only Garage has a second, valid key without rights on the bucket.
    if let Some((ak, sk)) = env.s3.create_key_without_access().await {
        let mut denied = env.connect().await;
        let (code, text) = refused(
            denied
                .login(format!("{ak}/{BUCKET}"), sk)
                .await
                .expect_err("accepted"),
        );
        assert_eq!(code, 530);
        assert!(text.contains("may not list"), "{text}");
    }
}

each_store!(features_for_filezilla);
async fn features_for_filezilla(kind: S3Kind) {
    let env = Env::start(kind).await;
    let mut ftp = env.login().await;
    let feat = ftp.feat().await.expect("FEAT");
    for f in ["UTF8", "MLST", "MLSD", "SIZE", "MDTM", "REST", "EPSV"] {
        assert!(feat.contains_key(f), "FEAT lacks {f}: {feat:?}");
    }
    assert_eq!(
        feat.get("REST").cloned().flatten().as_deref(),
        Some("STREAM")
    );
    let r = ftp
        .custom_command("OPTS UTF8 ON", &[Status::CommandOk])
        .await
        .expect("OPTS UTF8");
    assert_eq!(r.status.code(), 200);
}

// ---------------------------------------------------------------- folders

each_store!(folders_behave_like_a_disk);
async fn folders_behave_like_a_disk(kind: S3Kind) {
    let env = Env::start(kind).await;
    let mut ftp = env.login().await;
    let dir = "测试 フォルダ";
    ftp.mkdir(dir).await.expect("MKD");
    assert_eq!(
        env.s3_get(&format!("{dir}/")).await.as_deref(),
        Some(&b""[..]),
        "marker written"
    );
    let (code, _) = refused(ftp.mkdir(dir).await.expect_err("MKD twice"));
    assert_eq!(code, 550);

    ftp.cwd(dir).await.expect("CWD into new empty folder");
    assert!(
        mlsd(&mut ftp, ".").await.is_empty(),
        "own marker must not be listed"
    );
    put(&mut ftp, "名前 1.txt", b"hello").await.expect("STOR");
    ftp.cwd("/").await.expect("CWD /");

    let root = mlsd(&mut ftp, "/").await;
    let entry = root
        .iter()
        .find(|(n, _)| n == dir)
        .unwrap_or_else(|| panic!("{dir} not in {root:?}"));
    assert!(entry.1.contains("type=dir"), "{entry:?}");

    let (code, _) = refused(ftp.rmdir(dir).await.expect_err("RMD non-empty accepted"));
    assert_eq!(code, 550);
    assert_eq!(
        env.s3_get(&format!("{dir}/名前 1.txt")).await.as_deref(),
        Some(&b"hello"[..])
    );

    ftp.rm(&format!("{dir}/名前 1.txt")).await.expect("DELE");
    let root = mlsd(&mut ftp, "/").await;
    assert!(
        root.iter().any(|(n, _)| n == dir),
        "folder kept after deleting its last file"
    );
    ftp.rmdir(dir).await.expect("RMD empty");
    assert!(env.s3.keys(BUCKET, dir).await.is_empty());

    let (code, _) = refused(ftp.cwd("/missing").await.expect_err("CWD missing accepted"));
    assert_eq!(code, 550);
    let (code, _) = refused(
        ftp.rm("/missing.txt")
            .await
            .expect_err("DELE missing accepted"),
    );
    assert_eq!(code, 550);

    // A folder that exists only as a key prefix.
    env.s3.put(BUCKET, "implicit/a.txt", b"x".to_vec()).await;
    env.s3
        .put(BUCKET, "implicit/sub/b.txt", b"y".to_vec())
        .await;
    let list = mlsd(&mut ftp, "/implicit").await;
    assert_eq!(list.len(), 2, "{list:?}");
    assert!(
        list.iter()
            .any(|(n, f)| n == "sub" && f.contains("type=dir"))
    );
    ftp.cwd("/implicit/sub").await.expect("CWD prefix-only");
    // FileZilla's recursive delete: DELE files, RMD folders bottom-up.
    ftp.rm("/implicit/sub/b.txt").await.unwrap();
    ftp.rmdir("/implicit/sub")
        .await
        .expect("RMD emptied prefix-only folder");
    ftp.rm("/implicit/a.txt").await.unwrap();
    ftp.rmdir("/implicit").await.expect("RMD");
    assert!(env.s3.keys(BUCKET, "implicit").await.is_empty());
}

// ---------------------------------------------------------------- transfers

each_store!(upload_download_and_facts);
async fn upload_download_and_facts(kind: S3Kind) {
    let env = Env::start(kind).await;
    let mut ftp = env.login().await;
    for (name, len) in [
        ("empty.bin", 0),
        ("small file.bin", MIB),
        ("big.bin", 12 * MIB + 123),
    ] {
        let body = data(len, len as u64);
        put(&mut ftp, name, &body)
            .await
            .unwrap_or_else(|e| panic!("STOR {name}: {e}"));
        assert_eq!(
            env.s3_get(name).await.as_deref(),
            Some(&body[..]),
            "{name} in S3"
        );
        assert_eq!(
            get(&mut ftp, name, 0)
                .await
                .unwrap_or_else(|e| panic!("RETR {name}: {e}")),
            body
        );
        assert_eq!(ftp.size(name).await.expect("SIZE"), len);
    }
    assert!(env.s3.multipart_uploads(BUCKET).await.is_empty());
    let list = mlsd(&mut ftp, "/").await;
    let (_, facts) = list
        .iter()
        .find(|(n, _)| n == "big.bin")
        .unwrap_or_else(|| panic!("{list:?}"));
    assert!(
        facts.contains("type=file") && facts.contains(&format!("size={}", 12 * MIB + 123)),
        "{facts}"
    );
    let modify = facts
        .split(';')
        .find_map(|f| f.strip_prefix("modify="))
        .unwrap_or_else(|| panic!("no modify fact: {facts}"));
    assert!(
        modify.len() == 14 && modify.chars().all(|c| c.is_ascii_digit()),
        "{modify}"
    );
    let r = ftp
        .custom_command("MDTM big.bin", &[Status::File])
        .await
        .expect("MDTM");
    let text = r.as_string().unwrap_or_default();
    assert!(
        text.starts_with("213 ") && text[4..].trim().len() == 14,
        "{text}"
    );

    // Overwrite keeps only the new content.
    put(&mut ftp, "big.bin", b"short").await.unwrap();
    assert_eq!(env.s3_get("big.bin").await.as_deref(), Some(&b"short"[..]));
}

each_store!(resume_download);
async fn resume_download(kind: S3Kind) {
    let env = Env::start(kind).await;
    let mut ftp = env.login().await;
    let body = data(3 * MIB + 7, 9);
    put(&mut ftp, "f.bin", &body).await.unwrap();
    for offset in [1, 1000, body.len() - 1] {
        let tail = get(&mut ftp, "f.bin", offset)
            .await
            .unwrap_or_else(|e| panic!("REST {offset}: {e}"));
        assert_eq!(tail, &body[offset..], "REST {offset}");
    }
    let none = get(&mut ftp, "f.bin", body.len())
        .await
        .expect("REST at size");
    assert!(none.is_empty());
    let err = get(&mut ftp, "f.bin", body.len() + 10)
        .await
        .expect_err("REST past end accepted");
    let (code, text) = refused(err);
    assert_eq!(code, 550, "{text}");
}

each_store!(resume_upload_and_append);
async fn resume_upload_and_append(kind: S3Kind) {
    let env = Env::start(kind).await;
    let mut ftp = env.login().await;
    // Small kept prefix (re-sent from a ranged GET) and a large one (whole parts copied).
    for (name, total, cut) in [
        ("small.bin", 3 * MIB, 1000),
        ("large.bin", 13 * MIB + 5, 11 * MIB + 17),
    ] {
        let body = data(total, total as u64);
        put(&mut ftp, name, &body[..cut]).await.expect("first part");
        put_at(&mut ftp, name, cut, &body[cut..])
            .await
            .unwrap_or_else(|e| panic!("REST {cut} STOR: {e}"));
        assert_eq!(
            env.s3_get(name).await.map(|b| b.len()),
            Some(total),
            "{name}"
        );
        assert!(
            env.s3_get(name).await.as_deref() == Some(&body[..]),
            "{name} content after resume"
        );
    }
    put(&mut ftp, "log.txt", b"line 1\n").await.unwrap();
    appe(&mut ftp, "log.txt", b"line 2\n").await.expect("APPE");
    assert_eq!(
        env.s3_get("log.txt").await.as_deref(),
        Some(&b"line 1\nline 2\n"[..])
    );
    appe(&mut ftp, "new.txt", b"fresh").await.expect("APPE new");
    assert_eq!(env.s3_get("new.txt").await.as_deref(), Some(&b"fresh"[..]));
    let err = put_at(&mut ftp, "log.txt", 1000, b"x")
        .await
        .expect_err("REST past end accepted");
    assert_eq!(refused(err).0, 550);
    assert_eq!(
        env.s3_get("log.txt").await.as_deref(),
        Some(&b"line 1\nline 2\n"[..]),
        "untouched"
    );
    assert!(
        env.s3.multipart_uploads(BUCKET).await.is_empty(),
        "no multipart upload left behind"
    );
}

// ---------------------------------------------------------------- rename

each_store!(rename_files_and_folders);
async fn rename_files_and_folders(kind: S3Kind) {
    let env = Env::start(kind).await;
    let mut ftp = env.login().await;
    put(&mut ftp, "a.txt", b"A").await.unwrap();
    ftp.mkdir("docs").await.unwrap();
    ftp.rename("a.txt", "docs/文档 a.txt")
        .await
        .expect("RNFR/RNTO file");
    assert_eq!(env.s3_get("a.txt").await, None);
    assert_eq!(
        env.s3_get("docs/文档 a.txt").await.as_deref(),
        Some(&b"A"[..])
    );

    for k in ["docs/sub/x.bin", "docs/sub/deep/y.bin", "docs/z.bin"] {
        env.s3.put(BUCKET, k, k.as_bytes().to_vec()).await;
    }
    ftp.mkdir("other").await.unwrap();
    let (code, _) = refused(
        ftp.rename("docs", "other")
            .await
            .expect_err("RNTO onto a folder"),
    );
    assert_eq!(code, 550);
    assert!(env.s3_get("docs/z.bin").await.is_some(), "nothing moved");

    ftp.rename("docs", "归档 2026")
        .await
        .expect("folder rename");
    assert!(
        env.s3.keys(BUCKET, "docs/").await.is_empty(),
        "old prefix empty"
    );
    let mut moved = env.s3.keys(BUCKET, "归档 2026/").await;
    moved.sort();
    assert_eq!(
        moved,
        env.s3.listed(
            "归档 2026/",
            &[
                "归档 2026/",
                "归档 2026/sub/deep/y.bin",
                "归档 2026/sub/x.bin",
                "归档 2026/z.bin",
                "归档 2026/文档 a.txt"
            ]
        )
    );
    assert_eq!(
        env.s3_get("归档 2026/sub/x.bin").await.as_deref(),
        Some(&b"docs/sub/x.bin"[..])
    );
    let (code, _) = refused(ftp.rename("nope", "x").await.expect_err("rename missing"));
    assert_eq!(code, 550);
}

each_store!(a_folder_of_more_than_a_listing_page_is_renamed_whole);
/// A folder of 1,050 keys (more than one listing page): renamed page by page, every key
/// arrives and none stays behind.
async fn a_folder_of_more_than_a_listing_page_is_renamed_whole(kind: S3Kind) {
    let env = Env::start(kind).await;
    let keys: Vec<String> = (0..1050)
        .map(|i| format!("big/{:02}/k{i:04}", i % 7))
        .collect();
    use futures::StreamExt as _;
    futures::stream::iter(
        keys.iter()
            .map(|k| env.s3.put(BUCKET, k, k.as_bytes().to_vec())),
    )
    .buffer_unordered(16)
    .collect::<Vec<()>>()
    .await;
    let mut ftp = env.login().await;
    ftp.rename("big", "moved").await.expect("folder rename");
    let left = env.s3.keys(BUCKET, "big/").await;
    assert!(
        left.is_empty(),
        "old prefix empty: {} left, {:?}",
        left.len(),
        &left[..left.len().min(5)]
    );
    // (The local store lists its folders as marker keys too.)
    let moved: Vec<String> = env
        .s3
        .keys(BUCKET, "moved/")
        .await
        .into_iter()
        .filter(|k| !k.ends_with('/'))
        .collect();
    assert_eq!(moved.len(), keys.len(), "every key moved");
    assert_eq!(
        env.s3_get("moved/03/k1046").await.as_deref(),
        Some(&b"big/03/k1046"[..])
    );
}

// ---------------------------------------------------------------- paths

each_store!(paths_stay_inside_the_bucket);
async fn paths_stay_inside_the_bucket(kind: S3Kind) {
    let env = Env::start(kind).await;
    let mut ftp = env.login().await;
    put(&mut ftp, "/../../escape.txt", b"e").await.unwrap();
    assert_eq!(env.s3_get("escape.txt").await.as_deref(), Some(&b"e"[..]));
    put(&mut ftp, "a\\b.txt", b"b").await.unwrap();
    assert_eq!(env.s3_get("a/b.txt").await.as_deref(), Some(&b"b"[..]));
    put(&mut ftp, "//x/./y/../z.txt", b"z").await.unwrap();
    assert_eq!(env.s3_get("x/z.txt").await.as_deref(), Some(&b"z"[..]));
    ftp.cwd("../../..").await.expect("CWD above root");
    let list = mlsd(&mut ftp, ".").await;
    assert!(
        list.iter().any(|(n, _)| n == "escape.txt"),
        "still at the bucket root: {list:?}"
    );
    let long = "n".repeat(300);
    let err = put(&mut ftp, &long, b"x")
        .await
        .expect_err("long name accepted");
    assert_eq!(refused(err).0, 553);
}

// ---------------------------------------------------------------- failures

#[cfg_attr(
    not(test_store = "garage"),
    ignore = "store garage not selected (BUCKETFTP_TEST_STORES)"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_stopped_mid_upload_keeps_old_object() {
    // A store process killed with SIGKILL: Garage keeps its data across a restart; moto
    // would lose it, and the local store lives in this process.
    let mut env = Env::start(S3Kind::Garage).await;
    let mut ftp = env.login().await;
    let old = data(2 * MIB, 1);
    put(&mut ftp, "keep.bin", &old).await.unwrap();

    let mut s = ftp.put_with_stream("keep.bin").await.unwrap();
    let chunk = data(MIB, 2);
    for _ in 0..12 {
        s.write_all(&chunk).await.unwrap();
    }
    env.s3.kill();
    let mut failed_write = false;
    for _ in 0..8 {
        if s.write_all(&chunk).await.is_err() {
            failed_write = true;
            break;
        }
    }
    let outcome = if failed_write {
        Err(FtpError::BadResponse)
    } else {
        s.finish().await
    };
    let err = outcome.expect_err("226 although S3 was down");
    if let FtpError::UnexpectedResponse(r) = &err {
        assert!(matches!(r.status.code(), 426 | 451 | 550 | 552), "{r}");
    }
    env.s3.restart().await;
    assert_eq!(
        env.s3_get("keep.bin").await.as_deref(),
        Some(&old[..]),
        "old object intact"
    );
    // The abort is retried until the store is back.
    env.s3
        .assert_no_uploads_left(BUCKET, "after the store came back")
        .await;
}

#[cfg_attr(
    not(test_store = "local"),
    ignore = "store local not selected (BUCKETFTP_TEST_STORES)"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_are_independent() {
    let env = Env::start(S3Kind::Local).await;
    let mut slow = env.login().await;
    // A session whose upload stalls mid-stream (the client sends nothing more).
    let mut stalled = slow.put_with_stream("stalled.bin").await.unwrap();
    stalled.write_all(&data(6 * MIB, 3)).await.unwrap();
    // Another session works normally meanwhile.
    let mut fast = env.login().await;
    let done = tokio::time::timeout(Duration::from_secs(20), async {
        put(&mut fast, "quick.txt", b"quick").await?;
        fast.mlsd(Some("/")).await?;
        get(&mut fast, "quick.txt", 0).await
    })
    .await
    .expect("second session stalled behind the first")
    .unwrap();
    assert_eq!(done, b"quick");
    assert_eq!(
        env.s3_get("stalled.bin").await,
        None,
        "unfinished upload not visible"
    );
    stalled.finish().await.unwrap();
    assert_eq!(
        env.s3_get("stalled.bin").await.map(|b| b.len()),
        Some(6 * MIB)
    );
}

#[cfg_attr(
    not(test_store = "local"),
    ignore = "store local not selected (BUCKETFTP_TEST_STORES)"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_folder_listing() {
    let env = Env::start(S3Kind::Local).await;
    let keys: Vec<String> = (0..10_000).map(|i| format!("big/f{i:05}.txt")).collect();
    let client = env.s3.client.clone();
    let puts = futures::stream::iter(keys.iter().cloned().map(|k| {
        let c = client.clone();
        async move {
            c.put_object()
                .bucket(BUCKET)
                .key(k)
                .body(aws_sdk_s3::primitives::ByteStream::from_static(b"1"))
                .send()
                .await
                .map(|_| ())
        }
    }));
    use futures::StreamExt;
    let results: Vec<_> = puts.buffer_unordered(64).collect().await;
    assert!(results.iter().all(|r| r.is_ok()));
    let mut ftp = env.login().await;
    let list = mlsd(&mut ftp, "/big").await;
    assert_eq!(list.len(), 10_000);
    assert!(list.iter().all(|(_, f)| f.contains("type=file;size=1;")));
    let names = ftp.nlst(Some("/big")).await.expect("NLST");
    assert_eq!(names.len(), 10_000);
}

#[cfg_attr(
    not(test_store = "local"),
    ignore = "store local not selected (BUCKETFTP_TEST_STORES)"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_report_sessions_and_transfers_without_secrets() {
    // Local: its secrets are random (moto's test key is the word "testing").
    let env = Env::start(S3Kind::Local).await;
    let mut rx = env.gw().subscribe();
    let mut ftp = env.login().await;
    put(&mut ftp, "ev.bin", &data(6 * MIB, 4)).await.unwrap();
    get(&mut ftp, "ev.bin", 0).await.unwrap();
    ftp.quit().await.unwrap();
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while let Ok(Ok(e)) = tokio::time::timeout_at(deadline, rx.recv()).await {
        let closed = matches!(e, Event::SessionClosed { .. });
        seen.push(e);
        if closed {
            break;
        }
    }
    let dump = format!("{seen:?}");
    assert!(!dump.contains(&env.s3.secret_key), "secret in events");
    assert!(
        seen.iter()
            .any(|e| matches!(e, Event::SessionOpened { .. }))
    );
    assert!(
        seen.iter()
            .any(|e| matches!(e, Event::LoggedIn { user, .. } if *user == env.user()))
    );
    let finished: Vec<u64> = seen
        .iter()
        .filter_map(|e| match e {
            Event::TransferFinished { bytes, .. } => Some(*bytes),
            _ => None,
        })
        .collect();
    assert_eq!(finished, vec![6 * MIB as u64, 6 * MIB as u64], "{dump}");
    assert!(
        seen.iter()
            .any(|e| matches!(e, Event::SessionClosed { .. }))
    );
}

#[cfg_attr(
    not(test_store = "local"),
    ignore = "store local not selected (BUCKETFTP_TEST_STORES)"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_drains_then_refuses_connections() {
    let mut env = Env::start(S3Kind::Local).await;
    let addr = env.gw().local_addr();
    let mut ftp = env.login().await;
    put(&mut ftp, "x.txt", b"x").await.unwrap();
    let gw = env.gw.take().expect("running");
    tokio::time::timeout(Duration::from_secs(10), gw.stop(Duration::from_millis(200)))
        .await
        .expect("stop hung");
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "still accepting after stop"
    );
}
