//! What a response allows a cache to do with it, read as an RFC 9111 cache would:
//! `Cache-Control: no-store` (never stored, never shared with a request that is not the
//! identical one), `private` (never in a shared store such as Redis; locally only when the
//! key is partitioned by the caller's identity), and `Vary` (an entry answers only requests
//! whose named headers match; `Vary: *` never matches another request).

use http::header::{CACHE_CONTROL, VARY};
use http::{HeaderMap, HeaderName};

use super::key::vary_digest;

/// A response's `Vary`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Vary {
    None,
    /// `Vary: *`: the response depends on more than the request headers.
    Any,
    /// Header names, lower-case, sorted, deduplicated.
    Names(Vec<HeaderName>),
}

/// A stored entry's secondary key: the request values of the response's `Vary` headers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VaryKey {
    pub names: Vec<HeaderName>,
    pub digest: [u8; 32],
}

impl VaryKey {
    /// True when `headers` select the same representation.
    pub fn matches(&self, headers: &HeaderMap) -> bool {
        vary_digest(&self.names, headers) == self.digest
    }

    /// `name,name,...` (the Redis value layout and the HMAC input).
    pub fn names_csv(&self) -> String {
        let v: Vec<&str> = self.names.iter().map(HeaderName::as_str).collect();
        v.join(",")
    }

    /// Parses [`VaryKey::names_csv`] back; `None` for anything malformed.
    pub fn from_parts(csv: &str, digest: [u8; 32]) -> Option<Self> {
        let names = csv
            .split(',')
            .map(|n| HeaderName::from_bytes(n.as_bytes()).ok())
            .collect::<Option<Vec<_>>>()?;
        Some(Self { names, digest })
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cacheability {
    pub no_store: bool,
    pub private: bool,
    pub vary: Vary,
}

impl Cacheability {
    /// Reads `Cache-Control` and `Vary` (every field line, comma lists, any case).
    pub fn of(h: &HeaderMap) -> Self {
        let mut c = Cacheability {
            no_store: false,
            private: false,
            vary: Vary::None,
        };
        for v in h.get_all(CACHE_CONTROL) {
            let Ok(v) = v.to_str() else {
                // Unreadable directives: assume the strictest.
                c.no_store = true;
                continue;
            };
            for d in v.split(',') {
                let (name, arg) = match d.split_once('=') {
                    Some((n, a)) => (n.trim(), Some(a.trim())),
                    None => (d.trim(), None),
                };
                if name.eq_ignore_ascii_case("no-store") {
                    c.no_store = true;
                } else if name.eq_ignore_ascii_case("private") {
                    // `private="set-cookie"` makes only those fields private (RFC 9111
                    // 5.2.2.7); headers are never stored here, so the body may be.
                    if arg.is_none_or(|a| a.trim_matches('"').is_empty()) {
                        c.private = true;
                    }
                }
            }
        }
        let mut names: Vec<HeaderName> = Vec::new();
        for v in h.get_all(VARY) {
            let Ok(v) = v.to_str() else {
                c.vary = Vary::Any;
                return c;
            };
            for n in v.split(',').map(str::trim).filter(|n| !n.is_empty()) {
                if n == "*" {
                    c.vary = Vary::Any;
                    return c;
                }
                match HeaderName::from_bytes(n.as_bytes()) {
                    Ok(name) => names.push(name),
                    Err(_) => {
                        c.vary = Vary::Any;
                        return c;
                    }
                }
            }
        }
        if !names.is_empty() {
            names.sort_unstable_by(|a, b| a.as_str().cmp(b.as_str()));
            names.dedup();
            c.vary = Vary::Names(names);
        }
        c
    }

    /// May be kept in the last-known-good cache for a request (`identity`: its key is
    /// partitioned by a credential, cookie, API key or tenant).
    pub fn storable(&self, identity: bool) -> bool {
        !self.no_store && self.vary != Vary::Any && (!self.private || identity)
    }

    /// May be written to the shared (Redis) copy of the cache.
    pub fn shareable(&self) -> bool {
        !self.private
    }

    /// The entry's secondary key for the request that got this response.
    pub fn vary_key(&self, request: &HeaderMap) -> Option<VaryKey> {
        match &self.vary {
            Vary::Names(names) => Some(VaryKey {
                digest: vary_digest(names, request),
                names: names.clone(),
            }),
            _ => None,
        }
    }

    /// True when handing this response to a coalesced follower needs a look at both
    /// requests (the leader then keeps its request headers for the comparison).
    pub fn restricts_sharing(&self) -> bool {
        self.no_store || self.vary != Vary::None
    }

    /// May a coalesced follower with `follower` headers take the response the leader got
    /// for `leader` headers? Same key already (same identity and every non-neutral header).
    pub fn same_answer(&self, leader: &HeaderMap, follower: &HeaderMap) -> bool {
        if self.no_store || self.vary == Vary::Any {
            return super::key::same_headers(leader, follower);
        }
        match &self.vary {
            Vary::Names(names) => vary_digest(names, leader) == vary_digest(names, follower),
            _ => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn directives_are_read_in_any_case_and_across_field_lines() {
        let c = Cacheability::of(&headers(&[
            ("cache-control", "max-age=0"),
            ("cache-control", "No-Store"),
        ]));
        assert!(c.no_store && !c.storable(true));
        let p = Cacheability::of(&headers(&[("cache-control", "public, private")]));
        assert!(p.private && p.storable(true) && !p.storable(false) && !p.shareable());
        let fields = Cacheability::of(&headers(&[("cache-control", "private=\"set-cookie\"")]));
        assert!(
            !fields.private,
            "field-scoped private leaves the body cacheable"
        );
        assert!(Cacheability::of(&HeaderMap::new()).storable(false));
    }

    #[test]
    fn vary_names_select_the_representation_and_star_matches_nothing_else() {
        let c = Cacheability::of(&headers(&[
            ("vary", "Accept-Language, accept"),
            ("vary", "accept"),
        ]));
        let Vary::Names(n) = &c.vary else {
            panic!("names")
        };
        assert_eq!(
            n.iter().map(|h| h.as_str()).collect::<Vec<_>>(),
            ["accept", "accept-language"]
        );
        let en = headers(&[("accept-language", "en")]);
        let de = headers(&[("accept-language", "de")]);
        let k = c.vary_key(&en).unwrap();
        assert!(k.matches(&en) && !k.matches(&de) && !k.matches(&HeaderMap::new()));
        assert_eq!(VaryKey::from_parts(&k.names_csv(), k.digest), Some(k));
        assert!(c.same_answer(&en, &en) && !c.same_answer(&en, &de));

        let star = Cacheability::of(&headers(&[("vary", "*")]));
        assert!(!star.storable(true));
        assert!(
            star.same_answer(&en, &en)
                && !star.same_answer(&en, &headers(&[("accept-language", "en"), ("x", "1")]))
        );
    }
}
