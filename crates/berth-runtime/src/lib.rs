//! Berth's container runtime.
//!
//! - [`image`]: a content-addressed OCI image store, `load` of OCI layouts and `docker save`
//!   tarballs, pulls from registries;
//! - [`rootfs`]: overlayfs root filesystems over the store's shared layers;
//! - [`spec`]: [`ContainerSpec`] and its translation into an OCI bundle (`config.json`);
//! - [`shim`]: the per-container supervisor process (see [`shim_main`]);
//! - [`runtime`]: the [`Runtime`] the agent drives (create, state, kill, stop, remove, list,
//!   stats), safe to call from a multi-threaded process.

pub mod cgroup;
pub mod error;
pub mod exec;
pub mod image;
pub mod rootfs;
pub mod runtime;
pub mod shim;
pub mod spec;
mod sys;

pub use error::{Error, Result};
pub use image::{Image, ImageConfig, ImageStore, Reference};
pub use runtime::{
    Backend, ContainerHandle, ContainerState, ContainerStats, ExitStatus, Runtime, RuntimeConfig,
};
pub use shim::shim_main;
pub use spec::{ContainerSpec, Mount, NetworkMode, Resources, Ulimit};
pub use sys::{geteuid, signal_from_name};
