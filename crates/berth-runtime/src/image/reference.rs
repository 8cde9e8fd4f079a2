//! Image references as Docker reads them: `busybox` is `docker.io/library/busybox:latest`.

use crate::error::{Error, Result};

/// Registry host used when a reference names none.
pub const DEFAULT_REGISTRY: &str = "docker.io";

/// A parsed image reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    /// Registry host (with port), e.g. `localhost:5000` or `docker.io`.
    pub registry: String,
    /// Repository path, e.g. `library/busybox`.
    pub repository: String,
    /// Tag; `latest` when neither a tag nor a digest is given.
    pub tag: Option<String>,
    /// Digest (`sha256:<hex>`), when pinned.
    pub digest: Option<String>,
}

impl Reference {
    /// Parses `[registry/]repo[:tag][@digest]`.
    pub fn parse(s: &str) -> Result<Reference> {
        let bad = || Error::InvalidReference(s.to_string());
        if s.is_empty() || s.chars().any(|c| c.is_whitespace()) {
            return Err(bad());
        }
        let (name, digest) = match s.split_once('@') {
            Some((n, d)) => {
                if !is_digest(d) {
                    return Err(bad());
                }
                (n, Some(d.to_string()))
            }
            None => (s, None),
        };
        let last_slash = name.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match name[last_slash..].rfind(':') {
            Some(i) => {
                let tag = &name[last_slash + i + 1..];
                if tag.is_empty() || tag.len() > 128 {
                    return Err(bad());
                }
                (&name[..last_slash + i], Some(tag.to_string()))
            }
            None => (name, None),
        };
        let (registry, repository) = match name.split_once('/') {
            Some((first, rest))
                if first.contains('.') || first.contains(':') || first == "localhost" =>
            {
                (first.to_string(), rest.to_string())
            }
            _ => {
                let repo = if name.contains('/') {
                    name.to_string()
                } else {
                    format!("library/{name}")
                };
                (DEFAULT_REGISTRY.to_string(), repo)
            }
        };
        let repo_ok = !repository.is_empty()
            && repository.split('/').all(|c| {
                !c.is_empty()
                    && c.chars().all(|ch| {
                        ch.is_ascii_lowercase() || ch.is_ascii_digit() || "._-".contains(ch)
                    })
            });
        if !repo_ok {
            return Err(bad());
        }
        let tag = if tag.is_none() && digest.is_none() {
            Some("latest".to_string())
        } else {
            tag
        };
        Ok(Reference {
            registry,
            repository,
            tag,
            digest,
        })
    }

    /// `registry/repository`.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// The canonical form: `registry/repository[:tag][@digest]`.
    pub fn canonical(&self) -> String {
        let mut s = self.name();
        if let Some(t) = &self.tag {
            s.push(':');
            s.push_str(t);
        }
        if let Some(d) = &self.digest {
            s.push('@');
            s.push_str(d);
        }
        s
    }

    /// Tag or digest, as used in a registry's manifest URL.
    pub fn object(&self) -> &str {
        self.digest
            .as_deref()
            .or(self.tag.as_deref())
            .unwrap_or("latest")
    }
}

impl std::fmt::Display for Reference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.canonical())
    }
}

/// Whether `d` is `sha256:` followed by 64 lowercase hex digits.
pub fn is_digest(d: &str) -> bool {
    d.strip_prefix("sha256:").is_some_and(|h| {
        h.len() == 64
            && h.chars()
                .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_hub_short_names() {
        let r = Reference::parse("busybox").unwrap();
        assert_eq!(r.canonical(), "docker.io/library/busybox:latest");
        let r = Reference::parse("user/app:1.2").unwrap();
        assert_eq!(r.canonical(), "docker.io/user/app:1.2");
    }

    #[test]
    fn registry_with_port_and_digest() {
        let d = format!("sha256:{}", "a".repeat(64));
        let r = Reference::parse(&format!("localhost:5000/app:1@{d}")).unwrap();
        assert_eq!(r.registry, "localhost:5000");
        assert_eq!(r.repository, "app");
        assert_eq!(r.tag.as_deref(), Some("1"));
        assert_eq!(r.object(), d);
        let r = Reference::parse("127.0.0.1:5000/a/b").unwrap();
        assert_eq!(r.canonical(), "127.0.0.1:5000/a/b:latest");
    }

    #[test]
    fn rejects_garbage() {
        for bad in ["", "Upper", "a b", "x@sha256:zz", "foo:", "//x"] {
            assert!(Reference::parse(bad).is_err(), "{bad}");
        }
    }
}
