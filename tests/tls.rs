//! HTTPS with HTTP/2: a certificate authority and a `localhost` certificate made for the test,
//! `IHF_TLS_CERT`/`IHF_TLS_KEY` set, and a client that trusts only that authority. The protocol
//! negotiated is h2, cookies are `Secure`, and a page, its assets and its open live stream all
//! travel over one TCP connection (counted by a forwarding proxy in front of the server).

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed step is a failed test

mod common;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};

/// The test's certificate authority (PEM) and the folder holding the server's `cert.pem` and `key.pem`.
fn certificates() -> &'static (String, PathBuf) {
    static MADE: OnceLock<(String, PathBuf)> = OnceLock::new();
    MADE.get_or_init(|| {
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca_key = KeyPair::generate().expect("CA key");
        let ca = ca_params.self_signed(&ca_key).expect("CA certificate");
        let issuer = Issuer::new(ca_params, ca_key);
        let server_key = KeyPair::generate().expect("server key");
        let server = CertificateParams::new(vec!["localhost".to_owned()])
            .expect("server params")
            .signed_by(&server_key, &issuer)
            .expect("server certificate");
        let dir = std::env::temp_dir().join(format!("ihf-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        std::fs::write(dir.join("cert.pem"), server.pem()).expect("write cert");
        std::fs::write(dir.join("key.pem"), server_key.serialize_pem()).expect("write key");
        (ca.pem(), dir)
    })
}

fn with_tls(config: &mut ihf::Config) {
    let (_, dir) = certificates();
    config.tls_cert = Some(dir.join("cert.pem"));
    config.tls_key = Some(dir.join("key.pem"));
}

/// A TCP forwarder to the server that counts the connections it accepts.
async fn counting_proxy(target_port: u16) -> (u16, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
    let port = listener.local_addr().expect("addr").port();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = Arc::clone(&accepted);
    tokio::spawn(async move {
        while let Ok((mut inbound, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                if let Ok(mut outbound) = tokio::net::TcpStream::connect(("127.0.0.1", target_port)).await {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                }
            });
        }
    });
    (port, accepted)
}

fn https_client(proxy_port: u16) -> reqwest::Client {
    let (ca, _) = certificates();
    reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(ca.as_bytes()).expect("CA"))
        .resolve("localhost", ([127, 0, 0, 1], proxy_port).into())
        .https_only(true)
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

async fn h2_get(client: &reqwest::Client, url: &str) -> reqwest::Response {
    let response = client.get(url).send().await.expect("GET");
    assert_eq!(response.version(), reqwest::Version::HTTP_2, "{url} over HTTP/2");
    assert_eq!(response.status(), 200, "{url}");
    response
}

dual_test!(https_serves_http2_and_a_page_shares_one_connection_with_its_live_stream, with_tls, |app| {
    ihf::db::hubs::create(&app.db, "checkout", "Checkout", "").await.expect("hub");
    app.person("olga", &[("checkout", "operator")]).await;
    let (proxy, connections) = counting_proxy(app.port).await;
    let base = format!("https://localhost:{proxy}");
    let client = https_client(proxy);

    let login = h2_get(&client, &format!("{base}/login")).await.text().await.expect("body");
    let csrf = common::csrf_from(&login);
    let signed_in = client
        .post(format!("{base}/login"))
        .form(&[("handle", "olga"), ("password", common::PASSWORD), ("csrf_token", &csrf), ("next", "/")])
        .send()
        .await
        .expect("POST /login");
    assert_eq!(signed_in.status(), 303, "signed in");
    let cookie = signed_in.headers().get("set-cookie").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    assert!(cookie.starts_with("__Host-ihf_session=") && cookie.contains("Secure"), "secure cookies: {cookie}");

    let page = h2_get(&client, &format!("{base}/hubs/checkout")).await.text().await.expect("page");
    let live =
        common::text_attr(&page, "sse-connect=\"").expect("the dashboard has a live stream").replace("&amp;", "&");
    let mut stream = client
        .get(format!("{base}{live}"))
        .header("Accept", "text/event-stream")
        .send()
        .await
        .expect("open the live stream");
    assert_eq!(stream.version(), reqwest::Version::HTTP_2);
    assert_eq!(stream.status(), 200);
    let first = tokio::time::timeout(Duration::from_secs(10), stream.chunk()).await.expect("a first event in time");
    assert!(first.expect("stream").is_some_and(|chunk| !chunk.is_empty()), "the stream is live");

    // While the stream stays open: the page again and every asset it links.
    let page = h2_get(&client, &format!("{base}/hubs/checkout")).await.text().await.expect("page");
    let mut assets = 0;
    for prefix in ["href=\"/static/", "src=\"/static/"] {
        for part in page.split(prefix).skip(1) {
            let path = &part[..part.find('"').expect("quote")];
            h2_get(&client, &format!("{base}/static/{path}")).await.bytes().await.expect("asset");
            assets += 1;
        }
    }
    assert!(assets >= 5, "the page links its stylesheet and scripts");
    assert_eq!(connections.load(Ordering::SeqCst), 1, "one TCP connection carried the page, its assets and the stream");
    drop(stream);
});

/// Plain HTTP stays the default, and a certificate without its key is refused at start.
#[tokio::test]
async fn tls_needs_both_files() {
    let mut config = ihf::Config::for_tests("sqlite://unused".into());
    assert!(config.validate().is_ok());
    config.tls_cert = Some(PathBuf::from("cert.pem"));
    let problem = config.validate().expect_err("a certificate without a key");
    assert!(problem.contains("IHF_TLS_CERT and IHF_TLS_KEY"), "{problem}");
}
