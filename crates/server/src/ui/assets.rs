//! Files the pages load, inside the binary: no CDN, no build step.

use axum::extract::Path;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::problem::Problem;

/// The stylesheet's URL.
pub(crate) const STYLESHEET: &str = "/ui/assets/app.css";
/// The script's URL: copy buttons and live events; the pages work
/// without it.
pub(crate) const SCRIPT: &str = "/ui/assets/app.js";

/// tus-js-client's browser build, for uploads (vendored: `assets/vendor`).
pub(crate) const TUS_CLIENT: &str = "/ui/assets/tus-js-client-4.3.1.min.js";

const APP_CSS: &str = include_str!("assets/app.css");
const APP_JS: &str = include_str!("assets/app.js");
const TUS_JS: &str = include_str!("assets/vendor/tus-js-client-4.3.1.min.js");

/// One asset by name.
pub(crate) async fn serve(Path(name): Path<String>) -> Response {
    let (body, media_type) = match name.as_str() {
        "app.css" => (APP_CSS, "text/css; charset=utf-8"),
        "app.js" => (APP_JS, "text/javascript; charset=utf-8"),
        "tus-js-client-4.3.1.min.js" => (TUS_JS, "text/javascript; charset=utf-8"),
        _ => {
            return Problem::new(
                StatusCode::NOT_FOUND,
                "route_not_found",
                format!("no asset {name:?}"),
            )
            .into_response()
        }
    };
    (
        [
            (CONTENT_TYPE, media_type),
            // Served by this binary: a new one may change it.
            (CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}
