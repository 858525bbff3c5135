//! The package page's forms: place and release a legal hold, extend the
//! retention, finalize. Each calls the function its API route calls (the
//! same scope and producer checks), then sends the browser back to the
//! package (post, redirect, get); a refusal renders the package page again
//! with the server's problem beside the form, under the problem's status.

use artifactstore_registry::core::Timestamp;
use axum::extract::{Path, State};
use axum::http::header::LOCATION;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::packages::{package_page, ActionForm, Refusal};
use super::session::{CsrfForm, NoFields, Viewer};
use super::PageResult;
use crate::api::{packages, retention};
use crate::auth::Caller;
use crate::extract::parse_id;
use crate::problem::Problem;
use crate::AppState;

#[derive(Deserialize)]
pub(crate) struct ReasonForm {
    #[serde(default)]
    reason: String,
}

#[derive(Deserialize)]
pub(crate) struct ExtendForm {
    #[serde(default)]
    new_expires_at: String,
    #[serde(default)]
    reason: String,
}

#[derive(Deserialize)]
pub(crate) struct HoldPath {
    id: String,
    hold_id: String,
}

/// Back to the package's page after a form that worked.
fn back_to(id: uuid::Uuid, anchor: &str) -> Response {
    (
        StatusCode::SEE_OTHER,
        [(LOCATION, format!("/ui/packages/{id}#{anchor}"))],
    )
        .into_response()
}

/// What a form's action came to: back to the package, or its page again
/// with the refusal beside `form`.
async fn answer(
    state: &AppState,
    viewer: &Viewer,
    id: uuid::Uuid,
    form: ActionForm,
    anchor: &str,
    done: Result<(), Problem>,
) -> PageResult<Response> {
    let problem = match done {
        Ok(()) => return Ok(back_to(id, anchor)),
        Err(problem) => problem,
    };
    let status = problem.status();
    let refusal = Refusal {
        form,
        detail: problem.body().detail,
    };
    let page = package_page(state, viewer, id, None, Some(&refusal)).await?;
    Ok((status, page).into_response())
}

/// A datetime-local field's value (`2027-01-31T12:00`, seconds optional)
/// read as UTC, or an RFC 3339 time.
fn expiry_of(text: &str) -> Result<Timestamp, Problem> {
    let text = text.trim();
    let refused = || {
        Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_form",
            format!("{text:?} is not a time: give a date and time such as 2027-01-31T12:00 (UTC)"),
        )
    };
    if let Ok(at) = text.parse::<Timestamp>() {
        return Ok(at);
    }
    let with_seconds = match text.len() {
        16 => format!("{text}:00Z"),
        19 => format!("{text}Z"),
        _ => return Err(refused()),
    };
    with_seconds.parse::<Timestamp>().map_err(|_| refused())
}

/// `POST /ui/packages/{id}/holds`: places a legal hold.
pub(crate) async fn place_hold(
    State(state): State<AppState>,
    caller: Caller,
    viewer: Viewer,
    Path(id): Path<String>,
    CsrfForm(form): CsrfForm<ReasonForm>,
) -> PageResult<Response> {
    let id = parse_id(&id, "package id")?;
    let done = retention::place_hold(&state, &caller, id, &form.reason)
        .await
        .map(drop);
    answer(&state, &viewer, id, ActionForm::Hold, "retention", done).await
}

/// `POST /ui/packages/{id}/holds/{hold_id}/release`: lifts a hold (admin).
pub(crate) async fn lift_hold(
    State(state): State<AppState>,
    caller: Caller,
    viewer: Viewer,
    Path(path): Path<HoldPath>,
    CsrfForm(form): CsrfForm<ReasonForm>,
) -> PageResult<Response> {
    let id = parse_id(&path.id, "package id")?;
    let hold_id = parse_id(&path.hold_id, "hold id")?;
    let done = retention::lift_hold(&state, &caller, id, hold_id, &form.reason).await;
    let form = ActionForm::Release(hold_id.to_string());
    answer(&state, &viewer, id, form, "retention", done).await
}

/// `POST /ui/packages/{id}/extend`: moves the expiry later.
pub(crate) async fn extend(
    State(state): State<AppState>,
    caller: Caller,
    viewer: Viewer,
    Path(id): Path<String>,
    CsrfForm(form): CsrfForm<ExtendForm>,
) -> PageResult<Response> {
    let id = parse_id(&id, "package id")?;
    let done = match expiry_of(&form.new_expires_at) {
        Ok(at) => retention::extend_expiry(&state, &caller, id, at, &form.reason).await,
        Err(problem) => Err(problem),
    };
    answer(&state, &viewer, id, ActionForm::Extend, "retention", done).await
}

/// `POST /ui/packages/{id}/finalize`: finalizes an open package.
pub(crate) async fn finalize(
    State(state): State<AppState>,
    caller: Caller,
    viewer: Viewer,
    Path(id): Path<String>,
    CsrfForm(NoFields {}): CsrfForm<NoFields>,
) -> PageResult<Response> {
    let id = parse_id(&id, "package id")?;
    let done = packages::finalize(&state, &caller, id).await.map(drop);
    answer(&state, &viewer, id, ActionForm::Finalize, "main", done).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_fields() {
        assert_eq!(
            expiry_of("2027-01-31T12:00").unwrap().to_string(),
            expiry_of("2027-01-31T12:00:00Z").unwrap().to_string()
        );
        assert!(expiry_of("2027-01-31T12:00:30").is_ok());
        for wrong in [
            "",
            "tomorrow",
            "2027-13-01T00:00",
            "2027-01-31T12:00<script>",
        ] {
            assert!(expiry_of(wrong).is_err(), "{wrong}");
        }
    }
}
