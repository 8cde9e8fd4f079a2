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

/// The id of the default subnet in `<region>a` of the context's account (made on first use).
pub fn default_subnet(store: &berth_store::Store, ctx: &RequestContext) -> String {
    use crate::ec2::entities::{self, kind};
    let scope = entities::scope(ctx);
    store
        .write(|tx| -> Result<String, crate::failure::Failure> {
            entities::ensure_defaults(tx, scope)?;
            Ok(
                entities::all::<berth_wire::ec2::shapes::Subnet>(tx, scope, kind::SUBNET)?
                    .into_iter()
                    .find(|s| s.availability_zone.as_deref() == Some(&format!("{}a", ctx.region)))
                    .and_then(|s| s.subnet_id)
                    .unwrap_or_default(),
            )
        })
        .unwrap()
}
