//! Berth's transactional store.
//!
//! Every resource is a versioned JSON record addressed by (account, region, kind, id);
//! account-wide resources use the region `""`. Writes run in one serialisable transaction
//! (`Store::write`), reads in a consistent snapshot (`Store::read`). Each record carries a
//! version: `put` with an expected version fails with [`StoreError::Conflict`] when another
//! writer moved it first, so callers that read outside a transaction never overwrite a newer
//! state (optimistic concurrency). Callers supply ids and times: the store is deterministic.
//!
//! The embedded backend is SQLite in WAL mode. A commit is in the WAL before `write`
//! returns, so a killed process loses nothing it acknowledged. The interface is backend-neutral
//! (plain records, ranges, sequences) so that PostgreSQL can serve the same calls.

mod compress;
mod hot;
#[cfg(test)]
mod hot_equivalence;
mod migrations;
mod priority;
mod scratch;
mod sqlite;

pub use sqlite::{HotStats, Store, Tx};

/// The owner of a record: an account in a region (`""` for account-wide resources).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Scope<'a> {
    pub account: &'a str,
    pub region: &'a str,
}

impl<'a> Scope<'a> {
    pub fn new(account: &'a str, region: &'a str) -> Scope<'a> {
        Scope { account, region }
    }
    /// The account-wide scope of the same account.
    pub fn global(self) -> Scope<'a> {
        Scope {
            account: self.account,
            region: "",
        }
    }
}

/// What a committed write transaction changed, as [`Store::observe`] reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// `kind/id` was written (its new version) or deleted (`None`).
    Record {
        account: String,
        region: String,
        kind: String,
        id: String,
        version: Option<i64>,
    },
    /// Every record of the account was removed.
    Account { account: String },
    /// Writes reported earlier were lost (their group's commit failed): whatever an observer
    /// derived from them must be rebuilt from the store.
    Reset,
}

/// One stored record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub id: String,
    pub version: i64,
    pub body: String,
}

impl Record {
    /// The record's body decoded as `T`.
    pub fn decode<T: serde::de::DeserializeOwned>(&self, kind: &str) -> Result<T, StoreError> {
        serde_json::from_str(&self.body).map_err(|e| StoreError::Decode {
            kind: kind.to_string(),
            id: self.id.clone(),
            reason: e.to_string(),
        })
    }
}

/// One task filed under the host that runs it (an agent's assignments): the host's
/// assignment sequence when the task last changed, so that a poll can ask for what changed
/// after the sequence it saw. `task` is `{account}|{region}|{task}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostEntry {
    pub task: String,
    pub seq: i64,
    pub body: String,
}

impl HostEntry {
    /// The entry's body decoded as `T`.
    pub fn decode<T: serde::de::DeserializeOwned>(&self) -> Result<T, StoreError> {
        serde_json::from_str(&self.body).map_err(|e| StoreError::Decode {
            kind: "host entry".to_string(),
            id: self.task.clone(),
            reason: e.to_string(),
        })
    }
}

/// An access key as the gateway needs it to verify a signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessKey {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub account: String,
    /// The ARN of the principal the key belongs to.
    pub principal_arn: String,
    /// `Active` or `Inactive`, as IAM names them.
    pub status: String,
    pub created_at_ms: i64,
}

/// One stored CloudWatch Logs event. `seq` orders events of equal timestamp by arrival.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEvent {
    pub seq: i64,
    pub stream: String,
    pub timestamp_ms: i64,
    pub ingestion_ms: i64,
    pub message: String,
}

/// Which log streams of a group a range read covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogStreams<'a> {
    All,
    One(&'a str),
    Named(&'a [String]),
    Prefix(&'a str),
}

/// A range read of log events, in (timestamp, seq) order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogRange<'a> {
    pub group: &'a str,
    pub streams: LogStreams<'a>,
    /// Events at or after this time.
    pub start_ms: Option<i64>,
    /// Events before this time.
    pub end_ms: Option<i64>,
    /// Events after this (timestamp, seq) position, exclusive.
    pub after: Option<(i64, i64)>,
    /// Events before this (timestamp, seq) position, exclusive.
    pub before: Option<(i64, i64)>,
    /// The newest events first (the result is then in descending order).
    pub descending: bool,
    pub limit: usize,
}

/// One CloudTrail event as stored: its lookup attributes as columns, the event as JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrailEvent {
    /// Assigned by the store on append (ignored there); orders events of equal time.
    pub seq: i64,
    pub account: String,
    pub region: String,
    pub event_time_ms: i64,
    pub event_id: String,
    pub event_name: String,
    pub event_source: String,
    pub read_only: bool,
    pub username: String,
    pub access_key_id: String,
    pub resources: Vec<TrailResource>,
    /// The CloudTrail event record (JSON).
    pub body: String,
}

/// A resource an event names: `AWS::ECS::Cluster` and the name or ARN the call used.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct TrailResource {
    pub resource_type: String,
    pub name: String,
}

/// The one attribute a LookupEvents call may select events by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrailAttribute<'a> {
    EventId(&'a str),
    EventName(&'a str),
    ReadOnly(bool),
    Username(&'a str),
    ResourceType(&'a str),
    ResourceName(&'a str),
    EventSource(&'a str),
    AccessKeyId(&'a str),
}

/// A read of trail events, newest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrailQuery<'a> {
    pub attribute: Option<TrailAttribute<'a>>,
    /// Events at or after this time.
    pub start_ms: Option<i64>,
    /// Events at or before this time.
    pub end_ms: Option<i64>,
    /// Events before this (time, seq) position, exclusive (the next page).
    pub before: Option<(i64, i64)>,
    pub limit: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("sqlite failed: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("cannot open the store at {path}: {reason}")]
    Open { path: String, reason: String },
    #[error("record {kind}/{id} already exists")]
    AlreadyExists { kind: String, id: String },
    #[error("record {kind}/{id} changed since it was read (expected version {expected})")]
    Conflict {
        kind: String,
        id: String,
        expected: i64,
    },
    #[error("cannot encode record {kind}/{id}: {reason}")]
    Encode {
        kind: String,
        id: String,
        reason: String,
    },
    #[error("cannot decode record {kind}/{id}: {reason}")]
    Decode {
        kind: String,
        id: String,
        reason: String,
    },
    #[error("the store's schema version {found} is newer than this berth knows ({known})")]
    SchemaTooNew { found: i64, known: i64 },
    #[error("the store's connection lock was poisoned by a panic")]
    Poisoned,
    #[error("the write was not committed: {0}")]
    Commit(String),
}
