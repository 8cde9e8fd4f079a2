//! Generates the wire types of every served AWS service from the vendored models in
//! `models/` at the workspace root (see `codegen.rs`).

#[path = "codegen.rs"]
#[allow(clippy::unwrap_used, clippy::expect_used, dead_code)]
mod codegen;

use std::path::PathBuf;

/// (module name, model path under models/)
const SERVICES: &[(&str, &str)] = &[
    ("ecs", "ecs/2014-11-13/service-2.json"),
    ("logs", "logs/2014-03-28/service-2.json"),
    ("cloudtrail", "cloudtrail/2013-11-01/service-2.json"),
    ("sts", "sts/2011-06-15/service-2.json"),
    ("iam", "iam/2010-05-08/service-2.json"),
];

fn main() {
    let manifest =
        PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| ".".into()));
    let models = manifest.join("../../models");
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap_or_else(|_| ".".into()));
    println!("cargo:rerun-if-changed=codegen.rs");
    for (module, rel) in SERVICES {
        let path = models.join(rel);
        println!("cargo:rerun-if-changed={}", path.display());
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("cannot read model {}: {e}", path.display()));
        let model = codegen::Model::parse(&text);
        let code = model.generate(module, rel);
        if model.is_query() {
            std::fs::write(
                out.join(format!("{module}_schema.json")),
                model.schema_json(),
            )
            .unwrap_or_else(|e| panic!("cannot write schema of {module}: {e}"));
        }
        std::fs::write(out.join(format!("{module}.rs")), code)
            .unwrap_or_else(|e| panic!("cannot write generated {module}.rs: {e}"));
    }
}
