//! The log's proofs over HTTP: key, checkpoints (exact bytes), leaves,
//! RFC 9162 proofs checked by an independent verifier, the bundle, scopes
//! and hostile input.

use artifactstore_registry::bundle::verify::verify_bundle;
use artifactstore_registry::log::proof::{
    decode_hash, verify_consistency, verify_inclusion, SignedCheckpoint,
};

use super::*;

fn hashes(proof: &Value) -> Vec<artifactstore_core::Digest32> {
    proof["hashes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| decode_hash(h.as_str().unwrap()).unwrap())
        .collect()
}

on_both_engines!(checkpoints_proofs_and_bundles_over_http);
async fn checkpoints_proofs_and_bundles_over_http() {
    let server = TestServer::start().await;
    let key = server.get("/v1/log/key").await;
    assert_eq!(key.status(), StatusCode::OK);
    assert!(header(&key, "content-type").starts_with("text/plain"));
    let key = key.text().await.unwrap();
    assert_eq!(key.trim(), server.registry.log_verifier_key());

    // An empty log has no checkpoint.
    let response = server.get("/v1/log/checkpoint").await;
    assert_problem(response, StatusCode::NOT_FOUND, "log_entry_not_found").await;

    let package = server.create_package("ci", "standard", Value::Null).await;
    let id = package["id"].as_str().unwrap().to_owned();
    server.put_file(&id, "report.txt", b"evidence").await;
    let response = server
        .post_json(&format!("/v1/packages/{id}/finalize"), &json!({}))
        .await;
    assert_eq!(response.status(), StatusCode::OK);

    let signed = json_of(server.post_json("/v1/log/checkpoints", &json!({})).await).await;
    assert_eq!(signed["signed"], true);
    let first_size = signed["tree_size"].as_u64().unwrap();
    let note = server.get("/v1/log/checkpoint").await.text().await.unwrap();
    assert_eq!(note, signed["note"].as_str().unwrap());
    let by_size = server
        .get(&format!("/v1/log/checkpoints/{first_size}"))
        .await;
    assert_eq!(by_size.text().await.unwrap(), note);
    let first = SignedCheckpoint::open(note.as_bytes(), &key).unwrap();
    // Nothing new but the checkpoint's own event: an on-demand request
    // signs it (it is a new leaf); asked again, nothing is new.
    server.put_file_in_new_package().await;
    let again = json_of(server.post_json("/v1/log/checkpoints", &json!({})).await).await;
    let second_size = again["tree_size"].as_u64().unwrap();
    assert!(second_size > first_size);
    let second = SignedCheckpoint::open(again["note"].as_str().unwrap().as_bytes(), &key).unwrap();

    let leaf = server.get("/v1/log/leaves/2").await;
    assert_eq!(header(&leaf, "content-type"), "application/cbor");
    let leaf = leaf.bytes().await.unwrap();
    let proof = json_of(
        server
            .get(&format!(
                "/v1/log/proof/inclusion?sequence=2&tree_size={second_size}"
            ))
            .await,
    )
    .await;
    assert_eq!(proof["leaf_index"], 1);
    assert_eq!(proof["tree_size"], second_size);
    verify_inclusion(&leaf, 1, second_size, &hashes(&proof), &second.root).unwrap();
    let proof = json_of(
        server
            .get(&format!(
                "/v1/log/proof/consistency?from={first_size}&to={second_size}"
            ))
            .await,
    )
    .await;
    verify_consistency(
        first_size,
        &first.root,
        second_size,
        &second.root,
        &hashes(&proof),
    )
    .unwrap();

    // The bundle: a tar with its exact length, verifying offline.
    let response = server.get(&format!("/v1/packages/{id}/bundle")).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(header(&response, "content-type"), "application/x-tar");
    let length: usize = header(&response, "content-length").parse().unwrap();
    let tar = response.bytes().await.unwrap();
    assert_eq!(tar.len(), length);
    let report = verify_bundle(&tar[..], &key).unwrap();
    assert_eq!(report.package_id, id);

    // Not finalized: no bundle.
    let open = server.create_package("ci", "standard", Value::Null).await;
    let open_id = open["id"].as_str().unwrap();
    let response = server.get(&format!("/v1/packages/{open_id}/bundle")).await;
    assert_problem(response, StatusCode::NOT_FOUND, "manifest_not_found").await;
    server.stop().await;
}

on_both_engines!(log_endpoints_refuse_hostile_input_and_non_admins);
async fn log_endpoints_refuse_hostile_input_and_non_admins() {
    use artifactstore_core::token::Scope;
    let server = TestServer::start_with(ServerOptions {
        auth_required: true,
        ..ServerOptions::default()
    })
    .await;
    let (_, reader) = server
        .registry
        .create_token("auditor", Scope::Read, vec![], None, "setup")
        .await
        .unwrap();
    let (_, writer) = server
        .registry
        .create_token("ci-bot", Scope::Write, vec![], None, "setup")
        .await
        .unwrap();
    let get = |path: &str, token: Option<&str>| {
        let mut request = server.client.get(server.url(path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        server.send(request)
    };
    // Reads need a token; signing on demand needs admin.
    assert_problem(
        get("/v1/log/checkpoint", None).await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    )
    .await;
    for token in [&reader, &writer] {
        let response = server
            .send(
                server
                    .client
                    .post(server.url("/v1/log/checkpoints"))
                    .bearer_auth(token),
            )
            .await;
        assert_problem(response, StatusCode::FORBIDDEN, "forbidden").await;
    }
    let head = server.head().await;
    for (path, status, code) in [
        (
            "/v1/log/leaves/0",
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_input",
        ),
        (
            "/v1/log/leaves/-1",
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_input",
        ),
        ("/v1/log/leaves/abc", StatusCode::BAD_REQUEST, "invalid_id"),
        (
            "/v1/log/leaves/99999999999999999999",
            StatusCode::BAD_REQUEST,
            "invalid_id",
        ),
        (
            "/v1/log/leaves/1000000",
            StatusCode::NOT_FOUND,
            "log_entry_not_found",
        ),
        (
            "/v1/log/checkpoints/0",
            StatusCode::NOT_FOUND,
            "log_entry_not_found",
        ),
        (
            "/v1/log/checkpoints/x",
            StatusCode::BAD_REQUEST,
            "invalid_id",
        ),
        (
            "/v1/log/proof/inclusion?sequence=1",
            StatusCode::BAD_REQUEST,
            "invalid_query",
        ),
        (
            "/v1/log/proof/inclusion?sequence=1&tree_size=18446744073709551616",
            StatusCode::BAD_REQUEST,
            "invalid_query",
        ),
        (
            "/v1/log/proof/inclusion?sequence=5&tree_size=4",
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_input",
        ),
        (
            "/v1/log/proof/inclusion?sequence=1&tree_size=1000000",
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_input",
        ),
        (
            "/v1/log/proof/inclusion?sequence=1&tree_size=1&extra=1",
            StatusCode::BAD_REQUEST,
            "invalid_query",
        ),
        (
            "/v1/log/proof/consistency?from=0&to=1",
            StatusCode::BAD_REQUEST,
            "invalid_query",
        ),
        (
            "/v1/log/proof/consistency?from=3&to=2",
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_input",
        ),
        (
            "/v1/log/proof/consistency?from=1&to=-2",
            StatusCode::BAD_REQUEST,
            "invalid_query",
        ),
        (
            "/v1/packages/not-a-uuid/bundle",
            StatusCode::BAD_REQUEST,
            "invalid_id",
        ),
    ] {
        let response = get(path, Some(&reader)).await;
        assert_problem(response, status, code).await;
    }
    assert_eq!(server.head().await, head, "refusals record nothing");
    server.stop().await;
}
