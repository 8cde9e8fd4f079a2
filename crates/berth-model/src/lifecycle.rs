//! ECS's task lifecycle: the statuses a task's `lastStatus` passes through, in order, and the
//! rule that a task's statuses only move forward (desired status is set by the control plane,
//! known status is observed by the agent; neither ever goes back).

use std::fmt;

/// A task's (or container's) status, in lifecycle order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TaskStatus {
    Provisioning,
    Pending,
    Activating,
    Running,
    Deactivating,
    Stopping,
    Deprovisioning,
    Stopped,
    /// Deleted from the cluster's records (ECS shows it on pruned tasks).
    Deleted,
}

impl TaskStatus {
    pub const ALL: [TaskStatus; 9] = [
        TaskStatus::Provisioning,
        TaskStatus::Pending,
        TaskStatus::Activating,
        TaskStatus::Running,
        TaskStatus::Deactivating,
        TaskStatus::Stopping,
        TaskStatus::Deprovisioning,
        TaskStatus::Stopped,
        TaskStatus::Deleted,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            TaskStatus::Provisioning => "PROVISIONING",
            TaskStatus::Pending => "PENDING",
            TaskStatus::Activating => "ACTIVATING",
            TaskStatus::Running => "RUNNING",
            TaskStatus::Deactivating => "DEACTIVATING",
            TaskStatus::Stopping => "STOPPING",
            TaskStatus::Deprovisioning => "DEPROVISIONING",
            TaskStatus::Stopped => "STOPPED",
            TaskStatus::Deleted => "DELETED",
        }
    }

    pub fn parse(s: &str) -> Option<TaskStatus> {
        TaskStatus::ALL.iter().copied().find(|t| t.as_str() == s)
    }

    /// Whether the task has not started running yet (counts as pending in a cluster).
    pub fn is_pending(self) -> bool {
        self < TaskStatus::Running
    }

    /// Whether the task is past RUNNING (on its way down or down).
    pub fn is_stopping_or_stopped(self) -> bool {
        self > TaskStatus::Running
    }

    /// The status after `self` once `reported` is observed: statuses only move forward, so a
    /// late or repeated report of an earlier status changes nothing.
    pub fn advance(self, reported: TaskStatus) -> TaskStatus {
        self.max(reported)
    }
}

impl fmt::Display for TaskStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The status a task's desired status may take: RUNNING, then STOPPED, never back.
pub fn advance_desired(current: TaskStatus, wanted: TaskStatus) -> TaskStatus {
    let wanted = if wanted > TaskStatus::Running {
        TaskStatus::Stopped
    } else {
        TaskStatus::Running
    };
    current.max(wanted)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn names_round_trip() {
        for s in TaskStatus::ALL {
            assert_eq!(TaskStatus::parse(s.as_str()), Some(s));
        }
        assert_eq!(TaskStatus::parse("RUNNIN"), None);
    }

    proptest! {
        /// Whatever order reports arrive in, the known status never goes back and ends at
        /// the latest status reported.
        #[test]
        fn known_status_only_moves_forward(reports in proptest::collection::vec(0usize..8, 0..20)) {
            let mut status = TaskStatus::Provisioning;
            for r in &reports {
                let next = status.advance(TaskStatus::ALL[*r]);
                prop_assert!(next >= status);
                status = next;
            }
            let max = reports.iter().map(|r| TaskStatus::ALL[*r]).max().unwrap_or(TaskStatus::Provisioning);
            prop_assert_eq!(status, max.max(TaskStatus::Provisioning));
        }

        #[test]
        fn desired_status_never_returns_to_running(wants in proptest::collection::vec(0usize..8, 1..10)) {
            let mut desired = TaskStatus::Running;
            let mut stopped = false;
            for w in wants {
                desired = advance_desired(desired, TaskStatus::ALL[w]);
                stopped |= desired == TaskStatus::Stopped;
                prop_assert!(!stopped || desired == TaskStatus::Stopped);
            }
        }
    }
}
