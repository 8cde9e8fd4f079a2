//! Clusters: CreateCluster, DescribeClusters, ListClusters, UpdateCluster,
//! UpdateClusterSettings, DeleteCluster, PutClusterCapacityProviders.
//!
//! A cluster is stored as its wire shape (with tags, settings and capacity providers); the
//! counts and statistics are derived when it is described. A deleted cluster stays as
//! INACTIVE, as on ECS, so DescribeClusters still shows it; CreateCluster of the same name
//! makes it ACTIVE again, empty.

use berth_store::Tx;
use berth_wire::ecs::shapes as s;
use berth_wire::ecs::{ErrorCode, shapes::ClusterField};
use berth_wire::{AwsError, RequestContext};

use super::Ecs;
use super::cluster_index::ClusterIndex;
use super::common::{self, Page, aws, cluster_arn, invalid, kind, scope};
use crate::failure::Failure;

/// The FARGATE capacity providers every account has.
pub const FARGATE_PROVIDERS: &[&str] = &["FARGATE", "FARGATE_SPOT"];

const CONTAINER_INSIGHTS_VALUES: &[&str] = &["enhanced", "enabled", "disabled"];

fn validate_settings(settings: &[s::ClusterSetting]) -> Result<(), AwsError> {
    for setting in settings {
        if setting.name.is_none() {
            return Err(invalid("A cluster setting must have a name."));
        }
        match setting.value.as_deref() {
            Some(v) if CONTAINER_INSIGHTS_VALUES.contains(&v) => {}
            other => {
                return Err(invalid(format!(
                    "The value '{}' is not valid for the containerInsights setting. Valid values are: enhanced, enabled, disabled.",
                    other.unwrap_or("")
                )));
            }
        }
    }
    Ok(())
}

/// Applies `new` settings over `current` (one value per setting name).
fn merge_settings(current: &mut Vec<s::ClusterSetting>, new: &[s::ClusterSetting]) {
    for setting in new {
        match current.iter_mut().find(|c| c.name == setting.name) {
            Some(c) => c.value = setting.value.clone(),
            None => current.push(setting.clone()),
        }
    }
}

/// The account's default for containerInsights (account setting), else "disabled".
fn default_container_insights(tx: &Tx<'_>, ctx: &RequestContext) -> Result<String, Failure> {
    Ok(
        super::account_settings::effective_value(tx, ctx, "containerInsights")?
            .unwrap_or_else(|| "disabled".into()),
    )
}

/// Checks a cluster's capacity providers and default strategy as PutClusterCapacityProviders
/// and CreateCluster do.
fn validate_capacity_providers(
    tx: &Tx<'_>,
    ctx: &RequestContext,
    cluster: &str,
    providers: &[String],
    strategy: &[s::CapacityProviderStrategyItem],
) -> Result<(), Failure> {
    let mut custom = 0;
    for (i, name) in providers.iter().enumerate() {
        if providers[..i].contains(name) {
            return Err(invalid(format!(
                "The capacity provider '{name}' is specified more than once."
            ))
            .into());
        }
        if FARGATE_PROVIDERS.contains(&name.as_str()) {
            continue;
        }
        let provider_name = common::arn_resource(ctx, name, "capacity-provider")
            .and_then(Result::ok)
            .unwrap_or(name);
        match tx.get_json::<s::CapacityProvider>(
            scope(ctx),
            kind::CAPACITY_PROVIDER,
            provider_name,
        )? {
            Some((cp, _)) if cp.status == Some(s::CapacityProviderStatus::Active) => {
                custom += 1;
                if let Some(owner) = attached_cluster(tx, ctx, provider_name)?
                    && owner != cluster
                {
                    return Err(ErrorCode::ResourceInUseException
                        .with(format!(
                            "The specified capacity provider '{provider_name}' is already associated with another cluster."
                        ))
                        .into());
                }
            }
            _ => {
                return Err(invalid(format!(
                    "The specified capacity provider '{name}' does not exist. Specify a valid capacity provider and try again."
                ))
                .into());
            }
        }
    }
    if custom > 0
        && providers
            .iter()
            .any(|p| FARGATE_PROVIDERS.contains(&p.as_str()))
        && !strategy.is_empty()
    {
        let mixes = strategy
            .iter()
            .any(|i| FARGATE_PROVIDERS.contains(&i.capacity_provider.as_str()))
            && strategy
                .iter()
                .any(|i| !FARGATE_PROVIDERS.contains(&i.capacity_provider.as_str()));
        if mixes {
            return Err(invalid(
                "A capacity provider strategy can contain either Fargate capacity providers or Auto Scaling group capacity providers, not both.",
            )
            .into());
        }
    }
    validate_strategy(strategy)?;
    let names = short_names(ctx, providers);
    for item in strategy {
        let item_name = short_names(ctx, std::slice::from_ref(&item.capacity_provider));
        if !item_name.iter().all(|n| names.contains(n)) {
            return Err(invalid(
                "The specified capacity provider strategy cannot contain a capacity provider that is not associated with the cluster. Associate the capacity provider with the cluster or specify a valid capacity provider and try again.",
            )
            .into());
        }
    }
    Ok(())
}

/// Capacity provider names as a cluster shows them: an ARN becomes its name.
fn short_names(ctx: &RequestContext, providers: &[String]) -> Vec<String> {
    providers
        .iter()
        .map(|p| {
            common::arn_resource(ctx, p, "capacity-provider")
                .and_then(Result::ok)
                .unwrap_or(p)
                .to_string()
        })
        .collect()
}

/// The rules of a capacity provider strategy on its own: base 0–100000 on at most one item,
/// weight 0–1000, no provider twice, at most 20 items.
pub fn validate_strategy(strategy: &[s::CapacityProviderStrategyItem]) -> Result<(), AwsError> {
    if strategy.len() > 20 {
        return Err(invalid(
            "A capacity provider strategy can contain at most 20 capacity providers.",
        ));
    }
    let mut with_base = 0;
    for (i, item) in strategy.iter().enumerate() {
        if strategy[..i]
            .iter()
            .any(|o| o.capacity_provider == item.capacity_provider)
        {
            return Err(invalid(format!(
                "The capacity provider '{}' is specified more than once in the capacity provider strategy.",
                item.capacity_provider
            )));
        }
        let base = item.base.unwrap_or(0);
        if !(0..=100_000).contains(&base) {
            return Err(invalid(
                "The base value of a capacity provider strategy item must be between 0 and 100000.",
            ));
        }
        if base > 0 {
            with_base += 1;
        }
        if !(0..=1000).contains(&item.weight.unwrap_or(0)) {
            return Err(invalid(
                "The weight value of a capacity provider strategy item must be between 0 and 1000.",
            ));
        }
    }
    if with_base > 1 {
        return Err(invalid(
            "Only one capacity provider in a capacity provider strategy can have a base defined.",
        ));
    }
    Ok(())
}

/// The ACTIVE cluster a custom capacity provider is associated with, if any.
pub fn attached_cluster(
    tx: &Tx<'_>,
    ctx: &RequestContext,
    provider: &str,
) -> Result<Option<String>, Failure> {
    for (name, c) in tx.list_json::<s::Cluster>(scope(ctx), kind::CLUSTER, "")? {
        if c.status.as_deref() == Some("ACTIVE")
            && c.capacity_providers.iter().flatten().any(|p| p == provider)
        {
            return Ok(Some(name));
        }
    }
    Ok(None)
}

/// A cluster as DescribeClusters shows it: stored fields, derived counts, and the optional
/// parts only when `include` asks for them.
fn present(
    tx: &Tx<'_>,
    index: &ClusterIndex,
    ctx: &RequestContext,
    stored: &s::Cluster,
    include: &[ClusterField],
) -> Result<s::Cluster, Failure> {
    let mut c = stored.clone();
    let name = c.cluster_name.clone().unwrap_or_default();
    let instances = if c.status.as_deref() == Some("ACTIVE") {
        super::container_instances::count_registered(tx, index, ctx, &name)?
    } else {
        0
    };
    c.registered_container_instances_count = Some(instances);
    let (running, pending) = if c.status.as_deref() == Some("ACTIVE") {
        super::tasks::counts(tx, ctx, &name)?
    } else {
        (0, 0)
    };
    c.running_tasks_count = Some(running);
    c.pending_tasks_count = Some(pending);
    c.active_services_count = Some(if c.status.as_deref() == Some("ACTIVE") {
        super::services::count_active(tx, ctx, &name)?
    } else {
        0
    });
    c.capacity_providers.get_or_insert_with(Vec::new);
    c.default_capacity_provider_strategy
        .get_or_insert_with(Vec::new);
    c.statistics = Some(if include.contains(&ClusterField::Statistics) {
        statistics()
    } else {
        Vec::new()
    });
    if include.contains(&ClusterField::Tags) {
        c.tags.get_or_insert_with(Vec::new);
    } else {
        c.tags = Some(Vec::new());
    }
    if !include.contains(&ClusterField::Settings) {
        c.settings = None;
    }
    if !include.contains(&ClusterField::Configurations) {
        c.configuration = None;
    }
    if !include.contains(&ClusterField::Attachments) {
        c.attachments = None;
        c.attachments_status = None;
    }
    Ok(c)
}

/// The per-launch-type counts ECS reports under include STATISTICS.
fn statistics() -> Vec<s::KeyValuePair> {
    [
        "runningEC2TasksCount",
        "runningFargateTasksCount",
        "pendingEC2TasksCount",
        "pendingFargateTasksCount",
        "runningExternalTasksCount",
        "pendingExternalTasksCount",
        "activeEC2ServiceCount",
        "activeFargateServiceCount",
        "drainingEC2ServiceCount",
        "drainingFargateServiceCount",
        "activeExternalServiceCount",
        "drainingExternalServiceCount",
    ]
    .iter()
    .map(|k| s::KeyValuePair {
        name: Some((*k).into()),
        value: Some("0".into()),
    })
    .collect()
}

/// The full view returned by the mutating operations (settings and configuration included).
const FULL: &[ClusterField] = &[
    ClusterField::Settings,
    ClusterField::Configurations,
    ClusterField::Tags,
];

pub fn create(
    ecs: &Ecs,
    ctx: &RequestContext,
    input: s::CreateClusterRequest,
) -> Result<s::CreateClusterResponse, AwsError> {
    let name = input
        .cluster_name
        .clone()
        .unwrap_or_else(|| "default".into());
    if !berth_model::names::is_cluster_name(&name) {
        return Err(invalid(
            "Cluster name can only contain letters (uppercase and lowercase), numbers, hyphens, and underscores, and be at most 255 characters long.",
        ));
    }
    let tags = input.tags.clone().unwrap_or_default();
    common::validate_tags(&tags)?;
    let settings = input.settings.clone().unwrap_or_default();
    validate_settings(&settings)?;
    ecs.store
        .write(|tx| -> Result<s::CreateClusterResponse, Failure> {
            if let Some((existing, _)) =
                tx.get_json::<s::Cluster>(scope(ctx), kind::CLUSTER, &name)?
                && existing.status.as_deref() == Some("ACTIVE")
            {
                // CreateCluster of an existing name answers with that cluster, as ECS does.
                return Ok(s::CreateClusterResponse {
                    cluster: Some(present(tx, &ecs.index, ctx, &existing, FULL)?),
                });
            }
            // ECS creates its service-linked role with an account's first cluster.
            crate::iam::service_linked::ensure_for_ecs(tx, ctx)?;
            let providers = input.capacity_providers.clone().unwrap_or_default();
            let strategy = input
                .default_capacity_provider_strategy
                .clone()
                .unwrap_or_default();
            validate_capacity_providers(tx, ctx, &name, &providers, &strategy)?;
            let providers = short_names(ctx, &providers);
            let mut all_settings = vec![s::ClusterSetting {
                name: Some(s::ClusterSettingName::ContainerInsights),
                value: Some(default_container_insights(tx, ctx)?),
            }];
            merge_settings(&mut all_settings, &settings);
            let cluster = s::Cluster {
                cluster_arn: Some(cluster_arn(ctx, &name)),
                cluster_name: Some(name.clone()),
                status: Some("ACTIVE".into()),
                settings: Some(all_settings),
                configuration: input.configuration.clone(),
                capacity_providers: Some(providers),
                default_capacity_provider_strategy: Some(strategy),
                service_connect_defaults: input.service_connect_defaults.as_ref().map(|d| {
                    s::ClusterServiceConnectDefaults {
                        namespace: Some(d.namespace.clone()),
                    }
                }),
                tags: Some(tags.clone()),
                ..Default::default()
            };
            tx.put(scope(ctx), kind::CLUSTER, &name, None, &cluster)?;
            Ok(s::CreateClusterResponse {
                cluster: Some(present(tx, &ecs.index, ctx, &cluster, FULL)?),
            })
        })
        .map_err(aws)
}

pub fn describe(
    ecs: &Ecs,
    ctx: &RequestContext,
    input: s::DescribeClustersRequest,
) -> Result<s::DescribeClustersResponse, AwsError> {
    let idents = input
        .clusters
        .clone()
        .unwrap_or_else(|| vec!["default".into()]);
    if idents.len() > 100 {
        return Err(invalid(
            "DescribeClusters can describe at most 100 clusters in one call.",
        ));
    }
    let include = input.include.clone().unwrap_or_default();
    ecs.store
        .read(|tx| -> Result<s::DescribeClustersResponse, Failure> {
            let mut clusters = Vec::new();
            let mut failures = Vec::new();
            for ident in &idents {
                let found = match common::cluster_name(ctx, Some(ident)) {
                    Ok(name) => tx.get_json::<s::Cluster>(scope(ctx), kind::CLUSTER, &name)?,
                    Err(_) => None,
                };
                match found {
                    Some((c, _)) => clusters.push(present(tx, &ecs.index, ctx, &c, &include)?),
                    None => failures.push(s::Failure {
                        arn: Some(if ident.starts_with("arn:") {
                            ident.clone()
                        } else {
                            cluster_arn(ctx, ident)
                        }),
                        reason: Some("MISSING".into()),
                        detail: None,
                    }),
                }
            }
            Ok(s::DescribeClustersResponse {
                clusters: Some(clusters),
                failures: Some(failures),
            })
        })
        .map_err(aws)
}

pub fn list(
    ecs: &Ecs,
    ctx: &RequestContext,
    input: s::ListClustersRequest,
) -> Result<s::ListClustersResponse, AwsError> {
    let page = Page::parse(input.next_token.as_deref(), input.max_results, 100)?;
    ecs.store
        .read(|tx| -> Result<s::ListClustersResponse, Failure> {
            // Inactive clusters are skipped, so scan in chunks until the page is full.
            let mut names: Vec<String> = Vec::new();
            let mut after = page.after.clone();
            loop {
                let chunk = tx.list(scope(ctx), kind::CLUSTER, "", after.as_deref(), 256)?;
                let done = chunk.len() < 256;
                for r in &chunk {
                    let c: s::Cluster = r.decode(kind::CLUSTER)?;
                    if c.status.as_deref() == Some("ACTIVE") {
                        names.push(r.id.clone());
                    }
                }
                after = chunk.last().map(|r| r.id.clone());
                if done || names.len() > page.limit {
                    break;
                }
            }
            let next_token = page.next_token(&mut names, Clone::clone);
            Ok(s::ListClustersResponse {
                cluster_arns: Some(names.iter().map(|n| cluster_arn(ctx, n)).collect()),
                next_token,
            })
        })
        .map_err(aws)
}

/// Loads the ACTIVE cluster `ident`, lets `change` edit it, stores it and returns its full view.
fn modify(
    ecs: &Ecs,
    ctx: &RequestContext,
    ident: &str,
    change: impl FnOnce(&Tx<'_>, &mut s::Cluster) -> Result<(), Failure>,
) -> Result<s::Cluster, AwsError> {
    ecs.store
        .write(|tx| -> Result<s::Cluster, Failure> {
            let (mut cluster, version) = common::active_cluster(tx, ctx, Some(ident))?;
            change(tx, &mut cluster)?;
            let name = cluster.cluster_name.clone().unwrap_or_default();
            tx.put(scope(ctx), kind::CLUSTER, &name, Some(version), &cluster)?;
            present(tx, &ecs.index, ctx, &cluster, FULL)
        })
        .map_err(aws)
}

pub fn update(
    ecs: &Ecs,
    ctx: &RequestContext,
    input: s::UpdateClusterRequest,
) -> Result<s::UpdateClusterResponse, AwsError> {
    if let Some(settings) = &input.settings {
        validate_settings(settings)?;
    }
    let cluster = modify(ecs, ctx, &input.cluster, |_, c| {
        if let Some(settings) = &input.settings {
            merge_settings(c.settings.get_or_insert_with(Vec::new), settings);
        }
        if let Some(conf) = &input.configuration {
            c.configuration = Some(conf.clone());
        }
        if let Some(d) = &input.service_connect_defaults {
            c.service_connect_defaults = Some(s::ClusterServiceConnectDefaults {
                namespace: Some(d.namespace.clone()),
            });
        }
        Ok(())
    })?;
    Ok(s::UpdateClusterResponse {
        cluster: Some(cluster),
    })
}

pub fn update_settings(
    ecs: &Ecs,
    ctx: &RequestContext,
    input: s::UpdateClusterSettingsRequest,
) -> Result<s::UpdateClusterSettingsResponse, AwsError> {
    validate_settings(&input.settings)?;
    let cluster = modify(ecs, ctx, &input.cluster, |_, c| {
        merge_settings(c.settings.get_or_insert_with(Vec::new), &input.settings);
        Ok(())
    })?;
    Ok(s::UpdateClusterSettingsResponse {
        cluster: Some(cluster),
    })
}

pub fn put_capacity_providers(
    ecs: &Ecs,
    ctx: &RequestContext,
    input: s::PutClusterCapacityProvidersRequest,
) -> Result<s::PutClusterCapacityProvidersResponse, AwsError> {
    let cluster = modify(ecs, ctx, &input.cluster, |tx, c| {
        let name = c.cluster_name.clone().unwrap_or_default();
        validate_capacity_providers(
            tx,
            ctx,
            &name,
            &input.capacity_providers,
            &input.default_capacity_provider_strategy,
        )?;
        c.capacity_providers = Some(short_names(ctx, &input.capacity_providers));
        c.default_capacity_provider_strategy =
            Some(input.default_capacity_provider_strategy.clone());
        Ok(())
    })?;
    Ok(s::PutClusterCapacityProvidersResponse {
        cluster: Some(cluster),
    })
}

pub fn delete(
    ecs: &Ecs,
    ctx: &RequestContext,
    input: s::DeleteClusterRequest,
) -> Result<s::DeleteClusterResponse, AwsError> {
    ecs.store
        .write(|tx| -> Result<s::DeleteClusterResponse, Failure> {
            let (mut cluster, version) = common::active_cluster(tx, ctx, Some(&input.cluster))?;
            let name = cluster.cluster_name.clone().unwrap_or_default();
            if super::container_instances::count_registered(tx, &ecs.index, ctx, &name)? > 0 {
                return Err(ErrorCode::ClusterContainsContainerInstancesException
                    .with("The Cluster cannot be deleted while Container Instances are active or draining.")
                    .into());
            }
            if super::services::count_active(tx, ctx, &name)? > 0 {
                return Err(ErrorCode::ClusterContainsServicesException
                    .with("The Cluster cannot be deleted while Services are active.")
                    .into());
            }
            let (running, pending) = super::tasks::counts(tx, ctx, &name)?;
            if running + pending > 0 {
                return Err(ErrorCode::ClusterContainsTasksException
                    .with("The Cluster cannot be deleted while Tasks are active.")
                    .into());
            }
            cluster.status = Some("INACTIVE".into());
            tx.put(scope(ctx), kind::CLUSTER, &name, Some(version), &cluster)?;
            Ok(s::DeleteClusterResponse { cluster: Some(present(tx, &ecs.index, ctx, &cluster, FULL)?) })
        })
        .map_err(aws)
}
