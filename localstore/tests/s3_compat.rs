//! End-to-end tests: a real `aws-sdk-s3` client, configured the way the gateway configures it,
//! against `LocalStore::start` on `127.0.0.1:0` over a temp folder.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::fs;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use aws_sdk_s3::Client;
use aws_sdk_s3::config::{
    BehaviorVersion, Credentials, Region, RequestChecksumCalculation, ResponseChecksumValidation,
};
use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    ChecksumAlgorithm, ChecksumMode, ChecksumType, CompletedMultipartUpload, CompletedPart, Delete,
    MetadataDirective, ObjectIdentifier,
};
use futures::StreamExt;
use localstore::{LocalStore, LocalStoreConfig, LocalStoreError, load_or_create_credentials};
use s3s::crypto::{Checksum, Md5};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const AK: &str = "AKLOCALTEST";
const SK: &str = "local-test-secret-0123456789";
const BUCKET: &str = "bkt";
const MIB: usize = 1024 * 1024;

// ---- harness ---------------------------------------------------------------------------------

fn unique_dir(name: &str) -> PathBuf {
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    std::env::temp_dir().join(format!(
        "localstore-it-{name}-{}-{nanos}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ))
}

fn client(endpoint: &str, ak: &str, sk: &str) -> Client {
    let conf = aws_sdk_s3::config::Builder::new()
        .behavior_version(BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(Region::new("local"))
        .force_path_style(true)
        .credentials_provider(Credentials::new(ak, sk, None, None, "localstore-test"))
        .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
        .response_checksum_validation(ResponseChecksumValidation::WhenRequired)
        .build();
    Client::from_conf(conf)
}

struct Env {
    store: Option<LocalStore>,
    s3: Client,
    root: PathBuf,
}

impl Env {
    async fn new(name: &str) -> Env {
        let root = unique_dir(name);
        let store = LocalStore::start(LocalStoreConfig {
            root: root.clone(),
            access_key: AK.to_owned(),
            secret_key: SK.to_owned(),
            bind: "127.0.0.1:0".parse().unwrap(),
        })
        .await
        .unwrap();
        store.ensure_bucket(BUCKET).unwrap();
        let s3 = client(&store.endpoint(), AK, SK);
        Env {
            store: Some(store),
            s3,
            root,
        }
    }

    fn store(&self) -> &LocalStore {
        self.store.as_ref().unwrap()
    }

    fn path(&self, key: &str) -> PathBuf {
        self.root.join(BUCKET).join(key)
    }

    async fn put(&self, key: &str, data: impl Into<Vec<u8>>) -> String {
        self.s3
            .put_object()
            .bucket(BUCKET)
            .key(key)
            .body(ByteStream::from(data.into()))
            .send()
            .await
            .unwrap_or_else(|e| panic!("put {key:?}: {e:?}"))
            .e_tag
            .unwrap()
    }

    async fn get(&self, key: &str) -> Vec<u8> {
        let out = self
            .s3
            .get_object()
            .bucket(BUCKET)
            .key(key)
            .send()
            .await
            .unwrap_or_else(|e| panic!("get {key:?}: {e:?}"));
        out.body.collect().await.unwrap().to_vec()
    }

    async fn list_all(&self, prefix: &str, delimiter: Option<&str>, page: i32) -> Listing {
        let mut out = Listing::default();
        let mut token: Option<String> = None;
        loop {
            let resp = self
                .s3
                .list_objects_v2()
                .bucket(BUCKET)
                .prefix(prefix)
                .set_delimiter(delimiter.map(str::to_owned))
                .max_keys(page)
                .set_continuation_token(token.clone())
                .send()
                .await
                .unwrap();
            let n = resp.contents().len() + resp.common_prefixes().len();
            assert_eq!(resp.key_count(), Some(n as i32));
            assert!(n <= page as usize, "page of {n} > max-keys {page}");
            out.pages += 1;
            out.keys
                .extend(resp.contents().iter().map(|o| o.key().unwrap().to_owned()));
            out.prefixes.extend(
                resp.common_prefixes()
                    .iter()
                    .map(|p| p.prefix().unwrap().to_owned()),
            );
            if resp.is_truncated() == Some(true) {
                token = Some(resp.next_continuation_token().unwrap().to_owned());
            } else {
                assert!(resp.next_continuation_token().is_none());
                break;
            }
        }
        out
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        drop(self.store.take());
        let _ = fs::remove_dir_all(&self.root);
    }
}

#[derive(Debug, Default)]
struct Listing {
    keys: Vec<String>,
    prefixes: Vec<String>,
    pages: usize,
}

fn md5_hex(data: &[u8]) -> String {
    Md5::checksum(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn quoted_md5(data: &[u8]) -> String {
    format!("\"{}\"", md5_hex(data))
}

/// Deterministic, incompressible-looking test data.
fn data(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

fn code<E: ProvideErrorMetadata>(e: &E) -> String {
    e.code().unwrap_or("<none>").to_owned()
}

fn status<E>(e: &aws_sdk_s3::error::SdkError<E>) -> u16 {
    e.raw_response().map_or(0, |r| r.status().as_u16())
}

// ---- objects ---------------------------------------------------------------------------------

#[tokio::test]
async fn put_get_head_range_delete() {
    let env = Env::new("basic").await;
    let body = b"hello world".to_vec();
    let etag = env.put("dir/a.txt", body.clone()).await;
    assert_eq!(etag, quoted_md5(&body));
    assert_eq!(
        fs::read(env.path("dir/a.txt")).unwrap(),
        body,
        "stored as a plain file"
    );
    assert_eq!(env.get("dir/a.txt").await, body);

    let head = env
        .s3
        .head_object()
        .bucket(BUCKET)
        .key("dir/a.txt")
        .send()
        .await
        .unwrap();
    assert_eq!(head.content_length(), Some(11));
    assert_eq!(head.e_tag(), Some(etag.as_str()));
    assert!(head.last_modified().is_some());

    for (range, want, content_range) in [
        ("bytes=0-4", &b"hello"[..], "bytes 0-4/11"),
        ("bytes=6-", &b"world"[..], "bytes 6-10/11"),
        ("bytes=-5", &b"world"[..], "bytes 6-10/11"),
        ("bytes=5-100", &b" world"[..], "bytes 5-10/11"),
        ("bytes=10-10", &b"d"[..], "bytes 10-10/11"),
    ] {
        let out = env
            .s3
            .get_object()
            .bucket(BUCKET)
            .key("dir/a.txt")
            .range(range)
            .send()
            .await
            .unwrap();
        assert_eq!(out.content_range(), Some(content_range), "{range}");
        assert_eq!(out.content_length(), Some(want.len() as i64), "{range}");
        assert_eq!(out.body.collect().await.unwrap().to_vec(), want, "{range}");
    }
    let err = env
        .s3
        .get_object()
        .bucket(BUCKET)
        .key("dir/a.txt")
        .range("bytes=11-")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "InvalidRange");
    assert_eq!(status(&err), 416);

    // Overwrite replaces the content and the ETag.
    let etag2 = env.put("dir/a.txt", b"v2".to_vec()).await;
    assert_eq!(etag2, quoted_md5(b"v2"));
    assert_eq!(env.get("dir/a.txt").await, b"v2");

    // Conditional writes.
    let err = env
        .s3
        .put_object()
        .bucket(BUCKET)
        .key("dir/a.txt")
        .if_none_match("*")
        .body(ByteStream::from_static(b"nope"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "PreconditionFailed");
    assert_eq!(status(&err), 412);
    let err = env
        .s3
        .put_object()
        .bucket(BUCKET)
        .key("dir/a.txt")
        .if_match(quoted_md5(b"not the content"))
        .body(ByteStream::from_static(b"nope"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "PreconditionFailed");
    assert_eq!(env.get("dir/a.txt").await, b"v2");
    env.s3
        .put_object()
        .bucket(BUCKET)
        .key("dir/a.txt")
        .if_match(&etag2)
        .body(ByteStream::from_static(b"v3"))
        .send()
        .await
        .unwrap();
    env.s3
        .put_object()
        .bucket(BUCKET)
        .key("dir/new.txt")
        .if_none_match("*")
        .body(ByteStream::from_static(b"fresh"))
        .send()
        .await
        .unwrap();
    assert_eq!(env.get("dir/a.txt").await, b"v3");
    assert_eq!(env.get("dir/new.txt").await, b"fresh");

    // Zero bytes.
    let e0 = env.put("empty.bin", Vec::new()).await;
    assert_eq!(e0, quoted_md5(b""));
    assert_eq!(env.get("empty.bin").await, b"");
    let err = env
        .s3
        .get_object()
        .bucket(BUCKET)
        .key("empty.bin")
        .range("bytes=0-0")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "InvalidRange");

    // A larger object streams through intact.
    let big = data(7 * MIB + 13, 7);
    let e = env.put("big.bin", big.clone()).await;
    assert_eq!(e, quoted_md5(&big));
    assert_eq!(env.get("big.bin").await, big);

    // Delete is idempotent; the parent folder stays.
    env.s3
        .delete_object()
        .bucket(BUCKET)
        .key("dir/a.txt")
        .send()
        .await
        .unwrap();
    env.s3
        .delete_object()
        .bucket(BUCKET)
        .key("dir/a.txt")
        .send()
        .await
        .unwrap();
    env.s3
        .delete_object()
        .bucket(BUCKET)
        .key("never/was")
        .send()
        .await
        .unwrap();
    let err = env
        .s3
        .head_object()
        .bucket(BUCKET)
        .key("dir/a.txt")
        .send()
        .await
        .unwrap_err();
    assert!(err.as_service_error().unwrap().is_not_found(), "{err:?}");
    let err = env
        .s3
        .get_object()
        .bucket(BUCKET)
        .key("dir/a.txt")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "NoSuchKey");
    assert_eq!(status(&err), 404);
    assert!(env.path("dir").is_dir());
    let head = env
        .s3
        .head_object()
        .bucket(BUCKET)
        .key("dir/")
        .send()
        .await
        .unwrap();
    assert_eq!(head.content_length(), Some(0));

    // Missing bucket.
    let err = env
        .s3
        .get_object()
        .bucket("nobucket")
        .key("x")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "NoSuchBucket");
}

#[tokio::test]
async fn unicode_space_and_symbol_keys() {
    let env = Env::new("unicode").await;
    let keys = [
        "中文/日本語 ファイル.txt",
        "with space/a+b%20c&d=e.txt",
        "emoji 😀 #1.bin",
        "Ünïcödé/ñ/ß.md",
        "quote'.txt",
    ];
    for (i, k) in keys.iter().enumerate() {
        let body = format!("content {i}").into_bytes();
        env.put(k, body.clone()).await;
        assert_eq!(env.get(k).await, body, "{k}");
        assert_eq!(fs::read(env.path(k)).unwrap(), body, "{k} on disk");
        let head = env
            .s3
            .head_object()
            .bucket(BUCKET)
            .key(*k)
            .send()
            .await
            .unwrap();
        assert_eq!(head.content_length(), Some(body.len() as i64));
    }
    let listed = env.list_all("", None, 1000).await;
    let files: BTreeSet<&str> = listed
        .keys
        .iter()
        .map(String::as_str)
        .filter(|k| !k.ends_with('/'))
        .collect();
    assert_eq!(files, keys.iter().copied().collect::<BTreeSet<_>>());
    let mut sorted = listed.keys.clone();
    sorted.sort();
    assert_eq!(listed.keys, sorted, "listing is in UTF-8 byte order");

    let under = env.list_all("中文/", Some("/"), 1000).await;
    assert_eq!(under.keys, ["中文/", "中文/日本語 ファイル.txt"]);

    // encoding-type=url round trip through the SDK.
    let resp = env
        .s3
        .list_objects_v2()
        .bucket(BUCKET)
        .prefix("with space/")
        .encoding_type(aws_sdk_s3::types::EncodingType::Url)
        .send()
        .await
        .unwrap();
    let got: Vec<&str> = resp.contents().iter().map(|o| o.key().unwrap()).collect();
    assert_eq!(
        got,
        ["with%20space/", "with%20space/a%2Bb%2520c%26d%3De.txt"]
    );
}

#[tokio::test]
async fn folder_markers_are_objects() {
    let env = Env::new("markers").await;
    let etag = env.put("empty/", Vec::new()).await;
    assert_eq!(etag, quoted_md5(b""));
    assert!(env.path("empty").is_dir(), "a marker is a directory");

    let head = env
        .s3
        .head_object()
        .bucket(BUCKET)
        .key("empty/")
        .send()
        .await
        .unwrap();
    assert_eq!(head.content_length(), Some(0));
    assert_eq!(head.e_tag(), Some(quoted_md5(b"").as_str()));
    assert_eq!(env.get("empty/").await, b"");
    // The marker is listed under its own prefix, and as a common prefix above it.
    let l = env.list_all("empty/", Some("/"), 1000).await;
    assert_eq!(l.keys, ["empty/"]);
    assert!(l.prefixes.is_empty());
    let l = env.list_all("empty/", None, 1000).await;
    assert_eq!(l.keys, ["empty/"]);
    let l = env.list_all("", Some("/"), 1000).await;
    assert_eq!(l.prefixes, ["empty/"]);
    assert!(l.keys.is_empty());

    // `mkdir -p` semantics, and folders made by hand count too.
    env.put("p/q/r/", Vec::new()).await;
    assert!(env.path("p/q/r").is_dir());
    fs::create_dir_all(env.path("hand/made")).unwrap();
    env.s3
        .head_object()
        .bucket(BUCKET)
        .key("hand/made/")
        .send()
        .await
        .unwrap();
    env.s3
        .head_object()
        .bucket(BUCKET)
        .key("hand/")
        .send()
        .await
        .unwrap();
    let err = env
        .s3
        .head_object()
        .bucket(BUCKET)
        .key("hand")
        .send()
        .await
        .unwrap_err();
    assert!(err.as_service_error().unwrap().is_not_found());
    let err = env
        .s3
        .get_object()
        .bucket(BUCKET)
        .key("hand/made")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "NoSuchKey");
    let l = env.list_all("", None, 1000).await;
    assert_eq!(
        l.keys,
        ["empty/", "hand/", "hand/made/", "p/", "p/q/", "p/q/r/"]
    );

    // A marker cannot carry data.
    let err = env
        .s3
        .put_object()
        .bucket(BUCKET)
        .key("x/y/")
        .body(ByteStream::from_static(b"data"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "InvalidArgument");

    // Deleting a non-empty folder's marker keeps the folder and its children.
    env.put("full/child.txt", b"c".to_vec()).await;
    env.s3
        .delete_object()
        .bucket(BUCKET)
        .key("full/")
        .send()
        .await
        .unwrap();
    assert_eq!(env.get("full/child.txt").await, b"c");
    // Deleting an empty folder's marker removes the folder.
    env.s3
        .delete_object()
        .bucket(BUCKET)
        .key("empty/")
        .send()
        .await
        .unwrap();
    assert!(!env.path("empty").exists());
    let err = env
        .s3
        .head_object()
        .bucket(BUCKET)
        .key("empty/")
        .send()
        .await
        .unwrap_err();
    assert!(err.as_service_error().unwrap().is_not_found());
    // Deleting the last file keeps its folder.
    env.s3
        .delete_object()
        .bucket(BUCKET)
        .key("full/child.txt")
        .send()
        .await
        .unwrap();
    assert!(env.path("full").is_dir());
}

#[tokio::test]
async fn list_v2_order_delimiter_and_paging_2500() {
    let env = Env::new("paging").await;
    // Names whose S3 order differs from a naive directory walk.
    for k in ["a-b", "a.txt", "a/x", "a0"] {
        env.put(k, b"x".to_vec()).await;
    }
    env.put("b/", Vec::new()).await;
    let l = env.list_all("", None, 1000).await;
    assert_eq!(l.keys, ["a-b", "a.txt", "a/", "a/x", "a0", "b/"]);
    let l = env.list_all("", Some("/"), 1000).await;
    assert_eq!(l.keys, ["a-b", "a.txt", "a0"]);
    assert_eq!(l.prefixes, ["a/", "b/"]);

    // 2,500 keys through the API: 2,000 in a folder tree, 500 at the top.
    let mut expected = Vec::new();
    for i in 0..2000 {
        expected.push(format!("many/sub{}/f{i:05}.txt", i % 4));
    }
    for i in 0..500 {
        expected.push(format!("many/top{i:04}"));
    }
    let s3 = env.s3.clone();
    let results: Vec<_> = futures::stream::iter(expected.clone())
        .map(|k| {
            let s3 = s3.clone();
            async move {
                s3.put_object()
                    .bucket(BUCKET)
                    .key(&k)
                    .body(ByteStream::from(k.clone().into_bytes()))
                    .send()
                    .await
            }
        })
        .buffer_unordered(32)
        .collect()
        .await;
    assert!(results.iter().all(Result::is_ok));

    // Without a delimiter: every key, folder markers included, in order, over 3 pages.
    let l = env.list_all("many/", None, 1000).await;
    let mut want: Vec<String> = expected.clone();
    want.push("many/".to_owned());
    want.extend((0..4).map(|i| format!("many/sub{i}/")));
    want.sort();
    assert_eq!(l.keys.len(), 2505);
    assert_eq!(l.keys, want);
    assert_eq!(l.pages, 3);

    // With a delimiter and small pages: common prefixes are counted and never repeated.
    let l = env.list_all("many/", Some("/"), 7).await;
    assert_eq!(
        l.prefixes,
        ["many/sub0/", "many/sub1/", "many/sub2/", "many/sub3/"]
    );
    assert_eq!(l.keys.len(), 501, "marker + 500 top-level files");
    assert_eq!(l.keys[0], "many/");
    assert_eq!(l.pages, 505_usize.div_ceil(7));

    // ListObjects (v1) pages the same way with markers.
    let (mut v1_keys, mut v1_prefixes, mut marker) = (Vec::new(), Vec::new(), None::<String>);
    loop {
        let resp = env
            .s3
            .list_objects()
            .bucket(BUCKET)
            .prefix("many/")
            .delimiter("/")
            .max_keys(5) // the first page ends on a common prefix
            .set_marker(marker.clone())
            .send()
            .await
            .unwrap();
        v1_keys.extend(resp.contents().iter().map(|o| o.key().unwrap().to_owned()));
        v1_prefixes.extend(
            resp.common_prefixes()
                .iter()
                .map(|p| p.prefix().unwrap().to_owned()),
        );
        if resp.is_truncated() != Some(true) {
            break;
        }
        marker = Some(resp.next_marker().unwrap().to_owned());
    }
    assert_eq!(v1_keys, l.keys);
    assert_eq!(v1_prefixes, l.prefixes);

    // start-after.
    let resp = env
        .s3
        .list_objects_v2()
        .bucket(BUCKET)
        .prefix("many/top")
        .start_after("many/top0497")
        .send()
        .await
        .unwrap();
    let got: Vec<&str> = resp.contents().iter().map(|o| o.key().unwrap()).collect();
    assert_eq!(got, ["many/top0498", "many/top0499"]);
    // Sizes and ETags in listings.
    let o = &resp.contents()[0];
    assert_eq!(o.size(), Some("many/top0498".len() as i64));
    assert_eq!(o.e_tag(), Some(quoted_md5(b"many/top0498").as_str()));

    // A bad token is an S3 error, not a panic.
    let err = env
        .s3
        .list_objects_v2()
        .bucket(BUCKET)
        .continuation_token("garbage")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "InvalidArgument");
}

#[tokio::test]
async fn ten_thousand_files_in_one_folder() {
    let env = Env::new("tenk").await;
    let dir = env.path("huge");
    fs::create_dir_all(&dir).unwrap();
    for i in 0..10_050 {
        fs::write(dir.join(format!("file-{i}.dat")), b"").unwrap();
    }
    let l = env.list_all("huge/", Some("/"), 1000).await;
    assert_eq!(l.keys.len(), 10_051);
    assert_eq!(l.pages, 11);
    let unique: BTreeSet<&String> = l.keys.iter().collect();
    assert_eq!(unique.len(), l.keys.len(), "no duplicates across pages");
    let mut sorted = l.keys.clone();
    sorted.sort();
    assert_eq!(l.keys, sorted);
}

#[tokio::test]
async fn hand_dropped_files_get_stable_etags() {
    let env = Env::new("handmade").await;
    fs::write(env.path("manual.txt"), b"by hand").unwrap();
    let h1 = env
        .s3
        .head_object()
        .bucket(BUCKET)
        .key("manual.txt")
        .send()
        .await
        .unwrap();
    let h2 = env
        .s3
        .head_object()
        .bucket(BUCKET)
        .key("manual.txt")
        .send()
        .await
        .unwrap();
    assert_eq!(h1.e_tag(), h2.e_tag());
    assert_eq!(h1.content_length(), Some(7));
    assert_eq!(env.get("manual.txt").await, b"by hand");
    // Overwriting an uploaded file by hand invalidates its stored ETag.
    env.put("edited.txt", b"original".to_vec()).await;
    std::thread::sleep(Duration::from_millis(20));
    fs::write(env.path("edited.txt"), b"edited by hand!").unwrap();
    let h = env
        .s3
        .head_object()
        .bucket(BUCKET)
        .key("edited.txt")
        .send()
        .await
        .unwrap();
    assert_ne!(h.e_tag(), Some(quoted_md5(b"original").as_str()));
    assert_eq!(h.content_length(), Some(15));
    assert_eq!(env.get("edited.txt").await, b"edited by hand!");
}

#[tokio::test]
async fn concurrent_puts_to_one_key_stay_consistent() {
    let env = Env::new("race").await;
    let bodies: Vec<Vec<u8>> = (0..8).map(|i| data(64 * 1024 + i, i as u64)).collect();
    let s3 = env.s3.clone();
    let puts = bodies.iter().cloned().map(|b| {
        let s3 = s3.clone();
        async move {
            s3.put_object()
                .bucket(BUCKET)
                .key("same")
                .body(ByteStream::from(b))
                .send()
                .await
                .unwrap()
        }
    });
    futures::future::join_all(puts).await;
    let got = env.get("same").await;
    assert!(
        bodies.contains(&got),
        "the object is one of the uploads, whole"
    );
    let head = env
        .s3
        .head_object()
        .bucket(BUCKET)
        .key("same")
        .send()
        .await
        .unwrap();
    assert_eq!(head.e_tag(), Some(quoted_md5(&got).as_str()));
    let tmp: Vec<_> = fs::read_dir(env.root.join(".localstore/tmp"))
        .unwrap()
        .collect();
    assert!(tmp.is_empty(), "no temp files left behind");
}

#[tokio::test]
async fn interrupted_upload_leaves_previous_object() {
    let env = Env::new("interrupt").await;
    env.put("doc.txt", b"precious".to_vec()).await;
    let presigned = env
        .s3
        .put_object()
        .bucket(BUCKET)
        .key("doc.txt")
        .presigned(PresigningConfig::expires_in(Duration::from_secs(300)).unwrap())
        .await
        .unwrap();
    let uri: http::Uri = presigned.uri().parse().unwrap();
    let addr = env.store().local_addr();
    let mut sock = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut req = format!(
        "PUT {} HTTP/1.1\r\nHost: {}\r\nContent-Length: 100000\r\n",
        uri.path_and_query().unwrap(),
        uri.authority().unwrap()
    );
    for (k, v) in presigned.headers() {
        if !k.eq_ignore_ascii_case("host") {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
    }
    req.push_str("\r\n");
    sock.write_all(req.as_bytes()).await.unwrap();
    sock.write_all(&[b'x'; 1000]).await.unwrap();
    sock.flush().await.unwrap();
    let tmp_dir = env.root.join(".localstore/tmp");
    let mut in_flight = false;
    for _ in 0..50 {
        if fs::read_dir(&tmp_dir).unwrap().next().is_some() {
            in_flight = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        in_flight,
        "the upload reached the server and is being written to a temp file"
    );
    assert_eq!(
        env.get("doc.txt").await,
        b"precious",
        "not visible while uploading"
    );
    drop(sock); // the client goes away mid-body

    let mut clean = false;
    for _ in 0..50 {
        if fs::read_dir(&tmp_dir).unwrap().next().is_none() {
            clean = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(clean, "the partial temp file was removed");
    assert_eq!(env.get("doc.txt").await, b"precious");

    // The same presigned request, sent whole, works: the signature path is sound.
    let mut sock = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req = req.replace("Content-Length: 100000", "Content-Length: 3");
    sock.write_all(req.as_bytes()).await.unwrap();
    sock.write_all(b"new").await.unwrap();
    let mut buf = vec![0u8; 512];
    let n = sock.read(&mut buf).await.unwrap();
    let reply = String::from_utf8_lossy(&buf[..n]);
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    assert_eq!(env.get("doc.txt").await, b"new");
}

// ---- bad input -------------------------------------------------------------------------------

#[tokio::test]
async fn bad_keys_are_rejected() {
    let env = Env::new("badkeys").await;
    for key in [
        "a//b",
        "a/../b",
        "../escape",
        "./x",
        "a/.",
        "/leading",
        "back\\slash",
        "nul\0byte",
        ".localstore/x",
        "a/.localstore-tmp-1",
    ] {
        let err = env
            .s3
            .put_object()
            .bucket(BUCKET)
            .key(key)
            .body(ByteStream::from_static(b"x"))
            .send()
            .await
            .expect_err(key);
        assert_eq!(code(&err), "InvalidArgument", "{key:?}: {err:?}");
        assert_eq!(status(&err), 400, "{key:?}");
        let err = env
            .s3
            .get_object()
            .bucket(BUCKET)
            .key(key)
            .send()
            .await
            .unwrap_err();
        assert_eq!(code(&err), "InvalidArgument", "GET {key:?}");
    }
    assert!(!env.root.join("escape").exists());
    let l = env.list_all("", None, 1000).await;
    assert!(l.keys.is_empty(), "nothing was stored: {:?}", l.keys);

    // File/folder name clashes are conflicts and never lose data.
    env.put("clash", b"file".to_vec()).await;
    let err = env
        .s3
        .put_object()
        .bucket(BUCKET)
        .key("clash/inner.txt")
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "ObjectNameConflict");
    assert_eq!(status(&err), 409);
    let err = env
        .s3
        .put_object()
        .bucket(BUCKET)
        .key("clash/")
        .body(ByteStream::from_static(b""))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "ObjectNameConflict");
    assert_eq!(env.get("clash").await, b"file");

    env.put("folder/child", b"child".to_vec()).await;
    let err = env
        .s3
        .put_object()
        .bucket(BUCKET)
        .key("folder")
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "ObjectNameConflict");
    assert_eq!(status(&err), 409);
    assert_eq!(env.get("folder/child").await, b"child");
    // An empty folder is an object too: it is not silently replaced by a file.
    env.put("emptydir/", Vec::new()).await;
    let err = env
        .s3
        .put_object()
        .bucket(BUCKET)
        .key("emptydir")
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "ObjectNameConflict");
    assert!(env.path("emptydir").is_dir());
}

#[tokio::test]
async fn wrong_credentials_are_rejected() {
    let env = Env::new("auth").await;
    let bad_secret = client(&env.store().endpoint(), AK, "not-the-secret");
    let err = bad_secret.list_buckets().send().await.unwrap_err();
    assert_eq!(code(&err), "SignatureDoesNotMatch");
    assert_eq!(status(&err), 403);
    let err = bad_secret
        .put_object()
        .bucket(BUCKET)
        .key("x")
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "SignatureDoesNotMatch");
    assert!(!env.path("x").exists());

    let bad_key = client(&env.store().endpoint(), "AKUNKNOWN", SK);
    let err = bad_key
        .head_bucket()
        .bucket(BUCKET)
        .send()
        .await
        .unwrap_err();
    assert_eq!(status(&err), 403);
    let err = bad_key
        .list_objects_v2()
        .bucket(BUCKET)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "InvalidAccessKeyId");

    // No signature at all.
    let mut sock = tokio::net::TcpStream::connect(env.store().local_addr())
        .await
        .unwrap();
    sock.write_all(b"GET /bkt HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut reply = String::new();
    sock.read_to_string(&mut reply).await.unwrap();
    assert!(reply.starts_with("HTTP/1.1 403"), "{reply}");
    assert!(reply.contains("AccessDenied"), "{reply}");
}

// ---- multipart -------------------------------------------------------------------------------

#[tokio::test]
async fn multipart_three_parts_plus_copy_parts() {
    let env = Env::new("multipart").await;
    let key = "uploads/大きい file.bin";
    let src = data(6 * MIB, 99);
    env.put("source.bin", src.clone()).await;

    let up = env
        .s3
        .create_multipart_upload()
        .bucket(BUCKET)
        .key(key)
        .content_type("application/x-test")
        .send()
        .await
        .unwrap();
    let id = up.upload_id().unwrap().to_owned();

    let listed = env
        .s3
        .list_multipart_uploads()
        .bucket(BUCKET)
        .send()
        .await
        .unwrap();
    let ids: Vec<&str> = listed
        .uploads()
        .iter()
        .map(|u| u.upload_id().unwrap())
        .collect();
    assert_eq!(ids, [id.as_str()]);
    assert_eq!(listed.uploads()[0].key(), Some(key));

    let mut expected = Vec::new();
    let mut parts = Vec::new();
    for n in 1..=3 {
        let body = data(5 * MIB, n as u64);
        let out = env
            .s3
            .upload_part()
            .bucket(BUCKET)
            .key(key)
            .upload_id(&id)
            .part_number(n)
            .body(ByteStream::from(body.clone()))
            .send()
            .await
            .unwrap();
        assert_eq!(out.e_tag(), Some(quoted_md5(&body).as_str()));
        parts.push((n, out.e_tag().unwrap().to_owned(), md5_hex(&body)));
        expected.extend_from_slice(&body);
    }
    // Part 4: a ranged copy; part 5: a whole-object copy.
    let range_src = &src[MIB..MIB + 5 * MIB];
    let out = env
        .s3
        .upload_part_copy()
        .bucket(BUCKET)
        .key(key)
        .upload_id(&id)
        .part_number(4)
        .copy_source(format!("{BUCKET}/source.bin"))
        .copy_source_range(format!("bytes={}-{}", MIB, 6 * MIB - 1))
        .send()
        .await
        .unwrap();
    let e4 = out.copy_part_result().unwrap().e_tag().unwrap().to_owned();
    assert_eq!(e4, quoted_md5(range_src));
    parts.push((4, e4, md5_hex(range_src)));
    expected.extend_from_slice(range_src);

    env.put("small.txt", b"tail".to_vec()).await;
    let out = env
        .s3
        .upload_part_copy()
        .bucket(BUCKET)
        .key(key)
        .upload_id(&id)
        .part_number(5)
        .copy_source(format!("{BUCKET}/small.txt"))
        .send()
        .await
        .unwrap();
    let e5 = out.copy_part_result().unwrap().e_tag().unwrap().to_owned();
    parts.push((5, e5, md5_hex(b"tail")));
    expected.extend_from_slice(b"tail");

    // A range past the end of the source is refused.
    let err = env
        .s3
        .upload_part_copy()
        .bucket(BUCKET)
        .key(key)
        .upload_id(&id)
        .part_number(6)
        .copy_source(format!("{BUCKET}/small.txt"))
        .copy_source_range("bytes=0-100")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "InvalidArgument");

    let lp = env
        .s3
        .list_parts()
        .bucket(BUCKET)
        .key(key)
        .upload_id(&id)
        .send()
        .await
        .unwrap();
    let nums: Vec<i32> = lp
        .parts()
        .iter()
        .map(|p| p.part_number().unwrap())
        .collect();
    assert_eq!(nums, [1, 2, 3, 4, 5]);
    assert_eq!(lp.parts()[0].size(), Some(5 * MIB as i64));
    let lp = env
        .s3
        .list_parts()
        .bucket(BUCKET)
        .key(key)
        .upload_id(&id)
        .max_parts(2)
        .part_number_marker("2")
        .send()
        .await
        .unwrap();
    let nums: Vec<i32> = lp
        .parts()
        .iter()
        .map(|p| p.part_number().unwrap())
        .collect();
    assert_eq!(nums, [3, 4]);
    assert_eq!(lp.is_truncated(), Some(true));

    let completed = |list: &[(i32, String, String)]| {
        CompletedMultipartUpload::builder()
            .set_parts(Some(
                list.iter()
                    .map(|(n, e, _)| CompletedPart::builder().part_number(*n).e_tag(e).build())
                    .collect(),
            ))
            .build()
    };
    // Out of order, and a wrong ETag, are refused and leave the upload usable.
    let mut shuffled = parts.clone();
    shuffled.swap(0, 1);
    let err = env
        .s3
        .complete_multipart_upload()
        .bucket(BUCKET)
        .key(key)
        .upload_id(&id)
        .multipart_upload(completed(&shuffled))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "InvalidPartOrder");
    let mut wrong = parts.clone();
    wrong[1].1 = quoted_md5(b"nope");
    let err = env
        .s3
        .complete_multipart_upload()
        .bucket(BUCKET)
        .key(key)
        .upload_id(&id)
        .multipart_upload(completed(&wrong))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "InvalidPart");
    assert!(!env.path(key).exists());

    let done = env
        .s3
        .complete_multipart_upload()
        .bucket(BUCKET)
        .key(key)
        .upload_id(&id)
        .multipart_upload(completed(&parts))
        .send()
        .await
        .unwrap();
    let mut cat = Vec::new();
    for (_, _, hex) in &parts {
        for i in 0..16 {
            cat.push(u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap());
        }
    }
    let want_etag = format!("\"{}-5\"", md5_hex(&cat));
    assert_eq!(done.e_tag(), Some(want_etag.as_str()));

    assert_eq!(env.get(key).await, expected);
    assert_eq!(fs::read(env.path(key)).unwrap(), expected);
    let head = env
        .s3
        .head_object()
        .bucket(BUCKET)
        .key(key)
        .send()
        .await
        .unwrap();
    assert_eq!(head.e_tag(), Some(want_etag.as_str()));
    assert_eq!(head.content_length(), Some(expected.len() as i64));
    assert_eq!(head.content_type(), Some("application/x-test"));

    let listed = env
        .s3
        .list_multipart_uploads()
        .bucket(BUCKET)
        .send()
        .await
        .unwrap();
    assert!(listed.uploads().is_empty());
    let err = env
        .s3
        .upload_part()
        .bucket(BUCKET)
        .key(key)
        .upload_id(&id)
        .part_number(1)
        .body(ByteStream::from_static(b"late"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "NoSuchUpload");
    assert_eq!(
        fs::read_dir(env.root.join(".localstore/uploads"))
            .unwrap()
            .count(),
        0
    );
}

#[tokio::test]
async fn abort_leaves_no_uploads() {
    let env = Env::new("abort").await;
    let mut ids = Vec::new();
    for key in ["a/one.bin", "b/two.bin"] {
        let up = env
            .s3
            .create_multipart_upload()
            .bucket(BUCKET)
            .key(key)
            .send()
            .await
            .unwrap();
        let id = up.upload_id().unwrap().to_owned();
        env.s3
            .upload_part()
            .bucket(BUCKET)
            .key(key)
            .upload_id(&id)
            .part_number(1)
            .body(ByteStream::from(data(1000, 1)))
            .send()
            .await
            .unwrap();
        ids.push((key, id));
    }
    let only_a = env
        .s3
        .list_multipart_uploads()
        .bucket(BUCKET)
        .prefix("a/")
        .send()
        .await
        .unwrap();
    assert_eq!(only_a.uploads().len(), 1);
    assert_eq!(only_a.uploads()[0].key(), Some("a/one.bin"));

    // Aborting with the wrong key is refused.
    let err = env
        .s3
        .abort_multipart_upload()
        .bucket(BUCKET)
        .key("b/two.bin")
        .upload_id(&ids[0].1)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "NoSuchUpload");

    for (key, id) in &ids {
        env.s3
            .abort_multipart_upload()
            .bucket(BUCKET)
            .key(*key)
            .upload_id(id)
            .send()
            .await
            .unwrap();
        let err = env
            .s3
            .list_parts()
            .bucket(BUCKET)
            .key(*key)
            .upload_id(id)
            .send()
            .await
            .unwrap_err();
        assert_eq!(code(&err), "NoSuchUpload");
        let err = env
            .s3
            .abort_multipart_upload()
            .bucket(BUCKET)
            .key(*key)
            .upload_id(id)
            .send()
            .await
            .unwrap_err();
        assert_eq!(code(&err), "NoSuchUpload");
    }
    let listed = env
        .s3
        .list_multipart_uploads()
        .bucket(BUCKET)
        .send()
        .await
        .unwrap();
    assert!(listed.uploads().is_empty());
    assert_eq!(
        fs::read_dir(env.root.join(".localstore/uploads"))
            .unwrap()
            .count(),
        0
    );
    let l = env.list_all("", None, 1000).await;
    assert!(
        l.keys.is_empty(),
        "aborted uploads leave no objects: {:?}",
        l.keys
    );
    // A made-up upload id is NoSuchUpload, not a path.
    let err = env
        .s3
        .list_parts()
        .bucket(BUCKET)
        .key("x")
        .upload_id("../../etc")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "NoSuchUpload");
}

// ---- delete, copy, buckets -------------------------------------------------------------------

#[tokio::test]
async fn delete_objects_removes_a_folder_tree() {
    let env = Env::new("deltree").await;
    let keys = [
        "tree/",
        "tree/a.txt",
        "tree/sub/",
        "tree/sub/b.txt",
        "tree/sub/deeper/",
    ];
    for k in keys {
        env.put(
            k,
            if k.ends_with('/') {
                vec![]
            } else {
                b"x".to_vec()
            },
        )
        .await;
    }
    env.put("keep.txt", b"keep".to_vec()).await;

    // Listing order (markers before their children) is what clients send.
    let listed = env.list_all("tree/", None, 1000).await;
    assert_eq!(listed.keys, keys);
    let delete = Delete::builder()
        .set_objects(Some(
            listed
                .keys
                .iter()
                .map(|k| ObjectIdentifier::builder().key(k).build().unwrap())
                .chain([ObjectIdentifier::builder().key("a/../b").build().unwrap()])
                .collect(),
        ))
        .build()
        .unwrap();
    let out = env
        .s3
        .delete_objects()
        .bucket(BUCKET)
        .delete(delete)
        .send()
        .await
        .unwrap();
    let deleted: BTreeSet<&str> = out.deleted().iter().map(|d| d.key().unwrap()).collect();
    assert_eq!(deleted, keys.iter().copied().collect::<BTreeSet<_>>());
    assert_eq!(out.errors().len(), 1);
    assert_eq!(out.errors()[0].key(), Some("a/../b"));
    assert_eq!(out.errors()[0].code(), Some("InvalidArgument"));
    assert!(!env.path("tree").exists(), "the whole folder is gone");
    assert_eq!(env.get("keep.txt").await, b"keep");

    // Quiet mode reports only errors; missing keys are not errors.
    env.put("q/1", b"1".to_vec()).await;
    let delete = Delete::builder()
        .quiet(true)
        .set_objects(Some(vec![
            ObjectIdentifier::builder().key("q/1").build().unwrap(),
            ObjectIdentifier::builder()
                .key("q/missing")
                .build()
                .unwrap(),
        ]))
        .build()
        .unwrap();
    let out = env
        .s3
        .delete_objects()
        .bucket(BUCKET)
        .delete(delete)
        .send()
        .await
        .unwrap();
    assert!(out.deleted().is_empty());
    assert!(out.errors().is_empty());
    assert!(!env.path("q/1").exists());
}

#[tokio::test]
async fn copy_object_within_and_across_buckets() {
    let env = Env::new("copy").await;
    env.store().ensure_bucket("other").unwrap();
    let body = data(300_000, 5);
    let etag = env.put("src/file.bin", body.clone()).await;

    let out = env
        .s3
        .copy_object()
        .bucket("other")
        .key("deep/new/folder/dst.bin")
        .copy_source(format!("{BUCKET}/src/file.bin"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        out.copy_object_result().unwrap().e_tag(),
        Some(etag.as_str())
    );
    let copied = env.root.join("other/deep/new/folder/dst.bin");
    assert_eq!(fs::read(&copied).unwrap(), body);
    let got = env
        .s3
        .get_object()
        .bucket("other")
        .key("deep/new/folder/dst.bin")
        .send()
        .await
        .unwrap();
    assert_eq!(got.e_tag(), Some(etag.as_str()));
    assert_eq!(got.body.collect().await.unwrap().to_vec(), body);

    // Same bucket, unicode key, metadata replaced.
    env.s3
        .copy_object()
        .bucket(BUCKET)
        .key("改名/複製.bin")
        .copy_source(format!("{BUCKET}/src/file.bin"))
        .metadata_directive(MetadataDirective::Replace)
        .content_type("text/plain")
        .send()
        .await
        .unwrap();
    let head = env
        .s3
        .head_object()
        .bucket(BUCKET)
        .key("改名/複製.bin")
        .send()
        .await
        .unwrap();
    assert_eq!(head.content_type(), Some("text/plain"));
    assert_eq!(head.e_tag(), Some(etag.as_str()));

    // A unicode source key with spaces and '+', percent-encoded as S3 requires.
    let src_key = "源 folder/file +1%.txt";
    env.put(src_key, b"unicode source".to_vec()).await;
    let encoded: String = src_key
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~/".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    env.s3
        .copy_object()
        .bucket(BUCKET)
        .key("目的地/file +1%.txt")
        .copy_source(format!("{BUCKET}/{encoded}"))
        .send()
        .await
        .unwrap();
    assert_eq!(env.get("目的地/file +1%.txt").await, b"unicode source");

    // Copying to itself without REPLACE is illegal, as on S3.
    let err = env
        .s3
        .copy_object()
        .bucket(BUCKET)
        .key("src/file.bin")
        .copy_source(format!("{BUCKET}/src/file.bin"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "InvalidRequest");

    // A hand-dropped source gets a real MD5 ETag on the copy.
    fs::write(env.path("hand.txt"), b"manual").unwrap();
    let out = env
        .s3
        .copy_object()
        .bucket(BUCKET)
        .key("hand-copy.txt")
        .copy_source(format!("{BUCKET}/hand.txt"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        out.copy_object_result().unwrap().e_tag(),
        Some(quoted_md5(b"manual").as_str())
    );

    // A folder marker copies to a folder marker.
    env.put("emptyfolder/", Vec::new()).await;
    env.s3
        .copy_object()
        .bucket(BUCKET)
        .key("renamed/")
        .copy_source(format!("{BUCKET}/emptyfolder/"))
        .send()
        .await
        .unwrap();
    assert!(env.path("renamed").is_dir());

    let err = env
        .s3
        .copy_object()
        .bucket(BUCKET)
        .key("x")
        .copy_source(format!("{BUCKET}/does/not/exist"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "NoSuchKey");
}

#[tokio::test]
async fn bucket_operations() {
    let env = Env::new("buckets").await;
    let names: Vec<String> = env
        .s3
        .list_buckets()
        .send()
        .await
        .unwrap()
        .buckets()
        .iter()
        .map(|b| b.name().unwrap().to_owned())
        .collect();
    assert_eq!(names, [BUCKET], "the internal folder is not a bucket");

    env.s3
        .create_bucket()
        .bucket("fresh-bucket")
        .send()
        .await
        .unwrap();
    assert!(env.root.join("fresh-bucket").is_dir());
    let err = env
        .s3
        .create_bucket()
        .bucket("fresh-bucket")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "BucketAlreadyOwnedByYou");
    env.s3
        .head_bucket()
        .bucket("fresh-bucket")
        .send()
        .await
        .unwrap();
    let loc = env
        .s3
        .get_bucket_location()
        .bucket("fresh-bucket")
        .send()
        .await
        .unwrap();
    assert_eq!(loc.location_constraint().map(|c| c.as_str()), Some("local"));

    let err = env
        .s3
        .head_bucket()
        .bucket("missing-bucket")
        .send()
        .await
        .unwrap_err();
    assert!(err.as_service_error().unwrap().is_not_found());
    assert_eq!(status(&err), 404);

    env.s3
        .put_object()
        .bucket("fresh-bucket")
        .key("f")
        .body(ByteStream::from_static(b"1"))
        .send()
        .await
        .unwrap();
    let err = env
        .s3
        .delete_bucket()
        .bucket("fresh-bucket")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "BucketNotEmpty");
    env.s3
        .delete_object()
        .bucket("fresh-bucket")
        .key("f")
        .send()
        .await
        .unwrap();
    env.s3
        .delete_bucket()
        .bucket("fresh-bucket")
        .send()
        .await
        .unwrap();
    assert!(!env.root.join("fresh-bucket").exists());

    assert!(matches!(
        env.store().ensure_bucket("Bad_Name"),
        Err(LocalStoreError::InvalidBucketName(_))
    ));
    assert!(env.store().ensure_bucket("..").is_err());
    env.store().ensure_bucket(BUCKET).unwrap();
    assert_eq!(env.store().region(), "local");
    assert!(env.store().endpoint().starts_with("http://127.0.0.1:"));
}

#[tokio::test]
async fn stop_closes_the_port() {
    let mut env = Env::new("stop").await;
    let addr = env.store().local_addr();
    env.put("k", b"v".to_vec()).await;
    env.store.take().unwrap().stop().await;
    let refused = tokio::net::TcpStream::connect(addr).await;
    assert!(refused.is_err(), "still accepting after stop");

    // Restarting over the same folder serves the same data with the same ETag.
    let store = LocalStore::start(LocalStoreConfig {
        root: env.root.clone(),
        access_key: AK.to_owned(),
        secret_key: SK.to_owned(),
        bind: "127.0.0.1:0".parse().unwrap(),
    })
    .await
    .unwrap();
    let s3 = client(&store.endpoint(), AK, SK);
    let out = s3
        .get_object()
        .bucket(BUCKET)
        .key("k")
        .send()
        .await
        .unwrap();
    assert_eq!(out.e_tag(), Some(quoted_md5(b"v").as_str()));
    assert_eq!(out.body.collect().await.unwrap().to_vec(), b"v");
    store.stop().await;
}

// ---- integrity (issue 22) -------------------------------------------------------------------

/// Standard base64 with padding, as the `x-amz-checksum-*` headers carry digests.
fn b64(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for c in bytes.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(c.get(1).copied().unwrap_or(0)) << 8)
            | u32::from(c.get(2).copied().unwrap_or(0));
        for (i, shift) in [18u32, 12, 6, 0].into_iter().enumerate() {
            out.push(if i <= c.len() {
                char::from(A[((n >> shift) & 63) as usize])
            } else {
                '='
            });
        }
    }
    out
}

fn crc32c(data: &[u8]) -> String {
    b64(&s3s::crypto::Crc32c::checksum(data))
}

fn crc64nvme(data: &[u8]) -> String {
    b64(&s3s::crypto::Crc64Nvme::checksum(data))
}

fn sha256(data: &[u8]) -> String {
    b64(&s3s::crypto::Sha256::checksum(data))
}

/// Files in `.localstore/tmp` (a refused body must leave none behind).
fn temp_files(env: &Env) -> Vec<PathBuf> {
    fs::read_dir(env.root.join(".localstore/tmp"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect()
}

#[tokio::test]
async fn put_object_checks_flexible_checksums_and_content_md5() {
    let env = Env::new("put-checksums").await;
    let old = b"the old content".to_vec();
    env.put("k.bin", old.clone()).await;
    let body = data(300_000, 22);
    let other = data(10, 1);

    // Wrong CRC32C, SHA-256 and Content-MD5: BadDigest (400), and the old object stays.
    let wrong = [
        ("CRC32C", crc32c(&other), None, None),
        ("SHA256", String::new(), Some(sha256(&other)), None),
        (
            "MD5",
            String::new(),
            None,
            Some(b64(&Md5::checksum(&other))),
        ),
    ];
    for (what, crc, sha, md5) in wrong {
        let mut put = env
            .s3
            .put_object()
            .bucket(BUCKET)
            .key("k.bin")
            .body(ByteStream::from(body.clone()));
        if !crc.is_empty() {
            put = put.checksum_crc32_c(crc);
        }
        if let Some(sha) = sha {
            put = put.checksum_sha256(sha);
        }
        if let Some(md5) = md5 {
            put = put.content_md5(md5);
        }
        let err = put.send().await.unwrap_err();
        assert_eq!(code(&err), "BadDigest", "{what}: {err:?}");
        assert_eq!(status(&err), 400, "{what}");
        if what == "CRC32C" {
            assert_eq!(
                err.message(),
                Some("The CRC32C you specified did not match the calculated checksum.")
            );
        }
        assert_eq!(env.get("k.bin").await, old, "{what}: the old object stays");
        assert_eq!(fs::read(env.path("k.bin")).unwrap(), old);
        assert!(temp_files(&env).is_empty(), "{what}: no temp file left");
    }
    // A new key is not created by a refused body.
    let err = env
        .s3
        .put_object()
        .bucket(BUCKET)
        .key("new.bin")
        .checksum_sha256(sha256(&other))
        .body(ByteStream::from(body.clone()))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "BadDigest");
    assert!(!env.path("new.bin").exists());

    // The right ones are accepted, echoed, kept, and returned on request.
    let out = env
        .s3
        .put_object()
        .bucket(BUCKET)
        .key("k.bin")
        .checksum_crc32_c(crc32c(&body))
        .content_md5(b64(&Md5::checksum(&body)))
        .body(ByteStream::from(body.clone()))
        .send()
        .await
        .unwrap();
    assert_eq!(out.checksum_crc32_c(), Some(crc32c(&body).as_str()));
    assert_eq!(env.get("k.bin").await, body);
    let head = env
        .s3
        .head_object()
        .bucket(BUCKET)
        .key("k.bin")
        .checksum_mode(ChecksumMode::Enabled)
        .send()
        .await
        .unwrap();
    assert_eq!(head.checksum_crc32_c(), Some(crc32c(&body).as_str()));
    assert_eq!(head.checksum_type(), Some(&ChecksumType::FullObject));
    let plain = env
        .s3
        .head_object()
        .bucket(BUCKET)
        .key("k.bin")
        .send()
        .await
        .unwrap();
    assert_eq!(
        plain.checksum_crc32_c(),
        None,
        "only with x-amz-checksum-mode"
    );
    // GetObject returns it too (and the SDK, asked to, validates the body against it).
    let got = env
        .s3
        .get_object()
        .bucket(BUCKET)
        .key("k.bin")
        .checksum_mode(ChecksumMode::Enabled)
        .send()
        .await
        .unwrap();
    assert_eq!(got.checksum_crc32_c(), Some(crc32c(&body).as_str()));
    assert_eq!(got.body.collect().await.unwrap().to_vec(), body);

    let out = env
        .s3
        .put_object()
        .bucket(BUCKET)
        .key("sha.bin")
        .checksum_sha256(sha256(&body))
        .body(ByteStream::from(body.clone()))
        .send()
        .await
        .unwrap();
    assert_eq!(out.checksum_sha256(), Some(sha256(&body).as_str()));

    // Two checksum headers, or a value that is no digest: InvalidRequest, as AWS.
    for put in [
        env.s3
            .put_object()
            .checksum_crc32_c(crc32c(&body))
            .checksum_sha256(sha256(&body)),
        env.s3.put_object().checksum_crc32_c("not-a-crc"),
        env.s3.put_object().checksum_crc32_c(sha256(&body)),
    ] {
        let err = put
            .bucket(BUCKET)
            .key("bad.bin")
            .body(ByteStream::from(body.clone()))
            .send()
            .await
            .unwrap_err();
        assert_eq!(code(&err), "InvalidRequest", "{err:?}");
        assert!(!env.path("bad.bin").exists());
    }
}

#[tokio::test]
async fn trailing_checksums_of_aws_chunked_bodies_are_checked() {
    let env = Env::new("trailer").await;
    // The SDK's default: it computes the checksum and sends it as a trailer.
    let conf = env
        .s3
        .config()
        .to_builder()
        .request_checksum_calculation(RequestChecksumCalculation::WhenSupported)
        .build();
    let s3 = Client::from_conf(conf);
    let body = data(200_000, 3);
    // A body streamed from a file: the checksum can only follow it, in a trailer.
    let file = tempfile::NamedTempFile::new().unwrap();
    fs::write(file.path(), &body).unwrap();
    let out = s3
        .put_object()
        .bucket(BUCKET)
        .key("t.bin")
        .checksum_algorithm(ChecksumAlgorithm::Crc32C)
        .body(ByteStream::from_path(file.path()).await.unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(out.checksum_crc32_c(), Some(crc32c(&body).as_str()));
    let head = env
        .s3
        .head_object()
        .bucket(BUCKET)
        .key("t.bin")
        .checksum_mode(ChecksumMode::Enabled)
        .send()
        .await
        .unwrap();
    assert_eq!(head.checksum_crc32_c(), Some(crc32c(&body).as_str()));
    assert_eq!(env.get("t.bin").await, body);
}

#[tokio::test]
async fn upload_part_checks_checksums_and_records_nothing_on_a_mismatch() {
    let env = Env::new("part-checksums").await;
    let id = env
        .s3
        .create_multipart_upload()
        .bucket(BUCKET)
        .key("p.bin")
        .send()
        .await
        .unwrap()
        .upload_id
        .unwrap();
    let body = data(MIB, 7);
    let other = data(10, 2);
    let part = |n: i32| {
        env.s3
            .upload_part()
            .bucket(BUCKET)
            .key("p.bin")
            .upload_id(&id)
            .part_number(n)
            .body(ByteStream::from(body.clone()))
    };
    let refused = [
        part(1).checksum_crc32_c(crc32c(&other)),
        part(1).checksum_sha256(sha256(&other)),
        part(1).content_md5(b64(&Md5::checksum(&other))),
    ];
    for up in refused {
        let err = up.send().await.unwrap_err();
        assert_eq!(code(&err), "BadDigest", "{err:?}");
        assert_eq!(status(&err), 400);
    }
    let parts = env
        .s3
        .list_parts()
        .bucket(BUCKET)
        .key("p.bin")
        .upload_id(&id)
        .send()
        .await
        .unwrap();
    assert!(parts.parts().is_empty(), "a refused part is not recorded");
    assert!(temp_files(&env).is_empty());

    let out = part(1)
        .checksum_crc32_c(crc32c(&body))
        .send()
        .await
        .unwrap();
    assert_eq!(out.e_tag(), Some(quoted_md5(&body).as_str()));
    assert_eq!(out.checksum_crc32_c(), Some(crc32c(&body).as_str()));
    part(2)
        .checksum_sha256(sha256(&body))
        .content_md5(b64(&Md5::checksum(&body)))
        .send()
        .await
        .unwrap();
    let parts = env
        .s3
        .list_parts()
        .bucket(BUCKET)
        .key("p.bin")
        .upload_id(&id)
        .send()
        .await
        .unwrap();
    let nums: Vec<i32> = parts
        .parts()
        .iter()
        .filter_map(|p| p.part_number())
        .collect();
    assert_eq!(nums, [1, 2]);

    // An upload created without an algorithm: a full-object checksum sent on complete is
    // computed while the parts are assembled, and checked.
    let done = CompletedMultipartUpload::builder()
        .set_parts(Some(
            parts
                .parts()
                .iter()
                .map(|p| {
                    CompletedPart::builder()
                        .part_number(p.part_number().unwrap())
                        .e_tag(p.e_tag().unwrap())
                        .build()
                })
                .collect(),
        ))
        .build();
    let whole = [body.clone(), body.clone()].concat();
    let complete = |value: String| {
        env.s3
            .complete_multipart_upload()
            .bucket(BUCKET)
            .key("p.bin")
            .upload_id(&id)
            .checksum_crc64_nvme(value)
            .multipart_upload(done.clone())
    };
    let err = complete(crc64nvme(&body)).send().await.unwrap_err();
    assert_eq!(code(&err), "BadDigest", "{err:?}");
    assert!(!env.path("p.bin").exists());
    assert!(temp_files(&env).is_empty());
    let out = complete(crc64nvme(&whole)).send().await.unwrap();
    assert_eq!(out.checksum_crc64_nvme(), Some(crc64nvme(&whole).as_str()));
    assert_eq!(env.get("p.bin").await, whole);
}

/// Creates an upload of `key` with `algo`/`kind` and uploads `parts`, each with its CRC64NVME
/// header when `with_header`; returns the id and the completed parts.
async fn upload_parts(
    env: &Env,
    key: &str,
    parts: &[Vec<u8>],
    with_header: impl Fn(usize) -> bool,
) -> (String, Vec<CompletedPart>) {
    let up = env
        .s3
        .create_multipart_upload()
        .bucket(BUCKET)
        .key(key)
        .checksum_algorithm(ChecksumAlgorithm::Crc64Nvme)
        .checksum_type(ChecksumType::FullObject)
        .metadata("origin", "multipart")
        .send()
        .await
        .unwrap();
    assert_eq!(up.checksum_algorithm(), Some(&ChecksumAlgorithm::Crc64Nvme));
    assert_eq!(up.checksum_type(), Some(&ChecksumType::FullObject));
    let id = up.upload_id.unwrap();
    let mut done = Vec::new();
    for (i, body) in parts.iter().enumerate() {
        let n = i as i32 + 1;
        let mut req = env
            .s3
            .upload_part()
            .bucket(BUCKET)
            .key(key)
            .upload_id(&id)
            .part_number(n)
            .body(ByteStream::from(body.clone()));
        if with_header(i) {
            req = req.checksum_crc64_nvme(crc64nvme(body));
        }
        let out = req.send().await.unwrap();
        // Echoed even for a part sent without it: computed for the upload's algorithm.
        assert_eq!(out.checksum_crc64_nvme(), Some(crc64nvme(body).as_str()));
        done.push(
            CompletedPart::builder()
                .part_number(n)
                .e_tag(out.e_tag().unwrap())
                .build(),
        );
    }
    (id, done)
}

#[tokio::test]
async fn full_object_crc64nvme_is_checked_on_complete() {
    let env = Env::new("full-object").await;
    let key = "big/file.bin";
    let old = b"old object".to_vec();
    env.put(key, old.clone()).await;
    let parts = vec![data(5 * MIB, 1), data(5 * MIB, 2), data(123_457, 3)];
    let whole = parts.concat();

    let (id, done) = upload_parts(&env, key, &parts, |_| true).await;
    let complete = |value: String| {
        env.s3
            .complete_multipart_upload()
            .bucket(BUCKET)
            .key(key)
            .upload_id(&id)
            .checksum_type(ChecksumType::FullObject)
            .checksum_crc64_nvme(value)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(done.clone()))
                    .build(),
            )
    };
    let err = complete(crc64nvme(&parts[0])).send().await.unwrap_err();
    assert_eq!(code(&err), "BadDigest", "{err:?}");
    assert_eq!(status(&err), 400);
    assert_eq!(env.get(key).await, old, "the old object stays");
    let listed = env
        .s3
        .list_multipart_uploads()
        .bucket(BUCKET)
        .send()
        .await
        .unwrap();
    assert_eq!(listed.uploads().len(), 1, "the upload stays");
    assert!(temp_files(&env).is_empty());

    let out = complete(crc64nvme(&whole)).send().await.unwrap();
    assert_eq!(out.checksum_crc64_nvme(), Some(crc64nvme(&whole).as_str()));
    assert_eq!(out.checksum_type(), Some(&ChecksumType::FullObject));
    assert_eq!(env.get(key).await, whole);
    let head = env
        .s3
        .head_object()
        .bucket(BUCKET)
        .key(key)
        .checksum_mode(ChecksumMode::Enabled)
        .send()
        .await
        .unwrap();
    assert_eq!(head.checksum_crc64_nvme(), Some(crc64nvme(&whole).as_str()));
    assert_eq!(head.checksum_type(), Some(&ChecksumType::FullObject));
    assert_eq!(head.metadata().unwrap()["origin"], "multipart");

    // Parts sent without their header are accepted; the check on complete still holds.
    let (id, done) = upload_parts(&env, "other.bin", &parts[1..], |i| i == 0).await;
    let tail = parts[1..].concat();
    let bad = env
        .s3
        .complete_multipart_upload()
        .bucket(BUCKET)
        .key("other.bin")
        .upload_id(&id)
        .checksum_crc64_nvme(crc64nvme(&whole))
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .set_parts(Some(done.clone()))
                .build(),
        )
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&bad), "BadDigest");
    assert!(!env.path("other.bin").exists());
    // The refused upload can still be aborted, as on AWS.
    env.s3
        .abort_multipart_upload()
        .bucket(BUCKET)
        .key("other.bin")
        .upload_id(&id)
        .send()
        .await
        .unwrap();
    let (id, done) = upload_parts(&env, "other.bin", &parts[1..], |_| false).await;
    let out = env
        .s3
        .complete_multipart_upload()
        .bucket(BUCKET)
        .key("other.bin")
        .upload_id(&id)
        .checksum_crc64_nvme(crc64nvme(&tail))
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .set_parts(Some(done))
                .build(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(out.checksum_crc64_nvme(), Some(crc64nvme(&tail).as_str()));
    assert_eq!(env.get("other.bin").await, tail);

    // A part copied from an object gets its CRC computed on the way, too; a part with a
    // checksum of another algorithm than the upload's is refused.
    let (id, mut done) = upload_parts(&env, "mixed.bin", &parts[..1], |_| true).await;
    let err = env
        .s3
        .upload_part()
        .bucket(BUCKET)
        .key("mixed.bin")
        .upload_id(&id)
        .part_number(2)
        .checksum_sha256(sha256(&tail))
        .body(ByteStream::from(tail.clone()))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "InvalidRequest", "{err:?}");
    let copied = env
        .s3
        .upload_part_copy()
        .bucket(BUCKET)
        .key("mixed.bin")
        .upload_id(&id)
        .part_number(2)
        .copy_source(format!("{BUCKET}/other.bin"))
        .send()
        .await
        .unwrap();
    let result = copied.copy_part_result().unwrap();
    assert_eq!(
        result.checksum_crc64_nvme(),
        Some(crc64nvme(&tail).as_str())
    );
    done.push(
        CompletedPart::builder()
            .part_number(2)
            .e_tag(result.e_tag().unwrap())
            .build(),
    );
    let mixed = [parts[0].clone(), tail.clone()].concat();
    let out = env
        .s3
        .complete_multipart_upload()
        .bucket(BUCKET)
        .key("mixed.bin")
        .upload_id(&id)
        .checksum_crc64_nvme(crc64nvme(&mixed))
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .set_parts(Some(done))
                .build(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(out.checksum_crc64_nvme(), Some(crc64nvme(&mixed).as_str()));

    // Combinations AWS refuses at creation.
    for (algo, kind) in [
        (Some(ChecksumAlgorithm::Sha256), ChecksumType::FullObject),
        (Some(ChecksumAlgorithm::Crc64Nvme), ChecksumType::Composite),
        (None, ChecksumType::FullObject),
    ] {
        let err = env
            .s3
            .create_multipart_upload()
            .bucket(BUCKET)
            .key("x")
            .set_checksum_algorithm(algo)
            .checksum_type(kind)
            .send()
            .await
            .unwrap_err();
        assert_eq!(code(&err), "InvalidRequest", "{err:?}");
    }
}

#[tokio::test]
async fn composite_checksums_of_multipart_uploads() {
    let env = Env::new("composite").await;
    let parts = [data(5 * MIB, 4), data(1000, 5)];
    let id = env
        .s3
        .create_multipart_upload()
        .bucket(BUCKET)
        .key("c.bin")
        .checksum_algorithm(ChecksumAlgorithm::Sha256)
        .send()
        .await
        .unwrap()
        .upload_id
        .unwrap();
    let mut done = Vec::new();
    let mut cat = Vec::new();
    for (i, body) in parts.iter().enumerate() {
        let n = i as i32 + 1;
        let out = env
            .s3
            .upload_part()
            .bucket(BUCKET)
            .key("c.bin")
            .upload_id(&id)
            .part_number(n)
            .checksum_sha256(sha256(body))
            .body(ByteStream::from(body.clone()))
            .send()
            .await
            .unwrap();
        cat.extend_from_slice(&s3s::crypto::Sha256::checksum(body));
        done.push((n, out.e_tag().unwrap().to_owned(), sha256(body)));
    }
    let complete = |with_sums: bool| {
        let parts = done
            .iter()
            .map(|(n, e, sum)| {
                let p = CompletedPart::builder().part_number(*n).e_tag(e);
                if with_sums { p.checksum_sha256(sum) } else { p }.build()
            })
            .collect();
        env.s3
            .complete_multipart_upload()
            .bucket(BUCKET)
            .key("c.bin")
            .upload_id(&id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(parts))
                    .build(),
            )
    };
    // A composite upload needs every part's checksum on complete, as on AWS.
    let err = complete(false).send().await.unwrap_err();
    assert_eq!(code(&err), "InvalidRequest", "{err:?}");
    let out = complete(true).send().await.unwrap();
    let want = format!("{}-2", sha256(&cat));
    assert_eq!(out.checksum_sha256(), Some(want.as_str()));
    assert_eq!(out.checksum_type(), Some(&ChecksumType::Composite));
    let head = env
        .s3
        .head_object()
        .bucket(BUCKET)
        .key("c.bin")
        .checksum_mode(ChecksumMode::Enabled)
        .send()
        .await
        .unwrap();
    assert_eq!(head.checksum_sha256(), Some(want.as_str()));
    assert_eq!(env.get("c.bin").await, parts.concat());
}

#[tokio::test]
async fn copy_onto_itself_with_replace_rewrites_only_the_metadata() {
    let env = Env::new("self-copy").await;
    let body = data(2 * MIB, 9);
    let etag = env
        .s3
        .put_object()
        .bucket(BUCKET)
        .key("doc.bin")
        .content_type("application/x-old")
        .metadata("keep", "no")
        .checksum_crc64_nvme(crc64nvme(&body))
        .body(ByteStream::from(body.clone()))
        .send()
        .await
        .unwrap()
        .e_tag
        .unwrap();
    let before = fs::metadata(env.path("doc.bin")).unwrap();
    let copy = || {
        env.s3
            .copy_object()
            .bucket(BUCKET)
            .key("doc.bin")
            .copy_source(format!("{BUCKET}/doc.bin"))
            .metadata_directive(MetadataDirective::Replace)
            .content_type("application/x-new")
            .metadata("sha256", "abc123")
    };
    // x-amz-copy-source-if-match is honoured: a wrong ETag changes nothing.
    let err = copy()
        .copy_source_if_match("\"0123456789abcdef0123456789abcdef\"")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "PreconditionFailed");
    assert_eq!(status(&err), 412);
    let head = env
        .s3
        .head_object()
        .bucket(BUCKET)
        .key("doc.bin")
        .send()
        .await
        .unwrap();
    assert_eq!(head.metadata().unwrap()["keep"], "no");

    let out = copy().copy_source_if_match(&etag).send().await.unwrap();
    assert_eq!(
        out.copy_object_result().unwrap().e_tag(),
        Some(etag.as_str())
    );
    let head = env
        .s3
        .head_object()
        .bucket(BUCKET)
        .key("doc.bin")
        .checksum_mode(ChecksumMode::Enabled)
        .send()
        .await
        .unwrap();
    let meta = head.metadata().unwrap();
    assert_eq!(meta.get("sha256").map(String::as_str), Some("abc123"));
    assert!(!meta.contains_key("keep"), "REPLACE replaces: {meta:?}");
    assert_eq!(head.content_type(), Some("application/x-new"));
    assert_eq!(head.e_tag(), Some(etag.as_str()));
    assert_eq!(head.checksum_crc64_nvme(), Some(crc64nvme(&body).as_str()));

    // The data file is the same file, untouched.
    let after = fs::metadata(env.path("doc.bin")).unwrap();
    assert_eq!(after.modified().unwrap(), before.modified().unwrap());
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        assert_eq!(after.ino(), before.ino(), "same inode: not rewritten");
    }
    assert_eq!(fs::read(env.path("doc.bin")).unwrap(), body);

    // A copy to another key keeps the full-object checksum (same bytes).
    env.s3
        .copy_object()
        .bucket(BUCKET)
        .key("doc-copy.bin")
        .copy_source(format!("{BUCKET}/doc.bin"))
        .send()
        .await
        .unwrap();
    let head = env
        .s3
        .head_object()
        .bucket(BUCKET)
        .key("doc-copy.bin")
        .checksum_mode(ChecksumMode::Enabled)
        .send()
        .await
        .unwrap();
    assert_eq!(head.checksum_crc64_nvme(), Some(crc64nvme(&body).as_str()));
    assert_eq!(head.metadata().unwrap()["sha256"], "abc123");
}

/// The user metadata HeadObject reports for `key`, sorted; GetObject must report the same.
async fn metadata_seen(env: &Env, key: &str) -> Vec<(String, String)> {
    fn sorted(m: Option<&std::collections::HashMap<String, String>>) -> Vec<(String, String)> {
        let mut v: Vec<_> = m
            .into_iter()
            .flatten()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        v.sort();
        v
    }
    let h = env
        .s3
        .head_object()
        .bucket(BUCKET)
        .key(key)
        .send()
        .await
        .unwrap();
    let g = env
        .s3
        .get_object()
        .bucket(BUCKET)
        .key(key)
        .send()
        .await
        .unwrap();
    assert_eq!(sorted(h.metadata()), sorted(g.metadata()), "{key}");
    sorted(h.metadata())
}

#[tokio::test]
async fn user_metadata_round_trips() {
    let env = Env::new("metadata").await;
    let want = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    };
    let head = |key: &'static str| metadata_seen(&env, key);

    env.s3
        .put_object()
        .bucket(BUCKET)
        .key("put.txt")
        .metadata("sha256", "feed")
        .metadata("owner", "ann")
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        head("put.txt").await,
        want(&[("owner", "ann"), ("sha256", "feed")])
    );

    let id = env
        .s3
        .create_multipart_upload()
        .bucket(BUCKET)
        .key("mp.txt")
        .metadata("sha256", "beef")
        .send()
        .await
        .unwrap()
        .upload_id
        .unwrap();
    let e = env
        .s3
        .upload_part()
        .bucket(BUCKET)
        .key("mp.txt")
        .upload_id(&id)
        .part_number(1)
        .body(ByteStream::from_static(b"part"))
        .send()
        .await
        .unwrap()
        .e_tag
        .unwrap();
    env.s3
        .complete_multipart_upload()
        .bucket(BUCKET)
        .key("mp.txt")
        .upload_id(&id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .parts(CompletedPart::builder().part_number(1).e_tag(e).build())
                .build(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(head("mp.txt").await, want(&[("sha256", "beef")]));

    env.s3
        .copy_object()
        .bucket(BUCKET)
        .key("copied.txt")
        .copy_source(format!("{BUCKET}/put.txt"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        head("copied.txt").await,
        want(&[("owner", "ann"), ("sha256", "feed")])
    );
    env.s3
        .copy_object()
        .bucket(BUCKET)
        .key("replaced.txt")
        .copy_source(format!("{BUCKET}/mp.txt"))
        .metadata_directive(MetadataDirective::Replace)
        .metadata("sha256", "cafe")
        .send()
        .await
        .unwrap();
    assert_eq!(head("replaced.txt").await, want(&[("sha256", "cafe")]));
    assert_eq!(env.get("replaced.txt").await, b"part");
}

#[test]
fn api_types_are_send_and_sync() {
    fn send_sync<T: Send + Sync>(_: &T) {}
    fn send<T: Send>(_: &T) {}
    let start = LocalStore::start(LocalStoreConfig {
        root: unique_dir("never-started"),
        access_key: AK.to_owned(),
        secret_key: SK.to_owned(),
        bind: "127.0.0.1:0".parse().unwrap(),
    });
    send(&start);
    drop(start);
    fn store_is_send_sync(s: &LocalStore) {
        send_sync(s);
    }
    let _ = store_is_send_sync;
}

// ---- credentials -----------------------------------------------------------------------------

#[test]
fn credentials_are_created_once_and_persisted() {
    let dir = unique_dir("creds").join("nested");
    let (ak, sk) = load_or_create_credentials(&dir).unwrap();
    assert!(
        ak.len() >= 16 && ak.bytes().all(|b| b.is_ascii_alphanumeric()),
        "{ak}"
    );
    assert!(sk.len() >= 32, "secret is long");
    let file = dir.join(localstore::CREDENTIALS_FILE);
    assert!(file.is_file());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
    assert_eq!(
        load_or_create_credentials(&dir).unwrap(),
        (ak.clone(), sk.clone())
    );
    let other = unique_dir("creds2");
    let (ak2, sk2) = load_or_create_credentials(&other).unwrap();
    assert_ne!((ak2, sk2), (ak.clone(), sk.clone()), "random per folder");
    // No temp files left next to it.
    let entries: Vec<_> = fs::read_dir(&dir).unwrap().collect();
    assert_eq!(entries.len(), 1);

    // A damaged file is reported, not silently replaced, and the error holds no secret.
    fs::write(
        &file,
        format!("{{\"access_key_id\": \"{ak}\", \"secret_access_key\": \"{sk}"),
    )
    .unwrap();
    let err = load_or_create_credentials(&dir).unwrap_err();
    assert!(
        matches!(err, LocalStoreError::CorruptCredentials { .. }),
        "{err}"
    );
    assert!(!err.to_string().contains(&sk));
    assert!(!format!("{err:?}").contains(&sk));

    let cfg = LocalStoreConfig {
        root: dir.clone(),
        access_key: ak,
        secret_key: sk.clone(),
        bind: "127.0.0.1:0".parse().unwrap(),
    };
    assert!(
        !format!("{cfg:?}").contains(&sk),
        "Debug redacts the secret"
    );
    let _ = fs::remove_dir_all(dir.parent().unwrap());
    let _ = fs::remove_dir_all(&other);
}

#[tokio::test]
async fn empty_credentials_are_refused() {
    let err = LocalStore::start(LocalStoreConfig {
        root: unique_dir("nocreds"),
        access_key: String::new(),
        secret_key: "x".to_owned(),
        bind: "127.0.0.1:0".parse().unwrap(),
    })
    .await
    .unwrap_err();
    assert!(matches!(err, LocalStoreError::EmptyCredentials));
}
