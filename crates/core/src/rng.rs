//! Injected randomness for jitter; idempotency keys from the OS's cryptographic source.
//!
//! SplitMix64 over one atomic: lock-free, so concurrent retries never contend, and
//! seedable, so tests get a fixed sequence.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{CallError, Code};

pub trait Rng: Send + Sync + 'static {
    fn next_u64(&self) -> u64;

    /// Uniform in [0, 1).
    fn next_f64(&self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[derive(Debug)]
pub struct SplitMix64 {
    state: AtomicU64,
}

impl SplitMix64 {
    pub fn seeded(seed: u64) -> Self {
        Self {
            state: AtomicU64::new(seed),
        }
    }

    /// Seeded from the OS; falls back to the address-space layout and time if the OS
    /// source is unavailable, because jitter must never make construction fail.
    pub fn from_entropy() -> Self {
        let mut buf = [0u8; 8];
        let seed = match getrandom::fill(&mut buf) {
            Ok(()) => u64::from_le_bytes(buf),
            Err(_) => {
                let t = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos() as u64)
                    .unwrap_or(0);
                t ^ (&buf as *const _ as u64)
            }
        };
        Self::seeded(seed)
    }
}

impl Rng for SplitMix64 {
    fn next_u64(&self) -> u64 {
        let mut z = self
            .state
            .fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed)
            .wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

/// A random UUIDv4: the `Idempotency-Key` sent on every attempt of one call. From the
/// OS's cryptographic source, never from the jitter PRNG above: a key another client can
/// predict would let it collide with (and be deduplicated against) this client's writes.
/// Read 32 keys at a time per thread: one `getrandom` syscall per key was most of what a
/// durable live write costs over a plain one.
pub fn idempotency_key() -> Result<String, CallError> {
    const KEYS: usize = 32;
    thread_local! {
        static POOL: std::cell::RefCell<([u8; 16 * KEYS], usize)> =
            const { std::cell::RefCell::new(([0; 16 * KEYS], 16 * KEYS)) };
    }
    POOL.with(|p| {
        let (buf, used) = &mut *p.borrow_mut();
        if *used == buf.len() {
            getrandom::fill(buf).map_err(|_| {
                CallError::new(
                    Code::Internal,
                    "the OS random source failed: cannot generate an Idempotency-Key",
                )
            })?;
            *used = 0;
        }
        let mut b = [0u8; 16];
        b.copy_from_slice(&buf[*used..*used + 16]);
        // Each key's bytes are used once and wiped.
        buf[*used..*used + 16].fill(0);
        *used += 16;
        Ok(uuid_v4_format(b))
    })
}

fn uuid_v4_format(mut b: [u8; 16]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let mut out = String::with_capacity(36);
    for (i, x) in b.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            out.push('-');
        }
        out.push(HEX[(x >> 4) as usize] as char);
        out.push(HEX[(x & 0x0f) as usize] as char);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn f64_is_in_unit_interval_and_seed_is_deterministic() {
        let a = SplitMix64::seeded(7);
        let b = SplitMix64::seeded(7);
        for _ in 0..1000 {
            let x = a.next_f64();
            assert!((0.0..1.0).contains(&x));
            assert_eq!(x, b.next_f64());
        }
    }

    #[test]
    fn idempotency_keys_are_v4_uuids_from_the_os() {
        let u = idempotency_key().unwrap();
        assert_eq!(u.len(), 36);
        assert_eq!(&u[14..15], "4");
        assert!(matches!(&u[19..20], "8" | "9" | "a" | "b"));
        assert_ne!(u, idempotency_key().unwrap());
        let many: std::collections::HashSet<String> =
            (0..1000).map(|_| idempotency_key().unwrap()).collect();
        assert_eq!(many.len(), 1000, "across refills of the pool");
        assert_eq!(
            uuid_v4_format([0; 16]),
            "00000000-0000-4000-8000-000000000000"
        );
    }
}
