//! (being written)

use berth_wire::ecs::shapes as s;
use berth_wire::{AwsError, RequestContext};

use super::Ecs;

pub fn put(_ecs: &Ecs, _ctx: &RequestContext, _input: s::PutAccountSettingRequest) -> Result<s::PutAccountSettingResponse, AwsError> {
    Err(AwsError::not_implemented("PutAccountSetting"))
}

pub fn put_default(_ecs: &Ecs, _ctx: &RequestContext, _input: s::PutAccountSettingDefaultRequest) -> Result<s::PutAccountSettingDefaultResponse, AwsError> {
    Err(AwsError::not_implemented("PutAccountSettingDefault"))
}

pub fn delete(_ecs: &Ecs, _ctx: &RequestContext, _input: s::DeleteAccountSettingRequest) -> Result<s::DeleteAccountSettingResponse, AwsError> {
    Err(AwsError::not_implemented("DeleteAccountSetting"))
}

pub fn list(_ecs: &Ecs, _ctx: &RequestContext, _input: s::ListAccountSettingsRequest) -> Result<s::ListAccountSettingsResponse, AwsError> {
    Err(AwsError::not_implemented("ListAccountSettings"))
}

/// The value of account setting `name` in effect for the caller: the caller's own, else the
/// account default, else `None` (ECS's built-in default applies).
pub fn effective_value(
    _tx: &berth_store::Tx<'_>,
    _ctx: &RequestContext,
    _name: &str,
) -> Result<Option<String>, crate::failure::Failure> {
    Ok(None)
}
