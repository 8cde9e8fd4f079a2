//! Berth's domain vocabulary, free of HTTP and I/O: ARNs, resource names and ids, and the
//! validation rules AWS applies to them.

pub mod arn;
pub mod lifecycle;
pub mod names;

pub use arn::Arn;
