//! Packages: create, show, list and filter, errors, the actor header, manifests.

use super::*;

on_both_engines!(packages_create_show_list_filter_and_page);
async fn packages_create_show_list_filter_and_page() {
    let server = TestServer::start().await;
    let a = server
        .create_package("ci", "standard", json!({"run": 42, "branch": "main"}))
        .await;
    let b = server
        .create_package("ci", "ephemeral", json!({"run": 43}))
        .await;
    let c = server
        .create_package("audit", "standard", Value::Null)
        .await;
    for key in [
        "id",
        "name",
        "producer",
        "subject",
        "retention_class",
        "metadata",
        "metadata_schema_id",
        "status",
        "manifest_digest",
        "created_at",
        "finalized_at",
        "expires_at",
        "last_event_sequence",
        "file_count",
        "total_bytes",
    ] {
        assert!(a.get(key).is_some(), "package JSON lacks {key}: {a}");
    }
    assert_eq!(a["status"], "created");
    assert_eq!(c["metadata"], json!({}));

    // Location names the created package, and it reads back identically.
    let response = server
        .post_json(
            "/v1/packages",
            &json!({"name": "n", "producer": "p", "subject": "s", "retention_class": "standard"}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let location = header(&response, "location").to_owned();
    let created = json_of(response).await;
    assert_eq!(
        location,
        format!("/v1/packages/{}", created["id"].as_str().unwrap())
    );
    let shown = json_of(server.get(&location).await).await;
    assert_eq!(shown, created);

    let ids = |page: &Value| -> Vec<String> {
        page["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["id"].as_str().unwrap().to_owned())
            .collect()
    };
    let id = |p: &Value| p["id"].as_str().unwrap().to_owned();
    let page = json_of(server.get("/v1/packages?producer=ci").await).await;
    assert_eq!(ids(&page), vec![id(&a), id(&b)]);
    let page = json_of(server.get("/v1/packages?metadata.run=42").await).await;
    assert_eq!(ids(&page), vec![id(&a)]);
    let page = json_of(
        server
            .get("/v1/packages?producer=ci&retention_class=ephemeral")
            .await,
    )
    .await;
    assert_eq!(ids(&page), vec![id(&b)]);
    let page = json_of(
        server
            .get("/v1/packages?subject=app&status=created&producer=audit")
            .await,
    )
    .await;
    assert_eq!(ids(&page), vec![id(&c)]);
    let page = json_of(server.get("/v1/packages?status=finalized").await).await;
    assert_eq!(ids(&page), Vec::<String>::new());

    // Paging by `next` visits every package once, in creation order.
    let mut seen = Vec::new();
    let mut after: Option<Value> = None;
    for _ in 0..10 {
        let path = match &after {
            Some(next) => format!("/v1/packages?limit=1&after={next}"),
            None => "/v1/packages?limit=1".to_owned(),
        };
        let page = json_of(server.get(&path).await).await;
        assert!(page["items"].as_array().unwrap().len() <= 1);
        seen.extend(ids(&page));
        if page["next"].is_null() {
            break;
        }
        after = Some(page["next"].clone());
    }
    assert_eq!(seen, vec![id(&a), id(&b), id(&c), id(&created)]);

    for bad in [
        "/v1/packages?limit=abc",
        "/v1/packages?limit=0",
        "/v1/packages?producerz=ci",
        "/v1/packages?after=x",
    ] {
        assert_problem(
            server.get(bad).await,
            StatusCode::BAD_REQUEST,
            "invalid_query",
        )
        .await;
    }
    server.stop().await;
}

on_both_engines!(package_errors_are_problems);
async fn package_errors_are_problems() {
    let server = TestServer::start().await;
    let head = server.head().await;
    let body =
        json!({"name": "n", "producer": "p", "subject": "s", "retention_class": "no-such-class"});
    let problem = assert_problem(
        server.post_json("/v1/packages", &body).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "unknown_retention_class",
    )
    .await;
    assert!(problem["detail"]
        .as_str()
        .unwrap()
        .contains("no-such-class"));

    let unknown_field = json!({"name": "n", "producer": "p", "subject": "s", "retention_class": "standard", "colour": "red"});
    let problem = assert_problem(
        server.post_json("/v1/packages", &unknown_field).await,
        StatusCode::BAD_REQUEST,
        "invalid_json",
    )
    .await;
    assert!(problem["detail"].as_str().unwrap().contains("colour"));
    let wrong_type =
        json!({"name": 5, "producer": "p", "subject": "s", "retention_class": "standard"});
    assert_problem(
        server.post_json("/v1/packages", &wrong_type).await,
        StatusCode::BAD_REQUEST,
        "invalid_json",
    )
    .await;
    let missing = json!({"name": "n"});
    assert_problem(
        server.post_json("/v1/packages", &missing).await,
        StatusCode::BAD_REQUEST,
        "invalid_json",
    )
    .await;
    let broken = server
        .send(
            server
                .client
                .post(server.url("/v1/packages"))
                .header("content-type", "application/json")
                .body("{not json"),
        )
        .await;
    assert_problem(broken, StatusCode::BAD_REQUEST, "invalid_json").await;
    // The same body unlabelled is refused for its media type first.
    let unlabelled = server
        .send(
            server
                .client
                .post(server.url("/v1/packages"))
                .body("{not json"),
        )
        .await;
    assert_problem(
        unlabelled,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
    )
    .await;
    let not_object = json!({"name": "n", "producer": "p", "subject": "s", "retention_class": "standard", "metadata": [1]});
    assert_problem(
        server.post_json("/v1/packages", &not_object).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "metadata_invalid",
    )
    .await;
    let empty_name =
        json!({"name": " ", "producer": "p", "subject": "s", "retention_class": "standard"});
    assert_problem(
        server.post_json("/v1/packages", &empty_name).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_input",
    )
    .await;

    assert_problem(
        server.get("/v1/packages/not-a-uuid").await,
        StatusCode::BAD_REQUEST,
        "invalid_id",
    )
    .await;
    let missing_id = Uuid::new_v4();
    assert_problem(
        server.get(&format!("/v1/packages/{missing_id}")).await,
        StatusCode::NOT_FOUND,
        "package_not_found",
    )
    .await;
    assert_problem(
        server
            .send(
                server
                    .client
                    .post(server.url(&format!("/v1/packages/{missing_id}/finalize"))),
            )
            .await,
        StatusCode::NOT_FOUND,
        "package_not_found",
    )
    .await;
    assert_problem(
        server.get(&format!("/v1/files/{missing_id}")).await,
        StatusCode::NOT_FOUND,
        "file_not_found",
    )
    .await;
    assert_problem(
        server.get("/v1/files/xyz/content").await,
        StatusCode::BAD_REQUEST,
        "invalid_id",
    )
    .await;
    assert_problem(
        server.get("/v1/nothing-here").await,
        StatusCode::NOT_FOUND,
        "route_not_found",
    )
    .await;
    assert_problem(
        server
            .send(server.client.delete(server.url("/v1/packages")))
            .await,
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
    )
    .await;
    // Nothing above changed the log.
    assert_eq!(server.head().await, head);
    server.stop().await;
}

on_both_engines!(json_bodies_over_the_limit_are_refused);
async fn json_bodies_over_the_limit_are_refused() {
    let server = TestServer::start_with(ServerOptions {
        max_json_body_bytes: 1024,
        ..ServerOptions::default()
    })
    .await;
    let body = json!({"name": "n", "producer": "p", "subject": "s", "retention_class": "standard", "metadata": {"pad": "x".repeat(4096)}});
    assert_problem(
        server.post_json("/v1/packages", &body).await,
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
    )
    .await;
    server.stop().await;
}

on_both_engines!(actor_header_is_recorded);
async fn actor_header_is_recorded() {
    let server = TestServer::start().await;
    let response = server
        .send(
            server
                .client
                .post(server.url("/v1/packages"))
                .header("x-artifactstore-actor", "ci-bot")
                .json(&json!({"name": "n", "producer": "p", "subject": "s", "retention_class": "standard"})),
        )
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let anonymous = server.create_package("p", "standard", Value::Null).await;
    let events = json_of(server.get("/v1/events").await).await;
    let actors: Vec<(&str, &str)> = events["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["event_type"].as_str().unwrap(),
                e["actor"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(actors[0], ("v1.package.created", "ci-bot"));
    let last = events["items"].as_array().unwrap().last().unwrap();
    assert_eq!(last["subject_id"], anonymous["id"]);
    assert_eq!(last["actor"], "anonymous");
    let response = server
        .send(
            server
                .client
                .post(server.url("/v1/packages"))
                .header("x-artifactstore-actor", "   ")
                .json(&json!({"name": "n", "producer": "p", "subject": "s", "retention_class": "standard"})),
        )
        .await;
    assert_problem(response, StatusCode::BAD_REQUEST, "invalid_header").await;
    // A bad actor header does not hide what routing answers: a method the
    // route does not allow is still a 405 with `Allow`, and reads, which
    // record no actor, are served.
    let trace = server
        .send(
            server
                .client
                .request(Method::TRACE, server.url("/v1/packages"))
                .header("x-artifactstore-actor", ""),
        )
        .await;
    assert!(header(&trace, "allow").contains("POST"));
    assert_problem(trace, StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed").await;
    let read = server
        .send(
            server
                .client
                .get(server.url("/v1/packages"))
                .header("x-artifactstore-actor", ""),
        )
        .await;
    assert_eq!(read.status(), StatusCode::OK);
    server.stop().await;
}

on_both_engines!(manifest_in_cbor_and_json);
async fn manifest_in_cbor_and_json() {
    let server = TestServer::start().await;
    let package = server
        .create_package("ci", "standard", json!({"run": 1}))
        .await;
    let id = package["id"].as_str().unwrap();
    server.put_file(id, "a.txt", b"alpha").await;
    assert_problem(
        server.get(&format!("/v1/packages/{id}/manifest")).await,
        StatusCode::NOT_FOUND,
        "manifest_not_found",
    )
    .await;
    let finalized = json_of(
        server
            .send(
                server
                    .client
                    .post(server.url(&format!("/v1/packages/{id}/finalize"))),
            )
            .await,
    )
    .await;
    let digest = finalized["manifest_digest"].as_str().unwrap().to_owned();
    let uuid = Uuid::parse_str(id).unwrap();

    let response = server.get(&format!("/v1/packages/{id}/manifest")).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(header(&response, "content-type"), "application/cbor");
    let cbor = bytes_of(response).await;
    assert_eq!(
        format!("blake3:{}", Digest32::blake3_of(&cbor).to_hex()),
        digest
    );
    assert_eq!(
        cbor,
        server
            .registry
            .manifest_bytes(uuid, ManifestFormat::Cbor)
            .await
            .unwrap()
    );
    let response = server
        .get(&format!("/v1/packages/{id}/manifest?format=cbor"))
        .await;
    assert_eq!(bytes_of(response).await, cbor);

    let expected_json = server
        .registry
        .manifest_bytes(uuid, ManifestFormat::Json)
        .await
        .unwrap();
    let response = server
        .get(&format!("/v1/packages/{id}/manifest?format=json"))
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(header(&response, "content-type"), "application/json");
    let json_bytes = bytes_of(response).await;
    assert_eq!(json_bytes, expected_json);
    let manifest: Value = serde_json::from_slice(&json_bytes).unwrap();
    assert_eq!(manifest["package"]["id"], id);

    let response = server
        .send(
            server
                .client
                .get(server.url(&format!("/v1/packages/{id}/manifest")))
                .header("accept", "application/json"),
        )
        .await;
    assert_eq!(header(&response, "content-type"), "application/json");
    assert_eq!(bytes_of(response).await, expected_json);
    // An explicit format wins over Accept.
    let response = server
        .send(
            server
                .client
                .get(server.url(&format!("/v1/packages/{id}/manifest?format=cbor")))
                .header("accept", "application/json"),
        )
        .await;
    assert_eq!(header(&response, "content-type"), "application/cbor");

    assert_problem(
        server
            .get(&format!("/v1/packages/{id}/manifest?format=xml"))
            .await,
        StatusCode::BAD_REQUEST,
        "invalid_query",
    )
    .await;
    assert_problem(
        server
            .get(&format!("/v1/packages/{}/manifest", Uuid::new_v4()))
            .await,
        StatusCode::NOT_FOUND,
        "package_not_found",
    )
    .await;
    server.stop().await;
}
