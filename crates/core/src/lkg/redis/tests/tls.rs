//! TLS: redis-server with a certificate from a CA the test makes with openssl. `rediss://`
//! with that CA (`redisCaFile`) connects; a wrong CA, or none (the system store), fails
//! with a reason that names the certificate problem.

use super::*;
use crate::redis::test_servers::{cert, require_redis, tls_server, TempDir};

fn with_ca(ca: Option<std::path::PathBuf>) -> RedisOptions {
    RedisOptions {
        ca_file: ca,
        ..RedisOptions::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs redis-server: cargo test -- --include-ignored (scripts/test.sh does)"]
async fn rediss_connects_with_the_ca_and_a_wrong_ca_fails_clearly() {
    require_redis();
    let dir = TempDir::new("tls");
    let mut srv = tls_server(&dir);
    cert(&dir, "other-ca", None);
    let port = srv.port;
    let url = format!("rediss://127.0.0.1:{port}");

    let (c, health, m) = client_with(&url, "redis-tls", with_ca(Some(dir.path("ca.crt"))));
    round_trip(&c, entry("{\"tls\":1}")).await;
    assert!(health.lock().is_empty());
    assert_eq!(m.redis_errors.get(), 0);
    assert_eq!(srv.cli(&["EXISTS", &c.key(&K)]), "1", "stored through TLS");

    for (name, ca) in [
        ("redis-tls-wrong-ca", Some(dir.path("other-ca.crt"))),
        ("redis-tls-no-ca", None),
    ] {
        let (c, health, _) = client_with(&url, name, with_ca(ca));
        assert_eq!(c.get(&K, READ_TIMEOUT).await, None);
        eventually(5, "down reported", || async { !health.lock().is_empty() }).await;
        let reason = down_reason(&health);
        assert!(reason.contains("certificate"), "{name}: {reason}");
        assert!(c.is_down());
    }
    srv.stop();
}
