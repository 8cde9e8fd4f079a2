//! Generates Rust wire types and an operation dispatcher from an AWS JSON service model
//! (botocore's `service-2.json`). Used by `build.rs`; kept in its own file so the generator
//! reads as ordinary code.
//!
//! What it emits for one service:
//! - `shapes`: a struct per structure/union shape, an enum per string shape with `enum`
//!   values, members with serde renames to the exact wire names. Required members are plain
//!   fields (missing ones fail decoding with AWS's validation message); the others are
//!   `Option`s that are skipped when absent.
//! - `ErrorCode`: every exception shape of the model with its HTTP status.
//! - `Api`: a trait with one method per operation. Every method has a default body that
//!   answers with an AWS-shaped error naming the operation, so an operation that is not
//!   served yet can never panic or 500.
//! - `dispatch`: decodes the request body for an operation name, calls the trait method and
//!   encodes the reply (AWS JSON protocols only; query protocols get their own emitter).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use serde_json::Value;

pub struct Model {
    shapes: BTreeMap<String, Value>,
    operations: BTreeMap<String, Value>,
    /// `json`, `query` or `ec2` (the model's `metadata.protocol`).
    protocol: String,
    xml_namespace: String,
    /// Operations of the model that are left out of the generated code (see
    /// [`Model::restrict`]); dispatch answers them as not served.
    unserved: BTreeSet<String>,
}

impl Model {
    pub fn parse(text: &str) -> Model {
        let v: Value =
            serde_json::from_str(text).unwrap_or_else(|e| panic!("model is not JSON: {e}"));
        let obj = |k: &str| -> BTreeMap<String, Value> {
            v.get(k)
                .and_then(Value::as_object)
                .map(|o| o.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
                .unwrap_or_default()
        };
        let meta = |k: &str| -> String {
            v.get("metadata")
                .and_then(|m| m.get(k))
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string()
        };
        Model {
            shapes: obj("shapes"),
            operations: obj("operations"),
            protocol: meta("protocol"),
            xml_namespace: meta("xmlNamespace"),
            unserved: BTreeSet::new(),
        }
    }

    /// Keeps only `operations` and the shapes they reach (members, list and map elements),
    /// for big models (EC2's has some 750 operations) of which Berth serves a handful. The
    /// other operations stay known by name: dispatch answers them as not served.
    pub fn restrict(&mut self, operations: &[&str]) {
        for op in operations {
            assert!(
                self.operations.contains_key(*op),
                "model has no operation {op}"
            );
        }
        let all: Vec<String> = self.operations.keys().cloned().collect();
        for op in all {
            if !operations.contains(&op.as_str()) {
                self.operations.remove(&op);
                self.unserved.insert(op);
            }
        }
        let mut keep = BTreeSet::new();
        let mut stack: Vec<String> = Vec::new();
        for o in self.operations.values() {
            for k in ["input", "output"] {
                if let Some(sh) = o
                    .get(k)
                    .and_then(|x| x.get("shape"))
                    .and_then(Value::as_str)
                {
                    stack.push(sh.to_string());
                }
            }
        }
        while let Some(name) = stack.pop() {
            if !keep.insert(name.clone()) {
                continue;
            }
            let s = self.shape(&name);
            for (_, m) in members(s) {
                stack.push(member_target(&m).to_string());
            }
            for k in ["member", "key", "value"] {
                if let Some(m) = s.get(k) {
                    stack.push(member_target(m).to_string());
                }
            }
        }
        self.shapes.retain(|name, _| keep.contains(name));
    }

    /// Whether the model speaks a query protocol (`query` or `ec2`): form requests, XML
    /// replies, and shapes whose serde names are the model's member names.
    pub fn is_query(&self) -> bool {
        self.protocol == "query" || self.protocol == "ec2"
    }

    /// The compact schema the query codec reads at run time (`berth_wire::query::Schema`):
    /// shape types, members with their wire names, list and map layouts, and operations.
    pub fn schema_json(&self) -> String {
        let pick = |v: &Value, keys: &[&str]| -> Value {
            let mut o = serde_json::Map::new();
            for k in keys {
                if let Some(x) = v.get(*k) {
                    o.insert((*k).to_string(), x.clone());
                }
            }
            Value::Object(o)
        };
        let member_keys = ["shape", "locationName", "queryName", "flattened"];
        let mut shapes = serde_json::Map::new();
        for (name, s) in &self.shapes {
            let mut o = pick(s, &["type", "flattened"]);
            if let Some(ms) = s.get("members").and_then(Value::as_object) {
                let members: serde_json::Map<String, Value> = ms
                    .iter()
                    .map(|(k, m)| (k.clone(), pick(m, &member_keys)))
                    .collect();
                o["members"] = Value::Object(members);
            }
            for k in ["member", "key", "value"] {
                if let Some(m) = s.get(k) {
                    o[k] = pick(m, &member_keys);
                }
            }
            shapes.insert(name.clone(), o);
        }
        let mut ops = serde_json::Map::new();
        for (name, o) in &self.operations {
            let mut x = serde_json::Map::new();
            if let Some(i) = o.get("input").and_then(|i| i.get("shape")) {
                x.insert("input".into(), i.clone());
            }
            if let Some(out) = o.get("output") {
                if let Some(sh) = out.get("shape") {
                    x.insert("output".into(), sh.clone());
                }
                if let Some(w) = out.get("resultWrapper") {
                    x.insert("resultWrapper".into(), w.clone());
                }
            }
            ops.insert(name.clone(), Value::Object(x));
        }
        serde_json::json!({
            "protocol": self.protocol,
            "namespace": self.xml_namespace,
            "shapes": shapes,
            "operations": ops,
        })
        .to_string()
    }

    fn shape(&self, name: &str) -> &Value {
        self.shapes
            .get(name)
            .unwrap_or_else(|| panic!("model names unknown shape {name}"))
    }

    fn kind(&self, name: &str) -> &str {
        self.shape(name)
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("structure")
    }

    fn is_enum(&self, name: &str) -> bool {
        self.kind(name) == "string" && self.shape(name).get("enum").is_some()
    }

    /// The Rust type a member targeting `shape` has.
    fn rust_type(&self, shape: &str) -> String {
        let s = self.shape(shape);
        match self.kind(shape) {
            "structure" => type_ident(shape),
            "string" if self.is_enum(shape) => type_ident(shape),
            "string" => "::std::string::String".into(),
            "integer" => "i32".into(),
            "long" => "i64".into(),
            "double" | "float" => "f64".into(),
            "boolean" => "bool".into(),
            "timestamp" => "crate::Timestamp".into(),
            "blob" => "crate::Blob".into(),
            "list" => format!(
                "::std::vec::Vec<{}>",
                self.rust_type(member_target(&s["member"]))
            ),
            "map" => format!(
                "::std::collections::BTreeMap<::std::string::String, {}>",
                self.rust_type(member_target(&s["value"]))
            ),
            other => panic!("shape {shape} has unsupported type {other}"),
        }
    }

    /// Whether the Rust type of `shape` implements `Default` (enums do not: no value of an
    /// AWS enum is a neutral default).
    fn has_default(&self, shape: &str, seen: &mut BTreeSet<String>) -> bool {
        match self.kind(shape) {
            "string" => !self.is_enum(shape),
            "structure" => {
                if !seen.insert(shape.to_string()) {
                    return true;
                }
                let s = self.shape(shape);
                required_members(s)
                    .iter()
                    .all(|m| self.has_default(member_target(&s["members"][m.as_str()]), seen))
            }
            _ => true,
        }
    }

    /// Whether the Rust type of `shape` implements `Eq` (floats do not, nor documents).
    fn has_eq(&self, shape: &str, seen: &mut BTreeSet<String>) -> bool {
        let s = self.shape(shape);
        match self.kind(shape) {
            "double" | "float" | "timestamp" => false,
            "structure" => {
                if s.get("document").is_some() {
                    return false;
                }
                if !seen.insert(shape.to_string()) {
                    return true;
                }
                members(s)
                    .iter()
                    .all(|(_, m)| self.has_eq(member_target(m), seen))
            }
            "list" => self.has_eq(member_target(&s["member"]), seen),
            "map" => self.has_eq(member_target(&s["value"]), seen),
            _ => true,
        }
    }

    /// Whether a member of struct `owner` targeting `target` must be boxed: the target is a
    /// structure that reaches `owner` again through structure members alone (lists and maps
    /// already hold their elements on the heap), so the type would have infinite size.
    fn needs_box(&self, owner: &str, target: &str) -> bool {
        let mut stack = vec![target.to_string()];
        let mut seen = BTreeSet::new();
        while let Some(shape) = stack.pop() {
            if self.kind(&shape) != "structure" || self.shape(&shape).get("document").is_some() {
                continue;
            }
            if shape == owner {
                return true;
            }
            if !seen.insert(shape.clone()) {
                continue;
            }
            for (_, m) in members(self.shape(&shape)) {
                stack.push(member_target(&m).to_string());
            }
        }
        false
    }

    pub fn generate(&self, module: &str, module_doc: &str) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "// @generated by crates/berth-wire/codegen.rs from {module_doc}. Do not edit."
        );
        out.push_str("pub mod shapes {\n#![allow(clippy::all, non_camel_case_types, missing_docs)]\nuse serde::{Deserialize, Serialize};\n");
        for name in self.shapes.keys() {
            let s = self.shape(name);
            match self.kind(name) {
                "structure" if s.get("document").is_some() => {
                    let _ = writeln!(out, "pub type {} = ::serde_json::Value;", type_ident(name));
                }
                "structure" => self.emit_struct(&mut out, name, s),
                "string" if self.is_enum(name) => emit_enum(&mut out, name, s),
                _ => {}
            }
        }
        out.push_str("}\n");
        self.emit_errors(&mut out);
        self.emit_api(&mut out, module);
        out
    }

    fn emit_struct(&self, out: &mut String, name: &str, s: &Value) {
        let required = required_members(s);
        let default = if self.has_default(name, &mut BTreeSet::new()) {
            ", Default"
        } else {
            ""
        };
        let eq = if self.has_eq(name, &mut BTreeSet::new()) {
            ", Eq"
        } else {
            ""
        };
        let _ = writeln!(
            out,
            "#[derive(Debug, Clone, PartialEq{eq}{default}, Serialize, Deserialize)]"
        );
        let _ = writeln!(out, "pub struct {} {{", type_ident(name));
        let mut used = BTreeSet::new();
        for (member, m) in members(s) {
            let mut field = field_ident(&member);
            while !used.insert(field.clone()) {
                field.push('_');
            }
            let target = member_target(&m);
            let ty = if self.needs_box(name, target) {
                format!("::std::boxed::Box<{}>", self.rust_type(target))
            } else {
                self.rust_type(target)
            };
            // JSON protocols name members on the wire by `locationName` where the model gives
            // one; the query codec maps query/XML names itself and works on member names.
            let wire = if self.is_query() {
                member.as_str()
            } else {
                m.get("locationName")
                    .and_then(Value::as_str)
                    .unwrap_or(&member)
            };
            if required.contains(&member) {
                let _ = writeln!(
                    out,
                    "    #[serde(rename = \"{wire}\")]\n    pub {field}: {ty},"
                );
            } else {
                let _ = writeln!(
                    out,
                    "    #[serde(rename = \"{wire}\", default, skip_serializing_if = \"::std::option::Option::is_none\")]\n    pub {field}: ::std::option::Option<{ty}>,"
                );
            }
        }
        out.push_str("}\n");
    }

    fn errors(&self) -> Vec<(String, u16)> {
        self.shapes
            .iter()
            .filter(|(_, s)| s.get("exception").and_then(Value::as_bool) == Some(true))
            .map(|(name, s)| {
                let status = s
                    .get("error")
                    .and_then(|e| e.get("httpStatusCode"))
                    .and_then(Value::as_u64)
                    .map(|c| c as u16)
                    .unwrap_or(if s.get("fault").and_then(Value::as_bool) == Some(true) {
                        500
                    } else {
                        400
                    });
                let code = s
                    .get("error")
                    .and_then(|e| e.get("code"))
                    .and_then(Value::as_str)
                    .unwrap_or(name)
                    .to_string();
                (code, status)
            })
            .collect()
    }

    fn emit_errors(&self, out: &mut String) {
        let errors = self.errors();
        out.push_str(
            "/// The error codes this service's model declares, with their HTTP statuses.\n",
        );
        out.push_str("#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]\npub enum ErrorCode {\n");
        for (code, _) in &errors {
            let _ = writeln!(out, "    {},", type_ident(code));
        }
        out.push_str(
            "}\nimpl ErrorCode {\n    pub fn code(self) -> &'static str {\n        match self {\n",
        );
        for (code, _) in &errors {
            let _ = writeln!(
                out,
                "            ErrorCode::{} => \"{code}\",",
                type_ident(code)
            );
        }
        out.push_str("        }\n    }\n    pub fn status(self) -> u16 {\n        match self {\n");
        for (code, status) in &errors {
            let _ = writeln!(
                out,
                "            ErrorCode::{} => {status},",
                type_ident(code)
            );
        }
        out.push_str("        }\n    }\n    /// This error with a message.\n    pub fn with(self, message: impl ::std::fmt::Display) -> crate::AwsError {\n        crate::AwsError::new(self.code(), self.status(), message.to_string())\n    }\n}\n");
    }

    fn emit_api(&self, out: &mut String, module: &str) {
        out.push_str("/// One method per operation of the model. The default bodies answer that the operation\n/// is not served yet, in AWS's error shape.\n");
        out.push_str(
            "#[allow(unused_variables, clippy::too_many_arguments)]\npub trait Api: Sync {\n",
        );
        for (op, o) in &self.operations {
            let input = o
                .get("input")
                .map(|i| format!("shapes::{}", type_ident(member_target(i))));
            let output = o
                .get("output")
                .map(|i| format!("shapes::{}", type_ident(member_target(i))))
                .unwrap_or_else(|| "()".into());
            let arg = input.map(|t| format!(", input: {t}")).unwrap_or_default();
            let _ = writeln!(
                out,
                "    fn {}(&self, ctx: &crate::RequestContext{arg}) -> ::std::result::Result<{output}, crate::AwsError> {{\n        ::std::result::Result::Err(crate::AwsError::not_implemented(\"{op}\"))\n    }}",
                field_ident(&snake(op)).trim_start_matches("r#")
            );
        }
        out.push_str("}\n");
        out.push_str(
            "/// The names of every operation of the model.\npub const OPERATIONS: &[&str] = &[",
        );
        for op in self.operations.keys() {
            let _ = write!(out, "\"{op}\", ");
        }
        out.push_str("];\n");
        out.push_str("/// Operations of the model Berth does not generate code for (answered as not served).\npub const UNSERVED_OPERATIONS: &[&str] = &[");
        for op in &self.unserved {
            let _ = write!(out, "\"{op}\", ");
        }
        out.push_str("];\n");
        if self.is_query() {
            self.emit_query_dispatch(out, module);
            return;
        }
        out.push_str("/// Decodes `body` as the input of `operation`, runs it on `api` and encodes the reply\n/// as AWS JSON. The including module defines `VALIDATION_ERROR`.\npub fn dispatch<A: Api + ?Sized>(api: &A, ctx: &crate::RequestContext, operation: &str, body: &[u8]) -> ::std::result::Result<::std::vec::Vec<u8>, crate::AwsError> {\n    match operation {\n");
        for (op, o) in &self.operations {
            let method = snake(op);
            let method = field_ident(&method);
            let method = method.trim_start_matches("r#");
            if o.get("input").is_some() {
                let _ = writeln!(
                    out,
                    "        \"{op}\" => crate::json::encode(&api.{method}(ctx, crate::json::decode_with(body, (VALIDATION_ERROR.code(), VALIDATION_ERROR.status()))?)?),"
                );
            } else {
                let _ = writeln!(
                    out,
                    "        \"{op}\" => crate::json::encode(&api.{method}(ctx)?),"
                );
            }
        }
        out.push_str("        other => ::std::result::Result::Err(crate::AwsError::unknown_operation(other)),\n    }\n}\n");
    }

    fn emit_query_dispatch(&self, out: &mut String, module: &str) {
        let _ = writeln!(
            out,
            "/// The schema the query codec reads for this service.\npub fn schema() -> &'static crate::query::Schema {{\n    static SCHEMA: ::std::sync::LazyLock<crate::query::Schema> = ::std::sync::LazyLock::new(|| crate::query::Schema::parse(include_str!(concat!(env!(\"OUT_DIR\"), \"/{module}_schema.json\"))));\n    &SCHEMA\n}}"
        );
        out.push_str("/// Decodes the form `params` as the input of `operation`, runs it on `api` and encodes\n/// the reply as the protocol's XML. The including module defines `VALIDATION`.\npub fn dispatch<A: Api + ?Sized>(api: &A, ctx: &crate::RequestContext, operation: &str, params: &crate::query::Params) -> ::std::result::Result<::std::vec::Vec<u8>, crate::AwsError> {\n    match operation {\n");
        for (op, o) in &self.operations {
            let method = snake(op);
            let method = field_ident(&method);
            let method = method.trim_start_matches("r#");
            let call = if o.get("input").is_some() {
                format!(
                    "api.{method}(ctx, crate::query::decode(schema(), \"{op}\", params, VALIDATION)?)?"
                )
            } else {
                format!("api.{method}(ctx)?")
            };
            let _ = writeln!(
                out,
                "        \"{op}\" => crate::query::encode(schema(), \"{op}\", &ctx.request_id, &{call}),"
            );
        }
        out.push_str("        other if UNSERVED_OPERATIONS.contains(&other) => ::std::result::Result::Err(crate::AwsError::not_implemented(other)),\n");
        out.push_str("        other => ::std::result::Result::Err(crate::AwsError::unknown_operation(other)),\n    }\n}\n");
    }
}

fn emit_enum(out: &mut String, name: &str, s: &Value) {
    let values: Vec<String> = s["enum"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    let mut used = BTreeSet::new();
    let variants: Vec<(String, String)> = values
        .iter()
        .map(|v| {
            let mut ident = variant_ident(v);
            while !used.insert(ident.clone()) {
                ident.push('_');
            }
            (ident, v.clone())
        })
        .collect();
    let ty = type_ident(name);
    let _ = writeln!(
        out,
        "#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]\npub enum {ty} {{"
    );
    for (ident, wire) in &variants {
        let _ = writeln!(out, "    #[serde(rename = \"{wire}\")]\n    {ident},");
    }
    let _ = writeln!(
        out,
        "}}\nimpl {ty} {{\n    /// Every value the model allows, as sent on the wire.\n    pub const VALUES: &'static [&'static str] = &[{}];",
        values
            .iter()
            .map(|v| format!("\"{v}\""))
            .collect::<Vec<_>>()
            .join(", ")
    );
    out.push_str("    pub fn as_str(self) -> &'static str {\n        match self {\n");
    for (ident, wire) in &variants {
        let _ = writeln!(out, "            {ty}::{ident} => \"{wire}\",");
    }
    out.push_str("        }\n    }\n    /// The value with this wire name.\n    pub fn from_wire(value: &str) -> ::std::option::Option<Self> {\n        match value {\n");
    for (ident, wire) in &variants {
        let _ = writeln!(
            out,
            "            \"{wire}\" => ::std::option::Option::Some({ty}::{ident}),"
        );
    }
    let _ = writeln!(
        out,
        "            _ => ::std::option::Option::None,\n        }}\n    }}\n}}\nimpl ::std::fmt::Display for {ty} {{\n    fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {{\n        f.write_str(self.as_str())\n    }}\n}}"
    );
}

fn members(s: &Value) -> Vec<(String, Value)> {
    s.get("members")
        .and_then(Value::as_object)
        .map(|o| o.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default()
}

fn required_members(s: &Value) -> BTreeSet<String> {
    s.get("required")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

fn member_target(m: &Value) -> &str {
    m.get("shape")
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("member without shape: {m}"))
}

/// A shape name as a Rust type name (shape names are already UpperCamel; a few clash with
/// nothing because generated code names std types by full path).
fn type_ident(name: &str) -> String {
    let mut s: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    if s.starts_with(|c: char| c.is_ascii_digit()) {
        s.insert(0, 'T');
    }
    if s == "Self" {
        s.push('_');
    }
    s
}

/// camelCase / PascalCase to snake_case, keeping acronyms together ("taskARN" → "task_arn").
pub fn snake(name: &str) -> String {
    let chars: Vec<char> = name.chars().collect();
    let mut out = String::new();
    for (i, &c) in chars.iter().enumerate() {
        if c.is_ascii_uppercase() {
            let prev = i.checked_sub(1).map(|j| chars[j]);
            let next = chars.get(i + 1).copied();
            let boundary = match prev {
                None => false,
                Some(p) if p.is_ascii_lowercase() || p.is_ascii_digit() => true,
                Some(p) if p.is_ascii_uppercase() => next.is_some_and(|n| n.is_ascii_lowercase()),
                _ => false,
            };
            if boundary && !out.ends_with('_') {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else if c.is_ascii_alphanumeric() {
            out.push(c);
        } else if !out.ends_with('_') {
            out.push('_');
        }
    }
    out
}

fn field_ident(member: &str) -> String {
    let s = snake(member);
    const KEYWORDS: &[&str] = &[
        "as", "break", "const", "continue", "crate", "else", "enum", "extern", "false", "fn",
        "for", "if", "impl", "in", "let", "loop", "match", "mod", "move", "mut", "pub", "ref",
        "return", "static", "struct", "super", "trait", "true", "type", "unsafe", "use", "where",
        "while", "async", "await", "dyn", "abstract", "become", "box", "do", "final", "macro",
        "override", "priv", "typeof", "unsized", "virtual", "yield", "try", "gen",
    ];
    if KEYWORDS.contains(&s.as_str()) {
        format!("r#{s}")
    } else {
        s
    }
}

fn variant_ident(value: &str) -> String {
    // ALL_CAPS values become UpperCamel word by word (FARGATE_SPOT → FargateSpot); values
    // already in camel case keep their inner capitals (UserInitiated, containerInsights →
    // ContainerInsights).
    let mixed = value.chars().any(|c| c.is_ascii_lowercase())
        && value.chars().any(|c| c.is_ascii_uppercase());
    let mut out = String::new();
    let mut upper = true;
    for c in value.chars() {
        if c.is_ascii_alphanumeric() {
            if upper {
                out.push(c.to_ascii_uppercase());
                upper = false;
            } else if mixed {
                out.push(c);
            } else {
                out.push(c.to_ascii_lowercase());
            }
        } else {
            upper = true;
        }
    }
    if out.is_empty() || out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, 'V');
    }
    out
}
