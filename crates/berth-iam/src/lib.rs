//! IAM's policy language and evaluation logic, as pure functions.
//!
//! - [`policy`] parses policy documents (identity-based, resource-based, boundaries, session
//!   policies) with IAM's element rules and its `MalformedPolicyDocument` messages.
//! - [`pattern`] matches actions and ARNs against IAM's `*` / `?` wildcards.
//! - [`variables`] substitutes policy variables such as `${aws:username}`.
//! - [`condition`] evaluates the `Condition` block: every operator IAM documents, `…IfExists`,
//!   `ForAnyValue:` / `ForAllValues:` and `Null`.
//! - [`evaluate`] combines everything as IAM's documented evaluation logic does: explicit deny
//!   wins, then resource-based policies, identity-based policies, permissions boundaries and
//!   session policies.
//!
//! Nothing here does I/O or reads the clock: the caller supplies the request context
//! (including `aws:CurrentTime`).

pub mod condition;
pub mod context;
pub mod evaluate;
pub mod pattern;
pub mod policy;
pub mod variables;

pub use context::{ContextValue, RequestContext};
pub use evaluate::{Decision, DenyKind, PolicySet, Principal, evaluate};
pub use policy::{Effect, Policy, PolicyError, Statement};
