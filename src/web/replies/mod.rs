//! What a thread shows under each annotation besides its body: the replies and the "me too"
//! support, with their actions (reply, edit one's reply, support and take it back).
//!
//! Every surface that lists annotations (the widget page, the inbox, the triage board, the
//! embed) loads a [`Conversations`] for the annotations of its page and includes
//! `fragments/replies.html` and `fragments/support.html` through it, so a live re-render of the
//! list shows them as they are now.
//!
//! One file per job: [`Conversations`] and the viewer's own controls of a shared render
//! (`conversations.rs`), the fragments they render (`views.rs`) and the actions behind them
//! (`actions.rs`).

mod actions;
mod conversations;
mod views;

use actix_web::web;

pub use conversations::{Conversations, PersonalControls};
pub use views::{RepliesView, ReplyItemView, SIMILAR_LIMIT, SimilarView, SupportSlot, SupportView};

/// Mounts the reply and support actions.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(actions::show_replies)
        .service(actions::create_reply)
        .service(actions::show_reply)
        .service(actions::edit_reply)
        .service(actions::save_reply)
        .service(actions::toggle_support)
        .service(actions::similar);
}
