//! Berth-managed capacity (the Fargate launch type) inside `berth up`: an agent that runs in
//! the server's process and talks to the control plane through plain function calls instead
//! of HTTP. It serves the managed host, which holds every Fargate task of every account and
//! region of this server; no container instance of it is ever shown to users.

use std::sync::Arc;
use std::time::Duration;

use berth_agent::{BoxFuture, ControlPlane, ControlPlaneError, LogsCall, LogsReply, LogsScope};
use berth_server::App;
use berth_server::ecs::tasks::{self, MANAGED_HOST};
use berth_wire::agent::{PollRequest, PollResponse, TaskHealthReport};
use berth_wire::ecs::shapes as s;
use berth_wire::{AwsError, RequestContext, Timestamp};

/// The in-process control plane of the managed host.
pub struct ManagedCapacity {
    app: Arc<App>,
}

impl ManagedCapacity {
    pub fn new(app: Arc<App>) -> ManagedCapacity {
        ManagedCapacity { app }
    }
}

fn cp_error(operation: &str, e: AwsError) -> ControlPlaneError {
    ControlPlaneError::Aws {
        operation: operation.into(),
        status: e.status,
        code: e.code.into_owned(),
        message: e.message,
    }
}

/// The request context of a report about `task_arn`: its own account and region, acting as
/// ECS's service-linked role (these calls come from Berth itself, not from a user).
fn context_of(task_arn: &str) -> Result<RequestContext, AwsError> {
    let arn = berth_model::Arn::parse(task_arn).ok_or_else(|| {
        AwsError::new(
            "InvalidParameterException",
            400,
            format!("not a task ARN: {task_arn}"),
        )
    })?;
    Ok(RequestContext {
        principal_arn: format!(
            "arn:aws:iam::{}:role/aws-service-role/ecs.amazonaws.com/AWSServiceRoleForECS",
            arn.account
        ),
        account_id: arn.account,
        region: arn.region,
        access_key_id: String::new(),
        request_id: uuid_like(),
        source_ip: "127.0.0.1".into(),
        user_agent: "berth-managed-capacity".into(),
        now: Timestamp::now(),
    })
}

fn uuid_like() -> String {
    format!("managed-{}", Timestamp::now().millis())
}

/// Runs `f` on the blocking pool (handlers touch SQLite).
async fn blocking<T: Send + 'static>(
    operation: &'static str,
    f: impl FnOnce() -> Result<T, AwsError> + Send + 'static,
) -> Result<T, ControlPlaneError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| cp_error(operation, AwsError::internal(e.to_string())))?
        .map_err(|e| cp_error(operation, e))
}

impl ControlPlane for ManagedCapacity {
    fn register(
        &self,
        _req: s::RegisterContainerInstanceRequest,
    ) -> BoxFuture<'_, Result<s::RegisterContainerInstanceResponse, ControlPlaneError>> {
        Box::pin(async {
            Err(cp_error(
                "RegisterContainerInstance",
                AwsError::new(
                    "ClientException",
                    400,
                    "managed capacity has no container instance",
                ),
            ))
        })
    }

    fn poll(&self, req: PollRequest) -> BoxFuture<'_, Result<PollResponse, ControlPlaneError>> {
        Box::pin(async move {
            let wait = Duration::from_secs(u64::from(
                req.wait_seconds
                    .unwrap_or(berth_wire::agent::MAX_WAIT_SECONDS)
                    .min(berth_wire::agent::MAX_WAIT_SECONDS),
            ));
            berth_server::agent_channel::poll_host(
                self.app.clone(),
                MANAGED_HOST.into(),
                req.acked_seq,
                wait,
            )
            .await
            .map_err(|e| cp_error("Poll", e))
        })
    }

    fn submit_task_state(
        &self,
        req: s::SubmitTaskStateChangeRequest,
    ) -> BoxFuture<'_, Result<(), ControlPlaneError>> {
        let app = self.app.clone();
        Box::pin(async move {
            blocking("SubmitTaskStateChange", move || {
                let ctx = context_of(req.task.as_deref().unwrap_or(""))?;
                tasks::submit_task_state_change(&app.ecs, &ctx, req).map(|_| ())
            })
            .await
        })
    }

    fn submit_container_state(
        &self,
        req: s::SubmitContainerStateChangeRequest,
    ) -> BoxFuture<'_, Result<(), ControlPlaneError>> {
        let app = self.app.clone();
        Box::pin(async move {
            blocking("SubmitContainerStateChange", move || {
                let ctx = context_of(req.task.as_deref().unwrap_or(""))?;
                tasks::submit_container_state_change(&app.ecs, &ctx, req).map(|_| ())
            })
            .await
        })
    }

    fn submit_task_health(
        &self,
        report: TaskHealthReport,
    ) -> BoxFuture<'_, Result<(), ControlPlaneError>> {
        let app = self.app.clone();
        Box::pin(async move {
            blocking("SubmitTaskHealth", move || {
                let ctx = context_of(&report.task)?;
                tasks::submit_health(&app.ecs, &ctx, &report)
            })
            .await
        })
    }

    /// The awslogs driver of managed tasks calls the Logs service in process, in the task's
    /// account and the `awslogs-region`, as the task's execution role session when it has
    /// one (authorised against the role's policies as a signed call would be), else as the
    /// task's account. No HTTP, no key: `berth up` needs nothing more.
    fn logs(
        &self,
        scope: LogsScope,
        call: LogsCall,
    ) -> BoxFuture<'_, Result<LogsReply, ControlPlaneError>> {
        use berth_wire::logs::Api as _;
        let app = self.app.clone();
        let operation = call.operation();
        Box::pin(async move {
            blocking(operation, move || {
                let mut ctx = context_of(&scope.task_arn)?;
                ctx.region = scope.region;
                ctx.principal_arn = format!("arn:aws:iam::{}:root", ctx.account_id);
                ctx.user_agent = "berth-managed-capacity awslogs".into();
                if let Some(c) = scope.execution_role.current() {
                    let session = app
                        .store
                        .read(|tx| {
                            berth_server::sts::session(tx, &ctx.account_id, &c.access_key_id)
                        })
                        .map_err(|e| AwsError::internal(e.to_string()))?
                        .ok_or_else(|| {
                            AwsError::new(
                                "UnrecognizedClientException",
                                400,
                                "The security token included in the request is invalid.",
                            )
                        })?;
                    ctx.principal_arn = session.session_arn;
                    ctx.access_key_id = c.access_key_id;
                    let input = match &call {
                        LogsCall::CreateLogGroup(r) => serde_json::to_value(r),
                        LogsCall::CreateLogStream(r) => serde_json::to_value(r),
                        // Only the names decide the resource; the batch (up to 10,000
                        // events) is not serialised again for that.
                        LogsCall::PutLogEvents(r) => Ok(serde_json::json!({
                            "logGroupName": r.log_group_name,
                            "logStreamName": r.log_stream_name,
                        })),
                        LogsCall::GetLogEvents(r) => serde_json::to_value(r),
                    }
                    .unwrap_or_default();
                    let authz = berth_server::authz::logs_call(&ctx, operation, &input);
                    berth_server::authz::authorize(
                        &app.store,
                        &ctx,
                        &authz,
                        berth_server::authz::Dialect::Json,
                    )?;
                }
                let logs = &app.logs;
                match call {
                    LogsCall::CreateLogGroup(r) => {
                        logs.create_log_group(&ctx, r).map(|()| LogsReply::Done)
                    }
                    LogsCall::CreateLogStream(r) => {
                        logs.create_log_stream(&ctx, r).map(|()| LogsReply::Done)
                    }
                    LogsCall::PutLogEvents(r) => {
                        logs.put_log_events(&ctx, r).map(LogsReply::PutLogEvents)
                    }
                    LogsCall::GetLogEvents(r) => {
                        logs.get_log_events(&ctx, r).map(LogsReply::GetLogEvents)
                    }
                }
            })
            .await
        })
    }
}
