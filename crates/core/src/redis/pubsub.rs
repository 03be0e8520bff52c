//! A subscription to one channel, for every mode a [`RedisClient`] speaks: a dedicated
//! RESP2 pub/sub connection to the node (single node), to the master the Sentinels name
//! now (asked anew on every subscribe, so a failover is followed by subscribing again), or
//! to one node of a Cluster (the first seed that answers: a plain PUBLISH is broadcast to
//! every node over the cluster bus, so any node hears every message).
//!
//! Pub/sub is at-most-once: a message published while the subscriber reconnects is lost.
//! Callers that must not miss a change read the state it describes after subscribing and
//! now and then (`fleet/`). The stream ends when the connection does; the caller then
//! subscribes again.

use futures_util::StreamExt;
use redis::aio::{PubSubSink, PubSubStream};
use redis::{Client, RedisResult};

use super::client::node_client;
use super::RedisClient;
use crate::config::Mode;

/// One live subscription. Dropping it closes the connection.
pub struct Subscription {
    stream: PubSubStream,
    /// Kept so the connection stays subscribed (dropping the sink would close it).
    _sink: PubSubSink,
}

impl Subscription {
    /// The next message's payload; `None` once the connection has ended.
    pub async fn next(&mut self) -> Option<Vec<u8>> {
        let m = self.stream.next().await?;
        Some(m.get_payload_bytes().to_vec())
    }
}

impl RedisClient {
    /// Subscribes to `channel`, bounded by the connect timeout (plus one reply). The error
    /// is one line without credentials.
    pub async fn subscribe(&self, channel: &str) -> Result<Subscription, String> {
        let open = async {
            match &self.spec().mode {
                Mode::Single => match self.single() {
                    Some(c) => subscribe_on(c, channel).await,
                    None => Err(not_built()),
                },
                Mode::Sentinel { .. } => {
                    let client = self.sentinel_client()?.async_get_client().await?;
                    subscribe_on(&client, channel).await
                }
                Mode::Cluster => {
                    let mut last = None;
                    for n in &self.spec().nodes {
                        let tried = async {
                            let c =
                                node_client(n, self.spec().tls, &self.settings, self.ca.as_ref())?;
                            subscribe_on(&c, channel).await
                        };
                        match tried.await {
                            Ok(s) => return Ok(s),
                            Err(e) => last = Some(e),
                        }
                    }
                    Err(last.unwrap_or_else(not_built))
                }
            }
        };
        let bound = self.options().connect_timeout + self.options().response_timeout;
        match tokio::time::timeout(bound, open).await {
            Ok(Ok(s)) => Ok(s),
            Ok(Err(e)) => Err(self.describe(&e)),
            Err(_) => Err(format!(
                "no subscription within {} ms (redisConnectTimeoutMs + redisResponseTimeoutMs)",
                bound.as_millis()
            )),
        }
    }
}

async fn subscribe_on(c: &Client, channel: &str) -> RedisResult<Subscription> {
    let (mut sink, stream) = c.get_async_pubsub().await?.split();
    sink.subscribe(channel).await?;
    Ok(Subscription {
        stream,
        _sink: sink,
    })
}

fn not_built() -> redis::RedisError {
    redis::RedisError::from((
        redis::ErrorKind::InvalidClientConfig,
        "no node to subscribe on",
    ))
}
