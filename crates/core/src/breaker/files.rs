//! The files the configuration names, read when a breaker is built by the features that
//! use them (the upstream's PEM material by `tls`, the Redis CA by `redis`), never by the
//! configuration itself. A file that does not load fails with the ECONFIG the table's own
//! checks give, naming its option or variable (`config::Origins`) and never its content.

use crate::config::{Config, ConfigError};
use crate::tls::Material;

/// Reads and checks every file `config` names: the Redis CA first (for either Redis URL
/// that takes it), then the upstream's TLS material, which is returned for the clients.
pub fn load_files(config: &Config) -> Result<Material, ConfigError> {
    for ca in [&config.lkg.redis.ca_file, &config.outbox.redis.ca_file]
        .into_iter()
        .flatten()
    {
        crate::redis::read_ca_file(ca).map_err(|m| config.origins.redis_ca_file().invalid(&m))?;
    }
    crate::tls::load(&config.tls).map_err(|e| config.origins.tls(e.which).invalid(&e.message))
}
