//! Smoke tests: `berth up` starts, answers the ECS API through the SDK and the CLI, and
//! rejects requests that are unsigned, wrongly signed, signed by an unknown key or stale.

use berth_e2e::{
    ACCOUNT_ID, BerthServer, REGION, RawRequest, assert_sdk_error, now_offset,
    random_access_key_id, random_secret_access_key, unique_name,
};

#[tokio::test]
async fn list_clusters_via_sdk_and_cli() {
    let berth = BerthServer::start();
    let ecs = berth.ecs_client(REGION);

    ecs.list_clusters()
        .send()
        .await
        .expect("ListClusters through the SDK");

    let name = unique_name("smoke");
    let created = ecs
        .create_cluster()
        .cluster_name(&name)
        .send()
        .await
        .expect("CreateCluster");
    let arn = format!("arn:aws:ecs:{REGION}:{ACCOUNT_ID}:cluster/{name}");
    assert_eq!(
        created.cluster().and_then(|c| c.cluster_arn()),
        Some(arn.as_str())
    );

    let listed = ecs.list_clusters().send().await.expect("ListClusters");
    assert!(
        listed.cluster_arns().contains(&arn),
        "{arn} missing from {:?}",
        listed.cluster_arns()
    );

    let cli = berth.aws_cli_json(REGION, &["ecs", "list-clusters"]);
    let arns: Vec<&str> = cli["clusterArns"]
        .as_array()
        .unwrap_or_else(|| panic!("no clusterArns in {cli}"))
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    assert!(arns.contains(&arn.as_str()), "{arn} missing from {cli}");
}

#[test]
fn up_writes_the_env_file() {
    let berth = BerthServer::start();
    let env = berth.env_file();
    for line in [
        format!("export AWS_ENDPOINT_URL={}", berth.endpoint()),
        format!("export AWS_ACCESS_KEY_ID={}", berth.access_key_id()),
        format!("export AWS_SECRET_ACCESS_KEY={}", berth.secret_access_key()),
        format!("export AWS_REGION={REGION}"),
    ] {
        // Values may be quoted; compare without quotes.
        let unquoted = env.replace(['"', '\''], "");
        assert!(
            unquoted.lines().any(|l| l.trim() == line),
            "`{line}` missing from the env file:\n{env}"
        );
    }
}

#[test]
fn health_needs_no_signature() {
    let berth = BerthServer::start();
    let resp = berth.raw(&RawRequest::new("GET", "/_berth/health"));
    assert_eq!(resp.status, 200, "{}", resp.text());
    // It names the serving process (the harness checks that it reached its own).
    let body: serde_json::Value = serde_json::from_slice(&resp.body).unwrap();
    assert_eq!(body["status"], "ok");
    // The server holds ECS's hot kinds in memory (DESIGN §6), and says how that stands.
    let hot = &body["store"]["hotState"];
    assert!(hot["group"].is_i64(), "{}", resp.text());
    assert_eq!(hot["foldFailures"], 0, "{}", resp.text());
    assert_eq!(
        body["pid"].as_u64(),
        berth.pid().map(u64::from),
        "{}",
        resp.text()
    );
}

#[test]
fn unsigned_request_is_rejected() {
    let berth = BerthServer::start();
    let resp = berth.raw(&RawRequest::ecs("ListClusters", "{}"));
    assert_eq!(resp.status, 400, "body: {}", resp.text());
    assert_eq!(
        resp.error_code().as_deref(),
        Some("MissingAuthenticationTokenException"),
        "body: {}",
        resp.text()
    );
}

#[tokio::test]
async fn wrong_secret_is_rejected() {
    let berth = BerthServer::start();

    // Raw: the right key id, a signature made with another secret.
    let wrong_secret = random_secret_access_key();
    let params = berth.signing_params(REGION);
    let params = berth_e2e::SigningParams {
        secret_access_key: &wrong_secret,
        ..params
    };
    let resp = berth.raw(&RawRequest::ecs("ListClusters", "{}").sign(&berth.host(), &params));
    assert_eq!(resp.status, 400, "body: {}", resp.text());
    assert_eq!(
        resp.error_code().as_deref(),
        Some("InvalidSignatureException"),
        "body: {}",
        resp.text()
    );

    // The SDK sees the same error.
    let ecs = berth.ecs_client_with_keys(REGION, berth.access_key_id(), &wrong_secret);
    assert_sdk_error(
        ecs.list_clusters().send().await,
        "InvalidSignatureException",
    );

    // A tampered body breaks a signature made over the original one.
    let signed =
        RawRequest::ecs("ListClusters", "{}").sign(&berth.host(), &berth.signing_params(REGION));
    let tampered = signed.body(r#"{"maxResults":1}"#);
    let resp = berth.raw(&tampered);
    assert_eq!(resp.status, 400, "body: {}", resp.text());
    assert_eq!(
        resp.error_code().as_deref(),
        Some("InvalidSignatureException"),
        "body: {}",
        resp.text()
    );
}

#[tokio::test]
async fn unknown_access_key_is_rejected() {
    let berth = BerthServer::start();
    let (ak, sk) = (random_access_key_id(), random_secret_access_key());
    let ecs = berth.ecs_client_with_keys(REGION, &ak, &sk);
    assert_sdk_error(
        ecs.list_clusters().send().await,
        "UnrecognizedClientException",
    );

    let params = berth_e2e::SigningParams::ecs(&ak, &sk, REGION);
    let resp = berth.raw(&RawRequest::ecs("ListClusters", "{}").sign(&berth.host(), &params));
    assert_eq!(resp.status, 400, "body: {}", resp.text());
    assert_eq!(
        resp.error_code().as_deref(),
        Some("UnrecognizedClientException"),
        "body: {}",
        resp.text()
    );
}

#[test]
fn stale_signature_is_rejected() {
    let berth = BerthServer::start();
    // AWS accepts a clock skew of 5 minutes; 20 minutes ago is stale.
    let params = berth.signing_params(REGION).at(now_offset(-20 * 60));
    let resp = berth.raw(&RawRequest::ecs("ListClusters", "{}").sign(&berth.host(), &params));
    assert_eq!(resp.status, 400, "body: {}", resp.text());
    assert_eq!(
        resp.error_code().as_deref(),
        Some("InvalidSignatureException"),
        "body: {}",
        resp.text()
    );
    let message = resp.error_message().unwrap_or_default();
    assert!(
        message.contains("Signature expired"),
        "message {message:?} should say the signature expired"
    );

    // A signature made now is accepted (the same request, only the time differs).
    let params = berth.signing_params(REGION);
    let resp = berth.raw(&RawRequest::ecs("ListClusters", "{}").sign(&berth.host(), &params));
    assert_eq!(resp.status, 200, "body: {}", resp.text());
}

#[test]
fn sigterm_exits_cleanly() {
    let mut berth = BerthServer::start();
    let status = berth.terminate();
    assert!(status.success(), "berth exited with {status} on SIGTERM");
    // The port is free again: a restart on the same data directory works.
    berth.start_again();
    let resp = berth.raw(&RawRequest::new("GET", "/_berth/health"));
    assert_eq!(resp.status, 200);
}
