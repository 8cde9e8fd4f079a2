//! Schema migrations, applied in order at open; each runs once, in its own transaction.

/// (version, SQL). Append only: never edit a migration that has shipped. Since migration 6,
/// long bodies of `records` and `trail_events` may be compressed blobs (`hot::Body::of_json`):
/// a migration cannot read them as JSON with SQL.
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
    (
        3,
        // CloudTrail event history: append-only rows, pruned after 90 days. One index per
        // LookupEvents attribute, each ending in (time, seq) so a lookup is one range scan in
        // newest-first order; resources (several per event) have their own table.
        "CREATE TABLE trail_events (
        seq INTEGER PRIMARY KEY,
        account TEXT NOT NULL,
        region TEXT NOT NULL,
        event_time_ms INTEGER NOT NULL,
        event_id TEXT NOT NULL,
        event_name TEXT NOT NULL,
        event_source TEXT NOT NULL,
        read_only INTEGER NOT NULL,
        username TEXT NOT NULL,
        access_key_id TEXT NOT NULL,
        body TEXT NOT NULL
    );
    CREATE INDEX trail_events_by_time ON trail_events (account, region, event_time_ms, seq);
    CREATE INDEX trail_events_by_id ON trail_events (account, region, event_id);
    CREATE INDEX trail_events_by_name ON trail_events (account, region, event_name, event_time_ms, seq);
    CREATE INDEX trail_events_by_source ON trail_events (account, region, event_source, event_time_ms, seq);
    CREATE INDEX trail_events_by_read_only ON trail_events (account, region, read_only, event_time_ms, seq);
    CREATE INDEX trail_events_by_username ON trail_events (account, region, username, event_time_ms, seq);
    CREATE INDEX trail_events_by_access_key ON trail_events (account, region, access_key_id, event_time_ms, seq);
    CREATE TABLE trail_resources (
        seq INTEGER NOT NULL,
        account TEXT NOT NULL,
        region TEXT NOT NULL,
        event_time_ms INTEGER NOT NULL,
        resource_type TEXT NOT NULL,
        resource_name TEXT NOT NULL
    );
    CREATE INDEX trail_resources_by_name ON trail_resources (account, region, resource_name, event_time_ms, seq);
    CREATE INDEX trail_resources_by_type ON trail_resources (account, region, resource_type, event_time_ms, seq);
    CREATE INDEX trail_resources_by_event ON trail_resources (seq);
    CREATE INDEX trail_events_by_age ON trail_events (event_time_ms);
    CREATE INDEX trail_resources_by_age ON trail_resources (event_time_ms);",
    ),
    (
        4,
        // Records of one kind in every account and region (`Tx::list_everywhere`: the
        // service controller's and housekeeping's sweeps) without scanning every record.
        "CREATE INDEX records_by_kind ON records (kind, account, region, id);",
    ),
    (
        5,
        // Records move to a rowid table with their key in a unique index. In the WITHOUT
        // ROWID table (an index b-tree) a row kept at most about a quarter of a page in place:
        // every task (2 KiB) and container instance (4 KiB) spilled into an overflow page, so
        // each write of one dirtied two or three pages and each read followed a chain. A rowid
        // table keeps a row of up to a page in place, and new rows append at the table's end.
        "CREATE TABLE records_by_rowid (
        account TEXT NOT NULL,
        region TEXT NOT NULL,
        kind TEXT NOT NULL,
        id TEXT NOT NULL,
        version INTEGER NOT NULL,
        body TEXT NOT NULL
    );
    INSERT INTO records_by_rowid (account, region, kind, id, version, body)
        SELECT account, region, kind, id, version, body FROM records ORDER BY account, region, kind, id;
    DROP INDEX records_by_kind;
    DROP TABLE records;
    ALTER TABLE records_by_rowid RENAME TO records;
    CREATE UNIQUE INDEX records_by_key ON records (account, region, kind, id);
    CREATE INDEX records_by_kind ON records (kind, account, region, id);",
    ),
    (
        6,
        // Host entries move out of `records` (kind `ecs/host-task`, account-wide, id
        // `{host}#{task}`) into a table of their own, indexed by the host's sequence as well:
        // a poll for what changed reads only the entries that did, not every task of the host
        // with its body parsed to compare sequences; and a new entry costs two b-tree inserts,
        // not three.
        "CREATE TABLE host_entries (
        host TEXT NOT NULL,
        task TEXT NOT NULL,
        seq INTEGER NOT NULL,
        body TEXT NOT NULL,
        PRIMARY KEY (host, task)
    ) WITHOUT ROWID;
    CREATE INDEX host_entries_by_seq ON host_entries (host, seq);
    INSERT INTO host_entries (host, task, seq, body)
        SELECT substr(id, 1, instr(id, '#') - 1), substr(id, instr(id, '#') + 1),
               coalesce(json_extract(body, '$.seq'), 0), body
        FROM records
        WHERE account = '' AND region = '' AND kind = 'ecs/host-task' AND instr(id, '#') > 0;
    DELETE FROM records WHERE account = '' AND region = '' AND kind = 'ecs/host-task';",
    ),
    (
        7,
        // Host entries take their sequence from one counter shared by every host
        // (`Tx::next_host_sequence`), not a counter row per host: a placement no longer
        // rewrites a row of its host's own. The shared counter starts past every host's
        // counter, so each agent's acknowledged sequence stays below every new entry's.
        "INSERT INTO sequences (account, region, name, value)
        SELECT '', '', 'host-seq', coalesce(max(value), 0) FROM sequences
        WHERE account = '' AND region = '' AND name >= 'host-seq/' AND name < 'host-seq0';
    DELETE FROM sequences
        WHERE account = '' AND region = '' AND name >= 'host-seq/' AND name < 'host-seq0';",
    ),
    (
        8,
        // An event's resources are keyed by (its seq, their order): the table is its own
        // index by event (reading an event's resources, pruning old events' by their seqs),
        // so a resource costs three b-tree inserts, not five (no rowid, no by-event or by-age
        // index). A RunTask event names a couple of dozen resources.
        "CREATE TABLE trail_resources_by_seq (
        seq INTEGER NOT NULL,
        n INTEGER NOT NULL,
        account TEXT NOT NULL,
        region TEXT NOT NULL,
        event_time_ms INTEGER NOT NULL,
        resource_type TEXT NOT NULL,
        resource_name TEXT NOT NULL,
        PRIMARY KEY (seq, n)
    ) WITHOUT ROWID;
    INSERT INTO trail_resources_by_seq
        SELECT seq, row_number() OVER (PARTITION BY seq ORDER BY rowid), account, region,
               event_time_ms, resource_type, resource_name
        FROM trail_resources;
    DROP TABLE trail_resources;
    ALTER TABLE trail_resources_by_seq RENAME TO trail_resources;
    CREATE INDEX trail_resources_by_name ON trail_resources (account, region, resource_name, event_time_ms, seq);
    CREATE INDEX trail_resources_by_type ON trail_resources (account, region, resource_type, event_time_ms, seq);",
    ),
    (
        9,
        // Host entries lose their index by sequence. A host's entries are few and adjacent
        // in the table (keyed by host first), so a poll for what changed reads them all and
        // keeps the newer ones; the index cost every placement and every state change an
        // insert at a random place (its key starts with the host too): at 10,000 instances,
        // the writer, which sets the rate, was held 15 % less without it.
        "DROP INDEX host_entries_by_seq;",
    ),
    (
        10,
        // CloudTrail events become one row each, their resources in it (a JSON array of
        // [type, name], in order), and everything LookupEvents selects by goes into one
        // table of keys (`sqlite::trail_keys`: a letter for the attribute, then its value),
        // ending in (time, seq) like the indexes it replaces. An event names each resource
        // type and name once there. A RunTask event (two dozen resources) cost about 70
        // b-tree inserts (a row and 8 index entries, 3 per resource); it now costs about 30.
        "CREATE TABLE trail_events_compact (
        seq INTEGER PRIMARY KEY,
        account TEXT NOT NULL,
        region TEXT NOT NULL,
        event_time_ms INTEGER NOT NULL,
        event_id TEXT NOT NULL,
        event_name TEXT NOT NULL,
        event_source TEXT NOT NULL,
        read_only INTEGER NOT NULL,
        username TEXT NOT NULL,
        access_key_id TEXT NOT NULL,
        resources TEXT NOT NULL,
        body TEXT NOT NULL
    );
    INSERT INTO trail_events_compact (seq, account, region, event_time_ms, event_id, event_name,
            event_source, read_only, username, access_key_id, resources, body)
        SELECT e.seq, e.account, e.region, e.event_time_ms, e.event_id, e.event_name,
               e.event_source, e.read_only, e.username, e.access_key_id,
               coalesce((SELECT json_group_array(json_array(r.resource_type, r.resource_name) ORDER BY r.n)
                         FROM trail_resources r WHERE r.seq = e.seq), '[]'),
               e.body
        FROM trail_events e;
    CREATE TABLE trail_keys (
        account TEXT NOT NULL,
        region TEXT NOT NULL,
        key TEXT NOT NULL,
        event_time_ms INTEGER NOT NULL,
        seq INTEGER NOT NULL,
        PRIMARY KEY (account, region, key, event_time_ms, seq)
    ) WITHOUT ROWID;
    INSERT OR IGNORE INTO trail_keys (account, region, key, event_time_ms, seq)
        SELECT account, region, 'i' || event_id, event_time_ms, seq FROM trail_events
        UNION ALL SELECT account, region, 'n' || event_name, event_time_ms, seq FROM trail_events
        UNION ALL SELECT account, region, 's' || event_source, event_time_ms, seq FROM trail_events
        UNION ALL SELECT account, region, 'r' || read_only, event_time_ms, seq FROM trail_events
        UNION ALL SELECT account, region, 'u' || username, event_time_ms, seq FROM trail_events
        UNION ALL SELECT account, region, 'k' || access_key_id, event_time_ms, seq FROM trail_events
        UNION ALL SELECT account, region, 't' || resource_type, event_time_ms, seq FROM trail_resources
        UNION ALL SELECT account, region, 'R' || resource_name, event_time_ms, seq FROM trail_resources;
    DROP TABLE trail_resources;
    DROP TABLE trail_events;
    ALTER TABLE trail_events_compact RENAME TO trail_events;
    CREATE INDEX trail_events_by_time ON trail_events (account, region, event_time_ms, seq);
    CREATE INDEX trail_events_by_age ON trail_events (event_time_ms);",
    ),
    (
        11,
        // The hot state's log (`hot.rs`): each group commit that changed the records of the
        // kinds held in memory, a counter or a host entry appends one row with those changes,
        // in its own transaction; the tables catch up later and the rows they hold are then
        // deleted (the last one stays: readers find the state's group in it). Opening the
        // store replays what is left into the tables and empties the log.
        "CREATE TABLE hot_log (
        group_no INTEGER PRIMARY KEY,
        ops BLOB NOT NULL
    );",
    ),
    (
        12,
        // Compressed bodies may name a dictionary in their header (`compress.rs`), which a
        // build from before cannot decode: the version stops such a build from opening the
        // file (`SchemaTooNew`) instead of failing on every such body. The table says which
        // dictionaries the file's bodies may use.
        "CREATE TABLE body_dictionaries (number INTEGER PRIMARY KEY);
    INSERT INTO body_dictionaries (number) VALUES (1);",
    ),
    (
        13,
        // CloudTrail's lookup keys are written many events at a time, in key order
        // (`sqlite::Tx::index_trail_events`): the events up to `through_seq` have theirs in
        // `trail_keys`, the later ones are found by reading their rows. Every event already
        // stored has its keys.
        "CREATE TABLE trail_keys_through (through_seq INTEGER NOT NULL);
    INSERT INTO trail_keys_through (through_seq) SELECT coalesce(max(seq), 0) FROM trail_events;",
    ),
];
