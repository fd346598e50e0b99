//! Build script: turns the test stores selected by `BUCKETFTP_TEST_STORES` into
//! `test_store = "local" | "garage" | "moto"` cfgs, so that a test of a store that is not
//! selected is reported as ignored (with the reason) instead of passing without running
//! (`tests/support/mod.rs`, `each_store!`). The same rules as the tests' own reading: unset
//! means `local`; `all` means every store; names are comma-separated. A value with a name it
//! does not know, or naming none, selects every store here, so that the tests run and fail on
//! it (they panic on such a value) instead of all being ignored.

fn main() {
    const VAR: &str = "BUCKETFTP_TEST_STORES";
    const STORES: [&str; 3] = ["local", "garage", "moto"];
    println!("cargo::rerun-if-env-changed={VAR}");
    println!("cargo::rustc-check-cfg=cfg(test_store, values(\"local\", \"garage\", \"moto\"))");
    let value = std::env::var(VAR).unwrap_or_else(|_| "local".to_owned());
    let mut selected: Vec<&str> = Vec::new();
    for name in value.split(',').map(|s| s.trim().to_ascii_lowercase()) {
        match name.as_str() {
            "" => {}
            "all" => selected.extend(STORES),
            other => match STORES.iter().find(|s| **s == other) {
                Some(s) => selected.push(s),
                None => {
                    selected = STORES.to_vec();
                    break;
                }
            },
        }
    }
    if selected.is_empty() {
        selected = STORES.to_vec();
    }
    for store in &selected {
        println!("cargo::rustc-cfg=test_store=\"{store}\"");
    }
    // The tests compare it with the value they run with: a test binary built for other
    // stores (`cargo test --no-run`, then run by hand) fails instead of ignoring them.
    println!(
        "cargo::rustc-env=BUCKETFTP_TEST_STORES_BUILT={}",
        selected.join(",")
    );
}
