//! Generates the wire types of every served AWS service from the vendored models in
//! `models/` at the workspace root (see `codegen.rs`).

#[path = "codegen.rs"]
#[allow(clippy::unwrap_used, clippy::expect_used, dead_code)]
mod codegen;

use std::path::PathBuf;

/// (module name, model path under models/, the operations to generate or `None` for all)
const SERVICES: &[(&str, &str, Option<&[&str]>)] = &[
    ("ecs", "ecs/2014-11-13/service-2.json", None),
    ("logs", "logs/2014-03-28/service-2.json", None),
    ("cloudtrail", "cloudtrail/2013-11-01/service-2.json", None),
    ("sts", "sts/2011-06-15/service-2.json", None),
    ("iam", "iam/2010-05-08/service-2.json", None),
    ("ec2", "ec2/2016-11-15/service-2.json", Some(EC2_OPERATIONS)),
];

/// The EC2 operations Berth serves (VPCs, subnets, security groups, network interfaces and
/// what Terraform's aws_vpc, aws_subnet and aws_security_group read). EC2's model has some
/// 750 operations; generating only these keeps the build small.
const EC2_OPERATIONS: &[&str] = &[
    "AuthorizeSecurityGroupEgress",
    "AuthorizeSecurityGroupIngress",
    "CreateSecurityGroup",
    "CreateSubnet",
    "CreateTags",
    "CreateVpc",
    "DeleteSecurityGroup",
    "DeleteSubnet",
    "DeleteTags",
    "DeleteVpc",
    "DescribeAccountAttributes",
    "DescribeAvailabilityZones",
    "DescribeNetworkAcls",
    "DescribeNetworkInterfaces",
    "DescribeRouteTables",
    "DescribeSecurityGroupRules",
    "DescribeSecurityGroups",
    "DescribeSubnets",
    "DescribeTags",
    "DescribeVpcAttribute",
    "DescribeVpcs",
    "ModifySecurityGroupRules",
    "ModifySubnetAttribute",
    "ModifyVpcAttribute",
    "RevokeSecurityGroupEgress",
    "RevokeSecurityGroupIngress",
];

fn main() {
    let manifest =
        PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| ".".into()));
    let models = manifest.join("../../models");
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap_or_else(|_| ".".into()));
    println!("cargo:rerun-if-changed=codegen.rs");
    for (module, rel, operations) in SERVICES {
        let path = models.join(rel);
        println!("cargo:rerun-if-changed={}", path.display());
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("cannot read model {}: {e}", path.display()));
        let mut model = codegen::Model::parse(&text);
        if let Some(ops) = operations {
            model.restrict(ops);
        }
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
