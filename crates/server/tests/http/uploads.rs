//! Resumable uploads (tus 1.0.0) over HTTP: the protocol's headers, resume
//! at the server's offset, checksums, the path reservation, locking,
//! termination, expiry, and hostile input that changes nothing.

use sha1::Digest as _;

use super::*;

/// The server's part size for these files.
const PART: usize = artifactstore_registry::FILESYSTEM_SMALLEST_PART_BYTES as usize;

fn b64(text: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(text)
}

fn metadata(path: &str, extra: &[(&str, &str)]) -> String {
    let mut items = vec![format!("relative_path {}", b64(path))];
    items.extend(extra.iter().map(|(k, v)| format!("{k} {}", b64(v))));
    items.join(",")
}

fn bytes(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u32).wrapping_mul(2654435761).to_le_bytes()[2] ^ seed)
        .collect()
}

impl TestServer {
    async fn tus_create(&self, package_id: &str, length: u64, metadata: &str) -> reqwest::Response {
        self.send(
            self.client
                .post(self.url(&format!("/v1/packages/{package_id}/uploads")))
                .header("Tus-Resumable", "1.0.0")
                .header("Upload-Length", length.to_string())
                .header("Upload-Metadata", metadata),
        )
        .await
    }

    /// Creates an upload; returns its URL path.
    async fn tus_created(&self, package_id: &str, length: u64, metadata: &str) -> String {
        let response = self.tus_create(package_id, length, metadata).await;
        assert_eq!(response.status(), StatusCode::CREATED);
        assert_eq!(header(&response, "tus-resumable"), "1.0.0");
        header(&response, "location").to_owned()
    }

    /// A PATCH of the upload at `url` from `offset`, its body to follow.
    fn tus_patch_request(&self, url: &str, offset: u64) -> reqwest::RequestBuilder {
        self.client
            .patch(self.url(url))
            .header("Tus-Resumable", "1.0.0")
            .header("Content-Type", "application/offset+octet-stream")
            .header("Upload-Offset", offset.to_string())
    }

    async fn tus_patch(&self, url: &str, offset: u64, body: Vec<u8>) -> reqwest::Response {
        self.send(self.tus_patch_request(url, offset).body(body))
            .await
    }

    /// A PATCH with `Upload-Checksum: {checksum}` (algorithm and base64).
    async fn tus_patch_with_checksum(
        &self,
        url: &str,
        offset: u64,
        checksum: &str,
        body: Vec<u8>,
    ) -> reqwest::Response {
        self.send(
            self.tus_patch_request(url, offset)
                .header("Upload-Checksum", checksum)
                .body(body),
        )
        .await
    }

    async fn tus_offset(&self, url: &str) -> Option<u64> {
        let response = self
            .send(
                self.client
                    .head(self.url(url))
                    .header("Tus-Resumable", "1.0.0"),
            )
            .await;
        assert_eq!(header(&response, "cache-control"), "no-store");
        match response.status() {
            StatusCode::OK => Some(header(&response, "upload-offset").parse().unwrap()),
            StatusCode::NOT_FOUND => None,
            other => panic!("HEAD answered {other}"),
        }
    }

    fn staged_uploads(&self) -> usize {
        files_under(&self.data_dir.join("objects/.uploads")).len()
    }
}

on_both_engines!(tus_uploads_resume_at_the_offset_and_record_like_a_put);
async fn tus_uploads_resume_at_the_offset_and_record_like_a_put() {
    let server = TestServer::start().await;
    let options = server
        .send(
            server
                .client
                .request(Method::OPTIONS, server.url("/v1/packages/x/uploads")),
        )
        .await;
    assert_eq!(options.status(), StatusCode::NO_CONTENT);
    assert_eq!(header(&options, "tus-version"), "1.0.0");
    let extensions = header(&options, "tus-extension");
    for extension in [
        "creation",
        "creation-with-upload",
        "termination",
        "expiration",
        "checksum",
    ] {
        assert!(
            extensions.split(',').any(|e| e == extension),
            "{extensions}"
        );
    }
    assert_eq!(header(&options, "tus-checksum-algorithm"), "sha1,sha256");

    let package = server.create_package("ci", "standard", Value::Null).await;
    let id = package["id"].as_str().unwrap().to_owned();
    // Two whole parts and a tail, sent in pieces that cut through parts.
    let data = bytes(2 * PART + 12_345, 7);
    let sha256 = Digest32::sha256_of(&data).to_hex();
    let blake3 = Digest32::blake3_of(&data).to_hex();
    let url = server
        .tus_created(
            &id,
            data.len() as u64,
            &metadata(
                "snapshots/db.tar",
                &[
                    ("media_type", "application/x-tar"),
                    ("sha256", &sha256),
                    ("blake3", &blake3),
                ],
            ),
        )
        .await;
    assert!(url.starts_with(&format!("/v1/packages/{id}/uploads/")));
    assert_eq!(server.tus_offset(&url).await, Some(0));
    let head_before = server.head().await;

    let cuts = [
        0,
        PART / 2 + 7,
        PART + 3,
        PART + 4,
        2 * PART + 100,
        data.len(),
    ];
    for window in cuts.windows(2) {
        let (from, to) = (window[0], window[1]);
        // A PATCH at the wrong offset changes nothing.
        if from > 0 {
            let response = server.tus_patch(&url, from as u64 - 1, vec![1]).await;
            assert_eq!(header(&response, "tus-resumable"), "1.0.0");
            assert_problem(response, StatusCode::CONFLICT, "upload_offset_mismatch").await;
        }
        // A checksum that does not match keeps nothing of the request.
        let response = server
            .tus_patch_with_checksum(
                &url,
                from as u64,
                "sha1 Kq5sNclPz7QV2+lfQIuc6R7oRu0=",
                data[from..to].to_vec(),
            )
            .await;
        assert_problem(
            response,
            StatusCode::from_u16(460).unwrap(),
            "checksum_mismatch",
        )
        .await;
        assert_eq!(server.tus_offset(&url).await, Some(from as u64));
        // Nothing about the file is recorded before its last byte.
        assert_eq!(server.head().await, head_before);
        let checksum =
            base64::engine::general_purpose::STANDARD.encode(sha1::Sha1::digest(&data[from..to]));
        let response = server
            .tus_patch_with_checksum(
                &url,
                from as u64,
                &format!("sha1 {checksum}"),
                data[from..to].to_vec(),
            )
            .await;
        assert_eq!(
            response.status(),
            StatusCode::NO_CONTENT,
            "PATCH {from}..{to}"
        );
        assert_eq!(header(&response, "upload-offset"), to.to_string());
        assert!(header(&response, "upload-expires").ends_with(" GMT"));
        if to == data.len() {
            let file_url = header(&response, "content-location").to_owned();
            let file = json_of(server.get(&file_url).await).await;
            assert_eq!(file["relative_path"], "snapshots/db.tar");
            assert_eq!(file["media_type"], "application/x-tar");
            assert_eq!(file["sha256"], sha256);
            assert_eq!(file["blake3"], blake3);
            assert_eq!(file["size_bytes"], data.len());
            let content = bytes_of(server.get(&format!("{file_url}/content")).await).await;
            assert!(content == data, "downloaded bytes differ");
        } else if to > PART {
            assert_eq!(server.head().await, head_before);
        }
    }
    // Completed: the upload is gone, its staging too; one event recorded.
    assert_eq!(server.tus_offset(&url).await, None);
    assert_eq!(server.staged_uploads(), 0);
    assert_eq!(server.head().await, head_before + 1);

    // Empty and one-byte files; creation-with-upload sends the byte.
    let empty = server.tus_create(&id, 0, &metadata("empty", &[])).await;
    assert_eq!(empty.status(), StatusCode::CREATED);
    let response = server
        .send(
            server
                .client
                .post(server.url(&format!("/v1/packages/{id}/uploads")))
                .header("Tus-Resumable", "1.0.0")
                .header("Upload-Length", "1")
                .header("Upload-Metadata", metadata("one", &[]))
                .header("Content-Type", "application/offset+octet-stream")
                .body(vec![b'x']),
        )
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    assert_eq!(header(&response, "upload-offset"), "1");
    let files = json_of(server.get(&format!("/v1/packages/{id}/files")).await).await;
    let sizes: BTreeMap<String, u64> = files["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["relative_path"].as_str().unwrap().to_owned(),
                f["size_bytes"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(sizes["empty"], 0);
    assert_eq!(sizes["one"], 1);
    let finalized = server
        .post_json(&format!("/v1/packages/{id}/finalize"), &json!({}))
        .await;
    assert_eq!(finalized.status(), StatusCode::OK);
    server.stop().await;
}

on_both_engines!(an_upload_reserves_its_path_and_holds_finalize);
async fn an_upload_reserves_its_path_and_holds_finalize() {
    let server = TestServer::start().await;
    let package = server.create_package("ci", "standard", Value::Null).await;
    let id = package["id"].as_str().unwrap().to_owned();
    let url = server
        .tus_created(&id, 10, &metadata("logs/run", &[]))
        .await;
    let upload_id = url.rsplit('/').next().unwrap().to_owned();

    // A second upload, or a PUT, to the path (or through it) is refused.
    let response = server.tus_create(&id, 10, &metadata("logs/run", &[])).await;
    let body = assert_problem(response, StatusCode::CONFLICT, "path_reserved").await;
    assert!(body["detail"].as_str().unwrap().contains(&upload_id));
    let response = server
        .tus_create(&id, 10, &metadata("logs/run/inner", &[]))
        .await;
    assert_problem(response, StatusCode::CONFLICT, "path_reserved").await;
    for path in ["logs/run", "logs/RUN", "logs/run/x"] {
        let response = server
            .send(
                server
                    .client
                    .put(server.url(&format!("/v1/packages/{id}/files/{path}")))
                    .body(&b"racing"[..]),
            )
            .await;
        assert_problem(response, StatusCode::CONFLICT, "path_reserved").await;
    }
    // Finalize waits for it, naming it.
    let response = server
        .post_json(&format!("/v1/packages/{id}/finalize"), &json!({}))
        .await;
    let body = assert_problem(response, StatusCode::CONFLICT, "uploads_open").await;
    assert!(body["detail"].as_str().unwrap().contains(&upload_id));

    // Another caller cannot see, write or end it.
    let other = server
        .send(
            server
                .client
                .delete(server.url(&url))
                .header("Tus-Resumable", "1.0.0")
                .header("x-artifactstore-actor", "someone-else"),
        )
        .await;
    assert_problem(other, StatusCode::NOT_FOUND, "upload_not_found").await;

    // One request writes at a time: while a PATCH streams, another gets 423.
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(1);
    let slow = {
        let request = server
            .client
            .patch(server.url(&url))
            .header("Tus-Resumable", "1.0.0")
            .header("Content-Type", "application/offset+octet-stream")
            .header("Upload-Offset", "0")
            .body(reqwest::Body::wrap_stream(
                tokio_stream::wrappers::ReceiverStream::new(rx),
            ));
        tokio::spawn(request.send())
    };
    tx.send(Ok(b"abc".to_vec())).await.unwrap();
    // Once the first request holds the lock, a second writer is refused.
    let mut held = false;
    for _ in 0..200 {
        let record = server
            .registry
            .store()
            .upload(&upload_id)
            .await
            .unwrap()
            .unwrap();
        if record.locked_by.is_some() {
            held = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(held, "the streaming PATCH never took the lock");
    let response = server.tus_patch(&url, 0, b"abc".to_vec()).await;
    let locked = (response.status() == StatusCode::LOCKED).then_some(response);
    let locked = locked.expect("a second writer was let in");
    assert_eq!(header(&locked, "retry-after"), "1");
    assert_problem(locked, StatusCode::LOCKED, "upload_locked").await;
    drop(tx); // the first PATCH ends after 3 bytes
    let first = tokio::time::timeout(WAIT, slow)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(first.status(), StatusCode::NO_CONTENT);
    assert_eq!(server.tus_offset(&url).await, Some(3));

    // Terminated: the path is free, the staging gone, finalize proceeds.
    let response = server
        .send(
            server
                .client
                .delete(server.url(&url))
                .header("Tus-Resumable", "1.0.0"),
        )
        .await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert_eq!(server.tus_offset(&url).await, None);
    assert_eq!(server.staged_uploads(), 0);
    server.put_file(&id, "logs/run", b"now free").await;
    let response = server
        .post_json(&format!("/v1/packages/{id}/finalize"), &json!({}))
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    server.stop().await;
}

on_both_engines!(parts_the_saved_digests_lack_are_hashed_again_from_the_staging);
/// A request may save progress before its hashers finish its last parts,
/// and keep them for the upload's next request in this process; a request
/// without them (another replica, a restarted server) hashes those parts
/// again from the staged file. Here, before each request, the saved digest
/// state is put back to the creation's, lacking every part, and a request
/// whose checksum does not match takes the parked hashers and fails, so
/// the next has none. The file's digests must still be its own: never a
/// wrong digest recorded. It ends on a part boundary, so its last request
/// stores the last whole part itself, after the parts it hashed again.
async fn parts_the_saved_digests_lack_are_hashed_again_from_the_staging() {
    let server = TestServer::start().await;
    let store = server.registry.store();
    let package = server.create_package("ci", "standard", Value::Null).await;
    let id = package["id"].as_str().unwrap().to_owned();
    let data = bytes(4 * PART, 5);
    // No declared digest: the server's own are all there is.
    let url = server
        .tus_created(&id, data.len() as u64, &metadata("lagging", &[]))
        .await;
    let upload_id = url.rsplit('/').next().unwrap().to_owned();
    let created = store.upload(&upload_id).await.unwrap().unwrap();
    let cut = 2 * PART + 777;
    let response = server.tus_patch(&url, 0, data[..cut].to_vec()).await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);

    let middle = 3 * PART + 10;
    for (from, to, parts_before) in [(cut, middle, 2), (middle, data.len(), 3)] {
        let saved = store.upload(&upload_id).await.unwrap().unwrap();
        assert_eq!(saved.progress.upload_offset, from as u64);
        assert_eq!(saved.progress.part_receipts.len(), parts_before);
        let lagging = artifactstore_store::UploadProgress {
            digest_state: created.progress.digest_state.clone(),
            ..saved.progress.clone()
        };
        let now = server.clock.now();
        assert!(store
            .lock_upload(&upload_id, "test", now, now.plus_seconds(60).unwrap())
            .await
            .unwrap());
        assert!(store
            .save_upload(
                &upload_id,
                "test",
                &lagging,
                None,
                saved.expires_at,
                artifactstore_store::SaveDurability::Immediate,
            )
            .await
            .unwrap());
        let response = server
            .tus_patch_with_checksum(
                &url,
                from as u64,
                "sha1 Kq5sNclPz7QV2+lfQIuc6R7oRu0=",
                vec![0; to - from],
            )
            .await;
        assert_problem(
            response,
            StatusCode::from_u16(460).unwrap(),
            "checksum_mismatch",
        )
        .await;

        let response = server
            .tus_patch(&url, from as u64, data[from..to].to_vec())
            .await;
        assert_eq!(
            response.status(),
            StatusCode::NO_CONTENT,
            "PATCH {from}..{to}"
        );
        assert_eq!(header(&response, "upload-offset"), to.to_string());
        if to == data.len() {
            let file_url = header(&response, "content-location").to_owned();
            let file = json_of(server.get(&file_url).await).await;
            assert_eq!(file["sha256"], Digest32::sha256_of(&data).to_hex());
            assert_eq!(file["blake3"], Digest32::blake3_of(&data).to_hex());
            let content = bytes_of(server.get(&format!("{file_url}/content")).await).await;
            assert!(content == data, "downloaded bytes differ");
        }
    }
    assert_eq!(server.staged_uploads(), 0);
    server.stop().await;
}

on_both_engines!(idle_uploads_expire_with_their_bytes);
async fn idle_uploads_expire_with_their_bytes() {
    let server = TestServer::start().await;
    let package = server.create_package("ci", "standard", Value::Null).await;
    let id = package["id"].as_str().unwrap().to_owned();
    let url = server.tus_created(&id, 100, &metadata("half", &[])).await;
    assert_eq!(
        server.tus_patch(&url, 0, vec![9; 50]).await.status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(server.registry.expire_uploads().await.unwrap(), 0);
    assert_eq!(server.staged_uploads(), 1);
    server.clock.advance_days(2);
    // Expired: gone for clients at once, its bytes at the next pass.
    assert_eq!(server.tus_offset(&url).await, None);
    assert_eq!(server.registry.expire_uploads().await.unwrap(), 1);
    assert_eq!(server.staged_uploads(), 0);
    server.put_file(&id, "half", b"the path is free").await;
    let response = server
        .post_json(&format!("/v1/packages/{id}/finalize"), &json!({}))
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    server.stop().await;
}

on_both_engines!(tus_refuses_hostile_input_and_changes_nothing);
async fn tus_refuses_hostile_input_and_changes_nothing() {
    let server = TestServer::start_configured(ServerOptions::default(), |config| {
        config.limits.max_file_bytes = 1000;
    })
    .await;
    let package = server.create_package("ci", "standard", Value::Null).await;
    let id = package["id"].as_str().unwrap().to_owned();
    let head = server.head().await;
    let create = |headers: Vec<(&'static str, String)>| {
        let mut request = server
            .client
            .post(server.url(&format!("/v1/packages/{id}/uploads")));
        for (name, value) in headers {
            request = request.header(name, value);
        }
        request
    };
    let tus = ("Tus-Resumable", "1.0.0".to_owned());
    let length = ("Upload-Length", "10".to_owned());
    let path = ("Upload-Metadata", metadata("ok", &[]));
    type Headers = Vec<(&'static str, String)>;
    let cases: Vec<(Headers, StatusCode, &str)> = vec![
        (
            vec![length.clone(), path.clone()],
            StatusCode::PRECONDITION_FAILED,
            "tus_version_unsupported",
        ),
        (
            vec![
                ("Tus-Resumable", "0.2.2".into()),
                length.clone(),
                path.clone(),
            ],
            StatusCode::PRECONDITION_FAILED,
            "tus_version_unsupported",
        ),
        (
            vec![tus.clone(), path.clone()],
            StatusCode::BAD_REQUEST,
            "invalid_header",
        ),
        (
            vec![tus.clone(), ("Upload-Length", "-1".into()), path.clone()],
            StatusCode::BAD_REQUEST,
            "invalid_header",
        ),
        (
            vec![
                tus.clone(),
                ("Upload-Length", "99999999999999999999999".into()),
                path.clone(),
            ],
            StatusCode::BAD_REQUEST,
            "invalid_header",
        ),
        (
            vec![
                tus.clone(),
                ("Upload-Defer-Length", "1".into()),
                path.clone(),
            ],
            StatusCode::BAD_REQUEST,
            "invalid_header",
        ),
        (
            vec![tus.clone(), ("Upload-Length", "1001".into()), path.clone()],
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
        ),
        (
            vec![tus.clone(), length.clone()],
            StatusCode::BAD_REQUEST,
            "invalid_header",
        ),
        (
            vec![
                tus.clone(),
                length.clone(),
                ("Upload-Metadata", "relative_path !!!".into()),
            ],
            StatusCode::BAD_REQUEST,
            "invalid_header",
        ),
        (
            vec![
                tus.clone(),
                length.clone(),
                ("Upload-Metadata", metadata("../etc/passwd", &[])),
            ],
            StatusCode::BAD_REQUEST,
            "invalid_path",
        ),
        (
            vec![
                tus.clone(),
                length.clone(),
                ("Upload-Metadata", metadata("a\u{0}b", &[])),
            ],
            StatusCode::BAD_REQUEST,
            "invalid_path",
        ),
        (
            vec![
                tus.clone(),
                length.clone(),
                ("Upload-Metadata", metadata("ok", &[("sha256", "zz")])),
            ],
            StatusCode::BAD_REQUEST,
            "invalid_digest",
        ),
        (
            vec![
                tus.clone(),
                length.clone(),
                (
                    "Upload-Metadata",
                    format!("{},relative_path {}", metadata("a", &[]), b64("b")),
                ),
            ],
            StatusCode::BAD_REQUEST,
            "invalid_header",
        ),
    ];
    for (headers, status, code) in cases {
        let response = server.send(create(headers.clone())).await;
        assert_eq!(header(&response, "tus-resumable"), "1.0.0", "{headers:?}");
        let body = assert_problem(response, status, code).await;
        assert!(!body["detail"].as_str().unwrap().is_empty(), "{headers:?}");
    }
    let response = server
        .tus_create("not-a-uuid", 10, &metadata("ok", &[]))
        .await;
    assert_problem(response, StatusCode::BAD_REQUEST, "invalid_id").await;
    let response = server
        .tus_create(&Uuid::new_v4().to_string(), 10, &metadata("ok", &[]))
        .await;
    assert_problem(response, StatusCode::NOT_FOUND, "package_not_found").await;
    assert_eq!(server.head().await, head);
    assert_eq!(server.staged_uploads(), 0);

    // PATCH: wrong media type, no offset, beyond the length, unknown ids.
    let url = server
        .tus_created(&id, 4, &metadata("four", &[("sha256", &"0".repeat(64))]))
        .await;
    let response = server
        .send(
            server
                .client
                .patch(server.url(&url))
                .header("Tus-Resumable", "1.0.0")
                .header("Content-Type", "application/octet-stream")
                .header("Upload-Offset", "0")
                .body(vec![1]),
        )
        .await;
    assert_problem(
        response,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
    )
    .await;
    let response = server
        .send(
            server
                .client
                .patch(server.url(&url))
                .header("Tus-Resumable", "1.0.0")
                .header("Content-Type", "application/offset+octet-stream")
                .body(vec![1]),
        )
        .await;
    assert_problem(response, StatusCode::BAD_REQUEST, "invalid_header").await;
    let response = server
        .send(
            server
                .client
                .patch(server.url(&url))
                .header("Tus-Resumable", "1.0.0")
                .header("Content-Type", "application/offset+octet-stream")
                .header("Upload-Offset", "0")
                .header("Upload-Checksum", "md5 AAAA")
                .body(vec![1]),
        )
        .await;
    assert_problem(
        response,
        StatusCode::BAD_REQUEST,
        "checksum_algorithm_unsupported",
    )
    .await;
    let response = server.tus_patch(&url, 0, vec![1; 5]).await;
    assert_problem(response, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large").await;
    // The request that crosses the length is refused whole.
    assert_eq!(server.tus_offset(&url).await, Some(0));
    let unknown = format!("/v1/packages/{id}/uploads/{}", Uuid::new_v4());
    let response = server.tus_patch(&unknown, 0, vec![1]).await;
    assert_problem(response, StatusCode::NOT_FOUND, "upload_not_found").await;
    let response = server
        .tus_patch(
            &format!("/v1/packages/{id}/uploads/..%2F..%2Fx"),
            0,
            vec![1],
        )
        .await;
    assert_problem(response, StatusCode::BAD_REQUEST, "invalid_id").await;
    // Through another package's URL, it is not found.
    let elsewhere = url.replace(&id, &Uuid::new_v4().to_string());
    let response = server.tus_patch(&elsewhere, 0, vec![1]).await;
    assert_problem(response, StatusCode::NOT_FOUND, "upload_not_found").await;

    // The declared digest is checked at the last byte, like a PUT's: a
    // mismatch records nothing, and the upload is over.
    let at = server.tus_offset(&url).await.unwrap();
    let response = server.tus_patch(&url, at, vec![2; 4 - at as usize]).await;
    assert_problem(response, StatusCode::BAD_REQUEST, "digest_mismatch").await;
    assert_eq!(server.tus_offset(&url).await, None);
    assert_eq!(server.head().await, head);
    assert_eq!(server.staged_uploads(), 0);
    assert_eq!(server.file_count(&id).await, 0);
    server.stop().await;
}
