//! (being written)

use berth_wire::ecs::shapes as s;
use berth_wire::{AwsError, RequestContext};

use super::Ecs;

pub fn create(_ecs: &Ecs, _ctx: &RequestContext, _input: s::CreateCapacityProviderRequest) -> Result<s::CreateCapacityProviderResponse, AwsError> {
    Err(AwsError::not_implemented("CreateCapacityProvider"))
}

pub fn describe(_ecs: &Ecs, _ctx: &RequestContext, _input: s::DescribeCapacityProvidersRequest) -> Result<s::DescribeCapacityProvidersResponse, AwsError> {
    Err(AwsError::not_implemented("DescribeCapacityProviders"))
}

pub fn update(_ecs: &Ecs, _ctx: &RequestContext, _input: s::UpdateCapacityProviderRequest) -> Result<s::UpdateCapacityProviderResponse, AwsError> {
    Err(AwsError::not_implemented("UpdateCapacityProvider"))
}

pub fn delete(_ecs: &Ecs, _ctx: &RequestContext, _input: s::DeleteCapacityProviderRequest) -> Result<s::DeleteCapacityProviderResponse, AwsError> {
    Err(AwsError::not_implemented("DeleteCapacityProvider"))
}
