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

/// The `href` of a page's `rel="next"` link, unescaped.
fn next_link(body: &str) -> Option<String> {
    let marker = "rel=\"next\" href=\"";
    let start = body.find(marker)? + marker.len();
    let end = start + body[start..].find('"')?;
    Some(body[start..end].replace("&amp;", "&"))
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
    let next = next_link(&body).expect("a next page link");
    let (_, second) = page(&server, &next).await;
    assert_eq!(second.matches("/ui/packages/").count(), 2, "{second}");
    // The search box finds packages by exact name (through the list's
    // `name` filter, as `GET /v1/packages?name=`).
    let search: String = form_urlencoded::Serializer::new(String::new())
        .append_pair("q", hostile)
        .finish();
    let (_, named) = page(&server, &format!("/ui/?{search}")).await;
    assert_eq!(named.matches("/ui/packages/").count(), 1, "{named}");
    assert!(
        named.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "{named}"
    );
    let (_, nobody) = page(&server, "/ui/?q=no-such-name").await;
    // A package's page ends with its events, newest first.
    let (_, events) = page(&server, &format!("/ui/packages/{id}")).await;
    let timeline = events
        .split("id=\"events\"")
        .nth(1)
        .expect("an events section");
    assert!(timeline.contains("v1.package.created"), "{timeline}");
    assert!(
        timeline.contains(&format!("/ui/events?subject={id}")),
        "{timeline}"
    );
    assert!(nobody.contains("No package matches"), "{nobody}");
    let listed = json_of(
        server
            .get(&format!(
                "/v1/packages?{}",
                search.replacen("q=", "name=", 1)
            ))
            .await,
    )
    .await;
    assert_eq!(listed["items"].as_array().unwrap().len(), 1);

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
    // A hostile folder name is text in the tree too (the tree writes its
    // folders' tags itself).
    server.put_file(&id, "<i>&x/a.txt", b"a").await;
    let (_, body) = page(&server, &format!("/ui/packages/{id}")).await;
    assert!(
        body.contains("<summary>&lt;i&gt;&amp;x/</summary>"),
        "{body}"
    );
    assert!(!body.contains("<i>"), "{body}");
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
    assert!(body.contains("No package matches") && body.contains("&lt;b&gt;nothing"));
    let (_, body) = page(&server, &format!("/ui/?q={}", "0".repeat(64))).await;
    assert!(body.contains("No file has these bytes"), "{body}");
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

on_both_engines!(a_package_page_lists_a_page_of_files_and_links_the_next);
async fn a_package_page_lists_a_page_of_files_and_links_the_next() {
    let server = TestServer::start_with(ServerOptions {
        ui_files_per_page: 2,
        ..ServerOptions::default()
    })
    .await;
    let package = server.create_package("ci", "standard", json!({})).await;
    let id = package["id"].as_str().unwrap().to_owned();
    // Key order: `<i>.txt` ('<' sorts before letters), a.txt, B.txt,
    // c/d.txt, e.txt.
    for path in ["e.txt", "c/d.txt", "B.txt", "a.txt", "<i>.txt"] {
        server.put_file(&id, path, path.as_bytes()).await;
    }
    let listed = |body: &str| -> Vec<&'static str> {
        ["&lt;i&gt;.txt", "a.txt", "B.txt", "d.txt", "e.txt", "F.txt"]
            .into_iter()
            .filter(|name| body.contains(&format!(">{name}</a>")))
            .collect()
    };
    // Every page: the package's count and size, two files, a link on
    // while more follow (and none to an empty page when the files fill
    // the last page exactly).
    let walk = |count: usize| {
        let (server, id) = (&server, &id);
        async move {
            let mut path = format!("/ui/packages/{id}");
            let mut pages = Vec::new();
            loop {
                let (status, body) = page(server, &path).await;
                assert_eq!(status, StatusCode::OK, "{path}: {body}");
                assert!(body.contains(&format!("{count} files, ")), "{path}: {body}");
                assert!(!body.contains("<i>"), "{path}: {body}");
                pages.push(listed(&body));
                match next_link(&body) {
                    Some(next) => path = next,
                    None => break,
                }
                assert!(pages.len() < 5, "the pages never end: {pages:?}");
            }
            pages
        }
    };
    assert_eq!(
        walk(5).await,
        vec![
            vec!["&lt;i&gt;.txt", "a.txt"],
            vec!["B.txt", "d.txt"],
            vec!["e.txt"],
        ]
    );
    server.put_file(&id, "F.txt", b"F").await;
    assert_eq!(
        walk(6).await,
        vec![
            vec!["&lt;i&gt;.txt", "a.txt"],
            vec!["B.txt", "d.txt"],
            vec!["e.txt", "F.txt"],
        ]
    );
    // The second page's link carries the first page's last path, escaped
    // for the query, and says where the list starts.
    let (_, first) = page(&server, &format!("/ui/packages/{id}")).await;
    let second = next_link(&first).unwrap();
    assert_eq!(second, format!("/ui/packages/{id}?after=a.txt#files"));
    let (_, body) = page(&server, &format!("/ui/packages/{id}?after=%3Ci%3E.txt")).await;
    assert!(
        body.contains("The files after <code>&lt;i&gt;.txt</code>"),
        "{body}"
    );
    assert_eq!(listed(&body), vec!["a.txt", "B.txt"]);
    // Past the last file: an empty page that says so, with no link on.
    let (status, body) = page(&server, &format!("/ui/packages/{id}?after=zzz")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("No more files."), "{body}");
    assert!(listed(&body).is_empty(), "{body}");
    assert!(next_link(&body).is_none(), "{body}");
    // Hostile cursors are refused as pages, not queried.
    let long = "a".repeat(1025);
    for query in [
        "after=%00".to_owned(),
        "after=a%0Ab".to_owned(),
        format!("after={long}"),
        "after=a&after=b".to_owned(),
        "unknown=1".to_owned(),
    ] {
        let (status, body) = page(&server, &format!("/ui/packages/{id}?{query}")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {body}");
        assert!(
            body.contains("invalid_query") || body.contains("query"),
            "{query}: {body}"
        );
    }
    // A cursor of the longest path taken is answered.
    let (status, _) = page(
        &server,
        &format!("/ui/packages/{id}?after={}", "a".repeat(1024)),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
}

on_both_engines!(ui_pages_need_a_read_token_when_auth_is_required);
async fn ui_pages_need_a_read_token_when_auth_is_required() {
    use artifactstore_core::token::Scope;
    let server = TestServer::start_with(ServerOptions {
        auth_required: true,
        ..ServerOptions::default()
    })
    .await;
    // A browser without a token is sent to the login form.
    let response = server.get("/ui/").await;
    assert_eq!(response.url().path(), "/ui/login");
    assert_eq!(response.status(), StatusCode::OK);
    // The API's routes still answer 401.
    let response = server.get("/v1/packages").await;
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

/// A browser of the UI: no redirects followed, cookies sent by hand as a
/// browser would (the session cookie only).
struct Browser {
    client: reqwest::Client,
    cookie: Option<String>,
}

impl Browser {
    fn new() -> Self {
        Self {
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            cookie: None,
        }
    }

    fn with_cookie(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.cookie {
            Some(cookie) => request.header("cookie", cookie),
            None => request,
        }
    }

    async fn get(&self, server: &TestServer, path: &str) -> reqwest::Response {
        server
            .send(self.with_cookie(self.client.get(server.url(path))))
            .await
    }

    async fn post_form(
        &self,
        server: &TestServer,
        path: &str,
        fields: &[(&str, &str)],
        origin: Option<&str>,
    ) -> reqwest::Response {
        let mut request = self
            .with_cookie(self.client.post(server.url(path)))
            .form(fields);
        if let Some(origin) = origin {
            request = request.header("origin", origin);
        }
        server.send(request).await
    }

    /// Logs in with `token`; the session cookie is kept.
    async fn log_in(&mut self, server: &TestServer, token: &str) {
        let response = self
            .post_form(
                server,
                "/ui/login",
                &[("token", token), ("next", "/ui/events")],
                None,
            )
            .await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER);
        assert_eq!(header(&response, "location"), "/ui/events");
        let set = header(&response, "set-cookie").to_owned();
        assert!(set.contains("HttpOnly"), "{set}");
        assert!(set.contains("SameSite=Strict"), "{set}");
        assert!(set.contains("Path=/"), "{set}");
        self.cookie = Some(set.split(';').next().unwrap().to_owned());
    }

    /// The CSRF token of the session, as a page carries it.
    async fn csrf(&self, server: &TestServer, path: &str) -> String {
        let body = self.get(server, path).await.text().await.unwrap();
        let marker = "name=\"csrf\" value=\"";
        let at = body.find(marker).expect("a form with a CSRF field") + marker.len();
        body[at..at + 64].to_owned()
    }
}

on_both_engines!(browsers_log_in_with_a_token_and_forms_check_csrf_and_scopes);
/// With auth required: the login form and its cookie, the CSRF check on
/// every form and on API calls of a session, the scopes of each action,
/// and a refusal shown beside its field.
async fn browsers_log_in_with_a_token_and_forms_check_csrf_and_scopes() {
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
    let (_, writer) = registry
        .create_token("release-manager", Scope::Write, vec![], None, "setup")
        .await
        .unwrap();
    let package = server
        .send(
            server
                .client
                .post(server.url("/v1/packages"))
                .bearer_auth(&admin)
                .json(&json!({"name": "rc-1", "producer": "ci", "subject": "app", "retention_class": "standard"})),
        )
        .await;
    let id = json_of(package).await["id"].as_str().unwrap().to_owned();
    let package_page = format!("/ui/packages/{id}");
    let holds = format!("/ui/packages/{id}/holds");
    let active_holds = || async {
        registry
            .retention_explained(id.parse().unwrap())
            .await
            .unwrap()
            .0
            .active_holds
            .len()
    };

    // Without a session, pages lead to the login form (and back); the
    // assets and the form itself are public.
    let mut browser = Browser::new();
    let response = browser.get(&server, &package_page).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        header(&response, "location"),
        format!("/ui/login?next=%2Fui%2Fpackages%2F{id}")
    );
    assert_eq!(
        browser.get(&server, "/ui/assets/app.css").await.status(),
        StatusCode::OK
    );
    assert_eq!(
        browser.get(&server, "/ui/assets/app.js").await.status(),
        StatusCode::OK
    );
    let (status, login) = page(&server, "/ui/login?next=https://evil.example/").await;
    assert_eq!(status, StatusCode::OK);
    assert!(login.contains("type=\"password\""), "{login}");
    assert!(login.contains("name=\"next\" value=\"/ui/\""), "{login}");
    // A bad token is refused beside the field; nothing is set.
    let response = browser
        .post_form(
            &server,
            "/ui/login",
            &[("token", "ast_nope.nope"), ("next", "/ui/")],
            None,
        )
        .await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert!(response.headers().get("set-cookie").is_none());
    assert!(response
        .text()
        .await
        .unwrap()
        .contains("id=\"token-error\""));
    // A login posted by another site is refused.
    let response = browser
        .post_form(
            &server,
            "/ui/login",
            &[("token", &writer)],
            Some("https://evil.example"),
        )
        .await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert!(response.headers().get("set-cookie").is_none());
    // An open redirect is not: `next` must be a UI page.
    let response = browser
        .post_form(
            &server,
            "/ui/login",
            &[("token", &writer), ("next", "//evil.example/ui/")],
            None,
        )
        .await;
    assert_eq!(header(&response, "location"), "/ui/");

    // A write session: pages show who is signed in and the forms.
    browser.log_in(&server, &writer).await;
    let body = browser
        .get(&server, &package_page)
        .await
        .text()
        .await
        .unwrap();
    assert!(body.contains("Signed in as"), "{body}");
    assert!(body.contains("release-manager"), "{body}");
    assert!(body.contains("name=\"csrf-token\""), "{body}");
    assert!(body.contains(&holds), "{body}");
    assert!(!body.contains(&writer), "the token never reaches a page");
    let csrf = browser.csrf(&server, &package_page).await;

    // Forms without the CSRF token, with another, or from another origin
    // change nothing.
    for (fields, origin) in [
        (vec![("reason", "audit")], None),
        (
            vec![("reason", "audit"), ("csrf", "0".repeat(64).as_str())],
            None,
        ),
        (
            vec![("reason", "audit"), ("csrf", csrf.as_str())],
            Some("https://evil.example"),
        ),
    ] {
        let response = browser.post_form(&server, &holds, &fields, origin).await;
        assert_eq!(
            response.status(),
            StatusCode::FORBIDDEN,
            "{fields:?} {origin:?}"
        );
        assert_eq!(active_holds().await, 0);
    }
    // The API, called with the session cookie, needs the CSRF header.
    let api_hold = format!("/v1/packages/{id}/holds");
    let response = server
        .send(
            browser
                .with_cookie(browser.client.post(server.url(&api_hold)))
                .json(&json!({"reason": "x"})),
        )
        .await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert_eq!(json_of(response).await["code"], "csrf_refused");
    assert_eq!(active_holds().await, 0);

    // With it, the hold is placed, and the browser goes back to the page.
    let response = browser
        .post_form(
            &server,
            &holds,
            &[("reason", "litigation <b>42</b>"), ("csrf", &csrf)],
            Some(&server.base),
        )
        .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        header(&response, "location"),
        format!("{package_page}#retention")
    );
    assert_eq!(active_holds().await, 1);
    let body = browser
        .get(&server, &package_page)
        .await
        .text()
        .await
        .unwrap();
    assert!(body.contains("litigation &lt;b&gt;42&lt;/b&gt;"), "{body}");
    // A write token may not release it (admin only): no release form, and
    // a release posted anyway is refused.
    assert!(!body.contains("/release\""), "{body}");
    let hold_id = registry
        .retention_explained(id.parse().unwrap())
        .await
        .unwrap()
        .0
        .active_holds[0]
        .hold_id
        .clone();
    let release = format!("/ui/packages/{id}/holds/{hold_id}/release");
    let response = browser
        .post_form(
            &server,
            &release,
            &[("reason", "done"), ("csrf", &csrf)],
            None,
        )
        .await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert!(response
        .text()
        .await
        .unwrap()
        .contains(&format!("release-{hold_id}-error")));
    assert_eq!(active_holds().await, 1);
    // A refusal is shown beside its field: no reason.
    let response = browser
        .post_form(&server, &holds, &[("reason", " "), ("csrf", &csrf)], None)
        .await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body = response.text().await.unwrap();
    assert!(body.contains("id=\"hold-error\""), "{body}");
    assert!(body.contains("aria-invalid=\"true\""), "{body}");
    // Extending: a time that is not one, then one that is.
    let extend = format!("/ui/packages/{id}/extend");
    let response = browser
        .post_form(
            &server,
            &extend,
            &[
                ("new_expires_at", "soon<script>"),
                ("reason", "x"),
                ("csrf", &csrf),
            ],
            None,
        )
        .await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body = response.text().await.unwrap();
    assert!(
        body.contains("id=\"extend-error\"") && body.contains("soon&lt;script&gt;"),
        "{body}"
    );
    let response = browser
        .post_form(
            &server,
            &extend,
            &[
                ("new_expires_at", "2099-01-31T12:00"),
                ("reason", "audit"),
                ("csrf", &csrf),
            ],
            None,
        )
        .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let (retention, _) = registry
        .retention_explained(id.parse().unwrap())
        .await
        .unwrap();
    assert_eq!(
        retention.expires_at.unwrap(),
        "2099-01-31T12:00:00Z".parse().unwrap()
    );
    // Finalizing from the page.
    let response = browser
        .post_form(
            &server,
            &format!("/ui/packages/{id}/finalize"),
            &[("csrf", &csrf)],
            None,
        )
        .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        registry
            .get_package(id.parse().unwrap())
            .await
            .unwrap()
            .status,
        "finalized"
    );
    let response = browser
        .post_form(
            &server,
            &format!("/ui/packages/{id}/finalize"),
            &[("csrf", &csrf)],
            None,
        )
        .await;
    assert_eq!(response.status(), StatusCode::CONFLICT);
    assert!(response
        .text()
        .await
        .unwrap()
        .contains("id=\"finalize-error\""));

    // A read session sees no forms, and a form posted anyway is refused
    // by the same scope check as the API.
    let mut auditor = Browser::new();
    auditor.log_in(&server, &reader).await;
    let body = auditor
        .get(&server, &package_page)
        .await
        .text()
        .await
        .unwrap();
    assert!(!body.contains(&holds), "{body}");
    let logout_csrf = auditor.csrf(&server, &package_page).await;
    let response = auditor
        .post_form(
            &server,
            &holds,
            &[("reason", "mine"), ("csrf", &logout_csrf)],
            None,
        )
        .await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert!(response.text().await.unwrap().contains("id=\"hold-error\""));
    assert_eq!(active_holds().await, 1);

    // An admin session releases the hold.
    let mut root = Browser::new();
    root.log_in(&server, &admin).await;
    let root_csrf = root.csrf(&server, &package_page).await;
    assert_ne!(root_csrf, csrf, "each token has its own CSRF token");
    let response = root
        .post_form(
            &server,
            &release,
            &[("reason", "settled"), ("csrf", &root_csrf)],
            None,
        )
        .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(active_holds().await, 0);

    // Logging out drops the cookie; a revoked or unknown cookie leads to
    // the login form again and is dropped.
    let response = auditor
        .post_form(&server, "/ui/logout", &[("csrf", &logout_csrf)], None)
        .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert!(header(&response, "set-cookie").contains("Max-Age=0"));
    let stale = Browser {
        client: auditor.client.clone(),
        cookie: Some("artifactstore_token=ast_unknown.token".into()),
    };
    let response = stale.get(&server, "/ui/").await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert!(header(&response, "set-cookie").contains("Max-Age=0"));
}

on_both_engines!(the_event_log_is_paged_newest_first_and_filtered);
async fn the_event_log_is_paged_newest_first_and_filtered() {
    let server = TestServer::start().await;
    let (status, body) = page(&server, "/ui/events").await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("The log is empty"), "{body}");
    assert!(body.contains("data-live-since=\"0\""), "{body}");
    let mut ids = Vec::new();
    for n in 0..55 {
        let package = server
            .create_package(
                if n % 2 == 0 { "even" } else { "odd" },
                "standard",
                Value::Null,
            )
            .await;
        ids.push(package["id"].as_str().unwrap().to_owned());
    }
    let hostile_actor = server
        .send(
            server
                .client
                .post(server.url(&format!("/v1/packages/{}/holds", ids[0])))
                .header("x-artifactstore-actor", "<i>mallory</i>")
                .json(&json!({"reason": "r"})),
        )
        .await;
    assert_eq!(hostile_actor.status(), StatusCode::CREATED);
    let head = server.registry.head_sequence().await.unwrap();

    // Newest first, 50 a page, live from the newest shown.
    let (_, first) = page(&server, "/ui/events").await;
    assert!(
        first.contains(&format!("data-live-since=\"{head}\"")),
        "{first}"
    );
    assert!(first.contains("v1.retention.hold_applied"));
    assert!(
        first.contains("&lt;i&gt;mallory&lt;/i&gt;") && !first.contains("<i>"),
        "{first}"
    );
    assert!(
        first.contains(&ids[54]) && !first.contains(&ids[1]),
        "{first}"
    );
    // Older pages, followed to the end, hold the rest, and are not live.
    let mut pages = vec![first.clone()];
    while let Some(next) = next_link(pages.last().unwrap()) {
        let (status, older) = page(&server, &next).await;
        assert_eq!(status, StatusCode::OK);
        assert!(
            !older.contains("data-live-since"),
            "older pages are not live"
        );
        pages.push(older);
        assert!(pages.len() < 10, "paging ends");
    }
    assert!(pages.len() >= 2, "{} pages", pages.len());
    assert!(pages.last().unwrap().contains(&ids[1]));
    let sequences: Vec<i64> = pages
        .iter()
        .flat_map(|page| {
            page.split("<td class=\"number\">")
                .skip(1)
                .map(|cell| cell.split('<').next().unwrap().parse::<i64>().unwrap())
                .collect::<Vec<_>>()
        })
        .collect();
    let expected: Vec<i64> = (1..=head).rev().collect();
    assert_eq!(sequences, expected, "every event once, newest first");

    // Filtered by type and by subject.
    let (_, holds) = page(
        &server,
        "/ui/events?type=v1.retention.hold_applied&subject=",
    )
    .await;
    assert_eq!(
        holds.matches("<tr>").count(),
        2,
        "a head row and one event: {holds}"
    );
    let (_, one) = page(&server, &format!("/ui/events?subject={}", ids[0])).await;
    assert!(one.contains("v1.package.created") && one.contains("hold_applied"));
    // The head row, and created, default retention applied, hold.
    assert_eq!(one.matches("<tr>").count(), 4, "{one}");
    let (_, none) = page(&server, "/ui/events?type=v1.nothing").await;
    assert!(none.contains("No event matches"), "{none}");

    // Hostile queries change nothing and say why.
    for query in [
        "before=0",
        "before=-1",
        "before=x",
        "type=%00",
        &format!("subject={}", "a".repeat(500)),
    ] {
        let (status, body) = page(&server, &format!("/ui/events?{query}")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}");
        assert!(body.contains("<h1>"), "{query}: a page, not JSON");
    }
    assert_eq!(server.registry.head_sequence().await.unwrap(), head);
}

on_both_engines!(the_system_page_shows_probes_verification_usage_and_the_log);
async fn the_system_page_shows_probes_verification_usage_and_the_log() {
    let server = TestServer::start().await;
    let (status, body) = page(&server, "/ui/system").await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("Everything answered."), "{body}");
    assert!(
        body.contains("<td>database</td><td>answered</td>"),
        "{body}"
    );
    assert!(body.contains("No verification has run yet"), "{body}");
    assert!(
        body.contains("No storage location is marked failed."),
        "{body}"
    );
    let key = server.get("/v1/log/key").await.text().await.unwrap();
    assert!(body.contains(key.trim()), "the verifier key: {body}");

    // After a package with a file and a verification: usage, the
    // verification, and a signed checkpoint.
    let package = server
        .create_package("<b>ci</b>", "standard", Value::Null)
        .await;
    let id = package["id"].as_str().unwrap().to_owned();
    server.put_file(&id, "a.txt", b"hello").await;
    let report = server
        .registry
        .verify_storage(None, "auditor")
        .await
        .unwrap();
    assert_eq!(report.failed, 0);
    let (_, body) = page(&server, "/ui/system").await;
    assert!(
        body.contains("&lt;b&gt;ci&lt;/b&gt;"),
        "usage by producer, escaped: {body}"
    );
    assert!(!body.contains("No verification has run yet"), "{body}");
    assert!(body.contains("<td>ok</td>"), "{body}");
    match server.registry.latest_checkpoint().await {
        Ok(checkpoint) => assert!(body.contains(checkpoint.note.lines().next().unwrap())),
        Err(_) => assert!(body.contains("No checkpoint yet"), "{body}"),
    }

    // Usage is for admins, as the API's.
    let guarded = TestServer::start_with(ServerOptions {
        auth_required: true,
        ..ServerOptions::default()
    })
    .await;
    let (_, reader) = guarded
        .registry
        .create_token(
            "auditor",
            artifactstore_core::token::Scope::Read,
            vec![],
            None,
            "setup",
        )
        .await
        .unwrap();
    let response = guarded
        .send(
            guarded
                .client
                .get(guarded.url("/ui/system"))
                .bearer_auth(&reader),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let body = response.text().await.unwrap();
    assert!(
        body.contains("needs a token with the admin scope"),
        "{body}"
    );
}
