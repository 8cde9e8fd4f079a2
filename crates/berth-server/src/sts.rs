//! AWS Security Token Service (query protocol): who is calling.
//!
//! GetCallerIdentity answers for any valid signature, as STS does (it needs no permission).

use berth_wire::sts::{Api, shapes as s};
use berth_wire::{AwsError, RequestContext};

/// The STS service.
#[derive(Debug, Default)]
pub struct Sts;

impl Api for Sts {
    fn get_caller_identity(
        &self,
        ctx: &RequestContext,
        _input: s::GetCallerIdentityRequest,
    ) -> Result<s::GetCallerIdentityResponse, AwsError> {
        let root = crate::accounts::root_arn(&ctx.account_id);
        // The root user's id is its account id; other principals carry their unique id in
        // the stored key's principal (arriving with IAM users and roles).
        let user_id = if ctx.principal_arn == root {
            ctx.account_id.clone()
        } else {
            ctx.principal_arn
                .rsplit('/')
                .next()
                .unwrap_or(&ctx.principal_arn)
                .to_string()
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
        let out = Sts
            .get_caller_identity(&ctx, s::GetCallerIdentityRequest::default())
            .unwrap();
        assert_eq!(out.account.as_deref(), Some(ctx.account_id.as_str()));
        assert_eq!(out.arn, Some(crate::accounts::root_arn(&ctx.account_id)));
        assert_eq!(out.user_id, Some(ctx.account_id.clone()));
    }
}
