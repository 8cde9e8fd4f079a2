//! Berth's own administrative API (AWS JSON 1.1, target prefix `BerthAdmin_20261126`, SigV4
//! signing name `berth`): what has no AWS counterpart, such as wiping an account between
//! integration tests. Only an account's root may call it.

use std::sync::Arc;

use berth_wire::{AwsError, RequestContext};

use crate::App;
use crate::failure::Failure;

pub const TARGET_PREFIX: &str = "BerthAdmin_20261126";
pub const SIGNING_NAME: &str = "berth";

pub fn dispatch(
    app: &App,
    ctx: &RequestContext,
    operation: &str,
    body: &[u8],
) -> Result<Vec<u8>, AwsError> {
    if ctx.principal_arn != crate::accounts::root_arn(&ctx.account_id) {
        return Err(AwsError::new(
            "AccessDeniedException",
            400,
            format!(
                "User: {} is not authorized to perform: berth:{operation}: only the account root may.",
                ctx.principal_arn
            ),
        ));
    }
    match operation {
        "ResetAccount" => {
            let _: serde_json::Value = berth_wire::json::decode(body)?;
            app.store
                .write(|tx| -> Result<(), Failure> {
                    tx.wipe_account(&ctx.account_id)?;
                    Ok(())
                })
                .map_err(|f| f.into_aws(|m| AwsError::internal(m)))?;
            if !Arc::ptr_eq(&app.store, &app.trail_store) {
                app.trail_store
                    .write(|tx| -> Result<(), Failure> {
                        tx.wipe_account(&ctx.account_id)?;
                        Ok(())
                    })
                    .map_err(|f| f.into_aws(|m| AwsError::internal(m)))?;
            }
            tracing::info!(account = %ctx.account_id, "account reset");
            Ok(br#"{"reset":true}"#.to_vec())
        }
        other => Err(AwsError::unknown_operation(other)),
    }
}
