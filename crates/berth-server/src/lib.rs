//! Berth's control plane: the gateway that turns HTTP requests into typed operations, and
//! the service handlers that run them against the store.

pub mod accounts;
pub mod admin;
pub mod agent_channel;
pub mod authz;
pub mod cloudtrail;
pub mod ec2;
pub mod ecs;
pub mod failure;
pub mod gateway;
pub mod iam;
pub mod ids;
pub mod logs;
pub mod sts;
#[cfg(test)]
mod test_support;

use std::sync::Arc;

use berth_store::Store;

/// Everything a request handler may reach: the store and the services over it.
pub struct App {
    pub store: Arc<Store>,
    /// Where CloudTrail's event history is kept: a database of its own in a server (so that
    /// recording every call never takes the main store's writer), the main store in tests.
    pub trail_store: Arc<Store>,
    pub ecs: ecs::Ecs,
    pub logs: logs::Logs,
    pub cloudtrail: cloudtrail::CloudTrail,
    /// Where the gateway records every API call (CloudTrail's event history).
    pub trail: cloudtrail::Recorder,
    pub sts: sts::Sts,
    pub iam: iam::Iam,
    pub ec2: ec2::Ec2,
    /// Access keys' last uses (recorded by the gateway, flushed by housekeeping).
    pub key_usage: Arc<iam::key_usage::KeyUsage>,
}

impl App {
    /// The services over `store`, CloudTrail's events kept in it too, with the CloudTrail
    /// writer thread started.
    pub fn new(store: Arc<Store>) -> App {
        App::with_trail_store(store.clone(), store)
    }

    /// The services over `store`, CloudTrail's events kept in `trail_store`, with the
    /// CloudTrail writer thread started.
    pub fn with_trail_store(store: Arc<Store>, trail_store: Arc<Store>) -> App {
        let ecs = ecs::Ecs::new(store.clone());
        let key_usage = Arc::new(iam::key_usage::KeyUsage::default());
        App {
            ec2: ec2::Ec2::new(store.clone(), ecs.notifier.clone()),
            ecs,
            logs: logs::Logs::new(store.clone()),
            cloudtrail: cloudtrail::CloudTrail::new(trail_store.clone()),
            trail: cloudtrail::Recorder::start(trail_store.clone()),
            trail_store,
            sts: sts::Sts::new(store.clone()),
            iam: iam::Iam::new(store.clone(), key_usage.clone()),
            key_usage,
            store,
        }
    }
}
