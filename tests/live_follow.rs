//! The data API's subscriptions and the embed's live thread go through the live dispatcher
//! (#16): what they are sent follows the access policy, and a membership change is honoured at
//! once. Both databases.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed step is a failed test

mod common;
mod embed_support;

use std::time::{Duration, Instant};

use common::TestApp;
use embed_support::{LIVE, SseReader, visitor_token, widget};
use serde_json::{Value, json};

/// How long a stream must stay silent to count as "receives nothing".
const SILENT: Duration = Duration::from_millis(1500);

async fn actor(app: &TestApp, handle: &str) -> i64 {
    sqlx::query_scalar("SELECT id FROM actors WHERE handle = $1")
        .bind(handle)
        .fetch_one(app.db.reader())
        .await
        .expect("actor")
}

/// Annotates through the data API as the holder of `bearer` (an embed visitor's token).
async fn create(app: &TestApp, key: &str, bearer: &str, body: &str) -> i64 {
    let response = app
        .new_client()
        .post(app.url(&format!("/api/v1/widgets/{key}/annotations")))
        .bearer_auth(bearer)
        .json(&json!({ "body": body }))
        .send()
        .await
        .expect("create");
    assert_eq!(response.status(), 201);
    let created: Value = response.json().await.expect("json");
    created["id"].as_i64().expect("id")
}

/// The data API subscription of `client` (a session's cookies, or `bearer`), after its snapshot.
async fn api_stream(app: &TestApp, client: &reqwest::Client, key: &str, bearer: Option<&str>) -> SseReader {
    let mut request = client.get(app.url(&format!("/api/v1/widgets/{key}/annotations/stream")));
    if let Some(bearer) = bearer {
        request = request.bearer_auth(bearer);
    }
    let mut reader = SseReader::new(request.send().await.expect("stream"));
    assert_eq!(reader.next(LIVE).await.expect("snapshot").event, "snapshot");
    reader
}

/// The embed's live thread of a visitor, after its first render.
async fn embed_stream(app: &TestApp, key: &str, vt: &str) -> SseReader {
    let response = app.new_client().get(app.url(&format!("/embed/{key}/live?vt={vt}"))).send().await.expect("stream");
    let mut reader = SseReader::new(response);
    assert_eq!(reader.next(LIVE).await.expect("the current thread").event, "thread");
    reader
}

/// Whether any event read within [`SILENT`] mentions `text`.
async fn hears_of(reader: &mut SseReader, text: &str) -> bool {
    let (seen, found) = reader.until("never", SILENT, |_| false).await;
    assert!(found.is_none());
    seen.iter().any(|e| e.data.contains(text))
}

dual_test!(a_private_annotation_reaches_its_author_and_staff_and_nobody_else, |app| {
    let logins = app.seed_demo().await;
    // A private widget: its annotations are read by their author and the hub's staff only.
    let (_, _, key, _) = widget(&app, "fraud-review").await;
    let author = visitor_token(&app, &key).await;
    let stranger = visitor_token(&app, &key).await;
    create(&app, &key, &author, "My first note on the panel.").await;
    create(&app, &key, &stranger, "The stranger's own note.").await;

    let anonymous = app.new_client();
    let mut author_api = api_stream(&app, &anonymous, &key, Some(&author)).await;
    let mut author_embed = embed_stream(&app, &key, &author).await;
    let mut stranger_api = api_stream(&app, &anonymous, &key, Some(&stranger)).await;
    let mut stranger_embed = embed_stream(&app, &key, &stranger).await;
    let mut staff = Vec::new();
    for handle in ["olga", "tomas"] {
        let client = app.signed_in(handle, &logins[handle]).await;
        staff.push((handle, api_stream(&app, &client, &key, None).await));
    }
    // A member who is not staff may not even subscribe.
    let wendy = app.signed_in("wendy", &logins["wendy"]).await;
    let refused =
        wendy.get(app.url(&format!("/api/v1/widgets/{key}/annotations/stream"))).send().await.expect("stream");
    assert_eq!(refused.status(), 404, "wendy may not read a private widget");

    let body = "PRIVATE-the held order shows the full card number";
    let id = create(&app, &key, &author, body).await;
    let (_, insert) = author_api.until("insert", LIVE, |e| e.json()["id"] == id).await;
    let insert = insert.expect("the author's subscription gets it");
    assert_eq!(insert.json()["mine"], true);
    assert!(author_embed.until("thread", LIVE, |e| e.data.contains(body)).await.1.is_some(), "the author's thread");
    for (handle, stream) in &mut staff {
        let (_, insert) = stream.until("insert", LIVE, |e| e.json()["id"] == id).await;
        assert_eq!(insert.unwrap_or_else(|| panic!("{handle} gets it")).json()["body"], body);
    }
    assert!(!hears_of(&mut stranger_api, body).await, "another visitor's subscription never carries it");
    assert!(!hears_of(&mut stranger_embed, body).await, "another visitor's thread never shows it");
});

dual_test!(a_member_removed_from_the_hub_stops_receiving_through_the_api_at_once, |app| {
    let logins = app.seed_demo().await;
    // A members widget: every member of the hub reads it.
    let (_, hub_id, key, _) = widget(&app, "payment-form").await;
    let visitor = visitor_token(&app, &key).await;
    let olga = app.signed_in("olga", &logins["olga"]).await;
    let tomas = app.signed_in("tomas", &logins["tomas"]).await;
    let mut olga_api = api_stream(&app, &olga, &key, None).await;
    let mut tomas_api = api_stream(&app, &tomas, &key, None).await;
    let before = create(&app, &key, &visitor, "Written while the triager is here").await;
    assert!(tomas_api.until("insert", LIVE, |e| e.json()["id"] == before).await.1.is_some(), "tomas reads it");

    let removed = Instant::now();
    sqlx::query("DELETE FROM hub_members WHERE hub_id = $1 AND actor_id = $2")
        .bind(hub_id)
        .bind(actor(&app, "tomas").await)
        .execute(app.db.writer())
        .await
        .expect("remove tomas");
    let after = create(&app, &key, &visitor, "Written after the triager left").await;
    assert!(olga_api.until("insert", LIVE, |e| e.json()["id"] == after).await.1.is_some(), "olga still reads");
    let (seen, end) = tomas_api.until("end", LIVE, |_| true).await;
    let end = end.expect("tomas's subscription ends");
    assert_eq!(end.json()["reason"], "forbidden");
    assert!(removed.elapsed() < Duration::from_millis(1500), "within one window: {:?}", removed.elapsed());
    assert!(seen.iter().all(|e| !e.data.contains("Written after the triager left")), "{seen:?}");
});

dual_test!(subscriptions_share_the_dispatcher_with_page_streams, |app| {
    app.seed_demo().await;
    let (_, _, key, _) = widget(&app, "cart-summary").await;
    let open_before = app.handle.live().open_streams();
    let visitor = visitor_token(&app, &key).await;
    let mut api = api_stream(&app, &app.new_client(), &key, Some(&visitor)).await;
    let mut thread = embed_stream(&app, &key, &visitor).await;
    assert_eq!(app.handle.live().open_streams(), open_before + 2, "both are the dispatcher's streams");
    let id = create(&app, &key, &visitor, "One write, both subscribers woken").await;
    assert!(api.until("insert", LIVE, |e| e.json()["id"] == id).await.1.is_some());
    assert!(thread.until("thread", LIVE, |e| e.data.contains("One write, both subscribers woken")).await.1.is_some());
});
