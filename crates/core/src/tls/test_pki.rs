//! Test certificates made by the openssl CLI (as the Jest suite's are): self-signed pairs,
//! CAs and leaves they sign.

use std::path::{Path, PathBuf};
use std::process::Command;

pub fn tmpdir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("dnastore-tls-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn openssl(args: &[&str], dir: &Path) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("the openssl CLI makes the test certificates");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

const P256: [&str; 4] = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"];

/// A self-signed P-256 certificate and its key (mode 0600): `name.crt`, `name.key`.
pub fn self_signed(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let subj = format!("/CN={name}");
    let (crt, key) = (format!("{name}.crt"), format!("{name}.key"));
    let mut args = vec!["req", "-x509", "-nodes", "-days", "1", "-subj", &subj];
    args.extend(P256);
    args.extend(["-keyout", &key, "-out", &crt]);
    openssl(&args, dir);
    set_mode(&dir.join(&key), 0o600);
    (dir.join(crt), dir.join(key))
}

/// A CA certificate and key.
pub fn ca(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let subj = format!("/CN={name}");
    let (crt, key) = (format!("{name}.crt"), format!("{name}.key"));
    let mut args = vec!["req", "-x509", "-nodes", "-days", "1", "-subj", &subj];
    args.extend(P256);
    args.extend(["-keyout", &key, "-out", &crt]);
    args.extend(["-addext", "basicConstraints=critical,CA:TRUE"]);
    args.extend(["-addext", "keyUsage=critical,keyCertSign,cRLSign"]);
    openssl(&args, dir);
    (dir.join(crt), dir.join(key))
}

/// A leaf signed by `ca`: `usage` serverAuth (for `san`) or clientAuth.
pub fn leaf(
    dir: &Path,
    ca: &(PathBuf, PathBuf),
    name: &str,
    usage: &str,
    san: Option<&str>,
) -> (PathBuf, PathBuf) {
    signed(dir, ca, name, Some((usage, san)))
}

/// An X.509 v1 leaf signed by `ca`: `openssl x509 -req` without `-extfile`, the quick way
/// to sign a client certificate (no extensions, so no version 3).
pub fn leaf_v1(dir: &Path, ca: &(PathBuf, PathBuf), name: &str) -> (PathBuf, PathBuf) {
    signed(dir, ca, name, None)
}

fn signed(
    dir: &Path,
    ca: &(PathBuf, PathBuf),
    name: &str,
    v3: Option<(&str, Option<&str>)>,
) -> (PathBuf, PathBuf) {
    let subj = format!("/CN={name}");
    let (crt, key, csr, ext) = (
        format!("{name}.crt"),
        format!("{name}.key"),
        format!("{name}.csr"),
        format!("{name}.ext"),
    );
    let mut args = vec!["req", "-nodes", "-subj", &subj];
    args.extend(P256);
    args.extend(["-keyout", &key, "-out", &csr]);
    openssl(&args, dir);
    let (ca_crt, ca_key) = (ca.0.to_str().unwrap(), ca.1.to_str().unwrap());
    let mut args = vec![
        "x509",
        "-req",
        "-in",
        &csr,
        "-CA",
        ca_crt,
        "-CAkey",
        ca_key,
        "-CAcreateserial",
        "-days",
        "1",
        "-out",
        &crt,
    ];
    if let Some((usage, san)) = v3 {
        let mut lines = format!("basicConstraints=CA:FALSE\nextendedKeyUsage={usage}\n");
        if let Some(san) = san {
            lines.push_str(&format!("subjectAltName={san}\n"));
        }
        std::fs::write(dir.join(&ext), lines).unwrap();
        args.extend(["-extfile", &ext]);
    }
    openssl(&args, dir);
    set_mode(&dir.join(&key), 0o600);
    (dir.join(crt), dir.join(key))
}

pub fn set_mode(p: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}
