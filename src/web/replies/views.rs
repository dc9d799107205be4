//! The fragments of a conversation: the replies under an annotation with the reply form, one
//! reply, the "me too" count and toggle, and the suggestions beside the composer.

use askama::Template;
use serde::Deserialize;

use crate::db::replies::Reply;

/// The replies under one annotation, with the reply form for those who may reply.
#[derive(Template)]
#[template(path = "fragments/replies.html")]
pub struct RepliesView {
    pub base: String,
    pub annotation_id: i64,
    pub replies: Vec<Reply>,
    pub viewer_id: Option<i64>,
    pub can_reply: bool,
    pub can_internal: bool,
    /// Why the last reply was refused; `typed` is what was typed.
    pub error: Option<String>,
    pub typed: String,
}

/// One reply (answered alone after an edit or a cancelled edit).
#[derive(Template)]
#[template(path = "fragments/reply_item.html")]
pub struct ReplyItemView {
    pub base: String,
    pub reply: Reply,
    pub viewer_id: Option<i64>,
}

/// An annotation's "me too" count, and its toggle when `url` is set.
#[derive(Template)]
#[template(path = "fragments/support.html")]
pub struct SupportView {
    pub annotation_id: i64,
    pub count: i64,
    pub mine: bool,
    pub url: Option<String>,
    /// Where on the page it sits (its element id's prefix).
    pub slot: SupportSlot,
}

/// Where a support toggle sits: under an annotation of a list, or among the suggestions
/// beside the composer (the same annotation may be in both).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SupportSlot {
    Thread,
    Similar,
}

impl SupportView {
    /// The element id.
    pub fn element_id(&self) -> String {
        match self.slot {
            SupportSlot::Thread => format!("support-{}", self.annotation_id),
            SupportSlot::Similar => format!("similar-support-{}", self.annotation_id),
        }
    }

    /// The toggle's URL with the slot, so the answer replaces the same element.
    pub fn post_url(&self) -> String {
        let url = self.url.clone().unwrap_or_default();
        match self.slot {
            SupportSlot::Thread => url,
            SupportSlot::Similar if url.contains('?') => format!("{url}&slot=similar"),
            SupportSlot::Similar => format!("{url}?slot=similar"),
        }
    }
}

/// Suggestions beside the composer: annotations like the draft, to support instead.
#[derive(Template)]
#[template(path = "fragments/similar.html")]
pub struct SimilarView {
    pub items: Vec<(String, SupportView)>,
}

/// How many suggestions the composer shows.
pub const SIMILAR_LIMIT: i64 = 3;
