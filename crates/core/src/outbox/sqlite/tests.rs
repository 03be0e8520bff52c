use super::*;
use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;

pub(crate) fn temp_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "dnastore-outbox-{tag}-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    let _ = fs::remove_dir_all(&d);
    d
}

fn row(id: &str, key: Option<&str>) -> NewRow {
    NewRow {
        id: id.into(),
        ordering_key: key.map(str::to_string),
        created_at_ms: 7,
        size: 3,
        blob: b"abc".to_vec(),
        mac: None,
    }
}

#[test]
fn appends_survive_reopening_and_every_change_is_kept() {
    let dir = temp_dir("reopen");
    {
        let o = SqliteStore::open(&dir, "b").unwrap();
        assert!(o.pending.is_empty());
        let s = o.store;
        let a = s.append(row("a", None)).unwrap();
        let b = s.append(row("b", Some("/k"))).unwrap();
        let c = s.append(row("c", None)).unwrap();
        s.reschedule(b, 900, 2, Some("EUPSTREAM".into())).unwrap();
        s.delete(a).unwrap();
        s.bury(
            c,
            1,
            "http_4xx",
            Some(422),
            Some(b"{\"e\":1}".to_vec()),
            1000,
        )
        .unwrap();
        assert_eq!(s.last_error(b).as_deref(), Some("EUPSTREAM"));
    }
    let o = SqliteStore::open(&dir, "b").unwrap();
    assert_eq!(o.pending.len(), 1);
    assert_eq!(
        (
            o.pending[0].id.as_str(),
            o.pending[0].next_at_ms,
            o.pending[0].attempts
        ),
        ("b", 900, 2)
    );
    assert_eq!(o.dead, 1);
    let dead = o.store.dead_letters(10).unwrap();
    assert_eq!(
        (dead[0].id.as_str(), dead[0].status, dead[0].reason.as_str()),
        ("c", Some(422), "http_4xx")
    );
    let revived = o.store.revive("c", 2000).unwrap().unwrap();
    assert!(
        revived.seq > o.pending[0].seq,
        "back at the end of the queue"
    );
    assert_eq!(
        revived.created_at_ms, 2000,
        "its age counts from the retry (an expired write would expire again at once)"
    );
    assert_eq!(o.store.dead_count(), 0);
    assert!(o.store.discard("b").unwrap());
    assert!(!o.store.discard("nope").unwrap());
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn concurrent_appends_share_commits() {
    let dir = temp_dir("group");
    let s = Arc::new(SqliteStore::open(&dir, "b").unwrap().store);
    let threads: Vec<_> = (0..16)
        .map(|t| {
            let s = s.clone();
            std::thread::spawn(move || {
                for i in 0..50 {
                    s.append(row(&format!("{t}-{i}"), None)).unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let commits = s.commits();
    assert!(commits < 800, "800 appends in {commits} commits");
    drop(s);
    assert_eq!(SqliteStore::open(&dir, "b").unwrap().pending.len(), 800);
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn files_are_private_locked_and_never_emptied_when_damaged() {
    let dir = temp_dir("safety");
    let first = SqliteStore::open(&dir, "b").unwrap();
    first.store.append(row("a", None)).unwrap();
    let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(first.store.path()), 0o600);
    assert_eq!(mode(&dir.join("b.outbox.sqlite-wal")), 0o600);
    assert_eq!(mode(&dir.join("b.outbox.sqlite-shm")), 0o600);
    assert_eq!(mode(&dir.join("b.outbox.lock")), 0o600);
    assert_eq!(mode(&dir.join("b.outbox.sqlite-ack")), 0o600);
    // A second opener (another process would be the same) is refused.
    let e = SqliteStore::open(&dir, "b").err().expect("locked");
    assert!(
        e.0.contains("b.outbox.sqlite") && e.0.contains("in use"),
        "{e}"
    );
    drop(first);

    let bad = dir.join("x.outbox.sqlite");
    fs::write(&bad, vec![0x42; 8192]).unwrap();
    let e = SqliteStore::open(&dir, "x").err().expect("garbage");
    assert!(e.0.contains(&bad.display().to_string()), "{e}");
    assert_eq!(fs::read(&bad).unwrap(), vec![0x42; 8192], "never emptied");
    let _ = fs::remove_dir_all(&dir);
}
