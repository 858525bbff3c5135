//! Who is looking at a page, logging in and out, and the CSRF check every
//! UI form passes.
//!
//! A browser logs in by posting a token to the login form. The token goes
//! into an HttpOnly, SameSite=Strict cookie (Secure when the request came
//! over HTTPS), where page scripts cannot read it; the auth layer reads it
//! from there (`auth::session_token`). Forms carry the session's CSRF
//! token, derived from the token (`auth::Session`), in a hidden field.

use artifactstore_registry::core::token::Scope;
use artifactstore_registry::Principal;
use axum::extract::{Form, FromRequest, FromRequestParts, Query, Request, State};
use axum::http::header::{LOCATION, SET_COOKIE};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use cookie::{Cookie, SameSite};
use maud::html;
use serde::de::DeserializeOwned;
use serde::Deserialize;

use super::layout::page;
use super::{PageError, LOGIN_PATH};
use crate::auth::{Caller, SESSION_COOKIE};
use crate::problem::Problem;
use crate::AppState;

/// Who a page is rendered for.
#[derive(Debug, Clone, Default)]
pub(crate) struct Viewer {
    /// What the caller may do; `None` on the public pages.
    pub(crate) principal: Option<Principal>,
    /// The CSRF token of a browser session, for its forms and scripts.
    pub(crate) csrf: Option<String>,
}

impl Viewer {
    /// Whether the viewer's token allows `scope` (the server checks again
    /// when the form is sent; this only hides forms that would be refused).
    pub(crate) fn may(&self, scope: Scope) -> bool {
        self.principal
            .as_ref()
            .is_some_and(|principal| principal.scope.allows(scope))
    }

    /// The name the viewer is signed in as, for a browser session.
    pub(crate) fn signed_in_as(&self) -> Option<&str> {
        self.csrf
            .as_ref()
            .and(self.principal.as_ref())
            .map(|principal| principal.name.as_str())
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Viewer {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let caller = parts.extensions.get::<Caller>();
        Ok(Self {
            principal: caller.map(|caller| caller.principal.clone()),
            csrf: caller
                .and_then(|caller| caller.session.as_ref())
                .map(|session| session.csrf.clone()),
        })
    }
}

/// A UI form's fields, once its CSRF token checked out: a browser session
/// must send back the `csrf` field its page was rendered with. Callers
/// with a bearer token (not sent by browsers on their own) and servers
/// without auth (whose cross-site requests the auth layer refuses) have no
/// session to check.
pub(crate) struct CsrfForm<T>(pub(crate) T);

#[derive(Deserialize)]
struct WithCsrf<T> {
    #[serde(default)]
    csrf: String,
    #[serde(flatten)]
    form: T,
}

impl<T: DeserializeOwned + Send> FromRequest<AppState> for CsrfForm<T> {
    type Rejection = PageError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let session = request
            .extensions()
            .get::<Caller>()
            .and_then(|caller| caller.session.clone());
        let Form(sent) = Form::<WithCsrf<T>>::from_request(request, state)
            .await
            .map_err(|rejection| Problem::bad_request("invalid_form", rejection.body_text()))?;
        if let Some(session) = session {
            if !session.accepts(&sent.csrf) {
                return Err(Problem::new(
                    StatusCode::FORBIDDEN,
                    "csrf_refused",
                    "the form's CSRF token is missing or not this session's: reload the page and send it again",
                )
                .into());
            }
        }
        Ok(Self(sent.form))
    }
}

/// A form with no fields but its CSRF token.
#[derive(Deserialize)]
pub(crate) struct NoFields {}

/// Where to go after logging in: a UI page of this server, nothing else
/// (no open redirect to another site).
fn local_page(next: Option<&str>) -> &str {
    match next {
        Some(path)
            if path.starts_with("/ui/")
                && !path.contains("//")
                && !path.contains('\\')
                && !path.chars().any(char::is_control) =>
        {
            path
        }
        _ => "/ui/",
    }
}

/// The session cookie: the token, or empty and expired to log out.
fn session_cookie(token: Option<&str>, over_https: bool) -> HeaderValue {
    let mut cookie = Cookie::build((SESSION_COOKIE, token.unwrap_or_default().to_owned()))
        .http_only(true)
        .same_site(SameSite::Strict)
        .path("/")
        .secure(over_https);
    if token.is_none() {
        cookie = cookie.max_age(cookie::time::Duration::ZERO);
    }
    // A token is base64url and dots, so the cookie is always a valid value.
    HeaderValue::from_str(&cookie.build().to_string())
        .unwrap_or_else(|_| HeaderValue::from_static("artifactstore_token=; Max-Age=0; Path=/"))
}

/// Whether the browser reached this server over HTTPS: a TLS-terminating
/// proxy in front says so in `X-Forwarded-Proto`.
fn over_https(headers: &HeaderMap) -> bool {
    headers
        .get("x-forwarded-proto")
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"https"))
}

fn see_other(to: &str) -> Response {
    (StatusCode::SEE_OTHER, [(LOCATION, to.to_owned())]).into_response()
}

/// Sends a browser without a (valid) session to the login form, back to
/// `uri` afterwards; an invalid session cookie is dropped on the way.
pub(crate) fn to_login(uri: &Uri, drop_cookie: bool) -> Response {
    let back = uri.path_and_query().map_or("/ui/", |p| p.as_str());
    let mut query = form_urlencoded::Serializer::new(String::new());
    query.append_pair("next", local_page(Some(back)));
    let mut response = see_other(&format!("{LOGIN_PATH}?{}", query.finish()));
    if drop_cookie {
        response
            .headers_mut()
            .insert(SET_COOKIE, session_cookie(None, false));
    }
    response
}

#[derive(Deserialize)]
pub(crate) struct LoginQuery {
    next: Option<String>,
}

#[derive(Deserialize)]
pub(crate) struct LoginForm {
    #[serde(default)]
    token: String,
    next: Option<String>,
}

fn login_page(state: &AppState, next: &str, refused: Option<&str>) -> super::layout::Page {
    let auth_required = state.options.auth_required;
    page(
        &Viewer::default(),
        "Log in",
        html! {
            h1 { "Log in" }
            @if !auth_required {
                p { "This server does not require a token: "
                    a href="/ui/" { "browse without logging in" } "." }
            }
            form.login method="post" action=(LOGIN_PATH) {
                input type="hidden" name="next" value=(next);
                label for="token" { "API token" }
                p.hint #token-hint { "Create one with " code { "artifactstore admin token create --scope read --name NAME" } ". It is kept in a cookie that page scripts cannot read." }
                input #token type="password" name="token" required autocomplete="off" spellcheck="false"
                    aria-describedby=(if refused.is_some() { "token-hint token-error" } else { "token-hint" })
                    aria-invalid=[refused.map(|_| "true")];
                @if let Some(detail) = refused {
                    p.problem #token-error role="alert" { (detail) }
                }
                button type="submit" { "Log in" }
            }
        },
    )
}

/// `GET /ui/login`: the login form.
pub(crate) async fn login_form(
    State(state): State<AppState>,
    Query(query): Query<LoginQuery>,
) -> Response {
    login_page(&state, local_page(query.next.as_deref()), None).into_response()
}

/// `POST /ui/login`: checks the token, keeps it in the session cookie and
/// goes on to the page the browser came for.
pub(crate) async fn log_in(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Result<Response, PageError> {
    // No session yet to hold a CSRF token: a login posted by another site
    // (to sign the browser in as someone else) is told by its origin.
    if crate::auth::header_from_another_site(&headers) {
        return Err(Problem::new(
            StatusCode::FORBIDDEN,
            "csrf_refused",
            "a login from another site is refused",
        )
        .into());
    }
    let next = local_page(form.next.as_deref()).to_owned();
    let token = form.token.trim();
    match state.registry.authenticate(token).await {
        Ok(_) => {
            let mut response = see_other(&next);
            response.headers_mut().insert(
                SET_COOKIE,
                session_cookie(Some(token), over_https(&headers)),
            );
            Ok(response)
        }
        Err(refused) => {
            let problem = Problem::from(refused);
            let detail = problem.body().detail;
            Ok((problem.status(), login_page(&state, &next, Some(&detail))).into_response())
        }
    }
}

/// `POST /ui/logout`: forgets the session cookie.
pub(crate) async fn log_out(
    headers: HeaderMap,
    CsrfForm(NoFields {}): CsrfForm<NoFields>,
) -> Response {
    let mut response = see_other(LOGIN_PATH);
    response
        .headers_mut()
        .insert(SET_COOKIE, session_cookie(None, over_https(&headers)));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_local_ui_pages_are_gone_back_to() {
        assert_eq!(local_page(Some("/ui/packages/x?y=1")), "/ui/packages/x?y=1");
        for foreign in [
            "https://evil.example/",
            "//evil.example/ui/",
            "/ui//evil.example",
            "/ui/\\evil",
            "/v1/packages",
            "/ui/\nSet-Cookie: x",
            "",
        ] {
            assert_eq!(local_page(Some(foreign)), "/ui/", "{foreign:?}");
        }
        assert_eq!(local_page(None), "/ui/");
    }

    #[test]
    fn the_cookie_is_http_only_and_strict() {
        let set = session_cookie(Some("ast_abc.def"), false);
        let text = set.to_str().unwrap();
        assert!(
            text.starts_with("artifactstore_token=ast_abc.def"),
            "{text}"
        );
        assert!(
            text.contains("HttpOnly") && text.contains("SameSite=Strict"),
            "{text}"
        );
        assert!(!text.contains("Secure"), "{text}");
        assert!(session_cookie(Some("t"), true)
            .to_str()
            .unwrap()
            .contains("Secure"));
        let cleared = session_cookie(None, false);
        assert!(cleared.to_str().unwrap().contains("Max-Age=0"));
    }
}
