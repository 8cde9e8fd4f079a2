//! Container root filesystems: an overlayfs over the image's shared layers, with a writable
//! upper directory per container.

use std::fs;
use std::path::{Path, PathBuf};

use crate::error::{Error, IoContext, Result};
use crate::sys;

/// The kernel takes mount options of at most one page.
const MAX_OPTIONS: usize = 4095;

/// Mounts an overlay at `target` with `layers` (base first) as lower directories and
/// `upper`/`work` (created if missing, on the same file system) for the container's writes.
pub fn mount_overlay(layers: &[PathBuf], upper: &Path, work: &Path, target: &Path) -> Result<()> {
    if layers.is_empty() {
        return Err(Error::InvalidSpec(
            "an image without layers has no root filesystem".into(),
        ));
    }
    for d in [upper, work, target] {
        fs::create_dir_all(d).ctx("creating directory", d)?;
    }
    let lower: Vec<String> = layers
        .iter()
        .rev()
        .map(|p| p.display().to_string())
        .collect();
    for l in &lower {
        if l.contains(':') || l.contains(',') {
            return Err(Error::InvalidSpec(format!(
                "layer path {l:?} contains ':' or ','"
            )));
        }
    }
    let options = format!(
        "lowerdir={},upperdir={},workdir={}",
        lower.join(":"),
        upper.display(),
        work.display()
    );
    if options.len() > MAX_OPTIONS {
        return Err(Error::InvalidSpec(format!(
            "too many layers ({}) for one overlay mount",
            layers.len()
        )));
    }
    sys::mount("overlay", target, "overlay", 0, &options).map_err(|source| Error::Mount {
        target: target.to_path_buf(),
        source,
    })
}

/// Unmounts `target` (lazily) if it is mounted.
pub fn unmount(target: &Path) -> Result<()> {
    sys::umount_detach(target).map_err(|source| Error::Mount {
        target: target.to_path_buf(),
        source,
    })
}

/// Whether `path` is a mount point.
pub fn is_mounted(path: &Path) -> bool {
    sys::is_mount_point(path)
}
