//! The AWS-call recorder on real DynamoDB Local traffic: what it counts for one ingest request.

use affinity::observe::{dynamodb_client, Action, AwsCalls};
use affinity::store::dynamo::DynamoStore;
use affinity_tests::*;
use serde_json::json;

#[tokio::test]
async fn one_storefront_request_costs_one_read_one_event_batch_and_one_profile_write() {
    let site = unique_site("observe");
    create_tenant(&store().await, &site).await;
    let calls = AwsCalls::default();
    let aws = affinity::config::aws().await;
    let deps = ingest::Deps {
        store: DynamoStore::new(dynamodb_client(&aws, &calls), tables()),
        peppers: affinity::pii::DerivedPeppers,
        decay: affinity::profile::Decay::default(),
        event_ttl_s: 86_400,
        clock: affinity::clock::system(),
    };
    let events: Vec<_> = (0..25)
        .map(|i| json!({"type": "view", "shopper_id": "g1-0000000000000", "product": {"id": format!("p{i}"), "category": "c"}}))
        .collect();
    let req = request(
        "POST",
        &format!("/v1/sites/{site}/events"),
        Some("text/plain"),
        &json!({ "events": events }).to_string(),
    );
    let (s, b) = json_of(ingest::handle(&deps, req).await);
    assert_eq!((s, b["accepted"].as_u64()), (200, Some(25)));
    let c = calls.take_counts();
    // BatchGetItem (tenant and profile), BatchWriteItem (25 events), PutItem (profile).
    assert_eq!((c.dynamodb_requests, c.dynamodb_write_requests), (3, 2));
    // 25 events of under 1 KB each, and one new profile item: DynamoDB Local reports what it charges.
    assert!(c.wcu >= 26.0, "{c:?}");
    assert!(c.rcu > 0.0, "{c:?}");
    let t = tables();
    let want: std::collections::BTreeSet<Action> = [
        ("dynamodb:BatchGetItem", &t.tenants),
        ("dynamodb:BatchGetItem", &t.profiles),
        ("dynamodb:BatchWriteItem", &t.events),
        ("dynamodb:PutItem", &t.profiles),
    ]
    .iter()
    .map(|(a, r)| Action {
        action: a.to_string(),
        resource: r.to_string(),
    })
    .collect();
    assert_eq!(calls.actions(), want);
    assert_eq!(
        calls.take_counts().dynamodb_requests,
        0,
        "take_counts resets"
    );
}

#[tokio::test]
async fn a_recommendation_is_two_round_trips_at_most_and_a_warm_function_reuses_popularity() {
    let site = unique_site("observe-recs");
    create_tenant(&store().await, &site).await;
    let events: Vec<_> = (0..5)
        .map(|i| json!({"type": "view", "shopper_id": "g1-0000000000000", "product": {"id": format!("p{i}"), "category": "c"}}))
        .collect();
    let body = json!({ "events": events }).to_string();
    let ingest = ingest_deps().await;
    assert_eq!(
        json_of(
            ingest::handle(
                &ingest,
                request("POST", &format!("/v1/sites/{site}/events"), None, &body)
            )
            .await
        )
        .0,
        200
    );
    aggregate_site(&site).await;

    let calls = AwsCalls::default();
    let aws = affinity::config::aws().await;
    let deps = recommend::Deps {
        store: DynamoStore::new(dynamodb_client(&aws, &calls), tables()),
        peppers: affinity::pii::DerivedPeppers,
        popularity: recommend::cache::PopularityCache::default(),
        decay: affinity::profile::Decay::default(),
        clock: affinity::clock::system(),
    };
    let path = format!("/v1/sites/{site}/shoppers/g1-0000000000000/recommendations");
    let (s, first) = json_of(recommend::handle(&deps, request("GET", &path, None, "")).await);
    // for_you leaves out the product the shopper is on (one of the five, all viewed "now"; that is
    // recently_viewed's, issue 11): four of the five, each a product the shopper viewed.
    assert_eq!(
        (s, first["items"].as_array().map(Vec::len)),
        (200, Some(4)),
        "{first}"
    );
    assert!(
        first["items"]
            .as_array()
            .is_some_and(|items| items.iter().all(|i| i["reason"] == "viewed_before")),
        "{first}"
    );
    let cold = calls.take_counts();
    // Issue 11's bound: at most two sequential reads: tenant, profile and popularity in one
    // BatchGetItem, then the neighbour lists of the products the profile names.
    assert_eq!(
        cold.dynamodb_requests, 2,
        "tenant, profile and popularity in one BatchGetItem, then the lists"
    );
    let (_, second) = json_of(recommend::handle(&deps, request("GET", &path, None, "")).await);
    let warm = calls.take_counts();
    assert_eq!(warm.dynamodb_requests, 2);
    assert!(
        warm.rcu < cold.rcu,
        "the popularity item is not read again: {warm:?} vs {cold:?}"
    );
    assert_eq!(first["items"], second["items"]);
}
