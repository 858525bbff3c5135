//! The OpenAPI document against the router and the answers.

use super::*;

/// The contract's routes, in OpenAPI path syntax, with their methods.
const CONTRACT_ROUTES: &[(&str, &[&str])] = &[
    ("/health", &["get"]),
    ("/metrics", &["get"]),
    ("/openapi.json", &["get"]),
    ("/v1/packages", &["get", "post"]),
    ("/v1/packages/{id}", &["get"]),
    (
        "/v1/packages/{id}/files/{relative_path}",
        &["get", "head", "put"],
    ),
    ("/v1/packages/{id}/files", &["get"]),
    ("/v1/files", &["get"]),
    ("/v1/files/{file_id}", &["get"]),
    ("/v1/files/{file_id}/content", &["get", "head"]),
    ("/v1/packages/{id}/finalize", &["post"]),
    ("/v1/packages/{id}/manifest", &["get"]),
    ("/v1/events", &["get"]),
    ("/v1/events/stream", &["get"]),
    ("/v1/retention-classes", &["get"]),
    ("/v1/packages/{id}/retention", &["get"]),
    ("/v1/packages/{id}/retention/extend", &["post"]),
    ("/v1/packages/{id}/holds", &["post"]),
    ("/v1/packages/{id}/holds/{hold_id}/release", &["post"]),
    ("/v1/packages/{id}/retention/history", &["get"]),
    ("/v1/retention/sweep", &["post"]),
    ("/v1/packages/{id}/purge", &["post"]),
    ("/v1/retention/review", &["get"]),
    ("/v1/lifecycle/run", &["post"]),
    ("/v1/usage", &["get"]),
    ("/v1/metadata-schemas/{slug}", &["get", "put"]),
    ("/v1/storage/verify", &["post"]),
    ("/v1/log/key", &["get"]),
    ("/v1/log/checkpoint", &["get"]),
    ("/v1/log/checkpoints", &["post"]),
    ("/v1/log/checkpoints/{tree_size}", &["get"]),
    ("/v1/log/leaves/{sequence}", &["get"]),
    ("/v1/log/proof/inclusion", &["get"]),
    ("/v1/log/proof/consistency", &["get"]),
    ("/v1/packages/{id}/uploads", &["options", "post"]),
    (
        "/v1/packages/{id}/uploads/{upload_id}",
        &["delete", "head", "patch"],
    ),
    ("/v1/packages/{id}/bundle", &["get"]),
];

on_both_engines!(openapi_lists_every_route);
async fn openapi_lists_every_route() {
    let server = TestServer::start().await;
    let response = server.get("/openapi.json").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(header(&response, "content-type"), "application/json");
    let doc = json_of(response).await;
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3."),
        "{}",
        doc["openapi"]
    );
    assert!(doc["info"]["title"].is_string());
    // A typed OpenAPI 3.1 parser accepts the whole document…
    let spec = oas3::from_json(doc.to_string()).expect("a valid OpenAPI 3.1 document");
    assert_eq!(
        spec.paths.as_ref().map(|p| p.len()),
        Some(CONTRACT_ROUTES.len())
    );
    // …and every `$ref` points at a component that exists.
    fn refs(value: &serde_json::Value, out: &mut Vec<String>) {
        match value {
            serde_json::Value::Object(map) => {
                for (key, item) in map {
                    match (key.as_str(), item) {
                        ("$ref", serde_json::Value::String(target)) => out.push(target.clone()),
                        _ => refs(item, out),
                    }
                }
            }
            serde_json::Value::Array(items) => items.iter().for_each(|item| refs(item, out)),
            _ => {}
        }
    }
    let mut targets = Vec::new();
    refs(&doc, &mut targets);
    assert!(!targets.is_empty());
    for target in targets {
        let pointer = target.strip_prefix('#').expect("local reference");
        assert!(doc.pointer(pointer).is_some(), "dangling $ref {target}");
    }

    let documented: BTreeMap<String, BTreeSet<String>> = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(path, item)| {
            let methods = item
                .as_object()
                .unwrap()
                .keys()
                .filter(|k| {
                    ["get", "put", "post", "delete", "head", "patch", "options"]
                        .contains(&k.as_str())
                })
                .cloned()
                .collect();
            (path.clone(), methods)
        })
        .collect();
    let contract: BTreeMap<String, BTreeSet<String>> = CONTRACT_ROUTES
        .iter()
        .map(|(path, methods)| {
            (
                path.to_string(),
                methods.iter().map(|m| m.to_string()).collect(),
            )
        })
        .collect();
    assert_eq!(documented, contract);

    // And the router answers every documented route: with sample
    // parameters no request lands on the route-not-found or
    // method-not-allowed fallbacks.
    let package = server.create_package("ci", "standard", Value::Null).await;
    let id = package["id"].as_str().unwrap();
    let sample = Uuid::new_v4().to_string();
    let concrete = |path: &str| {
        path.replace("{id}", id)
            .replace("{file_id}", &sample)
            .replace("{hold_id}", &sample)
            .replace("{relative_path}", "some/file.txt")
            .replace("{slug}", "some-slug")
    };
    for (path, methods) in CONTRACT_ROUTES {
        let concrete = concrete(path);
        for method in *methods {
            if *path == "/v1/events/stream" {
                let response = server.get(&concrete).await;
                assert_eq!(response.status(), StatusCode::OK);
                continue;
            }
            let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let response = server
                .send(
                    server
                        .client
                        .request(method.clone(), server.url(&concrete))
                        .body("{}"),
                )
                .await;
            let status = response.status();
            assert_ne!(
                status,
                StatusCode::METHOD_NOT_ALLOWED,
                "{method} {concrete}"
            );
            if status == StatusCode::NOT_FOUND && method != Method::HEAD {
                let body = json_of(response).await;
                assert_ne!(body["code"], "route_not_found", "{method} {concrete}");
            }
        }
    }

    // The other way round: on every documented path, a method the document
    // does not list is refused with 405, and `Allow` names exactly the
    // documented ones (HEAD comes with every GET, as HTTP has it), so the
    // router holds no operation the document lacks.
    for (path, methods) in &documented {
        let concrete = concrete(path);
        let mut allowed: BTreeSet<String> = methods.iter().map(|m| m.to_uppercase()).collect();
        if allowed.contains("GET") {
            allowed.insert("HEAD".to_owned());
        }
        for method in ["GET", "PUT", "POST", "DELETE", "HEAD", "PATCH", "OPTIONS"] {
            if allowed.contains(method) {
                continue;
            }
            let method = Method::from_bytes(method.as_bytes()).unwrap();
            let response = server
                .send(server.client.request(method.clone(), server.url(&concrete)))
                .await;
            assert_eq!(
                response.status(),
                StatusCode::METHOD_NOT_ALLOWED,
                "{method} {concrete}"
            );
            let allow: BTreeSet<String> = header(&response, "allow")
                .split(',')
                .map(|m| m.trim().to_owned())
                .collect();
            assert_eq!(allow, allowed, "Allow of {concrete}");
        }
    }

    // The model's schemas have exactly the keys real answers have.
    let schemas = &doc["components"]["schemas"];
    let properties = |name: &str| -> BTreeSet<String> {
        schemas[name]["properties"]
            .as_object()
            .unwrap_or_else(|| panic!("no schema {name}"))
            .keys()
            .cloned()
            .collect()
    };
    let keys = |value: &Value| -> BTreeSet<String> {
        value.as_object().unwrap().keys().cloned().collect()
    };
    // The route walk above finalized `package`; use a fresh one.
    let open = server.create_package("ci", "standard", Value::Null).await;
    let id = open["id"].as_str().unwrap();
    let shown = json_of(server.get(&format!("/v1/packages/{id}")).await).await;
    assert_eq!(properties("Package"), keys(&shown));
    let file = server.put_file(id, "schema-check.txt", b"x").await;
    assert_eq!(properties("File"), keys(&file));
    let retention = json_of(server.get(&format!("/v1/packages/{id}/retention")).await).await;
    assert_eq!(properties("Retention"), keys(&retention));
    let events = json_of(server.get("/v1/events").await).await;
    assert_eq!(properties("Event"), keys(&events["items"][0]));
    let health = json_of(server.get("/health").await).await;
    assert_eq!(properties("Health"), keys(&health));
    let problem = json_of(server.get("/v1/packages/x").await).await;
    assert_eq!(properties("Problem"), keys(&problem));
    server.stop().await;
}

on_both_engines!(openapi_documents_the_layers_answers_on_every_route);
/// The answers the layers give (auth, deadline, body limit, an unreachable
/// database) are documented on every route they can come from, and the
/// upload route documents its own limits.
async fn openapi_documents_the_layers_answers_on_every_route() {
    let server = TestServer::start().await;
    let doc = json_of(server.get("/openapi.json").await).await;
    let public = ["/health", "/metrics", "/openapi.json"];
    let mut checked = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let responses = operation["responses"].as_object().unwrap();
            let has = |status: &str| responses.contains_key(status);
            let at = format!("{method} {path}");
            for status in ["408", "414", "431"] {
                assert!(has(status), "{at} lacks {status}");
            }
            let is_public = public.contains(&path.as_str());
            assert_eq!(has("401"), !is_public, "{at}: 401");
            // 403 everywhere: `host_not_allowed` reaches the public routes too.
            assert!(has("403"), "{at} lacks 403");
            assert!(is_public || has("503"), "{at} lacks 503");
            let takes_json = operation["requestBody"]["content"]
                .get("application/json")
                .is_some();
            if takes_json {
                assert!(has("413"), "{at} reads JSON but lacks 413");
                assert!(has("415"), "{at} reads JSON but lacks 415");
            }
            if responses.contains_key("401") {
                let problem = &responses["401"]["content"]["application/problem+json"];
                assert_eq!(
                    problem["schema"]["$ref"], "#/components/schemas/Problem",
                    "{at}"
                );
            }
            checked += 1;
        }
    }
    let operations: usize = CONTRACT_ROUTES
        .iter()
        .map(|(_, methods)| methods.len())
        .sum();
    assert_eq!(checked, operations);
    let upload = &doc["paths"]["/v1/packages/{id}/files/{relative_path}"]["put"]["responses"];
    for status in ["413", "429", "507"] {
        assert!(upload.get(status).is_some(), "PUT file lacks {status}");
    }
    let create = &doc["paths"]["/v1/packages"]["post"]["responses"];
    assert!(create.get("413").is_some());
    server.stop().await;
}
