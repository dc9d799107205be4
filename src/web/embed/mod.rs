//! Embeds: the loader script, and a widget's composer and thread inside an iframe on a
//! third-party page.
//!
//! `<script src="…/embed.js" data-ihf-widget="EMBED_KEY" async></script>` inserts an iframe of
//! `/embed/{embed_key}`. That page answers with `frame-ancestors` listing the widget's allowed
//! origins (every other page says `'none'`), knows its visitor by a partitioned cookie or by the
//! token the iframe carries (`auth::embed`), and reads and writes as that visitor only, confined
//! to the widget (on PostgreSQL by Row Level Security as well). Its form posts are exempt from
//! the session CSRF check: the visitor token and an `Origin` check protect them instead.
//!
//! One file per job: the loader script (`loader.rs`), the page (`page.rs`), the composer's
//! posts (`submit.rs`), the thread and its live stream (`thread.rs`), replies (`replies.rs`),
//! "me too" and suggestions (`support.rs`), an identified visitor's mail opt-in (`email.rs`);
//! who asks (`visitor.rs`) and how the embed answers (`response.rs`).

mod email;
mod loader;
mod page;
mod replies;
mod response;
mod submit;
mod support;
mod thread;
mod visitor;

use actix_web::web;

pub use response::frame_ancestors;
pub use thread::{THREAD_SIZE, Thread};

/// Mounts the loader, the embed routes and the embed's replies.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(loader::loader)
        .service(page::show_page)
        .service(submit::submit)
        .service(email::opt_in)
        .service(thread::thread_region)
        .service(thread::live_thread)
        .service(support::toggle_support)
        .service(support::similar);
    replies::configure(cfg);
}
