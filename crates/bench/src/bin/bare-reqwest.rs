//! The ceiling for the closed-circuit bench: a bare reqwest client, no breaker, no retries,
//! no cache, no metrics, configured like dnastore-core's client (rustls without a provider,
//! no proxy, TCP_NODELAY, large idle pool). `concurrency` tasks each send GETs back to back.
//!
//! Speaks the same protocol as bench/contender.js: warm up, measure for a fixed time, print
//! one JSON line {requests, errors, elapsedMs, cpuUs, p50Us, p99Us} on stdout. CPU is
//! getrusage(RUSAGE_SELF) over the measured window, so it counts every thread of this process.
//!
//! Usage: bare-reqwest --url URL [--concurrency 50] [--threads 2|1] [--warmup-ms 1000] [--duration-ms 4000]
//! `--threads 1` runs a current-thread runtime (everything on the main thread); any other
//! value a multi-thread runtime with that many workers.

use std::process::ExitCode;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const WARMUP: u8 = 0;
const MEASURE: u8 = 1;
const STOP: u8 = 2;

struct Args {
    url: String,
    concurrency: usize,
    threads: usize,
    warmup: Duration,
    duration: Duration,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        url: String::new(),
        concurrency: 50,
        threads: 2,
        warmup: Duration::from_millis(1000),
        duration: Duration::from_millis(4000),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let num = || {
            value
                .parse::<u64>()
                .map_err(|_| format!("{flag}: not a number: {value}"))
        };
        match flag.as_str() {
            "--url" => a.url = value.clone(),
            "--concurrency" => a.concurrency = num()?.max(1) as usize,
            "--threads" => a.threads = num()?.max(1) as usize,
            "--warmup-ms" => a.warmup = Duration::from_millis(num()?),
            "--duration-ms" => a.duration = Duration::from_millis(num()?),
            _ => return Err(format!("unknown flag {flag}")),
        }
    }
    if a.url.is_empty() {
        return Err("--url is required".into());
    }
    Ok(a)
}

/// User + system CPU of the whole process, microseconds.
fn cpu_us() -> u64 {
    // SAFETY: getrusage only writes the struct we pass.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let tv = |t: libc::timeval| t.tv_sec as u64 * 1_000_000 + t.tv_usec as u64;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// One connection's loop: returns the latencies (us) of requests completed while measuring.
async fn worker(
    client: reqwest::Client,
    url: reqwest::Url,
    phase: Arc<AtomicU8>,
) -> (Vec<u32>, u64) {
    let mut lat = Vec::with_capacity(1 << 16);
    let mut errors = 0u64;
    loop {
        let p = phase.load(Ordering::Relaxed);
        if p == STOP {
            break;
        }
        let t0 = Instant::now();
        let ok = match client.get(url.clone()).send().await {
            Ok(res) => {
                let good = res.status().is_success();
                res.bytes().await.is_ok() && good
            }
            Err(_) => false,
        };
        // Only requests that both started and finished inside the window count.
        if p == MEASURE && phase.load(Ordering::Relaxed) == MEASURE {
            if ok {
                lat.push(t0.elapsed().as_micros().min(u32::MAX as u128) as u32);
            } else {
                errors += 1;
            }
        }
    }
    (lat, errors)
}

fn percentile(sorted: &[u32], q: f64) -> u32 {
    if sorted.is_empty() {
        return 0;
    }
    let i = ((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

async fn run(a: Args) -> Result<String, String> {
    let url = reqwest::Url::parse(&a.url).map_err(|e| format!("--url: {e}"))?;
    // The breaker's own client configuration, without the breaker around it.
    let client = dnastore_core::http::client_builder()
        .build()
        .map_err(|e| format!("client: {e}"))?;
    let phase = Arc::new(AtomicU8::new(WARMUP));
    let handles: Vec<_> = (0..a.concurrency)
        .map(|_| tokio::spawn(worker(client.clone(), url.clone(), phase.clone())))
        .collect();
    tokio::time::sleep(a.warmup).await;
    let (t0, c0) = (Instant::now(), cpu_us());
    phase.store(MEASURE, Ordering::Relaxed);
    tokio::time::sleep(a.duration).await;
    phase.store(STOP, Ordering::Relaxed);
    let (elapsed, cpu) = (t0.elapsed(), cpu_us() - c0);
    let mut all = Vec::new();
    let mut errors = 0;
    for h in handles {
        let (lat, e) = h.await.map_err(|e| format!("worker: {e}"))?;
        all.extend_from_slice(&lat);
        errors += e;
    }
    all.sort_unstable();
    Ok(format!(
        "{{\"requests\":{},\"errors\":{},\"elapsedMs\":{:.3},\"cpuUs\":{},\"p50Us\":{},\"p99Us\":{}}}",
        all.len(),
        errors,
        elapsed.as_secs_f64() * 1000.0,
        cpu,
        percentile(&all, 0.50),
        percentile(&all, 0.99),
    ))
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("bare-reqwest: {e}");
            return ExitCode::from(2);
        }
    };
    let mut rt = if args.threads == 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        b.worker_threads(args.threads);
        b
    };
    let rt = match rt.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("bare-reqwest: runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(args)) {
        Ok(line) => {
            println!("{line}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("bare-reqwest: {e}");
            ExitCode::FAILURE
        }
    }
}
