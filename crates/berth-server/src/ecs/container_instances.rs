//! Container instances: RegisterContainerInstance, DescribeContainerInstances,
//! ListContainerInstances, UpdateContainerInstancesState, DeregisterContainerInstance.
//!
//! These are the control-plane records an agent registers. A container instance is stored as
//! its wire shape (tags and attributes included) under `<cluster>/<id>`; the task machinery
//! (`super::tasks`) keeps its remaining resources and running/pending task counts, and
//! `agentConnected` is computed from the agent's last poll whenever an instance is shown.
//! A DRAINING instance keeps its tasks but takes no new ones (placement only uses ACTIVE
//! instances). A deregistered instance stays as INACTIVE: DescribeContainerInstances still
//! shows it, ListContainerInstances does not, and it cannot register again.

use berth_store::Tx;
use berth_wire::ecs::shapes as s;
use berth_wire::{AwsError, RequestContext};

use super::Ecs;
use super::common::{self, Page, aws, client, invalid, kind, scope};
use super::instance_usage::{self, InstanceUsage};
use super::tasks::{self, StoredTask, task_kind};
use crate::failure::Failure;

/// At most this many instances per UpdateContainerInstancesState call (as ECS).
const MAX_STATE_UPDATES: usize = 10;

/// The `stopCode` and `stoppedReason` of the tasks of an instance deregistered with `force`.
/// ECS's documentation only says such tasks are no longer accounted for; the user asked for
/// it, so the code is `UserInitiated`.
const FORCED_DEREGISTRATION_REASON: &str = "Container instance deregistration forced by user";

/// `arn:aws:ecs:<region>:<account>:container-instance/<cluster>/<id>`.
pub fn instance_arn(ctx: &RequestContext, cluster: &str, id: &str) -> String {
    common::arn(ctx, format!("container-instance/{cluster}/{id}"))
}

/// The store id (`<cluster>/<id>`) a container instance parameter (id or ARN, long or
/// short format) names within `cluster`; `None` if it names one of another cluster,
/// account or region, or is not an id at all.
pub fn store_id(ctx: &RequestContext, cluster: &str, ident: &str) -> Option<String> {
    common::cluster_scoped_id(ctx, cluster, ident, "container-instance")
}

/// Attributes ECS itself sets (`ecs.*`, `com.amazonaws.ecs.*`); the others are custom.
pub fn is_custom_attribute(name: &str) -> bool {
    !(name.starts_with("ecs.") || name.starts_with("com.amazonaws.ecs."))
}

/// The attributes ECS adds to a registering instance, from its instance identity document
/// (the EC2 metadata JSON) when there is one.
fn default_attributes(
    ctx: &RequestContext,
    identity: Option<&serde_json::Value>,
) -> Vec<s::Attribute> {
    let doc = |k: &str| {
        identity
            .and_then(|d| d.get(k))
            .and_then(|v| v.as_str())
            .map(String::from)
    };
    let arch = doc("architecture").unwrap_or_else(|| {
        match std::env::consts::ARCH {
            "aarch64" => "arm64",
            other => other,
        }
        .to_string()
    });
    let mut attrs = vec![
        ("ecs.os-type", Some("linux".to_string())),
        ("ecs.cpu-architecture", Some(arch)),
        (
            "ecs.availability-zone",
            Some(doc("availabilityZone").unwrap_or_else(|| format!("{}a", ctx.region))),
        ),
    ];
    if let Some(t) = doc("instanceType") {
        attrs.push(("ecs.instance-type", Some(t)));
    }
    if let Some(ami) = doc("imageId") {
        attrs.push(("ecs.ami-id", Some(ami)));
    }
    attrs
        .into_iter()
        .map(|(name, value)| s::Attribute {
            name: name.into(),
            value,
            ..Default::default()
        })
        .collect()
}

/// The capacity provider a registering instance joins: the `capacityProviderName` of its
/// instance identity document. (ECS knows it from the instance's Auto Scaling group; Berth
/// has no Auto Scaling groups, so `berth agent --capacity-provider NAME` states it there.)
/// It must name an ACTIVE provider of the account created with CreateCapacityProvider.
fn joined_provider(
    tx: &Tx<'_>,
    ctx: &RequestContext,
    identity: Option<&serde_json::Value>,
) -> Result<Option<String>, Failure> {
    let Some(name) = identity
        .and_then(|d| d.get("capacityProviderName"))
        .and_then(|v| v.as_str())
        .filter(|n| !n.is_empty())
    else {
        return Ok(None);
    };
    match tx.get_json::<s::CapacityProvider>(scope(ctx), kind::CAPACITY_PROVIDER, name)? {
        Some((cp, _)) if cp.status == Some(s::CapacityProviderStatus::Active) => {
            Ok(Some(name.to_string()))
        }
        _ => Err(invalid(format!(
            "The specified capacity provider '{name}' does not exist. Specify a valid capacity provider and try again."
        ))
        .into()),
    }
}

/// `base` with `given` merged in: a given attribute replaces the one of the same name.
pub fn merge_attributes(base: &mut Vec<s::Attribute>, given: &[s::Attribute]) {
    for a in given {
        let a = s::Attribute {
            name: a.name.clone(),
            value: a.value.clone(),
            ..Default::default()
        };
        match base.iter_mut().find(|b| b.name == a.name) {
            Some(b) => *b = a,
            None => base.push(a),
        }
    }
}

/// The health ECS reports for an instance whose agent has not reported yet.
fn initial_health(since: berth_wire::Timestamp) -> s::ContainerInstanceHealthStatus {
    s::ContainerInstanceHealthStatus {
        overall_status: Some(s::InstanceHealthCheckState::Initializing),
        details: Some(vec![s::InstanceHealthCheckResult {
            r#type: Some(s::InstanceHealthCheckType::ContainerRuntime),
            status: Some(s::InstanceHealthCheckState::Initializing),
            last_updated: Some(since),
            last_status_change: Some(since),
            status_reason: None,
        }]),
    }
}

/// An instance as shown: tags and health only when asked for.
fn present(
    ci: &s::ContainerInstance,
    include: &[s::ContainerInstanceField],
) -> s::ContainerInstance {
    let mut ci = ci.clone();
    if include.contains(&s::ContainerInstanceField::Tags) {
        ci.tags.get_or_insert_with(Vec::new);
    } else {
        ci.tags = None;
    }
    if include.contains(&s::ContainerInstanceField::ContainerInstanceHealth) {
        if ci.health_status.is_none() {
            ci.health_status = Some(initial_health(ci.registered_at.unwrap_or_default()));
        }
    } else {
        ci.health_status = None;
    }
    ci
}

/// An instance as shown, with `agentConnected` from its agent's last poll and its task
/// counts with the tasks started since its record was written.
fn shown(
    tx: &Tx<'_>,
    ctx: &RequestContext,
    id: &str,
    ci: &s::ContainerInstance,
    include: &[s::ContainerInstanceField],
) -> Result<s::ContainerInstance, Failure> {
    let mut ci = present(ci, include);
    tasks::with_usage(tx, scope(ctx), id, &mut ci)?;
    ci.agent_connected = Some(
        ci.status.as_deref() != Some("INACTIVE")
            && tasks::agent_connected(tx, scope(ctx), id, ctx.now)?,
    );
    Ok(ci)
}

fn validate_resources(resources: &[s::Resource]) -> Result<(), AwsError> {
    for r in resources {
        if r.name.as_deref().is_none_or(str::is_empty) {
            return Err(invalid("A resource must have a name."));
        }
        if r.integer_value.is_some_and(|v| v < 0)
            || r.long_value.is_some_and(|v| v < 0)
            || r.double_value.is_some_and(|v| v < 0.0)
        {
            return Err(invalid(format!(
                "The value of resource '{}' cannot be negative.",
                r.name.as_deref().unwrap_or("")
            )));
        }
    }
    Ok(())
}

pub fn register(
    ecs: &Ecs,
    ctx: &RequestContext,
    input: s::RegisterContainerInstanceRequest,
) -> Result<s::RegisterContainerInstanceResponse, AwsError> {
    let resources = input.total_resources.clone().unwrap_or_default();
    validate_resources(&resources)?;
    let given_attrs = input.attributes.clone().unwrap_or_default();
    for a in &given_attrs {
        super::attributes::validate_attribute(a)?;
    }
    if given_attrs
        .iter()
        .filter(|a| is_custom_attribute(&a.name))
        .count()
        > super::attributes::MAX_CUSTOM
    {
        return Err(berth_wire::ecs::ErrorCode::AttributeLimitExceededException
            .with("You can specify up to 10 custom attributes for each resource."));
    }
    let tags = input.tags.clone().unwrap_or_default();
    common::validate_tags(&tags)?;
    let identity: Option<serde_json::Value> = match input.instance_identity_document.as_deref() {
        Some(d) if !d.is_empty() => Some(
            serde_json::from_str(d)
                .map_err(|_| invalid("The instance identity document is not valid JSON."))?,
        ),
        _ => None,
    };
    let random = rand::random::<u128>();
    ecs.store
        .write(
            |tx| -> Result<s::RegisterContainerInstanceResponse, Failure> {
                let (cluster, _) = common::active_cluster(tx, ctx, input.cluster.as_deref())?;
                let cluster_name = cluster.cluster_name.unwrap_or_default();
                let mut attributes = default_attributes(ctx, identity.as_ref());
                let mut expected = None;
                let mut instance = match input.container_instance_arn.as_deref() {
                    Some(arn) if !arn.is_empty() => {
                        let id = store_id(ctx, &cluster_name, arn).ok_or_else(|| {
                            invalid(format!(
                                "The referenced container instance {arn} was not found."
                            ))
                        })?;
                        let Some((old, version)) = tx.get_json::<s::ContainerInstance>(
                            scope(ctx),
                            kind::CONTAINER_INSTANCE,
                            &id,
                        )?
                        else {
                            return Err(invalid(format!(
                                "The referenced container instance {arn} was not found."
                            ))
                            .into());
                        };
                        if old.status.as_deref() == Some("INACTIVE") {
                            let short = id.rsplit('/').next().unwrap_or(&id);
                            return Err(
                                client(format!("Container instance {short} is inactive.")).into()
                            );
                        }
                        expected = Some(version);
                        // Custom attributes survive re-registration; ECS's own are refreshed.
                        let custom: Vec<_> = old
                            .attributes
                            .iter()
                            .flatten()
                            .filter(|a| is_custom_attribute(&a.name))
                            .cloned()
                            .collect();
                        merge_attributes(&mut attributes, &custom);
                        let mut merged_tags = old.tags.clone().unwrap_or_default();
                        common::merge_tags(&mut merged_tags, &tags);
                        common::validate_tags(&merged_tags)?;
                        s::ContainerInstance {
                            tags: Some(merged_tags),
                            version: Some(old.version.unwrap_or(1) + 1),
                            ..old
                        }
                    }
                    _ => {
                        let id = berth_model::names::hex_id(random);
                        s::ContainerInstance {
                            container_instance_arn: Some(instance_arn(ctx, &cluster_name, &id)),
                            tags: Some(tags.clone()),
                            version: Some(1),
                            ..Default::default()
                        }
                    }
                };
                merge_attributes(&mut attributes, &given_attrs);
                if attributes
                    .iter()
                    .filter(|a| is_custom_attribute(&a.name))
                    .count()
                    > super::attributes::MAX_CUSTOM
                {
                    return Err(berth_wire::ecs::ErrorCode::AttributeLimitExceededException
                        .with("You can specify up to 10 custom attributes for each resource.")
                        .into());
                }
                instance.ec2_instance_id = identity
                    .as_ref()
                    .and_then(|d| d.get("instanceId"))
                    .and_then(|v| v.as_str())
                    .map(String::from)
                    .or(instance.ec2_instance_id);
                instance.capacity_provider_name = joined_provider(tx, ctx, identity.as_ref())?;
                instance.version_info = Some(input.version_info.clone().unwrap_or_default());
                instance.registered_resources = Some(resources.clone());
                instance.remaining_resources = Some(resources.clone());
                instance.attributes = Some(attributes);
                instance.status = Some("ACTIVE".into());
                instance.agent_connected = Some(false);
                instance.running_tasks_count = Some(0);
                instance.pending_tasks_count = Some(0);
                if expected.is_none() || instance.registered_at.is_none() {
                    instance.registered_at = Some(ctx.now);
                }
                instance.attachments = Some(Vec::new());
                instance.health_status = None;
                let arn = instance.container_instance_arn.clone().unwrap_or_default();
                let id = store_id(ctx, &cluster_name, &arn).unwrap_or_default();
                // A re-registering agent still runs its tasks: they keep their reservations.
                super::tasks::reserve_current_tasks(tx, scope(ctx), &id, &mut instance)?;
                super::tasks::forget_started_tasks(tx, scope(ctx), &id)?;
                // Counted afresh: the usage record says so too (it is what every view shows).
                instance_usage::reset(tx, scope(ctx), &id, &InstanceUsage::of(&instance))?;
                tx.put(
                    scope(ctx),
                    kind::CONTAINER_INSTANCE,
                    &id,
                    expected,
                    &instance,
                )?;
                Ok(s::RegisterContainerInstanceResponse {
                    container_instance: Some(shown(
                        tx,
                        ctx,
                        &id,
                        &instance,
                        &[s::ContainerInstanceField::Tags],
                    )?),
                })
            },
        )
        .map_err(aws)
        .inspect(|_| ecs.notifier.wake_controller())
}

pub fn describe(
    ecs: &Ecs,
    ctx: &RequestContext,
    input: s::DescribeContainerInstancesRequest,
) -> Result<s::DescribeContainerInstancesResponse, AwsError> {
    if input.container_instances.is_empty() {
        return Err(invalid("Container instances cannot be empty."));
    }
    if input.container_instances.len() > 100 {
        return Err(invalid(
            "DescribeContainerInstances can describe at most 100 container instances in one call.",
        ));
    }
    let include = input.include.clone().unwrap_or_default();
    ecs.store
        .read(
            |tx| -> Result<s::DescribeContainerInstancesResponse, Failure> {
                let (cluster, _) = common::active_cluster(tx, ctx, input.cluster.as_deref())?;
                let cluster_name = cluster.cluster_name.unwrap_or_default();
                let mut instances = Vec::new();
                let mut failures = Vec::new();
                for ident in &input.container_instances {
                    let found = match store_id(ctx, &cluster_name, ident) {
                        Some(id) => tx
                            .get_json::<s::ContainerInstance>(
                                scope(ctx),
                                kind::CONTAINER_INSTANCE,
                                &id,
                            )?
                            .map(|(ci, v)| (ci, v, id)),
                        None => None,
                    };
                    match found {
                        Some((ci, _, id)) => instances.push(shown(tx, ctx, &id, &ci, &include)?),
                        None => failures.push(s::Failure {
                            arn: Some(if ident.starts_with("arn:") {
                                ident.clone()
                            } else {
                                instance_arn(ctx, &cluster_name, ident)
                            }),
                            reason: Some("MISSING".into()),
                            detail: None,
                        }),
                    }
                }
                Ok(s::DescribeContainerInstancesResponse {
                    container_instances: Some(instances),
                    failures: Some(failures),
                })
            },
        )
        .map_err(aws)
}

pub fn list(
    ecs: &Ecs,
    ctx: &RequestContext,
    input: s::ListContainerInstancesRequest,
) -> Result<s::ListContainerInstancesResponse, AwsError> {
    let filter = match input.filter.as_deref() {
        Some(f) if !f.trim().is_empty() => Some(
            berth_scheduler::parse(f)
                .map_err(|e| invalid(format!("Invalid filter expression '{f}': {e}.")))?,
        ),
        _ => None,
    };
    let page = Page::parse(input.next_token.as_deref(), input.max_results, 100)?;
    ecs.store
        .read(|tx| -> Result<s::ListContainerInstancesResponse, Failure> {
            let (cluster, _) = common::active_cluster(tx, ctx, input.cluster.as_deref())?;
            let cluster_name = cluster.cluster_name.unwrap_or_default();
            let prefix = format!("{cluster_name}/");
            let wanted = |status: &str| match input.status {
                Some(want) => status == want.as_str(),
                None => status != "INACTIVE",
            };
            // Skipped statuses mean scanning in chunks until the page is full.
            let mut ids: Vec<String> = Vec::new();
            let mut after = page.after.clone().map(|a| format!("{prefix}{a}"));
            let held = match &filter {
                Some(_) => tasks::held_tasks(tx, ctx, &cluster_name)?,
                None => Default::default(),
            };
            loop {
                let chunk = tx.list(
                    scope(ctx),
                    kind::CONTAINER_INSTANCE,
                    &prefix,
                    after.as_deref(),
                    256,
                )?;
                let done = chunk.len() < 256;
                for r in &chunk {
                    let mut ci: s::ContainerInstance = r.decode(kind::CONTAINER_INSTANCE)?;
                    if !wanted(ci.status.as_deref().unwrap_or_default()) {
                        continue;
                    }
                    let selected = match &filter {
                        None => true,
                        Some(e) => {
                            tasks::with_usage(tx, scope(ctx), &r.id, &mut ci)?;
                            let connected = tasks::agent_connected(tx, scope(ctx), &r.id, ctx.now)?;
                            let held = held.get(&r.id).cloned().unwrap_or_default();
                            let usage = InstanceUsage::of(&ci);
                            e.matches(
                                &super::placement::instance(&r.id, &ci, &usage, connected, held),
                                &[],
                            )
                        }
                    };
                    if selected {
                        ids.push(r.id[prefix.len()..].to_string());
                    }
                }
                after = chunk.last().map(|r| r.id.clone());
                if done || ids.len() > page.limit {
                    break;
                }
            }
            let next_token = page.next_token(&mut ids, Clone::clone);
            Ok(s::ListContainerInstancesResponse {
                container_instance_arns: Some(
                    ids.iter()
                        .map(|id| instance_arn(ctx, &cluster_name, id))
                        .collect(),
                ),
                next_token,
            })
        })
        .map_err(aws)
}

pub fn update_state(
    ecs: &Ecs,
    ctx: &RequestContext,
    input: s::UpdateContainerInstancesStateRequest,
) -> Result<s::UpdateContainerInstancesStateResponse, AwsError> {
    if input.container_instances.is_empty() {
        return Err(invalid("Container instances cannot be empty."));
    }
    if input.container_instances.len() > MAX_STATE_UPDATES {
        return Err(invalid(format!(
            "UpdateContainerInstancesState can update at most {MAX_STATE_UPDATES} container instances in one call."
        )));
    }
    let status = match input.status {
        s::ContainerInstanceStatus::Active => "ACTIVE",
        s::ContainerInstanceStatus::Draining => "DRAINING",
        _ => {
            return Err(invalid(
                "Container instances status can only be updated to ACTIVE or DRAINING.",
            ));
        }
    };
    ecs.store
        .write(
            |tx| -> Result<s::UpdateContainerInstancesStateResponse, Failure> {
                let (cluster, _) = common::active_cluster(tx, ctx, input.cluster.as_deref())?;
                let cluster_name = cluster.cluster_name.unwrap_or_default();
                let mut instances = Vec::new();
                let mut failures = Vec::new();
                for ident in &input.container_instances {
                    let found = match store_id(ctx, &cluster_name, ident) {
                        Some(id) => tx
                            .get_json::<s::ContainerInstance>(
                                scope(ctx),
                                kind::CONTAINER_INSTANCE,
                                &id,
                            )?
                            .filter(|(ci, _)| {
                                matches!(ci.status.as_deref(), Some("ACTIVE" | "DRAINING"))
                            })
                            .map(|(ci, v)| (ci, v, id)),
                        None => None,
                    };
                    let Some((mut ci, version, id)) = found else {
                        failures.push(s::Failure {
                            arn: Some(if ident.starts_with("arn:") {
                                ident.clone()
                            } else {
                                instance_arn(ctx, &cluster_name, ident)
                            }),
                            reason: Some("MISSING".into()),
                            detail: None,
                        });
                        continue;
                    };
                    if ci.status.as_deref() != Some(status) {
                        ci.status = Some(status.into());
                        ci.version = Some(ci.version.unwrap_or(1) + 1);
                        tx.put(
                            scope(ctx),
                            kind::CONTAINER_INSTANCE,
                            &id,
                            Some(version),
                            &ci,
                        )?;
                    }
                    instances.push(shown(tx, ctx, &id, &ci, &[])?);
                }
                Ok(s::UpdateContainerInstancesStateResponse {
                    container_instances: Some(instances),
                    failures: Some(failures),
                })
            },
        )
        .map_err(aws)
        .inspect(|_| ecs.notifier.wake_controller())
}

pub fn deregister(
    ecs: &Ecs,
    ctx: &RequestContext,
    input: s::DeregisterContainerInstanceRequest,
) -> Result<s::DeregisterContainerInstanceResponse, AwsError> {
    let (resp, host) = ecs
        .store
        .write(|tx| -> Result<(s::DeregisterContainerInstanceResponse, Option<String>), Failure> {
            let (cluster, _) = common::active_cluster(tx, ctx, input.cluster.as_deref())?;
            let cluster_name = cluster.cluster_name.unwrap_or_default();
            let ident = &input.container_instance;
            let missing = || invalid(format!("The referenced container instance {ident} was not found."));
            let id = store_id(ctx, &cluster_name, ident).ok_or_else(missing)?;
            let Some((mut ci, version)) = tx.get_json::<s::ContainerInstance>(scope(ctx), kind::CONTAINER_INSTANCE, &id)?
            else {
                return Err(missing().into());
            };
            if ci.status.as_deref() == Some("INACTIVE") {
                return Err(missing().into());
            }
            // The record as shown: what its tasks use, from its usage record.
            instance_usage::show(tx, scope(ctx), &id, &mut ci)?;
            let started = tasks::started_tasks(tx, scope(ctx), &id)?;
            let (pending, running) = tasks::counts_with_started(&ci, started);
            let busy = running + pending > 0;
            if busy && !input.force.unwrap_or(false) {
                return Err(invalid(
                    "Found running tasks on the instance. Use the force parameter to deregister the instance anyway.",
                )
                .into());
            }
            // Forced: the instance's tasks that still run are told to stop.
            let mut stopped_any = false;
            for (task_id, t) in tx.list_json::<StoredTask>(scope(ctx), task_kind::TASK, &format!("{cluster_name}/"))? {
                if t.container_instance.as_deref() != Some(id.as_str())
                    || t.desired_status() == berth_model::lifecycle::TaskStatus::Stopped
                    || t.last_status() == berth_model::lifecycle::TaskStatus::Stopped
                {
                    continue;
                }
                let Some((mut t, v)) = tx.get_json::<StoredTask>(scope(ctx), task_kind::TASK, &task_id)? else {
                    continue;
                };
                t.task.desired_status = Some("STOPPED".into());
                t.task.stop_code = Some(s::TaskStopCode::UserInitiated);
                t.task.stopped_reason = Some(FORCED_DEREGISTRATION_REASON.into());
                t.task.stopping_at = Some(ctx.now);
                t.task.version = Some(t.task.version.unwrap_or(1) + 1);
                tx.put(scope(ctx), task_kind::TASK, &task_id, Some(v), &t)?;
                tasks::touch_host_task(tx, scope(ctx), &task_id, &t)?;
                stopped_any = true;
            }
            let host = tasks::instance_host(scope(ctx), &id);
            ci.status = Some("INACTIVE".into());
            ci.agent_connected = Some(false);
            ci.version = Some(ci.version.unwrap_or(1) + 1);
            tx.put(scope(ctx), kind::CONTAINER_INSTANCE, &id, Some(version), &ci)?;
            Ok((
                s::DeregisterContainerInstanceResponse {
                    container_instance: Some({
                        let mut shown = present(&ci, &[]);
                        tasks::count_started(&mut shown, started);
                        shown
                    }),
                },
                stopped_any.then_some(host),
            ))
        })
        .map_err(aws)?;
    if let Some(host) = host {
        ecs.notifier.notify(&host);
    }
    Ok(resp)
}

/// How many container instances of `cluster` are ACTIVE or DRAINING: from the cluster index
/// when it holds the cluster (it keeps exactly those), else from the store. DescribeClusters
/// at 10,000 instances decoded every instance record for this count, about 150 ms.
pub fn count_registered(
    tx: &Tx<'_>,
    index: &super::cluster_index::ClusterIndex,
    ctx: &RequestContext,
    cluster: &str,
) -> Result<i32, Failure> {
    match index.registered_count(tx, scope(ctx), cluster)? {
        Some(n) => Ok(n),
        None => count_registered_in_store(tx, ctx, cluster),
    }
}

/// [`count_registered`] from the store alone: every instance record of `cluster` read.
fn count_registered_in_store(
    tx: &Tx<'_>,
    ctx: &RequestContext,
    cluster: &str,
) -> Result<i32, Failure> {
    let mut n = 0usize;
    for r in tx.list(
        scope(ctx),
        kind::CONTAINER_INSTANCE,
        &format!("{cluster}/"),
        None,
        usize::MAX,
    )? {
        if is_registered(&r)? {
            n += 1;
        }
    }
    Ok(i32::try_from(n).unwrap_or(i32::MAX))
}

/// Whether an instance record is ACTIVE or DRAINING (its status decoded, the rest skipped).
pub(crate) fn is_registered(r: &berth_store::Record) -> Result<bool, Failure> {
    #[derive(serde::Deserialize)]
    struct Status {
        status: Option<String>,
    }
    let st: Status = r.decode(kind::CONTAINER_INSTANCE)?;
    Ok(matches!(
        st.status.as_deref(),
        Some("ACTIVE") | Some("DRAINING")
    ))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::sync::Arc;

    pub(crate) fn ctx() -> RequestContext {
        crate::test_support::context(1_700_000_000_000)
    }

    /// A store with cluster `web`.
    pub(crate) fn ecs_with_cluster() -> Ecs {
        let e = Ecs::new(Arc::new(
            berth_store::Store::open_in_memory_holding(crate::ecs::KINDS_HELD_IN_MEMORY).unwrap(),
        ));
        super::super::clusters::create(
            &e,
            &ctx(),
            s::CreateClusterRequest {
                cluster_name: Some("web".into()),
                ..Default::default()
            },
        )
        .unwrap();
        e
    }

    pub(crate) fn register_one(e: &Ecs, attrs: Vec<s::Attribute>) -> s::ContainerInstance {
        register(
            e,
            &ctx(),
            s::RegisterContainerInstanceRequest {
                cluster: Some("web".into()),
                total_resources: Some(vec![s::Resource {
                    name: Some("CPU".into()),
                    integer_value: Some(2048),
                    ..Default::default()
                }]),
                attributes: Some(attrs),
                tags: Some(vec![s::Tag {
                    key: Some("team".into()),
                    value: Some("a".into()),
                }]),
                ..Default::default()
            },
        )
        .unwrap()
        .container_instance
        .unwrap()
    }

    #[test]
    fn ids_and_arns() {
        let c = ctx();
        let id = "0123456789abcdef0123456789abcdef";
        assert_eq!(store_id(&c, "web", id).unwrap(), format!("web/{id}"));
        assert_eq!(
            store_id(&c, "web", &instance_arn(&c, "web", id)).unwrap(),
            format!("web/{id}")
        );
        assert_eq!(
            store_id(
                &c,
                "web",
                &format!("arn:aws:ecs:us-east-1:123456789012:container-instance/{id}")
            )
            .unwrap(),
            format!("web/{id}")
        );
        assert_eq!(store_id(&c, "web", &instance_arn(&c, "other", id)), None);
        assert_eq!(store_id(&c, "web", "not an id"), None);
        assert!(is_custom_attribute("stack"));
        assert!(!is_custom_attribute("ecs.os-type"));
        assert!(!is_custom_attribute(
            "com.amazonaws.ecs.capability.docker-remote-api.1.17"
        ));
    }

    #[test]
    fn register_describe_list_deregister() {
        let e = ecs_with_cluster();
        let c = ctx();
        let ci = register_one(
            &e,
            vec![s::Attribute {
                name: "stack".into(),
                value: Some("prod".into()),
                ..Default::default()
            }],
        );
        let arn = ci.container_instance_arn.clone().unwrap();
        let id = arn.rsplit('/').next().unwrap().to_string();
        assert_eq!(id.len(), 32);
        assert!(arn.starts_with("arn:aws:ecs:us-east-1:123456789012:container-instance/web/"));
        assert_eq!(ci.status.as_deref(), Some("ACTIVE"));
        assert_eq!(ci.agent_connected, Some(false));
        assert_eq!(ci.registered_resources, ci.remaining_resources);
        let attrs = ci.attributes.unwrap();
        assert!(
            attrs
                .iter()
                .any(|a| a.name == "ecs.os-type" && a.value.as_deref() == Some("linux"))
        );
        assert!(attrs.iter().any(|a| a.name == "stack"));
        e.store
            .read(|tx| count_registered_in_store(tx, &c, "web"))
            .map(|n| assert_eq!(n, 1))
            .unwrap();

        let d = describe(
            &e,
            &c,
            s::DescribeContainerInstancesRequest {
                cluster: Some("web".into()),
                container_instances: vec![id.clone(), "ffffffffffffffffffffffffffffffff".into()],
                include: Some(vec![
                    s::ContainerInstanceField::Tags,
                    s::ContainerInstanceField::ContainerInstanceHealth,
                ]),
            },
        )
        .unwrap();
        let shown = &d.container_instances.unwrap()[0];
        assert_eq!(shown.tags.as_ref().unwrap().len(), 1);
        assert!(shown.health_status.is_some());
        assert_eq!(d.failures.unwrap()[0].reason.as_deref(), Some("MISSING"));

        for _ in 0..2 {
            register_one(&e, vec![]);
        }
        let mut all = Vec::new();
        let mut token = None;
        loop {
            let p = list(
                &e,
                &c,
                s::ListContainerInstancesRequest {
                    cluster: Some("web".into()),
                    max_results: Some(2),
                    next_token: token,
                    ..Default::default()
                },
            )
            .unwrap();
            all.extend(p.container_instance_arns.unwrap());
            token = p.next_token;
            if token.is_none() {
                break;
            }
        }
        assert_eq!(all.len(), 3);
        let draining = list(
            &e,
            &c,
            s::ListContainerInstancesRequest {
                cluster: Some("web".into()),
                status: Some(s::ContainerInstanceStatus::Draining),
                ..Default::default()
            },
        )
        .unwrap();
        assert!(draining.container_instance_arns.unwrap().is_empty());
        let filtered = |f: &str| {
            list(
                &e,
                &c,
                s::ListContainerInstancesRequest {
                    cluster: Some("web".into()),
                    filter: Some(f.into()),
                    ..Default::default()
                },
            )
            .map(|r| r.container_instance_arns.unwrap())
        };
        assert_eq!(filtered("attribute:ecs.os-type == linux").unwrap().len(), 3);
        assert_eq!(
            filtered("attribute:stack == prod").unwrap(),
            vec![arn.clone()]
        );
        assert_eq!(
            filtered("attribute:stack exists").unwrap(),
            vec![arn.clone()]
        );
        assert_eq!(filtered("attribute:stack !exists").unwrap().len(), 2);
        assert_eq!(filtered("attribute:stack != prod").unwrap().len(), 2);
        assert_eq!(
            filtered("attribute:ecs.os-type==linux and attribute:stack in [dev, prod]").unwrap(),
            vec![arn.clone()]
        );
        assert!(
            filtered("attribute:stack exists && attribute:stack == dev")
                .unwrap()
                .is_empty()
        );
        assert_eq!(
            filtered("attribute:stack == prod or attribute:stack == dev").unwrap(),
            vec![arn.clone()]
        );
        assert_eq!(
            filtered("not (attribute:stack exists) and runningTasksCount == 0")
                .unwrap()
                .len(),
            2
        );
        assert_eq!(
            filtered("attribute:stack =~ pr*").unwrap(),
            vec![arn.clone()]
        );
        for bad in [
            "runningTasksCount == many",
            "attribute:stack = prod",
            "attribute:stack ==",
            "attribute:stack in [prod",
        ] {
            assert_eq!(filtered(bad).unwrap_err().code, "InvalidParameterException");
        }

        let gone = deregister(
            &e,
            &c,
            s::DeregisterContainerInstanceRequest {
                cluster: Some("web".into()),
                container_instance: arn.clone(),
                force: None,
            },
        )
        .unwrap()
        .container_instance
        .unwrap();
        assert_eq!(gone.status.as_deref(), Some("INACTIVE"));
        e.store
            .read(|tx| count_registered_in_store(tx, &c, "web"))
            .map(|n| assert_eq!(n, 2))
            .unwrap();
        let after = list(
            &e,
            &c,
            s::ListContainerInstancesRequest {
                cluster: Some("web".into()),
                ..Default::default()
            },
        )
        .unwrap()
        .container_instance_arns
        .unwrap();
        assert!(!after.contains(&arn));
        let again = register(
            &e,
            &c,
            s::RegisterContainerInstanceRequest {
                cluster: Some("web".into()),
                container_instance_arn: Some(arn.clone()),
                ..Default::default()
            },
        )
        .unwrap_err();
        assert_eq!(again.code, "ClientException");
        assert_eq!(
            deregister(
                &e,
                &c,
                s::DeregisterContainerInstanceRequest {
                    cluster: Some("web".into()),
                    container_instance: arn,
                    force: None
                }
            )
            .unwrap_err()
            .code,
            "InvalidParameterException"
        );
        assert_eq!(
            register(
                &e,
                &c,
                s::RegisterContainerInstanceRequest {
                    cluster: Some("nope".into()),
                    ..Default::default()
                }
            )
            .unwrap_err()
            .code,
            "ClusterNotFoundException"
        );
    }

    #[test]
    fn reregistration_keeps_id_and_custom_attributes() {
        let e = ecs_with_cluster();
        let c = ctx();
        let ci = register_one(
            &e,
            vec![s::Attribute {
                name: "stack".into(),
                value: Some("prod".into()),
                ..Default::default()
            }],
        );
        let arn = ci.container_instance_arn.clone().unwrap();
        let again = register(
            &e,
            &c,
            s::RegisterContainerInstanceRequest {
                cluster: Some("web".into()),
                container_instance_arn: Some(arn.clone()),
                instance_identity_document: Some(r#"{"instanceId":"i-0abc","instanceType":"t3.micro","availabilityZone":"us-east-1b"}"#.into()),
                ..Default::default()
            },
        )
        .unwrap()
        .container_instance
        .unwrap();
        assert_eq!(again.container_instance_arn.as_deref(), Some(arn.as_str()));
        assert_eq!(again.ec2_instance_id.as_deref(), Some("i-0abc"));
        let attrs = again.attributes.unwrap();
        assert!(attrs.iter().any(|a| a.name == "stack"));
        assert!(
            attrs
                .iter()
                .any(|a| a.name == "ecs.availability-zone"
                    && a.value.as_deref() == Some("us-east-1b"))
        );
        assert_eq!(again.version, Some(2));
    }

    #[test]
    fn registered_count_from_the_index_matches_the_store() {
        let e = ecs_with_cluster();
        let c = ctx();
        // (the store's count, the count DescribeClusters shows, the index's own)
        let counts = |e: &Ecs| {
            e.store
                .read(|tx| -> Result<_, Failure> {
                    Ok((
                        count_registered_in_store(tx, &c, "web")?,
                        count_registered(tx, &e.index, &c, "web")?,
                        e.index.registered_count(tx, scope(&c), "web")?,
                    ))
                })
                .unwrap()
        };
        let plan = |e: &Ecs| {
            e.store
                .write(|tx| {
                    e.index
                        .with_cluster(tx, scope(&c), "web", c.now.millis(), |_| ())
                })
                .unwrap()
        };
        let a = register_one(&e, vec![]).container_instance_arn.unwrap();
        let b = register_one(&e, vec![]).container_instance_arn.unwrap();
        assert_eq!(
            counts(&e),
            (2, 2, None),
            "never planned on: the store counts"
        );
        plan(&e);
        assert_eq!(counts(&e), (2, 2, Some(2)));
        register_one(&e, vec![]);
        assert_eq!(
            counts(&e),
            (3, 3, Some(3)),
            "a new instance, not loaded yet"
        );
        update(&e, vec![b.clone()], s::ContainerInstanceStatus::Draining).unwrap();
        assert_eq!(counts(&e), (3, 3, Some(3)), "DRAINING counts");
        deregister(
            &e,
            &c,
            s::DeregisterContainerInstanceRequest {
                cluster: Some("web".into()),
                container_instance: a,
                force: None,
            },
        )
        .unwrap();
        assert_eq!(counts(&e), (2, 2, Some(2)), "deregistered, entry stale");
        plan(&e);
        assert_eq!(counts(&e), (2, 2, Some(2)), "reloaded");
        e.index.disable();
        assert_eq!(counts(&e), (2, 2, None), "disabled: the store counts");
    }

    fn update(
        e: &Ecs,
        ids: Vec<String>,
        status: s::ContainerInstanceStatus,
    ) -> Result<s::UpdateContainerInstancesStateResponse, AwsError> {
        update_state(
            e,
            &ctx(),
            s::UpdateContainerInstancesStateRequest {
                cluster: Some("web".into()),
                container_instances: ids,
                status,
            },
        )
    }

    fn describe_one(e: &Ecs, arn: &str) -> s::ContainerInstance {
        describe(
            e,
            &ctx(),
            s::DescribeContainerInstancesRequest {
                cluster: Some("web".into()),
                container_instances: vec![arn.into()],
                include: None,
            },
        )
        .unwrap()
        .container_instances
        .unwrap()
        .remove(0)
    }

    #[test]
    fn draining_and_back_to_active() {
        let e = ecs_with_cluster();
        let c = ctx();
        let arn = register_one(&e, vec![]).container_instance_arn.unwrap();
        let out = update(
            &e,
            vec![arn.clone(), "ffffffffffffffffffffffffffffffff".into()],
            s::ContainerInstanceStatus::Draining,
        )
        .unwrap();
        let shown = &out.container_instances.unwrap()[0];
        assert_eq!(shown.status.as_deref(), Some("DRAINING"));
        assert_eq!(shown.agent_connected, Some(false));
        assert!(shown.tags.is_none());
        let failures = out.failures.unwrap();
        assert_eq!(failures[0].reason.as_deref(), Some("MISSING"));
        assert!(
            failures[0]
                .arn
                .as_deref()
                .unwrap()
                .ends_with("/web/ffffffffffffffffffffffffffffffff")
        );
        assert_eq!(describe_one(&e, &arn).status.as_deref(), Some("DRAINING"));
        // DRAINING instances are listed with the default filter and with status DRAINING.
        let listed = |status| {
            list(
                &e,
                &c,
                s::ListContainerInstancesRequest {
                    cluster: Some("web".into()),
                    status,
                    ..Default::default()
                },
            )
            .unwrap()
            .container_instance_arns
            .unwrap()
        };
        assert_eq!(listed(None), vec![arn.clone()]);
        assert_eq!(
            listed(Some(s::ContainerInstanceStatus::Draining)),
            vec![arn.clone()]
        );
        assert!(listed(Some(s::ContainerInstanceStatus::Active)).is_empty());
        // agentConnected follows the last poll, in every answer.
        e.store
            .write(|tx| {
                let id = store_id(&c, "web", &arn).unwrap();
                tasks::record_poll(tx, &tasks::instance_host(scope(&c), &id), c.now.millis())
            })
            .unwrap();
        let back = update(&e, vec![arn.clone()], s::ContainerInstanceStatus::Active).unwrap();
        let back = &back.container_instances.unwrap()[0];
        assert_eq!(back.status.as_deref(), Some("ACTIVE"));
        assert_eq!(back.agent_connected, Some(true));
        assert_eq!(back.version, Some(3));
        assert_eq!(describe_one(&e, &arn).agent_connected, Some(true));

        assert_eq!(
            update(
                &e,
                vec![arn.clone()],
                s::ContainerInstanceStatus::Registering
            )
            .unwrap_err()
            .code,
            "InvalidParameterException"
        );
        assert_eq!(
            update(&e, vec![], s::ContainerInstanceStatus::Active)
                .unwrap_err()
                .code,
            "InvalidParameterException"
        );
        assert_eq!(
            update(
                &e,
                vec![arn.clone(); 11],
                s::ContainerInstanceStatus::Active
            )
            .unwrap_err()
            .code,
            "InvalidParameterException"
        );
        // An INACTIVE instance cannot change state.
        deregister(
            &e,
            &c,
            s::DeregisterContainerInstanceRequest {
                cluster: Some("web".into()),
                container_instance: arn.clone(),
                force: None,
            },
        )
        .unwrap();
        let out = update(&e, vec![arn.clone()], s::ContainerInstanceStatus::Active).unwrap();
        assert!(out.container_instances.unwrap().is_empty());
        assert_eq!(out.failures.unwrap()[0].reason.as_deref(), Some("MISSING"));
        assert_eq!(describe_one(&e, &arn).agent_connected, Some(false));
    }

    /// An EC2 instance with 2048 CPU units and 1024 MiB, a task definition `sleep` (256/128)
    /// and `n` tasks started on it; the agent has polled, so placement may use it.
    fn instance_with_tasks(e: &Ecs, n: usize) -> (String, Vec<String>) {
        use berth_wire::ecs::Api;
        let c = ctx();
        let ci = register(
            e,
            &c,
            s::RegisterContainerInstanceRequest {
                cluster: Some("web".into()),
                total_resources: Some(web_resources()),
                // What a host-mode definition requires (`requiresAttributes`).
                attributes: Some(vec![s::Attribute {
                    name: "com.amazonaws.ecs.capability.docker-remote-api.1.18".into(),
                    ..Default::default()
                }]),
                ..Default::default()
            },
        )
        .unwrap()
        .container_instance
        .unwrap();
        let arn = ci.container_instance_arn.unwrap();
        e.store
            .write(|tx| {
                let id = store_id(&c, "web", &arn).unwrap();
                tasks::record_poll(tx, &tasks::instance_host(scope(&c), &id), c.now.millis())
            })
            .unwrap();
        let td: s::RegisterTaskDefinitionRequest = serde_json::from_value(serde_json::json!({
            "family": "sleep", "networkMode": "host",
            "containerDefinitions": [{"name": "app", "image": "busybox", "cpu": 256, "memory": 128, "essential": true}]
        }))
        .unwrap();
        e.register_task_definition(&c, td).unwrap();
        let mut task_arns = Vec::new();
        for _ in 0..n {
            let out = e
                .start_task(
                    &c,
                    s::StartTaskRequest {
                        cluster: Some("web".into()),
                        task_definition: "sleep".into(),
                        container_instances: vec![arn.clone()],
                        ..Default::default()
                    },
                )
                .unwrap();
            assert_eq!(out.failures.unwrap(), vec![]);
            task_arns.push(out.tasks.unwrap()[0].task_arn.clone().unwrap());
        }
        (arn, task_arns)
    }

    /// What `instance_with_tasks`'s instance registers: 2048 CPU units, 1024 MiB.
    fn web_resources() -> Vec<s::Resource> {
        [("CPU", 2048), ("MEMORY", 1024)]
            .into_iter()
            .map(|(name, value)| s::Resource {
                name: Some(name.into()),
                r#type: Some("INTEGER".into()),
                integer_value: Some(value),
                ..Default::default()
            })
            .collect()
    }

    fn remaining(ci: &s::ContainerInstance, name: &str) -> i32 {
        ci.remaining_resources
            .iter()
            .flatten()
            .find(|r| r.name.as_deref() == Some(name))
            .and_then(|r| r.integer_value)
            .unwrap()
    }

    #[test]
    fn counts_and_remaining_resources_follow_tasks() {
        use berth_wire::ecs::Api;
        let e = ecs_with_cluster();
        let c = ctx();
        let (arn, task_arns) = instance_with_tasks(&e, 2);
        let ci = describe_one(&e, &arn);
        assert_eq!(ci.pending_tasks_count, Some(2));
        assert_eq!(ci.running_tasks_count, Some(0));
        assert_eq!(remaining(&ci, "CPU"), 2048 - 512);
        assert_eq!(remaining(&ci, "MEMORY"), 1024 - 256);
        assert_eq!(ci.agent_connected, Some(true));
        let req: s::SubmitTaskStateChangeRequest = serde_json::from_value(serde_json::json!({
            "cluster": "web", "task": task_arns[0], "status": "RUNNING",
            "containers": [{"containerName": "app", "status": "RUNNING"}]
        }))
        .unwrap();
        e.submit_task_state_change(&c, req).unwrap();
        let ci = describe_one(&e, &arn);
        assert_eq!(
            (ci.pending_tasks_count, ci.running_tasks_count),
            (Some(1), Some(1))
        );

        // A DRAINING instance keeps its tasks but takes no new ones.
        update(&e, vec![arn.clone()], s::ContainerInstanceStatus::Draining).unwrap();
        let ci = describe_one(&e, &arn);
        assert_eq!(
            (ci.pending_tasks_count, ci.running_tasks_count),
            (Some(1), Some(1))
        );
        let out = e
            .start_task(
                &c,
                s::StartTaskRequest {
                    cluster: Some("web".into()),
                    task_definition: "sleep".into(),
                    container_instances: vec![arn.clone()],
                    ..Default::default()
                },
            )
            .unwrap();
        assert!(out.tasks.unwrap().is_empty());
        let req: s::RunTaskRequest = serde_json::from_value(serde_json::json!({
            "cluster": "web", "taskDefinition": "sleep", "launchType": "EC2"
        }))
        .unwrap();
        let run = e.run_task(&c, req);
        assert!(
            run.as_ref()
                .map_or(true, |r| r.tasks.as_ref().is_none_or(Vec::is_empty)),
            "{run:?}"
        );
        let d = e
            .describe_tasks(
                &c,
                s::DescribeTasksRequest {
                    cluster: Some("web".into()),
                    tasks: task_arns.clone(),
                    include: None,
                },
            )
            .unwrap();
        assert!(
            d.tasks
                .unwrap()
                .iter()
                .all(|t| t.desired_status.as_deref() == Some("RUNNING"))
        );
    }

    /// Tasks that start are counted apart from the instance's record: every view of the
    /// instance (describe, the cluster query of ListContainerInstances, placement's
    /// constraints) counts them as running, a stop takes them back, and a new registration
    /// counts afresh.
    #[test]
    fn started_tasks_count_as_running_everywhere() {
        use berth_wire::ecs::Api;
        let e = ecs_with_cluster();
        let c = ctx();
        let (arn, task_arns) = instance_with_tasks(&e, 2);
        let report = |task: &str, status: &str| {
            let req: s::SubmitTaskStateChangeRequest = serde_json::from_value(serde_json::json!({
                "cluster": "web", "task": task, "status": status,
                "containers": [{"containerName": "app", "status": status}]
            }))
            .unwrap();
            e.submit_task_state_change(&c, req).unwrap();
        };
        let counts = || {
            let ci = describe_one(&e, &arn);
            (ci.pending_tasks_count, ci.running_tasks_count)
        };
        let listed = |f: &str| {
            e.list_container_instances(
                &c,
                s::ListContainerInstancesRequest {
                    cluster: Some("web".into()),
                    filter: Some(f.into()),
                    ..Default::default()
                },
            )
            .unwrap()
            .container_instance_arns
            .unwrap()
        };
        let placed_with = |expression: &str| {
            let req: s::RunTaskRequest = serde_json::from_value(serde_json::json!({
                "cluster": "web", "taskDefinition": "sleep", "launchType": "EC2",
                "placementConstraints": [{"type": "memberOf", "expression": expression}]
            }))
            .unwrap();
            e.run_task(&c, req).unwrap().tasks.unwrap_or_default().len()
        };
        report(&task_arns[0], "RUNNING");
        assert_eq!(counts(), (Some(1), Some(1)));
        assert_eq!(listed("runningTasksCount == 1"), vec![arn.clone()]);
        assert!(listed("runningTasksCount == 0").is_empty());
        // Placement reads the cluster index, which heard of the start too.
        assert_eq!(placed_with("runningTasksCount == 0"), 0);
        assert_eq!(placed_with("runningTasksCount == 1"), 1);
        assert_eq!(counts(), (Some(2), Some(1)));

        report(&task_arns[0], "STOPPED");
        assert_eq!(counts(), (Some(2), Some(0)));
        assert_eq!(placed_with("runningTasksCount == 0"), 1);
        assert_eq!(counts(), (Some(3), Some(0)));
        report(&task_arns[1], "RUNNING");
        assert_eq!(counts(), (Some(2), Some(1)));

        // The agent registers again: its tasks are counted from what they are, once.
        let again = e
            .register_container_instance(
                &c,
                s::RegisterContainerInstanceRequest {
                    cluster: Some("web".into()),
                    container_instance_arn: Some(arn.clone()),
                    total_resources: Some(web_resources()),
                    ..Default::default()
                },
            )
            .unwrap()
            .container_instance
            .unwrap();
        assert_eq!(
            (again.pending_tasks_count, again.running_tasks_count),
            (Some(2), Some(1))
        );
        assert_eq!(counts(), (Some(2), Some(1)));
        report(&task_arns[1], "STOPPED");
        assert_eq!(counts(), (Some(2), Some(0)));
    }

    #[test]
    fn forced_deregistration_stops_the_tasks() {
        use berth_wire::ecs::Api;
        let e = ecs_with_cluster();
        let c = ctx();
        let (arn, task_arns) = instance_with_tasks(&e, 2);
        let id = store_id(&c, "web", &arn).unwrap();
        let host = tasks::instance_host(scope(&c), &id);
        let (seq, _) = e.store.read(|tx| tasks::assignments(tx, &host)).unwrap();
        let dereg = |force| {
            deregister(
                &e,
                &c,
                s::DeregisterContainerInstanceRequest {
                    cluster: Some("web".into()),
                    container_instance: arn.clone(),
                    force,
                },
            )
        };
        let refused = dereg(None).unwrap_err();
        assert_eq!(refused.code, "InvalidParameterException");
        assert_eq!(describe_one(&e, &arn).status.as_deref(), Some("ACTIVE"));

        let gone = dereg(Some(true)).unwrap().container_instance.unwrap();
        assert_eq!(gone.status.as_deref(), Some("INACTIVE"));
        assert_eq!(gone.agent_connected, Some(false));
        // The agent is woken with its tasks' desired status STOPPED.
        let (seq2, assigned) = e.store.read(|tx| tasks::assignments(tx, &host)).unwrap();
        assert!(seq2 > seq);
        assert_eq!(assigned.len(), 2);
        assert!(assigned.iter().all(|a| a.desired_status == "STOPPED"));
        let d = e
            .describe_tasks(
                &c,
                s::DescribeTasksRequest {
                    cluster: Some("web".into()),
                    tasks: task_arns.clone(),
                    include: None,
                },
            )
            .unwrap();
        for t in d.tasks.unwrap() {
            assert_eq!(t.desired_status.as_deref(), Some("STOPPED"));
            assert_eq!(t.stop_code, Some(s::TaskStopCode::UserInitiated));
            assert_eq!(
                t.stopped_reason.as_deref(),
                Some(FORCED_DEREGISTRATION_REASON)
            );
            assert_eq!(t.stopping_at, Some(c.now));
        }
        // When the agent reports them STOPPED, the (INACTIVE) instance gives the resources back.
        for t in &task_arns {
            let req: s::SubmitTaskStateChangeRequest = serde_json::from_value(serde_json::json!({
                "cluster": "web", "task": t, "status": "STOPPED"
            }))
            .unwrap();
            e.submit_task_state_change(&c, req).unwrap();
        }
        let ci = describe_one(&e, &arn);
        assert_eq!(
            (ci.pending_tasks_count, ci.running_tasks_count),
            (Some(0), Some(0))
        );
        assert_eq!(remaining(&ci, "CPU"), 2048);
        let d = e
            .describe_tasks(
                &c,
                s::DescribeTasksRequest {
                    cluster: Some("web".into()),
                    tasks: task_arns,
                    include: None,
                },
            )
            .unwrap();
        assert!(d.tasks.unwrap().iter().all(|t| {
            t.last_status.as_deref() == Some("STOPPED")
                && t.stopped_reason.as_deref() == Some(FORCED_DEREGISTRATION_REASON)
        }));
    }
}
