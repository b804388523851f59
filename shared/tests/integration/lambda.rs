//! Route handlers called in-process with Lambda events, as the per-route
//! functions receive them: API Gateway REST (v1) and HTTP API (v2) payloads.

use http_body_util_shim::collect;
use serde_json::{Value, json};
use tower::ServiceExt as _;

use crate::support::{ADMIN_KEY, test_api};

mod http_body_util_shim {
    use axum::body::Body;

    pub async fn collect(body: Body) -> Vec<u8> {
        axum::body::to_bytes(body, usize::MAX)
            .await
            .expect("body")
            .to_vec()
    }
}

fn v1(method: &str, path: &str, body: Option<Value>, key: Option<&str>) -> String {
    let mut headers = json!({"content-type": "application/json", "host": "api.example.com"});
    if let Some(k) = key {
        headers["authorization"] = json!(format!("Bearer {k}"));
    }
    json!({
        "resource": path,
        "path": path,
        "httpMethod": method,
        "headers": headers,
        "multiValueHeaders": {},
        "queryStringParameters": null,
        "multiValueQueryStringParameters": null,
        "pathParameters": null,
        "stageVariables": null,
        "requestContext": {
            "accountId": "123456789012", "resourceId": "abc", "stage": "prod", "requestId": "r-1",
            "identity": {"sourceIp": "127.0.0.1"}, "resourcePath": path, "httpMethod": method,
            "apiId": "api", "path": format!("/prod{path}")
        },
        "body": body.map(|b| b.to_string()),
        "isBase64Encoded": false
    })
    .to_string()
}

fn v2(method: &str, path: &str, body: Option<Value>, key: Option<&str>) -> String {
    let mut headers = json!({"content-type": "application/json", "host": "api.example.com"});
    if let Some(k) = key {
        headers["x-api-key"] = json!(k);
    }
    json!({
        "version": "2.0",
        "routeKey": format!("{method} {path}"),
        "rawPath": path,
        "rawQueryString": "",
        "headers": headers,
        "requestContext": {
            "accountId": "123456789012", "apiId": "api", "domainName": "api.example.com",
            "domainPrefix": "api", "requestId": "r-2", "routeKey": format!("{method} {path}"),
            "stage": "$default", "time": "12/Mar/2020:19:03:58 +0000", "timeEpoch": 1583348638390i64,
            "http": {"method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1", "userAgent": "test"}
        },
        "body": body.map(|b| b.to_string()),
        "isBase64Encoded": false
    })
    .to_string()
}

async fn call(app: &axum::Router, event: &str) -> (u16, Value) {
    let request: lambda_http::Request = lambda_http::request::from_str(event).expect("a valid Lambda event");
    let response = jobline::http::lambda::service(app.clone())
        .oneshot(request)
        .await
        .expect("infallible");
    let status = response.status().as_u16();
    let bytes = collect(response.into_body()).await;
    (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

#[tokio::test]
async fn each_function_answers_rest_v1_and_http_v2_events() {
    let api = test_api().await;
    use jobline::http::{RouteId, routes};
    let health = routes(api.state.clone(), [RouteId::Health]);
    let create = routes(api.state.clone(), [RouteId::CreateJob]);
    let get = routes(api.state.clone(), [RouteId::GetJob]);

    for event in [v1("GET", "/health", None, None), v2("GET", "/health", None, None)] {
        let (s, b) = call(&health, &event).await;
        assert_eq!((s, b["status"].as_str()), (200, Some("ok")));
    }
    let mut ids = Vec::new();
    for event in [
        v1("POST", "/v1/jobs", Some(json!({"type": "noop"})), Some(ADMIN_KEY)),
        v2("POST", "/v1/jobs", Some(json!({"type": "noop"})), Some(ADMIN_KEY)),
    ] {
        let (s, b) = call(&create, &event).await;
        assert_eq!(s, 201, "{b}");
        ids.push(b["id"].as_str().expect("id").to_owned());
    }
    let (s, b) = call(
        &get,
        &v2("GET", &format!("/v1/jobs/{}", ids[0]), None, Some(ADMIN_KEY)),
    )
    .await;
    assert_eq!((s, b["id"].as_str()), (200, Some(ids[0].as_str())));
    // No key, or another function's route: refused with a JSON error.
    let (s, b) = call(
        &create,
        &v1("POST", "/v1/jobs", Some(json!({"type": "noop"})), None),
    )
    .await;
    assert_eq!((s, b["error"]["code"].as_str()), (401, Some("unauthorized")));
    let (s, b) = call(
        &health,
        &v2("POST", "/v1/jobs", Some(json!({"type": "noop"})), Some(ADMIN_KEY)),
    )
    .await;
    assert_eq!((s, b["error"]["code"].as_str()), (404, Some("not_found")));
    assert_eq!(api.db.count("SELECT count(*) FROM jobs").await, 2);
}
