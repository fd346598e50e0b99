//! The window process (`bucketftp --window`): a Tauri app with the main window only. Every
//! command the page invokes goes to the tray process as a [`ToTray::Call`] on standard
//! output; the reply on standard input resolves (or rejects) the page's promise. Events
//! from the tray are emitted to the page. The process ends when its window closes, when
//! the tray says [`ToWindow::Close`], or when standard input ends (the tray is gone).

use std::collections::HashMap;
use std::io::{self, BufRead, IsTerminal, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use serde_json::Value;
use tauri::ipc::{Invoke, InvokeBody, InvokeResolver};
use tauri::{AppHandle, Emitter, Wry};

use super::protocol::{ToTray, ToWindow, decode, encode};
use crate::actions::ActionError;
use crate::commands::to_json;

/// The page's open calls and the pipe to the tray.
struct TrayLink {
    next_id: AtomicU64,
    pending: Mutex<HashMap<u64, InvokeResolver<Wry>>>,
    out: Mutex<io::Stdout>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A map of resolvers and the stdout handle stay usable after a panicking holder.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn tray_gone() -> Value {
    to_json(&ActionError::Request(
        "BucketFTP's tray process is not answering".to_owned(),
    ))
}

impl TrayLink {
    /// Forwards one invoke to the tray.
    fn call(&self, invoke: Invoke<Wry>) {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let cmd = invoke.message.command().to_owned();
        let args = match invoke.message.payload() {
            InvokeBody::Json(v) => v.clone(),
            InvokeBody::Raw(_) => Value::Null,
        };
        lock(&self.pending).insert(id, invoke.resolver);
        let line = encode(&ToTray::Call { id, cmd, args });
        let sent = {
            let mut out = lock(&self.out);
            out.write_all(line.as_bytes()).and_then(|()| out.flush())
        };
        if sent.is_err()
            && let Some(resolver) = lock(&self.pending).remove(&id)
        {
            resolver.reject(tray_gone());
        }
    }

    /// Reads the tray's messages until standard input ends, then ends the app.
    fn read(&self, app: &AppHandle<Wry>) {
        for line in io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            match decode::<ToWindow>(&line) {
                Some(ToWindow::Reply { id, result }) => {
                    if let Some(resolver) = lock(&self.pending).remove(&id) {
                        match result {
                            Ok(v) => resolver.resolve(v),
                            Err(e) => resolver.reject(e),
                        }
                    }
                }
                Some(ToWindow::Event { name, payload }) => {
                    let _ = app.emit(&name, payload);
                }
                Some(ToWindow::Show) => crate::shell::show_main_window(app),
                Some(ToWindow::Close) => break,
                None => {}
            }
        }
        for (_, resolver) in lock(&self.pending).drain() {
            resolver.reject(tray_gone());
        }
        app.exit(0);
    }
}

/// Runs the window process until its window closes or the tray goes.
pub fn run() {
    gateway::ops::logging::init("info");
    if io::stdin().is_terminal() {
        // Started by hand: nobody would answer the page's calls.
        eprintln!("bucketftp --window is started by the BucketFTP tray app; run bucketftp");
        std::process::exit(2);
    }
    let link = Arc::new(TrayLink {
        next_id: AtomicU64::new(1),
        pending: Mutex::new(HashMap::new()),
        out: Mutex::new(io::stdout()),
    });
    let calls = Arc::clone(&link);
    let app = tauri::Builder::default()
        .invoke_handler(move |invoke| {
            calls.call(invoke);
            true
        })
        .setup(move |app| {
            let handle = app.handle().clone();
            std::thread::Builder::new()
                .name("tray-link".into())
                .spawn(move || link.read(&handle))?;
            crate::shell::show_main_window(app.handle());
            Ok(())
        })
        .build(crate::context());
    match app {
        // Ends when the window closes (its last window) or on `exit`.
        Ok(app) => app.run(|_, _| {}),
        Err(e) => {
            eprintln!("BucketFTP could not open its window: {e}");
            std::process::exit(1);
        }
    }
}
