//! Users, roles and groups as stored: the wire shape plus what IAM keeps beside it (inline
//! policies, attached managed policies, memberships), and the policy operations the three
//! share (Put/Get/List/Delete…Policy, Attach/Detach/ListAttached…Policies).

use std::collections::BTreeMap;

use berth_store::Tx;
use berth_wire::RequestContext;
use berth_wire::iam::shapes as s;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::common::{self, Marker, key, scope};
use super::policies;
use crate::failure::Failure;

/// Record kinds.
pub mod kind {
    pub const USER: &str = "iam/user";
    pub const ROLE: &str = "iam/role";
    pub const GROUP: &str = "iam/group";
    pub const POLICY: &str = "iam/policy";
    pub const INSTANCE_PROFILE: &str = "iam/instance-profile";
}

/// The permission policies of a user, role or group.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Policies {
    /// Inline policies by name, documents as given.
    #[serde(default)]
    pub inline: BTreeMap<String, String>,
    /// Attached managed policies' ARNs, in attachment order.
    #[serde(default)]
    pub attached: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredUser {
    pub user: s::User,
    #[serde(default)]
    pub policies: Policies,
    /// The store ids of the groups the user is in.
    #[serde(default)]
    pub groups: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredRole {
    pub role: s::Role,
    #[serde(default)]
    pub policies: Policies,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredGroup {
    pub group: s::Group,
    #[serde(default)]
    pub policies: Policies,
    /// The store ids of the group's users, in the order they joined.
    #[serde(default)]
    pub users: Vec<String>,
}

/// What the shared policy operations need of a user, role or group.
pub trait Entity: Serialize + DeserializeOwned {
    const KIND: &'static str;
    /// As IAM's messages name it: "user", "role", "group".
    const NOUN: &'static str;
    /// IAM's quota name for attached policies (`PoliciesPerUser`, …) and its value.
    const ATTACH_QUOTA: (&'static str, usize);
    fn name(&self) -> &str;
    fn policies(&self) -> &Policies;
    fn policies_mut(&mut self) -> &mut Policies;
    /// The entity's tags, where IAM tags this kind (users and roles).
    fn tags_mut(&mut self) -> Option<&mut Option<Vec<s::Tag>>> {
        None
    }
    /// The entity's permissions boundary, where this kind has one (users and roles).
    fn boundary_mut(&mut self) -> Option<&mut Option<s::AttachedPermissionsBoundary>> {
        None
    }
}

impl Entity for StoredUser {
    const KIND: &'static str = kind::USER;
    const NOUN: &'static str = "user";
    const ATTACH_QUOTA: (&'static str, usize) = ("PoliciesPerUser", 10);
    fn name(&self) -> &str {
        &self.user.user_name
    }
    fn tags_mut(&mut self) -> Option<&mut Option<Vec<s::Tag>>> {
        Some(&mut self.user.tags)
    }
    fn boundary_mut(&mut self) -> Option<&mut Option<s::AttachedPermissionsBoundary>> {
        Some(&mut self.user.permissions_boundary)
    }
    fn policies(&self) -> &Policies {
        &self.policies
    }
    fn policies_mut(&mut self) -> &mut Policies {
        &mut self.policies
    }
}

impl Entity for StoredRole {
    const KIND: &'static str = kind::ROLE;
    const NOUN: &'static str = "role";
    const ATTACH_QUOTA: (&'static str, usize) = ("PoliciesPerRole", 20);
    fn name(&self) -> &str {
        &self.role.role_name
    }
    fn tags_mut(&mut self) -> Option<&mut Option<Vec<s::Tag>>> {
        Some(&mut self.role.tags)
    }
    fn boundary_mut(&mut self) -> Option<&mut Option<s::AttachedPermissionsBoundary>> {
        Some(&mut self.role.permissions_boundary)
    }
    fn policies(&self) -> &Policies {
        &self.policies
    }
    fn policies_mut(&mut self) -> &mut Policies {
        &mut self.policies
    }
}

impl Entity for StoredGroup {
    const KIND: &'static str = kind::GROUP;
    const NOUN: &'static str = "group";
    const ATTACH_QUOTA: (&'static str, usize) = ("PoliciesPerGroup", 10);
    fn name(&self) -> &str {
        &self.group.group_name
    }
    fn policies(&self) -> &Policies {
        &self.policies
    }
    fn policies_mut(&mut self) -> &mut Policies {
        &mut self.policies
    }
}

/// The entity named `name`, with its record version, or IAM's NoSuchEntity.
pub fn load<E: Entity>(tx: &Tx<'_>, ctx: &RequestContext, name: &str) -> Result<(E, i64), Failure> {
    tx.get_json::<E>(scope(ctx), E::KIND, &key(name))?
        .ok_or_else(|| {
            common::no_such(format!("The {} with name {name} cannot be found.", E::NOUN)).into()
        })
}

pub fn save<E: Entity>(
    tx: &mut Tx<'_>,
    ctx: &RequestContext,
    entity: &E,
    version: i64,
) -> Result<(), Failure> {
    tx.put(
        scope(ctx),
        E::KIND,
        &key(entity.name()),
        Some(version),
        entity,
    )?;
    Ok(())
}

/// Every entity of a kind, by name.
pub fn all<E: Entity>(tx: &Tx<'_>, ctx: &RequestContext) -> Result<Vec<E>, Failure> {
    Ok(tx
        .list_json::<E>(scope(ctx), E::KIND, "")?
        .into_iter()
        .map(|(_, e)| e)
        .collect())
}

/// Tag/Untag/List{User,Role}Tags: the entity's tags, changed by `f`.
pub fn with_tags<E: Entity, T>(
    tx: &mut Tx<'_>,
    ctx: &RequestContext,
    name: &str,
    f: impl FnOnce(&mut Vec<s::Tag>) -> Result<T, Failure>,
) -> Result<T, Failure> {
    let (mut e, v) = load::<E>(tx, ctx, name)?;
    let Some(slot) = e.tags_mut() else {
        return Err(common::invalid_input(format!("A {} has no tags.", E::NOUN)).into());
    };
    let mut tags = slot.take().unwrap_or_default();
    let out = f(&mut tags)?;
    *slot = (!tags.is_empty()).then_some(tags);
    save(tx, ctx, &e, v)?;
    Ok(out)
}

/// Put/Delete{User,Role}PermissionsBoundary.
pub fn set_boundary<E: Entity>(
    tx: &mut Tx<'_>,
    ctx: &RequestContext,
    name: &str,
    arn: Option<String>,
) -> Result<(), Failure> {
    let (mut e, v) = load::<E>(tx, ctx, name)?;
    let boundary = policies::boundary(tx, ctx, arn)?;
    if let Some(slot) = e.boundary_mut() {
        *slot = boundary;
    }
    save(tx, ctx, &e, v)
}

/// Put{User,Role,Group}Policy.
pub fn put_inline<E: Entity>(
    tx: &mut Tx<'_>,
    ctx: &RequestContext,
    name: &str,
    policy_name: &str,
    document: &str,
) -> Result<(), Failure> {
    common::check_name("policyName", policy_name, 128)?;
    common::check_document(document, berth_iam::policy::PolicyKind::Identity)?;
    let (mut e, v) = load::<E>(tx, ctx, name)?;
    e.policies_mut()
        .inline
        .insert(policy_name.to_string(), document.to_string());
    save(tx, ctx, &e, v)
}

/// Get{User,Role,Group}Policy: the entity's real name and the document.
pub fn get_inline<E: Entity>(
    tx: &Tx<'_>,
    ctx: &RequestContext,
    name: &str,
    policy_name: &str,
) -> Result<(String, String), Failure> {
    let (e, _) = load::<E>(tx, ctx, name)?;
    let doc = e
        .policies()
        .inline
        .get(policy_name)
        .ok_or_else(|| {
            common::no_such(format!(
                "The {} policy with name {policy_name} cannot be found.",
                E::NOUN
            ))
        })?
        .clone();
    Ok((e.name().to_string(), doc))
}

/// Delete{User,Role,Group}Policy.
pub fn delete_inline<E: Entity>(
    tx: &mut Tx<'_>,
    ctx: &RequestContext,
    name: &str,
    policy_name: &str,
) -> Result<(), Failure> {
    let (mut e, v) = load::<E>(tx, ctx, name)?;
    if e.policies_mut().inline.remove(policy_name).is_none() {
        return Err(common::no_such(format!(
            "The {} policy with name {policy_name} cannot be found.",
            E::NOUN
        ))
        .into());
    }
    save(tx, ctx, &e, v)
}

/// List{User,Role,Group}Policies: names, paged.
pub fn list_inline<E: Entity>(
    tx: &Tx<'_>,
    ctx: &RequestContext,
    name: &str,
    marker: &Marker,
) -> Result<(Vec<String>, bool, Option<String>), Failure> {
    let (e, _) = load::<E>(tx, ctx, name)?;
    Ok(marker.page(e.policies().inline.keys().cloned().collect()))
}

/// Attach{User,Role,Group}Policy.
pub fn attach<E: Entity>(
    tx: &mut Tx<'_>,
    ctx: &RequestContext,
    name: &str,
    policy_arn: &str,
) -> Result<(), Failure> {
    let (mut e, v) = load::<E>(tx, ctx, name)?;
    policies::must_be_attachable(tx, ctx, policy_arn)?;
    if e.policies().attached.iter().any(|a| a == policy_arn) {
        return Ok(());
    }
    let (quota, max) = E::ATTACH_QUOTA;
    if e.policies().attached.len() >= max {
        return Err(common::limit(format!("Cannot exceed quota for {quota}: {max}")).into());
    }
    e.policies_mut().attached.push(policy_arn.to_string());
    save(tx, ctx, &e, v)?;
    policies::count_attachment(tx, ctx, policy_arn, 1)
}

/// Detach{User,Role,Group}Policy.
pub fn detach<E: Entity>(
    tx: &mut Tx<'_>,
    ctx: &RequestContext,
    name: &str,
    policy_arn: &str,
) -> Result<(), Failure> {
    let (mut e, v) = load::<E>(tx, ctx, name)?;
    let before = e.policies().attached.len();
    e.policies_mut().attached.retain(|a| a != policy_arn);
    if e.policies().attached.len() == before {
        return Err(common::no_such(format!("Policy {policy_arn} was not found.")).into());
    }
    save(tx, ctx, &e, v)?;
    policies::count_attachment(tx, ctx, policy_arn, -1)
}

/// ListAttached{User,Role,Group}Policies, with PathPrefix on the policies' paths.
pub fn list_attached<E: Entity>(
    tx: &Tx<'_>,
    ctx: &RequestContext,
    name: &str,
    path_prefix: Option<&str>,
    marker: &Marker,
) -> Result<(Vec<s::AttachedPolicy>, bool, Option<String>), Failure> {
    let (e, _) = load::<E>(tx, ctx, name)?;
    let prefix = path_prefix.unwrap_or("/");
    let attached: Vec<s::AttachedPolicy> = e
        .policies()
        .attached
        .iter()
        .filter(|arn| policies::path_of_arn(arn).starts_with(prefix))
        .map(|arn| s::AttachedPolicy {
            policy_arn: Some(arn.clone()),
            policy_name: Some(policies::name_of_arn(arn).to_string()),
        })
        .collect();
    Ok(marker.page(attached))
}

/// The documents of inline policies, as GetAccountAuthorizationDetails lists them.
pub fn inline_details(p: &Policies) -> Vec<s::PolicyDetail> {
    p.inline
        .iter()
        .map(|(n, d)| s::PolicyDetail {
            policy_name: Some(n.clone()),
            policy_document: Some(common::wire_document(d)),
        })
        .collect()
}

/// Attached policies as GetAccountAuthorizationDetails lists them.
pub fn attached_details(p: &Policies) -> Vec<s::AttachedPolicy> {
    p.attached
        .iter()
        .map(|arn| s::AttachedPolicy {
            policy_arn: Some(arn.clone()),
            policy_name: Some(policies::name_of_arn(arn).to_string()),
        })
        .collect()
}
