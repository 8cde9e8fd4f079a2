//! LookupEvents: the event history of the caller's account and region, newest first, by at
//! most one lookup attribute and a time range, 50 events a page at most.

use base64::Engine as _;
use berth_store::{Scope, Store, TrailAttribute, TrailEvent, TrailQuery};
use berth_wire::cloudtrail::{ErrorCode, shapes as s};
use berth_wire::{AwsError, RequestContext, Timestamp};

use super::RETENTION_MS;

/// LookupEvents' page size when MaxResults is not given, and its largest.
pub const MAX_RESULTS: i32 = 50;
/// The longest AttributeValue CloudTrail accepts.
pub const MAX_ATTRIBUTE_VALUE: usize = 2000;

/// The lookup a request asks for, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lookup {
    pub attribute: Option<(s::LookupAttributeKey, String)>,
    pub start_ms: Option<i64>,
    pub end_ms: Option<i64>,
    pub limit: usize,
    /// Where the previous page ended: (time, seq).
    pub before: Option<(i64, i64)>,
    /// Only Insights events were asked for (Berth has none).
    pub insights_only: bool,
}

fn invalid_attributes(message: &str) -> AwsError {
    ErrorCode::InvalidLookupAttributesException.with(message)
}

fn invalid_token() -> AwsError {
    ErrorCode::InvalidNextTokenException.with("Invalid NextToken.")
}

/// What a token must be used with again: everything but MaxResults and the token.
fn fingerprint(input: &s::LookupEventsRequest) -> u64 {
    let text = format!(
        "{:?}|{:?}|{:?}|{:?}",
        input
            .lookup_attributes
            .iter()
            .flatten()
            .map(|a| (a.attribute_key.as_str(), a.attribute_value.as_str()))
            .collect::<Vec<_>>(),
        input.start_time.map(Timestamp::millis),
        input.end_time.map(Timestamp::millis),
        input.event_category.map(|c| c.as_str()),
    );
    text.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// The NextToken after the event at (time, seq) of a lookup with `fingerprint`.
pub fn encode_token(time_ms: i64, seq: i64, fingerprint: u64) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(format!("v1:{time_ms}:{seq}:{fingerprint:016x}"))
}

fn decode_token(token: &str, fingerprint: u64) -> Result<(i64, i64), AwsError> {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .map_err(|_| invalid_token())?;
    let text = String::from_utf8(bytes).map_err(|_| invalid_token())?;
    let mut parts = text.split(':');
    let (Some("v1"), Some(t), Some(q), Some(f), None) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return Err(invalid_token());
    };
    if f != format!("{fingerprint:016x}") {
        // A token used with other parameters than the call that made it.
        return Err(invalid_token());
    }
    Ok((
        t.parse().map_err(|_| invalid_token())?,
        q.parse().map_err(|_| invalid_token())?,
    ))
}

/// Checks a request as CloudTrail does and turns it into a [`Lookup`].
pub fn validate(input: &s::LookupEventsRequest) -> Result<Lookup, AwsError> {
    let attributes = input.lookup_attributes.as_deref().unwrap_or_default();
    if attributes.len() > 1 {
        return Err(invalid_attributes(
            "You cannot specify more than one lookup attribute.",
        ));
    }
    let attribute = match attributes.first() {
        None => None,
        Some(a) => {
            let value = a.attribute_value.as_str();
            if value.is_empty() {
                return Err(invalid_attributes(&format!(
                    "The value of lookup attribute {} must not be empty.",
                    a.attribute_key
                )));
            }
            // `_`, space, `,` and newline count twice towards the limit.
            let weight: usize = value
                .chars()
                .map(|c| {
                    if matches!(c, '_' | ' ' | ',' | '\n') {
                        2
                    } else {
                        1
                    }
                })
                .sum();
            if weight > MAX_ATTRIBUTE_VALUE {
                return Err(invalid_attributes(&format!(
                    "The value of lookup attribute {} is longer than {MAX_ATTRIBUTE_VALUE} characters.",
                    a.attribute_key
                )));
            }
            if a.attribute_key == s::LookupAttributeKey::ReadOnly
                && !matches!(value, "true" | "false")
            {
                return Err(invalid_attributes(
                    "The value of lookup attribute ReadOnly must be true or false.",
                ));
            }
            Some((a.attribute_key, value.to_string()))
        }
    };
    let max = input.max_results.unwrap_or(MAX_RESULTS);
    if !(1..=MAX_RESULTS).contains(&max) {
        return Err(ErrorCode::InvalidMaxResultsException.with(format!(
            "MaxResults must be between 1 and {MAX_RESULTS}, inclusive; got {max}."
        )));
    }
    let start_ms = input.start_time.map(Timestamp::millis);
    let end_ms = input.end_time.map(Timestamp::millis);
    if let (Some(start), Some(end)) = (start_ms, end_ms)
        && start > end
    {
        return Err(ErrorCode::InvalidTimeRangeException
            .with("The start time must be before the end time."));
    }
    let before = match input.next_token.as_deref() {
        None => None,
        Some(token) => Some(decode_token(token, fingerprint(input))?),
    };
    Ok(Lookup {
        attribute,
        start_ms,
        end_ms,
        limit: usize::try_from(max).unwrap_or(50),
        before,
        insights_only: input.event_category == Some(s::EventCategory::Insight),
    })
}

fn to_wire(e: TrailEvent) -> s::Event {
    s::Event {
        event_id: Some(e.event_id),
        event_name: Some(e.event_name),
        read_only: Some(e.read_only.to_string()),
        access_key_id: Some(e.access_key_id).filter(|k| !k.is_empty()),
        // CloudTrail's event times have whole seconds.
        event_time: Some(Timestamp(
            e.event_time_ms - e.event_time_ms.rem_euclid(1000),
        )),
        event_source: Some(e.event_source),
        username: Some(e.username),
        resources: Some(
            e.resources
                .into_iter()
                .map(|r| s::Resource {
                    resource_type: Some(r.resource_type),
                    resource_name: Some(r.name),
                })
                .collect(),
        ),
        cloud_trail_event: Some(e.body),
    }
}

pub fn lookup_events(
    store: &Store,
    ctx: &RequestContext,
    input: s::LookupEventsRequest,
) -> Result<s::LookupEventsResponse, AwsError> {
    let lookup = validate(&input)?;
    if lookup.insights_only {
        return Ok(s::LookupEventsResponse {
            events: Some(Vec::new()),
            next_token: None,
        });
    }
    let attribute = lookup.attribute.as_ref().map(|(key, value)| {
        let v = value.as_str();
        match key {
            s::LookupAttributeKey::EventId => TrailAttribute::EventId(v),
            s::LookupAttributeKey::EventName => TrailAttribute::EventName(v),
            s::LookupAttributeKey::ReadOnly => TrailAttribute::ReadOnly(v == "true"),
            s::LookupAttributeKey::Username => TrailAttribute::Username(v),
            s::LookupAttributeKey::ResourceType => TrailAttribute::ResourceType(v),
            s::LookupAttributeKey::ResourceName => TrailAttribute::ResourceName(v),
            s::LookupAttributeKey::EventSource => TrailAttribute::EventSource(v),
            s::LookupAttributeKey::AccessKeyId => TrailAttribute::AccessKeyId(v),
        }
    });
    // The history holds 90 days: older events are invisible until housekeeping deletes them.
    let oldest = ctx.now.millis() - RETENTION_MS;
    let query = TrailQuery {
        attribute,
        start_ms: Some(lookup.start_ms.map_or(oldest, |s| s.max(oldest))),
        end_ms: lookup.end_ms,
        before: lookup.before,
        limit: lookup.limit + 1,
    };
    let mut events = store
        .read(|tx| tx.trail_events(Scope::new(&ctx.account_id, &ctx.region), &query))
        .map_err(|e| {
            tracing::error!(error = %e, "cannot read CloudTrail events");
            AwsError::internal("An internal error occurred. Try the request again.")
        })?;
    let next_token = if events.len() > lookup.limit {
        events.truncate(lookup.limit);
        events
            .last()
            .map(|e| encode_token(e.event_time_ms, e.seq, fingerprint(&input)))
    } else {
        None
    };
    Ok(s::LookupEventsResponse {
        events: Some(events.into_iter().map(to_wire).collect()),
        next_token,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(key: s::LookupAttributeKey, value: &str) -> s::LookupEventsRequest {
        s::LookupEventsRequest {
            lookup_attributes: Some(vec![s::LookupAttribute {
                attribute_key: key,
                attribute_value: value.into(),
            }]),
            ..Default::default()
        }
    }

    #[test]
    fn validation_errors_are_cloudtrails() {
        let two = s::LookupEventsRequest {
            lookup_attributes: Some(vec![
                s::LookupAttribute {
                    attribute_key: s::LookupAttributeKey::EventName,
                    attribute_value: "RunTask".into(),
                },
                s::LookupAttribute {
                    attribute_key: s::LookupAttributeKey::Username,
                    attribute_value: "root".into(),
                },
            ]),
            ..Default::default()
        };
        assert_eq!(
            validate(&two).unwrap_err().code,
            "InvalidLookupAttributesException"
        );
        assert_eq!(
            validate(&request(s::LookupAttributeKey::ReadOnly, "yes"))
                .unwrap_err()
                .code,
            "InvalidLookupAttributesException"
        );
        assert_eq!(
            validate(&request(s::LookupAttributeKey::EventName, ""))
                .unwrap_err()
                .code,
            "InvalidLookupAttributesException"
        );
        assert_eq!(
            validate(&request(
                s::LookupAttributeKey::EventName,
                &"_".repeat(1001)
            ))
            .unwrap_err()
            .code,
            "InvalidLookupAttributesException"
        );
        for max in [0, 51] {
            let r = s::LookupEventsRequest {
                max_results: Some(max),
                ..Default::default()
            };
            assert_eq!(validate(&r).unwrap_err().code, "InvalidMaxResultsException");
        }
        let backwards = s::LookupEventsRequest {
            start_time: Some(Timestamp(2_000)),
            end_time: Some(Timestamp(1_000)),
            ..Default::default()
        };
        assert_eq!(
            validate(&backwards).unwrap_err().code,
            "InvalidTimeRangeException"
        );
        let bad_token = s::LookupEventsRequest {
            next_token: Some("garbage".into()),
            ..Default::default()
        };
        assert_eq!(
            validate(&bad_token).unwrap_err().code,
            "InvalidNextTokenException"
        );
    }

    #[test]
    fn a_token_only_works_with_the_parameters_that_made_it() {
        let by_name = request(s::LookupAttributeKey::EventName, "RunTask");
        let token = encode_token(5_000, 7, fingerprint(&by_name));
        let again = s::LookupEventsRequest {
            next_token: Some(token.clone()),
            max_results: Some(3),
            ..by_name.clone()
        };
        assert_eq!(validate(&again).unwrap().before, Some((5_000, 7)));
        let other = s::LookupEventsRequest {
            next_token: Some(token),
            ..request(s::LookupAttributeKey::EventName, "StopTask")
        };
        assert_eq!(
            validate(&other).unwrap_err().code,
            "InvalidNextTokenException"
        );
    }
}
