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
//!
//! A browser logged in to the web UI carries its token in an HttpOnly,
//! SameSite=Strict cookie ([`SESSION_COOKIE`]) instead of the header. Such
//! a caller has a [`Session`]: every request of it that changes state must
//! prove it came from our own pages with the session's CSRF token (the
//! `X-CSRF-Token` header, or the `csrf` field of a UI form, checked by
//! `ui::session::CsrfForm`), and must not come from another origin.

use artifactstore_registry::core::text::check_actor;
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
/// Routes anyone may call: load balancers and scrapers have no token.
pub(crate) const PUBLIC_PATHS: [&str; 3] = ["/health", "/metrics", "/openapi.json"];

/// The cookie that holds the token of a browser logged in to the UI.
pub(crate) const SESSION_COOKIE: &str = "artifactstore_token";
/// The header a script of our pages sends the session's CSRF token in.
pub(crate) const CSRF_HEADER: &str = "x-csrf-token";

/// A browser's UI session: the token came from [`SESSION_COOKIE`].
#[derive(Debug, Clone)]
pub(crate) struct Session {
    /// What the session's forms and scripts must send back with every
    /// request that changes state: derived from the token, so only a page
    /// this server rendered for that token knows it, and any replica can
    /// check it without shared state.
    pub(crate) csrf: String,
}

impl Session {
    fn of_token(token: &str) -> Self {
        let key = blake3::derive_key("artifactstore 2026-12 web UI CSRF token", token.as_bytes());
        Self {
            csrf: hex::encode(key),
        }
    }

    /// Whether `presented` is this session's CSRF token.
    pub(crate) fn accepts(&self, presented: &str) -> bool {
        // Both are hex of one length; the comparison's time does not tell
        // a guesser how much of a guess was right.
        presented.len() == self.csrf.len()
            && presented
                .bytes()
                .zip(self.csrf.bytes())
                .fold(0u8, |diff, (a, b)| diff | (a ^ b))
                == 0
    }
}

/// The caller of a request.
#[derive(Debug, Clone)]
pub(crate) struct Caller {
    /// Recorded as the actor of the events the request appends.
    pub(crate) actor: String,
    /// What the caller may do.
    pub(crate) principal: Principal,
    /// Set when the token came from the UI's cookie.
    pub(crate) session: Option<Session>,
    /// Without auth: why the `X-Artifactstore-Actor` header was refused,
    /// answered by the extractor (see [`caller_of`]).
    refused_actor: Option<Problem>,
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
    let text = std::str::from_utf8(value.as_bytes()).map_err(|_| {
        Problem::bad_request(
            "invalid_header",
            "X-Artifactstore-Actor must be visible ASCII characters and spaces",
        )
    })?;
    check_actor(text)
        .map(str::to_owned)
        .map_err(|e| Problem::bad_request("invalid_header", format!("X-Artifactstore-Actor {e}")))
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

/// The token in the UI's session cookie, if the request carries one.
pub(crate) fn session_token(headers: &axum::http::HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(cookie::Cookie::split_parse)
        .filter_map(Result::ok)
        .find(|cookie| cookie.name() == SESSION_COOKIE)
        .map(|cookie| cookie.value().to_owned())
        .filter(|token| !token.is_empty())
}

async fn caller_of(state: &AppState, headers: &axum::http::HeaderMap) -> Result<Caller, Problem> {
    match (bearer(headers)?, session_token(headers)) {
        (Some(token), _) => {
            let principal = state.registry.authenticate(token).await?;
            Ok(Caller {
                actor: principal.name.clone(),
                principal,
                session: None,
                refused_actor: None,
            })
        }
        (None, Some(token)) => {
            let principal = state.registry.authenticate(&token).await?;
            Ok(Caller {
                actor: principal.name.clone(),
                principal,
                session: Some(Session::of_token(&token)),
                refused_actor: None,
            })
        }
        (None, None) if state.options.auth_required => {
            Err(RegistryError::Unauthorized("this server requires an API token".into()).into())
        }
        (None, None) => {
            let actor = match actor_header(headers) {
                Ok(actor) => actor,
                Err(refused) => {
                    // Answered where the actor is used (the `Caller`
                    // extractor), so a request no handler takes still gets
                    // its 404 or 405, and reads, which record no actor,
                    // are not refused for it.
                    return Ok(Caller {
                        actor: ANONYMOUS.to_owned(),
                        principal: Principal {
                            name: ANONYMOUS.to_owned(),
                            scope: Scope::Read,
                            producers: Vec::new(),
                        },
                        session: None,
                        refused_actor: Some(refused),
                    });
                }
            };
            Ok(Caller {
                principal: Principal {
                    name: actor.clone(),
                    scope: Scope::Admin,
                    producers: Vec::new(),
                },
                actor,
                session: None,
                refused_actor: None,
            })
        }
    }
}

/// Whether a request is from another site, by `Origin` (its host must be
/// the request's `Host`) or `Sec-Fetch-Site`. A browser sends one or both
/// with every request that changes state.
pub(crate) fn header_from_another_site(headers: &axum::http::HeaderMap) -> bool {
    let own = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .map(host_part);
    let foreign_origin = headers.get(header::ORIGIN).is_some_and(|origin| {
        let origin_host = origin_host(origin);
        origin_host.is_none() || origin_host != own
    });
    foreign_origin || says_cross_site(headers)
}

/// The [`host_part`] of an `Origin` value (`None` for `null` or junk).
fn origin_host(origin: &axum::http::HeaderValue) -> Option<String> {
    origin
        .to_str()
        .ok()
        .and_then(|o| o.split_once("://"))
        .map(|(_, authority)| host_part(authority))
}

/// Whether the browser says the request comes from another site.
fn says_cross_site(headers: &axum::http::HeaderMap) -> bool {
    headers
        .get("sec-fetch-site")
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"cross-site"))
}

/// A session's request that changes state: from our own origin, and, on
/// API routes, with the CSRF header (UI forms carry it in their body,
/// checked by their extractor, so `/ui/` is left to it).
fn check_session_request(request: &Request, session: &Session) -> Result<(), Problem> {
    let forbidden = |detail: &str| {
        Problem::new(
            axum::http::StatusCode::FORBIDDEN,
            "csrf_refused",
            detail.to_owned(),
        )
    };
    if header_from_another_site(request.headers()) {
        return Err(forbidden(
            "a request from another site is refused for a browser session",
        ));
    }
    if request.uri().path().starts_with("/ui/") {
        return Ok(());
    }
    match request.headers().get(CSRF_HEADER).and_then(|v| v.to_str().ok()) {
        Some(presented) if session.accepts(presented) => Ok(()),
        _ => Err(forbidden(
            "a browser session's request that changes state needs the page's CSRF token in X-CSRF-Token",
        )),
    }
}

/// Whether `path` is a UI page, which answers a browser without a
/// session by sending it to the login form rather than with a problem.
fn is_ui_page(path: &str) -> bool {
    path == "/" || path == "/ui" || path.starts_with("/ui/")
}

/// Routes of the UI anyone may call: its login form and its assets.
fn is_public_ui(path: &str) -> bool {
    path == crate::ui::LOGIN_PATH || path.starts_with("/ui/assets/")
}

/// The host part of a `Host` value or of an origin's authority: no port,
/// lowercase, no trailing dot; IPv6 literals keep their brackets.
fn host_part(authority: &str) -> String {
    let authority = authority.trim();
    let host = if authority.starts_with('[') {
        authority.split_inclusive(']').next().unwrap_or(authority)
    } else {
        authority
            .rsplit_once(':')
            .map_or(authority, |(host, _)| host)
    };
    host.trim_end_matches('.').to_ascii_lowercase()
}

/// Whether `host` (a [`host_part`]) is this server's own when it serves
/// without authentication: a loopback name or address, or one the
/// operator listed in `[server] allowed_hosts`.
fn is_own_host(host: &str, allowed: &[String]) -> bool {
    let loopback = host == "localhost"
        || host.ends_with(".localhost")
        || host == "[::1]"
        || host
            .parse::<std::net::Ipv4Addr>()
            .is_ok_and(|ip| ip.is_loopback());
    // Listed entries may carry a port or a trailing dot, as a `Host` does.
    loopback || allowed.iter().any(|a| host_part(a) == host)
}

/// With auth off, any request reaches an admin: refuse those a browser may
/// have been made to send. DNS rebinding shows as a `Host` that is not
/// ours; a page of another site posting to us (a form, `fetch` without
/// preflight) shows as a foreign `Origin` or `Sec-Fetch-Site: cross-site`.
/// Token holders are not at risk (browsers never attach bearer tokens on
/// their own), so none of this applies when auth is required.
fn refuse_cross_site(request: &Request, allowed: &[String]) -> Result<(), Problem> {
    let forbidden = |code: &'static str, detail: String| {
        Problem::new(axum::http::StatusCode::FORBIDDEN, code, detail)
    };
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .map(host_part)
        .or_else(|| request.uri().host().map(host_part));
    match host {
        Some(host) if is_own_host(&host, allowed) => {}
        Some(host) => {
            return Err(forbidden(
                "host_not_allowed",
                format!(
                    "this server runs without authentication and does not serve the host {host:?}; \
                     list it in `[server] allowed_hosts` or require authentication"
                ),
            ))
        }
        None => {
            return Err(Problem::bad_request(
                "invalid_header",
                "the request has no Host",
            ))
        }
    }
    if matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS
    ) {
        return Ok(());
    }
    if let Some(origin) = request.headers().get(header::ORIGIN) {
        if !origin_host(origin).is_some_and(|h| is_own_host(&h, allowed)) {
            return Err(forbidden(
                "cross_origin_refused",
                format!(
                    "a {} from origin {:?} is refused: this server runs without authentication",
                    request.method(),
                    origin.to_str().unwrap_or("(not text)")
                ),
            ));
        }
    }
    if says_cross_site(request.headers()) {
        return Err(forbidden(
            "cross_origin_refused",
            "a cross-site request is refused: this server runs without authentication".into(),
        ));
    }
    Ok(())
}

/// Middleware: authenticates every API request and checks the scope its
/// method needs; the [`Caller`] is left in the request's extensions.
pub(crate) async fn authenticate(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    if !state.options.auth_required {
        if let Err(problem) = refuse_cross_site(&request, &state.options.allowed_hosts) {
            return problem.into_response();
        }
    }
    let path = request.uri().path();
    if PUBLIC_PATHS.contains(&path) || is_public_ui(path) {
        return next.run(request).await;
    }
    // A copy of the headers: the request body is not Sync, so the request
    // itself cannot be borrowed across the token lookup.
    let headers = request.headers().clone();
    let caller = match caller_of(&state, &headers).await {
        Ok(caller) => caller,
        Err(problem)
            if problem.status() == axum::http::StatusCode::UNAUTHORIZED
                && request.method() == Method::GET
                && is_ui_page(request.uri().path()) =>
        {
            return crate::ui::to_login(request.uri(), session_token(&headers).is_some());
        }
        Err(problem) => return problem.into_response(),
    };
    let safe = matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS
    );
    let needed = if safe { Scope::Read } else { Scope::Write };
    // A UI form's action checks the scope it needs itself (the same
    // shared function as the API's route), so that a refusal is shown
    // beside the form's field rather than as a bare problem.
    let ui_form = !safe && is_ui_page(request.uri().path());
    if caller.refused_actor.is_none() && !ui_form {
        if let Err(e) = caller.principal.require(needed) {
            return Problem::from(e).into_response();
        }
    }
    if let (false, Some(session)) = (safe, &caller.session) {
        if let Err(problem) = check_session_request(&request, session) {
            return problem.into_response();
        }
    }
    request.extensions_mut().insert(caller);
    next.run(request).await
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let caller = parts
            .extensions
            .get::<Caller>()
            .cloned()
            .ok_or_else(|| Problem::internal("the authentication layer did not run"))?;
        match caller.refused_actor {
            Some(refused) => Err(refused),
            None => Ok(caller),
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_parts() {
        assert_eq!(host_part("LocalHost:8000"), "localhost");
        assert_eq!(host_part("127.0.0.1"), "127.0.0.1");
        assert_eq!(host_part("[::1]:8000"), "[::1]");
        assert_eq!(host_part("example.com.:80"), "example.com");
    }

    #[test]
    fn own_hosts_without_auth() {
        let allowed = vec![
            "artifacts.internal".to_owned(),
            "Proxy.Example:8443".to_owned(),
        ];
        for own in [
            "localhost",
            "api.localhost",
            "127.0.0.1",
            "127.1.2.3",
            "[::1]",
            "artifacts.internal",
            "proxy.example",
        ] {
            assert!(is_own_host(own, &allowed), "{own}");
        }
        for foreign in [
            "evil.example",
            "127.0.0.1.evil.example",
            "localhost.evil",
            "10.0.0.1",
            "[::2]",
            "",
        ] {
            assert!(!is_own_host(foreign, &allowed), "{foreign}");
        }
    }
}
