//! The agent's view of the control plane: [`ControlPlane`] (free of HTTP, so that the binary
//! can plug an in-process implementation for Berth-managed Fargate capacity) and
//! [`HttpControlPlane`], which speaks AWS JSON 1.1 with SigV4 to a `berth server`.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use berth_wire::agent::{PollRequest, PollResponse, StreamLines, SubscribeRequest};
use berth_wire::ecs::shapes as s;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::error::ControlPlaneError;

/// A boxed future, so that [`ControlPlane`] stays object-safe.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

pub use berth_wire::agent::{ContainerHealth, SUBMIT_TASK_HEALTH, TaskHealthReport};

use berth_wire::logs::shapes as logs;

/// Whose CloudWatch Logs a [`LogsCall`] is made in, and as whom: the task it ships for (its
/// account), the `awslogs-region`, and the task's execution role credentials.
///
/// As on ECS, the awslogs driver's calls are signed with the task execution role's
/// credentials when the task has one; without one (allowed on EC2 capacity) they are made
/// with the agent's own credentials, as ECS falls back to the container instance's role.
#[derive(Debug, Clone)]
pub struct LogsScope {
    /// The task whose container's output is shipped.
    pub task_arn: String,
    /// The region of the log group (`awslogs-region`).
    pub region: String,
    /// The execution role's current credentials (rotated in place by the task).
    pub execution_role: ExecutionCredentials,
}

/// The execution role credentials of one task, shared between the task (which replaces them
/// when the control plane rotates them) and the work done on its behalf (log shipping).
/// Kept in memory only; `Debug` never shows the secret.
#[derive(Debug, Clone, Default)]
pub struct ExecutionCredentials(
    std::sync::Arc<std::sync::RwLock<Option<berth_wire::agent::RoleCredentials>>>,
);

impl ExecutionCredentials {
    /// Credentials holding `c`.
    pub fn new(c: Option<berth_wire::agent::RoleCredentials>) -> ExecutionCredentials {
        ExecutionCredentials(std::sync::Arc::new(std::sync::RwLock::new(c)))
    }

    /// The current credentials, if the task has an execution role.
    pub fn current(&self) -> Option<berth_wire::agent::RoleCredentials> {
        match self.0.read() {
            Ok(g) => g.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Replaces them (a rotation).
    pub fn replace(&self, c: Option<berth_wire::agent::RoleCredentials>) {
        match self.0.write() {
            Ok(mut g) => *g = c,
            Err(poisoned) => *poisoned.into_inner() = c,
        }
    }
}

/// A CloudWatch Logs call of the awslogs driver.
#[derive(Debug, Clone)]
pub enum LogsCall {
    CreateLogGroup(logs::CreateLogGroupRequest),
    CreateLogStream(logs::CreateLogStreamRequest),
    PutLogEvents(logs::PutLogEventsRequest),
    GetLogEvents(logs::GetLogEventsRequest),
}

impl LogsCall {
    /// The operation's name.
    pub fn operation(&self) -> &'static str {
        match self {
            LogsCall::CreateLogGroup(_) => "CreateLogGroup",
            LogsCall::CreateLogStream(_) => "CreateLogStream",
            LogsCall::PutLogEvents(_) => "PutLogEvents",
            LogsCall::GetLogEvents(_) => "GetLogEvents",
        }
    }
}

/// The answer to a [`LogsCall`].
#[derive(Debug, Clone)]
pub enum LogsReply {
    /// CreateLogGroup and CreateLogStream answer nothing.
    Done,
    PutLogEvents(logs::PutLogEventsResponse),
    GetLogEvents(logs::GetLogEventsResponse),
}

/// What the agent needs from the control plane.
///
/// Stop codes: ECS's `SubmitTaskStateChange` has no `stopCode` member, so the agent says why
/// a task stopped in `reason` and the control plane derives the code
/// ([`crate::stop_code_for_reason`]): `Essential container in task exited` →
/// `EssentialContainerExited`, any other agent-side reason (`CannotPullContainerError: …`,
/// `CannotStartContainerError: …`) → `TaskFailedToStart`; a task the control plane asked to
/// stop keeps the code it set (UserInitiated, ServiceSchedulerInitiated).
pub trait ControlPlane: Send + Sync {
    /// `RegisterContainerInstance`.
    fn register(
        &self,
        req: s::RegisterContainerInstanceRequest,
    ) -> BoxFuture<'_, Result<s::RegisterContainerInstanceResponse, ControlPlaneError>>;
    /// `BerthAgent_20261126.Poll`: the host's whole task set, held until it changes.
    fn poll(&self, req: PollRequest) -> BoxFuture<'_, Result<PollResponse, ControlPlaneError>>;
    /// `SubmitTaskStateChange`.
    fn submit_task_state(
        &self,
        req: s::SubmitTaskStateChangeRequest,
    ) -> BoxFuture<'_, Result<(), ControlPlaneError>>;
    /// `SubmitContainerStateChange`.
    fn submit_container_state(
        &self,
        req: s::SubmitContainerStateChangeRequest,
    ) -> BoxFuture<'_, Result<(), ControlPlaneError>>;
    /// Health of a task's containers. The default drops it.
    fn submit_task_health(
        &self,
        report: TaskHealthReport,
    ) -> BoxFuture<'_, Result<(), ControlPlaneError>> {
        let _ = report;
        Box::pin(async { Ok(()) })
    }
    /// A CloudWatch Logs call for the awslogs driver. The default answers that the control
    /// plane does not serve it (the output then stays on disk, unshipped).
    fn logs(
        &self,
        scope: LogsScope,
        call: LogsCall,
    ) -> BoxFuture<'_, Result<LogsReply, ControlPlaneError>> {
        let _ = scope;
        Box::pin(async move {
            Err(ControlPlaneError::Aws {
                operation: call.operation().into(),
                status: 400,
                code: "UnknownOperationException".into(),
                message: "this control plane does not serve CloudWatch Logs".into(),
            })
        })
    }
}

/// Credentials and endpoint of an [`HttpControlPlane`].
#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// `http://host:port` of the Berth endpoint.
    pub endpoint: String,
    /// Access key id.
    pub access_key_id: String,
    /// Secret access key.
    pub secret_access_key: String,
    /// Session token of temporary credentials (`x-amz-security-token`), if any.
    pub session_token: Option<String>,
    /// Region to sign for.
    pub region: String,
    /// How many times a call is retried on connection errors (with backoff) before failing.
    pub retries: u32,
}

/// [`ControlPlane`] over HTTP/1.1 (no TLS): AWS JSON 1.1 POSTs, SigV4-signed with signing
/// name `ecs`, retried with backoff on connection errors.
#[derive(Debug, Clone)]
pub struct HttpControlPlane {
    config: HttpConfig,
    host: String,
    /// The assignments stream polls read from, once opened.
    subscription: std::sync::Arc<tokio::sync::Mutex<Option<Subscription>>>,
    /// The `minIntervalMs` of the streams it opens.
    stream_min_interval_ms: u32,
}

/// A decoded HTTP response.
struct Response {
    status: u16,
    body: Vec<u8>,
}

fn unreachable(endpoint: &str, reason: impl std::fmt::Display) -> ControlPlaneError {
    ControlPlaneError::Unreachable {
        endpoint: endpoint.to_string(),
        reason: reason.to_string(),
    }
}

/// What a response's head says: its status and how its body is delimited.
struct Head {
    status: u16,
    chunked: bool,
    length: Option<usize>,
}

/// Reads a response's head (the status line and the headers, without the blank line).
fn parse_head(head: &str) -> Result<Head, String> {
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status: u16 = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("bad status line {status_line:?}"))?;
    let mut chunked = false;
    let mut length = None;
    for l in lines {
        if let Some((k, v)) = l.split_once(':') {
            let k = k.trim().to_ascii_lowercase();
            let v = v.trim();
            if k == "transfer-encoding" && v.eq_ignore_ascii_case("chunked") {
                chunked = true;
            } else if k == "content-length" {
                length = v.parse::<usize>().ok();
            }
        }
    }
    Ok(Head {
        status,
        chunked,
        length,
    })
}

/// Splits an HTTP/1.1 response into status and body (handles `Transfer-Encoding: chunked`).
fn parse_response(raw: &[u8]) -> Result<Response, String> {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or("response has no header end")?;
    let head = parse_head(&String::from_utf8_lossy(&raw[..split]))?;
    let mut body = raw[split + 4..].to_vec();
    if head.chunked {
        body = dechunk(&body)?;
    } else if let Some(n) = head.length {
        if body.len() < n {
            return Err(format!("body cut short: {} of {n} bytes", body.len()));
        }
        body.truncate(n);
    }
    Ok(Response {
        status: head.status,
        body,
    })
}

fn dechunk(mut data: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    loop {
        let eol = data
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or("bad chunk header")?;
        let size_text = String::from_utf8_lossy(&data[..eol]);
        let size_text = size_text.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_text, 16).map_err(|_| "bad chunk size")?;
        data = &data[eol + 2..];
        if size == 0 {
            return Ok(out);
        }
        if data.len() < size {
            return Err("chunk cut short".into());
        }
        out.extend_from_slice(&data[..size]);
        data = data.get(size + 2..).unwrap_or_default();
    }
}

impl HttpControlPlane {
    /// A client of the endpoint `config.endpoint` (`http://host:port`).
    pub fn new(config: HttpConfig) -> Result<HttpControlPlane, ControlPlaneError> {
        let host = config
            .endpoint
            .strip_prefix("http://")
            .map(|h| h.trim_end_matches('/').to_string())
            .filter(|h| !h.is_empty() && !h.contains('/'))
            .ok_or_else(|| {
                unreachable(
                    &config.endpoint,
                    "the endpoint must be an http://host:port url",
                )
            })?;
        Ok(HttpControlPlane {
            config,
            host,
            subscription: Default::default(),
            stream_min_interval_ms: 0,
        })
    }

    /// A signed AWS JSON 1.1 POST of `body` to `target`, head and body, ready to send; with
    /// `close`, it asks the server to close the connection after its answer.
    fn signed_request(&self, target: &str, service: &str, body: &[u8], close: bool) -> Vec<u8> {
        let mut base = vec![
            (
                "content-type".to_string(),
                "application/x-amz-json-1.1".to_string(),
            ),
            ("host".to_string(), self.host.clone()),
            ("x-amz-target".to_string(), target.to_string()),
        ];
        if let Some(token) = &self.config.session_token {
            base.push(("x-amz-security-token".to_string(), token.clone()));
        }
        let unsigned = berth_wire::sigv4::SignedRequest {
            method: "POST",
            raw_path: "/",
            raw_query: "",
            headers: &base,
            body,
        };
        let key = berth_wire::sigv4::SigningKey {
            access_key_id: &self.config.access_key_id,
            secret: &self.config.secret_access_key,
            region: &self.config.region,
            service,
        };
        let signed = berth_wire::sigv4::sign_headers(
            &unsigned,
            &key,
            berth_wire::Timestamp::now().seconds(),
        );
        let mut req = String::from("POST / HTTP/1.1\r\n");
        for (k, v) in base.iter().chain(signed.iter()) {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        req.push_str(&format!("content-length: {}\r\n", body.len()));
        if close {
            req.push_str("connection: close\r\n");
        }
        req.push_str("\r\n");
        let mut req = req.into_bytes();
        req.extend_from_slice(body);
        req
    }

    /// A new connection to the endpoint with `request` written on it.
    async fn send(&self, request: &[u8]) -> Result<tokio::net::TcpStream, ControlPlaneError> {
        let ep = &self.config.endpoint;
        let mut stream = tokio::net::TcpStream::connect(&self.host)
            .await
            .map_err(|e| unreachable(ep, e))?;
        stream
            .write_all(request)
            .await
            .map_err(|e| unreachable(ep, e))?;
        Ok(stream)
    }

    /// The same endpoint with other credentials or retries, and no stream of its own.
    fn with_config(&self, config: HttpConfig) -> HttpControlPlane {
        HttpControlPlane {
            config,
            host: self.host.clone(),
            subscription: Default::default(),
            stream_min_interval_ms: 0,
        }
    }

    async fn send_once(
        &self,
        target: &str,
        service: &str,
        body: &[u8],
        timeout: Duration,
    ) -> Result<Response, ControlPlaneError> {
        let ep = &self.config.endpoint;
        let req = self.signed_request(target, service, body, true);
        let exchange = async {
            let mut stream = self.send(&req).await?;
            let mut raw = Vec::new();
            stream
                .read_to_end(&mut raw)
                .await
                .map_err(|e| unreachable(ep, e))?;
            parse_response(&raw).map_err(|e| unreachable(ep, e))
        };
        tokio::time::timeout(timeout, exchange)
            .await
            .map_err(|_| unreachable(ep, format!("no answer within {timeout:?}")))?
    }

    /// Calls `target` (`Prefix.Operation`) of a service other than ECS (SigV4 signing name
    /// `service`), e.g. Berth's admin API; retries connection errors.
    pub async fn call_service<I: Serialize, O: for<'de> Deserialize<'de>>(
        &self,
        target: &str,
        service: &str,
        input: &I,
    ) -> Result<O, ControlPlaneError> {
        self.call_signed(target, service, input, CALL_TIMEOUT).await
    }

    /// Calls `target` (`Prefix.Operation`) with `input`, retrying connection errors.
    async fn call<I: Serialize, O: for<'de> Deserialize<'de>>(
        &self,
        target: &str,
        input: &I,
        timeout: Duration,
    ) -> Result<O, ControlPlaneError> {
        self.call_signed(target, berth_wire::ecs::SIGNING_NAME, input, timeout)
            .await
    }

    async fn call_signed<I: Serialize, O: for<'de> Deserialize<'de>>(
        &self,
        target: &str,
        service: &str,
        input: &I,
        timeout: Duration,
    ) -> Result<O, ControlPlaneError> {
        let operation = target.rsplit('.').next().unwrap_or(target).to_string();
        let body = serde_json::to_vec(input).map_err(|e| ControlPlaneError::Decode {
            operation: operation.clone(),
            reason: e.to_string(),
        })?;
        let mut attempt = 0u32;
        let resp = loop {
            match self.send_once(target, service, &body, timeout).await {
                Ok(r) => break r,
                Err(e) if e.is_retryable() && attempt < self.config.retries => {
                    attempt += 1;
                    let backoff = Duration::from_millis(200u64 << attempt.min(5));
                    tracing::debug!(%e, ?backoff, "retrying {operation}");
                    tokio::time::sleep(backoff).await;
                }
                Err(e) => return Err(e),
            }
        };
        if resp.status != 200 {
            return Err(aws_error(operation, &resp));
        }
        let body = if resp.body.is_empty() {
            b"{}".to_vec()
        } else {
            resp.body
        };
        serde_json::from_slice(&body).map_err(|e| ControlPlaneError::Decode {
            operation,
            reason: e.to_string(),
        })
    }

    fn ecs_target(op: &str) -> String {
        format!("{}.{op}", berth_wire::ecs::TARGET_PREFIX)
    }

    /// Asks the streams it opens to pace their answers as polls every `ms` milliseconds would
    /// be (changes close together travel in one answer): for agents that would rather batch
    /// than react at once, such as `berth sim`'s.
    pub fn with_stream_interval(mut self, ms: u32) -> HttpControlPlane {
        self.stream_min_interval_ms = ms;
        self
    }

    async fn poll_stream(&self, req: PollRequest) -> Result<PollResponse, ControlPlaneError> {
        let ep = &self.config.endpoint;
        let silent_for = Duration::from_secs(u64::from(berth_wire::agent::MAX_WAIT_SECONDS) + 15);
        let mut open = self.subscription.lock().await;
        // A stream already open answers, unless the control plane ended it meanwhile (it does
        // after STREAM_MAX_SECONDS): then a new one, at once.
        if let Some(sub) = open.as_mut().filter(|s| s.answers(&req)) {
            match sub.next(ep, silent_for).await {
                Ok(resp) => return Ok(resp),
                Err(e) => tracing::debug!(%e, "the assignments stream ended; subscribing again"),
            }
        }
        *open = None;
        let mut sub = self
            .subscribe(SubscribeRequest {
                cluster: req.cluster.clone(),
                container_instance_arn: req.container_instance_arn.clone(),
                acked_seq: req.acked_seq,
                changes_only: req.changes_only,
                min_interval_ms: self.stream_min_interval_ms,
            })
            .await?;
        let first = sub.next(ep, silent_for).await?;
        *open = Some(sub);
        Ok(first)
    }

    /// Opens a `Subscribe` stream; an error answer is returned as the error it names.
    async fn subscribe(&self, req: SubscribeRequest) -> Result<Subscription, ControlPlaneError> {
        let ep = &self.config.endpoint;
        let operation = berth_wire::agent::SUBSCRIBE;
        let target = format!("{}.{operation}", berth_wire::agent::TARGET_PREFIX);
        let body = serde_json::to_vec(&req).map_err(|e| ControlPlaneError::Decode {
            operation: operation.into(),
            reason: e.to_string(),
        })?;
        // Not `connection: close`, so that the answer is chunked and its end is the stream's
        // end, not the connection's.
        let wire = self.signed_request(&target, berth_wire::ecs::SIGNING_NAME, &body, false);
        let open = async {
            let mut stream = self.send(&wire).await?;
            let mut raw = Vec::new();
            let head_end = loop {
                if let Some(p) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
                    break p + 4;
                }
                if read_some(&mut stream, &mut raw)
                    .await
                    .map_err(|e| unreachable(ep, e))?
                    == 0
                {
                    return Err(unreachable(ep, "the connection closed before an answer"));
                }
            };
            let head = parse_head(&String::from_utf8_lossy(&raw[..head_end - 4]))
                .map_err(|e| unreachable(ep, e))?;
            if head.status != 200 {
                // An error answer is a whole body, after which the server closes.
                stream
                    .read_to_end(&mut raw)
                    .await
                    .map_err(|e| unreachable(ep, e))?;
                let resp = parse_response(&raw).map_err(|e| unreachable(ep, e))?;
                return Err(aws_error(operation.into(), &resp));
            }
            let mut lines = if head.chunked {
                StreamLines::default()
            } else {
                StreamLines::close_delimited()
            };
            lines.push(&raw[head_end..]);
            Ok(Subscription {
                stream,
                lines,
                seq: req.acked_seq,
                cluster: req.cluster.clone(),
                container_instance_arn: req.container_instance_arn.clone(),
                changes_only: req.changes_only,
            })
        };
        tokio::time::timeout(CALL_TIMEOUT, open)
            .await
            .map_err(|_| unreachable(ep, format!("no answer within {CALL_TIMEOUT:?}")))?
    }
}

/// An open `Subscribe` stream and what its next line follows.
#[derive(Debug)]
struct Subscription {
    stream: tokio::net::TcpStream,
    lines: StreamLines,
    /// The `seq` of the last line read (what the agent acknowledges once it applied it).
    seq: i64,
    cluster: String,
    container_instance_arn: String,
    changes_only: bool,
}

impl Subscription {
    /// Whether a poll of `req` is what this stream's next line answers.
    fn answers(&self, req: &PollRequest) -> bool {
        self.seq == req.acked_seq
            && self.changes_only == req.changes_only
            && self.cluster == req.cluster
            && self.container_instance_arn == req.container_instance_arn
    }

    /// The next line: an answer at the latest every [`berth_wire::agent::MAX_WAIT_SECONDS`]
    /// (the stream's keepalive), so `timeout` past that means the connection is lost.
    /// Cancel-safe: bytes read are kept in `lines` whenever the future is dropped.
    async fn next(
        &mut self,
        ep: &str,
        timeout: Duration,
    ) -> Result<PollResponse, ControlPlaneError> {
        let read = async {
            loop {
                if let Some(line) = self.lines.next_line().map_err(|e| unreachable(ep, e))? {
                    // An empty line only opens the stream (nothing new yet).
                    if line.iter().all(u8::is_ascii_whitespace) {
                        continue;
                    }
                    let resp: PollResponse =
                        serde_json::from_slice(&line).map_err(|e| ControlPlaneError::Decode {
                            operation: berth_wire::agent::SUBSCRIBE.into(),
                            reason: e.to_string(),
                        })?;
                    self.seq = resp.seq;
                    return Ok(resp);
                }
                if self.lines.ended() {
                    return Err(unreachable(ep, "the control plane ended the stream"));
                }
                let mut chunk = [0u8; 16 * 1024];
                let n = self
                    .stream
                    .read(&mut chunk)
                    .await
                    .map_err(|e| unreachable(ep, e))?;
                if n == 0 {
                    return Err(unreachable(ep, "the stream's connection closed"));
                }
                self.lines.push(&chunk[..n]);
            }
        };
        tokio::time::timeout(timeout, read)
            .await
            .map_err(|_| unreachable(ep, format!("the stream was silent for {timeout:?}")))?
    }
}

async fn read_some(
    stream: &mut tokio::net::TcpStream,
    buf: &mut Vec<u8>,
) -> std::io::Result<usize> {
    let mut chunk = [0u8; 16 * 1024];
    let n = stream.read(&mut chunk).await?;
    buf.extend_from_slice(&chunk[..n]);
    Ok(n)
}

/// The AWS error an error answer carries.
fn aws_error(operation: String, resp: &Response) -> ControlPlaneError {
    let err: serde_json::Value = serde_json::from_slice(&resp.body).unwrap_or_default();
    let code = err["__type"].as_str().unwrap_or_default();
    let code = code.rsplit('#').next().unwrap_or(code).to_string();
    let message = err["message"]
        .as_str()
        .or_else(|| err["Message"].as_str())
        .map(str::to_string)
        .unwrap_or_else(|| String::from_utf8_lossy(&resp.body).into_owned());
    ControlPlaneError::Aws {
        operation,
        status: resp.status,
        code,
        message,
    }
}

/// Timeout of ordinary calls.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Deserialize)]
struct Ignored {}

impl ControlPlane for HttpControlPlane {
    fn register(
        &self,
        req: s::RegisterContainerInstanceRequest,
    ) -> BoxFuture<'_, Result<s::RegisterContainerInstanceResponse, ControlPlaneError>> {
        Box::pin(async move {
            self.call(
                &Self::ecs_target("RegisterContainerInstance"),
                &req,
                CALL_TIMEOUT,
            )
            .await
        })
    }

    /// A poll that may wait is answered from a `Subscribe` stream kept open between polls
    /// (its next line, when the poll acknowledges the line before): one signed request per
    /// stream instead of one per answer. A poll that must not wait, or to a control plane
    /// that does not serve `Subscribe`, is a `Poll` call.
    fn poll(&self, req: PollRequest) -> BoxFuture<'_, Result<PollResponse, ControlPlaneError>> {
        Box::pin(async move {
            if req.wait_seconds != Some(0) {
                match self.poll_stream(req.clone()).await {
                    // A control plane from before the stream: its long poll, then.
                    Err(ControlPlaneError::Aws { code, .. })
                        if code == "UnknownOperationException" => {}
                    answer => return answer,
                }
            }
            let wait = req
                .wait_seconds
                .unwrap_or(berth_wire::agent::MAX_WAIT_SECONDS);
            let timeout = Duration::from_secs(u64::from(wait) + 15);
            // A poll is not retried here: the agent's loop polls again anyway.
            let target = format!("{}.Poll", berth_wire::agent::TARGET_PREFIX);
            let this = self.with_config(HttpConfig {
                retries: 0,
                ..self.config.clone()
            });
            this.call(&target, &req, timeout).await
        })
    }

    fn submit_task_state(
        &self,
        req: s::SubmitTaskStateChangeRequest,
    ) -> BoxFuture<'_, Result<(), ControlPlaneError>> {
        Box::pin(async move {
            self.call::<_, Ignored>(
                &Self::ecs_target("SubmitTaskStateChange"),
                &req,
                CALL_TIMEOUT,
            )
            .await
            .map(|_| ())
        })
    }

    fn submit_container_state(
        &self,
        req: s::SubmitContainerStateChangeRequest,
    ) -> BoxFuture<'_, Result<(), ControlPlaneError>> {
        Box::pin(async move {
            self.call::<_, Ignored>(
                &Self::ecs_target("SubmitContainerStateChange"),
                &req,
                CALL_TIMEOUT,
            )
            .await
            .map(|_| ())
        })
    }

    fn submit_task_health(
        &self,
        report: TaskHealthReport,
    ) -> BoxFuture<'_, Result<(), ControlPlaneError>> {
        Box::pin(async move {
            let target = format!("{}.{SUBMIT_TASK_HEALTH}", berth_wire::agent::TARGET_PREFIX);
            self.call::<_, Ignored>(&target, &report, CALL_TIMEOUT)
                .await
                .map(|_| ())
        })
    }

    /// Logs calls go to the public CloudWatch Logs API of the same endpoint, signed for
    /// `awslogs-region` with the task's execution role credentials, else the agent's own
    /// (see [`LogsScope`]). They are not
    /// retried here: the awslogs shipper has its own retries and must reconcile before it
    /// sends a batch again.
    fn logs(
        &self,
        scope: LogsScope,
        call: LogsCall,
    ) -> BoxFuture<'_, Result<LogsReply, ControlPlaneError>> {
        Box::pin(async move {
            let mut config = HttpConfig {
                retries: 0,
                region: scope.region.clone(),
                ..self.config.clone()
            };
            if let Some(c) = scope.execution_role.current() {
                config.access_key_id = c.access_key_id;
                config.secret_access_key = c.secret_access_key;
                config.session_token = Some(c.session_token);
            }
            let this = self.with_config(config);
            let target = |op: &str| format!("{}.{op}", berth_wire::logs::TARGET_PREFIX);
            let name = berth_wire::logs::SIGNING_NAME;
            let op = target(call.operation());
            match call {
                LogsCall::CreateLogGroup(r) => this
                    .call_signed::<_, Ignored>(&op, name, &r, CALL_TIMEOUT)
                    .await
                    .map(|_| LogsReply::Done),
                LogsCall::CreateLogStream(r) => this
                    .call_signed::<_, Ignored>(&op, name, &r, CALL_TIMEOUT)
                    .await
                    .map(|_| LogsReply::Done),
                LogsCall::PutLogEvents(r) => this
                    .call_signed(&op, name, &r, CALL_TIMEOUT)
                    .await
                    .map(LogsReply::PutLogEvents),
                LogsCall::GetLogEvents(r) => this
                    .call_signed(&op, name, &r, CALL_TIMEOUT)
                    .await
                    .map(LogsReply::GetLogEvents),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn responses_parse_with_length_and_chunks() {
        let r = parse_response(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}").unwrap();
        assert_eq!((r.status, r.body.as_slice()), (200, &b"{}"[..]));
        let r = parse_response(
            b"HTTP/1.1 400 Bad Request\r\nTransfer-Encoding: chunked\r\n\r\n3\r\n{\"a\r\n2\r\n\":\r\n0\r\n\r\n",
        )
        .unwrap();
        assert_eq!((r.status, r.body.as_slice()), (400, &b"{\"a\":"[..]));
        assert!(parse_response(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n{}").is_err());
        assert!(parse_response(b"garbage").is_err());
    }

    /// Against a control plane that answers `Subscribe` as an unknown operation (one from
    /// before the stream), a poll is a long poll: the agent keeps working.
    #[tokio::test]
    async fn a_poll_falls_back_to_the_long_poll_without_subscribe() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = tokio::spawn(async move {
            let mut targets = Vec::new();
            for answer in [
                (
                    "400 Bad Request",
                    r#"{"__type":"UnknownOperationException","message":"Subscribe"}"#,
                ),
                ("200 OK", r#"{"seq":3,"tasks":[]}"#),
            ] {
                let (mut conn, _) = listener.accept().await.unwrap();
                let mut raw = Vec::new();
                while !raw.windows(4).any(|w| w == b"\r\n\r\n") {
                    read_some(&mut conn, &mut raw).await.unwrap();
                }
                let head = String::from_utf8_lossy(&raw).to_ascii_lowercase();
                targets.push(
                    head.lines()
                        .find_map(|l| l.strip_prefix("x-amz-target: "))
                        .unwrap_or_default()
                        .to_string(),
                );
                let reply = format!(
                    "HTTP/1.1 {}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{}",
                    answer.0,
                    answer.1.len(),
                    answer.1
                );
                conn.write_all(reply.as_bytes()).await.unwrap();
            }
            targets
        });
        let cp = HttpControlPlane::new(HttpConfig {
            endpoint: format!("http://127.0.0.1:{port}"),
            access_key_id: "a".into(),
            secret_access_key: "b".into(),
            session_token: None,
            region: "us-east-1".into(),
            retries: 0,
        })
        .unwrap();
        let answer = cp
            .poll(PollRequest {
                cluster: "c".into(),
                container_instance_arn: "arn".into(),
                acked_seq: 0,
                wait_seconds: Some(20),
                changes_only: false,
            })
            .await
            .unwrap();
        assert_eq!(answer.seq, 3);
        assert_eq!(
            server.await.unwrap(),
            ["berthagent_20261126.subscribe", "berthagent_20261126.poll"]
        );
    }

    #[test]
    fn endpoints_must_be_plain_http() {
        let cfg = |e: &str| HttpConfig {
            endpoint: e.into(),
            access_key_id: "a".into(),
            secret_access_key: "b".into(),
            session_token: None,
            region: "us-east-1".into(),
            retries: 0,
        };
        assert!(HttpControlPlane::new(cfg("http://127.0.0.1:4566/")).is_ok());
        assert!(HttpControlPlane::new(cfg("https://x")).is_err());
        assert!(HttpControlPlane::new(cfg("http://")).is_err());
    }

    #[test]
    fn retryable_errors() {
        let aws = |status, code: &str| ControlPlaneError::Aws {
            operation: "X".into(),
            status,
            code: code.into(),
            message: String::new(),
        };
        assert!(aws(500, "ServerException").is_retryable());
        assert!(aws(400, "ThrottlingException").is_retryable());
        assert!(!aws(400, "InvalidParameterException").is_retryable());
        assert!(unreachable("e", "refused").is_retryable());
    }
}
