//! Capacity providers: CreateCapacityProvider, DescribeCapacityProviders,
//! UpdateCapacityProvider, DeleteCapacityProvider.
//!
//! A custom (Auto Scaling group) capacity provider is stored as its wire shape, tags in its
//! `tags` field, under its name. FARGATE and FARGATE_SPOT are not stored: every account has
//! them, and they are shown as ECS shows them. A deleted provider stays as INACTIVE with
//! updateStatus DELETE_COMPLETE, so naming it in DescribeCapacityProviders still shows it;
//! its name may be used again.

use berth_store::Tx;
use berth_wire::ecs::ErrorCode;
use berth_wire::ecs::shapes as s;
use berth_wire::{AwsError, RequestContext};

use super::Ecs;
use super::clusters::FARGATE_PROVIDERS;
use super::common::{self, Page, aws, client, invalid, kind, scope};
use crate::failure::Failure;

/// ECS's defaults for managed scaling.
const DEFAULT_TARGET_CAPACITY: i32 = 100;
const DEFAULT_MIN_STEP: i32 = 1;
const DEFAULT_MAX_STEP: i32 = 10_000;
const DEFAULT_WARMUP: i32 = 300;

/// `arn:aws:ecs:<region>:<account>:capacity-provider/<name>`.
pub fn provider_arn(ctx: &RequestContext, name: &str) -> String {
    common::arn(ctx, format!("capacity-provider/{name}"))
}

/// The name a capacity provider parameter (name or ARN) refers to; `None` for an ARN of
/// another type, account or region.
pub fn provider_name<'a>(ctx: &RequestContext, ident: &'a str) -> Option<&'a str> {
    match common::arn_resource(ctx, ident, "capacity-provider") {
        Some(Ok(name)) => Some(name),
        Some(Err(())) => None,
        None => Some(ident),
    }
}

/// The rules for a new capacity provider's name: 1–255 letters, digits, hyphens and
/// underscores, not prefixed with `aws`, `ecs` or `fargate` (any case).
pub fn validate_name(name: &str) -> Result<(), AwsError> {
    if !berth_model::names::is_simple_name(name, 255) {
        return Err(invalid(
            "The specified capacity provider name is invalid. Up to 255 characters are allowed, including letters (upper and lowercase), numbers, underscores, and hyphens.",
        ));
    }
    let lower = name.to_ascii_lowercase();
    if ["aws", "ecs", "fargate"]
        .iter()
        .any(|p| lower.starts_with(p))
    {
        return Err(invalid(
            "The specified capacity provider name is invalid. The name can't be prefixed with \"aws\", \"ecs\", or \"fargate\".",
        ));
    }
    Ok(())
}

/// Managed scaling with ECS's defaults filled in for the fields `given` leaves out, over
/// `current` (the provider's present settings, or none for a new one).
pub fn fill_managed_scaling(
    current: Option<&s::ManagedScaling>,
    given: Option<&s::ManagedScaling>,
) -> s::ManagedScaling {
    let pick = |g: Option<i32>, c: Option<i32>, d: i32| g.or(c).unwrap_or(d);
    let c = current.cloned().unwrap_or_default();
    let g = given.cloned().unwrap_or_default();
    s::ManagedScaling {
        status: Some(
            g.status
                .or(c.status)
                .unwrap_or(s::ManagedScalingStatus::Disabled),
        ),
        target_capacity: Some(pick(
            g.target_capacity,
            c.target_capacity,
            DEFAULT_TARGET_CAPACITY,
        )),
        minimum_scaling_step_size: Some(pick(
            g.minimum_scaling_step_size,
            c.minimum_scaling_step_size,
            DEFAULT_MIN_STEP,
        )),
        maximum_scaling_step_size: Some(pick(
            g.maximum_scaling_step_size,
            c.maximum_scaling_step_size,
            DEFAULT_MAX_STEP,
        )),
        instance_warmup_period: Some(pick(
            g.instance_warmup_period,
            c.instance_warmup_period,
            DEFAULT_WARMUP,
        )),
    }
}

/// ECS's ranges for managed scaling (the model's): targetCapacity 1–100, step sizes
/// 1–10000 with the minimum not above the maximum, warm-up 0–10000 seconds.
pub fn validate_managed_scaling(m: &s::ManagedScaling) -> Result<(), AwsError> {
    let target = m.target_capacity.unwrap_or(DEFAULT_TARGET_CAPACITY);
    if !(1..=100).contains(&target) {
        return Err(invalid(
            "The managed scaling target capacity must be greater than 0 and less than or equal to 100.",
        ));
    }
    let min = m.minimum_scaling_step_size.unwrap_or(DEFAULT_MIN_STEP);
    let max = m.maximum_scaling_step_size.unwrap_or(DEFAULT_MAX_STEP);
    if !(1..=10_000).contains(&min) {
        return Err(invalid(
            "The minimum scaling step size must be between 1 and 10000.",
        ));
    }
    if !(1..=10_000).contains(&max) {
        return Err(invalid(
            "The maximum scaling step size must be between 1 and 10000.",
        ));
    }
    if min > max {
        return Err(invalid(
            "The minimum scaling step size must be less than or equal to the maximum scaling step size.",
        ));
    }
    if !(0..=10_000).contains(&m.instance_warmup_period.unwrap_or(DEFAULT_WARMUP)) {
        return Err(invalid(
            "The instance warmup period must be between 0 and 10000 seconds.",
        ));
    }
    Ok(())
}

/// Managed termination protection needs managed scaling, as ECS checks.
fn validate_termination_protection(p: &s::AutoScalingGroupProvider) -> Result<(), AwsError> {
    let protected =
        p.managed_termination_protection == Some(s::ManagedTerminationProtection::Enabled);
    let scaling =
        p.managed_scaling.as_ref().and_then(|m| m.status) == Some(s::ManagedScalingStatus::Enabled);
    if protected && !scaling {
        return Err(client(
            "The managed termination protection setting for the capacity provider is invalid. To enable managed termination protection for a capacity provider, the capacity provider must have managed scaling enabled.",
        ));
    }
    Ok(())
}

/// How DescribeCapacityProviders shows FARGATE or FARGATE_SPOT.
fn fargate_provider(ctx: &RequestContext, name: &str) -> s::CapacityProvider {
    s::CapacityProvider {
        capacity_provider_arn: Some(provider_arn(ctx, name)),
        name: Some(name.to_string()),
        status: Some(s::CapacityProviderStatus::Active),
        r#type: Some(if name == "FARGATE_SPOT" {
            s::CapacityProviderType::FargateSpot
        } else {
            s::CapacityProviderType::Fargate
        }),
        tags: Some(Vec::new()),
        ..Default::default()
    }
}

fn not_found() -> AwsError {
    client(
        "The specified capacity provider does not exist. Specify a valid name or ARN and try again.",
    )
}

/// The ACTIVE custom capacity provider `ident` (name or ARN) names, with its version.
fn active_provider(
    tx: &Tx<'_>,
    ctx: &RequestContext,
    ident: &str,
) -> Result<(s::CapacityProvider, i64), Failure> {
    let name = provider_name(ctx, ident).ok_or_else(not_found)?;
    match tx.get_json::<s::CapacityProvider>(scope(ctx), kind::CAPACITY_PROVIDER, name)? {
        Some((cp, v)) if cp.status == Some(s::CapacityProviderStatus::Active) => Ok((cp, v)),
        _ => Err(not_found().into()),
    }
}

/// A provider as shown: tags only when asked for.
fn present(cp: &s::CapacityProvider, with_tags: bool) -> s::CapacityProvider {
    let mut cp = cp.clone();
    if with_tags {
        cp.tags.get_or_insert_with(Vec::new);
    } else {
        cp.tags = Some(Vec::new());
    }
    cp
}

pub fn create(
    ecs: &Ecs,
    ctx: &RequestContext,
    input: s::CreateCapacityProviderRequest,
) -> Result<s::CreateCapacityProviderResponse, AwsError> {
    if input.managed_instances_provider.is_some() {
        return Err(ErrorCode::UnsupportedFeatureException
            .with("Amazon ECS Managed Instances capacity providers are not supported by Berth."));
    }
    if FARGATE_PROVIDERS.contains(&input.name.as_str()) {
        return Err(client(
            "The specified capacity provider already exists. To change the configuration of an existing capacity provider, update the capacity provider.",
        ));
    }
    validate_name(&input.name)?;
    let Some(asg) = input.auto_scaling_group_provider.clone() else {
        return Err(invalid(
            "An Auto Scaling group provider must be specified for the capacity provider.",
        ));
    };
    if asg.auto_scaling_group_arn.trim().is_empty() {
        return Err(invalid(
            "The Auto Scaling group ARN must be specified for the capacity provider.",
        ));
    }
    if let Some(m) = &asg.managed_scaling {
        validate_managed_scaling(m)?;
    }
    validate_termination_protection(&asg)?;
    let tags = input.tags.clone().unwrap_or_default();
    common::validate_tags(&tags)?;
    let provider = s::CapacityProvider {
        capacity_provider_arn: Some(provider_arn(ctx, &input.name)),
        name: Some(input.name.clone()),
        status: Some(s::CapacityProviderStatus::Active),
        r#type: Some(s::CapacityProviderType::Ec2Autoscaling),
        auto_scaling_group_provider: Some(s::AutoScalingGroupProvider {
            auto_scaling_group_arn: asg.auto_scaling_group_arn.clone(),
            managed_scaling: Some(fill_managed_scaling(None, asg.managed_scaling.as_ref())),
            managed_termination_protection: Some(
                asg.managed_termination_protection
                    .unwrap_or(s::ManagedTerminationProtection::Disabled),
            ),
            managed_draining: Some(asg.managed_draining.unwrap_or(s::ManagedDraining::Enabled)),
        }),
        tags: Some(tags),
        ..Default::default()
    };
    ecs.store
        .write(|tx| -> Result<s::CreateCapacityProviderResponse, Failure> {
            let existing = tx.get_json::<s::CapacityProvider>(scope(ctx), kind::CAPACITY_PROVIDER, &input.name)?;
            if let Some((cp, _)) = &existing
                && cp.status != Some(s::CapacityProviderStatus::Inactive)
            {
                return Err(client(
                    "The specified capacity provider already exists. To change the configuration of an existing capacity provider, update the capacity provider.",
                )
                .into());
            }
            for (other, cp) in tx.list_json::<s::CapacityProvider>(scope(ctx), kind::CAPACITY_PROVIDER, "")? {
                if other != input.name
                    && cp.status != Some(s::CapacityProviderStatus::Inactive)
                    && cp.auto_scaling_group_provider.as_ref().map(|a| a.auto_scaling_group_arn.as_str())
                        == Some(asg.auto_scaling_group_arn.as_str())
                {
                    return Err(client(
                        "The specified Auto Scaling group ARN is already being used by another capacity provider. Specify a unique Auto Scaling group ARN and try again.",
                    )
                    .into());
                }
            }
            tx.put(scope(ctx), kind::CAPACITY_PROVIDER, &input.name, existing.map(|(_, v)| v), &provider)?;
            Ok(s::CreateCapacityProviderResponse { capacity_provider: Some(present(&provider, true)) })
        })
        .map_err(aws)
}

/// Where a provider sorts in DescribeCapacityProviders: custom ones by name, then FARGATE
/// and FARGATE_SPOT. This key is what the page token holds.
fn sort_key(name: &str) -> String {
    if FARGATE_PROVIDERS.contains(&name) {
        format!("1|{name}")
    } else {
        format!("0|{name}")
    }
}

pub fn describe(
    ecs: &Ecs,
    ctx: &RequestContext,
    input: s::DescribeCapacityProvidersRequest,
) -> Result<s::DescribeCapacityProvidersResponse, AwsError> {
    let with_tags = input
        .include
        .iter()
        .flatten()
        .any(|f| *f == s::CapacityProviderField::Tags);
    let named = input.capacity_providers.clone().unwrap_or_default();
    if named.len() > 100 {
        return Err(invalid(
            "DescribeCapacityProviders can describe at most 100 capacity providers in one call.",
        ));
    }
    let page = Page::parse(input.next_token.as_deref(), input.max_results, 10)?;
    ecs.store
        .read(
            |tx| -> Result<s::DescribeCapacityProvidersResponse, Failure> {
                let cluster_filter = match &input.cluster {
                    Some(c) => Some(
                        common::active_cluster(tx, ctx, Some(c))?
                            .0
                            .capacity_providers
                            .unwrap_or_default(),
                    ),
                    None => None,
                };
                let in_cluster = |name: &str| {
                    cluster_filter
                        .as_ref()
                        .is_none_or(|list| list.iter().any(|p| p == name))
                };
                if !named.is_empty() {
                    let mut providers = Vec::new();
                    let mut failures = Vec::new();
                    for ident in &named {
                        let found = match provider_name(ctx, ident) {
                            Some(name) if FARGATE_PROVIDERS.contains(&name) => {
                                Some(fargate_provider(ctx, name))
                            }
                            Some(name) => tx
                                .get_json::<s::CapacityProvider>(
                                    scope(ctx),
                                    kind::CAPACITY_PROVIDER,
                                    name,
                                )?
                                .map(|(cp, _)| present(&cp, with_tags)),
                            None => None,
                        };
                        match found {
                            Some(cp) if in_cluster(cp.name.as_deref().unwrap_or_default()) => {
                                providers.push(cp)
                            }
                            _ => failures.push(s::Failure {
                                arn: Some(if ident.starts_with("arn:") {
                                    ident.clone()
                                } else {
                                    provider_arn(ctx, ident)
                                }),
                                reason: Some("MISSING".into()),
                                detail: None,
                            }),
                        }
                    }
                    return Ok(s::DescribeCapacityProvidersResponse {
                        capacity_providers: Some(providers),
                        failures: Some(failures),
                        next_token: None,
                    });
                }
                let mut all: Vec<(String, s::CapacityProvider)> = tx
                    .list_json::<s::CapacityProvider>(scope(ctx), kind::CAPACITY_PROVIDER, "")?
                    .into_iter()
                    .filter(|(_, cp)| cp.status == Some(s::CapacityProviderStatus::Active))
                    .map(|(name, cp)| (sort_key(&name), present(&cp, with_tags)))
                    .collect();
                for name in FARGATE_PROVIDERS {
                    all.push((sort_key(name), fargate_provider(ctx, name)));
                }
                all.retain(|(key, cp)| {
                    in_cluster(cp.name.as_deref().unwrap_or_default())
                        && page.after.as_ref().is_none_or(|a| key > a)
                });
                all.sort_by(|a, b| a.0.cmp(&b.0));
                let next_token = page.next_token(&mut all, |(key, _)| key.clone());
                Ok(s::DescribeCapacityProvidersResponse {
                    capacity_providers: Some(all.into_iter().map(|(_, cp)| cp).collect()),
                    failures: Some(Vec::new()),
                    next_token,
                })
            },
        )
        .map_err(aws)
}

pub fn update(
    ecs: &Ecs,
    ctx: &RequestContext,
    input: s::UpdateCapacityProviderRequest,
) -> Result<s::UpdateCapacityProviderResponse, AwsError> {
    if input.managed_instances_provider.is_some() {
        return Err(ErrorCode::UnsupportedFeatureException
            .with("Amazon ECS Managed Instances capacity providers are not supported by Berth."));
    }
    if provider_name(ctx, &input.name).is_some_and(|n| FARGATE_PROVIDERS.contains(&n)) {
        return Err(client(
            "The FARGATE and FARGATE_SPOT capacity providers are reserved and can't be updated.",
        ));
    }
    let Some(change) = input.auto_scaling_group_provider.clone() else {
        return Err(invalid(
            "An Auto Scaling group provider update must be specified.",
        ));
    };
    if let Some(m) = &change.managed_scaling {
        validate_managed_scaling(m)?;
    }
    ecs.store
        .write(|tx| -> Result<s::UpdateCapacityProviderResponse, Failure> {
            let (mut cp, version) = active_provider(tx, ctx, &input.name)?;
            let name = cp.name.clone().unwrap_or_default();
            let mut asg = cp.auto_scaling_group_provider.clone().unwrap_or_default();
            if change.managed_scaling.is_some() {
                let merged = fill_managed_scaling(
                    asg.managed_scaling.as_ref(),
                    change.managed_scaling.as_ref(),
                );
                validate_managed_scaling(&merged)?;
                asg.managed_scaling = Some(merged);
            }
            if let Some(p) = change.managed_termination_protection {
                asg.managed_termination_protection = Some(p);
            }
            if let Some(d) = change.managed_draining {
                asg.managed_draining = Some(d);
            }
            validate_termination_protection(&asg)?;
            cp.auto_scaling_group_provider = Some(asg);
            cp.update_status = Some(s::CapacityProviderUpdateStatus::UpdateComplete);
            cp.update_status_reason = None;
            tx.put(
                scope(ctx),
                kind::CAPACITY_PROVIDER,
                &name,
                Some(version),
                &cp,
            )?;
            // The update is applied at once; the reply shows it under way, as ECS's does.
            let mut shown = present(&cp, true);
            shown.update_status = Some(s::CapacityProviderUpdateStatus::UpdateInProgress);
            Ok(s::UpdateCapacityProviderResponse {
                capacity_provider: Some(shown),
            })
        })
        .map_err(aws)
}

pub fn delete(
    ecs: &Ecs,
    ctx: &RequestContext,
    input: s::DeleteCapacityProviderRequest,
) -> Result<s::DeleteCapacityProviderResponse, AwsError> {
    if provider_name(ctx, &input.capacity_provider).is_some_and(|n| FARGATE_PROVIDERS.contains(&n))
    {
        return Err(client(
            "The FARGATE and FARGATE_SPOT capacity providers are reserved and can't be deleted.",
        ));
    }
    ecs.store
        .write(|tx| -> Result<s::DeleteCapacityProviderResponse, Failure> {
            let (mut cp, version) = active_provider(tx, ctx, &input.capacity_provider)?;
            let name = cp.name.clone().unwrap_or_default();
            // ECS answers a provider still associated with a cluster with the failed
            // deletion in the provider's update status, not with an error.
            if let Some(cluster) = super::clusters::attached_cluster(tx, ctx, &name)? {
                cp.update_status = Some(s::CapacityProviderUpdateStatus::DeleteFailed);
                cp.update_status_reason = Some(format!(
                    "The capacity provider cannot be deleted because it is associated with cluster: {cluster}. Remove the capacity provider from the cluster and try again."
                ));
                tx.put(scope(ctx), kind::CAPACITY_PROVIDER, &name, Some(version), &cp)?;
                return Ok(s::DeleteCapacityProviderResponse { capacity_provider: Some(present(&cp, true)) });
            }
            let mut deleted = cp.clone();
            deleted.status = Some(s::CapacityProviderStatus::Inactive);
            deleted.update_status = Some(s::CapacityProviderUpdateStatus::DeleteComplete);
            deleted.update_status_reason = None;
            tx.put(scope(ctx), kind::CAPACITY_PROVIDER, &name, Some(version), &deleted)?;
            // The deletion completes at once; the reply shows it under way, as ECS's does.
            cp.update_status = Some(s::CapacityProviderUpdateStatus::DeleteInProgress);
            cp.update_status_reason = None;
            Ok(s::DeleteCapacityProviderResponse { capacity_provider: Some(present(&cp, true)) })
        })
        .map_err(aws)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn ctx() -> RequestContext {
        crate::test_support::context(1_700_000_000_000)
    }

    fn ecs() -> Ecs {
        Ecs::new(Arc::new(berth_store::Store::open_in_memory().unwrap()))
    }

    fn create_req(name: &str, asg: &str) -> s::CreateCapacityProviderRequest {
        s::CreateCapacityProviderRequest {
            name: name.into(),
            auto_scaling_group_provider: Some(s::AutoScalingGroupProvider {
                auto_scaling_group_arn: asg.into(),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn name_rules() {
        assert!(validate_name("my_cp-1").is_ok());
        assert!(validate_name("").is_err());
        assert!(validate_name("a b").is_err());
        assert!(validate_name(&"a".repeat(256)).is_err());
        assert!(validate_name(&"a".repeat(255)).is_ok());
        for bad in ["aws-x", "AWSx", "ecs1", "Fargate_x", "FARGATE"] {
            assert_eq!(
                validate_name(bad).unwrap_err().code,
                "InvalidParameterException",
                "{bad}"
            );
        }
    }

    #[test]
    fn managed_scaling_defaults_and_ranges() {
        let m = fill_managed_scaling(None, None);
        assert_eq!(m.status, Some(s::ManagedScalingStatus::Disabled));
        assert_eq!(
            (
                m.target_capacity,
                m.minimum_scaling_step_size,
                m.maximum_scaling_step_size,
                m.instance_warmup_period
            ),
            (Some(100), Some(1), Some(10000), Some(300))
        );
        let given = s::ManagedScaling {
            target_capacity: Some(80),
            ..Default::default()
        };
        let m2 = fill_managed_scaling(Some(&m), Some(&given));
        assert_eq!(m2.target_capacity, Some(80));
        assert_eq!(m2.instance_warmup_period, Some(300));
        assert!(
            validate_managed_scaling(&s::ManagedScaling {
                target_capacity: Some(0),
                ..Default::default()
            })
            .is_err()
        );
        assert!(
            validate_managed_scaling(&s::ManagedScaling {
                target_capacity: Some(101),
                ..Default::default()
            })
            .is_err()
        );
        assert!(
            validate_managed_scaling(&s::ManagedScaling {
                minimum_scaling_step_size: Some(5),
                maximum_scaling_step_size: Some(4),
                ..Default::default()
            })
            .is_err()
        );
        assert!(
            validate_managed_scaling(&s::ManagedScaling {
                instance_warmup_period: Some(0),
                ..Default::default()
            })
            .is_ok()
        );
    }

    #[test]
    fn create_fills_defaults_and_refuses_duplicates() {
        let (e, c) = (ecs(), ctx());
        let cp = create(&e, &c, create_req("cp1", "asg-1"))
            .unwrap()
            .capacity_provider
            .unwrap();
        assert_eq!(
            cp.capacity_provider_arn.as_deref(),
            Some("arn:aws:ecs:us-east-1:123456789012:capacity-provider/cp1")
        );
        assert_eq!(cp.status, Some(s::CapacityProviderStatus::Active));
        let asg = cp.auto_scaling_group_provider.unwrap();
        assert_eq!(
            asg.managed_termination_protection,
            Some(s::ManagedTerminationProtection::Disabled)
        );
        assert_eq!(asg.managed_draining, Some(s::ManagedDraining::Enabled));
        assert_eq!(asg.managed_scaling.unwrap().target_capacity, Some(100));
        assert_eq!(
            create(&e, &c, create_req("cp1", "asg-2")).unwrap_err().code,
            "ClientException"
        );
        assert_eq!(
            create(&e, &c, create_req("cp2", "asg-1")).unwrap_err().code,
            "ClientException"
        );
        assert_eq!(
            create(&e, &c, create_req("FARGATE", "asg-3"))
                .unwrap_err()
                .code,
            "ClientException"
        );
        let mut protected = create_req("cp3", "asg-3");
        if let Some(a) = protected.auto_scaling_group_provider.as_mut() {
            a.managed_termination_protection = Some(s::ManagedTerminationProtection::Enabled);
        }
        assert_eq!(
            create(&e, &c, protected).unwrap_err().code,
            "ClientException"
        );
    }

    #[test]
    fn describe_lists_fargate_and_pages() {
        let (e, c) = (ecs(), ctx());
        for i in 0..3 {
            let mut r = create_req(&format!("cp{i}"), &format!("asg-{i}"));
            r.tags = Some(vec![s::Tag {
                key: Some("k".into()),
                value: Some("v".into()),
            }]);
            create(&e, &c, r).unwrap();
        }
        let all = describe(&e, &c, s::DescribeCapacityProvidersRequest::default()).unwrap();
        let names: Vec<_> = all
            .capacity_providers
            .unwrap()
            .into_iter()
            .map(|p| p.name.unwrap())
            .collect();
        assert_eq!(names, vec!["cp0", "cp1", "cp2", "FARGATE", "FARGATE_SPOT"]);
        let mut seen = Vec::new();
        let mut token = None;
        loop {
            let page = describe(
                &e,
                &c,
                s::DescribeCapacityProvidersRequest {
                    max_results: Some(2),
                    next_token: token,
                    ..Default::default()
                },
            )
            .unwrap();
            seen.extend(
                page.capacity_providers
                    .unwrap()
                    .into_iter()
                    .map(|p| p.name.unwrap()),
            );
            token = page.next_token;
            if token.is_none() {
                break;
            }
        }
        assert_eq!(seen, names);
        let one = describe(
            &e,
            &c,
            s::DescribeCapacityProvidersRequest {
                capacity_providers: Some(vec![
                    "arn:aws:ecs:us-east-1:123456789012:capacity-provider/cp1".into(),
                    "FARGATE_SPOT".into(),
                    "nope".into(),
                ]),
                include: Some(vec![s::CapacityProviderField::Tags]),
                ..Default::default()
            },
        )
        .unwrap();
        let cps = one.capacity_providers.unwrap();
        assert_eq!(cps.len(), 2);
        assert_eq!(cps[0].tags.as_ref().unwrap().len(), 1);
        assert_eq!(cps[1].r#type, Some(s::CapacityProviderType::FargateSpot));
        let failures = one.failures.unwrap();
        assert_eq!(failures[0].reason.as_deref(), Some("MISSING"));
        assert_eq!(
            failures[0].arn.as_deref(),
            Some("arn:aws:ecs:us-east-1:123456789012:capacity-provider/nope")
        );
    }

    #[test]
    fn update_and_delete() {
        let (e, c) = (ecs(), ctx());
        create(&e, &c, create_req("cp1", "asg-1")).unwrap();
        let up = update(
            &e,
            &c,
            s::UpdateCapacityProviderRequest {
                name: "cp1".into(),
                auto_scaling_group_provider: Some(s::AutoScalingGroupProviderUpdate {
                    managed_scaling: Some(s::ManagedScaling {
                        status: Some(s::ManagedScalingStatus::Enabled),
                        target_capacity: Some(90),
                        ..Default::default()
                    }),
                    managed_termination_protection: Some(s::ManagedTerminationProtection::Enabled),
                    managed_draining: Some(s::ManagedDraining::Disabled),
                }),
                ..Default::default()
            },
        )
        .unwrap()
        .capacity_provider
        .unwrap();
        let asg = up.auto_scaling_group_provider.unwrap();
        assert_eq!(asg.managed_scaling.unwrap().target_capacity, Some(90));
        assert_eq!(asg.managed_draining, Some(s::ManagedDraining::Disabled));
        let del = |name: &str| {
            delete(
                &e,
                &c,
                s::DeleteCapacityProviderRequest {
                    capacity_provider: name.into(),
                    ..Default::default()
                },
            )
        };
        assert_eq!(del("FARGATE").unwrap_err().code, "ClientException");
        assert_eq!(del("nope").unwrap_err().code, "ClientException");
        let gone = del("cp1").unwrap().capacity_provider.unwrap();
        assert_eq!(
            gone.update_status,
            Some(s::CapacityProviderUpdateStatus::DeleteInProgress)
        );
        let shown = describe(
            &e,
            &c,
            s::DescribeCapacityProvidersRequest {
                capacity_providers: Some(vec!["cp1".into()]),
                ..Default::default()
            },
        )
        .unwrap()
        .capacity_providers
        .unwrap();
        assert_eq!(shown[0].status, Some(s::CapacityProviderStatus::Inactive));
        assert_eq!(
            shown[0].update_status,
            Some(s::CapacityProviderUpdateStatus::DeleteComplete)
        );
        assert_eq!(del("cp1").unwrap_err().code, "ClientException");
        // The name can be used again once deleted.
        create(&e, &c, create_req("cp1", "asg-1")).unwrap();
    }

    #[test]
    fn delete_fails_while_attached() {
        let (e, c) = (ecs(), ctx());
        create(&e, &c, create_req("cp1", "asg-1")).unwrap();
        super::super::clusters::create(
            &e,
            &c,
            s::CreateClusterRequest {
                cluster_name: Some("web".into()),
                capacity_providers: Some(vec!["cp1".into()]),
                ..Default::default()
            },
        )
        .unwrap();
        let r = delete(
            &e,
            &c,
            s::DeleteCapacityProviderRequest {
                capacity_provider: "cp1".into(),
                ..Default::default()
            },
        )
        .unwrap()
        .capacity_provider
        .unwrap();
        assert_eq!(r.status, Some(s::CapacityProviderStatus::Active));
        assert_eq!(
            r.update_status,
            Some(s::CapacityProviderUpdateStatus::DeleteFailed)
        );
        assert!(
            r.update_status_reason
                .unwrap()
                .contains("associated with cluster: web")
        );
    }
}
