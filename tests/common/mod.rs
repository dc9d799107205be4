//! Shared test harness: a real app on a random port with its own fresh database.
//!
//! Every test runs on SQLite (a new file). Its `postgres` twin runs too, each on a new database
//! created for it, on the server `IHF_TEST_PG` names or, when that is unset, on the default
//! `postgres://postgres@127.0.0.1:5432/postgres` if a server answers there. When none does (or
//! `IHF_TEST_PG=off`) the twins return at once and the test binary says so in one line on
//! stderr: a passing `postgres` test that did not run is never silent.

#![allow(dead_code)]

pub mod browser;
/// A gzip body inflated as it arrives, as the benchmarks read it too.
#[path = "../../examples/support/browser_body.rs"]
mod browser_body;

use std::sync::atomic::{AtomicU64, Ordering};

use ihf::Config;
use ihf::db::{Backend, Db};

/// Declares a test that runs once on SQLite and once on PostgreSQL, each on a fresh app;
/// `dual_test!(name, |config| …, |app| …)` adjusts the configuration first.
#[macro_export]
macro_rules! dual_test {
    ($name:ident, |$app:ident| $body:block) => {
        $crate::dual_test!($name, |_: &mut ihf::Config| {}, |$app| $body);
    };
    ($name:ident, $adjust:expr, |$app:ident| $body:block) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let $app = $crate::common::spawn_app_with(ihf::db::Backend::Sqlite, $adjust).await;
                $body
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                if !$crate::common::pg_enabled() {
                    return;
                }
                let $app = $crate::common::spawn_app_with(ihf::db::Backend::Postgres, $adjust).await;
                $body
            }
        }
    };
}

/// The SQLite and PostgreSQL tests of a module whose `async fn run(backend: Backend)` is the
/// test (for tests that start their own servers or databases).
#[macro_export]
macro_rules! dual_run {
    () => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn sqlite() {
            run(ihf::db::Backend::Sqlite).await;
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn postgres() {
            if $crate::common::pg_enabled() {
                run(ihf::db::Backend::Postgres).await;
            }
        }
    };
}

/// The password of people made with [`TestApp::person`].
pub const PASSWORD: &str = "correct horse battery";

/// The token of `<meta name="csrf-token" content="…">`.
pub fn csrf_from(html: &str) -> String {
    text_attr(html, "name=\"csrf-token\" content=\"").unwrap_or_default()
}

/// The attribute value that follows `prefix` up to the closing quote.
pub fn text_attr(html: &str, prefix: &str) -> Option<String> {
    let start = html.find(prefix)? + prefix.len();
    let rest = &html[start..];
    Some(rest[..rest.find('"')?].to_owned())
}

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// The PostgreSQL server tried when `IHF_TEST_PG` is unset.
pub const DEFAULT_PG: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// Whether the PostgreSQL suite runs (see the module documentation).
pub fn pg_enabled() -> bool {
    pg_server().is_some()
}

/// The PostgreSQL server of the suite: `IHF_TEST_PG`, or [`DEFAULT_PG`] when it answers.
/// Decided once per test binary; a skip is reported on stderr once.
pub fn pg_server() -> Option<&'static str> {
    static SERVER: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    SERVER
        .get_or_init(|| {
            let explicit = std::env::var("IHF_TEST_PG").ok().filter(|v| !v.is_empty());
            match explicit.as_deref() {
                Some("0" | "off" | "false") => {
                    report_skip("the PostgreSQL tests (`…::postgres`) pass without running: IHF_TEST_PG is off");
                    None
                }
                // Named explicitly (CI does): the tests fail when it does not answer.
                Some(url) => Some(url.to_owned()),
                None if pg_answers(DEFAULT_PG) => Some(DEFAULT_PG.to_owned()),
                None => {
                    report_skip(&format!(
                        "the PostgreSQL tests (`…::postgres`) pass without running: nothing answers at \
                         {DEFAULT_PG}; set IHF_TEST_PG to a server URL to run them"
                    ));
                    None
                }
            }
        })
        .as_deref()
}

/// Whether a PostgreSQL server answers `SELECT 1` at `url` within two seconds. Runs on a
/// thread of its own, so it can be asked from inside a test's runtime.
fn pg_answers(url: &'static str) -> bool {
    let probe = std::thread::spawn(move || {
        let Ok(runtime) = tokio::runtime::Builder::new_current_thread().enable_all().build() else { return false };
        runtime.block_on(async {
            let connect = async {
                let db = Db::connect(url, 1).await.ok()?;
                let answered = sqlx::query_scalar::<_, i32>("SELECT 1").fetch_one(db.reader()).await.is_ok();
                db.close().await;
                Some(answered)
            };
            matches!(tokio::time::timeout(std::time::Duration::from_secs(2), connect).await, Ok(Some(true)))
        })
    });
    probe.join().unwrap_or(false)
}

/// One line on the real stderr, past the test harness's output capture (which only takes
/// `print!`/`eprint!`), so that `cargo test` shows it beside the binary's results.
pub fn report_skip(what: &str) {
    use std::io::Write;
    let binary = std::env::args().next().unwrap_or_default();
    let name = std::path::Path::new(&binary).file_name().and_then(|n| n.to_str()).unwrap_or("tests").to_owned();
    let name = name.rsplit_once('-').map_or(name.as_str(), |(base, _)| base).to_owned();
    let _ = writeln!(std::io::stderr(), "SKIPPED in tests/{name}: {what}");
}

fn unique_name() -> String {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    format!("ihf_test_{}_{}_{}", std::process::id(), n, nanos)
}

/// A fresh database URL of the given backend.
pub async fn fresh_database_url(backend: Backend) -> String {
    match backend {
        Backend::Sqlite => {
            let dir = std::env::temp_dir().join(unique_name());
            std::fs::create_dir_all(&dir).expect("temp dir");
            format!("sqlite://{}/ihf.sqlite3", dir.display())
        }
        Backend::Postgres => {
            let server = pg_server().expect("the PostgreSQL suite is on").to_owned();
            let name = unique_name();
            let admin = Db::connect(&server, 1).await.expect("IHF_TEST_PG must reach a PostgreSQL server");
            sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                .execute(admin.writer())
                .await
                .expect("create test database");
            admin.close().await;
            let base = server.rsplit_once('/').map(|(base, _)| base).unwrap_or(&server);
            format!("{base}/{name}")
        }
    }
}

/// A running app and what a test needs to talk to it.
pub struct TestApp {
    pub address: String,
    pub port: u16,
    pub db: Db,
    pub backend: Backend,
    pub database_url: String,
    pub client: reqwest::Client,
    pub handle: ihf::Stopper,
}

/// Creates a public widget `slug` in hub `hub_id` through the store.
pub async fn public_widget(db: &Db, hub_id: i64, slug: &str) -> ihf::db::widgets::Widget {
    let widget = ihf::db::widgets::NewWidget {
        hub_id,
        slug,
        name: slug,
        description: "",
        owner_id: None,
        policy_scope: "public",
        allowed_origins: "",
    };
    ihf::db::widgets::create(db, &widget).await.expect("widget")
}

/// Starts the app on a random port with a fresh database.
pub async fn spawn_app(backend: Backend) -> TestApp {
    spawn_app_with(backend, |_| {}).await
}

/// [`spawn_app`] with the configuration adjusted first.
pub async fn spawn_app_with(backend: Backend, adjust: impl FnOnce(&mut Config)) -> TestApp {
    let database_url = fresh_database_url(backend).await;
    spawn_on(database_url, backend, adjust).await
}

/// Starts an app on an existing database (a second instance, or a restart).
pub async fn spawn_on(database_url: String, backend: Backend, adjust: impl FnOnce(&mut Config)) -> TestApp {
    let mut config = Config::for_tests(database_url.clone());
    adjust(&mut config);
    start(config, backend, ihf::TestHooks::default()).await
}

/// [`spawn_app`] with test switches on (e.g. Row Level Security alone).
pub async fn spawn_app_hooked(backend: Backend, hooks: ihf::TestHooks) -> TestApp {
    let database_url = fresh_database_url(backend).await;
    start(Config::for_tests(database_url), backend, hooks).await
}

async fn start(config: Config, backend: Backend, hooks: ihf::TestHooks) -> TestApp {
    let database_url = config.database_url.clone();
    // The pools wait 1 s for a connection (the shipped setting: a busy database answers 503
    // fast); a test machine running the whole suite on 2 cores can be slower than that to open
    // the first ones, so the start is tried again a few times before it counts as a failure.
    let mut attempt = 1;
    let app = loop {
        match ihf::Application::build_with_hooks(config.clone(), hooks).await {
            Ok(app) => break app,
            Err(e) if attempt < 3 && format!("{e:#}").contains("pool timed out") => {
                attempt += 1;
                tokio::time::sleep(std::time::Duration::from_millis(500)).await;
            }
            Err(e) => panic!("build app: {e:?}"),
        }
    };
    let port = app.port();
    let db = app.db().clone();
    let handle = app.handle();
    tokio::spawn(app.run_until_stopped());
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .cookie_store(true)
        .build()
        .expect("client");
    TestApp { address: format!("http://127.0.0.1:{port}"), port, db, backend, database_url, client, handle }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    /// GET as a plain browser request.
    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(self.url(path)).send().await.expect("GET")
    }

    /// GET as htmx does.
    pub async fn get_htmx(&self, path: &str) -> reqwest::Response {
        self.client.get(self.url(path)).header("HX-Request", "true").send().await.expect("GET")
    }

    /// A new client with its own cookie jar, for a second person on the same app.
    pub fn new_client(&self) -> reqwest::Client {
        reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .cookie_store(true)
            .build()
            .expect("client")
    }

    /// Seeds the demo data into this app's database; returns handle → password.
    pub async fn seed_demo(&self) -> std::collections::HashMap<String, String> {
        ihf::demo::seed(&self.db)
            .await
            .expect("seed demo")
            .expect("fresh database")
            .into_iter()
            .map(|login| (login.handle, login.password))
            .collect()
    }

    /// Creates a person with the password `correct horse battery` and the given hub roles.
    pub async fn person(&self, handle: &str, roles: &[(&str, &str)]) -> i64 {
        let hash = ihf::auth::password::hash(PASSWORD).expect("hash");
        let id = ihf::db::actors::create_person(&self.db, handle, handle, Some(&hash), false).await.expect("person");
        for (hub, role) in roles {
            let hub = ihf::db::hubs::by_slug(&self.db, hub).await.expect("hub");
            ihf::db::actors::grant(&self.db, hub.id, id, role).await.expect("grant");
        }
        id
    }

    /// A new client signed in as `handle` with `password`.
    pub async fn signed_in(&self, handle: &str, password: &str) -> reqwest::Client {
        let client = self.new_client();
        self.login(&client, handle, password).await;
        client
    }

    /// Signs `client` in through the login form (CSRF token included), asserting success.
    pub async fn login(&self, client: &reqwest::Client, handle: &str, password: &str) {
        let response = self.try_login(client, handle, password).await;
        assert_eq!(response.status(), 303, "sign-in of {handle} failed");
    }

    /// Posts the login form and returns the answer.
    pub async fn try_login(&self, client: &reqwest::Client, handle: &str, password: &str) -> reqwest::Response {
        let page = client.get(self.url("/login")).send().await.expect("login page").text().await.expect("body");
        let csrf = csrf_from(&page);
        client
            .post(self.url("/login"))
            .form(&[("handle", handle), ("password", password), ("csrf_token", &csrf), ("next", "/")])
            .send()
            .await
            .expect("POST /login")
    }

    /// The CSRF token of a page `client` fetches.
    pub async fn csrf(&self, client: &reqwest::Client, path: &str) -> String {
        let page = client.get(self.url(path)).send().await.expect("page").text().await.expect("body");
        csrf_from(&page)
    }

    /// Counts rows with a scalar query.
    pub async fn scalar(&self, sql: &'static str) -> i64 {
        sqlx::query_scalar(sql).fetch_one(self.db.reader()).await.expect("scalar query")
    }

    /// A number from `sql` with one bound argument `$1`.
    pub async fn scalar_i64(&self, sql: &'static str, arg: i64) -> i64 {
        sqlx::query_scalar(sql).bind(arg).fetch_one(self.db.reader()).await.expect("scalar query")
    }
}

/// The text between `after` and the next `<` following it, e.g. a number in `data-stat="new">12<`.
pub fn text_after<'a>(html: &'a str, after: &str) -> Option<&'a str> {
    let start = html.find(after)? + after.len();
    let rest = &html[start..];
    Some(rest[..rest.find('<')?].trim())
}

/// The HTML of the element whose opening tag contains `id="{id}"`, up to the next `id="{next_prefix}`.
pub fn section<'a>(html: &'a str, id: &str, until: &str) -> Option<&'a str> {
    let start = html.find(&format!("id=\"{id}\""))?;
    let rest = &html[start..];
    let end = rest[1..].find(until).map(|e| e + 1).unwrap_or(rest.len());
    Some(&rest[..end])
}

/// One server-sent event.
#[derive(Debug, Clone, Default)]
pub struct SseEvent {
    pub event: String,
    pub id: Option<String>,
    pub data: String,
}

/// Reads a `text/event-stream` response event by event.
pub struct SseClient {
    response: reqwest::Response,
    buffer: String,
    /// The data of the stream's `hello` event (its token), which `next_event` skips.
    pub hello: Option<String>,
    /// Set for a stream opened with `Accept-Encoding: gzip`: the inflater (past the 10-byte
    /// header) and every byte received, to check the whole body as gzip once it ends.
    gzip: Option<(browser_body::Inflate, Vec<u8>)>,
}

impl SseClient {
    /// Opens `path` with `client` (and `Last-Event-ID` when given), asserting a 200 stream.
    pub async fn open(app: &TestApp, client: &reqwest::Client, path: &str, last_event_id: Option<&str>) -> Self {
        let mut request = client.get(app.url(path)).header("Accept", "text/event-stream");
        if let Some(id) = last_event_id {
            request = request.header("Last-Event-ID", id);
        }
        let response = request.send().await.expect("open stream");
        assert_eq!(response.status(), 200, "live stream refused");
        assert_eq!(response.headers().get("content-type").and_then(|v| v.to_str().ok()), Some("text/event-stream"),);
        Self { response, buffer: String::new(), hello: None, gzip: None }
    }

    /// [`open`](Self::open) as a browser does, taking gzip: the stream must come gzip-encoded.
    pub async fn open_gzip(app: &TestApp, client: &reqwest::Client, path: &str) -> Self {
        let request = client.get(app.url(path)).header("Accept", "text/event-stream");
        let response = request.header("Accept-Encoding", "gzip, deflate, br").send().await.expect("open stream");
        assert_eq!(response.status(), 200, "live stream refused");
        assert_eq!(response.headers().get("content-encoding").and_then(|v| v.to_str().ok()), Some("gzip"));
        Self { response, buffer: String::new(), hello: None, gzip: Some((browser_body::Inflate::new(), Vec::new())) }
    }

    /// Every byte a gzip stream received, once it has ended (`None` for a plain stream).
    pub async fn gzip_body(mut self) -> Option<Vec<u8>> {
        while let Ok(Some(chunk)) = self.response.chunk().await {
            self.gzip.as_mut()?.1.extend_from_slice(&chunk);
        }
        self.gzip.map(|(_, raw)| raw)
    }

    /// `chunk` as text: inflated first on a gzip stream (each event arrives flushed).
    fn decode(&mut self, chunk: &[u8]) -> String {
        let Some((inflate, raw)) = &mut self.gzip else { return String::from_utf8_lossy(chunk).into_owned() };
        raw.extend_from_slice(chunk);
        let mut out = Vec::new();
        inflate.feed(chunk, &mut out).expect("valid deflate");
        String::from_utf8_lossy(&out).into_owned()
    }

    /// The next data event within `timeout` (comments and `retry:` lines skipped).
    pub async fn next_event(&mut self, timeout: std::time::Duration) -> Option<SseEvent> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            while let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let mut event = SseEvent::default();
                let mut has_data = false;
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("event:") {
                        event.event = v.trim().to_owned();
                    } else if let Some(v) = line.strip_prefix("id:") {
                        event.id = Some(v.trim().to_owned());
                    } else if let Some(v) = line.strip_prefix("data:") {
                        if has_data {
                            event.data.push('\n');
                        }
                        event.data.push_str(v.strip_prefix(' ').unwrap_or(v));
                        has_data = true;
                    }
                }
                if has_data && event.event == "hello" {
                    self.hello = Some(event.data);
                } else if has_data {
                    return Some(event);
                }
            }
            let chunk = tokio::time::timeout_at(deadline, self.response.chunk()).await.ok()?.ok()??;
            let text = self.decode(&chunk);
            self.buffer.push_str(&text);
        }
    }

    /// Every data event arriving within `window`.
    pub async fn events_within(&mut self, window: std::time::Duration) -> Vec<SseEvent> {
        let deadline = tokio::time::Instant::now() + window;
        let mut events = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                return events;
            }
            match self.next_event(left).await {
                Some(event) => events.push(event),
                None => return events,
            }
        }
    }
}
