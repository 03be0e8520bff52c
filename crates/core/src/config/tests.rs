//! Validation of every option and variable, and the docs that list them.

use super::*;
use std::collections::HashMap;

fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let m: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    move |k| m.get(k).cloned()
}

fn resolve_env(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
    Config::resolve(&RawOptions::new(), &env(pairs))
}

#[test]
fn defaults_fit_production() {
    let c = Config::defaults();
    assert_eq!(c.timeout, Duration::from_millis(3000));
    assert_eq!(c.max_failures, 5);
    assert!(
        c.volume_threshold > 0,
        "one failure must not trip the breaker"
    );
    assert_eq!(c.retry.max_attempts, 3);
}

#[test]
fn options_win_over_env() {
    let o = RawOptions::new().set("timeout", RawValue::Number(250.0));
    let c = Config::resolve(&o, &env(&[("DNASTORE_TIMEOUT_MS", "900")])).unwrap();
    assert_eq!(c.timeout, Duration::from_millis(250));
    assert_eq!(
        resolve_env(&[("DNASTORE_TIMEOUT_MS", "900")])
            .unwrap()
            .timeout,
        Duration::from_millis(900)
    );
}

#[test]
fn every_int_env_var_rejects_garbage_naming_var_and_range() {
    for s in INT_SPECS {
        // An empty variable means unset: the default applies.
        assert!(resolve_env(&[(s.env, " ")]).is_ok());
        for bad in ["abc", "-1", "1.5", "0x10", "NaN", "99999999999999999999999"] {
            let e = resolve_env(&[(s.env, bad)]).unwrap_err();
            assert_eq!(e.key, s.env, "{bad}");
            assert!(
                e.message.contains(s.env)
                    && e.message.contains(&format!("from {} to {}", s.min, s.max)),
                "{}",
                e.message
            );
        }
        if s.min > 0 {
            assert!(resolve_env(&[(s.env, "0")]).is_err(), "{} accepts 0", s.env);
        }
        let over = (s.max + 1).to_string();
        assert!(
            resolve_env(&[(s.env, &over)]).is_err(),
            "{} accepts {over}",
            s.env
        );
    }
}

#[test]
fn options_reject_nan_strings_fractions_and_range() {
    for bad in [
        RawValue::Number(f64::NAN),
        RawValue::Number(f64::INFINITY),
        RawValue::Number(-5.0),
        RawValue::Number(2.5),
        RawValue::String("abc".into()),
        RawValue::String("3000.5".into()),
        RawValue::String("-5".into()),
        RawValue::String("1e3".into()),
        RawValue::String("0x10".into()),
        RawValue::String("".into()),
        RawValue::String("600001".into()),
        RawValue::Bool(true),
        RawValue::Other("object"),
    ] {
        let o = RawOptions::new().set("timeout", bad.clone());
        let e = Config::resolve(&o, &|_| None).unwrap_err();
        assert_eq!(e.key, "timeout");
        assert!(e.message.contains("from 1 to 600000"), "{}", e.message);
    }
}

#[test]
fn numeric_strings_are_read_like_environment_values() {
    // `timeout: process.env.DNASTORE_TIMEOUT_MS || 3000` passes a string.
    let o = RawOptions::new()
        .set("timeout", RawValue::String("3000".into()))
        .set("resetTimeout", RawValue::String(" 250 ".into()))
        .set("volumeThreshold", RawValue::String("0".into()));
    let c = Config::resolve(&o, &|_| None).unwrap();
    assert_eq!(c.timeout, Duration::from_millis(3000));
    assert_eq!(c.reset_timeout, Duration::from_millis(250));
    assert_eq!(c.volume_threshold, 0);
    // Every integer option accepts its default as text, and names itself when it cannot.
    for s in INT_SPECS {
        let ok = RawOptions::new().set(s.option, RawValue::String(s.default.to_string()));
        assert!(Config::resolve(&ok, &|_| None).is_ok(), "{}", s.option);
        let over = RawOptions::new().set(s.option, RawValue::String((s.max + 1).to_string()));
        let e = Config::resolve(&over, &|_| None).unwrap_err();
        assert_eq!(e.key, s.option);
    }
}

#[test]
fn unknown_option_is_named() {
    let o = RawOptions::new().set("timout", RawValue::Number(1.0));
    let e = Config::resolve(&o, &|_| None).unwrap_err();
    assert!(e.message.contains("unknown option `timout`"));
}

#[test]
fn base_url_must_be_http_and_errors_hide_credentials() {
    let e = resolve_env(&[("DNASTORE_URL", "not a url")]).unwrap_err();
    assert_eq!(e.key, "DNASTORE_URL");
    let e = resolve_env(&[("DNASTORE_URL", "ftp://user:hunter2@host/")]).unwrap_err();
    assert!(!e.message.contains("hunter2"));
    let c = resolve_env(&[("DNASTORE_URL", "http://127.0.0.1:9001")]).unwrap();
    assert_eq!(c.base_url.unwrap().as_str(), "http://127.0.0.1:9001/");
}

#[test]
fn cross_field_rules() {
    assert!(resolve_env(&[("DNASTORE_CIRCUIT_ROLLING_MS", "1005")]).is_err());
    assert!(resolve_env(&[
        ("DNASTORE_RETRY_BASE_MS", "500"),
        ("DNASTORE_RETRY_MAX_MS", "100")
    ])
    .is_err());
    assert!(resolve_env(&[("DNASTORE_BREAKER_NAME", "has space")]).is_err());
    assert!(resolve_env(&[("DNASTORE_COALESCE", "maybe")]).is_err());
    assert!(!resolve_env(&[("DNASTORE_COALESCE", "0")]).unwrap().coalesce);
}

#[test]
fn options_doc_and_env_example_document_every_setting() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    // The option table lives in docs/options.md (the README links to it).
    let doc = std::fs::read_to_string(root.join("docs/options.md")).expect("docs/options.md");
    let example = std::fs::read_to_string(root.join(".env.example")).expect(".env.example");
    for s in INT_SPECS {
        assert!(
            doc.contains(&format!("`{}`", s.option)),
            "docs/options.md lacks option {}",
            s.option
        );
        assert!(doc.contains(s.env), "docs/options.md lacks {}", s.env);
        assert!(
            example.contains(&format!("{}={}", s.env, s.default)),
            ".env.example lacks {}={}",
            s.env,
            s.default
        );
    }
    for s in BOOL_SPECS {
        assert!(
            doc.contains(&format!("`{}`", s.option)) && doc.contains(s.env),
            "docs/options.md lacks {}",
            s.option
        );
        assert!(
            example.contains(&format!("{}={}", s.env, s.default)),
            ".env.example lacks {}",
            s.env
        );
    }
    for s in STR_SPECS.iter().chain(LIST_SPECS) {
        assert!(
            doc.contains(&format!("`{}`", s.option)),
            "docs/options.md lacks option {}",
            s.option
        );
        for e in s.env {
            assert!(
                doc.contains(e) && example.contains(e),
                "docs/options.md/.env.example lack {e}"
            );
            // .env.example sets a variable only to its default; one without a default is
            // shown commented out (it once gave DNASTORE_URL a value it does not have).
            let set = example
                .lines()
                .find_map(|l| l.strip_prefix(&format!("{e}=")))
                .map(str::trim);
            assert_eq!(set, s.default, ".env.example sets {e} to a non-default");
        }
    }
}

#[test]
fn header_lists_accept_arrays_or_comma_strings_and_never_ignore_identity() {
    let o = RawOptions::new()
        .set(
            "varyHeaders",
            RawValue::List(vec!["Accept-Language".into(), " accept ".into()]),
        )
        .set(
            "cacheIgnoreHeaders",
            RawValue::String("x-debug, X-Debug,,x-trace-me".into()),
        );
    let c = Config::resolve(&o, &|_| None).unwrap();
    assert_eq!(c.lkg.vary_headers, ["accept-language", "accept"]);
    assert_eq!(c.lkg.ignore_headers, ["x-debug", "x-trace-me"]);
    let c = resolve_env(&[("DNASTORE_LKG_IGNORE_HEADERS", "x-a,x-b")]).unwrap();
    assert_eq!(c.lkg.ignore_headers, ["x-a", "x-b"]);

    for identity in [
        "Cookie",
        "authorization",
        "x-api-key",
        "proxy-authorization",
        "x-tenant-id",
    ] {
        let o = RawOptions::new().set("cacheIgnoreHeaders", RawValue::String(identity.into()));
        let e = Config::resolve(&o, &|_| None).unwrap_err();
        assert_eq!(e.key, "cacheIgnoreHeaders", "{identity}");
        assert!(e.message.contains("carries identity"), "{}", e.message);
    }
    let o = RawOptions::new()
        .set("tenantHeader", RawValue::String("x-org".into()))
        .set("cacheIgnoreHeaders", RawValue::String("x-org".into()));
    assert!(
        Config::resolve(&o, &|_| None).is_err(),
        "the tenant header is identity"
    );
    let both = RawOptions::new()
        .set("varyHeaders", RawValue::String("x-a".into()))
        .set("cacheIgnoreHeaders", RawValue::String("x-a".into()));
    assert!(Config::resolve(&both, &|_| None).is_err());
    let bad = RawOptions::new().set("varyHeaders", RawValue::String("ok, bad\r\nname".into()));
    let e = Config::resolve(&bad, &|_| None).unwrap_err();
    assert!(
        e.message.contains("not a valid HTTP header name") && !e.message.contains('\n'),
        "{}",
        e.message
    );
    let e = Config::resolve(
        &RawOptions::new().set("varyHeaders", RawValue::Number(1.0)),
        &|_| None,
    )
    .unwrap_err();
    assert_eq!(e.key, "varyHeaders");
}

#[test]
fn the_signing_secret_is_never_echoed_and_never_empty() {
    for v in [
        RawValue::Number(424242.0),
        RawValue::Bool(true),
        RawValue::List(vec!["hunter2".into()]),
        RawValue::Other("object"),
    ] {
        let o = RawOptions::new().set("signingSecret", v.clone());
        let e = Config::resolve(&o, &|_| None).unwrap_err();
        assert_eq!(e.key, "signingSecret");
        assert!(
            !e.message.contains("424242")
                && !e.message.contains("true")
                && !e.message.contains("hunter2"),
            "{}",
            e.message
        );
    }
    let e = Config::resolve(
        &RawOptions::new().set("signingSecret", RawValue::String(String::new())),
        &|_| None,
    )
    .unwrap_err();
    assert!(e.message.contains("must not be empty"), "{}", e.message);
    // An empty variable means unset, as for every variable.
    assert_eq!(
        resolve_env(&[("DNASTORE_LKG_SECRET", "")])
            .unwrap()
            .lkg
            .signing_secret,
        None
    );
}

#[test]
fn redis_urls_of_every_mode_validate_and_errors_hide_credentials() {
    for ok in [
        "redis://:pw@127.0.0.1:6379/1",
        "rediss://app:pw@cache.example.com:6380",
        "redis+sentinel://app:pw@10.0.0.1,10.0.0.2:26380/mymaster/0",
        "redis+cluster://app:pw@10.0.0.1:7000,10.0.0.2:7001",
    ] {
        let c = resolve_env(&[("DNASTORE_LKG_REDIS_URL", ok)]).unwrap();
        assert_eq!(c.lkg.redis_url.as_deref(), Some(ok));
    }
    let e = resolve_env(&[("DNASTORE_LKG_REDIS_URL", "redis+sentinel://u:hunter2@h")]).unwrap_err();
    assert_eq!(e.key, "DNASTORE_LKG_REDIS_URL");
    assert!(
        e.message.contains("master") && !e.message.contains("hunter2"),
        "{}",
        e.message
    );
    let o = RawOptions::new().set("redisUrl", RawValue::String("http://u:hunter2@h".into()));
    let e = Config::resolve(&o, &|_| None).unwrap_err();
    assert_eq!(e.key, "redisUrl");
    assert!(
        e.message.contains("redis+cluster://") && !e.message.contains("hunter2"),
        "{}",
        e.message
    );
}

#[test]
fn redis_timeouts_and_ca_file_are_validated() {
    let c = resolve_env(&[
        ("DNASTORE_LKG_REDIS_CONNECT_TIMEOUT_MS", "500"),
        ("DNASTORE_LKG_REDIS_RESPONSE_TIMEOUT_MS", "250"),
    ])
    .unwrap();
    assert_eq!(c.lkg.redis.connect_timeout, Duration::from_millis(500));
    assert_eq!(c.lkg.redis.response_timeout, Duration::from_millis(250));
    let d = Config::defaults();
    assert_eq!(
        (d.lkg.redis.connect_timeout, d.lkg.redis.response_timeout),
        (Duration::from_secs(2), Duration::from_secs(1))
    );

    let dir = std::env::temp_dir().join(format!("dnastore-ca-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let not_pem = dir.join("not.pem");
    std::fs::write(&not_pem, "hello").unwrap();
    let tls = ("DNASTORE_LKG_REDIS_URL", "rediss://h:6380");
    let plain = ("DNASTORE_LKG_REDIS_URL", "redis://h");
    let missing = dir.join("missing.pem").display().to_string();
    let not_pem = not_pem.display().to_string();
    for (env, says) in [
        (
            [tls, ("DNASTORE_LKG_REDIS_CA_FILE", missing.as_str())],
            "cannot read",
        ),
        (
            [tls, ("DNASTORE_LKG_REDIS_CA_FILE", not_pem.as_str())],
            "no PEM certificate",
        ),
        (
            [plain, ("DNASTORE_LKG_REDIS_CA_FILE", not_pem.as_str())],
            "needs a TLS Redis URL",
        ),
    ] {
        // The file is read when a breaker is built (`breaker/files.rs`): as createBreaker.
        let e = resolve_env(&env)
            .and_then(|c| crate::breaker::load_files(&c).map(|_| c))
            .unwrap_err();
        assert_eq!(e.key, "DNASTORE_LKG_REDIS_CA_FILE");
        assert!(e.message.contains(says), "{}", e.message);
    }
    // Without a Redis URL a CA file has nothing to verify: not an error.
    assert!(resolve_env(&[("DNASTORE_LKG_REDIS_CA_FILE", missing.as_str())]).is_ok());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn outbox_settings_validate_and_name_the_option() {
    let c = Config::defaults();
    assert_eq!(c.outbox.mode, OutboxMode::Off);
    assert_eq!(c.outbox.dir, std::path::PathBuf::from(".dnastore-outbox"));
    for (raw, mode) in [
        ("on", OutboxMode::On),
        ("ALL", OutboxMode::All),
        ("off", OutboxMode::Off),
        ("true", OutboxMode::On),
    ] {
        assert_eq!(
            resolve_env(&[("DNASTORE_OUTBOX", raw)])
                .unwrap()
                .outbox
                .mode,
            mode,
            "{raw}"
        );
    }
    let e = resolve_env(&[("DNASTORE_OUTBOX", "sometimes")]).unwrap_err();
    assert_eq!(e.key, "DNASTORE_OUTBOX");
    assert!(e.message.contains("off, on or all"), "{}", e.message);
    let e = Config::resolve(
        &RawOptions::new().set("outboxDir", RawValue::String(" ".into())),
        &|_| None,
    )
    .unwrap_err();
    assert_eq!(e.key, "outboxDir");
    let e = resolve_env(&[("DNASTORE_OUTBOX_REDIS_URL", "redis://u:hunter2@h:x")]).unwrap_err();
    assert_eq!(e.key, "DNASTORE_OUTBOX_REDIS_URL");
    assert!(!e.message.contains("hunter2"), "{}", e.message);
    let c = resolve_env(&[("DNASTORE_OUTBOX_HEADERS", "X-Signature, authorization")]).unwrap();
    assert_eq!(c.outbox.headers, ["x-signature", "authorization"]);
}

#[test]
fn the_fleet_outbox_settings_are_validated_without_echoing_the_url() {
    let e = resolve_env(&[("DNASTORE_OUTBOX_REDIS_URL", "redis://u:hunter2@h/x")]).unwrap_err();
    assert_eq!(e.key, "DNASTORE_OUTBOX_REDIS_URL");
    assert!(e.message.contains("database"), "{}", e.message);
    assert!(!e.message.contains("hunter2"), "{}", e.message);
    let c = resolve_env(&[
        ("DNASTORE_OUTBOX_REDIS_URL", "redis://:pw@127.0.0.1:6379/2"),
        ("DNASTORE_OUTBOX_CLAIM_IDLE_MS", "1500"),
        ("DNASTORE_LKG_REDIS_RESPONSE_TIMEOUT_MS", "700"),
    ])
    .unwrap();
    assert_eq!(c.outbox.claim_idle, std::time::Duration::from_millis(1500));
    assert_eq!(
        c.outbox.redis.response_timeout,
        std::time::Duration::from_millis(700),
        "the table's Redis timeouts apply to the outbox's Redis too"
    );
    let e = resolve_env(&[("DNASTORE_OUTBOX_CLAIM_IDLE_MS", "50")]).unwrap_err();
    assert!(e.message.contains("from 100 to 3600000"), "{}", e.message);
}

#[test]
fn bulkhead_and_slow_call_settings_are_off_by_default_and_validated() {
    let c = Config::defaults();
    assert_eq!(c.limit, None);
    assert_eq!(c.slow_calls.duration, None);
    let c = resolve_env(&[
        ("DNASTORE_MAX_CONCURRENT", "64"),
        ("DNASTORE_MAX_QUEUED", "10"),
        ("DNASTORE_QUEUE_TIMEOUT_MS", "50"),
        ("DNASTORE_CONCURRENCY_LIMIT", "adaptive"),
        ("DNASTORE_MIN_CONCURRENCY", "4"),
        ("DNASTORE_CIRCUIT_SLOW_CALL_MS", "1000"),
        ("DNASTORE_CIRCUIT_SLOW_CALL_RATE", "60"),
    ])
    .unwrap();
    assert_eq!(
        c.limit,
        Some(LimitConfig {
            max_concurrent: 64,
            max_queued: 10,
            queue_timeout: Duration::from_millis(50),
            kind: LimitKind::Adaptive { min: 4 },
        })
    );
    assert_eq!(c.slow_calls.duration, Some(Duration::from_millis(1000)));
    assert_eq!(c.slow_calls.rate_threshold, 60);

    let e = resolve_env(&[("DNASTORE_CONCURRENCY_LIMIT", "adaptive")]).unwrap_err();
    assert_eq!(e.key, "DNASTORE_CONCURRENCY_LIMIT");
    assert!(e.message.contains("maxConcurrent"), "{}", e.message);
    let o = RawOptions::new()
        .set("concurrencyLimit", RawValue::String("lifo".into()))
        .set("maxConcurrent", RawValue::Number(8.0));
    let e = Config::resolve(&o, &env(&[])).unwrap_err();
    assert_eq!(e.key, "concurrencyLimit");
    assert!(e.message.contains("fixed or adaptive"), "{}", e.message);
    let o = RawOptions::new()
        .set("concurrencyLimit", RawValue::String("adaptive".into()))
        .set("maxConcurrent", RawValue::Number(8.0))
        .set("minConcurrency", RawValue::Number(9.0));
    let e = Config::resolve(&o, &env(&[])).unwrap_err();
    assert_eq!(e.key, "minConcurrency");
    assert!(e.message.contains("<= maxConcurrent (8)"), "{}", e.message);
    let e = resolve_env(&[("DNASTORE_MAX_QUEUED", "-1")]).unwrap_err();
    assert_eq!(e.key, "DNASTORE_MAX_QUEUED");
    let e = resolve_env(&[("DNASTORE_CIRCUIT_SLOW_CALL_RATE", "0")]).unwrap_err();
    assert!(e.message.contains("from 1 to 100"), "{}", e.message);
    // The bulkhead's other settings, given without the bulkhead (or minConcurrency without
    // the adaptive limit), are errors naming what they need, never silently ignored.
    for (k, v) in [
        ("DNASTORE_MAX_QUEUED", "10"),
        ("DNASTORE_QUEUE_TIMEOUT_MS", "50"),
        ("DNASTORE_MIN_CONCURRENCY", "4"),
    ] {
        let e = resolve_env(&[(k, v)]).unwrap_err();
        assert_eq!(e.key, k);
        assert!(e.message.contains("maxConcurrent"), "{}", e.message);
    }
    let o = RawOptions::new().set("maxQueued", RawValue::Number(5.0));
    assert_eq!(Config::resolve(&o, &env(&[])).unwrap_err().key, "maxQueued");
    let e = resolve_env(&[
        ("DNASTORE_MAX_CONCURRENT", "8"),
        ("DNASTORE_MIN_CONCURRENCY", "4"),
    ])
    .unwrap_err();
    assert_eq!(e.key, "DNASTORE_MIN_CONCURRENCY");
    assert!(e.message.contains("adaptive"), "{}", e.message);
    assert!(resolve_env(&[
        ("DNASTORE_MAX_CONCURRENT", "8"),
        ("DNASTORE_MAX_QUEUED", "4"),
        ("DNASTORE_QUEUE_TIMEOUT_MS", "20"),
    ])
    .is_ok());
}

#[test]
fn the_fleet_circuit_needs_redis_and_a_quorum_in_range() {
    assert_eq!(Config::defaults().fleet, None, "off by default");
    // On without redisUrl: ECONFIG naming the option and what it needs.
    let e = Config::resolve(
        &RawOptions::new().set("fleetCircuit", RawValue::String("on".into())),
        &|_| None,
    )
    .unwrap_err();
    assert_eq!(e.key, "fleetCircuit");
    assert!(e.message.contains("needs redisUrl"), "{}", e.message);
    let e = resolve_env(&[("DNASTORE_FLEET_CIRCUIT", "on")]).unwrap_err();
    assert_eq!(e.key, "DNASTORE_FLEET_CIRCUIT");
    let e = resolve_env(&[("DNASTORE_FLEET_CIRCUIT", "sometimes")]).unwrap_err();
    assert_eq!(e.key, "DNASTORE_FLEET_CIRCUIT");
    assert!(e.message.contains("off or on"), "{}", e.message);
    // Every form redisUrl takes.
    for url in [
        "redis://127.0.0.1:6379",
        "rediss://u:pw@redis.internal:6380/1",
        "redis+sentinel://127.0.0.1:26379,127.0.0.1:26380/mymaster",
        "redis+cluster://127.0.0.1:7000,127.0.0.1:7001",
    ] {
        let c = resolve_env(&[
            ("DNASTORE_FLEET_CIRCUIT", "on"),
            ("DNASTORE_LKG_REDIS_URL", url),
        ])
        .unwrap();
        assert_eq!(c.fleet, Some(FleetConfig { quorum: 2 }), "{url}");
    }
    let c = resolve_env(&[
        ("DNASTORE_FLEET_CIRCUIT", "on"),
        ("DNASTORE_LKG_REDIS_URL", "redis://127.0.0.1:6379"),
        ("DNASTORE_FLEET_QUORUM", "3"),
    ])
    .unwrap();
    assert_eq!(c.fleet, Some(FleetConfig { quorum: 3 }));
    let e = resolve_env(&[("DNASTORE_FLEET_QUORUM", "0")]).unwrap_err();
    assert_eq!(e.key, "DNASTORE_FLEET_QUORUM");
    assert!(e.message.contains("from 1 to 1000"), "{}", e.message);
    // Off: the quorum is still validated (a typo is not silently kept for later).
    assert!(resolve_env(&[("DNASTORE_FLEET_QUORUM", "x")]).is_err());
}
