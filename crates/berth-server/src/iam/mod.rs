//! AWS Identity and Access Management (query protocol): users, groups, roles, instance
//! profiles, access keys, managed and inline policies, permissions boundaries and tags.
//!
//! IAM is global: every record lives in the account-wide scope whatever region signed the
//! call. The policy language and its evaluation live in `berth-iam`. Operations not listed
//! here answer, through the generated defaults, that Berth does not serve them yet.

pub mod common;
pub mod details;
pub mod entities;
pub mod groups;
pub mod key_usage;
pub mod managed;
pub mod policies;
pub mod roles;
pub mod service_linked;
pub mod users;

use std::sync::Arc;

use berth_store::{Store, Tx};
use berth_wire::iam::{Api, shapes as s};
use berth_wire::{AwsError, RequestContext};

use self::common::Marker;
use self::entities::{StoredGroup, StoredRole, StoredUser};
use crate::failure::Failure;

/// The IAM service over the store.
pub struct Iam {
    pub store: Arc<Store>,
    /// Access keys' last uses, recorded by the gateway.
    pub usage: Arc<key_usage::KeyUsage>,
}

impl Iam {
    pub fn new(store: Arc<Store>, usage: Arc<key_usage::KeyUsage>) -> Iam {
        Iam { store, usage }
    }

    fn read<T>(&self, f: impl FnOnce(&Tx<'_>) -> Result<T, Failure>) -> Result<T, AwsError> {
        self.store.read(f).map_err(common::aws)
    }

    fn write<T>(&self, f: impl FnOnce(&mut Tx<'_>) -> Result<T, Failure>) -> Result<T, AwsError> {
        let out = self.store.write(f).map_err(common::aws);
        // Whatever changed, cached authorisations are stale now.
        crate::authz::iam_changed();
        out
    }
}

type R<T> = Result<T, AwsError>;

fn tag_list(tags: Vec<s::Tag>, marker: &Marker) -> (Vec<s::Tag>, bool, Option<String>) {
    marker.page(tags)
}

impl Api for Iam {
    // ----- users -----
    fn create_user(
        &self,
        ctx: &RequestContext,
        input: s::CreateUserRequest,
    ) -> R<s::CreateUserResponse> {
        let user = self.write(|tx| users::create(tx, ctx, input))?;
        Ok(s::CreateUserResponse { user: Some(user) })
    }
    fn get_user(&self, ctx: &RequestContext, input: s::GetUserRequest) -> R<s::GetUserResponse> {
        let user = self.read(|tx| users::get(tx, ctx, input.user_name.as_deref()))?;
        Ok(s::GetUserResponse { user })
    }
    fn list_users(
        &self,
        ctx: &RequestContext,
        input: s::ListUsersRequest,
    ) -> R<s::ListUsersResponse> {
        self.read(|tx| users::list(tx, ctx, input))
    }
    fn update_user(&self, ctx: &RequestContext, input: s::UpdateUserRequest) -> R<()> {
        self.write(|tx| users::update(tx, ctx, input))
    }
    fn delete_user(&self, ctx: &RequestContext, input: s::DeleteUserRequest) -> R<()> {
        self.write(|tx| users::delete(tx, ctx, &input.user_name))
    }
    fn tag_user(&self, ctx: &RequestContext, input: s::TagUserRequest) -> R<()> {
        common::check_tags(&input.tags)?;
        self.write(|tx| {
            entities::with_tags::<StoredUser, _>(tx, ctx, &input.user_name, |t| {
                Ok(common::merge_tags(t, &input.tags)?)
            })
        })
    }
    fn untag_user(&self, ctx: &RequestContext, input: s::UntagUserRequest) -> R<()> {
        self.write(|tx| {
            entities::with_tags::<StoredUser, _>(tx, ctx, &input.user_name, |t| {
                common::remove_tags(t, &input.tag_keys);
                Ok(())
            })
        })
    }
    fn list_user_tags(
        &self,
        ctx: &RequestContext,
        input: s::ListUserTagsRequest,
    ) -> R<s::ListUserTagsResponse> {
        let marker = Marker::parse(input.marker.as_deref(), input.max_items)?;
        let tags = self.read(|tx| {
            Ok(users::get(tx, ctx, Some(&input.user_name))?
                .tags
                .unwrap_or_default())
        })?;
        let (tags, truncated, marker) = tag_list(tags, &marker);
        Ok(s::ListUserTagsResponse {
            is_truncated: Some(truncated),
            marker,
            tags,
        })
    }
    fn put_user_permissions_boundary(
        &self,
        ctx: &RequestContext,
        input: s::PutUserPermissionsBoundaryRequest,
    ) -> R<()> {
        self.write(|tx| {
            entities::set_boundary::<StoredUser>(
                tx,
                ctx,
                &input.user_name,
                Some(input.permissions_boundary),
            )
        })
    }
    fn delete_user_permissions_boundary(
        &self,
        ctx: &RequestContext,
        input: s::DeleteUserPermissionsBoundaryRequest,
    ) -> R<()> {
        self.write(|tx| entities::set_boundary::<StoredUser>(tx, ctx, &input.user_name, None))
    }

    // ----- access keys -----
    fn create_access_key(
        &self,
        ctx: &RequestContext,
        input: s::CreateAccessKeyRequest,
    ) -> R<s::CreateAccessKeyResponse> {
        let access_key =
            self.write(|tx| users::create_access_key(tx, ctx, input.user_name.as_deref()))?;
        Ok(s::CreateAccessKeyResponse { access_key })
    }
    fn list_access_keys(
        &self,
        ctx: &RequestContext,
        input: s::ListAccessKeysRequest,
    ) -> R<s::ListAccessKeysResponse> {
        self.read(|tx| users::list_access_keys(tx, ctx, input))
    }
    fn update_access_key(&self, ctx: &RequestContext, input: s::UpdateAccessKeyRequest) -> R<()> {
        self.write(|tx| users::update_access_key(tx, ctx, input))
    }
    fn delete_access_key(&self, ctx: &RequestContext, input: s::DeleteAccessKeyRequest) -> R<()> {
        self.write(|tx| users::delete_access_key(tx, ctx, input))
    }
    fn get_access_key_last_used(
        &self,
        ctx: &RequestContext,
        input: s::GetAccessKeyLastUsedRequest,
    ) -> R<s::GetAccessKeyLastUsedResponse> {
        self.read(|tx| users::access_key_last_used(tx, ctx, &self.usage, &input.access_key_id))
    }

    // ----- roles -----
    fn create_role(
        &self,
        ctx: &RequestContext,
        input: s::CreateRoleRequest,
    ) -> R<s::CreateRoleResponse> {
        let role = self.write(|tx| roles::create(tx, ctx, input))?;
        Ok(s::CreateRoleResponse { role })
    }
    fn get_role(&self, ctx: &RequestContext, input: s::GetRoleRequest) -> R<s::GetRoleResponse> {
        let role = self.read(|tx| roles::get(tx, ctx, &input.role_name))?;
        Ok(s::GetRoleResponse { role })
    }
    fn list_roles(
        &self,
        ctx: &RequestContext,
        input: s::ListRolesRequest,
    ) -> R<s::ListRolesResponse> {
        self.read(|tx| roles::list(tx, ctx, input))
    }
    fn update_role(
        &self,
        ctx: &RequestContext,
        input: s::UpdateRoleRequest,
    ) -> R<s::UpdateRoleResponse> {
        self.write(|tx| {
            service_linked::must_be_modifiable(tx, ctx, &input.role_name)?;
            roles::update(tx, ctx, input)
        })?;
        Ok(s::UpdateRoleResponse::default())
    }
    fn update_role_description(
        &self,
        ctx: &RequestContext,
        input: s::UpdateRoleDescriptionRequest,
    ) -> R<s::UpdateRoleDescriptionResponse> {
        let role = self
            .write(|tx| roles::update_description(tx, ctx, &input.role_name, input.description))?;
        Ok(s::UpdateRoleDescriptionResponse { role: Some(role) })
    }
    fn update_assume_role_policy(
        &self,
        ctx: &RequestContext,
        input: s::UpdateAssumeRolePolicyRequest,
    ) -> R<()> {
        self.write(|tx| {
            service_linked::must_be_modifiable(tx, ctx, &input.role_name)?;
            roles::update_trust(tx, ctx, &input.role_name, input.policy_document)
        })
    }
    fn create_service_linked_role(
        &self,
        ctx: &RequestContext,
        input: s::CreateServiceLinkedRoleRequest,
    ) -> R<s::CreateServiceLinkedRoleResponse> {
        let role = self.write(|tx| service_linked::create(tx, ctx, input))?;
        Ok(s::CreateServiceLinkedRoleResponse { role: Some(role) })
    }
    fn delete_service_linked_role(
        &self,
        ctx: &RequestContext,
        input: s::DeleteServiceLinkedRoleRequest,
    ) -> R<s::DeleteServiceLinkedRoleResponse> {
        let deletion_task_id =
            self.write(|tx| service_linked::delete(tx, ctx, &input.role_name))?;
        Ok(s::DeleteServiceLinkedRoleResponse { deletion_task_id })
    }
    fn get_service_linked_role_deletion_status(
        &self,
        ctx: &RequestContext,
        input: s::GetServiceLinkedRoleDeletionStatusRequest,
    ) -> R<s::GetServiceLinkedRoleDeletionStatusResponse> {
        self.read(|tx| service_linked::deletion_status(tx, ctx, &input.deletion_task_id))
    }
    fn delete_role(&self, ctx: &RequestContext, input: s::DeleteRoleRequest) -> R<()> {
        self.write(|tx| {
            service_linked::must_be_modifiable(tx, ctx, &input.role_name)?;
            roles::delete(tx, ctx, &input.role_name)
        })
    }
    fn tag_role(&self, ctx: &RequestContext, input: s::TagRoleRequest) -> R<()> {
        common::check_tags(&input.tags)?;
        self.write(|tx| {
            entities::with_tags::<StoredRole, _>(tx, ctx, &input.role_name, |t| {
                Ok(common::merge_tags(t, &input.tags)?)
            })
        })
    }
    fn untag_role(&self, ctx: &RequestContext, input: s::UntagRoleRequest) -> R<()> {
        self.write(|tx| {
            entities::with_tags::<StoredRole, _>(tx, ctx, &input.role_name, |t| {
                common::remove_tags(t, &input.tag_keys);
                Ok(())
            })
        })
    }
    fn list_role_tags(
        &self,
        ctx: &RequestContext,
        input: s::ListRoleTagsRequest,
    ) -> R<s::ListRoleTagsResponse> {
        let marker = Marker::parse(input.marker.as_deref(), input.max_items)?;
        let tags = self.read(|tx| {
            Ok(roles::get(tx, ctx, &input.role_name)?
                .tags
                .unwrap_or_default())
        })?;
        let (tags, truncated, marker) = tag_list(tags, &marker);
        Ok(s::ListRoleTagsResponse {
            is_truncated: Some(truncated),
            marker,
            tags,
        })
    }
    fn put_role_permissions_boundary(
        &self,
        ctx: &RequestContext,
        input: s::PutRolePermissionsBoundaryRequest,
    ) -> R<()> {
        self.write(|tx| {
            service_linked::must_be_modifiable(tx, ctx, &input.role_name)?;
            entities::set_boundary::<StoredRole>(
                tx,
                ctx,
                &input.role_name,
                Some(input.permissions_boundary),
            )
        })
    }
    fn delete_role_permissions_boundary(
        &self,
        ctx: &RequestContext,
        input: s::DeleteRolePermissionsBoundaryRequest,
    ) -> R<()> {
        self.write(|tx| {
            service_linked::must_be_modifiable(tx, ctx, &input.role_name)?;
            entities::set_boundary::<StoredRole>(tx, ctx, &input.role_name, None)
        })
    }

    // ----- managed policies -----
    fn create_policy(
        &self,
        ctx: &RequestContext,
        input: s::CreatePolicyRequest,
    ) -> R<s::CreatePolicyResponse> {
        let policy = self.write(|tx| policies::create(tx, ctx, input))?;
        Ok(s::CreatePolicyResponse {
            policy: Some(policy),
        })
    }
    fn get_policy(
        &self,
        ctx: &RequestContext,
        input: s::GetPolicyRequest,
    ) -> R<s::GetPolicyResponse> {
        let policy = self.read(|tx| policies::get(tx, ctx, &input.policy_arn))?;
        Ok(s::GetPolicyResponse {
            policy: Some(policy),
        })
    }
    fn list_policies(
        &self,
        ctx: &RequestContext,
        input: s::ListPoliciesRequest,
    ) -> R<s::ListPoliciesResponse> {
        let marker = Marker::parse(input.marker.as_deref(), input.max_items)?;
        let all = self.read(|tx| policies::all(tx, ctx, input.scope))?;
        let prefix = input.path_prefix.unwrap_or_else(|| "/".into());
        let only_attached = input.only_attached.unwrap_or(false);
        let list: Vec<s::Policy> = all
            .into_iter()
            .filter(|p| p.path.as_deref().unwrap_or("/").starts_with(&prefix))
            .filter(|p| !only_attached || p.attachment_count.unwrap_or(0) > 0)
            .collect();
        let (policies, truncated, marker) = marker.page(list);
        Ok(s::ListPoliciesResponse {
            is_truncated: Some(truncated),
            marker,
            policies: Some(policies),
        })
    }
    fn delete_policy(&self, ctx: &RequestContext, input: s::DeletePolicyRequest) -> R<()> {
        self.write(|tx| policies::delete(tx, ctx, &input.policy_arn))
    }
    fn create_policy_version(
        &self,
        ctx: &RequestContext,
        input: s::CreatePolicyVersionRequest,
    ) -> R<s::CreatePolicyVersionResponse> {
        let v = self.write(|tx| policies::create_version(tx, ctx, input))?;
        Ok(s::CreatePolicyVersionResponse {
            policy_version: Some(v),
        })
    }
    fn get_policy_version(
        &self,
        ctx: &RequestContext,
        input: s::GetPolicyVersionRequest,
    ) -> R<s::GetPolicyVersionResponse> {
        let v =
            self.read(|tx| policies::get_version(tx, ctx, &input.policy_arn, &input.version_id))?;
        Ok(s::GetPolicyVersionResponse {
            policy_version: Some(v),
        })
    }
    fn list_policy_versions(
        &self,
        ctx: &RequestContext,
        input: s::ListPolicyVersionsRequest,
    ) -> R<s::ListPolicyVersionsResponse> {
        let marker = Marker::parse(input.marker.as_deref(), input.max_items)?;
        let all = self.read(|tx| policies::list_versions(tx, ctx, &input.policy_arn))?;
        let (versions, truncated, marker) = marker.page(all);
        Ok(s::ListPolicyVersionsResponse {
            is_truncated: Some(truncated),
            marker,
            versions: Some(versions),
        })
    }
    fn delete_policy_version(
        &self,
        ctx: &RequestContext,
        input: s::DeletePolicyVersionRequest,
    ) -> R<()> {
        self.write(|tx| policies::delete_version(tx, ctx, &input.policy_arn, &input.version_id))
    }
    fn set_default_policy_version(
        &self,
        ctx: &RequestContext,
        input: s::SetDefaultPolicyVersionRequest,
    ) -> R<()> {
        self.write(|tx| {
            policies::set_default_version(tx, ctx, &input.policy_arn, &input.version_id)
        })
    }
    fn tag_policy(&self, ctx: &RequestContext, input: s::TagPolicyRequest) -> R<()> {
        common::check_tags(&input.tags)?;
        self.write(|tx| {
            policies::with_tags(tx, ctx, &input.policy_arn, |t| {
                Ok(common::merge_tags(t, &input.tags)?)
            })
        })
    }
    fn untag_policy(&self, ctx: &RequestContext, input: s::UntagPolicyRequest) -> R<()> {
        self.write(|tx| {
            policies::with_tags(tx, ctx, &input.policy_arn, |t| {
                common::remove_tags(t, &input.tag_keys);
                Ok(())
            })
        })
    }
    fn list_policy_tags(
        &self,
        ctx: &RequestContext,
        input: s::ListPolicyTagsRequest,
    ) -> R<s::ListPolicyTagsResponse> {
        let marker = Marker::parse(input.marker.as_deref(), input.max_items)?;
        let tags = self.read(|tx| {
            Ok(policies::get(tx, ctx, &input.policy_arn)?
                .tags
                .unwrap_or_default())
        })?;
        let (tags, truncated, marker) = tag_list(tags, &marker);
        Ok(s::ListPolicyTagsResponse {
            is_truncated: Some(truncated),
            marker,
            tags,
        })
    }

    // ----- inline policies -----
    fn put_user_policy(&self, ctx: &RequestContext, input: s::PutUserPolicyRequest) -> R<()> {
        self.write(|tx| {
            entities::put_inline::<StoredUser>(
                tx,
                ctx,
                &input.user_name,
                &input.policy_name,
                &input.policy_document,
            )
        })
    }
    fn get_user_policy(
        &self,
        ctx: &RequestContext,
        input: s::GetUserPolicyRequest,
    ) -> R<s::GetUserPolicyResponse> {
        let (user_name, doc) = self.read(|tx| {
            entities::get_inline::<StoredUser>(tx, ctx, &input.user_name, &input.policy_name)
        })?;
        Ok(s::GetUserPolicyResponse {
            policy_document: common::wire_document(&doc),
            policy_name: input.policy_name,
            user_name,
        })
    }
    fn list_user_policies(
        &self,
        ctx: &RequestContext,
        input: s::ListUserPoliciesRequest,
    ) -> R<s::ListUserPoliciesResponse> {
        let marker = Marker::parse(input.marker.as_deref(), input.max_items)?;
        let (names, truncated, marker) = self
            .read(|tx| entities::list_inline::<StoredUser>(tx, ctx, &input.user_name, &marker))?;
        Ok(s::ListUserPoliciesResponse {
            is_truncated: Some(truncated),
            marker,
            policy_names: names,
        })
    }
    fn delete_user_policy(&self, ctx: &RequestContext, input: s::DeleteUserPolicyRequest) -> R<()> {
        self.write(|tx| {
            entities::delete_inline::<StoredUser>(tx, ctx, &input.user_name, &input.policy_name)
        })
    }
    fn put_role_policy(&self, ctx: &RequestContext, input: s::PutRolePolicyRequest) -> R<()> {
        self.write(|tx| {
            service_linked::must_be_modifiable(tx, ctx, &input.role_name)?;
            entities::put_inline::<StoredRole>(
                tx,
                ctx,
                &input.role_name,
                &input.policy_name,
                &input.policy_document,
            )
        })
    }
    fn get_role_policy(
        &self,
        ctx: &RequestContext,
        input: s::GetRolePolicyRequest,
    ) -> R<s::GetRolePolicyResponse> {
        let (role_name, doc) = self.read(|tx| {
            entities::get_inline::<StoredRole>(tx, ctx, &input.role_name, &input.policy_name)
        })?;
        Ok(s::GetRolePolicyResponse {
            policy_document: common::wire_document(&doc),
            policy_name: input.policy_name,
            role_name,
        })
    }
    fn list_role_policies(
        &self,
        ctx: &RequestContext,
        input: s::ListRolePoliciesRequest,
    ) -> R<s::ListRolePoliciesResponse> {
        let marker = Marker::parse(input.marker.as_deref(), input.max_items)?;
        let (names, truncated, marker) = self
            .read(|tx| entities::list_inline::<StoredRole>(tx, ctx, &input.role_name, &marker))?;
        Ok(s::ListRolePoliciesResponse {
            is_truncated: Some(truncated),
            marker,
            policy_names: names,
        })
    }
    fn delete_role_policy(&self, ctx: &RequestContext, input: s::DeleteRolePolicyRequest) -> R<()> {
        self.write(|tx| {
            service_linked::must_be_modifiable(tx, ctx, &input.role_name)?;
            entities::delete_inline::<StoredRole>(tx, ctx, &input.role_name, &input.policy_name)
        })
    }
    fn put_group_policy(&self, ctx: &RequestContext, input: s::PutGroupPolicyRequest) -> R<()> {
        self.write(|tx| {
            entities::put_inline::<StoredGroup>(
                tx,
                ctx,
                &input.group_name,
                &input.policy_name,
                &input.policy_document,
            )
        })
    }
    fn get_group_policy(
        &self,
        ctx: &RequestContext,
        input: s::GetGroupPolicyRequest,
    ) -> R<s::GetGroupPolicyResponse> {
        let (group_name, doc) = self.read(|tx| {
            entities::get_inline::<StoredGroup>(tx, ctx, &input.group_name, &input.policy_name)
        })?;
        Ok(s::GetGroupPolicyResponse {
            policy_document: common::wire_document(&doc),
            policy_name: input.policy_name,
            group_name,
        })
    }
    fn list_group_policies(
        &self,
        ctx: &RequestContext,
        input: s::ListGroupPoliciesRequest,
    ) -> R<s::ListGroupPoliciesResponse> {
        let marker = Marker::parse(input.marker.as_deref(), input.max_items)?;
        let (names, truncated, marker) = self
            .read(|tx| entities::list_inline::<StoredGroup>(tx, ctx, &input.group_name, &marker))?;
        Ok(s::ListGroupPoliciesResponse {
            is_truncated: Some(truncated),
            marker,
            policy_names: names,
        })
    }
    fn delete_group_policy(
        &self,
        ctx: &RequestContext,
        input: s::DeleteGroupPolicyRequest,
    ) -> R<()> {
        self.write(|tx| {
            entities::delete_inline::<StoredGroup>(tx, ctx, &input.group_name, &input.policy_name)
        })
    }

    // ----- attached policies -----
    fn attach_user_policy(&self, ctx: &RequestContext, input: s::AttachUserPolicyRequest) -> R<()> {
        self.write(|tx| {
            entities::attach::<StoredUser>(tx, ctx, &input.user_name, &input.policy_arn)
        })
    }
    fn detach_user_policy(&self, ctx: &RequestContext, input: s::DetachUserPolicyRequest) -> R<()> {
        self.write(|tx| {
            entities::detach::<StoredUser>(tx, ctx, &input.user_name, &input.policy_arn)
        })
    }
    fn list_attached_user_policies(
        &self,
        ctx: &RequestContext,
        input: s::ListAttachedUserPoliciesRequest,
    ) -> R<s::ListAttachedUserPoliciesResponse> {
        let marker = Marker::parse(input.marker.as_deref(), input.max_items)?;
        let (list, truncated, marker) = self.read(|tx| {
            entities::list_attached::<StoredUser>(
                tx,
                ctx,
                &input.user_name,
                input.path_prefix.as_deref(),
                &marker,
            )
        })?;
        Ok(s::ListAttachedUserPoliciesResponse {
            attached_policies: Some(list),
            is_truncated: Some(truncated),
            marker,
        })
    }
    fn attach_role_policy(&self, ctx: &RequestContext, input: s::AttachRolePolicyRequest) -> R<()> {
        self.write(|tx| {
            service_linked::must_be_modifiable(tx, ctx, &input.role_name)?;
            entities::attach::<StoredRole>(tx, ctx, &input.role_name, &input.policy_arn)
        })
    }
    fn detach_role_policy(&self, ctx: &RequestContext, input: s::DetachRolePolicyRequest) -> R<()> {
        self.write(|tx| {
            service_linked::must_be_modifiable(tx, ctx, &input.role_name)?;
            entities::detach::<StoredRole>(tx, ctx, &input.role_name, &input.policy_arn)
        })
    }
    fn list_attached_role_policies(
        &self,
        ctx: &RequestContext,
        input: s::ListAttachedRolePoliciesRequest,
    ) -> R<s::ListAttachedRolePoliciesResponse> {
        let marker = Marker::parse(input.marker.as_deref(), input.max_items)?;
        let (list, truncated, marker) = self.read(|tx| {
            entities::list_attached::<StoredRole>(
                tx,
                ctx,
                &input.role_name,
                input.path_prefix.as_deref(),
                &marker,
            )
        })?;
        Ok(s::ListAttachedRolePoliciesResponse {
            attached_policies: Some(list),
            is_truncated: Some(truncated),
            marker,
        })
    }
    fn attach_group_policy(
        &self,
        ctx: &RequestContext,
        input: s::AttachGroupPolicyRequest,
    ) -> R<()> {
        self.write(|tx| {
            entities::attach::<StoredGroup>(tx, ctx, &input.group_name, &input.policy_arn)
        })
    }
    fn detach_group_policy(
        &self,
        ctx: &RequestContext,
        input: s::DetachGroupPolicyRequest,
    ) -> R<()> {
        self.write(|tx| {
            entities::detach::<StoredGroup>(tx, ctx, &input.group_name, &input.policy_arn)
        })
    }
    fn list_attached_group_policies(
        &self,
        ctx: &RequestContext,
        input: s::ListAttachedGroupPoliciesRequest,
    ) -> R<s::ListAttachedGroupPoliciesResponse> {
        let marker = Marker::parse(input.marker.as_deref(), input.max_items)?;
        let (list, truncated, marker) = self.read(|tx| {
            entities::list_attached::<StoredGroup>(
                tx,
                ctx,
                &input.group_name,
                input.path_prefix.as_deref(),
                &marker,
            )
        })?;
        Ok(s::ListAttachedGroupPoliciesResponse {
            attached_policies: Some(list),
            is_truncated: Some(truncated),
            marker,
        })
    }

    // ----- groups -----
    fn create_group(
        &self,
        ctx: &RequestContext,
        input: s::CreateGroupRequest,
    ) -> R<s::CreateGroupResponse> {
        let group = self.write(|tx| groups::create(tx, ctx, input))?;
        Ok(s::CreateGroupResponse { group })
    }
    fn get_group(&self, ctx: &RequestContext, input: s::GetGroupRequest) -> R<s::GetGroupResponse> {
        self.read(|tx| groups::get(tx, ctx, input))
    }
    fn list_groups(
        &self,
        ctx: &RequestContext,
        input: s::ListGroupsRequest,
    ) -> R<s::ListGroupsResponse> {
        self.read(|tx| groups::list(tx, ctx, input))
    }
    fn delete_group(&self, ctx: &RequestContext, input: s::DeleteGroupRequest) -> R<()> {
        self.write(|tx| groups::delete(tx, ctx, &input.group_name))
    }
    fn add_user_to_group(&self, ctx: &RequestContext, input: s::AddUserToGroupRequest) -> R<()> {
        self.write(|tx| groups::add_user(tx, ctx, &input.group_name, &input.user_name))
    }
    fn remove_user_from_group(
        &self,
        ctx: &RequestContext,
        input: s::RemoveUserFromGroupRequest,
    ) -> R<()> {
        self.write(|tx| groups::remove_user(tx, ctx, &input.group_name, &input.user_name))
    }
    fn list_groups_for_user(
        &self,
        ctx: &RequestContext,
        input: s::ListGroupsForUserRequest,
    ) -> R<s::ListGroupsForUserResponse> {
        let marker = Marker::parse(input.marker.as_deref(), input.max_items)?;
        let all = self.read(|tx| groups::groups_for_user(tx, ctx, &input.user_name))?;
        let (groups, truncated, marker) = marker.page(all.into_iter().map(|g| g.group).collect());
        Ok(s::ListGroupsForUserResponse {
            groups,
            is_truncated: Some(truncated),
            marker,
        })
    }

    // ----- instance profiles -----
    fn create_instance_profile(
        &self,
        ctx: &RequestContext,
        input: s::CreateInstanceProfileRequest,
    ) -> R<s::CreateInstanceProfileResponse> {
        let instance_profile = self.write(|tx| roles::create_profile(tx, ctx, input))?;
        Ok(s::CreateInstanceProfileResponse { instance_profile })
    }
    fn get_instance_profile(
        &self,
        ctx: &RequestContext,
        input: s::GetInstanceProfileRequest,
    ) -> R<s::GetInstanceProfileResponse> {
        let instance_profile =
            self.read(|tx| roles::get_profile(tx, ctx, &input.instance_profile_name))?;
        Ok(s::GetInstanceProfileResponse { instance_profile })
    }
    fn delete_instance_profile(
        &self,
        ctx: &RequestContext,
        input: s::DeleteInstanceProfileRequest,
    ) -> R<()> {
        self.write(|tx| roles::delete_profile(tx, ctx, &input.instance_profile_name))
    }
    fn add_role_to_instance_profile(
        &self,
        ctx: &RequestContext,
        input: s::AddRoleToInstanceProfileRequest,
    ) -> R<()> {
        self.write(|tx| {
            service_linked::must_be_modifiable(tx, ctx, &input.role_name)?;
            roles::add_role_to_profile(tx, ctx, &input.instance_profile_name, &input.role_name)
        })
    }
    fn remove_role_from_instance_profile(
        &self,
        ctx: &RequestContext,
        input: s::RemoveRoleFromInstanceProfileRequest,
    ) -> R<()> {
        self.write(|tx| {
            roles::remove_role_from_profile(tx, ctx, &input.instance_profile_name, &input.role_name)
        })
    }
    fn list_instance_profiles(
        &self,
        ctx: &RequestContext,
        input: s::ListInstanceProfilesRequest,
    ) -> R<s::ListInstanceProfilesResponse> {
        let marker = Marker::parse(input.marker.as_deref(), input.max_items)?;
        let (instance_profiles, truncated, marker) = self.read(|tx| {
            roles::list_profiles(tx, ctx, None, input.path_prefix.as_deref(), &marker)
        })?;
        Ok(s::ListInstanceProfilesResponse {
            instance_profiles,
            is_truncated: Some(truncated),
            marker,
        })
    }
    fn list_instance_profiles_for_role(
        &self,
        ctx: &RequestContext,
        input: s::ListInstanceProfilesForRoleRequest,
    ) -> R<s::ListInstanceProfilesForRoleResponse> {
        let marker = Marker::parse(input.marker.as_deref(), input.max_items)?;
        let (instance_profiles, truncated, marker) =
            self.read(|tx| roles::list_profiles(tx, ctx, Some(&input.role_name), None, &marker))?;
        Ok(s::ListInstanceProfilesForRoleResponse {
            instance_profiles,
            is_truncated: Some(truncated),
            marker,
        })
    }

    // ----- account views -----
    fn get_account_authorization_details(
        &self,
        ctx: &RequestContext,
        input: s::GetAccountAuthorizationDetailsRequest,
    ) -> R<s::GetAccountAuthorizationDetailsResponse> {
        self.read(|tx| details::authorization_details(tx, ctx, input))
    }
    fn list_entities_for_policy(
        &self,
        ctx: &RequestContext,
        input: s::ListEntitiesForPolicyRequest,
    ) -> R<s::ListEntitiesForPolicyResponse> {
        self.read(|tx| details::entities_for_policy(tx, ctx, input))
    }
}
