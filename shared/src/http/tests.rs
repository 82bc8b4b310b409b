//! Unit tests of the parent module.

use super::*;

#[test]
fn segments_survive_stages_and_encoding() {
    assert_eq!(
        v1_segments("/prod/v1/sites/s1/shoppers/a%2Fb/recommendations"),
        Some(vec![
            "sites".into(),
            "s1".into(),
            "shoppers".into(),
            "a/b".into(),
            "recommendations".into()
        ])
    );
    assert_eq!(v1_segments("/health"), None);
}

#[test]
fn errors_name_field_and_status() {
    let b = ApiError::bad_request("events", "must be an array").body();
    assert_eq!(b["error"]["status"], 400);
    assert_eq!(b["error"]["field"], "events");
    assert_eq!(ApiError::site_deleted().status.as_u16(), 410);
}

#[test]
fn every_code_has_one_name_and_its_status() {
    let mut names: Vec<&str> = ErrorCode::ALL.iter().map(|c| c.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), ErrorCode::ALL.len(), "two codes share a name");
    assert_eq!(ErrorCode::UnknownSite.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        ErrorCode::BadSignedPayload.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(ErrorCode::PlatformError.status(), StatusCode::BAD_GATEWAY);
    assert_eq!(
        ErrorCode::Misconfigured.status(),
        StatusCode::INTERNAL_SERVER_ERROR
    );
    let b = ApiError::new(ErrorCode::ExpiredState, Some("state"), "old").body();
    assert_eq!(b["error"]["code"], "expired_state");
    assert_eq!(b["error"]["status"], 400);
}

#[test]
fn storage_and_kms_failures_become_retryable_or_permanent_answers() {
    use crate::kms::KmsError;
    use crate::store::StoreError;
    let e = ApiError::from(StoreError::Unavailable("throttled".into()));
    assert_eq!((e.status.as_u16(), e.code), (503, ErrorCode::Unavailable));
    assert!(!e.message.contains("throttled"), "internal detail leaked");
    assert_eq!(
        ApiError::from(StoreError::TenantInactive).status.as_u16(),
        410
    );
    assert_eq!(
        ApiError::from(StoreError::Corrupt("x".into()))
            .status
            .as_u16(),
        500
    );
    assert_eq!(
        ApiError::from(KmsError::Unavailable("t".into()))
            .status
            .as_u16(),
        503
    );
    assert_eq!(
        ApiError::from(KmsError::Missing("pepper")).code,
        ErrorCode::Misconfigured
    );
}

fn request(content_type: &str, body: &str) -> Request {
    let mut r = Request::new(Body::Text(body.to_string()));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_str(content_type).expect("header"),
    );
    r
}

#[test]
fn read_json_names_what_is_wrong_without_echoing_values() {
    #[derive(serde::Deserialize, Debug)]
    struct Consent {
        #[allow(dead_code)]
        enabled: bool,
    }
    let ok: Consent =
        read_json(&request("application/json", r#"{"enabled":true}"#), 64).expect("valid body");
    assert!(ok.enabled);
    let e = read_json::<Consent>(&request("text/xml", "{}"), 64).expect_err("415");
    assert_eq!(e.status.as_u16(), 415);
    let e = read_json::<Consent>(&request("text/plain", &"x".repeat(65)), 64).expect_err("413");
    assert_eq!((e.status.as_u16(), e.field.as_deref()), (413, Some("body")));
    let e = read_json::<Consent>(
        &request("application/json", r#"{"enabled":"jane@example.com"}"#),
        64,
    )
    .expect_err("400");
    assert_eq!(e.status.as_u16(), 400);
    assert!(!e.message.contains("jane"), "{}", e.message);
    assert!(e.message.contains("line 1"), "{}", e.message);
}
