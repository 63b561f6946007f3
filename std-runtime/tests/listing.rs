//! The client's bound on a listing, at the bound and one past it, against
//! the real server in-process on 127.0.0.1.

use std::time::Duration;

use ferry::{Client, FerryUrl, ListenAddr, ServeOptions, Server};

#[test]
fn a_listing_is_kept_at_the_bound_and_refused_one_past_it() {
    let dir = tempfile::tempdir().unwrap();
    for i in 0..4 {
        std::fs::write(dir.path().join(format!("f{i}")), b"x").unwrap();
    }
    let rt = tokio::runtime::Runtime::new().unwrap();
    let server = rt
        .block_on(Server::bind(ServeOptions {
            root: dir.path().to_path_buf(),
            listen: vec![ListenAddr::Tcp("127.0.0.1:0".into())],
            anonymous: true,
            ..ServeOptions::default()
        }))
        .unwrap();
    let addr = server.addresses()[0].clone();
    rt.spawn(server.run());
    let url = FerryUrl::parse(&format!("ferry://{addr}/")).unwrap();
    let mut c = Client::connect(&url, None).unwrap();
    c.login(None, None).unwrap();
    assert_eq!(c.list_at_most("/", 4).unwrap().len(), 4);
    let err = c.list_at_most("/", 3).unwrap_err();
    assert!(err.to_string().contains("more than the 3"), "{err}");
    // The session goes on after the refusal.
    assert_eq!(c.list("/").unwrap().len(), 4);
    rt.shutdown_timeout(Duration::from_secs(1));
}
