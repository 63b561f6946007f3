//! The command line's own promises, through the real binary: a refusal
//! names what was refused (the remote path as the user wrote its URL, or
//! the local file when the local side is the cause); options take their
//! values the same way everywhere (`--digest md5` and `--digest=md5`);
//! `ferry passwd` refuses names the users file cannot hold and never
//! writes through a planted temporary file; `ferry serve` takes `--users`
//! and `--anonymous` together.

use std::fs;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Output;

use ferry_core::digest::{self, Algorithm};
use ferry_tests::*;

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Runs `ferry ARGS...`.
fn ferry_run<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> Output {
    let mut c = ferry();
    c.args(args);
    run(c)
}

fn passwd(users: &Path, name: &str) -> Output {
    let mut c = ferry();
    c.args(["passwd", "--users"])
        .arg(users)
        .arg(name)
        .env("FERRY_PASSWORD", "s3cret");
    run(c)
}

fn mode(p: &Path) -> u32 {
    fs::symlink_metadata(p).unwrap().permissions().mode() & 0o777
}

#[test]
fn passwd_refuses_names_the_users_file_cannot_hold() {
    let dir = TempDir::new().unwrap();
    let users = dir.path().join("users.txt");
    for bad in [
        "#admin", " carol", "carol ", "\tbob", "a:b", "a\nb", "bell\x07", "",
    ] {
        let o = passwd(&users, bad);
        assert_eq!(code(&o), 2, "{bad:?}: {}", stderr(&o));
        assert!(stderr(&o).contains("user name"), "{bad:?}: {}", stderr(&o));
        assert!(!users.exists(), "{bad:?} was written");
    }
    // What the file can hold goes in and is read back as written: a server
    // starts with it and the user logs in.
    let o = passwd(&users, "carol smith");
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let s = Server::start(
        dir.path(),
        &[
            "--users",
            users.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
        ],
    );
    let mut c = ferry();
    c.arg("ls")
        .arg(format!("ferry://carol%20smith@{}/", s.addr))
        .env("FERRY_PASSWORD", "s3cret");
    let o = run(c);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
}

#[test]
fn passwd_never_writes_through_a_planted_temporary_file_and_leaves_mode_0600() {
    let dir = TempDir::new().unwrap();
    let users = dir.path().join("users.txt");
    let outside = dir.path().join("outside.txt");
    fs::write(&outside, "not yours\n").unwrap();
    // The names a temporary file beside users.txt might have.
    let planted = [
        "users.ferry-tmp",
        "users.txt.ferry-tmp",
        ".users.txt.ferry-tmp",
    ];
    for p in planted {
        std::os::unix::fs::symlink(&outside, dir.path().join(p)).unwrap();
    }
    let o = passwd(&users, "alice");
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(fs::read_to_string(&outside).unwrap(), "not yours\n");
    assert!(fs::symlink_metadata(&users).unwrap().is_file());
    assert!(fs::read_to_string(&users).unwrap().starts_with("alice:"));
    assert_eq!(mode(&users), 0o600);

    // Planted world-readable files at those names do not lend their mode.
    for p in planted {
        let p = dir.path().join(p);
        fs::remove_file(&p).unwrap();
        fs::write(&p, "junk").unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o644)).unwrap();
    }
    let o = passwd(&users, "bob");
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(mode(&users), 0o600);
    let text = fs::read_to_string(&users).unwrap();
    assert!(text.contains("alice:") && text.contains("bob:"), "{text}");

    // A users file someone made 0644 by hand comes back 0600.
    fs::set_permissions(&users, fs::Permissions::from_mode(0o644)).unwrap();
    let o = passwd(&users, "carol");
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(mode(&users), 0o600);
    // Nothing of ours is left beside it.
    let names: Vec<String> = fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !planted.contains(&n.as_str()))
        .collect();
    let mut names = names;
    names.sort();
    assert_eq!(names, ["outside.txt", "users.txt"]);
}

#[test]
fn refusals_name_the_remote_path_as_given_or_the_local_file_at_fault() {
    let s = Server::anonymous(&["--allow-exec"]);
    let local = TempDir::new().unwrap();
    let l = local.path();
    fs::write(s.root.join("policy.txt"), "server's\n").unwrap();
    fs::create_dir_all(s.root.join("docs")).unwrap();
    fs::write(s.root.join("docs/p1.txt"), "server's\n").unwrap();
    fs::create_dir_all(s.root.join("tree")).unwrap();
    fs::write(s.root.join("tree/b.txt"), "server's\n").unwrap();
    let p1 = l.join("p1.txt");
    fs::write(&p1, "mine\n").unwrap();
    let exists = ": already exists (use --overwrite replace or keep-both)";

    // put onto an existing remote file: the remote file, not the source.
    let mut c = ferry();
    c.arg("put").arg(&p1).arg(s.url("policy.txt"));
    let o = run(c);
    assert_eq!(code(&o), 6);
    assert_eq!(
        stderr(&o),
        format!("ferry: put {}{exists}\n", s.url("policy.txt"))
    );

    // put into a directory URL: the file under it that exists.
    let mut c = ferry();
    c.arg("put").arg(&p1).arg(s.url("docs/"));
    let o = run(c);
    assert_eq!(code(&o), 6);
    assert_eq!(
        stderr(&o),
        format!("ferry: put {}{exists}\n", s.url("docs/p1.txt"))
    );

    // put -r: the failing file.
    let tree = l.join("tree");
    fs::create_dir(&tree).unwrap();
    fs::write(tree.join("a.txt"), "a").unwrap();
    fs::write(tree.join("b.txt"), "b").unwrap();
    let mut c = ferry();
    c.args(["put", "-r"]).arg(&tree).arg(s.url("/"));
    let o = run(c);
    assert_eq!(code(&o), 6);
    assert_eq!(
        stderr(&o),
        format!("ferry: put {}{exists}\n", s.url("tree/b.txt"))
    );
    assert_eq!(
        fs::read_to_string(s.root.join("tree/b.txt")).unwrap(),
        "server's\n"
    );

    // put of a missing local file: the local file.
    let missing = l.join("missing.txt");
    let mut c = ferry();
    c.arg("put").arg(&missing).arg(s.url("x.txt"));
    let o = run(c);
    assert_eq!(code(&o), 4);
    assert!(
        stderr(&o).starts_with(&format!("ferry: put {}: ", missing.display())),
        "{}",
        stderr(&o)
    );

    // get of a missing remote file: the URL as written.
    let o = ferry_run(&["get", &s.url("nope.txt"), l.to_str().unwrap()]);
    assert_eq!(code(&o), 4);
    assert!(
        stderr(&o).starts_with(&format!("ferry: get {}: ", s.url("nope.txt"))),
        "{}",
        stderr(&o)
    );

    // get onto an existing local file: the local file.
    let o = ferry_run(&["get", &s.url("policy.txt"), p1.to_str().unwrap()]);
    assert_eq!(code(&o), 6);
    assert_eq!(stderr(&o), format!("ferry: get {}{exists}\n", p1.display()));
    assert_eq!(fs::read_to_string(&p1).unwrap(), "mine\n");

    // get -r with one local file in the way: that file.
    let out = l.join("out");
    fs::create_dir_all(out.join("docs")).unwrap();
    fs::write(out.join("docs/p1.txt"), "mine\n").unwrap();
    let o = ferry_run(&["get", "-r", &s.url("docs"), out.to_str().unwrap()]);
    assert_eq!(code(&o), 6);
    assert_eq!(
        stderr(&o),
        format!("ferry: get {}{exists}\n", out.join("docs/p1.txt").display())
    );

    // rm, mkdir, stat: the URL as written, percent-escapes and all.
    let gone = s.url("gone%20file.txt");
    let o = ferry_run(&["rm", &gone]);
    assert_eq!(code(&o), 4);
    assert!(
        stderr(&o).starts_with(&format!("ferry: rm {gone}: ")),
        "{}",
        stderr(&o)
    );
    let o = ferry_run(&["mkdir", &s.url("docs")]);
    assert_eq!(code(&o), 6);
    assert!(
        stderr(&o).starts_with(&format!("ferry: mkdir {}: ", s.url("docs"))),
        "{}",
        stderr(&o)
    );
    let o = ferry_run(&["stat", &gone]);
    assert_eq!(code(&o), 4);
    assert!(
        stderr(&o).starts_with(&format!("ferry: stat {gone}: ")),
        "{}",
        stderr(&o)
    );

    // mv: a missing source names the source; a taken target names both.
    let o = ferry_run(&["mv", &gone, "/new.txt"]);
    assert_eq!(code(&o), 4);
    assert!(
        stderr(&o).starts_with(&format!("ferry: mv {gone}: ")),
        "{}",
        stderr(&o)
    );
    for (to, want) in [("nodir/p1.txt", 4), ("../../p1.txt", 6)] {
        let o = ferry_run(&["mv", &s.url("policy.txt"), to]);
        assert_eq!(code(&o), want, "{}", stderr(&o));
        assert!(
            stderr(&o).starts_with(&format!(
                "ferry: mv {} to {}: ",
                s.url("policy.txt"),
                s.url(to)
            )),
            "{}",
            stderr(&o)
        );
    }
    assert!(s.root.join("policy.txt").exists());

    // exec: in a missing directory, and a command that fails there.
    let o = ferry_run(&["exec", &s.url("nodir"), "--", "true"]);
    assert_eq!(code(&o), 4);
    assert!(
        stderr(&o).starts_with(&format!("ferry: exec {}: ", s.url("nodir"))),
        "{}",
        stderr(&o)
    );
    let o = ferry_run(&["exec", &s.url("docs"), "--", "false"]);
    assert_eq!(code(&o), 1);
    assert!(
        stderr(&o).starts_with(&format!("ferry: exec {}: ", s.url("docs"))),
        "{}",
        stderr(&o)
    );

    // No server there: the URL.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let url = format!("ferry://{closed}/x.txt");
    let mut c = ferry();
    c.arg("put").arg(&p1).arg(&url);
    let o = run(c);
    assert_eq!(code(&o), 7);
    assert!(
        stderr(&o).starts_with(&format!("ferry: put {url}: connection failed")),
        "{}",
        stderr(&o)
    );
}

#[test]
fn digest_takes_its_value_with_a_space_or_an_equals_sign_on_every_command() {
    let s = Server::anonymous(&[]);
    let local = TempDir::new().unwrap();
    let data = random_bytes(100_000, 6);
    let src = local.path().join("f.bin");
    fs::write(&src, &data).unwrap();
    let md5 = digest::digest(Algorithm::Md5, &data).unwrap().to_string();
    let b3 = digest::digest(Algorithm::Blake3, &data)
        .unwrap()
        .to_string();
    for (i, form) in [["--digest", "md5"].as_slice(), ["--digest=md5"].as_slice()]
        .into_iter()
        .enumerate()
    {
        let name = format!("f{i}.bin");
        let mut c = ferry();
        c.args(["put", "-v", "--quiet"])
            .args(form)
            .arg(&src)
            .arg(s.url(&name));
        let o = run(c);
        assert_eq!(code(&o), 0, "put {form:?}: {}", stderr(&o));
        assert!(stderr(&o).contains("digest=md5"), "{}", stderr(&o));
        let back = local.path().join(format!("back{i}"));
        let mut c = ferry();
        c.args(["get", "-v", "--quiet"])
            .args(form)
            .arg(s.url(&name))
            .arg(&back);
        let o = run(c);
        assert_eq!(code(&o), 0, "get {form:?}: {}", stderr(&o));
        assert!(stderr(&o).contains("digest=md5"), "{}", stderr(&o));
        assert_eq!(fs::read(&back).unwrap(), data);
        // stat: the value before the URL is the value, not the URL.
        let mut c = ferry();
        c.arg("stat").args(form).arg(s.url(&name));
        let o = run(c);
        assert_eq!(code(&o), 0, "stat {form:?}: {}", stderr(&o));
        assert_eq!(stdout(&o), format!("{md5}  /{name}\n"));
        let mut c = ferry();
        c.arg("shell").args(form).arg(s.url("/"));
        let o = run(c);
        assert_eq!(code(&o), 0, "shell {form:?}: {}", stderr(&o));
    }
    // `auto` is the negotiated digest, in both forms.
    for form in [
        ["--digest", "auto"].as_slice(),
        ["--digest=auto"].as_slice(),
    ] {
        let mut c = ferry();
        c.arg("stat").args(form).arg(s.url("f0.bin"));
        let o = run(c);
        assert_eq!(stdout(&o), format!("{b3}  /f0.bin\n"), "{}", stderr(&o));
        let mut c = ferry();
        c.args(["get", "-v", "--quiet", "--overwrite", "replace"])
            .args(form)
            .arg(s.url("f0.bin"))
            .arg(local.path().join("auto"));
        let o = run(c);
        assert!(stderr(&o).contains("digest=blake3"), "{}", stderr(&o));
    }
}

#[test]
fn shell_overwrite_takes_its_value_with_a_space_or_an_equals_sign() {
    let s = Server::anonymous(&[]);
    let local = TempDir::new().unwrap();
    fs::write(local.path().join("a.txt"), "new\n").unwrap();
    fs::write(s.root.join("a.txt"), "old\n").unwrap();
    fs::write(s.root.join("b.txt"), "old\n").unwrap();
    let script = format!(
        "lcd {}\nput --overwrite replace a.txt\nput --overwrite=replace a.txt b.txt\n",
        local.path().display()
    );
    let o = shell_batch(&s.url("/"), &script);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(fs::read_to_string(s.root.join("a.txt")).unwrap(), "new\n");
    assert_eq!(fs::read_to_string(s.root.join("b.txt")).unwrap(), "new\n");
}

#[test]
fn serve_takes_users_and_anonymous_together() {
    let dir = TempDir::new().unwrap();
    let users = dir.path().join("users.txt");
    assert_eq!(code(&passwd(&users, "alice")), 0);
    let root = dir.path().join("root");
    fs::create_dir(&root).unwrap();
    fs::write(root.join("f.txt"), "x").unwrap();
    let s = Server::start(
        &root,
        &[
            "--users",
            users.to_str().unwrap(),
            "--anonymous",
            "--listen",
            "127.0.0.1:0",
        ],
    );
    let o = ferry_run(&["ls", &format!("ferry://{}/", s.addr)]);
    assert_eq!(code(&o), 0, "anonymous: {}", stderr(&o));
    assert!(stdout(&o).contains("f.txt"));
    for (pw, want) in [("s3cret", 0), ("wrong", 3)] {
        let mut c = ferry();
        c.arg("ls")
            .arg(format!("ferry://alice@{}/", s.addr))
            .env("FERRY_PASSWORD", pw);
        let o = run(c);
        assert_eq!(code(&o), want, "alice with {pw:?}: {}", stderr(&o));
    }
}

/// `ferry serve --help` states the window range the server takes and the
/// default it uses (1–1024, 1024, the same for every session), not the
/// 1–256 it once said.
#[test]
fn serve_help_states_the_real_window_range_and_default() {
    let o = ferry_run(&["serve", "--help"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let help = stdout(&o);
    let at = help.find("--window <N>").expect("a --window line");
    // The option's text, up to the next option.
    let text = &help[at..];
    let text = &text[..text[1..].find("\n  -").map_or(text.len(), |i| i + 1)];
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(text.contains("(1–1024"), "{text}");
    assert!(text.contains("[default: 1024]"), "{text}");
    assert!(text.contains("every session"), "{text}");
    assert!(!text.contains("256"), "{text}");
    // And it takes what it says.
    for (n, ok) in [("1024", true), ("1025", false), ("0", false)] {
        let o = ferry_run(&["serve", "--window", n, "--help"]);
        assert_eq!(o.status.success(), ok, "--window {n}: {}", stderr(&o));
    }
}
