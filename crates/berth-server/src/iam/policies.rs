//! Managed policies: customer managed ones (with up to five versions) and the AWS managed
//! ones of [`super::managed`].

use berth_store::Tx;
use berth_wire::iam::shapes as s;
use berth_wire::{RequestContext, Timestamp};
use serde::{Deserialize, Serialize};

use super::common::{self, key, scope};
use super::entities::kind;
use super::managed;
use crate::failure::Failure;

/// A customer managed policy: the wire shape and its versions (documents as given).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredPolicy {
    pub policy: s::Policy,
    pub versions: Vec<s::PolicyVersion>,
    /// The number the next version gets (`v<n>`; IAM never reuses one).
    pub next_version: u32,
}

/// How many entities each AWS managed policy is attached to in this account.
const AWS_ATTACHMENTS: &str = "iam/aws-policy-attachments";

/// The name at the end of a policy ARN.
pub fn name_of_arn(arn: &str) -> &str {
    arn.rsplit('/').next().unwrap_or(arn)
}

/// The path of a policy ARN (`/` or `/service-role/` …).
pub fn path_of_arn(arn: &str) -> String {
    let resource = arn.splitn(6, ':').nth(5).unwrap_or("");
    let rest = resource.strip_prefix("policy").unwrap_or(resource);
    match rest.rfind('/') {
        Some(i) => rest[..=i].to_string(),
        None => "/".into(),
    }
}

fn not_attachable(arn: &str) -> Failure {
    common::no_such(format!("Policy {arn} does not exist or is not attachable.")).into()
}

fn aws_policy_shape(p: &managed::AwsPolicy, attachments: i32) -> s::Policy {
    s::Policy {
        arn: Some(managed::arn(p)),
        attachment_count: Some(attachments),
        create_date: Some(Timestamp(managed::CREATED_MS)),
        default_version_id: Some(p.version.into()),
        description: Some(p.description.into()),
        is_attachable: Some(true),
        path: Some(p.path.into()),
        permissions_boundary_usage_count: Some(0),
        policy_id: Some(format!("ANPA{:0>17}", p.name.len())),
        policy_name: Some(p.name.into()),
        tags: None,
        update_date: Some(Timestamp(managed::CREATED_MS)),
    }
}

fn aws_attachments(tx: &Tx<'_>, ctx: &RequestContext, name: &str) -> Result<i32, Failure> {
    Ok(tx
        .get_json::<i32>(scope(ctx), AWS_ATTACHMENTS, name)?
        .map(|(n, _)| n)
        .unwrap_or(0))
}

/// A customer managed policy of this account by ARN, with its record version.
pub fn load(
    tx: &Tx<'_>,
    ctx: &RequestContext,
    arn: &str,
) -> Result<Option<(StoredPolicy, i64)>, Failure> {
    let Some((p, v)) =
        tx.get_json::<StoredPolicy>(scope(ctx), kind::POLICY, &key(name_of_arn(arn)))?
    else {
        return Ok(None);
    };
    Ok((p.policy.arn.as_deref() == Some(arn)).then_some((p, v)))
}

/// Refuses an ARN that names no policy one may attach.
pub fn must_be_attachable(tx: &Tx<'_>, ctx: &RequestContext, arn: &str) -> Result<(), Failure> {
    if managed::by_arn(arn).is_some() || load(tx, ctx, arn)?.is_some() {
        Ok(())
    } else {
        Err(not_attachable(arn))
    }
}

/// A permissions boundary as users and roles carry it, once its policy is known to exist.
pub fn boundary(
    tx: &Tx<'_>,
    ctx: &RequestContext,
    arn: Option<String>,
) -> Result<Option<s::AttachedPermissionsBoundary>, Failure> {
    let Some(arn) = arn else {
        return Ok(None);
    };
    must_be_attachable(tx, ctx, &arn)?;
    Ok(Some(s::AttachedPermissionsBoundary {
        permissions_boundary_arn: Some(arn),
        permissions_boundary_type: Some(
            s::PermissionsBoundaryAttachmentType::PermissionsBoundaryPolicy,
        ),
    }))
}

/// Keeps a policy's AttachmentCount.
pub fn count_attachment(
    tx: &mut Tx<'_>,
    ctx: &RequestContext,
    arn: &str,
    delta: i32,
) -> Result<(), Failure> {
    if let Some(p) = managed::by_arn(arn) {
        let n = (aws_attachments(tx, ctx, p.name)? + delta).max(0);
        tx.put(scope(ctx), AWS_ATTACHMENTS, p.name, None, &n)?;
        return Ok(());
    }
    if let Some((mut p, v)) = load(tx, ctx, arn)? {
        let n = p.policy.attachment_count.unwrap_or(0) + delta;
        p.policy.attachment_count = Some(n.max(0));
        tx.put(
            scope(ctx),
            kind::POLICY,
            &key(name_of_arn(arn)),
            Some(v),
            &p,
        )?;
    }
    Ok(())
}

/// The default version's document of a managed policy (for evaluation).
pub fn default_document(
    tx: &Tx<'_>,
    ctx: &RequestContext,
    arn: &str,
) -> Result<Option<String>, Failure> {
    if let Some(p) = managed::by_arn(arn) {
        return Ok(Some(p.document.to_string()));
    }
    Ok(load(tx, ctx, arn)?.and_then(|(p, _)| {
        p.versions
            .into_iter()
            .find(|v| v.is_default_version == Some(true))
            .and_then(|v| v.document)
    }))
}

pub fn create(
    tx: &mut Tx<'_>,
    ctx: &RequestContext,
    input: s::CreatePolicyRequest,
) -> Result<s::Policy, Failure> {
    common::check_name("policyName", &input.policy_name, 128)?;
    let path = common::check_path("path", input.path.as_deref())?;
    common::check_document(
        &input.policy_document,
        berth_iam::policy::PolicyKind::Identity,
    )?;
    let tags = input.tags.unwrap_or_default();
    common::check_tags(&tags)?;
    if let Some(d) = &input.description
        && d.chars().count() > 1000
    {
        return Err(common::validation(
            "1 validation error detected: Value at 'description' failed to satisfy constraint: Member must have length less than or equal to 1000",
        )
        .into());
    }
    let id = key(&input.policy_name);
    if tx.get(scope(ctx), kind::POLICY, &id)?.is_some() {
        return Err(common::exists(format!(
            "A policy called {} already exists. Duplicate names are not allowed.",
            input.policy_name
        ))
        .into());
    }
    let policy = s::Policy {
        arn: Some(common::arn(ctx, "policy", &path, &input.policy_name)),
        attachment_count: Some(0),
        create_date: Some(ctx.now),
        default_version_id: Some("v1".into()),
        description: input.description,
        is_attachable: Some(true),
        path: Some(path),
        permissions_boundary_usage_count: Some(0),
        policy_id: Some(common::new_id("ANPA")),
        policy_name: Some(input.policy_name),
        tags: (!tags.is_empty()).then_some(tags),
        update_date: Some(ctx.now),
    };
    let stored = StoredPolicy {
        policy: policy.clone(),
        versions: vec![s::PolicyVersion {
            create_date: Some(ctx.now),
            document: Some(input.policy_document),
            is_default_version: Some(true),
            version_id: Some("v1".into()),
        }],
        next_version: 2,
    };
    tx.insert(scope(ctx), kind::POLICY, &id, &stored)?;
    Ok(policy)
}

/// GetPolicy (AWS or customer managed).
pub fn get(tx: &Tx<'_>, ctx: &RequestContext, arn: &str) -> Result<s::Policy, Failure> {
    if let Some(p) = managed::by_arn(arn) {
        return Ok(aws_policy_shape(p, aws_attachments(tx, ctx, p.name)?));
    }
    load(tx, ctx, arn)?
        .map(|(p, _)| p.policy)
        .ok_or_else(|| common::no_such(format!("Policy {arn} was not found.")).into())
}

/// Every policy ListPolicies may show, AWS managed first.
pub fn all(
    tx: &Tx<'_>,
    ctx: &RequestContext,
    scope_filter: Option<s::policyScopeType>,
) -> Result<Vec<s::Policy>, Failure> {
    let mut out = Vec::new();
    if scope_filter != Some(s::policyScopeType::Local) {
        for p in managed::POLICIES {
            out.push(aws_policy_shape(p, aws_attachments(tx, ctx, p.name)?));
        }
    }
    if scope_filter != Some(s::policyScopeType::Aws) {
        for (_, p) in tx.list_json::<StoredPolicy>(scope(ctx), kind::POLICY, "")? {
            let mut shape = p.policy;
            // ListPolicies omits tags and descriptions, as IAM does.
            shape.tags = None;
            shape.description = None;
            out.push(shape);
        }
    }
    Ok(out)
}

pub fn delete(tx: &mut Tx<'_>, ctx: &RequestContext, arn: &str) -> Result<(), Failure> {
    if managed::by_arn(arn).is_some() {
        return Err(common::invalid_input(format!(
            "ARN {arn} is not valid: AWS managed policies cannot be deleted."
        ))
        .into());
    }
    let (p, _) = load(tx, ctx, arn)?
        .ok_or_else(|| common::no_such(format!("Policy {arn} was not found.")))?;
    if p.policy.attachment_count.unwrap_or(0) > 0 {
        return Err(common::conflict("Cannot delete a policy attached to entities.").into());
    }
    if p.versions.len() > 1 {
        return Err(common::conflict(
            "This policy has more than one version. Before you delete a policy, you must delete the policy's versions. The default version is deleted with the policy.",
        )
        .into());
    }
    tx.delete(scope(ctx), kind::POLICY, &key(name_of_arn(arn)))?;
    Ok(())
}

fn load_customer(
    tx: &Tx<'_>,
    ctx: &RequestContext,
    arn: &str,
) -> Result<(StoredPolicy, i64), Failure> {
    load(tx, ctx, arn)?
        .ok_or_else(|| common::no_such(format!("Policy {arn} was not found.")).into())
}

fn store(tx: &mut Tx<'_>, ctx: &RequestContext, p: &StoredPolicy, v: i64) -> Result<(), Failure> {
    let name = p.policy.policy_name.clone().unwrap_or_default();
    tx.put(scope(ctx), kind::POLICY, &key(&name), Some(v), p)?;
    Ok(())
}

pub fn create_version(
    tx: &mut Tx<'_>,
    ctx: &RequestContext,
    input: s::CreatePolicyVersionRequest,
) -> Result<s::PolicyVersion, Failure> {
    common::check_document(
        &input.policy_document,
        berth_iam::policy::PolicyKind::Identity,
    )?;
    let (mut p, v) = load_customer(tx, ctx, &input.policy_arn)?;
    if p.versions.len() >= 5 {
        return Err(common::limit(
            "A managed policy can have up to 5 versions. Before you create a new version, you must delete an existing version.",
        )
        .into());
    }
    let id = format!("v{}", p.next_version);
    p.next_version += 1;
    let default = input.set_as_default.unwrap_or(false);
    if default {
        for x in &mut p.versions {
            x.is_default_version = Some(false);
        }
        p.policy.default_version_id = Some(id.clone());
    }
    let version = s::PolicyVersion {
        create_date: Some(ctx.now),
        document: Some(input.policy_document),
        is_default_version: Some(default),
        version_id: Some(id),
    };
    p.versions.push(version.clone());
    p.policy.update_date = Some(ctx.now);
    store(tx, ctx, &p, v)?;
    Ok(s::PolicyVersion {
        document: None,
        ..version
    })
}

pub fn get_version(
    tx: &Tx<'_>,
    ctx: &RequestContext,
    arn: &str,
    version_id: &str,
) -> Result<s::PolicyVersion, Failure> {
    let missing = || {
        Failure::from(common::no_such(format!(
            "Policy {arn} version {version_id} does not exist or is not attachable."
        )))
    };
    if let Some(p) = managed::by_arn(arn) {
        if p.version != version_id {
            return Err(missing());
        }
        return Ok(s::PolicyVersion {
            create_date: Some(Timestamp(managed::CREATED_MS)),
            document: Some(common::wire_document(p.document)),
            is_default_version: Some(true),
            version_id: Some(p.version.into()),
        });
    }
    let (p, _) = load_customer(tx, ctx, arn)?;
    let mut version = p
        .versions
        .into_iter()
        .find(|x| x.version_id.as_deref() == Some(version_id))
        .ok_or_else(missing)?;
    version.document = version.document.map(|d| common::wire_document(&d));
    Ok(version)
}

pub fn list_versions(
    tx: &Tx<'_>,
    ctx: &RequestContext,
    arn: &str,
) -> Result<Vec<s::PolicyVersion>, Failure> {
    if let Some(p) = managed::by_arn(arn) {
        return Ok(vec![s::PolicyVersion {
            create_date: Some(Timestamp(managed::CREATED_MS)),
            document: None,
            is_default_version: Some(true),
            version_id: Some(p.version.into()),
        }]);
    }
    let (p, _) = load_customer(tx, ctx, arn)?;
    // Newest first, without documents, as IAM lists them.
    Ok(p.versions
        .into_iter()
        .rev()
        .map(|x| s::PolicyVersion {
            document: None,
            ..x
        })
        .collect())
}

pub fn delete_version(
    tx: &mut Tx<'_>,
    ctx: &RequestContext,
    arn: &str,
    version_id: &str,
) -> Result<(), Failure> {
    let (mut p, v) = load_customer(tx, ctx, arn)?;
    let Some(i) = p
        .versions
        .iter()
        .position(|x| x.version_id.as_deref() == Some(version_id))
    else {
        return Err(common::no_such(format!(
            "Policy {arn} version {version_id} does not exist or is not deletable."
        ))
        .into());
    };
    if p.versions[i].is_default_version == Some(true) {
        return Err(common::conflict("Cannot delete the default version of a policy.").into());
    }
    p.versions.remove(i);
    store(tx, ctx, &p, v)
}

pub fn set_default_version(
    tx: &mut Tx<'_>,
    ctx: &RequestContext,
    arn: &str,
    version_id: &str,
) -> Result<(), Failure> {
    let (mut p, v) = load_customer(tx, ctx, arn)?;
    if !p
        .versions
        .iter()
        .any(|x| x.version_id.as_deref() == Some(version_id))
    {
        return Err(common::no_such(format!(
            "Policy {arn} version {version_id} does not exist or is not attachable."
        ))
        .into());
    }
    for x in &mut p.versions {
        x.is_default_version = Some(x.version_id.as_deref() == Some(version_id));
    }
    p.policy.default_version_id = Some(version_id.to_string());
    p.policy.update_date = Some(ctx.now);
    store(tx, ctx, &p, v)
}

/// Tags of a customer managed policy: read, merged into, or removed from.
pub fn with_tags<T>(
    tx: &mut Tx<'_>,
    ctx: &RequestContext,
    arn: &str,
    f: impl FnOnce(&mut Vec<s::Tag>) -> Result<T, Failure>,
) -> Result<T, Failure> {
    let (mut p, v) = load_customer(tx, ctx, arn)?;
    let mut tags = p.policy.tags.take().unwrap_or_default();
    let out = f(&mut tags)?;
    p.policy.tags = (!tags.is_empty()).then_some(tags);
    store(tx, ctx, &p, v)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arn_parts() {
        let arn = "arn:aws:iam::aws:policy/service-role/AmazonECSTaskExecutionRolePolicy";
        assert_eq!(name_of_arn(arn), "AmazonECSTaskExecutionRolePolicy");
        assert_eq!(path_of_arn(arn), "/service-role/");
        assert_eq!(path_of_arn("arn:aws:iam::123456789012:policy/p"), "/");
    }
}
