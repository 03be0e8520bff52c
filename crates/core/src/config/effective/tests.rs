//! The effective configuration: sources, values as `resolve` reads them, masked secrets,
//! and the same errors as `resolve`.

use std::collections::HashMap;

use super::*;
use crate::config::{option_names, RawValue};

fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let m: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    move |k| m.get(k).cloned()
}

fn effective(opts: &RawOptions, pairs: &[(&str, &str)]) -> Vec<Setting> {
    Config::effective(opts, &env(pairs)).unwrap()
}

fn get<'a>(all: &'a [Setting], option: &str) -> &'a Setting {
    all.iter()
        .find(|s| s.option == Some(option))
        .unwrap_or_else(|| panic!("no setting {option}"))
}

#[test]
fn every_option_of_the_table_once_plus_the_env_only_switch() {
    let all = effective(&RawOptions::new(), &[]);
    let mut names: Vec<&str> = all.iter().filter_map(|s| s.option).collect();
    let mut table = option_names();
    names.sort_unstable();
    table.sort_unstable();
    assert_eq!(names, table);
    let insecure = all.iter().find(|s| s.option.is_none()).unwrap();
    assert_eq!(insecure.env, &[TLS_INSECURE_ENV]);
    assert_eq!(insecure.value, Shown::Flag(false));
}

#[test]
fn defaults_say_default() {
    let all = effective(&RawOptions::new(), &[]);
    for s in &all {
        assert_eq!(s.source, Source::Default, "{:?}", s.option);
        assert!(!s.redacted);
    }
    assert_eq!(get(&all, "timeout").value, Shown::Number(3000));
    assert_eq!(get(&all, "timeout").unit, Some("ms"));
    assert_eq!(get(&all, "coalesce").value, Shown::Flag(true));
    assert_eq!(get(&all, "name").value, Shown::Text("dnastore".into()));
    assert_eq!(get(&all, "baseUrl").value, Shown::Unset);
    assert_eq!(get(&all, "varyHeaders").value, Shown::List(vec![]));
}

#[test]
fn sources_name_the_option_or_the_variable() {
    let opts = RawOptions::new()
        .set("name", RawValue::String("orders".into()))
        .set("maxAttempts", RawValue::Number(2.0));
    let all = effective(
        &opts,
        &[
            ("DNASTORE_TIMEOUT_MS", " 900 "),
            ("DNASTORE_RETRY_MAX_ATTEMPTS", "5"),
            ("DNASTORE_COALESCE", "no"),
            ("DNASTORE_OUTBOX_HEADERS", "X-Trace, x-trace ,Accept"),
            ("DNASTORE_OUTBOX", "ALL"),
            // Empty: unset, as `resolve` reads it.
            ("DNASTORE_DEADLINE_MS", ""),
        ],
    );
    let t = get(&all, "timeout");
    assert_eq!(
        (&t.value, t.source),
        (&Shown::Number(900), Source::Env("DNASTORE_TIMEOUT_MS"))
    );
    let a = get(&all, "maxAttempts");
    assert_eq!(
        (&a.value, a.source),
        (&Shown::Number(2), Source::Option("maxAttempts"))
    );
    let n = get(&all, "name");
    assert_eq!(n.source, Source::Option("name"));
    let c = get(&all, "coalesce");
    assert_eq!(
        (&c.value, c.source),
        (&Shown::Flag(false), Source::Env("DNASTORE_COALESCE"))
    );
    let h = get(&all, "outboxHeaders");
    assert_eq!(
        (&h.value, h.source),
        (
            &Shown::List(vec!["x-trace".into(), "accept".into()]),
            Source::Env("DNASTORE_OUTBOX_HEADERS")
        )
    );
    assert_eq!(get(&all, "outbox").value, Shown::Text("ALL".into()));
    assert_eq!(get(&all, "deadline").source, Source::Default);
}

#[test]
fn errors_are_resolves_own() {
    for pairs in [
        &[("DNASTORE_TIMEOUT_MS", "abc")][..],
        &[("DNASTORE_OUTBOX", "maybe")],
        &[
            ("DNASTORE_RETRY_BASE_MS", "500"),
            ("DNASTORE_RETRY_MAX_MS", "100"),
        ],
        &[("DNASTORE_LKG_REDIS_URL", "http://x")],
        &[("DNASTORE_LKG_VARY_HEADERS", "bad header")],
    ] {
        let want = Config::resolve(&RawOptions::new(), &env(pairs)).unwrap_err();
        let got = Config::effective(&RawOptions::new(), &env(pairs)).unwrap_err();
        assert_eq!(got, want);
    }
}

#[test]
fn secrets_and_credentials_are_masked() {
    let pairs = [
        ("SPIRAL_EVENT_SECRET", "s3cr3t-value"),
        (
            "DNASTORE_LKG_REDIS_URL",
            "redis://app:hunter2@127.0.0.1:6380/2",
        ),
        (
            "DNASTORE_OUTBOX_REDIS_URL",
            "redis+sentinel://:pw-out@h1:26379,h2:26379/main",
        ),
        (
            "DNASTORE_PROXY",
            "http://proxy-user:proxy-pass@127.0.0.1:3128",
        ),
        (
            "DNASTORE_URL",
            "https://api:base-pass@dnastore.internal:8443/v1",
        ),
    ];
    let all = effective(&RawOptions::new(), &pairs);
    let text = format!("{all:?}");
    for secret in [
        "s3cr3t-value",
        "hunter2",
        "pw-out",
        "proxy-user",
        "proxy-pass",
        "base-pass",
    ] {
        assert!(!text.contains(secret), "{secret} shown: {text}");
    }
    let s = get(&all, "signingSecret");
    assert_eq!(
        (&s.value, s.source, s.redacted),
        (
            &Shown::Text(REDACTED.into()),
            Source::Env("SPIRAL_EVENT_SECRET"),
            true
        )
    );
    assert_eq!(
        get(&all, "redisUrl").value,
        Shown::Text("redis://***@127.0.0.1:6380/2".into())
    );
    assert_eq!(
        get(&all, "outboxRedisUrl").value,
        Shown::Text("redis+sentinel://***@h1:26379,h2:26379/main/0".into())
    );
    assert_eq!(
        get(&all, "proxy").value,
        Shown::Text("http://***@127.0.0.1:3128/".into())
    );
    assert_eq!(
        get(&all, "baseUrl").value,
        Shown::Text("https://***@dnastore.internal:8443/v1".into())
    );
    for o in [
        "signingSecret",
        "redisUrl",
        "outboxRedisUrl",
        "proxy",
        "baseUrl",
    ] {
        assert!(get(&all, o).redacted, "{o}");
    }
}

#[test]
fn urls_without_credentials_are_not_marked() {
    let all = effective(
        &RawOptions::new(),
        &[
            ("DNASTORE_LKG_REDIS_URL", "redis://127.0.0.1:6380"),
            ("DNASTORE_PROXY", "env"),
            ("DNASTORE_URL", "http://127.0.0.1:9/"),
        ],
    );
    let r = get(&all, "redisUrl");
    assert_eq!(
        (&r.value, r.redacted),
        (&Shown::Text("redis://127.0.0.1:6380/0".into()), false)
    );
    assert_eq!(get(&all, "proxy").value, Shown::Text("env".into()));
    assert!(!get(&all, "baseUrl").redacted);
}

#[test]
fn key_text_is_masked_and_key_paths_are_shown() {
    let dir = crate::tls::test_pki::tmpdir("effective");
    let (crt, key) = crate::tls::test_pki::self_signed(&dir, "client");
    let key_text = std::fs::read_to_string(&key).unwrap();
    let crt_text = std::fs::read_to_string(&crt).unwrap();
    let inline = RawOptions::new()
        .set("clientCert", RawValue::String(crt_text.clone()))
        .set("clientKey", RawValue::String(key_text.clone()));
    let all = effective(&inline, &[]);
    let k = get(&all, "clientKey");
    assert_eq!(
        (&k.value, k.redacted),
        (&Shown::Text("(PEM text, redacted)".into()), true)
    );
    let body = key_text.lines().nth(1).unwrap();
    assert!(!format!("{all:?}").contains(body));
    assert_eq!(
        get(&all, "clientCert").value,
        Shown::Text(format!("(PEM text, {} bytes)", crt_text.len()))
    );
    let paths = [
        ("DNASTORE_CLIENT_CERT", crt.to_str().unwrap()),
        ("DNASTORE_CLIENT_KEY", key.to_str().unwrap()),
    ];
    let all = effective(&RawOptions::new(), &paths);
    let k = get(&all, "clientKey");
    assert_eq!(
        (&k.value, k.source, k.redacted),
        (
            &Shown::Text(key.display().to_string()),
            Source::Env("DNASTORE_CLIENT_KEY"),
            false
        )
    );
    std::fs::remove_dir_all(dir).unwrap();
}
