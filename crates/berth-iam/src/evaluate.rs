//! IAM's policy evaluation logic for one request.
//!
//! In order, as IAM documents it:
//! 1. An explicit `Deny` that applies, in any policy (identity-based, resource-based,
//!    permissions boundary, session policy), denies.
//! 2. Within one account, a resource-based policy that allows the caller by its exact ARN
//!    (the IAM user, or the role *session*) allows, whatever the boundary or session policy
//!    say.
//! 3. Otherwise an identity-based or resource-based `Allow` is needed; across accounts both
//!    sides are needed. A resource-based policy that names only the caller's *account*
//!    delegates to that account: it allows nothing without an identity-based `Allow` (this is
//!    why a role trusting `arn:aws:iam::ACCOUNT:root` can be assumed only by principals whose
//!    own policies allow `sts:AssumeRole`).
//! 4. A permissions boundary, when the principal has one, must also allow.
//! 5. Session policies, when the session has any, must also allow.
//!
//! The account root is never limited by identity-side policies (it has none), only by an
//! explicit deny in a resource-based policy.

use crate::context::RequestContext;
use crate::pattern::{action_matches, resource_matches};
use crate::policy::{Effect, Items, Policy, Principals, Statement};
use crate::variables::substitute;

/// Who is asking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// The account's root user (`arn:aws:iam::ACCOUNT:root`).
    Root { account: String },
    /// An IAM user.
    User { arn: String, account: String },
    /// A role session from AssumeRole (`arn:aws:sts::ACCOUNT:assumed-role/ROLE/SESSION`).
    AssumedRole {
        session_arn: String,
        role_arn: String,
        account: String,
    },
    /// An AWS service acting for the account (`ecs-tasks.amazonaws.com`).
    Service { name: String },
}

impl Principal {
    /// The ARN AWS names the caller by in messages.
    pub fn arn(&self) -> String {
        match self {
            Principal::Root { account } => format!("arn:aws:iam::{account}:root"),
            Principal::User { arn, .. } => arn.clone(),
            Principal::AssumedRole { session_arn, .. } => session_arn.clone(),
            Principal::Service { name } => name.clone(),
        }
    }

    fn account(&self) -> Option<&str> {
        match self {
            Principal::Root { account }
            | Principal::User { account, .. }
            | Principal::AssumedRole { account, .. } => Some(account),
            Principal::Service { .. } => None,
        }
    }
}

/// Every policy that bears on one request.
#[derive(Debug, Clone, Copy, Default)]
pub struct PolicySet<'a> {
    /// The principal's identity-based policies: inline and managed, and its groups'.
    pub identity: &'a [Policy],
    /// The resource-based policy of the resource acted on (a role's trust policy for
    /// `sts:AssumeRole`).
    pub resource: Option<&'a Policy>,
    /// The principal's permissions boundary.
    pub boundary: Option<&'a Policy>,
    /// The session's policies (AssumeRole's `Policy` and `PolicyArns`); empty for none.
    pub session: &'a [Policy],
}

/// Which kind of policy a decision came from, as AWS's messages name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicyType {
    Identity,
    Resource,
    Boundary,
    Session,
}

impl PolicyType {
    fn phrase(self) -> &'static str {
        match self {
            PolicyType::Identity => "identity-based policy",
            PolicyType::Resource => "resource-based policy",
            PolicyType::Boundary => "permissions boundary",
            PolicyType::Session => "session policy",
        }
    }
}

/// Why a request is denied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DenyKind {
    /// A statement with `"Effect": "Deny"` applied.
    Explicit(PolicyType),
    /// Nothing of this type allowed it (the implicit deny).
    NoAllow(PolicyType),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allow,
    Deny(DenyKind),
}

impl Decision {
    pub fn allowed(self) -> bool {
        self == Decision::Allow
    }

    /// AWS's AccessDenied message for this decision, e.g. `User: arn:aws:iam::123456789012:
    /// user/alice is not authorized to perform: ecs:RunTask on resource: arn:… because no
    /// identity-based policy allows the ecs:RunTask action`.
    pub fn message(self, principal: &Principal, ctx: &RequestContext) -> Option<String> {
        let Decision::Deny(kind) = self else {
            return None;
        };
        let head = format!(
            "User: {} is not authorized to perform: {} on resource: {}",
            principal.arn(),
            ctx.action,
            ctx.resource
        );
        Some(match kind {
            DenyKind::Explicit(t) => {
                let article = if t == PolicyType::Identity { "an" } else { "a" };
                format!("{head} with an explicit deny in {article} {}", t.phrase())
            }
            DenyKind::NoAllow(t) => {
                format!(
                    "{head} because no {} allows the {} action",
                    t.phrase(),
                    ctx.action
                )
            }
        })
    }
}

/// How a resource-based statement's principal element names the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Named {
    No,
    /// Through the account (its id or root ARN): a delegation to the account, which its own
    /// identity-based policies must still grant.
    Account,
    /// Through `*`, or the role of a session.
    Broadly,
    /// By the caller's own ARN (the user, or the role session).
    Exactly,
}

fn principal_named(ps: &Principals, who: &Principal) -> Named {
    let named = match ps {
        Principals::Any => return Named::Broadly,
        Principals::Named(m) => m,
    };
    let mut best = Named::No;
    if let Principal::Service { name } = who {
        if named
            .get("Service")
            .is_some_and(|s| s.iter().any(|s| s == name))
        {
            return Named::Exactly;
        }
        return Named::No;
    }
    for id in named.get("AWS").into_iter().flatten() {
        let this = match who {
            Principal::Root { account } => {
                if id == account || *id == format!("arn:aws:iam::{account}:root") {
                    Named::Exactly
                } else {
                    Named::No
                }
            }
            Principal::User { arn, account } => {
                if id == arn {
                    Named::Exactly
                } else if id == account || *id == format!("arn:aws:iam::{account}:root") {
                    Named::Account
                } else {
                    Named::No
                }
            }
            Principal::AssumedRole {
                session_arn,
                role_arn,
                account,
            } => {
                if id == session_arn {
                    Named::Exactly
                } else if id == role_arn {
                    Named::Broadly
                } else if id == account || *id == format!("arn:aws:iam::{account}:root") {
                    Named::Account
                } else {
                    Named::No
                }
            }
            Principal::Service { .. } => Named::No,
        };
        best = best.max(this);
    }
    best
}

fn action_applies(s: &Statement, ctx: &RequestContext) -> bool {
    let any = s
        .action
        .values
        .iter()
        .any(|a| action_matches(a, &ctx.action));
    any != s.action.negated
}

fn resource_applies(s: &Statement, ctx: &RequestContext, variables: bool) -> bool {
    let Some(Items { values, negated }) = &s.resource else {
        // Trust policies and resource policies without Resource apply to their resource.
        return true;
    };
    let any = values.iter().any(|r| {
        let r = if variables {
            substitute(r, ctx)
        } else {
            Some(std::borrow::Cow::Borrowed(r.as_str()))
        };
        r.is_some_and(|r| resource_matches(&r, &ctx.resource))
    });
    any != *negated
}

/// How a statement applies to the request: `None` when it doesn't, else how it names the
/// caller (always `Exactly` for statements without a principal element).
fn applies(s: &Statement, p: &Policy, who: &Principal, ctx: &RequestContext) -> Option<Named> {
    let named = match &s.principal {
        None => Named::Exactly,
        Some(Items { values, negated }) => {
            let n = principal_named(values, who);
            match (n, negated) {
                (Named::No, false) => return None,
                (_, false) => n,
                (Named::No, true) => Named::Broadly,
                (_, true) => return None,
            }
        }
    };
    let variables = p.variables_enabled();
    (action_applies(s, ctx)
        && resource_applies(s, ctx, variables)
        && s.conditions.iter().all(|c| c.holds(ctx, variables)))
    .then_some(named)
}

/// What the statements of some policies say: whether one denies, and how strongly one allows.
fn verdict<'a>(
    policies: impl IntoIterator<Item = &'a Policy>,
    who: &Principal,
    ctx: &RequestContext,
) -> (bool, Named) {
    let mut denied = false;
    let mut allowed = Named::No;
    for p in policies {
        for s in &p.statements {
            if let Some(n) = applies(s, p, who, ctx) {
                match s.effect {
                    Effect::Deny => denied = true,
                    Effect::Allow => allowed = allowed.max(n),
                }
            }
        }
    }
    (denied, allowed)
}

/// The account a resource ARN belongs to, if it names one.
fn resource_account(resource: &str) -> Option<&str> {
    let account = resource.split(':').nth(4)?;
    (!account.is_empty() && account != "*").then_some(account)
}

/// Decides one request.
pub fn evaluate(who: &Principal, policies: &PolicySet<'_>, ctx: &RequestContext) -> Decision {
    let (res_deny, res_allow) = verdict(policies.resource, who, ctx);
    if res_deny {
        return Decision::Deny(DenyKind::Explicit(PolicyType::Resource));
    }
    if matches!(who, Principal::Root { .. }) {
        let same = match (resource_account(&ctx.resource), who.account()) {
            (Some(r), Some(a)) => r == a,
            _ => true,
        };
        return if same || res_allow != Named::No {
            Decision::Allow
        } else {
            Decision::Deny(DenyKind::NoAllow(PolicyType::Resource))
        };
    }
    let (id_deny, id_allow) = verdict(policies.identity, who, ctx);
    if id_deny {
        return Decision::Deny(DenyKind::Explicit(PolicyType::Identity));
    }
    let (b_deny, b_allow) = verdict(policies.boundary, who, ctx);
    if b_deny {
        return Decision::Deny(DenyKind::Explicit(PolicyType::Boundary));
    }
    let (s_deny, s_allow) = verdict(policies.session, who, ctx);
    if s_deny {
        return Decision::Deny(DenyKind::Explicit(PolicyType::Session));
    }
    let cross_account = match (resource_account(&ctx.resource), who.account()) {
        (Some(r), Some(a)) => r != a,
        _ => false,
    };
    if cross_account {
        if id_allow == Named::No {
            return Decision::Deny(DenyKind::NoAllow(PolicyType::Identity));
        }
        if res_allow == Named::No {
            return Decision::Deny(DenyKind::NoAllow(PolicyType::Resource));
        }
    } else {
        if res_allow == Named::Exactly && policies.resource.is_some() {
            return Decision::Allow;
        }
        // Naming the account delegates to its identity-based policies; it allows nothing
        // by itself.
        if id_allow == Named::No && res_allow <= Named::Account {
            return Decision::Deny(DenyKind::NoAllow(PolicyType::Identity));
        }
    }
    if policies.boundary.is_some() && b_allow == Named::No {
        return Decision::Deny(DenyKind::NoAllow(PolicyType::Boundary));
    }
    if !policies.session.is_empty() && s_allow == Named::No {
        return Decision::Deny(DenyKind::NoAllow(PolicyType::Session));
    }
    Decision::Allow
}
