//! The library API the desktop shell uses: per-profile login settings, permissions, the
//! local bucket, and "Test connection" — against the embedded store, as a store of its own
//! (`TestS3`) and as the gateway's local mode.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod rawftp;
#[macro_use]
mod support;

use std::sync::Arc;

use gateway::error::Failure;
use gateway::{Gateway, GatewayConfig, LoginSettings, Permissions, S3Settings};
use rawftp::Raw;
use support::{S3Kind, TestS3};

const BUCKET: &str = "api-bucket";

#[derive(Debug)]
struct Profiles {
    key: String,
    settings: S3Settings,
}

impl LoginSettings for Profiles {
    fn settings_for(&self, access_key: &str) -> Option<S3Settings> {
        (access_key == self.key).then(|| self.settings.clone())
    }
}

#[cfg_attr(
    not(test_store = "local"),
    ignore = "store local not selected (BUCKETFTP_TEST_STORES)"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn profile_settings_pick_the_store_per_key() {
    let s3 = TestS3::start(S3Kind::Local).await;
    s3.create_bucket(BUCKET).await;
    // The default points nowhere; only the profile for this key reaches the store.
    let port = support::free_port();
    let mut config = GatewayConfig::new(S3Settings::custom(
        format!("http://127.0.0.1:{port}"),
        "garage",
    ));
    config.listen = "127.0.0.1:0".parse().unwrap();
    config.login_settings = Some(Arc::new(Profiles {
        key: s3.access_key.clone(),
        settings: S3Settings::custom(s3.endpoint.clone(), s3.region.clone()),
    }));
    let gw = Gateway::start(config).await.unwrap();
    let mut r = Raw::connect(gw.local_addr()).await;
    r.login(&format!("{}/{BUCKET}", s3.access_key), &s3.secret_key)
        .await;
    let mut other = Raw::connect(gw.local_addr()).await;
    let (code, text) = other.try_login(&format!("GKother/{BUCKET}"), "x").await;
    assert_eq!(code, 530, "{text}");
    assert!(
        text.contains("cannot reach") || text.contains("unavailable"),
        "{text}"
    );
}

#[cfg_attr(
    not(test_store = "local"),
    ignore = "store local not selected (BUCKETFTP_TEST_STORES)"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_only_and_no_delete() {
    let s3 = TestS3::start(S3Kind::Local).await;
    s3.create_bucket(BUCKET).await;
    s3.put(BUCKET, "keep.txt", b"keep".to_vec()).await;
    for (read_only, allow_delete) in [(true, true), (false, false)] {
        let mut config =
            GatewayConfig::new(S3Settings::custom(s3.endpoint.clone(), s3.region.clone()));
        config.listen = "127.0.0.1:0".parse().unwrap();
        config.permissions = Permissions {
            read_only,
            allow_delete,
        };
        let gw = Gateway::start(config).await.unwrap();
        let mut r = Raw::connect(gw.local_addr()).await;
        r.login(&format!("{}/{BUCKET}", s3.access_key), &s3.secret_key)
            .await;
        let (code, text) = r.cmd("DELE keep.txt").await;
        assert_eq!(code, 550, "{text}");
        assert!(text.contains("not allowed"), "{text}");
        let (code, text) = r.cmd("RMD nothing").await;
        assert_eq!(code, 550, "{text}");
        let (code, _) = r.cmd("MKD newdir").await;
        assert_eq!(code == 257, !read_only, "MKD with read_only={read_only}");
        let mut dc = r.data("STOR new.txt").await;
        assert!(dc.write(b"new").await);
        dc.finish().await;
        let (code, text) = r.reply().await;
        if read_only {
            assert_eq!(code, 550, "{text}");
            assert_eq!(s3.get(BUCKET, "new.txt").await, None);
        } else {
            assert_eq!(code, 226, "{text}");
        }
        assert_eq!(
            s3.get(BUCKET, "keep.txt").await.as_deref(),
            Some(&b"keep"[..])
        );
    }
}

#[cfg_attr(
    not(test_store = "local"),
    ignore = "store local not selected (BUCKETFTP_TEST_STORES)"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_connection_says_what_is_wrong() {
    let s3 = TestS3::start(S3Kind::Local).await;
    s3.create_bucket(BUCKET).await;
    let settings = S3Settings::custom(s3.endpoint.clone(), s3.region.clone());
    let ok = gateway::s3::probe::test_connection(
        &settings,
        &s3.access_key,
        &s3.secret_key,
        Some(BUCKET),
    )
    .await
    .unwrap();
    assert_eq!(ok.bucket_ok, Some(true));
    assert!(ok.buckets.iter().any(|b| b == BUCKET), "{ok:?}");

    let wrong =
        gateway::s3::probe::test_connection(&settings, &s3.access_key, "0000", Some(BUCKET)).await;
    assert_eq!(wrong.err(), Some(Failure::BadSecret));
    let missing = gateway::s3::probe::test_connection(
        &settings,
        &s3.access_key,
        &s3.secret_key,
        Some("no-such-bucket"),
    )
    .await;
    assert_eq!(missing.err(), Some(Failure::NoSuchBucket));
    let nowhere = S3Settings::custom(
        format!("http://127.0.0.1:{}", support::free_port()),
        "garage",
    );
    let down =
        gateway::s3::probe::test_connection(&nowhere, &s3.access_key, &s3.secret_key, None).await;
    assert!(matches!(down, Err(Failure::Transient(_))), "{down:?}");
    let text = down.err().map(|f| f.to_string()).unwrap_or_default();
    assert!(text.contains("unreachable"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_bucket_through_the_same_path() {
    let root = std::env::temp_dir().join(format!("bucketftp-api-local-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let local = gateway::s3::local::start_local(&root, "files")
        .await
        .unwrap();
    let mut config = GatewayConfig::new(local.settings.clone());
    config.listen = "127.0.0.1:0".parse().unwrap();
    let gw = Gateway::start(config).await.unwrap();
    let mut r = Raw::connect(gw.local_addr()).await;
    r.login(&local.ftp_user(), &local.secret_key).await;
    assert_eq!(r.cmd("MKD 新しい フォルダ").await.0, 257);
    assert_eq!(r.cmd("CWD 新しい フォルダ").await.0, 250);
    let mut dc = r.data("STOR a.txt").await;
    assert!(dc.write(b"on disk").await);
    dc.finish().await;
    assert_eq!(r.reply().await.0, 226);
    let on_disk =
        std::fs::read(local.folder.join("新しい フォルダ").join("a.txt")).unwrap_or_default();
    assert_eq!(on_disk, b"on disk");
    assert_eq!(r.cmd("RNFR /新しい フォルダ").await.0, 350);
    assert_eq!(r.cmd("RNTO /renamed").await.0, 250);
    assert!(local.folder.join("renamed").join("a.txt").exists());
    assert!(!local.folder.join("新しい フォルダ").exists());
    let mut dc = r.data("RETR /renamed/a.txt").await;
    assert_eq!(dc.read_all().await, b"on disk");
    assert_eq!(r.reply().await.0, 226);
    // A client of this process gets what it would over HTTP: HEAD errors have no body, so
    // the SDK reads the status (as the gateway's stat of a missing file needs).
    let direct = gateway::s3::ClientFactory::new(&local.settings)
        .unwrap()
        .client(&local.access_key, &local.secret_key, None);
    let missing = direct
        .head_object()
        .bucket("files")
        .key("nope")
        .send()
        .await;
    let missing = missing.unwrap_err().into_service_error();
    assert!(missing.is_not_found(), "{missing:?}");
    let no_bucket = direct.head_bucket().bucket("no-such-bucket").send().await;
    let no_bucket = no_bucket.unwrap_err().into_service_error();
    assert!(no_bucket.is_not_found(), "{no_bucket:?}");
    // The gateway reached the store of its own process without a socket...
    let port = local.store.local_addr().port();
    assert_eq!(
        connections_to(port),
        0,
        "the gateway used the store's TCP port"
    );
    // ...which a client of another kind (the SDK's own HTTP client) does open.
    let plain = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::Config::builder()
            .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
            .endpoint_url(local.store.endpoint())
            .region(aws_sdk_s3::config::Region::new(local.store.region()))
            .credentials_provider(aws_sdk_s3::config::Credentials::new(
                &local.access_key,
                &local.secret_key,
                None,
                None,
                "test",
            ))
            .force_path_style(true)
            .build(),
    );
    let head = plain.head_object().bucket("files").key("renamed/a.txt");
    assert_eq!(head.send().await.unwrap().content_length(), Some(7));
    assert!(
        connections_to(port) > 0,
        "no TCP connection seen: the check cannot fail"
    );
    // The same credential comes back on the next start.
    let again = localstore::load_or_create_credentials(&root).unwrap();
    assert_eq!(again, (local.access_key.clone(), local.secret_key.clone()));
    gw.stop(std::time::Duration::from_millis(100)).await;
    local.store.stop().await;
    let _ = std::fs::remove_dir_all(root);
}

/// Open TCP connections of this host with either end on 127.0.0.1:`port`, from
/// `/proc/net/tcp` (the tests run on Linux).
fn connections_to(port: u16) -> usize {
    let table = std::fs::read_to_string("/proc/net/tcp").expect("/proc/net/tcp (Linux)");
    let end = format!("0100007F:{port:04X}");
    table
        .lines()
        .skip(1)
        .filter(|line| {
            let cols: Vec<&str> = line.split_whitespace().collect();
            // local_address rem_address st: 01 ESTABLISHED, 02 SYN_SENT (not a listener, not
            // an earlier test's TIME_WAIT on a reused port).
            cols.len() > 3 && matches!(cols[3], "01" | "02") && (cols[1] == end || cols[2] == end)
        })
        .count()
}
