//! Who is calling, and what they may do: the single place authentication
//! and authorization will live.
//!
//! There are no tokens yet. A caller names itself with the
//! `X-Artifactstore-Actor` header (recorded as the events' actor) or is
//! `anonymous`, and admin endpoints are open. When tokens arrive,
//! [`Caller`] verifies the bearer token and [`AdminCaller`] checks the
//! admin scope; handlers do not change.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;

use crate::problem::Problem;

/// The header a caller names itself with.
pub(crate) const ACTOR_HEADER: &str = "x-artifactstore-actor";
/// The actor recorded when no header names one.
pub(crate) const ANONYMOUS: &str = "anonymous";
/// Longest actor name accepted, in bytes.
const MAX_ACTOR_BYTES: usize = 256;

/// The caller of a request.
#[derive(Debug, Clone)]
pub(crate) struct Caller {
    /// Recorded as the actor of the events the request appends.
    pub(crate) actor: String,
}

/// A caller allowed to use admin endpoints.
#[derive(Debug, Clone)]
pub(crate) struct AdminCaller(pub(crate) Caller);

fn actor_of(parts: &Parts) -> Result<String, Problem> {
    let Some(value) = parts.headers.get(ACTOR_HEADER) else {
        return Ok(ANONYMOUS.to_owned());
    };
    let invalid =
        |why: &str| Problem::bad_request("invalid_header", format!("X-Artifactstore-Actor {why}"));
    let text = std::str::from_utf8(value.as_bytes()).map_err(|_| invalid("must be UTF-8"))?;
    let text = text.trim();
    if text.is_empty() {
        return Err(invalid("must not be empty"));
    }
    if text.len() > MAX_ACTOR_BYTES {
        return Err(invalid(&format!("must be at most {MAX_ACTOR_BYTES} bytes")));
    }
    if text.chars().any(char::is_control) {
        return Err(invalid("must not contain control characters"));
    }
    Ok(text.to_owned())
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(Self {
            actor: actor_of(parts)?,
        })
    }
}

impl<S: Send + Sync> FromRequestParts<S> for AdminCaller {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let caller = Caller::from_request_parts(parts, state).await?;
        // The admin scope check goes here once tokens exist (401
        // `unauthorized` without a token, 403 `forbidden` without the scope).
        Ok(Self(caller))
    }
}
