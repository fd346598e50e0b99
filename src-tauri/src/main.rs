//! The `bucketftp` desktop binary: the tray app. Everything lives in the library
//! ([`bucketftp::run`]) so the mock-runtime tests exercise the same code.

// No console window on Windows release builds.
#![cfg_attr(not(debug_assertions), windows_subsystem = "windows")]

fn main() {
    bucketftp::run();
}
