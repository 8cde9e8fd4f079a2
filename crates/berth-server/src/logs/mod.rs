//! Amazon CloudWatch Logs: log groups, streams and events. `Logs` implements the generated
//! `berth_wire::logs::Api`; operations not listed here answer, through the trait's default
//! bodies, that Berth does not serve them yet.

pub mod common;
pub mod events;
pub mod groups;
pub mod pattern;
pub mod streams;

use std::sync::Arc;

use berth_store::Store;
use berth_wire::logs::{Api, shapes as s};
use berth_wire::{AwsError, RequestContext};

/// The Logs service over the store.
pub struct Logs {
    pub store: Arc<Store>,
}

impl Logs {
    pub fn new(store: Arc<Store>) -> Logs {
        Logs { store }
    }
}

type R<T> = Result<T, AwsError>;

impl Api for Logs {
    // Log groups.
    fn create_log_group(&self, ctx: &RequestContext, input: s::CreateLogGroupRequest) -> R<()> {
        groups::create(self, ctx, input)
    }
    fn delete_log_group(&self, ctx: &RequestContext, input: s::DeleteLogGroupRequest) -> R<()> {
        groups::delete(self, ctx, input)
    }
    fn describe_log_groups(
        &self,
        ctx: &RequestContext,
        input: s::DescribeLogGroupsRequest,
    ) -> R<s::DescribeLogGroupsResponse> {
        groups::describe(self, ctx, input)
    }
    fn put_retention_policy(
        &self,
        ctx: &RequestContext,
        input: s::PutRetentionPolicyRequest,
    ) -> R<()> {
        groups::put_retention(self, ctx, input)
    }
    fn delete_retention_policy(
        &self,
        ctx: &RequestContext,
        input: s::DeleteRetentionPolicyRequest,
    ) -> R<()> {
        groups::delete_retention(self, ctx, input)
    }

    // Tags.
    fn tag_resource(&self, ctx: &RequestContext, input: s::TagResourceRequest) -> R<()> {
        groups::tag_resource(self, ctx, input)
    }
    fn untag_resource(&self, ctx: &RequestContext, input: s::UntagResourceRequest) -> R<()> {
        groups::untag_resource(self, ctx, input)
    }
    fn list_tags_for_resource(
        &self,
        ctx: &RequestContext,
        input: s::ListTagsForResourceRequest,
    ) -> R<s::ListTagsForResourceResponse> {
        groups::list_tags_for_resource(self, ctx, input)
    }
    fn tag_log_group(&self, ctx: &RequestContext, input: s::TagLogGroupRequest) -> R<()> {
        groups::tag_log_group(self, ctx, input)
    }
    fn untag_log_group(&self, ctx: &RequestContext, input: s::UntagLogGroupRequest) -> R<()> {
        groups::untag_log_group(self, ctx, input)
    }
    fn list_tags_log_group(
        &self,
        ctx: &RequestContext,
        input: s::ListTagsLogGroupRequest,
    ) -> R<s::ListTagsLogGroupResponse> {
        groups::list_tags_log_group(self, ctx, input)
    }

    // Log streams.
    fn create_log_stream(&self, ctx: &RequestContext, input: s::CreateLogStreamRequest) -> R<()> {
        streams::create(self, ctx, input)
    }
    fn delete_log_stream(&self, ctx: &RequestContext, input: s::DeleteLogStreamRequest) -> R<()> {
        streams::delete(self, ctx, input)
    }
    fn describe_log_streams(
        &self,
        ctx: &RequestContext,
        input: s::DescribeLogStreamsRequest,
    ) -> R<s::DescribeLogStreamsResponse> {
        streams::describe(self, ctx, input)
    }

    // Log events.
    fn put_log_events(
        &self,
        ctx: &RequestContext,
        input: s::PutLogEventsRequest,
    ) -> R<s::PutLogEventsResponse> {
        events::put(self, ctx, input)
    }
    fn get_log_events(
        &self,
        ctx: &RequestContext,
        input: s::GetLogEventsRequest,
    ) -> R<s::GetLogEventsResponse> {
        events::get(self, ctx, input)
    }
    fn filter_log_events(
        &self,
        ctx: &RequestContext,
        input: s::FilterLogEventsRequest,
    ) -> R<s::FilterLogEventsResponse> {
        events::filter(self, ctx, input)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_700_000_000_000;

    fn ctx() -> RequestContext {
        crate::test_support::context(NOW)
    }

    fn logs() -> Logs {
        Logs::new(Arc::new(Store::open_in_memory().unwrap()))
    }

    fn group(l: &Logs, name: &str) {
        l.create_log_group(
            &ctx(),
            s::CreateLogGroupRequest {
                log_group_name: name.into(),
                ..Default::default()
            },
        )
        .unwrap();
    }

    fn stream(l: &Logs, g: &str, name: &str) {
        l.create_log_stream(
            &ctx(),
            s::CreateLogStreamRequest {
                log_group_name: g.into(),
                log_stream_name: name.into(),
            },
        )
        .unwrap();
    }

    fn put(l: &Logs, g: &str, st: &str, events: &[(i64, &str)]) -> s::PutLogEventsResponse {
        l.put_log_events(
            &ctx(),
            s::PutLogEventsRequest {
                log_group_name: g.into(),
                log_stream_name: st.into(),
                log_events: events
                    .iter()
                    .map(|(t, m)| s::InputLogEvent {
                        timestamp: *t,
                        message: (*m).into(),
                    })
                    .collect(),
                ..Default::default()
            },
        )
        .unwrap()
    }

    fn get(l: &Logs, token: Option<String>, head: bool, limit: i32) -> s::GetLogEventsResponse {
        l.get_log_events(
            &ctx(),
            s::GetLogEventsRequest {
                log_group_name: Some("g".into()),
                log_stream_name: "s".into(),
                next_token: token,
                start_from_head: Some(head),
                limit: Some(limit),
                ..Default::default()
            },
        )
        .unwrap()
    }

    fn messages(r: &s::GetLogEventsResponse) -> Vec<String> {
        r.events
            .iter()
            .flatten()
            .filter_map(|e| e.message.clone())
            .collect()
    }

    #[test]
    fn describe_log_groups_pages_and_filters() {
        let l = logs();
        for n in ["/ecs/a", "/ecs/b", "/ecs/c", "/lambda/x", "other"] {
            group(&l, n);
        }
        let page = |prefix: Option<&str>, token: Option<String>| {
            l.describe_log_groups(
                &ctx(),
                s::DescribeLogGroupsRequest {
                    log_group_name_prefix: prefix.map(String::from),
                    limit: Some(2),
                    next_token: token,
                    ..Default::default()
                },
            )
            .unwrap()
        };
        let p1 = page(Some("/ecs/"), None);
        let names = |p: &s::DescribeLogGroupsResponse| -> Vec<String> {
            p.log_groups
                .iter()
                .flatten()
                .filter_map(|g| g.log_group_name.clone())
                .collect()
        };
        assert_eq!(names(&p1), vec!["/ecs/a", "/ecs/b"]);
        let p2 = page(Some("/ecs/"), p1.next_token.clone());
        assert_eq!(names(&p2), vec!["/ecs/c"]);
        assert!(p2.next_token.is_none());
        let g = &p1.log_groups.as_ref().unwrap()[0];
        assert_eq!(
            g.arn.as_deref(),
            Some("arn:aws:logs:us-east-1:123456789012:log-group:/ecs/a:*")
        );
        assert_eq!(
            g.log_group_arn.as_deref(),
            Some("arn:aws:logs:us-east-1:123456789012:log-group:/ecs/a")
        );
        assert_eq!(g.log_group_class, Some(s::LogGroupClass::Standard));
        let by_pattern = l
            .describe_log_groups(
                &ctx(),
                s::DescribeLogGroupsRequest {
                    log_group_name_pattern: Some("LAMBDA".into()),
                    ..Default::default()
                },
            )
            .unwrap();
        assert_eq!(names(&by_pattern), vec!["/lambda/x"]);
        let both = l.describe_log_groups(
            &ctx(),
            s::DescribeLogGroupsRequest {
                log_group_name_pattern: Some("a".into()),
                log_group_name_prefix: Some("a".into()),
                ..Default::default()
            },
        );
        assert_eq!(both.unwrap_err().code, "InvalidParameterException");
    }

    #[test]
    fn describe_log_streams_orders_and_pages() {
        let l = logs();
        group(&l, "g");
        for n in ["a", "b", "c"] {
            stream(&l, "g", n);
        }
        put(&l, "g", "a", &[(NOW - 10, "x")]);
        put(&l, "g", "b", &[(NOW - 30, "x")]);
        put(&l, "g", "c", &[(NOW - 20, "x")]);
        let describe = |order: Option<s::OrderBy>, desc: bool, token: Option<String>| {
            l.describe_log_streams(
                &ctx(),
                s::DescribeLogStreamsRequest {
                    log_group_name: Some("g".into()),
                    order_by: order,
                    descending: Some(desc),
                    limit: Some(2),
                    next_token: token,
                    ..Default::default()
                },
            )
            .unwrap()
        };
        let names = |r: &s::DescribeLogStreamsResponse| -> Vec<String> {
            r.log_streams
                .iter()
                .flatten()
                .filter_map(|st| st.log_stream_name.clone())
                .collect()
        };
        let r = describe(Some(s::OrderBy::LastEventTime), true, None);
        assert_eq!(names(&r), vec!["a", "c"]);
        let r2 = describe(Some(s::OrderBy::LastEventTime), true, r.next_token.clone());
        assert_eq!(names(&r2), vec!["b"]);
        let r = describe(None, true, None);
        assert_eq!(names(&r), vec!["c", "b"]);
        let refused = l.describe_log_streams(
            &ctx(),
            s::DescribeLogStreamsRequest {
                log_group_name: Some("g".into()),
                log_stream_name_prefix: Some("a".into()),
                order_by: Some(s::OrderBy::LastEventTime),
                ..Default::default()
            },
        );
        assert_eq!(refused.unwrap_err().code, "InvalidParameterException");
    }

    #[test]
    fn get_log_events_pages_both_ways() {
        let l = logs();
        group(&l, "g");
        stream(&l, "g", "s");
        let events: Vec<(i64, String)> = (0..5).map(|i| (NOW - 100 + i, format!("m{i}"))).collect();
        let refs: Vec<(i64, &str)> = events.iter().map(|(t, m)| (*t, m.as_str())).collect();
        put(&l, "g", "s", &refs);
        // Without a token: the newest events; from the head: the oldest.
        assert_eq!(messages(&get(&l, None, false, 2)), vec!["m3", "m4"]);
        let p1 = get(&l, None, true, 2);
        assert_eq!(messages(&p1), vec!["m0", "m1"]);
        assert!(p1.next_forward_token.as_deref().unwrap().starts_with("f/"));
        assert!(p1.next_backward_token.as_deref().unwrap().starts_with("b/"));
        let p2 = get(&l, p1.next_forward_token.clone(), true, 2);
        assert_eq!(messages(&p2), vec!["m2", "m3"]);
        let p3 = get(&l, p2.next_forward_token.clone(), true, 2);
        assert_eq!(messages(&p3), vec!["m4"]);
        let end = get(&l, p3.next_forward_token.clone(), true, 2);
        assert!(messages(&end).is_empty());
        assert_eq!(end.next_forward_token, p3.next_forward_token);
        // New events show up at the end token.
        put(&l, "g", "s", &[(NOW, "m5")]);
        assert_eq!(
            messages(&get(&l, end.next_forward_token.clone(), true, 2)),
            vec!["m5"]
        );
        // Backward from the third page.
        let back = get(&l, p3.next_backward_token.clone(), true, 3);
        assert_eq!(messages(&back), vec!["m1", "m2", "m3"]);
        let bad = l.get_log_events(
            &ctx(),
            s::GetLogEventsRequest {
                log_group_name: Some("g".into()),
                log_stream_name: "s".into(),
                next_token: Some("nope".into()),
                ..Default::default()
            },
        );
        assert_eq!(bad.unwrap_err().code, "InvalidParameterException");
    }

    #[test]
    fn filter_log_events_across_streams_with_paging_and_retention() {
        let l = logs();
        group(&l, "g");
        stream(&l, "g", "a");
        stream(&l, "g", "b");
        put(&l, "g", "a", &[(NOW - 3 * common::DAY_MS, "ERROR old")]);
        put(
            &l,
            "g",
            "a",
            &[(NOW - 30, "ERROR one"), (NOW - 10, "INFO two")],
        );
        put(
            &l,
            "g",
            "b",
            &[
                (NOW - 20, "ERROR three"),
                (NOW - 5, "{\"level\":\"error\"}"),
            ],
        );
        let filter = |pattern: &str, limit: Option<i32>, token: Option<String>| {
            l.filter_log_events(
                &ctx(),
                s::FilterLogEventsRequest {
                    log_group_name: Some("g".into()),
                    filter_pattern: Some(pattern.into()),
                    limit,
                    next_token: token,
                    ..Default::default()
                },
            )
            .unwrap()
        };
        let msgs = |r: &s::FilterLogEventsResponse| -> Vec<String> {
            r.events
                .iter()
                .flatten()
                .filter_map(|e| e.message.clone())
                .collect()
        };
        assert_eq!(
            msgs(&filter("ERROR", None, None)),
            vec!["ERROR old", "ERROR one", "ERROR three"]
        );
        let p1 = filter("ERROR", Some(2), None);
        assert_eq!(msgs(&p1), vec!["ERROR old", "ERROR one"]);
        let p2 = filter("ERROR", Some(2), p1.next_token.clone());
        assert_eq!(msgs(&p2), vec!["ERROR three"]);
        assert!(p2.next_token.is_none());
        assert_eq!(
            msgs(&filter("{ $.level = \"error\" }", None, None)),
            vec!["{\"level\":\"error\"}"]
        );
        // A one-day retention hides the three-day-old event at once.
        l.put_retention_policy(
            &ctx(),
            s::PutRetentionPolicyRequest {
                log_group_name: "g".into(),
                retention_in_days: 1,
            },
        )
        .unwrap();
        assert_eq!(
            msgs(&filter("ERROR", None, None)),
            vec!["ERROR one", "ERROR three"]
        );
        assert_eq!(events::prune(&l.store, NOW).unwrap(), 1);
        let bad = l.put_retention_policy(
            &ctx(),
            s::PutRetentionPolicyRequest {
                log_group_name: "g".into(),
                retention_in_days: 2,
            },
        );
        assert!(bad.unwrap_err().message.contains("enum value set"));
    }
}
