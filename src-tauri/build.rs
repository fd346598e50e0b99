//! Build script: tauri-build embeds `tauri.conf.json`, the capabilities and the web UI
//! (`../ui`) into the binary, so `cargo build -p bucketftp` alone produces the app.

fn main() {
    tauri_build::build()
}
