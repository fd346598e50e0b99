//! The commands through Tauri's IPC on the mock runtime (`tauri::test::mock_builder()`):
//! the same `build_app` as the real app, a mock window at `tauri://localhost`, keyring's
//! mock for secrets and temp folders for settings and the local bucket.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;

use bucketftp::actions::AppPaths;
use bucketftp::secrets::Keychain;
use bucketftp::{Boot, build_app};
use serde_json::{Value, json};
use tauri::test::{
    INVOKE_KEY, MockRuntime, get_ipc_response, mock_builder, mock_context, noop_assets,
};
use tauri::webview::InvokeRequest;
use tauri::{App, WebviewUrl, WebviewWindow, WebviewWindowBuilder};

struct Harness {
    _dir: tempfile::TempDir,
    app: App<MockRuntime>,
    window: WebviewWindow<MockRuntime>,
}

fn harness() -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let boot = Boot {
        paths: Some(AppPaths {
            config_dir: dir.path().join("config"),
            data_dir: dir.path().join("data"),
            local_data_dir: dir.path().join("data"),
        }),
        secrets: Some(Arc::new(Keychain::mock())),
        tray: false,
        start_hidden: true,
        autostart_server: false,
    };
    let mut app = build_app(mock_builder(), boot)
        .build(mock_context(noop_assets()))
        .unwrap();
    // Tauri runs `setup` (state, tray, server autostart) on the first event-loop turn.
    // One turn, not a loop, so the busy-loop deprecation does not apply.
    #[allow(deprecated)]
    app.run_iteration(|_, _| {});
    let window = WebviewWindowBuilder::new(
        &app,
        "main",
        WebviewUrl::External("tauri://localhost".parse().unwrap()),
    )
    .build()
    .unwrap();
    Harness {
        _dir: dir,
        app,
        window,
    }
}

impl Harness {
    fn call(&self, cmd: &str, args: Value) -> Result<Value, Value> {
        get_ipc_response(
            &self.window,
            InvokeRequest {
                cmd: cmd.into(),
                callback: tauri::ipc::CallbackFn(0),
                error: tauri::ipc::CallbackFn(1),
                url: "tauri://localhost".parse().unwrap(),
                body: tauri::ipc::InvokeBody::Json(args),
                headers: Default::default(),
                invoke_key: INVOKE_KEY.to_string(),
            },
        )
        .map(|b| b.deserialize::<Value>().unwrap())
    }

    fn ok(&self, cmd: &str, args: Value) -> Value {
        self.call(cmd, args)
            .unwrap_or_else(|e| panic!("{cmd} failed: {e}"))
    }
}

#[test]
fn commands_drive_the_app_through_ipc() {
    let h = harness();
    // First run: "This computer" with its login.
    let profiles = h.ok("list_profiles", json!({}));
    assert_eq!(profiles[0]["id"], "local");
    assert_eq!(profiles[0]["local"], true);
    assert!(profiles[0]["user"].as_str().unwrap().ends_with("/local"));

    // Presets come from the engine, with regions per preset.
    let presets = h.ok("provider_presets", json!({}));
    let oss = presets
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["id"] == "oss")
        .unwrap();
    assert!(oss["regions"].as_array().unwrap().len() > 3);
    assert_eq!(
        oss["endpoint_template"],
        "https://oss-{region}.aliyuncs.com"
    );
    assert_eq!(presets.as_array().unwrap().len(), 9);

    // The server starts and stops through commands.
    let port = common::free_port();
    let mut settings = h.ok("get_settings", json!({}));
    assert_eq!(settings["require_tls"], false);
    settings["listen_port"] = json!(port);
    settings["passive_ports"] = json!("41000-41100");
    let saved = h.ok("save_settings", json!({ "settings": settings }));
    assert_eq!(saved["restarted"], false);
    assert_eq!(h.ok("server_status", json!({}))["state"], "stopped");
    let running = h.ok("start_server", json!({}));
    assert_eq!(running["state"], "running");
    assert_eq!(running["address"], format!("127.0.0.1:{port}"));
    std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    let info = h.ok("connect_info", json!({ "profile_id": "local" }));
    assert_eq!(info["port"], port);
    assert_eq!(info["running"], true);
    assert!(info["url"].as_str().unwrap().starts_with("ftp://LOCAL"));
    assert!(info.get("secret").is_none());
    let secret = h.ok("reveal_secret", json!({ "profile_id": "local" }));
    assert!(secret.as_str().unwrap().len() >= 16);
    assert_eq!(h.ok("stop_server", json!({}))["state"], "stopped");
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err());

    // Profiles: one error type, serialised with a translation key and the field.
    let bad = h
        .call(
            "save_profile",
            json!({ "profile": { "name": "", "provider": "minio" } }),
        )
        .unwrap_err();
    assert_eq!(bad["kind"], "invalid");
    assert_eq!(bad["field"], "name");
    assert_eq!(bad["key"], "err.name");
    let saved = h.ok(
        "save_profile",
        json!({ "profile": {
            "name": "MinIO", "provider": "minio", "endpoint": "http://127.0.0.1:9000",
            "access_key": "AKMINIO", "secret": "SK", "bucket": "photos" } }),
    );
    assert_eq!(saved["user"], "AKMINIO/photos");
    assert_eq!(saved["has_secret"], true);
    let id = saved["id"].as_str().unwrap().to_owned();
    assert_eq!(
        h.ok("list_profiles", json!({})).as_array().unwrap().len(),
        2
    );
    let no_clipboard = h
        .call("copy_field", json!({ "profile_id": id, "field": "user" }))
        .unwrap_err();
    assert_eq!(no_clipboard["kind"], "clipboard");
    // There is no copy field with the secret in a URL any more.
    assert!(
        h.call("copy_field", json!({ "profile_id": id, "field": "login" }))
            .is_err()
    );
    h.ok("delete_profile", json!({ "id": id }));
    let gone = h.call("delete_profile", json!({ "id": id })).unwrap_err();
    assert_eq!(gone["key"], "err.no_profile");

    // Strings in every language, and the activity snapshot.
    let zh = h.ok("strings", json!({ "lang": "zh-CN" }));
    assert_eq!(zh["lang"], "zh-CN");
    assert_eq!(zh["strings"]["tab.activity"], "活动");
    assert_eq!(zh["languages"].as_array().unwrap().len(), 3);
    let ja = h.ok("strings", json!({ "lang": "ja" }));
    assert_eq!(ja["strings"]["tab.settings"], "設定");
    assert_eq!(
        ja["version"],
        format!("BucketFTP バージョン {}", env!("CARGO_PKG_VERSION"))
    );
    let activity = h.ok("activity", json!({}));
    let keys: Vec<_> = activity["log"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["key"].as_str().unwrap().to_owned())
        .collect();
    // The probe connection above is a session of its own; its events may land on either
    // side of the stop, so only the order of the server's own lines is fixed.
    let server: Vec<_> = keys
        .iter()
        .filter(|k| k.starts_with("log.server_"))
        .collect();
    assert_eq!(
        server,
        ["log.server_started", "log.server_stopped"],
        "{keys:?}"
    );
    assert!(
        keys.iter()
            .all(|k| k.starts_with("log.server_") || k.starts_with("log.session_")),
        "{keys:?}"
    );
    assert_eq!(h.ok("notices", json!({})), json!([]));
    // Start at login needs the autostart plugin, which the mock app lacks: a clear error.
    let mut settings = h.ok("get_settings", json!({}));
    settings["start_at_login"] = json!(true);
    let e = h
        .call("save_settings", json!({ "settings": settings }))
        .unwrap_err();
    assert_eq!(e["key"], "err.autostart");
    drop(h.app);
}
