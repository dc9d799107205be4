//! Helpers shared by the embed and data API tests: demo widgets, visitor and host tokens, a
//! server-sent events reader.

#![allow(dead_code)]

use std::time::Duration;

use ihf::auth::tokens::{self, Audience, Claims};

use crate::common::TestApp;

/// A demo widget: (id, hub id, embed key, embed secret).
pub async fn widget(app: &TestApp, slug: &str) -> (i64, i64, String, String) {
    sqlx::query_as("SELECT id, hub_id, embed_key, embed_secret FROM widgets WHERE slug = $1")
        .bind(slug)
        .fetch_one(app.db.reader())
        .await
        .expect("widget")
}

/// A fresh anonymous visitor's token for a widget, as its embed page hands it out.
pub async fn visitor_token(app: &TestApp, embed_key: &str) -> String {
    let page = app.new_client().get(app.url(&format!("/embed/{embed_key}"))).send().await.expect("embed page");
    assert_eq!(page.status(), 200);
    crate::common::text_attr(&page.text().await.expect("body"), "data-visitor-token=\"").expect("visitor token")
}

/// A token the host site's server would sign for its user.
pub fn host_token(secret: &str, audience: &str, sub: &str, name: &str, expires_in_s: i64) -> String {
    let claims = Claims {
        sub: sub.into(),
        name: Some(name.into()),
        aud: Audience::One(audience.into()),
        exp: tokens::now_s() + expires_in_s,
        iss: None,
        iat: None,
    };
    tokens::sign(&claims, secret.as_bytes())
}

/// A row count.
pub async fn count(app: &TestApp, sql: &str, bind: i64) -> i64 {
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_owned())).bind(bind).fetch_one(app.db.reader()).await.expect("count")
}

/// One server-sent event.
#[derive(Debug, Clone)]
pub struct SseEvent {
    pub event: String,
    pub id: Option<String>,
    pub data: String,
}

impl SseEvent {
    /// The data as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.data).expect("JSON event data")
    }
}

/// Reads events from a streaming response.
pub struct SseReader {
    response: reqwest::Response,
    buffer: String,
}

impl SseReader {
    pub fn new(response: reqwest::Response) -> Self {
        assert_eq!(response.status(), 200, "stream status");
        let content_type = response.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default();
        assert!(content_type.starts_with("text/event-stream"), "content type {content_type}");
        Self { response, buffer: String::new() }
    }

    /// The next event (comments and `retry:` skipped), or `None` after `timeout`.
    pub async fn next(&mut self, timeout: Duration) -> Option<SseEvent> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            while let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let mut event = SseEvent { event: "message".into(), id: None, data: String::new() };
                let mut has_data = false;
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("event: ") {
                        event.event = v.to_owned();
                    } else if let Some(v) = line.strip_prefix("id: ") {
                        event.id = Some(v.to_owned());
                    } else if let Some(v) = line.strip_prefix("data: ").or_else(|| line.strip_prefix("data:")) {
                        if has_data {
                            event.data.push('\n');
                        }
                        event.data.push_str(v);
                        has_data = true;
                    }
                }
                if has_data {
                    return Some(event);
                }
            }
            let chunk = tokio::time::timeout_at(deadline, self.response.chunk()).await.ok()?.ok()??;
            self.buffer.push_str(&String::from_utf8_lossy(&chunk));
        }
    }

    /// Events until one named `name` for which `accept` holds (returned last), within `timeout`.
    pub async fn until(
        &mut self,
        name: &str,
        timeout: Duration,
        accept: impl Fn(&SseEvent) -> bool,
    ) -> (Vec<SseEvent>, Option<SseEvent>) {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.next(left).await {
                Some(event) if event.event == name && accept(&event) => return (seen, Some(event)),
                Some(event) => seen.push(event),
                None => return (seen, None),
            }
        }
    }
}

/// How long a test waits for a live change (the streams look every 500 ms).
pub const LIVE: Duration = Duration::from_secs(8);

/// An attribute value as the page has it, with askama's escapes undone.
fn unescape(value: &str) -> String {
    value.replace("&#38;", "&").replace("&amp;", "&").replace("&#61;", "=")
}

/// The composer of a widget's embed page as the visitor of `vt` sees it: where it posts
/// (visitor token in the URL) and its sealed state.
pub async fn composer(app: &TestApp, embed_key: &str, vt: &str) -> (String, String) {
    let page = app.new_client().get(app.url(&format!("/embed/{embed_key}?vt={vt}"))).send().await.expect("embed page");
    let html = page.text().await.expect("body");
    let form = &html[html.find("<form id=\"composer\"").expect("the composer")..];
    let action = unescape(&crate::common::text_attr(form, "action=\"").expect("action"));
    let token = crate::common::text_attr(form, "name=\"token\" value=\"").expect("token");
    (action, token)
}

/// Posts the composer's form (`fields` besides its token) as htmx or a plain form.
pub async fn post_composer(
    app: &TestApp,
    action: &str,
    token: &str,
    fields: &[(&str, &str)],
    htmx: bool,
    extra: &[(&str, &str)],
) -> reqwest::Response {
    let mut form: Vec<(&str, &str)> = vec![("token", token)];
    form.extend_from_slice(fields);
    let mut request = app.new_client().post(app.url(action)).form(&form);
    if htmx {
        request = request.header("HX-Request", "true");
    }
    for (name, value) in extra {
        request = request.header(*name, *value);
    }
    request.send().await.expect("post")
}
