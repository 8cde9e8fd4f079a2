//! Unpacking of layer tarballs into directories usable as overlayfs lower layers.

use std::fs;
use std::io::{self, BufRead, BufReader, Read};
use std::path::{Component, Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::error::{Error, IoContext, Result};
use crate::sys;

/// The OCI whiteout prefix.
const WHITEOUT_PREFIX: &str = ".wh.";
/// The OCI opaque-directory marker.
const OPAQUE_MARKER: &str = ".wh..wh..opq";

/// Normalises a path found in a layer to a relative path without `.` components, rejecting
/// any `..` that would leave the root. Leading `/` is dropped (layers are rooted).
pub fn normalize_entry_path(p: &Path) -> Result<PathBuf> {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::RootDir | Component::CurDir => {}
            Component::Normal(n) => out.push(n),
            Component::ParentDir => {
                if !out.pop() {
                    return Err(Error::UnsafePath(p.display().to_string()));
                }
            }
            Component::Prefix(_) => return Err(Error::UnsafePath(p.display().to_string())),
        }
    }
    Ok(out)
}

/// What a layer entry means for the unpacker.
#[derive(Debug, PartialEq, Eq)]
pub enum Whiteout {
    /// Not a whiteout: unpack as is.
    None,
    /// `dir/.wh..wh..opq`: `dir` hides everything below it in lower layers.
    Opaque(PathBuf),
    /// `dir/.wh.name`: `dir/name` is deleted.
    Remove(PathBuf),
}

/// Classifies a normalised entry path.
pub fn classify_whiteout(rel: &Path) -> Whiteout {
    let Some(name) = rel.file_name().and_then(|n| n.to_str()) else {
        return Whiteout::None;
    };
    let parent = rel.parent().map(Path::to_path_buf).unwrap_or_default();
    if name == OPAQUE_MARKER {
        Whiteout::Opaque(parent)
    } else if let Some(target) = name.strip_prefix(WHITEOUT_PREFIX) {
        if target.is_empty() || target == "." || target == ".." {
            Whiteout::None
        } else {
            Whiteout::Remove(parent.join(target))
        }
    } else {
        Whiteout::None
    }
}

/// Makes sure the parent directory of `dest/rel` exists and resolves (following symlinks)
/// inside `dest`, so that nothing is written through a symlink that points out of the layer.
fn safe_parent(dest: &Path, rel: &Path) -> Result<PathBuf> {
    let parent = dest.join(rel.parent().unwrap_or(Path::new("")));
    fs::create_dir_all(&parent).ctx("creating directory", &parent)?;
    let canon_parent = parent.canonicalize().ctx("resolving", &parent)?;
    let canon_dest = dest.canonicalize().ctx("resolving", dest)?;
    if !canon_parent.starts_with(&canon_dest) {
        return Err(Error::UnsafePath(rel.display().to_string()));
    }
    Ok(canon_parent)
}

/// A reader that hashes what passes through it.
struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

/// Opens a layer blob, transparently decompressing gzip (detected by its magic bytes).
pub(crate) fn open_layer(path: &Path) -> Result<Box<dyn Read>> {
    let file = fs::File::open(path).ctx("opening layer", path)?;
    let mut buf = BufReader::with_capacity(256 * 1024, file);
    let head = buf.fill_buf().ctx("reading layer", path)?;
    if head.starts_with(&[0x1f, 0x8b]) {
        Ok(Box::new(flate2::read::MultiGzDecoder::new(buf)))
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Err(Error::InvalidImage {
            what: path.display().to_string(),
            reason: "zstd layers are not supported".into(),
        })
    } else {
        Ok(Box::new(buf))
    }
}

/// Unpacks an uncompressed layer tar stream into `dest`, converting OCI whiteouts into
/// overlayfs ones, and returns the `sha256:` digest of the stream (the layer's diff id).
pub fn unpack_layer(reader: impl Read, dest: &Path) -> Result<String> {
    fs::create_dir_all(dest).ctx("creating directory", dest)?;
    let hashing = HashingReader {
        inner: reader,
        hasher: Sha256::new(),
    };
    let mut archive = tar::Archive::new(hashing);
    archive.set_preserve_permissions(true);
    archive.set_preserve_ownerships(sys::geteuid() == 0);
    archive.set_preserve_mtime(true);
    archive.set_unpack_xattrs(true);
    archive.set_overwrite(true);
    let bad = |e: io::Error| Error::InvalidImage {
        what: "layer".into(),
        reason: e.to_string(),
    };
    for entry in archive.entries().map_err(bad)? {
        let mut entry = entry.map_err(bad)?;
        let raw = entry.path().map_err(bad)?.into_owned();
        let rel = normalize_entry_path(&raw)?;
        if rel.as_os_str().is_empty() {
            continue;
        }
        if let Ok(Some(link)) = entry.link_name()
            && entry.header().entry_type().is_hard_link()
        {
            normalize_entry_path(&link)?;
        }
        match classify_whiteout(&rel) {
            Whiteout::Opaque(dir) => {
                let full = dest.join(&dir);
                if !dir.as_os_str().is_empty() {
                    safe_parent(dest, &dir)?;
                }
                fs::create_dir_all(&full).ctx("creating directory", &full)?;
                sys::lsetxattr(&full, "trusted.overlay.opaque", b"y")
                    .ctx("marking opaque", &full)?;
            }
            Whiteout::Remove(target) => {
                let parent = safe_parent(dest, &target)?;
                let Some(name) = target.file_name() else {
                    continue;
                };
                let full = parent.join(name);
                if let Ok(meta) = fs::symlink_metadata(&full) {
                    if meta.is_dir() {
                        fs::remove_dir_all(&full).ctx("removing", &full)?;
                    } else {
                        fs::remove_file(&full).ctx("removing", &full)?;
                    }
                }
                sys::mknod_whiteout(&full).ctx("creating whiteout", &full)?;
            }
            Whiteout::None => {
                safe_parent(dest, &rel)?;
                // A directory entry over an existing whiteout, or a file over a directory:
                // the later entry wins, as in Docker.
                let full = dest.join(&rel);
                if let Ok(meta) = fs::symlink_metadata(&full) {
                    let is_dir_entry = entry.header().entry_type().is_dir();
                    if meta.is_dir() && !is_dir_entry {
                        fs::remove_dir_all(&full).ctx("removing", &full)?;
                    } else if !meta.is_dir() && is_dir_entry {
                        fs::remove_file(&full).ctx("removing", &full)?;
                    }
                }
                let unpacked = entry.unpack_in(dest).map_err(|e| {
                    let inner = std::error::Error::source(&e)
                        .map(|s| format!(": {s}"))
                        .unwrap_or_default();
                    Error::InvalidImage {
                        what: format!("layer entry {}", rel.display()),
                        reason: format!("{e}{inner}"),
                    }
                })?;
                if !unpacked {
                    return Err(Error::UnsafePath(raw.display().to_string()));
                }
            }
        }
    }
    let mut rest = archive.into_inner();
    io::copy(&mut rest, &mut io::sink()).map_err(bad)?;
    Ok(format!("sha256:{}", hex::encode(rest.hasher.finalize())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::FileTypeExt;

    #[test]
    fn normalizes_and_rejects_escapes() {
        assert_eq!(
            normalize_entry_path(Path::new("./a/./b")).unwrap(),
            PathBuf::from("a/b")
        );
        assert_eq!(
            normalize_entry_path(Path::new("/etc/passwd")).unwrap(),
            PathBuf::from("etc/passwd")
        );
        assert_eq!(
            normalize_entry_path(Path::new("a/../b")).unwrap(),
            PathBuf::from("b")
        );
        assert!(normalize_entry_path(Path::new("../x")).is_err());
        assert!(normalize_entry_path(Path::new("a/../../x")).is_err());
    }

    #[test]
    fn classifies_whiteouts() {
        assert_eq!(classify_whiteout(Path::new("a/b")), Whiteout::None);
        assert_eq!(
            classify_whiteout(Path::new("a/.wh.b")),
            Whiteout::Remove(PathBuf::from("a/b"))
        );
        assert_eq!(
            classify_whiteout(Path::new(".wh.top")),
            Whiteout::Remove(PathBuf::from("top"))
        );
        assert_eq!(
            classify_whiteout(Path::new("d/.wh..wh..opq")),
            Whiteout::Opaque(PathBuf::from("d"))
        );
    }

    fn tar_with(entries: &[(&str, Option<&str>)]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (path, content) in entries {
            let mut h = tar::Header::new_gnu();
            h.set_uid(0);
            h.set_gid(0);
            h.set_mtime(0);
            match content {
                Some(c) => {
                    h.set_entry_type(tar::EntryType::Regular);
                    h.set_size(c.len() as u64);
                    h.set_mode(0o644);
                    // Write the raw name so that `..` survives (the builder refuses it).
                    let name = path.as_bytes();
                    h.as_old_mut().name[..name.len()].copy_from_slice(name);
                    h.set_cksum();
                    b.append(&h, c.as_bytes()).unwrap();
                }
                None => {
                    h.set_entry_type(tar::EntryType::Directory);
                    h.set_size(0);
                    h.set_mode(0o755);
                    b.append_data(&mut h, path, io::empty()).unwrap();
                }
            }
        }
        b.into_inner().unwrap()
    }

    #[test]
    fn rejects_entries_escaping_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let data = tar_with(&[("../evil", Some("x"))]);
        let err = unpack_layer(&data[..], &dir.path().join("l")).unwrap_err();
        assert!(matches!(err, Error::UnsafePath(_)), "{err}");
        assert!(!dir.path().join("evil").exists());
    }

    #[test]
    fn rejects_writing_through_a_symlink_out_of_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let outside = dir.path().join("outside");
        fs::create_dir(&outside).unwrap();
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Symlink);
        h.set_size(0);
        b.append_link(&mut h, "link", &outside).unwrap();
        let mut h = tar::Header::new_gnu();
        h.set_size(1);
        h.set_mode(0o644);
        b.append_data(&mut h, "link/file", &b"x"[..]).unwrap();
        let data = b.into_inner().unwrap();
        assert!(unpack_layer(&data[..], &dir.path().join("l")).is_err());
        assert!(!outside.join("file").exists());
    }

    #[test]
    fn converts_whiteouts_and_hashes_the_stream() {
        if sys::geteuid() != 0 {
            eprintln!("skipping: mknod of whiteouts needs root");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let data = tar_with(&[
            ("d/", None),
            ("d/.wh..wh..opq", Some("")),
            (".wh.gone", Some("")),
            ("f", Some("hello")),
        ]);
        let diff_id = unpack_layer(&data[..], dir.path()).unwrap();
        assert_eq!(
            diff_id,
            format!("sha256:{}", hex::encode(Sha256::digest(&data)))
        );
        let wh = fs::symlink_metadata(dir.path().join("gone")).unwrap();
        assert!(wh.file_type().is_char_device());
        assert_eq!(fs::read_to_string(dir.path().join("f")).unwrap(), "hello");
        assert!(!dir.path().join("d/.wh..wh..opq").exists());
        let mut buf = [0u8; 4];
        let path = std::ffi::CString::new(dir.path().join("d").to_str().unwrap()).unwrap();
        let name = std::ffi::CString::new("trusted.overlay.opaque").unwrap();
        // SAFETY: valid strings and a valid buffer.
        let n = unsafe {
            libc::lgetxattr(
                path.as_ptr(),
                name.as_ptr(),
                buf.as_mut_ptr().cast(),
                buf.len(),
            )
        };
        assert_eq!(n, 1);
        assert_eq!(buf[0], b'y');
    }
}
