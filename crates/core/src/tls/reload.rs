//! Certificate rotation without a restart. `reqwest::Client` is immutable, so the current
//! client sits behind a lock that is only held to clone an `Arc` (never across an await):
//! a call takes the client of the moment and keeps it for its whole exchange, so a swap
//! never breaks a call in flight; the old client (and its pooled connections) goes away
//! with its last call. New calls, on the new client, open new connections with the new
//! material.
//!
//! Rotation is detected by polling (`tlsReloadMs`) each file's inode, size and mtime,
//! through symlinks: an atomic rename (cert-manager, SPIFFE agents) or kubelet's `..data`
//! symlink swap changes the inode. Polling rather than inotify: it sees a rename of a
//! parent directory link too, costs three `stat`s per period, and needs no new crate.

use std::path::Path;
use std::sync::Arc;

use parking_lot::RwLock;
use tokio_util::sync::CancellationToken;

use super::TlsConfig;

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

    fn swap(&self, c: Clients) {
        let mut slot = self.0.write();
        // A rotation finishing after the breaker closed does not bring the clients back.
        if slot.is_some() {
            *slot = Some(c);
        }
    }

    /// Drops the clients (their pools, idle connections and TLS config) when the breaker
    /// closes; calls in flight keep the one they took until they end.
    pub fn release(&self) {
        let old = self.0.write().take();
        drop(old);
    }
}

/// What a reload check did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReloadReport {
    /// The files changed and the new material is in use.
    Reloaded,
    /// The files changed but did not load; the previous material stays in use. The reason
    /// names the file and the problem, never its content.
    Failed(String),
}

pub(super) type Stamp = Vec<Option<(u64, u64, u64, std::time::SystemTime)>>;

pub(super) fn stamp(files: &[&Path]) -> Stamp {
    files
        .iter()
        .map(|p| {
            let m = std::fs::metadata(p).ok()?;
            Some((inode(&m), dev(&m), m.len(), m.modified().ok()?))
        })
        .collect()
}

#[cfg(unix)]
fn inode(m: &std::fs::Metadata) -> u64 {
    std::os::unix::fs::MetadataExt::ino(m)
}
#[cfg(unix)]
fn dev(m: &std::fs::Metadata) -> u64 {
    std::os::unix::fs::MetadataExt::dev(m)
}
#[cfg(not(unix))]
fn inode(_: &std::fs::Metadata) -> u64 {
    0
}
#[cfg(not(unix))]
fn dev(_: &std::fs::Metadata) -> u64 {
    0
}

/// Polls the material's files every `tls.reload` until `stop`, swapping `slot`'s client
/// when they change and telling `report` either way. Nothing to do without files or with
/// a zero period.
pub fn spawn_reload(
    rt: &tokio::runtime::Handle,
    slot: ClientSlot,
    tls: TlsConfig,
    base: Option<url::Url>,
    stop: CancellationToken,
    report: Box<dyn Fn(ReloadReport) + Send + Sync>,
) {
    if tls.reload.is_zero() || tls.files().is_empty() {
        return;
    }
    rt.spawn(async move {
        let mut seen = stamp(&tls.files());
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(tls.reload) => {}
            }
            // The breaker dropped its client without a shutdown: nothing left to reload.
            if Arc::strong_count(&slot.0) == 1 {
                return;
            }
            let now = stamp(&tls.files());
            if now == seen {
                continue;
            }
            // A half-written file fails to load and is retried when it changes again.
            seen = now;
            // Reading files and building a client (platform roots included) blocks for
            // milliseconds: kept off the I/O threads.
            let (t, b) = (tls.clone(), base.clone());
            let built = tokio::task::spawn_blocking(move || {
                let m = t.load().map_err(|e| e.message)?;
                t.build_clients(m, b.as_ref())
            })
            .await
            .unwrap_or_else(|_| Err("the reload task panicked".into()));
            match built {
                Ok(c) => {
                    slot.swap(c);
                    report(ReloadReport::Reloaded);
                }
                Err(why) => report(ReloadReport::Failed(why)),
            }
        }
    });
}
