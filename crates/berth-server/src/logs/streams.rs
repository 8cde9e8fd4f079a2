//! Log streams: CreateLogStream, DeleteLogStream, DescribeLogStreams.
//!
//! A stream is stored as its wire shape; PutLogEvents keeps its first/last event times,
//! last ingestion time and upload sequence token current. `storedBytes` of a stream is
//! always 0, as AWS has reported it since 2019 (the group's is real).

use std::cmp::Ordering;

use berth_wire::logs::ErrorCode;
use berth_wire::logs::shapes as s;
use berth_wire::{AwsError, RequestContext};

use super::Logs;
use super::common::{
    self, aws, check_stream_name, get_group, invalid, kind, scope, stream_arn, stream_id,
    stream_not_found,
};
use crate::failure::Failure;

pub fn create(
    logs: &Logs,
    ctx: &RequestContext,
    input: s::CreateLogStreamRequest,
) -> Result<(), AwsError> {
    common::check_group_name(&input.log_group_name, "logGroupName")?;
    check_stream_name(&input.log_stream_name, "logStreamName")?;
    let (group, stream) = (input.log_group_name, input.log_stream_name);
    let record = s::LogStream {
        log_stream_name: Some(stream.clone()),
        creation_time: Some(ctx.now.millis()),
        arn: Some(stream_arn(ctx, &group, &stream)),
        stored_bytes: Some(0),
        ..Default::default()
    };
    logs.store
        .write(|tx| -> Result<(), Failure> {
            get_group(tx, ctx, &group)?;
            let id = stream_id(&group, &stream);
            if tx.get(scope(ctx), kind::STREAM, &id)?.is_some() {
                return Err(ErrorCode::ResourceAlreadyExistsException
                    .with("The specified log stream already exists")
                    .into());
            }
            tx.insert(scope(ctx), kind::STREAM, &id, &record)?;
            Ok(())
        })
        .map_err(aws)
}

pub fn delete(
    logs: &Logs,
    ctx: &RequestContext,
    input: s::DeleteLogStreamRequest,
) -> Result<(), AwsError> {
    common::check_group_name(&input.log_group_name, "logGroupName")?;
    check_stream_name(&input.log_stream_name, "logStreamName")?;
    let (group, stream) = (input.log_group_name, input.log_stream_name);
    logs.store
        .write(|tx| -> Result<(), Failure> {
            get_group(tx, ctx, &group)?;
            if !tx.delete(scope(ctx), kind::STREAM, &stream_id(&group, &stream))? {
                return Err(stream_not_found().into());
            }
            tx.delete_log_events(scope(ctx), &group, Some(&stream))?;
            Ok(())
        })
        .map_err(aws)
}

/// The sort key of a stream under `order_by`: (last event time, name) or (0, name).
fn sort_key(stream: &s::LogStream, by_time: bool) -> (i64, String) {
    let time = if by_time {
        stream.last_event_timestamp.unwrap_or(0)
    } else {
        0
    };
    (time, stream.log_stream_name.clone().unwrap_or_default())
}

fn encode_key(key: &(i64, String)) -> String {
    common::encode_token(&format!("{}|{}", key.0, key.1))
}

fn decode_key(token: &str) -> Result<(i64, String), AwsError> {
    let raw = common::decode_token(token)?;
    raw.split_once('|')
        .and_then(|(t, n)| Some((t.parse().ok()?, n.to_string())))
        .ok_or_else(|| invalid("The specified nextToken is invalid."))
}

pub fn describe(
    logs: &Logs,
    ctx: &RequestContext,
    input: s::DescribeLogStreamsRequest,
) -> Result<s::DescribeLogStreamsResponse, AwsError> {
    let group = common::resolve_group(
        ctx,
        input.log_group_name.as_deref(),
        input.log_group_identifier.as_deref(),
    )?;
    let by_time = input.order_by == Some(s::OrderBy::LastEventTime);
    if let Some(p) = &input.log_stream_name_prefix {
        check_stream_name(p, "logStreamNamePrefix")?;
        if by_time {
            return Err(invalid(
                "Cannot order by LastEventTime with a logStreamNamePrefix.",
            ));
        }
    }
    let limit = common::check_limit(input.limit, 50)?;
    let descending = input.descending == Some(true);
    let after = input.next_token.as_deref().map(decode_key).transpose()?;
    let prefix = format!(
        "{group}:{}",
        input.log_stream_name_prefix.as_deref().unwrap_or("")
    );
    let mut streams: Vec<s::LogStream> = logs
        .store
        .read(|tx| -> Result<_, Failure> {
            get_group(tx, ctx, &group)?;
            Ok(tx.list_json::<s::LogStream>(scope(ctx), kind::STREAM, &prefix)?)
        })
        .map_err(aws)?
        .into_iter()
        .map(|(_, st)| st)
        .collect();
    let order = |a: &(i64, String), b: &(i64, String)| -> Ordering {
        if descending { b.cmp(a) } else { a.cmp(b) }
    };
    streams.sort_by(|a, b| order(&sort_key(a, by_time), &sort_key(b, by_time)));
    if let Some(after) = &after {
        streams.retain(|st| order(&sort_key(st, by_time), after) == Ordering::Greater);
    }
    let next_token = if streams.len() > limit {
        streams.truncate(limit);
        streams.last().map(|st| encode_key(&sort_key(st, by_time)))
    } else {
        None
    };
    Ok(s::DescribeLogStreamsResponse {
        log_streams: Some(streams),
        next_token,
    })
}
