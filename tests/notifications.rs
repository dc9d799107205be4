//! Notifications (issue #21): each event reaches exactly the right people and nobody else, in
//! the transaction of the change (a rolled-back change notifies nobody); the bell, the page and
//! mark read; digests group per person and hub; one-click unsubscribe works without signing in
//! and only for the person its token names; and mail through a real SMTP receiver started here
//! (headers, text and HTML parts, links), surviving a restart, never sent twice by two
//! instances on one database. Every test runs on SQLite and PostgreSQL.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed step is a failed test

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::TestApp;
use ihf::db::annotations::{self, NewAnnotation};
use ihf::db::{candidates, now_ms, widgets};
use ihf::triage::{self, Change, Promotion, Target};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

/// A hub with an owner's public and private widgets, and the people around them.
struct World {
    hub_id: i64,
    category_id: i64,
    public_widget: i64,
    private_widget: i64,
    owner: i64,
    ana: i64,
    bob: i64,
    triager: i64,
    operator: i64,
    outsider: i64,
}

async fn world(app: &TestApp, slug: &str) -> World {
    let hub = ihf::db::hubs::create(&app.db, slug, slug, "").await.expect("hub");
    let owner = app.person(&format!("{slug}-owner"), &[(slug, "annotator")]).await;
    let ana = app.person(&format!("{slug}-ana"), &[(slug, "annotator")]).await;
    let bob = app.person(&format!("{slug}-bob"), &[(slug, "annotator")]).await;
    let triager = app.person(&format!("{slug}-tri"), &[(slug, "triager")]).await;
    let operator = app.person(&format!("{slug}-op"), &[(slug, "operator")]).await;
    let outsider = app.person(&format!("{slug}-out"), &[]).await;
    let widget = |wslug: &'static str, scope: &'static str| widgets::NewWidget {
        hub_id: hub.id,
        slug: wslug,
        name: wslug,
        description: "",
        owner_id: Some(owner),
        policy_scope: scope,
        allowed_origins: "",
    };
    let public_widget = widgets::create(&app.db, &widget("checkout", "public")).await.expect("widget").id;
    let private_widget = widgets::create(&app.db, &widget("payroll", "private")).await.expect("widget").id;
    let category_id: i64 = sqlx::query_scalar("SELECT id FROM categories WHERE hub_id = $1 AND slug = 'friction'")
        .bind(hub.id)
        .fetch_one(app.db.reader())
        .await
        .expect("category");
    World { hub_id: hub.id, category_id, public_widget, private_widget, owner, ana, bob, triager, operator, outsider }
}

async fn annotate(app: &TestApp, w: &World, widget_id: i64, actor_id: i64, body: &str) -> i64 {
    let new = NewAnnotation {
        hub_id: w.hub_id,
        widget_id,
        actor_id,
        body,
        category_id: w.category_id,
        status: ihf::db::annotations::AnnotationStatus::New,
        created_at: now_ms(),
        idempotency_key: None,
    };
    annotations::create(&app.db, &new).await.expect("annotation")
}

async fn version(app: &TestApp, id: i64) -> i64 {
    sqlx::query_scalar("SELECT version FROM annotations WHERE id = $1")
        .bind(id)
        .fetch_one(app.db.reader())
        .await
        .expect("version")
}

async fn triage(app: &TestApp, w: &World, id: i64, change: Change) {
    let target = Target { id, version: version(app, id).await };
    triage::apply(&app.db, w.hub_id, w.triager, &[(target, change)]).await.expect("triage");
}

/// Every notification as (recipient, kind, annotation, detail), in order.
async fn all(app: &TestApp) -> Vec<(i64, String, Option<i64>, String)> {
    sqlx::query_as("SELECT recipient_id, kind, annotation_id, detail FROM notifications ORDER BY id")
        .fetch_all(app.db.reader())
        .await
        .expect("notifications")
}

async fn since(app: &TestApp, before: usize) -> Vec<(i64, String, Option<i64>, String)> {
    all(app).await.into_iter().skip(before).collect()
}

async fn set_email(app: &TestApp, actor_id: i64, email: &str, mode: &str) {
    ihf::db::notifications::set_email(&app.db, actor_id, Some(email), mode).await.expect("email");
}

dual_test!(each_event_reaches_exactly_the_right_people, |app| {
    let w = world(&app, "loop").await;

    // New feedback: the widget's owner, and only them; not when the owner writes it.
    let a1 = annotate(&app, &w, w.public_widget, w.ana, "the pay button hides under the banner").await;
    assert_eq!(all(&app).await, vec![(w.owner, "new_feedback".into(), Some(a1), String::new())]);
    annotate(&app, &w, w.public_widget, w.owner, "my own note").await;
    assert_eq!(all(&app).await.len(), 1, "an owner is not told of their own feedback");
    // A private widget's feedback reaches its owner (who reads its inbox) and nobody else.
    let p1 = annotate(&app, &w, w.private_widget, w.bob, "salary field is wrong").await;
    assert_eq!(since(&app, 1).await, vec![(w.owner, "new_feedback".into(), Some(p1), String::new())]);

    // Triaged, dismissed with the reason, duplicate: the author only.
    let n = all(&app).await.len();
    triage(&app, &w, a1, Change::Triage).await;
    assert_eq!(since(&app, n).await, vec![(w.ana, "triaged".into(), Some(a1), String::new())]);
    let a2 = annotate(&app, &w, w.public_widget, w.ana, "second thought").await;
    let n = all(&app).await.len();
    triage(&app, &w, a2, Change::Dismiss { reason: "wont-fix".into() }).await;
    assert_eq!(since(&app, n).await, vec![(w.ana, "dismissed".into(), Some(a2), "wont-fix".into())]);
    let b1 = annotate(&app, &w, w.public_widget, w.bob, "same banner problem").await;
    let n = all(&app).await.len();
    triage(&app, &w, b1, Change::Duplicate { of: a1 }).await;
    assert_eq!(since(&app, n).await, vec![(w.bob, "duplicate".into(), Some(b1), a1.to_string())]);
    // Recategorizing is no event; reopening neither.
    let n = all(&app).await.len();
    triage(&app, &w, a2, Change::Reopen).await;
    assert_eq!(all(&app).await.len(), n);

    // A triager's own annotation triaged by themselves notifies nobody.
    let t1 = annotate(&app, &w, w.public_widget, w.triager, "triager's note").await;
    let n = all(&app).await.len();
    triage(&app, &w, t1, Change::Triage).await;
    assert_eq!(all(&app).await.len(), n, "nobody is told of what they did themselves");

    // Promoted: the author, with the candidate's title.
    let target = Target { id: a1, version: version(&app, a1).await };
    let promotion = Promotion::New { title: "Move the banner", statement: "It hides the pay button" };
    let applied = triage::promote(&app.db, w.hub_id, w.triager, &target, &promotion).await.expect("promote");
    let candidate = applied.candidate.expect("candidate");
    let fresh = since(&app, n).await;
    assert_eq!(fresh, vec![(w.ana, "promoted".into(), Some(a1), "Move the banner".into())]);

    // Decided: the authors of its evidence (once each), with the rationale; nobody else.
    let n = all(&app).await.len();
    let p1_target = Target { id: p1, version: version(&app, p1).await };
    let to_existing = Promotion::Existing { candidate_id: candidate };
    triage::promote(&app.db, w.hub_id, w.triager, &p1_target, &to_existing).await.expect("promote private");
    assert_eq!(since(&app, n).await, vec![(w.bob, "promoted".into(), Some(p1), "Move the banner".into())]);
    let n = all(&app).await.len();
    let mut tx = app.db.begin_write().await.unwrap();
    let decision = candidates::Decision {
        hub_id: w.hub_id,
        candidate_id: candidate,
        actor_id: w.operator,
        from: candidates::Status::Proposed,
        to: candidates::Status::Accepted,
        rationale: "Top friction this quarter",
    };
    candidates::decide(&mut tx, &decision).await.expect("decide");
    tx.commit().await.unwrap();
    // Bob once, though he wrote evidence (p1) and supports a1 (his duplicate's support moved there).
    let mut decided: Vec<_> = since(&app, n).await.into_iter().map(|(r, k, _, d)| (r, k, d)).collect();
    decided.sort();
    let mut expected = vec![
        (w.ana, "candidate_accepted".to_owned(), "Top friction this quarter".to_owned()),
        (w.bob, "candidate_accepted".to_owned(), "Top friction this quarter".to_owned()),
    ];
    expected.sort();
    assert_eq!(decided, expected);

    // Nobody outside got anything, and the staff who acted got nothing of their own acts.
    let everyone = all(&app).await;
    for nobody in [w.outsider, w.triager, w.operator] {
        assert!(everyone.iter().all(|(r, ..)| *r != nobody), "{nobody} was notified: {everyone:?}");
    }

    // A change that rolls back notifies nobody: the second change of the batch is stale.
    let a3 = annotate(&app, &w, w.public_widget, w.ana, "third").await;
    let n = all(&app).await.len();
    let batch = [
        (Target { id: a3, version: version(&app, a3).await }, Change::Triage),
        (Target { id: a2, version: 999 }, Change::Triage),
    ];
    assert!(triage::apply(&app.db, w.hub_id, w.triager, &batch).await.is_err());
    assert_eq!(all(&app).await.len(), n, "a rolled-back change left a notification");
    let mut tx = app.db.begin_write().await.unwrap();
    let reject = candidates::Decision {
        from: candidates::Status::Accepted,
        to: candidates::Status::Implemented,
        rationale: "shipped",
        ..decision
    };
    candidates::decide(&mut tx, &reject).await.expect("decide");
    tx.rollback().await.unwrap();
    assert_eq!(all(&app).await.len(), n, "a rolled-back decision left a notification");
});

dual_test!(the_bell_the_page_and_mark_read, |app| {
    let w = world(&app, "bell").await;
    let a1 = annotate(&app, &w, w.public_widget, w.ana, "first").await;
    annotate(&app, &w, w.public_widget, w.ana, "second").await;
    let owner = app.signed_in("bell-owner", common::PASSWORD).await;
    let page = owner.get(app.url("/hubs/bell")).send().await.unwrap().text().await.unwrap();
    assert!(page.contains(r#"data-unread="2""#), "the bell shows 2: {page}");
    assert!(page.contains(&format!("bell:{}", w.owner)), "the bell rides on the page's live stream");
    let list = owner.get(app.url("/notifications")).send().await.unwrap().text().await.unwrap();
    assert!(list.contains("bell-ana left feedback on checkout"), "{list}");
    assert!(list.contains(&format!("/hubs/bell/widgets/checkout/annotations/{a1}")), "links to the item");
    // Others see none of it; anonymous visitors are sent to sign in.
    let ana = app.signed_in("bell-ana", common::PASSWORD).await;
    let theirs = ana.get(app.url("/notifications")).send().await.unwrap().text().await.unwrap();
    assert!(theirs.contains("notifications-empty"));
    assert_ne!(app.new_client().get(app.url("/notifications")).send().await.unwrap().status(), 200);

    let ids: Vec<i64> = sqlx::query_scalar("SELECT id FROM notifications WHERE recipient_id = $1 ORDER BY id")
        .bind(w.owner)
        .fetch_all(app.db.reader())
        .await
        .unwrap();
    // Someone else cannot mark them read.
    let csrf = app.csrf(&ana, "/notifications").await;
    let refused =
        ana.post(app.url(&format!("/notifications/{}/read", ids[0]))).form(&[("csrf_token", &csrf)]).send().await;
    assert_eq!(refused.unwrap().status(), 404);
    let csrf = app.csrf(&owner, "/notifications").await;
    let one = owner.post(app.url(&format!("/notifications/{}/read", ids[0]))).form(&[("csrf_token", &csrf)]).send();
    assert_eq!(one.await.unwrap().status(), 303);
    assert_eq!(ihf::db::notifications::unread_count(&app.db, w.owner).await.unwrap(), 1);
    let all = owner.post(app.url("/notifications/read-all")).form(&[("csrf_token", &csrf)]).send();
    assert_eq!(all.await.unwrap().status(), 303);
    assert_eq!(ihf::db::notifications::unread_count(&app.db, w.owner).await.unwrap(), 0);
    let page = owner.get(app.url("/hubs/bell")).send().await.unwrap().text().await.unwrap();
    assert!(page.contains(r#"data-unread="0""#));

    // The email settings: bad input is refused with the typed text kept; good input saved.
    let csrf = app.csrf(&owner, "/settings/notifications").await;
    let bad = owner
        .post(app.url("/settings/notifications"))
        .form(&[("csrf_token", csrf.as_str()), ("email", "not-an-address"), ("email_mode", "daily")])
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 422);
    assert!(bad.text().await.unwrap().contains("value=\"not-an-address\""));
    let good = owner
        .post(app.url("/settings/notifications"))
        .form(&[("csrf_token", csrf.as_str()), ("email", "owner@example.com"), ("email_mode", "daily")])
        .send()
        .await
        .unwrap();
    assert_eq!(good.status(), 200);
    let saved = ihf::db::notifications::email_settings(&app.db, w.owner).await.unwrap();
    assert_eq!((saved.email.as_deref(), saved.email_mode.as_str()), (Some("owner@example.com"), "daily"));
});

dual_test!(the_bell_is_a_live_region_of_its_own_person, |app| {
    let w = world(&app, "live").await;
    let owner = app.signed_in("live-owner", common::PASSWORD).await;
    let mut stream = common::SseClient::open(&app, &owner, &format!("/live?regions=bell:{}", w.owner), None).await;
    // Drain the hello and the first state.
    let _ = stream.events_within(Duration::from_millis(500)).await;
    annotate(&app, &w, w.public_widget, w.ana, "live one").await;
    let mut got = None;
    for _ in 0..20 {
        if let Some(event) = stream.next_event(Duration::from_secs(1)).await
            && event.event == "bell"
        {
            got = Some(event.data);
            break;
        }
    }
    let html = got.expect("a bell update");
    assert!(html.contains(r#"data-unread="1""#), "{html}");
    // Someone else's bell is refused.
    let ana = app.signed_in("live-ana", common::PASSWORD).await;
    let refused = ana.get(app.url(&format!("/live?regions=bell:{}", w.owner))).send().await.unwrap();
    assert_ne!(refused.status(), 200);
});

dual_test!(digests_group_per_person_and_hub, |app| {
    let w = world(&app, "dg").await;
    let other = world(&app, "dg2").await;
    // ana and bob take the daily digest; the owner of the first hub gets mail at once.
    set_email(&app, w.ana, "ana@example.com", "daily").await;
    set_email(&app, w.bob, "bob@example.com", "daily").await;
    set_email(&app, w.owner, "owner@example.com", "immediate").await;
    // ana is also the owner-side recipient in the second hub: make her its widget's owner.
    sqlx::query("UPDATE widgets SET owner_id = $1 WHERE hub_id = $2")
        .bind(w.ana)
        .bind(other.hub_id)
        .execute(app.db.writer())
        .await
        .unwrap();
    let a1 = annotate(&app, &w, w.public_widget, w.ana, "one").await;
    let a2 = annotate(&app, &w, w.public_widget, w.ana, "two").await;
    let b1 = annotate(&app, &w, w.public_widget, w.bob, "three").await;
    triage(&app, &w, a1, Change::Triage).await;
    triage(&app, &w, a2, Change::Dismiss { reason: "wont-fix".into() }).await;
    triage(&app, &w, b1, Change::Triage).await;
    annotate(&app, &other, other.public_widget, other.bob, "in the other hub").await;

    // The owner's three notifications went out as three immediate mails, none in a digest.
    let outbox = ihf::db::notifications::outbox(&app.db).await.unwrap();
    let immediate: Vec<_> = outbox.iter().filter(|m| m.kind == "immediate").collect();
    assert_eq!(immediate.len(), 3);
    assert!(immediate.iter().all(|m| m.recipient_id == w.owner));

    let now = now_ms();
    let day = ihf::clock::DAY_MS;
    let digests = ihf::db::notifications::gather_digests(&app.db, now, day).await.unwrap();
    assert_eq!(digests.len(), 2, "one digest each for ana and bob");
    let carried = |digest: i64| {
        let db = app.db.clone();
        async move {
            let rows: Vec<(i64, String, i64)> =
                sqlx::query_as("SELECT recipient_id, kind, hub_id FROM notifications WHERE digest_id = $1 ORDER BY id")
                    .bind(digest)
                    .fetch_all(db.reader())
                    .await
                    .unwrap();
            rows
        }
    };
    let outbox = ihf::db::notifications::outbox(&app.db).await.unwrap();
    for digest in &digests {
        let mail = outbox.iter().find(|m| m.id == *digest).unwrap();
        let rows = carried(*digest).await;
        assert!(rows.iter().all(|(r, ..)| *r == mail.recipient_id), "a digest carries only its person's");
        let expected: Vec<(i64, String, i64)> = if mail.recipient_id == w.ana {
            vec![
                (w.ana, "triaged".into(), w.hub_id),
                (w.ana, "dismissed".into(), w.hub_id),
                (w.ana, "new_feedback".into(), other.hub_id),
            ]
        } else {
            assert_eq!(mail.recipient_id, w.bob);
            vec![(w.bob, "triaged".into(), w.hub_id)]
        };
        assert_eq!(rows, expected);
    }
    // Within the period nothing more; the owner's notifications never join a digest.
    assert!(ihf::db::notifications::gather_digests(&app.db, now + 1000, day).await.unwrap().is_empty());
    let a3 = annotate(&app, &w, w.public_widget, w.ana, "four").await;
    triage(&app, &w, a3, Change::Triage).await;
    assert!(ihf::db::notifications::gather_digests(&app.db, now + 1000, day).await.unwrap().is_empty());
    let next = ihf::db::notifications::gather_digests(&app.db, now + day, day).await.unwrap();
    assert_eq!(next.len(), 1);
    assert_eq!(carried(next[0]).await, vec![(w.ana, "triaged".into(), w.hub_id)]);

    // The digest's text groups by hub, each item with its link.
    let claimed = ihf::db::notifications::claim_due(&app.db, now_ms() + 2 * day, 60_000, 100).await.unwrap();
    let digest = claimed.iter().find(|m| m.recipient_id == w.ana && digests.contains(&m.id)).unwrap();
    let items = ihf::db::notifications::mail_notifications(&app.db, digest).await.unwrap();
    let mail = ihf::notifications::compose("https://ihf.test", b"k", digest.recipient_id, "Ana", &items);
    assert_eq!(mail.subject, "Your IHF digest: 3 notifications");
    let first = mail.text.find("\ndg\n").expect("the first hub's heading");
    let second = mail.text.find("\ndg2\n").expect("the second hub's heading");
    assert!(first < second);
    assert!(mail.text.contains(&format!("https://ihf.test/hubs/dg/widgets/checkout/annotations/{a1}")));
    assert_eq!(mail.html.matches("<h2>").count(), 2);
});

dual_test!(unsubscribe_works_without_signing_in_and_only_for_that_person, |app| {
    let w = world(&app, "un").await;
    set_email(&app, w.ana, "ana@example.com", "immediate").await;
    set_email(&app, w.bob, "bob@example.com", "immediate").await;
    let a1 = annotate(&app, &w, w.public_widget, w.ana, "one").await;
    let b1 = annotate(&app, &w, w.public_widget, w.bob, "two").await;
    triage(&app, &w, a1, Change::Triage).await;
    triage(&app, &w, b1, Change::Triage).await;
    let secret: String = sqlx::query_scalar("SELECT value FROM server_secrets WHERE name = 'master'")
        .fetch_one(app.db.reader())
        .await
        .unwrap();
    let token = ihf::notifications::unsubscribe_token(secret.as_bytes(), w.ana);
    let anonymous = reqwest::Client::new();
    // Opening the link asks first (mail scanners open links): nothing changes.
    let asked = anonymous.get(app.url(&format!("/unsubscribe?t={token}"))).send().await.unwrap();
    assert_eq!(asked.status(), 200);
    assert_eq!(ihf::db::notifications::email_settings(&app.db, w.ana).await.unwrap().email_mode, "immediate");
    // A token for bob made from ana's, or garbage, is refused.
    let forged = token.replacen(&format!("{}.", w.ana), &format!("{}.", w.bob), 1);
    for bad in [forged.as_str(), "", "12", "x.y"] {
        let refused = anonymous
            .post(app.url(&format!("/unsubscribe?t={bad}")))
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body("List-Unsubscribe=One-Click")
            .send()
            .await
            .unwrap();
        assert_eq!(refused.status(), 400, "{bad}");
    }
    // RFC 8058 one-click: a POST without cookies, CSRF token or Origin.
    let done = anonymous
        .post(app.url(&format!("/unsubscribe?t={token}")))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body("List-Unsubscribe=One-Click")
        .send()
        .await
        .unwrap();
    assert_eq!(done.status(), 200);
    assert_eq!(ihf::db::notifications::email_settings(&app.db, w.ana).await.unwrap().email_mode, "off");
    assert_eq!(ihf::db::notifications::email_settings(&app.db, w.bob).await.unwrap().email_mode, "immediate");
    let outbox = ihf::db::notifications::outbox(&app.db).await.unwrap();
    let states =
        |who: i64| outbox.iter().filter(|m| m.recipient_id == who).map(|m| m.state.clone()).collect::<Vec<_>>();
    assert_eq!(states(w.ana), vec!["failed"], "ana's queued mail is given up");
    assert_eq!(states(w.bob), vec!["pending"], "bob's stays");
    // No more mail is queued for ana; the notifications stay in the app.
    let a2 = annotate(&app, &w, w.public_widget, w.ana, "three").await;
    triage(&app, &w, a2, Change::Triage).await;
    let outbox = ihf::db::notifications::outbox(&app.db).await.unwrap();
    assert_eq!(outbox.iter().filter(|m| m.recipient_id == w.ana).count(), 1);
    assert_eq!(ihf::db::notifications::unread_count(&app.db, w.ana).await.unwrap(), 2);
});

/// One mail as the SMTP receiver got it.
#[derive(Debug, Clone)]
struct Received {
    rcpt: Vec<String>,
    data: String,
}

/// A small SMTP server on a random port that takes every mail and keeps it.
async fn smtp_receiver() -> (u16, Arc<Mutex<Vec<Received>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let inbox: Arc<Mutex<Vec<Received>>> = Arc::default();
    let kept = Arc::clone(&inbox);
    tokio::spawn(async move {
        loop {
            let Ok((socket, _)) = listener.accept().await else { return };
            let inbox = Arc::clone(&kept);
            tokio::spawn(async move {
                let (read, mut write) = socket.into_split();
                let mut lines = BufReader::new(read);
                write.write_all(b"220 receiver.test ESMTP\r\n").await.unwrap();
                let mut rcpt = Vec::new();
                loop {
                    let mut line = String::new();
                    if lines.read_line(&mut line).await.unwrap_or(0) == 0 {
                        return;
                    }
                    let command = line.trim_end().to_ascii_uppercase();
                    if command.starts_with("EHLO") || command.starts_with("HELO") {
                        write.write_all(b"250-receiver.test\r\n250 8BITMIME\r\n").await.unwrap();
                    } else if command.starts_with("RCPT TO") {
                        rcpt.push(line.trim_end()[8..].trim().to_owned());
                        write.write_all(b"250 OK\r\n").await.unwrap();
                    } else if command == "DATA" {
                        write.write_all(b"354 go ahead\r\n").await.unwrap();
                        let mut data = String::new();
                        loop {
                            let mut l = String::new();
                            if lines.read_line(&mut l).await.unwrap_or(0) == 0 {
                                return;
                            }
                            if l == ".\r\n" {
                                break;
                            }
                            data.push_str(l.strip_prefix('.').filter(|_| l.starts_with("..")).unwrap_or(&l));
                        }
                        inbox.lock().unwrap().push(Received { rcpt: std::mem::take(&mut rcpt), data });
                        write.write_all(b"250 queued\r\n").await.unwrap();
                    } else if command == "QUIT" {
                        let _ = write.write_all(b"221 bye\r\n").await;
                        return;
                    } else {
                        write.write_all(b"250 OK\r\n").await.unwrap();
                    }
                }
            });
        }
    });
    (port, inbox)
}

/// Waits until `inbox` holds `n` mails (or the time is up) and returns them.
async fn wait_for(inbox: &Arc<Mutex<Vec<Received>>>, n: usize) -> Vec<Received> {
    for _ in 0..200 {
        if inbox.lock().unwrap().len() >= n {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    inbox.lock().unwrap().clone()
}

/// Undoes quoted-printable soft line breaks and `=3D`, enough to read links in a part.
fn unfold(data: &str) -> String {
    data.replace("=\r\n", "").replace("=3D", "=")
}

mod smtp {
    use super::*;

    async fn run(backend: ihf::db::Backend) {
        let (port, inbox) = smtp_receiver().await;
        let smtp_url = format!("smtp://127.0.0.1:{port}");
        let url = smtp_url.clone();
        let app = common::spawn_app_with(backend, move |c: &mut ihf::Config| {
            c.smtp_url = Some(url);
            c.mail_from = "IHF <notify@ihf.test>".into();
            c.public_url = Some("http://ihf.test".into());
        })
        .await;
        let w = world(&app, "mail").await;
        set_email(&app, w.ana, "ana@example.com", "immediate").await;
        let a1 = annotate(&app, &w, w.public_widget, w.ana, "the <b>banner</b> hides the button").await;
        triage(&app, &w, a1, Change::Dismiss { reason: "wont-fix".into() }).await;
        let got = wait_for(&inbox, 1).await;
        assert_eq!(got.len(), 1, "one mail: {got:?}");
        let mail = &got[0];
        assert_eq!(mail.rcpt, vec!["<ana@example.com>"]);
        let data = unfold(&mail.data);
        let headers = &data[..data.find("\r\n\r\n").unwrap()];
        assert!(headers.contains("From: IHF <notify@ihf.test>"), "{headers}");
        assert!(headers.contains("List-Unsubscribe-Post: List-Unsubscribe=One-Click"), "{headers}");
        let line = headers.lines().find(|l| l.starts_with("List-Unsubscribe: ")).expect("List-Unsubscribe");
        let unsubscribe = line.trim_start_matches("List-Unsubscribe: <").trim_end_matches('>').to_owned();
        assert!(unsubscribe.starts_with("http://ihf.test/unsubscribe?t="), "{unsubscribe}");
        assert!(headers.contains("multipart/alternative"), "{headers}");
        assert!(data.contains("Content-Type: text/plain"), "a text part");
        assert!(data.contains("Content-Type: text/html"), "an HTML part");
        let link = format!("http://ihf.test/hubs/mail/widgets/checkout/annotations/{a1}");
        assert!(data.contains(&link), "the link back to the item: {data}");
        assert!(data.contains(&format!("href=\"{link}\"")), "the HTML part links it too");
        assert!(data.contains("&lt;b&gt;banner&lt;/b&gt;"), "the HTML part escapes what people wrote");
        assert!(data.contains("mail-owner dismissed") || data.contains("dismissed your feedback"));
        // The owner has no address: nothing was sent to them.
        assert!(got.iter().all(|m| !m.rcpt.iter().any(|r| r.contains("owner"))));
        let outbox = ihf::db::notifications::outbox(&app.db).await.unwrap();
        assert_eq!(outbox.iter().map(|m| m.state.as_str()).collect::<Vec<_>>(), vec!["sent"]);
        // The unsubscribe link of the mail works as it is, one click, no session.
        let path = unsubscribe.trim_start_matches("http://ihf.test");
        let done = reqwest::Client::new()
            .post(app.url(path))
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body("List-Unsubscribe=One-Click")
            .send()
            .await
            .unwrap();
        assert_eq!(done.status(), 200);
        assert_eq!(ihf::db::notifications::email_settings(&app.db, w.ana).await.unwrap().email_mode, "off");
        app.handle.stop(true).await;
    }

    dual_run!();
}

mod restart_and_two_instances {
    use super::*;

    async fn run(backend: ihf::db::Backend) {
        let (port, inbox) = smtp_receiver().await;
        // First without SMTP: the mails wait in the queue.
        let database_url = common::fresh_database_url(backend).await;
        let first = common::spawn_on(database_url.clone(), backend, |_| {}).await;
        let w = world(&first, "two").await;
        let mut people = Vec::new();
        for i in 0..12 {
            let id = first.person(&format!("two-p{i}"), &[("two", "annotator")]).await;
            set_email(&first, id, &format!("p{i}@example.com"), "immediate").await;
            people.push(id);
        }
        for id in &people {
            let a = annotate(&first, &w, w.public_widget, *id, "please").await;
            triage(&first, &w, a, Change::Triage).await;
        }
        let pending = ihf::db::notifications::outbox(&first.db).await.unwrap();
        assert_eq!(pending.len(), 12);
        assert!(pending.iter().all(|m| m.state == "pending"));
        first.handle.stop(true).await;
        first.db.close().await;
        // Two instances with SMTP on the same database: every mail once, none twice.
        let smtp_url = format!("smtp://127.0.0.1:{port}");
        let (u1, u2) = (smtp_url.clone(), smtp_url.clone());
        let one =
            common::spawn_on(database_url.clone(), backend, move |c: &mut ihf::Config| c.smtp_url = Some(u1)).await;
        let two =
            common::spawn_on(database_url.clone(), backend, move |c: &mut ihf::Config| c.smtp_url = Some(u2)).await;
        let got = wait_for(&inbox, 12).await;
        // Give a double send the time to show up.
        tokio::time::sleep(Duration::from_millis(800)).await;
        let got = if inbox.lock().unwrap().len() > got.len() { inbox.lock().unwrap().clone() } else { got };
        assert_eq!(got.len(), 12, "12 mails, none twice");
        let mut ids: Vec<String> = got
            .iter()
            .map(|m| m.data.lines().find(|l| l.to_ascii_lowercase().starts_with("message-id:")).unwrap().to_owned())
            .collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), 12, "twelve distinct mails");
        let mut rcpts: Vec<String> = got.iter().flat_map(|m| m.rcpt.clone()).collect();
        rcpts.sort();
        rcpts.dedup();
        assert_eq!(rcpts.len(), 12, "each person got theirs");
        let outbox = ihf::db::notifications::outbox(&one.db).await.unwrap();
        assert!(outbox.iter().all(|m| m.state == "sent" && m.attempts == 1), "{outbox:?}");
        one.handle.stop(true).await;
        two.handle.stop(true).await;
    }

    dual_run!();
}

/// A host site's sign-in token with an `email` claim (HS256, signed with the widget's secret).
fn host_token_with_email(secret: &str, embed_key: &str, sub: &str, email: &str) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let header = b64.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    let claims = serde_json::json!({
        "sub": sub, "name": "Jamie", "aud": embed_key, "email": email,
        "exp": now_ms() / 1000 + 300,
    });
    let payload = b64.encode(claims.to_string());
    let signed = format!("{header}.{payload}");
    let mac = ihf::crypto::hmac_sha256(secret.as_bytes(), signed.as_bytes());
    format!("{signed}.{}", b64.encode(mac))
}

dual_test!(embed_visitors_with_an_email_claim_opt_in_inside_the_embed, |app| {
    let w = world(&app, "em").await;
    let (key, secret): (String, String) = sqlx::query_as("SELECT embed_key, embed_secret FROM widgets WHERE id = $1")
        .bind(w.public_widget)
        .fetch_one(app.db.reader())
        .await
        .unwrap();
    let token = host_token_with_email(&secret, &key, "cust-1", "Jamie@Shop.example");
    let client = app.new_client();
    let page = client.get(app.url(&format!("/embed/{key}?token={token}"))).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let page = page.text().await.unwrap();
    assert!(page.contains("id=\"embed-email\""), "the opt-in form: {page}");
    assert!(page.contains("Jamie@shop.example"));
    let form = common::section(&page, "embed-email", "</form>").expect("the form");
    assert!(!form.contains(" checked>"), "mail is off until the visitor opts in: {form}");
    let (visitor, email, mode): (i64, Option<String>, String) =
        sqlx::query_as("SELECT id, email, email_mode FROM actors WHERE external_ref = $1")
            .bind(format!("host:{}:cust-1", w.public_widget))
            .fetch_one(app.db.reader())
            .await
            .unwrap();
    assert_eq!((email.as_deref(), mode.as_str()), (Some("Jamie@shop.example"), "off"));
    // Before opting in: the notification is in the app only.
    let a1 = annotate(&app, &w, w.public_widget, visitor, "from the shop").await;
    triage(&app, &w, a1, Change::Triage).await;
    let queued = |app: &TestApp| {
        let db = app.db.clone();
        async move {
            ihf::db::notifications::outbox(&db).await.unwrap().into_iter().filter(|m| m.recipient_id == visitor).count()
        }
    };
    assert_eq!(queued(&app).await, 0);
    // Opting in inside the embed (the visitor token the page hands out).
    let vt = common::text_attr(&page, "data-visitor-token=\"").unwrap();
    let done =
        client.post(app.url(&format!("/embed/{key}/email?vt={vt}"))).form(&[("notify", "1")]).send().await.unwrap();
    assert_eq!(done.status(), 200);
    let form = done.text().await.unwrap();
    assert!(form.contains("id=\"embed-email\"") && form.contains(" checked>"), "{form}");
    let a2 = annotate(&app, &w, w.public_widget, visitor, "again").await;
    triage(&app, &w, a2, Change::Triage).await;
    assert_eq!(queued(&app).await, 1, "opted in: the next notification is mailed");
    // An anonymous visitor has nothing to opt in with.
    let anonymous = common::text_attr(
        &app.new_client().get(app.url(&format!("/embed/{key}"))).send().await.unwrap().text().await.unwrap(),
        "data-visitor-token=\"",
    )
    .unwrap();
    let refused = app
        .new_client()
        .post(app.url(&format!("/embed/{key}/email?vt={anonymous}")))
        .form(&[("notify", "1")])
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 403);
});

async fn reply(app: &TestApp, annotation_id: i64, actor_id: i64, body: &str, internal: bool) {
    let body = annotations::AnnotationBody::parse(body).unwrap();
    let new = ihf::db::replies::NewReply { annotation_id, actor_id, body: &body, internal };
    ihf::db::replies::create(&app.db, &new).await.expect("reply");
}

dual_test!(replies_and_mentions_reach_exactly_who_may_read_them, |app| {
    let w = world(&app, "rp").await;
    // Ana's feedback on the private widget: she reads it, as do staff and the owner.
    let a1 = annotate(&app, &w, w.private_widget, w.ana, "the salary field").await;
    let n = all(&app).await.len();
    // A reply by the triager that mentions the operator (staff) and bob (not staff).
    reply(&app, a1, w.triager, "Thanks! @rp-op please look; cc @rp-bob", false).await;
    let mut fresh = since(&app, n).await.into_iter().map(|(r, k, a, _)| (r, k, a)).collect::<Vec<_>>();
    fresh.sort();
    let mut expected = vec![(w.ana, "replied".to_owned(), Some(a1)), (w.operator, "mentioned".to_owned(), Some(a1))];
    expected.sort();
    assert_eq!(fresh, expected, "bob cannot read a private annotation: no mention for him");
    // An internal reply: staff only. Ana (no staff) hears nothing; the mentioned operator does.
    let n = all(&app).await.len();
    reply(&app, a1, w.triager, "internal: @rp-op is this a duplicate?", true).await;
    let fresh: Vec<_> = since(&app, n).await.into_iter().map(|(r, k, ..)| (r, k)).collect();
    assert_eq!(fresh, vec![(w.operator, "mentioned".to_owned())]);
    // The author answering her own feedback: nobody is told of their own reply; a mentioned
    // triager is; a mention of oneself or of the annotation's author adds nothing.
    let n = all(&app).await.len();
    reply(&app, a1, w.ana, "@rp-tri here is a screenshot, @rp-ana", false).await;
    let fresh: Vec<_> = since(&app, n).await.into_iter().map(|(r, k, ..)| (r, k)).collect();
    assert_eq!(fresh, vec![(w.triager, "mentioned".to_owned())]);
    // The notification links to the reply, and says what it said.
    let items = ihf::db::notifications::list(&app.db, w.ana, 10).await.unwrap();
    let replied = items.iter().find(|i| i.kind == "replied").unwrap();
    assert!(replied.path().starts_with(&format!("/hubs/rp/widgets/payroll/annotations/{a1}#reply-")));
    assert_eq!(replied.reply_text(), Some("Thanks! @rp-op please look; cc @rp-bob"));

    // "Me too": supporters of evidence hear of the decision when they may still read it.
    let members = widgets::create(
        &app.db,
        &widgets::NewWidget {
            hub_id: w.hub_id,
            slug: "team",
            name: "team",
            description: "",
            owner_id: None,
            policy_scope: "members",
            allowed_origins: "",
        },
    )
    .await
    .unwrap()
    .id;
    let public = annotate(&app, &w, w.public_widget, w.ana, "public ask").await;
    let internal = annotate(&app, &w, members, w.ana, "members ask").await;
    ihf::db::supports::toggle(&app.db, w.outsider, None, public).await.expect("outsider supports a public one");
    ihf::db::supports::toggle(&app.db, w.bob, None, internal).await.expect("bob supports a members one");
    ihf::db::supports::toggle(&app.db, w.owner, None, internal).await.expect("the owner too");
    let target = Target { id: public, version: version(&app, public).await };
    let promotion = Promotion::New { title: "Ask", statement: "" };
    let candidate =
        triage::promote(&app.db, w.hub_id, w.triager, &target, &promotion).await.unwrap().candidate.unwrap();
    let target = Target { id: internal, version: version(&app, internal).await };
    triage::promote(&app.db, w.hub_id, w.triager, &target, &Promotion::Existing { candidate_id: candidate })
        .await
        .unwrap();
    // Bob leaves the hub: he can no longer read the members widget.
    ihf::db::actors::revoke(&app.db, w.hub_id, w.bob).await.unwrap();
    let n = all(&app).await.len();
    let mut tx = app.db.begin_write().await.unwrap();
    let decision = candidates::Decision {
        hub_id: w.hub_id,
        candidate_id: candidate,
        actor_id: w.operator,
        from: candidates::Status::Proposed,
        to: candidates::Status::Accepted,
        rationale: "Planned",
    };
    candidates::decide(&mut tx, &decision).await.unwrap();
    tx.commit().await.unwrap();
    let mut told: Vec<i64> = since(&app, n).await.into_iter().map(|(r, ..)| r).collect();
    told.sort();
    let mut expected = vec![w.ana, w.outsider, w.owner];
    expected.sort();
    assert_eq!(told, expected, "the author once, the public supporter, the member supporter; not bob");
});

/// Runs the `ihf` binary on the test's database.
fn ihf_cli(database_url: &str, args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_ihf"))
        .args(args)
        .env("DATABASE_URL", database_url)
        .env("IHF_LOG", "error")
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run ihf")
}

dual_test!(the_cli_sets_a_persons_address_and_mail_mode, |app| {
    let w = world(&app, "cli").await;
    let url = app.database_url.as_str();
    let settings = || ihf::db::notifications::email_settings(&app.db, w.ana);
    let out = ihf_cli(url, &["user", "email", "cli-ana", "Ana@Example.com", "--mode", "daily"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let now = settings().await.expect("settings");
    assert_eq!(now.email_mode, "daily");
    assert!(now.email.as_deref().is_some_and(|e| e.eq_ignore_ascii_case("ana@example.com")), "{:?}", now.email);
    // Refused: a bad address, a mode that does not exist, nobody by that handle; nothing changes.
    for args in [
        &["user", "email", "cli-ana", "not-an-address"][..],
        &["user", "email", "cli-ana", "ana@example.com", "--mode", "hourly"][..],
        &["user", "email", "nobody-here", "x@example.com"][..],
    ] {
        let out = ihf_cli(url, args);
        assert!(!out.status.success(), "{args:?} was accepted");
    }
    assert_eq!(settings().await.expect("settings").email_mode, "daily");
    // An empty address: no mail, notifications stay in the app.
    let out = ihf_cli(url, &["user", "email", "cli-ana", ""]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("notifications stay in the app"));
    assert!(settings().await.expect("settings").email.is_none_or(|e| e.is_empty()));
});
