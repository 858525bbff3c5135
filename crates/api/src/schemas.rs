//! Metadata JSON Schemas.

use artifactstore_core::Timestamp;
use serde::{Deserialize, Serialize};
use utoipa::openapi::schema::{ObjectBuilder, Schema, SchemaType, Type};
use utoipa::openapi::RefOr;
use utoipa::ToSchema;

/// The answer to registering a schema.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SchemaRegistered {
    /// The schema's id.
    #[schema(format = Uuid)]
    pub id: String,
    /// Its slug.
    #[schema(schema_with = crate::rules::slug)]
    pub slug: String,
}

/// A registered metadata schema.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct MetadataSchema {
    /// Id.
    #[schema(format = Uuid)]
    pub id: String,
    /// Slug.
    #[schema(schema_with = crate::rules::slug)]
    pub slug: String,
    /// The JSON Schema: any JSON value (`true` and `false` are schemas
    /// too).
    pub schema: serde_json::Value,
    /// Registration time.
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
}

/// The body of `PUT /v1/metadata-schemas/{slug}`: a JSON Schema, which is
/// an object or one of the booleans (`true` accepts anything, `false`
/// nothing). Documentation only: the server reads the JSON value and
/// refuses what is not a schema (422 `schema_invalid`).
pub struct SchemaDocument;

impl utoipa::PartialSchema for SchemaDocument {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(SchemaType::from_iter([Type::Object, Type::Boolean]))
            .description(Some(
                "A JSON Schema (draft 2020-12 unless `$schema` says otherwise)",
            ))
            .into()
    }
}

impl ToSchema for SchemaDocument {}
