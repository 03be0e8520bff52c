//! Data never crosses callers: which requests share a coalesced response or a
//! last-known-good entry, as a table of header sets, and how a response's `Cache-Control`
//! and `Vary` limit both. Paused tokio time, an upstream that answers each caller for
//! itself (`Step::Echo`).

use super::tests::{breaker, MS, URL};
use super::*;
use crate::config::{RawOptions, RawValue};
use crate::test_support::{Script, Step};

fn cfg(name: &str, extra: &[(&str, &str)]) -> Config {
    let mut o = RawOptions::new()
        .set("name", RawValue::String(name.into()))
        .set("maxAttempts", RawValue::Number(1.0))
        .set("maxFailures", RawValue::Number(1000.0));
    for (k, v) in extra {
        o.insert(k, RawValue::String(v.to_string()));
    }
    Config::resolve(&o, &|_| None).unwrap()
}

async fn get(b: &Arc<Breaker>, headers: &[(&str, &str)]) -> CallOutcome {
    let h: Vec<(String, String)> = headers
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let req = b.prepare(URL, None, &h, None).unwrap();
    let p = b.admit().expect("closed");
    b.clone().execute(p, Call::new(req)).await
}

/// The body a caller got: `ok:<echo>`, `cache:<echo>`, or `none`.
fn seen(o: &CallOutcome) -> String {
    let text = |b: &Bytes| String::from_utf8_lossy(b).into_owned();
    match o {
        CallOutcome::Ok(s) => format!("ok:{}", text(&s.body)),
        CallOutcome::Fallback(f) => match &f.body {
            Some(b) => format!("cache:{}", text(b)),
            None => "none".into(),
        },
        CallOutcome::Rejected(r) => format!("rejected:{}", r.code),
        CallOutcome::Queued(q) => format!("queued:{}", q.id),
    }
}

/// Two concurrent GETs that differ only in `header` (values "A" and "B").
async fn concurrent(b: &Arc<Breaker>, header: &str) -> (String, String) {
    let (ha, hb) = ([(header, "A")], [(header, "B")]);
    let (x, y) = tokio::join!(get(b, &ha), get(b, &hb));
    (seen(&x), seen(&y))
}

type Headers = &'static [(&'static str, &'static str)];

// Each row: the header, extra options, whether it splits the key.
const TABLE: &[(&str, Headers, bool)] = &[
    ("cookie", &[], true),
    ("x-api-key", &[], true),
    ("authorization", &[], true),
    ("proxy-authorization", &[], true),
    ("x-tenant-id", &[], true),
    ("x-org", &[("tenantHeader", "x-org")], true),
    ("x-unknown-header", &[], true),
    ("traceparent", &[], false),
    ("accept-language", &[], false),
    (
        "accept-language",
        &[("varyHeaders", "Accept-Language")],
        true,
    ),
    ("x-debug", &[("cacheIgnoreHeaders", "x-debug")], false),
];

#[tokio::test(start_paused = true)]
async fn concurrent_gets_share_a_response_only_when_no_identity_differs() {
    for (i, (header, extra, splits)) in TABLE.iter().enumerate() {
        let s = Script::new(vec![Step::After(
            10 * MS,
            Box::new(Step::Echo { header, with: &[] }),
        )]);
        let b = breaker(cfg(&format!("t-id-co-{i}"), extra), &s);
        let (a, bb) = concurrent(&b, header).await;
        let row = format!("{header} {extra:?}");
        if *splits {
            assert_eq!((a.as_str(), bb.as_str()), ("ok:\"A\"", "ok:\"B\""), "{row}");
            assert_eq!(s.count(), 2, "{row}");
        } else {
            assert_eq!(
                (a.as_str(), bb.as_str()),
                ("ok:\"A\"", "ok:\"A\""),
                "{row}: coalesced"
            );
            assert_eq!(s.count(), 1, "{row}");
        }
        b.close();
    }
}

#[tokio::test(start_paused = true)]
async fn during_an_outage_a_cached_body_is_served_only_to_the_same_identity() {
    for (i, (header, extra, splits)) in TABLE.iter().enumerate() {
        let s = Script::new(vec![
            Step::Echo { header, with: &[] },
            Step::Fail(FailureKind::ConnectionRefused),
        ]);
        let b = breaker(cfg(&format!("t-id-lkg-{i}"), extra), &s);
        let row = format!("{header} {extra:?}");
        assert_eq!(seen(&get(&b, &[(header, "A")]).await), "ok:\"A\"", "{row}");
        let same = seen(&get(&b, &[(header, "A")]).await);
        let other = seen(&get(&b, &[(header, "C")]).await);
        assert_eq!(same, "cache:\"A\"", "{row}");
        assert_eq!(other, if *splits { "none" } else { "cache:\"A\"" }, "{row}");
        b.close();
    }
}

#[tokio::test(start_paused = true)]
async fn no_store_private_and_vary_limit_what_is_kept_and_shared() {
    // (response headers, request header that varies, stored for a caller without identity,
    //  stored for a caller with a cookie, what a different value of the header gets)
    type Row = (Headers, bool, bool);
    let rows: &[Row] = &[
        (&[("cache-control", "no-store")], false, false),
        (&[("cache-control", "private")], false, true),
        (&[("cache-control", "private=\"set-cookie\"")], true, true),
        (&[("vary", "*")], false, false),
        (&[("cache-control", "max-age=60")], true, true),
    ];
    for (i, (with, anon, identified)) in rows.iter().enumerate() {
        for (cookie, want) in [(None, anon), (Some("sess=1"), identified)] {
            let s = Script::new(vec![
                Step::Echo {
                    header: "x-h",
                    with,
                },
                Step::Fail(FailureKind::ConnectionRefused),
            ]);
            let b = breaker(cfg(&format!("t-rules-{i}-{}", cookie.is_some()), &[]), &s);
            let mut h = vec![("x-h", "v")];
            h.extend(cookie.map(|c| ("cookie", c)));
            assert_eq!(seen(&get(&b, &h).await), "ok:\"v\"");
            let again = seen(&get(&b, &h).await);
            let row = format!("{with:?} cookie={cookie:?}");
            assert_eq!(again, if *want { "cache:\"v\"" } else { "none" }, "{row}");
            b.close();
        }
    }
}

#[tokio::test(start_paused = true)]
async fn a_vary_entry_answers_only_matching_requests() {
    let s = Script::new(vec![
        Step::Echo {
            header: "accept-language",
            with: &[("vary", "Accept-Language")],
        },
        Step::Fail(FailureKind::ConnectionRefused),
    ]);
    let b = breaker(cfg("t-vary-lkg", &[]), &s);
    assert_eq!(
        seen(&get(&b, &[("accept-language", "en")]).await),
        "ok:\"en\""
    );
    assert_eq!(
        seen(&get(&b, &[("accept-language", "en")]).await),
        "cache:\"en\""
    );
    assert_eq!(seen(&get(&b, &[("accept-language", "de")]).await), "none");
    assert_eq!(
        seen(&get(&b, &[]).await),
        "none",
        "absent differs from present"
    );
}

#[tokio::test(start_paused = true)]
async fn coalesced_followers_take_restricted_responses_only_for_their_own_request() {
    // (response headers, follower's differing neutral header, shared?)
    let rows: &[(Headers, (&str, &str), bool)] = &[
        (&[], ("traceparent", "B"), true),
        (
            &[("cache-control", "no-store")],
            ("traceparent", "B"),
            false,
        ),
        (&[("cache-control", "no-store")], ("traceparent", "A"), true),
        (&[("vary", "*")], ("accept", "B"), false),
        (&[("vary", "accept")], ("accept", "B"), false),
        (&[("vary", "accept")], ("traceparent", "B"), true),
    ];
    for (i, (with, (h, v), shared)) in rows.iter().enumerate() {
        let s = Script::new(vec![Step::After(
            10 * MS,
            Box::new(Step::Echo { header: h, with }),
        )]);
        let b = breaker(cfg(&format!("t-co-rules-{i}"), &[]), &s);
        let (ha, hb) = ([(*h, "A")], [(*h, *v)]);
        let (x, y) = tokio::join!(get(&b, &ha), get(&b, &hb));
        let row = format!("{with:?} {h}={v}");
        assert_eq!(seen(&x), "ok:\"A\"", "{row}");
        if *shared {
            assert_eq!(s.count(), 1, "{row}");
        } else {
            assert_eq!(seen(&y), format!("ok:\"{v}\""), "{row}: its own answer");
            assert_eq!(s.count(), 2, "{row}");
        }
        b.close();
    }
}
