//! A deliberately tiny HTTP/1.1 client over `std::net::TcpStream`, plus SigV4 signing of such
//! requests through `aws-sigv4`.
//!
//! The SDK and the CLI always send well-formed, well-signed requests. The suites also need the
//! other kind: unsigned, signed with a wrong secret or an unknown key, signed too long ago,
//! malformed JSON, unknown `X-Amz-Target`s, oversized bodies. This module sends exactly the bytes
//! it is given and returns exactly what came back.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;

/// The `X-Amz-Target` prefix of the ECS API (AWS JSON 1.1).
pub const ECS_TARGET_PREFIX: &str = "AmazonEC2ContainerServiceV20141113";
/// The content type of AWS JSON 1.1 requests.
pub const AWS_JSON_1_1: &str = "application/x-amz-json-1.1";

/// An HTTP request to send as is.
#[derive(Clone, Debug, Default)]
pub struct RawRequest {
    pub method: String,
    /// Path and query, starting with `/`.
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl RawRequest {
    pub fn new(method: &str, path: &str) -> Self {
        Self {
            method: method.to_owned(),
            path: path.to_owned(),
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// An unsigned ECS (AWS JSON 1.1) call: `POST /` with the content type and
    /// `X-Amz-Target: AmazonEC2ContainerServiceV20141113.<operation>`.
    pub fn ecs(operation: &str, body: impl Into<Vec<u8>>) -> Self {
        Self::new("POST", "/")
            .header("Content-Type", AWS_JSON_1_1)
            .header("X-Amz-Target", &format!("{ECS_TARGET_PREFIX}.{operation}"))
            .body(body)
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Removes every header of that name (case-insensitive).
    pub fn without_header(mut self, name: &str) -> Self {
        self.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        self
    }

    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }

    /// The first value of a header (case-insensitive).
    pub fn header_value(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Signs the request with SigV4 (headers `Authorization` and `X-Amz-Date` are added; a
    /// `Host` header is added first if missing, since it is part of the signature).
    pub fn sign(mut self, host: &str, params: &SigningParams<'_>) -> Self {
        if self.header_value("host").is_none() {
            self.headers.push(("Host".to_owned(), host.to_owned()));
        }
        let identity = Credentials::new(
            params.access_key_id,
            params.secret_access_key,
            params.session_token.map(str::to_owned),
            None,
            "berth-e2e",
        )
        .into();
        let signing_params = v4::SigningParams::builder()
            .identity(&identity)
            .region(params.region)
            .name(params.service)
            .time(params.time)
            .settings(SigningSettings::default())
            .build()
            .expect("complete SigV4 signing parameters")
            .into();
        let url = format!("http://{host}{}", self.path);
        let signable = SignableRequest::new(
            &self.method,
            &url,
            self.headers.iter().map(|(n, v)| (n.as_str(), v.as_str())),
            SignableBody::Bytes(&self.body),
        )
        .expect("a signable request");
        let (instructions, _signature) = sign(signable, &signing_params)
            .expect("SigV4 signing")
            .into_parts();
        let added: Vec<(String, String)> = instructions
            .headers()
            .map(|(n, v)| (n.to_owned(), v.to_owned()))
            .collect();
        for (name, value) in added {
            self = self.without_header(&name);
            self.headers.push((name, value));
        }
        self
    }
}

/// What to sign a [`RawRequest`] with.
#[derive(Clone, Copy, Debug)]
pub struct SigningParams<'a> {
    pub access_key_id: &'a str,
    pub secret_access_key: &'a str,
    pub session_token: Option<&'a str>,
    pub region: &'a str,
    pub service: &'a str,
    /// The signing time; set it in the past to make a stale signature.
    pub time: SystemTime,
}

impl<'a> SigningParams<'a> {
    /// Service `ecs`, signed now.
    pub fn ecs(access_key_id: &'a str, secret_access_key: &'a str, region: &'a str) -> Self {
        Self {
            access_key_id,
            secret_access_key,
            session_token: None,
            region,
            service: "ecs",
            time: SystemTime::now(),
        }
    }

    pub fn at(mut self, time: SystemTime) -> Self {
        self.time = time;
        self
    }

    pub fn service(mut self, service: &'a str) -> Self {
        self.service = service;
        self
    }
}

/// A response as received.
#[derive(Clone, Debug)]
pub struct RawResponse {
    pub status: u16,
    /// Header names are lowercased.
    pub headers: Vec<(String, String)>,
    /// The body, de-chunked.
    pub body: Vec<u8>,
}

impl RawResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON; panics (with the body) if it is not.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "response body is not JSON ({e}); status {}, body: {}",
                self.status,
                self.text()
            )
        })
    }

    /// The AWS error code: the `__type` member of a JSON error body with any
    /// `namespace#` prefix removed (AWS JSON 1.1 allows both forms), or else the
    /// `x-amzn-ErrorType` header (which may carry a `:url` suffix).
    pub fn error_code(&self) -> Option<String> {
        let from_body = serde_json::from_slice::<serde_json::Value>(&self.body)
            .ok()
            .and_then(|v| v.get("__type").and_then(|t| t.as_str()).map(str::to_owned));
        let raw = from_body.or_else(|| self.header("x-amzn-errortype").map(str::to_owned))?;
        Some(normalize_error_code(&raw))
    }

    /// The error message (`message` or `Message`) of a JSON error body.
    pub fn error_message(&self) -> Option<String> {
        let v: serde_json::Value = serde_json::from_slice(&self.body).ok()?;
        v.get("message")
            .or_else(|| v.get("Message"))
            .and_then(|m| m.as_str())
            .map(str::to_owned)
    }
}

/// `aws.protocoltests#FooError` and `FooError:http://...` both become `FooError`.
pub fn normalize_error_code(raw: &str) -> String {
    let after_hash = raw.rsplit('#').next().unwrap_or(raw);
    after_hash
        .split(':')
        .next()
        .unwrap_or(after_hash)
        .trim()
        .to_owned()
}

/// Sends `req` to `addr` on a fresh connection (`Connection: close`) and reads the whole
/// response. `Host` and `Content-Length` are added when the request lacks them.
pub fn send(addr: SocketAddr, req: &RawRequest, timeout: Duration) -> io::Result<RawResponse> {
    let mut stream = TcpStream::connect_timeout(&addr, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    stream.set_nodelay(true)?;

    let mut head = format!("{} {} HTTP/1.1\r\n", req.method, req.path);
    if req.header_value("host").is_none() {
        head.push_str(&format!("Host: {addr}\r\n"));
    }
    for (name, value) in &req.headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    if req.header_value("content-length").is_none()
        && req.header_value("transfer-encoding").is_none()
    {
        head.push_str(&format!("Content-Length: {}\r\n", req.body.len()));
    }
    if req.header_value("connection").is_none() {
        head.push_str("Connection: close\r\n");
    }
    head.push_str("\r\n");

    let mut request = head.into_bytes();
    request.extend_from_slice(&req.body);
    // The server may answer and close before it has read a large body (a size limit); a write
    // error is then expected, and the response is still there to read.
    let write_result = stream.write_all(&request).and_then(|()| stream.flush());

    let mut raw = Vec::new();
    let read_result = stream.read_to_end(&mut raw);
    if raw.is_empty() {
        write_result?;
        read_result?;
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "connection closed without a response",
        ));
    }
    parse_response(&raw)
}

fn invalid(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.into())
}

fn parse_response(raw: &[u8]) -> io::Result<RawResponse> {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| invalid("no end of response head"))?;
    let head = std::str::from_utf8(&raw[..split]).map_err(|e| invalid(e.to_string()))?;
    let rest = &raw[split + 4..];
    let mut lines = head.split("\r\n");
    let status_line = lines.next().ok_or_else(|| invalid("empty response"))?;
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or_else(|| invalid(format!("bad status line {status_line:?}")))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let get = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    };
    let body =
        if get("transfer-encoding").is_some_and(|v| v.to_ascii_lowercase().contains("chunked")) {
            dechunk(rest)?
        } else if let Some(len) = get("content-length").and_then(|v| v.parse::<usize>().ok()) {
            rest.get(..len)
                .ok_or_else(|| invalid(format!("body shorter than content-length {len}")))?
                .to_vec()
        } else {
            rest.to_vec()
        };
    Ok(RawResponse {
        status,
        headers,
        body,
    })
}

fn dechunk(mut data: &[u8]) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let eol = data
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or_else(|| invalid("truncated chunk size"))?;
        let size_line = std::str::from_utf8(&data[..eol]).map_err(|e| invalid(e.to_string()))?;
        let size_hex = size_line.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_hex, 16)
            .map_err(|_| invalid(format!("bad chunk size {size_line:?}")))?;
        data = &data[eol + 2..];
        if size == 0 {
            return Ok(out);
        }
        let chunk = data.get(..size).ok_or_else(|| invalid("truncated chunk"))?;
        out.extend_from_slice(chunk);
        data = data.get(size + 2..).unwrap_or(&[]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_content_length_response() {
        let r = parse_response(
            b"HTTP/1.1 400 Bad Request\r\nContent-Type: application/x-amz-json-1.1\r\nContent-Length: 13\r\n\r\n{\"__type\":1}xx",
        )
        .unwrap();
        assert_eq!(r.status, 400);
        assert_eq!(r.header("content-type"), Some("application/x-amz-json-1.1"));
        assert_eq!(r.body, b"{\"__type\":1}x");
    }

    #[test]
    fn parses_chunked_response() {
        let r = parse_response(
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n6;x=y\r\n world\r\n0\r\n\r\n",
        )
        .unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(r.text(), "hello world");
    }

    #[test]
    fn error_codes_are_normalized() {
        assert_eq!(
            normalize_error_code("com.amazonaws.ecs#ClusterNotFoundException"),
            "ClusterNotFoundException"
        );
        assert_eq!(
            normalize_error_code("InvalidSignatureException:http://internal.amazon.com/"),
            "InvalidSignatureException"
        );
        let r = RawResponse {
            status: 400,
            headers: vec![],
            body: br#"{"__type":"MissingAuthenticationTokenException","message":"Missing Authentication Token"}"#.to_vec(),
        };
        assert_eq!(
            r.error_code().as_deref(),
            Some("MissingAuthenticationTokenException")
        );
        assert_eq!(
            r.error_message().as_deref(),
            Some("Missing Authentication Token")
        );
    }

    #[test]
    fn signing_adds_authorization_for_the_scope() {
        let params = SigningParams::ecs(
            "AKIDEXAMPLE",
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            "eu-west-1",
        );
        let req = RawRequest::ecs("ListClusters", "{}").sign("127.0.0.1:4566", &params);
        let auth = req.header_value("authorization").unwrap();
        assert!(
            auth.starts_with("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/"),
            "{auth}"
        );
        assert!(auth.contains("/eu-west-1/ecs/aws4_request"), "{auth}");
        assert!(auth.contains("SignedHeaders="), "{auth}");
        assert!(auth.contains("host"), "{auth}");
        assert!(auth.contains("x-amz-target"), "{auth}");
        assert!(req.header_value("x-amz-date").is_some());
        assert_eq!(req.header_value("host"), Some("127.0.0.1:4566"));
    }
}
