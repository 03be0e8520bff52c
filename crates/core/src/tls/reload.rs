//! Certificate rotation without a restart: this watches the files and loads the new
//! material; whoever uses it renews itself from it ([`Renew`]). The breaker's HTTP clients
//! are swapped so that a call in flight keeps the client it took (`http/clients.rs`): new
//! calls, on the new client, open new connections with the new material.
//!
//! Rotation is detected by polling (`tlsReloadMs`) each file's inode, size and mtime,
//! through symlinks: an atomic rename (cert-manager, SPIFFE agents) or kubelet's `..data`
//! symlink swap changes the inode. Polling rather than inotify: it sees a rename of a
//! parent directory link too, costs three `stat`s per period, and needs no new crate.

use std::path::Path;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use super::{Material, TlsMetrics};
use crate::config::TlsConfig;

/// What a rotation renews: the breaker's HTTP clients (`breaker/build.rs` builds them with
/// `http::build_clients` from the new material). The watch knows nothing of HTTP.
pub trait Renew: Send + Sync + 'static {
    /// False once nothing uses the material any more (the breaker dropped its client
    /// without a shutdown): the watch ends.
    fn in_use(&self) -> bool;
    /// Puts `m` to use. Called on the blocking pool: building a client (platform roots
    /// included) blocks for milliseconds.
    fn renew(&self, m: Material) -> Result<(), String>;
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

/// Polls the material's files every `tls.reload` until `stop`, handing the new material to
/// `target` when they change, counting the result in `metrics` and telling `report` either
/// way. Nothing to do without files or with a zero period.
pub fn spawn_reload(
    rt: &tokio::runtime::Handle,
    tls: TlsConfig,
    target: Arc<dyn Renew>,
    metrics: TlsMetrics,
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
            if !target.in_use() {
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
            let (t, target) = (tls.clone(), target.clone());
            let renewed = tokio::task::spawn_blocking(move || {
                let m = super::load(&t).map_err(|e| e.message)?;
                target.renew(m)
            })
            .await
            .unwrap_or_else(|_| Err("the reload task panicked".into()));
            match renewed {
                Ok(()) => {
                    metrics.reloaded.inc();
                    report(ReloadReport::Reloaded);
                }
                Err(why) => {
                    metrics.reload_failed.inc();
                    report(ReloadReport::Failed(why));
                }
            }
        }
    });
}
