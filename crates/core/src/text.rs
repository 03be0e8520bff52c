//! Small text helpers every layer uses to put caller input or URLs into messages and labels
//! without leaking or injecting anything: [`printable`] (bounded, escaped input),
//! [`redact`] (a URL without credentials, query or fragment), [`route_template`] (the only
//! way a path becomes a metric label). A foundation: it imports nothing but `error`.

use std::sync::Arc;

use url::Url;

use crate::error::CallError;

/// A bounded, escaped form of caller input for error messages: at most 40 characters,
/// control characters (CR, LF, ...) and quotes escaped, so a message never splits a log
/// line or carries a header injection.
pub fn printable(s: &str) -> String {
    let mut out = String::from("\"");
    for (i, c) in s.chars().enumerate() {
        if i == 40 {
            out.push_str("...");
            break;
        }
        out.extend(c.escape_debug());
    }
    out.push('"');
    out
}

/// A URL as it may appear in logs and errors: no userinfo, no query, no fragment.
pub fn redact(url: &Url) -> String {
    let host = url.host_str().unwrap_or("");
    match url.port() {
        Some(p) => format!("{}://{}:{}{}", url.scheme(), host, p, url.path()),
        None => format!("{}://{}{}", url.scheme(), host, url.path()),
    }
}

/// Validates a caller-supplied route template (`/api/sigils/:id`): the only way a path
/// reaches a metric label, so it must look like a template, not a URL with ids or a query.
pub fn route_template(route: &str) -> Result<Arc<str>, CallError> {
    let ok = (1..=128).contains(&route.len())
        && route.starts_with('/')
        && route
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b'?' && b != b'#' && b != b'"' && b != b'\\');
    if ok {
        Ok(route.into())
    } else {
        Err(CallError::invalid(
            "invalid init.route: must be a path template like /api/sigils/:id (1-128 printable characters, no query)",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redaction_drops_userinfo_and_query() {
        let u = Url::parse("http://user:pw@127.0.0.1:81/a/b?token=secret").unwrap();
        assert_eq!(redact(&u), "http://127.0.0.1:81/a/b");
    }
}
