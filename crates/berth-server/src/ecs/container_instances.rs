//! (being written)

use berth_wire::ecs::shapes as s;
use berth_wire::{AwsError, RequestContext};

use super::Ecs;

pub fn register(_ecs: &Ecs, _ctx: &RequestContext, _input: s::RegisterContainerInstanceRequest) -> Result<s::RegisterContainerInstanceResponse, AwsError> {
    Err(AwsError::not_implemented("RegisterContainerInstance"))
}

pub fn describe(_ecs: &Ecs, _ctx: &RequestContext, _input: s::DescribeContainerInstancesRequest) -> Result<s::DescribeContainerInstancesResponse, AwsError> {
    Err(AwsError::not_implemented("DescribeContainerInstances"))
}

pub fn list(_ecs: &Ecs, _ctx: &RequestContext, _input: s::ListContainerInstancesRequest) -> Result<s::ListContainerInstancesResponse, AwsError> {
    Err(AwsError::not_implemented("ListContainerInstances"))
}

pub fn deregister(_ecs: &Ecs, _ctx: &RequestContext, _input: s::DeregisterContainerInstanceRequest) -> Result<s::DeregisterContainerInstanceResponse, AwsError> {
    Err(AwsError::not_implemented("DeregisterContainerInstance"))
}

/// How many container instances of `cluster` are ACTIVE or DRAINING.
pub fn count_registered(
    _tx: &berth_store::Tx<'_>,
    _ctx: &RequestContext,
    _cluster: &str,
) -> Result<i32, crate::failure::Failure> {
    Ok(0)
}
