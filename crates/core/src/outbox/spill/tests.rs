//! The spill file on its own (no Redis): its name, next to an embedded store of the same
//! breaker name; one file per process sharing a directory, a dead process's file taken
//! over; its bounds; and its format, the embedded store's.

use std::os::unix::fs::PermissionsExt;

use super::super::sqlite::{NewRow, SqliteStore};
use super::super::Refused;
use super::{stem, Spill};
use crate::redis::test_servers::TempDir;

fn row(id: &str, body: usize) -> NewRow {
    NewRow {
        id: id.to_string(),
        ordering_key: None,
        created_at_ms: 1000,
        size: body as u64,
        blob: vec![b'x'; body],
        mac: None,
    }
}

#[tokio::test]
async fn a_spill_file_is_named_apart_from_the_embedded_store_and_one_is_taken_per_process() {
    let dir = TempDir::new("spill-names");
    // An embedded outbox of the same breaker name, open at the same time: no conflict.
    let embedded = SqliteStore::open(&dir.0, "b").unwrap();
    let first = Spill::open(&dir.0, "b", 100, 1 << 20).unwrap();
    first.spill.append(row("w1", 10)).await.unwrap();
    assert!(dir.path("b.spill.sqlite").is_file());
    assert!(dir.path("b.outbox.sqlite").is_file());
    let mode = std::fs::metadata(dir.path("b.spill.sqlite"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "{mode:o}");
    // A second process (here, a second spill) on the same directory: the next file.
    let second = Spill::open(&dir.0, "b", 100, 1 << 20).unwrap();
    assert!(second.pending.is_empty());
    assert!(dir.path("b.spill.1.sqlite").is_file());
    assert_eq!(stem("b", 1), "b.spill.1");
    // The first one gone (a process that died: its lock released), its file and what it
    // holds are taken over.
    first.spill.close();
    drop(first);
    let third = Spill::open(&dir.0, "b", 100, 1 << 20).unwrap();
    assert_eq!(third.pending.len(), 1);
    assert_eq!(third.pending[0].id, "w1");
    assert_eq!(third.spill.counts().0, 1);
    drop((embedded, second, third));
}

#[tokio::test]
async fn a_spill_file_holds_to_its_bounds() {
    let dir = TempDir::new("spill-bounds");
    let s = Spill::open(&dir.0, "b", 2, 100).unwrap().spill;
    s.append(row("a", 60)).await.unwrap();
    assert_eq!(s.append(row("b", 60)).await, Err(Refused::Full), "bytes");
    s.append(row("c", 30)).await.unwrap();
    assert_eq!(s.append(row("d", 1)).await, Err(Refused::Full), "entries");
    assert_eq!(s.counts().0, 2);
    assert_eq!(s.counts().1, 90);
}

#[tokio::test]
async fn claimed_writes_come_back_in_order_and_a_write_being_forwarded_cannot_be_discarded() {
    let dir = TempDir::new("spill-claim");
    let s = Spill::open(&dir.0, "b", 100, 1 << 20).unwrap().spill;
    for id in ["a", "b", "c"] {
        s.append(row(id, 10)).await.unwrap();
    }
    let got = s.claim(2, 1 << 20);
    assert_eq!(
        got.iter().map(|m| m.id.as_str()).collect::<Vec<_>>(),
        ["a", "b"]
    );
    assert!(s.discard("a").await.is_err(), "being forwarded");
    assert_eq!(s.discard("c").await.unwrap(), Some(true));
    assert_eq!(s.discard("zz").await.unwrap(), None, "not here");
    s.put_back(&got);
    let again = s.claim(10, 1 << 20);
    assert_eq!(
        again.iter().map(|m| m.id.as_str()).collect::<Vec<_>>(),
        ["a", "b"]
    );
    s.forwarded(&again[..1]).await;
    s.put_back(&again[1..]);
    assert_eq!(s.counts().0, 1);
    // Out of the file too, not only out of the index.
    s.close();
    drop(s);
    let reopened = Spill::open(&dir.0, "b", 100, 1 << 20).unwrap();
    assert_eq!(
        reopened
            .pending
            .iter()
            .map(|m| m.id.as_str())
            .collect::<Vec<_>>(),
        ["b"]
    );
}

#[tokio::test]
async fn a_spill_file_is_an_embedded_outbox_file_under_another_name() {
    // What an operator can do with a dead replica's spill file and no Redis: rename it (with
    // its record) and open it as the embedded outbox, which delivers it straight to DNAStore.
    let dir = TempDir::new("spill-format");
    let s = Spill::open(&dir.0, "b", 100, 1 << 20).unwrap().spill;
    s.append(row("w1", 10)).await.unwrap();
    s.append(row("w2", 10)).await.unwrap();
    s.close();
    drop(s);
    for suffix in ["", "-ack"] {
        std::fs::rename(
            dir.path(&format!("b.spill.sqlite{suffix}")),
            dir.path(&format!("b.outbox.sqlite{suffix}")),
        )
        .unwrap();
    }
    let o = SqliteStore::open(&dir.0, "b").unwrap();
    assert_eq!(
        o.pending.iter().map(|m| m.id.as_str()).collect::<Vec<_>>(),
        ["w1", "w2"]
    );
}
