//! Redis client plumbing shared by every feature that keeps state in Redis (the shared
//! last-known-good cache, the fleet outbox, the fleet circuit): URL parsing for one node,
//! Sentinel and Cluster ([`RedisSpec`]), building the redis-rs client with TLS and
//! timeouts ([`RedisClient`]), one connection type for every mode ([`RedisConnection`],
//! a redis-rs `ConnectionLike`, so any command, streams and consumer groups included,
//! runs through it), a reconnecting shared connection ([`RedisLink`]), a subscription to a
//! channel in every mode ([`Subscription`]), and redaction of credentials from every
//! message.
//!
//! Nothing here knows about the LKG: queues, health and keys belong to the feature.

mod client;
mod connection;
mod link;
mod pubsub;
mod url;

pub use client::{read_ca_file, RedisClient, RedisOptions};
pub use connection::{is_broken, RedisConnection};
pub use link::RedisLink;
pub use pubsub::Subscription;
pub use url::{Mode, Node, RedisSpec};

#[cfg(test)]
pub(crate) mod test_servers;
