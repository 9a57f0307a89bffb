//! The emulator's error answers, in each API's rest-json shape and with its own codes.

use std::sync::atomic::{AtomicU64, Ordering};

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::semantics::Api;

/// An error response in the service's rest-json shape.
pub(crate) fn service_error(status: StatusCode, code: &str, message: &str) -> Response {
    let body = serde_json::json!({"Code": code, "Message": message, "message": message});
    (
        status,
        [
            ("x-amzn-ErrorType", code),
            (header::CONTENT_TYPE.as_str(), "application/json"),
        ],
        body.to_string(),
    )
        .into_response()
}

/// Each API's error codes: bad input, over quota, server fault.
pub(crate) fn codes(api: Api) -> (&'static str, &'static str, &'static str) {
    match api {
        Api::GetFindings => (
            "InvalidInputException",
            "TooManyRequestsException",
            "InternalException",
        ),
        Api::GetFindingsV2 => (
            "ValidationException",
            "ThrottlingException",
            "InternalServerException",
        ),
    }
}

pub(crate) fn invalid_input(api: Api, message: &str) -> Response {
    service_error(StatusCode::BAD_REQUEST, codes(api).0, message)
}

/// A 429 as the API sends it, counted.
pub(crate) fn throttled(api: Api, counter: &AtomicU64) -> Response {
    counter.fetch_add(1, Ordering::Relaxed);
    service_error(StatusCode::TOO_MANY_REQUESTS, codes(api).1, "Rate exceeded")
}
