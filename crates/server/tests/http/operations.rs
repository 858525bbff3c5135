//! Operations: storage verification, health, metrics.

use super::*;

on_both_engines!(storage_verify_finds_corruption);
async fn storage_verify_finds_corruption() {
    let server = TestServer::start().await;
    let package = server.create_package("ci", "standard", Value::Null).await;
    let id = package["id"].as_str().unwrap();
    let good = server.put_file(id, "good.txt", b"good bytes").await;
    let bad = server.put_file(id, "bad.txt", b"soon corrupted").await;

    let verify = |query: &str| {
        server.send(
            server
                .client
                .post(server.url(&format!("/v1/storage/verify{query}"))),
        )
    };
    let report = json_of(verify("").await).await;
    assert_eq!(report["checked"], 2);
    assert_eq!(report["failed"], 0);
    assert!(report["results"]
        .as_array()
        .unwrap()
        .iter()
        .all(|r| r["ok"] == true));

    let object = server
        .data_dir
        .join("objects")
        .join(bad["object_key"].as_str().unwrap());
    std::fs::write(&object, b"tampered bytes").expect("corrupt the object");
    let response = verify("?backend=local").await;
    assert_eq!(response.status(), StatusCode::OK);
    let report = json_of(response).await;
    assert_eq!(report["checked"], 2);
    assert_eq!(report["failed"], 1);
    let failed: Vec<&Value> = report["results"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["ok"] == false)
        .collect();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0]["file_id"], bad["id"]);
    assert!(failed[0]["failure"].is_string());
    let good_file = json_of(
        server
            .get(&format!("/v1/files/{}", good["id"].as_str().unwrap()))
            .await,
    )
    .await;
    assert_eq!(good_file["storage_status"], "verified");

    assert_problem(
        verify("?backend=nope").await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_input",
    )
    .await;
    assert_problem(
        verify("?bogus=1").await,
        StatusCode::BAD_REQUEST,
        "invalid_query",
    )
    .await;
    server.stop().await;
}

on_both_engines!(health_reports_ok);
async fn health_reports_ok() {
    let server = TestServer::start().await;
    server.create_package("ci", "standard", Value::Null).await;
    let response = server.get("/health").await;
    assert_eq!(response.status(), StatusCode::OK);
    let health = json_of(response).await;
    assert_eq!(health["status"], "ok");
    assert_eq!(health["ok"], true);
    assert_eq!(health["database"]["ok"], true);
    assert_eq!(health["backends"][0]["name"], "local");
    assert_eq!(health["failed_locations"], 0);
    assert_eq!(health["head_sequence"], 2);
    server.stop().await;
}

on_both_engines!(health_is_503_when_the_database_is_gone);
async fn health_is_503_when_the_database_is_gone() {
    let server = TestServer::start().await;
    server.registry.close().await;
    let response = server.get("/health").await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    let health = json_of(response).await;
    assert_eq!(health["status"], "unhealthy");
    assert_eq!(health["database"]["ok"], false);
    server.stop().await;
}

on_both_engines!(metrics_count_requests_bytes_and_ingests);
async fn metrics_count_requests_bytes_and_ingests() {
    let server = TestServer::start().await;
    let package = server.create_package("ci", "standard", Value::Null).await;
    let id = package["id"].as_str().unwrap();
    server.put_file(id, "a.txt", b"0123456789").await;
    let response = server
        .send(
            server
                .client
                .post(server.url(&format!("/v1/packages/{id}/finalize"))),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let _ = json_of(server.get(&format!("/v1/packages/{id}")).await).await;
    let _ = server
        .get(&format!("/v1/packages/{}", Uuid::new_v4()))
        .await
        .bytes()
        .await;

    let response = server.get("/metrics").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(header(&response, "content-type").starts_with("text/plain"));
    let text = String::from_utf8(bytes_of(response).await).unwrap();
    for expected in [
        "# TYPE artifactstore_http_requests_total counter",
        "# TYPE artifactstore_http_request_duration_seconds histogram",
        "artifactstore_http_requests_total{method=\"GET\",route=\"/v1/packages/{id}\",status=\"200\"} 1",
        "artifactstore_http_requests_total{method=\"GET\",route=\"/v1/packages/{id}\",status=\"404\"} 1",
        "artifactstore_http_requests_total{method=\"PUT\",route=\"/v1/packages/{id}/files/{*relative_path}\",status=\"201\"} 1",
        "artifactstore_http_request_duration_seconds_bucket{method=\"POST\",route=\"/v1/packages\",status=\"201\",le=\"+Inf\"} 1",
        "artifactstore_http_request_bytes_total{route=\"/v1/packages/{id}/files/{*relative_path}\"} 10",
        "artifactstore_packages_created_total 1",
        "artifactstore_files_ingested_total 1",
        "artifactstore_ingested_bytes_total 10",
        "artifactstore_packages_finalized_total 1",
        "artifactstore_event_streams_active 0",
    ] {
        assert!(text.contains(expected), "metrics lack {expected:?}:\n{text}");
    }
    let head = server.head().await;
    assert!(text.contains(&format!("artifactstore_event_log_head_sequence {head}")));
    assert!(text.contains("artifactstore_http_response_bytes_total{route=\"/v1/packages/{id}\"}"));
    server.stop().await;
}
