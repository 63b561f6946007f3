//! Each module's place in the layering is plain: the pairs that imported
//! each other (the third review) now depend one way. A module named on
//! the left must not name the one on the right.

use std::path::Path;

const PAIRS: &[(&str, &str)] = &[
    // exec takes its policy and sends its messages; the session uses it.
    ("std-runtime/src/exec.rs", "crate::session"),
    // The served root uses its listings and its writer, not the reverse;
    // what they share is in mapping.rs.
    ("std-runtime/src/listing.rs", "crate::fsroot"),
    ("std-runtime/src/writer.rs", "crate::fsroot"),
    ("std-runtime/src/mapping.rs", "crate::fsroot"),
    ("std-runtime/src/mapping.rs", "crate::listing"),
    // The protocol's error codes depend on nothing; the digests on them.
    ("core/src/error.rs", "crate::digest"),
    ("core/src/error.rs", "crate::setup"),
];

#[test]
fn module_dependencies_run_one_way() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    for (file, forbidden) in PAIRS {
        let text = std::fs::read_to_string(root.join(file)).expect(file);
        let uses: Vec<_> = text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim_start().starts_with("//") && l.contains(forbidden))
            .map(|(i, l)| format!("{file}:{}: {}", i + 1, l.trim()))
            .collect();
        assert!(
            uses.is_empty(),
            "{file} must not use {forbidden}:\n{}",
            uses.join("\n")
        );
    }
}
