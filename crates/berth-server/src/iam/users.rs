//! IAM users and their access keys.

use berth_store::{AccessKey, Tx};
use berth_wire::RequestContext;
use berth_wire::iam::shapes as s;

use super::common::{self, Marker, key, scope};
use super::entities::{self, StoredGroup, StoredUser, kind};
use super::policies;
use crate::failure::Failure;

/// The name of the IAM user an ARN names (`arn:aws:iam::…:user/path/name`).
pub fn user_name_of(principal_arn: &str) -> Option<&str> {
    let resource = principal_arn.splitn(6, ':').nth(5)?;
    resource
        .strip_prefix("user/")
        .map(|r| r.rsplit('/').next().unwrap_or(r))
}

/// The user a call names, else the calling user (IAM's default for UserName).
fn target_user<'a>(ctx: &'a RequestContext, given: Option<&'a str>) -> Result<&'a str, Failure> {
    given
        .or_else(|| user_name_of(&ctx.principal_arn))
        .ok_or_else(|| {
            common::validation("Must specify userName when calling with non-User credentials")
                .into()
        })
}

pub fn create(
    tx: &mut Tx<'_>,
    ctx: &RequestContext,
    input: s::CreateUserRequest,
) -> Result<s::User, Failure> {
    common::check_name("userName", &input.user_name, 64)?;
    let path = common::check_path("path", input.path.as_deref())?;
    let tags = input.tags.unwrap_or_default();
    common::check_tags(&tags)?;
    if tx
        .get(scope(ctx), kind::USER, &key(&input.user_name))?
        .is_some()
    {
        return Err(common::exists(format!(
            "User with name {} already exists.",
            input.user_name
        ))
        .into());
    }
    let user = s::User {
        arn: common::arn(ctx, "user", &path, &input.user_name),
        create_date: ctx.now,
        password_last_used: None,
        path,
        permissions_boundary: policies::boundary(tx, ctx, input.permissions_boundary)?,
        tags: (!tags.is_empty()).then_some(tags),
        user_id: common::new_id("AIDA"),
        user_name: input.user_name,
    };
    let stored = StoredUser {
        user: user.clone(),
        policies: Default::default(),
        groups: Vec::new(),
    };
    tx.insert(scope(ctx), kind::USER, &key(&user.user_name), &stored)?;
    Ok(user)
}

pub fn get(tx: &Tx<'_>, ctx: &RequestContext, name: Option<&str>) -> Result<s::User, Failure> {
    if name.is_none() && ctx.principal_arn == crate::accounts::root_arn(&ctx.account_id) {
        // The root user, as GetUser describes it to its own keys.
        return Ok(s::User {
            arn: ctx.principal_arn.clone(),
            create_date: ctx.now,
            password_last_used: None,
            path: String::new(),
            permissions_boundary: None,
            tags: None,
            user_id: ctx.account_id.clone(),
            user_name: String::new(),
        });
    }
    let name = target_user(ctx, name)?;
    Ok(entities::load::<StoredUser>(tx, ctx, name)?.0.user)
}

pub fn list(
    tx: &Tx<'_>,
    ctx: &RequestContext,
    input: s::ListUsersRequest,
) -> Result<s::ListUsersResponse, Failure> {
    let marker = Marker::parse(input.marker.as_deref(), input.max_items)?;
    let prefix = input.path_prefix.unwrap_or_else(|| "/".into());
    let users: Vec<s::User> = entities::all::<StoredUser>(tx, ctx)?
        .into_iter()
        .map(|u| s::User {
            tags: None,
            ..u.user
        })
        .filter(|u| u.path.starts_with(&prefix))
        .collect();
    let (users, truncated, next) = marker.page(users);
    Ok(s::ListUsersResponse {
        is_truncated: Some(truncated),
        marker: next,
        users,
    })
}

pub fn update(
    tx: &mut Tx<'_>,
    ctx: &RequestContext,
    input: s::UpdateUserRequest,
) -> Result<(), Failure> {
    let (mut u, v) = entities::load::<StoredUser>(tx, ctx, &input.user_name)?;
    let old_arn = u.user.arn.clone();
    if let Some(p) = &input.new_path {
        u.user.path = common::check_path("newPath", Some(p))?;
    }
    let renamed = match &input.new_user_name {
        Some(n) if *n != u.user.user_name => {
            common::check_name("newUserName", n, 64)?;
            if key(n) != key(&u.user.user_name)
                && tx.get(scope(ctx), kind::USER, &key(n))?.is_some()
            {
                return Err(common::exists(format!("User with name {n} already exists.")).into());
            }
            Some(n.clone())
        }
        _ => None,
    };
    let old_key = key(&u.user.user_name);
    if let Some(n) = renamed {
        u.user.user_name = n;
    }
    u.user.arn = common::arn(ctx, "user", &u.user.path, &u.user.user_name);
    let new_key = key(&u.user.user_name);
    if new_key == old_key {
        tx.put(scope(ctx), kind::USER, &new_key, Some(v), &u)?;
    } else {
        tx.delete(scope(ctx), kind::USER, &old_key)?;
        tx.insert(scope(ctx), kind::USER, &new_key, &u)?;
        for g in &u.groups {
            if let Some((mut group, gv)) = tx.get_json::<StoredGroup>(scope(ctx), kind::GROUP, g)? {
                for m in &mut group.users {
                    if *m == old_key {
                        m.clone_from(&new_key);
                    }
                }
                tx.put(scope(ctx), kind::GROUP, g, Some(gv), &group)?;
            }
        }
    }
    if u.user.arn != old_arn {
        tx.move_access_keys(&ctx.account_id, &old_arn, &u.user.arn)?;
    }
    Ok(())
}

pub fn delete(tx: &mut Tx<'_>, ctx: &RequestContext, name: &str) -> Result<(), Failure> {
    let (u, _) = entities::load::<StoredUser>(tx, ctx, name)?;
    if !tx.access_keys_of(&ctx.account_id, &u.user.arn)?.is_empty() {
        return Err(
            common::conflict("Cannot delete entity, must delete access keys first.").into(),
        );
    }
    if !u.policies.inline.is_empty() {
        return Err(common::conflict("Cannot delete entity, must delete policies first.").into());
    }
    if !u.policies.attached.is_empty() {
        return Err(
            common::conflict("Cannot delete entity, must detach all policies first.").into(),
        );
    }
    if !u.groups.is_empty() {
        return Err(
            common::conflict("Cannot delete entity, must remove users from group first.").into(),
        );
    }
    tx.delete(scope(ctx), kind::USER, &key(name))?;
    Ok(())
}

// ----- access keys -----

fn key_metadata(k: &AccessKey, user_name: &str) -> s::AccessKeyMetadata {
    s::AccessKeyMetadata {
        access_key_id: Some(k.access_key_id.clone()),
        create_date: Some(berth_wire::Timestamp(k.created_at_ms)),
        status: s::statusType::from_wire(&k.status),
        user_name: Some(user_name.to_string()),
    }
}

/// The principal whose keys a call manages: a named user, else the caller (root included).
fn key_owner(
    tx: &Tx<'_>,
    ctx: &RequestContext,
    user_name: Option<&str>,
) -> Result<(String, String), Failure> {
    match user_name.or_else(|| user_name_of(&ctx.principal_arn)) {
        Some(n) => {
            let (u, _) = entities::load::<StoredUser>(tx, ctx, n)?;
            Ok((u.user.arn, u.user.user_name))
        }
        None => Ok((ctx.principal_arn.clone(), ctx.account_id.clone())),
    }
}

pub fn create_access_key(
    tx: &mut Tx<'_>,
    ctx: &RequestContext,
    user_name: Option<&str>,
) -> Result<s::AccessKey, Failure> {
    let (principal, name) = key_owner(tx, ctx, user_name)?;
    if tx.access_keys_of(&ctx.account_id, &principal)?.len() >= 2 {
        return Err(common::limit("Cannot exceed quota for AccessKeysPerUser: 2").into());
    }
    let mut rng = rand::rng();
    let key = AccessKey {
        access_key_id: crate::accounts::new_access_key_id(&mut rng),
        secret_access_key: crate::accounts::new_secret(&mut rng),
        account: ctx.account_id.clone(),
        principal_arn: principal,
        status: "Active".into(),
        created_at_ms: ctx.now.millis(),
    };
    tx.insert_access_key(&key)?;
    Ok(s::AccessKey {
        access_key_id: key.access_key_id,
        create_date: Some(ctx.now),
        secret_access_key: key.secret_access_key,
        status: s::statusType::Active,
        user_name: name,
    })
}

pub fn list_access_keys(
    tx: &Tx<'_>,
    ctx: &RequestContext,
    input: s::ListAccessKeysRequest,
) -> Result<s::ListAccessKeysResponse, Failure> {
    let marker = Marker::parse(input.marker.as_deref(), input.max_items)?;
    let (principal, name) = key_owner(tx, ctx, input.user_name.as_deref())?;
    let keys: Vec<s::AccessKeyMetadata> = tx
        .access_keys_of(&ctx.account_id, &principal)?
        .iter()
        .map(|k| key_metadata(k, &name))
        .collect();
    let (keys, truncated, next) = marker.page(keys);
    Ok(s::ListAccessKeysResponse {
        access_key_metadata: keys,
        is_truncated: Some(truncated),
        marker: next,
    })
}

/// The key `id` if it belongs to the principal the call names.
fn owned_key(
    tx: &Tx<'_>,
    ctx: &RequestContext,
    user_name: Option<&str>,
    id: &str,
) -> Result<AccessKey, Failure> {
    let (principal, name) = key_owner(tx, ctx, user_name)?;
    tx.access_key(id)?
        .filter(|k| k.account == ctx.account_id && k.principal_arn == principal)
        .ok_or_else(|| {
            common::no_such(format!(
                "The Access Key with id {id} cannot be found for user {name}."
            ))
            .into()
        })
}

pub fn update_access_key(
    tx: &mut Tx<'_>,
    ctx: &RequestContext,
    input: s::UpdateAccessKeyRequest,
) -> Result<(), Failure> {
    let k = owned_key(tx, ctx, input.user_name.as_deref(), &input.access_key_id)?;
    tx.set_access_key_status(&k.access_key_id, input.status.as_str())?;
    Ok(())
}

pub fn delete_access_key(
    tx: &mut Tx<'_>,
    ctx: &RequestContext,
    input: s::DeleteAccessKeyRequest,
) -> Result<(), Failure> {
    let k = owned_key(tx, ctx, input.user_name.as_deref(), &input.access_key_id)?;
    tx.delete_access_key(&k.access_key_id)?;
    Ok(())
}

pub fn access_key_last_used(
    tx: &Tx<'_>,
    ctx: &RequestContext,
    usage: &super::key_usage::KeyUsage,
    id: &str,
) -> Result<s::GetAccessKeyLastUsedResponse, Failure> {
    let k = tx
        .access_key(id)?
        .filter(|k| k.account == ctx.account_id)
        .ok_or_else(|| common::no_such(format!("The Access Key with id {id} cannot be found")))?;
    let last = usage.last_used(tx, id, &k.account)?;
    Ok(s::GetAccessKeyLastUsedResponse {
        // A key never used: IAM's answer is N/A for the service and region, and no date.
        access_key_last_used: Some(match last {
            Some(u) => s::AccessKeyLastUsed {
                last_used_date: Some(berth_wire::Timestamp(u.at_ms)),
                region: u.region,
                service_name: u.service,
            },
            None => s::AccessKeyLastUsed {
                last_used_date: None,
                region: "N/A".into(),
                service_name: "N/A".into(),
            },
        }),
        user_name: Some(
            user_name_of(&k.principal_arn)
                .unwrap_or(&ctx.account_id)
                .to_string(),
        ),
    })
}
