//! The API's one error type. Every error response is `{"error": "<message>", "code": "<code>"}` (plus
//! `"field"` for validation errors) with a stable snake_case code and the matching status.

use crate::ops::OpsError;
use crate::store::StoreError;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: the body is not JSON (syntax error, truncated, too deeply nested).
    #[error("malformed JSON: {0}")]
    MalformedJson(String),
    /// 400: a request that is well-formed JSON but cannot be served as asked.
    #[error("{message}")]
    BadRequest { code: &'static str, message: String },
    /// 401: no key, a malformed header, or an unknown or revoked key.
    #[error("{0}")]
    Unauthorized(&'static str),
    /// 401 from the inbound endpoint: the webhook's signature did not verify (message says which check).
    #[error("invalid signature: {0}")]
    SignatureInvalid(String),
    /// 403: the API key may not make this request (its scopes, or its owner).
    #[error("{0}")]
    Forbidden(&'static str),
    /// 404: the named resource does not exist.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// 404 for a path that matches no route.
    #[error("no route for this path")]
    RouteNotFound,
    /// 405 for a known path with the wrong method.
    #[error("method not allowed on this path")]
    MethodNotAllowed,
    /// 409: the resource already exists.
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    /// 408: the request body did not arrive within the body deadline.
    #[error("the request body did not arrive in time")]
    RequestTimeout,
    /// 431: the request's headers are over their limit (the message states it).
    #[error("{0}")]
    HeadersTooLarge(String),
    /// 413: body or payload over its limit.
    #[error("{0}")]
    PayloadTooLarge(String),
    /// 415: the body is not declared as JSON.
    #[error("expected Content-Type: application/json")]
    UnsupportedMediaType,
    /// 422: one field is invalid; `field` names it (a JSON path such as `events[2].event`).
    #[error("{field}: {message}")]
    Invalid {
        code: &'static str,
        field: String,
        message: String,
    },
    /// 422: an event's `data` does not match its type's schema; `violations` lists each failing
    /// path and keyword.
    #[error("{field} does not match the event type's schema")]
    SchemaMismatch {
        field: String,
        violations: Vec<SchemaViolation>,
    },
    /// 429: too many failed authentications from one address.
    #[error("{0}")]
    TooManyRequests(&'static str),
    /// 503: the store cannot serve the request now; nothing was written. Retry later.
    #[error("the store is unavailable; retry later")]
    Unavailable,
    /// 500: a bug. Details go to the log, not to the client.
    #[error("internal error")]
    Internal,
}

/// The JSON body of every error response.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// A human-readable message.
    pub error: String,
    /// A stable snake_case code for programs.
    pub code: String,
    /// For validation errors: the field at fault.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// For `schema_mismatch`: each way the event's `data` fails its schema.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub violations: Option<Vec<SchemaViolation>>,
}

/// One way an event's `data` fails its type's schema.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SchemaViolation {
    /// Where in `data`, as a JSON pointer (`""` is `data` itself).
    pub path: String,
    /// The schema keyword that failed (`type`, `required`, `minimum`...).
    pub keyword: String,
    /// Where in the schema, as a JSON pointer.
    pub schema_path: String,
}

impl ApiError {
    pub fn invalid(code: &'static str, field: impl Into<String>, message: impl ToString) -> Self {
        Self::Invalid {
            code,
            field: field.into(),
            message: message.to_string(),
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Self::MalformedJson(_) | Self::BadRequest { .. } => StatusCode::BAD_REQUEST,
            Self::Unauthorized(_) | Self::SignatureInvalid(_) => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::NotFound(_) | Self::RouteNotFound => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::Conflict { .. } => StatusCode::CONFLICT,
            Self::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            Self::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::HeadersTooLarge(_) => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::Invalid { .. } | Self::SchemaMismatch { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            Self::TooManyRequests(_) => StatusCode::TOO_MANY_REQUESTS,
            Self::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            Self::MalformedJson(_) => "malformed_json",
            Self::BadRequest { code, .. } | Self::Conflict { code, .. } => code,
            Self::Invalid { code, .. } => code,
            Self::SchemaMismatch { .. } => "schema_mismatch",
            Self::Unauthorized(_) => "unauthorized",
            Self::SignatureInvalid(_) => "invalid_signature",
            Self::Forbidden(_) => "forbidden",
            Self::NotFound(_) => "not_found",
            Self::RouteNotFound => "route_not_found",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::RequestTimeout => "request_timeout",
            Self::PayloadTooLarge(_) => "payload_too_large",
            Self::HeadersTooLarge(_) => "headers_too_large",
            Self::UnsupportedMediaType => "unsupported_media_type",
            Self::TooManyRequests(_) => "too_many_requests",
            Self::Unavailable => "store_unavailable",
            Self::Internal => "internal_error",
        }
    }
}

impl From<OpsError> for ApiError {
    fn from(error: OpsError) -> Self {
        match error {
            OpsError::NotFound(what) => Self::NotFound(what),
            OpsError::Invalid {
                code,
                field,
                message,
            } => Self::Invalid {
                code,
                field,
                message,
            },
            OpsError::SchemaMismatch { field, violations } => Self::SchemaMismatch {
                field,
                violations: violations
                    .into_iter()
                    .map(|v| SchemaViolation {
                        path: v.path,
                        keyword: v.keyword,
                        schema_path: v.schema_path,
                    })
                    .collect(),
            },
            OpsError::Conflict { code, message } => Self::Conflict { code, message },
            OpsError::PayloadTooLarge(message) => Self::PayloadTooLarge(message),
            OpsError::Unavailable => Self::Unavailable,
            OpsError::Internal => Self::Internal,
        }
    }
}

/// Store failures are logged (once, with detail) where they become an [`OpsError`].
impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        Self::from(OpsError::from(error))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let field = match &self {
            Self::Invalid { field, .. } | Self::SchemaMismatch { field, .. } => Some(field.clone()),
            _ => None,
        };
        let violations = match &self {
            Self::SchemaMismatch { violations, .. } => Some(violations.clone()),
            _ => None,
        };
        let body = ErrorBody {
            error: self.to_string(),
            code: self.code().to_owned(),
            field,
            violations,
        };
        let mut response = (status, axum::Json(body)).into_response();
        let headers = response.headers_mut();
        match self {
            Self::Unavailable => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            Self::TooManyRequests(_) => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from_static("60"));
            }
            Self::Unauthorized(_) => {
                headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            _ => {}
        }
        response
    }
}
