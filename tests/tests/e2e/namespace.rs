//! Names on the server: `mv` onto an existing name is refused unless
//! replacing is asked for (CLI and shell), `mkdir` of an existing name
//! is refused, and a put path ending in `/` names a directory
//! (`docs/PROTOCOL.md#messages`).

use std::fs;

use ferry_core::driver::DriverError;
use ferry_core::{Error, Overwrite};
use ferry_tests::raw::driven_anonymous as connect;
use ferry_tests::*;

fn cli(args: &[&str]) -> std::process::Output {
    let mut c = ferry();
    c.args(args);
    run(c)
}

fn shell(url: &str, script: &str) -> std::process::Output {
    shell_batch(url, script)
}

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn mv_onto_an_existing_name_is_refused_unless_replace_is_asked() {
    let s = Server::anonymous(&[]);
    let root = &s.root;
    fs::write(root.join("a.txt"), "A").unwrap();
    fs::write(root.join("b.txt"), "B").unwrap();
    fs::create_dir(root.join("d")).unwrap();

    let o = cli(&["mv", &s.url("a.txt"), "b.txt"]);
    assert_eq!(code(&o), 6, "{}", stderr(&o));
    assert!(
        stderr(&o).contains("already exists (use --overwrite replace)\n"),
        "{}",
        stderr(&o)
    );
    assert_eq!(fs::read_to_string(root.join("a.txt")).unwrap(), "A");
    assert_eq!(fs::read_to_string(root.join("b.txt")).unwrap(), "B");

    // An existing directory is an existing name too.
    let o = cli(&["mv", &s.url("a.txt"), "d"]);
    assert_eq!(code(&o), 6, "{}", stderr(&o));
    assert!(root.join("a.txt").is_file() && root.join("d").is_dir());

    // A free name needs no flag.
    let o = cli(&["mv", &s.url("a.txt"), "c.txt"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(fs::read_to_string(root.join("c.txt")).unwrap(), "A");
    assert!(!root.join("a.txt").exists());

    let o = cli(&["mv", "--overwrite", "replace", &s.url("c.txt"), "b.txt"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(fs::read_to_string(root.join("b.txt")).unwrap(), "A");
    assert!(!root.join("c.txt").exists());

    // keep-both means nothing for a rename: a usage error.
    let o = cli(&["mv", "--overwrite", "keep-both", &s.url("b.txt"), "e.txt"]);
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    assert!(root.join("b.txt").exists() && !root.join("e.txt").exists());
}

#[test]
fn a_read_only_server_refuses_mv_either_way() {
    let s = Server::anonymous(&["--read-only"]);
    fs::write(s.root.join("a.txt"), "A").unwrap();
    fs::write(s.root.join("b.txt"), "B").unwrap();
    for args in [&[][..], &["--overwrite", "replace"][..]] {
        let mut a = vec!["mv"];
        a.extend_from_slice(args);
        let url = s.url("a.txt");
        a.extend_from_slice(&[&url, "b.txt"]);
        let o = cli(&a);
        assert_eq!(code(&o), 6, "{args:?}: {}", stderr(&o));
        assert!(stderr(&o).contains("read-only"), "{}", stderr(&o));
    }
    assert_eq!(fs::read_to_string(s.root.join("a.txt")).unwrap(), "A");
    assert_eq!(fs::read_to_string(s.root.join("b.txt")).unwrap(), "B");
}

#[test]
fn shell_mv_refuses_an_existing_name_unless_replace_is_asked() {
    let s = Server::anonymous(&[]);
    let root = &s.root;
    fs::write(root.join("a.txt"), "A").unwrap();
    fs::write(root.join("b.txt"), "B").unwrap();

    let o = shell(&s.url("/"), "mv a.txt b.txt\nmkdir not-reached\n");
    assert_eq!(code(&o), 6, "{}", stderr(&o));
    assert!(stderr(&o).contains("already exists"), "{}", stderr(&o));
    assert_eq!(fs::read_to_string(root.join("a.txt")).unwrap(), "A");
    assert_eq!(fs::read_to_string(root.join("b.txt")).unwrap(), "B");
    assert!(!root.join("not-reached").exists());

    let o = shell(&s.url("/"), "mv --overwrite=replace a.txt b.txt\n");
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(fs::read_to_string(root.join("b.txt")).unwrap(), "A");
    assert!(!root.join("a.txt").exists());
}

#[test]
fn mkdir_of_an_existing_name_is_refused_as_existing() {
    let s = Server::anonymous(&[]);
    fs::create_dir(s.root.join("d")).unwrap();
    fs::write(s.root.join("f"), "F").unwrap();
    for name in ["d", "f"] {
        let o = cli(&["mkdir", &s.url(name)]);
        assert_eq!(code(&o), 6, "{name}: {}", stderr(&o));
        assert!(stderr(&o).ends_with(": already exists\n"), "{}", stderr(&o));
    }
    assert_eq!(fs::read_to_string(s.root.join("f")).unwrap(), "F");
}

#[test]
fn a_put_path_ending_in_a_slash_names_a_directory() {
    let s = Server::anonymous(&[]);
    fs::create_dir(s.root.join("d")).unwrap();
    let mut c = connect(&s.addr);
    for path in ["x/", "d/", "/", "d/x/", "x/."] {
        let r = c.put(path, 2, Overwrite::Replace, false, |b| {
            b[..2].copy_from_slice(b"hi");
            Ok(2)
        });
        assert!(
            matches!(r, Err(DriverError::Protocol(Error::IsADirectory))),
            "{path:?}: {r:?}"
        );
    }
    assert!(!s.root.join("x").exists(), "no file x");
    assert!(s.root.join("d").is_dir());
    assert_eq!(fs::read_dir(s.root.join("d")).unwrap().count(), 0);
    // The session goes on.
    let r = c.put("x", 2, Overwrite::Fail, false, |b| {
        b[..2].copy_from_slice(b"hi");
        Ok(2)
    });
    assert!(r.is_ok(), "{r:?}");
    drop(c);

    // The CLI's `put LOCAL URL/` still means "into that directory".
    let local = TempDir::new().unwrap();
    fs::write(local.path().join("n.txt"), "N").unwrap();
    let o = cli(&[
        "put",
        local.path().join("n.txt").to_str().unwrap(),
        &s.url("d/"),
    ]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(fs::read_to_string(s.root.join("d/n.txt")).unwrap(), "N");
}
