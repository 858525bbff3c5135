//! The web UI, for the people who browse and audit evidence: pages
//! rendered on the server from the same Registry calls and API model
//! (`artifactstore_api`) the HTTP API answers with, so the two cannot
//! disagree (docs/ui.md).
//!
//! - Every value reaches the page through maud, which escapes it: a
//!   package name holding `<script>` is text.
//! - No inline script or style anywhere, so the Content-Security-Policy
//!   forbids both; the stylesheet ships inside the binary ([`assets`]).
//! - Pages are reads (GET): they pass the same authentication and scope
//!   checks as the API's reads, since they sit behind the same layers.
//!   Actions are forms posted to `/ui/…` ([`actions`]): each calls the same
//!   function as its API route (scope and producer checks included) and
//!   passes the CSRF check ([`session::CsrfForm`]); nothing changes
//!   through GET.
//! - A browser logs in with a token kept in an HttpOnly cookie
//!   ([`session`]).

mod actions;
mod assets;
mod events;
mod format;
mod layout;
mod packages;
mod session;
mod system;

pub(crate) use session::to_login;

/// The login form's path, public like the assets.
pub(crate) const LOGIN_PATH: &str = "/ui/login";

use axum::http::header::CONTENT_SECURITY_POLICY;
use axum::http::HeaderValue;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use tower_http::set_header::SetResponseHeaderLayer;

use crate::problem::Problem;
use crate::AppState;

/// Scripts, styles, images and fonts only from this server; no inline
/// script or style, no framing, no plugins, forms only to this server.
const POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
    connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The UI's routes: `/` and `/ui` lead to `/ui/`.
pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(to_ui))
        .route("/ui", get(to_ui))
        .route("/ui/", get(packages::list))
        .route("/ui/packages/{id}", get(packages::show))
        .route("/ui/packages/{id}/holds", post(actions::place_hold))
        .route(
            "/ui/packages/{id}/holds/{hold_id}/release",
            post(actions::lift_hold),
        )
        .route("/ui/packages/{id}/extend", post(actions::extend))
        .route("/ui/packages/{id}/finalize", post(actions::finalize))
        .route("/ui/events", get(events::list))
        .route("/ui/system", get(system::show))
        .route(LOGIN_PATH, get(session::login_form).post(session::log_in))
        .route("/ui/logout", post(session::log_out))
        .route("/ui/assets/{name}", get(assets::serve))
        .layer(SetResponseHeaderLayer::overriding(
            CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(POLICY),
        ))
}

async fn to_ui() -> Redirect {
    Redirect::to("/ui/")
}

/// A page that could not be made: the API's problem, shown as a page with
/// the same status.
pub(crate) struct PageError(Problem);

impl<E: Into<Problem>> From<E> for PageError {
    fn from(error: E) -> Self {
        Self(error.into())
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let problem = self.0.body();
        let page = layout::page(
            &session::Viewer::default(),
            &problem.title,
            maud::html! {
                h1 { (problem.title) }
                p.problem { (problem.detail) }
                p { a href="/ui/" { "Back to the packages" } }
            },
        );
        (self.0.status(), page).into_response()
    }
}

/// What a page handler returns.
pub(crate) type PageResult<T = layout::Page> = Result<T, PageError>;
