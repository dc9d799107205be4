//! `ihf demo-host`: a third-party shop page on another origin that embeds two demo widgets from
//! the main server, so the whole embed flow can be tried locally. One visitor is anonymous; the
//! other is identified the way a real host does it: this server signs a ten-minute HS256 token
//! with the widget's embed secret. The page runs under a strict Content-Security-Policy (no
//! inline script or style), like a careful host's would.

use std::net::{SocketAddr, TcpListener};

use actix_web::dev::Server;
use actix_web::{App, HttpResponse, HttpServer, web};
use anyhow::Context;

use crate::auth::tokens::{self, Audience, Claims};
use crate::db::{Db, hubs, widgets};

/// The widgets the demo page embeds: (hub, widget slug, identified visitor?).
const EMBEDDED: [(&str, &str, bool); 2] = [("checkout", "cart-summary", false), ("checkout", "payment-form", true)];

struct Host {
    db: Db,
    server: String,
}

/// Binds the demo host on `listen`, embedding widgets served by `server` (e.g.
/// `http://127.0.0.1:8080`). Returns the bound port and the server to run.
pub fn build(db: Db, listen: SocketAddr, server: String) -> anyhow::Result<(u16, Server)> {
    let listener = TcpListener::bind(listen).with_context(|| format!("binding {listen}"))?;
    let port = listener.local_addr()?.port();
    let host = web::Data::new(Host { db, server: server.trim_end_matches('/').to_owned() });
    let server = HttpServer::new(move || {
        App::new().app_data(host.clone()).route("/", web::get().to(page)).route("/host.css", web::get().to(stylesheet))
    })
    .workers(1)
    .listen(listener)?
    .run();
    Ok((port, server))
}

/// Lists `origin` among the allowed embed origins of the widgets the demo page embeds (their
/// `frame-ancestors` and CORS), so the page works on whatever port it was given. Returns the
/// slugs of the widgets that did not allow it yet.
pub async fn allow_origin(db: &Db, origin: &str) -> anyhow::Result<Vec<String>> {
    let mut added = Vec::new();
    for (hub_slug, slug, _) in EMBEDDED {
        let hub = hubs::by_slug(db, hub_slug).await.with_context(|| format!("hub {hub_slug}"))?;
        let widget = widgets::by_slug(db, hub.id, slug).await.with_context(|| format!("widget {slug}"))?;
        if widgets::add_allowed_origin(db, widget.id, origin).await? {
            added.push(slug.to_owned());
        }
    }
    Ok(added)
}

/// Serves the demo host page until stopped.
pub async fn run(db: Db, listen: SocketAddr, server: String) -> anyhow::Result<()> {
    let (port, running) = build(db.clone(), listen, server.clone())?;
    let origin = format!("http://{}", SocketAddr::new(listen.ip(), port));
    let added = allow_origin(&db, &origin).await.context(
        "the demo widgets are not in this database: give `ihf demo-host` the server's DATABASE_URL \
         and run `ihf seed-demo` (or start `ihf serve` once) first",
    )?;
    println!();
    if !added.is_empty() {
        println!("  allowed {origin} on the demo widgets ({})", added.join(", "));
    }
    println!("  IHF demo host page: http://{}:{port}/", listen.ip());
    println!("  embedding widgets from {server} (start it with `ihf serve`)");
    println!();
    running.await?;
    Ok(())
}

async fn page(host: web::Data<Host>) -> HttpResponse {
    match render(&host).await {
        Ok(html) => {
            let csp = format!(
                "default-src 'self'; script-src {0}; frame-src {0}; style-src 'self'; img-src 'self'; \
                 base-uri 'none'; object-src 'none'; frame-ancestors 'none'",
                host.server
            );
            HttpResponse::Ok()
                .content_type("text/html; charset=utf-8")
                .insert_header(("Content-Security-Policy", csp))
                .insert_header(("Cache-Control", "no-store"))
                .body(html)
        }
        Err(e) => HttpResponse::ServiceUnavailable().content_type("text/plain; charset=utf-8").body(format!(
            "The demo widgets are not there: {e:#}. Run `ihf seed-demo` (or start `ihf serve` once) first."
        )),
    }
}

async fn render(host: &Host) -> anyhow::Result<String> {
    let mut embeds = String::new();
    for (hub_slug, slug, identified) in EMBEDDED {
        let hub = hubs::by_slug(&host.db, hub_slug).await.with_context(|| format!("hub {hub_slug}"))?;
        let widget = widgets::by_slug(&host.db, hub.id, slug).await.with_context(|| format!("widget {slug}"))?;
        let (who, token) = if identified {
            // What the host's own server does for its signed-in customer.
            let claims = Claims {
                sub: "customer-42".into(),
                name: Some("Jamie Rivera".into()),
                aud: Audience::One(widget.embed_key.clone()),
                exp: tokens::now_s() + tokens::HOST_MAX_LIFETIME_S,
                iss: None,
                iat: Some(tokens::now_s()),
            };
            let token = tokens::sign(&claims, widget.embed_secret.as_bytes());
            ("signed in as Jamie Rivera (identified by this shop's server)", format!(" data-ihf-token=\"{token}\""))
        } else {
            ("anonymous visitor", String::new())
        };
        embeds.push_str(&format!(
            "<section class=\"card\"><h2>{name}</h2><p class=\"note\">{scope} widget · {who}</p>\n\
             <script src=\"{server}/embed.js\" data-ihf-widget=\"{key}\"{token} async></script></section>\n",
            name = html_escape(&widget.name),
            scope = html_escape(widget.policy_scope.as_str()),
            server = host.server,
            key = html_escape(&widget.embed_key),
        ));
    }
    Ok(format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>Acme Outfitters · Checkout (IHF demo host)</title><link rel=\"stylesheet\" href=\"/host.css\"></head>\n\
         <body><header><strong>Acme Outfitters</strong> <span>a third-party shop embedding IHF widgets</span></header>\n\
         <main><h1>Checkout</h1><p>Trail runner 2 × 89.00 · Merino socks 1 × 14.50 · <strong>Total 192.50</strong></p>\n\
         {embeds}</main></body></html>\n"
    ))
}

async fn stylesheet() -> HttpResponse {
    HttpResponse::Ok().content_type("text/css; charset=utf-8").body(
        "body{font:16px/1.5 Georgia,serif;margin:0;background:#fbf8f3;color:#2b2118}\
         header{background:#2b2118;color:#fbf8f3;padding:.75rem 1.5rem}header span{opacity:.7;margin-left:.5rem}\
         main{max-width:760px;margin:0 auto;padding:1.5rem}.card{background:#fff;border:1px solid #e6dccd;\
         border-radius:8px;padding:1rem;margin:1rem 0}.note{color:#7a6a58;font-size:.9rem;margin:0 0 .5rem}",
    )
}

fn html_escape(raw: &str) -> String {
    raw.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}
