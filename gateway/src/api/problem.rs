//! `application/problem+json` responses (RFC 9457), the shape IO uses for its errors.

use super::Body;
use connectors::message::Violation;
use http::{header, Response, StatusCode};
use serde_json::json;

/// An error answer: status, a short title, a detail sentence and, for validation
/// failures, the list of every violation.
pub struct Problem {
    status: StatusCode,
    title: &'static str,
    detail: String,
    violations: Vec<Violation>,
    retry_after_seconds: Option<u32>,
    allow: Option<&'static str>,
}

impl Problem {
    pub fn new(status: StatusCode, title: &'static str, detail: impl Into<String>) -> Problem {
        Problem { status, title, detail: detail.into(), violations: Vec::new(), retry_after_seconds: None, allow: None }
    }

    pub fn invalid(violations: Vec<Violation>) -> Problem {
        let detail = violations.iter().map(Violation::to_string).collect::<Vec<_>>().join("; ");
        Problem { violations, ..Problem::new(StatusCode::BAD_REQUEST, "Invalid message", detail) }
    }

    pub fn unavailable(detail: impl Into<String>, retry_after_seconds: u32) -> Problem {
        Problem {
            retry_after_seconds: Some(retry_after_seconds),
            ..Problem::new(StatusCode::SERVICE_UNAVAILABLE, "Service unavailable", detail)
        }
    }

    pub fn method_not_allowed(allow: &'static str) -> Problem {
        Problem {
            allow: Some(allow),
            ..Problem::new(StatusCode::METHOD_NOT_ALLOWED, "Method not allowed", format!("this path accepts {allow}"))
        }
    }

    pub fn status(&self) -> StatusCode {
        self.status
    }

    pub fn into_response(self) -> Response<Body> {
        let mut body = json!({
            "type": "about:blank",
            "title": self.title,
            "status": self.status.as_u16(),
            "detail": self.detail,
        });
        if !self.violations.is_empty() {
            body["violations"] = json!(self.violations);
        }
        let mut response = Response::new(Body::from(body.to_string()));
        *response.status_mut() = self.status;
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, header::HeaderValue::from_static("application/problem+json"));
        if let Some(seconds) = self.retry_after_seconds {
            headers.insert(header::RETRY_AFTER, header::HeaderValue::from(seconds));
        }
        if let Some(allow) = self.allow {
            headers.insert(header::ALLOW, header::HeaderValue::from_static(allow));
        }
        response
    }
}
