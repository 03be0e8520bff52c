//! The last-known-good cache's settings (their integer specs sit in the one table in
//! `mod.rs`; the string ones are declared here beside their parser), and which request
//! headers carry identity: the rule the cache's keys follow and its options may not bend.

use std::time::Duration;

use super::redis::{RedisOptions, REDIS_CA_FILE};
use super::resolver::{err, key_of, Resolver};
use super::{spec, ConfigError, RedisSpec, StrSpec};

pub const TENANT_HEADER: StrSpec = StrSpec {
    option: "tenantHeader",
    env: &["DNASTORE_LKG_TENANT_HEADER"],
    default: Some("x-tenant-id"),
    secret: false,
    doc: "Request header that, with Authorization, partitions the last-known-good cache.",
};
pub const SIGNING_SECRET: StrSpec = StrSpec {
    option: "signingSecret",
    env: &["DNASTORE_LKG_SECRET", "SPIRAL_EVENT_SECRET"],
    default: None,
    secret: true,
    doc: "HMAC-SHA256 key that authenticates cached entries; a tampered entry is dropped, never served.",
};
pub const REDIS_URL: StrSpec = StrSpec {
    option: "redisUrl",
    env: &["DNASTORE_LKG_REDIS_URL"],
    default: None,
    secret: true,
    doc: "Redis shared by replicas for last-known-good entries (off the request path): redis://, rediss://, redis+sentinel://, redis+cluster:// (docs/fleet.md: Shared LKG with Redis).",
};

/// Header-name list settings (see `LIST_SPECS`).
pub const VARY_HEADERS: StrSpec = StrSpec {
    option: "varyHeaders",
    env: &["DNASTORE_LKG_VARY_HEADERS"],
    default: None,
    secret: false,
    doc: "Request headers known to carry no identity (accept-language, ...) that should still split the last-known-good and coalescing key.",
};
pub const IGNORE_HEADERS: StrSpec = StrSpec {
    option: "cacheIgnoreHeaders",
    env: &["DNASTORE_LKG_IGNORE_HEADERS"],
    default: None,
    secret: false,
    doc: "Request headers that should not split the key although they are not on the built-in no-identity list (never authorization, proxy-authorization, cookie, x-api-key or the tenant header).",
};
/// Request headers that carry identity: they always split the key (with the tenant header),
/// and `cacheIgnoreHeaders` may not name them.
pub const IDENTITY_HEADERS: [&str; 4] = [
    "authorization",
    "proxy-authorization",
    "cookie",
    "x-api-key",
];

/// Last-known-good cache settings, validated.
#[derive(Clone, Debug, PartialEq)]
pub struct LkgConfig {
    pub max_entries: usize,
    pub max_bytes: u64,
    pub max_entry_bytes: u64,
    pub max_stale: Duration,
    pub tenant_header: String,
    /// Lower-case header names (validated) that split the key although neutral.
    pub vary_headers: Vec<String>,
    /// Lower-case header names (validated, never identity headers) that do not split it.
    pub ignore_headers: Vec<String>,
    pub signing_secret: Option<String>,
    /// Validated by [`RedisSpec::parse`]; never echoed (it may hold a password).
    pub redis_url: Option<String>,
    /// Timeouts and the CA file for `redis_url`.
    pub redis: RedisOptions,
}

/// Which request headers split the cache and coalescing key, validated.
pub(super) struct CacheKeys {
    pub tenant_header: String,
    pub vary_headers: Vec<String>,
    pub ignore_headers: Vec<String>,
    pub signing_secret: Option<String>,
}

impl Resolver<'_> {
    /// The tenant header, the header lists and the signing secret.
    pub(super) fn cache_keys(&self) -> Result<CacheKeys, ConfigError> {
        let (tenant_header, tenant_src) = self.string(&TENANT_HEADER)?.unwrap_or_default();
        let tenant_header = tenant_header.to_ascii_lowercase();
        if http::HeaderName::from_bytes(tenant_header.as_bytes()).is_err() {
            return Err(err(
                key_of(&TENANT_HEADER, &tenant_src),
                format!("invalid {tenant_src}: not a valid HTTP header name"),
            ));
        }
        let vary_headers = self.headers(&VARY_HEADERS)?;
        let ignore_headers = self.headers(&IGNORE_HEADERS)?;
        if let Some(h) = ignore_headers
            .iter()
            .find(|h| **h == tenant_header || IDENTITY_HEADERS.contains(&h.as_str()))
        {
            let given = self.list_label(&IGNORE_HEADERS);
            return Err(err(
                given,
                format!(
                    "invalid {given}: {h} carries identity and always splits the key (identity headers: {}, and the tenantHeader)",
                    IDENTITY_HEADERS.join(", ")
                ),
            ));
        }
        if let Some(h) = ignore_headers.iter().find(|h| vary_headers.contains(h)) {
            let given = self.list_label(&IGNORE_HEADERS);
            return Err(err(
                given,
                format!(
                    "invalid {given}: {h} is also in {}",
                    self.list_label(&VARY_HEADERS)
                ),
            ));
        }
        let signing_secret = match self.string(&SIGNING_SECRET)? {
            Some((v, src)) if v.is_empty() => {
                return Err(err(
                    SIGNING_SECRET.option,
                    format!("invalid {src}: the signing secret must not be empty (leave it unset to store entries unsigned)"),
                ))
            }
            other => other.map(|(v, _)| v),
        };
        Ok(CacheKeys {
            tenant_header,
            vary_headers,
            ignore_headers,
            signing_secret,
        })
    }

    /// `redisUrl` (validated, kept as given: it may hold a password), and the Redis
    /// timeouts and CA file (`redisCaFile`, which only a TLS URL may name; its file is read
    /// when a breaker is built, `breaker/files.rs`).
    pub(super) fn lkg_redis(&self) -> Result<(Option<String>, RedisOptions), ConfigError> {
        let redis_url = match self.string(&REDIS_URL)? {
            Some((raw, src)) => Some((
                RedisSpec::parse(&raw)
                    .map_err(|m| err(key_of(&REDIS_URL, &src), format!("invalid {src}: {m}")))?,
                raw,
            )),
            None => None,
        };
        let ca_file = match (self.string(&REDIS_CA_FILE)?, &redis_url) {
            // Without a Redis URL there is nothing to verify (a shared .env may set it).
            (Some(_), None) | (None, _) => None,
            (Some((path, src)), Some((spec, _))) => {
                let key = key_of(&REDIS_CA_FILE, &src);
                if !spec.tls {
                    return Err(err(key, format!("invalid {src}: a CA file needs a TLS Redis URL (rediss://, rediss+sentinel:// or rediss+cluster://)")));
                }
                Some(path.into())
            }
        };
        let redis = RedisOptions {
            connect_timeout: self.ms(&spec::redis_connect_timeout)?,
            response_timeout: self.ms(&spec::redis_response_timeout)?,
            ca_file,
        };
        Ok((redis_url.map(|(_, raw)| raw), redis))
    }
}
