//! The operator's side: reads of a store a process holds, changes refused while it holds
//! it and made once it is free, credentials never shown, the signature check; the fleet's
//! through a real redis-server.

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Method};
use url::Url;

use super::*;
use crate::config::RawValue;
use crate::error::FailureKind;
use crate::outbox::sqlite::NewRow;
use crate::outbox::tests::{breaker, config, write, Dir};
use crate::redis::test_servers::{require_redis, Server};
use crate::test_support::{eventually, Script, Step};

fn a_write(id: &str, created: u64) -> Write {
    let h = |k: &str, v: &str| {
        (
            HeaderName::from_bytes(k.as_bytes()).unwrap(),
            HeaderValue::from_str(v).unwrap(),
        )
    };
    Write {
        id: id.into(),
        method: Method::PUT,
        url: Url::parse(&format!("http://u:p@127.0.0.1:9/api/sigils/{id}?token=t")).unwrap(),
        headers: vec![
            h("content-type", "application/json"),
            h("idempotency-key", &format!("key-{id}")),
            h("x-tenant-id", "acme"),
            h("authorization", "Bearer very-secret"),
            h("x-api-key", "also-secret"),
        ],
        body: Bytes::from(format!("{{\"sigil\":\"{id}\"}}")),
        idempotency_key: format!("key-{id}"),
        ordering_key: None,
        created_at_ms: created,
    }
}

fn row(w: &Write, secret: Option<&str>) -> NewRow {
    let blob = w.encode();
    NewRow {
        id: w.id.clone(),
        ordering_key: None,
        created_at_ms: w.created_at_ms,
        size: w.size(),
        mac: secret.and_then(|s| Write::mac(&blob, s)),
        blob,
    }
}

fn embedded(name: &str, dir: &Dir, secret: Option<&str>) -> OutboxAdmin {
    let opts: Vec<(&str, RawValue)> = secret
        .map(|s| ("signingSecret", RawValue::String(s.into())))
        .into_iter()
        .collect();
    OutboxAdmin::new(&config(name, dir, &opts)).unwrap()
}

#[tokio::test]
async fn reads_a_held_store_and_changes_it_only_once_it_is_free() {
    let dir = Dir::new("admin-held");
    let held = SqliteStore::open(&dir.0, "adm").unwrap().store;
    held.append(row(&a_write("a", 1_000), None)).unwrap();
    let b = held.append(row(&a_write("b", 2_000), None)).unwrap();
    held.bury(
        b,
        1,
        "rejected",
        Some(422),
        Some(b"bad sigil".to_vec()),
        3_000,
    )
    .unwrap();
    let admin = embedded("adm", &dir, None);
    assert_eq!(admin.kind(), "sqlite");
    assert!(admin.location().ends_with("adm.outbox.sqlite"));

    let st = admin.stats(5_000).await.unwrap();
    assert_eq!(
        st,
        AdminStats {
            entries: 1,
            bytes: a_write("a", 0).size(),
            dead_letters: 1,
            oldest_age: Some(Duration::from_millis(4_000)),
            in_flight: None,
        }
    );
    let listed = admin.list(10, false).await.unwrap();
    assert_eq!(listed.len(), 1);
    let (l, shown) = &listed[0];
    assert_eq!(
        (l.id.as_str(), l.method.as_str(), l.url.as_str()),
        ("a", "PUT", "http://127.0.0.1:9/api/sigils/a")
    );
    assert_eq!(l.idempotency_key, "key-a");
    assert!(shown.is_none(), "no body unless asked");
    let dead = admin.dead_letters(10, false).await.unwrap();
    assert_eq!(
        (
            dead[0].0.id.as_str(),
            dead[0].0.reason.as_str(),
            dead[0].0.status
        ),
        ("b", "rejected", Some(422))
    );
    assert_eq!(dead[0].0.answer.as_deref(), Some("bad sigil"));

    // Changes are refused while another holder has the store, saying what to do instead.
    for e in [
        admin.retry("b", 6_000).await.unwrap_err(),
        admin.discard("a").await.unwrap_err(),
    ] {
        assert!(e.0.contains("held by a running process"), "{e}");
        assert!(e.0.contains("or stop it and run this again"), "{e}");
    }
    assert_eq!(held.dead_count(), 1);
    held.close();

    assert!(admin.retry("b", 6_000).await.unwrap());
    assert!(
        !admin.retry("b", 6_000).await.unwrap(),
        "no dead letter b now"
    );
    assert!(admin.discard("a").await.unwrap());
    assert!(!admin.discard("nope").await.unwrap());
    // The store is released after each change, and holds what they did.
    let o = SqliteStore::open(&dir.0, "adm").unwrap();
    let ids: Vec<_> = o.pending.iter().map(|m| m.id.as_str()).collect();
    assert_eq!((ids, o.dead), (vec!["b"], 0));
    assert_eq!(
        o.pending[0].created_at_ms, 6_000,
        "its age counts from the retry"
    );
    o.store.close();
}

#[tokio::test]
async fn bodies_only_when_asked_and_never_a_credential() {
    let dir = Dir::new("admin-bodies");
    let s = SqliteStore::open(&dir.0, "adm").unwrap().store;
    s.append(row(&a_write("a", 1), None)).unwrap();
    let b = s.append(row(&a_write("b", 1), None)).unwrap();
    s.bury(b, 0, "expired", None, None, 2).unwrap();
    let admin = embedded("adm", &dir, None);
    let listed = admin.list(10, true).await.unwrap();
    let dead = admin.dead_letters(10, true).await.unwrap();
    for shown in [&listed[0].1, &dead[0].1] {
        let r = shown.as_ref().unwrap();
        let headers: Vec<(&str, &str)> = r
            .headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let id = if std::ptr::eq(shown, &listed[0].1) {
            "a"
        } else {
            "b"
        };
        assert_eq!(
            headers,
            [
                ("content-type", "application/json"),
                ("idempotency-key", format!("key-{id}").as_str()),
                ("x-tenant-id", HIDDEN),
                ("authorization", HIDDEN),
                ("x-api-key", HIDDEN),
            ]
        );
        assert_eq!(r.body, format!("{{\"sigil\":\"{id}\"}}"));
    }
    let text = format!("{listed:?}{dead:?}");
    for secret in ["very-secret", "also-secret", "acme", "token=t", "u:p@"] {
        assert!(!text.contains(secret), "{secret}: {text}");
    }
    s.close();
}

#[tokio::test]
async fn a_missing_store_is_an_error_and_is_not_created() {
    let dir = Dir::new("admin-missing");
    let admin = embedded("nobody", &dir, None);
    for e in [
        admin.stats(0).await.unwrap_err(),
        admin.list(1, false).await.unwrap_err(),
        admin.retry("x", 0).await.unwrap_err(),
        admin.discard("x").await.unwrap_err(),
    ] {
        assert!(e.0.contains("no such file"), "{e}");
    }
    assert!(!dir.0.exists(), "nothing created");
}

#[tokio::test]
async fn the_signature_check_names_writes_another_secret_signed() {
    let dir = Dir::new("admin-verify");
    let s = SqliteStore::open(&dir.0, "adm").unwrap().store;
    for i in 0..3 {
        s.append(row(&a_write(&format!("w{i}"), 1), Some("old-secret-x1")))
            .unwrap();
    }
    assert_eq!(
        embedded("adm", &dir, None).unverified().await.unwrap(),
        None
    );
    assert_eq!(
        embedded("adm", &dir, Some("old-secret-x1"))
            .unverified()
            .await
            .unwrap(),
        None
    );
    let msg = embedded("adm", &dir, Some("new-secret-x2"))
        .unverified()
        .await
        .unwrap()
        .unwrap();
    assert!(msg.starts_with("3 of the 3 oldest queued writes"), "{msg}");
    assert!(!msg.contains("secret-x"), "{msg}");
    s.close();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs redis-server: cargo test -- --include-ignored (scripts/test.sh does)"]
async fn the_fleets_queue_through_redis() {
    require_redis();
    let redis = Server::start(&[]);
    let url = format!("redis://127.0.0.1:{}", redis.port);
    let dir = Dir::new("admin-fleet");
    let fleet = [
        ("outboxRedisUrl", RawValue::String(url.clone())),
        ("resetTimeout", RawValue::Number(50.0)),
        ("outboxHeaders", RawValue::String("authorization".into())),
    ];
    // The live attempts fail (queued); delivery: the first is refused (a dead letter),
    // then DNAStore is down again.
    let s = Script::new(vec![
        Step::Fail(FailureKind::ConnectionRefused),
        Step::Fail(FailureKind::ConnectionRefused),
        Step::Reply(422, "application/json", "{\"error\":\"bad\"}"),
        Step::Fail(FailureKind::ConnectionRefused),
    ]);
    let b = breaker(config("adm-fleet", &dir, &fleet), &s);
    let auth = [("authorization", "Bearer fleet-secret")];
    write(&b, "POST", "/api/sigils", &auth).await;
    let ob = b.outbox().unwrap().clone();
    eventually(10, "one dead letter", || async {
        ob.dead_letters(10).await.unwrap().len() == 1
    })
    .await;
    b.close();

    let admin = OutboxAdmin::new(&config("adm-fleet", &dir, &fleet)).unwrap();
    assert_eq!(admin.kind(), "redis");
    assert_eq!(admin.location(), format!("{url}/0"));
    let st = admin.stats(u64::MAX / 2).await.unwrap();
    assert_eq!((st.entries, st.dead_letters, st.in_flight), (0, 1, Some(0)));
    let dead = admin.dead_letters(10, true).await.unwrap();
    let (d, shown) = &dead[0];
    assert_eq!((d.status, d.reason.as_str()), (Some(422), "rejected"));
    let shown = shown.as_ref().unwrap();
    assert!(shown
        .headers
        .contains(&("authorization".to_string(), HIDDEN.to_string())));
    assert!(!format!("{dead:?}").contains("fleet-secret"));

    assert!(admin.retry(&d.id, 1).await.unwrap());
    let listed = admin.list(10, false).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].0.id, d.id);
    assert_eq!(admin.stats(1).await.unwrap().entries, 1);
    assert!(admin.discard(&d.id).await.unwrap());
    assert!(!admin.discard(&d.id).await.unwrap());
    let st = admin.stats(1).await.unwrap();
    assert_eq!((st.entries, st.dead_letters, st.bytes), (0, 0, 0));
    admin.close();
}
