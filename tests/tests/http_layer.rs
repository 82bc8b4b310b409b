//! The HTTP layer: every real Lambda HTTP payload parses and gets a JSON answer; every sample in
//! `events/` goes through its function.

use affinity_tests::*;
use serde_json::{json, Value};

const FIXTURES: &[&str] = &[
    "alb_health_check.json",
    "alb_multi_value_request.json",
    "alb_multi_value_request_encoded_query_parameters.json",
    "alb_request.json",
    "alb_request_encoded_query_parameters.json",
    "apigw_multi_value_proxy_request.json",
    "apigw_no_host.json",
    "apigw_proxy_request.json",
    "apigw_request_path_with_space.json",
    "apigw_v2_proxy_request.json",
    "apigw_v2_proxy_request_minimal.json",
    "apigw_v2_proxy_request_with_stage_in_path.json",
    "apigw_v2_sam_local.json",
    "lambda_function_url_request.json",
];

#[tokio::test]
async fn every_real_lambda_http_payload_is_accepted_and_answered_in_json() {
    let listed = std::fs::read_dir(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/lambda-events"),
    )
    .expect("fixtures")
    .count();
    assert_eq!(listed, FIXTURES.len(), "every fixture file is listed here");
    let ingest = ingest_deps().await;
    let recommend = recommend_deps().await;
    for name in FIXTURES {
        let text = repo_file(&format!("tests/fixtures/lambda-events/{name}"));
        let req = lambda_http::request::from_str(&text)
            .unwrap_or_else(|e| panic!("{name} does not parse: {e}"));
        // None of these payloads is one of our routes: each gets a JSON 404 (or 405), never a panic or a 5xx.
        let (s, b) = json_of(ingest::handle(&ingest, req).await);
        assert!(matches!(s, 404 | 405), "{name}: {s} {b}");
        assert!(b["error"]["message"].is_string(), "{name}: {b}");
        let req = lambda_http::request::from_str(&text).expect("parses");
        let (s, b) = json_of(recommend::handle(&recommend, req).await);
        assert!(matches!(s, 404 | 405), "{name}: {s} {b}");
    }
}

async fn demo_tenant() -> String {
    let store = store().await;
    let (_, key) = create_tenant(&store, "demo").await;
    key
}

#[tokio::test]
async fn each_sample_event_goes_through_its_function() {
    let key = demo_tenant().await;
    // Live ingest, as a storefront beacon sends it.
    let req = lambda_http::request::from_str(&repo_file("events/ingest-live.json"))
        .expect("ingest-live parses");
    let (s, b) = json_of(ingest::handle(&ingest_deps().await, req).await);
    assert_eq!(s, 200, "{b}");
    assert_eq!(
        b["accepted"].as_u64().unwrap_or(0) + b["duplicates"].as_u64().unwrap_or(0),
        5,
        "{b}"
    );
    assert_eq!(b["rejected"], json!([]));

    // Import, with the demo tenant's real key in place of the sample's placeholder.
    let mut ev: Value =
        serde_json::from_str(&repo_file("events/ingest-import.json")).expect("json");
    ev["headers"]["authorization"] = json!(format!("Bearer {key}"));
    let req = lambda_http::request::from_str(&ev.to_string()).expect("ingest-import parses");
    let (s, b) = json_of(ingest::handle(&ingest_deps().await, req).await);
    assert_eq!(s, 200, "{b}");
    assert_eq!(
        b["accepted"].as_u64().unwrap_or(0) + b["duplicates"].as_u64().unwrap_or(0),
        2,
        "{b}"
    );
    // As shipped, with the placeholder key: 401.
    let req =
        lambda_http::request::from_str(&repo_file("events/ingest-import.json")).expect("parses");
    assert_eq!(
        json_of(ingest::handle(&ingest_deps().await, req).await).0,
        401
    );

    let req = lambda_http::request::from_str(&repo_file("events/recommend.json"))
        .expect("recommend parses");
    let (s, b) = json_of(recommend::handle(&recommend_deps().await, req).await);
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["shopper_id"], "g-7f3a9c2e4b1d0a58");
    // Issue 10: the storefront answer carries items and reasons only (preferences: the lookup route).
    assert_eq!(b["type"], "for_you");
    assert!(b.get("preferred_categories").is_none(), "{b}");
    // Every answer has its own id, for click-through attribution (a UUID v4).
    let id = b["recommendation_id"].as_str().expect("recommendation_id");
    assert_eq!(id.len(), 36, "{id}");
    assert_eq!(id.as_bytes()[14], b'4', "{id}");
    let again = json_of(
        recommend::handle(
            &recommend_deps().await,
            lambda_http::request::from_str(&repo_file("events/recommend.json")).expect("parses"),
        )
        .await,
    )
    .1;
    assert_ne!(again["recommendation_id"], b["recommendation_id"]);

    let stream: aws_lambda_events::event::dynamodb::Event =
        serde_json::from_str(&repo_file("events/aggregate-stream.json"))
            .expect("aggregate-stream parses");
    let (events, ignored) = aggregate::new_events(stream);
    assert_eq!((events.len(), ignored), (1, 1));
    assert_eq!(events[0].site_id, "demo");
    assert_eq!(events[0].products()[0].id, "SKU-1042");
    let report = aggregate::aggregate(&aggregate_deps().await, events)
        .await
        .expect("aggregate");
    // Folded in once: applied now, or recognised as applied when the stack already saw it.
    assert_eq!(
        (report.applied + report.duplicates, report.failed),
        (1, 0),
        "{report:?}"
    );
}

#[tokio::test]
async fn only_storefront_routes_are_readable_cross_origin() {
    let store = store().await;
    let site = unique_site("cors");
    let (_, key) = create_tenant(&store, &site).await;
    let acao = |r: &lambda_http::Response<lambda_http::Body>| {
        r.headers()
            .get("access-control-allow-origin")
            .map(|v| v.to_str().unwrap_or("").to_string())
    };
    let body = json!({"events": [{"type": "view", "shopper_id": "g-00000000000000", "product": {"id": "p"}}]})
        .to_string();
    let live = ingest::handle(
        &ingest_deps().await,
        request(
            "POST",
            &format!("/v1/sites/{site}/events"),
            Some("text/plain"),
            &body,
        ),
    )
    .await;
    assert_eq!(acao(&live).as_deref(), Some("*"));
    let refused = ingest::handle(
        &ingest_deps().await,
        request("POST", "/v1/sites/nobody/events", None, &body),
    )
    .await;
    assert_eq!(
        (refused.status().as_u16(), acao(&refused).as_deref()),
        (404, Some("*")),
        "errors are readable too"
    );
    let auth = format!("Bearer {key}");
    let import = ingest::handle(
        &ingest_deps().await,
        request_with(
            "POST",
            &format!("/v1/sites/{site}/events/import"),
            &[("authorization", auth.as_str())],
            &body,
        ),
    )
    .await;
    assert_eq!((import.status().as_u16(), acao(&import)), (200, None));
    let recs = recommend::handle(
        &recommend_deps().await,
        request(
            "GET",
            &format!("/v1/sites/{site}/shoppers/g-00000000000000/recommendations"),
            None,
            "",
        ),
    )
    .await;
    assert_eq!(acao(&recs).as_deref(), Some("*"));
    let lookup = recommend::handle(
        &recommend_deps().await,
        request_with(
            "POST",
            &format!("/v1/sites/{site}/recommendations/lookup"),
            &[("authorization", auth.as_str())],
            "{\"shoppers\": []}",
        ),
    )
    .await;
    assert_eq!((lookup.status().as_u16(), acao(&lookup)), (200, None));
}
