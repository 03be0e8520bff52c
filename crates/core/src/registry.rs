//! The process-wide registry of breakers, keyed by name. Every `createBreaker` with the
//! same name and the same options shares one breaker (one state, one set of series),
//! whichever JS context or worker thread asks; the last handle's close removes it.
//! [`render_metrics`] also refreshes the guarded circuits' gauges (the class's breakers).

use std::collections::HashMap;
use std::sync::{Arc, LazyLock};

use parking_lot::Mutex;

use crate::breaker::{Breaker, Deps};
use crate::config::Config;
use crate::error::{CallError, Code};
use crate::observer::Observer;

struct Entry {
    breaker: Arc<Breaker>,
    handles: usize,
}

static REGISTRY: LazyLock<Mutex<HashMap<String, Entry>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

/// Returns the breaker named `config.name`, creating (and starting) it if needed.
pub fn open(config: Config, deps: Deps) -> Result<Arc<Breaker>, CallError> {
    open_with(config, deps, None).map(|(b, _)| b)
}

/// [`open`], with `first` subscribed (its id returned) before a new breaker starts its
/// background work, so it hears that work's first events (the fleet circuit's connect).
pub fn open_with(
    config: Config,
    deps: Deps,
    first: Option<Arc<dyn Observer>>,
) -> Result<(Arc<Breaker>, Option<u64>), CallError> {
    let b = open_entry(config, deps)?;
    let id = first.map(|o| b.subscribe(o));
    b.start();
    Ok((b, id))
}

fn open_entry(config: Config, deps: Deps) -> Result<Arc<Breaker>, CallError> {
    let mut reg = REGISTRY.lock();
    if let Some(e) = reg.get_mut(&config.name) {
        if *e.breaker.config() != config {
            return Err(CallError::new(
                Code::Config,
                format!(
                    "a breaker named {:?} already exists in this process with different options; use another name or the same options",
                    config.name
                ),
            ));
        }
        e.handles += 1;
        return Ok(e.breaker.clone());
    }
    let b = Breaker::new(config, deps)?;
    reg.insert(
        b.name().to_string(),
        Entry {
            breaker: b.clone(),
            handles: 1,
        },
    );
    Ok(b)
}

/// Drops one handle; the last one closes the breaker (its calls settle with ESHUTDOWN, its
/// background work stops, its metric series go) and removes it.
pub fn close(b: &Arc<Breaker>) {
    let mut reg = REGISTRY.lock();
    let last = match reg.get_mut(b.name()) {
        Some(e) if Arc::ptr_eq(&e.breaker, b) => {
            e.handles -= 1;
            e.handles == 0
        }
        _ => false,
    };
    if last {
        reg.remove(b.name());
        b.close();
    }
}

pub fn all() -> Vec<Arc<Breaker>> {
    REGISTRY
        .lock()
        .values()
        .map(|e| e.breaker.clone())
        .collect()
}

/// Prometheus text for every breaker in the process.
pub fn render_metrics() -> String {
    for b in all() {
        b.refresh_gauges();
    }
    crate::guarded::refresh_gauges();
    crate::metrics::render()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{RawOptions, RawValue};

    fn cfg(name: &str, timeout: f64) -> Config {
        let o = RawOptions::new()
            .set("name", RawValue::String(name.into()))
            .set("timeout", RawValue::Number(timeout));
        Config::resolve(&o, &|_| None).unwrap()
    }

    #[tokio::test]
    async fn same_name_shares_state_and_last_close_removes_series() {
        let a = open(cfg("registry-shared", 100.0), Deps::default()).unwrap();
        let b = open(cfg("registry-shared", 100.0), Deps::default()).unwrap();
        assert!(Arc::ptr_eq(&a, &b));
        assert!(open(cfg("registry-shared", 200.0), Deps::default()).is_err());
        assert!(render_metrics().contains("registry-shared"));
        close(&a);
        assert!(
            render_metrics().contains("registry-shared"),
            "one handle left"
        );
        close(&b);
        assert!(!render_metrics().contains("registry-shared"));
    }
}
