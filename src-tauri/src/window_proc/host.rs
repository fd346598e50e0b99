//! The tray side of the window process: [`WindowHost`] starts `bucketftp --window` when the
//! window is asked for, answers the page's calls with [`dispatch`] on the app's one
//! [`Core`], forwards the events the page listens to, and forgets the process when it ends
//! (the window was closed). Without a tray icon the window was the only way in: its end
//! quits the app.

use std::io::{self, BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use serde::Serialize;
use tauri::{AppHandle, Manager, Runtime};

use super::WINDOW_FLAG;
use super::protocol::{ToTray, ToWindow, decode, encode};
use super::webview;
use crate::actions::{ActionError, Core};
use crate::commands::{dispatch, to_json};

/// The environment variable that names a program to start as the window process instead
/// of this executable: a stand-in that speaks the same JSON lines (the Wine test drives the
/// tray's command table with one, `tests/windows/window_standin.c`, where no WebView2 can
/// run). Only whoever starts the app sets its environment, and that person can already run
/// any program as themselves: it gives nobody anything new.
pub const WINDOW_PROGRAM_ENV: &str = "BUCKETFTP_WINDOW_PROGRAM";

/// Starts and talks to the window process; at most one runs at a time.
pub struct WindowHost {
    exe: PathBuf,
    /// `exe` is a stand-in named by [`WINDOW_PROGRAM_ENV`], not this app: it needs no
    /// webview runtime.
    stand_in: bool,
    current: Mutex<Option<Arc<Link>>>,
}

/// The pipe to one window process.
struct Link {
    pid: u32,
    stdin: Mutex<ChildStdin>,
}

impl Link {
    /// Writes `message`; `false` when the process is gone.
    fn send(&self, message: &ToWindow) -> bool {
        let line = encode(message);
        let mut stdin = lock(&self.stdin);
        stdin
            .write_all(line.as_bytes())
            .and_then(|()| stdin.flush())
            .is_ok()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // The guarded values stay consistent whatever a panicking holder did (a pipe handle,
    // an Option swapped whole): carry on past the poison.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl WindowHost {
    /// A host that starts `exe --window`.
    pub fn new(exe: PathBuf) -> Self {
        Self {
            exe,
            stand_in: false,
            current: Mutex::new(None),
        }
    }

    /// A host that starts this program's own executable, or the stand-in named by
    /// [`WINDOW_PROGRAM_ENV`].
    pub fn for_this_exe() -> io::Result<Self> {
        match std::env::var_os(WINDOW_PROGRAM_ENV).filter(|p| !p.is_empty()) {
            Some(program) if !std::path::Path::new(&program).is_absolute() => {
                tracing::warn!(program = ?program, "{WINDOW_PROGRAM_ENV} ignored: not an absolute path");
                std::env::current_exe().map(Self::new)
            }
            Some(program) => {
                tracing::warn!(program = ?program, "the window process is a stand-in ({WINDOW_PROGRAM_ENV})");
                Ok(Self {
                    stand_in: true,
                    ..Self::new(PathBuf::from(program))
                })
            }
            None => std::env::current_exe().map(Self::new),
        }
    }

    /// Brings the window forward, starting its process if none runs. Where the window
    /// cannot run (no WebView2 Runtime) the person is told why instead.
    pub fn show<R: Runtime>(self: &Arc<Self>, app: &AppHandle<R>) {
        let mut current = lock(&self.current);
        if let Some(link) = current.as_ref()
            && link.send(&ToWindow::Show)
        {
            return;
        }
        if let Some(why) = webview::missing().filter(|_| !self.stand_in) {
            tracing::debug!(reason = %why, "no webview runtime");
            let text = match app.try_state::<Arc<Core>>() {
                Some(core) => core.t(webview::MESSAGE_KEY, &[]),
                None => crate::i18n::Catalog::load()
                    .map(|c| c.t(crate::i18n::Lang::En, webview::MESSAGE_KEY, &[]))
                    .unwrap_or_else(|_| webview::DOWNLOAD_PAGE.to_owned()),
            };
            webview::tell(text);
            return;
        }
        match self.spawn(app) {
            Ok(link) => *current = Some(link),
            Err(e) => {
                *current = None;
                tracing::warn!(error = %e, exe = %self.exe.display(), "cannot open the window");
            }
        }
    }

    /// Forwards event `name` to the window, if one is open.
    pub fn event<S: Serialize + ?Sized>(&self, name: &str, payload: &S) {
        let Some(link) = lock(&self.current).clone() else {
            return;
        };
        let Ok(payload) = serde_json::to_value(payload) else {
            return;
        };
        link.send(&ToWindow::Event {
            name: name.to_owned(),
            payload,
        });
    }

    /// Closes the window, if one is open (the app quits).
    pub fn close(&self) {
        if let Some(link) = lock(&self.current).take() {
            link.send(&ToWindow::Close);
        }
    }

    fn spawn<R: Runtime>(self: &Arc<Self>, app: &AppHandle<R>) -> io::Result<Arc<Link>> {
        let mut child = Command::new(&self.exe)
            .arg(WINDOW_FLAG)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            let _ = child.kill();
            let _ = child.wait();
            return Err(io::Error::other("the window process has no pipes"));
        };
        let link = Arc::new(Link {
            pid: child.id(),
            stdin: Mutex::new(stdin),
        });
        tracing::debug!(pid = link.pid, "window process started");
        let host = Arc::clone(self);
        let served = Arc::clone(&link);
        let app = app.clone();
        std::thread::Builder::new()
            .name("window-link".into())
            .spawn(move || host.serve(&app, child, stdout, &served))?;
        Ok(link)
    }

    /// Answers the window's calls until its output closes, then reaps it.
    fn serve<R: Runtime>(
        &self,
        app: &AppHandle<R>,
        mut child: Child,
        out: ChildStdout,
        link: &Arc<Link>,
    ) {
        for line in BufReader::new(out).lines() {
            let Ok(line) = line else { break };
            let Some(ToTray::Call { id, cmd, args }) = decode(&line) else {
                continue;
            };
            let Some(core) = app.try_state::<Arc<Core>>().map(|c| Arc::clone(c.inner())) else {
                let e = ActionError::Request("the app is still starting".to_owned());
                link.send(&ToWindow::Reply {
                    id,
                    result: Err(to_json(&e)),
                });
                continue;
            };
            let link = Arc::clone(link);
            tauri::async_runtime::spawn(async move {
                let result = dispatch(&core, &cmd, &args).await;
                link.send(&ToWindow::Reply { id, result });
            });
        }
        let status = child.wait();
        tracing::debug!(pid = link.pid, ?status, "window process ended");
        {
            let mut current = lock(&self.current);
            if current.as_ref().is_some_and(|c| Arc::ptr_eq(c, link)) {
                *current = None;
            }
        }
        if app.tray_by_id(crate::tray::TRAY_ID).is_none() {
            app.exit(0);
        }
    }
}
