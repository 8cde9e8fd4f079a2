//! The gateway: one HTTP endpoint for every service, as AWS's regional endpoints are.
//!
//! decode protocol → authenticate (SigV4) → authorise → dispatch the typed operation →
//! record the call (CloudTrail) → encode the reply. The service is known from `X-Amz-Target`
//! (JSON protocols), or from the form's `Action` and the SigV4 credential scope's service
//! (query protocols: STS, IAM). Service code never sees HTTP. Recording is generic: every
//! authenticated call to a service that names an event source is handed, with its operation
//! name, request and reply or error, to the CloudTrail recorder, which stores it off the
//! request's path.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, State};
use axum::response::Response;
use berth_wire::query::{self, Params, Protocol, Schema};
use berth_wire::sigv4::{self, SignedRequest};
use berth_wire::{AwsError, RequestContext, Timestamp};
use http::{HeaderValue, Method, StatusCode, header};

use crate::App;
use crate::cloudtrail::ApiCall;

/// The largest request body accepted (AWS's JSON services refuse far smaller bodies for most
/// operations; this bounds memory).
pub const MAX_BODY_BYTES: usize = 8 * 1024 * 1024;

/// The path that answers 200 without authentication once Berth serves (for readiness probes),
/// with the serving process's pid.
pub const HEALTH_PATH: &str = "/_berth/health";

/// A JSON-protocol service the gateway routes to.
struct JsonService {
    target_prefix: &'static str,
    signing_name: &'static str,
    content_type: &'static str,
    /// How its calls are recorded in CloudTrail (`None`: not at all).
    trail: Option<Trail>,
}

/// A service's CloudTrail recording.
struct Trail {
    /// The eventSource of its events.
    event_source: &'static str,
    /// Data-plane operations, which CloudTrail's event history does not hold.
    data_events: &'static [&'static str],
}

const JSON_SERVICES: &[JsonService] = &[
    JsonService {
        target_prefix: berth_wire::ecs::TARGET_PREFIX,
        signing_name: berth_wire::ecs::SIGNING_NAME,
        content_type: "application/x-amz-json-1.1",
        trail: Some(Trail {
            event_source: "ecs.amazonaws.com",
            data_events: &[],
        }),
    },
    JsonService {
        target_prefix: berth_wire::logs::TARGET_PREFIX,
        signing_name: berth_wire::logs::SIGNING_NAME,
        content_type: "application/x-amz-json-1.1",
        trail: Some(Trail {
            event_source: "logs.amazonaws.com",
            data_events: &[
                "PutLogEvents",
                "GetLogEvents",
                "FilterLogEvents",
                "StartLiveTail",
                "GetLogRecord",
            ],
        }),
    },
    JsonService {
        target_prefix: berth_wire::cloudtrail::TARGET_PREFIX,
        signing_name: berth_wire::cloudtrail::SIGNING_NAME,
        content_type: "application/x-amz-json-1.1",
        trail: Some(Trail {
            event_source: "cloudtrail.amazonaws.com",
            data_events: &[],
        }),
    },
    // The agent channel's long poll is not an API call (ECS's agent communication service
    // is not recorded either).
    JsonService {
        target_prefix: berth_wire::agent::TARGET_PREFIX,
        signing_name: berth_wire::ecs::SIGNING_NAME,
        content_type: "application/x-amz-json-1.1",
        trail: None,
    },
    JsonService {
        target_prefix: crate::admin::TARGET_PREFIX,
        signing_name: crate::admin::SIGNING_NAME,
        content_type: "application/x-amz-json-1.1",
        trail: Some(Trail {
            event_source: "berth.amazonaws.com",
            data_events: &[],
        }),
    },
];

/// The axum router: every path and method lands in [`handle`].
pub fn router(app: Arc<App>) -> axum::Router {
    axum::Router::new().fallback(handle).with_state(app)
}

/// How long data the server sent may stay unacknowledged before the connection is dropped:
/// with the agent channel's keepalive line every 20 s, a cut agent's stream ends at most
/// about 35 s after the cut.
const UNACKNOWLEDGED_FOR_AT_MOST: std::time::Duration = std::time::Duration::from_secs(15);

/// Serves `router` on `listener` until `shutdown` resolves, then drains in-flight requests.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Arc<App>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use axum::serve::ListenerExt as _;
    let listener = listener.tap_io(|tcp| {
        // An agent's assignments stream is its heartbeat: a peer that vanished without
        // closing (its host's network cut) must not keep it open, so what the server sent
        // may stay unacknowledged this long before the connection is dropped (Linux's
        // default is about 15 minutes of retransmissions).
        if let Err(e) =
            socket2::SockRef::from(&*tcp).set_tcp_user_timeout(Some(UNACKNOWLEDGED_FOR_AT_MOST))
        {
            tracing::debug!(error = %e, "cannot set TCP_USER_TIMEOUT on a connection");
        }
    });
    axum::serve(
        listener,
        router(app).into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}

fn request_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

fn reply(status: u16, content_type: &str, request_id: &str, body: impl Into<Body>) -> Response {
    let mut resp = Response::new(body.into());
    *resp.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let headers = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(content_type) {
        headers.insert(header::CONTENT_TYPE, v);
    }
    if let Ok(v) = HeaderValue::from_str(request_id) {
        headers.insert("x-amzn-requestid", v);
    }
    resp
}

fn json_error(err: &AwsError, content_type: &str, request_id: &str) -> Response {
    let mut resp = reply(err.status, content_type, request_id, err.to_json());
    if let Ok(v) = HeaderValue::from_str(&err.code) {
        resp.headers_mut().insert("x-amzn-errortype", v);
    }
    resp
}

fn health_body(app: &App) -> String {
    let (writes, commits) = app.store.commit_stats();
    let hot = match app.store.hot_stats() {
        Some(h) => format!(
            r#"{{"group":{},"unfoldedKeys":{},"folds":{},"foldFailures":{}}}"#,
            h.group, h.unfolded_keys, h.folds, h.fold_failures
        ),
        None => "null".to_string(),
    };
    format!(
        r#"{{"status":"ok","pid":{},"store":{{"writes":{writes},"commits":{commits},"writerHeldMs":{},"walRestarts":{},"hotState":{hot}}}}}"#,
        std::process::id(),
        app.store.writer_held().as_millis(),
        app.store.wal_restarts()
    )
}

async fn handle(
    State(app): State<Arc<App>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    req: http::Request<Body>,
) -> Response {
    let started = Instant::now();
    let rid = request_id();
    let (parts, body) = req.into_parts();
    if parts.method == Method::GET && parts.uri.path() == HEALTH_PATH {
        return reply(
            200,
            "application/json",
            &rid,
            // The pid tells a readiness probe that it reached the process it started, not
            // another server that won the port; the store's figures tell a benchmark how
            // busy the writer was.
            health_body(&app).into_bytes(),
        );
    }
    let target = parts
        .headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let default_ct = "application/x-amz-json-1.1";
    let body: Bytes = match axum::body::to_bytes(body, MAX_BODY_BYTES).await {
        Ok(b) => b,
        Err(_) => {
            let e = AwsError::new(
                "RequestEntityTooLargeException",
                413,
                format!("Request body exceeds the maximum of {MAX_BODY_BYTES} bytes."),
            );
            return json_error(&e, default_ct, &rid);
        }
    };
    if target.is_none() && is_query_request(&parts, &body) {
        return handle_query(app, peer, parts, body, rid, started).await;
    }
    let Some(target) = target else {
        let e = AwsError::new(
            "UnknownOperationException",
            400,
            "The request names no operation: Berth serves AWS JSON protocols selected by the X-Amz-Target header.",
        );
        return json_error(&e, default_ct, &rid);
    };
    // The operation follows the last dot (CloudTrail's prefix has dots of its own).
    let Some((prefix, operation)) = target.rsplit_once('.') else {
        return json_error(
            &AwsError::new("UnknownOperationException", 400, ""),
            default_ct,
            &rid,
        );
    };
    let Some(service) = JSON_SERVICES.iter().find(|s| s.target_prefix == prefix) else {
        let e = AwsError::new(
            "UnknownOperationException",
            400,
            format!("No service serves the target prefix {prefix}."),
        );
        return json_error(&e, default_ct, &rid);
    };
    let Signable {
        method,
        raw_path,
        raw_query,
        headers,
        user_agent,
    } = Signable::of(&parts);
    let operation = operation.to_string();
    let op_for_log = operation.clone();
    let rid_inner = rid.clone();
    let app2 = app.clone();
    let signing_name = service.signing_name;
    let prefix = prefix.to_string();
    // Authentication and the handler touch the store (blocking SQLite): off the async threads.
    let outcome = tokio::task::spawn_blocking(move || -> Result<Outcome, AwsError> {
        let signed = SignedRequest {
            method: &method,
            raw_path: &raw_path,
            raw_query: &raw_query,
            headers: &headers,
            body: &body,
        };
        let now = Timestamp::now();
        let key = authenticate(&app2, &signed, signing_name, now)?;
        let ctx = RequestContext {
            account_id: key.account,
            region: key.region,
            principal_arn: key.principal_arn,
            access_key_id: key.access_key_id,
            request_id: rid_inner,
            source_ip: peer.ip().to_string(),
            user_agent,
            now,
        };
        let authorized = authorize_json(&app2, &ctx, &prefix, &operation, &body);
        // The agent channel holds requests open: it continues on the async side.
        if prefix == berth_wire::agent::TARGET_PREFIX {
            return authorized.map(|()| Outcome::Agent(Box::new((ctx, operation, body))));
        }
        let result = authorized.and_then(|()| match prefix.as_str() {
            p if p == berth_wire::ecs::TARGET_PREFIX => {
                berth_wire::ecs::dispatch(&app2.ecs, &ctx, &operation, &body)
            }
            p if p == berth_wire::logs::TARGET_PREFIX => {
                berth_wire::logs::dispatch(&app2.logs, &ctx, &operation, &body)
            }
            p if p == berth_wire::cloudtrail::TARGET_PREFIX => {
                berth_wire::cloudtrail::dispatch(&app2.cloudtrail, &ctx, &operation, &body)
            }
            p if p == crate::admin::TARGET_PREFIX => {
                crate::admin::dispatch(&app2, &ctx, &operation, &body)
            }
            _ => Err(AwsError::unknown_operation(&operation)),
        });
        let result = result.map(Bytes::from);
        // Failed calls (access denied included) are recorded too, as CloudTrail does.
        if let Some(trail) = &service.trail
            && !trail.data_events.contains(&operation.as_str())
        {
            app2.trail.record(ApiCall {
                event_source: trail.event_source,
                operation,
                ctx,
                request: body,
                response: result.clone(),
            });
        }
        result.map(Outcome::Reply)
    })
    .await
    .unwrap_or_else(|e| {
        Err(AwsError::internal(format!(
            "the request handler failed: {e}"
        )))
    });
    let result = match outcome {
        Ok(Outcome::Reply(bytes)) => Ok(Body::from(bytes)),
        Ok(Outcome::Agent(call)) => {
            let (ctx, operation, body) = *call;
            crate::agent_channel::dispatch(app.clone(), ctx, &operation, &body)
                .await
                .map(|r| match r {
                    crate::agent_channel::AgentReply::Body(b) => Body::from(b),
                    crate::agent_channel::AgentReply::Stream(lines) => {
                        Body::from_stream(LineStream(lines))
                    }
                })
        }
        Err(e) => Err(e),
    };
    let (resp, result) = match result {
        Ok(body) => (reply(200, service.content_type, &rid, body), Ok(())),
        Err(e) => (json_error(&e, service.content_type, &rid), Err(e)),
    };
    let status = resp.status().as_u16();
    tracing::info!(
        target: "berth::request",
        operation = %op_for_log,
        status,
        error = result.as_ref().err().map(|e| e.code.as_ref()).unwrap_or(""),
        micros = started.elapsed().as_micros() as u64,
        request_id = %rid,
    );
    resp
}

/// A stream's lines as a response body (hyper sends each as a chunk as it comes).
struct LineStream(tokio::sync::mpsc::Receiver<Bytes>);

impl futures_core::Stream for LineStream {
    type Item = Result<Bytes, std::convert::Infallible>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        self.0.poll_recv(cx).map(|line| line.map(Ok))
    }
}

/// Authorises a JSON-protocol call (ECS, Logs, the agent channel) for its caller.
pub(crate) fn authorize_json(
    app: &App,
    ctx: &RequestContext,
    prefix: &str,
    operation: &str,
    body: &[u8],
) -> Result<(), AwsError> {
    if ctx.principal_arn == crate::accounts::root_arn(&ctx.account_id) {
        return Ok(());
    }
    let input: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    let call = match prefix {
        p if p == berth_wire::ecs::TARGET_PREFIX => crate::authz::ecs_call(ctx, operation, &input),
        p if p == berth_wire::logs::TARGET_PREFIX => {
            crate::authz::logs_call(ctx, operation, &input)
        }
        // The agent channel is ECS's own agent protocol: the actions its managed policy
        // (AmazonEC2ContainerServiceforEC2Role) grants.
        p if p == berth_wire::agent::TARGET_PREFIX => crate::authz::Call {
            action: if operation == "Poll" || operation == berth_wire::agent::SUBSCRIBE {
                "ecs:Poll".into()
            } else {
                "ecs:SubmitTaskStateChange".into()
            },
            resources: vec!["*".into()],
            keys: Vec::new(),
        },
        p if p == berth_wire::cloudtrail::TARGET_PREFIX => crate::authz::Call {
            action: format!("cloudtrail:{operation}"),
            resources: vec!["*".into()],
            keys: Vec::new(),
        },
        // Berth's admin API checks for root itself.
        _ => return Ok(()),
    };
    crate::authz::authorize(&app.store, ctx, &call, crate::authz::Dialect::Json)?;
    if prefix == berth_wire::ecs::TARGET_PREFIX {
        for pass in crate::authz::pass_role_calls(operation, &input) {
            crate::authz::authorize(&app.store, ctx, &pass, crate::authz::Dialect::Json)?;
        }
    }
    Ok(())
}

/// A temporary key is only good with its session token and until its session expires.
fn check_session(
    app: &App,
    req: &SignedRequest<'_>,
    key: &berth_store::AccessKey,
    now: Timestamp,
) -> Result<(), AwsError> {
    let token = req
        .headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("x-amz-security-token"))
        .map(|(_, v)| v.clone())
        .or_else(|| {
            berth_wire::query::Params::from_form(req.raw_query)
                .get("X-Amz-Security-Token")
                .map(str::to_string)
        });
    let session = app
        .store
        .read(|tx| crate::sts::session(tx, &key.account, &key.access_key_id))
        .map_err(|e| {
            tracing::error!(error = %e, "session lookup failed");
            AwsError::internal("An internal error occurred. Try the request again.")
        })?;
    let invalid = || {
        AwsError::new(
            "UnrecognizedClientException",
            400,
            "The security token included in the request is invalid.",
        )
    };
    let session = session.ok_or_else(invalid)?;
    if token.as_deref() != Some(session.session_token.as_str()) {
        return Err(invalid());
    }
    if now.millis() >= session.expires_ms {
        return Err(AwsError::new(
            "ExpiredTokenException",
            400,
            "The security token included in the request is expired",
        ));
    }
    Ok(())
}

/// A query-protocol service the gateway routes to, by the SigV4 credential scope's service.
struct QueryService {
    signing_name: &'static str,
    schema: fn() -> &'static Schema,
    /// The eventSource of its CloudTrail events.
    event_source: &'static str,
}

const QUERY_SERVICES: &[QueryService] = &[
    QueryService {
        signing_name: berth_wire::sts::SIGNING_NAME,
        schema: berth_wire::sts::schema,
        event_source: "sts.amazonaws.com",
    },
    QueryService {
        signing_name: berth_wire::iam::SIGNING_NAME,
        schema: berth_wire::iam::schema,
        event_source: "iam.amazonaws.com",
    },
    QueryService {
        signing_name: berth_wire::ec2::SIGNING_NAME,
        schema: berth_wire::ec2::schema,
        event_source: "ec2.amazonaws.com",
    },
];

/// A query request's parameters as CloudTrail shows them: a JSON object of the form's
/// fields (names in lowerCamel case, list and map members as flattened by the form), less
/// `Action`, `Version` and presigning fields. Redacted later with every other call.
fn query_request_parameters(params: &Params) -> Bytes {
    let mut members = serde_json::Map::new();
    for (k, v) in params.iter() {
        if k == "Action" || k == "Version" || k.starts_with("X-Amz-") {
            continue;
        }
        let mut chars = k.chars();
        let name: String = match chars.next() {
            Some(c) => c.to_lowercase().chain(chars).collect(),
            None => continue,
        };
        members.insert(name, serde_json::Value::String(v.to_string()));
    }
    Bytes::from(serde_json::Value::Object(members).to_string())
}

/// Whether a request without `X-Amz-Target` speaks a query protocol: a form body, or an
/// `Action` in the URL (GET requests of the query protocols).
fn is_query_request(parts: &http::request::Parts, body: &[u8]) -> bool {
    let form = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/x-www-form-urlencoded"));
    let action_in_url = parts
        .uri
        .query()
        .is_some_and(|q| q.split('&').any(|p| p.starts_with("Action=")));
    form || action_in_url || body.starts_with(b"Action=")
}

/// The service a request is signed for: the credential scope's fourth part, from the
/// `Authorization` header or a presigned URL's `X-Amz-Credential`.
fn scope_service(parts: &http::request::Parts, params: &Params) -> Option<String> {
    let from_header = parts
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|a| a.split("Credential=").nth(1))
        .map(|c| c.split([',', ' ']).next().unwrap_or("").to_string());
    let credential = from_header.or_else(|| params.get("X-Amz-Credential").map(str::to_string))?;
    credential.split('/').nth(3).map(str::to_string)
}

/// Authentication failures as the query services name them (their JSON siblings say
/// `…Exception`; STS and IAM answer 403 with these codes).
fn query_auth_error(e: AwsError) -> AwsError {
    match e.code.as_ref() {
        "MissingAuthenticationTokenException" => AwsError::new(
            "MissingAuthenticationToken",
            403,
            "Request is missing Authentication Token",
        ),
        "UnrecognizedClientException" => AwsError::new(
            "InvalidClientTokenId",
            403,
            "The security token included in the request is invalid.",
        ),
        "InvalidSignatureException" => AwsError::new("SignatureDoesNotMatch", 403, e.message),
        "IncompleteSignatureException" => AwsError::new("IncompleteSignature", 400, e.message),
        "ExpiredTokenException" => AwsError::new("ExpiredToken", 403, e.message),
        _ => e,
    }
}

/// Serves one query-protocol request (STS, IAM): form in, XML out.
async fn handle_query(
    app: Arc<App>,
    peer: SocketAddr,
    parts: http::request::Parts,
    body: Bytes,
    rid: String,
    started: Instant,
) -> Response {
    const XML: &str = "text/xml";
    let mut params = Params::default();
    params.add_form(&String::from_utf8_lossy(&body));
    if let Some(q) = parts.uri.query() {
        params.add_form(q);
    }
    let service_name = scope_service(&parts, &params);
    let service = service_name
        .as_deref()
        .and_then(|n| QUERY_SERVICES.iter().find(|s| s.signing_name == n));
    let (protocol, namespace) = match service {
        Some(s) => ((s.schema)().protocol, (s.schema)().namespace.clone()),
        None => (Protocol::Query, String::new()),
    };
    let fail = |e: &AwsError| -> Response {
        reply(
            e.status,
            XML,
            &rid,
            query::encode_error(protocol, &namespace, e, &rid),
        )
    };
    let Some(service) = service else {
        let e = match service_name {
            None => AwsError::new(
                "MissingAuthenticationToken",
                403,
                "Request is missing Authentication Token",
            ),
            Some(n) => AwsError::new(
                "InvalidAction",
                400,
                format!("Berth serves no query-protocol service named '{n}'."),
            ),
        };
        return fail(&e);
    };
    let Some(action) = params.get("Action").map(str::to_string) else {
        return fail(&AwsError::new("MissingAction", 400, "Missing Action"));
    };
    let Signable {
        method,
        raw_path,
        raw_query,
        headers,
        user_agent,
    } = Signable::of(&parts);
    let signing_name = service.signing_name;
    let event_source = service.event_source;
    let rid_inner = rid.clone();
    let action_inner = action.clone();
    let params_version = params.get("Version").map(str::to_string);
    let result = tokio::task::spawn_blocking(move || -> Result<Vec<u8>, AwsError> {
        let signed = SignedRequest {
            method: &method,
            raw_path: &raw_path,
            raw_query: &raw_query,
            headers: &headers,
            body: &body,
        };
        let now = Timestamp::now();
        let ec2 = signing_name == berth_wire::ec2::SIGNING_NAME;
        let key = authenticate(&app, &signed, signing_name, now)
            .map_err(query_auth_error)
            .map_err(|e| {
                if ec2 {
                    crate::ec2::error::gateway(e)
                } else {
                    e
                }
            })?;
        let ctx = RequestContext {
            account_id: key.account,
            region: key.region,
            principal_arn: key.principal_arn,
            access_key_id: key.access_key_id,
            request_id: rid_inner,
            source_ip: peer.ip().to_string(),
            user_agent,
            now,
        };
        // STS decides its own calls: GetCallerIdentity needs no permission, and AssumeRole
        // weighs the role's trust policy with the caller's policies.
        let authorized = if signing_name != berth_wire::sts::SIGNING_NAME {
            let call = crate::authz::query_call(&ctx, signing_name, &action_inner, |k| {
                params.get(k).map(str::to_string)
            });
            crate::authz::authorize(&app.store, &ctx, &call, crate::authz::Dialect::Query).map_err(
                |e| {
                    if ec2 {
                        crate::ec2::error::gateway(e)
                    } else {
                        e
                    }
                },
            )
        } else {
            Ok(())
        };
        let result = authorized.and_then(|()| match signing_name {
            n if n == berth_wire::sts::SIGNING_NAME => {
                berth_wire::sts::dispatch(&app.sts, &ctx, &action_inner, &params)
            }
            n if n == berth_wire::iam::SIGNING_NAME => {
                berth_wire::iam::dispatch(&app.iam, &ctx, &action_inner, &params)
            }
            n if n == berth_wire::ec2::SIGNING_NAME => {
                crate::ec2::dispatch(&app.ec2, &ctx, &action_inner, &params)
            }
            _ => Err(AwsError::unknown_operation(&action_inner)),
        });
        // The XML reply is not turned into responseElements (left null): what a query
        // service answers (access keys, session credentials) is mostly secret anyway.
        app.trail.record(ApiCall {
            event_source,
            operation: action_inner.clone(),
            request: query_request_parameters(&params),
            response: result.as_ref().map(|_| Bytes::new()).map_err(Clone::clone),
            ctx,
        });
        result
    })
    .await
    .unwrap_or_else(|e| {
        Err(AwsError::internal(format!(
            "the request handler failed: {e}"
        )))
    })
    .map_err(|e| {
        // An action the model does not define, in the query services' own words.
        if e == AwsError::unknown_operation(&action) {
            let version = params_version.as_deref().unwrap_or("");
            AwsError::new(
                "InvalidAction",
                400,
                format!("Could not find operation {action} for version {version}"),
            )
        } else {
            e
        }
    });
    let resp = match &result {
        Ok(bytes) => reply(200, XML, &rid, bytes.clone()),
        Err(e) => fail(e),
    };
    tracing::info!(
        target: "berth::request",
        operation = %action,
        status = resp.status().as_u16(),
        error = result.as_ref().err().map(|e| e.code.as_ref()).unwrap_or(""),
        micros = started.elapsed().as_micros() as u64,
        request_id = %rid,
    );
    resp
}

/// What signature verification and the request context need of a request's head, owned so
/// it can move to the blocking pool (both protocols' paths take it).
struct Signable {
    method: String,
    raw_path: String,
    raw_query: String,
    headers: Vec<(String, String)>,
    user_agent: String,
}

impl Signable {
    fn of(parts: &http::request::Parts) -> Signable {
        Signable {
            method: parts.method.as_str().to_string(),
            raw_path: parts.uri.path().to_string(),
            raw_query: parts.uri.query().unwrap_or("").to_string(),
            headers: parts
                .headers
                .iter()
                .filter_map(|(k, v)| {
                    v.to_str()
                        .ok()
                        .map(|v| (k.as_str().to_string(), v.to_string()))
                })
                .collect(),
            user_agent: parts
                .headers
                .get(header::USER_AGENT)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string(),
        }
    }
}

/// What the blocking part of a request produced.
enum Outcome {
    /// The reply body.
    Reply(Bytes),
    /// An agent-channel call, authenticated, to run on the async side.
    Agent(Box<(RequestContext, String, Bytes)>),
}

/// Who signed a request, once the signature is verified.
struct Authenticated {
    account: String,
    region: String,
    principal_arn: String,
    access_key_id: String,
}

fn authenticate(
    app: &App,
    req: &SignedRequest<'_>,
    signing_name: &str,
    now: Timestamp,
) -> Result<Authenticated, AwsError> {
    let parts = sigv4::parse(req)?;
    let invalid_token = || {
        AwsError::new(
            "UnrecognizedClientException",
            400,
            "The security token included in the request is invalid.",
        )
    };
    let key = app
        .store
        .access_key(&parts.access_key_id)
        .map_err(|e| {
            tracing::error!(error = %e, "access key lookup failed");
            AwsError::internal("An internal error occurred. Try the request again.")
        })?
        .ok_or_else(invalid_token)?;
    if key.status != "Active" {
        return Err(invalid_token());
    }
    sigv4::check_clock(&parts, now.seconds())?;
    if parts.service != signing_name {
        return Err(AwsError::new(
            "InvalidSignatureException",
            400,
            format!("Credential should be scoped to correct service: '{signing_name}'. "),
        ));
    }
    if parts.region.is_empty() {
        return Err(AwsError::new(
            "InvalidSignatureException",
            400,
            "Credential should be scoped to a valid region. ",
        ));
    }
    let verified = sigv4::verify(req, &parts, &key.secret_access_key)?;
    if key.access_key_id.starts_with("ASIA") {
        check_session(app, req, &key, now)?;
    }
    app.key_usage.record(
        &key.access_key_id,
        &key.account,
        &parts.service,
        &verified.region,
        now.millis(),
    );
    Ok(Authenticated {
        account: key.account,
        region: verified.region,
        principal_arn: key.principal_arn,
        access_key_id: key.access_key_id,
    })
}
