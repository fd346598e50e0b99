//! RETR as ranged GETs in parallel (`storage/download.rs`), on real servers (`each_store!`: the
//! local store, Garage, moto): every offset gives exactly the bytes from there on, across chunk borders; an
//! object overwritten while it downloads fails the download instead of mixing two versions;
//! a client that goes away mid-download leaves a session that still works.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod ftpops;
mod rawftp;
#[macro_use]
mod support;

use ftpops::{binary_login, get, refused};
use gateway::storage::download::CHUNK;
use gateway::{GatewayHandle, S3Settings};
use suppaftp::tokio::AsyncFtpStream;
use support::{S3Kind, TestS3};
use tokio::io::AsyncReadExt;

const BUCKET: &str = "download-bucket";
const MIB: usize = 1024 * 1024;

struct Env {
    s3: TestS3,
    gw: GatewayHandle,
}

impl Env {
    async fn start(kind: S3Kind) -> Env {
        Env::start_with(kind, |_| {}).await
    }

    async fn start_with(kind: S3Kind, tweak: impl FnOnce(&mut gateway::GatewayConfig)) -> Env {
        let s3 = TestS3::start(kind).await;
        s3.create_bucket(BUCKET).await;
        let settings = S3Settings::custom(s3.endpoint.clone(), s3.region.clone());
        let gw = support::start_gateway(settings, tweak).await;
        Env { s3, gw }
    }

    /// A logged-in raw client from `source` (`None`: the default address).
    async fn raw_login(&self, source: Option<&str>) -> rawftp::Raw {
        let source = source.map(|s| s.parse().unwrap());
        let mut raw = rawftp::Raw::connect_from(self.gw.local_addr(), source).await;
        let user = format!("{}/{BUCKET}", self.s3.access_key);
        raw.login(&user, &self.s3.secret_key).await;
        raw
    }

    async fn login(&self) -> AsyncFtpStream {
        let user = format!("{}/{BUCKET}", self.s3.access_key);
        binary_login(self.gw.local_addr(), &user, &self.s3.secret_key).await
    }
}

fn body(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| ((i % 251) as u8).wrapping_add(seed))
        .collect()
}

each_store!(every_offset_across_chunks);
async fn every_offset_across_chunks(kind: S3Kind) {
    let env = Env::start(kind).await;
    let chunk = CHUNK as usize;
    // Four chunks and a bit: the first streamed, the rest fetched ahead in parallel.
    let data = body(4 * chunk + 12_345, 0);
    env.s3.put(BUCKET, "big.bin", data.clone()).await;
    let mut ftp = env.login().await;
    for offset in [
        0,
        1,
        chunk - 1,
        chunk,
        chunk + 1,
        2 * chunk + 777,
        4 * chunk,
        data.len() - 1,
        data.len(),
    ] {
        let got = get(&mut ftp, "big.bin", offset).await.unwrap();
        assert_eq!(got.len(), data.len() - offset, "REST {offset}");
        assert!(got == data[offset..], "REST {offset}: bytes differ");
    }
    // Small and empty files are one GET.
    env.s3.put(BUCKET, "small.bin", body(1000, 3)).await;
    env.s3.put(BUCKET, "empty.bin", Vec::new()).await;
    assert_eq!(get(&mut ftp, "small.bin", 0).await.unwrap(), body(1000, 3));
    assert!(get(&mut ftp, "empty.bin", 0).await.unwrap().is_empty());
    let (code, _) = refused(get(&mut ftp, "missing.bin", 0).await.unwrap_err());
    assert_eq!(code, 550);
}

each_store!(an_overwrite_mid_download_fails_it);
async fn an_overwrite_mid_download_fails_it(kind: S3Kind) {
    let env = Env::start(kind).await;
    let chunk = CHUNK as usize;
    // Far more than the chunks fetched ahead (4) and every socket buffer between the store
    // and the client (two loopback hops through the relay) hold together.
    let old = body(12 * chunk, 0);
    env.s3.put(BUCKET, "moving.bin", old.clone()).await;
    let mut ftp = env.login().await;
    let mut stream = ftp.retr_as_stream("moving.bin").await.unwrap();
    let mut got = vec![0u8; MIB];
    stream.read_exact(&mut got).await.unwrap();
    // The client stalls: the gateway cannot have fetched more than the first chunks, so
    // later chunks are fetched after the overwrite and must not come from the new object.
    env.s3
        .put(BUCKET, "moving.bin", body(12 * chunk, 100))
        .await;
    let mut rest = Vec::new();
    let read = stream.read_to_end(&mut rest).await;
    got.extend_from_slice(&rest);
    let reply = stream.finish().await;
    assert!(
        got.len() < old.len(),
        "the whole object arrived after an overwrite ({} bytes); read {read:?}",
        got.len()
    );
    assert!(got == old[..got.len()], "bytes of two versions were mixed");
    let (code, text) = refused(reply.unwrap_err());
    assert_eq!(code, 451, "{text}");
    assert!(
        text.contains("changed on the store during the download")
            && text.contains("download the file again"),
        "{text}"
    );
    // The session goes on.
    let now = get(&mut ftp, "moving.bin", 0).await.unwrap();
    assert!(now == body(12 * chunk, 100));
}

each_store!(a_client_leaving_mid_download_keeps_the_session);
async fn a_client_leaving_mid_download_keeps_the_session(kind: S3Kind) {
    let env = Env::start(kind).await;
    let data = body(5 * CHUNK as usize, 9);
    env.s3.put(BUCKET, "left.bin", data.clone()).await;
    let mut ftp = env.login().await;
    let mut stream = ftp.retr_as_stream("left.bin").await.unwrap();
    let mut first = vec![0u8; MIB];
    stream.read_exact(&mut first).await.unwrap();
    drop(stream);
    // suppaftp reads the broken transfer's reply before the next command; then a whole
    // download on the same session.
    let got = get(&mut ftp, "left.bin", 0).await.unwrap();
    assert!(got == data, "download after a cancelled one differs");
}

each_store!(a_broken_download_says_what_the_client_has);
async fn a_broken_download_says_what_the_client_has(kind: S3Kind) {
    let env = Env::start(kind).await;
    env.s3
        .put(BUCKET, "broken.bin", body(5 * CHUNK as usize, 4))
        .await;
    let mut raw = env.raw_login(None).await;
    let mut dc = raw.data("RETR broken.bin").await;
    // The client resets the data connection while the gateway still writes: the first bytes
    // have come (the transfer runs), 39 MiB have not.
    dc.read_at_least(MIB).await;
    dc.reset();
    let (code, text) = raw.reply().await;
    assert_eq!(code, 426, "{kind:?}: {text}");
    assert!(
        text.contains("only part of the file") && !text.contains("nothing was stored"),
        "{kind:?}: a download's reply in a download's words: {text}"
    );
    // The session goes on.
    let (code, text) = raw.cmd("NOOP").await;
    assert_eq!(code, 200, "{text}");
}

each_store!(abor_during_a_download);
/// ABOR while a download runs and the client has stopped reading, from 127.0.0.1 and from
/// another address: the transfer ends at once, not at the idle timeout, the data connection
/// is closed, ABOR gets its replies, and the session goes on. (libunftp cannot cancel a
/// transfer it has begun; only the relay, which carries every data connection, can end it.)
async fn abor_during_a_download(kind: S3Kind) {
    let env = Env::start(kind).await;
    let data = body(8 * CHUNK as usize, 5);
    env.s3.put(BUCKET, "abor.bin", data.clone()).await;
    for source in ["127.0.0.1", "127.0.0.2"] {
        abor_from(&env, &data, source).await;
    }
}

async fn abor_from(env: &Env, data: &[u8], source: &str) {
    let mut raw = env.raw_login(Some(source)).await;
    let mut dc = raw.data("RETR abor.bin").await;
    // Some of it, then the client stops reading and sends ABOR.
    let first = dc.read_at_least(MIB).await;
    let started = std::time::Instant::now();
    raw.send("ABOR").await;
    let (a, a_text) = raw.reply().await;
    let (b, b_text) = raw.reply().await;
    let mut codes = [a, b];
    codes.sort_unstable();
    assert!(
        matches!(codes, [226, 426] | [225, 426]),
        "from {source}: ABOR's replies: {a} {a_text} / {b} {b_text}"
    );
    assert!(
        started.elapsed() < std::time::Duration::from_secs(10),
        "from {source}: ABOR took {:?}",
        started.elapsed()
    );
    // The data connection is closed: reading ends (what was in flight, then the end).
    let rest = tokio::time::timeout(std::time::Duration::from_secs(10), dc.read_all())
        .await
        .unwrap_or_else(|_| panic!("from {source}: the data connection was not closed after ABOR"));
    assert!(
        first.len() + rest.len() < data.len(),
        "from {source}: the whole file went through after ABOR"
    );
    let (code, text) = raw.cmd("NOOP").await;
    assert_eq!(code, 200, "{text}");
    let mut dc = raw.data("RETR abor.bin").await;
    let all = dc.read_all().await;
    assert!(
        all == data,
        "from {source}: a whole download after the aborted one"
    );
    assert_eq!(raw.reply().await.0, 226);
}

each_store!(a_download_whose_client_stops_reading_ends_after_the_idle_timeout);
/// A client that starts a download, then keeps both connections open and stops reading,
/// from 127.0.0.1 and from another address: after `idle_timeout` the data connection is
/// reset, the transfer fails with 426 (its buffers dropped: `TransferFailed`), and the session
/// goes on. Before every data connection was relayed, one from 127.0.0.1 went straight to
/// libunftp, whose write then waited for ever.
async fn a_download_whose_client_stops_reading_ends_after_the_idle_timeout(kind: S3Kind) {
    const IDLE: std::time::Duration = std::time::Duration::from_secs(3);
    let env = Env::start_with(kind, |c| c.idle_timeout = IDLE).await;
    // Far more than the socket buffers on the way hold.
    let data = body(8 * CHUNK as usize, 9);
    env.s3.put(BUCKET, "stall.bin", data.clone()).await;
    for source in ["127.0.0.1", "127.0.0.2"] {
        let mut events = env.gw.subscribe();
        let mut raw = env.raw_login(Some(source)).await;
        let mut dc = raw.data("RETR stall.bin").await;
        let first = dc.read_at_least(MIB).await;
        let stopped = std::time::Instant::now();
        // The client reads nothing more; the reply comes when the gateway gives up.
        let (code, text) = tokio::time::timeout(IDLE * 10, raw.reply())
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "from {source}: the download still waits after {:?}",
                    IDLE * 10
                )
            });
        let waited = stopped.elapsed();
        assert_eq!(code, 426, "from {source}: {text}");
        assert!(
            waited >= IDLE - std::time::Duration::from_millis(500),
            "from {source}: ended after {waited:?}, before the idle timeout"
        );
        let failed = tokio::time::timeout(std::time::Duration::from_secs(10), async {
            loop {
                if let Ok(gateway::Event::TransferFailed { bytes, .. }) = events.recv().await {
                    return bytes;
                }
            }
        })
        .await
        .unwrap_or_else(|_| panic!("from {source}: no TransferFailed for the stalled download"));
        assert!(
            failed < data.len() as u64,
            "from {source}: the failed download counts {failed} bytes"
        );
        // What the client had not read yet is cut off: it never gets the whole file.
        let rest = tokio::time::timeout(std::time::Duration::from_secs(10), dc.read_all())
            .await
            .unwrap_or_else(|_| panic!("from {source}: the data connection is still open"));
        assert!(
            first.len() + rest.len() < data.len(),
            "from {source}: the whole file arrived"
        );
        let (code, text) = raw.cmd("NOOP").await;
        assert_eq!(code, 200, "from {source}: the session goes on: {text}");
    }
}
