//! Puts memory.x where cortex-m-rt's link.x finds it, and writes the
//! build-time random seed (`seed.bin`, 32 bytes from the build host's
//! `/dev/urandom`), which the image mixes with the time of the first byte
//! it hears: the board has no hardware RNG (src/main.rs).
use std::io::Read;
use std::{env, fs, path::PathBuf};

fn main() {
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("OUT_DIR"));
    fs::copy("memory.x", out.join("memory.x")).expect("copy memory.x");
    println!("cargo:rustc-link-search={}", out.display());
    println!("cargo:rerun-if-changed=memory.x");
    let mut seed = [0u8; 32];
    fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut seed))
        .expect("read /dev/urandom for the image's seed");
    fs::write(out.join("seed.bin"), seed).expect("write seed.bin");
    if let Ok(v) = env::var("FERRY_DEVICE_VERIFIER") {
        assert!(
            v.starts_with("SCRAM-SHA-256$"),
            "FERRY_DEVICE_VERIFIER must be a verifier as `ferry passwd` writes it"
        );
    }
    println!("cargo:rerun-if-env-changed=FERRY_DEVICE_VERIFIER");
}
