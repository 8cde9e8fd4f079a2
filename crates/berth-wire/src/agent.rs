//! The agent channel: how a container instance's agent and the control plane talk.
//!
//! Designed after ECS's own (ACS for assignments down, state-change calls up):
//! - **Down**: a long poll, `BerthAgent_20261126.Poll` (AWS JSON 1.1, SigV4 signing name
//!   `ecs`; the agents use it only for an answer that must not wait, and otherwise read the
//!   same answers from the stream below), with the last assignment sequence number the agent
//!   has applied (`ackedSeq`). The
//!   control plane answers at once when the host's sequence is newer, else holds the request
//!   until an assignment changes or `waitSeconds` pass. Each answer is the host's whole
//!   current set of tasks (not a diff), so a lost answer or a restarted agent needs nothing but
//!   the next poll: applying the same set twice is a no-op. Every poll is also the heartbeat:
//!   an instance that has not polled for [`DISCONNECT_AFTER_SECONDS`] shows
//!   `agentConnected: false`.
//! - **Down, streamed**: `BerthAgent_20261126.Subscribe` (same signing, same fields plus
//!   `minIntervalMs`) answers with a chunked body that stays open: one JSON
//!   [`PollResponse`] per line: the first at once when the host's sequence is past
//!   `ackedSeq` (else an empty line, which readers skip, opens the stream and the first
//!   answer waits for a change, as a long poll would), then one each time the host's
//!   assignments change, and one every [`MAX_WAIT_SECONDS`] without a change
//!   (the connection's keepalive). It is the long poll without a signed request per answer,
//!   as ECS's ACS websocket pushes; the open stream is the heartbeat. The control plane ends
//!   a stream after [`STREAM_MAX_SECONDS`] (the agent subscribes again with the last `seq` it
//!   applied), and within 30 s of its access key being deleted, deactivated or expired, or of
//!   its principal losing `ecs:Poll`.
//! - **Up**: task and container state changes go through ECS's own operations
//!   `SubmitTaskStateChange` and `SubmitContainerStateChange`. The control plane applies a
//!   reported status only if it moves the task forward (PENDING → RUNNING → STOPPED); late
//!   or repeated reports change nothing.
//! - Desired status only moves forward too: once a task's desired status is STOPPED, no
//!   answer ever says RUNNING again.

use serde::{Deserialize, Serialize};

use crate::ecs::shapes as s;

/// The `X-Amz-Target` prefix of the agent channel.
pub const TARGET_PREFIX: &str = "BerthAgent_20261126";

/// The longest a poll is held.
pub const MAX_WAIT_SECONDS: u32 = 20;

/// An agent that has not polled for this long is disconnected.
pub const DISCONNECT_AFTER_SECONDS: i64 = 45;

/// Which host is polling.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PollRequest {
    /// The cluster the container instance belongs to (name or ARN).
    pub cluster: String,
    /// The polling container instance's ARN.
    pub container_instance_arn: String,
    /// The last sequence number the agent has applied (0 at first).
    #[serde(default)]
    pub acked_seq: i64,
    /// How long the control plane may hold the poll (at most [`MAX_WAIT_SECONDS`]).
    #[serde(default)]
    pub wait_seconds: Option<u32>,
    /// Answer only the tasks that changed after `ackedSeq` (instead of the whole set): for
    /// agents that keep the set themselves, e.g. `berth sim`'s, whose hosts hold hundreds of
    /// tasks. A task that stopped leaves the set without an entry.
    #[serde(default)]
    pub changes_only: bool,
}

/// `Subscribe`: the assignments' stream (see the module's documentation).
pub const SUBSCRIBE: &str = "Subscribe";

/// The longest a `Subscribe` stream lasts; its agent then subscribes again.
pub const STREAM_MAX_SECONDS: u64 = 600;

/// `Subscribe`'s input: a [`PollRequest`]'s fields (no `waitSeconds`: a stream waits for
/// every change), and how often at most the stream may carry an answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SubscribeRequest {
    pub cluster: String,
    pub container_instance_arn: String,
    #[serde(default)]
    pub acked_seq: i64,
    #[serde(default)]
    pub changes_only: bool,
    /// Paces the lines as polls at this interval would be: the stream begins waiting for a
    /// change at most once per `minIntervalMs`, so changes close together travel in one line
    /// (0, the default, sends each as it happens). At most 60,000.
    #[serde(default)]
    pub min_interval_ms: u32,
}

/// The longest `minIntervalMs` a subscription may ask for.
pub const MAX_MIN_INTERVAL_MS: u32 = 60_000;

/// Splits a `Subscribe` answer's chunked body into its lines (one [`PollResponse`] each) as
/// the bytes arrive, whatever the chunk and read boundaries: no I/O, so both agents (the
/// real one and `berth sim`'s) read the stream the same way.
#[derive(Debug, Default)]
pub struct StreamLines {
    /// Received and not yet de-chunked.
    raw: Vec<u8>,
    /// De-chunked and not yet returned as a line.
    data: Vec<u8>,
    /// The data bytes left in the chunk being read, with its closing CRLF still to come.
    in_chunk: Option<usize>,
    ended: bool,
    /// The body is not chunked: it ends when the connection closes (HTTP/1.1 allows a
    /// server to answer so when the request asked to close the connection).
    close_delimited: bool,
}

/// A `Subscribe` stream that does not follow HTTP/1.1's chunked coding.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the assignments stream is malformed: {0}")]
pub struct StreamError(pub &'static str);

impl StreamLines {
    /// The lines of a body that is not chunked.
    pub fn close_delimited() -> StreamLines {
        StreamLines {
            close_delimited: true,
            ..StreamLines::default()
        }
    }

    /// Adds bytes read from the connection (after the response's headers).
    pub fn push(&mut self, bytes: &[u8]) {
        self.raw.extend_from_slice(bytes);
    }

    /// Whether the stream's last chunk arrived (the control plane ended it).
    pub fn ended(&self) -> bool {
        self.ended
    }

    /// The next complete line (without its newline), if one arrived.
    pub fn next_line(&mut self) -> Result<Option<Vec<u8>>, StreamError> {
        self.dechunk()?;
        Ok(self.data.iter().position(|b| *b == b'\n').map(|end| {
            let line = self.data[..end].to_vec();
            self.data.drain(..=end);
            line
        }))
    }

    fn dechunk(&mut self) -> Result<(), StreamError> {
        if self.close_delimited {
            self.data.append(&mut self.raw);
            return Ok(());
        }
        let mut at = 0;
        while !self.ended {
            match self.in_chunk {
                Some(0) => {
                    if self.raw.len() < at + 2 {
                        break;
                    }
                    if &self.raw[at..at + 2] != b"\r\n" {
                        return Err(StreamError("a chunk does not end with CRLF"));
                    }
                    at += 2;
                    self.in_chunk = None;
                }
                Some(left) => {
                    let take = left.min(self.raw.len() - at);
                    if take == 0 {
                        break;
                    }
                    self.data.extend_from_slice(&self.raw[at..at + take]);
                    at += take;
                    self.in_chunk = Some(left - take);
                }
                None => {
                    let Some(eol) = self.raw[at..].windows(2).position(|w| w == b"\r\n") else {
                        if self.raw.len() - at > 64 {
                            return Err(StreamError("a chunk header is too long"));
                        }
                        break;
                    };
                    let header = std::str::from_utf8(&self.raw[at..at + eol])
                        .map_err(|_| StreamError("a chunk header is not text"))?;
                    let size = header.split(';').next().unwrap_or_default().trim();
                    let size = usize::from_str_radix(size, 16)
                        .map_err(|_| StreamError("a chunk size is not hexadecimal"))?;
                    at += eol + 2;
                    if size == 0 {
                        self.ended = true;
                    } else {
                        self.in_chunk = Some(size);
                    }
                }
            }
        }
        self.raw.drain(..at);
        Ok(())
    }
}

/// The host's tasks as the control plane wants them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PollResponse {
    /// The host's assignment sequence number; send it back as `ackedSeq` once applied.
    pub seq: i64,
    /// Every task on the host that is not STOPPED yet.
    pub tasks: Vec<TaskAssignment>,
}

/// One task as its host's agent needs it to run or stop it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskAssignment {
    pub task_arn: String,
    pub cluster_arn: String,
    /// `RUNNING` or `STOPPED`.
    pub desired_status: String,
    /// The task's status as the control plane last recorded it.
    pub last_status: String,
    /// The task definition revision the task runs, as registered.
    pub task_definition: s::TaskDefinition,
    /// RunTask's overrides (command, environment, cpu, memory per container; task cpu/memory).
    #[serde(default)]
    pub overrides: Option<s::TaskOverride>,
    /// Task-level cpu units and memory MiB in effect (after overrides), as ECS shows them.
    #[serde(default)]
    pub cpu: Option<String>,
    #[serde(default)]
    pub memory: Option<String>,
    #[serde(default)]
    pub launch_type: Option<s::LaunchType>,
    /// The task's containers with their ARNs, in task-definition order.
    pub containers: Vec<s::Container>,
    /// Why the task is to stop, when its desired status is STOPPED.
    #[serde(default)]
    pub stopped_reason: Option<String>,
    /// The task role's temporary credentials, when the task has a role. The control plane
    /// rotates them before they expire; the agent serves them to the task's containers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_role_credentials: Option<RoleCredentials>,
    /// The execution role's temporary credentials, when the task definition names one: the
    /// agent uses them (never the task's containers) for image pulls, logs and secrets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub execution_role_credentials: Option<RoleCredentials>,
    /// The task's own network, for `awsvpc` tasks: its elastic network interface and the
    /// security group rules the agent enforces on it. The control plane sends the assignment
    /// again whenever a rule of one of its groups (or a member of a group a rule names)
    /// changes; the agent applies the new rules to the running task.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<TaskNetwork>,
}

/// An `awsvpc` task's network as the control plane allocated it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskNetwork {
    pub interface: NetworkInterface,
    /// The groups of the interface, each with its rules resolved to address ranges.
    pub security_groups: Vec<SecurityGroupRules>,
}

/// The task's elastic network interface (`eni-…`), as DescribeNetworkInterfaces shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NetworkInterface {
    /// `eni-` and 17 hex digits.
    pub network_interface_id: String,
    pub subnet_id: String,
    pub vpc_id: String,
    /// The subnet's IPv4 block, e.g. `172.31.16.0/20`.
    pub subnet_cidr: String,
    /// The VPC's primary IPv4 block, e.g. `172.31.0.0/16`.
    pub vpc_cidr: String,
    /// The interface's address inside the subnet (never one of the five AWS reserves).
    pub private_ipv4_address: String,
    /// The subnet's router: its network address + 1, as in a VPC.
    pub gateway_ipv4_address: String,
    /// `0e:` followed by five random octets, locally administered.
    pub mac_address: String,
    /// `ip-172-31-16-5.<region>.compute.internal`.
    pub private_dns_name: String,
}

/// One security group's rules with every source group resolved to the addresses of the
/// interfaces in it at the time the assignment was sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SecurityGroupRules {
    /// `sg-…`.
    pub group_id: String,
    pub ingress: Vec<FirewallRule>,
    pub egress: Vec<FirewallRule>,
}

/// One permission of a security group: traffic of `protocol` within the port range from (for
/// ingress) or to (for egress) any of `cidrs` is allowed. Groups only allow; what no rule of
/// any of the interface's groups allows is dropped, except replies to allowed traffic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FirewallRule {
    /// `tcp`, `udp`, `icmp`, `icmpv6` or `-1` (all), as EC2's IpProtocol after normalising
    /// numbers (6, 17, 1, 58).
    pub protocol: String,
    /// The port range (for icmp: type and code; -1 for all). None for protocol `-1`.
    #[serde(default)]
    pub from_port: Option<i32>,
    #[serde(default)]
    pub to_port: Option<i32>,
    /// IPv4 and IPv6 blocks, e.g. `10.0.0.0/8`, `172.31.16.5/32`, `::/0`.
    pub cidrs: Vec<String>,
}

/// Temporary credentials of a task's role, as the agent serves them at
/// `/v2/credentials/<credentialsId>`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RoleCredentials {
    /// The unguessable id in the containers' `AWS_CONTAINER_CREDENTIALS_RELATIVE_URI`
    /// (stable across rotations).
    pub credentials_id: String,
    pub role_arn: String,
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: String,
    /// When they expire, ms since the epoch.
    pub expiration_ms: i64,
}

impl std::fmt::Debug for RoleCredentials {
    /// Never prints the secret or the token (task records and logs may show assignments).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RoleCredentials")
            .field("credentials_id", &self.credentials_id)
            .field("role_arn", &self.role_arn)
            .field("access_key_id", &self.access_key_id)
            .field("expiration_ms", &self.expiration_ms)
            .finish_non_exhaustive()
    }
}

/// The `BerthAgent_20261126` operation that applies many `SubmitTaskStateChange`s in one
/// call (one store transaction): what an agent reporting many tasks at once sends instead of
/// one call per task.
pub const SUBMIT_TASK_STATE_CHANGES: &str = "SubmitTaskStateChanges";

/// A batch of task state changes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskStateChanges {
    /// At most [`MAX_STATE_CHANGES`], each as `SubmitTaskStateChange` takes it.
    pub changes: Vec<s::SubmitTaskStateChangeRequest>,
}

/// The most changes one [`TaskStateChanges`] carries.
pub const MAX_STATE_CHANGES: usize = 1000;

/// What a batch of state changes did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskStateChangesResponse {
    /// How many changes were applied.
    pub applied: usize,
    /// The tasks (as given) that were not found.
    pub missing: Vec<String>,
}

/// The `BerthAgent_20261126` operation that reports health. ECS carries health on its
/// telemetry channel, not in `SubmitTaskStateChange`, so the agent channel has its own.
pub const SUBMIT_TASK_HEALTH: &str = "SubmitTaskHealth";

/// Health of a task and its containers, as the agent observed it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskHealthReport {
    /// Cluster name or ARN.
    pub cluster: String,
    /// Task ARN.
    pub task: String,
    /// UNHEALTHY when an essential container is, HEALTHY when every essential container with
    /// a health check is, else UNKNOWN.
    pub health_status: s::HealthStatus,
    /// Each container with a health check.
    pub containers: Vec<ContainerHealth>,
}

/// One container's health.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerHealth {
    /// The container's name in the task definition.
    pub container_name: String,
    /// HEALTHY, UNHEALTHY or UNKNOWN.
    pub health_status: s::HealthStatus,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunked(lines: &[&str]) -> Vec<u8> {
        let mut out = Vec::new();
        for l in lines {
            out.extend_from_slice(format!("{:x}\r\n{l}\n\r\n", l.len() + 1).as_bytes());
        }
        out
    }

    #[test]
    fn stream_lines_come_out_whole_whatever_the_read_boundaries() {
        let mut bytes = chunked(&["{\"seq\":1,\"tasks\":[]}", "{\"seq\":2,\"tasks\":[]}"]);
        bytes.extend_from_slice(b"0\r\n\r\n");
        for step in 1..bytes.len() {
            let mut s = StreamLines::default();
            let mut got = Vec::new();
            for piece in bytes.chunks(step) {
                s.push(piece);
                while let Some(l) = s.next_line().unwrap() {
                    got.push(String::from_utf8(l).unwrap());
                }
            }
            assert_eq!(
                got,
                ["{\"seq\":1,\"tasks\":[]}", "{\"seq\":2,\"tasks\":[]}"]
            );
            assert!(s.ended(), "read {step} bytes at a time");
        }
    }

    #[test]
    fn a_line_may_span_chunks() {
        let mut s = StreamLines::default();
        s.push(b"3\r\nabc\r\n2\r\nd\n\r\n");
        assert_eq!(s.next_line().unwrap().as_deref(), Some(&b"abcd"[..]));
        assert_eq!(s.next_line().unwrap(), None);
        assert!(!s.ended());
    }

    #[test]
    fn a_close_delimited_body_is_lines_as_they_are() {
        let mut s = StreamLines::close_delimited();
        s.push(b"{\"seq\":1,");
        assert_eq!(s.next_line().unwrap(), None);
        s.push(b"\"tasks\":[]}\n{");
        assert_eq!(
            s.next_line().unwrap().as_deref(),
            Some(&b"{\"seq\":1,\"tasks\":[]}"[..])
        );
        assert_eq!(s.next_line().unwrap(), None);
    }

    #[test]
    fn malformed_chunks_are_refused() {
        let mut s = StreamLines::default();
        s.push(b"zz\r\n");
        assert!(s.next_line().is_err());
        let mut s = StreamLines::default();
        s.push(b"1\r\nabc");
        assert!(s.next_line().is_err());
    }
}
