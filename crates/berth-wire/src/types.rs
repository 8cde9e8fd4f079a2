//! Scalar wire types shared by every generated service, and the request context.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A point in time, in milliseconds since the Unix epoch. On the JSON wire AWS sends it as
/// fractional epoch seconds (`1700000000.123`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(pub i64);

impl Timestamp {
    pub fn from_millis(ms: i64) -> Timestamp {
        Timestamp(ms)
    }
    pub fn millis(self) -> i64 {
        self.0
    }
    pub fn seconds(self) -> i64 {
        self.0.div_euclid(1000)
    }
    /// The current time from the system clock; only the edges (the gateway) call this.
    pub fn now() -> Timestamp {
        let d = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        Timestamp(i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.0 % 1000 == 0 {
            s.serialize_i64(self.0 / 1000)
        } else {
            s.serialize_f64(self.0 as f64 / 1000.0)
        }
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Timestamp, D::Error> {
        let v = serde_json::Value::deserialize(d)?;
        match &v {
            serde_json::Value::Number(n) => n
                .as_f64()
                .map(|f| Timestamp((f * 1000.0).round() as i64))
                .ok_or_else(|| serde::de::Error::custom("timestamp out of range")),
            serde_json::Value::String(s) => {
                time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
                    .map(|t| Timestamp((t.unix_timestamp_nanos() / 1_000_000) as i64))
                    .map_err(|_| serde::de::Error::custom(format!("invalid timestamp '{s}'")))
            }
            _ => Err(serde::de::Error::custom("expected a timestamp")),
        }
    }
}

/// Binary data; base64 on the JSON wire.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Blob(pub Vec<u8>);

impl Serialize for Blob {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use base64::Engine as _;
        s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(&self.0))
    }
}

impl<'de> Deserialize<'de> for Blob {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Blob, D::Error> {
        use base64::Engine as _;
        let s = String::deserialize(d)?;
        base64::engine::general_purpose::STANDARD
            .decode(s.as_bytes())
            .map(Blob)
            .map_err(|_| serde::de::Error::custom("invalid base64 blob"))
    }
}

/// Who made a request, where, and when: everything service logic may know of the request
/// besides its typed input. The clock is an input here, so handlers stay deterministic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestContext {
    /// The 12-digit account the request acts in.
    pub account_id: String,
    /// The region from the request's SigV4 credential scope.
    pub region: String,
    /// The caller's ARN (`arn:aws:iam::123456789012:root` for the root key).
    pub principal_arn: String,
    /// The access key id the request was signed with.
    pub access_key_id: String,
    /// The id sent back as `x-amzn-RequestId`.
    pub request_id: String,
    /// The caller's address.
    pub source_ip: String,
    /// The caller's `User-Agent`.
    pub user_agent: String,
    /// When the request arrived.
    pub now: Timestamp,
}
