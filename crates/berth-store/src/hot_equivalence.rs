//! The hot state (records of some kinds, counters and host entries in memory, see
//! [`crate::hot`]) must be invisible to callers: the same writes through a store that holds
//! them in memory and one that does not give the same results and the same reads, across
//! failed writes, wipes, folds into the tables and reopening the file.

use std::sync::Arc;

use proptest::prelude::*;

use crate::{HostEntry, Record, Scope, Store, StoreError};

const HOT: &str = "ecs/task";
const COLD: &str = "ecs/cluster";
const ACCOUNTS: [&str; 2] = ["111", "1110"];
const REGION: &str = "us-east-1";
const IDS: [&str; 6] = ["a", "a/b", "a/c", "ab", "b", "b/a"];
const HOSTS: [&str; 2] = ["h", "h1"];
const NAMES: [&str; 2] = ["n", "n/x"];

#[derive(Debug, Clone)]
enum Step {
    Insert(bool, usize, usize, u32),
    /// A put expecting the version read first, or (`false`) the one given.
    Put(bool, usize, usize, Option<i64>, bool, u32),
    Delete(bool, usize, usize),
    AddToSequence(usize, usize, i64),
    NextSequence(usize, usize),
    PutHostEntry(usize, usize, usize, u32),
    DeleteHostEntry(usize, usize, usize),
    Wipe(usize),
}

fn step() -> impl Strategy<Value = Step> {
    let a = 0..ACCOUNTS.len();
    let i = 0..IDS.len();
    prop_oneof![
        4 => (any::<bool>(), a.clone(), i.clone(), any::<u32>()).prop_map(|(h, a, i, v)| Step::Insert(h, a, i, v)),
        4 => (any::<bool>(), a.clone(), i.clone(), proptest::option::of(0i64..4), any::<bool>(), any::<u32>())
            .prop_map(|(h, a, i, e, r, v)| Step::Put(h, a, i, e, r, v)),
        2 => (any::<bool>(), a.clone(), i.clone()).prop_map(|(h, a, i)| Step::Delete(h, a, i)),
        2 => (a.clone(), 0..NAMES.len(), -3i64..4).prop_map(|(a, n, d)| Step::AddToSequence(a, n, d)),
        1 => (a.clone(), 0..NAMES.len()).prop_map(|(a, n)| Step::NextSequence(a, n)),
        3 => (0..HOSTS.len(), a.clone(), i.clone(), any::<u32>()).prop_map(|(h, a, i, v)| Step::PutHostEntry(h, a, i, v)),
        1 => (0..HOSTS.len(), a.clone(), i.clone()).prop_map(|(h, a, i)| Step::DeleteHostEntry(h, a, i)),
        1 => a.prop_map(Step::Wipe),
    ]
}

fn kind(hot: bool) -> &'static str {
    if hot { HOT } else { COLD }
}

fn scope(a: usize) -> Scope<'static> {
    Scope::new(ACCOUNTS[a], REGION)
}

fn task(a: usize, i: usize) -> String {
    format!("{}|{REGION}|{}", ACCOUNTS[a], IDS[i])
}

/// A long body now and then, so that some are stored compressed.
fn body(v: u32) -> serde_json::Value {
    if v.is_multiple_of(3) {
        serde_json::json!({ "v": v, "pad": "x".repeat(400) })
    } else {
        serde_json::json!({ "v": v })
    }
}

/// Runs one write of `steps` (failing at its end when `fail`), and what each step returned.
fn run(store: &Store, steps: &[Step], fail: bool) -> Result<Vec<String>, String> {
    let out = store.write(|tx| -> Result<Vec<String>, StoreError> {
        let mut out = Vec::new();
        for s in steps {
            let r = match s {
                Step::Insert(h, a, i, v) => {
                    format!("{:?}", tx.insert(scope(*a), kind(*h), IDS[*i], &body(*v)))
                }
                Step::Put(h, a, i, e, read, v) => {
                    let expected = if *read {
                        tx.version(scope(*a), kind(*h), IDS[*i])?
                    } else {
                        *e
                    };
                    format!(
                        "{:?}",
                        tx.put(scope(*a), kind(*h), IDS[*i], expected, &body(*v))
                    )
                }
                Step::Delete(h, a, i) => format!("{:?}", tx.delete(scope(*a), kind(*h), IDS[*i])),
                Step::AddToSequence(a, n, d) => {
                    format!("{:?}", tx.add_to_sequence(scope(*a), NAMES[*n], *d))
                }
                Step::NextSequence(a, n) => {
                    format!("{:?}", tx.next_sequence(scope(*a), NAMES[*n]))
                }
                Step::PutHostEntry(h, a, i, v) => {
                    let seq = tx.next_host_sequence()?;
                    format!(
                        "{seq} {:?}",
                        tx.put_host_entry(HOSTS[*h], &task(*a, *i), seq, &body(*v))
                    )
                }
                Step::DeleteHostEntry(h, a, i) => {
                    format!("{:?}", tx.delete_host_entry(HOSTS[*h], &task(*a, *i)))
                }
                Step::Wipe(a) => format!("{:?}", tx.wipe_account(ACCOUNTS[*a])),
            };
            out.push(r);
        }
        if fail {
            return Err(StoreError::Commit("the test fails this write".into()));
        }
        Ok(out)
    });
    out.map_err(|e| e.to_string())
}

/// Everything a caller can read, as text.
fn dump(store: &Store) -> Vec<String> {
    store
        .read(|tx| -> Result<Vec<String>, StoreError> {
            let mut out = Vec::new();
            let records = |r: Vec<Record>| {
                r.iter()
                    .map(|r| format!("{}@{}={}", r.id, r.version, r.body))
                    .collect::<Vec<_>>()
                    .join(",")
            };
            let entries = |e: Vec<HostEntry>| {
                e.iter()
                    .map(|e| format!("{}@{}={}", e.task, e.seq, e.body))
                    .collect::<Vec<_>>()
                    .join(",")
            };
            for k in [HOT, COLD] {
                for a in 0..ACCOUNTS.len() {
                    let s = scope(a);
                    for prefix in ["", "a", "a/", "b"] {
                        out.push(records(tx.list(s, k, prefix, None, usize::MAX)?));
                        out.push(records(tx.list(s, k, prefix, Some("a/b"), 2)?));
                        out.push(records(tx.list_backwards(s, k, prefix, None, 2)?));
                        out.push(records(tx.list_backwards(s, k, prefix, Some("ab"), 9)?));
                        out.push(tx.count(s, k, prefix)?.to_string());
                    }
                    for id in IDS {
                        out.push(format!(
                            "{:?} {:?}",
                            tx.get(s, k, id)?,
                            tx.version(s, k, id)?
                        ));
                    }
                }
                let mut after: Option<(String, String, String)> = None;
                loop {
                    let page = tx.list_everywhere(
                        k,
                        after
                            .as_ref()
                            .map(|(a, r, i)| (a.as_str(), r.as_str(), i.as_str())),
                        3,
                    )?;
                    let Some((a, r, rec)) = page.last() else {
                        break;
                    };
                    after = Some((a.clone(), r.clone(), rec.id.clone()));
                    out.push(format!("{page:?}"));
                }
            }
            for a in 0..ACCOUNTS.len() {
                for n in NAMES {
                    out.push(format!(
                        "{:?} {}",
                        tx.sequence_if_any(scope(a), n)?,
                        tx.sequence(scope(a), n)?
                    ));
                }
            }
            for h in HOSTS {
                out.push(entries(tx.host_entries(h, "")?));
                out.push(entries(tx.host_entries(h, &format!("{}|", ACCOUNTS[0]))?));
                out.push(tx.host_sequence(h)?.to_string());
                for since in [0, 2, 5] {
                    out.push(entries(tx.host_entries_since(h, since)?));
                }
            }
            Ok(out)
        })
        .unwrap()
}

fn temp_dir() -> std::path::PathBuf {
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let dir = std::env::temp_dir().join(format!(
        "berth-store-hot-{}-{}",
        std::process::id(),
        N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn a_store_holding_kinds_in_memory_reads_and_writes_as_one_that_does_not(
        writes in proptest::collection::vec(
            (proptest::collection::vec(step(), 1..5), proptest::bool::weighted(0.2)),
            1..25,
        ),
        eager in any::<bool>(),
        reopen_at in 0usize..25,
    ) {
        let dir = temp_dir();
        let path = dir.join("db.sqlite");
        let cold = Store::open_in_memory().unwrap();
        let mut hot = Store::open_holding_in_memory(&path, &[HOT]).unwrap();
        if eager {
            hot.fold_eagerly();
        }
        for (n, (steps, fail)) in writes.iter().enumerate() {
            let a = run(&cold, steps, *fail);
            let b = run(&hot, steps, *fail);
            prop_assert_eq!(&a, &b, "write {}: {:?}", n, steps);
            prop_assert_eq!(dump(&cold), dump(&hot), "after write {}", n);
            if n == reopen_at {
                drop(hot);
                hot = Store::open_holding_in_memory(&path, &[HOT]).unwrap();
                if eager {
                    hot.fold_eagerly();
                }
                prop_assert_eq!(dump(&cold), dump(&hot), "reopened after write {}", n);
            }
        }
        let expected = dump(&cold);
        drop(hot);
        // Reopening replays the log into the tables: a store holding nothing in memory
        // reads them as they should be.
        let hot = Store::open_holding_in_memory(&path, &[HOT]).unwrap();
        prop_assert_eq!(&expected, &dump(&hot));
        prop_assert_eq!(hot.hot_log_rows(), 0);
        drop(hot);
        prop_assert_eq!(&expected, &dump(&Store::open(&path).unwrap()));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

/// An in-memory store (one connection for reads and writes) holds kinds in memory too.
#[test]
fn an_in_memory_store_holds_kinds_in_memory() {
    let cold = Store::open_in_memory().unwrap();
    let hot = Store::open_in_memory_holding(&[HOT]).unwrap();
    let steps = [
        Step::Insert(true, 0, 0, 1),
        Step::Put(true, 0, 0, None, true, 2),
        Step::PutHostEntry(0, 0, 1, 3),
        Step::AddToSequence(1, 0, 5),
    ];
    assert_eq!(run(&cold, &steps, false), run(&hot, &steps, false));
    assert_eq!(
        run(&cold, &steps[..1], false),
        run(&hot, &steps[..1], false)
    );
    assert_eq!(dump(&cold), dump(&hot));
}

/// Writes that overlap share commits; the failed and the panicking ones leave nothing in
/// memory, and readers on other connections see each write once it returned, across folds.
#[test]
fn group_commits_keep_the_hot_state_of_their_successful_writes_only() {
    let dir = temp_dir();
    let path = dir.join("db.sqlite");
    let store = Arc::new(Store::open_holding_in_memory(&path, &[HOT]).unwrap());
    store.fold_eagerly();
    let s = scope(0);
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let store = store.clone();
            std::thread::spawn(move || {
                for k in 0..150 {
                    let id = format!("{t}-{k}");
                    let fail = k % 7 == 3;
                    let r: Result<(), StoreError> = store.write(|tx| {
                        tx.insert(s, HOT, &id, &k)?;
                        tx.add_to_sequence(s, "n", 1)?;
                        let seq = tx.next_host_sequence()?;
                        tx.put_host_entry("h", &id, seq, &k)?;
                        if fail {
                            return Err(StoreError::Poisoned);
                        }
                        tx.insert(s, HOT, &format!("{id}-second"), &k)?;
                        Ok(())
                    });
                    assert_eq!(r.is_ok(), !fail, "{id}: {r:?}");
                    let seen = store.read(|tx| tx.get(s, HOT, &id)).unwrap();
                    assert_eq!(seen.is_some(), !fail, "{id}");
                    if t == 0 && k == 100 {
                        let p = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                            let _: Result<(), StoreError> = store.write(|tx| {
                                tx.insert(s, HOT, "panicked", &1)?;
                                panic!("a write panics");
                            });
                        }));
                        assert!(p.is_err());
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let ok = 8 * (0..150).filter(|k| k % 7 != 3).count() as i64;
    let check = |store: &Store| {
        assert_eq!(store.read(|tx| tx.count(s, HOT, "")).unwrap(), ok * 2);
        assert_eq!(store.read(|tx| tx.sequence(s, "n")).unwrap(), ok);
        let entries = store.read(|tx| tx.host_entries("h", "")).unwrap();
        assert_eq!(entries.len() as i64, ok);
        let seq = store.read(|tx| tx.host_sequence("h")).unwrap();
        assert_eq!(seq, entries.iter().map(|e| e.seq).max().unwrap());
        assert!(
            store
                .read(|tx| tx.get(s, HOT, "panicked"))
                .unwrap()
                .is_none()
        );
    };
    check(&store);
    let (writes, commits) = store.commit_stats();
    eprintln!("{writes} writes in {commits} commits");
    drop(store);
    check(&Store::open_holding_in_memory(&path, &[HOT]).unwrap());
    check(&Store::open(&path).unwrap());
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A read sees the hot and the cold state of one commit: writers move a record of a hot kind
/// and one of a cold kind to the same value in each write, and readers on the other
/// connections never see them apart.
#[test]
fn readers_see_the_hot_and_the_cold_state_of_one_commit() {
    let dir = temp_dir();
    let store = Arc::new(Store::open_holding_in_memory(&dir.join("db.sqlite"), &[HOT]).unwrap());
    let s = scope(0);
    store
        .write(|tx| -> Result<(), StoreError> {
            tx.insert(s, HOT, "n", &0)?;
            tx.insert(s, COLD, "n", &0)?;
            Ok(())
        })
        .unwrap();
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writers: Vec<_> = (0..3)
        .map(|_| {
            let store = store.clone();
            std::thread::spawn(move || {
                for _ in 0..300 {
                    store
                        .write(|tx| -> Result<(), StoreError> {
                            let (n, v) = tx.get_json::<i64>(s, HOT, "n")?.unwrap();
                            tx.put(s, HOT, "n", Some(v), &(n + 1))?;
                            let (_, c) = tx.get_json::<i64>(s, COLD, "n")?.unwrap();
                            tx.put(s, COLD, "n", Some(c), &(n + 1))?;
                            tx.add_to_sequence(s, "n", 1)?;
                            Ok(())
                        })
                        .unwrap();
                }
            })
        })
        .collect();
    let readers: Vec<_> = (0..3)
        .map(|_| {
            let store = store.clone();
            let done = done.clone();
            std::thread::spawn(move || {
                let mut reads = 0;
                while !done.load(std::sync::atomic::Ordering::Relaxed) {
                    let (hot, cold, counter) = store
                        .read(|tx| -> Result<_, StoreError> {
                            let hot = tx.get_json::<i64>(s, HOT, "n")?.unwrap().0;
                            let cold = tx.get_json::<i64>(s, COLD, "n")?.unwrap().0;
                            Ok((hot, cold, tx.sequence(s, "n")?))
                        })
                        .unwrap();
                    assert_eq!(hot, cold, "a read saw two commits");
                    assert_eq!(hot, counter, "a read saw two commits");
                    reads += 1;
                }
                reads
            })
        })
        .collect();
    for w in writers {
        w.join().unwrap();
    }
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let reads: i32 = readers.into_iter().map(|r| r.join().unwrap()).sum();
    assert!(reads > 0);
    let n = store.read(|tx| tx.get_json::<i64>(s, HOT, "n")).unwrap();
    assert_eq!(n.unwrap().0, 900);
    std::fs::remove_dir_all(&dir).unwrap();
}
