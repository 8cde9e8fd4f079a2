//! AWS CloudTrail: every API call the gateway authenticates is recorded as a CloudTrail event
//! (`event`, with `redact` and `resources`), stored off the request's path (`recorder`) in
//! the event history, and found again with LookupEvents (`lookup`). Operations not listed
//! here answer, through the generated trait's defaults, that Berth does not serve them yet.
//!
//! What is recorded (the gateway decides per service, see `gateway::JSON_SERVICES` and
//! `QUERY_SERVICES`): every call to ECS, CloudWatch Logs, CloudTrail, IAM, STS and Berth's
//! admin API, failed ones (access denied included) too, once the caller is authenticated, as
//! CloudTrail records management events. Query services' XML replies are not turned into
//! responseElements (null). Not recorded:
//! requests that fail authentication (no identity to record), the agent channel's long poll
//! (ECS's agent communication service is not an API call either; the agent's
//! SubmitTaskStateChange and friends are ECS calls and are recorded), and data events, which
//! CloudTrail's event history does not hold: Logs' PutLogEvents, GetLogEvents,
//! FilterLogEvents, StartLiveTail, GetLogRecord.

pub mod event;
pub mod lookup;
pub mod recorder;
pub mod redact;
pub mod resources;
pub mod scan;

use std::sync::Arc;

use berth_store::Store;
use berth_wire::cloudtrail::{Api, shapes as s};
use berth_wire::{AwsError, RequestContext};

pub use event::ApiCall;
pub use recorder::Recorder;

/// How long CloudTrail's event history keeps an event.
pub const RETENTION_MS: i64 = 90 * 86_400_000;

/// The CloudTrail service over the store.
pub struct CloudTrail {
    pub store: Arc<Store>,
}

impl CloudTrail {
    pub fn new(store: Arc<Store>) -> CloudTrail {
        CloudTrail { store }
    }
}

impl Api for CloudTrail {
    fn lookup_events(
        &self,
        ctx: &RequestContext,
        input: s::LookupEventsRequest,
    ) -> Result<s::LookupEventsResponse, AwsError> {
        lookup::lookup_events(&self.store, ctx, input)
    }
}

/// Events pruned in one transaction: recording waits for the trail's writer meanwhile.
const PRUNE_BATCH: usize = 2048;

/// Deletes events past the event history's 90 days (housekeeping); how many went.
pub fn prune(store: &Store, now_ms: i64) -> Result<usize, berth_store::StoreError> {
    let mut pruned = 0;
    loop {
        let n = store.write(|tx| tx.prune_trail_events(now_ms - RETENTION_MS, PRUNE_BATCH))?;
        pruned += n;
        if n < PRUNE_BATCH {
            return Ok(pruned);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Bytes;
    use berth_wire::Timestamp;

    const NOW: i64 = 1_700_000_000_000;

    fn app() -> crate::App {
        crate::App::new(Arc::new(Store::open_in_memory().unwrap()))
    }

    fn record(app: &crate::App, at: i64, operation: &str, request: &str, ok: bool) {
        let mut ctx = crate::test_support::context(at);
        ctx.request_id = format!("req-{at}");
        app.trail.record(ApiCall {
            event_source: "ecs.amazonaws.com",
            operation: operation.into(),
            ctx,
            request: Bytes::from(request.to_string()),
            response: if ok {
                Ok(Bytes::from_static(b"{}"))
            } else {
                Err(AwsError::new(
                    "ClusterNotFoundException",
                    400,
                    "Cluster not found.",
                ))
            },
        });
    }

    fn lookup(
        app: &crate::App,
        key: Option<(s::LookupAttributeKey, &str)>,
        max: Option<i32>,
        token: Option<String>,
    ) -> s::LookupEventsResponse {
        app.cloudtrail
            .lookup_events(
                &crate::test_support::context(NOW),
                s::LookupEventsRequest {
                    lookup_attributes: key.map(|(k, v)| {
                        vec![s::LookupAttribute {
                            attribute_key: k,
                            attribute_value: v.into(),
                        }]
                    }),
                    max_results: max,
                    next_token: token,
                    ..Default::default()
                },
            )
            .unwrap()
    }

    fn names(r: &s::LookupEventsResponse) -> Vec<String> {
        r.events
            .iter()
            .flatten()
            .filter_map(|e| e.event_name.clone())
            .collect()
    }

    #[test]
    fn recorded_calls_are_found_by_every_attribute_and_paged() {
        let app = app();
        record(
            &app,
            NOW - 5_000,
            "CreateCluster",
            r#"{"clusterName":"web"}"#,
            true,
        );
        record(
            &app,
            NOW - 4_000,
            "RunTask",
            r#"{"cluster":"web","taskDefinition":"app:1"}"#,
            true,
        );
        record(
            &app,
            NOW - 3_000,
            "DescribeTasks",
            r#"{"cluster":"web"}"#,
            true,
        );
        record(&app, NOW - 2_000, "RunTask", r#"{"cluster":"nope"}"#, false);
        // Older than the 90-day history: invisible.
        record(&app, NOW - RETENTION_MS - 1, "DeleteCluster", "{}", true);
        app.trail.flush();

        assert_eq!(
            names(&lookup(&app, None, None, None)),
            vec!["RunTask", "DescribeTasks", "RunTask", "CreateCluster"]
        );
        let by_name = lookup(
            &app,
            Some((s::LookupAttributeKey::EventName, "RunTask")),
            None,
            None,
        );
        assert_eq!(names(&by_name), vec!["RunTask", "RunTask"]);
        let failed: serde_json::Value = serde_json::from_str(
            by_name.events.as_ref().unwrap()[0]
                .cloud_trail_event
                .as_deref()
                .unwrap(),
        )
        .unwrap();
        assert_eq!(failed["errorCode"], "ClusterNotFoundException");
        assert_eq!(
            names(&lookup(
                &app,
                Some((s::LookupAttributeKey::ResourceName, "web")),
                None,
                None
            )),
            vec!["DescribeTasks", "RunTask", "CreateCluster"]
        );
        assert_eq!(
            names(&lookup(
                &app,
                Some((
                    s::LookupAttributeKey::ResourceType,
                    "AWS::ECS::TaskDefinition"
                )),
                None,
                None
            )),
            vec!["RunTask"]
        );
        assert_eq!(
            names(&lookup(
                &app,
                Some((s::LookupAttributeKey::ReadOnly, "true")),
                None,
                None
            )),
            vec!["DescribeTasks"]
        );
        for (key, value) in [
            (s::LookupAttributeKey::Username, "root"),
            (s::LookupAttributeKey::AccessKeyId, "AKIATESTTESTTESTTEST"),
            (s::LookupAttributeKey::EventSource, "ecs.amazonaws.com"),
        ] {
            assert_eq!(
                names(&lookup(&app, Some((key, value)), None, None)).len(),
                4
            );
        }
        assert!(
            names(&lookup(
                &app,
                Some((s::LookupAttributeKey::Username, "alice")),
                None,
                None
            ))
            .is_empty()
        );
        let first = lookup(&app, None, Some(3), None);
        assert_eq!(names(&first).len(), 3);
        let id = first.events.as_ref().unwrap()[1].event_id.clone().unwrap();
        assert_eq!(
            names(&lookup(
                &app,
                Some((s::LookupAttributeKey::EventId, &id)),
                None,
                None
            )),
            vec!["DescribeTasks"]
        );
        let rest = lookup(&app, None, Some(3), first.next_token.clone());
        assert_eq!(names(&rest), vec!["CreateCluster"]);
        assert!(rest.next_token.is_none());
        let e = &rest.events.as_ref().unwrap()[0];
        assert_eq!(e.read_only.as_deref(), Some("false"));
        assert_eq!(e.username.as_deref(), Some("root"));
        assert_eq!(e.event_time, Some(Timestamp(NOW - 5_000)));

        assert_eq!(prune(&app.store, NOW).unwrap(), 1);
    }
}
