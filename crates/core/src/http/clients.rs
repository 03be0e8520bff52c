//! The reqwest clients of a breaker: their shared base (`client_builder`: redirects within
//! the origin, the pool, no proxy unless configured), the two built per TLS material
//! ([`build_clients`]), and the slot a TLS rotation swaps them in ([`ClientSlot`]).
//!
//! `reqwest::Client` is immutable, so the current client sits behind a lock that is only
//! held to clone an `Arc` (never across an await): a call takes the client of the moment
//! and keeps it for its whole exchange, so a swap never breaks a call in flight; the old
//! client (and its pooled connections) goes away with its last call.

use std::sync::{Arc, Once};
use std::time::Duration;

use parking_lot::RwLock;
use url::Url;

use crate::config::{base_ip, ProxyMode, TlsConfig};

static CRYPTO: Once = Once::new();

/// Redirect hops followed within the upstream's origin.
const MAX_REDIRECTS: usize = 5;

/// Follows a redirect only within the origin of the request that got it: a resilience client
/// talks to the upstream it was given, and a redirect elsewhere would carry the caller's
/// headers (tenant, signing or API keys that reqwest does not know to strip) to another
/// host. The 3xx is then answered as the upstream's response (EHTTP).
fn same_origin_redirects() -> reqwest::redirect::Policy {
    reqwest::redirect::Policy::custom(|attempt| {
        let same = attempt
            .previous()
            .first()
            .is_some_and(|first| first.origin() == attempt.url().origin());
        if same && attempt.previous().len() <= MAX_REDIRECTS {
            attempt.follow()
        } else {
            attempt.stop()
        }
    })
}

/// The reqwest configuration of every breaker (also the bench's bare-reqwest ceiling, so
/// the two always measure the same client).
pub fn client_builder() -> reqwest::ClientBuilder {
    // reqwest is built with rustls but no provider; install ring once per process.
    // An Err means another part of the process installed one first: that one is used.
    CRYPTO.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
    reqwest::Client::builder()
        // Proxies from the environment would silently reroute the upstream; a
        // resilience client must talk to the address it was given.
        .no_proxy()
        .redirect(same_origin_redirects())
        .tcp_nodelay(true)
        .pool_idle_timeout(Duration::from_secs(60))
        .pool_max_idle_per_host(512)
}

/// Two clients built alike: `[0]` for calls polled by the I/O runtime, `[1]` for calls
/// polled on a thread that drives a runtime of its own (`crate::own_runtime`).
pub type Clients = [Arc<reqwest::Client>; 2];

/// The current clients, swapped together on rotation; `None` once the breaker closed.
///
/// Why two: hyper runs each connection as a task on the runtime that opened it. A call
/// polled by the binding's JS-thread runtime (its lone calls) that took a connection opened
/// by the I/O runtime would have that connection's socket I/O done on the I/O thread, one
/// cross-thread wake-up each way: what running the call there was meant to avoid. So each
/// kind of thread keeps its own pool.
#[derive(Clone)]
pub struct ClientSlot(Arc<RwLock<Option<Clients>>>);

impl ClientSlot {
    pub fn new(c: Clients) -> Self {
        Self(Arc::new(RwLock::new(Some(c))))
    }

    /// The client for one attempt on this thread (a refcount increment under a read lock);
    /// `None` after [`ClientSlot::release`].
    pub fn current(&self) -> Option<Arc<reqwest::Client>> {
        let own = crate::own_runtime::this_thread();
        self.0.read().as_ref().map(|c| c[usize::from(own)].clone())
    }

    /// Puts new clients in (a TLS rotation); calls in flight keep the ones they took.
    pub fn swap(&self, c: Clients) {
        let mut slot = self.0.write();
        // A rotation finishing after the breaker closed does not bring the clients back.
        if slot.is_some() {
            *slot = Some(c);
        }
    }

    /// False once only its renewer holds it (the breaker dropped its client without a
    /// shutdown): nothing left to renew.
    pub fn is_shared(&self) -> bool {
        Arc::strong_count(&self.0) > 1
    }

    /// Drops the clients (their pools, idle connections and TLS config) when the breaker
    /// closes; calls in flight keep the one they took until they end.
    pub fn release(&self) {
        let old = self.0.write().take();
        drop(old);
    }
}

/// The clients of a `ClientSlot`: one per kind of thread that sends (see `ClientSlot`),
/// with `rustls` (`tls::client_config`), and `tls`'s server name and proxy. They share one
/// rustls config (its verifier, and its TLS session cache, which rustls allocates for 32
/// servers up front: ~15 KB a config).
pub fn build_clients(
    rustls: rustls::ClientConfig,
    tls: &TlsConfig,
    base: Option<&Url>,
) -> Result<Clients, String> {
    let runtime = build_client(rustls.clone(), tls, base)?;
    let own = build_client(rustls, tls, base)?;
    Ok([Arc::new(runtime), Arc::new(own)])
}

/// A client with this rustls config on the `client_builder` base: redirects, pool, no
/// proxy unless configured.
fn build_client(
    rustls: rustls::ClientConfig,
    tls: &TlsConfig,
    base: Option<&Url>,
) -> Result<reqwest::Client, String> {
    let mut b = client_builder().tls_backend_preconfigured(rustls);
    if let (Some(name), Some(base)) = (&tls.server_name, base) {
        if let Some(ip) = base_ip(base) {
            // Port 0: the URL's port is used.
            b = b.resolve(name, std::net::SocketAddr::new(ip, 0));
        }
    }
    // reqwest's errors may embed a proxy URL: never shown.
    let bad_proxy = |_| "the proxy URL was refused by the HTTP client".to_string();
    match &tls.proxy {
        ProxyMode::Off => {}
        ProxyMode::Url(u) => b = b.proxy(reqwest::Proxy::all(u.as_str()).map_err(bad_proxy)?),
        ProxyMode::Env {
            https,
            http,
            no_proxy,
        } => {
            let np = || no_proxy.as_deref().and_then(reqwest::NoProxy::from_string);
            if let Some(u) = https {
                b = b.proxy(
                    reqwest::Proxy::https(u.as_str())
                        .map_err(bad_proxy)?
                        .no_proxy(np()),
                );
            }
            if let Some(u) = http {
                b = b.proxy(
                    reqwest::Proxy::http(u.as_str())
                        .map_err(bad_proxy)?
                        .no_proxy(np()),
                );
            }
        }
    }
    b.build()
        .map_err(|_| "could not build the HTTP client with this TLS material".to_string())
}
