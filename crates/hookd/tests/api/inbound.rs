//! The inbound endpoint `POST /webhooks/{id}`, including hookd delivering to itself.

use crate::common::*;
use serde_json::json;

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// A request to `/webhooks/{id}` signed the Standard Webhooks way.
async fn send_signed(
    app: &TestApp,
    id: &str,
    secret: &str,
    msg_id: &str,
    ts: i64,
    body: &str,
) -> Reply {
    let key = hookd_verify::decode_secret(secret).unwrap();
    let signature = hookd_verify::sign_v1(&key, msg_id, ts, body.as_bytes());
    let response = app
        .client
        .post(app.url(&format!("/webhooks/{id}")))
        .header("content-type", "application/json")
        .header("webhook-id", msg_id)
        .header("webhook-timestamp", ts.to_string())
        .header("webhook-signature", signature)
        .body(body.to_owned())
        .send()
        .await
        .unwrap();
    into_reply(response).await
}

#[tokio::test]
async fn hookd_delivers_to_its_own_inbound_endpoint() {
    let app = spawn_app().await;
    let sub = app
        .subscribe("http://127.0.0.1:1/placeholder", &["order.*"])
        .await;
    let id = sub["id"].as_str().unwrap();
    let own_url = app.url(&format!("/webhooks/{id}"));
    assert_eq!(
        app.patch(&format!("/api/webhooks/{id}"), json!({"url": own_url}))
            .await
            .status,
        200
    );
    let event_id = app
        .publish(json!({"event": "order.created", "data": {"orderId": "ORD-9"}}))
        .await;
    let received = app
        .eventually(&format!("/api/webhooks/{id}/received"), |b| {
            b["data"].as_array().is_some_and(|d| !d.is_empty())
        })
        .await;
    // `message_id`: `webhook_id` names a subscription everywhere else in the API.
    assert_eq!(received["data"][0]["message_id"], event_id);
    assert!(received["data"][0].get("webhook_id").is_none());
    assert_eq!(received["data"][0]["event_type"], "order.created");
    app.wait_for_delivery_state(&event_id, "delivered").await;
}

#[tokio::test]
async fn verifies_rejects_and_deduplicates() {
    let app = spawn_app().await;
    let sub = app.subscribe("http://127.0.0.1:1/h", &["*"]).await;
    let id = sub["id"].as_str().unwrap();
    let secret = sub["secret"].as_str().unwrap();
    let body = r#"{"id":"msg_1","event":"invoice.issued","data":{}}"#;
    let ok = send_signed(&app, id, secret, "msg_1", now_secs(), body).await;
    assert_eq!(ok.status, 200, "{}", ok.body);
    assert_eq!(ok.body, json!({"received": true, "duplicate": false}));
    let replay = send_signed(&app, id, secret, "msg_1", now_secs(), body).await;
    assert_eq!(replay.body, json!({"received": true, "duplicate": true}));
    let list = app.get(&format!("/api/webhooks/{id}/received")).await.body;
    assert_eq!(
        list["data"].as_array().unwrap().len(),
        1,
        "a replay is not recorded twice"
    );
    assert_eq!(list["data"][0]["event_type"], "invoice.issued");

    let stale = send_signed(&app, id, secret, "msg_2", now_secs() - 600, body).await;
    stale.assert_error(401, "invalid_signature");
    assert!(
        stale.body["error"].as_str().unwrap().contains("older"),
        "{}",
        stale.body
    );
    let wrong = send_signed(
        &app,
        id,
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        "msg_3",
        now_secs(),
        body,
    )
    .await;
    wrong.assert_error(401, "invalid_signature");
    let unknown = send_signed(&app, "wh_nope", secret, "msg_4", now_secs(), body).await;
    unknown.assert_error(404, "not_found");
    let unsigned = into_reply(
        app.client
            .post(app.url(&format!("/webhooks/{id}")))
            .body(body)
            .send()
            .await
            .unwrap(),
    )
    .await;
    unsigned.assert_error(401, "invalid_signature");

    // The original webhook specification's hex X-Webhook-Signature alone is accepted too.
    let hex = hookd_verify::sign_hex(secret, body.as_bytes());
    let legacy = into_reply(
        app.client
            .post(app.url(&format!("/webhooks/{id}")))
            .header("x-webhook-id", "msg_legacy")
            .header("x-webhook-signature", hex)
            .body(body)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(legacy.status, 200, "{}", legacy.body);
    let tampered = into_reply(
        app.client
            .post(app.url(&format!("/webhooks/{id}")))
            .header("x-webhook-id", "msg_legacy2")
            .header(
                "x-webhook-signature",
                hookd_verify::sign_hex(secret, b"other"),
            )
            .body(body)
            .send()
            .await
            .unwrap(),
    )
    .await;
    tampered.assert_error(401, "invalid_signature");
    app.get("/api/webhooks/wh_nope/received")
        .await
        .assert_error(404, "not_found");
}
