//! "Open window" where the window cannot open: Windows without the Microsoft Edge WebView2
//! Runtime (Windows 10 LTSC and N editions, locked-down machines; Wine). The window process
//! needs it, the tray process does not. Before the tray starts the window process it asks
//! whether the runtime is there ([`missing`]); when it is not, the person is told in words,
//! in a message box of the OS (which needs no webview), what is missing and where to get it
//! ([`MESSAGE_KEY`]), and the tray keeps serving. Elsewhere the webview (WebKitGTK, WKWebView)
//! is part of the system or of the package, and nothing is asked.

use std::sync::atomic::{AtomicBool, Ordering};

/// The translation key of the message: what is missing, where to get it, that the FTP
/// server keeps running.
pub const MESSAGE_KEY: &str = "window.webview_missing";

/// Where Microsoft offers the runtime (the message names it in every language).
pub const DOWNLOAD_PAGE: &str = "https://developer.microsoft.com/microsoft-edge/webview2/";

/// Why the window cannot open on this machine, or `None` when it can.
pub fn missing() -> Option<String> {
    #[cfg(windows)]
    {
        tauri::webview_version().err().map(|e| e.to_string())
    }
    #[cfg(not(windows))]
    {
        None
    }
}

/// A message box is up: a second "Open window" does not stack another one.
static SHOWING: AtomicBool = AtomicBool::new(false);

/// Shows `text` under the title `BucketFTP` in a message box of the OS, on a thread of its
/// own (the tray and the server carry on); at most one at a time. Without a message box on
/// this OS the text goes to the log.
pub fn tell(text: String) {
    if SHOWING.swap(true, Ordering::SeqCst) {
        return;
    }
    tracing::warn!(message = %text, "the window cannot open");
    let shown = std::thread::Builder::new()
        .name("webview-missing".into())
        .spawn(move || {
            message_box("BucketFTP", &text);
            SHOWING.store(false, Ordering::SeqCst);
        });
    if shown.is_err() {
        SHOWING.store(false, Ordering::SeqCst);
    }
}

#[cfg(windows)]
fn message_box(title: &str, text: &str) {
    use windows_sys::Win32::UI::WindowsAndMessaging::{
        MB_ICONWARNING, MB_OK, MB_SETFOREGROUND, MB_TOPMOST, MessageBoxW,
    };
    let wide = |s: &str| s.encode_utf16().chain([0]).collect::<Vec<u16>>();
    let (text, title) = (wide(text), wide(title));
    // SAFETY: both strings are NUL-terminated UTF-16 buffers that outlive the call; no owner
    // window (null) is allowed.
    #[allow(unsafe_code)]
    unsafe {
        MessageBoxW(
            std::ptr::null_mut(),
            text.as_ptr(),
            title.as_ptr(),
            MB_OK | MB_ICONWARNING | MB_SETFOREGROUND | MB_TOPMOST,
        );
    }
}

#[cfg(not(windows))]
fn message_box(_title: &str, _text: &str) {}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;
    use crate::i18n::{Catalog, Lang};

    #[test]
    fn the_message_says_what_is_missing_and_where_to_get_it_in_every_language() {
        let c = Catalog::load().unwrap();
        for lang in Lang::ALL {
            let text = c.t(lang, MESSAGE_KEY, &[]);
            assert!(text.contains("WebView2"), "{lang:?}: {text}");
            assert!(text.contains(DOWNLOAD_PAGE), "{lang:?}: {text}");
            assert!(text.contains("FTP"), "{lang:?}: {text}");
        }
    }

    #[cfg(not(windows))]
    #[test]
    fn nothing_is_missing_off_windows() {
        assert_eq!(missing(), None);
    }
}
