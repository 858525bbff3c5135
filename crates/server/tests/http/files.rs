//! Files: uploads and downloads with digests, ranges and conditions, paths, conflicts.

use super::*;

on_both_engines!(upload_and_download_with_digests);
async fn upload_and_download_with_digests() {
    let server = TestServer::start().await;
    let package = server.create_package("ci", "standard", Value::Null).await;
    let id = package["id"].as_str().unwrap();
    let content: &[u8] = b"hello, artifact store\n";
    let blake3 = Digest32::blake3_of(content);
    let response = server
        .send(
            server
                .client
                .put(server.url(&format!("/v1/packages/{id}/files/reports/summary%20v1.txt")))
                .header("content-type", "text/plain; charset=utf-8")
                .header(
                    "content-digest",
                    format!("md5=:AAAA:, {}", sha256_header(content)),
                )
                .header("x-content-blake3", blake3.to_hex())
                .body(content),
        )
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let location = header(&response, "location").to_owned();
    let file = json_of(response).await;
    let file_id = file["id"].as_str().unwrap().to_owned();
    assert_eq!(location, format!("/v1/files/{file_id}"));
    assert_eq!(file["relative_path"], "reports/summary v1.txt");
    assert_eq!(file["media_type"], "text/plain; charset=utf-8");
    assert_eq!(file["size_bytes"], content.len());
    assert_eq!(file["blake3"], blake3.to_hex());
    assert_eq!(file["sha256"], Digest32::sha256_of(content).to_hex());
    assert_eq!(
        file["content_address"],
        format!("blake3:{}", blake3.to_hex())
    );
    assert_eq!(file["package_id"], id);
    for key in [
        "backend_id",
        "object_key",
        "retrieval_tier",
        "storage_status",
        "created_at",
    ] {
        assert!(file.get(key).is_some(), "file JSON lacks {key}");
    }

    // Without a Content-Type the media type is application/octet-stream.
    let response = server
        .send(
            server
                .client
                .put(server.url(&format!("/v1/packages/{id}/files/raw.bin")))
                .body(vec![0u8, 1, 2]),
        )
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    assert_eq!(
        json_of(response).await["media_type"],
        "application/octet-stream"
    );

    let listed = json_of(server.get(&format!("/v1/packages/{id}/files")).await).await;
    let paths: Vec<&str> = listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["relative_path"].as_str().unwrap())
        .collect();
    assert_eq!(paths, vec!["raw.bin", "reports/summary v1.txt"]);
    assert_eq!(json_of(server.get(&location).await).await, file);

    for path in [
        format!("/v1/files/{file_id}/content"),
        format!("/v1/packages/{id}/files/reports/summary%20v1.txt"),
    ] {
        let response = server.get(&path).await;
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        assert_eq!(
            header(&response, "content-type"),
            "text/plain; charset=utf-8"
        );
        assert_eq!(
            header(&response, "content-length"),
            content.len().to_string()
        );
        assert_eq!(
            header(&response, "etag"),
            format!("\"blake3:{}\"", blake3.to_hex())
        );
        assert_eq!(header(&response, "content-digest"), sha256_header(content));
        assert_eq!(header(&response, "accept-ranges"), "bytes");
        assert_eq!(bytes_of(response).await, content);
    }
    assert_problem(
        server
            .get(&format!("/v1/packages/{id}/files/missing.txt"))
            .await,
        StatusCode::NOT_FOUND,
        "file_not_found",
    )
    .await;
    server.stop().await;
}

on_both_engines!(large_upload_streams_through);
async fn large_upload_streams_through() {
    let server = TestServer::start().await;
    let package = server.create_package("ci", "standard", Value::Null).await;
    let id = package["id"].as_str().unwrap();
    // 8 MiB in 64 KiB chunks, sent as a chunked stream of unknown length.
    let chunk = vec![7u8; 64 * 1024];
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        (0..128).map(|_| Ok(chunk.clone())).collect();
    let body = reqwest::Body::wrap_stream(futures::stream::iter(chunks));
    let response = server
        .send(
            server
                .client
                .put(server.url(&format!("/v1/packages/{id}/files/big.bin")))
                .body(body),
        )
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let file = json_of(response).await;
    assert_eq!(file["size_bytes"], 8 * 1024 * 1024);
    let expected = Digest32::blake3_of(&vec![7u8; 8 * 1024 * 1024]);
    assert_eq!(file["blake3"], expected.to_hex());
    let response = server
        .get(&format!(
            "/v1/files/{}/content",
            file["id"].as_str().unwrap()
        ))
        .await;
    let mut stream = response.bytes_stream();
    let mut hasher_input = Vec::new();
    while let Some(chunk) = tokio::time::timeout(WAIT, stream.next())
        .await
        .expect("download stalled")
    {
        hasher_input.extend_from_slice(&chunk.expect("chunk"));
    }
    assert_eq!(Digest32::blake3_of(&hasher_input), expected);
    server.stop().await;
}

on_both_engines!(ranges_head_and_conditional_requests);
async fn ranges_head_and_conditional_requests() {
    let server = TestServer::start().await;
    let package = server.create_package("ci", "standard", Value::Null).await;
    let id = package["id"].as_str().unwrap();
    let content: &'static [u8] = b"0123456789abcdefghij";
    let file = server.put_file(id, "digits.txt", content).await;
    let url = server.url(&format!(
        "/v1/files/{}/content",
        file["id"].as_str().unwrap()
    ));
    let etag = format!("\"{}\"", file["content_address"].as_str().unwrap());
    let ranged = |range: &str| server.client.get(&url).header("range", range.to_owned());

    let response = server.send(ranged("bytes=2-5")).await;
    assert_eq!(response.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(header(&response, "content-range"), "bytes 2-5/20");
    assert_eq!(header(&response, "content-length"), "4");
    assert_eq!(header(&response, "etag"), etag);
    assert!(
        response.headers().get("content-digest").is_none(),
        "206 must not carry the whole file's Content-Digest"
    );
    assert_eq!(header(&response, "repr-digest"), sha256_header(content));
    assert_eq!(bytes_of(response).await, b"2345");

    let response = server.send(ranged("bytes=15-")).await;
    assert_eq!(response.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(header(&response, "content-range"), "bytes 15-19/20");
    assert_eq!(bytes_of(response).await, b"fghij");

    let response = server.send(ranged("bytes=-3")).await;
    assert_eq!(response.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(header(&response, "content-range"), "bytes 17-19/20");
    assert_eq!(bytes_of(response).await, b"hij");

    let response = server.send(ranged("bytes=18-100")).await;
    assert_eq!(header(&response, "content-range"), "bytes 18-19/20");
    assert_eq!(bytes_of(response).await, b"ij");

    // Several ranges: the first satisfiable one alone.
    let response = server.send(ranged("bytes=0-1, 5-6")).await;
    assert_eq!(response.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(bytes_of(response).await, b"01");

    let response = server.send(ranged("bytes=20-")).await;
    assert_eq!(header(&response, "content-range"), "bytes */20");
    assert_problem(
        response,
        StatusCode::RANGE_NOT_SATISFIABLE,
        "range_not_satisfiable",
    )
    .await;
    let response = server.send(ranged("bytes=-0")).await;
    assert_eq!(response.status(), StatusCode::RANGE_NOT_SATISFIABLE);

    // Malformed ranges are ignored: the whole file.
    for malformed in ["bytes=5-2", "bytes=x-y", "lines=1-2", "bytes"] {
        let response = server.send(ranged(malformed)).await;
        assert_eq!(response.status(), StatusCode::OK, "{malformed}");
        assert_eq!(bytes_of(response).await, content);
    }

    // If-Range with a different validator: the whole file.
    let response = server
        .send(ranged("bytes=0-1").header("if-range", "\"blake3:other\""))
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let response = server
        .send(ranged("bytes=0-1").header("if-range", etag.clone()))
        .await;
    assert_eq!(response.status(), StatusCode::PARTIAL_CONTENT);

    // HEAD: the headers of a GET, no body.
    let response = server.send(server.client.head(&url)).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(header(&response, "content-length"), "20");
    assert_eq!(header(&response, "etag"), etag);
    assert_eq!(header(&response, "content-type"), "text/plain");
    assert_eq!(header(&response, "content-digest"), sha256_header(content));
    assert!(bytes_of(response).await.is_empty());
    let by_path = server.url(&format!("/v1/packages/{id}/files/digits.txt"));
    let response = server.send(server.client.head(&by_path)).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(header(&response, "content-length"), "20");
    let response = server
        .send(
            server
                .client
                .head(server.url(&format!("/v1/packages/{id}/files/nope"))),
        )
        .await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);

    // If-None-Match: 304 for our tag, a weak form of it, or `*`.
    for condition in [
        etag.clone(),
        format!("W/{etag}"),
        "\"x\", ".to_owned() + &etag,
        "*".to_owned(),
    ] {
        let response = server
            .send(
                server
                    .client
                    .get(&url)
                    .header("if-none-match", condition.clone()),
            )
            .await;
        assert_eq!(response.status(), StatusCode::NOT_MODIFIED, "{condition}");
        assert_eq!(header(&response, "etag"), etag);
        assert!(bytes_of(response).await.is_empty());
    }
    let response = server
        .send(
            server
                .client
                .get(&by_path)
                .header("if-none-match", etag.clone()),
        )
        .await;
    assert_eq!(response.status(), StatusCode::NOT_MODIFIED);
    let response = server
        .send(
            server
                .client
                .get(&url)
                .header("if-none-match", "\"blake3:other\""),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);

    // An empty file: any range is unsatisfiable, the whole is 0 bytes.
    let empty = server.put_file(id, "empty", b"").await;
    let empty_url = server.url(&format!(
        "/v1/files/{}/content",
        empty["id"].as_str().unwrap()
    ));
    let response = server
        .send(server.client.get(&empty_url).header("range", "bytes=0-"))
        .await;
    assert_eq!(response.status(), StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(header(&response, "content-range"), "bytes */0");
    let response = server
        .get(&format!(
            "/v1/files/{}/content",
            empty["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(header(&response, "content-length"), "0");
    server.stop().await;
}

on_both_engines!(invalid_relative_paths_are_refused);
async fn invalid_relative_paths_are_refused() {
    let server = TestServer::start().await;
    let package = server.create_package("ci", "standard", Value::Null).await;
    let id = package["id"].as_str().unwrap();
    let objects = server.data_dir.join("objects");
    let stored_before = files_under(&objects);
    let head = server.head().await;
    // Encoded separators decode to invalid paths; the URL library leaves
    // these segments alone.
    for path in [
        "a%2F..%2Fb",
        "a%2F%2Fb",
        "%2Fetc%2Fpasswd",
        "a%5Cb",
        "a%00b",
        "%FF",
    ] {
        let response = server
            .send(
                server
                    .client
                    .put(server.url(&format!("/v1/packages/{id}/files/{path}")))
                    .body("x"),
            )
            .await;
        assert_problem(response, StatusCode::BAD_REQUEST, "invalid_path").await;
    }
    // Dot segments (also encoded) would be normalised away by a URL
    // library, so send them raw.
    for target in [
        format!("/v1/packages/{id}/files/a/%2E%2E/b"),
        format!("/v1/packages/{id}/files/a/../b"),
        format!("/v1/packages/{id}/files/a//b"),
        format!("/v1/packages/{id}/files/a/./b"),
        format!("/v1/packages/{id}/files/a/%2e/b"),
    ] {
        let (status, answer) = raw_request(server.addr, "PUT", &target, b"x").await;
        assert_eq!(status, 400, "{target}: {answer}");
        assert!(answer.contains("\"code\":\"invalid_path\""), "{answer}");
    }
    assert_eq!(server.file_count(id).await, 0);
    assert_eq!(server.head().await, head);
    assert_eq!(files_under(&objects), stored_before);
    server.stop().await;
}

on_both_engines!(duplicate_paths_and_finalized_packages_conflict);
async fn duplicate_paths_and_finalized_packages_conflict() {
    let server = TestServer::start().await;
    let package = server.create_package("ci", "standard", Value::Null).await;
    let id = package["id"].as_str().unwrap();
    server.put_file(id, "a.txt", b"one").await;
    let response = server
        .send(
            server
                .client
                .put(server.url(&format!("/v1/packages/{id}/files/a.txt")))
                .body("two"),
        )
        .await;
    let problem = assert_problem(response, StatusCode::CONFLICT, "duplicate_relative_path").await;
    assert!(problem["detail"].as_str().unwrap().contains("a.txt"));

    let response = server
        .send(
            server
                .client
                .post(server.url(&format!("/v1/packages/{id}/finalize"))),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let finalized = json_of(response).await;
    assert_eq!(finalized["package_id"], id);
    let digest = finalized["manifest_digest"].as_str().unwrap();
    assert!(digest.starts_with("blake3:") && digest.len() == 7 + 64);
    let shown = json_of(server.get(&format!("/v1/packages/{id}")).await).await;
    assert_eq!(shown["status"], "finalized");
    assert_eq!(shown["manifest_digest"], digest);

    let response = server
        .send(
            server
                .client
                .put(server.url(&format!("/v1/packages/{id}/files/b.txt")))
                .body("late"),
        )
        .await;
    assert_problem(response, StatusCode::CONFLICT, "illegal_package_state").await;
    let response = server
        .send(
            server
                .client
                .post(server.url(&format!("/v1/packages/{id}/finalize"))),
        )
        .await;
    assert_problem(response, StatusCode::CONFLICT, "illegal_package_state").await;
    assert_eq!(server.file_count(id).await, 1);

    let response = server
        .send(
            server
                .client
                .put(server.url(&format!("/v1/packages/{}/files/x", Uuid::new_v4())))
                .body("x"),
        )
        .await;
    assert_problem(response, StatusCode::NOT_FOUND, "package_not_found").await;
    let response = server
        .send(
            server
                .client
                .put(server.url("/v1/packages/nope/files/x"))
                .body("x"),
        )
        .await;
    assert_problem(response, StatusCode::BAD_REQUEST, "invalid_id").await;
    server.stop().await;
}

on_both_engines!(digest_mismatch_stores_nothing);
async fn digest_mismatch_stores_nothing() {
    let server = TestServer::start().await;
    let package = server.create_package("ci", "standard", Value::Null).await;
    let id = package["id"].as_str().unwrap();
    let objects = server.data_dir.join("objects");
    let stored_before = files_under(&objects);
    let head = server.head().await;
    let url = server.url(&format!("/v1/packages/{id}/files/data.bin"));

    let response = server
        .send(
            server
                .client
                .put(&url)
                .header("content-digest", sha256_header(b"other bytes"))
                .body("real bytes"),
        )
        .await;
    let problem = assert_problem(response, StatusCode::BAD_REQUEST, "digest_mismatch").await;
    assert!(problem["detail"].as_str().unwrap().contains("sha-256"));
    let response = server
        .send(
            server
                .client
                .put(&url)
                .header(
                    "x-content-blake3",
                    Digest32::blake3_of(b"other bytes").to_hex(),
                )
                .body("real bytes"),
        )
        .await;
    let problem = assert_problem(response, StatusCode::BAD_REQUEST, "digest_mismatch").await;
    assert!(problem["detail"].as_str().unwrap().contains("blake3"));
    // A right sha-256 does not excuse a wrong blake3.
    let response = server
        .send(
            server
                .client
                .put(&url)
                .header("content-digest", sha256_header(b"real bytes"))
                .header("x-content-blake3", Digest32::blake3_of(b"other").to_hex())
                .body("real bytes"),
        )
        .await;
    assert_problem(response, StatusCode::BAD_REQUEST, "digest_mismatch").await;

    for (name, value) in [
        ("content-digest", "sha-256=abc"),
        ("content-digest", "sha-256=:c2hvcnQ=:"),
        ("x-content-blake3", "zz"),
    ] {
        let response = server
            .send(
                server
                    .client
                    .put(&url)
                    .header(name, value)
                    .body("real bytes"),
            )
            .await;
        assert_problem(response, StatusCode::BAD_REQUEST, "invalid_digest").await;
    }

    assert_eq!(server.file_count(id).await, 0);
    assert_eq!(server.head().await, head);
    assert_eq!(
        files_under(&objects),
        stored_before,
        "no object and no staging file left behind"
    );

    // The same path still accepts the right bytes.
    let response = server
        .send(
            server
                .client
                .put(&url)
                .header("content-digest", sha256_header(b"real bytes"))
                .header(
                    "x-content-blake3",
                    Digest32::blake3_of(b"real bytes").to_hex(),
                )
                .body("real bytes"),
        )
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    server.stop().await;
}

on_both_engines!(files_are_found_by_digest_across_packages);
async fn files_are_found_by_digest_across_packages() {
    let server = TestServer::start().await;
    let content: &'static [u8] = b"the same bytes, pushed three times\n";
    let (sha256, blake3) = (
        Digest32::sha256_of(content).to_hex(),
        Digest32::blake3_of(content).to_hex(),
    );
    let mut expected = Vec::new();
    for (producer, path) in [("ci", "a/log.txt"), ("nightly", "b.txt"), ("ci", "c/d.txt")] {
        let package = server
            .create_package(producer, "standard", Value::Null)
            .await;
        let id = package["id"].as_str().unwrap();
        server.put_file(id, "other.txt", b"something else").await;
        expected.push(server.put_file(id, path, content).await["id"].clone());
    }
    let ids = |page: &Value| -> Vec<Value> {
        page["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|file| file["id"].clone())
            .collect()
    };

    // By either digest, in the order recorded; upper-case hex is the same.
    for query in [
        format!("sha256={sha256}"),
        format!("blake3={blake3}"),
        format!("blake3={}", blake3.to_uppercase()),
    ] {
        let page = json_of(server.get(&format!("/v1/files?{query}")).await).await;
        assert_eq!(ids(&page), expected, "{query}");
        assert_eq!(page["next"], Value::Null);
        assert_eq!(page["items"][1]["relative_path"], "b.txt");
        assert_eq!(page["items"][1]["sha256"], sha256);
    }

    // Paged: the cursor walks the same list.
    let first = json_of(
        server
            .get(&format!("/v1/files?sha256={sha256}&limit=2"))
            .await,
    )
    .await;
    assert_eq!(ids(&first), expected[..2]);
    let next = first["next"].as_i64().expect("a second page");
    let second = json_of(
        server
            .get(&format!("/v1/files?sha256={sha256}&limit=2&after={next}"))
            .await,
    )
    .await;
    assert_eq!(ids(&second), expected[2..]);
    assert_eq!(second["next"], Value::Null);

    // Bytes nobody pushed: an empty page, not an error.
    let unknown = Digest32::sha256_of(b"never pushed").to_hex();
    let page = json_of(server.get(&format!("/v1/files?sha256={unknown}")).await).await;
    assert_eq!(page["items"], serde_json::json!([]));

    // Hostile and mistaken queries change nothing and say what is wrong.
    let head = server.head().await;
    for query in [
        String::new(),
        "limit=5".to_owned(),
        format!("sha256={sha256}&blake3={blake3}"),
        format!("sha256={sha256}&sha256={sha256}"),
        format!("sha256={}", &sha256[..63]),
        format!("sha256={sha256}0"),
        format!("sha256={}zz", &sha256[..62]),
        "sha256=%27%20OR%201%3D1%20--".to_owned(),
        format!("sha256={sha256}&limit=0"),
        format!("sha256={sha256}&limit=x"),
        format!("sha256={sha256}&after=-1"),
        format!("sha256={sha256}&path=a"),
        format!("md5={sha256}"),
    ] {
        let response = server.get(&format!("/v1/files?{query}")).await;
        assert_problem(response, StatusCode::BAD_REQUEST, "invalid_query").await;
    }
    assert_eq!(server.head().await, head);
}
