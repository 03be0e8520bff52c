//! `Retry-After` (RFC 9110 10.2.3): delta-seconds or an HTTP-date.

use std::time::{Duration, SystemTime};

/// The wait a `Retry-After` value asks for, or None for a value that is neither form
/// (the normal backoff applies then). A date in the past means "now".
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let v = value.trim();
    if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) {
        // Absurdly long values saturate; the caller caps them anyway.
        return Some(Duration::from_secs(
            v.parse::<u64>().unwrap_or(u64::MAX / 2),
        ));
    }
    let at = httpdate::parse_http_date(v).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delta_seconds() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        assert_eq!(parse_retry_after("1", now), Some(Duration::from_secs(1)));
        assert_eq!(
            parse_retry_after(" 120 ", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(parse_retry_after("0", now), Some(Duration::ZERO));
    }

    #[test]
    fn http_date() {
        let now = httpdate::parse_http_date("Wed, 21 Oct 2015 07:28:00 GMT").unwrap();
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:03 GMT", now),
            Some(Duration::from_secs(3))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:27:00 GMT", now),
            Some(Duration::ZERO)
        );
    }

    #[test]
    fn garbage_is_ignored() {
        let now = SystemTime::now();
        for g in [
            "",
            "soon",
            "-1",
            "1.5",
            "Wed, 99 Oct 2015 07:28:00 GMT",
            "1e3",
        ] {
            assert_eq!(parse_retry_after(g, now), None, "{g}");
        }
    }
}
