//! The gateway's protocol errors, as AWS shapes them: malformed JSON, wrong member types,
//! unknown and not-yet-served operations, bad enum values, missing required members,
//! oversized bodies, a signature scoped to another service.

use berth_e2e::{BerthServer, REGION, RawRequest};

fn assert_error(resp: &berth_e2e::RawResponse, status: u16, code: &str) -> String {
    assert_eq!(resp.status, status, "body: {}", resp.text());
    assert_eq!(
        resp.error_code().as_deref(),
        Some(code),
        "body: {}",
        resp.text()
    );
    assert!(
        resp.header("x-amzn-requestid").is_some(),
        "every reply carries x-amzn-RequestId"
    );
    resp.error_message().unwrap_or_default()
}

#[test]
fn malformed_json_is_a_serialization_exception() {
    let berth = BerthServer::start();
    let resp = berth.ecs_raw(REGION, "ListClusters", "{\"maxResults\": ");
    assert_error(&resp, 400, "SerializationException");
    let resp = berth.ecs_raw(REGION, "ListClusters", r#"{"maxResults": "ten"}"#);
    let msg = assert_error(&resp, 400, "SerializationException");
    assert!(msg.contains("maxResults"), "{msg}");
}

#[test]
fn missing_required_member_and_bad_enum_name_the_field() {
    let berth = BerthServer::start();
    let resp = berth.ecs_raw(REGION, "UpdateClusterSettings", r#"{"settings": []}"#);
    let msg = assert_error(&resp, 400, "InvalidParameterException");
    assert!(msg.contains("'cluster'"), "{msg}");
    let resp = berth.ecs_raw(
        REGION,
        "DescribeClusters",
        r#"{"clusters": ["a"], "include": ["EVERYTHING"]}"#,
    );
    let msg = assert_error(&resp, 400, "InvalidParameterException");
    assert!(
        msg.contains("EVERYTHING") && msg.contains("STATISTICS"),
        "{msg}"
    );
}

#[test]
fn unknown_and_unserved_operations_are_named() {
    let berth = BerthServer::start();
    let resp = berth.ecs_raw(REGION, "MakeCoffee", "{}");
    let msg = assert_error(&resp, 400, "UnknownOperationException");
    assert!(msg.contains("MakeCoffee"), "{msg}");
    // A real ECS operation that a later issue serves.
    let resp = berth.ecs_raw(
        REGION,
        "CreateTaskSet",
        r#"{"service": "s", "cluster": "c", "taskDefinition": "t"}"#,
    );
    let msg = assert_error(&resp, 400, "UnknownOperationException");
    assert!(msg.contains("CreateTaskSet"), "{msg}");
    // An unknown service prefix.
    let req = RawRequest::ecs("ListClusters", "{}")
        .without_header("x-amz-target")
        .header("x-amz-target", "NoSuchService_20200101.ListThings")
        .sign(&berth.host(), &berth.signing_params(REGION));
    let resp = berth.raw(&req);
    assert_error(&resp, 400, "UnknownOperationException");
}

#[test]
fn oversized_body_is_refused() {
    let berth = BerthServer::start();
    let big = format!(r#"{{"clusterName": "{}"}}"#, "a".repeat(9 * 1024 * 1024));
    let resp = berth.ecs_raw(REGION, "CreateCluster", &big);
    assert_eq!(resp.status, 413, "body: {}", resp.text());
    // The server is fine afterwards.
    let resp = berth.ecs_raw(REGION, "ListClusters", "{}");
    assert_eq!(resp.status, 200, "body: {}", resp.text());
}

#[test]
fn signature_for_another_service_is_refused() {
    let berth = BerthServer::start();
    let params = berth.signing_params(REGION).service("sqs");
    let req = RawRequest::ecs("ListClusters", "{}").sign(&berth.host(), &params);
    let resp = berth.raw(&req);
    let msg = assert_error(&resp, 400, "InvalidSignatureException");
    assert!(msg.contains("'ecs'"), "{msg}");
}

#[test]
fn empty_body_is_an_empty_input() {
    let berth = BerthServer::start();
    let resp = berth.ecs_raw(REGION, "ListClusters", "");
    assert_eq!(resp.status, 200, "body: {}", resp.text());
    assert_eq!(resp.json()["clusterArns"], serde_json::json!([]));
}
