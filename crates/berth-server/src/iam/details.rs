//! The account-wide views: GetAccountAuthorizationDetails and ListEntitiesForPolicy.

use berth_store::Tx;
use berth_wire::RequestContext;
use berth_wire::iam::shapes as s;

use super::common::{self, Marker, scope};
use super::entities::{self, StoredGroup, StoredRole, StoredUser, kind};
use super::policies::{self, StoredPolicy};
use super::roles;
use crate::failure::Failure;

pub fn authorization_details(
    tx: &Tx<'_>,
    ctx: &RequestContext,
    input: s::GetAccountAuthorizationDetailsRequest,
) -> Result<s::GetAccountAuthorizationDetailsResponse, Failure> {
    let marker = Marker::parse(input.marker.as_deref(), input.max_items)?;
    let filter = input.filter.unwrap_or_default();
    let wants = |t: s::EntityType| filter.is_empty() || filter.contains(&t);
    /// One entry of the combined listing that the marker pages through.
    enum Item {
        User(s::UserDetail),
        Group(s::GroupDetail),
        Role(s::RoleDetail),
        Policy(s::ManagedPolicyDetail),
    }
    let mut items = Vec::new();
    if wants(s::EntityType::User) {
        for u in entities::all::<StoredUser>(tx, ctx)? {
            let mut group_list = Vec::new();
            for g in &u.groups {
                if let Some((g, _)) = tx.get_json::<StoredGroup>(scope(ctx), kind::GROUP, g)? {
                    group_list.push(g.group.group_name);
                }
            }
            items.push(Item::User(s::UserDetail {
                arn: Some(u.user.arn.clone()),
                attached_managed_policies: Some(entities::attached_details(&u.policies)),
                create_date: Some(u.user.create_date),
                group_list: Some(group_list),
                path: Some(u.user.path.clone()),
                permissions_boundary: u.user.permissions_boundary.clone(),
                tags: u.user.tags.clone(),
                user_id: Some(u.user.user_id.clone()),
                user_name: Some(u.user.user_name.clone()),
                user_policy_list: Some(entities::inline_details(&u.policies)),
            }));
        }
    }
    if wants(s::EntityType::Group) {
        for g in entities::all::<StoredGroup>(tx, ctx)? {
            items.push(Item::Group(s::GroupDetail {
                arn: Some(g.group.arn.clone()),
                attached_managed_policies: Some(entities::attached_details(&g.policies)),
                create_date: Some(g.group.create_date),
                group_id: Some(g.group.group_id.clone()),
                group_name: Some(g.group.group_name.clone()),
                group_policy_list: Some(entities::inline_details(&g.policies)),
                path: Some(g.group.path.clone()),
            }));
        }
    }
    if wants(s::EntityType::Role) {
        for r in entities::all::<StoredRole>(tx, ctx)? {
            let shown = roles::present(&r.role);
            items.push(Item::Role(s::RoleDetail {
                arn: Some(shown.arn.clone()),
                assume_role_policy_document: shown.assume_role_policy_document.clone(),
                attached_managed_policies: Some(entities::attached_details(&r.policies)),
                create_date: Some(shown.create_date),
                instance_profile_list: Some(roles::profiles_for_details(
                    tx,
                    ctx,
                    &shown.role_name,
                )?),
                path: Some(shown.path.clone()),
                permissions_boundary: shown.permissions_boundary.clone(),
                role_id: Some(shown.role_id.clone()),
                role_last_used: shown.role_last_used.clone(),
                role_name: Some(shown.role_name.clone()),
                role_policy_list: Some(entities::inline_details(&r.policies)),
                tags: shown.tags.clone(),
            }));
        }
    }
    if wants(s::EntityType::LocalManagedPolicy) {
        for (_, p) in tx.list_json::<StoredPolicy>(scope(ctx), kind::POLICY, "")? {
            let pol = p.policy;
            items.push(Item::Policy(s::ManagedPolicyDetail {
                arn: pol.arn,
                attachment_count: pol.attachment_count,
                create_date: pol.create_date,
                default_version_id: pol.default_version_id,
                description: pol.description,
                is_attachable: pol.is_attachable,
                path: pol.path,
                permissions_boundary_usage_count: pol.permissions_boundary_usage_count,
                policy_id: pol.policy_id,
                policy_name: pol.policy_name,
                policy_version_list: Some(
                    p.versions
                        .into_iter()
                        .map(|v| s::PolicyVersion {
                            document: v.document.as_deref().map(common::wire_document),
                            ..v
                        })
                        .collect(),
                ),
                update_date: pol.update_date,
            }));
        }
    }
    let (page, truncated, next) = marker.page(items);
    let mut out = s::GetAccountAuthorizationDetailsResponse {
        group_detail_list: Some(Vec::new()),
        is_truncated: Some(truncated),
        marker: next,
        policies: Some(Vec::new()),
        role_detail_list: Some(Vec::new()),
        user_detail_list: Some(Vec::new()),
    };
    for item in page {
        match item {
            Item::User(u) => out.user_detail_list.get_or_insert_default().push(u),
            Item::Group(g) => out.group_detail_list.get_or_insert_default().push(g),
            Item::Role(r) => out.role_detail_list.get_or_insert_default().push(r),
            Item::Policy(p) => out.policies.get_or_insert_default().push(p),
        }
    }
    Ok(out)
}

pub fn entities_for_policy(
    tx: &Tx<'_>,
    ctx: &RequestContext,
    input: s::ListEntitiesForPolicyRequest,
) -> Result<s::ListEntitiesForPolicyResponse, Failure> {
    let marker = Marker::parse(input.marker.as_deref(), input.max_items)?;
    policies::get(tx, ctx, &input.policy_arn)?;
    let arn = input.policy_arn.as_str();
    let boundary_usage = input.policy_usage_filter == Some(s::PolicyUsageType::PermissionsBoundary);
    let uses = |attached: &[String], boundary: Option<&s::AttachedPermissionsBoundary>| {
        let as_boundary = boundary
            .and_then(|b| b.permissions_boundary_arn.as_deref())
            .is_some_and(|b| b == arn);
        match input.policy_usage_filter {
            None => as_boundary || attached.iter().any(|a| a == arn),
            Some(_) if boundary_usage => as_boundary,
            Some(_) => attached.iter().any(|a| a == arn),
        }
    };
    let prefix = input.path_prefix.as_deref().unwrap_or("/");
    let wants = |t: s::EntityType| input.entity_filter.is_none_or(|f| f == t);
    let mut users = Vec::new();
    let mut groups = Vec::new();
    let mut roles_out = Vec::new();
    if wants(s::EntityType::User) {
        for u in entities::all::<StoredUser>(tx, ctx)? {
            if u.user.path.starts_with(prefix)
                && uses(&u.policies.attached, u.user.permissions_boundary.as_ref())
            {
                users.push(s::PolicyUser {
                    user_id: Some(u.user.user_id),
                    user_name: Some(u.user.user_name),
                });
            }
        }
    }
    if wants(s::EntityType::Group) {
        for g in entities::all::<StoredGroup>(tx, ctx)? {
            if g.group.path.starts_with(prefix) && uses(&g.policies.attached, None) {
                groups.push(s::PolicyGroup {
                    group_id: Some(g.group.group_id),
                    group_name: Some(g.group.group_name),
                });
            }
        }
    }
    if wants(s::EntityType::Role) {
        for r in entities::all::<StoredRole>(tx, ctx)? {
            if r.role.path.starts_with(prefix)
                && uses(&r.policies.attached, r.role.permissions_boundary.as_ref())
            {
                roles_out.push(s::PolicyRole {
                    role_id: Some(r.role.role_id),
                    role_name: Some(r.role.role_name),
                });
            }
        }
    }
    // One listing paged through: users, then groups, then roles.
    let total: Vec<(u8, usize)> = (0..users.len())
        .map(|i| (0, i))
        .chain((0..groups.len()).map(|i| (1, i)))
        .chain((0..roles_out.len()).map(|i| (2, i)))
        .collect();
    let (page, truncated, next) = marker.page(total);
    let mut out = s::ListEntitiesForPolicyResponse {
        is_truncated: Some(truncated),
        marker: next,
        policy_groups: Some(Vec::new()),
        policy_roles: Some(Vec::new()),
        policy_users: Some(Vec::new()),
    };
    for (k, i) in page {
        match k {
            0 => out
                .policy_users
                .get_or_insert_default()
                .push(users[i].clone()),
            1 => out
                .policy_groups
                .get_or_insert_default()
                .push(groups[i].clone()),
            _ => out
                .policy_roles
                .get_or_insert_default()
                .push(roles_out[i].clone()),
        }
    }
    Ok(out)
}
