//! (being written)

use berth_wire::ecs::shapes as s;
use berth_wire::{AwsError, RequestContext};

use super::Ecs;

pub fn register(_ecs: &Ecs, _ctx: &RequestContext, _input: s::RegisterTaskDefinitionRequest) -> Result<s::RegisterTaskDefinitionResponse, AwsError> {
    Err(AwsError::not_implemented("RegisterTaskDefinition"))
}

pub fn describe(_ecs: &Ecs, _ctx: &RequestContext, _input: s::DescribeTaskDefinitionRequest) -> Result<s::DescribeTaskDefinitionResponse, AwsError> {
    Err(AwsError::not_implemented("DescribeTaskDefinition"))
}

pub fn list(_ecs: &Ecs, _ctx: &RequestContext, _input: s::ListTaskDefinitionsRequest) -> Result<s::ListTaskDefinitionsResponse, AwsError> {
    Err(AwsError::not_implemented("ListTaskDefinitions"))
}

pub fn list_families(_ecs: &Ecs, _ctx: &RequestContext, _input: s::ListTaskDefinitionFamiliesRequest) -> Result<s::ListTaskDefinitionFamiliesResponse, AwsError> {
    Err(AwsError::not_implemented("ListTaskDefinitionFamilies"))
}

pub fn deregister(_ecs: &Ecs, _ctx: &RequestContext, _input: s::DeregisterTaskDefinitionRequest) -> Result<s::DeregisterTaskDefinitionResponse, AwsError> {
    Err(AwsError::not_implemented("DeregisterTaskDefinition"))
}

pub fn delete(_ecs: &Ecs, _ctx: &RequestContext, _input: s::DeleteTaskDefinitionsRequest) -> Result<s::DeleteTaskDefinitionsResponse, AwsError> {
    Err(AwsError::not_implemented("DeleteTaskDefinitions"))
}
