//! Auth, limits, slow and hostile clients, downloads that must not become pages.

use super::*;

on_both_engines!(tokens_scopes_and_producer_limits_are_enforced_when_auth_is_required);
/// Auth required: tokens, scopes, producer limits, actors, public routes.
async fn tokens_scopes_and_producer_limits_are_enforced_when_auth_is_required() {
    use artifactstore_core::token::Scope;
    let server = TestServer::start_with(ServerOptions {
        auth_required: true,
        ..ServerOptions::default()
    })
    .await;
    let registry = &server.registry;
    let (_, admin) = registry
        .create_token("root", Scope::Admin, vec![], None, "setup")
        .await
        .unwrap();
    let (_, reader) = registry
        .create_token("auditor", Scope::Read, vec![], None, "setup")
        .await
        .unwrap();
    let (ci_record, ci) = registry
        .create_token("ci-bot", Scope::Write, vec!["ci".into()], None, "setup")
        .await
        .unwrap();
    let client = &server.client;
    let with = |method: Method, path: &str, token: Option<&str>| {
        let mut request = client.request(method, server.url(path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request
    };
    let package = |producer: &str| json!({"name": "n", "producer": producer, "subject": "s", "retention_class": "standard"});

    // Public routes need no token.
    for path in ["/health", "/metrics", "/openapi.json"] {
        assert_eq!(
            with(Method::GET, path, None).send().await.unwrap().status(),
            StatusCode::OK,
            "{path}"
        );
    }
    // No token, a malformed header, an unknown token: 401 problem+json.
    let missing = with(Method::GET, "/v1/packages", None)
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), StatusCode::UNAUTHORIZED);
    assert!(header(&missing, "www-authenticate").starts_with("Bearer"));
    assert_eq!(json_of(missing).await["code"], "unauthorized");
    let basic = client
        .get(server.url("/v1/packages"))
        .header("Authorization", "Basic abc")
        .send()
        .await
        .unwrap();
    assert_eq!(basic.status(), StatusCode::UNAUTHORIZED);
    let unknown = with(
        Method::GET,
        "/v1/packages",
        Some("ast_00000000000000000000000000000000_00"),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(unknown.status(), StatusCode::UNAUTHORIZED);

    // Read scope reads, but may not write.
    assert_eq!(
        with(Method::GET, "/v1/packages", Some(&reader))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    let refused = with(Method::POST, "/v1/packages", Some(&reader))
        .json(&package("ci"))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    assert_eq!(json_of(refused).await["code"], "forbidden");

    // A producer-limited write token writes its producer only; the actor is
    // the token's name, whatever header the client sends.
    let created = with(Method::POST, "/v1/packages", Some(&ci))
        .header("X-Artifactstore-Actor", "mallory")
        .json(&package("ci"))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);
    let ci_package = json_of(created).await["id"].as_str().unwrap().to_owned();
    let events = registry.fetch_events(0, 100).await.unwrap();
    let creation = events
        .iter()
        .find(|e| e.event_type == "v1.package.created")
        .unwrap();
    assert_eq!(creation.actor, "ci-bot");
    let other = with(Method::POST, "/v1/packages", Some(&ci))
        .json(&package("finance"))
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), StatusCode::FORBIDDEN);
    let foreign = with(Method::POST, "/v1/packages", Some(&admin))
        .json(&package("finance"))
        .send()
        .await
        .unwrap();
    let foreign = json_of(foreign).await["id"].as_str().unwrap().to_owned();
    let put = |package: &str, token: &str| {
        with(
            Method::PUT,
            &format!("/v1/packages/{package}/files/a.txt"),
            Some(token),
        )
        .body("x")
    };
    assert_eq!(
        put(&foreign, &ci).send().await.unwrap().status(),
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        put(&ci_package, &ci).send().await.unwrap().status(),
        StatusCode::CREATED
    );
    let hold = with(
        Method::POST,
        &format!("/v1/packages/{foreign}/holds"),
        Some(&ci),
    )
    .json(&json!({"reason": "r"}));
    assert_eq!(hold.send().await.unwrap().status(), StatusCode::FORBIDDEN);
    let finalize = with(
        Method::POST,
        &format!("/v1/packages/{foreign}/finalize"),
        Some(&ci),
    );
    assert_eq!(
        finalize.send().await.unwrap().status(),
        StatusCode::FORBIDDEN
    );

    // Administration needs admin.
    for (method, path) in [
        (Method::POST, "/v1/retention/sweep"),
        (Method::POST, "/v1/storage/verify"),
    ] {
        assert_eq!(
            with(method.clone(), path, Some(&ci))
                .send()
                .await
                .unwrap()
                .status(),
            StatusCode::FORBIDDEN
        );
        assert_eq!(
            with(method, path, Some(&admin))
                .send()
                .await
                .unwrap()
                .status(),
            StatusCode::OK
        );
    }
    let schema = json!({"type": "object"});
    let by_writer = with(Method::PUT, "/v1/metadata-schemas/s1", Some(&ci))
        .json(&schema)
        .send()
        .await
        .unwrap();
    assert_eq!(by_writer.status(), StatusCode::FORBIDDEN);
    let by_admin = with(Method::PUT, "/v1/metadata-schemas/s1", Some(&admin))
        .json(&schema)
        .send()
        .await
        .unwrap();
    assert_eq!(by_admin.status(), StatusCode::CREATED);

    // A legal hold is placed by writers but released by admins only, even
    // on the writer's own producer's package (docs/security.md).
    let placed = with(
        Method::POST,
        &format!("/v1/packages/{ci_package}/holds"),
        Some(&ci),
    )
    .json(&json!({"reason": "litigation"}))
    .send()
    .await
    .unwrap();
    assert_eq!(placed.status(), StatusCode::CREATED);
    let hold_id = json_of(placed).await["hold_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let release = |token: &str| {
        with(
            Method::POST,
            &format!("/v1/packages/{ci_package}/holds/{hold_id}/release"),
            Some(token),
        )
        .json(&json!({"reason": "done"}))
    };
    let by_writer = release(&ci).send().await.unwrap();
    assert_problem(by_writer, StatusCode::FORBIDDEN, "forbidden").await;
    assert_eq!(
        release(&admin).send().await.unwrap().status(),
        StatusCode::OK
    );

    // Revocation takes effect at once.
    registry.revoke_token(&ci_record.id, "setup").await.unwrap();
    assert_eq!(
        with(Method::GET, "/v1/packages", Some(&ci))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::UNAUTHORIZED
    );
}

on_both_engines!(upload_limits_answer_413_429_and_drop_stalled_uploads);
/// Limits: a declared oversize body is refused before it is read, uploads
/// beyond the concurrency limit get 429, and a stalled upload is dropped.
async fn upload_limits_answer_413_429_and_drop_stalled_uploads() {
    let server = TestServer::start_configured(ServerOptions::default(), |config| {
        config.limits.max_file_bytes = 1024;
        config.limits.max_concurrent_uploads = 1;
        config.limits.upload_idle_timeout_seconds = 1;
    })
    .await;
    let created = server
        .post_json(
            "/v1/packages",
            &json!({"name": "n", "producer": "p", "subject": "s", "retention_class": "standard"}),
        )
        .await;
    let package = json_of(created).await["id"].as_str().unwrap().to_owned();
    let url = server.url(&format!("/v1/packages/{package}/files/big.bin"));
    let head = server.registry.head_sequence().await.unwrap();

    let big = server
        .client
        .put(&url)
        .body(vec![0u8; 2048])
        .send()
        .await
        .unwrap();
    assert_eq!(big.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(json_of(big).await["code"], "payload_too_large");

    // One upload holds the only slot (it sends a little, then stalls)…
    let (sender, receiver) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(1);
    let mut receiver = receiver;
    let stalled_body =
        reqwest::Body::wrap_stream(futures::stream::poll_fn(move |cx| receiver.poll_recv(cx)));
    let stalled = tokio::spawn({
        let client = server.client.clone();
        let url = server.url(&format!("/v1/packages/{package}/files/stalled.bin"));
        async move { client.put(url).body(stalled_body).send().await }
    });
    sender.send(Ok(vec![1u8; 10])).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    // …so a second one is refused at once with 429…
    let second = server
        .client
        .put(server.url(&format!("/v1/packages/{package}/files/second.bin")))
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(second.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(header(&second, "retry-after"), "1");
    assert_eq!(json_of(second).await["code"], "too_many_uploads");
    // …and the stalled one is dropped after the idle timeout, freeing the slot.
    let stalled = tokio::time::timeout(Duration::from_secs(10), stalled)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(stalled.status(), StatusCode::BAD_REQUEST);
    assert_eq!(json_of(stalled).await["code"], "upload_interrupted");
    drop(sender);
    let ok = server
        .client
        .put(server.url(&format!("/v1/packages/{package}/files/ok.bin")))
        .body("fine")
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), StatusCode::CREATED);
    assert_eq!(
        server.registry.head_sequence().await.unwrap(),
        head + 1,
        "only the good upload was recorded"
    );
}

on_both_engines!(slow_requests_time_out_with_408_and_pages_are_capped);
/// A request that takes longer than `request_timeout_seconds` gets 408,
/// and pages are capped at `limits.max_page`.
async fn slow_requests_time_out_with_408_and_pages_are_capped() {
    let server = TestServer::start_configured(ServerOptions::default(), |config| {
        config.limits.request_timeout_seconds = 1;
        config.limits.upload_idle_timeout_seconds = 30;
        config.limits.max_page = 2;
    })
    .await;
    for _ in 0..3 {
        server.create_package("ci", "standard", Value::Null).await;
    }
    let page = json_of(server.get("/v1/packages?limit=100").await).await;
    assert_eq!(page["items"].as_array().unwrap().len(), 2);
    assert!(!page["next"].is_null());

    let package = server.create_package("ci", "standard", Value::Null).await;
    let id = package["id"].as_str().unwrap();
    let (sender, mut receiver) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(1);
    let body =
        reqwest::Body::wrap_stream(futures::stream::poll_fn(move |cx| receiver.poll_recv(cx)));
    let slow = server
        .client
        .put(server.url(&format!("/v1/packages/{id}/files/slow.bin")))
        .body(body)
        .send();
    sender.send(Ok(vec![1u8; 10])).await.unwrap();
    let response = tokio::time::timeout(Duration::from_secs(10), slow)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(response.status(), StatusCode::REQUEST_TIMEOUT);
    assert_eq!(json_of(response).await["code"], "request_timeout");
    drop(sender);
    assert_eq!(server.file_count(id).await, 0);
}

on_both_engines!(stored_active_content_is_never_served_as_a_page);
/// A stored HTML or SVG file must never act as a page of the API's origin:
/// downloads are attachments, never sniffed, sandboxed; inline display is
/// granted to safe types only, and only when asked for.
async fn stored_active_content_is_never_served_as_a_page() {
    let server = TestServer::start().await;
    let package = server.create_package("ci", "standard", json!({})).await;
    let id = package["id"].as_str().unwrap();
    let upload = |path: &'static str, media: &'static str, body: &'static str| {
        server.send(
            server
                .client
                .put(server.url(&format!("/v1/packages/{id}/files/{path}")))
                .header("content-type", media)
                .body(body),
        )
    };
    let html = upload(
        "report/index.html",
        "text/html",
        "<script>fetch('/v1/retention/sweep',{method:'POST'})</script>",
    )
    .await;
    assert_eq!(html.status(), StatusCode::CREATED);
    let html_id = json_of(html).await["id"].as_str().unwrap().to_owned();
    assert_eq!(
        upload("logo.svg", "image/svg+xml", "<svg onload='alert(1)'/>")
            .await
            .status(),
        StatusCode::CREATED
    );
    assert_eq!(
        upload("notes.txt", "text/plain; charset=utf-8", "plain")
            .await
            .status(),
        StatusCode::CREATED
    );

    for (target, inline_asked) in [
        (format!("/v1/files/{html_id}/content"), false),
        (
            format!("/v1/files/{html_id}/content?disposition=inline"),
            true,
        ),
        (format!("/v1/packages/{id}/files/report/index.html"), false),
        (
            format!("/v1/packages/{id}/files/logo.svg?disposition=inline"),
            true,
        ),
    ] {
        let response = server.get(&target).await;
        assert_eq!(response.status(), StatusCode::OK, "{target}");
        let disposition = header(&response, "content-disposition");
        assert!(
            disposition.starts_with("attachment;"),
            "{target} (inline asked: {inline_asked}): {disposition}"
        );
        assert_eq!(header(&response, "x-content-type-options"), "nosniff");
        let csp = header(&response, "content-security-policy");
        assert!(
            csp.contains("sandbox") && csp.contains("default-src 'none'"),
            "{csp}"
        );
    }
    let named = server
        .get(&format!("/v1/packages/{id}/files/report/index.html"))
        .await;
    assert!(header(&named, "content-disposition").contains("filename=\"index.html\""));

    // A safe type may be shown inline when asked for, still sandboxed.
    let shown = server
        .get(&format!(
            "/v1/packages/{id}/files/notes.txt?disposition=inline"
        ))
        .await;
    assert!(header(&shown, "content-disposition").starts_with("inline;"));
    assert!(header(&shown, "content-security-policy").contains("sandbox"));
    let saved = server
        .get(&format!("/v1/packages/{id}/files/notes.txt"))
        .await;
    assert!(header(&saved, "content-disposition").starts_with("attachment;"));
    // Every answer says nosniff, problems included.
    let missing = server.get("/v1/packages/not-a-uuid").await;
    assert_eq!(header(&missing, "x-content-type-options"), "nosniff");
    let bad = server
        .get(&format!(
            "/v1/packages/{id}/files/notes.txt?disposition=page"
        ))
        .await;
    assert_problem(bad, StatusCode::BAD_REQUEST, "invalid_query").await;
}

on_both_engines!(cross_site_requests_are_refused_when_auth_is_off);
/// Without auth, every caller is an admin: a page of another site (a form,
/// a `fetch`) or a DNS-rebound name must not be able to drive the server.
async fn cross_site_requests_are_refused_when_auth_is_off() {
    let server = TestServer::start_with(ServerOptions {
        allowed_hosts: vec!["artifacts.internal".into()],
        ..ServerOptions::default()
    })
    .await;
    let head = server.head().await;
    let package =
        json!({"name": "n", "producer": "ci", "subject": "s", "retention_class": "standard"});

    // DNS rebinding: the browser sends the attacker's name as Host.
    let rebound = server
        .send(
            server
                .client
                .post(server.url("/v1/packages"))
                .header("host", "attacker.example:8000")
                .json(&package),
        )
        .await;
    assert_problem(rebound, StatusCode::FORBIDDEN, "host_not_allowed").await;
    let rebound_read = server
        .send(
            server
                .client
                .get(server.url("/v1/packages"))
                .header("host", "attacker.example"),
        )
        .await;
    assert_problem(rebound_read, StatusCode::FORBIDDEN, "host_not_allowed").await;

    // A foreign page posting: refused by its Origin, or by Sec-Fetch-Site,
    // also where no body is needed (sweep) and where it is not JSON.
    let from_page = |path: &str| {
        server
            .client
            .post(server.url(path))
            .header("origin", "https://attacker.example")
    };
    let sweep = server.send(from_page("/v1/retention/sweep")).await;
    assert_problem(sweep, StatusCode::FORBIDDEN, "cross_origin_refused").await;
    let created = server.send(from_page("/v1/packages").json(&package)).await;
    assert_problem(created, StatusCode::FORBIDDEN, "cross_origin_refused").await;
    let sandboxed = server
        .send(
            server
                .client
                .post(server.url("/v1/retention/sweep"))
                .header("origin", "null"),
        )
        .await;
    assert_problem(sandboxed, StatusCode::FORBIDDEN, "cross_origin_refused").await;
    let cross_site = server
        .send(
            server
                .client
                .post(server.url("/v1/retention/sweep"))
                .header("sec-fetch-site", "cross-site"),
        )
        .await;
    assert_problem(cross_site, StatusCode::FORBIDDEN, "cross_origin_refused").await;
    let plain_text = server
        .send(
            server
                .client
                .post(server.url("/v1/packages"))
                .header("content-type", "text/plain")
                .body(package.to_string()),
        )
        .await;
    assert_problem(
        plain_text,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
    )
    .await;
    assert_eq!(
        server.head().await,
        head,
        "a refused request changed the log"
    );

    // Our own names and origins still work: loopback, and the listed host.
    let own_origin = format!("http://{}", server.addr);
    for (host, origin) in [
        (None, Some(own_origin.as_str())),
        (Some("localhost:8000"), Some("http://localhost:8000")),
        (
            Some("artifacts.internal"),
            Some("https://artifacts.internal"),
        ),
        (None, None),
    ] {
        let mut request = server
            .client
            .post(server.url("/v1/packages"))
            .json(&package);
        if let Some(host) = host {
            request = request.header("host", host);
        }
        if let Some(origin) = origin {
            request = request.header("origin", origin);
        }
        assert_eq!(
            server.send(request).await.status(),
            StatusCode::CREATED,
            "{host:?} {origin:?}"
        );
    }

    // With auth required, tokens are not ambient: the checks do not apply.
    let guarded = TestServer::start_with(ServerOptions {
        auth_required: true,
        ..ServerOptions::default()
    })
    .await;
    let (_, token) = guarded
        .registry
        .create_token(
            "admin",
            artifactstore_core::token::Scope::Admin,
            vec![],
            None,
            "setup",
        )
        .await
        .unwrap();
    let proxied = guarded
        .send(
            guarded
                .client
                .post(guarded.url("/v1/packages"))
                .bearer_auth(&token)
                .header("host", "artifacts.example.com")
                .header("origin", "https://ui.example.com")
                .json(&package),
        )
        .await;
    assert_eq!(proxied.status(), StatusCode::CREATED);
}

on_both_engines!(trickling_uploads_hold_no_more_than_their_share_and_are_dropped);
/// Trickling uploads: one caller cannot hold more than its share of the
/// upload slots, and an upload slower than the least rate is dropped.
async fn trickling_uploads_hold_no_more_than_their_share_and_are_dropped() {
    let server = TestServer::start_configured(ServerOptions::default(), |config| {
        config.limits.max_concurrent_uploads = 4;
        config.limits.max_uploads_per_caller = Some(2);
        config.limits.upload_idle_timeout_seconds = 30;
        config.limits.min_upload_bytes_per_second = 100;
        config.limits.upload_rate_window_seconds = 1;
    })
    .await;
    let package = server.create_package("ci", "standard", json!({})).await;
    let id = package["id"].as_str().unwrap().to_owned();
    let head = server.head().await;

    // Alice starts two uploads that send a byte every 300 ms.
    let mut trickles = Vec::new();
    for i in 0..2 {
        let body = reqwest::Body::wrap_stream(futures::stream::unfold(0u32, |n| async move {
            (n < 1000).then_some(())?;
            tokio::time::sleep(Duration::from_millis(300)).await;
            Some((Ok::<_, std::io::Error>(vec![b'x']), n + 1))
        }));
        let request = server
            .client
            .put(server.url(&format!("/v1/packages/{id}/files/slow-{i}.bin")))
            .header("x-artifactstore-actor", "alice")
            .body(body);
        trickles.push(tokio::spawn(request.send()));
    }
    tokio::time::sleep(Duration::from_millis(400)).await;
    // Her third is refused: she holds her share. Bob still gets a slot.
    let third = server
        .send(
            server
                .client
                .put(server.url(&format!("/v1/packages/{id}/files/third.bin")))
                .header("x-artifactstore-actor", "alice")
                .body("x"),
        )
        .await;
    assert_eq!(third.status(), StatusCode::TOO_MANY_REQUESTS);
    let detail = assert_problem(third, StatusCode::TOO_MANY_REQUESTS, "too_many_uploads").await;
    assert!(
        detail["detail"].as_str().unwrap().contains("alice"),
        "{detail}"
    );
    let bob = server
        .send(
            server
                .client
                .put(server.url(&format!("/v1/packages/{id}/files/bob.bin")))
                .header("x-artifactstore-actor", "bob")
                .body("fast"),
        )
        .await;
    assert_eq!(bob.status(), StatusCode::CREATED);

    // The trickles are cut within a few windows, storing nothing.
    for trickle in trickles {
        let answer = tokio::time::timeout(Duration::from_secs(10), trickle)
            .await
            .expect("a trickling upload was not cut")
            .unwrap()
            .unwrap();
        let problem = assert_problem(answer, StatusCode::BAD_REQUEST, "upload_interrupted").await;
        assert!(
            problem["detail"].as_str().unwrap().contains("bytes/s"),
            "{problem}"
        );
    }
    assert_eq!(
        server.head().await,
        head + 1,
        "only bob's file was recorded"
    );
    // Alice's slots are free again.
    let again = server
        .send(
            server
                .client
                .put(server.url(&format!("/v1/packages/{id}/files/again.bin")))
                .header("x-artifactstore-actor", "alice")
                .body("x"),
        )
        .await;
    assert_eq!(again.status(), StatusCode::CREATED);
}
