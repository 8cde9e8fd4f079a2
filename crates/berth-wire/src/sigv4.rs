//! AWS Signature Version 4 verification.
//!
//! The gateway hands over the request as it arrived (method, raw path and query, headers,
//! body); this module recomputes the signature with the secret of the access key the request
//! names and compares it, as AWS does. Errors are AWS's own codes and messages for a missing,
//! malformed, unknown, stale or wrong signature.

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

use crate::AwsError;

type HmacSha256 = Hmac<Sha256>;

/// How far a request's timestamp may be from the server's clock (AWS: 5 minutes).
pub const MAX_CLOCK_SKEW_SECONDS: i64 = 300;

/// A request as it arrived, for verification.
#[derive(Debug, Clone, Copy)]
pub struct SignedRequest<'a> {
    pub method: &'a str,
    /// The path as sent, still percent-encoded.
    pub raw_path: &'a str,
    /// The query string as sent, without `?`.
    pub raw_query: &'a str,
    /// Header names and values; names in any case.
    pub headers: &'a [(String, String)],
    pub body: &'a [u8],
}

/// What a valid signature establishes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedSignature {
    pub access_key_id: String,
    /// The region of the credential scope.
    pub region: String,
    /// The service of the credential scope.
    pub service: String,
    /// `X-Amz-Security-Token`, for temporary credentials.
    pub session_token: Option<String>,
}

/// The parsed parts of a signature, before the secret is known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureParts {
    pub access_key_id: String,
    pub date: String,
    pub region: String,
    pub service: String,
    pub signed_headers: Vec<String>,
    pub signature: String,
    pub amz_date: String,
    pub session_token: Option<String>,
    /// Whether the signature came in the query string (presigned) rather than a header.
    pub presigned: bool,
}

fn header<'a>(req: &SignedRequest<'a>, name: &str) -> Option<&'a str> {
    req.headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

fn missing_token() -> AwsError {
    AwsError::new(
        "MissingAuthenticationTokenException",
        400,
        "Missing Authentication Token",
    )
}

fn incomplete(message: impl Into<String>) -> AwsError {
    AwsError::new("IncompleteSignatureException", 400, message)
}

fn query_pairs(raw_query: &str) -> Vec<(String, String)> {
    raw_query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode_component(k), decode_component(v))
        })
        .collect()
}

fn decode_component(s: &str) -> String {
    percent_encoding::percent_decode_str(&s.replace('+', "%20"))
        .decode_utf8_lossy()
        .into_owned()
}

/// Parses the `Authorization` header (or presigned query parameters) of a request.
pub fn parse(req: &SignedRequest<'_>) -> Result<SignatureParts, AwsError> {
    if let Some(auth) = header(req, "authorization") {
        let rest = auth.trim();
        let Some(rest) = rest.strip_prefix("AWS4-HMAC-SHA256") else {
            // Not SigV4 at all (SigV2, a bearer token, ...).
            return Err(incomplete(format!(
                "Authorization header requires 'Credential' parameter. Authorization={auth}"
            )));
        };
        let mut credential = None;
        let mut signed_headers = None;
        let mut signature = None;
        for part in rest.split(',') {
            let part = part.trim();
            if let Some(v) = part.strip_prefix("Credential=") {
                credential = Some(v.to_string());
            } else if let Some(v) = part.strip_prefix("SignedHeaders=") {
                signed_headers = Some(v.to_string());
            } else if let Some(v) = part.strip_prefix("Signature=") {
                signature = Some(v.to_string());
            }
        }
        let mut missing = Vec::new();
        if credential.is_none() {
            missing.push("Credential");
        }
        if signed_headers.is_none() {
            missing.push("SignedHeaders");
        }
        if signature.is_none() {
            missing.push("Signature");
        }
        if !missing.is_empty() {
            return Err(incomplete(format!(
                "Authorization header requires '{}' parameter. Authorization={auth}",
                missing.join("', '")
            )));
        }
        let amz_date = header(req, "x-amz-date").or_else(|| header(req, "date")).ok_or_else(|| {
            incomplete(format!(
                "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header. Authorization={auth}"
            ))
        })?;
        build_parts(
            credential.unwrap_or_default(),
            signed_headers.unwrap_or_default(),
            signature.unwrap_or_default(),
            amz_date.to_string(),
            header(req, "x-amz-security-token").map(String::from),
            false,
        )
    } else {
        let q = query_pairs(req.raw_query);
        let get = |k: &str| q.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        match get("X-Amz-Algorithm") {
            None => Err(missing_token()),
            Some(alg) if alg != "AWS4-HMAC-SHA256" => {
                Err(incomplete(format!("Unsupported AWS 'algorithm': '{alg}'")))
            }
            Some(_) => {
                let (Some(cred), Some(sh), Some(sig), Some(date)) = (
                    get("X-Amz-Credential"),
                    get("X-Amz-SignedHeaders"),
                    get("X-Amz-Signature"),
                    get("X-Amz-Date"),
                ) else {
                    return Err(incomplete(
                        "AWS query-string parameters must include 'X-Amz-Algorithm', 'X-Amz-Credential', 'X-Amz-Signature', 'X-Amz-SignedHeaders', 'X-Amz-Date'.",
                    ));
                };
                build_parts(cred, sh, sig, date, get("X-Amz-Security-Token"), true)
            }
        }
    }
}

fn build_parts(
    credential: String,
    signed_headers: String,
    signature: String,
    amz_date: String,
    session_token: Option<String>,
    presigned: bool,
) -> Result<SignatureParts, AwsError> {
    let scope: Vec<&str> = credential.split('/').collect();
    if scope.len() != 5 || scope[4] != "aws4_request" {
        return Err(incomplete(format!(
            "Credential should be scoped to a valid region, not ''. Credential={credential}"
        )));
    }
    Ok(SignatureParts {
        access_key_id: scope[0].to_string(),
        date: scope[1].to_string(),
        region: scope[2].to_string(),
        service: scope[3].to_string(),
        signed_headers: signed_headers
            .split(';')
            .map(|s| s.trim().to_ascii_lowercase())
            .collect(),
        signature,
        amz_date,
        session_token,
        presigned,
    })
}

/// Parses `20240101T000000Z` into Unix seconds.
pub fn parse_amz_date(s: &str) -> Option<i64> {
    let fmt = time::macros::format_description!("[year][month][day]T[hour][minute][second]Z");
    time::PrimitiveDateTime::parse(s, &fmt)
        .ok()
        .map(|t| t.assume_utc().unix_timestamp())
}

fn format_amz_date(unix: i64) -> String {
    let fmt = time::macros::format_description!("[year][month][day]T[hour][minute][second]Z");
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| t.format(&fmt).ok())
        .unwrap_or_default()
}

/// Checks the request's timestamp against `now_unix` (AWS allows 5 minutes either way).
pub fn check_clock(parts: &SignatureParts, now_unix: i64) -> Result<(), AwsError> {
    let Some(at) = parse_amz_date(&parts.amz_date) else {
        return Err(incomplete(format!(
            "Date must be in ISO-8601 'basic format'. Got '{}'. See http://en.wikipedia.org/wiki/ISO_8601",
            parts.amz_date
        )));
    };
    if at < now_unix - MAX_CLOCK_SKEW_SECONDS {
        return Err(AwsError::new(
            "InvalidSignatureException",
            400,
            format!(
                "Signature expired: {} is now earlier than {} ({} - 5 min.)",
                parts.amz_date,
                format_amz_date(now_unix - MAX_CLOCK_SKEW_SECONDS),
                format_amz_date(now_unix)
            ),
        ));
    }
    if at > now_unix + MAX_CLOCK_SKEW_SECONDS {
        return Err(AwsError::new(
            "InvalidSignatureException",
            400,
            format!(
                "Signature not yet current: {} is still later than {} ({} + 5 min.)",
                parts.amz_date,
                format_amz_date(now_unix + MAX_CLOCK_SKEW_SECONDS),
                format_amz_date(now_unix)
            ),
        ));
    }
    if !parts.amz_date.starts_with(&parts.date) {
        return Err(AwsError::new(
            "InvalidSignatureException",
            400,
            format!(
                "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '{}' != '{}', from '{}'.",
                parts.date,
                parts.amz_date.get(..8).unwrap_or(""),
                parts.amz_date
            ),
        ));
    }
    Ok(())
}

/// Verifies the signature given the secret of `parts.access_key_id`.
pub fn verify(
    req: &SignedRequest<'_>,
    parts: &SignatureParts,
    secret: &str,
) -> Result<VerifiedSignature, AwsError> {
    let expected = signature(req, parts, secret);
    if !constant_time_eq(expected.as_bytes(), parts.signature.as_bytes()) {
        return Err(AwsError::new(
            "InvalidSignatureException",
            400,
            "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.",
        ));
    }
    Ok(VerifiedSignature {
        access_key_id: parts.access_key_id.clone(),
        region: parts.region.clone(),
        service: parts.service.clone(),
        session_token: parts.session_token.clone(),
    })
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The hex signature of `req` under `parts`' scope and `secret` (also used by Berth's own
/// clients to sign).
pub fn signature(req: &SignedRequest<'_>, parts: &SignatureParts, secret: &str) -> String {
    let canonical = canonical_request(req, parts);
    let string_to_sign = format!(
        "AWS4-HMAC-SHA256\n{}\n{}/{}/{}/aws4_request\n{}",
        parts.amz_date,
        parts.date,
        parts.region,
        parts.service,
        hex::encode(Sha256::digest(canonical.as_bytes()))
    );
    let key = signing_key(secret, &parts.date, &parts.region, &parts.service);
    hex::encode(hmac(&key, string_to_sign.as_bytes()))
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    // HMAC accepts keys of any length, so new_from_slice cannot fail.
    match HmacSha256::new_from_slice(key) {
        Ok(mut m) => {
            m.update(data);
            m.finalize().into_bytes().to_vec()
        }
        Err(_) => Vec::new(),
    }
}

/// AWS's derived signing key for a day, region and service.
pub fn signing_key(secret: &str, date: &str, region: &str, service: &str) -> Vec<u8> {
    let k_date = hmac(format!("AWS4{secret}").as_bytes(), date.as_bytes());
    let k_region = hmac(&k_date, region.as_bytes());
    let k_service = hmac(&k_region, service.as_bytes());
    hmac(&k_service, b"aws4_request")
}

const UNRESERVED: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

fn uri_encode(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, UNRESERVED).to_string()
}

fn canonical_request(req: &SignedRequest<'_>, parts: &SignatureParts) -> String {
    // Every AWS service but S3 double-encodes: the path as sent is encoded once more.
    let path = if req.raw_path.is_empty() {
        "/"
    } else {
        req.raw_path
    };
    let canonical_uri: String = path
        .split('/')
        .map(uri_encode)
        .collect::<Vec<_>>()
        .join("/");
    let mut query: Vec<(String, String)> = query_pairs(req.raw_query)
        .into_iter()
        .filter(|(k, _)| !(parts.presigned && k == "X-Amz-Signature"))
        .map(|(k, v)| (uri_encode(&k), uri_encode(&v)))
        .collect();
    query.sort();
    let canonical_query = query
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&");
    let mut canonical_headers = String::new();
    for name in &parts.signed_headers {
        let values: Vec<String> = req
            .headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.split_whitespace().collect::<Vec<_>>().join(" "))
            .collect();
        canonical_headers.push_str(name);
        canonical_headers.push(':');
        canonical_headers.push_str(&values.join(","));
        canonical_headers.push('\n');
    }
    let payload_hash = match header(req, "x-amz-content-sha256") {
        Some(h) if h == "UNSIGNED-PAYLOAD" => h.to_string(),
        _ if parts.presigned => "UNSIGNED-PAYLOAD".to_string(),
        _ => hex::encode(Sha256::digest(req.body)),
    };
    format!(
        "{}\n{}\n{}\n{}\n{}\n{}",
        req.method,
        canonical_uri,
        canonical_query,
        canonical_headers,
        parts.signed_headers.join(";"),
        payload_hash
    )
}

/// Who signs, and for which region and service.
#[derive(Debug, Clone, Copy)]
pub struct SigningKey<'a> {
    pub access_key_id: &'a str,
    pub secret: &'a str,
    pub region: &'a str,
    pub service: &'a str,
}

/// Signs `req` the way an AWS SDK does: returns the headers to add (`x-amz-date`,
/// `authorization`; every header of `req` is signed). Used by Berth's own clients (`berth
/// reset`, the agent) and by tests.
pub fn sign_headers(
    req: &SignedRequest<'_>,
    key: &SigningKey<'_>,
    now_unix: i64,
) -> Vec<(String, String)> {
    let amz_date = format_amz_date(now_unix);
    let mut all: Vec<(String, String)> = req.headers.to_vec();
    all.push(("x-amz-date".into(), amz_date.clone()));
    let mut signed: Vec<String> = all.iter().map(|(k, _)| k.to_ascii_lowercase()).collect();
    signed.sort();
    signed.dedup();
    let parts = SignatureParts {
        access_key_id: key.access_key_id.into(),
        date: amz_date.get(..8).unwrap_or_default().to_string(),
        region: key.region.into(),
        service: key.service.into(),
        signed_headers: signed.clone(),
        signature: String::new(),
        amz_date: amz_date.clone(),
        session_token: None,
        presigned: false,
    };
    let full = SignedRequest {
        headers: &all,
        ..*req
    };
    let sig = signature(&full, &parts, key.secret);
    vec![
        ("x-amz-date".into(), amz_date),
        (
            "authorization".into(),
            format!(
                "AWS4-HMAC-SHA256 Credential={}/{}/{}/{}/aws4_request, SignedHeaders={}, Signature={sig}",
                key.access_key_id,
                parts.date,
                key.region,
                key.service,
                signed.join(";")
            ),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    // The "get-vanilla" case of AWS's SigV4 test suite (public test vectors).
    #[test]
    fn aws_test_suite_get_vanilla() {
        let headers = vec![
            ("Host".to_string(), "example.amazonaws.com".to_string()),
            ("X-Amz-Date".to_string(), "20150830T123600Z".to_string()),
        ];
        let req = SignedRequest {
            method: "GET",
            raw_path: "/",
            raw_query: "",
            headers: &headers,
            body: b"",
        };
        let parts = SignatureParts {
            access_key_id: "AKIDEXAMPLE".into(),
            date: "20150830".into(),
            region: "us-east-1".into(),
            service: "service".into(),
            signed_headers: vec!["host".into(), "x-amz-date".into()],
            signature: "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31".into(),
            amz_date: "20150830T123600Z".into(),
            session_token: None,
            presigned: false,
        };
        let secret = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
        assert_eq!(signature(&req, &parts, secret), parts.signature);
        assert!(verify(&req, &parts, secret).is_ok());
        let e = verify(&req, &parts, "wrong").unwrap_err();
        assert_eq!(e.code, "InvalidSignatureException");
    }

    #[test]
    fn signed_by_sign_headers_verifies() {
        let base = vec![
            ("host".to_string(), "127.0.0.1:4566".to_string()),
            (
                "x-amz-target".to_string(),
                "AmazonEC2ContainerServiceV20141113.ListClusters".to_string(),
            ),
        ];
        let body = b"{}";
        let now = 1_700_000_000;
        let mut headers = base.clone();
        let unsigned = SignedRequest {
            method: "POST",
            raw_path: "/",
            raw_query: "",
            headers: &base,
            body,
        };
        let key = SigningKey {
            access_key_id: "AKID",
            secret: "SECRET",
            region: "eu-west-1",
            service: "ecs",
        };
        headers.extend(sign_headers(&unsigned, &key, now));
        let req = SignedRequest {
            method: "POST",
            raw_path: "/",
            raw_query: "",
            headers: &headers,
            body,
        };
        let parts = parse(&req).unwrap();
        assert_eq!(parts.region, "eu-west-1");
        check_clock(&parts, now + 10).unwrap();
        verify(&req, &parts, "SECRET").unwrap();
        let e = check_clock(&parts, now + 3600).unwrap_err();
        assert!(e.message.starts_with("Signature expired"), "{}", e.message);
    }

    #[test]
    fn unsigned_request_is_missing_token() {
        let req = SignedRequest {
            method: "POST",
            raw_path: "/",
            raw_query: "",
            headers: &[],
            body: b"",
        };
        assert_eq!(
            parse(&req).unwrap_err().code,
            "MissingAuthenticationTokenException"
        );
    }
}
