//! Extractors whose rejections use the API's error format: JSON bodies (with the failing field named)
//! and query strings.

use super::error::ApiError;
use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::{StatusCode, header, request::Parts};
use serde::de::DeserializeOwned;

/// Like `axum::Json`, but: 415 without a JSON content type, 413 over the route's body limit, 400 for
/// syntax errors, 422 naming the field for well-formed JSON of the wrong shape.
pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        if !has_json_content_type(request.headers()) {
            return Err(ApiError::UnsupportedMediaType);
        }
        let bytes = read_body(request, state).await?;
        parse_json(&bytes).map(ApiJson)
    }
}

/// The body limit of a route (the value given to `DefaultBodyLimit`), for the 413 message.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimit(pub usize);

/// The whole body: 413 stating the route's limit, 408 when it does not arrive within the body
/// deadline (`http_body_timeout_ms`), 400 when it cannot be read.
pub async fn read_body<S: Send + Sync>(request: Request, state: &S) -> Result<Bytes, ApiError> {
    let limit = request.extensions().get::<BodyLimit>().copied();
    Bytes::from_request(request, state)
        .await
        .map_err(|rejection| match rejection.status() {
            StatusCode::PAYLOAD_TOO_LARGE => ApiError::PayloadTooLarge(match limit {
                Some(BodyLimit(bytes)) => {
                    format!("request body is over its limit of {bytes} bytes")
                }
                None => "request body is over the size limit".into(),
            }),
            _ if caused_by_timeout(&rejection) => ApiError::RequestTimeout,
            _ => ApiError::BadRequest {
                code: "unreadable_body",
                message: "the request body could not be read".into(),
            },
        })
}

fn caused_by_timeout(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(error);
    while let Some(error) = cause {
        if error.is::<tower_http::timeout::TimeoutError>() {
            return true;
        }
        cause = error.source();
    }
    false
}

/// Like [`ApiJson`], for actions whose body is optional: an empty body means `T::default()`.
pub struct OptionalJson<T>(pub T);

impl<S, T> FromRequest<S> for OptionalJson<T>
where
    S: Send + Sync,
    T: DeserializeOwned + Default,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let json_declared = has_json_content_type(request.headers());
        let bytes = read_body(request, state).await?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(OptionalJson(T::default()));
        }
        if !json_declared {
            return Err(ApiError::UnsupportedMediaType);
        }
        parse_json(&bytes).map(OptionalJson)
    }
}

/// Parses JSON with the error mapping described on [`ApiJson`].
///
/// A body that is not JSON is always 400, never 422 for a field that happened to come before the
/// syntax error: a failed parse is classified by a syntax check ([`check_syntax`]). The check runs
/// only then (and for a body too deep), not before every parse: the typed parse reads the whole
/// body as strictly (skipped values are checked as the check skips them) and `end` refuses trailing
/// bytes, so a body it accepts would pass the check too. For a batch of 1 KiB events the check was
/// a second full pass.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    // The depth first: serde_json skips raw and ignored values without its recursion limit.
    if nesting_depth(bytes) > MAX_JSON_DEPTH {
        check_syntax(bytes)?;
        return Err(ApiError::BadRequest {
            code: "json_too_deep",
            message: format!("JSON nests deeper than {MAX_JSON_DEPTH} levels"),
        });
    }
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let parsed: Result<T, _> = serde_path_to_error::deserialize(&mut deserializer);
    match parsed {
        Ok(value) => match deserializer.end() {
            Ok(()) => Ok(value),
            Err(error) => Err(ApiError::MalformedJson(error.to_string())),
        },
        Err(error) => {
            check_syntax(bytes)?;
            let path = error.path().to_string();
            let inner = error.into_inner();
            let field = match path.as_str() {
                "." => missing_field_name(&inner).unwrap_or_else(|| "body".into()),
                _ => path,
            };
            let code = field_code(&field);
            Err(ApiError::invalid(
                code,
                field,
                plain_message(&strip_position(&inner)),
            ))
        }
    }
}

/// The error code of a field that has its own (the same code as its semantic check), else
/// `invalid_field`.
fn field_code(field: &str) -> &'static str {
    match field.split('.').any(|segment| segment == "retry") {
        true => "invalid_retry_policy",
        false => "invalid_field",
    }
}

/// serde's message in the API's terms: JSON types instead of Rust ones (`struct PublishEvent`,
/// `u32`, `untagged enum RetryPolicy`).
pub fn plain_message(message: &str) -> String {
    if message.starts_with("data did not match any variant of untagged enum") {
        return "does not match any accepted shape".into();
    }
    let Some((before, expected)) = message.rsplit_once("expected ") else {
        return message.to_owned();
    };
    let plain = match expected.trim_end_matches('.') {
        e if e.starts_with("struct variant") || e.starts_with("tuple variant") => "a JSON object",
        e if e.starts_with("struct ") || e.starts_with("map") => "a JSON object",
        e if e.starts_with("tuple struct") || e.starts_with("tuple") => "a JSON array",
        e if e.starts_with("enum ") => "one of the documented values",
        "u8" | "u16" | "u32" | "u64" | "u128" | "usize" => "a non-negative integer",
        "i8" | "i16" | "i32" | "i64" | "i128" | "isize" => "an integer",
        "f32" | "f64" => "a number",
        "unit" => "null",
        _ => return message.to_owned(),
    };
    format!("{before}expected {plain}")
}

/// 400 `malformed_json` unless `bytes` is one JSON value.
fn check_syntax(bytes: &[u8]) -> Result<(), ApiError> {
    serde_json::from_slice::<serde::de::IgnoredAny>(bytes)
        .map(drop)
        .map_err(|e| ApiError::MalformedJson(e.to_string()))
}

/// Deepest nesting of arrays and objects accepted in a request body.
pub const MAX_JSON_DEPTH: usize = 64;

/// The deepest nesting of `[`/`{` in JSON, ignoring brackets inside strings (skipped with `memchr`:
/// in an event batch most bytes are string contents). On text that is not JSON the answer means
/// nothing, and an unterminated string ends the count.
fn nesting_depth(json: &[u8]) -> usize {
    let (mut depth, mut deepest) = (0usize, 0usize);
    let mut at = 0;
    while let Some(&byte) = json.get(at) {
        match byte {
            b'"' => {
                // To the closing quote, stepping over each escape and the byte it escapes.
                at += 1;
                loop {
                    let rest = json.get(at..).unwrap_or_default();
                    match memchr::memchr2(b'"', b'\\', rest) {
                        Some(n) if rest[n] == b'\\' => at += n + 2,
                        Some(n) => {
                            at += n;
                            break;
                        }
                        None => return deepest,
                    }
                }
            }
            b'[' | b'{' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
        at += 1;
    }
    deepest
}

/// serde reports a missing field at the parent's path; pull the name out of the message instead.
fn missing_field_name(error: &serde_json::Error) -> Option<String> {
    let message = error.to_string();
    let rest = message.strip_prefix("missing field `")?;
    Some(rest.split('`').next()?.to_owned())
}

fn strip_position(error: &serde_json::Error) -> String {
    let message = error.to_string();
    match message.find(" at line ") {
        Some(cut) => message[..cut].to_owned(),
        None => message,
    }
}

fn has_json_content_type(headers: &axum::http::HeaderMap) -> bool {
    let Some(value) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let mime = value.split(';').next().unwrap_or("").trim();
    mime.eq_ignore_ascii_case("application/json")
        || (mime.starts_with("application/") && mime.ends_with("+json"))
}

/// Query-string parameters, with 422 `invalid_query` on bad values.
pub struct ApiQuery<T>(pub T);

impl<S, T> FromRequestParts<S> for ApiQuery<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        let query = parts.uri.query().unwrap_or("");
        serde_urlencoded::from_str(query)
            .map(ApiQuery)
            .map_err(|e| ApiError::invalid("invalid_query", "query", e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_never_name_rust_types() {
        let cases = [
            (
                "invalid type: string \"x\", expected struct PublishEvent",
                "invalid type: string \"x\", expected a JSON object",
            ),
            (
                "invalid value: integer `-1`, expected u32",
                "invalid value: integer `-1`, expected a non-negative integer",
            ),
            (
                "invalid type: string \"1\", expected i64",
                "invalid type: string \"1\", expected an integer",
            ),
            (
                "data did not match any variant of untagged enum RetryPolicy",
                "does not match any accepted shape",
            ),
            ("missing field `url`", "missing field `url`"),
            (
                "unknown variant `x`, expected `standard_webhooks`",
                "unknown variant `x`, expected `standard_webhooks`",
            ),
        ];
        for (serde, plain) in cases {
            assert_eq!(plain_message(serde), plain, "{serde}");
        }
    }

    #[test]
    fn nesting_depth_ignores_strings() {
        let cases: &[(&str, usize)] = &[
            ("1", 0),
            ("{}", 1),
            (r#"{"a":[{"b":[]}]}"#, 4),
            (r#"{"a":"[[[[{{{{"}"#, 1),
            (r#"{"a":"\"[[[["}"#, 1),
            (r#"[[],[[]],[]]"#, 3),
            (r#"[{"a":"\\"},[["\\\"[["]]]"#, 3),
            (r#"["a\\\\",["#, 2),
            // Not JSON: whatever the count, nothing reads out of bounds.
            (r#"[["unterminated [[["#, 2),
            (r#"[["ends in an escape\"#, 2),
            ("\"", 0),
        ];
        for (json, expected) in cases {
            assert_eq!(nesting_depth(json.as_bytes()), *expected, "{json}");
        }
    }

    #[derive(Debug, serde::Deserialize)]
    struct Named {
        #[allow(dead_code)]
        name: String,
    }

    /// Not JSON is 400 `malformed_json` even where the typed parse fails first on a field, or
    /// succeeds and leaves bytes behind; JSON of the wrong shape is 422.
    #[test]
    fn syntax_errors_win_over_field_errors() {
        for body in [
            &b"{\"name\": 1, "[..],
            b"{\"name\": \"a\"} x",
            b"{\"name\": \"a\"}}",
            b"",
        ] {
            let error = parse_json::<Named>(body).unwrap_err();
            assert_eq!(
                error.code(),
                "malformed_json",
                "{}",
                String::from_utf8_lossy(body)
            );
        }
        let error = parse_json::<Named>(b"{\"name\": 1}").unwrap_err();
        assert_eq!(error.code(), "invalid_field");
        let error = parse_json::<Named>(b"{}").unwrap_err();
        assert_eq!(error.code(), "invalid_field");
        assert!(parse_json::<Named>(b" {\"name\": \"a\", \"other\": [1]} ").is_ok());
        // Too deep and not JSON: the syntax error is what the client must fix first.
        let deep = format!("{}x", "[".repeat(MAX_JSON_DEPTH + 1));
        let error = parse_json::<Named>(deep.as_bytes()).unwrap_err();
        assert_eq!(error.code(), "malformed_json");
    }

    #[test]
    fn too_deep_is_refused() {
        let ok = format!(
            "{}{}",
            "[".repeat(MAX_JSON_DEPTH),
            "]".repeat(MAX_JSON_DEPTH)
        );
        assert!(parse_json::<serde::de::IgnoredAny>(ok.as_bytes()).is_ok());
        let deep = format!("[{ok}]");
        let error = parse_json::<serde::de::IgnoredAny>(deep.as_bytes()).unwrap_err();
        assert_eq!(error.code(), "json_too_deep");
    }
}
