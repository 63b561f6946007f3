//! `--user-dirs`: each user is confined to `ROOT/USER`, made on first
//! login with mode 0700, like vsftpd's `chroot_local_user` (issue 20.13);
//! without it, users share the root.

use std::fs;
use std::os::unix::fs::PermissionsExt;

use ferry_tests::*;

/// A client command with `password` for the user its URL names.
fn as_user(password: &str, args: &[&str]) -> std::process::Output {
    let mut c = ferry();
    c.args(args).env("FERRY_PASSWORD", password);
    run(c)
}

/// Users alice (`pw-a`) and bob (`pw-b`) and a server over a fresh root
/// with `extra` options; the root's path.
fn two_users_and_a_root(extra: &[&str]) -> ((TempDir, Server), std::path::PathBuf) {
    let dir = TempDir::new().unwrap();
    let users = dir.path().join("users.txt");
    add_user(&users, "alice", "pw-a");
    add_user(&users, "bob", "pw-b");
    let root = dir.path().join("root");
    fs::create_dir(&root).unwrap();
    let mut args = vec![
        "--users",
        users.to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
    ];
    args.extend_from_slice(extra);
    let s = Server::start(&root, &args);
    ((dir, s), root)
}

#[test]
fn each_user_is_confined_to_their_own_directory() {
    let (dir, root) = two_users_and_a_root(&["--anonymous", "--user-dirs", "--allow-exec"]);
    fs::write(root.join("shared.txt"), b"top").unwrap();
    let s = &dir.1;
    let url = |user: &str, path: &str| format!("ferry://{user}@{}/{path}", s.addr);
    let local = TempDir::new().unwrap();
    let src = local.path().join("a.txt");
    fs::write(&src, b"alice's secret").unwrap();

    let o = as_user(
        "pw-a",
        &[
            "put",
            src.to_str().unwrap(),
            &url("alice", "a.txt"),
            "--quiet",
        ],
    );
    assert_eq!(code(&o), 0, "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(
        fs::read(root.join("alice/a.txt")).unwrap(),
        b"alice's secret"
    );
    let mode = fs::metadata(root.join("alice"))
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o700);

    // Alice's root is her directory: the server's top is out of reach.
    let o = as_user("pw-a", &["ls", &url("alice", "")]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("a.txt") && !out.contains("shared.txt"),
        "{out}"
    );
    let o = as_user(
        "pw-a",
        &[
            "get",
            &url("alice", "../shared.txt"),
            local.path().join("s.txt").to_str().unwrap(),
        ],
    );
    assert_ne!(code(&o), 0);

    // Bob sees nothing of hers, by any path.
    let o = as_user("pw-b", &["ls", &url("bob", "")]);
    assert_eq!(code(&o), 0, "{}", String::from_utf8_lossy(&o.stderr));
    assert!(!String::from_utf8_lossy(&o.stdout).contains("a.txt"));
    for path in [
        "a.txt",
        "../alice/a.txt",
        "/../alice/a.txt",
        "%2e%2e/alice/a.txt",
    ] {
        let back = local.path().join("stolen.txt");
        let o = as_user("pw-b", &["get", &url("bob", path), back.to_str().unwrap()]);
        assert_ne!(code(&o), 0, "{path}");
        assert!(!back.exists(), "{path}");
    }
    // Nor can his commands reach her directory.
    let o = as_user(
        "pw-b",
        &["exec", &url("bob", ""), "--", "cat", "../alice/a.txt"],
    );
    assert!(!String::from_utf8_lossy(&o.stdout).contains("secret"));
    assert_ne!(code(&o), 0);
    let o = as_user("pw-b", &["exec", &url("bob", ""), "--", "pwd"]);
    assert_eq!(code(&o), 0, "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stdout)
        .trim_end()
        .ends_with("/bob"));

    // Anonymous sessions get a directory of their own too.
    let mut c = ferry();
    c.arg("put")
        .arg(&src)
        .arg(format!("ferry://{}/anon.txt", s.addr))
        .arg("--quiet");
    assert_eq!(code(&run(c)), 0);
    assert!(root.join("anonymous/anon.txt").exists());
}

/// Without `--user-dirs` every user works in the one root (documented).
#[test]
fn without_user_dirs_users_share_the_root() {
    let (dir, root) = two_users_and_a_root(&[]);
    fs::write(root.join("a.txt"), b"alice's").unwrap();
    let s = &dir.1;
    let o = as_user("pw-b", &["ls", &format!("ferry://bob@{}/", s.addr)]);
    assert!(String::from_utf8_lossy(&o.stdout).contains("a.txt"));
}
