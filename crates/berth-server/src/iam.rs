//! AWS Identity and Access Management (query protocol).
//!
//! The policy language and its evaluation live in `berth-iam`; this service will hold users,
//! roles, groups, policies and access keys. Until an operation is served it answers AWS's
//! "not served yet" error naming it, through the generated defaults.

/// The IAM service.
#[derive(Debug, Default)]
pub struct Iam;

impl berth_wire::iam::Api for Iam {}
