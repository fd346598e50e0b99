//! The window's commands: [`dispatch`] turns a command's name and arguments object (as the
//! page invokes it, snake_case keys) into a call on the actions layer
//! ([`crate::actions::Core`]) and its JSON result. The same table serves the page in this
//! process ([`invoke_handler`], used under the mock runtime in tests) and the page of the
//! window process, whose calls arrive over [`crate::window_proc`].

use std::sync::Arc;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use tauri::ipc::{Invoke, InvokeBody};
use tauri::{Manager, Runtime};

use crate::actions::{ActionError, Core};

/// Every command the page may invoke.
pub const COMMANDS: &[&str] = &[
    "server_status",
    "start_server",
    "stop_server",
    "list_profiles",
    "save_profile",
    "delete_profile",
    "provider_presets",
    "test_connection",
    "connect_info",
    "reveal_secret",
    "copy_field",
    "export_filezilla_sites",
    "activity",
    "notices",
    "dismiss_notice",
    "get_settings",
    "save_settings",
    "strings",
];

/// Runs command `cmd` with the arguments object `args` on `core`: the result, or the
/// serialised [`ActionError`].
pub async fn dispatch(core: &Core, cmd: &str, args: &Value) -> Result<Value, Value> {
    run(core, cmd, args).await.map_err(|e| to_json(&e))
}

async fn run(core: &Core, cmd: &str, args: &Value) -> Result<Value, ActionError> {
    match cmd {
        "server_status" => ok(core.status()),
        "start_server" => ok(core.start_server().await?),
        "stop_server" => ok(core.stop_server().await),
        "list_profiles" => ok(core.profiles()),
        "save_profile" => ok(core.save_profile(arg(args, "profile")?)?),
        "delete_profile" => ok(core.delete_profile(&arg::<String>(args, "id")?)?),
        "provider_presets" => ok(core.presets()),
        "test_connection" => ok(core.test_connection(arg(args, "profile")?).await?),
        "connect_info" => ok(core.connect_info(&arg::<String>(args, "profile_id")?)?),
        "reveal_secret" => ok(core.reveal_secret(&arg::<String>(args, "profile_id")?)?),
        "copy_field" => ok(core.copy(&arg::<String>(args, "profile_id")?, arg(args, "field")?)?),
        "export_filezilla_sites" => ok(core.export_filezilla_sites(arg(args, "include_secrets")?)?),
        "activity" => ok(core.activity()),
        "notices" => ok(core.notices()),
        "dismiss_notice" => {
            core.dismiss_notice(arg(args, "index")?);
            ok(())
        }
        "get_settings" => ok(core.settings()),
        "save_settings" => ok(core.save_settings(arg(args, "settings")?).await?),
        "strings" => ok(core.strings(arg::<Option<String>>(args, "lang")?.as_deref())),
        other => Err(ActionError::Request(format!("no command {other:?}"))),
    }
}

/// Argument `key` of `args` (a missing key reads as `null`, which an `Option` accepts).
fn arg<T: DeserializeOwned>(args: &Value, key: &str) -> Result<T, ActionError> {
    let value = args.get(key).cloned().unwrap_or(Value::Null);
    serde_json::from_value(value)
        .map_err(|e| ActionError::Request(format!("argument {key:?}: {e}")))
}

fn ok<T: Serialize>(value: T) -> Result<Value, ActionError> {
    serde_json::to_value(value).map_err(|e| ActionError::Request(format!("result: {e}")))
}

/// `error` as the page receives it.
pub fn to_json(error: &ActionError) -> Value {
    // ActionError serialises to an object of strings: this cannot fail; its message is the
    // fallback all the same.
    serde_json::to_value(error).unwrap_or_else(|_| Value::String(error.to_string()))
}

/// The invoke handler of a page in this process: every command through [`dispatch`] on the
/// app's [`Core`], run on Tauri's async runtime.
pub fn invoke_handler<R: Runtime>(invoke: Invoke<R>) -> bool {
    let Some(core) = invoke
        .message
        .webview()
        .try_state::<Arc<Core>>()
        .map(|c| Arc::clone(c.inner()))
    else {
        invoke.resolver.reject(to_json(&ActionError::Request(
            "the app is still starting".to_owned(),
        )));
        return true;
    };
    let cmd = invoke.message.command().to_owned();
    let args = match invoke.message.payload() {
        InvokeBody::Json(v) => v.clone(),
        InvokeBody::Raw(_) => Value::Null,
    };
    let resolver = invoke.resolver;
    tauri::async_runtime::spawn(async move {
        match dispatch(&core, &cmd, &args).await {
            Ok(v) => resolver.resolve(v),
            Err(e) => resolver.reject(e),
        }
    });
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every `invoke("name"` (and `serverAction("name"`) in the page names a command of the
    /// table, and every command of the table is used by the page.
    #[test]
    fn the_page_and_the_table_agree() {
        let js = include_str!("../../ui/app.js");
        let mut used: Vec<&str> = ["invoke(\"", "serverAction(\""]
            .iter()
            .flat_map(|call| js.split(call).skip(1))
            .filter_map(|rest| rest.split('"').next())
            .collect();
        used.sort_unstable();
        used.dedup();
        let mut table = COMMANDS.to_vec();
        table.sort_unstable();
        assert_eq!(used, table);
    }

    #[test]
    fn arguments_are_checked() {
        let args = serde_json::json!({"index": 3, "lang": null});
        assert_eq!(arg::<usize>(&args, "index").unwrap(), 3);
        assert_eq!(arg::<Option<String>>(&args, "lang").unwrap(), None);
        assert_eq!(arg::<Option<String>>(&args, "missing").unwrap(), None);
        let e = arg::<usize>(&args, "missing").unwrap_err();
        assert!(e.to_string().contains("\"missing\""), "{e}");
        let e = arg::<String>(&args, "index").unwrap_err();
        assert_eq!(e.key(), "err.request");
    }
}
