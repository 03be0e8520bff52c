//! The files the configuration names, read when a breaker is built by the features that
//! use them (the upstream's PEM material by `tls`, the Redis CA by `redis`), never by the
//! configuration itself. A file that does not load fails with the ECONFIG the table's own
//! checks give, naming its option or variable (`config::Origins`) and never its content.

use crate::config::{Config, ConfigError, RawOptions, Setting};
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

/// The configuration as `createBreaker` checks it, without building a breaker: the table
/// (`Config::resolve`), then every file it names (as [`load_files`] reads them when a
/// breaker is built); on success, each setting's effective value and source, secrets
/// masked (for `dnastore-breaker config`).
pub fn check_config(
    opts: &RawOptions,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<Setting>, ConfigError> {
    let config = Config::resolve(opts, env)?;
    load_files(&config)?;
    Config::effective(opts, env)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_config_refuses_what_building_refuses_a_file_included() {
        let env = |k: &str| (k == "DNASTORE_CA_CERT").then(|| "/nonexistent/ca.pem".to_string());
        let opts = RawOptions::new();
        // The table accepts it; the file is what fails, as when a breaker is built.
        let config = Config::resolve(&opts, &env).unwrap();
        let built = load_files(&config).err().expect("the CA file is missing");
        let checked = check_config(&opts, &env).unwrap_err();
        assert_eq!(checked, built);
        assert_eq!(checked.key, "DNASTORE_CA_CERT");
        assert_eq!(
            check_config(&opts, &|_| None).unwrap(),
            Config::effective(&opts, &|_| None).unwrap()
        );
    }
}
