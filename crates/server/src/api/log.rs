//! The log's proofs that leave the server: the verifier key, signed
//! checkpoints, leaves, inclusion and consistency proofs (RFC 9162, C2SP
//! tlog-checkpoint and signed-note).

use artifactstore_api::{CheckpointSigned, ConsistencyProof, InclusionProof};
use artifactstore_registry::log::proof::encode_hash;
use artifactstore_registry::CheckpointRecord;
use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::http::HeaderValue;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use utoipa::IntoParams;

use crate::auth::AdminCaller;
use crate::extract::{ApiPath, ApiQuery};
use crate::openapi::BinarySchema;
use crate::problem::{ApiResult, Problem, ProblemBody};
use crate::AppState;

const TEXT_PLAIN: &str = "text/plain; charset=utf-8";

fn text(body: String) -> Response {
    let mut response = body.into_response();
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(TEXT_PLAIN));
    response
}

/// The verifier key of the log's checkpoints, in signed-note text form
/// (`name+keyid+base64`), with a final newline.
#[utoipa::path(
    get,
    path = "/v1/log/key",
    tag = "log",
    responses((status = 200, description = "The verifier key", body = String, content_type = "text/plain")),
)]
pub(crate) async fn key(State(state): State<AppState>) -> Response {
    text(format!("{}\n", state.registry.log_verifier_key()))
}

/// The newest signed checkpoint: a C2SP tlog-checkpoint (origin, tree
/// size, base64 root) as a C2SP signed note, exact bytes.
#[utoipa::path(
    get,
    path = "/v1/log/checkpoint",
    tag = "log",
    responses(
        (status = 200, description = "The signed note", body = String, content_type = "text/plain"),
        (status = 404, description = "`log_entry_not_found`: the log is empty", body = ProblemBody, content_type = "application/problem+json"),
    ),
)]
pub(crate) async fn latest_checkpoint(State(state): State<AppState>) -> ApiResult<Response> {
    Ok(text(state.registry.latest_checkpoint().await?.note))
}

/// Path of `GET /v1/log/checkpoints/{tree_size}`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub(crate) struct TreeSizePath {
    /// Leaves in the tree the checkpoint signs.
    #[param(minimum = 1)]
    tree_size: u64,
}

/// The checkpoint signed at exactly this tree size, exact bytes.
#[utoipa::path(
    get,
    path = "/v1/log/checkpoints/{tree_size}",
    tag = "log",
    params(TreeSizePath),
    responses(
        (status = 200, description = "The signed note", body = String, content_type = "text/plain"),
        (status = 400, description = "`invalid_id`: not a tree size", body = ProblemBody, content_type = "application/problem+json"),
        (status = 404, description = "`log_entry_not_found`: no checkpoint was signed at that size", body = ProblemBody, content_type = "application/problem+json"),
    ),
)]
pub(crate) async fn checkpoint(
    State(state): State<AppState>,
    ApiPath(path): ApiPath<TreeSizePath>,
) -> ApiResult<Response> {
    Ok(text(
        state.registry.checkpoint_at(path.tree_size).await?.note,
    ))
}

fn signed(record: CheckpointRecord, signed: bool) -> CheckpointSigned {
    CheckpointSigned {
        tree_size: record.tree_size,
        root_hash: encode_hash(&record.root_hash),
        signed,
        note: record.note,
    }
}

/// Signs a checkpoint of the whole log now, if it has any event the
/// newest checkpoint lacks. Needs the `admin` scope.
#[utoipa::path(
    post,
    path = "/v1/log/checkpoints",
    tag = "log",
    responses(
        (status = 200, description = "The newest checkpoint, and whether this request signed it", body = CheckpointSigned),
        (status = 403, description = "`forbidden`: signing on demand needs the `admin` scope", body = ProblemBody, content_type = "application/problem+json"),
        (status = 404, description = "`log_entry_not_found`: the log is empty", body = ProblemBody, content_type = "application/problem+json"),
    ),
)]
pub(crate) async fn sign_checkpoint(
    State(state): State<AppState>,
    AdminCaller(caller): AdminCaller,
) -> ApiResult<Json<CheckpointSigned>> {
    match state.registry.sign_checkpoint(&caller.actor, true).await? {
        (Some(record), was_signed) => Ok(Json(signed(record, was_signed))),
        (None, _) => Err(artifactstore_registry::RegistryError::LogEntryNotFound(
            "the log is empty: there is nothing to sign".into(),
        )
        .into()),
    }
}

/// Path of `GET /v1/log/leaves/{sequence}`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub(crate) struct SequencePath {
    /// The event's sequence (leaf index + 1).
    #[param(minimum = 1)]
    sequence: i64,
}

/// An event's leaf bytes, the input of its leaf hash: the canonical CBOR
/// array `[sequence, event_type, subject_kind, subject_id, actor,
/// created_at, payload_digest]` (docs/architecture.md, "The Merkle tree").
#[utoipa::path(
    get,
    path = "/v1/log/leaves/{sequence}",
    tag = "log",
    params(SequencePath),
    responses(
        (status = 200, description = "The leaf bytes", body = BinarySchema, content_type = "application/cbor"),
        (status = 400, description = "`invalid_id`: not a sequence", body = ProblemBody, content_type = "application/problem+json"),
        (status = 404, description = "`log_entry_not_found`", body = ProblemBody, content_type = "application/problem+json"),
        (status = 422, description = "`invalid_input`: sequences start at 1", body = ProblemBody, content_type = "application/problem+json"),
    ),
)]
pub(crate) async fn leaf(
    State(state): State<AppState>,
    ApiPath(path): ApiPath<SequencePath>,
) -> ApiResult<Response> {
    let bytes = state.registry.leaf(path.sequence).await?;
    let mut response = bytes.into_response();
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/cbor"));
    Ok(response)
}

/// Query of `GET /v1/log/proof/inclusion`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct InclusionQuery {
    /// The event's sequence.
    #[param(minimum = 1)]
    sequence: i64,
    /// The tree to prove it in (a checkpoint's size); at least `sequence`.
    #[param(minimum = 1)]
    tree_size: u64,
}

/// RFC 9162 inclusion proof of an event in a tree.
#[utoipa::path(
    get,
    path = "/v1/log/proof/inclusion",
    tag = "log",
    params(InclusionQuery),
    responses(
        (status = 200, description = "The proof", body = InclusionProof),
        (status = 400, description = "`invalid_query`", body = ProblemBody, content_type = "application/problem+json"),
        (status = 422, description = "`invalid_input`: the event is not in that tree, or the tree is larger than the log", body = ProblemBody, content_type = "application/problem+json"),
    ),
)]
pub(crate) async fn inclusion(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<InclusionQuery>,
) -> ApiResult<Json<InclusionProof>> {
    Ok(Json(
        state
            .registry
            .inclusion_proof(query.sequence, query.tree_size)
            .await?,
    ))
}

/// Query of `GET /v1/log/proof/consistency`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct ConsistencyQuery {
    /// The older tree size.
    #[param(minimum = 1)]
    from: u64,
    /// The newer tree size, at least `from`.
    #[param(minimum = 1)]
    to: u64,
}

/// RFC 9162 consistency proof between two tree sizes.
#[utoipa::path(
    get,
    path = "/v1/log/proof/consistency",
    tag = "log",
    params(ConsistencyQuery),
    responses(
        (status = 200, description = "The proof", body = ConsistencyProof),
        (status = 400, description = "`invalid_query`", body = ProblemBody, content_type = "application/problem+json"),
        (status = 422, description = "`invalid_input`: `from` is 0 or above `to`, or `to` is larger than the log", body = ProblemBody, content_type = "application/problem+json"),
    ),
)]
pub(crate) async fn consistency(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<ConsistencyQuery>,
) -> ApiResult<Json<ConsistencyProof>> {
    if query.from == 0 {
        return Err(Problem::bad_request("invalid_query", "`from` starts at 1"));
    }
    Ok(Json(
        state
            .registry
            .consistency_proof(query.from, query.to)
            .await?,
    ))
}
