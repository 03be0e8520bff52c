//! TLS settings and rotation on real files (certificates made by the openssl CLI, as the
//! Jest suite's HTTPS upstreams are). Handshakes against real servers are in
//! `__test__/tls.test.js`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::test_pki::{self_signed, set_mode, tmpdir};
use crate::config::{Config, RawOptions, RawValue};

fn resolve(opts: &[(&str, &str)], env: &[(&str, &str)]) -> Result<Config, crate::ConfigError> {
    let mut o = RawOptions::new();
    for (k, v) in opts {
        o.insert(k, RawValue::String(v.to_string()));
    }
    let env: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    // As createBreaker validates: the table, then the files it names (read when a
    // breaker is built).
    let c = Config::resolve(&o, &move |k| {
        env.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone())
    })?;
    crate::breaker::load_files(&c)?;
    Ok(c)
}

#[test]
fn defaults_change_nothing() {
    let c = Config::defaults();
    assert_eq!(c.tls, crate::config::TlsConfig::default());
    assert!(super::warnings(&c.tls).is_empty());
}

#[test]
fn mtls_needs_both_halves_and_names_the_missing_one() {
    let d = tmpdir("halves");
    let (crt, _) = self_signed(&d, "client");
    let e = resolve(&[("clientCert", crt.to_str().unwrap())], &[]).unwrap_err();
    assert_eq!(e.key, "clientCert");
    assert!(e.message.contains("clientKey"), "{}", e.message);
}

#[test]
fn bad_files_name_the_option_never_the_content() {
    let d = tmpdir("bad");
    let (crt, key) = self_signed(&d, "client");
    let secret = std::fs::read_to_string(&key).unwrap();
    let body: String = secret.lines().nth(1).unwrap().to_string();
    // A key where the CA belongs, a certificate where the key belongs, inline garbage.
    let cases: Vec<(Vec<(&str, String)>, &str)> = vec![
        (vec![("caCert", key.display().to_string())], "caCert"),
        (
            vec![("caCert", d.join("missing.pem").display().to_string())],
            "caCert",
        ),
        (
            vec![
                ("clientCert", crt.display().to_string()),
                ("clientKey", crt.display().to_string()),
            ],
            "clientKey",
        ),
        (
            vec![
                ("clientCert", crt.display().to_string()),
                (
                    "clientKey",
                    format!("-----BEGIN PRIVATE KEY-----\n{body}\n-----END PRIVATE KEY-----\n"),
                ),
            ],
            "clientKey",
        ),
    ];
    for (opts, key_name) in cases {
        let o: Vec<(&str, &str)> = opts.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let e = resolve(&o, &[]).unwrap_err();
        assert_eq!(e.key, key_name, "{}", e.message);
        assert!(
            !e.message.contains(&body),
            "key material leaked: {}",
            e.message
        );
    }
    // A key that is not the certificate's.
    let (_, other_key) = self_signed(&d, "other");
    let e = resolve(
        &[
            ("clientCert", crt.to_str().unwrap()),
            ("clientKey", other_key.to_str().unwrap()),
        ],
        &[],
    )
    .unwrap_err();
    assert_eq!(e.key, "clientKey");
    assert!(e.message.contains("does not match"), "{}", e.message);
}

#[test]
fn good_material_from_files_env_and_inline_text() {
    let d = tmpdir("good");
    let (crt, key) = self_signed(&d, "client");
    let c = resolve(
        &[
            ("caCert", crt.to_str().unwrap()),
            ("caMode", "only"),
            ("tlsMinVersion", "1.3"),
        ],
        &[
            ("DNASTORE_CLIENT_CERT", crt.to_str().unwrap()),
            ("DNASTORE_CLIENT_KEY", key.to_str().unwrap()),
        ],
    )
    .unwrap();
    assert!(c.tls.ca_only);
    assert_eq!(c.tls.min_version, crate::config::TlsVersion::V13);
    assert_eq!(c.tls.files().len(), 3);
    let inline = std::fs::read_to_string(&key).unwrap();
    let c = resolve(
        &[
            ("clientCert", crt.to_str().unwrap()),
            ("clientKey", &inline),
        ],
        &[],
    )
    .unwrap();
    // Inline text is neither watched nor printed.
    assert_eq!(c.tls.files().len(), 1);
    let dbg = format!("{c:?}");
    assert!(
        !dbg.contains(inline.lines().nth(1).unwrap()),
        "Debug prints the key"
    );
    assert!(super::warnings(&c.tls).is_empty());
}

#[test]
fn a_world_readable_key_is_warned_about() {
    let d = tmpdir("mode");
    let (crt, key) = self_signed(&d, "client");
    set_mode(&key, 0o644);
    let c = resolve(
        &[
            ("clientCert", crt.to_str().unwrap()),
            ("clientKey", key.to_str().unwrap()),
        ],
        &[],
    )
    .unwrap();
    let w = super::warnings(&c.tls);
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(w[0].contains("readable by every user"), "{w:?}");
}

#[test]
fn insecure_only_from_the_environment_and_warned() {
    let e = Config::resolve(
        &RawOptions::new().set("tlsInsecure", RawValue::Bool(true)),
        &|_| None,
    )
    .unwrap_err();
    assert!(e.message.contains("unknown option"), "{}", e.message);
    let c = resolve(&[], &[("DNASTORE_TLS_INSECURE", "true")]).unwrap();
    assert!(c.tls.insecure);
    assert!(super::warnings(&c.tls)[0].contains("NOT verified"));
    let e = resolve(&[], &[("DNASTORE_TLS_INSECURE", "maybe")]).unwrap_err();
    assert_eq!(e.key, "DNASTORE_TLS_INSECURE");
}

#[test]
fn choices_are_validated_with_their_range() {
    for (opts, key, says) in [
        (vec![("caMode", "replace")], "caMode", "add or only"),
        (vec![("caMode", "only")], "caMode", "needs caCert"),
        (
            vec![("tlsMinVersion", "1.1")],
            "tlsMinVersion",
            "1.2 or 1.3",
        ),
        (
            vec![("tlsServerName", "dnastore.internal")],
            "tlsServerName",
            "IP address",
        ),
        (
            vec![
                ("baseUrl", "https://127.0.0.1:1/"),
                ("tlsServerName", "10.0.0.1"),
            ],
            "tlsServerName",
            "DNS name",
        ),
    ] {
        let e = resolve(&opts, &[]).unwrap_err();
        assert_eq!(e.key, key, "{}", e.message);
        assert!(e.message.contains(says), "{}", e.message);
    }
    let c = resolve(
        &[
            ("baseUrl", "https://127.0.0.1:1/"),
            ("tlsServerName", "DNAStore.internal"),
        ],
        &[],
    )
    .unwrap();
    assert_eq!(c.tls.server_name.as_deref(), Some("dnastore.internal"));
}

#[test]
fn proxy_urls_are_secrets() {
    let e = resolve(&[("proxy", "socks5://user:hunter2@127.0.0.1:1080")], &[]).unwrap_err();
    assert_eq!(e.key, "proxy");
    assert!(!e.message.contains("hunter2"), "{}", e.message);
    let e = resolve(&[], &[("DNASTORE_PROXY", "http//user:hunter2@x")]).unwrap_err();
    assert_eq!(e.key, "DNASTORE_PROXY");
    assert!(!e.message.contains("hunter2"), "{}", e.message);
    let c = resolve(&[("proxy", "http://user:hunter2@127.0.0.1:3128")], &[]).unwrap();
    assert!(!format!("{c:?}").contains("hunter2"));
    let c = resolve(
        &[("proxy", "env")],
        &[
            ("https_proxy", "http://u:hunter2@127.0.0.1:3128"),
            ("NO_PROXY", "localhost"),
        ],
    )
    .unwrap();
    match &c.tls.proxy {
        crate::config::ProxyMode::Env {
            https,
            http,
            no_proxy,
        } => {
            assert_eq!(https.as_ref().unwrap().port(), Some(3128));
            assert!(http.is_none());
            assert_eq!(no_proxy.as_deref(), Some("localhost"));
        }
        other => panic!("{other:?}"),
    }
    assert!(!format!("{c:?}").contains("hunter2"));
    let e = resolve(&[("proxy", "env")], &[("HTTP_PROXY", "ftp://u:hunter2@h")]).unwrap_err();
    assert_eq!(e.key, "HTTP_PROXY");
    assert!(!e.message.contains("hunter2"), "{}", e.message);
}

/// Waits (bounded) for `cond`.
async fn until(what: &str, mut cond: impl FnMut() -> bool) {
    for _ in 0..200 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_swaps_the_client_and_a_broken_file_keeps_the_old_one() {
    let d = tmpdir("rotate");
    let (crt, key) = self_signed(&d, "one");
    let (live_crt, live_key) = (d.join("tls.crt"), d.join("tls.key"));
    std::fs::copy(&crt, &live_crt).unwrap();
    std::fs::copy(&key, &live_key).unwrap();
    let mut c = resolve(
        &[
            ("clientCert", live_crt.to_str().unwrap()),
            ("clientKey", live_key.to_str().unwrap()),
        ],
        &[],
    )
    .unwrap();
    c.tls.reload = Duration::from_millis(20);
    let http = crate::breaker::http_client(&c.tls, None).unwrap();
    let slot = http.slot().clone();
    let reports = Arc::new(Mutex::new(Vec::new()));
    let r = reports.clone();
    let stop = crate::CancellationToken::new();
    crate::breaker::watch_clients(
        &tokio::runtime::Handle::current(),
        &http,
        &c.tls,
        None,
        super::TlsMetrics::new(&crate::metrics::Series::new("tls-unit-rotation")),
        stop.clone(),
        Box::new(move |x| r.lock().unwrap().push(x)),
    );
    let first = slot.current().unwrap();
    let own_first = own_client(&slot);
    // Atomic replacement (write aside, rename over), the key first, then the certificate:
    // between the two the pair does not match and must not be taken.
    let (crt2, key2) = self_signed(&d, "two");
    std::fs::copy(&key2, d.join("tmp.key")).unwrap();
    std::fs::rename(d.join("tmp.key"), &live_key).unwrap();
    tokio::time::sleep(Duration::from_millis(60)).await;
    std::fs::copy(&crt2, d.join("tmp.crt")).unwrap();
    std::fs::rename(d.join("tmp.crt"), &live_crt).unwrap();
    until("the reload", || {
        reports
            .lock()
            .unwrap()
            .contains(&super::ReloadReport::Reloaded)
    })
    .await;
    let second = slot.current().unwrap();
    assert!(!Arc::ptr_eq(&first, &second), "the client was swapped");
    assert!(
        !Arc::ptr_eq(&own_first, &own_client(&slot)),
        "the own-connections client was swapped with it"
    );
    // The mismatched intermediate state, if seen, was reported and not swapped in.
    for rep in reports.lock().unwrap().iter() {
        if let super::ReloadReport::Failed(why) = rep {
            assert!(why.contains("does not match"), "{why}");
        }
    }
    // A broken replacement: reported, counted by the caller, the current client kept.
    let n = reports.lock().unwrap().len();
    std::fs::write(
        d.join("tmp.crt"),
        "-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    std::fs::rename(d.join("tmp.crt"), &live_crt).unwrap();
    until("the failure report", || reports.lock().unwrap().len() > n).await;
    let last = reports.lock().unwrap().last().cloned().unwrap();
    match last {
        super::ReloadReport::Failed(why) => {
            assert!(why.contains("tls.crt"), "{why}");
            assert!(!why.contains("not base64"), "content leaked: {why}");
        }
        other => panic!("{other:?}"),
    }
    assert!(
        Arc::ptr_eq(&second, &slot.current().unwrap()),
        "the old material stays in use"
    );
    stop.cancel();
    drop(http);
}

#[test]
fn a_kubelet_style_symlink_swap_is_seen_even_with_identical_files() {
    // Secret volumes: tls.crt -> ..data/tls.crt, ..data -> ..<timestamp>/; an update swaps
    // ..data atomically. Same size, same content, same mtime: only the inode tells.
    let d = tmpdir("symlink");
    let (one, two) = (d.join("..2026_01"), d.join("..2026_02"));
    std::fs::create_dir_all(&one).unwrap();
    std::fs::create_dir_all(&two).unwrap();
    std::fs::write(one.join("tls.crt"), "same bytes").unwrap();
    std::fs::write(two.join("tls.crt"), "same bytes").unwrap();
    let mtime = std::fs::metadata(one.join("tls.crt"))
        .unwrap()
        .modified()
        .unwrap();
    std::fs::File::options()
        .write(true)
        .open(two.join("tls.crt"))
        .unwrap()
        .set_modified(mtime)
        .unwrap();
    std::os::unix::fs::symlink("..2026_01", d.join("..data")).unwrap();
    std::os::unix::fs::symlink("..data/tls.crt", d.join("tls.crt")).unwrap();
    let live = d.join("tls.crt");
    let before = super::stamp(&[live.as_path()]);
    assert!(before[0].is_some());
    std::os::unix::fs::symlink("..2026_02", d.join("..data_tmp")).unwrap();
    std::fs::rename(d.join("..data_tmp"), d.join("..data")).unwrap();
    assert_ne!(super::stamp(&[live.as_path()]), before);
}

/// The client a thread that drives its own runtime (the binding's JS thread) gets.
fn own_client(slot: &crate::http::ClientSlot) -> Arc<reqwest::Client> {
    let s = slot.clone();
    std::thread::spawn(move || {
        crate::own_runtime::mark_this_thread();
        s.current().unwrap()
    })
    .join()
    .unwrap()
}

#[test]
fn a_thread_with_its_own_runtime_gets_a_client_and_pool_of_its_own() {
    // hyper runs a connection on the runtime that opened it: a shared pool would let a call
    // polled on the JS thread's runtime do its socket I/O on the I/O thread (issue 18).
    let c = resolve(&[], &[]).unwrap();
    let http = crate::breaker::http_client(&c.tls, None).unwrap();
    let slot = http.slot().clone();
    let shared = slot.current().unwrap();
    let own = own_client(&slot);
    assert!(
        !Arc::ptr_eq(&shared, &own),
        "a client (and pool) of its own"
    );
    assert!(
        Arc::ptr_eq(&own, &own_client(&slot)),
        "the same one on every such thread"
    );
    let s = slot.clone();
    let other = std::thread::spawn(move || s.current().unwrap())
        .join()
        .unwrap();
    assert!(
        Arc::ptr_eq(&shared, &other),
        "other threads keep the shared one"
    );
}
