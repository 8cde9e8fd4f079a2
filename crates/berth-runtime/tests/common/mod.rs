//! Shared helpers of the integration tests: a busybox-static test image built here, a
//! runtime over a temporary state root, and the root check.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use berth_runtime::{Backend, ContainerHandle, ContainerSpec, ImageStore, Runtime, RuntimeConfig};
use serde_json::json;
use sha2::{Digest, Sha256};

pub const BUSYBOX: &str = "/bin/busybox";
pub const APPLETS: &[&str] = &[
    "sh", "echo", "sleep", "cat", "ls", "env", "pwd", "id", "dd", "head", "tr", "true", "false",
    "kill", "hostname", "printf", "mkdir", "touch", "wc", "ps", "test", "yes",
];

/// Whether the tests that need root (mounts, namespaces, cgroups) can run; prints why not.
pub fn root_or_skip(test: &str) -> bool {
    if berth_runtime::geteuid() != 0 {
        eprintln!("skipping {test}: needs root (namespaces, mounts, cgroups)");
        return false;
    }
    if !Path::new(BUSYBOX).exists() {
        panic!("{test}: {BUSYBOX} is missing: apt-get install -y busybox-static");
    }
    true
}

pub fn digest(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(data)))
}

/// The uncompressed layer tar of the test image.
pub fn busybox_layer() -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let dir = |b: &mut tar::Builder<Vec<u8>>, path: &str, mode: u32| {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Directory);
        h.set_mode(mode);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        h.set_size(0);
        b.append_data(&mut h, path, std::io::empty()).unwrap();
    };
    let file = |b: &mut tar::Builder<Vec<u8>>, path: &str, mode: u32, data: &[u8]| {
        let mut h = tar::Header::new_gnu();
        h.set_mode(mode);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        h.set_size(data.len() as u64);
        b.append_data(&mut h, path, data).unwrap();
    };
    for (d, m) in [
        ("bin", 0o755),
        ("etc", 0o755),
        ("tmp", 0o1777),
        ("root", 0o700),
        ("home", 0o755),
        ("home/app", 0o755),
    ] {
        dir(&mut b, d, m);
    }
    file(&mut b, "bin/busybox", 0o755, &fs::read(BUSYBOX).unwrap());
    for a in APPLETS {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Symlink);
        h.set_mode(0o777);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        h.set_size(0);
        b.append_link(&mut h, format!("bin/{a}"), "busybox")
            .unwrap();
    }
    file(
        &mut b,
        "etc/passwd",
        0o644,
        b"root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n",
    );
    file(
        &mut b,
        "etc/group",
        0o644,
        b"root:x:0:\napp:x:1000:\nwheel:x:10:app\nnogroup:x:65534:\n",
    );
    b.into_inner().unwrap()
}

pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// The image's blobs: (manifest bytes, config bytes, layer blob bytes).
pub struct TestImage {
    pub manifest: Vec<u8>,
    pub config: Vec<u8>,
    pub layer: Vec<u8>,
}

pub fn busybox_image() -> TestImage {
    let layer_tar = busybox_layer();
    let layer = gzip(&layer_tar);
    let config = serde_json::to_vec(&json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {"Env": ["PATH=/bin", "FROM_IMAGE=1"], "Cmd": ["sh", "-c", "echo image default"], "WorkingDir": "/"},
        "rootfs": {"type": "layers", "diff_ids": [digest(&layer_tar)]},
    }))
    .unwrap();
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": digest(&config), "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": digest(&layer), "size": layer.len()}],
    }))
    .unwrap();
    TestImage {
        manifest,
        config,
        layer,
    }
}

/// Writes the test image as an OCI image layout tagged `name`.
pub fn write_oci_layout(dir: &Path, name: &str) -> PathBuf {
    let img = busybox_image();
    let blobs = dir.join("blobs/sha256");
    fs::create_dir_all(&blobs).unwrap();
    for b in [&img.manifest, &img.config, &img.layer] {
        fs::write(blobs.join(&digest(b)[7..]), b).unwrap();
    }
    fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    let index = json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": digest(&img.manifest),
            "size": img.manifest.len(),
            "annotations": {"io.containerd.image.name": name, "org.opencontainers.image.ref.name": "latest"},
        }],
    });
    fs::write(dir.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
    dir.to_path_buf()
}

/// Writes the test image as a `docker save` tarball tagged `tag`.
pub fn write_docker_save(path: &Path, tag: &str) {
    let layer = busybox_layer();
    let img = busybox_image();
    let mut b = tar::Builder::new(fs::File::create(path).unwrap());
    let mut add = |name: &str, data: &[u8]| {
        let mut h = tar::Header::new_gnu();
        h.set_mode(0o644);
        h.set_size(data.len() as u64);
        h.set_mtime(0);
        b.append_data(&mut h, name, data).unwrap();
    };
    let config_name = format!("{}.json", &digest(&img.config)[7..]);
    add(&config_name, &img.config);
    add("abc/layer.tar", &layer);
    let manifest = json!([{"Config": config_name, "RepoTags": [tag], "Layers": ["abc/layer.tar"]}]);
    add("manifest.json", &serde_json::to_vec(&manifest).unwrap());
    b.finish().unwrap();
}

/// A runtime and an image store under a temporary directory, with the test image loaded as
/// `busybox:latest`. Dropping it removes every container (unmounting their root file systems)
/// before the directory goes.
pub struct Env {
    pub dir: tempfile::TempDir,
    pub rt: Runtime,
    pub store: ImageStore,
}

/// Every OCI runtime backend: the container tests run under each.
pub const BACKENDS: [Backend; 2] = [Backend::Runc, Backend::Libcontainer];

/// Turns `fn name(backend: Backend)` into tests `name::runc` and `name::libcontainer`.
#[macro_export]
macro_rules! for_each_backend {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[test]
            fn runc() {
                super::$name(berth_runtime::Backend::Runc)
            }
            #[test]
            fn libcontainer() {
                super::$name(berth_runtime::Backend::Libcontainer)
            }
        }
    )*};
}

pub fn runtime_config(state_root: &Path, backend: Backend) -> RuntimeConfig {
    let mut cfg = RuntimeConfig::new(state_root);
    cfg.backend = backend;
    cfg.shim_program = PathBuf::from(env!("CARGO_BIN_EXE_berth-runtime-shim"));
    cfg.shim_args = Vec::new();
    cfg
}

impl Env {
    pub fn new(backend: Backend) -> Env {
        let dir = tempfile::tempdir().unwrap();
        let store = ImageStore::open(dir.path().join("images")).unwrap();
        let layout = write_oci_layout(&dir.path().join("layout"), "busybox:latest");
        store.load(&layout).unwrap();
        let rt = Runtime::new(runtime_config(&dir.path().join("containers"), backend)).unwrap();
        Env { dir, rt, store }
    }

    /// A spec for `id` running `args` on a fresh overlay of the test image.
    pub fn spec(&self, id: &str, args: &[&str]) -> ContainerSpec {
        let image = self.store.resolve("busybox").unwrap();
        let rootfs = self.rt.prepare_rootfs(id, &self.store, &image).unwrap();
        let mut spec = ContainerSpec::from_image(id, rootfs, &image.config).unwrap();
        if !args.is_empty() {
            spec.args = args.iter().map(|s| s.to_string()).collect();
        }
        spec
    }

    pub fn run(&self, spec: &ContainerSpec) -> ContainerHandle {
        self.rt.create_and_start(spec).unwrap()
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        if let Ok(list) = self.rt.list() {
            for (spec, _) in list {
                let _ = self.rt.remove(&spec.id);
            }
        }
        // Containers whose start failed before spec.json was written still have a mount.
        if let Ok(entries) = fs::read_dir(self.dir.path().join("containers")) {
            for e in entries.flatten() {
                let _ = berth_runtime::rootfs::unmount(&e.path().join("rootfs"));
            }
        }
    }
}

/// Unique container id for a test (a counter too: each test runs once per backend, and ids
/// name cgroups, which the runs share).
pub fn id(name: &str) -> String {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("t{}-{n}-{name}", std::process::id())
}

/// The text of a container's log lines.
pub fn log_text(path: &Path) -> Vec<String> {
    berth_runtime::shim::parse_log(&fs::read_to_string(path).unwrap_or_default())
        .into_iter()
        .map(|l| l.text)
        .collect()
}

pub const WAIT: Duration = Duration::from_secs(20);
