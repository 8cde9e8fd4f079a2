//! AWS Security Token Service (query protocol): who is calling.
//!
//! GetCallerIdentity answers for any valid signature, as STS does (it needs no permission).

use std::sync::Arc;

use berth_store::Store;
use berth_wire::sts::{Api, shapes as s};
use berth_wire::{AwsError, RequestContext};

use crate::iam::entities::{StoredUser, kind};
use crate::iam::{common, users};

/// The STS service.
pub struct Sts {
    pub store: Arc<Store>,
}

impl Sts {
    pub fn new(store: Arc<Store>) -> Sts {
        Sts { store }
    }
}

impl Api for Sts {
    fn get_caller_identity(
        &self,
        ctx: &RequestContext,
        _input: s::GetCallerIdentityRequest,
    ) -> Result<s::GetCallerIdentityResponse, AwsError> {
        let root = crate::accounts::root_arn(&ctx.account_id);
        // The root user's id is its account id; an IAM user's is its unique id (AIDA…).
        let user_id = if ctx.principal_arn == root {
            ctx.account_id.clone()
        } else if let Some(name) = users::user_name_of(&ctx.principal_arn) {
            self.store
                .read(|tx| {
                    tx.get_json::<StoredUser>(common::scope(ctx), kind::USER, &common::key(name))
                })
                .map_err(|e| common::aws(e.into()))?
                .map(|(u, _)| u.user.user_id)
                .unwrap_or_else(|| name.to_string())
        } else {
            ctx.principal_arn.clone()
        };
        Ok(s::GetCallerIdentityResponse {
            account: Some(ctx.account_id.clone()),
            arn: Some(ctx.principal_arn.clone()),
            user_id: Some(user_id),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_identity() {
        let ctx = crate::test_support::context(1_700_000_000_000);
        let store = Arc::new(Store::open_in_memory().unwrap());
        let out = Sts::new(store)
            .get_caller_identity(&ctx, s::GetCallerIdentityRequest::default())
            .unwrap();
        assert_eq!(out.account.as_deref(), Some(ctx.account_id.as_str()));
        assert_eq!(out.arn, Some(crate::accounts::root_arn(&ctx.account_id)));
        assert_eq!(out.user_id, Some(ctx.account_id.clone()));
    }
}
