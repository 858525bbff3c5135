//! Extractors whose rejections are problem details with stable codes,
//! instead of axum's plain-text defaults.

use axum::body::Bytes;
use axum::extract::path::ErrorKind;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header::CONTENT_TYPE;
use axum::http::request::Parts;
use axum::http::StatusCode;
use serde::de::DeserializeOwned;
use uuid::Uuid;

use crate::problem::{ApiResult, Problem};

/// A JSON request body. The `Content-Type` must be `application/json` (or
/// a `+json` type such as `application/schema+json`): a browser sends a
/// cross-site `text/plain` or form body without asking first, and such a
/// body must never be read as JSON (docs/security.md). The body must parse
/// as the endpoint's JSON with no key repeated in any object, and request
/// structs deny unknown fields.
#[derive(Debug)]
pub(crate) struct ApiJson<T>(pub(crate) T);

/// Whether a `Content-Type` names JSON.
fn is_json_media_type(value: &str) -> bool {
    let essence = value.split(';').next().unwrap_or_default().trim();
    let essence = essence.to_ascii_lowercase();
    essence == "application/json"
        || essence
            .strip_prefix("application/")
            .is_some_and(|subtype| subtype.ends_with("+json") && subtype.len() > "+json".len())
}

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = Problem;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let content_type = req
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        if !is_json_media_type(content_type) {
            return Err(Problem::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                format!(
                    "this endpoint takes a JSON body: send `Content-Type: application/json` (got {})",
                    if content_type.is_empty() { "none".to_owned() } else { format!("{content_type:?}") }
                ),
            ));
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                Problem::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "payload_too_large",
                    "the JSON body is larger than this server accepts",
                )
            } else {
                Problem::bad_request("upload_interrupted", "the request body could not be read")
            }
        })?;
        let invalid = |e: serde_json::Error| {
            Problem::bad_request(
                "invalid_json",
                format!("the request body is not acceptable JSON: {e}"),
            )
        };
        serde_json::from_slice::<NoRepeatedKeys>(&bytes).map_err(invalid)?;
        serde_json::from_slice(&bytes).map(Self).map_err(invalid)
    }
}

/// Any JSON value in which no object repeats a key. serde_json keeps the
/// last of repeated keys, so `{"a":1,"a":2}` would otherwise be accepted
/// with a value its sender may not have meant (RFC 8259 leaves it
/// undefined); parsing through this first refuses it.
struct NoRepeatedKeys;

impl<'de> serde::Deserialize<'de> for NoRepeatedKeys {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(NoRepeatedKeysVisitor)
    }
}

struct NoRepeatedKeysVisitor;

impl<'de> serde::de::Visitor<'de> for NoRepeatedKeysVisitor {
    type Value = NoRepeatedKeys;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<NoRepeatedKeys, E> {
        Ok(NoRepeatedKeys)
    }
    fn visit_i64<E>(self, _: i64) -> Result<NoRepeatedKeys, E> {
        Ok(NoRepeatedKeys)
    }
    fn visit_u64<E>(self, _: u64) -> Result<NoRepeatedKeys, E> {
        Ok(NoRepeatedKeys)
    }
    fn visit_f64<E>(self, _: f64) -> Result<NoRepeatedKeys, E> {
        Ok(NoRepeatedKeys)
    }
    fn visit_str<E>(self, _: &str) -> Result<NoRepeatedKeys, E> {
        Ok(NoRepeatedKeys)
    }
    fn visit_unit<E>(self) -> Result<NoRepeatedKeys, E> {
        Ok(NoRepeatedKeys)
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(
        self,
        mut seq: A,
    ) -> Result<NoRepeatedKeys, A::Error> {
        while seq.next_element::<NoRepeatedKeys>()?.is_some() {}
        Ok(NoRepeatedKeys)
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(
        self,
        mut map: A,
    ) -> Result<NoRepeatedKeys, A::Error> {
        let mut seen = std::collections::HashSet::new();
        while let Some(key) = map.next_key::<String>()? {
            if !seen.insert(key.clone()) {
                return Err(serde::de::Error::custom(format!(
                    "the key {key:?} is repeated"
                )));
            }
            map.next_value::<NoRepeatedKeys>()?;
        }
        Ok(NoRepeatedKeys)
    }
}

/// Query parameters; a malformed or unknown one is a 400 `invalid_query`.
#[derive(Debug)]
pub(crate) struct ApiQuery<T>(pub(crate) T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| Self(q.0))
            .map_err(|rejection: QueryRejection| {
                Problem::bad_request("invalid_query", rejection.body_text())
            })
    }
}

/// Path parameters, percent-decoded. Ids stay text here and go through
/// [`parse_id`], so a bad id gets `invalid_id`; the only other failure is
/// invalid UTF-8 after decoding.
#[derive(Debug)]
pub(crate) struct ApiPath<T>(pub(crate) T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for ApiPath<T> {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        // axum keeps a `%` that starts no escape as it is, so `a%zz` and
        // `a%25zz` would name the same file: refuse the malformed one.
        if let Some(at) = malformed_percent_escape(parts.uri.path()) {
            return Err(Problem::bad_request(
                "invalid_path",
                format!("the request path has a `%` at byte {at} that starts no %XX escape"),
            ));
        }
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|p| Self(p.0))
            .map_err(|rejection| match &rejection {
                PathRejection::FailedToDeserializePathParams(e) => match e.kind() {
                    ErrorKind::InvalidUtf8InPathParam { key } if key == "relative_path" => {
                        Problem::bad_request(
                            "invalid_path",
                            "the relative path is not UTF-8 after percent-decoding",
                        )
                    }
                    other => Problem::bad_request("invalid_id", other.to_string()),
                },
                // Only reachable if a handler is mounted on a route without
                // the parameters it reads: a bug, not bad input.
                _ => Problem::internal(rejection.body_text()),
            })
    }
}

/// The byte offset of the first `%` not followed by two hex digits.
fn malformed_percent_escape(path: &str) -> Option<usize> {
    let bytes = path.as_bytes();
    bytes.iter().enumerate().find_map(|(at, &b)| {
        let escape_ok = bytes
            .get(at + 1..at + 3)
            .is_some_and(|hex| hex.iter().all(u8::is_ascii_hexdigit));
        (b == b'%' && !escape_ok).then_some(at)
    })
}

/// Parses an id from a path; ids are UUIDs.
pub(crate) fn parse_id(text: &str, what: &str) -> ApiResult<Uuid> {
    Uuid::parse_str(text).map_err(|_| {
        Problem::bad_request(
            "invalid_id",
            format!("{what} {text:?} is not a valid id (a UUID)"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_media_types() {
        for ok in [
            "application/json",
            "Application/JSON; charset=utf-8",
            "application/schema+json",
            "application/problem+json ;x=1",
        ] {
            assert!(is_json_media_type(ok), "{ok}");
        }
        for refused in [
            "",
            "text/plain",
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=x",
            "application/+json",
            "text/json+json",
            "application/jsonx",
        ] {
            assert!(!is_json_media_type(refused), "{refused}");
        }
    }

    #[test]
    fn malformed_percent_escapes() {
        assert_eq!(
            malformed_percent_escape("/v1/packages/x/files/a%20b%2Fc"),
            None
        );
        assert_eq!(malformed_percent_escape("/a%zz"), Some(2));
        assert_eq!(malformed_percent_escape("/a%2"), Some(2));
        assert_eq!(malformed_percent_escape("/a%"), Some(2));
        assert_eq!(malformed_percent_escape("/a%25zz"), None);
    }

    #[test]
    fn repeated_keys_are_refused_at_any_depth() {
        let parse = |text: &str| serde_json::from_str::<NoRepeatedKeys>(text).map(|_| ());
        assert!(parse(r#"{"a":1,"b":{"a":2},"c":[{"a":1},{"a":2}]}"#).is_ok());
        for repeated in [
            r#"{"a":1,"a":2}"#,
            r#"{"m":{"k":"x","k":"y"}}"#,
            r#"[{"k":1,"k":1}]"#,
        ] {
            let err = parse(repeated).unwrap_err().to_string();
            assert!(err.contains("repeated"), "{repeated}: {err}");
        }
    }
}
