//! Metadata schemas.

use super::*;

on_both_engines!(metadata_schemas_register_idempotently_and_validate);
async fn metadata_schemas_register_idempotently_and_validate() {
    let server = TestServer::start().await;
    let schema = json!({
        "type": "object",
        "properties": {"run": {"type": "integer"}},
        "required": ["run"]
    });
    let put = |body: &Value| {
        server.send(
            server
                .client
                .put(server.url("/v1/metadata-schemas/ci-run"))
                .json(body),
        )
    };
    let response = put(&schema).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let created = json_of(response).await;
    assert_eq!(created["slug"], "ci-run");
    let schema_id = created["id"].as_str().unwrap().to_owned();
    // The same schema (in another key order) again: 200, same id.
    let reordered =
        json!({"required": ["run"], "properties": {"run": {"type": "integer"}}, "type": "object"});
    let response = put(&reordered).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        json_of(response).await,
        json!({"id": schema_id, "slug": "ci-run"})
    );
    assert_problem(
        put(&json!({"type": "string"})).await,
        StatusCode::CONFLICT,
        "schema_conflict",
    )
    .await;
    let response = server
        .send(
            server
                .client
                .put(server.url("/v1/metadata-schemas/bad"))
                .json(&json!({"type": 12})),
        )
        .await;
    assert_problem(response, StatusCode::UNPROCESSABLE_ENTITY, "schema_invalid").await;
    let response = server
        .send(
            server
                .client
                .put(server.url("/v1/metadata-schemas/Bad%20Slug"))
                .json(&schema),
        )
        .await;
    assert_problem(response, StatusCode::UNPROCESSABLE_ENTITY, "invalid_input").await;

    let record = json_of(server.get("/v1/metadata-schemas/ci-run").await).await;
    assert_eq!(record["id"], schema_id);
    assert_eq!(record["slug"], "ci-run");
    assert_eq!(record["schema"], schema);
    assert!(record["created_at"].is_string());
    assert_problem(
        server.get("/v1/metadata-schemas/none").await,
        StatusCode::NOT_FOUND,
        "schema_not_found",
    )
    .await;

    let with_schema = |metadata: Value| json!({"name": "n", "producer": "p", "subject": "s", "retention_class": "standard", "metadata": metadata, "metadata_schema": "ci-run"});
    let problem = assert_problem(
        server
            .post_json("/v1/packages", &with_schema(json!({"run": "x"})))
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "metadata_invalid",
    )
    .await;
    assert!(problem["detail"].as_str().unwrap().contains("run"));
    let response = server
        .post_json("/v1/packages", &with_schema(json!({"run": 7})))
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    assert_eq!(json_of(response).await["metadata_schema_id"], schema_id);
    server.stop().await;
}
