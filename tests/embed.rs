//! Embeds: the loader, the embed page's framing policy, visitors (anonymous, identified by the
//! host, refused), the composer, the thread (what a visitor may read, live), replies inside the
//! embed and the demo host.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed step is a failed test

mod common;
mod embed_support;

use common::{TestApp, text_attr};
use embed_support::{LIVE, SseReader, composer, count, host_token, post_composer, visitor_token, widget};
use ihf::auth::tokens;

fn header(response: &reqwest::Response, name: &str) -> String {
    response.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned()
}

async fn actors(app: &TestApp) -> i64 {
    app.scalar("SELECT COUNT(*) FROM actors").await
}

dual_test!(the_loader_is_a_small_cached_script_that_injects_no_inline_code, |app| {
    let response = app.get("/embed.js").await;
    assert_eq!(response.status(), 200);
    assert!(header(&response, "content-type").starts_with("text/javascript"));
    assert_eq!(header(&response, "cache-control"), "public, max-age=300");
    let script = response.text().await.expect("script");
    assert!(script.contains("data-ihf-widget") && script.contains("/embed/"));
    assert!(script.contains("event.origin !== base"), "resize messages are origin-checked");
    for forbidden in ["innerHTML", "document.write", "setAttribute(\"style\"", "eval("] {
        assert!(!script.contains(forbidden), "the loader uses {forbidden}");
    }
    let frame = app.get("/static/embed-frame.js").await.text().await.expect("frame script");
    assert!(
        frame.contains("postMessage") && frame.contains("parentOrigin"),
        "the frame posts to the host's origin only"
    );
    assert!(!frame.contains("postMessage(message, \"*\")"));
});

dual_test!(frame_ancestors_lists_the_widgets_origins_and_nothing_else, |app| {
    app.seed_demo().await;
    let (widget_id, _, key, _) = widget(&app, "cart-summary").await;
    let page = app.get(&format!("/embed/{key}?parent=http://127.0.0.1:8081")).await;
    assert_eq!(page.status(), 200);
    let csp = header(&page, "content-security-policy");
    assert!(csp.ends_with("frame-ancestors http://127.0.0.1:8081 http://localhost:8081"), "{csp}");
    assert!(csp.contains("script-src 'self'") && csp.contains("style-src 'self'"), "{csp}");
    assert!(page.headers().get("x-frame-options").is_none(), "X-Frame-Options would forbid the embed");
    assert_eq!(header(&page, "referrer-policy"), "no-referrer");
    assert!(page.text().await.expect("body").contains("data-parent-origin=\"http://127.0.0.1:8081\""));

    // Every other page refuses to be framed.
    for path in ["/", "/login", "/api/v1/openapi.json"] {
        let other = app.get(path).await;
        assert!(header(&other, "content-security-policy").contains("frame-ancestors 'none'"), "{path}");
        assert_eq!(header(&other, "x-frame-options"), "DENY", "{path}");
    }

    // No origins: not framable. A malformed origin never reaches the header.
    sqlx::query("UPDATE widgets SET allowed_origins = $1 WHERE id = $2")
        .bind("https://shop.example; script-src * https://ok.example")
        .bind(widget_id)
        .execute(app.db.writer())
        .await
        .expect("origins");
    let csp = header(&app.get(&format!("/embed/{key}")).await, "content-security-policy");
    assert!(csp.ends_with("frame-ancestors https://ok.example"), "{csp}");
    sqlx::query("UPDATE widgets SET allowed_origins = '' WHERE id = $1")
        .bind(widget_id)
        .execute(app.db.writer())
        .await
        .expect("origins");
    let page = app.get(&format!("/embed/{key}?parent=http://127.0.0.1:8081")).await;
    let csp = header(&page, "content-security-policy");
    assert!(csp.ends_with("frame-ancestors 'none'"), "{csp}");
    assert!(
        page.text().await.expect("body").contains("data-parent-origin=\"\""),
        "a parent that is not allowed gets no messages"
    );

    let missing = app.get("/embed/no-such-widget").await;
    assert_eq!(missing.status(), 404);
    assert!(missing.text().await.expect("body").contains("does not exist"));
});

dual_test!(an_anonymous_visitor_is_kept_by_cookie_or_carried_token, |app| {
    app.seed_demo().await;
    let (_, _, key, _) = widget(&app, "cart-summary").await;
    let before = actors(&app).await;
    let page = app.new_client().get(app.url(&format!("/embed/{key}?theme=dark"))).send().await.expect("page");
    let cookie = header(&page, "set-cookie");
    for attribute in
        ["ihf_visitor=", &format!("Path=/embed/{key}"), "HttpOnly", "Secure", "SameSite=None", "Partitioned"]
    {
        assert!(cookie.contains(attribute), "{attribute} in {cookie}");
    }
    let html = page.text().await.expect("body");
    assert!(html.contains("data-theme=\"dark\""));
    assert!(html.contains("data-fresh-visitor=\"true\""));
    assert!(html.contains("(anonymous)"));
    let token = text_attr(&html, "data-visitor-token=\"").expect("token");
    assert_eq!(actors(&app).await, before, "looking writes nothing");

    // The iframe's token, or the cookie, bring the same visitor back.
    let carried = app.get(&format!("/embed/{key}?vt={token}&theme=bogus")).await.text().await.expect("body");
    assert!(carried.contains(&format!("data-visitor-token=\"{token}\"")));
    // A theme the host did not ask for (or an unknown one) is light, not the visitor's system
    // preference: a light host page is not given a dark frame; `auto` follows the system.
    assert!(carried.contains("data-fresh-visitor=\"false\"") && carried.contains("data-theme=\"light\""));
    let auto = app.get(&format!("/embed/{key}?vt={token}&theme=auto")).await.text().await.expect("body");
    assert!(auto.contains("data-theme=\"auto\""));
    let by_cookie = app
        .new_client()
        .get(app.url(&format!("/embed/{key}")))
        .header("Cookie", format!("ihf_visitor={token}"))
        .send()
        .await
        .expect("page");
    assert!(by_cookie.text().await.expect("body").contains(&format!("data-visitor-token=\"{token}\"")));

    // A token of another widget is no identity here: a fresh visitor instead.
    let (_, _, other_key, _) = widget(&app, "promo-code").await;
    let elsewhere = app.get(&format!("/embed/{other_key}?vt={token}")).await.text().await.expect("body");
    assert!(elsewhere.contains("data-fresh-visitor=\"true\""));
    assert!(!elsewhere.contains(&token));
});

dual_test!(host_tokens_identify_visitors_or_are_refused_with_a_clear_message, |app| {
    app.seed_demo().await;
    let (widget_id, _, key, secret) = widget(&app, "payment-form").await;
    let (_, _, other_key, other_secret) = widget(&app, "cart-summary").await;
    let before = actors(&app).await;
    for (token, reason) in [
        (host_token(&secret, &key, "c-42", "Jamie", -3600), "expired"),
        (host_token(&other_secret, &other_key, "c-42", "Jamie", 300), "another widget"),
        (host_token("a guessed secret", &key, "c-42", "Jamie", 300), "signature"),
        (host_token(&secret, &key, "c-42", "Jamie", 3600), "too far ahead"),
        ("not-a-token".to_owned(), "malformed"),
    ] {
        let page = app.get(&format!("/embed/{key}?token={token}")).await;
        assert_eq!(page.status(), 401, "{reason}");
        assert!(
            header(&page, "content-security-policy").contains("frame-ancestors http://127.0.0.1:8081"),
            "shown in the iframe"
        );
        let html = page.text().await.expect("body");
        assert!(html.contains(reason), "{reason}: {html}");
        assert!(!html.contains("id=\"composer\""));
    }
    assert_eq!(actors(&app).await, before, "refused tokens create nobody");

    let page = app.get(&format!("/embed/{key}?token={}", host_token(&secret, &key, "c-42", "Jamie Rivera", 300))).await;
    assert_eq!(page.status(), 200);
    let html = page.text().await.expect("body");
    assert!(html.contains("as Jamie Rivera") && !html.contains("(anonymous)"));
    let reference = format!("host:{widget_id}:c-42");
    let (id, name, kind): (i64, String, String) =
        sqlx::query_as("SELECT id, display_name, kind FROM actors WHERE external_ref = $1")
            .bind(&reference)
            .fetch_one(app.db.reader())
            .await
            .expect("the identified visitor");
    assert_eq!((name.as_str(), kind.as_str()), ("Jamie Rivera", "visitor"));
    // The host renames its user: the same actor, renamed.
    app.get(&format!("/embed/{key}?token={}", host_token(&secret, &key, "c-42", "Jamie R.", 300))).await;
    let renamed: (i64, String) = sqlx::query_as("SELECT id, display_name FROM actors WHERE external_ref = $1")
        .bind(&reference)
        .fetch_one(app.db.reader())
        .await
        .expect("visitor");
    assert_eq!(renamed, (id, "Jamie R.".to_owned()));
    // IHF's visitor token from that page lives longer than the host's, and stays identified.
    let token = text_attr(&html, "data-visitor-token=\"").expect("token");
    let claims = tokens::peek(&token).expect("claims");
    assert_eq!(claims.sub, reference);
    assert!(claims.exp > tokens::now_s() + 600);
});

dual_test!(the_composer_posts_as_the_visitor, |app| {
    app.seed_demo().await;
    let (widget_id, _, key, _) = widget(&app, "cart-summary").await;
    let token = visitor_token(&app, &key).await;
    let (action, state) = composer(&app, &key, &token).await;
    assert!(action.starts_with(&format!("/embed/{key}/annotations?vt={token}")), "{action}");
    let rows = || count(&app, "SELECT COUNT(*) FROM annotations WHERE widget_id = $1", widget_id);
    let before = rows().await;

    // Mistakes: 422 with the message and what was typed, by the shared composer's rules.
    let long = "word ".repeat(801);
    for (body, category, message, typed) in [
        ("   ", "bug", "cannot be empty", ""),
        (long.as_str(), "bug", "at most 4000", long.as_str()),
        ("Totals jump around.", "gossip", "Choose one of these categories.", "Totals jump around."),
    ] {
        let response = post_composer(&app, &action, &state, &[("body", body), ("category", category)], true, &[]).await;
        assert_eq!(response.status(), 422, "{message}");
        let html = response.text().await.expect("body");
        assert!(html.contains(message), "{message}: {html}");
        assert!(html.contains(typed.trim_end()), "the text typed is kept");
    }
    // Typing: the count, no write.
    let typing = post_composer(&app, &action, &state, &[("body", "Hal"), ("action", "body")], true, &[]).await;
    assert_eq!(typing.status(), 200);
    assert!(typing.text().await.expect("body").contains("3 / 4000"));
    assert_eq!(rows().await, before);

    // Refused: another site's page, nobody, a tampered or foreign form.
    let fields = [("body", "Forged"), ("category", "bug")];
    let forged = post_composer(&app, &action, &state, &fields, true, &[("Origin", "https://evil.example")]).await;
    assert_eq!(forged.status(), 403);
    let nobody = post_composer(&app, &format!("/embed/{key}/annotations"), &state, &fields, true, &[]).await;
    assert_eq!(nobody.status(), 401);
    let tampered = format!("{}x", &state);
    assert_eq!(post_composer(&app, &action, &tampered, &fields, true, &[]).await.status(), 400);
    let (_, other_key, _) = {
        let w = widget(&app, "promo-code").await;
        (w.0, w.2, w.3)
    };
    let other_token = visitor_token(&app, &other_key).await;
    let (_, other_state) = composer(&app, &other_key, &other_token).await;
    assert_eq!(post_composer(&app, &action, &other_state, &fields, true, &[]).await.status(), 400);
    assert_eq!(rows().await, before);

    // Sent from the iframe (IHF's own origin), twice with the same composer: one annotation.
    let body = "The total <script>alert(1)</script> hides under the banner.";
    let fields = [("body", body), ("category", "bug")];
    let response = post_composer(&app, &action, &state, &fields, true, &[("Origin", &app.address)]).await;
    assert_eq!(response.status(), 200);
    let html = response.text().await.expect("body");
    assert!(html.contains("Thanks, your feedback was submitted."));
    assert!(html.contains("hx-swap-oob"), "the thread comes along");
    assert!(
        html.contains("The total &#60;script&#62;") || html.contains("The total &lt;script&gt;"),
        "escaped: {html}"
    );
    assert!(!html.contains("<script>alert(1)"));
    assert_eq!(post_composer(&app, &action, &state, &fields, true, &[]).await.status(), 200);
    assert_eq!(rows().await, before + 1);
    let (category, kind, reference): (String, String, String) = sqlx::query_as(
        "SELECT c.slug, p.kind, p.external_ref FROM annotations a JOIN categories c ON c.id = a.category_id
         JOIN actors p ON p.id = a.actor_id WHERE a.widget_id = $1 ORDER BY a.id DESC LIMIT 1",
    )
    .bind(widget_id)
    .fetch_one(app.db.reader())
    .await
    .expect("row");
    assert_eq!((category.as_str(), kind.as_str()), ("bug", "visitor"));
    assert!(reference.starts_with("anon:"));

    // Without JavaScript, and with the cookie alone: a plain post, then back to the page.
    let (_, state) = composer(&app, &key, &token).await;
    let response = post_composer(
        &app,
        &format!("/embed/{key}/annotations?theme=dark"),
        &state,
        &[("body", "Posted without JavaScript."), ("category", "idea")],
        false,
        &[("Cookie", &format!("ihf_visitor={token}"))],
    )
    .await;
    assert_eq!(response.status(), 303);
    let location = header(&response, "location");
    assert!(location.starts_with(&format!("/embed/{key}?vt=")) && location.contains("theme=dark"), "{location}");
    let page = app.get(&location).await.text().await.expect("page");
    assert!(page.contains("Posted without JavaScript.") && page.contains("Thanks, your feedback was submitted."));
    assert_eq!(rows().await, before + 2);
});

dual_test!(the_thread_shows_a_public_widget_whole_and_otherwise_only_ones_own, |app| {
    app.seed_demo().await;
    for (slug, public) in [("payment-form", false), ("cart-summary", true)] {
        let (_, _, key, _) = widget(&app, slug).await;
        let author = visitor_token(&app, &key).await;
        let other = visitor_token(&app, &key).await;
        let text = format!("Written by the first visitor on {slug}.");
        let (action, state) = composer(&app, &key, &author).await;
        let fields = [("body", text.as_str()), ("category", "friction")];
        assert_eq!(post_composer(&app, &action, &state, &fields, true, &[]).await.status(), 200);
        let own = app.get(&format!("/embed/{key}?vt={author}")).await.text().await.expect("page");
        assert!(own.contains(&text), "{slug}: the author sees it");
        assert!(own.contains("<span class=\"badge\">you</span>"));
        for path in [
            format!("/embed/{key}?vt={other}"),
            format!("/embed/{key}/thread?vt={other}"),
            format!("/embed/{key}/thread"),
        ] {
            let seen = app.get(&path).await.text().await.expect("page");
            assert_eq!(seen.contains(&text), public, "{slug}: {path}");
        }
        if !public {
            // The members' own feedback on the widget stays out of the embed too.
            let page = app.get(&format!("/embed/{key}?vt={other}")).await.text().await.expect("page");
            assert!(page.contains("Only you and the team can read it."));
        }
    }
});

dual_test!(the_thread_is_live, |app| {
    app.seed_demo().await;
    let (_, _, key, _) = widget(&app, "cart-summary").await;
    let watcher = visitor_token(&app, &key).await;
    let response =
        app.new_client().get(app.url(&format!("/embed/{key}/live?vt={watcher}"))).send().await.expect("stream");
    let mut reader = SseReader::new(response);
    let first = reader.next(LIVE).await.expect("the current thread");
    assert_eq!(first.event, "thread");
    let writer = visitor_token(&app, &key).await;
    let (action, state) = composer(&app, &key, &writer).await;
    let fields = [("body", "Arrives without a reload."), ("category", "praise")];
    assert_eq!(post_composer(&app, &action, &state, &fields, true, &[]).await.status(), 200);
    let (_, update) = reader.until("thread", LIVE, |e| e.data.contains("Arrives without a reload.")).await;
    assert!(update.is_some(), "the new annotation arrived");
});

// A first-time anonymous visitor gets their actor with their first post, after their stream
// opened: the live update that follows still marks the post as theirs (it used not to until a
// reload).
dual_test!(a_first_post_is_marked_yours_in_the_live_thread, |app| {
    app.seed_demo().await;
    let (_, _, key, _) = widget(&app, "cart-summary").await;
    let visitor = visitor_token(&app, &key).await;
    let response =
        app.new_client().get(app.url(&format!("/embed/{key}/live?vt={visitor}"))).send().await.expect("stream");
    let mut reader = SseReader::new(response);
    let first = reader.next(LIVE).await.expect("the current thread");
    assert!(!first.data.contains("<span class=\"badge\">you</span>"), "nothing of theirs yet");
    let (action, state) = composer(&app, &key, &visitor).await;
    let fields = [("body", "My very first note here."), ("category", "praise")];
    assert_eq!(post_composer(&app, &action, &state, &fields, true, &[]).await.status(), 200);
    let (_, update) = reader.until("thread", LIVE, |e| e.data.contains("My very first note here.")).await;
    let update = update.expect("the new annotation arrived");
    let mine = &update.data[..update.data.find("My very first note here.").expect("the post")];
    let item = &mine[mine.rfind("<li").expect("its item")..];
    assert!(item.contains("<span class=\"badge\">you</span>"), "marked as the visitor's own: {item}");
});

/// Posts a form to the embed as the iframe's htmx does (IHF's own origin).
async fn embed_post(app: &TestApp, path: &str, form: &[(&str, &str)], htmx: bool) -> reqwest::Response {
    let mut request = app.new_client().post(app.url(path)).header("Origin", app.address.clone()).form(form);
    if htmx {
        request = request.header("HX-Request", "true");
    }
    request.send().await.expect("post")
}

dual_test!(a_visitor_reads_and_answers_the_replies_to_their_feedback_inside_the_embed, |app| {
    let logins = app.seed_demo().await;
    // A members widget: the visitor reads only their own feedback, and its replies.
    let (widget_id, _, key, _) = widget(&app, "payment-form").await;
    let author = visitor_token(&app, &key).await;
    let (action, state) = composer(&app, &key, &author).await;
    let fields = [("body", "The card form rejects my postcode."), ("category", "bug")];
    assert_eq!(post_composer(&app, &action, &state, &fields, true, &[]).await.status(), 200);
    let id = count(&app, "SELECT MAX(id) FROM annotations WHERE widget_id = $1", widget_id).await;
    let response =
        app.new_client().get(app.url(&format!("/embed/{key}/live?vt={author}"))).send().await.expect("stream");
    let mut reader = SseReader::new(response);
    let first = reader.next(LIVE).await.expect("the current thread");
    assert!(first.data.contains(&format!("id=\"embed-reply-body-{id}\"")), "a reply form under one's own feedback");

    // Staff reply in IHF, publicly and internally: the public reply reaches the embed live,
    // the internal one never.
    let tomas = app.signed_in("tomas", &logins["tomas"]).await;
    let csrf = app.csrf(&tomas, "/").await;
    let staff_url = format!("/hubs/checkout/widgets/payment-form/annotations/{id}/replies");
    for form in
        [vec![("body", "INTERNAL-NOTE check the validator"), ("internal", "1")], vec![("body", "Which postcode?")]]
    {
        let sent = tomas
            .post(app.url(&staff_url))
            .header("HX-Request", "true")
            .header("X-CSRF-Token", &csrf)
            .form(&form)
            .send()
            .await
            .expect("staff reply");
        assert_eq!(sent.status(), 200);
    }
    let (seen, update) = reader.until("thread", LIVE, |e| e.data.contains("Which postcode?")).await;
    assert!(update.is_some(), "the staff reply arrived live");
    assert!(seen.iter().chain(update.iter()).all(|e| !e.data.contains("INTERNAL-NOTE")), "no internal reply");
    let page = app.get(&format!("/embed/{key}?vt={author}")).await.text().await.expect("page");
    assert!(page.contains("Which postcode?") && !page.contains("INTERNAL-NOTE"));

    // The visitor answers from the embed (mentioning staff notifies them).
    let reply_url = format!("/embed/{key}/annotations/{id}/replies?vt={author}");
    let answered = embed_post(&app, &reply_url, &[("body", "@tomas It is 1012 AB, a Dutch one.")], true).await;
    assert_eq!(answered.status(), 200);
    let html = answered.text().await.expect("body");
    assert!(html.starts_with(&format!("<div class=\"replies embed-replies\" id=\"embed-replies-{id}\"")), "{html}");
    assert!(html.contains("It is 1012 AB") && html.contains("Which postcode?") && !html.contains("INTERNAL-NOTE"));
    let (reply_id, visitor_kind): (i64, String) = sqlx::query_as(
        "SELECT r.id, p.kind FROM annotation_replies r JOIN actors p ON p.id = r.actor_id
          WHERE r.annotation_id = $1 AND r.body LIKE '%1012 AB%'",
    )
    .bind(id)
    .fetch_one(app.db.reader())
    .await
    .expect("the visitor's reply");
    assert_eq!(visitor_kind, "visitor");
    let mentioned = count(
        &app,
        "SELECT COUNT(*) FROM notifications n JOIN actors p ON p.id = n.recipient_id
          WHERE n.reply_id = $1 AND n.kind = 'mentioned' AND p.handle = 'tomas'",
        reply_id,
    )
    .await;
    assert_eq!(mentioned, 1, "the mentioned triager is notified");
    let (_, update) = reader.until("thread", LIVE, |e| e.data.contains("1012 AB")).await;
    assert!(update.is_some(), "the visitor's own answer shows in the live thread");
    let staff_view = tomas.get(app.url("/hubs/checkout/widgets/payment-form")).send().await.expect("page");
    assert!(staff_view.text().await.expect("body").contains("It is 1012 AB"), "staff read it in IHF");

    // Bad input: 422 with the message, what was typed kept; nothing stored.
    let replies = || count(&app, "SELECT COUNT(*) FROM annotation_replies WHERE annotation_id = $1", id);
    let before = replies().await;
    let empty = embed_post(&app, &reply_url, &[("body", "   ")], true).await;
    assert_eq!(empty.status(), 422);
    assert!(empty.text().await.expect("body").contains("Write something first"));
    let long = format!("{}TAIL", "x".repeat(4000));
    let refused = embed_post(&app, &reply_url, &[("body", &long)], true).await;
    assert_eq!(refused.status(), 422);
    assert!(refused.text().await.expect("body").contains("xxxxTAIL</textarea>"));
    // Refused: another site's page, nobody, another visitor (who does not read it), and
    // anyone under feedback that is not theirs.
    let forged = app
        .new_client()
        .post(app.url(&reply_url))
        .header("Origin", "https://evil.example")
        .form(&[("body", "forged")])
        .send()
        .await
        .expect("forged");
    assert_eq!(forged.status(), 403);
    let nobody = embed_post(&app, &format!("/embed/{key}/annotations/{id}/replies"), &[("body", "nobody")], true).await;
    assert_eq!(nobody.status(), 401);
    let other = visitor_token(&app, &key).await;
    let stranger =
        embed_post(&app, &format!("/embed/{key}/annotations/{id}/replies?vt={other}"), &[("body", "x")], true).await;
    assert_eq!(stranger.status(), 404);
    assert_eq!(replies().await, before);
    let (_, _, cart_key, _) = widget(&app, "cart-summary").await;
    let cart_visitor = visitor_token(&app, &cart_key).await;
    let wendys: i64 = app
        .scalar(
            "SELECT MIN(a.id) FROM annotations a JOIN widgets w ON w.id = a.widget_id WHERE w.slug = 'cart-summary'",
        )
        .await;
    let on_public = format!("/embed/{cart_key}/annotations/{wendys}/replies?vt={cart_visitor}");
    assert_eq!(embed_post(&app, &on_public, &[("body", "me too")], true).await.status(), 403);
    let public_page = app.get(&format!("/embed/{cart_key}?vt={cart_visitor}")).await.text().await.expect("page");
    assert!(!public_page.contains("class=\"reply-form\""), "no reply form under others' feedback");

    // The visitor edits their answer (same rules), and only theirs.
    let edit = app.get(&format!("/embed/{key}/replies/{reply_id}/edit?vt={author}")).await;
    assert_eq!(edit.status(), 200);
    let form = edit.text().await.expect("body");
    assert!(form.contains("data-editing") && form.contains("1012 AB"), "{form}");
    let save_url = format!("/embed/{key}/replies/{reply_id}?vt={author}");
    assert_eq!(embed_post(&app, &save_url, &[("body", "")], true).await.status(), 422);
    let saved = embed_post(&app, &save_url, &[("body", "It is 1012 AB (Amsterdam).")], true).await;
    assert_eq!(saved.status(), 200);
    let html = saved.text().await.expect("body");
    assert!(html.contains("(Amsterdam)") && html.contains("(edited)"), "{html}");
    let staff_reply =
        count(&app, "SELECT id FROM annotation_replies WHERE annotation_id = $1 AND body = 'Which postcode?'", id)
            .await;
    let hijack = format!("/embed/{key}/replies/{staff_reply}?vt={author}");
    assert_eq!(embed_post(&app, &hijack, &[("body", "x")], true).await.status(), 403);
    let by_other = format!("/embed/{key}/replies/{reply_id}?vt={other}");
    assert_eq!(embed_post(&app, &by_other, &[("body", "x")], true).await.status(), 404);

    // Without JavaScript: a plain post, then back to the page at the annotation.
    let plain = embed_post(&app, &reply_url, &[("body", "Sent without JavaScript.")], false).await;
    assert_eq!(plain.status(), 303);
    let location = header(&plain, "location");
    assert_eq!(location, format!("/embed/{key}?vt={author}#embed-annotation-{id}"));
    assert!(app.get(&location).await.text().await.expect("page").contains("Sent without JavaScript."));
});

dual_test!(the_demo_host_embeds_widgets_from_another_origin, |app| {
    app.seed_demo().await;
    let (port, server) =
        ihf::demo_host::build(app.db.clone(), "127.0.0.1:0".parse().expect("addr"), app.address.clone())
            .expect("demo host");
    let handle = server.handle();
    tokio::spawn(server);
    // On any port: the page's origin becomes one the demo widgets allow (once).
    let origin = format!("http://127.0.0.1:{port}");
    assert_eq!(ihf::demo_host::allow_origin(&app.db, &origin).await.expect("allow"), ["cart-summary", "payment-form"]);
    assert!(ihf::demo_host::allow_origin(&app.db, &origin).await.expect("again").is_empty(), "listed once");
    let (_, _, public_key, _) = widget(&app, "cart-summary").await;
    let framed = app.get(&format!("/embed/{public_key}")).await;
    assert!(header(&framed, "content-security-policy").contains(&origin), "frame-ancestors names the demo host");
    let page = reqwest::get(format!("http://127.0.0.1:{port}/")).await.expect("demo page");
    assert_eq!(page.status(), 200);
    let csp = header(&page, "content-security-policy");
    assert!(csp.contains(&format!("script-src {}", app.address)) && csp.contains("style-src 'self'"), "{csp}");
    let html = page.text().await.expect("body");
    assert_eq!(html.matches(&format!("src=\"{}/embed.js\"", app.address)).count(), 2);
    assert!(!html.contains("style=") && !html.contains("<script>"), "no inline style or script");
    let (_, _, key, secret) = widget(&app, "payment-form").await;
    let token = text_attr(&html, "data-ihf-token=\"").expect("identified embed");
    let claims = tokens::verify(&token, secret.as_bytes(), &key, tokens::now_s(), Some(tokens::HOST_MAX_LIFETIME_S))
        .expect("signed with the widget's secret");
    assert_eq!(claims.name.as_deref(), Some("Jamie Rivera"));
    // The embed it points at accepts the token.
    assert_eq!(app.get(&format!("/embed/{key}?token={token}")).await.status(), 200);
    handle.stop(false).await;
});

/// Headless Chromium through chromedriver (the browser suite's, `common::browser`), for the one
/// test only a browser can show; runs when `IHF_TEST_BROWSER` is set (CI sets it).
mod in_a_browser {
    use std::time::Duration;

    use crate::common::browser::{browser, sign_in, wait_for};
    use fantoccini::Locator;
    use ihf::db::Backend;

    use super::*;

    /// The demo host page on one site (localhost) embeds a widget from another (127.0.0.1); a
    /// visitor writes inside the iframe; the widget's inbox shows it without a reload.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_visitor_annotates_inside_the_iframe_and_the_inbox_shows_it_live() {
        if !common::browser::enabled() {
            return;
        }
        let backend = if common::pg_enabled() { Backend::Postgres } else { Backend::Sqlite };
        let app = common::spawn_app(backend).await;
        let logins = app.seed_demo().await;
        let (port, server) =
            ihf::demo_host::build(app.db.clone(), "127.0.0.1:0".parse().expect("addr"), app.address.clone())
                .expect("demo host");
        tokio::spawn(server);
        let host = format!("http://localhost:{port}");
        ihf::demo_host::allow_origin(&app.db, &host).await.expect("allow the demo host");

        let browser = browser().await;
        let b = &browser.client;
        // The operator watches the widget's feedback inbox.
        sign_in(b, &app, "olga", &logins["olga"]).await;
        b.goto(&app.url("/hubs/checkout/widgets/cart-summary/inbox")).await.expect("inbox");
        wait_for(b, "the live stream", |html| html.contains("data-live-status=\"open\"")).await;
        let inbox = b.window().await.expect("window");

        // A visitor on the third-party page, in another tab.
        let tab = b.new_window(true).await.expect("tab");
        b.switch_to_window(tab.handle).await.expect("switch");
        b.goto(&format!("{host}/")).await.expect("demo host page");
        let frame =
            b.wait().for_element(Locator::Css("iframe.ihf-embed")).await.expect("the loader inserted an iframe");
        // The iframe sized itself through postMessage (the loader's default is 360).
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let height = frame.attr("height").await.expect("height").unwrap_or_default();
            if height != "360" && !height.is_empty() {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "the iframe was never resized");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        frame.enter_frame().await.expect("into the iframe");
        let text = "Written inside the iframe on a third-party page";
        b.wait()
            .for_element(Locator::Id("composer-body"))
            .await
            .expect("composer")
            .send_keys(text)
            .await
            .expect("type");
        b.find(Locator::Css("#composer button[type=submit]")).await.expect("send").click().await.expect("click");
        let inside = wait_for(b, "the thanks note", |html| html.contains("Thanks, your feedback was submitted.")).await;
        assert!(inside.contains(text), "the visitor's thread shows it");

        // The operator's inbox has it, without a reload.
        b.switch_to_window(inbox).await.expect("back to the inbox");
        wait_for(b, "the annotation in the inbox", |html| html.contains(text)).await;
        let _ = b.clone().close().await;
    }
}
