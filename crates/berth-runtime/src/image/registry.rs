//! Pulls from OCI / Docker registries (distribution API v2) over HTTP, with Bearer token auth.

use std::collections::BTreeMap;
use std::io::Read;
use std::time::Duration;

use sha2::{Digest, Sha256};

use super::oci::{self, ManifestOrIndex};
use super::{Image, ImageStore, Reference};
use crate::error::{Error, Result};

const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, \
application/vnd.oci.image.manifest.v1+json, \
application/vnd.docker.distribution.manifest.list.v2+json, \
application/vnd.docker.distribution.manifest.v2+json";

/// Parses a `WWW-Authenticate: Bearer realm="…",service="…",scope="…"` header.
pub fn parse_bearer_challenge(header: &str) -> Option<BTreeMap<String, String>> {
    let rest = header.trim();
    let (scheme, params) = rest.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let mut out = BTreeMap::new();
    let mut s = params.trim();
    while !s.is_empty() {
        let (key, after) = s.split_once('=')?;
        let key = key.trim().to_ascii_lowercase();
        let after = after.trim_start();
        let (value, rest) = if let Some(q) = after.strip_prefix('"') {
            let end = q.find('"')?;
            (q[..end].to_string(), &q[end + 1..])
        } else {
            let end = after.find(',').unwrap_or(after.len());
            (after[..end].trim().to_string(), &after[end..])
        };
        out.insert(key, value);
        s = rest.trim_start().trim_start_matches(',').trim_start();
    }
    Some(out)
}

fn is_loopback_host(registry: &str) -> bool {
    let host = registry.rsplit_once(':').map_or(registry, |(h, _)| h);
    host == "localhost" || host.starts_with("127.") || host == "[::1]"
}

struct Client<'a> {
    agent: ureq::Agent,
    base: String,
    reference: &'a Reference,
    token: Option<String>,
}

type Response = ureq::http::Response<ureq::Body>;

impl<'a> Client<'a> {
    fn fail(&self, reason: impl Into<String>) -> Error {
        Error::CannotPull {
            reference: self.reference.canonical(),
            reason: reason.into(),
        }
    }

    fn get(&mut self, url: &str, accept: Option<&str>) -> Result<Response> {
        for attempt in 0..2 {
            let mut req = self.agent.get(url);
            if let Some(a) = accept {
                req = req.header("Accept", a);
            }
            if let Some(t) = &self.token {
                req = req.header("Authorization", format!("Bearer {t}"));
            }
            let resp = req
                .call()
                .map_err(|e| self.fail(format!("failed to do request: GET {url}: {e}")))?;
            if resp.status().as_u16() == 401 && attempt == 0 {
                let challenge = resp
                    .headers()
                    .get("www-authenticate")
                    .and_then(|v| v.to_str().ok())
                    .and_then(parse_bearer_challenge);
                match challenge {
                    Some(c) => {
                        self.token = Some(self.fetch_token(&c)?);
                        continue;
                    }
                    None => return Ok(resp),
                }
            }
            return Ok(resp);
        }
        Err(self.fail("authentication failed"))
    }

    fn fetch_token(&self, challenge: &BTreeMap<String, String>) -> Result<String> {
        let realm = challenge
            .get("realm")
            .ok_or_else(|| self.fail("bearer challenge without realm"))?;
        let scope = challenge
            .get("scope")
            .cloned()
            .unwrap_or_else(|| format!("repository:{}:pull", self.reference.repository));
        let mut req = self.agent.get(realm).query("scope", &scope);
        if let Some(service) = challenge.get("service") {
            req = req.query("service", service);
        }
        let mut resp = req
            .call()
            .map_err(|e| self.fail(format!("fetching token from {realm}: {e}")))?;
        if !resp.status().is_success() {
            return Err(self.fail(format!(
                "pull access denied for {}, repository does not exist or may require authorization: token server answered {}",
                self.reference.name(),
                resp.status()
            )));
        }
        let text = resp
            .body_mut()
            .read_to_string()
            .map_err(|e| self.fail(format!("reading token from {realm}: {e}")))?;
        let body: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| self.fail(format!("reading token from {realm}: {e}")))?;
        body.get("token")
            .or_else(|| body.get("access_token"))
            .and_then(|v| v.as_str())
            .map(str::to_string)
            .ok_or_else(|| self.fail(format!("token server {realm} returned no token")))
    }

    fn status_error(&self, what: &str, status: u16) -> Error {
        match status {
            401 | 403 => self.fail(format!(
                "pull access denied for {}, repository does not exist or may require authorization",
                self.reference.name()
            )),
            404 => self.fail(format!(
                "failed to resolve ref {}: {what} not found",
                self.reference.canonical()
            )),
            s => self.fail(format!("unexpected status {s} fetching {what}")),
        }
    }

    /// Fetches a manifest by tag or digest; verifies it against `digest` when given.
    fn manifest(&mut self, object: &str, digest: Option<&str>) -> Result<(Vec<u8>, String)> {
        let url = format!(
            "{}/v2/{}/manifests/{}",
            self.base, self.reference.repository, object
        );
        let mut resp = self.get(&url, Some(MANIFEST_ACCEPT))?;
        if !resp.status().is_success() {
            return Err(self.status_error(&format!("manifest {object}"), resp.status().as_u16()));
        }
        let body = resp
            .body_mut()
            .with_config()
            .limit(16 * 1024 * 1024)
            .read_to_vec()
            .map_err(|e| self.fail(format!("reading manifest {object}: {e}")))?;
        let actual = format!("sha256:{}", hex::encode(Sha256::digest(&body)));
        if let Some(d) = digest
            && d != actual
        {
            return Err(self.fail(format!(
                "manifest digest mismatch: expected {d}, got {actual}"
            )));
        }
        Ok((body, actual))
    }

    fn blob(&mut self, digest: &str) -> Result<impl Read + use<>> {
        let url = format!(
            "{}/v2/{}/blobs/{}",
            self.base, self.reference.repository, digest
        );
        let resp = self.get(&url, None)?;
        if !resp.status().is_success() {
            return Err(self.status_error(&format!("blob {digest}"), resp.status().as_u16()));
        }
        Ok(resp.into_body().into_reader())
    }
}

impl ImageStore {
    /// Pulls an image from its registry into the store (blobs already present are not
    /// fetched again) and tags it. Registries on loopback (and the store's insecure ones) are
    /// reached over plain HTTP, others over HTTPS.
    pub fn pull(&self, reference: &str) -> Result<Image> {
        let r = Reference::parse(reference)?;
        let scheme =
            if is_loopback_host(&r.registry) || self.insecure_registries.contains(&r.registry) {
                "http"
            } else {
                "https"
            };
        let host = if r.registry == super::reference::DEFAULT_REGISTRY {
            "registry-1.docker.io"
        } else {
            &r.registry
        };
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(Duration::from_secs(10)))
            .build()
            .into();
        let mut client = Client {
            agent,
            base: format!("{scheme}://{host}"),
            reference: &r,
            token: None,
        };

        let (body, mut digest) = client.manifest(r.object(), r.digest.as_deref())?;
        let mut m: ManifestOrIndex = serde_json::from_slice(&body)
            .map_err(|e| client.fail(format!("invalid manifest: {e}")))?;
        let mut blobs = vec![(digest.clone(), body)];
        if m.is_index() {
            let chosen = oci::choose_platform(m.manifests.as_deref().unwrap_or_default())
                .ok_or_else(|| {
                    client.fail("no matching manifest for linux/amd64 in the manifest list entries")
                })?
                .digest
                .clone();
            let (body, d) = client.manifest(&chosen, Some(&chosen))?;
            m = serde_json::from_slice(&body)
                .map_err(|e| client.fail(format!("invalid manifest: {e}")))?;
            digest = d.clone();
            blobs.push((d, body));
        }
        let Some(config) = &m.config else {
            return Err(client.fail(format!(
                "manifest {digest} has no config (schema 1 manifests are not supported)"
            )));
        };
        let mut wanted = vec![config.digest.clone()];
        wanted.extend(m.layers.iter().flatten().map(|l| l.digest.clone()));
        for d in &wanted {
            if self.has_blob(d) {
                continue;
            }
            let reader = client.blob(d)?;
            self.put_blob(reader, Some(d))
                .map_err(|e| client.fail(format!("fetching blob {d}: {e}")))?;
        }
        for (d, body) in &blobs {
            self.put_blob_bytes(body)
                .map_err(|e| client.fail(format!("storing manifest {d}: {e}")))?;
        }
        let canonical = r.canonical();
        let mut by_digest = r.clone();
        by_digest.tag = None;
        by_digest.digest = Some(digest.clone());
        self.set_refs(&[
            (canonical.clone(), digest.clone()),
            (by_digest.canonical(), digest.clone()),
        ])?;
        let image = self.image_from_manifest(&canonical, &digest)?;
        self.layer_dirs(&image)?;
        Ok(image)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_bearer_challenges() {
        let c = parse_bearer_challenge(
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull""#,
        )
        .unwrap();
        assert_eq!(c["realm"], "https://auth.docker.io/token");
        assert_eq!(c["service"], "registry.docker.io");
        assert_eq!(c["scope"], "repository:library/busybox:pull");
        assert!(parse_bearer_challenge("Basic realm=x").is_none());
        let c = parse_bearer_challenge("Bearer realm=http://x/t, service=s").unwrap();
        assert_eq!(c["realm"], "http://x/t");
        assert_eq!(c["service"], "s");
    }
}
