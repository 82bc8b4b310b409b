use super::*;
use serde_json::json;

#[test]
fn http_events_and_the_schedule_are_told_apart() {
    assert_eq!(
        classify(&json!({"version": "2.0", "requestContext": {}})),
        EventKind::Http
    );
    assert_eq!(
        classify(&json!({"httpMethod": "GET", "path": "/"})),
        EventKind::Http
    );
    assert_eq!(
        classify(&json!({"source": "aws.events", "detail-type": "Scheduled Event", "detail": {}})),
        EventKind::Schedule
    );
    assert_eq!(classify(&json!({"Records": []})), EventKind::Unknown);
}
