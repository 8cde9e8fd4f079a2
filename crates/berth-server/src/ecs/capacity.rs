//! Which capacity a RunTask call's tasks run on: its launch type, else its capacity provider
//! strategy, else the cluster's default strategy, else the EC2 launch type. A strategy is
//! checked as ECS checks it and split between its providers by `berth_scheduler::split`
//! (base first, then weights). FARGATE and FARGATE_SPOT run on Berth-managed capacity; any
//! other provider is the set of container instances whose `capacityProviderName` names it.

use berth_scheduler as sched;
use berth_wire::AwsError;
use berth_wire::ecs::shapes as s;

use super::clusters::{FARGATE_PROVIDERS, validate_strategy};
use super::common::invalid;

/// Where some of a request's tasks run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Capacity {
    /// Container instances: all of the cluster's (`None`), or those of one provider.
    Ec2 { provider: Option<String> },
    /// Berth-managed capacity, as FARGATE (`None`: the FARGATE launch type) or through a
    /// Fargate provider.
    Fargate { provider: Option<String> },
}

/// ECS's message for a strategy naming a provider the cluster does not have.
const NOT_ASSOCIATED: &str = "The specified capacity provider strategy cannot contain a capacity provider that is not associated with the cluster. Associate the capacity provider with the cluster or specify a valid capacity provider and try again.";
const MIXED: &str = "A capacity provider strategy can contain either Fargate capacity providers or Auto Scaling group capacity providers, not both.";
/// ECS's message when the cluster's default strategy has no weight above 0 (as reported by
/// users); the one for a given strategy is the same sentence about that strategy.
const NO_WEIGHT_DEFAULT: &str = "There are no capacity providers with a weight value greater than zero defined in the default capacity provider strategy. At least one capacity provider must have a weight value greater than zero specified. Update the cluster's default capacity provider strategy or specify a valid capacity provider strategy and try again.";
const NO_WEIGHT: &str = "There are no capacity providers with a weight value greater than zero defined in the capacity provider strategy. At least one capacity provider must have a weight value greater than zero specified. Specify a valid capacity provider strategy and try again.";

/// The short name of a strategy item's provider (the model says short name; an ARN is
/// tolerated as elsewhere).
fn short(name: &str) -> &str {
    match name.rsplit_once(":capacity-provider/") {
        Some((_, n)) => n,
        None => name,
    }
}

/// How `count` tasks of a RunTask call are split between capacities, in the strategy's
/// order (shares of 0 included).
pub fn shares(
    cluster: &s::Cluster,
    launch_type: Option<s::LaunchType>,
    strategy: Option<&[s::CapacityProviderStrategyItem]>,
    count: usize,
) -> Result<Vec<(Capacity, usize)>, AwsError> {
    if launch_type.is_some() && strategy.is_some_and(|s| !s.is_empty()) {
        return Err(invalid(
            "Specifying both a launch type and capacity provider strategy is not supported. Remove one and try again.",
        ));
    }
    match launch_type {
        Some(s::LaunchType::Fargate) => {
            return Ok(vec![(Capacity::Fargate { provider: None }, count)]);
        }
        Some(s::LaunchType::Ec2) => return Ok(vec![(Capacity::Ec2 { provider: None }, count)]),
        Some(other) => {
            return Err(invalid(format!(
                "The launch type {} is not supported by Berth yet.",
                other.as_str()
            )));
        }
        None => {}
    }
    let given = strategy.is_some_and(|s| !s.is_empty());
    let strategy: Vec<s::CapacityProviderStrategyItem> = match strategy {
        Some(s) if !s.is_empty() => s.to_vec(),
        _ => cluster
            .default_capacity_provider_strategy
            .clone()
            .unwrap_or_default(),
    };
    if strategy.is_empty() {
        return Ok(vec![(Capacity::Ec2 { provider: None }, count)]);
    }
    validate_strategy(&strategy)?;
    let associated = cluster.capacity_providers.as_deref().unwrap_or_default();
    let names: Vec<&str> = strategy
        .iter()
        .map(|i| short(&i.capacity_provider))
        .collect();
    if names.iter().any(|n| !associated.iter().any(|a| a == n)) {
        return Err(invalid(NOT_ASSOCIATED));
    }
    let fargate = |n: &&str| FARGATE_PROVIDERS.contains(n);
    if names.iter().any(fargate) && !names.iter().all(fargate) {
        return Err(invalid(MIXED));
    }
    let items: Vec<sched::Share> = strategy
        .iter()
        .map(|i| sched::Share {
            base: u32::try_from(i.base.unwrap_or(0)).unwrap_or(0),
            weight: u32::try_from(i.weight.unwrap_or(0)).unwrap_or(0),
        })
        .collect();
    let counts = sched::split(&items, count).map_err(|e| match e {
        sched::SplitError::NoWeight if given => invalid(NO_WEIGHT),
        sched::SplitError::NoWeight => invalid(NO_WEIGHT_DEFAULT),
        sched::SplitError::SeveralBases => invalid(
            "Only one capacity provider in a capacity provider strategy can have a base defined.",
        ),
        sched::SplitError::Empty => invalid("The capacity provider strategy cannot be empty."),
    })?;
    Ok(names
        .into_iter()
        .zip(counts)
        .map(|(n, c)| {
            let provider = Some(n.to_string());
            let cap = if fargate(&n) {
                Capacity::Fargate { provider }
            } else {
                Capacity::Ec2 { provider }
            };
            (cap, c)
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(name: &str, base: i32, weight: i32) -> s::CapacityProviderStrategyItem {
        s::CapacityProviderStrategyItem {
            capacity_provider: name.into(),
            base: Some(base),
            weight: Some(weight),
        }
    }

    fn cluster(providers: &[&str], default: Vec<s::CapacityProviderStrategyItem>) -> s::Cluster {
        s::Cluster {
            capacity_providers: Some(providers.iter().map(|p| p.to_string()).collect()),
            default_capacity_provider_strategy: Some(default),
            ..Default::default()
        }
    }

    fn ec2(p: &str) -> Capacity {
        Capacity::Ec2 {
            provider: Some(p.into()),
        }
    }

    #[test]
    fn launch_type_strategy_and_default() {
        let c = cluster(
            &["a", "b", "FARGATE"],
            vec![item("a", 1, 0), item("b", 0, 1)],
        );
        assert_eq!(
            shares(&c, Some(s::LaunchType::Ec2), None, 3).unwrap(),
            [(Capacity::Ec2 { provider: None }, 3)]
        );
        // The cluster's default applies when neither is given.
        assert_eq!(
            shares(&c, None, None, 3).unwrap(),
            [(ec2("a"), 1), (ec2("b"), 2)]
        );
        // A given strategy wins over the default.
        let given = [item("FARGATE", 0, 1)];
        assert_eq!(
            shares(&c, None, Some(&given), 2).unwrap(),
            [(
                Capacity::Fargate {
                    provider: Some("FARGATE".into())
                },
                2
            )]
        );
        // No default: the EC2 launch type.
        assert_eq!(
            shares(&cluster(&[], vec![]), None, None, 1).unwrap(),
            [(Capacity::Ec2 { provider: None }, 1)]
        );
    }

    #[test]
    fn refusals_as_ecs_phrases_them() {
        let c = cluster(&["a", "b", "FARGATE", "FARGATE_SPOT"], vec![]);
        let msg = |items: &[s::CapacityProviderStrategyItem], lt| {
            shares(&c, lt, Some(items), 2).unwrap_err().message
        };
        assert!(msg(&[item("a", 0, 1)], Some(s::LaunchType::Ec2)).starts_with("Specifying both"));
        assert_eq!(msg(&[item("zz", 0, 1)], None), NOT_ASSOCIATED);
        assert_eq!(msg(&[item("a", 0, 1), item("FARGATE", 0, 1)], None), MIXED);
        assert_eq!(msg(&[item("a", 1, 0), item("b", 0, 0)], None), NO_WEIGHT);
        assert_eq!(
            msg(&[item("a", 1, 1), item("b", 1, 1)], None),
            "Only one capacity provider in a capacity provider strategy can have a base defined."
        );
        assert!(
            msg(&[item("a", 0, 1001)], None).contains("weight"),
            "weights are checked"
        );
        // A lone provider needs a weight too.
        assert_eq!(msg(&[item("a", 0, 0)], None), NO_WEIGHT);
        let zero = cluster(&["a"], vec![item("a", 0, 0)]);
        assert_eq!(
            shares(&zero, None, None, 1).unwrap_err().message,
            NO_WEIGHT_DEFAULT
        );
        assert_eq!(
            shares(&c, None, Some(&[item("a", 0, 2)]), 2).unwrap(),
            [(ec2("a"), 2)]
        );
    }
}
