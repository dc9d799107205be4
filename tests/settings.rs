//! Settings: hubs (administrators), widgets and members (a hub's operators). Every refusal is
//! checked against the database: nothing changed.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed step is a failed test

mod common;

use common::{PASSWORD, TestApp};

/// Two hubs, an administrator, an operator of `checkout`, a triager and an annotator there.
async fn setup(app: &TestApp) {
    ihf::db::hubs::create(&app.db, "checkout", "Checkout", "Paying for things").await.expect("hub");
    ihf::db::hubs::create(&app.db, "onboarding", "Onboarding", "First steps").await.expect("hub");
    let hash = ihf::auth::password::hash(PASSWORD).expect("hash");
    ihf::db::actors::create_person(&app.db, "root", "Root Admin", Some(&hash), true).await.expect("admin");
    app.person("olga", &[("checkout", "operator")]).await;
    app.person("tomas", &[("checkout", "triager")]).await;
    app.person("anna", &[("checkout", "annotator")]).await;
    app.person("ali", &[("onboarding", "annotator")]).await;
}

/// POSTs a form with the CSRF token of `page` (as a plain browser form would).
async fn post_form(
    app: &TestApp,
    client: &reqwest::Client,
    page: &str,
    path: &str,
    fields: &[(&str, &str)],
) -> reqwest::Response {
    let csrf = app.csrf(client, page).await;
    let mut form: Vec<(&str, &str)> = fields.to_vec();
    form.push(("csrf_token", &csrf));
    client.post(app.url(path)).form(&form).send().await.expect("POST")
}

async fn count(app: &TestApp, sql: &'static str) -> i64 {
    app.scalar(sql).await
}

fn location(response: &reqwest::Response) -> String {
    response.headers().get("location").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned()
}

dual_test!(administrators_create_archive_and_restore_hubs, |app| {
    setup(&app).await;
    let admin = app.signed_in("root", PASSWORD).await;
    let page = admin.get(app.url("/settings/hubs")).send().await.expect("GET");
    assert_eq!(page.status(), 200);
    let html = page.text().await.expect("body");
    assert!(html.contains("Checkout") && html.contains("Onboarding"));

    let created = post_form(
        &app,
        &admin,
        "/settings/hubs",
        "/settings/hubs",
        &[("name", "Search"), ("slug", "search"), ("description", "Finding things")],
    )
    .await;
    assert_eq!(created.status(), 303);
    assert_eq!(location(&created), "/hubs/search/settings?created=1");
    let confirmed = admin.get(app.url(&location(&created))).send().await.expect("GET").text().await.expect("body");
    assert!(confirmed.contains("Hub created."), "a confirmation after creating the hub");
    let hub = ihf::db::hubs::by_slug(&app.db, "search").await.expect("created");
    assert_eq!((hub.name.as_str(), hub.description.as_str()), ("Search", "Finding things"));
    let categories: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM categories WHERE hub_id = $1")
        .bind(hub.id)
        .fetch_one(app.db.reader())
        .await
        .expect("count");
    assert_eq!(categories, 5, "a new hub starts with the default categories");

    // A taken slug is a field error with what was typed kept, not a 500.
    let taken = post_form(
        &app,
        &admin,
        "/settings/hubs",
        "/settings/hubs",
        &[("name", "Checkout again"), ("slug", "checkout"), ("description", "typed text")],
    )
    .await;
    assert_eq!(taken.status(), 422);
    let html = taken.text().await.expect("body");
    assert!(html.contains("id=\"slug-error\""), "{html}");
    assert!(html.contains("exists already"));
    assert!(html.contains("value=\"Checkout again\"") && html.contains("typed text"));
    assert_eq!(count(&app, "SELECT COUNT(*) FROM hubs").await, 3);

    let bad = post_form(&app, &admin, "/settings/hubs", "/settings/hubs", &[("name", ""), ("slug", "Bad Slug")]).await;
    assert_eq!(bad.status(), 422);
    let html = bad.text().await.expect("body");
    assert!(
        html.contains("id=\"name-error\"") && html.contains("id=\"slug-error\"") && html.contains("value=\"Bad Slug\"")
    );

    // Archiving hides the hub without deleting anything; restoring brings it back.
    let archived = post_form(&app, &admin, "/settings/hubs", "/settings/hubs/search/archive", &[]).await;
    assert_eq!(archived.status(), 303);
    assert!(ihf::db::hubs::by_slug(&app.db, "search").await.expect("still there").archived_at.is_some());
    assert_eq!(admin.get(app.url("/hubs/search")).send().await.expect("GET").status(), 404);
    assert!(!admin.get(app.url("/")).send().await.expect("GET").text().await.expect("body").contains("/hubs/search\""));
    let restored = post_form(&app, &admin, "/settings/hubs", "/settings/hubs/search/restore", &[]).await;
    assert_eq!(restored.status(), 303);
    assert!(ihf::db::hubs::by_slug(&app.db, "search").await.expect("there").archived_at.is_none());
    assert_eq!(admin.get(app.url("/hubs/search")).send().await.expect("GET").status(), 200);

    // htmx gets HX-Redirect instead of a 303.
    let csrf = app.csrf(&admin, "/settings/hubs").await;
    let htmx = admin
        .post(app.url("/settings/hubs"))
        .header("HX-Request", "true")
        .header("X-CSRF-Token", csrf)
        .form(&[("name", "Returns"), ("slug", "returns")])
        .send()
        .await
        .expect("POST");
    assert_eq!(htmx.status(), 200);
    assert_eq!(
        htmx.headers().get("hx-redirect").and_then(|v| v.to_str().ok()),
        Some("/hubs/returns/settings?created=1")
    );
});

dual_test!(only_administrators_manage_hubs, |app| {
    setup(&app).await;
    let hubs_before = count(&app, "SELECT COUNT(*) FROM hubs").await;
    let olga = app.signed_in("olga", PASSWORD).await;
    assert_eq!(olga.get(app.url("/settings/hubs")).send().await.expect("GET").status(), 403);
    let refused = post_form(&app, &olga, "/", "/settings/hubs", &[("name", "Mine"), ("slug", "mine")]).await;
    assert_eq!(refused.status(), 403);
    let refused = post_form(&app, &olga, "/", "/settings/hubs/checkout/archive", &[]).await;
    assert_eq!(refused.status(), 403);
    assert_eq!(count(&app, "SELECT COUNT(*) FROM hubs").await, hubs_before);
    assert_eq!(count(&app, "SELECT COUNT(*) FROM hubs WHERE archived_at IS NOT NULL").await, 0);
    let anonymous = app.new_client();
    assert_eq!(anonymous.get(app.url("/settings/hubs")).send().await.expect("GET").status(), 401);
});

dual_test!(operators_create_edit_rotate_and_archive_widgets, |app| {
    setup(&app).await;
    let olga = app.signed_in("olga", PASSWORD).await;
    let anna_id = ihf::db::actors::by_handle(&app.db, "anna").await.expect("anna").id;
    let list = "/hubs/checkout/settings/widgets";
    assert_eq!(olga.get(app.url("/hubs/checkout/settings")).send().await.expect("GET").status(), 200);
    assert_eq!(olga.get(app.url(list)).send().await.expect("GET").status(), 200);
    assert_eq!(olga.get(app.url("/hubs/checkout/settings/widgets/new")).send().await.expect("GET").status(), 200);

    let anna = anna_id.to_string();
    let created = post_form(
        &app,
        &olga,
        list,
        list,
        &[
            ("name", "Payment form"),
            ("slug", "payment-form"),
            ("description", "Card entry"),
            ("owner", &anna),
            ("policy_scope", "private"),
            ("allowed_origins", "https://Shop.Example.com/\nhttp://localhost:3000"),
        ],
    )
    .await;
    assert_eq!(created.status(), 201);
    let html = created.text().await.expect("body");
    let hub_id = app.scalar("SELECT id FROM hubs WHERE slug = 'checkout'").await;
    let widget = ihf::db::widgets::by_slug(&app.db, hub_id, "payment-form").await.expect("created");
    assert_eq!(widget.name, "Payment form");
    assert_eq!(widget.owner_id, Some(anna_id));
    assert_eq!(widget.policy_scope, "private");
    assert_eq!(widget.allowed_origins, "https://shop.example.com http://localhost:3000", "origins are canonical");
    // The secret is shown once, with the snippet to copy.
    assert!(html.contains(&format!("data-embed-secret>{}<", widget.embed_secret)), "secret shown on creation");
    let snippet = format!(
        "&#60;script src=&#34;{}/embed.js&#34; data-ihf-widget=&#34;{}&#34; async&#62;&#60;/script&#62;",
        app.address, widget.embed_key
    );
    assert!(html.contains(&snippet), "snippet: {html}");
    let edit = format!("{list}/payment-form");
    let page = olga.get(app.url(&edit)).send().await.expect("GET").text().await.expect("body");
    assert!(!page.contains(&widget.embed_secret), "the secret is never shown again");
    assert!(page.contains(&snippet));

    // A slug taken in the hub is a field error; what was typed stays.
    post_form(&app, &olga, list, list, &[("name", "Address"), ("slug", "address"), ("policy_scope", "members")]).await;
    let conflict = post_form(
        &app,
        &olga,
        &edit,
        &edit,
        &[("name", "Renamed form"), ("slug", "address"), ("policy_scope", "public"), ("description", "typed")],
    )
    .await;
    assert_eq!(conflict.status(), 422);
    let html = conflict.text().await.expect("body");
    assert!(html.contains("id=\"slug-error\"") && html.contains("already uses the slug address"), "{html}");
    assert!(html.contains("value=\"Renamed form\"") && html.contains(">typed</textarea>"));
    assert!(html.contains("value=\"public\" checked"));
    let unchanged = ihf::db::widgets::by_slug(&app.db, hub_id, "payment-form").await.expect("unchanged");
    assert_eq!((unchanged.name.as_str(), unchanged.policy_scope.as_str()), ("Payment form", "private"));

    // The same slug on create is a field error too.
    let conflict =
        post_form(&app, &olga, list, list, &[("name", "Again"), ("slug", "address"), ("policy_scope", "members")])
            .await;
    assert_eq!(conflict.status(), 422);
    assert!(conflict.text().await.expect("body").contains("already uses the slug address"));

    // Origins are validated as origins.
    let bad_origin = post_form(
        &app,
        &olga,
        &edit,
        &edit,
        &[
            ("name", "Payment form"),
            ("slug", "payment-form"),
            ("policy_scope", "private"),
            ("allowed_origins", "https://shop.example.com/checkout"),
        ],
    )
    .await;
    assert_eq!(bad_origin.status(), 422);
    let html = bad_origin.text().await.expect("body");
    assert!(html.contains("id=\"allowed_origins-error\"") && html.contains("no path"), "{html}");
    assert!(html.contains("https://shop.example.com/checkout</textarea>"));

    // An owner from outside the hub is refused.
    let ali = ihf::db::actors::by_handle(&app.db, "ali").await.expect("ali").id.to_string();
    let outsider = post_form(
        &app,
        &olga,
        &edit,
        &edit,
        &[("name", "Payment form"), ("slug", "payment-form"), ("policy_scope", "private"), ("owner", &ali)],
    )
    .await;
    assert_eq!(outsider.status(), 422);
    assert!(outsider.text().await.expect("body").contains("id=\"owner-error\""));

    // A valid edit (new slug) redirects to the widget's new address.
    let saved = post_form(
        &app,
        &olga,
        &edit,
        &edit,
        &[
            ("name", "Card form"),
            ("slug", "card-form"),
            ("policy_scope", "members"),
            ("owner", ""),
            ("allowed_origins", ""),
        ],
    )
    .await;
    assert_eq!(saved.status(), 303);
    assert_eq!(location(&saved), format!("{list}/card-form?saved=1"));
    let confirmed = olga.get(app.url(&location(&saved))).send().await.expect("GET").text().await.expect("body");
    assert!(confirmed.contains("Widget settings saved."), "a confirmation after saving");
    let saved = ihf::db::widgets::by_slug(&app.db, hub_id, "card-form").await.expect("renamed");
    assert_eq!((saved.id, saved.owner_id, saved.allowed_origins.as_str()), (widget.id, None, ""));

    // Rotation shows a new secret once.
    let edit = format!("{list}/card-form");
    let rotated = post_form(&app, &olga, &edit, &format!("{edit}/rotate-secret"), &[]).await;
    assert_eq!(rotated.status(), 200);
    let html = rotated.text().await.expect("body");
    let after = ihf::db::widgets::by_slug(&app.db, hub_id, "card-form").await.expect("widget");
    assert_ne!(after.embed_secret, widget.embed_secret);
    assert!(html.contains(&format!("data-embed-secret>{}<", after.embed_secret)));

    // Archiving hides it (not on the dashboard) without deleting it.
    let archived = post_form(&app, &olga, &edit, &format!("{edit}/archive"), &[]).await;
    assert_eq!(archived.status(), 303);
    let after = ihf::db::widgets::by_slug(&app.db, hub_id, "card-form").await.expect("still stored");
    assert!(after.archived_at.is_some());
    let panel =
        olga.get(app.url("/hubs/checkout/widgets-panel")).send().await.expect("GET").text().await.expect("body");
    assert!(!panel.contains("Card form") && panel.contains("Address"));
    let restored = post_form(&app, &olga, &edit, &format!("{edit}/restore"), &[]).await;
    assert_eq!(restored.status(), 303);
    assert!(ihf::db::widgets::by_slug(&app.db, hub_id, "card-form").await.expect("widget").archived_at.is_none());
});

dual_test!(non_operators_are_refused_and_nothing_changes, |app| {
    setup(&app).await;
    let hub_id = app.scalar("SELECT id FROM hubs WHERE slug = 'checkout'").await;
    ihf::db::widgets::create(
        &app.db,
        &ihf::db::widgets::NewWidget {
            hub_id,
            slug: "cart",
            name: "Cart",
            description: "",
            owner_id: None,
            policy_scope: "members",
            allowed_origins: "",
        },
    )
    .await
    .expect("widget");
    let snapshot = |app: &TestApp| {
        let db = app.db.clone();
        async move {
            let q = "SELECT (SELECT COUNT(*) FROM widgets) * 1000000 + (SELECT COUNT(*) FROM hub_members) * 10000
                   + (SELECT COUNT(*) FROM webhooks) * 100 + (SELECT COUNT(*) FROM widgets WHERE archived_at IS NOT NULL)";
            let n: i64 = sqlx::query_scalar(q).fetch_one(db.reader()).await.expect("snapshot");
            let w: (String, String, String) =
                sqlx::query_as("SELECT name, embed_secret, policy_scope FROM widgets WHERE slug = 'cart'")
                    .fetch_one(db.reader())
                    .await
                    .expect("widget");
            let roles: Vec<(i64, String)> =
                sqlx::query_as("SELECT actor_id, role FROM hub_members ORDER BY hub_id, actor_id")
                    .fetch_all(db.reader())
                    .await
                    .expect("roles");
            (n, w, roles)
        }
    };
    let before = snapshot(&app).await;
    let olga_id = ihf::db::actors::by_handle(&app.db, "olga").await.expect("olga").id.to_string();
    let widget_form: &[(&str, &str)] = &[("name", "Hacked"), ("slug", "cart"), ("policy_scope", "public")];
    let posts: Vec<(&str, &[(&str, &str)])> = vec![
        ("/hubs/checkout/settings/widgets", &[("name", "New"), ("slug", "new"), ("policy_scope", "public")]),
        ("/hubs/checkout/settings/widgets/cart", widget_form),
        ("/hubs/checkout/settings/widgets/cart/rotate-secret", &[]),
        ("/hubs/checkout/settings/widgets/cart/archive", &[]),
        ("/hubs/checkout/settings/members", &[("handle", "ali"), ("role", "operator")]),
        ("/hubs/checkout/settings/webhooks", &[("url", "https://8.8.8.8/hook"), ("events", "annotation.created")]),
    ];
    let gets = [
        "/hubs/checkout/settings",
        "/hubs/checkout/settings/widgets",
        "/hubs/checkout/settings/widgets/cart",
        "/hubs/checkout/settings/members",
        "/hubs/checkout/settings/webhooks",
    ];
    for (who, expected) in [("tomas", 403), ("anna", 403), ("ali", 403)] {
        let client = app.signed_in(who, PASSWORD).await;
        for path in gets {
            assert_eq!(client.get(app.url(path)).send().await.expect("GET").status(), expected, "{who} GET {path}");
        }
        for (path, fields) in &posts {
            let response = post_form(&app, &client, "/", path, fields).await;
            assert_eq!(response.status(), expected, "{who} POST {path}");
        }
        let change = format!("/hubs/checkout/settings/members/{olga_id}");
        assert_eq!(post_form(&app, &client, "/", &change, &[("role", "annotator")]).await.status(), expected);
        assert_eq!(post_form(&app, &client, "/", &format!("{change}/remove"), &[]).await.status(), expected);
    }
    let anonymous = app.new_client();
    for path in gets {
        assert_eq!(anonymous.get(app.url(path)).send().await.expect("GET").status(), 401, "anonymous GET {path}");
    }
    for (path, fields) in &posts {
        assert_eq!(post_form(&app, &anonymous, "/login", path, fields).await.status(), 401, "anonymous POST {path}");
    }
    // A request without the CSRF token changes nothing either.
    let olga = app.signed_in("olga", PASSWORD).await;
    let no_token = olga.post(app.url("/hubs/checkout/settings/widgets/cart/archive")).send().await.expect("POST");
    assert_eq!(no_token.status(), 403);
    assert_eq!(snapshot(&app).await, before);
});

dual_test!(operators_manage_members_and_keep_an_operator, |app| {
    setup(&app).await;
    let olga = app.signed_in("olga", PASSWORD).await;
    let page = "/hubs/checkout/settings/members";
    let html = olga.get(app.url(page)).send().await.expect("GET").text().await.expect("body");
    assert!(html.contains("tomas") && html.contains("anna") && !html.contains(">ali<"));
    let hub_id = app.scalar("SELECT id FROM hubs WHERE slug = 'checkout'").await;
    let role_of = |handle: &'static str| {
        let db = app.db.clone();
        async move {
            let id = ihf::db::actors::by_handle(&db, handle).await.expect("person").id;
            ihf::db::actors::role_in(&db, hub_id, id).await.expect("role")
        }
    };

    let added = post_form(&app, &olga, page, page, &[("handle", "ali"), ("role", "triager")]).await;
    assert_eq!(added.status(), 303);
    assert_eq!(role_of("ali").await.as_deref(), Some("triager"));

    let unknown = post_form(&app, &olga, page, page, &[("handle", "nobody"), ("role", "triager")]).await;
    assert_eq!(unknown.status(), 422);
    let html = unknown.text().await.expect("body");
    assert!(html.contains("id=\"handle-error\"") && html.contains("Nobody has the handle nobody"));
    assert!(html.contains("value=\"nobody\"") && html.contains("value=\"triager\" selected"));

    let again = post_form(&app, &olga, page, page, &[("handle", "ali"), ("role", "operator")]).await;
    assert_eq!(again.status(), 422);
    assert!(again.text().await.expect("body").contains("already a member"));
    assert_eq!(role_of("ali").await.as_deref(), Some("triager"), "adding never replaces a role");

    let ali = ihf::db::actors::by_handle(&app.db, "ali").await.expect("ali").id;
    let changed = post_form(&app, &olga, page, &format!("{page}/{ali}"), &[("role", "annotator")]).await;
    assert_eq!(changed.status(), 303);
    assert_eq!(role_of("ali").await.as_deref(), Some("annotator"));
    let removed = post_form(&app, &olga, page, &format!("{page}/{ali}/remove"), &[]).await;
    assert_eq!(removed.status(), 303);
    assert_eq!(role_of("ali").await, None);
    let gone = post_form(&app, &olga, page, &format!("{page}/{ali}/remove"), &[]).await;
    assert_eq!(gone.status(), 404);

    // The last operator can be neither removed nor demoted.
    let olga_id = ihf::db::actors::by_handle(&app.db, "olga").await.expect("olga").id;
    for (path, fields) in
        [(format!("{page}/{olga_id}/remove"), vec![]), (format!("{page}/{olga_id}"), vec![("role", "triager")])]
    {
        let refused = post_form(&app, &olga, page, &path, &fields).await;
        assert_eq!(refused.status(), 422, "{path}");
        let html = refused.text().await.expect("body");
        assert!(html.contains("needs at least one operator"), "{html}");
        assert_eq!(role_of("olga").await.as_deref(), Some("operator"));
    }
    // With a second operator, the first may step down.
    let tomas = ihf::db::actors::by_handle(&app.db, "tomas").await.expect("tomas").id;
    assert_eq!(post_form(&app, &olga, page, &format!("{page}/{tomas}"), &[("role", "operator")]).await.status(), 303);
    assert_eq!(post_form(&app, &olga, page, &format!("{page}/{olga_id}"), &[("role", "triager")]).await.status(), 303);
    assert_eq!(role_of("olga").await.as_deref(), Some("triager"));
    // Now a triager: olga may no longer manage members.
    assert_eq!(olga.get(app.url(page)).send().await.expect("GET").status(), 403);
});
