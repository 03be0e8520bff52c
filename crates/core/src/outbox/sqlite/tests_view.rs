//! The read-only view (`view.rs`): it reads what the store holds, WAL included, while the
//! store is held; it takes no lock and changes no byte of the store's files; and it
//! refuses a damaged store as the store's own open does.

use std::fs;
use std::path::Path;

use super::tests::temp_dir;
use super::tests_wal::crashed;
use super::view::Counts;
use super::*;

fn row(id: &str, created: u64, size: u64) -> NewRow {
    NewRow {
        id: id.into(),
        ordering_key: Some(format!("/k/{id}")),
        created_at_ms: created,
        size,
        blob: id.as_bytes().to_vec(),
        mac: Some([7; 32]),
    }
}

/// Every file of the store, by name, with its bytes (`-shm` aside: SQLite's index, which
/// readers of a WAL store update by design).
fn files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        .map(|e| (e.file_name().to_string_lossy().into_owned(), e.path()))
        .filter(|(n, _)| !n.ends_with("-shm"))
        .map(|(n, p)| (n, fs::read(p).unwrap()))
        .collect();
    out.sort();
    out
}

#[test]
fn reads_a_held_store_without_its_lock_and_without_writing() {
    let dir = temp_dir("view-held");
    // No background checkpoints: the writes stay in the WAL, as in a busy store.
    let o = SqliteStore::open_with(&dir, "v", false).unwrap();
    let s = o.store;
    let a = s.append(row("a", 10, 100)).unwrap();
    s.append(row("b", 20, 200)).unwrap();
    let c = s.append(row("c", 30, 300)).unwrap();
    s.reschedule(a, 900, 2, Some("ETIMEDOUT".into())).unwrap();
    s.bury(c, 1, "rejected", Some(422), Some(b"no".to_vec()), 40)
        .unwrap();
    let before = files(&dir);

    let v = View::open(&dir, "v").unwrap();
    assert_eq!(
        v.counts().unwrap(),
        Counts {
            entries: 2,
            bytes: 300,
            dead: 1,
            oldest_created_at_ms: Some(10),
        }
    );
    let listed = v.list(10).unwrap();
    let ids: Vec<_> = listed.iter().map(|r| r.meta.id.as_str()).collect();
    assert_eq!(ids, ["a", "b"]);
    assert_eq!(
        (listed[0].meta.attempts, listed[0].meta.next_at_ms),
        (2, 900)
    );
    assert_eq!(listed[0].last_error.as_deref(), Some("ETIMEDOUT"));
    assert_eq!(listed[0].blob, b"a");
    assert_eq!(v.list(1).unwrap().len(), 1);
    assert_eq!(v.dead_letters(10).unwrap(), s.dead_letters(10).unwrap());
    assert_eq!(
        v.oldest_signed(10).unwrap(),
        vec![
            (b"a".to_vec(), Some(vec![7; 32])),
            (b"b".to_vec(), Some(vec![7; 32]))
        ]
    );

    // The store keeps its lock and keeps writing while the view is open; the view sees it.
    assert!(SqliteStore::open_if_free(&dir, "v").unwrap().is_none());
    s.append(row("d", 50, 1)).unwrap();
    assert_eq!(v.counts().unwrap().entries, 3);
    drop(v);
    // Only the store's own writes changed anything: a view changes no byte.
    let v = View::open(&dir, "v").unwrap();
    v.counts().unwrap();
    let during = files(&dir);
    drop(v);
    assert_eq!(files(&dir), during);
    assert_ne!(
        during, before,
        "the append after the first view reached the WAL"
    );
    s.close();
    fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_store_at_rest_gets_no_wal_from_a_view() {
    let dir = temp_dir("view-rest");
    {
        let s = SqliteStore::open(&dir, "v").unwrap().store;
        s.append(row("a", 10, 1)).unwrap();
        s.close();
    }
    let wal = record::beside(&store_path(&dir, "v"), "-wal");
    assert!(!wal.exists(), "a clean close removes the WAL");
    let before = files(&dir);
    let v = View::open(&dir, "v").unwrap();
    assert_eq!(v.counts().unwrap().entries, 1);
    drop(v);
    assert!(!wal.exists());
    assert_eq!(files(&dir), before);
    // And the store opens as before.
    let o = SqliteStore::open(&dir, "v").unwrap();
    assert_eq!(o.pending.len(), 1);
    o.store.close();
    fs::remove_dir_all(dir).unwrap();
}

#[test]
fn reads_a_crashed_stores_wal_and_leaves_it_for_the_next_open() {
    let c = crashed("view-crashed");
    let dir = c.db.parent().unwrap().to_path_buf();
    let before = files(&dir);
    let v = View::open(&dir, "w").unwrap();
    assert_eq!(v.counts().unwrap().entries, c.acked);
    drop(v);
    assert_eq!(
        files(&dir),
        before,
        "the WAL is not checkpointed nor deleted"
    );
    let o = SqliteStore::open(&dir, "w").unwrap();
    assert_eq!(o.pending.len() as u64, c.acked);
    o.store.close();
}

#[test]
fn refuses_what_the_store_refuses_and_a_missing_store() {
    let c = crashed("view-damaged");
    let dir = c.db.parent().unwrap().to_path_buf();
    let len = fs::metadata(&c.wal).unwrap().len();
    fs::OpenOptions::new()
        .write(true)
        .open(&c.wal)
        .unwrap()
        .set_len(len / 2)
        .unwrap();
    let before = files(&dir);
    let e = View::open(&dir, "w").err().unwrap();
    let opened = SqliteStore::open(&dir, "w").err().unwrap();
    assert_eq!(e, opened);
    assert!(e.0.contains("acknowledged writes are missing"), "{e}");
    assert_eq!(files(&dir), before);

    let e = View::open(&dir, "nope").err().unwrap();
    assert!(e.0.contains("no such file"), "{e}");
    assert!(!store_path(&dir, "nope").exists());
}
