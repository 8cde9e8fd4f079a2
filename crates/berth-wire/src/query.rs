//! AWS's query protocols: `awsQuery` (IAM, STS, CloudWatch, …) and `ec2` (Amazon EC2).
//!
//! A request is a form (`Action=CreateUser&Version=2010-05-08&UserName=alice&Tags.member.1.Key=team…`)
//! and a reply is XML. The generated shapes are the same serde structs as for the JSON
//! protocols (members renamed to their model names), so this module translates between the
//! wire and those shapes' JSON form, guided by a [`Schema`] of the model: how each member is
//! named on the wire (`locationName`, `queryName`), how lists and maps are flattened, and
//! which values are numbers, booleans or timestamps.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::AwsError;

/// Which of the two query protocols a model speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// `awsQuery`: lists as `Name.member.N`, replies wrapped in `<OpResult>`.
    Query,
    /// `ec2`: lists as `Name.N`, member names from `queryName`, replies unwrapped with
    /// `<requestId>`.
    Ec2,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scalar {
    String,
    Integer,
    Float,
    Boolean,
    Timestamp,
    Blob,
}

#[derive(Debug, Clone)]
struct Member {
    name: String,
    shape: String,
    location_name: Option<String>,
    query_name: Option<String>,
    flattened: bool,
}

#[derive(Debug, Clone)]
enum Shape {
    Structure(Vec<Member>),
    List {
        member: Member,
        flattened: bool,
    },
    Map {
        key: Member,
        value: Member,
        flattened: bool,
    },
    Scalar(Scalar),
}

#[derive(Debug, Clone)]
struct Operation {
    input: Option<String>,
    output: Option<String>,
    result_wrapper: Option<String>,
}

/// What the query codec needs to know of a model (generated at build time from it).
#[derive(Debug)]
pub struct Schema {
    pub protocol: Protocol,
    /// The XML namespace of replies.
    pub namespace: String,
    shapes: HashMap<String, Shape>,
    operations: HashMap<String, Operation>,
}

fn str_of(v: &Value, k: &str) -> Option<String> {
    v.get(k).and_then(Value::as_str).map(str::to_string)
}

fn member_of(name: &str, v: &Value) -> Member {
    Member {
        name: name.to_string(),
        shape: str_of(v, "shape").unwrap_or_default(),
        location_name: str_of(v, "locationName"),
        query_name: str_of(v, "queryName"),
        flattened: v.get("flattened").and_then(Value::as_bool) == Some(true),
    }
}

impl Schema {
    /// Reads the compact schema that `build.rs` writes beside the generated code.
    ///
    /// The text is generated from a model at build time; a schema that fails to parse is a
    /// build defect, and yields an empty schema whose every operation answers "unknown".
    pub fn parse(text: &str) -> Schema {
        let v: Value = serde_json::from_str(text).unwrap_or(Value::Null);
        let protocol = match v.get("protocol").and_then(Value::as_str) {
            Some("ec2") => Protocol::Ec2,
            _ => Protocol::Query,
        };
        let mut namespace = str_of(&v, "namespace").unwrap_or_default();
        if protocol == Protocol::Ec2 && !namespace.ends_with('/') {
            namespace.push('/');
        }
        let mut shapes = HashMap::new();
        for (name, s) in v
            .get("shapes")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
        {
            let flattened = s.get("flattened").and_then(Value::as_bool) == Some(true);
            let shape = match s.get("type").and_then(Value::as_str).unwrap_or("structure") {
                "structure" => Shape::Structure(
                    s.get("members")
                        .and_then(Value::as_object)
                        .into_iter()
                        .flatten()
                        .map(|(m, mv)| member_of(m, mv))
                        .collect(),
                ),
                "list" => Shape::List {
                    member: member_of("member", &s["member"]),
                    flattened,
                },
                "map" => Shape::Map {
                    key: member_of("key", &s["key"]),
                    value: member_of("value", &s["value"]),
                    flattened,
                },
                "integer" | "long" => Shape::Scalar(Scalar::Integer),
                "float" | "double" => Shape::Scalar(Scalar::Float),
                "boolean" => Shape::Scalar(Scalar::Boolean),
                "timestamp" => Shape::Scalar(Scalar::Timestamp),
                "blob" => Shape::Scalar(Scalar::Blob),
                _ => Shape::Scalar(Scalar::String),
            };
            shapes.insert(name.clone(), shape);
        }
        let mut operations = HashMap::new();
        for (name, o) in v
            .get("operations")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
        {
            operations.insert(
                name.clone(),
                Operation {
                    input: str_of(o, "input"),
                    output: str_of(o, "output"),
                    result_wrapper: str_of(o, "resultWrapper"),
                },
            );
        }
        Schema {
            protocol,
            namespace,
            shapes,
            operations,
        }
    }

    fn shape(&self, name: &str) -> Option<&Shape> {
        self.shapes.get(name)
    }

    /// The name a member has in a request form.
    fn form_name<'m>(&self, m: &'m Member) -> std::borrow::Cow<'m, str> {
        match self.protocol {
            Protocol::Query => m.location_name.as_deref().unwrap_or(&m.name).into(),
            Protocol::Ec2 => {
                if let Some(q) = &m.query_name {
                    return q.as_str().into();
                }
                let base = m.location_name.as_deref().unwrap_or(&m.name);
                let mut c = base.chars();
                match c.next() {
                    Some(f) => format!("{}{}", f.to_ascii_uppercase(), c.as_str()).into(),
                    None => base.into(),
                }
            }
        }
    }
}

/// A request's form fields (body and URL query together).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Params(BTreeMap<String, String>);

fn form_decode(s: &str) -> String {
    let spaced = s.replace('+', " ");
    percent_encoding::percent_decode_str(&spaced)
        .decode_utf8_lossy()
        .into_owned()
}

impl Params {
    /// Parses `application/x-www-form-urlencoded` text, adding to what is there.
    pub fn add_form(&mut self, form: &str) {
        for pair in form.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            self.0.insert(form_decode(k), form_decode(v));
        }
    }

    pub fn from_form(form: &str) -> Params {
        let mut p = Params::default();
        p.add_form(form);
        p
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// The distinct indexes N of keys `prefix` + `N` + (end or `.`), in numeric order.
    fn indexes(&self, prefix: &str) -> Vec<u64> {
        let mut out: Vec<u64> = self
            .0
            .range(prefix.to_string()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .filter_map(|(k, _)| {
                let rest = &k[prefix.len()..];
                rest.split('.').next().and_then(|n| n.parse().ok())
            })
            .collect();
        out.sort_unstable();
        out.dedup();
        out
    }

    /// Whether any key is `key` or starts with `key.`.
    fn has_under(&self, key: &str) -> bool {
        self.0.contains_key(key)
            || self
                .0
                .range(format!("{key}.")..)
                .next()
                .is_some_and(|(k, _)| k.starts_with(&format!("{key}.")))
    }
}

/// `member` path as AWS's validation messages spell it (first letter lower-cased).
fn message_path(path: &str) -> String {
    path.split('.')
        .map(|seg| {
            let mut c = seg.chars();
            match c.next() {
                Some(f) => format!("{}{}", f.to_ascii_lowercase(), c.as_str()),
                None => String::new(),
            }
        })
        .collect::<Vec<_>>()
        .join(".")
}

struct Decoder<'a> {
    schema: &'a Schema,
    params: &'a Params,
    validation: (&'static str, u16),
}

impl Decoder<'_> {
    fn invalid(&self, key: &str, value: &str, what: &str) -> AwsError {
        AwsError::new(
            self.validation.0,
            self.validation.1,
            format!(
                "1 validation error detected: Value '{value}' at '{}' failed to satisfy constraint: Member must be {what}",
                message_path(key)
            ),
        )
    }

    fn value(&self, shape: &str, key: &str) -> Result<Option<Value>, AwsError> {
        let Some(s) = self.schema.shape(shape) else {
            return Ok(None);
        };
        match s {
            Shape::Structure(members) => {
                let mut obj = serde_json::Map::new();
                for m in members {
                    let name = self.schema.form_name(m);
                    let full = if key.is_empty() {
                        name.into_owned()
                    } else {
                        format!("{key}.{name}")
                    };
                    if let Some(v) = self.value(&m.shape, &full)? {
                        obj.insert(m.name.clone(), v);
                    }
                }
                Ok((!obj.is_empty() || key.is_empty()).then_some(Value::Object(obj)))
            }
            Shape::List { member, flattened } => {
                if self.params.get(key) == Some("") && !self.params.has_under(&format!("{key}.1")) {
                    return Ok(Some(Value::Array(Vec::new())));
                }
                let item = if self.schema.protocol == Protocol::Ec2 || *flattened {
                    format!("{key}.")
                } else {
                    format!(
                        "{key}.{}.",
                        member.location_name.as_deref().unwrap_or("member")
                    )
                };
                let idx = self.params.indexes(&item);
                if idx.is_empty() {
                    return Ok(None);
                }
                let mut out = Vec::with_capacity(idx.len());
                for i in idx {
                    if let Some(v) = self.value(&member.shape, &format!("{item}{i}"))? {
                        out.push(v);
                    }
                }
                Ok(Some(Value::Array(out)))
            }
            Shape::Map {
                key: k,
                value: v,
                flattened,
            } => {
                let entry = if *flattened {
                    format!("{key}.")
                } else {
                    format!("{key}.entry.")
                };
                let idx = self.params.indexes(&entry);
                if idx.is_empty() {
                    return Ok(None);
                }
                let kn = k.location_name.as_deref().unwrap_or("key");
                let vn = v.location_name.as_deref().unwrap_or("value");
                let mut out = serde_json::Map::new();
                for i in idx {
                    let kk = format!("{entry}{i}.{kn}");
                    let Some(name) = self.params.get(&kk) else {
                        continue;
                    };
                    if let Some(val) = self.value(&v.shape, &format!("{entry}{i}.{vn}"))? {
                        out.insert(name.to_string(), val);
                    }
                }
                Ok(Some(Value::Object(out)))
            }
            Shape::Scalar(kind) => {
                let Some(raw) = self.params.get(key) else {
                    return Ok(None);
                };
                Ok(Some(match kind {
                    Scalar::String | Scalar::Blob => Value::String(raw.to_string()),
                    Scalar::Integer => match raw.trim().parse::<i64>() {
                        Ok(n) => Value::from(n),
                        Err(_) => return Err(self.invalid(key, raw, "an integer")),
                    },
                    Scalar::Float => match raw.trim().parse::<f64>() {
                        Ok(f) => serde_json::Number::from_f64(f)
                            .map(Value::Number)
                            .ok_or_else(|| self.invalid(key, raw, "a number"))?,
                        Err(_) => return Err(self.invalid(key, raw, "a number")),
                    },
                    Scalar::Boolean => match raw.to_ascii_lowercase().as_str() {
                        "true" => Value::Bool(true),
                        "false" => Value::Bool(false),
                        _ => return Err(self.invalid(key, raw, "a boolean")),
                    },
                    Scalar::Timestamp => match raw.trim().parse::<f64>() {
                        Ok(f) => serde_json::Number::from_f64(f)
                            .map(Value::Number)
                            .ok_or_else(|| self.invalid(key, raw, "a timestamp"))?,
                        Err(_) => Value::String(raw.to_string()),
                    },
                }))
            }
        }
    }
}

/// Decodes the input of `operation` from a request's form fields.
pub fn decode<T: DeserializeOwned>(
    schema: &Schema,
    operation: &str,
    params: &Params,
    validation: (&'static str, u16),
) -> Result<T, AwsError> {
    let input = schema
        .operations
        .get(operation)
        .and_then(|o| o.input.as_deref());
    let value = match input {
        Some(shape) => Decoder {
            schema,
            params,
            validation,
        }
        .value(shape, "")?
        .unwrap_or_else(|| Value::Object(Default::default())),
        None => Value::Object(Default::default()),
    };
    crate::json::decode_value(value, validation).map_err(|mut e| {
        // Query services name members as their forms do; so do their messages.
        if let Some(rest) = e
            .message
            .strip_prefix("1 validation error detected: Value null at '")
            && let Some((path, tail)) = rest.split_once('\'')
        {
            e.message = format!(
                "1 validation error detected: Value null at '{}'{tail}",
                message_path(path)
            );
        }
        e
    })
}

/// Escapes element text (quotes need no escape outside attributes, and AWS sends them plain).
fn escape(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '\r' => out.push_str("&#xD;"),
            c => out.push(c),
        }
    }
}

/// A timestamp value (epoch seconds in the JSON form of shapes) as ISO 8601.
fn iso8601(v: &Value, millis: bool) -> Option<String> {
    let ms = match v {
        Value::Number(n) => (n.as_f64()? * 1000.0).round() as i64,
        Value::String(s) => return Some(s.clone()),
        _ => return None,
    };
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).ok()?;
    let base = format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    );
    Some(if millis {
        format!("{base}.{:03}Z", t.millisecond())
    } else {
        format!("{base}Z")
    })
}

struct Encoder<'a> {
    schema: &'a Schema,
}

impl Encoder<'_> {
    fn element(&self, out: &mut String, name: &str, shape: &str, v: &Value) {
        if v.is_null() {
            return;
        }
        match self.schema.shape(shape) {
            Some(Shape::List {
                member, flattened, ..
            }) if *flattened => {
                let item = member.location_name.as_deref().unwrap_or(name);
                for x in v.as_array().into_iter().flatten() {
                    self.element(out, item, &member.shape, x);
                }
            }
            _ => {
                let _ = write!(out, "<{name}>");
                self.body(out, shape, v);
                let _ = write!(out, "</{name}>");
            }
        }
    }

    fn members(&self, out: &mut String, members: &[Member], v: &Value) {
        for m in members {
            let Some(x) = v.get(&m.name) else {
                continue;
            };
            let name = m.location_name.as_deref().unwrap_or(&m.name);
            if m.flattened
                && let Some(Shape::List { member, .. }) = self.schema.shape(&m.shape)
            {
                for item in x.as_array().into_iter().flatten() {
                    self.element(out, name, &member.shape, item);
                }
                continue;
            }
            self.element(out, name, &m.shape, x);
        }
    }

    fn body(&self, out: &mut String, shape: &str, v: &Value) {
        match self.schema.shape(shape) {
            Some(Shape::Structure(members)) => self.members(out, members, v),
            Some(Shape::List { member, .. }) => {
                let default = match self.schema.protocol {
                    Protocol::Query => "member",
                    Protocol::Ec2 => "item",
                };
                let item = member.location_name.as_deref().unwrap_or(default);
                for x in v.as_array().into_iter().flatten() {
                    self.element(out, item, &member.shape, x);
                }
            }
            Some(Shape::Map { key, value, .. }) => {
                let kn = key.location_name.as_deref().unwrap_or("key");
                let vn = value.location_name.as_deref().unwrap_or("value");
                for (k, x) in v.as_object().into_iter().flatten() {
                    out.push_str("<entry>");
                    let _ = write!(out, "<{kn}>");
                    escape(out, k);
                    let _ = write!(out, "</{kn}>");
                    self.element(out, vn, &value.shape, x);
                    out.push_str("</entry>");
                }
            }
            Some(Shape::Scalar(Scalar::Timestamp)) => {
                if let Some(t) = iso8601(v, self.schema.protocol == Protocol::Ec2) {
                    escape(out, &t);
                }
            }
            _ => match v {
                Value::String(s) => escape(out, s),
                Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
                Value::Number(n) => {
                    let _ = write!(out, "{n}");
                }
                other => escape(out, &other.to_string()),
            },
        }
    }
}

/// Encodes the reply of `operation` as the protocol's XML document.
pub fn encode<T: Serialize>(
    schema: &Schema,
    operation: &str,
    request_id: &str,
    output: &T,
) -> Result<Vec<u8>, AwsError> {
    let value = serde_json::to_value(output)
        .map_err(|e| AwsError::internal(format!("cannot encode the reply: {e}")))?;
    let op = schema.operations.get(operation);
    let shape = op.and_then(|o| o.output.as_deref());
    let enc = Encoder { schema };
    let mut out = String::new();
    let ns = &schema.namespace;
    match schema.protocol {
        Protocol::Query => {
            let _ = write!(out, "<{operation}Response xmlns=\"{ns}\">");
            if let Some(shape) = shape {
                let wrapper = op
                    .and_then(|o| o.result_wrapper.clone())
                    .unwrap_or_else(|| format!("{operation}Result"));
                let _ = write!(out, "<{wrapper}>");
                enc.body(&mut out, shape, &value);
                let _ = write!(out, "</{wrapper}>");
            }
            out.push_str("<ResponseMetadata><RequestId>");
            escape(&mut out, request_id);
            let _ = write!(out, "</RequestId></ResponseMetadata></{operation}Response>");
        }
        Protocol::Ec2 => {
            out.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
            let _ = write!(out, "<{operation}Response xmlns=\"{ns}\"><requestId>");
            escape(&mut out, request_id);
            out.push_str("</requestId>");
            if let Some(shape) = shape {
                enc.body(&mut out, shape, &value);
            }
            let _ = write!(out, "</{operation}Response>");
        }
    }
    Ok(out.into_bytes())
}

/// An error as a query service sends it.
pub fn encode_error(
    protocol: Protocol,
    namespace: &str,
    err: &AwsError,
    request_id: &str,
) -> Vec<u8> {
    let mut out = String::new();
    match protocol {
        Protocol::Query => {
            let kind = if err.status >= 500 {
                "Receiver"
            } else {
                "Sender"
            };
            let _ = write!(
                out,
                "<ErrorResponse xmlns=\"{namespace}\"><Error><Type>{kind}</Type><Code>"
            );
            escape(&mut out, &err.code);
            out.push_str("</Code><Message>");
            escape(&mut out, &err.message);
            out.push_str("</Message></Error><RequestId>");
            escape(&mut out, request_id);
            out.push_str("</RequestId></ErrorResponse>");
        }
        Protocol::Ec2 => {
            out.push_str(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response><Errors><Error><Code>",
            );
            escape(&mut out, &err.code);
            out.push_str("</Code><Message>");
            escape(&mut out, &err.message);
            out.push_str("</Message></Error></Errors><RequestID>");
            escape(&mut out, request_id);
            out.push_str("</RequestID></Response>");
        }
    }
    out.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCHEMA: &str = r#"{"protocol":"query","namespace":"https://iam.amazonaws.com/doc/2010-05-08/",
      "operations":{"CreateUser":{"input":"CreateUserRequest","output":"CreateUserResponse","resultWrapper":"CreateUserResult"},
                    "DeleteUser":{"input":"DeleteUserRequest"}},
      "shapes":{
        "CreateUserRequest":{"type":"structure","members":{"UserName":{"shape":"name"},"Path":{"shape":"name"},"Tags":{"shape":"tagList"},"Max":{"shape":"int"},"On":{"shape":"bool"}}},
        "DeleteUserRequest":{"type":"structure","members":{"UserName":{"shape":"name"}}},
        "CreateUserResponse":{"type":"structure","members":{"User":{"shape":"User"}}},
        "User":{"type":"structure","members":{"UserName":{"shape":"name"},"CreateDate":{"shape":"ts"},"Tags":{"shape":"tagList"}}},
        "tagList":{"type":"list","member":{"shape":"Tag"}},
        "Tag":{"type":"structure","members":{"Key":{"shape":"name"},"Value":{"shape":"name"}}},
        "name":{"type":"string"},"int":{"type":"integer"},"bool":{"type":"boolean"},"ts":{"type":"timestamp"}}}"#;

    #[derive(Debug, serde::Deserialize, serde::Serialize, PartialEq)]
    #[serde(rename_all = "PascalCase")]
    struct Tag {
        key: String,
        value: String,
    }

    #[derive(Debug, serde::Deserialize, PartialEq)]
    #[serde(rename_all = "PascalCase")]
    struct CreateUser {
        user_name: String,
        path: Option<String>,
        tags: Option<Vec<Tag>>,
        max: Option<i32>,
        on: Option<bool>,
    }

    const V: (&str, u16) = ("ValidationError", 400);

    #[test]
    fn decodes_members_lists_and_scalars() {
        let s = Schema::parse(SCHEMA);
        let p = Params::from_form(
            "Action=CreateUser&Version=2010-05-08&UserName=alice+b%2Fc&Tags.member.2.Key=b&Tags.member.2.Value=2&Tags.member.1.Key=a&Tags.member.1.Value=1&Tags.member.10.Key=j&Tags.member.10.Value=10&Max=5&On=true",
        );
        let u: CreateUser = decode(&s, "CreateUser", &p, V).unwrap();
        assert_eq!(u.user_name, "alice b/c");
        assert_eq!(u.path, None);
        let keys: Vec<_> = u.tags.unwrap().into_iter().map(|t| t.key).collect();
        assert_eq!(keys, ["a", "b", "j"], "indexes sort numerically");
        assert_eq!(u.max, Some(5));
        assert_eq!(u.on, Some(true));
        let empty: CreateUser =
            decode(&s, "CreateUser", &Params::from_form("UserName=x&Tags="), V).unwrap();
        assert_eq!(empty.tags, Some(vec![]));
    }

    #[test]
    fn refusals_name_the_member() {
        let s = Schema::parse(SCHEMA);
        let e =
            decode::<CreateUser>(&s, "CreateUser", &Params::from_form("Path=/"), V).unwrap_err();
        assert_eq!(e.code, "ValidationError");
        assert_eq!(
            e.message,
            "1 validation error detected: Value null at 'userName' failed to satisfy constraint: Member must not be null"
        );
        let e = decode::<CreateUser>(&s, "CreateUser", &Params::from_form("UserName=a&Max=x"), V)
            .unwrap_err();
        assert!(e.message.contains("'max'"), "{}", e.message);
    }

    #[test]
    fn encodes_wrapped_xml() {
        let s = Schema::parse(SCHEMA);
        let out = serde_json::json!({"User": {"UserName": "a<b", "CreateDate": 1700000000,
            "Tags": [{"Key": "k", "Value": "v"}]}});
        let xml = String::from_utf8(encode(&s, "CreateUser", "rid-1", &out).unwrap()).unwrap();
        assert_eq!(
            xml,
            "<CreateUserResponse xmlns=\"https://iam.amazonaws.com/doc/2010-05-08/\"><CreateUserResult><User><CreateDate>2023-11-14T22:13:20Z</CreateDate><Tags><member><Key>k</Key><Value>v</Value></member></Tags><UserName>a&lt;b</UserName></User></CreateUserResult><ResponseMetadata><RequestId>rid-1</RequestId></ResponseMetadata></CreateUserResponse>"
        );
        let xml = String::from_utf8(encode(&s, "DeleteUser", "rid-2", &()).unwrap()).unwrap();
        assert_eq!(
            xml,
            "<DeleteUserResponse xmlns=\"https://iam.amazonaws.com/doc/2010-05-08/\"><ResponseMetadata><RequestId>rid-2</RequestId></ResponseMetadata></DeleteUserResponse>"
        );
    }

    #[test]
    fn ec2_names_and_lists() {
        let s = Schema::parse(
            r#"{"protocol":"ec2","namespace":"http://ec2.amazonaws.com/doc/2016-11-15",
            "operations":{"DescribeVpcs":{"input":"In","output":"Out"}},
            "shapes":{"In":{"type":"structure","members":{"VpcIds":{"shape":"ids","locationName":"VpcId"},"DryRun":{"shape":"b","locationName":"dryRun"}}},
              "ids":{"type":"list","member":{"shape":"s","locationName":"VpcId"}},
              "Out":{"type":"structure","members":{"Vpcs":{"shape":"vpcs","locationName":"vpcSet"}}},
              "vpcs":{"type":"list","member":{"shape":"Vpc","locationName":"item"}},
              "Vpc":{"type":"structure","members":{"VpcId":{"shape":"s","locationName":"vpcId"}}},
              "s":{"type":"string"},"b":{"type":"boolean"}}}"#,
        );
        let v: serde_json::Value = decode(
            &s,
            "DescribeVpcs",
            &Params::from_form("Action=DescribeVpcs&VpcId.1=vpc-a&VpcId.2=vpc-b&DryRun=false"),
            V,
        )
        .unwrap();
        assert_eq!(
            v,
            serde_json::json!({"VpcIds": ["vpc-a", "vpc-b"], "DryRun": false})
        );
        let xml = String::from_utf8(
            encode(
                &s,
                "DescribeVpcs",
                "r",
                &serde_json::json!({"Vpcs": [{"VpcId": "vpc-a"}]}),
            )
            .unwrap(),
        )
        .unwrap();
        assert!(xml.ends_with("<DescribeVpcsResponse xmlns=\"http://ec2.amazonaws.com/doc/2016-11-15/\"><requestId>r</requestId><vpcSet><item><vpcId>vpc-a</vpcId></item></vpcSet></DescribeVpcsResponse>"), "{xml}");
    }

    #[test]
    fn errors_in_both_dialects() {
        let e = AwsError::new("NoSuchEntity", 404, "The user with name x cannot be found.");
        let q = String::from_utf8(encode_error(Protocol::Query, "ns", &e, "r")).unwrap();
        assert_eq!(
            q,
            "<ErrorResponse xmlns=\"ns\"><Error><Type>Sender</Type><Code>NoSuchEntity</Code><Message>The user with name x cannot be found.</Message></Error><RequestId>r</RequestId></ErrorResponse>"
        );
        let x = String::from_utf8(encode_error(Protocol::Ec2, "", &e, "r")).unwrap();
        assert!(x.contains("<Response><Errors><Error><Code>NoSuchEntity</Code>"));
    }
}
