//! TLS: redis-server with a certificate from a CA the test makes with openssl. `rediss://`
//! with that CA (`redisCaFile`) connects; a wrong CA, or none (the system store), fails
//! with a reason that names the certificate problem.

use std::process::Command;

use super::*;
use crate::redis::test_servers::{free_port, require_redis, Server, TempDir};

fn openssl(dir: &TempDir, args: &[&str]) {
    let out = Command::new("openssl")
        .current_dir(&dir.0)
        .args(args)
        .output()
        .expect("openssl (apt-get install openssl)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `<name>.crt`/`.key`: a CA; with `signer`, a server certificate for 127.0.0.1 it signed.
fn cert(dir: &TempDir, name: &str, signer: Option<&str>) {
    let (key, crt) = (format!("{name}.key"), format!("{name}.crt"));
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    match signer {
        None => {
            let subj = format!("/CN={name}");
            let mut a = vec![
                "req", "-x509", "-days", "1", "-subj", &subj, "-keyout", &key, "-out", &crt,
            ];
            a.extend(ec);
            openssl(dir, &a);
        }
        Some(ca) => {
            let csr = format!("{name}.csr");
            let mut a = vec![
                "req",
                "-subj",
                "/CN=127.0.0.1",
                "-keyout",
                &key,
                "-out",
                &csr,
            ];
            a.extend(ec);
            openssl(dir, &a);
            std::fs::write(
                dir.path("ext.cnf"),
                "subjectAltName=IP:127.0.0.1,DNS:localhost\n",
            )
            .unwrap();
            let (ca_crt, ca_key) = (format!("{ca}.crt"), format!("{ca}.key"));
            openssl(
                dir,
                &[
                    "x509",
                    "-req",
                    "-days",
                    "1",
                    "-in",
                    &csr,
                    "-CA",
                    &ca_crt,
                    "-CAkey",
                    &ca_key,
                    "-CAcreateserial",
                    "-extfile",
                    "ext.cnf",
                    "-out",
                    &crt,
                ],
            );
        }
    }
}

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
    cert(&dir, "ca", None);
    cert(&dir, "server", Some("ca"));
    cert(&dir, "other-ca", None);
    let p = |f: &str| dir.path(f).display().to_string();
    let port = free_port();
    let mut srv = Server::start_on(
        port,
        &[
            "--tls-port",
            &port.to_string(),
            "--tls-cert-file",
            &p("server.crt"),
            "--tls-key-file",
            &p("server.key"),
            "--tls-ca-cert-file",
            &p("ca.crt"),
            "--tls-auth-clients",
            "no",
        ],
    );
    srv.cli_args = vec!["--tls".into(), "--cacert".into(), p("ca.crt")];
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
