//! Schema migrations, applied in order at open; each runs once, in its own transaction.

/// (version, SQL). Append only: never edit a migration that has shipped.
pub const MIGRATIONS: &[(i64, &str)] = &[
    (
        1,
        "CREATE TABLE records (
        account TEXT NOT NULL,
        region TEXT NOT NULL,
        kind TEXT NOT NULL,
        id TEXT NOT NULL,
        version INTEGER NOT NULL,
        body TEXT NOT NULL,
        PRIMARY KEY (account, region, kind, id)
    ) WITHOUT ROWID;
    CREATE TABLE sequences (
        account TEXT NOT NULL,
        region TEXT NOT NULL,
        name TEXT NOT NULL,
        value INTEGER NOT NULL,
        PRIMARY KEY (account, region, name)
    ) WITHOUT ROWID;
    CREATE TABLE access_keys (
        access_key_id TEXT PRIMARY KEY,
        secret_access_key TEXT NOT NULL,
        account TEXT NOT NULL,
        principal_arn TEXT NOT NULL,
        status TEXT NOT NULL,
        created_at_ms INTEGER NOT NULL
    );
    CREATE INDEX access_keys_by_principal ON access_keys (account, principal_arn);",
    ),
    (
        2,
        // CloudWatch Logs events: append-only, apart from whole-stream deletes and pruning.
        // `seq` is the rowid (appends are cheap); one index serves reads of a stream, the
        // other reads of a whole group in time order.
        "CREATE TABLE log_events (
        seq INTEGER PRIMARY KEY,
        account TEXT NOT NULL,
        region TEXT NOT NULL,
        log_group TEXT NOT NULL,
        log_stream TEXT NOT NULL,
        timestamp_ms INTEGER NOT NULL,
        ingestion_ms INTEGER NOT NULL,
        message TEXT NOT NULL
    );
    CREATE INDEX log_events_by_stream ON log_events (account, region, log_group, log_stream, timestamp_ms, seq);
    CREATE INDEX log_events_by_group ON log_events (account, region, log_group, timestamp_ms, seq);",
    ),
];
