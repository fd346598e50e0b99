//! The actions layer end to end, without a window: a real local bucket (the embedded S3
//! store), the real gateway on a free port, a real FTP client (suppaftp), keyring's mock for
//! secrets and a recording [`Shell`] in place of Tauri.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bucketftp::actions::{ActionError, AppPaths, CopyField, Core, Shell, ShellError};
use bucketftp::activity::Outcome;
use bucketftp::profiles::ProfileInput;
use bucketftp::secrets::{Keychain, SecretStore};
use bucketftp::server::ServerStatus;
use bucketftp::settings::Settings;
use gateway::Provider;
use suppaftp::tokio::AsyncFtpStream;

#[derive(Default)]
struct Recorder {
    calls: Mutex<Vec<String>>,
    autostart: Mutex<Option<bool>>,
    clipboard: Mutex<Option<String>>,
}

impl Recorder {
    fn calls(&self) -> Vec<String> {
        self.calls.lock().unwrap().clone()
    }
}

impl Shell for Recorder {
    fn server_changed(&self, status: &ServerStatus) {
        self.calls
            .lock()
            .unwrap()
            .push(format!("server:{status:?}"));
    }
    fn profiles_changed(&self) {
        self.calls.lock().unwrap().push("profiles".into());
    }
    fn settings_changed(&self, _: &Settings) {
        self.calls.lock().unwrap().push("settings".into());
    }
    fn gateway_event(&self, event: &gateway::Event) {
        self.calls.lock().unwrap().push(format!("event:{event:?}"));
    }
    fn set_start_at_login(&self, on: bool) -> Result<(), ShellError> {
        *self.autostart.lock().unwrap() = Some(on);
        Ok(())
    }
    fn copy_text(&self, text: &str) -> Result<(), ShellError> {
        *self.clipboard.lock().unwrap() = Some(text.to_owned());
        Ok(())
    }
    fn show_window(&self) {
        self.calls.lock().unwrap().push("show".into());
    }
    fn notices_changed(&self) {
        self.calls.lock().unwrap().push("notices".into());
    }
}

struct Fixture {
    _dir: tempfile::TempDir,
    core: Core,
    shell: Arc<Recorder>,
    secrets: Arc<Keychain>,
    port: u16,
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let paths = AppPaths {
        config_dir: dir.path().join("config"),
        data_dir: dir.path().join("data"),
        local_data_dir: dir.path().join("data"),
    };
    let shell = Arc::new(Recorder::default());
    let secrets = Arc::new(Keychain::mock());
    let core = Core::open(paths, secrets.clone(), shell.clone())
        .await
        .unwrap();
    let port = common::free_port();
    let settings = Settings {
        listen_port: port,
        passive_ports: "40000-40100".into(),
        ..core.settings()
    };
    core.save_settings(settings).await.unwrap();
    Fixture {
        _dir: dir,
        core,
        shell,
        secrets,
        port,
    }
}

fn minio(name: &str, ak: &str, secret: &str) -> ProfileInput {
    ProfileInput {
        name: name.into(),
        provider: Some(Provider::Minio),
        endpoint: "http://127.0.0.1:9".into(),
        access_key: ak.into(),
        secret: secret.into(),
        bucket: "b".into(),
        ..ProfileInput::default()
    }
}

async fn refused(port: u16) -> bool {
    tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_run_serves_this_computer_over_ftp_and_reports_activity() {
    let f = fixture().await;
    let profiles = f.core.profiles();
    assert_eq!(profiles.len(), 1);
    let local = &profiles[0];
    assert!(local.profile.local && local.has_secret);
    assert!(local.user.ends_with("/local"), "{}", local.user);

    let status = f.core.start_server().await.unwrap();
    assert_eq!(
        status,
        ServerStatus::Running {
            address: format!("127.0.0.1:{}", f.port)
        }
    );
    let info = f.core.connect_info("local").unwrap();
    assert_eq!((info.host.as_str(), info.port), ("127.0.0.1", f.port));
    assert!(info.running && info.fingerprint.is_some());
    let secret = f.core.reveal_secret("local").unwrap().unwrap();

    // A real FTP client logs in with the login the window shows and uploads.
    let mut ftp = AsyncFtpStream::connect(("127.0.0.1", f.port))
        .await
        .unwrap();
    ftp.login(&info.user, &secret).await.unwrap();
    ftp.transfer_type(suppaftp::types::FileType::Binary)
        .await
        .unwrap();
    let body = b"hello from the desktop test".to_vec();
    ftp.put_file("hello 你好.txt", &mut body.as_slice())
        .await
        .unwrap();
    let names = ftp.nlst(None).await.unwrap();
    assert!(
        names.iter().any(|n| n.contains("hello 你好.txt")),
        "{names:?}"
    );
    ftp.quit().await.unwrap();

    // Activity shows the session's login and the finished upload.
    let mut done = false;
    for _ in 0..50 {
        let a = f.core.activity();
        if a.transfers.iter().any(|t| {
            t.name == "hello 你好.txt"
                && t.outcome == Outcome::Done
                && t.bytes == body.len() as u64
                // A plain-FTP upload: the window marks the risk.
                && t.insecure
        }) && a.log.iter().any(|l| l.key == "log.logged_in")
        {
            done = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(done, "{:?}", f.core.activity());
    assert!(f.shell.calls().iter().any(|c| c.starts_with("event:")));

    // Stop: the port refuses; Start: it accepts again.
    assert_eq!(f.core.stop_server().await, ServerStatus::Stopped);
    assert!(refused(f.port).await);
    f.core.start_server().await.unwrap();
    assert!(!refused(f.port).await);
    f.core.shutdown().await;
    assert!(refused(f.port).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn profiles_keep_secrets_in_the_keychain_only() {
    let f = fixture().await;
    // A new profile needs its secret.
    let err = f.core.save_profile(minio("m", "AKM", "")).unwrap_err();
    assert!(matches!(err, ActionError::SecretRequired));
    let saved = f.core.save_profile(minio("m", "AKM", "SECRET-M")).unwrap();
    assert!(saved.has_secret);
    assert_eq!(saved.user, "AKM/b");
    let id = saved.profile.id.clone();
    assert_eq!(f.secrets.get(&id).unwrap().as_deref(), Some("SECRET-M"));
    let file = std::fs::read_to_string(f.core.paths().config_dir.join("profiles.json")).unwrap();
    assert!(file.contains("AKM") && !file.contains("SECRET-M"));

    // Editing with an empty secret keeps the stored one.
    let mut edit = minio("m2", "AKM", "");
    edit.id = id.clone();
    f.core.save_profile(edit).unwrap();
    assert_eq!(
        f.core.reveal_secret(&id).unwrap().as_deref(),
        Some("SECRET-M")
    );

    // The URL shown and copied is the one FileZilla's Quickconnect understands: the slash of
    // the login literal, and never the secret (FileZilla asks for the password).
    let mut edit = minio("m2", "AKM", "a/b+c d");
    edit.id = id.clone();
    f.core.save_profile(edit).unwrap();
    let url = format!("ftp://AKM/b@127.0.0.1:{}/", f.port);
    assert_eq!(f.core.connect_info(&id).unwrap().url, url);
    f.core.copy(&id, CopyField::Url).unwrap();
    assert_eq!(
        f.shell.clipboard.lock().unwrap().as_deref(),
        Some(url.as_str())
    );
    let info = serde_json::to_string(&f.core.connect_info(&id).unwrap()).unwrap();
    assert!(!info.contains("a/b+c d"));
    // The secret is copied only when the user asks for exactly that.
    f.core.copy(&id, CopyField::Password).unwrap();
    assert_eq!(
        f.shell.clipboard.lock().unwrap().as_deref(),
        Some("a/b+c d")
    );
    f.core.copy(&id, CopyField::User).unwrap();
    assert_eq!(f.shell.clipboard.lock().unwrap().as_deref(), Some("AKM/b"));

    // The built-in profile cannot be deleted or edited.
    assert!(matches!(
        f.core.delete_profile("local"),
        Err(ActionError::Builtin)
    ));
    let mut builtin = minio("x", "AKX", "s");
    builtin.id = "local".into();
    assert!(matches!(
        f.core.save_profile(builtin),
        Err(ActionError::Builtin)
    ));

    // Deleting removes the secret too; the default profile falls back to "This computer".
    let s = Settings {
        default_profile: id.clone(),
        ..f.core.settings()
    };
    f.core.save_settings(s).await.unwrap();
    f.core.delete_profile(&id).unwrap();
    assert_eq!(f.secrets.get(&id).unwrap(), None);
    assert_eq!(f.core.settings().default_profile, "local");
    assert!(matches!(
        f.core.delete_profile(&id),
        Err(ActionError::NoProfile(_))
    ));
    assert!(f.shell.calls().iter().filter(|c| *c == "profiles").count() >= 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_connection_says_what_is_wrong() {
    let f = fixture().await;
    // The local bucket works.
    let ok = f
        .core
        .test_connection(ProfileInput {
            id: "local".into(),
            ..ProfileInput::default()
        })
        .await
        .unwrap();
    assert!(ok.ok, "{ok:?}");
    assert_eq!(ok.key, "probe.ok_bucket");

    // A form against the local store's endpoint with a wrong secret.
    let local = f.core.profiles().remove(0);
    let endpoint = local.profile.endpoint.clone().unwrap();
    let wrong = ProfileInput {
        name: "w".into(),
        provider: Some(Provider::Custom),
        endpoint: endpoint.clone(),
        region: local.profile.region.clone().unwrap_or_default(),
        addressing: Some(gateway::Addressing::Path),
        access_key: local.profile.access_key.clone(),
        secret: "not-the-secret".into(),
        bucket: "local".into(),
        ..ProfileInput::default()
    };
    let r = f.core.test_connection(wrong.clone()).await.unwrap();
    assert!(!r.ok);
    assert_eq!(r.key, "probe.bad_secret", "{r:?}");

    // Unknown key.
    let r = f
        .core
        .test_connection(ProfileInput {
            access_key: "NOSUCHKEY".into(),
            ..wrong.clone()
        })
        .await
        .unwrap();
    assert_eq!(r.key, "probe.bad_key", "{r:?}");

    // Nothing listens there.
    let r = f
        .core
        .test_connection(ProfileInput {
            endpoint: format!("http://127.0.0.1:{}", common::free_port()),
            ..wrong.clone()
        })
        .await
        .unwrap();
    assert!(!r.ok);
    assert!(
        matches!(r.key, "probe.unreachable" | "probe.other"),
        "{r:?}"
    );

    // A form error is an error, with its field.
    let e = f
        .core
        .test_connection(ProfileInput {
            name: String::new(),
            ..wrong
        })
        .await
        .unwrap_err();
    let json = serde_json::to_value(&e).unwrap();
    assert_eq!(json["field"], "name");
    assert_eq!(json["key"], "err.name");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logins_of_a_saved_profile_go_to_its_endpoint() {
    // A second profile whose key is the local store's key but whose endpoint is dead: the
    // local key matches "This computer" first. A profile with its own key goes to its own
    // (dead) endpoint, so its login fails with the store unreachable, not "unknown key".
    let f = fixture().await;
    f.core
        .save_profile(minio("dead", "AKDEAD", "secret"))
        .unwrap();
    f.core.start_server().await.unwrap();
    let mut ftp = AsyncFtpStream::connect(("127.0.0.1", f.port))
        .await
        .unwrap();
    let err = ftp.login("AKDEAD/b", "secret").await.unwrap_err();
    assert!(err.to_string().contains("530"), "{err}");
    let mut seen = None;
    for _ in 0..50 {
        seen = f
            .core
            .activity()
            .errors
            .iter()
            .find(|e| e.key == "log.login_failed")
            .cloned();
        if seen.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let seen = seen.expect("login failure in Activity");
    assert_eq!(seen.args["user"], "AKDEAD/b");
    f.core.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settings_validate_apply_autostart_and_restart_the_server() {
    let f = fixture().await;
    let bad = Settings {
        part_size_mib: 1,
        ..f.core.settings()
    };
    let e = f.core.save_settings(bad).await.unwrap_err();
    assert_eq!(serde_json::to_value(&e).unwrap()["field"], "part_size_mib");
    let e = f
        .core
        .save_settings(Settings {
            default_profile: "nope".into(),
            ..f.core.settings()
        })
        .await
        .unwrap_err();
    assert_eq!(e.key(), "err.default_profile");

    f.core.start_server().await.unwrap();
    let new_port = common::free_port();
    let saved = f
        .core
        .save_settings(Settings {
            listen_port: new_port,
            start_at_login: true,
            language: "ja".into(),
            ..f.core.settings()
        })
        .await
        .unwrap();
    assert!(saved.restarted);
    assert_eq!(*f.shell.autostart.lock().unwrap(), Some(true));
    assert!(refused(f.port).await);
    assert!(!refused(new_port).await);
    assert_eq!(f.core.language().code(), "ja");
    assert_eq!(f.core.strings(None).strings["tray.quit"], "終了");
    assert_eq!(f.core.strings(Some("zh-CN")).strings["tray.quit"], "退出");
    // Language only: no restart.
    let saved = f
        .core
        .save_settings(Settings {
            language: "en".into(),
            ..f.core.settings()
        })
        .await
        .unwrap();
    assert!(!saved.restarted);
    f.core.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_port_is_an_error_state_in_words() {
    let f = fixture().await;
    let _holder = std::net::TcpListener::bind(("127.0.0.1", f.port)).unwrap();
    let e = f.core.start_server().await.unwrap_err();
    assert_eq!(e.key(), "err.start");
    assert!(matches!(f.core.status(), ServerStatus::Error { .. }));
    assert!(
        f.shell
            .calls()
            .iter()
            .any(|c| c.starts_with("server:Error"))
    );
    assert_eq!(f.core.activity().errors[0].key, "log.server_failed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_profiles_file_is_kept_and_announced() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config");
    std::fs::create_dir_all(&config).unwrap();
    std::fs::write(
        config.join("profiles.json"),
        "{\"version\":1,\"profiles\":[",
    )
    .unwrap();
    std::fs::write(config.join("settings.json"), "garbage").unwrap();
    let core = Core::open(
        AppPaths {
            config_dir: config.clone(),
            data_dir: dir.path().join("data"),
            local_data_dir: dir.path().join("data"),
        },
        Arc::new(Keychain::mock()),
        Arc::new(Recorder::default()),
    )
    .await
    .unwrap();
    let keys: Vec<_> = core.notices().iter().map(|n| n.key).collect();
    assert_eq!(keys, ["notice.corrupt", "notice.corrupt"]);
    let kept: Vec<_> = std::fs::read_dir(&config)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".corrupt-"))
        .collect();
    assert_eq!(kept.len(), 2, "{kept:?}");
    assert_eq!(core.profiles().len(), 1);
    core.dismiss_notice(0);
    assert_eq!(core.notices().len(), 1);
    core.shutdown().await;
}

fn b64(s: &str) -> String {
    // The same encoding FileZilla reads for `<Pass encoding="base64">` (test-only copy).
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for c in s.as_bytes().chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= c.len() {
                out.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filezilla_sites_export_one_site_per_profile_and_secrets_only_on_request() {
    let f = fixture().await;
    f.core
        .save_profile(minio("Mini", "AKM", "SECRET-M"))
        .unwrap();
    let mut no_bucket = minio("No bucket", "AKN", "SECRET-N");
    no_bucket.bucket = String::new();
    f.core.save_profile(no_bucket).unwrap();
    let local = f.core.profiles().remove(0);
    let local_secret = f.core.reveal_secret("local").unwrap().unwrap();
    assert_eq!(local.user, format!("{}/local", local.profile.access_key));
    let out = tempfile::tempdir().unwrap();

    // Default: FileZilla asks for the password; no secret in the file.
    let v = f.core.export_filezilla_sites_to(out.path(), false).unwrap();
    assert_eq!(
        v.path,
        out.path().join("bucketftp-sites.xml").display().to_string()
    );
    assert_eq!((v.sites, v.with_secrets), (2, false));
    assert_eq!(v.skipped, ["No bucket"]);
    let xml = std::fs::read_to_string(&v.path).unwrap();
    assert_eq!(xml.matches("<Server>").count(), 2);
    assert!(xml.contains(&format!("<User>{}</User>", local.user)));
    assert!(xml.contains("<User>AKM/b</User>"));
    assert!(xml.contains("<Name>BucketFTP - This computer</Name>"));
    assert!(xml.contains("<Name>BucketFTP - Mini</Name>"));
    assert_eq!(xml.matches("<Host>127.0.0.1</Host>").count(), 2);
    assert_eq!(xml.matches(&format!("<Port>{}</Port>", f.port)).count(), 2);
    // The app offers FTPS, so the sites require explicit FTP over TLS.
    assert_eq!(xml.matches("<Protocol>4</Protocol>").count(), 2);
    assert_eq!(xml.matches("<Logontype>2</Logontype>").count(), 2);
    assert!(!xml.contains("<Pass"));
    assert!(!xml.contains("SECRET-M") && !xml.contains(&local_secret));

    // With "Include the secret keys": a new file next to the first, which stays as it was.
    let v2 = f.core.export_filezilla_sites_to(out.path(), true).unwrap();
    assert_eq!(
        v2.path,
        out.path()
            .join("bucketftp-sites-2.xml")
            .display()
            .to_string()
    );
    assert!(v2.with_secrets);
    let with = std::fs::read_to_string(&v2.path).unwrap();
    assert_eq!(with.matches("<Logontype>1</Logontype>").count(), 2);
    assert!(with.contains(&format!(
        "<Pass encoding=\"base64\">{}</Pass>",
        b64("SECRET-M")
    )));
    assert!(with.contains(&format!(
        "<Pass encoding=\"base64\">{}</Pass>",
        b64(&local_secret)
    )));
    assert!(!with.contains("SECRET-M"), "secrets only base64-encoded");
    assert_eq!(std::fs::read_to_string(&v.path).unwrap(), xml);

    // The tray: never with secrets; the file and how to import it become a banner message,
    // and the window opens to show it.
    f.core.tray_export_sites_to(out.path());
    let notice = f.core.notices().pop().unwrap();
    assert_eq!(notice.key, "notice.exported");
    let tray_file = out.path().join("bucketftp-sites-3.xml");
    assert_eq!(notice.args["path"], tray_file.display().to_string());
    assert_eq!(notice.args["sites"], "2");
    assert!(
        !std::fs::read_to_string(&tray_file)
            .unwrap()
            .contains("<Pass")
    );
    let calls = f.shell.calls();
    assert!(calls.contains(&"notices".to_string()) && calls.contains(&"show".to_string()));
    let en = f.core.strings(Some("en")).strings;
    assert!(en["notice.exported"].contains("File › Import…"));

    // A folder that cannot be written is a message, not a panic.
    let blocked = out.path().join("not-a-folder");
    std::fs::write(&blocked, "x").unwrap();
    let e = f
        .core
        .export_filezilla_sites_to(&blocked, false)
        .unwrap_err();
    assert_eq!(e.key(), "err.export");
    f.core.tray_export_sites_to(&blocked);
    assert_eq!(f.core.notices().pop().unwrap().key, "notice.export_failed");
    f.core.shutdown().await;
}

async fn reply(stream: &mut tokio::io::BufReader<tokio::net::TcpStream>) -> String {
    use tokio::io::AsyncBufReadExt;
    let mut line = String::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_line(&mut line))
        .await
        .unwrap()
        .unwrap();
    line
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn require_tls_refuses_plain_logins_and_restarts_the_server() {
    use tokio::io::AsyncWriteExt;
    let f = fixture().await;
    assert!(!f.core.settings().require_tls);
    f.core.start_server().await.unwrap();
    let secret = f.core.reveal_secret("local").unwrap().unwrap();
    let user = f.core.connect_info("local").unwrap().user;
    // Off: a plain login works.
    let mut ftp = AsyncFtpStream::connect(("127.0.0.1", f.port))
        .await
        .unwrap();
    ftp.login(&user, &secret).await.unwrap();
    ftp.quit().await.unwrap();

    let saved = f
        .core
        .save_settings(Settings {
            require_tls: true,
            ..f.core.settings()
        })
        .await
        .unwrap();
    assert!(saved.restarted);
    let file = std::fs::read_to_string(f.core.paths().config_dir.join("settings.json")).unwrap();
    assert!(file.contains("\"require_tls\": true"), "{file}");

    // On: a plain login is refused with the FileZilla setting to choose.
    let mut ftp = AsyncFtpStream::connect(("127.0.0.1", f.port))
        .await
        .unwrap();
    let err = ftp.login(&user, &secret).await.unwrap_err().to_string();
    assert!(err.contains("534"), "{err}");
    // ...while AUTH TLS is offered.
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", f.port))
        .await
        .unwrap();
    let mut s = tokio::io::BufReader::new(tcp);
    assert!(reply(&mut s).await.starts_with("220"));
    s.get_mut().write_all(b"AUTH TLS\r\n").await.unwrap();
    let r = reply(&mut s).await;
    assert!(r.starts_with("234"), "{r}");
    f.core.shutdown().await;
}
