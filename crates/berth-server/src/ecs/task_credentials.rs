//! Task roles and task execution roles: temporary credentials for a task's containers and for
//! the agent working on the task's behalf.
//!
//! When a task with a task role (`taskRoleArn` of its definition, or of RunTask's overrides)
//! or an execution role (`executionRoleArn`) is created, the control plane assumes each role
//! on behalf of `ecs-tasks.amazonaws.com`:
//! the role's trust policy must allow that service, as on ECS. The session is an ordinary STS
//! role session (an `ASIA…` key, a session record, session name = the task id), so calls the
//! containers make are authenticated and authorised like any other. The credentials reach the
//! agent inside the task's assignment; housekeeping rotates them before they expire and
//! revokes them once the task has stopped.

use berth_iam::policy::PolicyKind;
use berth_store::{AccessKey, Scope, Tx};
use berth_wire::RequestContext;
use berth_wire::agent::RoleCredentials;
use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::failure::Failure;
use crate::iam::entities::{StoredRole, kind as iam_kind};
use crate::sts::{SESSION_KIND, Session};

/// Record kind of task role credentials, by task store id (`<cluster>/<id>`) in the task's
/// region.
pub const KIND: &str = "ecs/task-credentials";

/// Record kind of execution role credentials, keyed like [`KIND`].
pub const EXECUTION_KIND: &str = "ecs/execution-credentials";

/// Which of a task's two roles a set of credentials belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RolePurpose {
    /// `taskRoleArn`: served to the task's containers.
    Task,
    /// `executionRoleArn`: used by the agent for image pulls, logs and secrets.
    Execution,
}

impl RolePurpose {
    pub const ALL: [RolePurpose; 2] = [RolePurpose::Task, RolePurpose::Execution];

    /// The store kind of this purpose's credential records.
    pub fn kind(self) -> &'static str {
        match self {
            RolePurpose::Task => KIND,
            RolePurpose::Execution => EXECUTION_KIND,
        }
    }
}

/// How long task credentials last (ECS rotates its task credentials every few hours).
pub const LIFETIME_MS: i64 = 6 * 3600 * 1000;

/// Rotated when they have less than this left.
pub const ROTATE_BEFORE_MS: i64 = 3600 * 1000;

/// The service that assumes task roles.
pub const ECS_TASKS: &str = "ecs-tasks.amazonaws.com";

/// A task's current credentials.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskCredentials {
    pub credentials_id: String,
    pub role_arn: String,
    pub access_key_id: String,
    pub expires_ms: i64,
    /// The task's account, for revoking the key.
    pub account: String,
}

fn refusal(role_arn: &str) -> Failure {
    super::common::invalid(format!(
        "ECS was unable to assume the role '{role_arn}' that was provided for this task. Please verify that the role being passed has the proper trust relationship and permissions and that your IAM user has permissions to pass this role."
    ))
    .into()
}

fn random_token() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut rng = rand::rng();
    let tail: String = (0..300)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect();
    format!("IQoJb3JpZ2luX2Vj{tail}")
}

/// Assumes `role_arn` for the task `task_store_id` (in `scope`) and records the session;
/// `previous` keeps the credentials id and revokes the old key (a rotation).
#[allow(clippy::too_many_arguments)]
fn vend(
    tx: &mut Tx<'_>,
    purpose: RolePurpose,
    scope: Scope<'_>,
    task_store_id: &str,
    task_id: &str,
    role_arn: &str,
    now_ms: i64,
    previous: Option<&TaskCredentials>,
) -> Result<TaskCredentials, Failure> {
    let account = scope.account;
    let role_name = role_arn
        .strip_prefix(&format!("arn:aws:iam::{account}:role/"))
        .map(|r| r.rsplit('/').next().unwrap_or(r).to_ascii_lowercase())
        .ok_or_else(|| refusal(role_arn))?;
    let (role, _) = tx
        .get_json::<StoredRole>(scope.global(), iam_kind::ROLE, &role_name)?
        .filter(|(r, _)| r.role.arn == role_arn)
        .ok_or_else(|| refusal(role_arn))?;
    let trust = role
        .role
        .assume_role_policy_document
        .as_deref()
        .and_then(|d| berth_iam::Policy::parse(d, PolicyKind::Trust).ok())
        .ok_or_else(|| refusal(role_arn))?;
    let service = berth_iam::Principal::Service {
        name: ECS_TASKS.into(),
    };
    let req = berth_iam::RequestContext::new("sts:AssumeRole", role_arn);
    let set = berth_iam::PolicySet {
        resource: Some(&trust),
        ..Default::default()
    };
    if !berth_iam::evaluate(&service, &set, &req).allowed() {
        return Err(refusal(role_arn));
    }
    if let Some(p) = previous {
        revoke(tx, p)?;
    }
    let mut rng = rand::rng();
    let session_arn = format!(
        "arn:aws:sts::{account}:assumed-role/{}/{task_id}",
        role.role.role_name
    );
    let key = AccessKey {
        access_key_id: format!("ASIA{}", &crate::accounts::new_access_key_id(&mut rng)[4..]),
        secret_access_key: crate::accounts::new_secret(&mut rng),
        account: account.to_string(),
        principal_arn: session_arn.clone(),
        status: "Active".into(),
        created_at_ms: now_ms,
    };
    let expires_ms = now_ms + LIFETIME_MS;
    let session = Session {
        role_name: role.role.role_name.clone(),
        role_arn: role.role.arn.clone(),
        role_id: role.role.role_id.clone(),
        session_name: task_id.to_string(),
        session_arn,
        session_token: random_token(),
        expires_ms,
        policies: Vec::new(),
        tags: Vec::new(),
    };
    tx.insert_access_key(&key)?;
    tx.put(
        scope.global(),
        SESSION_KIND,
        &key.access_key_id,
        None,
        &session,
    )?;
    let creds = TaskCredentials {
        credentials_id: previous
            .map(|p| p.credentials_id.clone())
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string()),
        role_arn: role_arn.to_string(),
        access_key_id: key.access_key_id,
        expires_ms,
        account: account.to_string(),
    };
    tx.put(scope, purpose.kind(), task_store_id, None, &creds)?;
    Ok(creds)
}

/// Deletes a session's key and record.
fn revoke(tx: &mut Tx<'_>, c: &TaskCredentials) -> Result<(), Failure> {
    tx.delete_access_key(&c.access_key_id)?;
    tx.delete(Scope::new(&c.account, ""), SESSION_KIND, &c.access_key_id)?;
    Ok(())
}

/// The role a task runs as: RunTask's override, else its definition's.
pub fn task_role(
    td: &berth_wire::ecs::shapes::TaskDefinition,
    overrides: Option<&berth_wire::ecs::shapes::TaskOverride>,
) -> Option<String> {
    overrides
        .and_then(|o| o.task_role_arn.clone())
        .or_else(|| td.task_role_arn.clone())
        .filter(|r| !r.is_empty())
}

/// The role the agent acts as for a task: RunTask's override, else its definition's.
pub fn execution_role(
    td: &berth_wire::ecs::shapes::TaskDefinition,
    overrides: Option<&berth_wire::ecs::shapes::TaskOverride>,
) -> Option<String> {
    overrides
        .and_then(|o| o.execution_role_arn.clone())
        .or_else(|| td.execution_role_arn.clone())
        .filter(|r| !r.is_empty())
}

/// The role a task has for `purpose`, if any.
pub fn role_for(
    purpose: RolePurpose,
    td: &berth_wire::ecs::shapes::TaskDefinition,
    overrides: Option<&berth_wire::ecs::shapes::TaskOverride>,
) -> Option<String> {
    match purpose {
        RolePurpose::Task => task_role(td, overrides),
        RolePurpose::Execution => execution_role(td, overrides),
    }
}

/// Vends the first credentials of a new task for each role it has.
pub fn for_new_task(
    tx: &mut Tx<'_>,
    ctx: &RequestContext,
    task_store_id: &str,
    task_id: &str,
    td: &berth_wire::ecs::shapes::TaskDefinition,
    overrides: Option<&berth_wire::ecs::shapes::TaskOverride>,
) -> Result<(), Failure> {
    for purpose in RolePurpose::ALL {
        let Some(role_arn) = role_for(purpose, td, overrides) else {
            continue;
        };
        vend(
            tx,
            purpose,
            Scope::new(&ctx.account_id, &ctx.region),
            task_store_id,
            task_id,
            &role_arn,
            ctx.now.millis(),
            None,
        )?;
    }
    Ok(())
}

/// A task's credentials for one of its roles, as its assignment carries them.
pub fn for_assignment(
    tx: &Tx<'_>,
    purpose: RolePurpose,
    scope: Scope<'_>,
    task_store_id: &str,
) -> Result<Option<RoleCredentials>, Failure> {
    let Some((c, _)) = tx.get_json::<TaskCredentials>(scope, purpose.kind(), task_store_id)? else {
        return Ok(None);
    };
    let Some(key) = tx.access_key(&c.access_key_id)? else {
        return Ok(None);
    };
    let Some(session) = crate::sts::session(tx, &c.account, &c.access_key_id)? else {
        return Ok(None);
    };
    Ok(Some(RoleCredentials {
        credentials_id: c.credentials_id,
        role_arn: c.role_arn,
        access_key_id: key.access_key_id,
        secret_access_key: key.secret_access_key,
        session_token: session.session_token,
        expiration_ms: c.expires_ms,
    }))
}

/// Housekeeping: rotates credentials about to expire (waking the task's host so its agent
/// gets them) and revokes those of tasks that have stopped or are gone. Returns how many
/// were rotated and revoked.
pub fn upkeep(store: &berth_store::Store, now_ms: i64) -> Result<(usize, usize), Failure> {
    store.write(|tx| -> Result<(usize, usize), Failure> {
        let (mut rotated, mut revoked) = (0, 0);
        for purpose in RolePurpose::ALL {
            let kind = purpose.kind();
            let mut after: Option<(String, String, String)> = None;
            loop {
                let page = tx.list_everywhere(
                    kind,
                    after
                        .as_ref()
                        .map(|(a, r, i)| (a.as_str(), r.as_str(), i.as_str())),
                    500,
                )?;
                let Some(last) = page.last() else { break };
                after = Some((last.0.clone(), last.1.clone(), last.2.id.clone()));
                for (account, region, rec) in page {
                    let c: TaskCredentials = rec.decode(kind)?;
                    let scope = Scope::new(&account, &region);
                    let task = tx.get_json::<super::tasks::StoredTask>(
                        scope,
                        super::tasks::task_kind::TASK,
                        &rec.id,
                    )?;
                    let running = task
                        .as_ref()
                        .is_some_and(|(t, _)| t.last_status().as_str() != "STOPPED");
                    if !running {
                        revoke(tx, &c)?;
                        tx.delete(scope, kind, &rec.id)?;
                        revoked += 1;
                        continue;
                    }
                    if c.expires_ms - now_ms < ROTATE_BEFORE_MS
                        && let Some((t, _)) = task
                    {
                        let task_id = rec.id.rsplit('/').next().unwrap_or(&rec.id).to_string();
                        vend(
                            tx,
                            purpose,
                            scope,
                            &rec.id,
                            &task_id,
                            &c.role_arn,
                            now_ms,
                            Some(&c),
                        )?;
                        super::tasks::touch_host_task(tx, scope, &rec.id, &t)?;
                        rotated += 1;
                    }
                }
            }
        }
        Ok((rotated, revoked))
    })
}
