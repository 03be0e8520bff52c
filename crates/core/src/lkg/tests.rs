use super::*;
use crate::config::Config;
use crate::request::prepare;
use http::HeaderMap;

fn cfg(max_entries: usize, max_bytes: u64, secret: Option<&str>) -> LkgConfig {
    let mut c = Config::defaults().lkg;
    c.max_entries = max_entries;
    c.max_bytes = max_bytes;
    c.max_entry_bytes = max_bytes;
    c.max_stale = Duration::from_secs(60);
    c.signing_secret = secret.map(str::to_string);
    c
}

fn cache(c: LkgConfig) -> LkgCache {
    LkgCache::new(
        c,
        Arc::new(super::LkgMetrics::new(&crate::metrics::Series::new(
            "lkg-unit",
        ))),
    )
    .unwrap()
}

fn key(url: &str, auth: Option<&str>) -> CacheKey {
    let h: Vec<(String, String)> = auth
        .map(|a| ("authorization".to_string(), a.to_string()))
        .into_iter()
        .collect();
    let req = prepare(None, url, None, &h, None).unwrap();
    KeyPolicy::new(&Config::defaults().lkg).key("b", &req)
}

fn put(c: &LkgCache, k: CacheKey, body: &'static [u8], at: u64) -> bool {
    share(c, k, body, at) != Stored::Rejected
}

fn share(c: &LkgCache, k: CacheKey, body: &'static [u8], at: u64) -> Stored {
    let e = c.entry(&k, Bytes::from_static(body), true, at, None);
    c.store(k, e, true)
}

#[test]
fn an_unchanged_hot_key_is_shared_through_redis_once_per_refresh_interval() {
    let c = cache(cfg(10, 1 << 20, None));
    let (a, b) = (key("http://h/a", None), key("http://h/b", None));
    let t = 1_700_000_000_000;
    let steps: [(CacheKey, &'static [u8], u64, Stored, &str); 7] = [
        (a, b"v1", 0, Stored::Share, "first sight: share"),
        (a, b"v1", 1, Stored::Local, "same body, just shared"),
        (
            a,
            b"v1",
            999,
            Stored::Local,
            "same body, within the interval",
        ),
        (b, b"v1", 2, Stored::Share, "another key is its own"),
        (a, b"v2", 500, Stored::Share, "a changed body: share now"),
        (a, b"v2", 1400, Stored::Local, "counted from the last share"),
        (a, b"v2", 1500, Stored::Share, "refresh interval elapsed"),
    ];
    for (k, body, at, want, why) in steps {
        assert_eq!(share(&c, k, body, t + at), want, "{why}");
    }
    // Served locally meanwhile with the newest copy.
    assert_eq!(
        c.lookup(&a, t + 1500, &HeaderMap::new()).unwrap().body,
        Bytes::from_static(b"v2")
    );
    // A short maxStale (the Redis TTL) refreshes at least twice per TTL.
    let mut short = cfg(10, 1 << 20, None);
    short.max_stale = Duration::from_millis(400);
    let c = cache(short);
    assert_eq!(share(&c, a, b"v1", t), Stored::Share);
    assert_eq!(share(&c, a, b"v1", t + 199), Stored::Local);
    assert_eq!(share(&c, a, b"v1", t + 200), Stored::Share);
}

#[test]
fn lru_by_entries() {
    let c = cache(cfg(2, 1 << 20, None));
    let (a, b, d) = (
        key("http://h/a", None),
        key("http://h/b", None),
        key("http://h/d", None),
    );
    put(&c, a, b"1", 0);
    put(&c, b, b"2", 0);
    assert!(c.lookup(&a, 0, &HeaderMap::new()).is_some()); // a is now most recent
    put(&c, d, b"3", 0);
    assert!(
        c.lookup(&b, 0, &HeaderMap::new()).is_none(),
        "least recently used goes first"
    );
    assert!(
        c.lookup(&a, 0, &HeaderMap::new()).is_some()
            && c.lookup(&d, 0, &HeaderMap::new()).is_some()
    );
}

#[test]
fn lru_by_bytes_and_per_entry_limit() {
    let mut conf = cfg(100, 10, None);
    conf.max_entry_bytes = 6;
    let c = cache(conf);
    let (a, b) = (key("http://h/a", None), key("http://h/b", None));
    assert!(put(&c, a, b"12345", 0));
    assert!(put(&c, b, b"123456", 0));
    assert_eq!(c.bytes(), 6, "a was evicted to fit b");
    assert!(c.lookup(&a, 0, &HeaderMap::new()).is_none());
    assert!(!put(&c, a, b"1234567", 0), "over the per-entry limit");
    assert_eq!(c.len(), 1);
}

#[test]
fn max_stale() {
    let c = cache(cfg(10, 1000, None));
    let a = key("http://h/a", None);
    put(&c, a, b"{}", 1_000);
    assert_eq!(
        c.lookup(&a, 61_000, &HeaderMap::new()).unwrap().age,
        Duration::from_secs(60)
    );
    assert!(c.lookup(&a, 61_001, &HeaderMap::new()).is_none());
}

#[test]
fn vary_isolation() {
    let c = cache(cfg(10, 1000, None));
    let alice = key("http://h/a", Some("Bearer alice"));
    let bob = key("http://h/a", Some("Bearer bob"));
    let anon = key("http://h/a", None);
    assert_ne!(alice, bob);
    put(&c, alice, b"alice", 0);
    assert!(c.lookup(&bob, 0, &HeaderMap::new()).is_none());
    assert!(c.lookup(&anon, 0, &HeaderMap::new()).is_none());
    put(&c, bob, b"bob", 0);
    assert_eq!(
        &c.lookup(&alice, 0, &HeaderMap::new()).unwrap().body[..],
        b"alice"
    );
    assert_eq!(
        &c.lookup(&bob, 0, &HeaderMap::new()).unwrap().body[..],
        b"bob"
    );
    let tenant = |t: &str| {
        let req = prepare(
            None,
            "http://h/a",
            None,
            &[("x-tenant-id".into(), t.into())],
            None,
        )
        .unwrap();
        KeyPolicy::new(&Config::defaults().lkg).key("b", &req)
    };
    assert_ne!(tenant("t1"), tenant("t2"));
}

#[test]
fn a_tampered_entry_is_dropped_and_counted() {
    let c = cache(cfg(10, 1000, Some("k")));
    let a = key("http://h/a", None);
    put(&c, a, b"{\"ok\":1}", 0);
    assert!(c.lookup(&a, 0, &HeaderMap::new()).is_some());
    c.tamper(&a);
    assert!(c.lookup(&a, 0, &HeaderMap::new()).is_none());
    assert_eq!(c.len(), 0, "dropped");
    assert_eq!(c.metrics.rejected(super::Rejected::Tampered).get(), 1);
}

#[test]
fn remote_entries_must_verify() {
    let c = cache(cfg(10, 1000, Some("k")));
    let a = key("http://h/a", None);
    let good = c.entry(&a, Bytes::from_static(b"1"), true, 5, None);
    let mut bad = good.clone();
    bad.body = Bytes::from_static(b"2");
    assert!(c.accept_remote(&a, bad, 5, &HeaderMap::new()).is_none());
    let forged_unsigned = Entry {
        mac: None,
        ..good.clone()
    };
    assert!(c
        .accept_remote(&a, forged_unsigned, 5, &HeaderMap::new())
        .is_none());
    assert!(c.accept_remote(&a, good, 5, &HeaderMap::new()).is_some());
    assert!(
        c.lookup(&a, 5, &HeaderMap::new()).is_some(),
        "kept locally once verified"
    );
}
