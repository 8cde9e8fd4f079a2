//! A minimal signed client for Berth's own commands (`berth reset`): AWS JSON 1.1 over
//! plain HTTP/1.1 to the endpoint in the environment, SigV4-signed like an SDK.

use anyhow::{Context as _, bail};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

pub struct Client {
    host: String,
    access_key_id: String,
    secret: String,
    region: String,
}

fn env(name: &str) -> anyhow::Result<String> {
    std::env::var(name).with_context(|| format!("{name} is not set (source <data-dir>/env first)"))
}

impl Client {
    pub fn from_env() -> anyhow::Result<Client> {
        let endpoint = env("AWS_ENDPOINT_URL")?;
        let Some(host) = endpoint.strip_prefix("http://") else {
            bail!("AWS_ENDPOINT_URL must be an http:// URL of a berth endpoint, got '{endpoint}'");
        };
        let region = std::env::var("AWS_REGION")
            .or_else(|_| std::env::var("AWS_DEFAULT_REGION"))
            .unwrap_or_else(|_| "us-east-1".into());
        Ok(Client {
            host: host.trim_end_matches('/').to_string(),
            access_key_id: env("AWS_ACCESS_KEY_ID")?,
            secret: env("AWS_SECRET_ACCESS_KEY")?,
            region,
        })
    }

    /// Calls `prefix.operation` with `body`; returns the reply body or fails with the AWS error.
    pub async fn call(
        &self,
        prefix: &str,
        signing_name: &str,
        operation: &str,
        body: &[u8],
    ) -> anyhow::Result<Vec<u8>> {
        let base = vec![
            (
                "content-type".to_string(),
                "application/x-amz-json-1.1".to_string(),
            ),
            ("host".to_string(), self.host.clone()),
            ("x-amz-target".to_string(), format!("{prefix}.{operation}")),
        ];
        let now = berth_wire::Timestamp::now().seconds();
        let unsigned = berth_wire::sigv4::SignedRequest {
            method: "POST",
            raw_path: "/",
            raw_query: "",
            headers: &base,
            body,
        };
        let key = berth_wire::sigv4::SigningKey {
            access_key_id: &self.access_key_id,
            secret: &self.secret,
            region: &self.region,
            service: signing_name,
        };
        let signed = berth_wire::sigv4::sign_headers(&unsigned, &key, now);
        let mut req = String::from("POST / HTTP/1.1\r\n");
        for (k, v) in base.iter().chain(signed.iter()) {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        req.push_str(&format!(
            "content-length: {}\r\nconnection: close\r\n\r\n",
            body.len()
        ));
        let mut stream = tokio::net::TcpStream::connect(&self.host)
            .await
            .with_context(|| format!("cannot reach berth at {}", self.host))?;
        stream.write_all(req.as_bytes()).await?;
        stream.write_all(body).await?;
        let mut resp = Vec::new();
        stream.read_to_end(&mut resp).await?;
        let text = String::from_utf8_lossy(&resp);
        let (head, rest) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
        let status = head.split_whitespace().nth(1).unwrap_or("");
        if status != "200" {
            let err: serde_json::Value = serde_json::from_str(rest).unwrap_or_default();
            bail!(
                "{} failed ({status}): {} {}",
                operation,
                err["__type"].as_str().unwrap_or(""),
                err["message"].as_str().unwrap_or(rest)
            );
        }
        Ok(rest.as_bytes().to_vec())
    }
}
