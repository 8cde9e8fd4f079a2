//! AWS wire protocols for Berth.
//!
//! The core never sees HTTP: the gateway (in `berth-server`) hands this crate a request's
//! operation name and body, gets typed input decoded from the generated shapes, and encodes
//! the typed reply or [`AwsError`] back to bytes exactly as AWS does.

pub mod agent;
pub mod error;
pub mod json;
pub mod query;
pub mod sigv4;
pub mod types;

pub use error::AwsError;
pub use types::{Blob, RequestContext, Timestamp};

/// Amazon ECS (AWS JSON 1.1, target prefix `AmazonEC2ContainerServiceV20141113`), generated
/// from `models/ecs/2014-11-13/service-2.json`.
#[allow(clippy::all, missing_docs, rust_2018_idioms)]
pub mod ecs {
    /// The `X-Amz-Target` prefix of this service.
    pub const TARGET_PREFIX: &str = "AmazonEC2ContainerServiceV20141113";
    /// The SigV4 signing name of this service.
    pub const SIGNING_NAME: &str = "ecs";
    /// The error code for a member that fails the model's constraints.
    pub const VALIDATION_ERROR: ErrorCode = ErrorCode::InvalidParameterException;
    include!(concat!(env!("OUT_DIR"), "/ecs.rs"));
}

/// Amazon CloudWatch Logs (AWS JSON 1.1, target prefix `Logs_20140328`), generated from
/// `models/logs/2014-03-28/service-2.json`.
#[allow(clippy::all, missing_docs, rust_2018_idioms)]
pub mod logs {
    /// The `X-Amz-Target` prefix of this service.
    pub const TARGET_PREFIX: &str = "Logs_20140328";
    /// The SigV4 signing name of this service.
    pub const SIGNING_NAME: &str = "logs";
    /// The error code for a member that fails the model's constraints.
    pub const VALIDATION_ERROR: ErrorCode = ErrorCode::InvalidParameterException;
    include!(concat!(env!("OUT_DIR"), "/logs.rs"));
}

/// AWS CloudTrail (AWS JSON 1.1, target prefix
/// `com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101`), generated from
/// `models/cloudtrail/2013-11-01/service-2.json`.
#[allow(clippy::all, missing_docs, rust_2018_idioms)]
pub mod cloudtrail {
    /// The `X-Amz-Target` prefix of this service.
    pub const TARGET_PREFIX: &str = "com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101";
    /// The SigV4 signing name of this service.
    pub const SIGNING_NAME: &str = "cloudtrail";
    /// The error code for a member that fails the model's constraints.
    pub const VALIDATION_ERROR: ErrorCode = ErrorCode::InvalidParameterException;
    include!(concat!(env!("OUT_DIR"), "/cloudtrail.rs"));
}

/// AWS Security Token Service (awsQuery, version 2011-06-15), generated from
/// `models/sts/2011-06-15/service-2.json`.
#[allow(clippy::all, missing_docs, rust_2018_idioms)]
pub mod sts {
    /// The `Version` form field of this service.
    pub const VERSION: &str = "2011-06-15";
    /// The SigV4 signing name of this service.
    pub const SIGNING_NAME: &str = "sts";
    /// The error query services send for a member that fails the model's constraints.
    pub const VALIDATION: (&str, u16) = ("ValidationError", 400);
    include!(concat!(env!("OUT_DIR"), "/sts.rs"));
}

/// AWS Identity and Access Management (awsQuery, version 2010-05-08), generated from
/// `models/iam/2010-05-08/service-2.json`.
#[allow(clippy::all, missing_docs, rust_2018_idioms)]
pub mod iam {
    /// The `Version` form field of this service.
    pub const VERSION: &str = "2010-05-08";
    /// The SigV4 signing name of this service.
    pub const SIGNING_NAME: &str = "iam";
    /// The error query services send for a member that fails the model's constraints.
    pub const VALIDATION: (&str, u16) = ("ValidationError", 400);
    include!(concat!(env!("OUT_DIR"), "/iam.rs"));
}

/// Amazon EC2 (`ec2` query protocol, version 2016-11-15), generated from
/// `models/ec2/2016-11-15/service-2.json`: only the operations Berth serves and the shapes
/// they reach (the others answer as not served).
#[allow(clippy::all, missing_docs, rust_2018_idioms)]
pub mod ec2 {
    /// The `Version` form field of this service.
    pub const VERSION: &str = "2016-11-15";
    /// The SigV4 signing name of this service.
    pub const SIGNING_NAME: &str = "ec2";
    /// The error EC2 sends for a parameter that fails the model's constraints.
    pub const VALIDATION: (&str, u16) = ("InvalidParameterValue", 400);
    include!(concat!(env!("OUT_DIR"), "/ec2.rs"));
}
