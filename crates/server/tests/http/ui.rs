//! The web UI: pages, escaping, the security headers, hostile queries.

use super::*;

async fn page(server: &TestServer, path: &str) -> (StatusCode, String) {
    let response = server.get(path).await;
    let status = response.status();
    let media_type = header(&response, "content-type").to_owned();
    let policy = header(&response, "content-security-policy").to_owned();
    assert!(
        policy.contains("script-src 'self'") && !policy.contains("unsafe-inline"),
        "{path}: {policy}"
    );
    assert!(
        policy.contains("frame-ancestors 'none'"),
        "{path}: {policy}"
    );
    let body = response.text().await.unwrap();
    if media_type.starts_with("text/html") {
        // No inline script or style: the policy would block it anyway.
        assert!(
            !body.contains("<script>") && !body.contains("<style"),
            "{path}"
        );
        assert!(!body.contains(" style="), "{path}");
    }
    (status, body)
}

on_both_engines!(packages_are_browsed_as_pages);
async fn packages_are_browsed_as_pages() {
    let server = TestServer::start().await;

    // `/` leads to the UI; an empty registry says what to do next.
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let response = client.get(server.url("/")).send().await.unwrap();
    assert!(response.status().is_redirection());
    assert_eq!(header(&response, "location"), "/ui/");
    let (status, body) = page(&server, "/ui/").await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("No packages yet"), "{body}");
    assert!(body.contains("artifactstore push"), "{body}");
    let (status, css) = page(&server, "/ui/assets/app.css").await;
    assert_eq!(status, StatusCode::OK);
    assert!(css.contains("focus-visible"));

    // A hostile name and metadata render as text.
    let hostile = "<script>alert(1)</script>";
    let package = server
        .create_package("ci", "standard", json!({"note": hostile, "n": 7}))
        .await;
    let id = package["id"].as_str().unwrap().to_owned();
    let response = server
        .post_json(
            "/v1/packages",
            &json!({"name": hostile, "producer": "nightly", "subject": "\"><img src=x>", "retention_class": "standard"}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let (_, body) = page(&server, "/ui/").await;
    assert!(
        body.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "{body}"
    );
    assert!(body.contains("&quot;&gt;&lt;img src=x&gt;"), "{body}");
    assert!(!body.contains("<img"), "{body}");

    // Filters and paging, as the API's.
    let (_, body) = page(&server, "/ui/?producer=nightly&subject=&status=").await;
    assert!(body.contains("&lt;script&gt;") && !body.contains(&format!("/ui/packages/{id}")));
    for producer in ["a", "b", "c"] {
        server
            .create_package(producer, "standard", Value::Null)
            .await;
    }
    let (_, all) = page(&server, "/ui/").await;
    assert_eq!(all.matches("/ui/packages/").count(), 5, "{all}");
    let (status, body) = page(&server, "/ui/?limit=2&producer=").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body.matches("/ui/packages/").count(), 2, "{body}");
    let next = body
        .split("rel=\"next\" href=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("a next page link")
        .replace("&amp;", "&");
    let (_, second) = page(&server, &next).await;
    assert_eq!(second.matches("/ui/packages/").count(), 2, "{second}");

    // One package: fields, metadata, files as a tree with digests and
    // download links.
    server
        .put_file(&id, "reports/2026/summary.txt", b"summary\n")
        .await;
    server
        .put_file(&id, "reports/index.html", b"<h1>x</h1>")
        .await;
    let top = server.put_file(&id, "top.txt", b"top").await;
    let (status, body) = page(&server, &format!("/ui/packages/{id}")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        body.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "metadata: {body}"
    );
    for text in [
        "reports/",
        "2026/",
        "summary.txt",
        "index.html",
        "<details open>",
        &format!("/v1/files/{}/content", top["id"].as_str().unwrap()),
        top["sha256"].as_str().unwrap(),
        top["blake3"].as_str().unwrap(),
        "title=\"3 bytes\"",
        "3 files",
    ] {
        assert!(body.contains(text), "{text} in {body}");
    }
    // The list counts them: 3 files, 8 + 10 + 3 bytes.
    let (_, list) = page(&server, "/ui/?producer=ci").await;
    assert!(list.contains("<td class=\"number\">3</td>"), "{list}");
    assert!(list.contains("title=\"21 bytes\""), "{list}");
    // Finalized: the content address and the manifest and bundle links.
    let finalized = json_of(
        server
            .post_json(&format!("/v1/packages/{id}/finalize"), &json!({}))
            .await,
    )
    .await;
    let (_, body) = page(&server, &format!("/ui/packages/{id}")).await;
    assert!(
        body.contains(finalized["manifest_digest"].as_str().unwrap()),
        "{body}"
    );
    assert!(body.contains(&format!("/v1/packages/{id}/bundle")));

    // The retention panel: class, the explanation, holds with who and why
    // (escaped), and the retention events.
    let (_, body) = page(&server, &format!("/ui/packages/{id}")).await;
    assert!(
        body.contains("Active holds") && body.contains("None."),
        "{body}"
    );
    let response = server
        .send(
            server
                .client
                .post(server.url(&format!("/v1/packages/{id}/holds")))
                .header("x-artifactstore-actor", "legal-team")
                .json(&json!({"reason": "<i>case 42</i>"})),
        )
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let retention = json_of(server.get(&format!("/v1/packages/{id}/retention")).await).await;
    let (_, body) = page(&server, &format!("/ui/packages/{id}")).await;
    let sentence = retention["explanation"]["sentence"].as_str().unwrap();
    let escaped = sentence
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;");
    assert!(body.contains(&escaped), "{sentence} in {body}");
    for text in [
        "&lt;i&gt;case 42&lt;/i&gt;",
        "placed by legal-team",
        "Why it is kept",
        "hold",
    ] {
        assert!(body.contains(text), "{text} in {body}");
    }
    assert!(!body.contains("<i>case"), "{body}");
    assert!(body.contains("<ol class=\"timeline\">"), "{body}");

    // The search box: an id leads to its page, a digest to its files.
    let response = client
        .get(server.url(&format!("/ui/?q={id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(header(&response, "location"), format!("/ui/packages/{id}"));
    for digest in [
        top["sha256"].as_str().unwrap(),
        top["blake3"].as_str().unwrap(),
    ] {
        let (_, body) = page(&server, &format!("/ui/?q={digest}")).await;
        assert!(body.contains("top.txt"), "{body}");
        assert!(body.contains(&format!("/ui/packages/{id}")), "{body}");
    }
    let (status, body) = page(&server, "/ui/?q=%3Cb%3Enothing").await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("Nothing found") && body.contains("&lt;b&gt;nothing"));
}

on_both_engines!(ui_refusals_are_pages_and_change_nothing);
async fn ui_refusals_are_pages_and_change_nothing() {
    let server = TestServer::start().await;
    let head = server.head().await;
    for (path, status) in [
        ("/ui/packages/not-a-uuid", StatusCode::BAD_REQUEST),
        (
            "/ui/packages/0190f1a4-0000-7000-8000-000000000000",
            StatusCode::NOT_FOUND,
        ),
        ("/ui/?limit=0", StatusCode::BAD_REQUEST),
        ("/ui/?status=x&status=y", StatusCode::BAD_REQUEST),
        ("/ui/?unknown=1", StatusCode::BAD_REQUEST),
        ("/ui/?after=-1", StatusCode::BAD_REQUEST),
        ("/ui/assets/..%2F..%2FCargo.toml", StatusCode::NOT_FOUND),
        ("/ui/assets/missing.js", StatusCode::NOT_FOUND),
    ] {
        let (got, body) = page(&server, path).await;
        assert_eq!(got, status, "{path}: {body}");
        assert!(!body.contains("[package]"), "{path}");
    }
    let (_, body) = page(&server, "/ui/packages/%3Cscript%3E").await;
    assert!(!body.contains("<script>"), "{body}");
    // Pages are reads: other methods are not taken.
    let response = server
        .send(server.client.post(server.url("/ui/")).body("x"))
        .await;
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(server.head().await, head);
}

on_both_engines!(ui_pages_need_a_read_token_when_auth_is_required);
async fn ui_pages_need_a_read_token_when_auth_is_required() {
    use artifactstore_core::token::Scope;
    let server = TestServer::start_with(ServerOptions {
        auth_required: true,
        ..ServerOptions::default()
    })
    .await;
    let response = server.get("/ui/").await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let (_, reader) = server
        .registry
        .create_token("auditor", Scope::Read, vec![], None, "setup")
        .await
        .unwrap();
    let response = server
        .send(server.client.get(server.url("/ui/")).bearer_auth(&reader))
        .await;
    assert_eq!(response.status(), StatusCode::OK);
}
