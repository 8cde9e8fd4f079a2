//! The hot state held in memory (DESIGN §6, change 2): the records of the kinds a store
//! keeps in memory (for ECS: tasks and container instance usage), every counter
//! (`sequences`) and every host entry, in persistent ordered maps.
//!
//! The maps are persistent (structural sharing): a clone costs a pointer copy, so the writer
//! keeps its group's working state as a clone of the last committed one (a write's savepoint
//! is another clone, restored when the write fails), and each commit publishes its state for
//! readers, who keep the one that matches their SQLite snapshot for as long as they read.
//!
//! What a group changed is also an [`Op`] list, appended to the `hot_log` table in the group's
//! own transaction: the commit stays atomic and durable, and costs one row instead of a
//! B-tree update per record. The tables (`records`, `sequences`, `host_entries`) are brought
//! up to date later, in key order and many changes at once ([`Dirty`], see `sqlite.rs`'s
//! fold), and at open the log rows are replayed into them. Every op is a whole value (a
//! record's version and body, a counter's value, an entry or its absence), never a delta:
//! replaying one twice, or over a table already past it, ends in the same state.

use std::ops::Bound;
use std::sync::Arc;

use imbl::OrdMap;

use crate::StoreError;

/// A key inside one of the maps: fields joined by NUL (which sorts before every other
/// character, so keys order as their fields do): `account\0region\0id` for records,
/// `account\0region\0name` for counters, `host\0task` for host entries.
pub(crate) type Key = Arc<str>;

/// Joins `fields` into a [`Key`] (as a string, for range bounds and lookups).
pub(crate) fn key(fields: &[&str]) -> String {
    fields.join("\0")
}

/// Splits a key made of `N` fields (the last one may hold anything).
pub(crate) fn split<const N: usize>(key: &str) -> Option<[&str; N]> {
    let mut parts = key.splitn(N, '\0');
    let mut out = [""; N];
    for slot in &mut out {
        *slot = parts.next()?;
    }
    Some(out)
}

/// A body as the tables store it (records' and CloudTrail events'): short
/// JSON as text, long JSON compressed (an LZ4 block with a dictionary, behind its length:
/// `compress`) as a blob. A task's JSON (about 2 KiB) shrinks to a fraction: records share
/// pages instead of taking one each, and each write dirties and logs fewer of them. Memory
/// holds the same form. Bodies written before compression are text and read as they are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Body {
    Text(Box<str>),
    Lz4(Box<[u8]>),
}

/// Bodies at least this long are compressed.
pub(crate) const COMPRESS_FROM_BYTES: usize = 256;

impl Body {
    pub(crate) fn of_json(json: &str) -> Body {
        if json.len() < COMPRESS_FROM_BYTES {
            return Body::Text(json.into());
        }
        match crate::compress::compress(json.as_bytes()) {
            Some(blob) => Body::Lz4(blob),
            None => Body::Text(json.into()),
        }
    }

    /// The body as JSON text.
    pub(crate) fn json(&self, kind: &str, id: &str) -> Result<String, StoreError> {
        match self {
            Body::Text(t) => Ok(t.to_string()),
            Body::Lz4(b) => crate::compress::decompress(b)
                .and_then(|v| String::from_utf8(v).map_err(|e| e.to_string()))
                .map_err(|reason| StoreError::Decode {
                    kind: kind.to_string(),
                    id: id.to_string(),
                    reason,
                }),
        }
    }

    /// A body column as stored (text, or a compressed blob).
    pub(crate) fn from_sql(v: rusqlite::types::ValueRef<'_>) -> Result<Body, StoreError> {
        match v {
            rusqlite::types::ValueRef::Blob(b) => Ok(Body::Lz4(b.into())),
            rusqlite::types::ValueRef::Text(t) => Ok(Body::Text(
                std::str::from_utf8(t)
                    .map_err(|e| StoreError::Commit(format!("a stored body is not UTF-8: {e}")))?
                    .into(),
            )),
            _ => Err(StoreError::Commit(
                "a stored body is neither text nor a blob".into(),
            )),
        }
    }
}

impl rusqlite::ToSql for Body {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        Ok(rusqlite::types::ToSqlOutput::Borrowed(match self {
            Body::Text(t) => rusqlite::types::ValueRef::Text(t.as_bytes()),
            Body::Lz4(b) => rusqlite::types::ValueRef::Blob(b),
        }))
    }
}

/// A record of a hot kind: its version and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HotRecord {
    pub version: i64,
    pub body: Body,
}

/// A host entry: the host's sequence when it last changed, and its JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HotEntry {
    pub seq: i64,
    pub body: Box<str>,
}

/// The records of one hot kind, by `account\0region\0id`.
pub(crate) type KindMap = OrdMap<Key, Arc<HotRecord>>;

/// The hot state as of one committed group (or a writer's group in progress).
#[derive(Clone, Default)]
pub(crate) struct HotState {
    /// The last group whose changes this state holds (the `hot_log` row's number).
    pub group: i64,
    /// Each hot kind with its records, in the order the store was given them.
    pub kinds: Vec<(Arc<str>, KindMap)>,
    /// Every counter, by `account\0region\0name`.
    pub sequences: OrdMap<Key, i64>,
    /// Every host entry, by `host\0task`.
    pub host_entries: OrdMap<Key, Arc<HotEntry>>,
}

impl HotState {
    /// An empty state holding `kinds` in memory.
    pub(crate) fn new(kinds: &[&str]) -> HotState {
        HotState {
            group: 0,
            kinds: kinds
                .iter()
                .map(|k| (Arc::<str>::from(*k), KindMap::new()))
                .collect(),
            sequences: OrdMap::new(),
            host_entries: OrdMap::new(),
        }
    }

    /// The records of `kind`, if it is a hot kind.
    pub(crate) fn kind(&self, kind: &str) -> Option<&KindMap> {
        self.kinds
            .iter()
            .find(|(k, _)| &**k == kind)
            .map(|(_, m)| m)
    }

    fn kind_mut(&mut self, kind: &str) -> Option<&mut KindMap> {
        self.kinds
            .iter_mut()
            .find(|(k, _)| &**k == kind)
            .map(|(_, m)| m)
    }

    /// The hot kind's shared name (for ops and dirty keys without a copy of the string).
    pub(crate) fn kind_name(&self, kind: &str) -> Option<Arc<str>> {
        self.kinds
            .iter()
            .find(|(k, _)| &**k == kind)
            .map(|(k, _)| k.clone())
    }

    /// Applies one op (a replay at open, or a write through [`HotWork`]).
    pub(crate) fn apply(&mut self, op: &Op) {
        match op {
            Op::Record { kind, key, value } => {
                if let Some(m) = self.kind_mut(kind) {
                    match value {
                        Some(r) => {
                            m.insert(key.clone(), r.clone());
                        }
                        None => {
                            m.remove(&**key);
                        }
                    }
                }
            }
            Op::Sequence { key, value } => {
                self.sequences.insert(key.clone(), *value);
            }
            Op::HostEntry { key, value } => match value {
                Some(e) => {
                    self.host_entries.insert(key.clone(), e.clone());
                }
                None => {
                    self.host_entries.remove(&**key);
                }
            },
            Op::Wipe { account, .. } => {
                let prefix = format!("{account}\0");
                for (_, m) in &mut self.kinds {
                    remove_prefixed(m, &prefix);
                }
                remove_prefixed(&mut self.sequences, &prefix);
                // Host entries name their task `{account}|{region}|...`.
                let task_prefix = format!("{account}|");
                let gone: Vec<Key> = self
                    .host_entries
                    .keys()
                    .filter(|k| split::<2>(k).is_some_and(|[_, t]| t.starts_with(&task_prefix)))
                    .cloned()
                    .collect();
                for k in gone {
                    self.host_entries.remove(&*k);
                }
            }
        }
    }
}

/// Removes every key of `m` that starts with `prefix`.
fn remove_prefixed<V: Clone>(m: &mut OrdMap<Key, V>, prefix: &str) {
    let gone: Vec<Key> = m
        .range::<_, str>((Bound::Included(prefix), Bound::Unbounded))
        .take_while(|(k, _)| k.starts_with(prefix))
        .map(|(k, _)| k.clone())
        .collect();
    for k in gone {
        m.remove(&*k);
    }
}

/// One change to the hot state, as the log stores it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Op {
    /// A record of a hot kind written (`Some`) or deleted.
    Record {
        kind: Arc<str>,
        key: Key,
        value: Option<Arc<HotRecord>>,
    },
    /// A counter's new value.
    Sequence { key: Key, value: i64 },
    /// A host entry filed (`Some`) or removed.
    HostEntry {
        key: Key,
        value: Option<Arc<HotEntry>>,
    },
    /// Every record, counter and host entry of an account removed. `kinds` are the kinds
    /// held in memory then: a replay removes only their records from the table, whose later
    /// changes the log holds (the other kinds' later records are in the table alone).
    Wipe {
        account: Box<str>,
        kinds: Vec<Arc<str>>,
    },
}

/// What the tables have not caught up with yet: a key changed since the last fold.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Dirty {
    Record(Arc<str>, Key),
    Sequence(Key),
    HostEntry(Key),
}

impl Op {
    /// The key the op changed (`None` for a wipe, which the tables had in its transaction).
    pub(crate) fn dirty(&self) -> Option<Dirty> {
        match self {
            Op::Record { kind, key, .. } => Some(Dirty::Record(kind.clone(), key.clone())),
            Op::Sequence { key, .. } => Some(Dirty::Sequence(key.clone())),
            Op::HostEntry { key, .. } => Some(Dirty::HostEntry(key.clone())),
            Op::Wipe { .. } => None,
        }
    }
}

/// A writer's group in progress: its state and the ops that led there from the last commit.
#[derive(Clone)]
pub(crate) struct HotWork {
    pub state: HotState,
    pub ops: Vec<Op>,
}

impl HotWork {
    /// Applies `op` to the group's state and notes it for the group's log row.
    fn change(&mut self, op: Op) {
        self.state.apply(&op);
        self.ops.push(op);
    }

    pub(crate) fn record(&mut self, kind: Arc<str>, key: Key, value: Option<Arc<HotRecord>>) {
        self.change(Op::Record { kind, key, value });
    }

    pub(crate) fn sequence(&mut self, key: Key, value: i64) {
        self.change(Op::Sequence { key, value });
    }

    pub(crate) fn host_entry(&mut self, key: Key, value: Option<Arc<HotEntry>>) {
        self.change(Op::HostEntry { key, value });
    }

    pub(crate) fn wipe(&mut self, account: &str) {
        let kinds = self.state.kinds.iter().map(|(k, _)| k.clone()).collect();
        self.change(Op::Wipe {
            account: account.into(),
            kinds,
        });
    }
}

// The log's encoding: a sequence of ops, each a tag byte and its fields; strings and byte
// strings as a little-endian u32 length and the bytes, integers as little-endian i64.

const TAG_RECORD_PUT: u8 = 1;
const TAG_RECORD_DELETE: u8 = 2;
const TAG_SEQUENCE: u8 = 3;
const TAG_HOST_PUT: u8 = 4;
const TAG_HOST_DELETE: u8 = 5;
const TAG_WIPE: u8 = 6;
const BODY_TEXT: u8 = 0;
const BODY_LZ4: u8 = 1;

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    // A field of 4 GiB or more cannot be a record (SQLite's limit is 1 GB).
    out.extend_from_slice(&(b.len() as u32).to_le_bytes());
    out.extend_from_slice(b);
}

fn put_i64(out: &mut Vec<u8>, v: i64) {
    out.extend_from_slice(&v.to_le_bytes());
}

/// The bytes [`encode_ops`] writes for `op` (a group's row is allocated once: it holds
/// hundreds of bodies under load).
fn encoded_len(op: &Op) -> usize {
    match op {
        Op::Record { kind, key, value } => {
            9 + kind.len()
                + key.len()
                + value.as_ref().map_or(0, |r| {
                    13 + match &r.body {
                        Body::Text(t) => t.len(),
                        Body::Lz4(b) => b.len(),
                    }
                })
        }
        Op::Sequence { key, .. } => 13 + key.len(),
        Op::HostEntry { key, value } => {
            5 + key.len() + value.as_ref().map_or(0, |e| 12 + e.body.len())
        }
        Op::Wipe { account, kinds } => {
            9 + account.len() + kinds.iter().map(|k| 4 + k.len()).sum::<usize>()
        }
    }
}

/// Encodes a group's ops as one log row.
pub(crate) fn encode_ops(ops: &[Op]) -> Vec<u8> {
    let mut out = Vec::with_capacity(ops.iter().map(encoded_len).sum());
    for op in ops {
        match op {
            Op::Record { kind, key, value } => match value {
                Some(r) => {
                    out.push(TAG_RECORD_PUT);
                    put_bytes(&mut out, kind.as_bytes());
                    put_bytes(&mut out, key.as_bytes());
                    put_i64(&mut out, r.version);
                    match &r.body {
                        Body::Text(t) => {
                            out.push(BODY_TEXT);
                            put_bytes(&mut out, t.as_bytes());
                        }
                        Body::Lz4(b) => {
                            out.push(BODY_LZ4);
                            put_bytes(&mut out, b);
                        }
                    }
                }
                None => {
                    out.push(TAG_RECORD_DELETE);
                    put_bytes(&mut out, kind.as_bytes());
                    put_bytes(&mut out, key.as_bytes());
                }
            },
            Op::Sequence { key, value } => {
                out.push(TAG_SEQUENCE);
                put_bytes(&mut out, key.as_bytes());
                put_i64(&mut out, *value);
            }
            Op::HostEntry { key, value } => match value {
                Some(e) => {
                    out.push(TAG_HOST_PUT);
                    put_bytes(&mut out, key.as_bytes());
                    put_i64(&mut out, e.seq);
                    put_bytes(&mut out, e.body.as_bytes());
                }
                None => {
                    out.push(TAG_HOST_DELETE);
                    put_bytes(&mut out, key.as_bytes());
                }
            },
            Op::Wipe { account, kinds } => {
                out.push(TAG_WIPE);
                put_bytes(&mut out, account.as_bytes());
                out.extend_from_slice(&(kinds.len() as u32).to_le_bytes());
                for k in kinds {
                    put_bytes(&mut out, k.as_bytes());
                }
            }
        }
    }
    out
}

/// Reads a log row back (see [`encode_ops`]).
pub(crate) fn decode_ops(mut b: &[u8]) -> Result<Vec<Op>, StoreError> {
    fn bad() -> StoreError {
        StoreError::Decode {
            kind: "hot log".into(),
            id: "row".into(),
            reason: "the row is cut short or holds an unknown op".into(),
        }
    }
    fn take<'b>(b: &mut &'b [u8], n: usize) -> Result<&'b [u8], StoreError> {
        if b.len() < n {
            return Err(bad());
        }
        let (head, rest) = b.split_at(n);
        *b = rest;
        Ok(head)
    }
    fn bytes<'b>(b: &mut &'b [u8]) -> Result<&'b [u8], StoreError> {
        let len = take(b, 4)?;
        let len = u32::from_le_bytes([len[0], len[1], len[2], len[3]]) as usize;
        take(b, len)
    }
    fn text<'b>(b: &mut &'b [u8]) -> Result<&'b str, StoreError> {
        std::str::from_utf8(bytes(b)?).map_err(|_| bad())
    }
    fn int(b: &mut &[u8]) -> Result<i64, StoreError> {
        let v = take(b, 8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(v);
        Ok(i64::from_le_bytes(a))
    }
    let mut ops = Vec::new();
    while let Some((&tag, rest)) = b.split_first() {
        b = rest;
        let op = match tag {
            TAG_RECORD_PUT => {
                let kind = text(&mut b)?.into();
                let key = text(&mut b)?.into();
                let version = int(&mut b)?;
                let body = match take(&mut b, 1)?[0] {
                    BODY_TEXT => Body::Text(text(&mut b)?.into()),
                    BODY_LZ4 => Body::Lz4(bytes(&mut b)?.into()),
                    _ => return Err(bad()),
                };
                Op::Record {
                    kind,
                    key,
                    value: Some(Arc::new(HotRecord { version, body })),
                }
            }
            TAG_RECORD_DELETE => Op::Record {
                kind: text(&mut b)?.into(),
                key: text(&mut b)?.into(),
                value: None,
            },
            TAG_SEQUENCE => Op::Sequence {
                key: text(&mut b)?.into(),
                value: int(&mut b)?,
            },
            TAG_HOST_PUT => {
                let key = text(&mut b)?.into();
                let seq = int(&mut b)?;
                let body = text(&mut b)?.into();
                Op::HostEntry {
                    key,
                    value: Some(Arc::new(HotEntry { seq, body })),
                }
            }
            TAG_HOST_DELETE => Op::HostEntry {
                key: text(&mut b)?.into(),
                value: None,
            },
            TAG_WIPE => {
                let account = text(&mut b)?.into();
                let n = take(&mut b, 4)?;
                let n = u32::from_le_bytes([n[0], n[1], n[2], n[3]]);
                let mut kinds = Vec::new();
                for _ in 0..n {
                    kinds.push(text(&mut b)?.into());
                }
                Op::Wipe { account, kinds }
            }
            _ => return Err(bad()),
        };
        ops.push(op);
    }
    Ok(ops)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn op() -> impl Strategy<Value = Op> {
        let s = "[a-z0-9|/-]{0,12}";
        prop_oneof![
            (s, s, any::<i64>(), "[ -~]{0,400}").prop_map(|(k, id, v, json)| Op::Record {
                kind: k.as_str().into(),
                key: key(&["1", "r", &id]).into(),
                value: Some(Arc::new(HotRecord {
                    version: v,
                    body: Body::of_json(&json)
                })),
            }),
            (s, s).prop_map(|(k, id)| Op::Record {
                kind: k.as_str().into(),
                key: id.as_str().into(),
                value: None
            }),
            (s, any::<i64>()).prop_map(|(k, v)| Op::Sequence {
                key: k.as_str().into(),
                value: v
            }),
            (s, any::<i64>(), s).prop_map(|(k, seq, b)| Op::HostEntry {
                key: k.as_str().into(),
                value: Some(Arc::new(HotEntry {
                    seq,
                    body: b.as_str().into()
                })),
            }),
            s.prop_map(|k| Op::HostEntry {
                key: k.as_str().into(),
                value: None
            }),
            (s, proptest::collection::vec(s, 0..3)).prop_map(|(a, k)| Op::Wipe {
                account: a.as_str().into(),
                kinds: k.iter().map(|k| k.as_str().into()).collect(),
            }),
        ]
    }

    proptest! {
        #[test]
        fn log_rows_decode_to_the_ops_they_encode(ops in proptest::collection::vec(op(), 0..20)) {
            let row = encode_ops(&ops);
            prop_assert_eq!(row.len(), ops.iter().map(encoded_len).sum::<usize>());
            prop_assert_eq!(decode_ops(&row).unwrap(), ops);
        }
    }

    #[test]
    fn a_cut_row_is_an_error_not_a_panic() {
        let ops = vec![Op::Sequence {
            key: "a\0b\0c".into(),
            value: 7,
        }];
        let row = encode_ops(&ops);
        for n in 1..row.len() {
            assert!(decode_ops(&row[..n]).is_err());
        }
    }

    #[test]
    fn keys_split_back_into_their_fields() {
        let k = key(&["111122223333", "us-east-1", "default/abc"]);
        assert_eq!(
            split::<3>(&k),
            Some(["111122223333", "us-east-1", "default/abc"])
        );
        assert_eq!(split::<3>("a\0b"), None);
    }

    #[test]
    fn a_wipe_removes_the_account_only() {
        let mut w = HotWork {
            state: HotState::new(&["ecs/task"]),
            ops: Vec::new(),
        };
        let rec = |v| {
            Some(Arc::new(HotRecord {
                version: v,
                body: Body::of_json("{}"),
            }))
        };
        w.record("ecs/task".into(), key(&["1", "r", "a"]).into(), rec(1));
        w.record("ecs/task".into(), key(&["10", "r", "a"]).into(), rec(1));
        w.sequence(key(&["1", "r", "n"]).into(), 3);
        w.sequence(key(&["10", "r", "n"]).into(), 3);
        let entry = Some(Arc::new(HotEntry {
            seq: 1,
            body: "{}".into(),
        }));
        w.host_entry(key(&["h", "1|r|t"]).into(), entry.clone());
        w.host_entry(key(&["h", "10|r|t"]).into(), entry);
        w.wipe("1");
        let s = &w.state;
        assert_eq!(s.kind("ecs/task").unwrap().len(), 1);
        assert_eq!(s.sequences.len(), 1);
        assert_eq!(s.host_entries.len(), 1);
        assert!(s.host_entries.contains_key("h\u{0}10|r|t"));
    }
}
