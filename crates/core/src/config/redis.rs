//! Redis URLs: one string names the mode, the nodes and the credentials, so a deployment
//! moves from one Redis to Sentinel or Cluster by changing one variable.
//!
//! ```text
//! redis://[user:password@]host[:port][/db]                          one node (port 6379)
//! redis+sentinel://[user:password@]host[:port][,host[:port]...]/master[/db]
//!                                                                  Sentinel nodes (port 26379) and the master's name
//! redis+cluster://[user:password@]host[:port][,host[:port]...]     Cluster seed nodes (port 6379)
//! rediss://, rediss+sentinel://, rediss+cluster://                 the same over TLS
//! ```
//!
//! The credentials (an ACL user, or `:password` alone for `requirepass`) authenticate to
//! every data node: the single node, the master Sentinel names, each Cluster node.
//! Sentinels themselves are asked without AUTH. Reserved characters in the user, the
//! password or the master name are percent-encoded (`p%40ss` for `p@ss`).
//!
//! Parsing errors never repeat the URL: it may hold a password.
//!
//! Plain data and its parsing (no I/O): the `redis` module connects with it. The CA file
//! option (`redisCaFile`, shared by both Redis URLs) is declared here; its file is read
//! when a breaker is built (`breaker/files.rs`, with `redis::read_ca_file`).

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use url::Url;

use super::StrSpec;

/// How the nodes of a URL are used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Mode {
    /// One node.
    Single,
    /// The nodes are Sentinels; they name the current master of `master`.
    Sentinel { master: String },
    /// The nodes are Cluster seed nodes; the client learns every node and slot from them.
    Cluster,
}

/// One `host:port` of a URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Node {
    pub host: String,
    pub port: u16,
}

/// A parsed Redis URL. `Debug` never shows the credentials.
#[derive(Clone, PartialEq, Eq)]
pub struct RedisSpec {
    pub mode: Mode,
    pub nodes: Vec<Node>,
    pub tls: bool,
    pub username: Option<String>,
    pub password: Option<String>,
    /// Database number (single node and Sentinel; Cluster has only 0).
    pub db: i64,
}

impl fmt::Debug for RedisSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

const SCHEMES: &str = "redis://, rediss://, redis+sentinel://, rediss+sentinel://, redis+cluster:// or rediss+cluster://";

fn decoded(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

fn node(raw: &str, default_port: u16) -> Result<Node, String> {
    let bad = || {
        format!(
            "invalid node address {:?}: expected host[:port]",
            truncate(raw)
        )
    };
    // The url crate validates host names, IPv6 brackets and ports for us.
    let u = Url::parse(&format!("redis://{raw}")).map_err(|_| bad())?;
    if raw.is_empty() || !u.username().is_empty() || u.path() != "" && u.path() != "/" {
        return Err(bad());
    }
    let host = match u.host_str() {
        Some(h) if !h.is_empty() => h.trim_start_matches('[').trim_end_matches(']').to_string(),
        _ => return Err(bad()),
    };
    Ok(Node {
        host,
        port: u.port().unwrap_or(default_port),
    })
}

fn truncate(s: &str) -> String {
    s.chars().take(60).collect()
}

fn db(raw: &str) -> Result<i64, String> {
    raw.parse::<u16>().map(i64::from).map_err(|_| {
        "the database must be a number from 0 to 65535, e.g. redis://host:6379/0".to_string()
    })
}

impl RedisSpec {
    /// Parses any of the forms in the module docs.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let raw = raw.trim();
        let (scheme, rest) = raw
            .split_once("://")
            .ok_or_else(|| format!("not a Redis URL: must start with {SCHEMES}"))?;
        let (tls, kind) = match scheme.to_ascii_lowercase().as_str() {
            "redis" => (false, "single"),
            "rediss" => (true, "single"),
            "redis+sentinel" => (false, "sentinel"),
            "rediss+sentinel" => (true, "sentinel"),
            "redis+cluster" => (false, "cluster"),
            "rediss+cluster" => (true, "cluster"),
            _ => return Err(format!("unsupported scheme: must be {SCHEMES}")),
        };
        if rest.contains(['?', '#']) {
            return Err("query parameters are not supported in a Redis URL (timeouts and the CA file have their own options)".into());
        }
        // The last '@' ends the credentials, so a password may hold '/' or '@' unencoded.
        let (userinfo, rest) = match rest.rfind('@') {
            Some(at) => (Some(&rest[..at]), &rest[at + 1..]),
            None => (None, rest),
        };
        let (username, password) = match userinfo {
            None => (None, None),
            Some(u) => match u.split_once(':') {
                Some((user, pass)) => (
                    Some(decoded(user)).filter(|s| !s.is_empty()),
                    Some(decoded(pass)),
                ),
                None => {
                    return Err("credentials need a password: user:password@host, or :password@host without an ACL user".into())
                }
            },
        };
        let (hosts, path) = rest.split_once('/').unwrap_or((rest, ""));
        let default_port = if kind == "sentinel" { 26379 } else { 6379 };
        let nodes = hosts
            .split(',')
            .map(|h| node(h.trim(), default_port))
            .collect::<Result<Vec<_>, _>>()?;
        let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        let (mode, db) = match (kind, segments.as_slice()) {
            ("single", _) if nodes.len() > 1 => {
                return Err("a redis:// URL names one node; list Sentinels with redis+sentinel:// or Cluster seed nodes with redis+cluster://".into())
            }
            ("single", []) => (Mode::Single, 0),
            ("single", [n]) => (Mode::Single, db(n)?),
            ("sentinel", [m]) => (Mode::Sentinel { master: decoded(m) }, 0),
            ("sentinel", [m, n]) => (Mode::Sentinel { master: decoded(m) }, db(n)?),
            ("sentinel", _) => {
                return Err("a redis+sentinel:// URL needs the master's name as its path: redis+sentinel://host:26379,host2:26379/mymaster[/db]".into())
            }
            ("cluster", []) => (Mode::Cluster, 0),
            ("cluster", _) => {
                return Err("a redis+cluster:// URL has no path: Redis Cluster has only database 0".into())
            }
            _ => return Err("the path must be a database number, e.g. redis://host:6379/0".into()),
        };
        Ok(Self {
            mode,
            nodes,
            tls,
            username,
            password,
            db,
        })
    }

    /// The URL with the credentials replaced by `***` (for logs and diagnostics).
    pub fn redacted(&self) -> String {
        let scheme = match (&self.mode, self.tls) {
            (Mode::Single, false) => "redis",
            (Mode::Single, true) => "rediss",
            (Mode::Sentinel { .. }, false) => "redis+sentinel",
            (Mode::Sentinel { .. }, true) => "rediss+sentinel",
            (Mode::Cluster, false) => "redis+cluster",
            (Mode::Cluster, true) => "rediss+cluster",
        };
        let creds = if self.username.is_some() || self.password.is_some() {
            "***@"
        } else {
            ""
        };
        let nodes: Vec<String> = self
            .nodes
            .iter()
            .map(|n| match n.host.contains(':') {
                true => format!("[{}]:{}", n.host, n.port),
                false => format!("{}:{}", n.host, n.port),
            })
            .collect();
        let path = match &self.mode {
            Mode::Single => format!("/{}", self.db),
            Mode::Sentinel { master } => format!("/{master}/{}", self.db),
            Mode::Cluster => String::new(),
        };
        format!("{scheme}://{creds}{}{path}", nodes.join(","))
    }

    /// Replaces the credentials wherever they occur in `text` (an error from a server or a
    /// library), so no message we log or return can carry them.
    pub fn redact(&self, text: &str) -> String {
        let mut out = text.to_string();
        for secret in [&self.password, &self.username].into_iter().flatten() {
            if !secret.is_empty() {
                out = out.replace(secret.as_str(), "***");
            }
        }
        out
    }
}

pub const REDIS_CA_FILE: StrSpec = StrSpec {
    option: "redisCaFile",
    env: &["DNASTORE_LKG_REDIS_CA_FILE"],
    default: None,
    secret: false,
    doc: "PEM file of the CA certificate(s) that verify the Redis TLS servers, instead of the system trust store (needs a rediss URL).",
};

/// Timeouts and trust, from the configuration table (`redisConnectTimeoutMs`,
/// `redisResponseTimeoutMs`, `redisCaFile`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RedisOptions {
    /// Bound on opening a connection: TCP, TLS, AUTH/SELECT, the Sentinel lookup, the
    /// Cluster's slot map, and the first PING.
    pub connect_timeout: Duration,
    /// Bound on each reply; a connection that exceeds it is considered stuck.
    pub response_timeout: Duration,
    /// PEM file of the CA certificates that verify TLS servers, instead of the system's
    /// trust store (a private CA for Redis).
    pub ca_file: Option<PathBuf>,
}

impl Default for RedisOptions {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(2),
            response_timeout: Duration::from_secs(1),
            ca_file: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(host: &str, port: u16) -> Node {
        Node {
            host: host.into(),
            port,
        }
    }

    #[test]
    fn every_form_parses() {
        let s = RedisSpec::parse("redis://127.0.0.1:6380/3").unwrap();
        assert_eq!(
            (s.mode, s.nodes, s.tls, s.db, s.username, s.password),
            (
                Mode::Single,
                vec![n("127.0.0.1", 6380)],
                false,
                3,
                None,
                None
            )
        );
        let s = RedisSpec::parse("rediss://app:p%40s+s@cache.internal").unwrap();
        assert_eq!(
            (s.nodes, s.tls, s.db),
            (vec![n("cache.internal", 6379)], true, 0)
        );
        assert_eq!(
            (s.username.as_deref(), s.password.as_deref()),
            (Some("app"), Some("p@s+s"))
        );
        let s = RedisSpec::parse("redis://:only-secret@[::1]:7000/").unwrap();
        assert_eq!(
            (s.nodes, s.username, s.password.as_deref()),
            (vec![n("::1", 7000)], None, Some("only-secret"))
        );
        let s = RedisSpec::parse(
            "redis+sentinel://app:pw@10.0.0.1,10.0.0.2:26380, sentinel-3:5000/my%20master/2",
        )
        .unwrap();
        assert_eq!(
            s.mode,
            Mode::Sentinel {
                master: "my master".into()
            }
        );
        assert_eq!(
            s.nodes,
            vec![
                n("10.0.0.1", 26379),
                n("10.0.0.2", 26380),
                n("sentinel-3", 5000)
            ]
        );
        assert_eq!((s.db, s.password.as_deref()), (2, Some("pw")));
        let s = RedisSpec::parse("rediss+cluster://u:p/w@a:7000,b:7001,c").unwrap();
        assert_eq!(
            (s.mode, s.tls, s.password.as_deref()),
            (Mode::Cluster, true, Some("p/w"))
        );
        assert_eq!(s.nodes, vec![n("a", 7000), n("b", 7001), n("c", 6379)]);
    }

    #[test]
    fn mistakes_are_named_without_echoing_the_url() {
        for (url, says) in [
            ("http://u:hunter2@h", "scheme"),
            ("hunter2", "not a Redis URL"),
            ("redis://u:hunter2@h/x", "database"),
            ("redis://u:hunter2@h/70000", "database"),
            ("redis://u:hunter2@a,b", "one node"),
            ("redis+sentinel://u:hunter2@a:26379", "master"),
            ("redis+sentinel://u:hunter2@a/m/x", "database"),
            (
                "redis+cluster://u:hunter2@a/0",
                "Cluster has only database 0",
            ),
            ("redis://hunter2@h", "need a password"),
            ("redis://u:hunter2@h?timeout=1", "query"),
            ("redis://u:hunter2@a,,b", "host[:port]"),
            ("redis://u:hunter2@h:99999", "host[:port]"),
        ] {
            let e = RedisSpec::parse(url).unwrap_err();
            assert!(e.contains(says), "{url}: {e}");
            assert!(!e.contains("hunter2"), "{url}: {e}");
        }
    }

    #[test]
    fn credentials_never_show() {
        let s = RedisSpec::parse("redis+sentinel://app:hunter2@h1,h2:1/m").unwrap();
        assert_eq!(s.redacted(), "redis+sentinel://***@h1:26379,h2:1/m/0");
        assert!(!format!("{s:?}").contains("hunter2"));
        assert_eq!(
            s.redact("WRONGPASS for app with hunter2"),
            "WRONGPASS for *** with ***"
        );
        let s = RedisSpec::parse("redis+cluster://[::1]:7000").unwrap();
        assert_eq!(s.redacted(), "redis+cluster://[::1]:7000");
    }
}
