//! The texts ECS writes: service events, rolloutStateReason, a stopped task's stoppedReason.

use crate::model::StopReason;

/// `(service web) has reached a steady state.`
pub fn steady_state(service: &str) -> String {
    format!("(service {service}) has reached a steady state.")
}

fn task_list(task_ids: &[String]) -> String {
    task_ids
        .iter()
        .map(|t| format!("(task {t})"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// `(service web) has started 2 tasks: (task 1a2b) (task 3c4d).`
pub fn started(service: &str, task_ids: &[String]) -> String {
    format!(
        "(service {service}) has started {} tasks: {}.",
        task_ids.len(),
        task_list(task_ids)
    )
}

/// `(service web) has stopped 2 running tasks: (task 1a2b) (task 3c4d).`
pub fn stopped(service: &str, task_ids: &[String]) -> String {
    format!(
        "(service {service}) has stopped {} running tasks: {}.",
        task_ids.len(),
        task_list(task_ids)
    )
}

/// Why the closest container instance could not take a task, in the words of ECS's event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Closest {
    /// No container instance is registered (or all are draining).
    NoInstances,
    Memory,
    Cpu,
    Ports,
    Attribute,
    Gpu,
    /// A placement constraint or the agent: ECS quotes the error.
    Error(String),
}

/// `(service web) was unable to place a task because no container instance met all of its
/// requirements. The closest matching (container-instance 5f3e…) has insufficient memory
/// available. For more information, see the Troubleshooting section of the Amazon ECS
/// Developer Guide.`
pub fn unable_to_place(service: &str, instance_id: Option<&str>, why: &Closest) -> String {
    let head = format!(
        "(service {service}) was unable to place a task because no container instance met all of its requirements."
    );
    let tail =
        "For more information, see the Troubleshooting section of the Amazon ECS Developer Guide.";
    let what = match why {
        Closest::NoInstances => {
            return format!(
                "{head} Reason: No Container Instances were found in your cluster. {tail}"
            );
        }
        Closest::Memory => "has insufficient memory available.".to_string(),
        Closest::Cpu => "has insufficient CPU units available.".to_string(),
        Closest::Ports => "is already using a port required by your task.".to_string(),
        Closest::Attribute => "is missing an attribute required by your task.".to_string(),
        Closest::Gpu => "has insufficient GPU available.".to_string(),
        Closest::Error(e) => format!("encountered error \"{e}\"."),
    };
    format!(
        "{head} The closest matching (container-instance {}) {what} {tail}",
        instance_id.unwrap_or("")
    )
}

/// `(service web) (deployment ecs-svc/123) deployment completed.`
pub fn deployment_completed(service: &str, deployment: &str) -> String {
    format!("(service {service}) (deployment {deployment}) deployment completed.")
}

/// `(service web) (deployment ecs-svc/123) deployment failed: tasks failed to start.`
pub fn deployment_failed(service: &str, deployment: &str) -> String {
    format!(
        "(service {service}) (deployment {deployment}) deployment failed: tasks failed to start."
    )
}

/// `(service web) rolling back to deployment ecs-svc/123.`
pub fn rolling_back(service: &str, to: &str) -> String {
    format!("(service {service}) rolling back to deployment {to}.")
}

/// `(service web) (task 1a2b) failed container health checks.`
pub fn health_check_failed(service: &str, task: &str) -> String {
    format!("(service {service}) (task {task}) failed container health checks.")
}

/// rolloutStateReason of a deployment that started.
pub fn rollout_in_progress(deployment: &str) -> String {
    format!("ECS deployment {deployment} in progress.")
}

/// rolloutStateReason of a deployment that finished.
pub fn rollout_completed(deployment: &str) -> String {
    format!("ECS deployment {deployment} completed.")
}

/// rolloutStateReason of a deployment the circuit breaker failed.
pub fn rollout_failed() -> String {
    "ECS deployment circuit breaker: tasks failed to start.".to_string()
}

/// rolloutStateReason of the deployment a rollback starts.
pub fn rollout_rolling_back(to: &str) -> String {
    format!("ECS deployment circuit breaker: rolling back to deploymentId {to}.")
}

/// A task's stoppedReason for the scheduler's `reason`.
pub fn stopped_reason(reason: &StopReason) -> String {
    match reason {
        StopReason::Scaling { deployment } => {
            format!("Scaling activity initiated by (deployment {deployment})")
        }
        StopReason::HealthCheck => "Task failed container health checks".to_string(),
        StopReason::InstanceLost => {
            "Task stopped because its container instance's agent stayed disconnected".to_string()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_read_as_ecs_writes_them() {
        assert_eq!(
            steady_state("web"),
            "(service web) has reached a steady state."
        );
        assert_eq!(
            started("web", &["a1".into(), "b2".into()]),
            "(service web) has started 2 tasks: (task a1) (task b2)."
        );
        assert_eq!(
            unable_to_place("web", Some("c1"), &Closest::Memory),
            "(service web) was unable to place a task because no container instance met all of its requirements. The closest matching (container-instance c1) has insufficient memory available. For more information, see the Troubleshooting section of the Amazon ECS Developer Guide."
        );
        assert_eq!(
            stopped_reason(&StopReason::Scaling {
                deployment: "ecs-svc/1".into()
            }),
            "Scaling activity initiated by (deployment ecs-svc/1)"
        );
    }
}
