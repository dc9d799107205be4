//! The triage board: the queue and its filters, every action through HTTP with the database
//! checked afterwards, bulk in one transaction, stale versions, undo, audit, access, and the
//! category settings.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed step is a failed test

mod common;

use std::collections::HashMap;

use common::{TestApp, text_attr};

/// The triage fields and version of an annotation, read straight from the database.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
struct Row {
    category_id: i64,
    status: String,
    dismiss_reason: Option<String>,
    duplicate_of: Option<i64>,
    version: i64,
}

async fn row(app: &TestApp, id: i64) -> Row {
    sqlx::query_as("SELECT category_id, status, dismiss_reason, duplicate_of, version FROM annotations WHERE id = $1")
        .bind(id)
        .fetch_one(app.db.reader())
        .await
        .expect("annotation")
}

/// Every annotation's triage fields and the audit, candidate and ledger tables: "nothing changed".
async fn snapshot(app: &TestApp) -> (Vec<(i64, Row)>, i64, i64, i64, i64) {
    let ids: Vec<i64> =
        sqlx::query_scalar("SELECT id FROM annotations ORDER BY id").fetch_all(app.db.reader()).await.expect("ids");
    let mut rows = Vec::new();
    for id in ids {
        rows.push((id, row(app, id).await));
    }
    (
        rows,
        app.scalar("SELECT COUNT(*) FROM annotation_changes").await,
        app.scalar("SELECT COUNT(*) FROM requirement_candidates").await,
        app.scalar("SELECT COUNT(*) FROM candidate_evidence WHERE removed_at IS NULL").await,
        app.scalar("SELECT COUNT(*) FROM ledger_entries").await,
    )
}

async fn hub_id(app: &TestApp, slug: &str) -> i64 {
    sqlx::query_scalar("SELECT id FROM hubs WHERE slug = $1").bind(slug).fetch_one(app.db.reader()).await.expect("hub")
}

/// The hub's annotations with status `new`, oldest first.
async fn new_ids(app: &TestApp, hub: &str) -> Vec<i64> {
    sqlx::query_scalar(
        "SELECT a.id FROM annotations a JOIN hubs h ON h.id = a.hub_id
          WHERE h.slug = $1 AND a.status = 'new' AND a.deleted_at IS NULL ORDER BY a.created_at, a.id",
    )
    .bind(hub)
    .fetch_all(app.db.reader())
    .await
    .expect("new ids")
}

async fn category(app: &TestApp, hub: &str, slug: &str) -> i64 {
    sqlx::query_scalar("SELECT c.id FROM categories c JOIN hubs h ON h.id = c.hub_id WHERE h.slug = $1 AND c.slug = $2")
        .bind(hub)
        .bind(slug)
        .fetch_one(app.db.reader())
        .await
        .expect("category")
}

async fn audit_rows(app: &TestApp, id: i64) -> Vec<(String, Option<String>, Option<String>, i64)> {
    sqlx::query_as(
        "SELECT field, old_value, new_value, actor_id FROM annotation_changes WHERE annotation_id = $1 ORDER BY id",
    )
    .bind(id)
    .fetch_all(app.db.reader())
    .await
    .expect("audit")
}

async fn actor(app: &TestApp, handle: &str) -> i64 {
    sqlx::query_scalar("SELECT id FROM actors WHERE handle = $1")
        .bind(handle)
        .fetch_one(app.db.reader())
        .await
        .expect("actor")
}

/// A signed-in person with the CSRF token of their session.
struct Person {
    client: reqwest::Client,
    csrf: String,
}

async fn sign_in(app: &TestApp, logins: &HashMap<String, String>, handle: &str) -> Person {
    let client = app.signed_in(handle, &logins[handle]).await;
    let csrf = app.csrf(&client, "/").await;
    Person { client, csrf }
}

impl Person {
    /// Posts a form as htmx does; returns the status and the body.
    async fn post(&self, app: &TestApp, path: &str, form: &[(&str, String)]) -> (u16, String) {
        let response = self
            .client
            .post(app.url(path))
            .header("HX-Request", "true")
            .header("X-CSRF-Token", &self.csrf)
            .form(form)
            .send()
            .await
            .expect("POST");
        let status = response.status().as_u16();
        (status, response.text().await.expect("body"))
    }

    async fn get(&self, app: &TestApp, path: &str, htmx: bool) -> (u16, String) {
        let mut request = self.client.get(app.url(path));
        if htmx {
            request = request.header("HX-Request", "true");
        }
        let response = request.send().await.expect("GET");
        let status = response.status().as_u16();
        (status, response.text().await.expect("body"))
    }
}

/// Posts one action on annotation `id` of the checkout hub.
async fn act(
    app: &TestApp,
    who: &Person,
    id: i64,
    version: i64,
    action: &str,
    extra: &[(&str, String)],
) -> (u16, String) {
    let mut form = vec![("action", action.to_owned()), ("version", version.to_string())];
    form.extend(extra.iter().cloned());
    who.post(app, &format!("/hubs/checkout/triage/annotations/{id}"), &form).await
}

/// The ids of the queue rows in the order they appear.
fn row_ids(html: &str) -> Vec<i64> {
    html.match_indices("<tr id=\"row-")
        .filter_map(|(at, m)| {
            let rest = &html[at + m.len()..];
            rest[..rest.find('"')?].parse().ok()
        })
        .collect()
}

fn undo_token(html: &str) -> String {
    text_attr(html, "name=\"token\" value=\"").expect("an undo token in the toast")
}

dual_test!(board_lists_new_annotations_oldest_first, |app| {
    let logins = app.seed_demo().await;
    let tomas = sign_in(&app, &logins, "tomas").await;
    let (status, page) = tomas.get(&app, "/hubs/checkout/triage", false).await;
    assert_eq!(status, 200);
    assert!(page.starts_with("<!doctype html>"));
    assert!(page.contains("/static/triage.js?v="), "the keyboard script is linked");
    let expected = new_ids(&app, "checkout").await;
    let shown = row_ids(&page);
    assert_eq!(shown, expected.iter().copied().take(50).collect::<Vec<_>>(), "new first, oldest first");
    // Every row has the pills, the actions and screen-reader labels.
    assert!(page.contains("aria-label=\"Select annotation #"));
    assert!(page.contains("data-act=\"t\"") && page.contains("data-act=\"x\""));
    assert!(page.contains("data-key=\"1\""));

    // The fragment is the page's content, and the regions answer on their own URLs.
    let (_, fragment) = tomas.get(&app, "/hubs/checkout/triage", true).await;
    assert!(!fragment.contains("<html") && fragment.contains("id=\"region-triage-queue\""));
    // Filter changes target the live frame: they get the whole page, with the new stream URL.
    let response = tomas
        .client
        .get(app.url("/hubs/checkout/triage?status=triaged"))
        .header("HX-Request", "true")
        .header("HX-Target", "live")
        .send()
        .await
        .expect("GET");
    assert_eq!(response.headers().get("vary").and_then(|v| v.to_str().ok()), Some("HX-Request, HX-Target"));
    let frame = response.text().await.expect("body");
    assert!(frame.starts_with("<!doctype html>") && frame.contains("id=\"live\""));
    let triaged_regions = ihf::live::region::stream_url(
        &ihf::web::triage::live_regions(
            &ihf::db::hubs::by_slug(&app.db, "checkout").await.expect("hub"),
            &ihf::web::triage::Filter::parse(ihf::web::triage::FilterParams {
                status: Some("triaged".into()),
                ..Default::default()
            })
            .expect("filter"),
        ),
        0,
    );
    let regions = triaged_regions.split("&since=").next().expect("regions");
    assert!(frame.contains(&regions.replace('&', "&#38;")), "the stream of the new filters");
    for path in ["/hubs/checkout/triage/queue", "/hubs/checkout/triage/counts?status=all"] {
        let (status, full) = tomas.get(&app, path, false).await;
        assert_eq!(status, 200, "{path}");
        assert!(full.starts_with("<!doctype html>"), "{path}: readable without JavaScript");
        let (_, region) = tomas.get(&app, path, true).await;
        assert!(!region.contains("<html"), "{path}: fragment");
    }
});

dual_test!(filters_search_dates_and_pages, |app| {
    let logins = app.seed_demo().await;
    let tomas = sign_in(&app, &logins, "tomas").await;
    let checkout = hub_id(&app, "checkout").await;

    // Every status, paged 50 at a time with "load more", oldest first, no row twice.
    let all: Vec<i64> = sqlx::query_scalar(
        "SELECT id FROM annotations WHERE hub_id = $1 AND deleted_at IS NULL ORDER BY created_at, id",
    )
    .bind(checkout)
    .fetch_all(app.db.reader())
    .await
    .expect("all");
    assert!(all.len() > 50, "the demo has more than one page");
    let (_, first) = tomas.get(&app, "/hubs/checkout/triage/queue?status=all", true).await;
    let mut seen = row_ids(&first);
    let next = text_attr(&first, "hx-get=\"/hubs/checkout/triage/queue?").expect("a load-more link");
    let (_, second) =
        tomas.get(&app, &format!("/hubs/checkout/triage/queue?{}", next.replace("&#38;", "&")), true).await;
    assert!(!second.contains("id=\"triage-queue\""), "the next page is rows only");
    seen.extend(row_ids(&second));
    assert_eq!(seen, all);

    // Category and widget filters.
    let bug = category(&app, "checkout", "bug").await;
    let bugs: Vec<i64> = sqlx::query_scalar(
        "SELECT id FROM annotations WHERE hub_id = $1 AND category_id = $2 AND status = 'new' ORDER BY created_at, id",
    )
    .bind(checkout)
    .bind(bug)
    .fetch_all(app.db.reader())
    .await
    .expect("bugs");
    let (_, page) = tomas.get(&app, "/hubs/checkout/triage/queue?category=bug", true).await;
    assert_eq!(row_ids(&page), bugs);
    let (_, page) = tomas.get(&app, "/hubs/checkout/triage/queue?status=all&widget=payment-form", true).await;
    let payment: i64 = app
        .scalar("SELECT COUNT(*) FROM annotations a JOIN widgets w ON w.id = a.widget_id WHERE w.slug = 'payment-form'")
        .await;
    assert_eq!(row_ids(&page).len() as i64, payment);

    // Search is case-insensitive on both databases, and wildcards are plain characters.
    let body: String = sqlx::query_scalar("SELECT body FROM annotations WHERE id = $1")
        .bind(all[0])
        .fetch_one(app.db.reader())
        .await
        .expect("body");
    let word =
        body.split_whitespace().max_by_key(|w| w.len()).expect("a word").trim_matches(|c: char| !c.is_alphanumeric());
    let (_, page) =
        tomas.get(&app, &format!("/hubs/checkout/triage/queue?status=all&q={}", word.to_uppercase()), true).await;
    let found = row_ids(&page);
    assert!(found.contains(&all[0]), "search for {word:?} in capitals finds #{}", all[0]);
    let widget: i64 = app.scalar("SELECT id FROM widgets WHERE slug = 'payment-form'").await;
    let actor = actor(&app, "anna").await;
    let odd = ihf::db::annotations::create(
        &app.db,
        &ihf::db::annotations::NewAnnotation {
            hub_id: checkout,
            widget_id: widget,
            actor_id: actor,
            body: "Promo says 100% off_now but charges me",
            category_id: bug,
            status: ihf::db::annotations::AnnotationStatus::New,
            created_at: ihf::db::now_ms(),
            idempotency_key: None,
        },
    )
    .await
    .expect("annotation");
    for (q, hit) in [("100%25 OFF_", true), ("100%25%25", false), ("_", true), ("off_now", true), ("offXnow", false)] {
        let (_, page) = tomas.get(&app, &format!("/hubs/checkout/triage/queue?status=all&q={q}"), true).await;
        assert_eq!(row_ids(&page).contains(&odd), hit, "q={q}");
    }
    let (_, page) = tomas.get(&app, "/hubs/checkout/triage/queue?status=all&q=%25", true).await;
    assert_eq!(row_ids(&page), vec![odd], "only the body with a % matches %");

    // Dates: from today on finds only what was written today (the new one, and demo rows of today).
    let today = time::OffsetDateTime::now_utc().date();
    let midnight = today.midnight().assume_utc().unix_timestamp() * 1000;
    let todays: Vec<i64> =
        sqlx::query_scalar("SELECT id FROM annotations WHERE hub_id = $1 AND created_at >= $2 ORDER BY created_at, id")
            .bind(checkout)
            .bind(midnight)
            .fetch_all(app.db.reader())
            .await
            .expect("today");
    let iso = format!("{:04}-{:02}-{:02}", today.year(), today.month() as u8, today.day());
    let (_, page) = tomas.get(&app, &format!("/hubs/checkout/triage/queue?status=all&from={iso}&to={iso}"), true).await;
    assert_eq!(row_ids(&page), todays);
    let (status, _) = tomas.get(&app, "/hubs/checkout/triage/queue?from=yesterday", true).await;
    assert_eq!(status, 400);

    // The counts panel: per status (ignoring the status filter) and per category.
    let (_, counts) = tomas.get(&app, "/hubs/checkout/triage/counts", true).await;
    for status in ["new", "triaged", "dismissed", "duplicate", "promoted"] {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM annotations WHERE hub_id = $1 AND status = $2")
            .bind(checkout)
            .bind(status)
            .fetch_one(app.db.reader())
            .await
            .expect("count");
        assert_eq!(
            common::text_after(&counts, &format!("data-status=\"{status}\"><span>{status}</span> <span class=\"n\">")),
            Some(n.to_string().as_str()),
            "{status}"
        );
    }
});

dual_test!(every_action_changes_the_row_bumps_the_version_and_is_audited, |app| {
    let logins = app.seed_demo().await;
    let tomas = sign_in(&app, &logins, "tomas").await;
    let tomas_id = actor(&app, "tomas").await;
    let ids = new_ids(&app, "checkout").await;
    let (a, b) = (ids[0], ids[1]);
    let idea = match category(&app, "checkout", "idea").await {
        idea if idea == row(&app, a).await.category_id => category(&app, "checkout", "bug").await,
        idea => idea,
    };

    // Recategorize.
    let before = row(&app, a).await;
    let (status, html) = act(&app, &tomas, a, before.version, "category", &[("category_id", idea.to_string())]).await;
    assert_eq!(status, 200, "{html}");
    let after = row(&app, a).await;
    assert_eq!((after.category_id, after.version), (idea, before.version + 1));
    assert!(html.trim_start().starts_with(&format!("<template><tr id=\"row-{a}\"")), "the row, out of band");
    assert!(html.contains("id=\"triage-counts\"") && html.contains("hx-swap-oob=\"true\""), "counts out of band");
    assert!(html.contains("id=\"toast\"") && html.contains("Undo"), "a toast with undo");
    let audit = audit_rows(&app, a).await;
    assert_eq!(audit.len(), 1);
    assert_eq!(audit[0].0, "category");
    let slug: String = sqlx::query_scalar("SELECT slug FROM categories WHERE id = $1")
        .bind(idea)
        .fetch_one(app.db.reader())
        .await
        .expect("slug");
    assert_eq!(audit[0].2.as_deref(), Some(slug.as_str()));
    assert_eq!(audit[0].3, tomas_id);

    // Triage.
    let (status, _) = act(&app, &tomas, a, after.version, "triage", &[]).await;
    assert_eq!(status, 200);
    let triaged = row(&app, a).await;
    assert_eq!((triaged.status.as_str(), triaged.version), ("triaged", after.version + 1));
    assert_eq!(
        audit_rows(&app, a).await.last().map(|r| (r.1.clone(), r.2.clone())),
        Some((Some("new".into()), Some("triaged".into())))
    );

    // Dismiss needs a reason from the list.
    let (status, _) = act(&app, &tomas, a, triaged.version, "dismiss", &[("reason", "because".into())]).await;
    assert_eq!(status, 422);
    assert_eq!(row(&app, a).await, triaged, "a refused dismissal changes nothing");
    let (status, _) = act(&app, &tomas, a, triaged.version, "dismiss", &[("reason", "spam".into())]).await;
    assert_eq!(status, 200);
    let dismissed = row(&app, a).await;
    assert_eq!((dismissed.status.as_str(), dismissed.dismiss_reason.as_deref()), ("dismissed", Some("spam")));

    // Reopen clears the reason.
    let (status, _) = act(&app, &tomas, a, dismissed.version, "reopen", &[]).await;
    assert_eq!(status, 200);
    let reopened = row(&app, a).await;
    assert_eq!((reopened.status.as_str(), reopened.dismiss_reason), ("new", None));

    // Duplicate: b duplicates a; a gathers it and shows the count; nothing is deleted.
    let (status, html) = act(&app, &tomas, b, row(&app, b).await.version, "duplicate", &[("of", a.to_string())]).await;
    assert_eq!(status, 200);
    let dup = row(&app, b).await;
    assert_eq!((dup.status.as_str(), dup.duplicate_of), ("duplicate", Some(a)));
    assert!(html.contains(&format!("<template><tr id=\"row-{a}\"")), "the original's row comes out of band");
    assert!(html.contains("1 duplicate<"), "the original shows its duplicate");
    // A duplicate of the duplicate links to the original, and nothing can duplicate itself.
    let c = ids[2];
    let (status, _) = act(&app, &tomas, c, row(&app, c).await.version, "duplicate", &[("of", b.to_string())]).await;
    assert_eq!(status, 200);
    assert_eq!(row(&app, c).await.duplicate_of, Some(a));
    let (status, _) = act(&app, &tomas, a, row(&app, a).await.version, "duplicate", &[("of", a.to_string())]).await;
    assert_eq!(status, 422);
    let (_, page) = tomas.get(&app, &format!("/hubs/checkout/triage/annotations/{a}"), false).await;
    assert!(page.contains("2 duplicates"), "the original's page lists its duplicates");
    assert_eq!(app.scalar("SELECT COUNT(*) FROM annotations WHERE deleted_at IS NOT NULL").await, 0);

    // The history page shows the audit, oldest first.
    assert!(page.contains("id=\"history\""));
    let audited = audit_rows(&app, a).await.len();
    assert_eq!(page.matches("<td>Tomás Triage</td>").count(), audited);

    // Malformed actions are refused and change nothing.
    let before = snapshot(&app).await;
    let (status, _) = act(&app, &tomas, a, row(&app, a).await.version, "explode", &[]).await;
    assert_eq!(status, 400);
    let (status, _) = act(&app, &tomas, a, row(&app, a).await.version, "category", &[]).await;
    assert_eq!(status, 400);
    let onboarding_idea = category(&app, "onboarding", "idea").await;
    let (status, _) =
        act(&app, &tomas, a, row(&app, a).await.version, "category", &[("category_id", onboarding_idea.to_string())])
            .await;
    assert_eq!(status, 422, "another hub's category");
    assert_eq!(snapshot(&app).await, before);
});

dual_test!(a_stale_version_is_refused_with_the_current_row, |app| {
    let logins = app.seed_demo().await;
    let tomas = sign_in(&app, &logins, "tomas").await;
    let olga = sign_in(&app, &logins, "olga").await;
    let id = new_ids(&app, "checkout").await[0];
    let seen = row(&app, id).await;
    // Both load the board at version v; Tomás acts first.
    let (status, _) = act(&app, &tomas, id, seen.version, "triage", &[]).await;
    assert_eq!(status, 200);
    let current = row(&app, id).await;
    let audit_before = audit_rows(&app, id).await;
    let (status, html) = act(&app, &olga, id, seen.version, "dismiss", &[("reason", "spam".into())]).await;
    assert_eq!(status, 409);
    assert_eq!(row(&app, id).await, current, "no silent overwrite");
    assert_eq!(audit_rows(&app, id).await, audit_before);
    assert!(html.contains(&format!("<template><tr id=\"row-{id}\"")), "the current row comes back");
    assert!(html.contains(&format!("value=\"{id}:{}\"", current.version)), "with its current version");
    assert!(html.contains("Tomás Triage changed this"), "and who changed it: {html}");
    assert!(html.contains("role=\"alert\""));
    // With the current version, the change goes through.
    let (status, _) = act(&app, &olga, id, current.version, "dismiss", &[("reason", "spam".into())]).await;
    assert_eq!(status, 200);
});

dual_test!(bulk_changes_all_or_nothing, |app| {
    let logins = app.seed_demo().await;
    let tomas = sign_in(&app, &logins, "tomas").await;
    let ids = new_ids(&app, "checkout").await;
    let sel = |id: i64, version: i64| ("sel", format!("{id}:{version}"));

    // Three at once, in one request.
    let mut form = vec![("action", "dismiss".to_owned()), ("reason", "out-of-scope".to_owned())];
    for &id in &ids[..3] {
        form.push(sel(id, row(&app, id).await.version));
    }
    let (status, html) = tomas.post(&app, "/hubs/checkout/triage/bulk", &form).await;
    assert_eq!(status, 200, "{html}");
    for &id in &ids[..3] {
        let r = row(&app, id).await;
        assert_eq!((r.status.as_str(), r.dismiss_reason.as_deref()), ("dismissed", Some("out-of-scope")));
        assert!(html.contains(&format!("<template><tr id=\"row-{id}\"")), "each row out of band");
        assert_eq!(audit_rows(&app, id).await.len(), 2, "status and reason audited");
    }
    assert!(html.contains("3 annotations dismissed"));

    // A failure in the middle changes nothing: an annotation of another hub…
    let onboarding_id: i64 = app
        .scalar("SELECT MIN(a.id) FROM annotations a JOIN hubs h ON h.id = a.hub_id WHERE h.slug = 'onboarding'")
        .await;
    let bug = category(&app, "checkout", "bug").await;
    let before = snapshot(&app).await;
    let mut form = vec![("action", "category".to_owned()), ("category_id", bug.to_string())];
    form.push(sel(ids[3], row(&app, ids[3]).await.version));
    form.push(sel(onboarding_id, row(&app, onboarding_id).await.version));
    form.push(sel(ids[4], row(&app, ids[4]).await.version));
    let (status, _) = tomas.post(&app, "/hubs/checkout/triage/bulk", &form).await;
    assert_eq!(status, 404);
    assert_eq!(snapshot(&app).await, before, "nothing changed");

    // …or a stale version.
    let mut form = vec![("action", "triage".to_owned())];
    form.push(sel(ids[3], row(&app, ids[3]).await.version));
    form.push(sel(ids[4], row(&app, ids[4]).await.version - 1));
    form.push(sel(ids[5], row(&app, ids[5]).await.version));
    let (status, html) = tomas.post(&app, "/hubs/checkout/triage/bulk", &form).await;
    assert_eq!(status, 409);
    assert_eq!(snapshot(&app).await, before, "nothing changed");
    assert!(html.contains("Nothing changed"));

    // Bulk only recategorizes, triages or dismisses.
    let form = vec![("action", "duplicate".to_owned()), sel(ids[3], row(&app, ids[3]).await.version)];
    let (status, _) = tomas.post(&app, "/hubs/checkout/triage/bulk", &form).await;
    assert_eq!(status, 400);
    assert_eq!(snapshot(&app).await, before);
});

dual_test!(undo_restores_the_previous_state_exactly, |app| {
    let logins = app.seed_demo().await;
    let tomas = sign_in(&app, &logins, "tomas").await;
    let ids = new_ids(&app, "checkout").await;

    // A duplicate, then dismissed, then undone: duplicate again, with its original.
    let (a, b) = (ids[0], ids[1]);
    act(&app, &tomas, b, row(&app, b).await.version, "duplicate", &[("of", a.to_string())]).await;
    let before = row(&app, b).await;
    let (status, html) = act(&app, &tomas, b, before.version, "dismiss", &[("reason", "wont-fix".into())]).await;
    assert_eq!(status, 200);
    let token = undo_token(&html);
    let audited = audit_rows(&app, b).await.len();
    let (status, html) = tomas.post(&app, "/hubs/checkout/triage/undo", &[("token", token.clone())]).await;
    assert_eq!(status, 200, "{html}");
    let restored = row(&app, b).await;
    assert_eq!(
        (restored.category_id, &restored.status, &restored.dismiss_reason, restored.duplicate_of),
        (before.category_id, &before.status, &before.dismiss_reason, before.duplicate_of)
    );
    assert_eq!(restored.version, before.version + 2, "undo is a change too");
    assert!(audit_rows(&app, b).await.len() > audited, "and it is audited");
    assert!(html.contains(&format!("<template><tr id=\"row-{a}\"")), "the original's count comes back");
    assert!(!html.contains("name=\"token\""), "an undo offers no undo");
    // The same token again: the row moved on, so nothing happens.
    let (status, _) = tomas.post(&app, "/hubs/checkout/triage/undo", &[("token", token)]).await;
    assert_eq!(status, 409);
    assert_eq!(row(&app, b).await, restored);

    // Bulk undo restores every row, each to its own previous state.
    let bug = category(&app, "checkout", "bug").await;
    let targets = [ids[2], ids[3], ids[4]];
    let mut befores = Vec::new();
    let mut form = vec![("action", "category".to_owned()), ("category_id", bug.to_string())];
    for &id in &targets {
        let r = row(&app, id).await;
        form.push(("sel", format!("{id}:{}", r.version)));
        befores.push(r);
    }
    let (status, html) = tomas.post(&app, "/hubs/checkout/triage/bulk", &form).await;
    assert_eq!(status, 200);
    let (status, _) = tomas.post(&app, "/hubs/checkout/triage/undo", &[("token", undo_token(&html))]).await;
    assert_eq!(status, 200);
    for (id, before) in targets.iter().zip(&befores) {
        let now = row(&app, *id).await;
        assert_eq!((now.category_id, &now.status), (before.category_id, &before.status));
    }

    // Tampered, someone else's, or expired tokens are refused and change nothing.
    let (_, html) = act(&app, &tomas, ids[5], row(&app, ids[5]).await.version, "triage", &[]).await;
    let token = undo_token(&html);
    let state = snapshot(&app).await;
    let mut tampered = token.clone();
    tampered.insert(3, 'x');
    let (status, _) = tomas.post(&app, "/hubs/checkout/triage/undo", &[("token", tampered)]).await;
    assert_eq!(status, 400);
    let olga = sign_in(&app, &logins, "olga").await;
    let (status, _) = olga.post(&app, "/hubs/checkout/triage/undo", &[("token", token.clone())]).await;
    assert_eq!(status, 400, "a token is its author's");
    let secret: String = sqlx::query_scalar("SELECT value FROM server_secrets WHERE name = 'master'")
        .fetch_one(app.db.reader())
        .await
        .expect("secret");
    let mut old = ihf::web::triage::UndoToken::verify(
        &token,
        secret.as_bytes(),
        hub_id(&app, "checkout").await,
        actor(&app, "tomas").await,
        ihf::db::now_ms(),
    )
    .expect("our own token verifies");
    old.expires_at -= 60_000;
    let (status, _) = tomas.post(&app, "/hubs/checkout/triage/undo", &[("token", old.sign(secret.as_bytes()))]).await;
    assert_eq!(status, 409, "too late to undo");
    assert_eq!(snapshot(&app).await, state);
});

dual_test!(promotion_creates_candidate_evidence_and_ledger_in_one_go, |app| {
    let logins = app.seed_demo().await;
    let tomas = sign_in(&app, &logins, "tomas").await;
    let checkout = hub_id(&app, "checkout").await;
    let ids = new_ids(&app, "checkout").await;
    let (a, b) = (ids[0], ids[1]);
    let ledger_before = app.scalar("SELECT COUNT(*) FROM ledger_entries").await;

    // The dialog, then a title left empty: 422 with the typed statement kept.
    let version = row(&app, a).await.version;
    let (status, dialog) =
        tomas.get(&app, &format!("/hubs/checkout/triage/annotations/{a}/promote?version={version}"), true).await;
    assert_eq!(status, 200);
    assert!(dialog.contains("name=\"title\""));
    let path = format!("/hubs/checkout/triage/annotations/{a}/promote");
    let form = |target: &str, title: &str, candidate: &str, version: i64| {
        vec![
            ("target", target.to_owned()),
            ("title", title.to_owned()),
            ("statement", "Shoppers need this, typed by hand".to_owned()),
            ("candidate_id", candidate.to_owned()),
            ("version", version.to_string()),
        ]
    };
    let (status, html) = tomas.post(&app, &path, &form("new", "  ", "", version)).await;
    assert_eq!(status, 422);
    assert!(html.contains("Give the candidate a title.") && html.contains("Shoppers need this, typed by hand"));
    assert_eq!(app.scalar("SELECT COUNT(*) FROM ledger_entries").await, ledger_before);

    // A new candidate.
    let response = tomas
        .client
        .post(app.url(&path))
        .header("HX-Request", "true")
        .header("X-CSRF-Token", &tomas.csrf)
        .form(&form("new", "Show the total on every step", "", version))
        .send()
        .await
        .expect("POST");
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers().get("hx-reswap").and_then(|v| v.to_str().ok()),
        Some("none"),
        "the dialog stays as is"
    );
    let html = response.text().await.expect("body");
    let candidate: i64 =
        sqlx::query_scalar("SELECT id FROM requirement_candidates WHERE title = 'Show the total on every step'")
            .fetch_one(app.db.reader())
            .await
            .expect("candidate");
    let promoted = row(&app, a).await;
    assert_eq!(promoted.status, "promoted");
    assert!(promoted.version > version);
    let evidence: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM candidate_evidence WHERE candidate_id = $1 AND annotation_id = $2 AND removed_at IS NULL",
    )
    .bind(candidate)
    .bind(a)
    .fetch_one(app.db.reader())
    .await
    .expect("evidence");
    assert_eq!(evidence, 1);
    let actions: Vec<String> =
        sqlx::query_scalar("SELECT action FROM ledger_entries WHERE candidate_id = $1 ORDER BY seq")
            .bind(candidate)
            .fetch_all(app.db.reader())
            .await
            .expect("ledger");
    assert_eq!(actions, ["proposed", "evidence_added"]);
    assert!(audit_rows(&app, a).await.iter().any(|r| r.0 == "candidate" && r.2 == Some(candidate.to_string())));
    assert!(html.contains(&format!("candidate #{candidate}")));

    // Undo takes the evidence off (with a ledger entry; the ledger never forgets) and
    // restores the annotation.
    let (status, _) = tomas.post(&app, "/hubs/checkout/triage/undo", &[("token", undo_token(&html))]).await;
    assert_eq!(status, 200);
    assert_eq!(row(&app, a).await.status, "new");
    let removed: Option<i64> =
        sqlx::query_scalar("SELECT removed_at FROM candidate_evidence WHERE candidate_id = $1 AND annotation_id = $2")
            .bind(candidate)
            .bind(a)
            .fetch_one(app.db.reader())
            .await
            .expect("evidence");
    assert!(removed.is_some(), "the evidence is taken off, not deleted");
    let report = ihf::db::ledger::verify_all(&app.db, Some("checkout")).await.expect("verify");
    assert!(report.ok, "{:?}", report.lines);

    // An existing candidate.
    let version = row(&app, b).await.version;
    let path = format!("/hubs/checkout/triage/annotations/{b}/promote");
    let (status, html) = tomas.post(&app, &path, &form("existing", "", "", version)).await;
    assert_eq!(status, 422);
    assert!(html.contains("Choose a candidate."));
    let (status, _) = tomas.post(&app, &path, &form("existing", "", &candidate.to_string(), version)).await;
    assert_eq!(status, 200);
    assert_eq!(row(&app, b).await.status, "promoted");
    let evidence: Vec<i64> = sqlx::query_scalar(
        "SELECT annotation_id FROM candidate_evidence WHERE candidate_id = $1 AND removed_at IS NULL",
    )
    .bind(candidate)
    .fetch_all(app.db.reader())
    .await
    .expect("evidence");
    assert_eq!(evidence, vec![b]);
    // A promoted annotation is not triaged or dismissed from the board.
    let (status, _) = act(&app, &tomas, b, row(&app, b).await.version, "triage", &[]).await;
    assert_eq!(status, 422);

    // A candidate of another hub is refused and nothing is written.
    let other: i64 = sqlx::query_scalar("SELECT MIN(id) FROM requirement_candidates WHERE hub_id <> $1")
        .bind(checkout)
        .fetch_one(app.db.reader())
        .await
        .expect("other");
    let c = ids[2];
    let before = snapshot(&app).await;
    let (status, html) = tomas
        .post(
            &app,
            &format!("/hubs/checkout/triage/annotations/{c}/promote"),
            &form("existing", "", &other.to_string(), row(&app, c).await.version),
        )
        .await;
    assert_eq!(status, 422, "{html}");
    assert_eq!(snapshot(&app).await, before);
});

dual_test!(only_the_hubs_triagers_and_operators_may_triage, |app| {
    let logins = app.seed_demo().await;
    let id = new_ids(&app, "checkout").await[0];
    let version = row(&app, id).await.version;
    let before = snapshot(&app).await;
    let action = [("action", "triage".to_owned()), ("version", version.to_string())];
    let path = format!("/hubs/checkout/triage/annotations/{id}");

    for (handle, expected) in [("anna", 403), ("wendy", 403), ("tara", 403), ("ali", 403)] {
        let who = sign_in(&app, &logins, handle).await;
        let (status, _) = who.get(&app, "/hubs/checkout/triage", false).await;
        assert_eq!(status, expected, "{handle} sees the board");
        for region in [
            "/hubs/checkout/triage/queue",
            "/hubs/checkout/triage/counts",
            &format!("/hubs/checkout/triage/annotations/{id}"),
        ] {
            assert_eq!(who.get(&app, region, true).await.0, expected, "{handle}: {region}");
        }
        assert_eq!(who.post(&app, &path, &action).await.0, expected, "{handle} acts");
        let bulk = [("action", "triage".to_owned()), ("sel", format!("{id}:{version}"))];
        assert_eq!(who.post(&app, "/hubs/checkout/triage/bulk", &bulk).await.0, expected, "{handle} bulk");
    }
    // A triager of another hub cannot reach this hub's annotation through their own hub.
    let tara = sign_in(&app, &logins, "tara").await;
    let (status, _) = tara.post(&app, &format!("/hubs/onboarding/triage/annotations/{id}"), &action).await;
    assert_eq!(status, 404);

    // Anonymous: 401 (with a valid anonymous CSRF token, so the policy is what refuses).
    let anonymous = app.new_client();
    assert_eq!(anonymous.get(app.url("/hubs/checkout/triage")).send().await.expect("GET").status(), 401);
    let csrf = app.csrf(&anonymous, "/login").await;
    let response = anonymous
        .post(app.url(&path))
        .header("HX-Request", "true")
        .header("X-CSRF-Token", csrf)
        .form(&action)
        .send()
        .await
        .expect("POST");
    assert_eq!(response.status(), 401);
    assert!(response.headers().get("hx-redirect").is_some(), "htmx is sent to sign in");
    // Without the CSRF token: 403.
    let tomas = sign_in(&app, &logins, "tomas").await;
    let response =
        tomas.client.post(app.url(&path)).header("HX-Request", "true").form(&action).send().await.expect("POST");
    assert_eq!(response.status(), 403);
    assert_eq!(snapshot(&app).await, before, "nothing changed");

    // The hub's triager, its operator and the site administrator may.
    for handle in ["tomas", "olga", "admin"] {
        let who = sign_in(&app, &logins, handle).await;
        assert_eq!(who.get(&app, "/hubs/checkout/triage", false).await.0, 200, "{handle}");
    }
    let olga = sign_in(&app, &logins, "olga").await;
    assert_eq!(olga.post(&app, &path, &action).await.0, 200);
});

dual_test!(operators_manage_categories, |app| {
    let logins = app.seed_demo().await;
    let olga = sign_in(&app, &logins, "olga").await;
    let checkout = hub_id(&app, "checkout").await;
    let settings = "/hubs/checkout/settings/categories";
    let (status, page) = olga.get(&app, settings, false).await;
    assert_eq!(status, 200);
    assert!(page.contains("value=\"friction\""));
    let form = |slug: &str, label: &str, colour: &str, position: &str| {
        vec![
            ("slug", slug.to_owned()),
            ("label", label.to_owned()),
            ("colour", colour.to_owned()),
            ("position", position.to_owned()),
            ("csrf_token", olga.csrf.clone()),
        ]
    };
    let plain_post = |path: String, form: Vec<(&'static str, String)>| {
        let client = olga.client.clone();
        let url = app.url(&path);
        async move {
            let response = client.post(url).form(&form).send().await.expect("POST");
            let status = response.status().as_u16();
            (status, response.text().await.expect("body"))
        }
    };

    // Create.
    let (status, _) = plain_post(settings.into(), form("accessibility", "Accessibility", "teal", "")).await;
    assert_eq!(status, 303);
    let (id, position, colour): (i64, i64, String) =
        sqlx::query_as("SELECT id, position, colour FROM categories WHERE hub_id = $1 AND slug = 'accessibility'")
            .bind(checkout)
            .fetch_one(app.db.reader())
            .await
            .expect("created");
    assert_eq!((position, colour.as_str()), (5, "teal"));

    // A taken slug is a field error, with what was typed kept.
    let count = app.scalar("SELECT COUNT(*) FROM categories").await;
    let (status, html) = plain_post(settings.into(), form("bug", "Bugs again", "red", "")).await;
    assert_eq!(status, 422);
    assert!(html.contains("Another category of this hub has this slug.") && html.contains("value=\"Bugs again\""));
    let (status, html) = plain_post(settings.into(), form("Not A Slug!", "", "mauve", "x")).await;
    assert_eq!(status, 422);
    assert!(
        html.contains("lowercase letters")
            && html.contains("Choose a colour")
            && html.contains("value=\"Not A Slug!\"")
            && html.contains("value=\"x\"")
    );
    assert_eq!(app.scalar("SELECT COUNT(*) FROM categories").await, count);
    // The same slug in another hub is fine.
    let (status, _) =
        plain_post("/hubs/onboarding/settings/categories".into(), form("accessibility", "Accessibility", "teal", ""))
            .await;
    assert_eq!(status, 303);

    // Rename (label and slug), into a conflict and then for real.
    let (status, html) = plain_post(format!("{settings}/{id}"), form("idea", "A11y", "pink", "1")).await;
    assert_eq!(status, 422);
    assert!(html.contains("Another category of this hub has this slug.") && html.contains("value=\"A11y\""));
    let (status, _) = plain_post(format!("{settings}/{id}"), form("a11y", "A11y", "pink", "1")).await;
    assert_eq!(status, 303);
    let renamed: (String, String, String, i64) =
        sqlx::query_as("SELECT slug, label, colour, position FROM categories WHERE id = $1")
            .bind(id)
            .fetch_one(app.db.reader())
            .await
            .expect("renamed");
    assert_eq!(renamed, ("a11y".into(), "A11y".into(), "pink".into(), 1));

    // Archive: stays on old annotations, no longer offered.
    let tomas = sign_in(&app, &logins, "tomas").await;
    let annotation = new_ids(&app, "checkout").await[0];
    let (status, _) = act(
        &app,
        &tomas,
        annotation,
        row(&app, annotation).await.version,
        "category",
        &[("category_id", id.to_string())],
    )
    .await;
    assert_eq!(status, 200);
    let (status, _) = plain_post(format!("{settings}/{id}/archive"), vec![("csrf_token", olga.csrf.clone())]).await;
    assert_eq!(status, 303);
    let archived: Option<i64> = sqlx::query_scalar("SELECT archived_at FROM categories WHERE id = $1")
        .bind(id)
        .fetch_one(app.db.reader())
        .await
        .expect("archived");
    assert!(archived.is_some());
    assert_eq!(row(&app, annotation).await.category_id, id, "the annotation keeps it");
    let (_, board) = tomas.get(&app, "/hubs/checkout/triage/queue", true).await;
    assert!(board.contains("A11y <small>(archived)</small>"), "shown on the annotation that has it");
    assert!(!board.contains(&format!("\"category_id\":{id},")), "not offered as a choice");
    let other = new_ids(&app, "checkout").await[1];
    let before = row(&app, other).await;
    let (status, _) = act(&app, &tomas, other, before.version, "category", &[("category_id", id.to_string())]).await;
    assert_eq!(status, 422);
    assert_eq!(row(&app, other).await, before);
    let (status, _) = plain_post(format!("{settings}/{id}/restore"), vec![("csrf_token", olga.csrf.clone())]).await;
    assert_eq!(status, 303);

    // Non-operators: 403 (anonymous 401), nothing changed.
    let categories_before: Vec<(i64, String, String, Option<i64>)> =
        sqlx::query_as("SELECT id, slug, label, archived_at FROM categories ORDER BY id")
            .fetch_all(app.db.reader())
            .await
            .expect("all");
    for handle in ["tomas", "anna", "ali"] {
        let who = sign_in(&app, &logins, handle).await;
        assert_eq!(who.get(&app, settings, false).await.0, 403, "{handle}");
        let f = vec![
            ("slug", "x".to_owned()),
            ("label", "X".to_owned()),
            ("colour", "red".to_owned()),
            ("position", "".to_owned()),
        ];
        assert_eq!(who.post(&app, settings, &f).await.0, 403, "{handle} creates");
        assert_eq!(
            who.post(&app, &format!("{settings}/{id}/archive"), &[] as &[(&str, String)]).await.0,
            403,
            "{handle} archives"
        );
        assert_eq!(who.post(&app, &format!("{settings}/{id}"), &f).await.0, 403, "{handle} renames");
    }
    assert_eq!(app.new_client().get(app.url(settings)).send().await.expect("GET").status(), 401);
    let categories_after: Vec<(i64, String, String, Option<i64>)> =
        sqlx::query_as("SELECT id, slug, label, archived_at FROM categories ORDER BY id")
            .fetch_all(app.db.reader())
            .await
            .expect("all");
    assert_eq!(categories_before, categories_after);
});

/// Opens a triage board as `who` and its live stream, quiet at first.
async fn board_stream(app: &TestApp, who: &Person, path: &str) -> common::SseClient {
    let (status, page) = who.get(app, path, false).await;
    assert_eq!(status, 200);
    let url = text_attr(&page, "sse-connect=\"").expect("the board is live").replace("&#38;", "&");
    assert!(url.contains("triage-queue") && url.contains("triage-counts"), "{url}");
    let mut stream = common::SseClient::open(app, &who.client, &url, None).await;
    let early = stream.events_within(std::time::Duration::from_millis(300)).await;
    assert!(early.is_empty(), "nothing changed since the page was rendered: {early:?}");
    stream
}

dual_test!(other_triagers_boards_update_live, |app| {
    let logins = app.seed_demo().await;
    let tomas = sign_in(&app, &logins, "tomas").await;
    let olga = sign_in(&app, &logins, "olga").await;
    let tara = sign_in(&app, &logins, "tara").await;
    let mut olgas = board_stream(&app, &olga, "/hubs/checkout/triage").await;
    let mut filtered = board_stream(&app, &olga, "/hubs/checkout/triage?status=triaged").await;
    let mut taras = board_stream(&app, &tara, "/hubs/onboarding/triage").await;

    let names = |events: &[common::SseEvent]| {
        let mut names: Vec<String> = events.iter().map(|e| e.event.clone()).collect();
        names.sort_unstable();
        names
    };
    // A recategorized row stays in the queue of new annotations, with its new category.
    let id = new_ids(&app, "checkout").await[0];
    let before = row(&app, id).await;
    let other = sqlx::query_scalar::<_, i64>(
        "SELECT MIN(id) FROM categories WHERE hub_id = (SELECT hub_id FROM annotations WHERE id = $1) AND id <> $2",
    )
    .bind(id)
    .bind(before.category_id)
    .fetch_one(app.db.reader())
    .await
    .expect("category");
    let (status, _) = act(&app, &tomas, id, before.version, "category", &[("category_id", other.to_string())]).await;
    assert_eq!(status, 200);
    let events = olgas.events_within(std::time::Duration::from_millis(1500)).await;
    assert_eq!(names(&events), ["triage-counts", "triage-queue"], "the queue and the counts");
    let queue = events.iter().find(|e| e.event == "triage-queue").expect("queue");
    assert!(
        queue.data.contains(&format!("value=\"{id}:{}\"", before.version + 1)),
        "the changed row, at its new version"
    );

    // A triaged row leaves the queue of new annotations; the counts follow.
    let (status, _) = act(&app, &tomas, id, before.version + 1, "triage", &[]).await;
    assert_eq!(status, 200);
    let events = olgas.events_within(std::time::Duration::from_millis(1500)).await;
    assert_eq!(names(&events), ["triage-counts", "triage-queue"]);
    let queue = events.iter().find(|e| e.event == "triage-queue").expect("queue");
    assert!(!queue.data.contains(&format!("id=\"row-{id}\"")), "no longer new");
    let counts = events.iter().find(|e| e.event == "triage-counts").expect("counts");
    let triaged: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM annotations a JOIN hubs h ON h.id = a.hub_id WHERE h.slug = 'checkout' AND a.status = 'triaged'",
    )
    .fetch_one(app.db.reader())
    .await
    .expect("count");
    assert_eq!(
        common::text_after(&counts.data, "data-status=\"triaged\"><span>triaged</span> <span class=\"n\">"),
        Some(triaged.to_string().as_str())
    );
    // A board with other filters gets its own rendering of them. (Its first update after the
    // page may repeat what the page shows: a stream joining by page position does not know the
    // hash of the page's HTML, so the latest of each region is what counts.)
    let events = filtered.events_within(std::time::Duration::from_millis(1500)).await;
    let counts = events.iter().rev().find(|e| e.event == "triage-counts").expect("the filtered board's counts");
    assert!(counts.data.contains("aria-current=\"true\" data-status=\"triaged\""), "with its own filters");
    let queue = events.iter().rev().find(|e| e.event == "triage-queue").expect("the filtered board's queue");
    assert!(queue.data.contains(&format!("id=\"row-{id}\"")), "the newly triaged row joins the triaged queue");

    // Another hub's board hears nothing, and cannot listen in on this hub.
    assert!(taras.events_within(std::time::Duration::from_millis(600)).await.is_empty());
    let (_, page) = tomas.get(&app, "/hubs/checkout/triage", false).await;
    let url = text_attr(&page, "sse-connect=\"").expect("live").replace("&#38;", "&");
    let response = tara.client.get(app.url(&url)).header("Accept", "text/event-stream").send().await.expect("GET");
    assert_eq!(response.status(), 403);
});

dual_test!(postgres_read_policy_still_matches_the_rule, |app| {
    // Migration 0006 rewrote the annotations read policy for speed; it must allow exactly
    // the rows the access policy's rule allows, for every kind of viewer.
    if app.backend != ihf::db::Backend::Postgres {
        return;
    }
    app.seed_demo().await;
    for handle in ["admin", "olga", "tomas", "tara", "wendy", "anna", "ali"] {
        let id = actor(&app, handle).await;
        let expected: Vec<i64> = sqlx::query_scalar(
            "SELECT a.id FROM annotations a JOIN widgets w ON w.id = a.widget_id
              WHERE a.actor_id = $1 OR w.policy_scope = 'public' OR w.owner_id = $1
                 OR EXISTS (SELECT 1 FROM actors ad WHERE ad.id = $1 AND ad.is_admin = 1)
                 OR EXISTS (SELECT 1 FROM hub_members m WHERE m.hub_id = w.hub_id AND m.actor_id = $1
                            AND (m.role IN ('triager', 'operator') OR w.policy_scope = 'members'))
              ORDER BY a.id",
        )
        .bind(id)
        .fetch_all(app.db.reader())
        .await
        .expect("expected");
        let mut tx = app.db.begin_as(Some(id)).await.expect("begin as");
        let seen: Vec<i64> =
            sqlx::query_scalar("SELECT id FROM annotations ORDER BY id").fetch_all(&mut *tx).await.expect("as actor");
        tx.rollback().await.expect("rollback");
        assert_eq!(seen, expected, "{handle}");
        if handle == "ali" {
            let all = app.scalar("SELECT COUNT(*) FROM annotations").await;
            assert!(!seen.is_empty() && (seen.len() as i64) < all, "the policy filters");
        }
    }
    let mut tx = app.db.begin_as(None).await.expect("anonymous");
    let seen: Vec<i64> =
        sqlx::query_scalar("SELECT id FROM annotations ORDER BY id").fetch_all(&mut *tx).await.expect("anon");
    let public: Vec<i64> = sqlx::query_scalar(
        "SELECT a.id FROM annotations a JOIN widgets w ON w.id = a.widget_id WHERE w.policy_scope = 'public' ORDER BY a.id",
    )
    .fetch_all(app.db.reader())
    .await
    .expect("public");
    assert_eq!(seen, public, "anonymous");
    tx.rollback().await.expect("rollback");
});
