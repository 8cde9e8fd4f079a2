//! AWS Security Token Service (query protocol): who is calling, and role sessions.
//!
//! GetCallerIdentity answers for any valid signature, as STS does (it needs no permission).
//! AssumeRole checks the role's trust policy together with the caller's own policies and
//! vends temporary credentials: an `ASIA…` key in the access-key table (so the gateway
//! verifies signatures as for any key) and a session record holding the session token, the
//! expiry and the session policies, which the gateway checks on every call.

use std::sync::Arc;

use berth_store::Store;
use berth_wire::sts::{Api, shapes as s};
use berth_wire::{AwsError, RequestContext};

use berth_store::{AccessKey, Scope};
use berth_wire::Timestamp;
use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::authz;
use crate::iam::entities::{StoredRole, StoredUser, kind};
use crate::iam::{common, users};

/// Record kind of role sessions, by access key id, in the account-wide scope.
pub const SESSION_KIND: &str = "sts/session";

/// A role session vended by AssumeRole.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Session {
    pub role_name: String,
    pub role_arn: String,
    pub role_id: String,
    pub session_name: String,
    /// `arn:aws:sts::ACCOUNT:assumed-role/ROLE/SESSION`.
    pub session_arn: String,
    pub session_token: String,
    pub expires_ms: i64,
    /// Session policies (the inline `Policy` and the documents of `PolicyArns`).
    #[serde(default)]
    pub policies: Vec<String>,
    /// Session tags.
    #[serde(default)]
    pub tags: Vec<(String, String)>,
}

/// The session of a temporary access key.
pub fn session(
    tx: &berth_store::Tx<'_>,
    account: &str,
    access_key_id: &str,
) -> Result<Option<Session>, berth_store::StoreError> {
    Ok(tx
        .get_json::<Session>(Scope::new(account, ""), SESSION_KIND, access_key_id)?
        .map(|(s, _)| s))
}

/// The caller's user id as STS reports it for a session: `ROLEID:SESSION`.
pub fn session_user_id(s: &Session) -> String {
    format!("{}:{}", s.role_id, s.session_name)
}

fn random_text(len: usize) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut rng = rand::rng();
    (0..len)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

fn sts_error(code: &'static str, status: u16, message: impl Into<String>) -> AwsError {
    AwsError::new(code, status, message)
}

fn validation(message: impl Into<String>) -> AwsError {
    sts_error("ValidationError", 400, message)
}

/// The STS service.
pub struct Sts {
    pub store: Arc<Store>,
}

impl Sts {
    pub fn new(store: Arc<Store>) -> Sts {
        Sts { store }
    }
}

impl Api for Sts {
    fn assume_role(
        &self,
        ctx: &RequestContext,
        input: s::AssumeRoleRequest,
    ) -> Result<s::AssumeRoleResponse, AwsError> {
        self.assume(ctx, input)
    }

    fn get_caller_identity(
        &self,
        ctx: &RequestContext,
        _input: s::GetCallerIdentityRequest,
    ) -> Result<s::GetCallerIdentityResponse, AwsError> {
        let root = crate::accounts::root_arn(&ctx.account_id);
        // The root user's id is its account id; an IAM user's is its unique id (AIDA…).
        let user_id = if ctx.principal_arn == root {
            ctx.account_id.clone()
        } else if ctx.access_key_id.starts_with("ASIA") {
            self.store
                .read(|tx| session(tx, &ctx.account_id, &ctx.access_key_id))
                .map_err(|e| common::aws(e.into()))?
                .map(|s| session_user_id(&s))
                .unwrap_or_else(|| ctx.principal_arn.clone())
        } else if let Some(name) = users::user_name_of(&ctx.principal_arn) {
            self.store
                .read(|tx| {
                    tx.get_json::<StoredUser>(common::scope(ctx), kind::USER, &common::key(name))
                })
                .map_err(|e| common::aws(e.into()))?
                .map(|(u, _)| u.user.user_id)
                .unwrap_or_else(|| name.to_string())
        } else {
            ctx.principal_arn.clone()
        };
        Ok(s::GetCallerIdentityResponse {
            account: Some(ctx.account_id.clone()),
            arn: Some(ctx.principal_arn.clone()),
            user_id: Some(user_id),
        })
    }
}

impl Sts {
    fn assume(
        &self,
        ctx: &RequestContext,
        input: s::AssumeRoleRequest,
    ) -> Result<s::AssumeRoleResponse, AwsError> {
        let name = &input.role_session_name;
        if name.chars().count() < 2
            || name.chars().count() > 64
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "+=,.@_-".contains(c))
        {
            return Err(validation(format!(
                "1 validation error detected: Value '{name}' at 'roleSessionName' failed to satisfy constraint: Member must satisfy regular expression pattern: [\\w+=,.@-]*"
            )));
        }
        if let Some(d) = input.duration_seconds
            && !(900..=43200).contains(&d)
        {
            return Err(validation(format!(
                "1 validation error detected: Value '{d}' at 'durationSeconds' failed to satisfy constraint: Member must have value greater than or equal to 900"
            )));
        }
        let mut session_docs = Vec::new();
        if let Some(p) = &input.policy {
            if p.len() > 2048 {
                return Err(sts_error(
                    "PackedPolicyTooLarge",
                    400,
                    "Packed size of consumed session policies and session tags exceeds the maximum allowed size.",
                ));
            }
            berth_iam::Policy::parse(p, berth_iam::policy::PolicyKind::Identity)
                .map_err(|e| sts_error("MalformedPolicyDocument", 400, e.0))?;
            session_docs.push(p.clone());
        }
        let denied = |who: &str| {
            sts_error(
                "AccessDenied",
                403,
                format!(
                    "User: {who} is not authorized to perform: sts:AssumeRole on resource: {}",
                    input.role_arn
                ),
            )
        };
        if ctx.principal_arn == crate::accounts::root_arn(&ctx.account_id) {
            return Err(sts_error(
                "AccessDenied",
                403,
                "Roles may not be assumed by root accounts.",
            ));
        }
        // The role, in the caller's account (cross-account trust is not served).
        let role_name = input
            .role_arn
            .strip_prefix(&format!("arn:aws:iam::{}:role/", ctx.account_id))
            .map(|r| r.rsplit('/').next().unwrap_or(r).to_string())
            .ok_or_else(|| denied(&ctx.principal_arn))?;
        let (role, caller, boundary_docs) = self
            .store
            .read(|tx| -> Result<_, crate::failure::Failure> {
                let role = tx
                    .get_json::<StoredRole>(
                        common::scope(ctx),
                        kind::ROLE,
                        &common::key(&role_name),
                    )?
                    .map(|(r, _)| r);
                let caller = authz::caller_in(tx, ctx)?;
                let mut docs = Vec::new();
                for d in input.policy_arns.iter().flatten() {
                    let arn = d.arn.clone().unwrap_or_default();
                    match crate::iam::policies::default_document(tx, ctx, &arn)? {
                        Some(doc) => docs.push(doc),
                        None => {
                            return Err(common::no_such(format!(
                                "Policy {arn} does not exist or is not attachable."
                            ))
                            .into());
                        }
                    }
                }
                Ok((role, caller, docs))
            })
            .map_err(common::aws)?;
        session_docs.extend(boundary_docs);
        let Some(role) = role.filter(|r| r.role.arn == input.role_arn) else {
            return Err(denied(&ctx.principal_arn));
        };
        let duration = input.duration_seconds.unwrap_or(3600);
        if duration > role.role.max_session_duration.unwrap_or(3600) {
            return Err(validation(
                "The requested DurationSeconds exceeds the MaxSessionDuration set for this role.",
            ));
        }
        let Some(caller) = caller else {
            return Err(denied(&ctx.principal_arn));
        };
        let trust = role
            .role
            .assume_role_policy_document
            .as_deref()
            .and_then(|d| berth_iam::Policy::parse(d, berth_iam::policy::PolicyKind::Trust).ok());
        let call = authz::Call {
            action: "sts:AssumeRole".into(),
            resources: vec![input.role_arn.clone()],
            keys: input
                .tags
                .iter()
                .flatten()
                .map(|t| (format!("aws:RequestTag/{}", t.key), vec![t.value.clone()]))
                .collect(),
        };
        let req = authz::request(ctx, &caller, &call, &input.role_arn);
        let set = berth_iam::PolicySet {
            identity: &caller.identity,
            resource: trust.as_ref(),
            boundary: caller.boundary.as_ref(),
            session: &caller.session,
        };
        if !berth_iam::evaluate(&caller.principal, &set, &req).allowed() {
            return Err(denied(&ctx.principal_arn));
        }
        let expires = Timestamp(ctx.now.millis() + i64::from(duration) * 1000);
        let session_arn = format!(
            "arn:aws:sts::{}:assumed-role/{}/{}",
            ctx.account_id, role.role.role_name, input.role_session_name
        );
        let mut rng = rand::rng();
        let key = AccessKey {
            access_key_id: format!("ASIA{}", &crate::accounts::new_access_key_id(&mut rng)[4..]),
            secret_access_key: crate::accounts::new_secret(&mut rng),
            account: ctx.account_id.clone(),
            principal_arn: session_arn.clone(),
            status: "Active".into(),
            created_at_ms: ctx.now.millis(),
        };
        let session = Session {
            role_name: role.role.role_name.clone(),
            role_arn: role.role.arn.clone(),
            role_id: role.role.role_id.clone(),
            session_name: input.role_session_name.clone(),
            session_arn: session_arn.clone(),
            session_token: format!("IQoJb3JpZ2luX2Vj{}", random_text(300)),
            expires_ms: expires.millis(),
            policies: session_docs,
            tags: input
                .tags
                .iter()
                .flatten()
                .map(|t| (t.key.clone(), t.value.clone()))
                .collect(),
        };
        self.store
            .write(|tx| -> Result<(), crate::failure::Failure> {
                tx.insert_access_key(&key)?;
                tx.put(
                    Scope::new(&ctx.account_id, ""),
                    SESSION_KIND,
                    &key.access_key_id,
                    None,
                    &session,
                )?;
                Ok(())
            })
            .map_err(common::aws)?;
        Ok(s::AssumeRoleResponse {
            assumed_role_user: Some(s::AssumedRoleUser {
                arn: session_arn,
                assumed_role_id: session_user_id(&session),
            }),
            credentials: Some(s::Credentials {
                access_key_id: key.access_key_id,
                expiration: expires,
                secret_access_key: key.secret_access_key,
                session_token: session.session_token,
            }),
            packed_policy_size: input.policy.as_ref().map(|p| (p.len() * 100 / 2048) as i32),
            session_token_size: None,
            session_token_utilization: None,
            source_identity: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_identity() {
        let ctx = crate::test_support::context(1_700_000_000_000);
        let store = Arc::new(Store::open_in_memory().unwrap());
        let out = Sts::new(store)
            .get_caller_identity(&ctx, s::GetCallerIdentityRequest::default())
            .unwrap();
        assert_eq!(out.account.as_deref(), Some(ctx.account_id.as_str()));
        assert_eq!(out.arn, Some(crate::accounts::root_arn(&ctx.account_id)));
        assert_eq!(out.user_id, Some(ctx.account_id.clone()));
    }
}
