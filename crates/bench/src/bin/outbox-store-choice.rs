//! How the durable outbox's embedded store was chosen (issue 13): SQLite in WAL mode
//! (rusqlite, bundled) against redb, each behind the same group commit, measured for
//! throughput, latency and syncs per write at 50 concurrent writers, and for crash safety
//! (a child killed with SIGKILL at a random moment must lose no acknowledged write).
//!
//! Run: cargo run --release -p dnastore-bench --bin outbox-store-choice [-- SECONDS KILLS]
//! (defaults 5 s per backend and 20 kills). The directory is a fresh one under $TMPDIR.
//! Results and the choice are in bench/README.md ("The outbox's store").

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use redb::ReadableDatabase;

const WRITERS: usize = 50;
const BODY: usize = 1024;

/// One durable append: the caller waits for the ack, which comes after the sync.
struct Job {
    id: u64,
    body: Vec<u8>,
    done: mpsc::SyncSender<()>,
}

trait Store: Send {
    /// Appends every job in one transaction, synced to disk before it returns.
    fn commit(&mut self, batch: &[Job]);
    fn contains(&mut self, id: u64) -> bool;
}

struct Sqlite(rusqlite::Connection);

impl Sqlite {
    fn open(dir: &Path) -> Self {
        let c = rusqlite::Connection::open(dir.join("outbox.sqlite")).expect("open sqlite");
        c.pragma_update(None, "journal_mode", "WAL").expect("wal");
        // FULL: the WAL is synced at every commit, so an acknowledged write survives a
        // power loss, not only a process crash.
        c.pragma_update(None, "synchronous", "FULL").expect("sync");
        c.execute_batch(
            "CREATE TABLE IF NOT EXISTS entries (id INTEGER PRIMARY KEY, body BLOB NOT NULL)",
        )
        .expect("schema");
        Self(c)
    }
}

impl Store for Sqlite {
    fn commit(&mut self, batch: &[Job]) {
        let tx = self.0.transaction().expect("begin");
        {
            let mut st = tx
                .prepare_cached("INSERT INTO entries (id, body) VALUES (?1, ?2)")
                .expect("prepare");
            for j in batch {
                st.execute(rusqlite::params![j.id as i64, j.body])
                    .expect("insert");
            }
        }
        tx.commit().expect("commit");
    }

    fn contains(&mut self, id: u64) -> bool {
        self.0
            .query_row("SELECT 1 FROM entries WHERE id = ?1", [id as i64], |_| {
                Ok(())
            })
            .is_ok()
    }
}

const TABLE: redb::TableDefinition<u64, &[u8]> = redb::TableDefinition::new("entries");

struct Redb(redb::Database);

impl Redb {
    fn open(dir: &Path) -> Self {
        // Durability::Immediate (the default): synced before commit returns.
        Self(redb::Database::create(dir.join("outbox.redb")).expect("open redb"))
    }
}

impl Store for Redb {
    fn commit(&mut self, batch: &[Job]) {
        let tx = self.0.begin_write().expect("begin");
        {
            let mut t = tx.open_table(TABLE).expect("table");
            for j in batch {
                t.insert(j.id, j.body.as_slice()).expect("insert");
            }
        }
        tx.commit().expect("commit");
    }

    fn contains(&mut self, id: u64) -> bool {
        let tx = self.0.begin_read().expect("read");
        match tx.open_table(TABLE) {
            Ok(t) => t.get(id).expect("get").is_some(),
            Err(_) => false,
        }
    }
}

fn open(backend: &str, dir: &Path) -> Box<dyn Store> {
    match backend {
        "sqlite" => Box::new(Sqlite::open(dir)),
        "redb" => Box::new(Redb::open(dir)),
        other => panic!("unknown backend {other}"),
    }
}

/// The group commit: one thread takes whatever is queued, commits it as one transaction
/// (one sync), then acknowledges every job in it. Returns the commit count at the end.
fn committer(mut store: Box<dyn Store>, rx: mpsc::Receiver<Job>) -> u64 {
    let mut commits = 0;
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while let Ok(j) = rx.try_recv() {
            batch.push(j);
            if batch.len() >= 1024 {
                break;
            }
        }
        store.commit(&batch);
        commits += 1;
        for j in batch {
            let _ = j.done.send(());
        }
    }
    commits
}

fn fresh_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("outbox-store-choice-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("mkdir");
    d
}

fn throughput(backend: &str, secs: u64) {
    let dir = fresh_dir(backend);
    let (tx, rx) = mpsc::sync_channel::<Job>(WRITERS * 2);
    let store = open(backend, &dir);
    let committer = thread::spawn(move || committer(store, rx));
    let end = Instant::now() + Duration::from_secs(secs);
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let tx = tx.clone();
            thread::spawn(move || {
                let mut lat = Vec::new();
                let mut n = 0u64;
                while Instant::now() < end {
                    let (done, ack) = mpsc::sync_channel(1);
                    let t0 = Instant::now();
                    let id = (w as u64) << 40 | n;
                    tx.send(Job {
                        id,
                        body: vec![b'x'; BODY],
                        done,
                    })
                    .expect("send");
                    ack.recv().expect("ack");
                    lat.push(t0.elapsed());
                    n += 1;
                }
                lat
            })
        })
        .collect();
    drop(tx);
    let mut lat: Vec<Duration> = writers
        .into_iter()
        .flat_map(|h| h.join().expect("writer"))
        .collect();
    let commits = committer.join().expect("committer");
    lat.sort_unstable();
    let n = lat.len() as f64;
    let q = |p: f64| lat[((n - 1.0) * p) as usize].as_secs_f64() * 1000.0;
    println!(
        "{backend:6}  {:>8.0} writes/s  p50 {:.2} ms  p99 {:.2} ms  max {:.2} ms  {:.3} commits (syncs) per write",
        n / secs as f64,
        q(0.5),
        q(0.99),
        q(1.0),
        commits as f64 / n
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// The child of a crash run: writes until killed, printing each id once its commit returned.
fn crash_child(backend: &str, dir: &Path) {
    let (tx, rx) = mpsc::sync_channel::<Job>(64);
    let store = open(backend, dir);
    thread::spawn(move || committer(store, rx));
    let (acked_tx, acked_rx) = mpsc::channel::<u64>();
    for w in 0..8u64 {
        let (tx, acked_tx) = (tx.clone(), acked_tx.clone());
        thread::spawn(move || {
            for n in 0.. {
                let (done, ack) = mpsc::sync_channel(1);
                let id = w << 40 | n;
                tx.send(Job {
                    id,
                    body: vec![b'y'; BODY],
                    done,
                })
                .expect("send");
                ack.recv().expect("ack");
                acked_tx.send(id).expect("report");
            }
        });
    }
    drop(acked_tx);
    let mut out = std::io::stdout().lock();
    for id in acked_rx {
        let _ = writeln!(out, "{id}");
        let _ = out.flush();
    }
}

fn crash(backend: &str, kills: u32) {
    let exe = std::env::current_exe().expect("exe");
    let mut lost_total = 0usize;
    let mut acked_total = 0usize;
    for k in 0..kills {
        let dir = fresh_dir(&format!("{backend}-crash-{k}"));
        let mut child = Command::new(&exe)
            .args(["crash-child", backend, dir.to_str().expect("utf-8 path")])
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn");
        let stdout = child.stdout.take().expect("stdout");
        let reader = thread::spawn(move || {
            BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
                .filter_map(|l| l.parse::<u64>().ok())
                .collect::<Vec<_>>()
        });
        // A kill point spread over 50-550 ms, different every run.
        let wait = 50 + (u64::from(k) * 7919 + std::process::id() as u64) % 500;
        thread::sleep(Duration::from_millis(wait));
        // SIGKILL: no destructor, no flush, no clean close.
        let _ = child.kill();
        let _ = child.wait();
        let acked = reader.join().expect("reader");
        let mut store = open(backend, &dir);
        let lost = acked.iter().filter(|id| !store.contains(**id)).count();
        lost_total += lost;
        acked_total += acked.len();
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
    }
    println!(
        "{backend:6}  {kills} SIGKILLs: {acked_total} acknowledged writes, {lost_total} lost after reopening"
    );
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("crash-child") {
        crash_child(&args[1], Path::new(&args[2]));
        return;
    }
    let secs = args.first().and_then(|s| s.parse().ok()).unwrap_or(5);
    let kills = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(20);
    println!(
        "{WRITERS} concurrent writers, {BODY}-byte entries, group commit, synced before the ack"
    );
    for backend in ["sqlite", "redb"] {
        throughput(backend, secs);
    }
    for backend in ["sqlite", "redb"] {
        crash(backend, kills);
    }
}
