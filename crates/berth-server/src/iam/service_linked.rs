//! Service-linked roles: the roles AWS services create in an account to act in it
//! (`AWSServiceRoleForECS`). They live under `/aws-service-role/<service>/`, trust only their
//! service, carry the service's AWS managed policy, and only the service may change them:
//! every other write answers `UnmodifiableEntity`. ECS creates its role with the account's
//! first cluster, as on AWS; `DeleteServiceLinkedRole` refuses (as a FAILED deletion task)
//! while clusters still use it.

use berth_store::Tx;
use berth_wire::RequestContext;
use berth_wire::iam::shapes as s;
use serde::{Deserialize, Serialize};

use super::common::{self, key, scope};
use super::entities::{self, StoredRole, kind};
use super::roles;
use crate::failure::Failure;

/// Record kind of deletion tasks, by task id.
pub const DELETION_KIND: &str = "iam/service-linked-role-deletion";

/// A service that has a service-linked role here.
struct LinkedService {
    service: &'static str,
    role_name: &'static str,
    policy_arn: &'static str,
    description: &'static str,
    custom_suffix: bool,
}

const SERVICES: &[LinkedService] = &[
    LinkedService {
        service: "ecs.amazonaws.com",
        role_name: "AWSServiceRoleForECS",
        policy_arn: "arn:aws:iam::aws:policy/aws-service-role/AmazonECSServiceRolePolicy",
        description: "Role to enable Amazon ECS to manage your cluster.",
        custom_suffix: false,
    },
    LinkedService {
        service: "ecs.application-autoscaling.amazonaws.com",
        role_name: "AWSServiceRoleForApplicationAutoScaling_ECSService",
        policy_arn: "arn:aws:iam::aws:policy/aws-service-role/AWSApplicationAutoscalingECSServicePolicy",
        description: "",
        custom_suffix: false,
    },
];

/// Whether a role is service-linked (only its service may change it).
pub fn is_service_linked(role: &s::Role) -> bool {
    role.path.starts_with("/aws-service-role/")
}

/// IAM's refusal of a write to a service-linked role.
pub fn unmodifiable(role_name: &str) -> Failure {
    berth_wire::iam::ErrorCode::UnmodifiableEntity
        .with(format!(
            "Cannot perform the operation on the protected role '{role_name}' - this role is only modifiable by AWS"
        ))
        .into()
}

fn service(name: &str) -> Result<&'static LinkedService, Failure> {
    SERVICES
        .iter()
        .find(|s| s.service == name)
        .ok_or_else(|| common::invalid_input("Invalid ServiceName provided").into())
}

/// CreateServiceLinkedRole.
pub fn create(
    tx: &mut Tx<'_>,
    ctx: &RequestContext,
    input: s::CreateServiceLinkedRoleRequest,
) -> Result<s::Role, Failure> {
    let svc = service(&input.aws_service_name)?;
    if input.custom_suffix.is_some() && !svc.custom_suffix {
        return Err(common::invalid_input(format!(
            "Custom suffix is not allowed for {}",
            svc.service
        ))
        .into());
    }
    if tx
        .get(scope(ctx), kind::ROLE, &key(svc.role_name))?
        .is_some()
    {
        return Err(common::invalid_input(format!(
            "Service role name {} has been taken in this account, please try a different suffix.",
            svc.role_name
        ))
        .into());
    }
    create_role(tx, ctx, svc, input.description)
}

fn create_role(
    tx: &mut Tx<'_>,
    ctx: &RequestContext,
    svc: &LinkedService,
    description: Option<String>,
) -> Result<s::Role, Failure> {
    let trust = format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Principal":{{"Service":"{}"}},"Action":"sts:AssumeRole"}}]}}"#,
        svc.service
    );
    let mut role = roles::create(
        tx,
        ctx,
        s::CreateRoleRequest {
            role_name: svc.role_name.into(),
            path: Some(format!("/aws-service-role/{}/", svc.service)),
            assume_role_policy_document: trust,
            description: description
                .or_else(|| (!svc.description.is_empty()).then(|| svc.description.into())),
            ..Default::default()
        },
    )?;
    entities::attach::<StoredRole>(tx, ctx, svc.role_name, svc.policy_arn)?;
    role.role_last_used = None;
    Ok(role)
}

/// Creates ECS's service-linked role if the account has none (CreateCluster does this on
/// AWS).
pub fn ensure_for_ecs(tx: &mut Tx<'_>, ctx: &RequestContext) -> Result<(), Failure> {
    let svc = &SERVICES[0];
    if tx
        .get(scope(ctx), kind::ROLE, &key(svc.role_name))?
        .is_none()
    {
        create_role(tx, ctx, svc, None)?;
    }
    Ok(())
}

/// A deletion task as GetServiceLinkedRoleDeletionStatus reports it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct DeletionTask {
    status: s::DeletionTaskStatusType,
    reason: Option<s::DeletionTaskFailureReasonType>,
}

/// The ECS clusters of the account, by region, that still use its service-linked role.
fn clusters_by_region(tx: &Tx<'_>, account: &str) -> Result<Vec<s::RoleUsageType>, Failure> {
    let mut out: Vec<s::RoleUsageType> = Vec::new();
    let mut after: Option<(String, String, String)> = None;
    loop {
        let page = tx.list_everywhere(
            crate::ecs::common::kind::CLUSTER,
            after
                .as_ref()
                .map(|(a, r, i)| (a.as_str(), r.as_str(), i.as_str())),
            500,
        )?;
        let Some(last) = page.last() else { break };
        after = Some((last.0.clone(), last.1.clone(), last.2.id.clone()));
        for (acct, region, rec) in page {
            if acct != account {
                continue;
            }
            let c: berth_wire::ecs::shapes::Cluster =
                rec.decode(crate::ecs::common::kind::CLUSTER)?;
            if c.status.as_deref() != Some("ACTIVE") {
                continue;
            }
            let arn = c.cluster_arn.unwrap_or_default();
            match out
                .iter_mut()
                .find(|u| u.region.as_deref() == Some(&region))
            {
                Some(u) => u.resources.get_or_insert_with(Vec::new).push(arn),
                None => out.push(s::RoleUsageType {
                    region: Some(region),
                    resources: Some(vec![arn]),
                }),
            }
        }
    }
    Ok(out)
}

/// DeleteServiceLinkedRole: deletes the role unless its service still uses it; either way
/// a deletion task records the outcome.
pub fn delete(tx: &mut Tx<'_>, ctx: &RequestContext, role_name: &str) -> Result<String, Failure> {
    let (r, _) = entities::load::<StoredRole>(tx, ctx, role_name)?;
    if !is_service_linked(&r.role) {
        return Err(common::invalid_input(format!(
            "Role {} is not a service-linked role.",
            r.role.role_name
        ))
        .into());
    }
    let service = r
        .role
        .path
        .trim_start_matches("/aws-service-role/")
        .trim_end_matches('/')
        .to_string();
    let task_id = format!(
        "task/aws-service-role/{service}/{}/{}",
        r.role.role_name,
        uuid::Uuid::new_v4()
    );
    let usage = if service == "ecs.amazonaws.com" {
        clusters_by_region(tx, &ctx.account_id)?
    } else {
        Vec::new()
    };
    let task = if usage.is_empty() {
        for arn in r.policies.attached.clone() {
            entities::detach::<StoredRole>(tx, ctx, &r.role.role_name, &arn)?;
        }
        let (mut r, v) = entities::load::<StoredRole>(tx, ctx, role_name)?;
        r.policies.inline.clear();
        entities::save(tx, ctx, &r, v)?;
        roles::delete(tx, ctx, role_name)?;
        DeletionTask {
            status: s::DeletionTaskStatusType::Succeeded,
            reason: None,
        }
    } else {
        DeletionTask {
            status: s::DeletionTaskStatusType::Failed,
            reason: Some(s::DeletionTaskFailureReasonType {
                reason: Some(format!(
                    "Service-linked role {} is in use by {service}: delete the resources that use it first.",
                    r.role.role_name
                )),
                role_usage_list: Some(usage),
            }),
        }
    };
    tx.put(scope(ctx), DELETION_KIND, &task_id, None, &task)?;
    Ok(task_id)
}

/// GetServiceLinkedRoleDeletionStatus.
pub fn deletion_status(
    tx: &Tx<'_>,
    ctx: &RequestContext,
    task_id: &str,
) -> Result<s::GetServiceLinkedRoleDeletionStatusResponse, Failure> {
    let (task, _) = tx
        .get_json::<DeletionTask>(scope(ctx), DELETION_KIND, task_id)?
        .ok_or_else(|| common::invalid_input(format!("Invalid deletion task id {task_id}")))?;
    Ok(s::GetServiceLinkedRoleDeletionStatusResponse {
        reason: task.reason,
        status: task.status,
    })
}

/// Refuses writes to a service-linked role by anyone but its service (`UnmodifiableEntity`).
/// A missing role passes: the write itself reports NoSuchEntity.
pub fn must_be_modifiable(
    tx: &Tx<'_>,
    ctx: &RequestContext,
    role_name: &str,
) -> Result<(), Failure> {
    match tx.get_json::<StoredRole>(scope(ctx), kind::ROLE, &key(role_name))? {
        Some((r, _)) if is_service_linked(&r.role) => Err(unmodifiable(&r.role.role_name)),
        _ => Ok(()),
    }
}
