//! Redis client plumbing shared by every feature that keeps state in Redis (the shared
//! last-known-good cache, the fleet outbox, the fleet circuit): building the redis-rs client
//! with TLS and timeouts ([`RedisClient`]) for a URL the configuration parsed
//! ([`RedisSpec`](crate::config::RedisSpec): one node, Sentinel or Cluster), one
//! connection type for every mode ([`RedisConnection`], a redis-rs `ConnectionLike`, so
//! any command, streams and consumer groups included, runs through it), a reconnecting
//! shared connection ([`RedisLink`]), a subscription to a channel in every mode
//! ([`Subscription`]), and redaction of credentials from every message.
//!
//! Nothing here knows about a feature: queues, health and keys belong to the LKG, the
//! outbox and the fleet circuit. So it sits below them, beside the foundations (it imports
//! only `config` and `pem`): all build on it, none through another.

mod client;
mod connection;
mod link;
mod pubsub;

pub use client::{read_ca_file, RedisClient};
pub use connection::{is_broken, RedisConnection};
pub use link::{LinkFailure, RedisLink};
pub use pubsub::Subscription;

#[cfg(test)]
pub(crate) mod test_servers;
