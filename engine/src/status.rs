//! The one container status function: docker's state word from a (refreshed) state. ps,
//! inspect, rm and prune all use it.

use cairn_runtime::container::{State, Status};

/// docker's container status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContainerStatus {
    /// Never started, or its start failed (docker leaves it created).
    Created,
    Running,
    /// Exited, waiting to be restarted by its policy.
    Restarting,
    Exited,
    /// Not running for a reason other than its own exit (its supervisor died).
    Dead,
}

impl ContainerStatus {
    /// docker's word (`docker ps --format {{.State}}`, inspect's `State.Status`).
    pub fn word(self) -> &'static str {
        match self {
            ContainerStatus::Created => "created",
            ContainerStatus::Running => "running",
            ContainerStatus::Restarting => "restarting",
            ContainerStatus::Exited => "exited",
            ContainerStatus::Dead => "dead",
        }
    }
}

/// The status of a container in state `st` (refresh it first: `lifecycle::refresh`).
pub fn status(st: &State) -> ContainerStatus {
    if st.restarting {
        return ContainerStatus::Restarting;
    }
    match st.status {
        Status::Created => ContainerStatus::Created,
        Status::Running => ContainerStatus::Running,
        Status::Exited if st.error.is_some() && st.exit_code.is_none() => ContainerStatus::Dead,
        Status::Exited if st.started_at.is_none() => ContainerStatus::Created,
        Status::Exited => ContainerStatus::Exited,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_words() {
        assert_eq!(status(&State::default()), ContainerStatus::Created);
        let failed_start = State {
            status: Status::Exited,
            exit_code: Some(127),
            ..Default::default()
        };
        assert_eq!(status(&failed_start), ContainerStatus::Created);
        let exited = State {
            started_at: Some(1),
            ..failed_start.clone()
        };
        assert_eq!(status(&exited).word(), "exited");
        let dead = State {
            status: Status::Exited,
            error: Some("supervisor died".into()),
            ..Default::default()
        };
        assert_eq!(status(&dead), ContainerStatus::Dead);
        let restarting = State {
            restarting: true,
            ..exited
        };
        assert_eq!(status(&restarting), ContainerStatus::Restarting);
    }
}
