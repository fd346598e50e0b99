//! The actions layer end to end, without a window: a real local bucket (the embedded S3
//! store), the real gateway on a free port, a real FTP client (suppaftp), keyring's mock for
//! secrets and a recording [`Shell`] in place of Tauri.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bucketftp::actions::{ActionError, AppPaths, CopyField, Core, Shell};
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
    fn set_start_at_login(&self, on: bool) -> Result<(), String> {
        *self.autostart.lock().unwrap() = Some(on);
        Ok(())
    }
    fn copy_text(&self, text: &str) -> Result<(), String> {
        *self.clipboard.lock().unwrap() = Some(text.to_owned());
        Ok(())
    }
    fn show_window(&self) {
        self.calls.lock().unwrap().push("show".into());
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

    // Copying the FileZilla login: user and secret percent-encoded in an ftp:// URL.
    let mut edit = minio("m2", "AKM", "a/b+c d");
    edit.id = id.clone();
    f.core.save_profile(edit).unwrap();
    assert_eq!(
        f.core.copy_text(&id, CopyField::Login).unwrap(),
        format!("ftp://AKM%2Fb:a%2Fb%2Bc%20d@127.0.0.1:{}/", f.port)
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
