//! Building redis-rs clients from a [`RedisSpec`] and opening one connection, bounded.
//!
//! The connection is redis-rs's: a multiplexed (pipelined) connection to one node, to the
//! master Sentinel names, or the cluster connection that follows slots, MOVED/ASK and
//! failovers. Reconnecting is the caller's loop, not redis-rs's `ConnectionManager`: that
//! one reconnects from detached tasks that outlive it (a stop could not stop them) and
//! cannot ask Sentinel again for a new master. A caller that owns its loop gets both: on a
//! broken connection it calls [`RedisClient::connect`] again, which asks Sentinel anew.

use std::path::PathBuf;
use std::time::Duration;

use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{
    MultipleNodeRoutingInfo, ResponsePolicy, RoutingInfo, SingleNodeRoutingInfo,
};
use redis::sentinel::{SentinelClientBuilder, SentinelServerType};
use redis::{
    AsyncConnectionConfig, Client, Cmd, ConnectionAddr, IntoConnectionInfo, Pipeline,
    RedisConnectionInfo, RedisError, RedisFuture, RedisResult, TlsCertificates, TlsMode, Value,
};

use super::url::{Mode, Node, RedisSpec};

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

enum Kind {
    Single(Client),
    /// Sentinel clients are cheap to build and need `&mut` to look the master up: one is
    /// built per connect, so every reconnect asks the Sentinels which node is master now.
    Sentinel {
        sentinels: Vec<ConnectionAddr>,
        master: String,
        ca: Option<TlsCertificates>,
    },
    Cluster(Box<ClusterClient>),
}

/// A client for one [`RedisSpec`]: builds connections, describes errors without secrets.
pub struct RedisClient {
    spec: RedisSpec,
    opts: RedisOptions,
    kind: Kind,
}

impl std::fmt::Debug for RedisClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisClient")
            .field("spec", &self.spec)
            .field("opts", &self.opts)
            .finish_non_exhaustive()
    }
}

/// Reads a CA bundle, checking it holds at least one certificate. The error names the
/// problem, never the file's content.
pub fn read_ca_file(path: &std::path::Path) -> Result<Vec<u8>, String> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::CertificateDer;
    let pem = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    // Parsed with the rustls types redis-rs itself uses, so what passes here loads there.
    let certs = CertificateDer::pem_slice_iter(&pem).try_fold(0, |n, c| c.map(|_| n + 1));
    match certs {
        Ok(n) if n > 0 => Ok(pem),
        _ => Err(format!(
            "{} holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
            path.display()
        )),
    }
}

fn addr(n: &Node, tls: bool) -> ConnectionAddr {
    if tls {
        ConnectionAddr::TcpTls {
            host: n.host.clone(),
            port: n.port,
            insecure: false,
            tls_params: None,
        }
    } else {
        ConnectionAddr::Tcp(n.host.clone(), n.port)
    }
}

impl RedisClient {
    /// Builds the mode's client (no I/O except reading the CA file). Errors are redacted.
    pub fn new(spec: RedisSpec, opts: RedisOptions) -> Result<Self, String> {
        // The provider the HTTP client installs too; whichever comes first wins.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let ca = match &opts.ca_file {
            Some(_) if !spec.tls => return Err(
                "a CA file needs a TLS URL (rediss://, rediss+sentinel:// or rediss+cluster://)"
                    .into(),
            ),
            Some(p) => Some(TlsCertificates {
                client_tls: None,
                root_cert: Some(read_ca_file(p)?),
            }),
            None => None,
        };
        let mut settings = RedisConnectionInfo::default()
            .set_db(spec.db)
            .set_skip_set_lib_name();
        if let Some(u) = &spec.username {
            settings = settings.set_username(u);
        }
        if let Some(p) = &spec.password {
            settings = settings.set_password(p);
        }
        let describe = |e: RedisError| spec.redact(&e.to_string());
        let kind = match &spec.mode {
            Mode::Single => {
                let info = addr(&spec.nodes[0], spec.tls)
                    .into_connection_info()
                    .map_err(describe)?
                    .set_redis_settings(settings);
                Kind::Single(
                    match ca.clone() {
                        Some(ca) => Client::build_with_tls(info, ca),
                        None => Client::open(info),
                    }
                    .map_err(describe)?,
                )
            }
            Mode::Sentinel { master } => Kind::Sentinel {
                sentinels: spec.nodes.iter().map(|n| addr(n, spec.tls)).collect(),
                master: master.clone(),
                ca,
            },
            Mode::Cluster => {
                let seeds = spec
                    .nodes
                    .iter()
                    .map(|n| addr(n, spec.tls).into_connection_info())
                    .collect::<RedisResult<Vec<_>>>()
                    .map_err(describe)?;
                let mut b = ClusterClient::builder(seeds)
                    .connection_timeout(opts.connect_timeout)
                    .response_timeout(opts.response_timeout);
                if spec.tls {
                    b = b.tls(TlsMode::Secure);
                }
                if let Some(ca) = ca {
                    b = b.certs(ca);
                }
                if let Some(u) = &spec.username {
                    b = b.username(u);
                }
                if let Some(p) = &spec.password {
                    b = b.password(p);
                }
                Kind::Cluster(Box::new(b.build().map_err(describe)?))
            }
        };
        Ok(Self { spec, opts, kind })
    }

    pub fn spec(&self) -> &RedisSpec {
        &self.spec
    }

    pub fn options(&self) -> &RedisOptions {
        &self.opts
    }

    fn config(&self) -> AsyncConnectionConfig {
        AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.opts.connect_timeout))
            .set_response_timeout(Some(self.opts.response_timeout))
    }

    /// Opens a connection and proves the server answers (PING; in Cluster mode every
    /// master), all within `connect_timeout` plus one `response_timeout`. The error is a
    /// one-line description without credentials.
    pub async fn connect(&self) -> Result<RedisConnection, String> {
        let open = async {
            match &self.kind {
                Kind::Single(c) => c
                    .get_multiplexed_async_connection_with_config(&self.config())
                    .await
                    .map(RedisConnection::Node),
                Kind::Sentinel {
                    sentinels,
                    master,
                    ca,
                } => {
                    let mut b = SentinelClientBuilder::new(
                        sentinels.clone(),
                        master,
                        SentinelServerType::Master,
                    )?
                    .set_client_to_redis_db(self.spec.db);
                    if let Some(u) = &self.spec.username {
                        b = b.set_client_to_redis_username(u);
                    }
                    if let Some(p) = &self.spec.password {
                        b = b.set_client_to_redis_password(p);
                    }
                    if self.spec.tls {
                        b = b
                            .set_client_to_redis_tls_mode(TlsMode::Secure)
                            .set_client_to_sentinel_tls_mode(TlsMode::Secure);
                    }
                    if let Some(ca) = ca {
                        b = b
                            .set_client_to_redis_certificates(ca.clone())
                            .set_client_to_sentinel_certificates(ca.clone());
                    }
                    b.build()?
                        .get_async_connection_with_config(&self.config())
                        .await
                        .map(RedisConnection::Node)
                }
                Kind::Cluster(c) => c
                    .get_async_connection()
                    .await
                    .map(|c| RedisConnection::Cluster(Box::new(c))),
            }
        };
        let slow = || {
            format!(
                "no connection within {} ms (redisConnectTimeoutMs)",
                self.opts.connect_timeout.as_millis()
            )
        };
        let mut conn = match tokio::time::timeout(self.opts.connect_timeout, open).await {
            Ok(Ok(c)) => c,
            // redis-rs's own connect timeout (the same bound) ends the handshake this way.
            Ok(Err(e)) if e.is_timeout() => return Err(slow()),
            Ok(Err(e)) => return Err(self.describe(&e)),
            Err(_) => return Err(slow()),
        };
        // One node answering proves the connection; a Cluster with a master down is still
        // worth using for the slots the others serve (its health shows it degraded).
        match tokio::time::timeout(self.opts.response_timeout, conn.ping()).await {
            Ok(Ok(())) => Ok(conn),
            Ok(Err(e)) => Err(self.describe(&e)),
            Err(_) => Err(self.no_reply()),
        }
    }

    /// The message for a reply that did not come within `response_timeout`.
    pub fn no_reply(&self) -> String {
        format!(
            "connected, but no reply within {} ms (redisResponseTimeoutMs)",
            self.opts.response_timeout.as_millis()
        )
    }

    /// One line for a redis-rs error, with the credentials of this client's URL removed.
    pub fn describe(&self, e: &RedisError) -> String {
        if e.is_timeout() {
            // redis-rs says only "timed out"; name the bound and the option instead.
            return self.no_reply();
        }
        self.spec.redact(&e.to_string())
    }
}

/// Whether an error means the connection itself is broken (I/O, timeout, closed, or a
/// node that is no longer a writable master), so the caller should reconnect.
pub fn is_broken(e: &RedisError) -> bool {
    use redis::{ErrorKind, ServerErrorKind};
    e.is_io_error()
        || e.is_timeout()
        || e.is_connection_dropped()
        || e.is_unrecoverable_error()
        || matches!(
            e.kind(),
            ErrorKind::Server(ServerErrorKind::ReadOnly | ServerErrorKind::MasterDown)
        )
}

/// One connection of any mode; clones share it (commands are pipelined).
#[derive(Clone)]
pub enum RedisConnection {
    /// A single node, or the master Sentinel named.
    Node(MultiplexedConnection),
    /// Redis Cluster: routes each command to its slot's node.
    Cluster(Box<ClusterConnection>),
}

impl RedisConnection {
    pub fn is_cluster(&self) -> bool {
        matches!(self, Self::Cluster(_))
    }

    /// PING the node; in Cluster mode, succeeds when any master answers.
    pub async fn ping(&mut self) -> RedisResult<()> {
        self.ping_masters(ResponsePolicy::OneSucceeded).await
    }

    /// PING the node, or every master of the Cluster's slot map: fails when any master
    /// does not answer. (redis-rs's own all-masters routing only reaches the masters it
    /// holds a connection to, so a dead one would go unnoticed.)
    pub async fn ping_all(&mut self) -> RedisResult<()> {
        let Self::Cluster(c) = self else {
            return self.ping().await;
        };
        let slots: Value = c
            .route_command(
                redis::cmd("CLUSTER").arg("SLOTS").to_owned(),
                RoutingInfo::MultiNode((
                    MultipleNodeRoutingInfo::AllMasters,
                    Some(ResponsePolicy::OneSucceeded),
                )),
            )
            .await?;
        let pings = slot_masters(&slots).into_iter().map(|(host, port)| {
            let mut c = c.clone();
            async move {
                c.route_command(
                    redis::cmd("PING"),
                    RoutingInfo::SingleNode(SingleNodeRoutingInfo::ByAddress { host, port }),
                )
                .await
            }
        });
        futures_util::future::try_join_all(pings).await.map(drop)
    }

    async fn ping_masters(&mut self, policy: ResponsePolicy) -> RedisResult<()> {
        match self {
            Self::Node(c) => redis::cmd("PING").query_async(c).await,
            // A bare PING would go to every node, replicas included.
            Self::Cluster(c) => c
                .route_command(
                    redis::cmd("PING"),
                    RoutingInfo::MultiNode((MultipleNodeRoutingInfo::AllMasters, Some(policy))),
                )
                .await
                .map(drop),
        }
    }
}

/// The masters' addresses in a `CLUSTER SLOTS` reply: `[[start, end, [host, port, ..], replicas..], ..]`.
fn slot_masters(v: &Value) -> std::collections::BTreeSet<(String, u16)> {
    let text = |v: &Value| match v {
        Value::BulkString(b) => Some(String::from_utf8_lossy(b).into_owned()),
        Value::SimpleString(s) => Some(s.clone()),
        _ => None,
    };
    let Value::Array(ranges) = v else {
        return Default::default();
    };
    ranges
        .iter()
        .filter_map(|r| match r {
            Value::Array(r) => match r.get(2) {
                Some(Value::Array(m)) => match (m.first().and_then(text), m.get(1)) {
                    (Some(h), Some(Value::Int(p))) => Some((h, u16::try_from(*p).ok()?)),
                    _ => None,
                },
                _ => None,
            },
            _ => None,
        })
        .collect()
}

impl ConnectionLike for RedisConnection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Node(c) => c.req_packed_command(cmd),
            Self::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Node(c) => c.req_packed_commands(pipeline, offset, count),
            Self::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Node(c) => c.get_db(),
            Self::Cluster(c) => c.get_db(),
        }
    }
}
