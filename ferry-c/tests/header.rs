//! `include/ferry.h` is generated from the code by cbindgen and committed;
//! this regenerates it and fails when the two differ, so a change to the
//! Rust side cannot ship with a stale header. `FERRY_BLESS_HEADER=1`
//! writes the new one instead.

use std::path::Path;

#[test]
fn committed_header_matches_the_code() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let config = cbindgen::Config::from_file(dir.join("cbindgen.toml")).expect("cbindgen.toml");
    let mut fresh = Vec::new();
    cbindgen::Builder::new()
        .with_crate(dir)
        .with_config(config)
        .generate()
        .expect("cbindgen generates the header")
        .write(&mut fresh);
    let path = dir.join("include/ferry.h");
    if std::env::var_os("FERRY_BLESS_HEADER").is_some() {
        std::fs::write(&path, &fresh).expect("write include/ferry.h");
        return;
    }
    let committed = std::fs::read(&path).unwrap_or_default();
    assert!(
        committed == fresh,
        "include/ferry.h is stale: regenerate it with \
         FERRY_BLESS_HEADER=1 cargo test -p ferry-c --test header\n--- generated ---\n{}",
        String::from_utf8_lossy(&fresh)
    );
}
