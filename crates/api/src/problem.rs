//! RFC 9457 problem details: the body of every error answer.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The body of an error answer (`application/problem+json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Problem {
    /// A URI naming the kind of problem: `urn:artifactstore:problem:<code>`.
    #[serde(rename = "type")]
    pub kind: String,
    /// A short summary of the kind of problem.
    pub title: String,
    /// The HTTP status code.
    pub status: u16,
    /// What went wrong with this request.
    pub detail: String,
    /// The stable machine code clients match on.
    pub code: String,
}
