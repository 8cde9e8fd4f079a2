//! The control plane's end of the agent channel (protocol in `berth_wire::agent`): the
//! long poll that hands each host its tasks, and the wake-ups that end a poll early when an
//! assignment changes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use berth_store::Scope;
use berth_wire::agent::{
    MAX_MIN_INTERVAL_MS, MAX_WAIT_SECONDS, PollRequest, PollResponse, STREAM_MAX_SECONDS,
    SubscribeRequest,
};
use berth_wire::{AwsError, RequestContext, Timestamp};
use tokio::sync::{Notify, mpsc};

use crate::App;
use crate::ecs::common::{self, aws, invalid};
use crate::ecs::tasks;
use crate::failure::Failure;

/// One wake-up per host with a poll waiting (or about to), and the wake-up of the service
/// controller: whatever changes a host's tasks may concern a service.
#[derive(Default)]
pub struct Notifier {
    hosts: Mutex<HashMap<String, Arc<Notify>>>,
    /// When each host's heartbeat was last written to the store or queued for writing.
    heartbeats: Mutex<HashMap<String, i64>>,
    /// Heartbeats waiting for [`Notifier::flush_heartbeats`], by host.
    queued_heartbeats: Mutex<HashMap<String, i64>>,
    controller: Notify,
    /// Set when the server stops: open assignment streams end (their agents subscribe again
    /// to whichever server answers), so that a graceful stop does not wait them out.
    streams_closed: std::sync::atomic::AtomicBool,
    closing_streams: Notify,
}

/// How often queued heartbeats are written, all in one write transaction.
pub const HEARTBEAT_FLUSH_EVERY: Duration = Duration::from_secs(1);

/// A poll writes the host's heartbeat when the stored one is older than this; polls in
/// between only read. `agentConnected` tolerates [`berth_wire::agent::DISCONNECT_AFTER_SECONDS`]
/// (45 s) without a heartbeat, so a heartbeat at most this old changes nothing a client sees,
/// and a fleet polling often costs reads instead of write transactions.
pub const HEARTBEAT_WRITE_EVERY_MS: i64 = 10_000;

impl Notifier {
    /// The wake-up of `host`.
    pub fn waiter(&self, host: &str) -> Arc<Notify> {
        let mut hosts = self.hosts.lock().unwrap_or_else(|p| p.into_inner());
        hosts.entry(host.to_string()).or_default().clone()
    }

    /// Whether a poll of `host` at `now_ms` must write its heartbeat itself: only the first
    /// poll this process sees of a host does (a newly registered instance is placeable once
    /// its agent polled, so that one is not delayed). A later heartbeat that is due is queued
    /// for [`Notifier::flush_heartbeats`]: a fleet of 10,000 agents would otherwise take the
    /// store's one writer a thousand times a second for a timestamp each.
    fn heartbeat_due(&self, host: &str, now_ms: i64) -> bool {
        let mut beats = self.heartbeats.lock().unwrap_or_else(|p| p.into_inner());
        match beats.get(host) {
            Some(at) if now_ms - at < HEARTBEAT_WRITE_EVERY_MS && now_ms >= *at => false,
            Some(_) => {
                beats.insert(host.to_string(), now_ms);
                drop(beats);
                self.queued_heartbeats
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(host.to_string(), now_ms);
                false
            }
            None => {
                beats.insert(host.to_string(), now_ms);
                true
            }
        }
    }

    /// Writes the queued heartbeats in one transaction (called every
    /// [`HEARTBEAT_FLUSH_EVERY`]); returns how many. If the write fails they stay queued.
    pub fn flush_heartbeats(&self, store: &berth_store::Store) -> Result<usize, Failure> {
        let queued = std::mem::take(
            &mut *self
                .queued_heartbeats
                .lock()
                .unwrap_or_else(|p| p.into_inner()),
        );
        if queued.is_empty() {
            return Ok(0);
        }
        let written = store.write(|tx| -> Result<_, Failure> {
            for (host, at) in &queued {
                tasks::record_poll(tx, host, *at)?;
            }
            Ok(queued.len())
        });
        if written.is_err() {
            let mut q = self
                .queued_heartbeats
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            for (host, at) in queued {
                q.entry(host).or_insert(at);
            }
        }
        written
    }

    /// Wakes `host`'s poll, if one waits; else the next poll returns at once anyway, because
    /// the host's sequence moved.
    pub fn notify(&self, host: &str) {
        self.waiter(host).notify_waiters();
        self.controller.notify_one();
    }

    /// Tells the service controller that something it watches changed (a task, a service,
    /// a container instance). A wake-up while it is busy is kept for its next wait.
    pub fn wake_controller(&self) {
        self.controller.notify_one();
    }

    /// Waits for [`Notifier::wake_controller`] (or a host's change).
    pub async fn controller_woken(&self) {
        self.controller.notified().await;
    }

    /// Ends every open assignments stream, and the ones opened after.
    pub fn close_streams(&self) {
        self.streams_closed
            .store(true, std::sync::atomic::Ordering::SeqCst);
        self.closing_streams.notify_waiters();
    }

    /// Resolves once [`Notifier::close_streams`] was called.
    pub async fn streams_closing(&self) {
        loop {
            let closing = self.closing_streams.notified();
            tokio::pin!(closing);
            closing.as_mut().enable();
            if self
                .streams_closed
                .load(std::sync::atomic::Ordering::SeqCst)
            {
                return;
            }
            closing.await;
        }
    }
}

/// A poll's answer when its container instance does not exist (or its ARN names none).
fn instance_not_found() -> AwsError {
    invalid("The referenced container instance was not found.")
}

/// The host a poll speaks for, and the container instance (its store id) it must be: one of
/// the caller's account and region. Whether it exists is read with the poll's first answer.
/// A deregistered (INACTIVE) instance may still poll, so that the stops of a forced
/// deregistration reach its agent.
fn host_of(
    ctx: &RequestContext,
    cluster: &str,
    container_instance_arn: &str,
) -> Result<(String, String), AwsError> {
    let cluster = common::cluster_name(ctx, Some(cluster))?;
    let id = crate::ecs::container_instances::store_id(ctx, &cluster, container_instance_arn)
        .ok_or_else(instance_not_found)?;
    let host = tasks::instance_host(Scope::new(&ctx.account_id, &ctx.region), &id);
    Ok((host, id))
}

/// Answers `host`'s poll: at once when its sequence is past `acked_seq`, else when woken or
/// after `wait`. Every poll records the host's heartbeat.
pub async fn poll_host(
    app: Arc<App>,
    host: String,
    acked_seq: i64,
    wait: Duration,
) -> Result<PollResponse, AwsError> {
    poll_host_changes(app, host, acked_seq, wait, false).await
}

/// [`poll_host`]; with `changes_only`, the answer holds only the tasks that changed after
/// `acked_seq`.
pub async fn poll_host_changes(
    app: Arc<App>,
    host: String,
    acked_seq: i64,
    wait: Duration,
    changes_only: bool,
) -> Result<PollResponse, AwsError> {
    poll_instance(app, host, None, acked_seq, wait, changes_only).await
}

/// [`poll_host_changes`]; with `instance` ((account, region), store id), the first answer's
/// read also checks that the container instance exists (in the same read transaction, not
/// a read of its own before it) and the poll fails when it does not.
async fn poll_instance(
    app: Arc<App>,
    host: String,
    mut instance: Option<((String, String), String)>,
    acked_seq: i64,
    wait: Duration,
    changes_only: bool,
) -> Result<PollResponse, AwsError> {
    let deadline = tokio::time::Instant::now() + wait;
    let notify = app.ecs.notifier.waiter(&host);
    loop {
        let notified = notify.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        // Nothing filed for the host past what the agent acknowledged, as far as this process
        // knows (it counts each entry before the entry's commit and wake-up), and the instance
        // known to exist: wait for a change without a read (most of an idle fleet's polls).
        let quiet = tokio::time::Instant::now() < deadline
            && app
                .store
                .host_sequence_seen(&host)
                .is_some_and(|seen| seen <= acked_seq)
            && instance.as_ref().is_none_or(|((account, region), id)| {
                app.ecs.index.holds(Scope::new(account, region), id)
            });
        let beat_now = quiet
            && app
                .ecs
                .notifier
                .heartbeat_due(&host, Timestamp::now().millis());
        if quiet && !beat_now {
            instance = None;
            // Timed out or woken, the next round reads (or finds the host still quiet).
            let _ = tokio::time::timeout_at(deadline, notified).await;
            continue;
        }
        let check = instance.take();
        let now = Timestamp::now().millis();
        let since = changes_only.then_some(acked_seq);
        // One read, on this thread: the instance's existence (first answer only) and the
        // assignments, from the hot state in memory (host entries, tasks). Handed to the
        // blocking pool, it cost two thread wake-ups an answer, more than the read itself.
        let answer = app
            .store
            .read(|tx| -> Result<_, Failure> {
                if let Some(((account, region), id)) = &check {
                    let scope = Scope::new(account, region);
                    if tx
                        .version(scope, common::kind::CONTAINER_INSTANCE, id)?
                        .is_none()
                    {
                        return Ok(None);
                    }
                }
                tasks::assignments_since(tx, &app.ecs.task_cache, &host, since).map(Some)
            })
            .map_err(aws)?;
        if let Some((seq, _)) = &answer {
            app.store.see_host_sequence(&host, *seq);
        }
        // The writer is held only for the heartbeat, never for building the answer (the
        // heartbeat changes no assignment); it waits for the writer on the blocking pool.
        if answer.is_some() && (beat_now || app.ecs.notifier.heartbeat_due(&host, now)) {
            let app2 = app.clone();
            let h = host.clone();
            tokio::task::spawn_blocking(move || {
                app2.store
                    .write(|tx| -> Result<_, Failure> { tasks::record_poll(tx, &h, now) })
            })
            .await
            .map_err(|e| AwsError::internal(format!("the poll failed: {e}")))?
            .map_err(aws)?;
        }
        let Some((seq, tasks)) = answer else {
            return Err(instance_not_found());
        };
        if seq > acked_seq || tokio::time::Instant::now() >= deadline {
            return Ok(PollResponse { seq, tasks });
        }
        if tokio::time::timeout_at(deadline, notified).await.is_err() {
            // Timed out: answer with the current state (it also serves as the heartbeat).
            continue;
        }
    }
}

/// What an agent-channel call answers: a body, or a stream of lines that stays open.
pub enum AgentReply {
    Body(Vec<u8>),
    /// `Subscribe`'s lines as they are produced; the stream ends when the sender is dropped.
    Stream(mpsc::Receiver<Bytes>),
}

#[cfg(test)]
impl AgentReply {
    fn into_body(self) -> Vec<u8> {
        match self {
            AgentReply::Body(b) => b,
            AgentReply::Stream(_) => panic!("a stream where a body was expected"),
        }
    }
}

/// How often an open stream checks that its caller's access key is still valid (deleted,
/// deactivated or, for a session's key, expired ends the stream).
const STREAM_KEY_CHECK_EVERY: Duration = Duration::from_secs(30);

/// One JSON line of a stream.
fn stream_line(resp: &PollResponse) -> Result<Bytes, AwsError> {
    let mut line = berth_wire::json::encode(resp)?;
    line.push(b'\n');
    Ok(Bytes::from(line))
}

/// `Subscribe`: checks the instance and answers its first line (the state past `ackedSeq`)
/// before the stream opens, so a bad request gets an error answer, not an empty stream; the
/// rest comes from [`stream_assignments`].
async fn subscribe(
    app: Arc<App>,
    ctx: RequestContext,
    req: SubscribeRequest,
) -> Result<mpsc::Receiver<Bytes>, AwsError> {
    if req.min_interval_ms > MAX_MIN_INTERVAL_MS {
        return Err(invalid(format!(
            "minIntervalMs must be at most {MAX_MIN_INTERVAL_MS}."
        )));
    }
    let (host, id) = host_of(&ctx, &req.cluster, &req.container_instance_arn)?;
    let instance = Some(((ctx.account_id.clone(), ctx.region.clone()), id));
    let first = poll_instance(
        app.clone(),
        host.clone(),
        instance,
        req.acked_seq,
        Duration::ZERO,
        req.changes_only,
    )
    .await?;
    // Room for a few lines: a reader that falls behind holds the stream back, not memory.
    let (tx, rx) = mpsc::channel(4);
    // Nothing new for the agent: no answer yet (as a long poll would wait), only an empty
    // line that sends the response's head, and the first change goes at once, unpaced.
    let news = first.seq > req.acked_seq;
    let opening = if news {
        stream_line(&first)?
    } else {
        Bytes::from_static(b"\n")
    };
    tx.try_send(opening)
        .map_err(|_| AwsError::internal("the stream could not start"))?;
    tokio::spawn(stream_assignments(app, ctx, host, first.seq, news, req, tx));
    Ok(rx)
}

/// Feeds a subscription until its reader goes, it lasts [`STREAM_MAX_SECONDS`], its key stops
/// being valid or the store fails (the agent subscribes again in each case).
async fn stream_assignments(
    app: Arc<App>,
    ctx: RequestContext,
    host: String,
    mut sent_seq: i64,
    answered: bool,
    req: SubscribeRequest,
    tx: mpsc::Sender<Bytes>,
) {
    let started = tokio::time::Instant::now();
    let ends = started + Duration::from_secs(STREAM_MAX_SECONDS);
    let interval = Duration::from_millis(u64::from(req.min_interval_ms));
    // Lines are paced as polls at that interval would be: a wait for changes begins at most
    // once per interval, so a burst of changes travels in one line while a change after a
    // quiet spell goes at once (spacing the lines themselves would hold it back).
    let mut wait_began = started;
    let mut paced = answered;
    let mut key_checked = started;
    let notifier = &app.ecs.notifier;
    loop {
        if paced && !interval.is_zero() {
            tokio::select! {
                _ = tokio::time::sleep_until(wait_began + interval) => {}
                _ = tx.closed() => return,
                _ = notifier.streams_closing() => return,
            }
        }
        paced = true;
        let now = tokio::time::Instant::now();
        wait_began = now;
        if now >= ends {
            return;
        }
        if now - key_checked >= STREAM_KEY_CHECK_EVERY {
            if !key_still_valid(&app, &ctx).await {
                return;
            }
            key_checked = now;
        }
        let wait = (ends - now).min(Duration::from_secs(u64::from(MAX_WAIT_SECONDS)));
        let answer = tokio::select! {
            a = poll_instance(app.clone(), host.clone(), None, sent_seq, wait, req.changes_only) => a,
            _ = tx.closed() => return,
            _ = notifier.streams_closing() => return,
        };
        let line = match answer.and_then(|a| {
            sent_seq = a.seq;
            stream_line(&a)
        }) {
            Ok(line) => line,
            Err(e) => {
                tracing::warn!(host = %host, error = %e.message, "an assignments stream ends on an error");
                return;
            }
        };
        tokio::select! {
            sent = tx.send(line) => if sent.is_err() { return },
            _ = notifier.streams_closing() => return,
        }
    }
}

/// Whether the key a stream was opened with would still authenticate a `Subscribe` request,
/// and its principal still be allowed to make it (a policy changed meanwhile counts).
async fn key_still_valid(app: &Arc<App>, ctx: &RequestContext) -> bool {
    let app = app.clone();
    let ctx = ctx.clone();
    tokio::task::spawn_blocking(move || {
        let key_id = &ctx.access_key_id;
        let Ok(Some(key)) = app.store.access_key(key_id) else {
            return false;
        };
        if key.status != "Active" {
            return false;
        }
        if key_id.starts_with("ASIA")
            && app
                .store
                .read(|tx| crate::sts::session(tx, &ctx.account_id, key_id))
                .ok()
                .flatten()
                .is_none_or(|s| Timestamp::now().millis() >= s.expires_ms)
        {
            return false;
        }
        crate::gateway::authorize_json(
            &app,
            &ctx,
            berth_wire::agent::TARGET_PREFIX,
            berth_wire::agent::SUBSCRIBE,
            b"{}",
        )
        .is_ok()
    })
    .await
    .unwrap_or(false)
}

/// `BerthAgent_20261126.<operation>` for a remote agent.
pub async fn dispatch(
    app: Arc<App>,
    ctx: RequestContext,
    operation: &str,
    body: &[u8],
) -> Result<AgentReply, AwsError> {
    let reply = match operation {
        berth_wire::agent::SUBSCRIBE => {
            let req: SubscribeRequest =
                berth_wire::json::decode_with(body, ("InvalidParameterException", 400))?;
            return subscribe(app, ctx, req).await.map(AgentReply::Stream);
        }
        "Poll" => {
            let req: PollRequest =
                berth_wire::json::decode_with(body, ("InvalidParameterException", 400))?;
            let (host, id) = host_of(&ctx, &req.cluster, &req.container_instance_arn)?;
            let instance = Some(((ctx.account_id.clone(), ctx.region.clone()), id));
            let wait = Duration::from_secs(u64::from(
                req.wait_seconds
                    .unwrap_or(MAX_WAIT_SECONDS)
                    .min(MAX_WAIT_SECONDS),
            ));
            let resp =
                poll_instance(app, host, instance, req.acked_seq, wait, req.changes_only).await?;
            berth_wire::json::encode(&resp)
        }
        berth_wire::agent::SUBMIT_TASK_STATE_CHANGES => {
            let changes: berth_wire::agent::TaskStateChanges =
                berth_wire::json::decode_with(body, ("InvalidParameterException", 400))?;
            let resp = tokio::task::spawn_blocking(move || {
                tasks::submit_task_state_changes(&app.ecs, &ctx, &changes)
            })
            .await
            .map_err(|e| AwsError::internal(format!("the state changes failed: {e}")))??;
            berth_wire::json::encode(&resp)
        }
        berth_wire::agent::SUBMIT_TASK_HEALTH => {
            let report: berth_wire::agent::TaskHealthReport =
                berth_wire::json::decode_with(body, ("InvalidParameterException", 400))?;
            tokio::task::spawn_blocking(move || tasks::submit_health(&app.ecs, &ctx, &report))
                .await
                .map_err(|e| AwsError::internal(format!("the health report failed: {e}")))??;
            Ok(br#"{"acknowledgment":"ACK"}"#.to_vec())
        }
        other => Err(AwsError::unknown_operation(other)),
    };
    reply.map(AgentReply::Body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::context;
    use berth_wire::ecs::Api;

    fn poll(app: &Arc<App>, ctx: &RequestContext, arn: &str) -> Result<PollResponse, AwsError> {
        let body =
            serde_json::json!({"cluster": "c", "containerInstanceArn": arn, "waitSeconds": 0});
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(dispatch(
            app.clone(),
            ctx.clone(),
            "Poll",
            body.to_string().as_bytes(),
        ))
        .map(|out| serde_json::from_slice(&out.into_body()).unwrap())
    }

    /// An app with cluster "c" and a container instance registered by `request` (JSON of
    /// RegisterContainerInstance); the instance's ARN.
    fn app_with_instance(ctx: &RequestContext, request: serde_json::Value) -> (Arc<App>, String) {
        let app = Arc::new(App::new(Arc::new(
            berth_store::Store::open_in_memory_holding(crate::ecs::KINDS_HELD_IN_MEMORY).unwrap(),
        )));
        app.ecs
            .create_cluster(
                ctx,
                serde_json::from_value(serde_json::json!({"clusterName": "c"})).unwrap(),
            )
            .unwrap();
        let arn = app
            .ecs
            .register_container_instance(ctx, serde_json::from_value(request).unwrap())
            .unwrap()
            .container_instance
            .unwrap()
            .container_instance_arn
            .unwrap();
        (app, arn)
    }

    /// [`app_with_instance`] of 1,024 CPU units and MiB, task definition `web` (one 64 MiB
    /// container) registered, and a runtime to call the channel on.
    fn app_with_room_for_web(ctx: &RequestContext) -> (Arc<App>, String, tokio::runtime::Runtime) {
        let (app, arn) = app_with_instance(
            ctx,
            serde_json::json!({"cluster": "c", "totalResources": [
                {"name": "CPU", "type": "INTEGER", "integerValue": 1024},
                {"name": "MEMORY", "type": "INTEGER", "integerValue": 1024}
            ]}),
        );
        app.ecs
            .register_task_definition(
                ctx,
                serde_json::from_value(serde_json::json!({
                    "family": "web",
                    "containerDefinitions": [{"name": "app", "image": "busybox", "memory": 64}]
                }))
                .unwrap(),
            )
            .unwrap();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        (app, arn, rt)
    }

    /// A poll that finds nothing new waits without reading, and a task placed meanwhile still
    /// ends its wait at once: the host's sequence is counted before the placement's commit
    /// wakes it.
    #[test]
    fn a_waiting_poll_gets_a_task_placed_meanwhile() {
        // The agent's heartbeat is stamped with the clock: so is the placement.
        let ctx = context(Timestamp::now().millis());
        let (app, arn, rt) = app_with_room_for_web(&ctx);
        let poll_body = |acked: i64, wait: u32| {
            serde_json::json!({"cluster": "c", "containerInstanceArn": arn, "ackedSeq": acked,
                "waitSeconds": wait, "changesOnly": true})
            .to_string()
        };
        let call = |body: String| {
            let (app, ctx) = (app.clone(), ctx.clone());
            async move {
                let out = dispatch(app, ctx, "Poll", body.as_bytes())
                    .await
                    .unwrap()
                    .into_body();
                serde_json::from_slice::<PollResponse>(&out).unwrap()
            }
        };
        let run = |app: Arc<App>, ctx: RequestContext| {
            let req: berth_wire::ecs::shapes::RunTaskRequest =
                serde_json::from_value(serde_json::json!({
                "cluster": "c", "taskDefinition": "web", "launchType": "EC2"
                }))
                .unwrap();
            let placed = app.ecs.run_task(&ctx, req).unwrap();
            assert_eq!(
                placed.tasks.as_ref().map(Vec::len),
                Some(1),
                "{:?}",
                placed.failures
            );
            placed.tasks.unwrap().remove(0).task_arn.unwrap()
        };
        // The first poll reads (nothing known of the host yet) and connects the agent; the
        // first placement loads the cluster's index (which then vouches for the instance).
        let first = rt.block_on(call(poll_body(0, 0)));
        assert!(first.tasks.is_empty());
        let a = run(app.clone(), ctx.clone());
        let got_a = rt.block_on(call(poll_body(first.seq, 0)));
        assert_eq!(got_a.tasks.len(), 1);
        assert_eq!(got_a.tasks[0].task_arn, a);
        // Placed once the poll waits (without a read): the poll answers with it at once, not
        // at the end of its 20 s.
        let started = std::time::Instant::now();
        let waiting = rt.spawn(call(poll_body(got_a.seq, 20)));
        std::thread::sleep(Duration::from_millis(300));
        let b = run(app.clone(), ctx.clone());
        let answer = rt.block_on(waiting).unwrap();
        assert!(started.elapsed() < Duration::from_secs(10));
        assert!(answer.seq > got_a.seq);
        assert_eq!(answer.tasks.len(), 1);
        assert_eq!(answer.tasks[0].task_arn, b);
        // Nothing new since: a poll waits out its time and answers the same sequence.
        let idle = rt.block_on(call(poll_body(answer.seq, 1)));
        assert_eq!(idle.seq, answer.seq);
        assert!(idle.tasks.is_empty());
    }

    /// A poll answers for a registered instance and marks its agent connected; for an
    /// instance that does not exist it fails as ECS's agent endpoints do, and records nothing.
    #[test]
    fn a_poll_answers_only_for_a_registered_instance() {
        let ctx = context(1_000_000);
        let (app, arn) = app_with_instance(&ctx, serde_json::json!({"cluster": "c"}));
        let answer = poll(&app, &ctx, &arn).unwrap();
        assert!(answer.tasks.is_empty());
        let host_for = |arn: &str| host_of(&ctx, "c", arn).unwrap().0;
        let polled = |host: &str| {
            app.store
                .read(|tx| tasks::last_poll(tx, host))
                .unwrap()
                .is_some()
        };
        assert!(
            polled(&host_for(&arn)),
            "the first poll is the agent's heartbeat"
        );

        let unknown = arn.replace(
            arn.rsplit('/').next().unwrap(),
            "0123456789abcdef0123456789abcdef",
        );
        let err = poll(&app, &ctx, &unknown).unwrap_err();
        assert_eq!(err.code, "InvalidParameterException");
        assert_eq!(
            err.message,
            "The referenced container instance was not found."
        );
        assert!(
            !polled(&host_for(&unknown)),
            "no heartbeat for what does not exist"
        );
    }

    /// A subscription opens at once (with an answer, or an empty line when nothing is new),
    /// then carries a line as soon as a task is placed on its host (not at its keepalive);
    /// the stream's feeder stops once its reader is gone or the server stops. A subscription of an unknown instance, or asking for too long an interval,
    /// is an error answer, not a stream.
    #[test]
    fn a_subscription_streams_each_change_as_it_happens() {
        let ctx = context(Timestamp::now().millis());
        let (app, arn, rt) = app_with_room_for_web(&ctx);
        let subscribe = |body: serde_json::Value| {
            rt.block_on(dispatch(
                app.clone(),
                ctx.clone(),
                berth_wire::agent::SUBSCRIBE,
                body.to_string().as_bytes(),
            ))
        };
        let raw_line = |rx: &mut mpsc::Receiver<Bytes>| {
            let l = rt
                .block_on(async { tokio::time::timeout(Duration::from_secs(10), rx.recv()).await })
                .expect("a line within 10 s")
                .expect("the stream is open");
            assert_eq!(l.last(), Some(&b'\n'));
            l
        };
        // The next answer, past the empty line that opens a stream with nothing new.
        let line = |rx: &mut mpsc::Receiver<Bytes>| loop {
            let l = raw_line(rx);
            if l.as_ref() != b"\n" {
                return serde_json::from_slice::<PollResponse>(&l).unwrap();
            }
        };
        let Ok(AgentReply::Stream(mut rx)) = subscribe(serde_json::json!({
            "cluster": "c", "containerInstanceArn": arn, "changesOnly": true
        })) else {
            panic!("no stream")
        };
        // A new instance has nothing to run: an empty line, or an answer without tasks.
        let opening = raw_line(&mut rx);
        if opening.as_ref() != b"\n" {
            let first: PollResponse = serde_json::from_slice(&opening).unwrap();
            assert!(first.tasks.is_empty());
        }
        let started = std::time::Instant::now();
        let placed = app
            .ecs
            .run_task(
                &ctx,
                serde_json::from_value(serde_json::json!({
                    "cluster": "c", "taskDefinition": "web", "launchType": "EC2"
                }))
                .unwrap(),
            )
            .unwrap();
        let arn_a = placed.tasks.unwrap().remove(0).task_arn.unwrap();
        let next = line(&mut rx);
        assert!(started.elapsed() < Duration::from_secs(10));
        assert!(next.seq > 0);
        assert_eq!(next.tasks.len(), 1);
        assert_eq!(next.tasks[0].task_arn, arn_a);
        drop(rx);

        let unknown = arn.replace(
            arn.rsplit('/').next().unwrap(),
            "0123456789abcdef0123456789abcdef",
        );
        let Err(err) =
            subscribe(serde_json::json!({"cluster": "c", "containerInstanceArn": unknown}))
        else {
            panic!("a stream for an unknown instance")
        };
        assert_eq!(err.code, "InvalidParameterException");
        let Err(err) = subscribe(serde_json::json!({
            "cluster": "c", "containerInstanceArn": arn, "minIntervalMs": 60_001
        })) else {
            panic!("a stream with too long an interval")
        };
        assert_eq!(err.code, "InvalidParameterException");
        assert!(err.message.contains("minIntervalMs"), "{}", err.message);

        // A stopping server ends its streams (a graceful stop waits for requests in flight).
        let Ok(AgentReply::Stream(mut rx)) = subscribe(serde_json::json!({
            "cluster": "c", "containerInstanceArn": arn, "ackedSeq": next.seq
        })) else {
            panic!("no stream")
        };
        assert_eq!(
            raw_line(&mut rx).as_ref(),
            b"\n",
            "nothing new: the stream opens without an answer"
        );
        app.ecs.notifier.close_streams();
        let end =
            rt.block_on(async { tokio::time::timeout(Duration::from_secs(10), rx.recv()).await });
        assert_eq!(end, Ok(None), "the stream ends");
    }

    /// What ends an open stream at its next key check: the key deactivated or deleted.
    #[test]
    fn a_stream_outlives_its_key_only_until_the_next_check() {
        let ctx = context(Timestamp::now().millis());
        let app = Arc::new(App::new(Arc::new(
            berth_store::Store::open_in_memory_holding(crate::ecs::KINDS_HELD_IN_MEMORY).unwrap(),
        )));
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let valid = || rt.block_on(key_still_valid(&app, &ctx));
        assert!(!valid(), "no such key");
        let key = berth_store::AccessKey {
            access_key_id: ctx.access_key_id.clone(),
            secret_access_key: "secret".into(),
            account: ctx.account_id.clone(),
            principal_arn: ctx.principal_arn.clone(),
            status: "Active".into(),
            created_at_ms: 0,
        };
        let change = |f: &dyn Fn(&mut berth_store::Tx<'_>)| {
            app.store
                .write(|tx| -> Result<(), Failure> {
                    f(tx);
                    Ok(())
                })
                .unwrap()
        };
        change(&|tx| tx.insert_access_key(&key).unwrap());
        assert!(valid());
        change(&|tx| {
            tx.set_access_key_status(&key.access_key_id, "Inactive")
                .unwrap();
        });
        assert!(!valid(), "deactivated");
        change(&|tx| {
            tx.set_access_key_status(&key.access_key_id, "Active")
                .unwrap();
        });
        assert!(valid());
        change(&|tx| {
            tx.delete_access_key(&key.access_key_id).unwrap();
        });
        assert!(!valid(), "deleted");
    }
}
