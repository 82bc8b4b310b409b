//! The tenant-delete Lambda. Its routes are defined in template.yaml; the handler is work in progress and answers
//! 501 with a JSON error until it lands.

use affinity::http::ApiError;
use lambda_http::http::StatusCode;
use lambda_http::{run, service_fn, Error, Request};

#[tokio::main]
async fn main() -> Result<(), Error> {
    affinity::config::init_logging();
    run(service_fn(|_req: Request| async {
        let mut e = ApiError::unavailable("this route is not implemented yet");
        e.status = StatusCode::NOT_IMPLEMENTED;
        e.code = "not_implemented";
        Ok::<_, std::convert::Infallible>(e.into_response())
    }))
    .await
}
