//! Building redis-rs clients from a [`RedisSpec`] and opening one connection, bounded.
//!
//! The connection is redis-rs's: a multiplexed (pipelined) connection to one node, to the
//! master Sentinel names, or the cluster connection that follows slots, MOVED/ASK and
//! failovers. Reconnecting is the caller's loop, not redis-rs's `ConnectionManager`: that
//! one reconnects from detached tasks that outlive it (a stop could not stop them) and
//! cannot ask Sentinel again for a new master. A caller that owns its loop gets both: on a
//! broken connection it calls [`RedisClient::connect`] again, which asks Sentinel anew.

use redis::cluster::ClusterClient;
use redis::sentinel::{SentinelClient, SentinelClientBuilder, SentinelServerType};
use redis::{
    AsyncConnectionConfig, Client, ConnectionAddr, IntoConnectionInfo, RedisConnectionInfo,
    RedisError, RedisResult, TlsCertificates, TlsMode,
};

use super::connection::RedisConnection;
use crate::config::{Mode, Node, RedisOptions, RedisSpec};

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
    /// Database and credentials of one node, and the CA: what a plain client for one node
    /// of the spec needs (a Cluster subscriber talks to one node, `pubsub.rs`).
    pub(super) settings: RedisConnectionInfo,
    pub(super) ca: Option<TlsCertificates>,
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
    let pem = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    // Parsed with the rustls types redis-rs itself uses, so what passes here loads there.
    match crate::pem::certificates(&pem) {
        Some(n) if n > 0 => Ok(pem),
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

/// A plain client for one node: its address, the spec's database and credentials, the CA.
pub(super) fn node_client(
    n: &Node,
    tls: bool,
    settings: &RedisConnectionInfo,
    ca: Option<&TlsCertificates>,
) -> RedisResult<Client> {
    let info = addr(n, tls)
        .into_connection_info()?
        .set_redis_settings(settings.clone());
    match ca.cloned() {
        Some(ca) => Client::build_with_tls(info, ca),
        None => Client::open(info),
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
            Mode::Single => Kind::Single(
                node_client(&spec.nodes[0], spec.tls, &settings, ca.as_ref()).map_err(describe)?,
            ),
            Mode::Sentinel { master } => Kind::Sentinel {
                sentinels: spec.nodes.iter().map(|n| addr(n, spec.tls)).collect(),
                master: master.clone(),
                ca: ca.clone(),
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
                if let Some(ca) = ca.clone() {
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
        Ok(Self {
            spec,
            opts,
            kind,
            settings,
            ca,
        })
    }

    /// A Sentinel client asking for the master (Sentinel mode only): built per connect, so
    /// every reconnect asks the Sentinels which node is master now.
    pub(super) fn sentinel_client(&self) -> RedisResult<SentinelClient> {
        let Kind::Sentinel {
            sentinels,
            master,
            ca,
        } = &self.kind
        else {
            return Err(RedisError::from((
                redis::ErrorKind::InvalidClientConfig,
                "not a Sentinel URL",
            )));
        };
        let mut b =
            SentinelClientBuilder::new(sentinels.clone(), master, SentinelServerType::Master)?
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
        b.build()
    }

    /// The plain client of a single-node URL.
    pub(super) fn single(&self) -> Option<&Client> {
        match &self.kind {
            Kind::Single(c) => Some(c),
            _ => None,
        }
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
                Kind::Sentinel { .. } => self
                    .sentinel_client()?
                    .get_async_connection_with_config(&self.config())
                    .await
                    .map(RedisConnection::Node),
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
