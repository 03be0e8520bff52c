//! The mTLS identity check (`identity.rs`): an X.509 v1 client certificate with its own key
//! is accepted (issue 25: "does not match" for a matching key, because rustls' check parses
//! the certificate with webpki, which refuses v1), and a key that is not the certificate's
//! is refused as before, v1 or v3. The handshake with a v1 certificate is in
//! `__test__/tls.test.js` (Node's https server, OpenSSL, verifies it).

use std::path::Path;

use super::test_pki::{ca, leaf, leaf_v1, tmpdir};
use crate::config::{PemSource, TlsConfig, TlsInput};

fn with_identity(cert: &Path, key: &Path) -> TlsConfig {
    TlsConfig {
        client_cert: Some(PemSource::File(cert.to_path_buf())),
        client_key: Some(PemSource::File(key.to_path_buf())),
        ..TlsConfig::default()
    }
}

fn version(cert: &Path) -> String {
    let out = std::process::Command::new("openssl")
        .args(["x509", "-noout", "-text", "-in"])
        .arg(cert)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    text.lines()
        .find(|l| l.trim_start().starts_with("Version:"))
        .unwrap_or_default()
        .trim()
        .to_string()
}

#[test]
fn a_v1_client_certificate_with_its_own_key_is_accepted() {
    let d = tmpdir("id-v1");
    let client_ca = ca(&d, "client-ca");
    let v1 = leaf_v1(&d, &client_ca, "client-v1");
    assert!(
        version(&v1.0).starts_with("Version: 1"),
        "{}",
        version(&v1.0)
    );
    let m = super::load(&with_identity(&v1.0, &v1.1));
    assert!(m.is_ok(), "{:?}", m.err());
    let m = m.unwrap();
    assert!(m.identity.is_some());
    // And a client is built with it (the check reqwest's Identity made refused it too).
    let tls = with_identity(&v1.0, &v1.1);
    let rustls = super::client_config(&tls, &m).unwrap();
    assert!(crate::http::build_clients(rustls, &tls, None).is_ok());
}

#[test]
fn a_key_that_is_not_the_certificates_is_refused_v1_or_v3() {
    let d = tmpdir("id-mismatch");
    let client_ca = ca(&d, "client-ca");
    let v1 = leaf_v1(&d, &client_ca, "client-v1");
    let v3 = leaf(&d, &client_ca, "client-v3", "clientAuth", None);
    assert!(
        version(&v3.0).starts_with("Version: 3"),
        "{}",
        version(&v3.0)
    );
    for (cert, key) in [(&v1.0, &v3.1), (&v3.0, &v1.1)] {
        let e = super::load(&with_identity(cert, key))
            .err()
            .expect("refused");
        assert_eq!(e.which, TlsInput::Key);
        assert!(e.message.contains("does not match"), "{}", e.message);
    }
    // Matching pairs of both versions load.
    for (cert, key) in [(&v1.0, &v1.1), (&v3.0, &v3.1)] {
        assert!(super::load(&with_identity(cert, key)).is_ok());
    }
}

#[test]
fn the_public_key_is_found_in_v1_and_v3_certificates_of_both_key_types() {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let d = tmpdir("id-spki");
    let client_ca = ca(&d, "client-ca");
    // An RSA v1 leaf too: a 2048-bit key and an RSA CA.
    let run = |args: &[&str]| {
        let ok = std::process::Command::new("openssl")
            .args(args)
            .current_dir(&d)
            .output()
            .unwrap()
            .status
            .success();
        assert!(ok, "openssl {args:?}");
    };
    run(&[
        "req", "-nodes", "-newkey", "rsa:2048", "-subj", "/CN=rsa", "-keyout", "rsa.key", "-out",
        "rsa.csr",
    ]);
    run(&[
        "x509", "-req", "-in", "rsa.csr", "-signkey", "rsa.key", "-days", "1", "-out", "rsa.crt",
    ]);
    let pairs = [
        leaf_v1(&d, &client_ca, "ec-v1"),
        leaf(&d, &client_ca, "ec-v3", "clientAuth", None),
        (d.join("rsa.crt"), d.join("rsa.key")),
    ];
    for (crt, key) in &pairs {
        let cert = CertificateDer::from_pem_file(crt).unwrap();
        let key = PrivateKeyDer::from_pem_file(key).unwrap();
        let signing = rustls::crypto::ring::sign::any_supported_type(&key).unwrap();
        let spki = super::subject_public_key_info(&cert).expect("found");
        assert_eq!(
            spki,
            signing.public_key().unwrap().as_ref(),
            "{}",
            crt.display()
        );
    }
    assert!(version(&pairs[2].0).starts_with("Version: 1"));
}
