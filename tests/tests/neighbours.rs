//! The neighbour-list port against DynamoDB Local: conditional writes, versions, the round trips the
//! recommendation reads make, and the aggregate function folding stored events into lists.

use affinity::recommender::neighbours::{ListKey, Neighbour, NeighbourList};
use affinity::store::{ListWrite, NeighbourStore, RecommendQuery, RecommendSource};
use affinity_tests::*;
use serde_json::json;

/// A conditional write of `key`'s list (one neighbour `n` of weight `w`) over version `expected`.
fn write(key: &ListKey, n: &str, w: f64, expected: u64) -> ListWrite {
    ListWrite {
        key: key.clone(),
        list: list(n, w),
        expected,
    }
}

fn list(n: &str, w: f64) -> NeighbourList {
    NeighbourList {
        ref_ms: 1_000,
        sessions: 2.0,
        category: Some("sofas".into()),
        brand: None,
        neighbours: vec![Neighbour {
            id: n.into(),
            w,
            n: 1.0,
            c: Some("sofas".into()),
        }],
    }
}

#[tokio::test]
async fn lists_are_written_conditionally_and_read_in_the_recommendation_round_trips() {
    let store = store().await;
    let site = unique_site("lists");
    create_tenant(&store, &site).await;
    let sofa = ListKey::viewed("sofa");
    let ink = ListKey::bought("ink");
    let conflicts = store
        .save_neighbour_lists(
            &site,
            vec![
                write(&sofa, "cushion", 1.0, 0),
                write(&ink, "printer", 2.0, 0),
            ],
        )
        .await
        .expect("save");
    assert!(conflicts.is_empty());
    let got = store
        .neighbour_lists(&site, &[sofa.clone(), ink.clone(), ListKey::viewed("none")])
        .await
        .expect("read");
    assert_eq!(got.len(), 2);
    assert_eq!(got[&sofa], (list("cushion", 1.0), 1));
    assert_eq!(got[&ink].0.neighbours[0].id, "printer");
    // A stale version loses, a current one wins; one write's conflict leaves the other standing.
    let conflicts = store
        .save_neighbour_lists(
            &site,
            vec![write(&sofa, "lamp", 3.0, 0), write(&ink, "paper", 4.0, 1)],
        )
        .await
        .expect("save");
    assert_eq!(conflicts, std::slice::from_ref(&sofa));
    let got = store
        .neighbour_lists(&site, &[sofa.clone(), ink.clone()])
        .await
        .expect("read");
    assert_eq!(got[&sofa].0.neighbours[0].id, "cushion");
    assert_eq!(got[&ink], (list("paper", 4.0), 2));
    // The recommendation's first read brings the lists with the tenant; a list is never a profile.
    let read = store
        .recommend_read(&RecommendQuery {
            site_id: &site,
            shopper_key: "g:nobody",
            with_popularity: true,
            lists: std::slice::from_ref(&sofa),
        })
        .await
        .expect("read");
    assert!(read.tenant.is_some() && read.profile.is_none());
    assert_eq!(read.lists[&sofa].neighbours[0].id, "cushion");
    let (profile, lists) = store
        .profile_and_lists(&site, None, std::slice::from_ref(&ink))
        .await
        .expect("read");
    assert!(profile.is_none());
    assert_eq!(lists[&ink].neighbours[0].id, "paper");
    // The lists carry site_id: tenant deletion's by_site query finds them.
    assert_eq!(items_of_site(&tables().profiles, &site).await.len(), 2);
}

#[tokio::test]
async fn the_aggregate_function_folds_a_session_into_stored_lists_that_for_you_serves() {
    let store = store().await;
    let site = unique_site("fold");
    create_tenant(&store, &site).await;
    let now = affinity::now_ms();
    let shopper = "guest-fold-0123456789";
    let events: Vec<_> = ["sofa", "cushion", "lamp"]
        .iter()
        .enumerate()
        .map(|(i, p)| json!({"type": "view", "shopper_id": shopper, "timestamp": now - 60_000 + 1_000 * i as i64,
                             "product": {"id": p, "category": "sofas"}}))
        .collect();
    let (s, b) = json_of(
        ingest::handle(
            &ingest_deps().await,
            request(
                "POST",
                &format!("/v1/sites/{site}/events"),
                None,
                &json!({"events": events}).to_string(),
            ),
        )
        .await,
    );
    assert_eq!(s, 200, "{b}");
    let report = aggregate_site(&site).await;
    assert_eq!(report.applied, 3, "{report:?}");
    let got = store
        .neighbour_lists(&site, &[ListKey::viewed("sofa")])
        .await
        .expect("read");
    let sofa = &got[&ListKey::viewed("sofa")].0;
    let ids: Vec<&str> = sofa.neighbours.iter().map(|n| n.id.as_str()).collect();
    assert_eq!(ids, ["cushion", "lamp"]);
    // Folding the same stored events again (a redelivery) changes nothing.
    let again = aggregate_site(&site).await;
    assert_eq!((again.applied, again.duplicates), (0, 3));
    let after = store
        .neighbour_lists(&site, &[ListKey::viewed("sofa")])
        .await
        .expect("read");
    assert_eq!(&after[&ListKey::viewed("sofa")].0, sofa);
    // Another shopper on the sofa's page sees what this session viewed with it.
    let (s, r) = json_of(
        recommend::handle(
            &recommend_deps().await,
            request(
                "GET",
                &format!("/v1/sites/{site}/shoppers/guest-other-0123456789/recommendations?type=also_viewed&product_id=sofa"),
                None,
                "",
            ),
        )
        .await,
    );
    assert_eq!(s, 200, "{r}");
    assert_eq!(r["items"][0]["product_id"], "cushion", "{r}");
    assert_eq!(r["items"][0]["reason_text"], "viewed with sofa");
}
