//! Static assets: compiled into the binary, brotli/gzip/identity by `Accept-Encoding`, strong
//! ETags and `304`, immutable caching on versioned URLs only, 404 for unknown files, the
//! development override, and the binary alone in an empty folder serving a page and its assets.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed step is a failed test

mod common;

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::TestApp;
use ihf::web::assets::{Assets, IMMUTABLE, REVALIDATE};

fn header(response: &reqwest::Response, name: &str) -> Option<String> {
    response.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned)
}

async fn get(app: &TestApp, path: &str, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut request = app.client.get(app.url(path));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.send().await.expect("GET")
}

fn unbrotli(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    brotli::Decompressor::new(body, 4096).read_to_end(&mut out).expect("valid brotli");
    out
}

fn gunzip(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(body).read_to_end(&mut out).expect("valid gzip");
    out
}

/// The version the layout stamps into `/static/app.css?v=…`.
async fn page_version(app: &TestApp) -> String {
    let page = app.get("/login").await.text().await.expect("body");
    common::text_attr(&page, "href=\"/static/app.css?v=").expect("versioned stylesheet link")
}

dual_test!(accept_encoding_chooses_brotli_gzip_or_identity, |app| {
    let css = Assets::embedded("app.css").expect("embedded");
    let v = page_version(&app).await;
    let path = format!("/static/app.css?v={v}");
    // Chrome's header: brotli wins the tie.
    let br = get(&app, &path, &[("Accept-Encoding", "gzip, deflate, br, zstd")]).await;
    assert_eq!(br.status(), 200);
    assert_eq!(header(&br, "content-encoding").as_deref(), Some("br"));
    assert_eq!(header(&br, "content-type").as_deref(), Some("text/css; charset=utf-8"));
    assert_eq!(header(&br, "vary").as_deref(), Some("Accept-Encoding"));
    let br_body = br.bytes().await.expect("body");
    assert!(br_body.len() < css.raw.len() / 2, "brotli is smaller: {} of {}", br_body.len(), css.raw.len());
    assert_eq!(unbrotli(&br_body), css.raw);

    for accept in ["gzip", "gzip;q=1, br;q=0.5", "deflate, gzip;q=0.3"] {
        let gz = get(&app, &path, &[("Accept-Encoding", accept)]).await;
        assert_eq!(header(&gz, "content-encoding").as_deref(), Some("gzip"), "{accept}");
        assert_eq!(gunzip(&gz.bytes().await.expect("body")), css.raw, "{accept}");
    }

    for accept in [None, Some("identity"), Some("deflate"), Some("br;q=0, gzip;q=0")] {
        let headers: Vec<_> = accept.iter().map(|a| ("Accept-Encoding", *a)).collect();
        let plain = get(&app, &path, &headers).await;
        assert_eq!(plain.status(), 200);
        assert_eq!(header(&plain, "content-encoding"), None, "{accept:?}");
        assert_eq!(header(&plain, "content-length"), Some(css.raw.len().to_string()));
        assert_eq!(plain.bytes().await.expect("body"), css.raw, "{accept:?}");
    }

    // HEAD: the same headers, no body.
    let head = app.client.head(app.url(&path)).header("Accept-Encoding", "br").send().await.expect("HEAD");
    assert_eq!(head.status(), 200);
    assert_eq!(header(&head, "content-encoding").as_deref(), Some("br"));
    assert!(head.bytes().await.expect("body").is_empty());
});

dual_test!(strong_etags_per_encoding_and_304, |app| {
    let path = "/static/app.js";
    let mut tags = Vec::new();
    for accept in ["br", "gzip", "identity"] {
        let first = get(&app, path, &[("Accept-Encoding", accept)]).await;
        assert_eq!(first.status(), 200);
        let tag = header(&first, "etag").expect("ETag");
        assert!(tag.starts_with('"') && tag.ends_with('"') && !tag.starts_with("W/"), "strong ETag: {tag}");

        let again = get(&app, path, &[("Accept-Encoding", accept), ("If-None-Match", &tag)]).await;
        assert_eq!(again.status(), 304, "{accept}");
        assert_eq!(header(&again, "etag").as_ref(), Some(&tag));
        assert_eq!(header(&again, "cache-control").as_deref(), Some(REVALIDATE));
        assert!(again.bytes().await.expect("body").is_empty());

        let listed = format!("\"other\", W/{tag}");
        let weak = get(&app, path, &[("Accept-Encoding", accept), ("If-None-Match", &listed)]).await;
        assert_eq!(weak.status(), 304, "a list with the tag (weak comparison)");

        let stale = get(&app, path, &[("Accept-Encoding", accept), ("If-None-Match", "\"0123\"")]).await;
        assert_eq!(stale.status(), 200);
        assert!(!stale.bytes().await.expect("body").is_empty());
        tags.push(tag);
    }
    tags.sort();
    tags.dedup();
    assert_eq!(tags.len(), 3, "each encoding has its own ETag: {tags:?}");
});

dual_test!(versioned_urls_are_immutable_and_others_revalidate, |app| {
    let v = page_version(&app).await;
    let page = app.get("/login").await.text().await.expect("body");
    assert!(page.contains(&format!("/static/app.js?v={v}")));
    for path in [format!("/static/app.css?v={v}"), format!("/static/app.js?v={v}"), format!("/static/live.js?v={v}")] {
        let response = app.get(&path).await;
        assert_eq!(response.status(), 200);
        assert_eq!(header(&response, "cache-control").as_deref(), Some(IMMUTABLE), "{path}");
        assert_eq!(header(&response, "set-cookie"), None, "assets never set cookies");
        assert_eq!(header(&response, "x-content-type-options").as_deref(), Some("nosniff"));
    }
    // The layout links htmx and idiomorph; htmx's SSE extension is still served but no longer
    // linked (live.js holds the one stream per browser, #15).
    for vendored in ["htmx-2.0.11.min.js", "htmx-ext-sse-2.2.4.min.js", "idiomorph-ext-0.8.0.min.js"] {
        assert!(vendored.contains("sse") || page.contains(&format!("/static/vendor/{vendored}")));
        let response = app.get(&format!("/static/vendor/{vendored}")).await;
        assert_eq!(response.status(), 200);
        assert_eq!(header(&response, "cache-control").as_deref(), Some(IMMUTABLE), "the name carries the version");
        assert_eq!(header(&response, "content-type").as_deref(), Some("text/javascript; charset=utf-8"));
    }
    // Without the version, or with an old one, the content may change under the same URL.
    for path in ["/static/app.css", "/static/app.css?v=0ld", "/static/embed-frame.js"] {
        let response = app.get(path).await;
        assert_eq!(response.status(), 200);
        assert_eq!(header(&response, "cache-control").as_deref(), Some(REVALIDATE), "{path}");
    }
});

dual_test!(unknown_assets_are_404, |app| {
    for path in [
        "/static/nope.css",
        "/static/vendor/",
        "/static/vendor/VERSIONS.md",
        "/static/",
        "/static/%2e%2e/Cargo.toml",
        "/static/app.css/x",
    ] {
        let response = app.get(path).await;
        assert_eq!(response.status(), 404, "{path}");
        assert_ne!(header(&response, "cache-control").as_deref(), Some(IMMUTABLE), "{path}");
    }
    // The removed benchmark leftovers are gone for good.
    assert_eq!(app.get("/static/bench-triage-25511.txt").await.status(), 404);
    // The embed loader is the embedded file too.
    let loader = app.get("/embed.js").await;
    assert_eq!(loader.status(), 200);
    assert_eq!(loader.bytes().await.expect("body"), Assets::embedded("embed.js").expect("embedded").raw);
});

/// The development override reads the folder on every request: an edit shows on the next
/// request, never cached without revalidation, with a new ETag.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_static_dir_override_serves_edits_without_a_rebuild() {
    let dir = std::env::temp_dir().join(format!("ihf-static-override-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("vendor")).expect("dir");
    std::fs::write(dir.join("app.css"), "body { color: red }").expect("write");
    let app = common::spawn_app_with(ihf::db::Backend::Sqlite, |c| c.static_dir = Some(dir.clone())).await;
    let v = page_version(&app).await;
    let first = app.get(&format!("/static/app.css?v={v}")).await;
    assert_eq!(first.status(), 200);
    assert_eq!(header(&first, "cache-control").as_deref(), Some(REVALIDATE));
    let tag = header(&first, "etag").expect("ETag");
    assert_eq!(first.text().await.expect("body"), "body { color: red }");
    assert_eq!(get(&app, "/static/app.css", &[("If-None-Match", &tag)]).await.status(), 304);

    std::thread::sleep(Duration::from_millis(20));
    std::fs::write(dir.join("app.css"), "body { color: blue; }").expect("write");
    let edited = get(&app, "/static/app.css", &[("If-None-Match", &tag)]).await;
    assert_eq!(edited.status(), 200, "the edit is served");
    assert_ne!(header(&edited, "etag"), Some(tag));
    assert_eq!(edited.text().await.expect("body"), "body { color: blue; }");
    // Only the folder: no embedded fallback, nothing outside it.
    assert_eq!(app.get("/static/app.js").await.status(), 404);
    assert_eq!(app.get("/static/%2e%2e/Cargo.toml").await.status(), 404);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The server process, killed when dropped.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The `/static/…` URLs a page links (stylesheets and scripts).
fn asset_links(html: &str) -> Vec<String> {
    let mut links = Vec::new();
    for prefix in ["href=\"/static/", "src=\"/static/"] {
        let mut rest = html;
        while let Some(start) = rest.find(prefix) {
            rest = &rest[start + prefix.len() - "/static/".len()..];
            let end = rest.find('"').expect("closing quote");
            links.push(rest[..end].to_owned());
            rest = &rest[end..];
        }
    }
    links
}

/// What a new user does: copy the binary alone into an empty folder and start it with no
/// configuration at all. It creates its SQLite database there, seeds the demo, prints the
/// logins, and serves a page with every stylesheet and script it links.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_alone_in_an_empty_folder_serves_the_whole_app() {
    let dir = std::env::temp_dir().join(format!("ihf-alone-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    let binary = dir.join("ihf");
    std::fs::copy(env!("CARGO_BIN_EXE_ihf"), &binary).expect("copy the binary");
    let mut child = Command::new(&binary)
        .current_dir(&dir)
        .env_clear()
        .env("IHF_BIND", "127.0.0.1:0")
        .env("IHF_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start ihf");
    let stdout = child.stdout.take().expect("stdout");
    let _server = Server(child);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut url = None;
    let mut printed = Vec::new();
    while url.is_none() || !printed.iter().any(|l: &String| l.trim_start().starts_with("olga ")) {
        let line = rx.recv_timeout(Duration::from_secs(120)).expect("the server prints its URL and the demo logins");
        if let Some(address) = line.trim().strip_prefix("IHF is running at ") {
            url = Some(address.trim_end_matches('/').to_owned());
        }
        printed.push(line);
    }
    let url = url.expect("url");
    assert!(dir.join("data/ihf.sqlite3").exists(), "the database is created beside the binary");

    let client = reqwest::Client::new();
    let page = client.get(format!("{url}/login")).send().await.expect("GET /login");
    assert_eq!(page.status(), 200);
    let html = page.text().await.expect("body");
    let links = asset_links(&html);
    assert!(links.len() >= 5, "the layout links a stylesheet and four scripts: {links:?}");
    for link in &links {
        let response =
            client.get(format!("{url}{link}")).header("Accept-Encoding", "br, gzip").send().await.expect("GET");
        assert_eq!(response.status(), 200, "{link}");
        let encoding = header(&response, "content-encoding");
        let body = response.bytes().await.expect("body");
        let path = link.trim_start_matches("/static/").split('?').next().unwrap_or_default();
        let raw = Assets::embedded(path).expect("an embedded file").raw;
        match encoding.as_deref() {
            Some("br") => assert_eq!(unbrotli(&body), raw, "{link}"),
            other => panic!("{link}: expected brotli, got {other:?}"),
        }
    }
}
