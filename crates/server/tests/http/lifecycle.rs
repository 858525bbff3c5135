//! The lifecycle over HTTP: explicit purge and its refusals, 410 for a
//! purged package's bytes (its manifest still served), the review list,
//! one pass on demand (and its dry run), usage, scopes, hostile input.

use super::*;

/// `logs` purged as soon as eligible, `audit` by review, `forever` never.
fn lifecycle_classes(config: &mut Config) {
    use artifactstore_registry::config::RetentionClassConfig;
    use artifactstore_registry::core::retention::DeletionStrategy;
    let class = |id: &str, duration: Option<&str>, strategy, purge_after: Option<&str>| {
        RetentionClassConfig {
            id: id.into(),
            default_duration: duration.map(str::to_owned),
            deletion_strategy: strategy,
            purge_after: purge_after.map(str::to_owned),
        }
    };
    config.retention_classes = vec![
        class("logs", Some("1d"), DeletionStrategy::Delete, Some("0s")),
        class("audit", Some("1d"), DeletionStrategy::ManualReview, None),
        class("forever", None, DeletionStrategy::Never, None),
    ];
    config.lifecycle.orphan_grace = "1h".into();
}

on_both_engines!(purge_gone_manifest_review_and_passes_over_http);
async fn purge_gone_manifest_review_and_passes_over_http() {
    let server = TestServer::start_configured(ServerOptions::default(), lifecycle_classes).await;
    let logs = server.create_package("ci", "logs", Value::Null).await;
    let logs_id = logs["id"].as_str().unwrap().to_owned();
    let file = server.put_file(&logs_id, "report.txt", b"evidence").await;
    let file_id = file["id"].as_str().unwrap().to_owned();
    let response = server
        .post_json(&format!("/v1/packages/{logs_id}/finalize"), &json!({}))
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let audit = server.create_package("ci", "audit", Value::Null).await;
    let audit_id = audit["id"].as_str().unwrap().to_owned();
    let forever = server.create_package("ci", "forever", Value::Null).await;
    let forever_id = forever["id"].as_str().unwrap().to_owned();

    // Not yet eligible: 409 saying which.
    let purge = |id: &str| format!("/v1/packages/{id}/purge");
    let response = server
        .post_json(&purge(&logs_id), &json!({"reason": "cleanup"}))
        .await;
    assert_problem(response, StatusCode::CONFLICT, "package_not_eligible").await;
    let response = server
        .post_json(&purge(&forever_id), &json!({"reason": "cleanup"}))
        .await;
    assert_problem(
        response,
        StatusCode::CONFLICT,
        "retention_class_never_deletes",
    )
    .await;

    // A dry run lists the sweep and the purge, and changes nothing.
    server.clock.advance_days(2);
    let head = server.head().await;
    let response = server
        .post_json("/v1/lifecycle/run?dry_run=true", &json!(null))
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let dry = json_of(response).await;
    assert_eq!(dry["dry_run"], true);
    assert_eq!(dry["purged"][0]["package_id"], logs_id.as_str());
    assert_eq!(dry["objects_deleted"], 1);
    assert_eq!(server.head().await, head);
    let response = server.get(&format!("/v1/files/{file_id}/content")).await;
    assert_eq!(response.status(), StatusCode::OK);

    // A hold makes the review package's purge refused.
    let response = server
        .post_json(
            &format!("/v1/packages/{audit_id}/holds"),
            &json!({"reason": "litigation"}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let hold_id = json_of(response).await["hold_id"]
        .as_str()
        .unwrap()
        .to_owned();

    // The pass: sweep, purge `logs`, collect its bytes.
    let response = server.post_json("/v1/lifecycle/run", &json!(null)).await;
    assert_eq!(response.status(), StatusCode::OK);
    let report = json_of(response).await;
    assert_eq!(report["dry_run"], false);
    assert_eq!(
        report["purged"],
        json!([{"package_id": logs_id, "retention_class": "logs", "rule": "delete_after_eligible"}])
    );
    assert_eq!(report["objects_deleted"], 1);
    assert_eq!(report["bytes_freed"], 8);
    assert_eq!(
        report["backends"][0]["objects_by_reason"],
        json!({"purged": 1})
    );

    // The purged package: 410 for its bytes, by id and by path, GET and
    // HEAD; its records and manifest stay.
    let gone = assert_problem(
        server.get(&format!("/v1/files/{file_id}/content")).await,
        StatusCode::GONE,
        "package_purged",
    )
    .await;
    let detail = gone["detail"].as_str().unwrap();
    assert!(
        detail.contains("was purged at") && detail.contains("deletes eligible packages"),
        "{gone}"
    );
    assert_problem(
        server
            .get(&format!("/v1/packages/{logs_id}/files/report.txt"))
            .await,
        StatusCode::GONE,
        "package_purged",
    )
    .await;
    let head_response = server
        .send(
            server
                .client
                .head(server.url(&format!("/v1/files/{file_id}/content"))),
        )
        .await;
    assert_eq!(head_response.status(), StatusCode::GONE);
    let package = json_of(server.get(&format!("/v1/packages/{logs_id}")).await).await;
    assert_eq!(package["status"], "purged");
    assert!(package["purged_at"].is_string());
    let record = json_of(server.get(&format!("/v1/files/{file_id}")).await).await;
    assert_eq!(record["relative_path"], "report.txt");
    let response = server
        .get(&format!("/v1/packages/{logs_id}/manifest"))
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let manifest = bytes_of(response).await;
    assert_eq!(
        package["manifest_digest"],
        format!("blake3:{}", Digest32::blake3_of(&manifest))
    );
    let listed = json_of(server.get("/v1/packages?status=purged").await).await;
    assert_eq!(listed["items"].as_array().unwrap().len(), 1);
    let retention = json_of(
        server
            .get(&format!("/v1/packages/{logs_id}/retention"))
            .await,
    )
    .await;
    assert_eq!(retention["purge"]["rule"], "delete_after_eligible");
    assert_eq!(
        retention["explanation"]["steps"]
            .as_array()
            .unwrap()
            .last()
            .unwrap()["kind"],
        "purge"
    );
    assert!(retention["explanation"]["sentence"]
        .as_str()
        .unwrap()
        .starts_with("purged on"));
    let response = server
        .post_json(&purge(&logs_id), &json!({"reason": "again"}))
        .await;
    assert_problem(response, StatusCode::CONFLICT, "package_purged").await;

    // The held review package: not in the review list while held, and its
    // purge is refused; released, it waits for review, then an admin
    // purges it.
    let review = json_of(server.get("/v1/retention/review").await).await;
    assert_eq!(review["items"], json!([]));
    let response = server
        .post_json(&purge(&audit_id), &json!({"reason": "cleanup"}))
        .await;
    assert_problem(response, StatusCode::CONFLICT, "package_held").await;
    let response = server
        .post_json(
            &format!("/v1/packages/{audit_id}/holds/{hold_id}/release"),
            &json!({"reason": "case closed"}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let review = json_of(server.get("/v1/retention/review").await).await;
    assert_eq!(review["items"][0]["package"]["id"], audit_id.as_str());
    assert!(review["items"][0]["eligible_at"].is_string());
    let response = server
        .post_json(&purge(&audit_id), &json!({"reason": "reviewed"}))
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(json_of(response).await["rule"], "explicit");

    let usage = json_of(server.get("/v1/usage").await).await;
    assert_eq!(usage["by_producer"], json!([]), "{usage}");
    assert_eq!(usage["reclaimable"], json!({"objects": 0, "bytes": 0}));

    let metrics = String::from_utf8(bytes_of(server.get("/metrics").await).await).unwrap();
    assert!(
        metrics.contains("artifactstore_lifecycle_packages_purged_total 1"),
        "{metrics}"
    );
    assert!(metrics.contains("artifactstore_lifecycle_objects_deleted_total 1"));
    assert!(metrics.contains("artifactstore_lifecycle_last_run_duration_seconds"));
    server.stop().await;
}

on_both_engines!(lifecycle_endpoints_refuse_hostile_input_and_non_admins);
async fn lifecycle_endpoints_refuse_hostile_input_and_non_admins() {
    use artifactstore_core::token::Scope;
    let server = TestServer::start_configured(
        ServerOptions {
            auth_required: true,
            ..ServerOptions::default()
        },
        lifecycle_classes,
    )
    .await;
    let (_, admin) = server
        .registry
        .create_token("root", Scope::Admin, vec![], None, "setup")
        .await
        .unwrap();
    let (_, writer) = server
        .registry
        .create_token("ci-bot", Scope::Write, vec![], None, "setup")
        .await
        .unwrap();
    let (_, reader) = server
        .registry
        .create_token("auditor", Scope::Read, vec![], None, "setup")
        .await
        .unwrap();
    let send = |method: Method, path: &str, token: &str, body: Option<Value>| {
        let mut request = server
            .client
            .request(method, server.url(path))
            .bearer_auth(token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        server.send(request)
    };
    let created = send(
        Method::POST,
        "/v1/packages",
        &writer,
        Some(json!({"name": "n", "producer": "ci", "subject": "s", "retention_class": "logs"})),
    )
    .await;
    assert_eq!(created.status(), StatusCode::CREATED);
    let id = json_of(created).await["id"].as_str().unwrap().to_owned();
    server.clock.advance_days(2);
    let head = server.head().await;
    // Only admins purge, run passes, and read usage; readers may see the
    // review list.
    for token in [&writer, &reader] {
        let response = send(
            Method::POST,
            &format!("/v1/packages/{id}/purge"),
            token,
            Some(json!({"reason": "x"})),
        )
        .await;
        assert_problem(response, StatusCode::FORBIDDEN, "forbidden").await;
        let response = send(Method::POST, "/v1/lifecycle/run", token, None).await;
        assert_problem(response, StatusCode::FORBIDDEN, "forbidden").await;
        let response = send(Method::GET, "/v1/usage", token, None).await;
        assert_problem(response, StatusCode::FORBIDDEN, "forbidden").await;
    }
    assert_eq!(
        send(Method::GET, "/v1/retention/review", &reader, None)
            .await
            .status(),
        StatusCode::OK
    );
    // Hostile input: each refused with a clear 4xx, nothing recorded.
    for (path, body, status, code) in [
        (
            format!("/v1/packages/{id}/purge"),
            json!({}),
            StatusCode::BAD_REQUEST,
            "invalid_json",
        ),
        (
            format!("/v1/packages/{id}/purge"),
            json!({"reason": "x", "force": true}),
            StatusCode::BAD_REQUEST,
            "invalid_json",
        ),
        (
            format!("/v1/packages/{id}/purge"),
            json!({"reason": " \t"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "retention_refused",
        ),
        (
            format!("/v1/packages/{id}/purge"),
            json!({"reason": "x".repeat(5000)}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "retention_refused",
        ),
        (
            format!("/v1/packages/{id}/purge"),
            json!({"reason": "a\u{0}b"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_input",
        ),
        (
            "/v1/packages/not-a-uuid/purge".to_owned(),
            json!({"reason": "x"}),
            StatusCode::BAD_REQUEST,
            "invalid_id",
        ),
        (
            format!("/v1/packages/{}/purge", Uuid::now_v7()),
            json!({"reason": "x"}),
            StatusCode::NOT_FOUND,
            "package_not_found",
        ),
        (
            "/v1/lifecycle/run?dry_run=maybe".to_owned(),
            json!(null),
            StatusCode::BAD_REQUEST,
            "invalid_query",
        ),
        (
            "/v1/lifecycle/run?force=1".to_owned(),
            json!(null),
            StatusCode::BAD_REQUEST,
            "invalid_query",
        ),
    ] {
        let response = send(Method::POST, &path, &admin, Some(body.clone())).await;
        assert_problem(response, status, code).await;
    }
    for path in [
        "/v1/retention/review?limit=0",
        "/v1/retention/review?after=-1",
        "/v1/retention/review?limit=abc",
        "/v1/retention/review?sort=x",
    ] {
        assert_problem(
            send(Method::GET, path, &reader, None).await,
            StatusCode::BAD_REQUEST,
            "invalid_query",
        )
        .await;
    }
    assert_eq!(server.head().await, head, "refusals record nothing");
    // Not eligible until swept: the explicit purge does not sweep.
    let response = send(
        Method::POST,
        &format!("/v1/packages/{id}/purge"),
        &admin,
        Some(json!({"reason": "x"})),
    )
    .await;
    assert_problem(response, StatusCode::CONFLICT, "package_not_eligible").await;
    server.stop().await;
}
