//! The `bucketftp` desktop binary: the tray app. Everything lives in the library
//! ([`bucketftp::run`]) so the mock-runtime tests exercise the same code.

// No console window on Windows release builds.
#![cfg_attr(not(debug_assertions), windows_subsystem = "windows")]

fn main() {
    // GTK's X11 backend initialises GLX when it opens the display, which loads the GL driver
    // (under a software GL such as Xvfb's, Mesa's llvmpipe brings in libLLVM: 43 MiB
    // resident, about half of the idle tray). The tray never draws with GL, and WebKit's
    // page renders without GDK's GL. A value the user set is kept. Not under WebDriver
    // (tauri-driver sets TAURI_WEBVIEW_AUTOMATION): with GDK's GL off, WebKitGTK 2.50 never
    // answers WebKitWebDriver's new session (the window itself opens and renders).
    #[cfg(target_os = "linux")]
    if std::env::var_os("GDK_GL").is_none()
        && std::env::var_os("TAURI_WEBVIEW_AUTOMATION").is_none_or(|v| v != "true")
    {
        // SAFETY: the first statement of `main`: no other thread exists yet that could read
        // or write the environment concurrently.
        #[allow(unsafe_code)]
        unsafe {
            std::env::set_var("GDK_GL", "disable");
        }
    }
    bucketftp::run();
}
