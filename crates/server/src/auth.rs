//! Who is calling, and what they may do: the one place requests are
//! authenticated and authorized.
//!
//! [`authenticate`] runs before every API route: it turns the bearer token
//! (if any) into a [`Principal`] and checks the scope the method needs
//! (reads `read`, everything else `write`); [`AdminCaller`] adds the `admin`
//! check, and [`Caller::may_write_package`] the producer limit. With auth
//! not required (the loopback default), a request without a token acts as
//! an unrestricted caller named by `X-Artifactstore-Actor` (or
//! `anonymous`); with auth required, the actor is always the token's name.

use artifactstore_registry::core::token::Scope;
use artifactstore_registry::{Principal, Registry, RegistryError};
use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{header, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use uuid::Uuid;

use crate::problem::Problem;
use crate::AppState;

/// The header a caller names itself with when auth is not required.
pub(crate) const ACTOR_HEADER: &str = "x-artifactstore-actor";
/// The actor recorded when no header names one.
pub(crate) const ANONYMOUS: &str = "anonymous";
/// Longest actor name accepted, in bytes.
const MAX_ACTOR_BYTES: usize = 256;
/// Routes anyone may call: load balancers and scrapers have no token.
pub(crate) const PUBLIC_PATHS: [&str; 3] = ["/health", "/metrics", "/openapi.json"];

/// The caller of a request.
#[derive(Debug, Clone)]
pub(crate) struct Caller {
    /// Recorded as the actor of the events the request appends.
    pub(crate) actor: String,
    /// What the caller may do.
    pub(crate) principal: Principal,
}

impl Caller {
    /// Refuses (403) when the caller's token is limited to producers other
    /// than the package's.
    pub(crate) async fn may_write_package(
        &self,
        registry: &Registry,
        package_id: Uuid,
    ) -> Result<(), Problem> {
        if self.principal.producers.is_empty() {
            return Ok(());
        }
        let package = registry.get_package(package_id).await?;
        Ok(self.principal.may_write_producer(&package.producer)?)
    }
}

/// A caller allowed to use admin endpoints.
#[derive(Debug, Clone)]
pub(crate) struct AdminCaller(pub(crate) Caller);

fn actor_header(parts: &axum::http::HeaderMap) -> Result<String, Problem> {
    let Some(value) = parts.get(ACTOR_HEADER) else {
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

fn bearer(headers: &axum::http::HeaderMap) -> Result<Option<&str>, Problem> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let text = value
        .to_str()
        .ok()
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    match text {
        Some(token) if !token.is_empty() => Ok(Some(token)),
        _ => Err(RegistryError::Unauthorized("use `Authorization: Bearer <token>`".into()).into()),
    }
}

async fn caller_of(state: &AppState, headers: &axum::http::HeaderMap) -> Result<Caller, Problem> {
    match bearer(headers)? {
        Some(token) => {
            let principal = state.registry.authenticate(token).await?;
            Ok(Caller {
                actor: principal.name.clone(),
                principal,
            })
        }
        None if state.options.auth_required => {
            Err(RegistryError::Unauthorized("this server requires an API token".into()).into())
        }
        None => {
            let actor = actor_header(headers)?;
            Ok(Caller {
                principal: Principal {
                    name: actor.clone(),
                    scope: Scope::Admin,
                    producers: Vec::new(),
                },
                actor,
            })
        }
    }
}

/// Middleware: authenticates every API request and checks the scope its
/// method needs; the [`Caller`] is left in the request's extensions.
pub(crate) async fn authenticate(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    if PUBLIC_PATHS.contains(&request.uri().path()) {
        return next.run(request).await;
    }
    // A copy of the headers: the request body is not Sync, so the request
    // itself cannot be borrowed across the token lookup.
    let headers = request.headers().clone();
    let caller = match caller_of(&state, &headers).await {
        Ok(caller) => caller,
        Err(problem) => return problem.into_response(),
    };
    let needed = match *request.method() {
        Method::GET | Method::HEAD | Method::OPTIONS => Scope::Read,
        _ => Scope::Write,
    };
    if let Err(e) = caller.principal.require(needed) {
        return Problem::from(e).into_response();
    }
    request.extensions_mut().insert(caller);
    next.run(request).await
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Caller>()
            .cloned()
            .ok_or_else(|| Problem::internal("the authentication layer did not run"))
    }
}

impl<S: Send + Sync> FromRequestParts<S> for AdminCaller {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let caller = Caller::from_request_parts(parts, state).await?;
        caller.principal.require(Scope::Admin)?;
        Ok(Self(caller))
    }
}
