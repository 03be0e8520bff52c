//! One connection of any mode, as a redis-rs `ConnectionLike` (any command runs through
//! it), with the health checks the callers' loops need.

use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{
    MultipleNodeRoutingInfo, ResponsePolicy, RoutingInfo, SingleNodeRoutingInfo,
};
use redis::{Cmd, Pipeline, RedisError, RedisFuture, RedisResult, Value};

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
