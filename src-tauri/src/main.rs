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
    bucketftp::run();
}
