//! What the unit tests of every service share.

use berth_wire::{RequestContext, Timestamp};

/// A request of account 123456789012's root in us-east-1, at `now_ms`.
pub fn context(now_ms: i64) -> RequestContext {
    RequestContext {
        account_id: "123456789012".into(),
        region: "us-east-1".into(),
        principal_arn: "arn:aws:iam::123456789012:root".into(),
        access_key_id: "AKIATESTTESTTESTTEST".into(),
        request_id: "test-request".into(),
        source_ip: "127.0.0.1".into(),
        user_agent: "test".into(),
        now: Timestamp(now_ms),
    }
}
