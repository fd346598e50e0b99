//! Interrupted uploads leave nothing behind. Each way a client can cancel a 40 MiB upload is
//! tried at least 20 times, at random points, against every selected store; after every trial the
//! key must still hold its old content and no multipart upload may be left. The counts are
//! printed (`cargo test -p gateway --test cancel -- --nocapture`).
//!
//! Cases: 1 the client process is killed (a real `curl`, SIGKILL); 1b the client process kills
//! itself the moment its last data byte is written (a Python client: the kernel then sends
//! the data connection's FIN first and the control connection's a moment later, the hardest
//! timing for the commit gate, which waits for nothing); 2 the data connection is reset; 3
//! ABOR, then the data connection closes; 4 a TLS data channel ends without close_notify; 5
//! the client stalls past the transfer timeout; 6 the control connection closes while the
//! data connection stays open. `CANCEL_TRIALS=100` runs each case 100 times.
//!
//! The socket cases run twice: from 127.0.0.1 (the desktop's client) and from 127.0.0.2 (an
//! address libunftp never sees: the relay connects to it from 127.0.0.1 for every client): a
//! reset, a FIN and a missing close_notify must pass through the relay, which carries every
//! data connection, as they came.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod rawftp;
#[macro_use]
mod support;

use std::time::Duration;

use gateway::ops::events::Event;
use gateway::{Gateway, GatewayConfig, GatewayHandle, S3Settings, TransferLimits};
use rawftp::{DataConn, Raw, Rng, data};
use support::{S3Kind, TestS3};
use tokio::sync::broadcast;

const BUCKET: &str = "cancel-bucket";
const MIB: usize = 1024 * 1024;
const UPLOAD: usize = 40 * MIB;
/// Trials per case (at least 20; `CANCEL_TRIALS` may raise it, or lower it while debugging).
fn trials() -> usize {
    std::env::var("CANCEL_TRIALS")
        .ok()
        .and_then(|t| t.parse().ok())
        .unwrap_or(20)
}

struct Env {
    s3: TestS3,
    gw: GatewayHandle,
    tls_dir: std::path::PathBuf,
    /// Where the client connects from (`None`: the default, 127.0.0.1).
    source: Option<std::net::IpAddr>,
}

/// A client address on loopback that is not 127.0.0.1: its data connections are relayed.
fn relayed_client() -> Option<std::net::IpAddr> {
    Some(std::net::IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 2)))
}

impl Drop for Env {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.tls_dir);
    }
}

impl Env {
    async fn start_from(kind: S3Kind, source: Option<std::net::IpAddr>) -> Env {
        let s3 = TestS3::start(kind).await;
        s3.create_bucket(BUCKET).await;
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let tls_dir =
            std::env::temp_dir().join(format!("bucketftp-cancel-tls-{}-{n}", std::process::id()));
        let tls = gateway::ftp::tls::load_or_create(&tls_dir).unwrap();
        let mut config =
            GatewayConfig::new(S3Settings::custom(s3.endpoint.clone(), s3.region.clone()));
        config.listen = "127.0.0.1:0".parse().unwrap();
        config.limits = TransferLimits::new(5 * MIB, 3, 128 * MIB).unwrap();
        config.transfer_timeout = Duration::from_secs(1);
        config.tls = Some(tls);
        let gw = Gateway::start(config).await.unwrap();
        Env {
            s3,
            gw,
            tls_dir,
            source,
        }
    }

    fn user(&self) -> String {
        format!("{}/{BUCKET}", self.s3.access_key)
    }

    async fn login(&self) -> Raw {
        let mut raw = Raw::connect_from(self.gw.local_addr(), self.source).await;
        raw.login(&self.user(), &self.s3.secret_key).await;
        raw
    }

    async fn login_tls(&self) -> Raw {
        let connector = rawftp::tls_trusting(&self.tls_dir.join(gateway::ftp::tls::CERT_FILE));
        let mut raw = Raw::connect_from(self.gw.local_addr(), self.source)
            .await
            .auth_tls(connector)
            .await;
        raw.login(&self.user(), &self.s3.secret_key).await;
        raw
    }

    /// True when the trial left something behind: the key changed, or an upload is left.
    async fn left_behind(&self, key: &str, old: &[u8]) -> bool {
        let content_ok = self.s3.get(BUCKET, key).await.as_deref() == Some(old);
        let uploads = self
            .s3
            .multipart_uploads_settled(BUCKET, 50, Duration::from_millis(100))
            .await;
        if !content_ok || !uploads.is_empty() {
            eprintln!("  left behind at {key}: content ok {content_ok}, uploads {uploads:?}");
        }
        !content_ok || !uploads.is_empty()
    }
}

/// Waits for the outcome of the next upload: true when it was stored.
async fn outcome(rx: &mut broadcast::Receiver<Event>) -> Option<bool> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Ok(Event::TransferFinished { .. })) => return Some(true),
            Ok(Ok(Event::TransferFailed { .. })) => return Some(false),
            Ok(Ok(_)) | Ok(Err(broadcast::error::RecvError::Lagged(_))) => continue,
            _ => return None,
        }
    }
}

/// A client that logs in, stores `cut` random bytes as KEY and kills itself (SIGKILL) the
/// moment its last byte has reached the server's socket (its send queue is empty): argv host
/// port user password key cut source-ip.
#[cfg(unix)]
const KILL_AT_LAST_BYTE: &str = r#"
import fcntl, os, signal, socket, struct, sys, termios
host, port, user, pw, key, cut, src = sys.argv[1:8]
def conn(addr):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind((src, 0))
    s.connect(addr)
    return s
ctl = conn((host, int(port)))
f = ctl.makefile("rb")
def reply():
    line = f.readline()
    while line[3:4] == b"-" or not line[:3].isdigit():
        line = f.readline()
    return line
reply()
for cmd in ("USER " + user, "PASS " + pw, "TYPE I", "EPSV"):
    ctl.sendall((cmd + "\r\n").encode())
    r = reply()
data = conn((host, int(r.split(b"|||")[1].split(b"|")[0])))
ctl.sendall(("STOR " + key + "\r\n").encode())
assert reply().startswith(b"150")
data.sendall(os.urandom(int(cut)))
while struct.unpack("i", fcntl.ioctl(data, termios.TIOCOUTQ, b"\0\0\0\0"))[0]:
    pass
os.kill(os.getpid(), signal.SIGKILL)
"#;

#[derive(Debug, Clone, Copy)]
enum Case {
    Killed,
    #[cfg_attr(not(unix), allow(dead_code))]
    KilledAtLastByte,
    Reset,
    Abor,
    TlsNoCloseNotify,
    Stall,
    ControlClosed,
}

async fn trial(env: &Env, case: Case, i: usize, rng: &mut Rng, body: &[u8]) -> bool {
    let key = format!("case-{case:?}-{i}.bin");
    let old = format!("old content {i}").into_bytes();
    env.s3.put(BUCKET, &key, old.clone()).await;
    let mut rx = env.gw.subscribe();
    let cut = rng.range(0, UPLOAD as u64) as usize;
    match case {
        Case::Killed => {
            let file =
                std::env::temp_dir().join(format!("bucketftp-cancel-{}.bin", std::process::id()));
            if !file.exists() {
                std::fs::write(&file, body).unwrap();
            }
            let url = format!("ftp://{}/{key}", env.gw.local_addr());
            let mut child = tokio::process::Command::new("curl")
                .args(["-s", "--limit-rate", "20M", "-T"])
                .arg(&file)
                .arg(&url)
                .args(["-u", &format!("{}:{}", env.user(), env.s3.secret_key)])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .expect("curl");
            // Wait for the upload to start, then kill curl at a random moment of its ~2 s.
            let started = tokio::time::timeout(Duration::from_secs(20), async {
                loop {
                    if let Ok(Event::TransferStarted { .. }) = rx.recv().await {
                        break;
                    }
                }
            })
            .await;
            assert!(started.is_ok(), "curl never started uploading");
            tokio::time::sleep(Duration::from_millis(rng.range(0, 1500))).await;
            let _ = child.start_kill();
            let _ = child.wait().await;
        }
        #[cfg(unix)]
        Case::KilledAtLastByte => {
            // Small files in half the trials (the server then reads the end at once, the
            // tightest timing), up to 8 MiB in the others: one PutObject below the 5 MiB
            // part, multipart above.
            let cut = if i.is_multiple_of(2) {
                rng.range(0, 64 * 1024)
            } else {
                rng.range(0, 8 * MIB as u64)
            };
            let addr = env.gw.local_addr();
            let source = env
                .source
                .unwrap_or(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST));
            let status = tokio::process::Command::new("python3")
                .args(["-c", KILL_AT_LAST_BYTE])
                .arg(addr.ip().to_string())
                .arg(addr.port().to_string())
                .arg(env.user())
                .arg(&env.s3.secret_key)
                .arg(&key)
                .arg(cut.to_string())
                .arg(source.to_string())
                .stdout(std::process::Stdio::null())
                .status()
                .await
                .expect("python3");
            use std::os::unix::process::ExitStatusExt;
            assert_eq!(
                status.signal(),
                Some(9),
                "the client did not get as far as killing itself: {status}"
            );
        }
        #[cfg(not(unix))]
        Case::KilledAtLastByte => unreachable!("KILLED_CASES has it on unix only"),
        Case::Reset | Case::Abor | Case::Stall | Case::ControlClosed | Case::TlsNoCloseNotify => {
            let mut ctl = if matches!(case, Case::TlsNoCloseNotify) {
                env.login_tls().await
            } else {
                env.login().await
            };
            let mut dc = ctl.data(&format!("STOR {key}")).await;
            let mut sent = 0;
            while sent < cut {
                let n = (cut - sent).min(MIB);
                if !dc.write(&body[sent..sent + n]).await {
                    break;
                }
                sent += n;
            }
            match case {
                Case::Reset => {
                    dc.reset();
                    let (code, text) = ctl.reply().await;
                    assert_ne!(code, 226, "reset upload acknowledged: {text}");
                }
                Case::Abor => {
                    ctl.send("ABOR").await;
                    tokio::time::sleep(Duration::from_millis(rng.range(0, 20))).await;
                    dc.finish().await;
                    // Replies to ABOR and STOR, in either order: neither may be the STOR's 226.
                    let (c1, t1) = ctl.reply().await;
                    let (c2, t2) = ctl.reply().await;
                    let texts = format!("{t1}{t2}");
                    assert!(
                        [c1, c2].iter().any(|c| matches!(c, 426 | 451)),
                        "no failure reply after ABOR: {texts}"
                    );
                }
                Case::TlsNoCloseNotify => {
                    dc.fin_without_close_notify().await;
                    let (code, text) = ctl.reply().await;
                    assert_ne!(
                        code, 226,
                        "TLS upload without close_notify acknowledged: {text}"
                    );
                }
                Case::Stall => {
                    // Say nothing and send nothing: the transfer timeout (1 s here) ends it.
                    let (code, text) = ctl.reply().await;
                    assert!(matches!(code, 426 | 451), "stalled upload: {text}");
                    dc.reset();
                }
                Case::ControlClosed => {
                    ctl.hang_up().await;
                    // Data keeps flowing for a while, then ends cleanly.
                    let more = (UPLOAD - sent).min(4 * MIB);
                    let _ = dc.write(&body[sent..sent + more]).await;
                    dc.finish().await;
                }
                Case::Killed | Case::KilledAtLastByte => {}
            }
        }
    }
    let stored = outcome(&mut rx).await;
    assert_eq!(
        stored,
        Some(false),
        "case {case:?} trial {i}: the upload was stored (cut at {cut})"
    );
    env.left_behind(&key, &old).await
}

async fn run_cases(kind: S3Kind, cases: &[Case]) {
    run_cases_from(kind, None, cases).await
}

async fn run_cases_from(kind: S3Kind, source: Option<std::net::IpAddr>, cases: &[Case]) {
    let env = Env::start_from(kind, source).await;
    let kind = format!(
        "{kind:?}{}",
        source.map(|s| format!(" from {s}")).unwrap_or_default()
    );
    let body = data(UPLOAD, 40);
    let mut rng = Rng::new(&kind);
    let mut summary = Vec::new();
    for &case in cases {
        let mut left = 0;
        let trials = trials();
        for i in 0..trials {
            eprintln!("{kind} {case:?} trial {i}");
            if trial(&env, case, i, &mut rng, &body).await {
                left += 1;
            }
        }
        summary.push(format!(
            "{kind} {case:?}: {trials} trials, {left} left something behind"
        ));
        assert_eq!(
            left, 0,
            "{kind} {case:?}: {left} of {trials} trials left something behind"
        );
    }
    for line in summary {
        println!("{line}");
    }
}

const SOCKET_CASES: [Case; 5] = [
    Case::Reset,
    Case::Abor,
    Case::TlsNoCloseNotify,
    Case::Stall,
    Case::ControlClosed,
];

each_store!(cancelled_uploads_leave_nothing);
async fn cancelled_uploads_leave_nothing(kind: S3Kind) {
    run_cases(kind, &SOCKET_CASES).await;
}

/// The relay between the client and libunftp does not depend on the store: one store.
#[cfg_attr(
    not(test_store = "local"),
    ignore = "store local not selected (BUCKETFTP_TEST_STORES)"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelled_relayed_uploads_leave_nothing() {
    run_cases_from(S3Kind::Local, relayed_client(), &SOCKET_CASES).await;
}

/// The killed-client cases: the self-killing client is a Python script for unix (SIGKILL,
/// TIOCOUTQ).
#[cfg(unix)]
const KILLED_CASES: [Case; 2] = [Case::Killed, Case::KilledAtLastByte];
#[cfg(not(unix))]
const KILLED_CASES: [Case; 1] = [Case::Killed];

each_store!(killed_client_leaves_nothing);
async fn killed_client_leaves_nothing(kind: S3Kind) {
    run_cases(kind, &KILLED_CASES).await;
}

/// A client killed at its last data byte, from an address whose data connections are relayed.
#[cfg(unix)]
#[cfg_attr(
    not(test_store = "local"),
    ignore = "store local not selected (BUCKETFTP_TEST_STORES)"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_relayed_client_leaves_nothing() {
    run_cases_from(S3Kind::Local, relayed_client(), &[Case::KilledAtLastByte]).await;
}

/// A complete upload over the same paths still succeeds: the gate does not cancel real
/// uploads (plain and TLS).
#[cfg_attr(
    not(test_store = "local"),
    ignore = "store local not selected (BUCKETFTP_TEST_STORES)"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn complete_uploads_still_commit() {
    for source in [None, relayed_client()] {
        complete_uploads_commit_from(source).await;
    }
}

async fn complete_uploads_commit_from(source: Option<std::net::IpAddr>) {
    let env = Env::start_from(S3Kind::Local, source).await;
    let body = data(12 * MIB + 3, 12);
    for tls in [false, true] {
        let mut ctl = if tls {
            env.login_tls().await
        } else {
            env.login().await
        };
        let key = format!("complete-{tls}-{source:?}.bin");
        let mut dc: DataConn = ctl.data(&format!("STOR {key}")).await;
        assert!(dc.write(&body).await);
        dc.finish().await;
        let (code, text) = ctl.reply().await;
        assert_eq!(code, 226, "{text}");
        assert_eq!(env.s3.get(BUCKET, &key).await.as_deref(), Some(&body[..]));
    }
}

/// A TLS data channel ends with close_notify both ways, on the direct and the relayed path:
/// the client's close_notify after an upload is answered with the server's (Python's
/// `ftplib` waits for it in `storbinary`, and raised `SSLEOFError` when it never came), and a
/// download ends with the server's close_notify. The bytes the server sends after the
/// client's close_notify are printed: one TLS record, then the FIN.
#[cfg_attr(
    not(test_store = "local"),
    ignore = "store local not selected (BUCKETFTP_TEST_STORES)"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_data_channels_end_with_close_notify() {
    for source in [None, relayed_client()] {
        let env = Env::start_from(S3Kind::Local, source).await;
        let mut ctl = env.login_tls().await;
        let body = data(300_000, 7);
        let mut dc = ctl.data("STOR notify.bin").await;
        assert!(dc.write(&body).await);
        let (wire, close_notify) = dc.close_notify_and_read_answer().await;
        println!(
            "from {source:?}: after the client's close_notify the server sent {} bytes: {:02x?}",
            wire.len(),
            wire
        );
        assert!(
            close_notify,
            "the server did not answer the upload's close_notify (got {wire:02x?})"
        );
        let (code, text) = ctl.reply().await;
        assert_eq!(code, 226, "{text}");
        assert_eq!(
            env.s3.get(BUCKET, "notify.bin").await.as_deref(),
            Some(&body[..])
        );

        let mut dc = ctl.data("RETR notify.bin").await;
        let got = dc
            .read_to_clean_end()
            .await
            .unwrap_or_else(|e| panic!("download from {source:?} did not end cleanly: {e}"));
        assert_eq!(got, body);
        dc.finish().await;
        let (code, text) = ctl.reply().await;
        assert_eq!(code, 226, "{text}");
    }
}

/// The gateway process killed mid-upload: the old object stays. The store keeps an incomplete
/// multipart upload, invisible to readers; a gateway started with `abort_stale_uploads`
/// removes it at the next login (a bucket lifecycle rule does the same on the store's side).
#[cfg_attr(
    not(test_store = "local"),
    ignore = "store local not selected (BUCKETFTP_TEST_STORES)"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_gateway_leaves_old_object() {
    let s3 = TestS3::start(S3Kind::Local).await;
    s3.create_bucket(BUCKET).await;
    s3.put(BUCKET, "victim.bin", b"old".to_vec()).await;
    let dir = std::env::temp_dir().join(format!("bucketftp-killgw-{}", std::process::id()));
    let mut child = support::server_command(&s3, &dir, &["--no-tls", "--part-size", "5MiB"])
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let (addr, _, _stdout) = support::listen_address(&mut child).await;
    let mut ctl = Raw::connect(addr).await;
    ctl.login(&format!("{}/{BUCKET}", s3.access_key), &s3.secret_key)
        .await;
    let mut dc = ctl.data("STOR victim.bin").await;
    let body = data(20 * MIB, 5);
    assert!(dc.write(&body[..17 * MIB]).await);
    // The gateway has begun its multipart upload (one, never more) when it is killed.
    let begun = support::eventually_some(
        Duration::from_secs(30),
        "the gateway's multipart upload begun",
        || async {
            let now = s3.multipart_uploads(BUCKET).await;
            assert!(now.len() <= 1, "more than one upload: {now:?}");
            now.into_iter().next()
        },
    )
    .await;
    let _ = child.start_kill();
    let _ = child.wait().await;
    assert_eq!(
        s3.get(BUCKET, "victim.bin").await.as_deref(),
        Some(&b"old"[..])
    );
    let _ = std::fs::remove_dir_all(dir);
    let left = s3.multipart_uploads(BUCKET).await;
    assert_eq!(
        left,
        vec![begun],
        "the killed gateway's upload is still there, and no other"
    );

    // The next gateway, told to abort stale uploads (age 0 here), cleans it up at login.
    let mut config = GatewayConfig::new(S3Settings::custom(s3.endpoint.clone(), s3.region.clone()));
    config.listen = "127.0.0.1:0".parse().unwrap();
    config.abort_stale_uploads = Some(Duration::ZERO);
    let gw = Gateway::start(config).await.unwrap();
    let mut ctl = Raw::connect(gw.local_addr()).await;
    ctl.login(&format!("{}/{BUCKET}", s3.access_key), &s3.secret_key)
        .await;
    s3.assert_no_uploads_left(BUCKET, "stale upload not cleaned")
        .await;
    assert_eq!(
        s3.get(BUCKET, "victim.bin").await.as_deref(),
        Some(&b"old"[..])
    );
}
