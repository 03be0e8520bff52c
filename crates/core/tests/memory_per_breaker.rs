//! Issue 25 (6): the heap one breaker costs, counted by the allocator (exact, whatever the
//! machine's load, unlike RSS: bench/memory-per-breaker.js measures RSS in a Node process).
//!
//! Where a breaker's memory went (1,000 breakers with default options, heap bytes each):
//! before, ~270 KB: two reqwest clients of ~100 KB each, nearly all of it the platform
//! verifier's parsed system root store (loaded again for every client), ~15 KB more per
//! client for rustls' TLS session cache (allocated for 32 servers up front), ~34 KB of
//! LRU map the LKG cache allocated for its 1,000 entries before storing one, ~27 KB of
//! metric series, and a few KB for the circuit, the config and the rest. Now, ~38 KB: one
//! verifier per distinct set of roots for the whole process (`tls/client_config.rs`), one
//! rustls config per breaker shared by its two clients with a session cache for 4 servers,
//! the LKG map grown as entries arrive; the metric series (~27 KB: about 60 pre-created
//! series, labels and histogram buckets each) are the bulk of what is left.
//!
//! One test in this binary: the counting allocator sees every thread of the process.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};
use std::sync::Arc;

use dnastore_core::{registry, Breaker, Config, Deps, RawOptions, RawValue};

/// Counts live heap bytes, then lets the system allocator do the work.
struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: every method forwards to `System` with the caller's arguments unchanged, so
// `System`'s guarantees are this allocator's; the counter has no effect on the memory.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        LIVE.fetch_add(l.size() as isize, Ordering::Relaxed);
        // SAFETY: the caller's contract for `alloc`, passed on as is.
        unsafe { System.alloc(l) }
    }

    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size() as isize, Ordering::Relaxed);
        // SAFETY: `p` came from `alloc`/`realloc` above with layout `l`, i.e. from `System`.
        unsafe { System.dealloc(p, l) }
    }

    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        LIVE.fetch_add(new as isize - l.size() as isize, Ordering::Relaxed);
        // SAFETY: as `dealloc`, and `new` is the caller's valid new size.
        unsafe { System.realloc(p, l, new) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

fn live() -> isize {
    LIVE.load(Ordering::Relaxed)
}

fn config(name: &str) -> Config {
    let o = RawOptions::new()
        .set("name", RawValue::String(name.into()))
        .set("baseUrl", RawValue::String("https://127.0.0.1:9".into()));
    Config::resolve(&o, &|_| None).unwrap()
}

const N: usize = 1000;
/// Per live breaker. Before: ~270 KB (would fail by far); now ~38 KB, so this leaves 2.5x
/// for allocator-independent growth (a new metric family, a larger config) before it trips.
const LIVE_BOUND: isize = 96 * 1024;
/// Per breaker once closed and dropped: what stays in shared structures (the registry's
/// and metric families' maps keep their capacity). Measured ~2 KB.
const AFTER_BOUND: isize = 8 * 1024;

#[test]
fn a_breaker_costs_under_96_kb_of_heap_and_gives_it_back_when_closed() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let deps = || Deps {
        runtime: Some(rt.handle().clone()),
        ..Deps::default()
    };
    // Process-wide, once: the shared verifier (the system roots), metric families.
    let first = registry::open(config("mem-first"), deps()).unwrap();
    let before = live();
    let all: Vec<Arc<Breaker>> = (0..N)
        .map(|i| registry::open(config(&format!("mem-{i}")), deps()).unwrap())
        .collect();
    let per_live = (live() - before) / N as isize;
    for b in &all {
        registry::close(b);
    }
    let per_closed_held = (live() - before) / N as isize;
    drop(all);
    // Background tasks (none here without TLS files or an outbox) end on their own.
    std::thread::sleep(std::time::Duration::from_millis(100));
    let per_after = (live() - before) / N as isize;
    println!(
        "heap per breaker: {per_live} B live, {per_closed_held} B closed (handle held), {per_after} B closed and dropped"
    );
    assert!(
        per_live < LIVE_BOUND,
        "{per_live} B of heap per live breaker (bound {LIVE_BOUND})"
    );
    assert!(
        per_closed_held < per_live,
        "closing releases some even while the handle is held: {per_closed_held} of {per_live} B"
    );
    assert!(
        per_after < AFTER_BOUND,
        "{per_after} B per breaker left after close and drop (bound {AFTER_BOUND})"
    );
    // Every breaker shared the first one's verifier: one set of roots, one verifier.
    assert_eq!(dnastore_core::tls::live_verifiers(), 1);
    registry::close(&first);
    drop(first);
    assert_eq!(
        dnastore_core::tls::live_verifiers(),
        0,
        "gone with its last client"
    );
}
