//! Real client addresses behind reverse proxies (#13): with `IHF_TRUSTED_PROXIES` naming the
//! peer, the sign-in throttle, event ingestion and live-stream admission key on the client that
//! `X-Forwarded-For` / `Forwarded` name, so two clients behind one proxy get separate budgets;
//! from an untrusted peer the headers are ignored, so forging them escapes no limit; malformed
//! headers are answered like any request, never with a 500. Every test runs on SQLite and on
//! PostgreSQL, through HTTP on a real app (the tests' peer is 127.0.0.1).
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed step is a failed test

mod common;

use common::{SseClient, TestApp};
use reqwest::header::{HeaderName, HeaderValue};
use serde_json::json;

/// Failed sign-ins one address may make before it waits (`auth::throttle::PER_IP`).
const PER_IP: usize = ihf::auth::throttle::PER_IP;

fn trust_loopback(config: &mut ihf::Config) {
    config.trusted_proxies = "127.0.0.1,::1".parse().unwrap();
}

/// Posts the sign-in form as `handle` with `password`, with `headers` added to the POST.
async fn sign_in(app: &TestApp, headers: &[(&str, &[u8])], handle: &str, password: &str) -> u16 {
    let client = app.new_client();
    let with = |mut request: reqwest::RequestBuilder| {
        for (name, value) in headers {
            request = request
                .header(HeaderName::from_bytes(name.as_bytes()).unwrap(), HeaderValue::from_bytes(value).unwrap());
        }
        request
    };
    let page = client.get(app.url("/login")).send().await.expect("login page");
    assert_eq!(page.status(), 200);
    let csrf = common::csrf_from(&page.text().await.expect("body"));
    let response = with(client.post(app.url("/login")))
        .form(&[("handle", handle), ("password", password), ("csrf_token", &csrf), ("next", "/")])
        .send()
        .await
        .expect("POST /login");
    response.status().as_u16()
}

/// Fails `PER_IP` sign-ins (each for another handle, so no account limit is reached) with
/// `headers_for(i)` on the i-th attempt.
async fn fail_sign_ins(app: &TestApp, headers_for: impl Fn(usize) -> Vec<(&'static str, Vec<u8>)>) {
    for i in 0..PER_IP {
        let headers = headers_for(i);
        let headers: Vec<(&str, &[u8])> = headers.iter().map(|(n, v)| (*n, v.as_slice())).collect();
        assert_eq!(sign_in(app, &headers, &format!("nobody-{i}"), "wrong password").await, 422, "failure {i}");
    }
}

dual_test!(behind_a_trusted_proxy_each_forwarded_client_has_its_own_sign_in_budget, trust_loopback, |app| {
    app.person("pat", &[]).await;
    app.person("quinn", &[]).await;
    // One client behind the proxy uses up its budget (our proxy appended its address last;
    // whatever the client wrote to the left is not read).
    fail_sign_ins(&app, |_| vec![("x-forwarded-for", b"6.6.6.6, 198.51.100.1".to_vec())]).await;
    let first = [("x-forwarded-for", b"203.0.113.50, 198.51.100.1".as_slice())];
    assert_eq!(sign_in(&app, &first, "pat", common::PASSWORD).await, 429, "the same client waits");
    // The same client named by RFC 7239 `Forwarded` is the same budget.
    let same = [("forwarded", b"for=198.51.100.1;proto=https".as_slice())];
    assert_eq!(sign_in(&app, &same, "pat", common::PASSWORD).await, 429, "Forwarded names the same client");
    // Another client behind the same proxy signs in.
    let second = [("x-forwarded-for", b"198.51.100.2".as_slice())];
    assert_eq!(sign_in(&app, &second, "pat", common::PASSWORD).await, 303, "another client is not throttled");
    let v6 = [("forwarded", br#"for="[2001:db8::7]:4711""#.as_slice())];
    assert_eq!(sign_in(&app, &v6, "quinn", common::PASSWORD).await, 303, "an IPv6 client through Forwarded");
    // The proxy itself (no header) is a client of its own too.
    assert_eq!(sign_in(&app, &[], "quinn", common::PASSWORD).await, 303);
});

dual_test!(from_an_untrusted_peer_forged_forwarding_headers_escape_no_throttle, |app| {
    app.person("pat", &[]).await;
    // Nobody is trusted (the default): a new forged address on every attempt changes nothing.
    fail_sign_ins(&app, |i| {
        vec![
            ("x-forwarded-for", format!("198.51.100.{i}").into_bytes()),
            ("forwarded", format!("for=203.0.113.{i}").into_bytes()),
            ("x-real-ip", format!("192.0.2.{i}").into_bytes()),
        ]
    })
    .await;
    let forged = [("x-forwarded-for", b"192.0.2.200".as_slice()), ("forwarded", b"for=192.0.2.201".as_slice())];
    assert_eq!(sign_in(&app, &forged, "pat", common::PASSWORD).await, 429, "the peer's budget is spent");
    assert_eq!(sign_in(&app, &[], "pat", common::PASSWORD).await, 429);
});

dual_test!(
    a_trusted_proxy_that_is_not_the_peer_is_not_believed,
    |config: &mut ihf::Config| config.trusted_proxies = "10.0.0.0/8".parse().unwrap(),
    |app| {
        app.person("pat", &[]).await;
        // The peer, 127.0.0.1, claims to be one of the trusted proxies relaying many clients.
        fail_sign_ins(&app, |i| vec![("x-forwarded-for", format!("198.51.100.{i}, 10.0.0.1").into_bytes())]).await;
        let forged = [("x-forwarded-for", b"198.51.100.250, 10.0.0.1".as_slice())];
        assert_eq!(sign_in(&app, &forged, "pat", common::PASSWORD).await, 429);
    }
);

dual_test!(
    ingestion_limits_key_on_the_forwarded_client_only_behind_a_trusted_proxy,
    |config: &mut ihf::Config| {
        trust_loopback(config);
        config.ingest_per_key_per_min = 1000;
        config.ingest_per_ip_per_min = 2;
    },
    |app| {
        app.seed_demo().await;
        let key: String = sqlx::query_scalar("SELECT embed_key FROM widgets ORDER BY id LIMIT 1")
            .fetch_one(app.db.reader())
            .await
            .unwrap();
        let batch = json!({"events": [{"kind": "view"}]});
        let post = |forwarded: &'static str| {
            app.client
                .post(app.url(&format!("/api/v1/widgets/{key}/events")))
                .header("X-Forwarded-For", forwarded)
                .json(&batch)
                .send()
        };
        let mut statuses = Vec::new();
        for forwarded in
            ["198.51.100.1", "198.51.100.1", "198.51.100.1", "198.51.100.2", "198.51.100.2", "198.51.100.2"]
        {
            statuses.push(post(forwarded).await.expect("post").status().as_u16());
        }
        assert_eq!(statuses, vec![200, 200, 429, 200, 200, 429], "two clients, two budgets");

        // The same server without trust: the header is ignored, one budget for the peer.
        let untrusted = common::spawn_app_with(app.backend, |config| {
            config.ingest_per_key_per_min = 1000;
            config.ingest_per_ip_per_min = 2;
        })
        .await;
        untrusted.seed_demo().await;
        let key: String = sqlx::query_scalar("SELECT embed_key FROM widgets ORDER BY id LIMIT 1")
            .fetch_one(untrusted.db.reader())
            .await
            .unwrap();
        let mut statuses = Vec::new();
        for i in 0..3 {
            let response = untrusted
                .client
                .post(untrusted.url(&format!("/api/v1/widgets/{key}/events")))
                .header("X-Forwarded-For", format!("198.51.100.{i}"))
                .header("Forwarded", format!("for=203.0.113.{i}"))
                .json(&batch)
                .send()
                .await
                .expect("post");
            statuses.push(response.status().as_u16());
        }
        assert_eq!(statuses, vec![200, 200, 429], "forged addresses share the peer's budget");
    }
);

dual_test!(
    live_streams_are_admitted_per_forwarded_client,
    |config: &mut ihf::Config| {
        trust_loopback(config);
        config.live_max_per_ip = 1;
    },
    |app| {
        let open = |forwarded: &'static str| {
            app.new_client().get(app.url("/live?regions=hubs")).header("X-Forwarded-For", forwarded).send()
        };
        let first = open("198.51.100.1").await.expect("GET");
        assert_eq!(first.status(), 200);
        let again = open("198.51.100.1").await.expect("GET");
        assert_eq!(again.status(), 503, "one stream per client");
        assert!(again.headers().contains_key("retry-after"));
        let other = open("198.51.100.2").await.expect("GET");
        assert_eq!(other.status(), 200, "another client behind the proxy has its own slot");
        drop((first, other));

        // Untrusted: forging the header does not buy a second slot.
        let untrusted = common::spawn_app_with(app.backend, |config| config.live_max_per_ip = 1).await;
        let _held = SseClient::open(&untrusted, &untrusted.client, "/live?regions=hubs", None).await;
        let forged = untrusted
            .new_client()
            .get(untrusted.url("/live?regions=hubs"))
            .header("X-Forwarded-For", "198.51.100.9")
            .send()
            .await
            .expect("GET");
        assert_eq!(forged.status(), 503);
    }
);

dual_test!(malformed_forwarding_headers_are_answered_never_with_a_500, trust_loopback, |app| {
    app.person("pat", &[]).await;
    app.seed_demo().await;
    let key: String = sqlx::query_scalar("SELECT embed_key FROM widgets ORDER BY id LIMIT 1")
        .fetch_one(app.db.reader())
        .await
        .unwrap();
    let garbage: [(&str, &[u8]); 12] = [
        ("x-forwarded-for", b"not an address"),
        ("x-forwarded-for", b",,,"),
        ("x-forwarded-for", b"999.1.1.1, unknown"),
        ("x-forwarded-for", b"[::1"),
        ("x-forwarded-for", b"\xff\xfe"),
        ("x-forwarded-for", b"1.2.3.4:notaport"),
        ("forwarded", b"for="),
        ("forwarded", b"for=\""),
        ("forwarded", b"for=unknown;by=_secret"),
        ("forwarded", b";;;===,,"),
        ("forwarded", b"for=\"[2001:db8::zz]\""),
        ("forwarded", b"\xc3\x28"),
    ];
    for (i, (name, value)) in garbage.into_iter().enumerate() {
        let what = format!("{name}: {}", String::from_utf8_lossy(value));
        assert_eq!(sign_in(&app, &[(name, value)], &format!("ghost-{i}"), "wrong password").await, 422, "{what}");
        let response = app
            .client
            .post(app.url(&format!("/api/v1/widgets/{key}/events")))
            .header(HeaderName::from_bytes(name.as_bytes()).unwrap(), HeaderValue::from_bytes(value).unwrap())
            .json(&json!({"events": [{"kind": "view"}]}))
            .send()
            .await
            .expect("post");
        assert_eq!(response.status(), 200, "{what}");
        let page = app
            .client
            .get(app.url("/"))
            .header(HeaderName::from_bytes(name.as_bytes()).unwrap(), HeaderValue::from_bytes(value).unwrap())
            .send()
            .await
            .expect("GET /");
        assert!(page.status().as_u16() < 500, "{what}: {}", page.status());
    }
    // Malformed entries leave the budget with the proxy: 12 failures so far, all counted there.
    assert_eq!(sign_in(&app, &[], "pat", common::PASSWORD).await, 303, "under the limit, the right password works");
});
