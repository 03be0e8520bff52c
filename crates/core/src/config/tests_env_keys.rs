//! An error about a setting checked against another names the setting as it was given:
//! the environment variable when the environment gave it (an operator's .env has no option
//! names), the option name otherwise, in the message and in `key` (issue 32: the operator
//! command exits naming the bad variable).

use std::collections::HashMap;

use super::*;

fn resolve(opts: &RawOptions, pairs: &[(&str, &str)]) -> ConfigError {
    let m: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Config::resolve(opts, &move |k| m.get(k).cloned()).unwrap_err()
}

#[test]
fn errors_between_settings_given_by_the_environment_name_the_variables() {
    for (pairs, key, says) in [
        (
            &[("DNASTORE_RETRY_BASE_MS", "500"), ("DNASTORE_RETRY_MAX_MS", "100")][..],
            "DNASTORE_RETRY_MAX_MS",
            "invalid DNASTORE_RETRY_MAX_MS (100 ms): must be >= DNASTORE_RETRY_BASE_MS (500 ms)",
        ),
        (
            &[("DNASTORE_RETRY_MAX_MS", "50")],
            "DNASTORE_RETRY_MAX_MS",
            "invalid DNASTORE_RETRY_MAX_MS (50 ms): must be >= retryBaseMs (100 ms)",
        ),
        (
            &[
                ("DNASTORE_CIRCUIT_ROLLING_MS", "1000"),
                ("DNASTORE_CIRCUIT_ROLLING_BUCKETS", "7"),
            ],
            "DNASTORE_CIRCUIT_ROLLING_MS",
            "invalid DNASTORE_CIRCUIT_ROLLING_MS (1000 ms): must be a multiple of DNASTORE_CIRCUIT_ROLLING_BUCKETS (7)",
        ),
        (
            &[("DNASTORE_LKG_IGNORE_HEADERS", "Authorization")],
            "DNASTORE_LKG_IGNORE_HEADERS",
            "invalid DNASTORE_LKG_IGNORE_HEADERS: authorization carries identity",
        ),
        (
            &[
                ("DNASTORE_LKG_VARY_HEADERS", "x-a"),
                ("DNASTORE_LKG_IGNORE_HEADERS", "x-a"),
            ],
            "DNASTORE_LKG_IGNORE_HEADERS",
            "invalid DNASTORE_LKG_IGNORE_HEADERS: x-a is also in DNASTORE_LKG_VARY_HEADERS",
        ),
        (
            &[("DNASTORE_LKG_TENANT_HEADER", "bad header")],
            "DNASTORE_LKG_TENANT_HEADER",
            "invalid environment variable DNASTORE_LKG_TENANT_HEADER: not a valid HTTP header name",
        ),
        (
            &[("DNASTORE_BREAKER_NAME", "has spaces")],
            "DNASTORE_BREAKER_NAME",
            "invalid environment variable DNASTORE_BREAKER_NAME: the breaker name",
        ),
        (
            &[
                ("DNASTORE_MAX_CONCURRENT", "2"),
                ("DNASTORE_CONCURRENCY_LIMIT", "adaptive"),
                ("DNASTORE_MIN_CONCURRENCY", "5"),
            ],
            "DNASTORE_MIN_CONCURRENCY",
            "invalid DNASTORE_MIN_CONCURRENCY (5): must be <= DNASTORE_MAX_CONCURRENT (2)",
        ),
        (
            &[("DNASTORE_CLIENT_CERT", "/nonexistent/client.crt")],
            "DNASTORE_CLIENT_CERT",
            "invalid environment variable DNASTORE_CLIENT_CERT: mTLS needs both clientCert and clientKey; clientKey (DNASTORE_CLIENT_KEY) is missing",
        ),
    ] {
        let e = resolve(&RawOptions::new(), pairs);
        assert_eq!(e.key, key, "{pairs:?}: {}", e.message);
        assert!(e.message.starts_with(says), "{pairs:?}: {}", e.message);
    }
}

#[test]
fn the_same_errors_given_by_options_name_the_options() {
    let n = |v: f64| RawValue::Number(v);
    for (opts, key, says) in [
        (
            RawOptions::new()
                .set("retryBaseMs", n(500.0))
                .set("retryMaxMs", n(100.0)),
            "retryMaxMs",
            "invalid retryMaxMs (100 ms): must be >= retryBaseMs (500 ms)",
        ),
        (
            RawOptions::new().set("rollingCountBuckets", n(7.0)),
            "rollingCountTimeout",
            "invalid rollingCountTimeout (10000 ms): must be a multiple of rollingCountBuckets (7)",
        ),
        (
            RawOptions::new().set("cacheIgnoreHeaders", RawValue::String("cookie".into())),
            "cacheIgnoreHeaders",
            "invalid cacheIgnoreHeaders: cookie carries identity",
        ),
        (
            RawOptions::new().set("clientKey", RawValue::String("/nonexistent/k.pem".into())),
            "clientKey",
            "invalid option `clientKey`: mTLS needs both clientCert and clientKey; clientCert (DNASTORE_CLIENT_CERT) is missing",
        ),
    ] {
        let e = resolve(&opts, &[]);
        assert_eq!(e.key, key, "{}", e.message);
        assert!(e.message.starts_with(says), "{}", e.message);
    }
}
