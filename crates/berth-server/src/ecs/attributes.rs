//! (being written)

use berth_wire::ecs::shapes as s;
use berth_wire::{AwsError, RequestContext};

use super::Ecs;

pub fn put(_ecs: &Ecs, _ctx: &RequestContext, _input: s::PutAttributesRequest) -> Result<s::PutAttributesResponse, AwsError> {
    Err(AwsError::not_implemented("PutAttributes"))
}

pub fn delete(_ecs: &Ecs, _ctx: &RequestContext, _input: s::DeleteAttributesRequest) -> Result<s::DeleteAttributesResponse, AwsError> {
    Err(AwsError::not_implemented("DeleteAttributes"))
}

pub fn list(_ecs: &Ecs, _ctx: &RequestContext, _input: s::ListAttributesRequest) -> Result<s::ListAttributesResponse, AwsError> {
    Err(AwsError::not_implemented("ListAttributes"))
}
