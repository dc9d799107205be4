//! The input layer (`web::input`): NUL characters, lone surrogates (as invalid UTF-8 in URLs and
//! forms, as `\udc00` escapes in JSON) and over-long values in every class of text input — query
//! filters, path segments, settings and ledger forms, the sign-in form, JSON bodies, event
//! payloads — get a 4xx whose message names the field, and write nothing, on both databases.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed step is a failed test

mod common;

use common::TestApp;
use serde_json::Value;

/// A NUL, a percent-encoded lone surrogate (U+DC00 as CESU bytes, not UTF-8), as sent in a URL
/// or a form.
const NUL: &str = "a%00b";
const SURROGATE: &str = "%ED%B0%80";

/// Every count a refused request must leave alone.
async fn snapshot(app: &TestApp) -> Vec<i64> {
    let mut out = Vec::new();
    for sql in [
        "SELECT COUNT(*) FROM hubs",
        "SELECT COUNT(*) FROM widgets",
        "SELECT CAST(COALESCE(SUM(LENGTH(name)), 0) AS BIGINT) FROM widgets",
        "SELECT COUNT(*) FROM categories",
        "SELECT COUNT(*) FROM hub_members",
        "SELECT COUNT(*) FROM api_keys",
        "SELECT COUNT(*) FROM annotations",
        "SELECT CAST(COALESCE(SUM(version), 0) AS BIGINT) FROM annotations",
        "SELECT COUNT(*) FROM requirement_candidates",
        "SELECT CAST(COALESCE(SUM(version), 0) AS BIGINT) FROM requirement_candidates",
        "SELECT COUNT(*) FROM candidate_evidence",
        "SELECT COUNT(*) FROM ledger_entries",
        "SELECT COUNT(*) FROM interaction_events",
    ] {
        out.push(app.scalar(sql).await);
    }
    out
}

async fn id(app: &TestApp, sql: &'static str) -> i64 {
    app.scalar(sql).await
}

/// GETs `path` with `client`; returns the status, the content type and the body.
async fn get(app: &TestApp, client: &reqwest::Client, path: &str) -> (u16, String, String) {
    let response = client.get(app.url(path)).send().await.expect("GET");
    let status = response.status().as_u16();
    let content_type =
        response.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    (status, content_type, response.text().await.expect("body"))
}

/// Posts an urlencoded body as written (so it can hold bytes that are not UTF-8), with the CSRF
/// token of `client`.
async fn post_raw(app: &TestApp, client: &reqwest::Client, path: &str, body: &str) -> (u16, String) {
    let mut csrf = app.csrf(client, "/").await;
    if csrf.is_empty() {
        csrf = app.csrf(client, "/login").await;
    }
    let response = client
        .post(app.url(path))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(format!("{body}&csrf_token={csrf}"))
        .send()
        .await
        .expect("POST");
    let status = response.status().as_u16();
    (status, response.text().await.expect("body"))
}

dual_test!(query_filters_refuse_nul_surrogates_and_over_long_values, |app| {
    let logins = app.seed_demo().await;
    let olga = app.signed_in("olga", &logins["olga"]).await;
    let candidate = id(
        &app,
        "SELECT MIN(id) FROM requirement_candidates WHERE hub_id = (SELECT id FROM hubs WHERE slug = 'checkout')",
    )
    .await;
    let annotation =
        id(&app, "SELECT MIN(id) FROM annotations WHERE hub_id = (SELECT id FROM hubs WHERE slug = 'checkout')").await;
    let before = snapshot(&app).await;
    let long_q = "x".repeat(201);
    let long_slug = "w".repeat(65);
    let pages = [
        "/hubs/checkout/triage?".to_owned(),
        "/hubs/checkout/triage/queue?".to_owned(),
        "/hubs/checkout/triage/counts?".to_owned(),
        "/hubs/checkout/ledger?".to_owned(),
        "/hubs/checkout/ledger/list?".to_owned(),
        format!("/hubs/checkout/candidates/{candidate}?"),
        format!("/hubs/checkout/candidates/{candidate}/evidence/search?"),
        format!("/hubs/checkout/triage/annotations/{annotation}/duplicate?version=1&"),
        "/hubs/checkout/annotations.csv?".to_owned(),
        "/hubs/checkout/annotations.jsonl?".to_owned(),
    ];
    for page in &pages {
        // The page itself answers (the filters are the only thing wrong below).
        let (status, _, _) = get(&app, &olga, page.trim_end_matches(['?', '&'])).await;
        assert_eq!(status, 200, "{page}");
        for (value, problem) in [(NUL, "NUL"), (SURROGATE, "not valid UTF-8"), (long_q.as_str(), "longer than 200")] {
            let url = format!("{page}q={value}");
            let (status, content_type, body) = get(&app, &olga, &url).await;
            assert_eq!(status, 400, "{url}: {body}");
            assert!(body.contains("query parameter `q`") && body.contains(problem), "{url}: {body}");
            // An export is refused before its body starts: an error page, not a cut CSV.
            assert!(content_type.starts_with("text/html"), "{url}: {content_type}");
        }
    }
    for page in ["/hubs/checkout/triage?", "/hubs/checkout/triage/queue?", "/hubs/checkout/annotations.csv?"] {
        for field in ["widget", "category"] {
            for value in [NUL, SURROGATE, long_slug.as_str()] {
                let url = format!("{page}{field}={value}");
                let (status, _, body) = get(&app, &olga, &url).await;
                assert_eq!(status, 400, "{url}: {body}");
                assert!(body.contains(&format!("query parameter `{field}`")), "{url}: {body}");
            }
        }
    }
    // Any other query value is bounded too, and so are names.
    let (status, _, body) = get(&app, &olga, &format!("/hubs/checkout/triage?status={}", "s".repeat(2049))).await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("`status` is longer than 2048 characters"), "{body}");
    let (status, _, body) = get(&app, &olga, "/hubs/checkout/triage?st%00atus=new").await;
    assert_eq!(status, 400, "{body}");
    // The API answers in JSON.
    let key: String = sqlx::query_scalar("SELECT embed_key FROM widgets WHERE slug = 'cart-summary'")
        .fetch_one(app.db.reader())
        .await
        .expect("key");
    for query in ["category=a%00", "cursor=%00", "status=%ED%B0%80", "kind=%00"] {
        let path = if query.starts_with("kind") { "events" } else { "annotations" };
        let url = format!("/api/v1/widgets/{key}/{path}?{query}");
        let (status, content_type, body) = get(&app, &olga, &url).await;
        assert_eq!(status, 400, "{url}: {body}");
        assert!(content_type.starts_with("application/json"), "{url}: {content_type}");
        let body: Value = serde_json::from_str(&body).expect("JSON error");
        assert_eq!(body["error"], "bad_request", "{url}");
        let field = query.split('=').next().unwrap_or_default();
        assert!(body["message"].as_str().unwrap_or_default().contains(&format!("`{field}`")), "{url}: {body}");
    }
    assert_eq!(snapshot(&app).await, before, "a refused filter wrote something");
});

dual_test!(path_segments_refuse_nul_surrogates_and_over_long_values, |app| {
    let logins = app.seed_demo().await;
    let olga = app.signed_in("olga", &logins["olga"]).await;
    let long = "x".repeat(257);
    for bad in ["%00", "checkout%00", SURROGATE, long.as_str()] {
        for path in [
            format!("/hubs/{bad}"),
            format!("/hubs/checkout/widgets/{bad}"),
            format!("/hubs/checkout/settings/widgets/{bad}"),
            format!("/embed/{bad}"),
            format!("/api/v1/widgets/{bad}"),
            format!("/api/v1/widgets/{bad}/events"),
        ] {
            let (status, content_type, body) = get(&app, &olga, &path).await;
            assert_eq!(status, 400, "{path}: {body}");
            assert!(body.contains("he address (part "), "{path}: {body}");
            let json = path.starts_with("/api/");
            assert_eq!(content_type.starts_with("application/json"), json, "{path}: {content_type}");
        }
    }
    // A post to such a path writes nothing either.
    let before = snapshot(&app).await;
    let (status, body) = post_raw(&app, &olga, "/hubs/checkout%00/candidates", "title=t&statement=s").await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(snapshot(&app).await, before);
});

dual_test!(forms_refuse_nul_and_surrogates_naming_the_field_and_write_nothing, |app| {
    let logins = app.seed_demo().await;
    let olga = app.signed_in("olga", &logins["olga"]).await;
    let admin = app.signed_in("admin", &logins["admin"]).await;
    let anonymous = app.new_client();
    let candidate = id(
        &app,
        "SELECT MIN(c.id) FROM requirement_candidates c JOIN hubs h ON h.id = c.hub_id
          WHERE h.slug = 'checkout' AND c.status = 'proposed'",
    )
    .await;
    let evidence = id(
        &app,
        "SELECT MIN(e.annotation_id) FROM candidate_evidence e JOIN requirement_candidates c ON c.id = e.candidate_id
          WHERE c.hub_id = (SELECT id FROM hubs WHERE slug = 'checkout') AND e.removed_at IS NULL",
    )
    .await;
    let evidence_of: i64 = sqlx::query_scalar(
        "SELECT MIN(candidate_id) FROM candidate_evidence WHERE annotation_id = $1 AND removed_at IS NULL",
    )
    .bind(evidence)
    .fetch_one(app.db.reader())
    .await
    .expect("candidate of the evidence");
    let annotation = id(&app, "SELECT MIN(id) FROM annotations WHERE hub_id = (SELECT id FROM hubs WHERE slug = 'checkout') AND status = 'new'").await;
    let version: i64 = sqlx::query_scalar("SELECT version FROM annotations WHERE id = $1")
        .bind(annotation)
        .fetch_one(app.db.reader())
        .await
        .expect("version");
    // (client, path, the form's other fields, the field to spoil)
    let promote = format!("/hubs/checkout/triage/annotations/{annotation}/promote");
    let promote_fields = format!("version={version}&target=new&statement=s");
    let forms: Vec<(&reqwest::Client, String, String, &str)> = vec![
        (
            &olga,
            "/hubs/checkout/settings/widgets".into(),
            "slug=new-one&policy_scope=members&description=&owner=&allowed_origins=".into(),
            "name",
        ),
        (&olga, "/hubs/checkout/settings/categories".into(), "label=L&colour=%23aa0000&position=".into(), "slug"),
        (&olga, "/hubs/checkout/settings/categories".into(), "slug=fresh&colour=%23aa0000&position=".into(), "label"),
        (&admin, "/settings/hubs".into(), "slug=fresh-hub&description=".into(), "name"),
        (&olga, "/hubs/checkout/settings/members".into(), "role=annotator".into(), "handle"),
        (&olga, "/hubs/checkout/settings/api-keys".into(), "x=1".into(), "name"),
        (&anonymous, "/login".into(), "password=whatever&next=%2F".into(), "handle"),
        (&olga, "/hubs/checkout/candidates".into(), "statement=s".into(), "title"),
        (&olga, "/hubs/checkout/candidates".into(), "title=t".into(), "statement"),
        (&olga, format!("/hubs/checkout/candidates/{candidate}/edit"), "statement=s&reason=r".into(), "title"),
        (
            &olga,
            format!("/hubs/checkout/candidates/{candidate}/decide"),
            "from=proposed&to=accepted".into(),
            "rationale",
        ),
        (&olga, format!("/hubs/checkout/candidates/{evidence_of}/evidence/{evidence}/remove"), "x=1".into(), "reason"),
        (&olga, promote.clone(), promote_fields.clone(), "title"),
    ];
    let before = snapshot(&app).await;
    for (client, path, fields, field) in &forms {
        for (value, problem) in [(NUL, "NUL"), (SURROGATE, "not valid UTF-8"), ("%00%00%00", "NUL")] {
            let (status, body) = post_raw(&app, client, path, &format!("{fields}&{field}={value}")).await;
            assert_eq!(status, 422, "{path} {field}={value}: {body}");
            assert!(body.contains(&format!("field `{field}`")) && body.contains(problem), "{path} {field}: {body}");
        }
    }
    assert_eq!(snapshot(&app).await, before, "a refused form wrote something");

    // Over-long values are refused by the field's own rule, which is the database's CHECK.
    let title = "t".repeat(201);
    let (status, body) =
        post_raw(&app, &olga, "/hubs/checkout/candidates", &format!("title={title}&statement=s")).await;
    assert_eq!(status, 422, "{body}");
    let (status, body) = post_raw(&app, &olga, &promote, &format!("{promote_fields}&title={title}")).await;
    assert_eq!(status, 422, "{body}");
    let name = "n".repeat(81);
    let (status, body) = post_raw(&app, &olga, "/hubs/checkout/settings/api-keys", &format!("name={name}")).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(snapshot(&app).await, before, "an over-long value wrote something");
    // And the same title of 200 characters is taken: the rule and the constraint agree.
    let title = "é".repeat(200);
    let (status, body) =
        post_raw(&app, &olga, "/hubs/checkout/candidates", &format!("title={title}&statement=s")).await;
    assert!(status == 303 || status == 200, "{status}: {body}");
});

dual_test!(json_bodies_and_event_payloads_refuse_nul_and_lone_surrogates, |app| {
    app.seed_demo().await;
    let (hub, key): (i64, String) = sqlx::query_as("SELECT hub_id, embed_key FROM widgets WHERE slug = 'cart-summary'")
        .fetch_one(app.db.reader())
        .await
        .expect("widget");
    let olga: i64 = sqlx::query_scalar("SELECT id FROM actors WHERE handle = 'olga'")
        .fetch_one(app.db.reader())
        .await
        .expect("olga");
    let bearer = ihf::db::api_keys::create(&app.db, hub, "tests", olga).await.expect("key").1;
    let send = |method: reqwest::Method, path: String, body: &'static str| {
        let request = app
            .client
            .request(method, app.url(&path))
            .bearer_auth(&bearer)
            .header("Content-Type", "application/json")
            .body(body);
        async move {
            let response = request.send().await.expect("request");
            let status = response.status().as_u16();
            let body: Value = response.json().await.unwrap_or(Value::Null);
            (status, body)
        }
    };
    let made = send(reqwest::Method::POST, format!("/api/v1/widgets/{key}/annotations"), r#"{"body":"fine"}"#).await;
    assert_eq!(made.0, 201, "{}", made.1);
    let annotation = made.1["id"].as_i64().expect("id");
    let before = snapshot(&app).await;
    let annotations = format!("/api/v1/widgets/{key}/annotations");
    let one = format!("{annotations}/{annotation}");
    let events = format!("/api/v1/widgets/{key}/events");
    let cases: Vec<(reqwest::Method, &String, &'static str, &str)> = vec![
        (reqwest::Method::POST, &annotations, r#"{"body":"a\u0000b"}"#, "`body` contains a NUL"),
        (reqwest::Method::POST, &annotations, r#"{"body":"\udc00"}"#, "`body` contains a lone UTF-16 surrogate"),
        (
            reqwest::Method::POST,
            &annotations,
            r#"{"body":"x","idempotency_key":"k\u0000"}"#,
            "`idempotency_key` contains a NUL",
        ),
        (reqwest::Method::POST, &annotations, r#"{"body":"x","category":"\ud800"}"#, "`category` contains a lone"),
        (reqwest::Method::POST, &annotations, r#"{"body":"x","b\u0000dy":"y"}"#, "a key of the body contains a NUL"),
        (reqwest::Method::PATCH, &one, r#"{"body":"\u0000"}"#, "`body` contains a NUL"),
        (reqwest::Method::PATCH, &one, r#"{"category":"\udfff"}"#, "`category` contains a lone"),
    ];
    for (method, path, body, message) in cases {
        let (status, answer) = send(method.clone(), path.clone(), body).await;
        assert_eq!(status, 422, "{method} {path} {body}: {answer}");
        assert_eq!(answer["error"], "invalid", "{body}");
        assert!(answer["message"].as_str().unwrap_or_default().contains(message), "{body}: {answer}");
    }
    // An event is checked on its own: one with such text is rejected with its index and a
    // reason naming the value; nothing of a batch of only such events is written.
    let batch = r#"{"events":[
        {"kind":"click","payload":{"k\u0000":1}},
        {"kind":"click","payload":{"label":"\udc00"}},
        {"kind":"click","payload":{"deep":[{"x":"\u0000"}]}},
        {"kind":"cl\u0000ick"},
        {"kind":"click","payload":{"pair":"\ud83d"}}]}"#;
    let (status, report) = send(reqwest::Method::POST, events.clone(), batch).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["accepted"], 0, "{report}");
    let reasons: Vec<&str> = report["rejected"]
        .as_array()
        .expect("rejected")
        .iter()
        .map(|r| r["reason"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(reasons.len(), 5, "{report}");
    for (reason, needle) in reasons.iter().zip([
        "a key of `payload` contains a NUL",
        "`payload.label` contains a lone",
        "`payload.deep[0].x` contains a NUL",
        "`kind` contains a NUL",
        "`payload.pair` contains a lone",
    ]) {
        assert!(reason.contains(needle), "{reason} should say {needle}");
    }
    // Over-long values are refused by each field's rule.
    let long_body = format!(r#"{{"body":"{}"}}"#, "b".repeat(4001));
    let long_key = format!(r#"{{"body":"x","idempotency_key":"{}"}}"#, "k".repeat(101));
    for body in [long_body, long_key] {
        let response = app
            .client
            .post(app.url(&annotations))
            .bearer_auth(&bearer)
            .header("Content-Type", "application/json")
            .body(body)
            .send()
            .await
            .expect("POST");
        assert_eq!(response.status(), 422);
    }
    assert_eq!(snapshot(&app).await, before, "a refused body wrote something");
    // Escaped backslashes and paired surrogates are fine.
    let (status, answer) = send(
        reqwest::Method::POST,
        events.clone(),
        r#"{"events":[{"kind":"click","payload":{"s":"\\u0000 \ud83d\ude00"}}]}"#,
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["accepted"], 1);
});

// ---- private text never reaches member-visible records -------------------------------------

/// A page's live stream and every event it brought.
struct Live {
    sse: common::SseClient,
    seen: Vec<common::SseEvent>,
}

impl Live {
    async fn open(app: &TestApp, client: &reqwest::Client, page: &str) -> Self {
        let html = client.get(app.url(page)).send().await.expect("page").text().await.expect("body");
        let url = common::text_attr(&html, "sse-connect=\"").expect("a live page").replace("&#38;", "&");
        Self { sse: common::SseClient::open(app, client, &url, None).await, seen: Vec::new() }
    }

    /// Waits for an event `name` whose data contains `needle`.
    async fn wait_for(&mut self, name: &str, needle: &str) {
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(15);
        while !self.seen.iter().any(|e| e.event == name && e.data.contains(needle)) {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let event = self.sse.next_event(left).await;
            self.seen.push(event.unwrap_or_else(|| panic!("no {name} event with {needle:?} in time")));
        }
    }

    /// Everything received, after collecting for `window` more.
    async fn all(&mut self, window: std::time::Duration) -> String {
        self.seen.extend(self.sse.events_within(window).await);
        self.seen.iter().map(|e| format!("{}: {}\n", e.event, e.data)).collect()
    }
}

/// An annotation on the private `fraud-review` widget of checkout, written by `handle`.
async fn private_annotation(app: &TestApp, handle: &str, body: &str) -> i64 {
    let (hub_id, widget_id): (i64, i64) = sqlx::query_as("SELECT hub_id, id FROM widgets WHERE slug = 'fraud-review'")
        .fetch_one(app.db.reader())
        .await
        .expect("private widget");
    let actor_id: i64 = sqlx::query_scalar("SELECT id FROM actors WHERE handle = $1")
        .bind(handle)
        .fetch_one(app.db.reader())
        .await
        .expect("actor");
    let category_id: i64 = sqlx::query_scalar("SELECT MIN(id) FROM categories WHERE hub_id = $1")
        .bind(hub_id)
        .fetch_one(app.db.reader())
        .await
        .expect("category");
    let new = ihf::db::annotations::NewAnnotation {
        hub_id,
        widget_id,
        actor_id,
        body,
        category_id,
        status: ihf::db::annotations::AnnotationStatus::New,
        created_at: ihf::db::now_ms(),
        idempotency_key: None,
    };
    let mut tx = app.db.writer().begin().await.expect("begin");
    let id = ihf::db::annotations::insert(&mut tx, &new).await.expect("insert");
    tx.commit().await.expect("commit");
    id
}

dual_test!(promoting_a_private_annotation_shows_none_of_its_text_to_members_who_cannot_read_it, |app| {
    let logins = app.seed_demo().await;
    let secret = "SECRET-7f3 order 118 was held because the card came from a stolen batch";
    let second = "SECRET-9c1 analyst notes on the chargeback pattern";
    let annotation = private_annotation(&app, "olga", secret).await;
    let later = private_annotation(&app, "olga", second).await;
    let tomas = app.signed_in("tomas", &logins["tomas"]).await;
    // anna is a member (annotator) of checkout: she reads candidates and the ledger, not the
    // private widget.
    let anna = app.signed_in("anna", &logins["anna"]).await;
    let widget_page = anna.get(app.url("/hubs/checkout/widgets/fraud-review")).send().await.expect("widget page");
    assert_ne!(widget_page.status(), 200, "anna cannot read the private widget");
    let mut ledger_live = Live::open(&app, &anna, "/hubs/checkout/ledger").await;

    // The dialog offers none of the annotation's text and says why.
    let dialog = tomas
        .get(app.url(&format!("/hubs/checkout/triage/annotations/{annotation}/promote?version=1")))
        .send()
        .await
        .expect("dialog");
    assert_eq!(dialog.status(), 200);
    let dialog = dialog.text().await.expect("body");
    assert!(dialog.contains("id=\"promote-private\""), "{dialog}");
    assert!(dialog.contains("name=\"title\" value=\"\""), "no pre-filled title: {dialog}");
    assert!(dialog.contains("aria-describedby=\"promote-private\"></textarea>"), "no pre-filled statement: {dialog}");
    // A public annotation's dialog still offers its text.
    let public: i64 = app
        .scalar(
            "SELECT MIN(a.id) FROM annotations a JOIN widgets w ON w.id = a.widget_id
              WHERE w.slug = 'cart-summary' AND a.status = 'new' AND a.deleted_at IS NULL",
        )
        .await;
    let public_dialog = tomas
        .get(app.url(&format!("/hubs/checkout/triage/annotations/{public}/promote?version=1")))
        .send()
        .await
        .expect("dialog")
        .text()
        .await
        .expect("body");
    assert!(!public_dialog.contains("promote-private") && !public_dialog.contains("name=\"title\" value=\"\""));

    // A crafted form that copies the text is refused and writes nothing.
    let candidates_before = app.scalar("SELECT COUNT(*) FROM requirement_candidates").await;
    let promote = format!("/hubs/checkout/triage/annotations/{annotation}/promote");
    for (title, statement) in [(secret, "Mine."), ("Held orders", secret), (&secret[..80.min(secret.len())], "x")] {
        let csrf = app.csrf(&tomas, "/").await;
        let form =
            [("version", "1"), ("target", "new"), ("title", title), ("statement", statement), ("csrf_token", &csrf)];
        let response =
            tomas.post(app.url(&promote)).header("HX-Request", "true").form(&form).send().await.expect("POST");
        assert_eq!(response.status(), 422);
        assert!(response.text().await.expect("body").contains("in your own words"));
    }
    assert_eq!(app.scalar("SELECT COUNT(*) FROM requirement_candidates").await, candidates_before);

    // Promoted with words of the triager's own.
    let csrf = app.csrf(&tomas, "/").await;
    let form = [
        ("version", "1"),
        ("target", "new"),
        ("title", "Held orders need a release reason"),
        ("statement", "Analysts release held orders without recording why."),
        ("csrf_token", &csrf),
    ];
    let response = tomas.post(app.url(&promote)).header("HX-Request", "true").form(&form).send().await.expect("POST");
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap_or_default());
    let candidate: i64 = app.scalar("SELECT MAX(id) FROM requirement_candidates").await;
    ledger_live.wait_for("ledger", "Held orders need a release reason").await;

    // anna watches the candidate page while more private evidence arrives.
    let page = format!("/hubs/checkout/candidates/{candidate}");
    let mut candidate_live = Live::open(&app, &anna, &page).await;
    let csrf = app.csrf(&tomas, "/").await;
    let later_id = later.to_string();
    let attach = [("annotation_id", later_id.as_str()), ("q", ""), ("csrf_token", &csrf)];
    let response = tomas.post(app.url(&format!("{page}/evidence"))).form(&attach).send().await.expect("attach");
    assert!(response.status().is_success() || response.status().is_redirection(), "{}", response.status());
    candidate_live.wait_for("candidate-history", &format!("Added evidence #{later}")).await;

    // What anna reads: the pages, the regions, both ledger exports, the live frames.
    let mut seen = String::new();
    for path in [
        page.clone(),
        format!("{page}/evidence"),
        format!("{page}/history"),
        format!("{page}/head"),
        "/hubs/checkout/ledger".into(),
        "/hubs/checkout/ledger/list".into(),
        "/hubs/checkout/ledger.csv".into(),
        "/hubs/checkout/ledger.jsonl".into(),
    ] {
        let response = anna.get(app.url(&path)).send().await.expect("GET");
        assert_eq!(response.status(), 200, "{path}");
        seen.push_str(&response.text().await.expect("body"));
    }
    seen.push_str(&ledger_live.all(std::time::Duration::from_millis(300)).await);
    seen.push_str(&candidate_live.all(std::time::Duration::from_millis(600)).await);
    for text in [secret, second] {
        for part in [text, &text[..12], "stolen batch", "chargeback"] {
            assert!(!seen.contains(part), "anna saw {part:?} of a private annotation");
        }
    }
    // Nor the evidence links: the candidate page counts what she cannot read.
    assert!(
        !seen.contains(&format!("id=\"evidence-{annotation}\"")) && !seen.contains(&format!("id=\"evidence-{later}\""))
    );
    // The triager, who may read them, sees both as evidence.
    let triager_page = tomas.get(app.url(&page)).send().await.expect("GET").text().await.expect("body");
    assert!(triager_page.contains(&format!("id=\"evidence-{annotation}\"")) && triager_page.contains(secret));
    assert!(triager_page.contains(&format!("id=\"evidence-{later}\"")));
});

// ---- ledger.csv ------------------------------------------------------------------------------

dual_test!(ledger_csv_is_guarded_for_spreadsheets_and_exact_on_request, |app| {
    let logins = app.seed_demo().await;
    let tomas = app.signed_in("tomas", &logins["tomas"]).await;
    let title = "=HYPERLINK(\"https://evil.example\",\"open\")";
    let statement = "@SUM(1+1)*cmd|' /C calc'!A0";
    let csrf = app.csrf(&tomas, "/").await;
    let response = tomas
        .post(app.url("/hubs/checkout/candidates"))
        .form(&[("title", title), ("statement", statement), ("csrf_token", &csrf)])
        .send()
        .await
        .expect("propose");
    assert_eq!(response.status(), 303);
    let guarded =
        tomas.get(app.url("/hubs/checkout/ledger.csv")).send().await.expect("csv").text().await.expect("body");
    // Every field a spreadsheet would run starts with a quote inside the CSV quotes.
    assert!(guarded.contains(",\"'@SUM(1+1)*cmd|' /C calc'!A0\","), "{guarded}");
    for line in guarded.lines().skip(1) {
        for start in [",=", ",+", ",-", ",@", ",\"=", ",\"+", ",\"-", ",\"@"] {
            assert!(!line.contains(start), "unguarded field in {line}");
        }
    }
    let exact =
        tomas.get(app.url("/hubs/checkout/ledger.csv?exact=1")).send().await.expect("csv").text().await.expect("body");
    assert!(exact.contains(",@SUM(1+1)*cmd|' /C calc'!A0,"), "{exact}");
    let bad = tomas.get(app.url("/hubs/checkout/ledger.csv?exact=maybe")).send().await.expect("csv");
    assert_eq!(bad.status(), 400);
});

// ---- what the HTTP parser refuses -------------------------------------------------------------

/// Sends `request` as raw bytes and returns the whole answer.
fn raw_request(port: u16, request: Vec<u8>) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream.set_read_timeout(Some(std::time::Duration::from_secs(10))).expect("timeout");
    // The server may answer and close before reading everything: what it said is what counts.
    let _ = stream.write_all(&request);
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    String::from_utf8_lossy(&answer).into_owned()
}

dual_test!(requests_the_http_parser_refuses_get_a_short_plain_text_answer, |app| {
    let port = app.port;
    let nul_header = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Test: a\0b\r\n\r\n".to_vec();
    let long_query = format!("GET /hubs?q={} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(70 * 1024)).into_bytes();
    let huge_query = format!("GET /hubs?q={} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(1024 * 1024)).into_bytes();
    for (what, request) in
        [("NUL in a header", nul_header), ("a 70 KiB query", long_query), ("a 1 MiB query", huge_query)]
    {
        let answer = tokio::task::spawn_blocking(move || raw_request(port, request)).await.expect("join");
        let status_line = answer.lines().next().unwrap_or_default();
        assert!(status_line.starts_with("HTTP/1.1 4"), "{what}: {status_line}");
        assert!(answer.to_ascii_lowercase().contains("content-type: text/plain"), "{what}: {answer}");
        let body = answer.split("\r\n\r\n").nth(1).unwrap_or_default();
        assert!(body.starts_with("The request"), "{what}: {body:?}");
    }
});
