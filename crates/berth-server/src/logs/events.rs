//! Log events: PutLogEvents, GetLogEvents, FilterLogEvents, and retention pruning.
//!
//! Events live in the store's append-only event table, not in records. Retention is enforced
//! on every read (events older than the group's retention are invisible) and by [`prune`],
//! which deletes them.

use berth_store::{LogEvent, LogRange, LogStreams, Store, StoreError};
use berth_wire::logs::shapes as s;
use berth_wire::{AwsError, RequestContext};

use super::Logs;
use super::common::{
    self, DAY_MS, GroupRecord, aws, check_stream_name, get_group, invalid, kind, parse_position,
    position_digits, retention_cutoff, scope, stream_id, stream_not_found, validation,
};
use super::pattern;
use crate::failure::Failure;

/// The largest PutLogEvents batch: the messages' UTF-8 bytes plus 26 bytes per event.
pub const MAX_BATCH_BYTES: usize = 1_048_576;
pub const EVENT_OVERHEAD_BYTES: usize = 26;
pub const MAX_BATCH_EVENTS: usize = 10_000;
/// Events further ahead than this are too new.
pub const MAX_FUTURE_MS: i64 = 2 * 3_600_000;
/// Events older than this are too old.
pub const MAX_AGE_MS: i64 = 14 * DAY_MS;
/// The widest time span of the accepted events of one batch.
pub const MAX_SPAN_MS: i64 = 24 * 3_600_000;
/// GetLogEvents and FilterLogEvents answer at most this many bytes of events.
pub const MAX_RESPONSE_BYTES: usize = 1_048_576;
/// FilterLogEvents scans at most this many events per call before answering with a token.
const FILTER_SCAN_LIMIT: usize = 100_000;
const FILTER_CHUNK: usize = 2_000;

/// Which events of a (chronological) batch are kept: `accepted` is the index range stored;
/// the rest is reported in `rejected`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    pub accepted: std::ops::Range<usize>,
    pub rejected: Option<s::RejectedLogEventsInfo>,
}

/// Applies PutLogEvents' batch rules to `events` (`(timestamp, message)`) at `now_ms` for
/// a group whose retention keeps events from `retention_cutoff` on.
pub fn check_batch(
    events: &[s::InputLogEvent],
    now_ms: i64,
    retention_cutoff: Option<i64>,
) -> Result<Batch, AwsError> {
    if events.is_empty() {
        return Err(validation(
            "[]",
            "logEvents",
            "Member must have length greater than or equal to 1",
        ));
    }
    if events.len() > MAX_BATCH_EVENTS {
        return Err(validation(
            "list",
            "logEvents",
            &format!("Member must have length less than or equal to {MAX_BATCH_EVENTS}"),
        ));
    }
    let mut bytes = 0;
    for (i, e) in events.iter().enumerate() {
        if e.message.is_empty() {
            return Err(validation(
                "",
                &format!("logEvents.{}.member.message", i + 1),
                "Member must have length greater than or equal to 1",
            ));
        }
        if e.timestamp < 0 {
            return Err(validation(
                &e.timestamp.to_string(),
                &format!("logEvents.{}.member.timestamp", i + 1),
                "Member must have value greater than or equal to 0",
            ));
        }
        bytes += e.message.len() + EVENT_OVERHEAD_BYTES;
    }
    if bytes > MAX_BATCH_BYTES {
        return Err(invalid(format!(
            "Upload too large: {bytes} bytes exceeds limit of {MAX_BATCH_BYTES}"
        )));
    }
    if events.windows(2).any(|w| w[1].timestamp < w[0].timestamp) {
        return Err(invalid(
            "Log events in a single PutLogEvents request must be in chronological order.",
        ));
    }
    let too_old_before = now_ms - MAX_AGE_MS;
    let too_old_end = events.iter().rposition(|e| e.timestamp < too_old_before);
    let expired_end = retention_cutoff.and_then(|c| events.iter().rposition(|e| e.timestamp < c));
    let too_new_start = events
        .iter()
        .position(|e| e.timestamp > now_ms + MAX_FUTURE_MS);
    let start = too_old_end.max(expired_end).map(|i| i + 1).unwrap_or(0);
    let end = too_new_start.unwrap_or(events.len()).max(start);
    if end > start && events[end - 1].timestamp - events[start].timestamp > MAX_SPAN_MS {
        return Err(invalid(
            "The batch of log events in a single PutLogEvents request cannot span more than 24 hours.",
        ));
    }
    let rejected = (too_old_end.is_some() || expired_end.is_some() || too_new_start.is_some())
        .then(|| s::RejectedLogEventsInfo {
            too_new_log_event_start_index: too_new_start.map(|i| i as i32),
            too_old_log_event_end_index: too_old_end.map(|i| i as i32),
            expired_log_event_end_index: expired_end.map(|i| i as i32),
        });
    Ok(Batch {
        accepted: start..end,
        rejected,
    })
}

/// The upload sequence token after the event with `seq` (AWS's are long decimal strings;
/// they are accepted and ignored on input).
fn sequence_token(seq: i64) -> String {
    format!("49{:054}", seq.max(0))
}

pub fn put(
    logs: &Logs,
    ctx: &RequestContext,
    input: s::PutLogEventsRequest,
) -> Result<s::PutLogEventsResponse, AwsError> {
    common::check_group_name(&input.log_group_name, "logGroupName")?;
    check_stream_name(&input.log_stream_name, "logStreamName")?;
    let (group, stream) = (&input.log_group_name, &input.log_stream_name);
    let now = ctx.now.millis();
    logs.store
        .write(|tx| -> Result<s::PutLogEventsResponse, Failure> {
            let (mut g, g_version) = get_group(tx, ctx, group)?;
            let id = stream_id(group, stream);
            let (mut st, st_version) = tx
                .get_json::<s::LogStream>(scope(ctx), kind::STREAM, &id)?
                .ok_or_else(stream_not_found)?;
            let batch = check_batch(&input.log_events, now, retention_cutoff(&g.group, now))?;
            let accepted = &input.log_events[batch.accepted.clone()];
            let token;
            if accepted.is_empty() {
                token = st
                    .upload_sequence_token
                    .clone()
                    .unwrap_or_else(|| sequence_token(0));
            } else {
                let rows: Vec<(i64, &str)> = accepted
                    .iter()
                    .map(|e| (e.timestamp, e.message.as_str()))
                    .collect();
                let last = tx.append_log_events(scope(ctx), group, stream, now, &rows)?;
                token = sequence_token(last);
                let (first_ts, last_ts) = (
                    accepted.first().map(|e| e.timestamp).unwrap_or(0),
                    accepted.last().map(|e| e.timestamp).unwrap_or(0),
                );
                st.first_event_timestamp = Some(
                    st.first_event_timestamp
                        .map_or(first_ts, |t| t.min(first_ts)),
                );
                st.last_event_timestamp =
                    Some(st.last_event_timestamp.map_or(last_ts, |t| t.max(last_ts)));
                st.last_ingestion_time = Some(now);
                st.upload_sequence_token = Some(token.clone());
                tx.put(scope(ctx), kind::STREAM, &id, Some(st_version), &st)?;
                let bytes: usize = accepted.iter().map(|e| e.message.len()).sum();
                g.group.stored_bytes = Some(g.group.stored_bytes.unwrap_or(0) + bytes as i64);
                tx.put(scope(ctx), kind::GROUP, group, Some(g_version), &g)?;
            }
            Ok(s::PutLogEventsResponse {
                next_sequence_token: Some(token),
                rejected_log_events_info: batch.rejected,
                rejected_entity_info: None,
            })
        })
        .map_err(aws)
}

/// A GetLogEvents position token: `f/<56 digits>` reads forward after the position,
/// `b/<56 digits>` backward before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cursor {
    Forward(i64, i64),
    Backward(i64, i64),
}

impl Cursor {
    pub fn parse(token: &str) -> Result<Cursor, AwsError> {
        let bad = || invalid("The specified nextToken is invalid.");
        if let Some(d) = token.strip_prefix("f/") {
            let (t, q) = parse_position(d).ok_or_else(bad)?;
            Ok(Cursor::Forward(t, q))
        } else if let Some(d) = token.strip_prefix("b/") {
            let (t, q) = parse_position(d).ok_or_else(bad)?;
            Ok(Cursor::Backward(t, q))
        } else {
            Err(bad())
        }
    }

    pub fn token(self) -> String {
        match self {
            Cursor::Forward(t, q) => format!("f/{}", position_digits(t, q)),
            Cursor::Backward(t, q) => format!("b/{}", position_digits(t, q)),
        }
    }
}

/// The tokens GetLogEvents answers with for a page `events` read at `cursor` (None: the
/// first read, at `origin`): around the page, or the same token again when it is empty.
pub fn page_tokens(
    cursor: Option<Cursor>,
    origin: (i64, i64),
    events: &[LogEvent],
) -> (String, String) {
    match (events.first(), events.last()) {
        (Some(first), Some(last)) => (
            Cursor::Forward(last.timestamp_ms, last.seq).token(),
            Cursor::Backward(first.timestamp_ms, first.seq).token(),
        ),
        _ => match cursor {
            Some(c @ Cursor::Forward(t, q)) => {
                (c.token(), Cursor::Backward(t, q.saturating_add(1)).token())
            }
            Some(c @ Cursor::Backward(t, q)) => {
                (Cursor::Forward(t, q.saturating_sub(1)).token(), c.token())
            }
            None => (
                Cursor::Forward(origin.0, origin.1).token(),
                Cursor::Backward(origin.0, origin.1.saturating_add(1)).token(),
            ),
        },
    }
}

/// Keeps the first events (in reading order) that fit in [`MAX_RESPONSE_BYTES`].
fn cap_bytes(events: &mut Vec<LogEvent>) {
    let mut bytes = 0;
    let keep = events
        .iter()
        .take_while(|e| {
            bytes += e.message.len() + EVENT_OVERHEAD_BYTES;
            bytes <= MAX_RESPONSE_BYTES
        })
        .count()
        .max(1);
    events.truncate(keep);
}

/// The time window a read covers: the request's, narrowed by the group's retention.
fn window(
    g: &GroupRecord,
    now: i64,
    start: Option<i64>,
    end: Option<i64>,
) -> (Option<i64>, Option<i64>) {
    let start = match (start, retention_cutoff(&g.group, now)) {
        (Some(s), Some(c)) => Some(s.max(c)),
        (s, c) => s.or(c),
    };
    (start, end)
}

fn check_times(start: Option<i64>, end: Option<i64>) -> Result<(), AwsError> {
    for (v, m) in [(start, "startTime"), (end, "endTime")] {
        if let Some(v) = v
            && v < 0
        {
            return Err(validation(
                &v.to_string(),
                m,
                "Member must have value greater than or equal to 0",
            ));
        }
    }
    Ok(())
}

pub fn get(
    logs: &Logs,
    ctx: &RequestContext,
    input: s::GetLogEventsRequest,
) -> Result<s::GetLogEventsResponse, AwsError> {
    let group = common::resolve_group(
        ctx,
        input.log_group_name.as_deref(),
        input.log_group_identifier.as_deref(),
    )?;
    check_stream_name(&input.log_stream_name, "logStreamName")?;
    check_times(input.start_time, input.end_time)?;
    let limit = common::check_limit(input.limit, 10_000)?;
    let cursor = input.next_token.as_deref().map(Cursor::parse).transpose()?;
    let stream = input.log_stream_name.as_str();
    let now = ctx.now.millis();
    logs.store
        .read(|tx| -> Result<s::GetLogEventsResponse, Failure> {
            let (g, _) = get_group(tx, ctx, &group)?;
            if tx
                .get(scope(ctx), kind::STREAM, &stream_id(&group, stream))?
                .is_none()
            {
                return Err(stream_not_found().into());
            }
            let (start, end) = window(&g, now, input.start_time, input.end_time);
            let mut range = LogRange {
                group: &group,
                streams: LogStreams::One(stream),
                start_ms: start,
                end_ms: end,
                after: None,
                before: None,
                descending: false,
                limit,
            };
            match cursor {
                Some(Cursor::Forward(t, q)) => range.after = Some((t, q)),
                Some(Cursor::Backward(t, q)) => {
                    range.before = Some((t, q));
                    range.descending = true;
                }
                // The first read: the newest events unless startFromHead.
                None => range.descending = input.start_from_head != Some(true),
            }
            let mut events = tx.log_events(scope(ctx), &range)?;
            cap_bytes(&mut events);
            if range.descending {
                events.reverse();
            }
            let origin = (start.unwrap_or(0), 0);
            let (forward, backward) = page_tokens(cursor, origin, &events);
            Ok(s::GetLogEventsResponse {
                events: Some(
                    events
                        .into_iter()
                        .map(|e| s::OutputLogEvent {
                            timestamp: Some(e.timestamp_ms),
                            message: Some(e.message),
                            ingestion_time: Some(e.ingestion_ms),
                        })
                        .collect(),
                ),
                next_forward_token: Some(forward),
                next_backward_token: Some(backward),
            })
        })
        .map_err(aws)
}

pub fn filter(
    logs: &Logs,
    ctx: &RequestContext,
    input: s::FilterLogEventsRequest,
) -> Result<s::FilterLogEventsResponse, AwsError> {
    let group = common::resolve_group(
        ctx,
        input.log_group_name.as_deref(),
        input.log_group_identifier.as_deref(),
    )?;
    if input.log_stream_names.is_some() && input.log_stream_name_prefix.is_some() {
        return Err(invalid(
            "You cannot specify both logStreamNames and logStreamNamePrefix.",
        ));
    }
    let names = input.log_stream_names.clone().unwrap_or_default();
    if input.log_stream_names.is_some() && (names.is_empty() || names.len() > 100) {
        return Err(validation(
            "list",
            "logStreamNames",
            "Member must have length between 1 and 100",
        ));
    }
    for n in &names {
        check_stream_name(n, "logStreamNames.member")?;
    }
    if let Some(p) = &input.log_stream_name_prefix {
        check_stream_name(p, "logStreamNamePrefix")?;
    }
    check_times(input.start_time, input.end_time)?;
    let text = input.filter_pattern.clone().unwrap_or_default();
    if text.chars().count() > 1024 {
        return Err(validation(
            &text,
            "filterPattern",
            "Member must have length less than or equal to 1024",
        ));
    }
    let pattern = pattern::parse(&text)
        .map_err(|e| invalid(format!("Invalid filter pattern '{text}': {e}.")))?;
    let limit = common::check_limit(input.limit, 10_000)?;
    let mut after = match input.next_token.as_deref() {
        None => None,
        Some(t) => Some(
            parse_position(&common::decode_token(t)?)
                .ok_or_else(|| invalid("The specified nextToken is invalid."))?,
        ),
    };
    let streams = match (&input.log_stream_names, &input.log_stream_name_prefix) {
        (Some(_), _) => LogStreams::Named(&names),
        (None, Some(p)) => LogStreams::Prefix(p),
        (None, None) => LogStreams::All,
    };
    let now = ctx.now.millis();
    logs.store
        .read(|tx| -> Result<s::FilterLogEventsResponse, Failure> {
            let (g, _) = get_group(tx, ctx, &group)?;
            // FilterLogEvents' endTime is inclusive (GetLogEvents' is not).
            let end_time = input.end_time.map(|e| e.saturating_add(1));
            let (start, end) = window(&g, now, input.start_time, end_time);
            let mut found = Vec::new();
            let mut bytes = 0;
            let mut scanned = 0;
            let mut more = false;
            'scan: loop {
                let chunk = tx.log_events(
                    scope(ctx),
                    &LogRange {
                        group: &group,
                        streams,
                        start_ms: start,
                        end_ms: end,
                        after,
                        before: None,
                        descending: false,
                        limit: FILTER_CHUNK,
                    },
                )?;
                let full = chunk.len() == FILTER_CHUNK;
                for e in chunk {
                    if found.len() == limit || scanned == FILTER_SCAN_LIMIT {
                        more = true;
                        break 'scan;
                    }
                    if pattern.matches(&e.message) {
                        let size = e.message.len() + EVENT_OVERHEAD_BYTES;
                        if !found.is_empty() && bytes + size > MAX_RESPONSE_BYTES {
                            more = true;
                            break 'scan;
                        }
                        bytes += size;
                        after = Some((e.timestamp_ms, e.seq));
                        found.push(e);
                    } else {
                        after = Some((e.timestamp_ms, e.seq));
                    }
                    scanned += 1;
                }
                if !full {
                    break;
                }
            }
            let next_token = if more {
                after.map(|(t, q)| common::encode_token(&position_digits(t, q)))
            } else {
                None
            };
            Ok(s::FilterLogEventsResponse {
                events: Some(
                    found
                        .into_iter()
                        .map(|e| s::FilteredLogEvent {
                            event_id: Some(position_digits(e.timestamp_ms, e.seq)),
                            log_stream_name: Some(e.stream),
                            timestamp: Some(e.timestamp_ms),
                            message: Some(e.message),
                            ingestion_time: Some(e.ingestion_ms),
                        })
                        .collect(),
                ),
                // Deprecated by AWS in 2020: always empty.
                searched_log_streams: Some(Vec::new()),
                next_token,
            })
        })
        .map_err(aws)
}

/// Deletes, in every account and region, the events older than their group's retention at
/// `now_ms`. Returns how many were deleted.
pub fn prune(store: &Store, now_ms: i64) -> Result<usize, StoreError> {
    let mut deleted = 0;
    let mut after: Option<(String, String, String)> = None;
    loop {
        let page = store.read(|tx| {
            tx.list_everywhere(
                kind::GROUP,
                after
                    .as_ref()
                    .map(|(a, r, i)| (a.as_str(), r.as_str(), i.as_str())),
                100,
            )
        })?;
        let Some((a, r, last)) = page.last() else {
            break;
        };
        after = Some((a.clone(), r.clone(), last.id.clone()));
        for (account, region, record) in &page {
            let Ok(g) = record.decode::<GroupRecord>(kind::GROUP) else {
                continue;
            };
            if let Some(cutoff) = retention_cutoff(&g.group, now_ms) {
                let sc = berth_store::Scope::new(account, region);
                deleted += store.write(|tx| tx.prune_log_events(sc, &record.id, cutoff))?;
            }
        }
    }
    Ok(deleted)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_700_000_000_000;

    fn ev(ts: i64, msg: &str) -> s::InputLogEvent {
        s::InputLogEvent {
            timestamp: ts,
            message: msg.into(),
        }
    }

    #[test]
    fn batch_count_size_and_order() {
        assert!(check_batch(&[], NOW, None).is_err());
        let many: Vec<_> = (0..10_001).map(|_| ev(NOW, "x")).collect();
        assert!(check_batch(&many, NOW, None).is_err());
        assert!(check_batch(&many[..10_000], NOW, None).is_ok());
        // 1,048,576 bytes counting 26 per event: exactly at the limit is fine.
        let big = "a".repeat(MAX_BATCH_BYTES - 2 * EVENT_OVERHEAD_BYTES - 1);
        assert!(check_batch(&[ev(NOW, &big), ev(NOW, "b")], NOW, None).is_ok());
        let e = check_batch(&[ev(NOW, &big), ev(NOW, "bc")], NOW, None).unwrap_err();
        assert!(e.message.starts_with("Upload too large"), "{e:?}");
        let e = check_batch(&[ev(NOW, "a"), ev(NOW - 1, "b")], NOW, None).unwrap_err();
        assert!(e.message.contains("chronological"), "{e:?}");
        assert!(check_batch(&[ev(NOW, "")], NOW, None).is_err());
        let e = check_batch(&[ev(NOW - 25 * 3_600_000, "a"), ev(NOW, "b")], NOW, None).unwrap_err();
        assert!(e.message.contains("24 hours"), "{e:?}");
    }

    #[test]
    fn batch_rejects_too_old_expired_and_too_new() {
        let events = [
            ev(NOW - 15 * DAY_MS, "too old"),
            ev(NOW - 2 * DAY_MS, "expired under 1-day retention"),
            ev(NOW - 1000, "ok"),
            ev(NOW + 1000, "ok, slightly ahead"),
            ev(NOW + 3 * 3_600_000, "too new"),
        ];
        let b = check_batch(&events[2..], NOW, None).unwrap();
        assert_eq!(b.accepted, 0..2);
        assert_eq!(
            b.rejected,
            Some(s::RejectedLogEventsInfo {
                too_new_log_event_start_index: Some(2),
                too_old_log_event_end_index: None,
                expired_log_event_end_index: None,
            })
        );
        // The 24-hour span counts accepted events only.
        let b = check_batch(&events, NOW, Some(NOW - DAY_MS)).unwrap();
        assert_eq!(b.accepted, 2..4);
        let r = b.rejected.unwrap();
        assert_eq!(r.too_old_log_event_end_index, Some(0));
        assert_eq!(r.expired_log_event_end_index, Some(1));
        assert_eq!(r.too_new_log_event_start_index, Some(4));
        let b = check_batch(&[ev(NOW - 20 * DAY_MS, "x")], NOW, None).unwrap();
        assert!(b.accepted.is_empty());
        assert!(
            check_batch(&[ev(NOW, "fine")], NOW, None)
                .unwrap()
                .rejected
                .is_none()
        );
    }

    fn le(ts: i64, seq: i64) -> LogEvent {
        LogEvent {
            seq,
            stream: "s".into(),
            timestamp_ms: ts,
            ingestion_ms: ts,
            message: "m".into(),
        }
    }

    #[test]
    fn get_tokens_round_trip_and_repeat_at_the_end() {
        let c = Cursor::Forward(NOW, 7);
        assert_eq!(Cursor::parse(&c.token()).unwrap(), c);
        let b = Cursor::Backward(NOW, 7);
        assert!(b.token().starts_with("b/"));
        assert_eq!(Cursor::parse(&b.token()).unwrap(), b);
        assert!(Cursor::parse("x/123").is_err());
        assert!(Cursor::parse("f/12").is_err());
        // A page: forward after its last event, backward before its first.
        let (f, bk) = page_tokens(None, (0, 0), &[le(5, 1), le(6, 2)]);
        assert_eq!(Cursor::parse(&f).unwrap(), Cursor::Forward(6, 2));
        assert_eq!(Cursor::parse(&bk).unwrap(), Cursor::Backward(5, 1));
        // At the end, the same token comes back.
        let (f2, _) = page_tokens(Some(Cursor::Forward(6, 2)), (0, 0), &[]);
        assert_eq!(f2, f);
        let (_, b2) = page_tokens(Some(Cursor::Backward(5, 1)), (0, 0), &[]);
        assert_eq!(b2, bk);
    }

    #[test]
    fn response_cap_keeps_at_least_one_event() {
        let mut v: Vec<LogEvent> = (0..3)
            .map(|i| LogEvent {
                message: "x".repeat(600_000),
                ..le(i, i)
            })
            .collect();
        cap_bytes(&mut v);
        assert_eq!(v.len(), 1);
    }
}
