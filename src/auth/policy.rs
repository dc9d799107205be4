//! The access policy, where it used to live: its rules are in [`crate::access`] (pure), its SQL
//! predicates beside the store in [`crate::db::visibility`]. This module names both for the
//! callers that still say `auth::policy`; new code imports them from where they live.

pub use crate::access::{
    Guarded, HubAccess, Role, WidgetScope, can_manage_hubs, embed_key_can_send_events, embed_visitor_can_annotate,
    embed_visitor_can_support, every_member_reads, supportable,
};
pub use crate::db::visibility::{
    push_annotation_visible, push_annotation_visible_alone, push_hub_annotation_visible, push_reply_visible,
    push_widget_visible, sql_actor,
};
