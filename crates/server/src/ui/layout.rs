//! The page shell every UI page shares.

use axum::response::{Html, IntoResponse, Response};
use maud::{html, Markup, DOCTYPE};

/// A whole HTML page.
pub(crate) struct Page(Markup);

impl IntoResponse for Page {
    fn into_response(self) -> Response {
        Html(self.0.into_string()).into_response()
    }
}

/// `body` in the shell: title, navigation, a skip link for keyboards.
pub(crate) fn page(title: &str, body: Markup) -> Page {
    Page(html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · artifact-store" }
                link rel="stylesheet" href=(super::assets::STYLESHEET);
            }
            body {
                a.skip href="#main" { "Skip to the content" }
                header.top {
                    nav aria-label="Main" {
                        a.brand href="/ui/" { "artifact-store" }
                        a href="/ui/" { "Packages" }
                        a href="/openapi.json" { "API" }
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
