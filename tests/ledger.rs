//! The governance ledger: the candidate lifecycle through HTTP, who may propose and decide,
//! evidence, the append-only hash chain (database triggers, verification, the CLI), the
//! exports re-verified by an independent implementation, promotion in one transaction, and
//! the live regions.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed step is a failed test

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::TestApp;
use ihf::db::Backend;
use ihf::db::candidates::{self, Decision, Status};
use sha2::{Digest, Sha256};

// ---- helpers ----------------------------------------------------------------------------------

struct Demo {
    logins: HashMap<String, String>,
    checkout: i64,
    onboarding: i64,
}

async fn demo(app: &TestApp) -> Demo {
    let logins = app.seed_demo().await;
    Demo {
        logins,
        checkout: app.scalar("SELECT id FROM hubs WHERE slug = 'checkout'").await,
        onboarding: app.scalar("SELECT id FROM hubs WHERE slug = 'onboarding'").await,
    }
}

impl Demo {
    async fn client(&self, app: &TestApp, handle: &str) -> reqwest::Client {
        app.signed_in(handle, &self.logins[handle]).await
    }
}

async fn actor(app: &TestApp, handle: &str) -> i64 {
    ihf::db::actors::by_handle(&app.db, handle).await.expect("actor").id
}

/// A new candidate proposed by tomas in `hub`, straight through the store.
async fn new_candidate(app: &TestApp, hub: i64, title: &str) -> i64 {
    let tomas = actor(app, "tomas").await;
    let mut tx = app.db.writer().begin().await.expect("begin");
    let id = candidates::propose(&mut tx, hub, tomas, title, "Because customers asked.", &[]).await.expect("propose");
    tx.commit().await.expect("commit");
    id
}

/// Moves a proposed candidate along `steps` through the store (olga decides).
async fn walk(app: &TestApp, hub: i64, id: i64, steps: &[Status]) {
    let olga = actor(app, "olga").await;
    let mut from = Status::Proposed;
    for to in steps {
        let mut tx = app.db.writer().begin().await.expect("begin");
        let decision =
            Decision { hub_id: hub, candidate_id: id, actor_id: olga, from, to: *to, rationale: "set up by the test" };
        candidates::decide(&mut tx, &decision).await.expect("decide");
        tx.commit().await.expect("commit");
        from = *to;
    }
}

async fn status_of(app: &TestApp, id: i64) -> String {
    sqlx::query_scalar("SELECT status FROM requirement_candidates WHERE id = $1")
        .bind(id)
        .fetch_one(app.db.reader())
        .await
        .expect("status")
}

/// Everything a refused request must leave alone.
async fn snapshot(app: &TestApp) -> Vec<i64> {
    let mut out = Vec::new();
    for sql in [
        "SELECT COUNT(*) FROM requirement_candidates",
        "SELECT CAST(COALESCE(SUM(version), 0) AS BIGINT) FROM requirement_candidates",
        "SELECT COUNT(*) FROM candidate_evidence",
        "SELECT COUNT(*) FROM candidate_evidence WHERE removed_at IS NOT NULL",
        "SELECT COUNT(*) FROM ledger_entries",
        "SELECT CAST(COALESCE(SUM(version), 0) AS BIGINT) FROM annotations",
    ] {
        out.push(app.scalar(sql).await);
    }
    out
}

/// Posts a form with the client's CSRF token, as a plain browser form (or as htmx).
async fn post(app: &TestApp, client: &reqwest::Client, path: &str, form: &[(&str, &str)], htmx: bool) -> (u16, String) {
    let csrf = app.csrf(client, "/").await;
    let mut fields: Vec<(&str, &str)> = form.to_vec();
    fields.push(("csrf_token", &csrf));
    let mut request = client.post(app.url(path)).form(&fields);
    if htmx {
        request = request.header("HX-Request", "true");
    }
    let response = request.send().await.expect("POST");
    let status = response.status().as_u16();
    (status, response.text().await.expect("body"))
}

async fn decide(app: &TestApp, client: &reqwest::Client, id: i64, to: &str, rationale: &str) -> (u16, String) {
    post(app, client, &format!("/hubs/checkout/candidates/{id}/decide"), &[("to", to), ("rationale", rationale)], false)
        .await
}

async fn last_entry(app: &TestApp, id: i64) -> (String, String, String) {
    sqlx::query_as(
        "SELECT action, rationale, detail FROM ledger_entries WHERE candidate_id = $1 ORDER BY seq DESC LIMIT 1",
    )
    .bind(id)
    .fetch_one(app.db.reader())
    .await
    .expect("entry")
}

/// A live annotation of `hub` that is evidence of nothing yet.
async fn free_annotation(app: &TestApp, hub: i64) -> i64 {
    sqlx::query_scalar(
        "SELECT a.id FROM annotations a WHERE a.hub_id = $1 AND a.deleted_at IS NULL AND a.status = 'triaged'
           AND NOT EXISTS (SELECT 1 FROM candidate_evidence e WHERE e.annotation_id = a.id)
         ORDER BY a.id LIMIT 1",
    )
    .bind(hub)
    .fetch_one(app.db.reader())
    .await
    .expect("a free annotation")
}

async fn disable_append_only(app: &TestApp) {
    let sql = match app.backend {
        Backend::Sqlite => "DROP TRIGGER ledger_entries_no_update",
        Backend::Postgres => "ALTER TABLE ledger_entries DISABLE TRIGGER ledger_entries_no_update",
    };
    sqlx::query(sql).execute(app.db.writer()).await.expect("drop the trigger");
}

async fn tamper(app: &TestApp, hub: i64, seq: i64) {
    disable_append_only(app).await;
    let done = sqlx::query(
        "UPDATE ledger_entries SET rationale = rationale || ' (quietly amended)' WHERE hub_id = $1 AND seq = $2",
    )
    .bind(hub)
    .bind(seq)
    .execute(app.db.writer())
    .await
    .expect("tamper");
    assert_eq!(done.rows_affected(), 1);
}

// ---- the lifecycle ----------------------------------------------------------------------------

dual_test!(every_allowed_transition_is_recorded, |app| {
    let demo = demo(&app).await;
    let olga = demo.client(&app, "olga").await;
    let first = new_candidate(&app, demo.checkout, "Show delivery dates").await;
    let second = new_candidate(&app, demo.checkout, "Remember the last card").await;
    // Together these walk every allowed step: p→a, a→i, p→r, r→p, p→d, d→p, a→p.
    let plan = [
        (first, "accepted"),
        (first, "implemented"),
        (second, "rejected"),
        (second, "proposed"),
        (second, "deferred"),
        (second, "proposed"),
        (second, "accepted"),
        (second, "proposed"),
    ];
    for (step, (id, to)) in plan.into_iter().enumerate() {
        let from = status_of(&app, id).await;
        let before = app.scalar("SELECT COUNT(*) FROM ledger_entries").await;
        let rationale = format!("step {step}: {from} to {to}");
        // Plain forms redirect back to the page; htmx gets the fresh content.
        let htmx = step % 2 == 1;
        let (status, body) = post(
            &app,
            &olga,
            &format!("/hubs/checkout/candidates/{id}/decide"),
            &[("to", to), ("from", &from), ("rationale", &rationale)],
            htmx,
        )
        .await;
        assert_eq!(status, if htmx { 200 } else { 303 }, "{from} -> {to}: {body}");
        if htmx {
            assert!(body.contains("region-candidate-history") && !body.contains("<html"), "{from} -> {to}");
        }
        assert_eq!(status_of(&app, id).await, to);
        assert_eq!(app.scalar("SELECT COUNT(*) FROM ledger_entries").await, before + 1);
        let (action, stored, detail) = last_entry(&app, id).await;
        assert_eq!(action, "status_changed");
        assert_eq!(stored, rationale);
        let detail: serde_json::Value = serde_json::from_str(&detail).expect("detail");
        assert_eq!((detail["from"].as_str(), detail["to"].as_str()), (Some(from.as_str()), Some(to)));
    }
    // The history shows each decision in words.
    let page = olga.get(app.url(&format!("/hubs/checkout/candidates/{second}"))).send().await.expect("page");
    let html = page.text().await.expect("body");
    for words in [
        "Rejected (proposed → rejected)",
        "Reopened (rejected → proposed)",
        "Deferred",
        "Reopened (accepted → proposed)",
    ] {
        assert!(html.contains(words), "{words}");
    }
    let report = ihf::db::ledger::verify_all(&app.db, None).await.expect("verify");
    assert!(report.ok, "{:?}", report.lines);
});

dual_test!(every_refused_transition_is_a_clear_422, |app| {
    let demo = demo(&app).await;
    let olga = demo.client(&app, "olga").await;
    let reach: [(Status, &[Status]); 5] = [
        (Status::Proposed, &[]),
        (Status::Accepted, &[Status::Accepted]),
        (Status::Rejected, &[Status::Rejected]),
        (Status::Deferred, &[Status::Deferred]),
        (Status::Implemented, &[Status::Accepted, Status::Implemented]),
    ];
    for (from, steps) in reach {
        let id = new_candidate(&app, demo.checkout, &format!("Refusals from {}", from.as_str())).await;
        walk(&app, demo.checkout, id, steps).await;
        for to in Status::ALL {
            let Err(message) = from.check(to) else { continue };
            let before = snapshot(&app).await;
            let rationale = format!("I want {} now", to.as_str());
            let (status, body) = decide(&app, &olga, id, to.as_str(), &rationale).await;
            assert_eq!(status, 422, "{} -> {}", from.as_str(), to.as_str());
            let escaped = message.replace('\'', "&#39;");
            assert!(body.contains(&escaped), "{} -> {}: the message {message:?} is shown", from.as_str(), to.as_str());
            if from != Status::Implemented {
                assert!(body.contains(&rationale), "the typed rationale is kept");
            }
            assert_eq!(status_of(&app, id).await, from.as_str());
            assert_eq!(snapshot(&app).await, before, "nothing written");
        }
    }
    // An unknown decision is a mistake of the form too.
    let id = new_candidate(&app, demo.checkout, "Unknown decisions").await;
    let (status, body) = decide(&app, &olga, id, "approved", "why not").await;
    assert_eq!(status, 422);
    assert!(body.contains("Choose a decision."));
});

dual_test!(a_decision_needs_a_rationale, |app| {
    let demo = demo(&app).await;
    let olga = demo.client(&app, "olga").await;
    let id = new_candidate(&app, demo.checkout, "Rationale required").await;
    let before = snapshot(&app).await;
    for rationale in ["", "   \n  "] {
        let (status, body) = post(
            &app,
            &olga,
            &format!("/hubs/checkout/candidates/{id}/decide"),
            &[("to", "accepted"), ("rationale", rationale)],
            true,
        )
        .await;
        assert_eq!(status, 422);
        assert!(body.contains("Give a rationale"), "{body}");
        assert!(body.contains("id=\"rationale\"") && body.contains("aria-invalid=\"true\""), "the form is re-rendered");
        assert!(!body.contains("<html"), "htmx gets the fragment");
    }
    assert_eq!(status_of(&app, id).await, "proposed");
    assert_eq!(snapshot(&app).await, before);
    // A decision made meanwhile by someone else is a conflict, not a silent overwrite.
    walk(&app, demo.checkout, id, &[Status::Deferred]).await;
    let (status, _) = post(
        &app,
        &olga,
        &format!("/hubs/checkout/candidates/{id}/decide"),
        &[("to", "accepted"), ("from", "proposed"), ("rationale", "looked fine")],
        false,
    )
    .await;
    assert_eq!(status, 409);
    assert_eq!(status_of(&app, id).await, "deferred");
});

// ---- who may do what --------------------------------------------------------------------------

/// Who tries, the status they must get, the path and the form.
type Attempt<'a> = (&'a reqwest::Client, u16, &'a str, Vec<(&'a str, &'a str)>);

dual_test!(only_operators_decide_and_triagers_propose, |app| {
    let demo = demo(&app).await;
    let id = new_candidate(&app, demo.checkout, "Who decides").await;
    let annotation = free_annotation(&app, demo.checkout).await;
    let annotation = annotation.to_string();
    let anonymous = app.new_client();
    let anna = demo.client(&app, "anna").await; // annotator of checkout
    let tara = demo.client(&app, "tara").await; // triager of onboarding only
    let tomas = demo.client(&app, "tomas").await; // triager of checkout
    let decide_path = format!("/hubs/checkout/candidates/{id}/decide");
    let edit_path = format!("/hubs/checkout/candidates/{id}/edit");
    let attach_path = format!("/hubs/checkout/candidates/{id}/evidence");
    let denied: [Attempt; 11] = [
        (&anonymous, 401, &decide_path, vec![("to", "accepted"), ("rationale", "r")]),
        (&anna, 403, &decide_path, vec![("to", "accepted"), ("rationale", "r")]),
        (&tara, 403, &decide_path, vec![("to", "accepted"), ("rationale", "r")]),
        (&tomas, 403, &decide_path, vec![("to", "accepted"), ("rationale", "r")]),
        (&anonymous, 401, "/hubs/checkout/candidates", vec![("title", "t"), ("statement", "s")]),
        (&anna, 403, "/hubs/checkout/candidates", vec![("title", "t"), ("statement", "s")]),
        (&tara, 403, "/hubs/checkout/candidates", vec![("title", "t"), ("statement", "s")]),
        (&anna, 403, &edit_path, vec![("title", "t"), ("statement", "s")]),
        (&anna, 403, &attach_path, vec![("annotation_id", &annotation)]),
        (&tara, 403, &attach_path, vec![("annotation_id", &annotation)]),
        (
            &anonymous,
            401,
            &format!("/hubs/checkout/candidates/{id}/evidence/{annotation}/remove"),
            vec![("reason", "r")],
        ),
    ];
    for (client, expected, path, form) in denied {
        let before = snapshot(&app).await;
        let (status, _) = post(&app, client, path, &form, false).await;
        assert_eq!(status, expected, "{path} {form:?}");
        assert_eq!(snapshot(&app).await, before, "{path}: nothing written");
    }
    // The pages: members read, others do not.
    assert_eq!(anonymous.get(app.url("/hubs/checkout/ledger")).send().await.expect("get").status(), 401);
    assert_eq!(tara.get(app.url("/hubs/checkout/ledger")).send().await.expect("get").status(), 403);
    let page = anna.get(app.url(&format!("/hubs/checkout/candidates/{id}"))).send().await.expect("get");
    assert_eq!(page.status(), 200);
    let html = page.text().await.expect("body");
    assert!(!html.contains("id=\"decide\"") && !html.contains("Propose a requirement"), "no controls for annotators");

    // A triager proposes and attaches evidence; only an operator decides.
    let (status, _) = post(
        &app,
        &tomas,
        "/hubs/checkout/candidates",
        &[("title", "Split payments"), ("statement", "Let two cards share one order.")],
        false,
    )
    .await;
    assert_eq!(status, 303);
    let proposed: i64 = app.scalar("SELECT MAX(id) FROM requirement_candidates").await;
    let (action, _, _) = last_entry(&app, proposed).await;
    assert_eq!(action, "proposed");
    let (status, _) = post(&app, &tomas, &attach_path, &[("annotation_id", &annotation)], false).await;
    assert_eq!(status, 303);
    let tomas_page = tomas.get(app.url(&format!("/hubs/checkout/candidates/{id}"))).send().await.expect("get");
    assert!(!tomas_page.text().await.expect("body").contains("id=\"decide\""), "triagers see no decision controls");
    let olga = demo.client(&app, "olga").await;
    assert_eq!(decide(&app, &olga, id, "accepted", "Clear demand").await.0, 303);
    let admin = demo.client(&app, "admin").await;
    assert_eq!(decide(&app, &admin, id, "implemented", "Shipped in 4.2").await.0, 303);
    assert_eq!(status_of(&app, id).await, "implemented");
    let _ = demo.onboarding;
});

// ---- editing and evidence ---------------------------------------------------------------------

dual_test!(edits_and_evidence_are_recorded, |app| {
    let demo = demo(&app).await;
    let tomas = demo.client(&app, "tomas").await;
    let id = new_candidate(&app, demo.checkout, "Address lookup").await;
    let edit_path = format!("/hubs/checkout/candidates/{id}/edit");

    // A mistake keeps what was typed.
    let before = snapshot(&app).await;
    let (status, body) =
        post(&app, &tomas, &edit_path, &[("title", "  "), ("statement", "Typed & kept"), ("reason", "why")], false)
            .await;
    assert_eq!(status, 422);
    assert!(body.contains("Give the candidate a title.") && body.contains("Typed &#38; kept"), "{body}");
    assert_eq!(snapshot(&app).await, before);
    let (status, body) = post(
        &app,
        &tomas,
        &edit_path,
        &[("title", "Address lookup"), ("statement", "Because customers asked."), ("reason", "")],
        false,
    )
    .await;
    assert_eq!(status, 422);
    assert!(body.contains("Nothing changed."));
    assert_eq!(snapshot(&app).await, before);

    let (status, _) = post(
        &app,
        &tomas,
        &edit_path,
        &[("title", "Address lookup by postcode"), ("statement", "Because customers asked."), ("reason", "narrower")],
        false,
    )
    .await;
    assert_eq!(status, 303);
    let (action, reason, detail) = last_entry(&app, id).await;
    assert_eq!((action.as_str(), reason.as_str()), ("edited", "narrower"));
    let detail: serde_json::Value = serde_json::from_str(&detail).expect("json");
    assert_eq!(detail["title"]["from"], "Address lookup");
    assert_eq!(detail["title"]["to"], "Address lookup by postcode");
    assert!(detail.get("statement").is_none(), "only what changed");

    // The picker finds feedback of this hub as you type.
    let annotation = free_annotation(&app, demo.checkout).await;
    let body: String = sqlx::query_scalar("SELECT body FROM annotations WHERE id = $1")
        .bind(annotation)
        .fetch_one(app.db.reader())
        .await
        .expect("body");
    // A phrase of its own (the demo's texts about one widget share their words).
    let word: String = body.chars().take(30).collect();
    let found = tomas
        .get(app.url(&format!("/hubs/checkout/candidates/{id}/evidence/search")))
        .query(&[("q", word.as_str())])
        .header("HX-Request", "true")
        .send()
        .await
        .expect("search");
    assert_eq!(found.status(), 200);
    // The demo repeats some texts across widgets: the picker lists one of them at least.
    let found = found.text().await.expect("body");
    assert!(found.contains("id=\"pick-") && found.contains(&word), "found by {word:?}");
    let found = tomas
        .get(app.url(&format!("/hubs/checkout/candidates/{id}/evidence/search?q=%23{annotation}")))
        .send()
        .await
        .expect("search");
    assert!(found.text().await.expect("body").contains(&format!("id=\"pick-{annotation}\"")), "found by #id");

    // Attach: the link, the annotation promoted, the ledger entry.
    let attach = format!("/hubs/checkout/candidates/{id}/evidence");
    let (status, _) = post(&app, &tomas, &attach, &[("annotation_id", &annotation.to_string())], true).await;
    assert_eq!(status, 200);
    let promoted: String = sqlx::query_scalar("SELECT status FROM annotations WHERE id = $1")
        .bind(annotation)
        .fetch_one(app.db.reader())
        .await
        .expect("status");
    assert_eq!(promoted, "promoted");
    let (action, _, detail) = last_entry(&app, id).await;
    assert_eq!(action, "evidence_added");
    assert_eq!(detail, format!("{{\"annotation_id\":{annotation}}}"));
    let page = tomas
        .get(app.url(&format!("/hubs/checkout/candidates/{id}")))
        .send()
        .await
        .expect("page")
        .text()
        .await
        .expect("body");
    assert!(
        page.contains(&format!("id=\"evidence-{annotation}\"")) && page.contains("/hubs/checkout/widgets/"),
        "evidence with its widget link"
    );

    // Attaching twice, or another hub's feedback, is refused and writes nothing.
    let before = snapshot(&app).await;
    let (status, body) = post(&app, &tomas, &attach, &[("annotation_id", &annotation.to_string())], false).await;
    assert_eq!(status, 422);
    assert!(body.contains("evidence of this candidate already"));
    let foreign = free_annotation(&app, demo.onboarding).await;
    let (status, body) = post(&app, &tomas, &attach, &[("annotation_id", &foreign.to_string())], false).await;
    assert_eq!(status, 422);
    assert!(body.contains("not feedback of this hub"));
    assert_eq!(snapshot(&app).await, before);

    // The remove form is offered for active evidence only.
    let page = format!("/hubs/checkout/candidates/{id}");
    let offered = tomas.get(app.url(&format!("{page}?remove={annotation}"))).send().await.expect("get");
    assert!(offered.text().await.expect("body").contains("class=\"remove-form\""));
    let offered = tomas.get(app.url(&format!("{page}?remove={foreign}"))).send().await.expect("get");
    assert!(!offered.text().await.expect("body").contains("class=\"remove-form\""));

    // Removing needs a reason; the link stays, marked removed, and the ledger says why.
    let remove = format!("/hubs/checkout/candidates/{id}/evidence/{annotation}/remove");
    let (status, body) = post(&app, &tomas, &remove, &[("reason", " ")], false).await;
    assert_eq!(status, 422);
    assert!(body.contains("Say why this is no longer evidence"));
    assert_eq!(snapshot(&app).await, before);
    let (status, _) =
        post(&app, &tomas, &remove, &[("reason", "Different problem: card entry, not address")], false).await;
    assert_eq!(status, 303);
    let (removed_at, reason): (Option<i64>, Option<String>) = sqlx::query_as(
        "SELECT removed_at, removed_reason FROM candidate_evidence WHERE candidate_id = $1 AND annotation_id = $2",
    )
    .bind(id)
    .bind(annotation)
    .fetch_one(app.db.reader())
    .await
    .expect("link");
    assert!(removed_at.is_some());
    assert_eq!(reason.as_deref(), Some("Different problem: card entry, not address"));
    let (action, why, _) = last_entry(&app, id).await;
    assert_eq!((action.as_str(), why.as_str()), ("evidence_removed", "Different problem: card entry, not address"));
    let back: String = sqlx::query_scalar("SELECT status FROM annotations WHERE id = $1")
        .bind(annotation)
        .fetch_one(app.db.reader())
        .await
        .expect("status");
    assert_eq!(back, "triaged", "feedback that is evidence of nothing returns to the triaged pile");
    // And it can be attached again.
    let (status, _) = post(&app, &tomas, &attach, &[("annotation_id", &annotation.to_string())], false).await;
    assert_eq!(status, 303);
    let active =
        app.scalar("SELECT COUNT(*) FROM candidate_evidence WHERE removed_at IS NULL AND removed_reason IS NULL").await;
    assert!(active >= 1);
    let report = ihf::db::ledger::verify_all(&app.db, Some("checkout")).await.expect("verify");
    assert!(report.ok, "{:?}", report.lines);
});

// ---- the chain ------------------------------------------------------------------------------

dual_test!(ledger_rows_cannot_be_changed_at_the_database, |app| {
    let demo = demo(&app).await;
    let before = app.scalar("SELECT COUNT(*) FROM ledger_entries").await;
    for sql in [
        "UPDATE ledger_entries SET rationale = 'rewritten' WHERE seq = 1",
        "DELETE FROM ledger_entries WHERE seq = 1",
        "DELETE FROM ledger_entries",
    ] {
        let error = sqlx::query(sql).execute(app.db.writer()).await.expect_err(sql);
        assert!(error.to_string().contains("append-only"), "{sql}: {error}");
    }
    if app.backend == Backend::Postgres {
        let error =
            sqlx::query("TRUNCATE ledger_entries CASCADE").execute(app.db.writer()).await.expect_err("truncate");
        assert!(error.to_string().contains("append-only"), "{error}");
        // The role requests act as has no UPDATE/DELETE privilege at all.
        for sql in ["UPDATE ledger_entries SET rationale = 'x'", "DELETE FROM ledger_entries"] {
            let mut tx = app.db.writer().begin().await.expect("begin");
            sqlx::query("SET LOCAL ROLE ihf_authenticated").execute(&mut *tx).await.expect("role");
            let error = sqlx::query(sql).execute(&mut *tx).await.expect_err(sql);
            assert!(error.to_string().contains("permission denied"), "{sql}: {error}");
        }
    }
    assert_eq!(app.scalar("SELECT COUNT(*) FROM ledger_entries").await, before);
    let rationale: String = sqlx::query_scalar("SELECT rationale FROM ledger_entries WHERE hub_id = $1 AND seq = 1")
        .bind(demo.checkout)
        .fetch_one(app.db.reader())
        .await
        .expect("entry");
    assert_ne!(rationale, "rewritten");
});

dual_test!(verify_points_at_the_tampered_entry, |app| {
    let demo = demo(&app).await;
    let olga = demo.client(&app, "olga").await;
    let report = ihf::db::ledger::verify_all(&app.db, None).await.expect("verify");
    assert!(report.ok);
    assert!(
        report.lines.iter().any(|l| l.starts_with("checkout: ") && l.contains("entries checked, ok")),
        "{:?}",
        report.lines
    );
    let page = olga.get(app.url("/hubs/checkout/ledger")).send().await.expect("page").text().await.expect("body");
    assert!(page.contains("verdict-ok") && page.contains("Checkpoint verified"));

    tamper(&app, demo.checkout, 3).await;
    let report = ihf::db::ledger::verify_all(&app.db, None).await.expect("verify");
    assert!(!report.ok);
    let line = report.lines.iter().find(|l| l.starts_with("checkout: ")).expect("checkout line");
    assert!(line.contains("broken at entry #3") && line.contains("content does not match its hash"), "{line}");
    assert!(report.lines.iter().any(|l| l.starts_with("onboarding: ") && l.contains(", ok")), "other hubs unaffected");
    // The page checks the newest checkpoint and entry, not every entry (tests/transparency.rs
    // shows what it catches); the full walk is `ihf ledger verify`.
});

fn cli(app: &TestApp, args: &[&str]) -> (i32, String) {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_ihf"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("DATABASE_URL", &app.database_url)
        .env("IHF_LOG", "warn")
        .output()
        .expect("run ihf");
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    (output.status.code().unwrap_or(-1), text)
}

dual_test!(cli_verify_reports_ok_and_breaks, |app| {
    let demo = demo(&app).await;
    let entries = {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM ledger_entries WHERE hub_id = $1")
            .bind(demo.checkout)
            .fetch_one(app.db.reader())
            .await
            .expect("count");
        n
    };
    let (code, out) = cli(&app, &["ledger", "verify"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains(&format!("checkout: {entries} entries checked, ok")), "{out}");
    let (code, out) = cli(&app, &["ledger", "verify", "--hub", "checkout"]);
    assert_eq!(code, 0, "{out}");
    assert!(!out.contains("onboarding"), "{out}");
    let (code, out) = cli(&app, &["ledger", "verify", "--hub", "nope"]);
    assert_ne!(code, 0);
    assert!(out.contains("no hub \"nope\""), "{out}");

    tamper(&app, demo.checkout, 5).await;
    let (code, out) = cli(&app, &["ledger", "verify"]);
    assert_ne!(code, 0, "{out}");
    assert!(out.contains("checkout: 5 entries checked, broken at entry #5: content does not match its hash"), "{out}");
    let (code, _) = cli(&app, &["ledger", "verify", "--hub", "onboarding"]);
    assert_eq!(code, 0);
});

// ---- exports, checked by an independent implementation ----------------------------------------

/// JSON string escaping as the README documents it, written out by hand.
fn json_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

struct Row {
    hub_id: i64,
    seq: i64,
    candidate_id: Option<i64>,
    actor_id: i64,
    action: String,
    rationale: String,
    detail: String,
    created_at: i64,
    prev_hash: String,
    hash: String,
}

impl Row {
    fn canonical(&self) -> String {
        format!(
            "{{\"hub_id\":{},\"seq\":{},\"candidate_id\":{},\"actor_id\":{},\"action\":{},\"rationale\":{},\"detail\":{},\"created_at\":{},\"prev_hash\":{}}}",
            self.hub_id,
            self.seq,
            self.candidate_id.map_or("null".to_owned(), |id| id.to_string()),
            self.actor_id,
            json_string(&self.action),
            json_string(&self.rationale),
            json_string(&self.detail),
            self.created_at,
            json_string(&self.prev_hash),
        )
    }
}

/// Walks exported rows as an auditor would: positions, links and hashes.
fn audit(rows: &[Row]) -> Result<usize, i64> {
    let mut prev = "0".repeat(64);
    for (i, row) in rows.iter().enumerate() {
        let hash = hex::encode(Sha256::digest(row.canonical().as_bytes()));
        if row.seq != i as i64 + 1 || row.prev_hash != prev || row.hash != hash {
            return Err(row.seq);
        }
        prev = hash;
    }
    Ok(rows.len())
}

/// A small RFC 4180 reader: quoted fields, doubled quotes, line breaks inside quotes.
fn parse_csv(text: &str) -> Vec<Vec<String>> {
    let (mut rows, mut row, mut field) = (Vec::new(), Vec::new(), String::new());
    let (mut quoted, mut chars) = (false, text.chars().peekable());
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => field.push(c),
            (false, '"') => quoted = true,
            (false, ',') => row.push(std::mem::take(&mut field)),
            (false, '\r') => {}
            (false, '\n') => {
                row.push(std::mem::take(&mut field));
                rows.push(std::mem::take(&mut row));
            }
            (false, c) => field.push(c),
        }
    }
    rows
}

dual_test!(exports_verify_with_an_independent_implementation, |app| {
    let demo = demo(&app).await;
    let tomas = demo.client(&app, "tomas").await;
    // Text that exercises the escaping: quotes, backslash, line breaks, a tab, a control
    // character, commas and non-ASCII.
    let statement = "Customers write \"ASAP\", C:\\path\r\nand\ttabs \u{1} – déjà vu ✓";
    let (status, _) = post(
        &app,
        &tomas,
        "/hubs/checkout/candidates",
        &[("title", "Escapes, \"quotes\" & more"), ("statement", statement)],
        false,
    )
    .await;
    assert_eq!(status, 303);
    let entries = {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM ledger_entries WHERE hub_id = $1")
            .bind(demo.checkout)
            .fetch_one(app.db.reader())
            .await
            .expect("count");
        n as usize
    };

    let response = tomas.get(app.url("/hubs/checkout/ledger.jsonl")).send().await.expect("jsonl");
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"].to_str().unwrap_or_default().starts_with("application/jsonl"));
    let text = response.text().await.expect("body");
    let rows: Vec<Row> = text
        .lines()
        .map(|line| {
            let v: serde_json::Value = serde_json::from_str(line).expect("a JSON line");
            let s = |k: &str| v[k].as_str().expect(k).to_owned();
            let n = |k: &str| v[k].as_i64().expect(k);
            Row {
                hub_id: n("hub_id"),
                seq: n("seq"),
                candidate_id: v["candidate_id"].as_i64(),
                actor_id: n("actor_id"),
                action: s("action"),
                rationale: s("rationale"),
                detail: s("detail"),
                created_at: n("created_at"),
                prev_hash: s("prev_hash"),
                hash: s("hash"),
            }
        })
        .collect();
    assert_eq!(audit(&rows), Ok(entries), "the JSON Lines export verifies");
    assert!(rows.iter().any(|r| r.rationale == statement), "the tricky text made it through");

    let response = tomas.get(app.url("/hubs/checkout/ledger.csv")).send().await.expect("csv");
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"].to_str().unwrap_or_default().starts_with("text/csv"));
    let table = parse_csv(&response.text().await.expect("body"));
    assert_eq!(
        table[0],
        [
            "id",
            "hub_id",
            "seq",
            "candidate_id",
            "actor_id",
            "action",
            "rationale",
            "detail",
            "created_at",
            "prev_hash",
            "hash"
        ]
    );
    let rows: Vec<Row> = table[1..]
        .iter()
        .map(|f| Row {
            hub_id: f[1].parse().expect("hub_id"),
            seq: f[2].parse().expect("seq"),
            candidate_id: if f[3].is_empty() { None } else { Some(f[3].parse().expect("candidate_id")) },
            actor_id: f[4].parse().expect("actor_id"),
            action: f[5].clone(),
            rationale: f[6].clone(),
            detail: f[7].clone(),
            created_at: f[8].parse().expect("created_at"),
            prev_hash: f[9].clone(),
            hash: f[10].clone(),
        })
        .collect();
    assert_eq!(audit(&rows), Ok(entries), "the CSV export verifies");

    // The auditor's check notices tampering too, at the same entry as `ihf ledger verify`.
    tamper(&app, demo.checkout, 2).await;
    let text =
        tomas.get(app.url("/hubs/checkout/ledger.jsonl")).send().await.expect("jsonl").text().await.expect("body");
    let second: serde_json::Value = serde_json::from_str(text.lines().nth(1).expect("line 2")).expect("json");
    assert!(second["rationale"].as_str().unwrap_or_default().ends_with("(quietly amended)"));

    // Members only.
    assert_eq!(app.new_client().get(app.url("/hubs/checkout/ledger.csv")).send().await.expect("get").status(), 401);
    let tara = demo.client(&app, "tara").await;
    assert_eq!(tara.get(app.url("/hubs/checkout/ledger.jsonl")).send().await.expect("get").status(), 403);
});

// ---- promotion in one transaction -----------------------------------------------------------

dual_test!(promotion_writes_candidate_evidence_and_ledger_together, |app| {
    let demo = demo(&app).await;
    let tomas = actor(&app, "tomas").await;
    let ids: Vec<i64> = sqlx::query_scalar(
        "SELECT a.id FROM annotations a WHERE a.hub_id = $1 AND a.status = 'triaged' AND a.deleted_at IS NULL
           AND NOT EXISTS (SELECT 1 FROM candidate_evidence e WHERE e.annotation_id = a.id) ORDER BY a.id LIMIT 2",
    )
    .bind(demo.checkout)
    .fetch_all(app.db.reader())
    .await
    .expect("annotations");
    assert_eq!(ids.len(), 2);
    let foreign = free_annotation(&app, demo.onboarding).await;

    // A failure half-way (the second evidence belongs to another hub): nothing at all remains.
    let before = snapshot(&app).await;
    {
        let mut tx = app.db.writer().begin().await.expect("begin");
        let failed = candidates::propose(&mut tx, demo.checkout, tomas, "Half promoted", "s", &[ids[0], foreign]).await;
        assert!(failed.is_err());
        // Dropped without commit: rolled back.
    }
    assert_eq!(snapshot(&app).await, before);
    assert_eq!(app.scalar("SELECT COUNT(*) FROM requirement_candidates WHERE title = 'Half promoted'").await, 0);
    let status: String = sqlx::query_scalar("SELECT status FROM annotations WHERE id = $1")
        .bind(ids[0])
        .fetch_one(app.db.reader())
        .await
        .expect("status");
    assert_eq!(status, "triaged");

    // A failure of the database itself (an annotation that does not exist): nothing either.
    {
        let mut tx = app.db.writer().begin().await.expect("begin");
        let failed =
            candidates::propose(&mut tx, demo.checkout, tomas, "Half promoted", "s", &[ids[0], 9_999_999]).await;
        assert!(failed.is_err());
    }
    assert_eq!(snapshot(&app).await, before);

    // Success: all three.
    let mut tx = app.db.writer().begin().await.expect("begin");
    let id = candidates::propose(&mut tx, demo.checkout, tomas, "Promoted", "s", &ids).await.expect("propose");
    tx.commit().await.expect("commit");
    let evidence: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM candidate_evidence WHERE candidate_id = $1")
        .bind(id)
        .fetch_one(app.db.reader())
        .await
        .expect("evidence");
    let entries: Vec<String> =
        sqlx::query_scalar("SELECT action FROM ledger_entries WHERE candidate_id = $1 ORDER BY seq")
            .bind(id)
            .fetch_all(app.db.reader())
            .await
            .expect("entries");
    assert_eq!(evidence, 2);
    assert_eq!(entries, ["proposed", "evidence_added", "evidence_added"]);
    assert!(ihf::db::ledger::verify_all(&app.db, None).await.expect("verify").ok);
});

// ---- pages ----------------------------------------------------------------------------------

dual_test!(pages_regions_filters_and_search, |app| {
    let demo = demo(&app).await;
    let olga = demo.client(&app, "olga").await;
    let id = new_candidate(&app, demo.checkout, "Findable by zebracorn").await;
    walk(&app, demo.checkout, id, &[Status::Rejected]).await;
    let paths = [
        "/hubs/checkout/ledger".to_owned(),
        "/hubs/checkout/ledger/list".to_owned(),
        format!("/hubs/checkout/candidates/{id}"),
        format!("/hubs/checkout/candidates/{id}/head"),
        format!("/hubs/checkout/candidates/{id}/evidence"),
        format!("/hubs/checkout/candidates/{id}/history"),
    ];
    for path in &paths {
        for htmx in [false, true] {
            let mut request = olga.get(app.url(path));
            if htmx {
                request = request.header("HX-Request", "true");
            }
            let response = request.send().await.expect("get");
            assert_eq!(response.status(), 200, "{path}");
            assert_eq!(response.headers()["vary"], "HX-Request", "{path}");
            let body = response.text().await.expect("body");
            assert_eq!(body.starts_with("<!doctype html>"), !htmx, "{path} htmx={htmx}");
        }
    }
    // The page names its live regions and its stream.
    let page = olga.get(app.url("/hubs/checkout/ledger")).send().await.expect("get").text().await.expect("body");
    assert!(page.contains("sse-swap=\"ledger\"") && page.contains(&format!("regions=ledger:{}", demo.checkout)));
    let page = olga.get(app.url(&paths[2])).send().await.expect("get").text().await.expect("body");
    for event in ["candidate-head", "candidate-evidence", "candidate-history"] {
        assert!(page.contains(&format!("sse-swap=\"{event}\"")), "{event}");
    }

    // The status filter and the counts.
    let rejected = olga
        .get(app.url("/hubs/checkout/ledger?status=rejected"))
        .send()
        .await
        .expect("get")
        .text()
        .await
        .expect("body");
    assert!(rejected.contains(&format!("id=\"candidate-{id}\"")));
    assert!(rejected.contains(&format!("regions=ledger-rejected:{}", demo.checkout)), "the stream follows the filter");
    let accepted = olga
        .get(app.url("/hubs/checkout/ledger?status=accepted"))
        .send()
        .await
        .expect("get")
        .text()
        .await
        .expect("body");
    assert!(!accepted.contains(&format!("id=\"candidate-{id}\"")));
    let n_rejected = app.scalar("SELECT COUNT(*) FROM requirement_candidates WHERE status = 'rejected' AND hub_id = (SELECT id FROM hubs WHERE slug = 'checkout')").await;
    assert!(rejected.contains(&format!("rejected <span class=\"count\">{n_rejected}</span>")));
    assert_eq!(olga.get(app.url("/hubs/checkout/ledger?status=bogus")).send().await.expect("get").status(), 400);

    // Search: only matching candidates, a snapshot (not live), the URL kept for the browser.
    let found =
        olga.get(app.url("/hubs/checkout/ledger?q=ZEBRACORN")).header("HX-Request", "true").send().await.expect("get");
    let found = found.text().await.expect("body");
    assert!(found.contains(&format!("id=\"candidate-{id}\"")));
    assert_eq!(found.matches("class=\"candidate\"").count(), 1, "only the match");
    assert!(found.contains("searching") && !found.contains("sse-swap=\"ledger\""));
    let wildcard =
        olga.get(app.url("/hubs/checkout/ledger?q=%25")).send().await.expect("get").text().await.expect("body");
    assert!(wildcard.contains("No candidates match"), "LIKE wildcards are escaped");

    // Unknown candidates, and candidates of another hub, are not found.
    assert_eq!(olga.get(app.url("/hubs/checkout/candidates/999999")).send().await.expect("get").status(), 404);
    let other = new_candidate(&app, demo.onboarding, "Elsewhere").await;
    assert_eq!(
        olga.get(app.url(&format!("/hubs/checkout/candidates/{other}"))).send().await.expect("get").status(),
        404
    );
    assert_eq!(
        olga.get(app.url(&format!("/hubs/checkout/candidates/{other}/history"))).send().await.expect("get").status(),
        404
    );
    let (status, _) = decide(&app, &olga, other, "accepted", "wrong hub").await;
    assert_eq!(status, 404);
    assert_eq!(status_of(&app, other).await, "proposed");
});

// ---- live -------------------------------------------------------------------------------------

/// A page's live stream, with the events received and not yet waited for.
struct Stream {
    sse: common::SseClient,
    seen: Vec<common::SseEvent>,
}

impl Stream {
    /// Opens the stream a page names in its `sse-connect`.
    async fn open(app: &TestApp, client: &reqwest::Client, page: &str) -> Self {
        let html = client.get(app.url(page)).send().await.expect("page").text().await.expect("body");
        let url = common::text_attr(&html, "sse-connect=\"").expect("a live page").replace("&#38;", "&");
        Self { sse: common::SseClient::open(app, client, &url, None).await, seen: Vec::new() }
    }

    /// Waits for an event named `name` whose data contains `needle` (or takes one that came
    /// already); returns its data.
    async fn wait_for(&mut self, name: &str, needle: &str) -> String {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(at) = self.seen.iter().position(|e| e.event == name && e.data.contains(needle)) {
                return self.seen.remove(at).data;
            }
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let event = self.sse.next_event(left).await;
            self.seen.push(event.unwrap_or_else(|| panic!("no {name} event with {needle:?} in time")));
        }
    }
}

dual_test!(a_second_viewer_sees_candidates_and_decisions_arrive, |app| {
    let demo = demo(&app).await;
    // The second viewer: an annotator of the hub, only watching.
    let anna = demo.client(&app, "anna").await;
    let mut list = Stream::open(&app, &anna, "/hubs/checkout/ledger").await;

    let tomas = demo.client(&app, "tomas").await;
    let (status, _) = post(
        &app,
        &tomas,
        "/hubs/checkout/candidates",
        &[("title", "Live: saved carts"), ("statement", "Keep carts for a week.")],
        false,
    )
    .await;
    assert_eq!(status, 303);
    let id: i64 = app.scalar("SELECT MAX(id) FROM requirement_candidates").await;
    let data = list.wait_for("ledger", "Live: saved carts").await;
    assert!(data.contains(&format!("id=\"candidate-{id}\"")) && data.contains("Awaiting a decision."));

    let mut history = Stream::open(&app, &anna, &format!("/hubs/checkout/candidates/{id}")).await;
    let olga = demo.client(&app, "olga").await;
    assert_eq!(decide(&app, &olga, id, "accepted", "Everyone loses carts").await.0, 303);
    let data = list.wait_for("ledger", "Everyone loses carts").await;
    assert!(data.contains("Accepted by Olga"), "{data}");
    let data = history.wait_for("candidate-history", "Everyone loses carts").await;
    assert!(data.contains("Accepted (proposed → accepted)"));
    history.wait_for("candidate-head", "data-status=\"accepted\"").await;

    // A candidate in another hub changes nothing on this page.
    new_candidate(&app, demo.onboarding, "Elsewhere entirely").await;
    let stray = list.sse.events_within(Duration::from_millis(600)).await;
    assert!(stray.iter().all(|e| !e.data.contains("Elsewhere entirely")), "{stray:?}");
    assert!(stray.is_empty(), "no event for a write in another hub: {stray:?}");
});
