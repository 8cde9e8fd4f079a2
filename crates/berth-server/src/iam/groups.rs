//! IAM groups and their members.

use berth_store::Tx;
use berth_wire::RequestContext;
use berth_wire::iam::shapes as s;

use super::common::{self, Marker, key, scope};
use super::entities::{self, StoredGroup, StoredUser, kind};
use crate::failure::Failure;

pub fn create(
    tx: &mut Tx<'_>,
    ctx: &RequestContext,
    input: s::CreateGroupRequest,
) -> Result<s::Group, Failure> {
    common::check_name("groupName", &input.group_name, 128)?;
    let path = common::check_path("path", input.path.as_deref())?;
    if tx
        .get(scope(ctx), kind::GROUP, &key(&input.group_name))?
        .is_some()
    {
        return Err(common::exists(format!(
            "Group with name {} already exists.",
            input.group_name
        ))
        .into());
    }
    let group = s::Group {
        arn: common::arn(ctx, "group", &path, &input.group_name),
        create_date: ctx.now,
        group_id: common::new_id("AGPA"),
        group_name: input.group_name,
        path,
    };
    let stored = StoredGroup {
        group: group.clone(),
        policies: Default::default(),
        users: Vec::new(),
    };
    tx.insert(scope(ctx), kind::GROUP, &key(&group.group_name), &stored)?;
    Ok(group)
}

pub fn get(
    tx: &Tx<'_>,
    ctx: &RequestContext,
    input: s::GetGroupRequest,
) -> Result<s::GetGroupResponse, Failure> {
    let marker = Marker::parse(input.marker.as_deref(), input.max_items)?;
    let (g, _) = entities::load::<StoredGroup>(tx, ctx, &input.group_name)?;
    let mut users = Vec::new();
    for u in &g.users {
        if let Some((user, _)) = tx.get_json::<StoredUser>(scope(ctx), kind::USER, u)? {
            users.push(s::User {
                tags: None,
                ..user.user
            });
        }
    }
    let (users, truncated, next) = marker.page(users);
    Ok(s::GetGroupResponse {
        group: g.group,
        is_truncated: Some(truncated),
        marker: next,
        users,
    })
}

pub fn list(
    tx: &Tx<'_>,
    ctx: &RequestContext,
    input: s::ListGroupsRequest,
) -> Result<s::ListGroupsResponse, Failure> {
    let marker = Marker::parse(input.marker.as_deref(), input.max_items)?;
    let prefix = input.path_prefix.unwrap_or_else(|| "/".into());
    let groups: Vec<s::Group> = entities::all::<StoredGroup>(tx, ctx)?
        .into_iter()
        .map(|g| g.group)
        .filter(|g| g.path.starts_with(&prefix))
        .collect();
    let (groups, truncated, next) = marker.page(groups);
    Ok(s::ListGroupsResponse {
        groups,
        is_truncated: Some(truncated),
        marker: next,
    })
}

pub fn delete(tx: &mut Tx<'_>, ctx: &RequestContext, name: &str) -> Result<(), Failure> {
    let (g, _) = entities::load::<StoredGroup>(tx, ctx, name)?;
    if !g.users.is_empty() {
        return Err(
            common::conflict("Cannot delete entity, must remove users from group first.").into(),
        );
    }
    if !g.policies.inline.is_empty() {
        return Err(common::conflict("Cannot delete entity, must delete policies first.").into());
    }
    if !g.policies.attached.is_empty() {
        return Err(
            common::conflict("Cannot delete entity, must detach all policies first.").into(),
        );
    }
    tx.delete(scope(ctx), kind::GROUP, &key(name))?;
    Ok(())
}

pub fn add_user(
    tx: &mut Tx<'_>,
    ctx: &RequestContext,
    group: &str,
    user: &str,
) -> Result<(), Failure> {
    let (mut g, gv) = entities::load::<StoredGroup>(tx, ctx, group)?;
    let (mut u, uv) = entities::load::<StoredUser>(tx, ctx, user)?;
    let (gk, uk) = (key(group), key(user));
    if !g.users.contains(&uk) {
        g.users.push(uk);
        entities::save(tx, ctx, &g, gv)?;
    }
    if !u.groups.contains(&gk) {
        if u.groups.len() >= 10 {
            return Err(common::limit("Cannot exceed quota for GroupsPerUser: 10").into());
        }
        u.groups.push(gk);
        entities::save(tx, ctx, &u, uv)?;
    }
    Ok(())
}

pub fn remove_user(
    tx: &mut Tx<'_>,
    ctx: &RequestContext,
    group: &str,
    user: &str,
) -> Result<(), Failure> {
    let (mut g, gv) = entities::load::<StoredGroup>(tx, ctx, group)?;
    let (mut u, uv) = entities::load::<StoredUser>(tx, ctx, user)?;
    let (gk, uk) = (key(group), key(user));
    if !g.users.contains(&uk) {
        return Err(common::no_such(format!("The user with name {user} cannot be found.")).into());
    }
    g.users.retain(|x| *x != uk);
    u.groups.retain(|x| *x != gk);
    entities::save(tx, ctx, &g, gv)?;
    entities::save(tx, ctx, &u, uv)
}

pub fn groups_for_user(
    tx: &Tx<'_>,
    ctx: &RequestContext,
    user: &str,
) -> Result<Vec<StoredGroup>, Failure> {
    let (u, _) = entities::load::<StoredUser>(tx, ctx, user)?;
    let mut out = Vec::new();
    for g in &u.groups {
        if let Some((group, _)) = tx.get_json::<StoredGroup>(scope(ctx), kind::GROUP, g)? {
            out.push(group);
        }
    }
    Ok(out)
}
