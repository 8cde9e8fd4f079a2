//! The query protocols (form requests, XML replies) through the gateway: STS's
//! GetCallerIdentity through the aws CLI, and the query services' own error shapes for bad
//! signatures, unknown and not-yet-served actions and bad members.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use berth_e2e::{BerthServer, REGION, RawRequest};

fn form(body: &str) -> RawRequest {
    RawRequest::new("POST", "/")
        .header(
            "Content-Type",
            "application/x-www-form-urlencoded; charset=utf-8",
        )
        .body(body.as_bytes().to_vec())
}

/// The text between `<tag>` and `</tag>`.
fn element<'a>(xml: &'a str, tag: &str) -> Option<&'a str> {
    let open = format!("<{tag}>");
    let start = xml.find(&open)? + open.len();
    let end = xml[start..].find(&format!("</{tag}>"))? + start;
    Some(&xml[start..end])
}

#[test]
fn get_caller_identity_through_the_cli_names_the_root_user() {
    let berth = BerthServer::start();
    let who = berth.aws_cli_json("eu-west-3", &["sts", "get-caller-identity"]);
    let account = berth.account_id();
    assert_eq!(who["Account"], account);
    assert_eq!(who["Arn"], format!("arn:aws:iam::{account}:root"));
    assert_eq!(who["UserId"], account);
}

#[test]
fn replies_are_xml_with_a_request_id() {
    let berth = BerthServer::start();
    let req = form("Action=GetCallerIdentity&Version=2011-06-15")
        .sign(&berth.host(), &berth.signing_params(REGION).service("sts"));
    let resp = berth.raw(&req);
    let xml = resp.text();
    assert_eq!(resp.status, 200, "{xml}");
    assert!(
        resp.header("content-type")
            .unwrap_or("")
            .starts_with("text/xml")
    );
    assert!(
        xml.starts_with(
            "<GetCallerIdentityResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><GetCallerIdentityResult>"
        ),
        "{xml}"
    );
    let rid = element(&xml, "RequestId").expect("a RequestId");
    assert_eq!(resp.header("x-amzn-requestid"), Some(rid));
}

#[test]
fn authentication_failures_in_the_query_dialect() {
    let berth = BerthServer::start();
    // Unsigned.
    let resp = berth.raw(&form("Action=GetCallerIdentity&Version=2011-06-15"));
    assert_eq!(resp.status, 403, "{}", resp.text());
    assert_eq!(
        element(&resp.text(), "Code"),
        Some("MissingAuthenticationToken")
    );
    assert_eq!(element(&resp.text(), "Type"), Some("Sender"));
    // A wrong secret, through the CLI.
    let out = berth
        .aws_cli_command(REGION, &["sts", "get-caller-identity"])
        .env(
            "AWS_SECRET_ACCESS_KEY",
            "wrong/wrong/wrong/wrong/wrong/wrong/wron",
        )
        .output()
        .expect("run aws");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("(SignatureDoesNotMatch)"), "{err}");
    // An unknown key.
    let out = berth
        .aws_cli_command(REGION, &["sts", "get-caller-identity"])
        .env("AWS_ACCESS_KEY_ID", "AKIAAAAAAAAAAAAAAAAA")
        .output()
        .expect("run aws");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("(InvalidClientTokenId)"), "{err}");
}

#[test]
fn unknown_and_unserved_actions_are_named() {
    let berth = BerthServer::start();
    let sts = berth.signing_params(REGION).service("sts");
    let resp = berth.raw(&form("Action=MakeCoffee&Version=2011-06-15").sign(&berth.host(), &sts));
    assert_eq!(resp.status, 400, "{}", resp.text());
    assert_eq!(element(&resp.text(), "Code"), Some("InvalidAction"));
    assert_eq!(
        element(&resp.text(), "Message"),
        Some("Could not find operation MakeCoffee for version 2011-06-15")
    );
    let resp = berth.raw(&form("Version=2011-06-15").sign(&berth.host(), &sts));
    assert_eq!(element(&resp.text(), "Code"), Some("MissingAction"));
    // A real IAM action that a later issue serves.
    let code = berth.aws_cli_error(
        "us-east-1",
        &["iam", "list-open-id-connect-providers"],
        "UnknownOperationException",
    );
    assert!(code.contains("ListOpenIDConnectProviders"), "{code}");
}

#[test]
fn a_missing_member_is_a_validation_error_naming_it() {
    let berth = BerthServer::start();
    let sts = berth.signing_params(REGION).service("sts");
    let resp = berth.raw(
        &form("Action=AssumeRole&Version=2011-06-15&RoleArn=arn:aws:iam::123456789012:role/x")
            .sign(&berth.host(), &sts),
    );
    assert_eq!(resp.status, 400, "{}", resp.text());
    assert_eq!(element(&resp.text(), "Code"), Some("ValidationError"));
    assert_eq!(
        element(&resp.text(), "Message"),
        Some(
            "1 validation error detected: Value null at 'roleSessionName' failed to satisfy constraint: Member must not be null"
        )
    );
}
