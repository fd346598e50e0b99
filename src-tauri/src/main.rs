//! The `bucketftp` desktop binary: the tray app. Everything lives in the library
//! ([`bucketftp::run`]) so the mock-runtime tests exercise the same code.

// No console window on Windows release builds.
#![cfg_attr(not(debug_assertions), windows_subsystem = "windows")]

fn main() {
    if let Some(line) = bucketftp::version_request(std::env::args().skip(1)) {
        // On Windows release builds (GUI subsystem) there is no console to print to; the
        // Settings tab shows the version there.
        println!("{line}");
        return;
    }
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
        // SAFETY: before any thread is started (the version check above only reads the
        // arguments): nothing can read or write the environment concurrently.
        #[allow(unsafe_code)]
        unsafe {
            std::env::set_var("GDK_GL", "disable");
        }
    }
    if bucketftp::window_proc::is_window_process(std::env::args().skip(1)) {
        bucketftp::window_proc::window::run();
    } else {
        bucketftp::run();
    }
}
