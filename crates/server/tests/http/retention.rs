//! Retention: extensions, holds, history, the sweep.

use super::*;

on_both_engines!(retention_extend_hold_release_history_and_sweep);
async fn retention_extend_hold_release_history_and_sweep() {
    let server = TestServer::start().await;
    let classes = json_of(server.get("/v1/retention-classes").await).await;
    let by_id: BTreeMap<&str, &Value> = classes["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["id"].as_str().unwrap(), c))
        .collect();
    assert_eq!(
        *by_id["standard"],
        json!({"id": "standard", "default_duration": "90d", "default_duration_seconds": 90 * 86_400, "deletion_strategy": "delete", "purge_after": "7d", "purge_after_seconds": 7 * 86_400})
    );
    assert_eq!(by_id["permanent"]["default_duration"], Value::Null);
    assert_eq!(by_id["long-term"]["deletion_strategy"], "manual-review");

    let package = server.create_package("ci", "ephemeral", Value::Null).await;
    let id = package["id"].as_str().unwrap();
    let state = json_of(server.get(&format!("/v1/packages/{id}/retention")).await).await;
    assert_eq!(state["package_id"], id);
    assert_eq!(state["retention_class"], "ephemeral");
    assert_eq!(state["eligible_for_deletion"], false);
    assert_eq!(state["active_holds"], json!([]));
    let expires: Timestamp = state["expires_at"].as_str().unwrap().parse().unwrap();

    // Extend: strictly later only.
    let later = expires.plus_seconds(86_400).unwrap().to_string();
    let response = server
        .post_json(
            &format!("/v1/packages/{id}/retention/extend"),
            &json!({"new_expires_at": later, "reason": "audit"}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(json_of(response).await["expires_at"], later);
    let response = server
        .post_json(
            &format!("/v1/packages/{id}/retention/extend"),
            &json!({"new_expires_at": expires.to_string(), "reason": "shorter"}),
        )
        .await;
    assert_problem(
        response,
        StatusCode::UNPROCESSABLE_ENTITY,
        "retention_refused",
    )
    .await;
    let response = server
        .post_json(
            &format!("/v1/packages/{id}/retention/extend"),
            &json!({"new_expires_at": "next tuesday", "reason": "x"}),
        )
        .await;
    assert_problem(response, StatusCode::BAD_REQUEST, "invalid_json").await;

    // Hold, then the sweep after expiry skips the held package.
    let response = server
        .post_json(
            &format!("/v1/packages/{id}/holds"),
            &json!({"reason": "litigation"}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let hold_id = json_of(response).await["hold_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let state = json_of(server.get(&format!("/v1/packages/{id}/retention")).await).await;
    assert_eq!(state["active_holds"][0]["hold_id"], hold_id);
    assert_eq!(state["active_holds"][0]["reason"], "litigation");
    let response = server
        .post_json(&format!("/v1/packages/{id}/holds"), &json!({"reason": ""}))
        .await;
    assert_problem(
        response,
        StatusCode::UNPROCESSABLE_ENTITY,
        "retention_refused",
    )
    .await;

    server.clock.advance_days(30);
    let swept = json_of(
        server
            .send(server.client.post(server.url("/v1/retention/sweep")))
            .await,
    )
    .await;
    assert_eq!(swept, json!({"marked": []}));

    // Releasing the last hold after expiry makes the package eligible.
    let response = server
        .post_json(
            &format!("/v1/packages/{id}/holds/{hold_id}/release"),
            &json!({"reason": "settled"}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let state = json_of(response).await;
    assert_eq!(state["active_holds"], json!([]));
    assert_eq!(state["eligible_for_deletion"], true);
    let response = server
        .post_json(
            &format!("/v1/packages/{id}/holds/{hold_id}/release"),
            &json!({"reason": "again"}),
        )
        .await;
    assert_problem(
        response,
        StatusCode::UNPROCESSABLE_ENTITY,
        "retention_refused",
    )
    .await;
    let response = server
        .post_json(
            &format!("/v1/packages/{id}/holds/{}/release", Uuid::new_v4()),
            &json!({"reason": "x"}),
        )
        .await;
    assert_problem(response, StatusCode::NOT_FOUND, "hold_not_found").await;
    let response = server
        .post_json(
            &format!("/v1/packages/{id}/holds/not-a-hold/release"),
            &json!({"reason": "x"}),
        )
        .await;
    assert_problem(response, StatusCode::BAD_REQUEST, "invalid_id").await;
    let response = server
        .post_json(
            &format!("/v1/packages/{id}/holds"),
            &json!({"reason": "x", "extra": true}),
        )
        .await;
    assert_problem(response, StatusCode::BAD_REQUEST, "invalid_json").await;

    // The sweep marks an expired, unheld package.
    let other = server.create_package("ci", "ephemeral", Value::Null).await;
    server.clock.advance_days(30);
    let swept = json_of(
        server
            .send(server.client.post(server.url("/v1/retention/sweep")))
            .await,
    )
    .await;
    assert_eq!(swept, json!({"marked": [other["id"]]}));

    let history = json_of(
        server
            .get(&format!("/v1/packages/{id}/retention/history"))
            .await,
    )
    .await;
    let types: Vec<&str> = history["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event_type"].as_str().unwrap())
        .collect();
    assert_eq!(
        types,
        vec![
            "v1.retention.default_applied",
            "v1.retention.extended",
            "v1.retention.hold_applied",
            "v1.retention.hold_released",
            "v1.retention.deletion_eligible"
        ]
    );
    assert_eq!(history["items"][1]["payload"]["reason"], "audit");
    assert_problem(
        server
            .get(&format!(
                "/v1/packages/{}/retention/history",
                Uuid::new_v4()
            ))
            .await,
        StatusCode::NOT_FOUND,
        "package_not_found",
    )
    .await;
    assert_problem(
        server
            .get(&format!("/v1/packages/{}/retention", Uuid::new_v4()))
            .await,
        StatusCode::NOT_FOUND,
        "package_not_found",
    )
    .await;
    server.stop().await;
}
