//! Content-addressed OCI image store.
//!
//! Layout under the store root:
//! - `blobs/sha256/<hex>`: manifests, configs and layers, named by their digest;
//! - `refs.json`: reference (`docker.io/library/busybox:latest`, `localhost:5000/app@sha256:…`)
//!   → manifest digest;
//! - `layers/<diffid hex>/`: each layer unpacked once, shared by every image and container;
//! - `tmp/`: downloads and unpacks in progress (renamed into place when complete).

mod layer;
mod oci;
mod reference;
mod registry;

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use sha2::{Digest, Sha256};

use crate::error::{Error, IoContext, Result, json_err};

pub use layer::{Whiteout, classify_whiteout, normalize_entry_path, unpack_layer};
pub use oci::ImageConfig;
pub use reference::{Reference, is_digest};

use oci::{ConfigBlob, Descriptor, DockerSaveEntry, ManifestOrIndex};

static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// An image resolved in the store.
#[derive(Debug, Clone)]
pub struct Image {
    /// The canonical reference it was found under.
    pub reference: String,
    /// Digest of its (platform-specific) manifest: the image's id for ECS (`imageDigest`).
    pub manifest_digest: String,
    /// Digest of its configuration blob.
    pub config_digest: String,
    /// Entrypoint, Cmd, Env, WorkingDir, User, Labels, StopSignal.
    pub config: ImageConfig,
    /// Diff ids of its layers, base first.
    pub diff_ids: Vec<String>,
    /// Layer blobs (compressed or not), base first.
    layer_digests: Vec<String>,
}

/// The image store. Safe to share between threads; every write is atomic on disk.
#[derive(Debug)]
pub struct ImageStore {
    root: PathBuf,
    refs_lock: Mutex<()>,
    insecure_registries: Vec<String>,
}

fn tmp_name(prefix: &str) -> String {
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        TMP_COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

fn hex_of(digest: &str) -> Result<&str> {
    if !is_digest(digest) {
        return Err(Error::InvalidImage {
            what: digest.to_string(),
            reason: "not a sha256 digest".into(),
        });
    }
    Ok(&digest[7..])
}

/// Writes `data` to `path` atomically (temporary file in the same directory, then rename).
pub(crate) fn write_atomic(path: &Path, data: &[u8]) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = dir.join(format!(".{}", tmp_name("w")));
    let mut f = fs::File::create(&tmp).ctx("creating", &tmp)?;
    f.write_all(data).ctx("writing", &tmp)?;
    f.sync_data().ctx("syncing", &tmp)?;
    fs::rename(&tmp, path).ctx("renaming into", path)
}

impl ImageStore {
    /// Opens (creating if needed) a store rooted at `root`.
    pub fn open(root: impl Into<PathBuf>) -> Result<ImageStore> {
        let root = root.into();
        for d in ["blobs/sha256", "layers", "tmp"] {
            let p = root.join(d);
            fs::create_dir_all(&p).ctx("creating directory", &p)?;
        }
        Ok(ImageStore {
            root,
            refs_lock: Mutex::new(()),
            insecure_registries: Vec::new(),
        })
    }

    /// Registries (`host:port`) to reach over plain HTTP besides loopback ones.
    pub fn with_insecure_registries(mut self, registries: Vec<String>) -> ImageStore {
        self.insecure_registries = registries;
        self
    }

    /// The store's root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn blob_path(&self, digest: &str) -> Result<PathBuf> {
        Ok(self.root.join("blobs/sha256").join(hex_of(digest)?))
    }

    fn has_blob(&self, digest: &str) -> bool {
        self.blob_path(digest).is_ok_and(|p| p.exists())
    }

    fn read_blob(&self, digest: &str) -> Result<Vec<u8>> {
        let p = self.blob_path(digest)?;
        fs::read(&p).ctx("reading blob", &p)
    }

    /// Streams `reader` into the blob store, verifying `expected` when given. Returns the digest.
    fn put_blob(&self, mut reader: impl Read, expected: Option<&str>) -> Result<String> {
        let tmp = self.root.join("tmp").join(tmp_name("blob"));
        let result = (|| {
            let mut f = fs::File::create(&tmp).ctx("creating", &tmp)?;
            let mut hasher = Sha256::new();
            let mut buf = vec![0u8; 256 * 1024];
            loop {
                let n = match reader.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(e).ctx("reading blob data for", &tmp),
                };
                hasher.update(&buf[..n]);
                f.write_all(&buf[..n]).ctx("writing", &tmp)?;
            }
            let digest = format!("sha256:{}", hex::encode(hasher.finalize()));
            if let Some(exp) = expected
                && exp != digest
            {
                return Err(Error::InvalidImage {
                    what: format!("blob {exp}"),
                    reason: format!("digest mismatch: content is {digest}"),
                });
            }
            let dst = self.blob_path(&digest)?;
            fs::rename(&tmp, &dst).ctx("renaming into", &dst)?;
            Ok(digest)
        })();
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        result
    }

    fn put_blob_bytes(&self, data: &[u8]) -> Result<String> {
        let digest = format!("sha256:{}", hex::encode(Sha256::digest(data)));
        if !self.has_blob(&digest) {
            self.put_blob(data, Some(&digest))?;
        }
        Ok(digest)
    }

    fn refs_path(&self) -> PathBuf {
        self.root.join("refs.json")
    }

    fn read_refs(&self) -> Result<BTreeMap<String, String>> {
        let p = self.refs_path();
        match fs::read(&p) {
            Ok(data) => serde_json::from_slice(&data).map_err(json_err("refs.json")),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(BTreeMap::new()),
            Err(e) => Err(e).ctx("reading", p),
        }
    }

    fn set_refs(&self, entries: &[(String, String)]) -> Result<()> {
        let _guard = self.refs_lock.lock().unwrap_or_else(|e| e.into_inner());
        let mut refs = self.read_refs()?;
        for (r, d) in entries {
            refs.insert(r.clone(), d.clone());
        }
        let data = serde_json::to_vec_pretty(&refs).map_err(json_err("refs.json"))?;
        write_atomic(&self.refs_path(), &data)
    }

    /// Every reference in the store with its manifest digest.
    pub fn list(&self) -> Result<BTreeMap<String, String>> {
        self.read_refs()
    }

    /// Forgets a reference (blobs and layers stay until garbage-collected).
    pub fn untag(&self, reference: &str) -> Result<bool> {
        let key = Reference::parse(reference)?.canonical();
        let _guard = self.refs_lock.lock().unwrap_or_else(|e| e.into_inner());
        let mut refs = self.read_refs()?;
        let removed = refs.remove(&key).is_some();
        let data = serde_json::to_vec_pretty(&refs).map_err(json_err("refs.json"))?;
        write_atomic(&self.refs_path(), &data)?;
        Ok(removed)
    }

    /// Finds an image in the store. A missing one is a `CannotPullContainerError`.
    pub fn resolve(&self, reference: &str) -> Result<Image> {
        let (key, digest) = if is_digest(reference) {
            (reference.to_string(), reference.to_string())
        } else {
            let r = Reference::parse(reference)?;
            let key = r.canonical();
            let refs = self.read_refs()?;
            match refs.get(&key) {
                Some(d) => (key, d.clone()),
                None => match &r.digest {
                    Some(d) if self.has_blob(d) => (key, d.clone()),
                    _ => {
                        return Err(Error::CannotPull {
                            reference: reference.to_string(),
                            reason: format!("failed to resolve ref {key}: not found"),
                        });
                    }
                },
            }
        };
        if !self.has_blob(&digest) {
            return Err(Error::CannotPull {
                reference: reference.to_string(),
                reason: format!("failed to resolve ref {key}: manifest {digest} not found"),
            });
        }
        self.image_from_manifest(&key, &digest)
    }

    fn image_from_manifest(&self, reference: &str, digest: &str) -> Result<Image> {
        let data = self.read_blob(digest)?;
        let m: ManifestOrIndex =
            serde_json::from_slice(&data).map_err(json_err(format!("manifest {digest}")))?;
        if m.is_index() {
            let chosen = choose_manifest(&m, digest)?;
            return self.image_from_manifest(reference, &chosen.digest);
        }
        let config_desc = m.config.ok_or_else(|| Error::InvalidImage {
            what: format!("manifest {digest}"),
            reason: "no config".into(),
        })?;
        let config_data = self.read_blob(&config_desc.digest)?;
        let config: ConfigBlob = serde_json::from_slice(&config_data)
            .map_err(json_err(format!("image config {}", config_desc.digest)))?;
        let layers = m.layers.unwrap_or_default();
        if layers.len() != config.rootfs.diff_ids.len() {
            return Err(Error::InvalidImage {
                what: format!("manifest {digest}"),
                reason: format!(
                    "{} layers but {} diff ids",
                    layers.len(),
                    config.rootfs.diff_ids.len()
                ),
            });
        }
        Ok(Image {
            reference: reference.to_string(),
            manifest_digest: digest.to_string(),
            config_digest: config_desc.digest,
            config: config.config.unwrap_or_default(),
            diff_ids: config.rootfs.diff_ids,
            layer_digests: layers.into_iter().map(|l| l.digest).collect(),
        })
    }

    /// Unpacks the image's layers (once per diff id) and returns their directories, base
    /// layer first.
    pub fn layer_dirs(&self, image: &Image) -> Result<Vec<PathBuf>> {
        image
            .diff_ids
            .iter()
            .zip(&image.layer_digests)
            .map(|(diff_id, blob)| self.ensure_layer(diff_id, blob))
            .collect()
    }

    fn ensure_layer(&self, diff_id: &str, blob: &str) -> Result<PathBuf> {
        let dir = self.root.join("layers").join(hex_of(diff_id)?);
        if dir.exists() {
            return Ok(dir);
        }
        let tmp = self.root.join("tmp").join(tmp_name("layer"));
        let unpacked =
            layer::open_layer(&self.blob_path(blob)?).and_then(|r| unpack_layer(r, &tmp));
        match unpacked {
            Ok(actual) if actual == diff_id => {}
            Ok(actual) => {
                let _ = fs::remove_dir_all(&tmp);
                return Err(Error::InvalidImage {
                    what: format!("layer {blob}"),
                    reason: format!("diff id mismatch: expected {diff_id}, content is {actual}"),
                });
            }
            Err(e) => {
                let _ = fs::remove_dir_all(&tmp);
                return Err(e);
            }
        }
        if let Err(e) = fs::rename(&tmp, &dir) {
            let _ = fs::remove_dir_all(&tmp);
            if !dir.exists() {
                return Err(e).ctx("renaming into", dir);
            }
        }
        Ok(dir)
    }

    /// Loads an OCI image layout or a `docker save` tarball (a directory or a tar file,
    /// gzip-compressed or not). Returns the references (or digests, for untagged images)
    /// loaded.
    pub fn load(&self, path: &Path) -> Result<Vec<String>> {
        let meta = fs::metadata(path).ctx("reading", path)?;
        if meta.is_dir() {
            return self.load_dir(path);
        }
        let tmp = self.root.join("tmp").join(tmp_name("load"));
        let result = (|| {
            let reader = layer::open_layer(path)?;
            let mut archive = tar::Archive::new(reader);
            archive.unpack(&tmp).map_err(|e| Error::InvalidImage {
                what: path.display().to_string(),
                reason: format!("not a readable tar archive: {e}"),
            })?;
            self.load_dir(&tmp)
        })();
        let _ = fs::remove_dir_all(&tmp);
        result
    }

    fn load_dir(&self, dir: &Path) -> Result<Vec<String>> {
        if dir.join("index.json").exists() {
            self.load_oci_layout(dir)
        } else if dir.join("manifest.json").exists() {
            self.load_docker_save(dir)
        } else {
            Err(Error::InvalidImage {
                what: dir.display().to_string(),
                reason: "neither an OCI image layout (index.json) nor a docker save archive (manifest.json)".into(),
            })
        }
    }

    fn copy_layout_blob(&self, dir: &Path, digest: &str) -> Result<()> {
        if self.has_blob(digest) {
            return Ok(());
        }
        let src = dir.join("blobs/sha256").join(hex_of(digest)?);
        let f = fs::File::open(&src).ctx("opening blob", &src)?;
        self.put_blob(f, Some(digest))?;
        Ok(())
    }

    /// Copies a manifest (or index) and everything it points to (linux/amd64 only).
    fn copy_layout_manifest(&self, dir: &Path, digest: &str) -> Result<String> {
        self.copy_layout_blob(dir, digest)?;
        let m: ManifestOrIndex = serde_json::from_slice(&self.read_blob(digest)?)
            .map_err(json_err(format!("manifest {digest}")))?;
        if m.is_index() {
            let chosen = choose_manifest(&m, digest)?;
            return self.copy_layout_manifest(dir, &chosen.digest);
        }
        if let Some(c) = &m.config {
            self.copy_layout_blob(dir, &c.digest)?;
        }
        for l in m.layers.iter().flatten() {
            self.copy_layout_blob(dir, &l.digest)?;
        }
        Ok(digest.to_string())
    }

    fn load_oci_layout(&self, dir: &Path) -> Result<Vec<String>> {
        let p = dir.join("index.json");
        let index: ManifestOrIndex = serde_json::from_slice(&fs::read(&p).ctx("reading", &p)?)
            .map_err(json_err("index.json"))?;
        let mut loaded = Vec::new();
        let mut refs = Vec::new();
        for desc in index.manifests.unwrap_or_default() {
            let resolved = self.copy_layout_manifest(dir, &desc.digest)?;
            let name = desc
                .annotations
                .get("io.containerd.image.name")
                .or_else(|| desc.annotations.get("org.opencontainers.image.ref.name"))
                .filter(|n| n.contains(':') || n.contains('/'));
            match name.map(|n| Reference::parse(n)).transpose()? {
                Some(r) => {
                    refs.push((r.canonical(), resolved.clone()));
                    loaded.push(r.canonical());
                }
                None => loaded.push(resolved.clone()),
            }
        }
        self.set_refs(&refs)?;
        Ok(loaded)
    }

    fn load_docker_save(&self, dir: &Path) -> Result<Vec<String>> {
        let p = dir.join("manifest.json");
        let entries: Vec<DockerSaveEntry> =
            serde_json::from_slice(&fs::read(&p).ctx("reading", &p)?)
                .map_err(json_err("manifest.json"))?;
        let mut loaded = Vec::new();
        let mut refs = Vec::new();
        for e in entries {
            let inside = |rel: &str| -> Result<PathBuf> {
                Ok(dir.join(normalize_entry_path(Path::new(rel))?))
            };
            let cfg_path = inside(&e.config)?;
            let cfg = fs::File::open(&cfg_path).ctx("opening", &cfg_path)?;
            let config_digest = self.put_blob(cfg, None)?;
            let config_size = fs::metadata(&cfg_path).ctx("reading", &cfg_path)?.len();
            let mut layers = Vec::new();
            for l in &e.layers {
                let lp = inside(l)?;
                let f = fs::File::open(&lp).ctx("opening", &lp)?;
                let size = fs::metadata(&lp).ctx("reading", &lp)?.len();
                let digest = self.put_blob(f, None)?;
                layers.push(Descriptor {
                    media_type: oci::MT_OCI_LAYER_TAR.into(),
                    digest,
                    size,
                    platform: None,
                    annotations: BTreeMap::new(),
                });
            }
            let manifest = ManifestOrIndex {
                schema_version: 2,
                media_type: Some(oci::MT_OCI_MANIFEST.into()),
                config: Some(Descriptor {
                    media_type: oci::MT_OCI_CONFIG.into(),
                    digest: config_digest,
                    size: config_size,
                    platform: None,
                    annotations: BTreeMap::new(),
                }),
                layers: Some(layers),
                manifests: None,
            };
            let bytes = serde_json::to_vec(&manifest).map_err(json_err("manifest"))?;
            let digest = self.put_blob_bytes(&bytes)?;
            // Validate now rather than at run time.
            self.image_from_manifest(&digest, &digest)?;
            let tags = e.repo_tags.unwrap_or_default();
            if tags.is_empty() {
                loaded.push(digest.clone());
            }
            for t in tags {
                let r = Reference::parse(&t)?.canonical();
                refs.push((r.clone(), digest.clone()));
                loaded.push(r);
            }
        }
        self.set_refs(&refs)?;
        Ok(loaded)
    }
}

fn choose_manifest<'a>(m: &'a ManifestOrIndex, digest: &str) -> Result<&'a Descriptor> {
    oci::choose_platform(m.manifests.as_deref().unwrap_or_default()).ok_or_else(|| {
        Error::InvalidImage {
            what: format!("index {digest}"),
            reason: "no manifest for linux/amd64".into(),
        }
    })
}
