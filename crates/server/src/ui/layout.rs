//! The page shell every UI page shares.

use axum::response::{Html, IntoResponse, Response};
use maud::{html, Markup, DOCTYPE};

use super::session::Viewer;

/// A whole HTML page.
pub(crate) struct Page(Markup);

impl IntoResponse for Page {
    fn into_response(self) -> Response {
        Html(self.0.into_string()).into_response()
    }
}

/// The hidden field that carries a session's CSRF token in a form.
pub(crate) fn csrf_field(viewer: &Viewer) -> Markup {
    html! {
        @if let Some(csrf) = &viewer.csrf {
            input type="hidden" name="csrf" value=(csrf);
        }
    }
}

/// `body` in the shell: title, navigation, who is signed in, a skip link
/// for keyboards. The session's CSRF token is in a `meta` element too, for
/// the scripts that send requests (uploads).
pub(crate) fn page(viewer: &Viewer, title: &str, body: Markup) -> Page {
    Page(html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                @if let Some(csrf) = &viewer.csrf {
                    meta name="csrf-token" content=(csrf);
                }
                title { (title) " · artifact-store" }
                link rel="stylesheet" href=(super::assets::STYLESHEET);
                script src=(super::assets::SCRIPT) defer {}
            }
            body {
                a.skip href="#main" { "Skip to the content" }
                header.top {
                    nav aria-label="Main" {
                        a.brand href="/ui/" { "artifact-store" }
                        a href="/ui/" { "Packages" }
                        a href="/ui/events" { "Events" }
                        a href="/ui/system" { "System" }
                        a href="/openapi.json" { "API" }
                    }
                    @if let Some(name) = viewer.signed_in_as() {
                        form.session method="post" action="/ui/logout" {
                            span { "Signed in as " strong { (name) } }
                            (csrf_field(viewer))
                            button type="submit" { "Log out" }
                        }
                    }
                }
                main #main tabindex="-1" { (body) }
                footer {
                    p { "Times are UTC. " a href="/health" { "Health" } }
                }
            }
        }
    })
}
