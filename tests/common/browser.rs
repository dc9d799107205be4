//! Headless Chromium (Debian's `chromium` + `chromium-driver`) driven over WebDriver, for the
//! tests only a browser can show. They run when `IHF_TEST_BROWSER` is set (CI sets it: then a
//! missing browser fails them), and by themselves when both programs are installed; otherwise
//! (or with `IHF_TEST_BROWSER=off`) they return at once and the test binary says so on stderr.

use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::actions::{InputSource, KeyAction, KeyActions};
use fantoccini::{Client, ClientBuilder, Locator};

use super::TestApp;

/// Whether the browser suite runs; a skip is reported on stderr once per test binary.
pub fn enabled() -> bool {
    static ENABLED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ENABLED.get_or_init(|| {
        let explicit = std::env::var("IHF_TEST_BROWSER").ok().filter(|v| !v.is_empty());
        match explicit.as_deref() {
            Some("0" | "off" | "false") => {
                super::report_skip("the browser tests pass without running: IHF_TEST_BROWSER is off");
                false
            }
            Some(_) => true,
            None if installed("chromium") && installed("chromedriver") => true,
            None => {
                super::report_skip(
                    "the browser tests pass without running: chromium and chromedriver are not both installed \
                     (Debian: apt-get install chromium chromium-driver)",
                );
                false
            }
        }
    })
}

/// Whether `program` is on the `PATH`.
fn installed(program: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()))
}

/// A chromedriver process and a browser session, ended on drop.
pub struct Browser {
    pub client: Client,
    driver: Child,
    /// The browser's own profile folder: it names its processes.
    profile: std::path::PathBuf,
}

impl Drop for Browser {
    /// Also after a failed step (a panic skips the test's `close()`): chromedriver's process
    /// group is killed, and with it the Chromium processes it started (and any that left the
    /// group, by their profile), which would otherwise outlive the test and keep loading the
    /// dead server's pages (2 cores shared by the whole suite, timed browser tests among them).
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.driver.id())])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = self.driver.kill();
        let _ = self.driver.wait();
        let _ = Command::new("pkill")
            .arg("-KILL")
            .arg("-f")
            .arg(format!("--user-data-dir={}( |$)", self.profile.display()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("free port")
}

/// Starts chromedriver on a free port and opens a headless Chromium session with a new profile.
pub async fn browser() -> Browser {
    browser_with(serde_json::Map::new(), &[]).await
}

/// A browser whose system setting is dark mode (`prefers-color-scheme: dark` matches).
pub async fn dark() -> Browser {
    browser_with(serde_json::Map::new(), &["--force-dark-mode"]).await
}

/// A browser that emulates a phone `width` CSS pixels wide (headless windows cannot be that narrow).
pub async fn phone(width: u32) -> Browser {
    let mut options = serde_json::Map::new();
    options.insert(
        "mobileEmulation".into(),
        serde_json::json!({ "deviceMetrics": { "width": width, "height": 844, "pixelRatio": 1 } }),
    );
    browser_with(options, &[]).await
}

/// A browser session with extra `goog:chromeOptions` entries.
async fn browser_with(extra: serde_json::Map<String, serde_json::Value>, extra_args: &[&str]) -> Browser {
    let port = free_port();
    // In a process group of its own, with the browser it starts and all of that browser's
    // helpers (renderers, GPU, crash handler), so that dropping the session ends all of them.
    let mut driver = Command::new("chromedriver")
        .process_group(0)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver must be installed (Debian: chromium-driver)");
    let profile = std::env::temp_dir().join(format!("ihf-chromium-{}-{port}", std::process::id()));
    let mut capabilities = serde_json::Map::new();
    let mut options = serde_json::json!({
        "binary": "/usr/bin/chromium",
        "args": [
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
            "--disable-background-networking", "--disable-component-update", "--no-first-run",
            "--disable-sync", "--disable-quic", "--window-size=1400,1000",
            format!("--user-data-dir={}", profile.display()),
        ]
    });
    if let Some(args) = options.get_mut("args").and_then(|a| a.as_array_mut()) {
        args.extend(extra_args.iter().map(|a| serde_json::Value::from(*a)));
    }
    if let Some(map) = options.as_object_mut() {
        map.extend(extra);
    }
    capabilities.insert("goog:chromeOptions".into(), options);
    let url = format!("http://127.0.0.1:{port}");
    let mut last_error = None;
    for _ in 0..50 {
        match ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(capabilities.clone())
            .connect(&url)
            .await
        {
            Ok(client) => return Browser { client, driver, profile },
            Err(e) => last_error = Some(e),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let _ = driver.kill();
    let _ = driver.wait();
    panic!("could not start a browser session: {last_error:?}");
}

/// Signs in through the login form like a person would.
pub async fn sign_in(browser: &Client, app: &TestApp, handle: &str, password: &str) {
    browser.goto(&app.url("/login")).await.expect("login page");
    browser.find(Locator::Id("handle")).await.expect("handle").send_keys(handle).await.expect("type");
    browser.find(Locator::Id("password")).await.expect("password").send_keys(password).await.expect("type");
    browser.find(Locator::Css("form button[type=submit]")).await.expect("button").click().await.expect("submit");
    wait_for(browser, "signed in", |html| html.contains("Sign out")).await;
}

/// Types keys (`\u{E00C}` is Escape, `\u{E007}` Enter) with no element targeted: they go to
/// whatever has the focus, as a person's would.
pub async fn press(browser: &Client, keys: &str) {
    let mut actions = KeyActions::new("keyboard".into());
    for key in keys.chars() {
        actions = actions.then(KeyAction::Down { value: key }).then(KeyAction::Up { value: key });
    }
    browser.perform_actions(actions).await.expect("keys");
}

/// Polls the page's HTML until `ready` holds (8 s at most).
pub async fn wait_for(browser: &Client, what: &str, ready: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(8);
    loop {
        let html = browser.source().await.expect("page source");
        if ready(&html) {
            return html;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Polls `script` (a function body returning a boolean) until it returns `true` (8 s at most);
/// panics naming `what` otherwise. The one polling loop of the browser tests. A page between
/// documents (a navigation, a rewrite) cannot answer yet: that counts as "not yet".
pub async fn wait_until(browser: &Client, what: &str, script: &str) {
    wait_until_or_dump(browser, what, script, "return null").await;
}

/// [`wait_until`], and on a time-out the panic shows what `dump` (a function body) returns:
/// the page's state that explains it.
pub async fn wait_until_or_dump(browser: &Client, what: &str, script: &str, dump: &str) {
    let deadline = Instant::now() + Duration::from_secs(8);
    loop {
        let value = browser.execute(script, Vec::new()).await;
        if matches!(value, Ok(serde_json::Value::Bool(true))) {
            return;
        }
        if Instant::now() >= deadline {
            let state = browser.execute(dump, Vec::new()).await;
            panic!("timed out waiting for {what} (last answer: {value:?}; page: {state:?})");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
