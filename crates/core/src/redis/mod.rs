//! Redis client plumbing shared by every feature that keeps state in Redis (the shared
//! last-known-good cache, the fleet outbox): building the redis-rs client with TLS and
//! timeouts ([`RedisClient`]) for a URL the configuration parsed
//! ([`RedisSpec`](crate::config::RedisSpec): one node, Sentinel or Cluster), one
//! connection type for every mode ([`RedisConnection`], a redis-rs `ConnectionLike`, so
//! any command, streams and consumer groups included, runs through it), and redaction of
//! credentials from every message.
//!
//! Nothing here knows about a feature: queues, health and keys belong to the LKG and the
//! outbox. So it sits below them, beside the foundations (it imports only `config` and
//! `pem`): both build on it, neither through the other.

mod client;
mod connection;

pub use client::{read_ca_file, RedisClient};
pub use connection::{is_broken, RedisConnection};

#[cfg(test)]
pub(crate) mod test_servers;
