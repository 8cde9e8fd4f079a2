//! (being written)

use berth_wire::ecs::shapes as s;
use berth_wire::{AwsError, RequestContext};

use super::Ecs;

pub fn tag(_ecs: &Ecs, _ctx: &RequestContext, _input: s::TagResourceRequest) -> Result<s::TagResourceResponse, AwsError> {
    Err(AwsError::not_implemented("TagResource"))
}

pub fn untag(_ecs: &Ecs, _ctx: &RequestContext, _input: s::UntagResourceRequest) -> Result<s::UntagResourceResponse, AwsError> {
    Err(AwsError::not_implemented("UntagResource"))
}

pub fn list(_ecs: &Ecs, _ctx: &RequestContext, _input: s::ListTagsForResourceRequest) -> Result<s::ListTagsForResourceResponse, AwsError> {
    Err(AwsError::not_implemented("ListTagsForResource"))
}
