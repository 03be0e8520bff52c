//! An ACL user limited to the LKG's keys and commands: it works; a wrong password is a
//! clear error that does not contain the password.

use super::*;
use crate::redis::test_servers::{require_redis, Server};

/// The smallest grant the shared LKG needs (docs/fleet.md: Shared LKG with Redis).
const GRANT: &[&str] = &[
    "ACL",
    "SETUSER",
    "dnastore",
    "on",
    ">pw-hunter2",
    "resetkeys",
    "~dnastore:*",
    "resetchannels",
    "-@all",
    "+get",
    "+set",
    "+ping",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs redis-server: cargo test -- --include-ignored (scripts/test.sh does)"]
async fn a_user_limited_to_dnastore_keys_works_and_a_wrong_password_says_so_without_it() {
    require_redis();
    let srv = Server::start(&[]);
    assert_eq!(srv.cli(GRANT), "OK");
    let url = |pw: &str| format!("redis://dnastore:{pw}@127.0.0.1:{}", srv.port);

    let (c, health, m) = client(&url("pw-hunter2"), "redis-acl");
    round_trip(&c, entry("{\"acl\":1}")).await;
    assert!(health.lock().is_empty());
    assert_eq!(m.redis_errors.get(), 0);
    // The grant really is narrow: the same user cannot touch another key.
    let other = srv.cli(&[
        "--user",
        "dnastore",
        "--pass",
        "pw-hunter2",
        "SET",
        "other",
        "1",
    ]);
    assert!(other.contains("NOPERM"), "{other}");

    let (bad, health, _) = client(&url("not-hunter2"), "redis-acl-bad");
    assert_eq!(bad.get(&K, READ_TIMEOUT).await, None);
    eventually(5, "down reported", || async { !health.lock().is_empty() }).await;
    let reason = down_reason(&health);
    assert!(reason.contains("authentication failed"), "{reason}");
    assert!(
        !reason.contains("hunter2") && !reason.contains("dnastore:"),
        "{reason}"
    );
}
