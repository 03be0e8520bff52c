//! How stored writes are shown (`list`, `deadLetters`, the operator's commands) and checked
//! against a signing secret, from either store's rows: one place, so `breaker.outbox` and
//! `dnastore-breaker outbox` (`admin.rs`) show the same thing.

use super::fleet::Row;
use super::sqlite::{DeadRow, Stored};
use super::{DeadLetter, Listed, Meta, Write};

/// A stored write's method, URL (redacted) and Idempotency-Key, as listings show them
/// (empty for an encoding this version cannot read).
pub(super) fn describe(blob: &[u8]) -> (String, String, String) {
    let w = Write::decode(blob);
    (
        w.as_ref()
            .map_or_else(String::new, |w| w.method.to_string()),
        w.as_ref()
            .map_or_else(String::new, |w| crate::text::redact(&w.url)),
        w.map(|w| w.idempotency_key).unwrap_or_default(),
    )
}

impl DeadLetter {
    /// As listed, from either store's row.
    pub fn of(d: &DeadRow) -> Self {
        let (method, url, idempotency_key) = describe(&d.blob);
        DeadLetter {
            method,
            url,
            idempotency_key,
            id: d.id.clone(),
            reason: d.reason.clone(),
            status: d.status,
            answer: d
                .answer
                .as_ref()
                .map(|a| String::from_utf8_lossy(a).into_owned()),
            attempts: d.attempts,
            created_at_ms: d.created_at_ms,
            died_at_ms: d.died_at_ms,
        }
    }
}

impl Listed {
    /// A queued write of the fleet's stream, as listed.
    pub(super) fn of_fleet(r: &Row) -> Self {
        let (method, url, idempotency_key) = describe(&r.blob);
        Listed {
            id: r.id.clone(),
            method,
            url,
            idempotency_key,
            ordering_key: r.ordering_key.clone(),
            attempts: r.attempts,
            created_at_ms: r.created_at_ms,
            next_at_ms: r.next_at_ms,
            last_error: r.last_error.clone(),
            delivering: r.delivering,
            spilled: false,
        }
    }

    /// A queued write of the embedded store, as listed: `delivering` as this process knows.
    pub(super) fn of_embedded(
        m: Meta,
        blob: &[u8],
        last_error: Option<String>,
        delivering: bool,
    ) -> Self {
        let (method, url, idempotency_key) = describe(blob);
        Listed {
            method,
            url,
            idempotency_key,
            last_error,
            id: m.id,
            ordering_key: m.ordering_key,
            attempts: m.attempts,
            created_at_ms: m.created_at_ms,
            next_at_ms: m.next_at_ms,
            delivering,
            spilled: false,
        }
    }

    /// A write in this replica's spill file (fleet), as listed: never attempted here.
    pub(super) fn of_spilled(m: Meta, blob: &[u8]) -> Self {
        Listed {
            spilled: true,
            ..Self::of_embedded(m, blob, None, false)
        }
    }
}

/// How many of `stored` fail their signature check under `secret` (none without one).
pub(super) fn count_unverified<'a>(
    stored: impl Iterator<Item = &'a Stored>,
    secret: Option<&str>,
) -> usize {
    stored
        .filter(|(blob, mac)| !Write::verify(blob, mac.as_deref(), secret))
        .count()
}
