//! Identity and the access policy: sign-in, sessions, CSRF, the role matrix, and (on
//! PostgreSQL) Row Level Security holding on its own.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed step is a failed test

mod common;

use std::collections::HashMap;
use std::io::Write;
use std::process::{Command, Stdio};

use common::TestApp;

/// Who asks, in the matrix.
#[derive(Debug, Clone, Copy)]
enum Who {
    Anonymous,
    Annotator,
    Triager,
    Operator,
    Admin,
    OtherHubMember,
}

const EVERYONE: [Who; 6] =
    [Who::Anonymous, Who::Annotator, Who::Triager, Who::Operator, Who::Admin, Who::OtherHubMember];

async fn client_for(app: &TestApp, logins: &HashMap<String, String>, who: Who) -> reqwest::Client {
    let handle = match who {
        Who::Anonymous => return app.new_client(),
        Who::Annotator => "anna",
        Who::Triager => "tomas",
        Who::Operator => "olga",
        Who::Admin => "admin",
        Who::OtherHubMember => "ali",
    };
    app.signed_in(handle, &logins[handle]).await
}

async fn status(client: &reqwest::Client, app: &TestApp, path: &str) -> u16 {
    client.get(app.url(path)).send().await.expect("GET").status().as_u16()
}

async fn body(client: &reqwest::Client, app: &TestApp, path: &str) -> String {
    client.get(app.url(path)).header("HX-Request", "true").send().await.expect("GET").text().await.expect("body")
}

dual_test!(the_role_matrix_for_hub_pages_and_streams, |app| {
    let logins = app.seed_demo().await;
    let hub = app.scalar("SELECT id FROM hubs WHERE slug = 'checkout'").await;
    for who in EVERYONE {
        let client = client_for(&app, &logins, who).await;
        let expected = match who {
            Who::Anonymous => 401,
            Who::OtherHubMember => 403,
            _ => 200,
        };
        for path in [
            "/hubs/checkout".to_owned(),
            "/hubs/checkout/widgets-panel".to_owned(),
            "/hubs/checkout/signals".to_owned(),
            "/hubs/checkout/feed".to_owned(),
            format!("/live?regions=widgets:{hub},signals:{hub},feed:{hub}"),
        ] {
            assert_eq!(status(&client, &app, &path).await, expected, "{who:?} GET {path}");
        }
        // Everyone reaches the index, and sees exactly the hubs they may.
        let index = body(&client, &app, "/hubs").await;
        let (sees_checkout, sees_onboarding) = match who {
            Who::Anonymous => (false, false),
            Who::Annotator | Who::Triager => (true, false),
            Who::OtherHubMember => (false, true),
            Who::Operator | Who::Admin => (true, true),
        };
        assert_eq!(index.contains("href=\"/hubs/checkout\""), sees_checkout, "{who:?} index: checkout");
        assert_eq!(index.contains("href=\"/hubs/onboarding\""), sees_onboarding, "{who:?} index: onboarding");
    }
});

/// Whether who asks meets a need.
type Meets = fn(Who) -> bool;

dual_test!(the_hub_extractor_checks_each_need, |app| {
    let logins = app.seed_demo().await;
    let candidate = app
        .scalar(
            "SELECT MIN(id) FROM requirement_candidates WHERE hub_id = (SELECT id FROM hubs WHERE slug = 'checkout')",
        )
        .await;
    let propose = format!("/hubs/checkout/candidates/{candidate}/evidence/search?q=checkout");
    // One GET per need (`web::access::InHub<N>`), and who meets it.
    let needs: [(&str, &str, Meets); 5] = [
        ("View", "/hubs/checkout", |who| !matches!(who, Who::Anonymous | Who::OtherHubMember)),
        ("Triage", "/hubs/checkout/triage", |who| matches!(who, Who::Triager | Who::Operator | Who::Admin)),
        ("Propose", &propose, |who| matches!(who, Who::Triager | Who::Operator | Who::Admin)),
        ("Export", "/hubs/checkout/export", |who| matches!(who, Who::Triager | Who::Operator | Who::Admin)),
        ("Manage", "/hubs/checkout/settings", |who| matches!(who, Who::Operator | Who::Admin)),
    ];
    for who in EVERYONE {
        let client = client_for(&app, &logins, who).await;
        for (need, path, meets) in &needs {
            let expected = match who {
                _ if meets(who) => 200,
                Who::Anonymous => 401,
                _ => 403,
            };
            assert_eq!(status(&client, &app, path).await, expected, "{who:?} GET {path} ({need})");
            // An unknown hub is 404 for everybody, before any need.
            let unknown = path.replace("/hubs/checkout", "/hubs/no-such-hub");
            assert_eq!(status(&client, &app, &unknown).await, 404, "{who:?} GET {unknown}");
        }
    }
    // An archived hub is 404 too, even for its operators and the administrators.
    let hub = app.scalar("SELECT id FROM hubs WHERE slug = 'checkout'").await;
    ihf::db::settings::set_hub_archived(&app.db, hub, true).await.expect("archive");
    for who in [Who::Operator, Who::Admin] {
        let client = client_for(&app, &logins, who).await;
        for (_, path, _) in &needs {
            assert_eq!(status(&client, &app, path).await, 404, "{who:?} GET {path} of an archived hub");
        }
    }
});

dual_test!(private_widgets_are_for_their_owner_and_staff, |app| {
    let logins = app.seed_demo().await;
    let private_annotations: Vec<String> = sqlx::query_scalar(
        "SELECT a.body FROM annotations a JOIN widgets w ON w.id = a.widget_id WHERE w.slug = 'fraud-review' ORDER BY a.created_at DESC",
    )
    .fetch_all(app.db.reader())
    .await
    .expect("bodies");
    assert!(!private_annotations.is_empty());
    for (who, sees) in [(Who::Annotator, false), (Who::Triager, true), (Who::Operator, true), (Who::Admin, true)] {
        let client = client_for(&app, &logins, who).await;
        let widgets = body(&client, &app, "/hubs/checkout/widgets-panel").await;
        assert_eq!(widgets.contains("Fraud review panel"), sees, "{who:?} widgets panel");
        let feed = body(&client, &app, "/hubs/checkout/feed").await;
        assert_eq!(feed.contains("/widgets/fraud-review\""), sees, "{who:?} feed shows private annotations");
    }
    // The owner of a private widget (olga owns fraud-review) reads it even as a plain annotator.
    let olga = app.scalar("SELECT id FROM actors WHERE handle = 'olga'").await;
    let hub = app.scalar("SELECT id FROM hubs WHERE slug = 'checkout'").await;
    ihf::db::actors::grant(&app.db, hub, olga, "annotator").await.expect("demote");
    let client = client_for(&app, &logins, Who::Operator).await;
    assert!(body(&client, &app, "/hubs/checkout/widgets-panel").await.contains("Fraud review panel"));
});

dual_test!(sign_in_sets_a_safe_rotated_session_cookie, |app| {
    let logins = app.seed_demo().await;
    let client = app.new_client();
    let response = app.try_login(&client, "olga", &logins["olga"]).await;
    assert_eq!(response.status(), 303);
    assert_eq!(response.headers().get("location").and_then(|v| v.to_str().ok()), Some("/"));
    let cookie = response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with("ihf_session="))
        .expect("session cookie")
        .to_owned();
    for flag in ["HttpOnly", "SameSite=Lax", "Path=/"] {
        assert!(cookie.contains(flag), "{flag} in {cookie}");
    }
    assert!(!cookie.contains("Secure"), "plain http: not Secure");
    let first = cookie.split(';').next().expect("value").to_owned();
    // Signing in again rotates the session: the old token stops working.
    let again = app.try_login(&client, "olga", &logins["olga"]).await;
    assert_eq!(again.status(), 303);
    let stale = app.new_client();
    let response = stale.get(app.url("/hubs/checkout")).header("Cookie", first.as_str()).send().await.expect("GET");
    assert_eq!(response.status(), 401, "the pre-rotation session is gone");
    assert_eq!(status(&client, &app, "/hubs/checkout").await, 200);
});

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secure_mode_uses_host_prefixed_secure_cookies() {
    let app = common::spawn_app_with(ihf::db::Backend::Sqlite, |config| config.secure_cookies = true).await;
    app.person("sam", &[]).await;
    let page = app.get("/login").await;
    let csrf_cookie = page.headers().get("set-cookie").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    assert!(csrf_cookie.starts_with("__Host-ihf_csrf=") && csrf_cookie.contains("Secure"), "{csrf_cookie}");
    let csrf = common::csrf_from(&page.text().await.expect("body"));
    let token = csrf_cookie.split(';').next().expect("cookie").to_owned();
    let response = app
        .new_client()
        .post(app.url("/login"))
        .header("Cookie", token)
        .form(&[("handle", "sam"), ("password", common::PASSWORD), ("csrf_token", &csrf)])
        .send()
        .await
        .expect("POST");
    assert_eq!(response.status(), 303);
    let cookie = response.headers().get("set-cookie").and_then(|v| v.to_str().ok()).unwrap_or_default();
    assert!(cookie.starts_with("__Host-ihf_session="), "{cookie}");
    for flag in ["Secure", "HttpOnly", "SameSite=Lax", "Path=/"] {
        assert!(cookie.contains(flag), "{flag} in {cookie}");
    }
    assert!(!cookie.contains("Domain="), "__Host- cookies carry no Domain");
}

dual_test!(a_revoked_session_is_refused_at_once, |app| {
    let logins = app.seed_demo().await;
    let client = client_for(&app, &logins, Who::Operator).await;
    assert_eq!(status(&client, &app, "/hubs/checkout").await, 200);
    let olga = app.scalar("SELECT id FROM actors WHERE handle = 'olga'").await;
    ihf::db::sessions::revoke_all(&app.db, olga, ihf::db::now_ms()).await.expect("revoke");
    assert_eq!(status(&client, &app, "/hubs/checkout").await, 401);
});

dual_test!(sign_in_mistakes_keep_the_handle_and_are_throttled, |app| {
    app.person("pat", &[]).await;
    let client = app.new_client();
    let response = app.try_login(&client, "pat", "wrong password").await;
    assert_eq!(response.status(), 422);
    let page = response.text().await.expect("body");
    assert!(page.contains("do not match") && page.contains("value=\"pat\""), "message and typed handle");
    for _ in 0..4 {
        assert_eq!(app.try_login(&client, "pat", "wrong password").await.status(), 422);
    }
    let limited = app.try_login(&client, "pat", common::PASSWORD).await;
    assert_eq!(limited.status(), 429, "even the right password waits after 5 failures");
    assert!(limited.headers().contains_key("retry-after"));
    assert!(limited.text().await.expect("body").contains("Too many failed sign-ins"));
    // Another account from elsewhere is unaffected.
    app.person("quinn", &[]).await;
    assert_eq!(app.try_login(&app.new_client(), "quinn", common::PASSWORD).await.status(), 303);
});

dual_test!(unauthenticated_requests_are_sent_to_sign_in_and_back, |app| {
    app.seed_demo().await;
    let response = app.get("/hubs/checkout").await;
    assert_eq!(response.status(), 401);
    assert!(response.text().await.expect("body").contains("/login?next=/hubs/checkout"));
    let response = app.get_htmx("/hubs/checkout/feed").await;
    assert_eq!(response.status(), 401);
    assert_eq!(
        response.headers().get("hx-redirect").and_then(|v| v.to_str().ok()),
        Some("/login?next=/hubs/checkout/feed")
    );
    let olga = app.person("olga2", &[("checkout", "operator")]).await;
    assert!(olga > 0);
    let client = app.new_client();
    let csrf = app.csrf(&client, "/login?next=/hubs/checkout").await;
    let response = client
        .post(app.url("/login"))
        .form(&[("handle", "olga2"), ("password", common::PASSWORD), ("csrf_token", &csrf), ("next", "/hubs/checkout")])
        .send()
        .await
        .expect("POST");
    assert_eq!(response.headers().get("location").and_then(|v| v.to_str().ok()), Some("/hubs/checkout"));
    // Never an open redirect.
    let response = client
        .post(app.url("/login"))
        .form(&[
            ("handle", "olga2"),
            ("password", common::PASSWORD),
            ("csrf_token", &csrf),
            ("next", "//evil.example/"),
        ])
        .send()
        .await
        .expect("POST");
    assert_eq!(response.status(), 403, "the first sign-in rotated the CSRF token: the old one is refused");
});

dual_test!(state_changes_need_the_csrf_token_and_our_origin, |app| {
    let logins = app.seed_demo().await;
    let client = client_for(&app, &logins, Who::Operator).await;
    let csrf = app.csrf(&client, "/").await;
    assert!(!csrf.is_empty());

    // No token: refused, and the session is still alive.
    let response = client.post(app.url("/logout")).send().await.expect("POST");
    assert_eq!(response.status(), 403);
    assert_eq!(status(&client, &app, "/hubs/checkout").await, 200);
    // A wrong token, in the header or the form.
    let response = client.post(app.url("/logout")).header("X-CSRF-Token", "forged").send().await.expect("POST");
    assert_eq!(response.status(), 403);
    let response = client.post(app.url("/logout")).form(&[("csrf_token", "forged")]).send().await.expect("POST");
    assert_eq!(response.status(), 403);
    // The right token from a foreign origin.
    let response = client
        .post(app.url("/logout"))
        .header("X-CSRF-Token", &csrf)
        .header("Origin", "https://evil.example")
        .send()
        .await
        .expect("POST");
    assert_eq!(response.status(), 403);
    let response = client
        .post(app.url("/logout"))
        .header("X-CSRF-Token", &csrf)
        .header("Sec-Fetch-Site", "cross-site")
        .send()
        .await
        .expect("POST");
    assert_eq!(response.status(), 403);
    assert_eq!(status(&client, &app, "/hubs/checkout").await, 200, "nothing changed");
    let sessions = app.scalar("SELECT COUNT(*) FROM sessions WHERE revoked_at IS NULL").await;
    assert_eq!(sessions, 1);

    // The right token from our own origin, as a plain form (the no-JavaScript path).
    let response = client
        .post(app.url("/logout"))
        .header("Origin", app.address.as_str())
        .form(&[("csrf_token", csrf.as_str())])
        .send()
        .await
        .expect("POST");
    assert_eq!(response.status(), 303);
    assert_eq!(status(&client, &app, "/hubs/checkout").await, 401, "signed out");
    assert_eq!(app.scalar("SELECT COUNT(*) FROM sessions WHERE revoked_at IS NULL").await, 0);

    // The login form is protected too (anonymous double-submit token).
    let anonymous = app.new_client();
    let response =
        anonymous.post(app.url("/login")).form(&[("handle", "olga"), ("password", "x")]).send().await.expect("POST");
    assert_eq!(response.status(), 403);
});

fn ihf(database_url: &str, args: &[&str], stdin: &str) -> std::process::Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ihf"))
        .args(args)
        .env("DATABASE_URL", database_url)
        .env("IHF_LOG", "error")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run ihf");
    child.stdin.take().expect("stdin").write_all(stdin.as_bytes()).expect("write stdin");
    child.wait_with_output().expect("wait")
}

dual_test!(the_user_cli_adds_grants_and_revokes, |app| {
    app.seed_demo().await;
    let url = app.database_url.as_str();
    let out = ihf(url, &["user", "add", "casey", "--name", "Casey Ops"], "a long enough password\n");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = ihf(url, &["user", "add", "casey"], "another long password\n");
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("taken"));
    let out = ihf(url, &["user", "add", "shorty"], "short\n");
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("at least"));
    let out = ihf(url, &["user", "grant", "casey", "checkout", "wizard"], "");
    assert!(!out.status.success(), "unknown role refused");
    let out = ihf(url, &["user", "grant", "casey", "checkout", "triager"], "");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    let client = app.signed_in("casey", "a long enough password").await;
    assert_eq!(status(&client, &app, "/hubs/checkout").await, 200);
    let out = ihf(url, &["user", "set-password", "casey"], "a brand new password\n");
    assert!(out.status.success());
    // A password change ends the person's sessions (#15): the old one is signed out.
    assert_eq!(status(&client, &app, "/hubs/checkout").await, 401);
    assert_eq!(app.try_login(&app.new_client(), "casey", "a brand new password").await.status(), 303);
    let client = app.signed_in("casey", "a brand new password").await;
    let out = ihf(url, &["user", "revoke", "casey", "checkout"], "");
    assert!(out.status.success());
    assert_eq!(status(&client, &app, "/hubs/checkout").await, 403);
    let out = ihf(url, &["user", "revoke", "casey", "checkout"], "");
    assert!(!out.status.success(), "not a member any more");
});

mod postgres_rls {
    use super::*;
    use ihf::db::Backend;

    /// Counts rows of `sql` as `actor` under the restricted role, like a request acting for them.
    async fn count_as(app: &TestApp, actor: Option<i64>, sql: &'static str) -> i64 {
        let mut tx = app.db.begin_as(actor).await.expect("begin as");
        let rows: Vec<(i64,)> = sqlx::query_as(sql).fetch_all(&mut *tx).await.expect("select");
        tx.rollback().await.expect("rollback");
        rows.len() as i64
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn rls_alone_filters_raw_selects() {
        if !common::pg_enabled() {
            return;
        }
        let app = common::spawn_app(Backend::Postgres).await;
        app.seed_demo().await;
        let all = app.scalar("SELECT COUNT(*) FROM annotations").await;
        let public = app
            .scalar("SELECT COUNT(*) FROM annotations a JOIN widgets w ON w.id = a.widget_id WHERE w.policy_scope = 'public'")
            .await;
        assert!(public > 0 && public < all);
        // Anonymous: the seed's public rule only.
        assert_eq!(count_as(&app, None, "SELECT id FROM annotations").await, public);

        // Ali, annotator in onboarding: own + public + onboarding's members widgets; nothing private.
        let ali = app.scalar("SELECT id FROM actors WHERE handle = 'ali'").await;
        let expected: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM annotations a JOIN widgets w ON w.id = a.widget_id JOIN hubs h ON h.id = w.hub_id
             WHERE a.actor_id = $1 OR w.policy_scope = 'public' OR (h.slug = 'onboarding' AND w.policy_scope = 'members')",
        )
        .bind(ali)
        .fetch_one(app.db.reader())
        .await
        .expect("expected");
        assert_eq!(count_as(&app, Some(ali), "SELECT id FROM annotations").await, expected);
        let private_seen = count_as(
            &app,
            Some(ali),
            "SELECT a.id FROM annotations a JOIN widgets w ON w.id = a.widget_id WHERE w.policy_scope = 'private' AND a.actor_id <> (SELECT id FROM actors WHERE handle = 'ali')",
        )
        .await;
        assert_eq!(private_seen, 0);

        // An admin sees everything; the server's own role too.
        let admin = app.scalar("SELECT id FROM actors WHERE handle = 'admin'").await;
        assert_eq!(count_as(&app, Some(admin), "SELECT id FROM annotations").await, all);

        // Candidates and ledger entries: members of the hub only.
        let onboarding_entries = app
            .scalar("SELECT COUNT(*) FROM ledger_entries l JOIN hubs h ON h.id = l.hub_id WHERE h.slug = 'onboarding'")
            .await;
        assert_eq!(count_as(&app, Some(ali), "SELECT id FROM ledger_entries").await, onboarding_entries);
        assert_eq!(count_as(&app, None, "SELECT id FROM requirement_candidates").await, 0);

        // The restricted role cannot read password hashes or sessions at all.
        let mut tx = app.db.begin_as(Some(ali)).await.expect("begin");
        assert!(sqlx::query("SELECT password_hash FROM actors").fetch_all(&mut *tx).await.is_err());
        tx.rollback().await.expect("rollback");
        let mut tx = app.db.begin_as(Some(ali)).await.expect("begin");
        assert!(sqlx::query("SELECT * FROM sessions").fetch_all(&mut *tx).await.is_err());
        tx.rollback().await.expect("rollback");
        // Nor write an annotation as someone else.
        let mut tx = app.db.begin_write_as(Some(ali), None).await.expect("begin");
        let forged = sqlx::query(
            "INSERT INTO annotations (hub_id, widget_id, actor_id, body, category_id, created_at, updated_at)
             SELECT w.hub_id, w.id, $1, 'forged', (SELECT MIN(id) FROM categories), 0, 0 FROM widgets w WHERE w.policy_scope = 'public' LIMIT 1",
        )
        .bind(admin)
        .execute(&mut *tx)
        .await;
        assert!(forged.is_err(), "RLS refuses writing as another actor");
    }

    /// Each table's read policy in its 0002 form (functions called per row), evaluated by the
    /// server role without RLS. Migration 0011 restated them to be evaluated once per statement
    /// (including the seed's "Public widget annotations are readable"); these are the rules
    /// they must keep. The settings are read from the transaction, as the policies read them.
    const ORIGINAL_RULES: [(&str, &str); 5] = [
        (
            "annotations",
            "SELECT a.id FROM annotations a WHERE
               (a.actor_id = ihf_actor_id()
                OR EXISTS (SELECT 1 FROM widgets w WHERE w.id = a.widget_id AND w.policy_scope = 'public'
                             AND (ihf_embed_widget_id() IS NULL OR w.id = ihf_embed_widget_id())
                             AND (ihf_api_hub_id() IS NULL OR w.hub_id = ihf_api_hub_id()))
                OR ihf_widget_readable(a.widget_id))
               AND (ihf_embed_widget_id() IS NULL OR a.widget_id = ihf_embed_widget_id())
               AND (ihf_api_hub_id() IS NULL OR a.hub_id = ihf_api_hub_id())",
        ),
        (
            "widgets",
            "SELECT id FROM widgets WHERE
               (policy_scope = 'public' OR owner_id = ihf_actor_id() OR ihf_is_member(hub_id) OR id = ihf_embed_widget_id())
               AND (ihf_embed_widget_id() IS NULL OR id = ihf_embed_widget_id())
               AND (ihf_api_hub_id() IS NULL OR hub_id = ihf_api_hub_id())",
        ),
        (
            "interaction_events",
            "SELECT id FROM interaction_events WHERE ihf_is_member(hub_id)
               AND (ihf_embed_widget_id() IS NULL OR widget_id = ihf_embed_widget_id())
               AND (ihf_api_hub_id() IS NULL OR hub_id = ihf_api_hub_id())",
        ),
        (
            "requirement_candidates",
            "SELECT id FROM requirement_candidates WHERE ihf_embed_widget_id() IS NULL AND ihf_is_member(hub_id)
               AND (ihf_api_hub_id() IS NULL OR hub_id = ihf_api_hub_id())",
        ),
        (
            "ledger_entries",
            "SELECT id FROM ledger_entries WHERE ihf_embed_widget_id() IS NULL AND ihf_is_member(hub_id)
               AND (ihf_api_hub_id() IS NULL OR hub_id = ihf_api_hub_id())",
        ),
    ];

    /// The ids `sql` returns in a transaction with these settings, under the restricted role
    /// (`rls`) or as the server.
    async fn ids_in_scope(
        app: &TestApp,
        rls: bool,
        scope: (Option<i64>, Option<i64>, Option<i64>),
        sql: &str,
    ) -> Vec<i64> {
        let text = |v: Option<i64>| v.map(|v| v.to_string()).unwrap_or_default();
        let mut tx = app.db.writer().begin().await.expect("begin");
        if rls {
            sqlx::query("SET LOCAL ROLE ihf_authenticated").execute(&mut *tx).await.expect("role");
        }
        sqlx::query(
            "SELECT set_config('ihf.actor_id', $1, true), set_config('ihf.embed_widget_id', $2, true),
                    set_config('ihf.api_hub_id', $3, true)",
        )
        .bind(text(scope.0))
        .bind(text(scope.1))
        .bind(text(scope.2))
        .execute(&mut *tx)
        .await
        .expect("settings");
        let mut ids: Vec<i64> =
            sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_owned())).fetch_all(&mut *tx).await.expect("select");
        tx.rollback().await.expect("rollback");
        ids.sort_unstable();
        ids
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn restated_policies_show_the_same_rows_as_the_original_ones() {
        if !common::pg_enabled() {
            return;
        }
        let app = common::spawn_app(Backend::Postgres).await;
        app.seed_demo().await;
        // More shapes than the demo has: a private widget owned by an annotator, a members
        // widget with an outsider's own annotation, an administrator with no membership.
        let anna = app.scalar("SELECT id FROM actors WHERE handle = 'anna'").await;
        let ali = app.scalar("SELECT id FROM actors WHERE handle = 'ali'").await;
        sqlx::query(
            "UPDATE widgets SET owner_id = $1 WHERE id = (SELECT MIN(id) FROM widgets WHERE policy_scope = 'private')",
        )
        .bind(anna)
        .execute(app.db.writer())
        .await
        .expect("owner");
        sqlx::query(
            "INSERT INTO annotations (hub_id, widget_id, actor_id, body, category_id, created_at, updated_at)
             SELECT w.hub_id, w.id, $1, 'written before leaving', (SELECT MIN(c.id) FROM categories c WHERE c.hub_id = w.hub_id), 1, 1
               FROM widgets w JOIN hubs h ON h.id = w.hub_id WHERE h.slug = 'checkout' AND w.policy_scope <> 'public'",
        )
        .bind(ali)
        .execute(app.db.writer())
        .await
        .expect("outsider's annotations");

        let actors: Vec<i64> =
            sqlx::query_scalar("SELECT id FROM actors ORDER BY id").fetch_all(app.db.reader()).await.expect("actors");
        let widgets: Vec<i64> =
            sqlx::query_scalar("SELECT id FROM widgets ORDER BY id").fetch_all(app.db.reader()).await.expect("widgets");
        let hubs: Vec<i64> =
            sqlx::query_scalar("SELECT id FROM hubs ORDER BY id").fetch_all(app.db.reader()).await.expect("hubs");
        // Every person and visitor, and nobody; each on their own, confined to each widget (an
        // embed) and to each hub (an API key).
        let mut scopes = Vec::new();
        for actor in actors.iter().copied().map(Some).chain([None]) {
            scopes.push((actor, None, None));
            scopes.extend(widgets.iter().map(|w| (actor, Some(*w), None)));
            scopes.extend(hubs.iter().map(|h| (actor, None, Some(*h))));
        }
        let mut seen_some = 0;
        for scope in scopes {
            for (table, rule) in ORIGINAL_RULES {
                let expected = ids_in_scope(&app, false, scope, rule).await;
                let visible = ids_in_scope(&app, true, scope, &format!("SELECT id FROM {table}")).await;
                assert_eq!(visible, expected, "{table} as (actor, embed widget, api hub) {scope:?}");
                seen_some += usize::from(!visible.is_empty());
            }
        }
        assert!(seen_some > 100, "the matrix exercised visible rows, not only empty sets ({seen_some})");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn pooled_connections_carry_no_actor_or_role_after_a_request() {
        if !common::pg_enabled() {
            return;
        }
        let app = common::spawn_app(Backend::Postgres).await;
        let logins = app.seed_demo().await;
        let client = app.signed_in("ali", &logins["ali"]).await;
        for _ in 0..10 {
            assert_eq!(status(&client, &app, "/hubs/onboarding/feed").await, 200);
        }
        // Take every connection the pool will give and look at each one.
        let mut connections = Vec::new();
        while let Ok(Ok(conn)) =
            tokio::time::timeout(std::time::Duration::from_millis(300), app.db.writer().acquire()).await
        {
            connections.push(conn);
        }
        assert!(!connections.is_empty());
        for conn in &mut connections {
            let (user, actor): (String, Option<String>) =
                sqlx::query_as("SELECT current_user::text, current_setting('ihf.actor_id', true)")
                    .fetch_one(&mut **conn)
                    .await
                    .expect("inspect");
            assert_eq!(user, "postgres", "the role was SET LOCAL only");
            assert!(actor.unwrap_or_default().is_empty(), "the actor was set for the transaction only");
        }
    }
}
