//! The window in its own process.
//!
//! The tray app runs all day; its window is opened now and then. A WebKit window leaves
//! libraries and heap behind in the process that showed it (about 80 MiB on Linux after
//! closing), which no API gives back. So the tray process (`bucketftp`) never creates a
//! webview: "Open window" starts `bucketftp --window`, a second, short-lived process that
//! shows the page and ends when the window closes, giving all of it back.
//!
//! - [`protocol`]: the JSON lines between the two (pure).
//! - [`host`]: the tray side: starts the window process, answers its calls with
//!   [`crate::commands::dispatch`] on the one [`crate::actions::Core`], forwards the events
//!   the window listens to, tells it to show itself or to close.
//! - [`window`]: the window process: a Tauri app with the main window and an invoke handler
//!   that forwards every command to the tray and resolves the page's promise with the reply.
//! - [`webview`]: where the window process cannot run (Windows without the WebView2
//!   Runtime), the person is told why and where to get it instead.
//!
//! The window process holds no state: settings, profiles, secrets, the server, the
//! clipboard and start-at-login all stay in the tray process. When the tray process goes,
//! the window's standard input closes and the window process ends too.

pub mod host;
pub mod protocol;
pub mod webview;
pub mod window;

/// The flag that starts the window process.
pub const WINDOW_FLAG: &str = "--window";

/// Whether the command line asks for the window process.
pub fn is_window_process(args: impl IntoIterator<Item = String>) -> bool {
    args.into_iter().any(|a| a == WINDOW_FLAG)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_flag() {
        let args = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(is_window_process(args(&["--window"])));
        assert!(!is_window_process(args(&["--minimized"])));
        assert!(!is_window_process(args(&[])));
    }
}
