//! IAM roles (trust policies, session durations) and instance profiles.

use berth_store::Tx;
use berth_wire::RequestContext;
use berth_wire::iam::shapes as s;
use serde::{Deserialize, Serialize};

use super::common::{self, Marker, key, scope};
use super::entities::{self, StoredRole, kind};
use super::policies;
use crate::failure::Failure;

fn check_description(d: Option<&str>) -> Result<(), Failure> {
    if d.is_some_and(|d| d.chars().count() > 1000) {
        return Err(common::validation(
            "1 validation error detected: Value at 'description' failed to satisfy constraint: Member must have length less than or equal to 1000",
        )
        .into());
    }
    Ok(())
}

fn check_session_duration(d: Option<i32>) -> Result<(), Failure> {
    if let Some(d) = d
        && !(3600..=43200).contains(&d)
    {
        return Err(common::validation(format!(
            "1 validation error detected: Value '{d}' at 'maxSessionDuration' failed to satisfy constraint: Member must have value greater than or equal to 3600 and less than or equal to 43200"
        ))
        .into());
    }
    Ok(())
}

/// A role as replies show it: the trust policy URL-encoded.
pub fn present(r: &s::Role) -> s::Role {
    s::Role {
        assume_role_policy_document: r
            .assume_role_policy_document
            .as_deref()
            .map(common::wire_document),
        ..r.clone()
    }
}

pub fn create(
    tx: &mut Tx<'_>,
    ctx: &RequestContext,
    input: s::CreateRoleRequest,
) -> Result<s::Role, Failure> {
    common::check_name("roleName", &input.role_name, 64)?;
    let path = common::check_path("path", input.path.as_deref())?;
    common::check_document(
        &input.assume_role_policy_document,
        berth_iam::policy::PolicyKind::Trust,
    )?;
    check_description(input.description.as_deref())?;
    check_session_duration(input.max_session_duration)?;
    let tags = input.tags.unwrap_or_default();
    common::check_tags(&tags)?;
    if tx
        .get(scope(ctx), kind::ROLE, &key(&input.role_name))?
        .is_some()
    {
        return Err(common::exists(format!(
            "Role with name {} already exists.",
            input.role_name
        ))
        .into());
    }
    let role = s::Role {
        arn: common::arn(ctx, "role", &path, &input.role_name),
        assume_role_policy_document: Some(input.assume_role_policy_document),
        create_date: ctx.now,
        description: input.description,
        max_session_duration: Some(input.max_session_duration.unwrap_or(3600)),
        max_signin_session_duration: None,
        path,
        permissions_boundary: policies::boundary(tx, ctx, input.permissions_boundary)?,
        role_id: common::new_id("AROA"),
        role_last_used: Some(s::RoleLastUsed::default()),
        role_name: input.role_name,
        source_role_template: None,
        tags: (!tags.is_empty()).then_some(tags),
    };
    let stored = StoredRole {
        role: role.clone(),
        policies: Default::default(),
    };
    tx.insert(scope(ctx), kind::ROLE, &key(&role.role_name), &stored)?;
    Ok(present(&role))
}

pub fn get(tx: &Tx<'_>, ctx: &RequestContext, name: &str) -> Result<s::Role, Failure> {
    Ok(present(
        &entities::load::<StoredRole>(tx, ctx, name)?.0.role,
    ))
}

/// A role's stored trust policy and ARN, for AssumeRole.
pub fn stored(tx: &Tx<'_>, ctx: &RequestContext, name: &str) -> Result<StoredRole, Failure> {
    Ok(entities::load::<StoredRole>(tx, ctx, name)?.0)
}

pub fn list(
    tx: &Tx<'_>,
    ctx: &RequestContext,
    input: s::ListRolesRequest,
) -> Result<s::ListRolesResponse, Failure> {
    let marker = Marker::parse(input.marker.as_deref(), input.max_items)?;
    let prefix = input.path_prefix.unwrap_or_else(|| "/".into());
    let roles: Vec<s::Role> = entities::all::<StoredRole>(tx, ctx)?
        .into_iter()
        .filter(|r| r.role.path.starts_with(&prefix))
        // ListRoles leaves out tags, boundaries and last use, as IAM does.
        .map(|r| s::Role {
            tags: None,
            permissions_boundary: None,
            role_last_used: None,
            ..present(&r.role)
        })
        .collect();
    let (roles, truncated, next) = marker.page(roles);
    Ok(s::ListRolesResponse {
        is_truncated: Some(truncated),
        marker: next,
        roles,
    })
}

pub fn update(
    tx: &mut Tx<'_>,
    ctx: &RequestContext,
    input: s::UpdateRoleRequest,
) -> Result<(), Failure> {
    check_description(input.description.as_deref())?;
    check_session_duration(input.max_session_duration)?;
    let (mut r, v) = entities::load::<StoredRole>(tx, ctx, &input.role_name)?;
    if let Some(d) = input.description {
        r.role.description = Some(d);
    }
    if let Some(d) = input.max_session_duration {
        r.role.max_session_duration = Some(d);
    }
    entities::save(tx, ctx, &r, v)
}

pub fn update_description(
    tx: &mut Tx<'_>,
    ctx: &RequestContext,
    name: &str,
    description: String,
) -> Result<s::Role, Failure> {
    check_description(Some(&description))?;
    let (mut r, v) = entities::load::<StoredRole>(tx, ctx, name)?;
    r.role.description = Some(description);
    entities::save(tx, ctx, &r, v)?;
    Ok(present(&r.role))
}

pub fn update_trust(
    tx: &mut Tx<'_>,
    ctx: &RequestContext,
    name: &str,
    document: String,
) -> Result<(), Failure> {
    common::check_document(&document, berth_iam::policy::PolicyKind::Trust)?;
    let (mut r, v) = entities::load::<StoredRole>(tx, ctx, name)?;
    r.role.assume_role_policy_document = Some(document);
    entities::save(tx, ctx, &r, v)
}

pub fn delete(tx: &mut Tx<'_>, ctx: &RequestContext, name: &str) -> Result<(), Failure> {
    let (r, _) = entities::load::<StoredRole>(tx, ctx, name)?;
    if profiles_of_role(tx, ctx, &r.role.role_name)?
        .next()
        .is_some()
    {
        return Err(common::conflict(
            "Cannot delete entity, must remove roles from instance profile first.",
        )
        .into());
    }
    if !r.policies.inline.is_empty() {
        return Err(common::conflict("Cannot delete entity, must delete policies first.").into());
    }
    if !r.policies.attached.is_empty() {
        return Err(
            common::conflict("Cannot delete entity, must detach all policies first.").into(),
        );
    }
    tx.delete(scope(ctx), kind::ROLE, &key(name))?;
    Ok(())
}

// ----- instance profiles -----

/// An instance profile as stored: the shape without its roles, and the roles' store ids.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredProfile {
    pub profile: s::InstanceProfile,
    pub roles: Vec<String>,
}

fn load_profile(
    tx: &Tx<'_>,
    ctx: &RequestContext,
    name: &str,
) -> Result<(StoredProfile, i64), Failure> {
    tx.get_json::<StoredProfile>(scope(ctx), kind::INSTANCE_PROFILE, &key(name))?
        .ok_or_else(|| common::no_such(format!("Instance Profile {name} cannot be found.")).into())
}

/// The profile with its roles filled in.
fn present_profile(
    tx: &Tx<'_>,
    ctx: &RequestContext,
    p: &StoredProfile,
) -> Result<s::InstanceProfile, Failure> {
    let mut roles = Vec::new();
    for r in &p.roles {
        if let Some((role, _)) = tx.get_json::<StoredRole>(scope(ctx), kind::ROLE, r)? {
            roles.push(s::Role {
                tags: None,
                role_last_used: None,
                ..present(&role.role)
            });
        }
    }
    Ok(s::InstanceProfile {
        roles,
        ..p.profile.clone()
    })
}

fn profiles_of_role<'a>(
    tx: &Tx<'_>,
    ctx: &RequestContext,
    role_name: &'a str,
) -> Result<impl Iterator<Item = StoredProfile> + 'a, Failure> {
    let k = key(role_name);
    Ok(tx
        .list_json::<StoredProfile>(scope(ctx), kind::INSTANCE_PROFILE, "")?
        .into_iter()
        .map(|(_, p)| p)
        .filter(move |p| p.roles.contains(&k)))
}

pub fn create_profile(
    tx: &mut Tx<'_>,
    ctx: &RequestContext,
    input: s::CreateInstanceProfileRequest,
) -> Result<s::InstanceProfile, Failure> {
    common::check_name("instanceProfileName", &input.instance_profile_name, 128)?;
    let path = common::check_path("path", input.path.as_deref())?;
    let tags = input.tags.unwrap_or_default();
    common::check_tags(&tags)?;
    let id = key(&input.instance_profile_name);
    if tx.get(scope(ctx), kind::INSTANCE_PROFILE, &id)?.is_some() {
        return Err(common::exists(format!(
            "Instance Profile {} already exists.",
            input.instance_profile_name
        ))
        .into());
    }
    let profile = s::InstanceProfile {
        arn: common::arn(ctx, "instance-profile", &path, &input.instance_profile_name),
        create_date: ctx.now,
        instance_profile_id: common::new_id("AIPA"),
        instance_profile_name: input.instance_profile_name,
        path,
        roles: Vec::new(),
        tags: (!tags.is_empty()).then_some(tags),
    };
    tx.insert(
        scope(ctx),
        kind::INSTANCE_PROFILE,
        &id,
        &StoredProfile {
            profile: profile.clone(),
            roles: Vec::new(),
        },
    )?;
    Ok(profile)
}

pub fn get_profile(
    tx: &Tx<'_>,
    ctx: &RequestContext,
    name: &str,
) -> Result<s::InstanceProfile, Failure> {
    let (p, _) = load_profile(tx, ctx, name)?;
    present_profile(tx, ctx, &p)
}

pub fn delete_profile(tx: &mut Tx<'_>, ctx: &RequestContext, name: &str) -> Result<(), Failure> {
    let (p, _) = load_profile(tx, ctx, name)?;
    if !p.roles.is_empty() {
        return Err(common::conflict(
            "Cannot delete entity, must remove roles from instance profile first.",
        )
        .into());
    }
    tx.delete(scope(ctx), kind::INSTANCE_PROFILE, &key(name))?;
    Ok(())
}

pub fn add_role_to_profile(
    tx: &mut Tx<'_>,
    ctx: &RequestContext,
    profile: &str,
    role: &str,
) -> Result<(), Failure> {
    let (mut p, v) = load_profile(tx, ctx, profile)?;
    entities::load::<StoredRole>(tx, ctx, role)?;
    let k = key(role);
    if p.roles.contains(&k) {
        return Err(common::exists(format!(
            "Role {role} is already associated with instance profile {profile}."
        ))
        .into());
    }
    if !p.roles.is_empty() {
        return Err(
            common::limit("Cannot exceed quota for InstanceSessionsPerInstanceProfile: 1").into(),
        );
    }
    p.roles.push(k);
    tx.put(
        scope(ctx),
        kind::INSTANCE_PROFILE,
        &key(profile),
        Some(v),
        &p,
    )?;
    Ok(())
}

pub fn remove_role_from_profile(
    tx: &mut Tx<'_>,
    ctx: &RequestContext,
    profile: &str,
    role: &str,
) -> Result<(), Failure> {
    let (mut p, v) = load_profile(tx, ctx, profile)?;
    let k = key(role);
    if !p.roles.contains(&k) {
        return Err(common::no_such(format!(
            "Role {role} in Instance Profile {profile} cannot be found."
        ))
        .into());
    }
    p.roles.retain(|r| *r != k);
    tx.put(
        scope(ctx),
        kind::INSTANCE_PROFILE,
        &key(profile),
        Some(v),
        &p,
    )?;
    Ok(())
}

pub fn list_profiles(
    tx: &Tx<'_>,
    ctx: &RequestContext,
    role: Option<&str>,
    path_prefix: Option<&str>,
    marker: &Marker,
) -> Result<(Vec<s::InstanceProfile>, bool, Option<String>), Failure> {
    if let Some(r) = role {
        entities::load::<StoredRole>(tx, ctx, r)?;
    }
    let prefix = path_prefix.unwrap_or("/");
    let mut out = Vec::new();
    for (_, p) in tx.list_json::<StoredProfile>(scope(ctx), kind::INSTANCE_PROFILE, "")? {
        if role.is_some_and(|r| !p.roles.contains(&key(r))) || !p.profile.path.starts_with(prefix) {
            continue;
        }
        out.push(present_profile(tx, ctx, &p)?);
    }
    Ok(marker.page(out))
}

/// The instance profiles of a role, for GetAccountAuthorizationDetails.
pub fn profiles_for_details(
    tx: &Tx<'_>,
    ctx: &RequestContext,
    role_name: &str,
) -> Result<Vec<s::InstanceProfile>, Failure> {
    let mut out = Vec::new();
    for p in profiles_of_role(tx, ctx, role_name)? {
        out.push(present_profile(tx, ctx, &p)?);
    }
    Ok(out)
}
