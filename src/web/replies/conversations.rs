//! The replies and support of one page of annotations as one viewer sees them
//! ([`Conversations`]), and the viewer's own controls a shared live render leaves out
//! ([`PersonalControls`]).

use std::borrow::Borrow;
use std::collections::HashMap;

use askama::Template;

use super::views::{RepliesView, SupportSlot, SupportView};
use crate::AppState;
use crate::auth::Viewer;
use crate::auth::policy::{self, HubAccess};
use crate::db::replies::{self, Reply};
use crate::db::supports::{self, Support};
use crate::db::widgets::Widget;
use crate::error::AppError;

/// The replies and support of one page of annotations, as one viewer sees them.
#[derive(Debug, Clone, Default)]
pub struct Conversations {
    replies: HashMap<i64, Vec<Reply>>,
    support: HashMap<i64, Support>,
    viewer_id: Option<i64>,
    /// The viewer is staff of the hub: replies on anything, internally too.
    staff: bool,
    /// Where the support buttons post, when the viewer may give support on this page at all
    /// (`None`: counts only).
    support_base: Option<String>,
}

impl Conversations {
    /// What every reader of a shared live render may see of annotations `ids` (`viewer` is one
    /// of them): replies (internal ones only for `staff`, the hub's triagers and operators, who
    /// read them all), support counts without anyone's own mark, and no controls.
    pub async fn load_shared(state: &AppState, viewer: &Viewer, ids: &[i64], staff: bool) -> Result<Self, AppError> {
        let mut replies = replies::for_annotations(&state.db, viewer, ids).await?;
        if !staff {
            for thread in replies.values_mut() {
                thread.retain(|reply| reply.internal == 0);
            }
        }
        let support = supports::counts(&state.db, None, ids).await?;
        Ok(Self { replies, support, viewer_id: None, staff: false, support_base: None })
    }

    /// Loads the replies and support of the annotations `ids` for `viewer`. `widget`: the one
    /// widget the page lists, when the viewer may give support there.
    pub async fn load(
        state: &AppState,
        viewer: &Viewer,
        access: &HubAccess,
        widget: Option<&Widget>,
        ids: &[i64],
    ) -> Result<Self, AppError> {
        let replies = replies::for_annotations(&state.db, viewer, ids).await?;
        let support = supports::counts(&state.db, viewer.actor_id, ids).await?;
        let supportable = viewer.is_signed_in() && widget.is_some_and(policy::supportable);
        Ok(Self {
            replies,
            support,
            viewer_id: viewer.actor_id,
            staff: access.can_reply_internally(),
            support_base: supportable.then(String::new),
        })
    }

    /// The embed's: replies and support counts as the visitor `me` sees them, no staff
    /// controls (the embed renders its own reply forms and toggles, `web::embed::replies`).
    pub fn embed(replies: HashMap<i64, Vec<Reply>>, support: HashMap<i64, Support>, me: Option<i64>) -> Self {
        Self { replies, support, viewer_id: me, staff: false, support_base: None }
    }

    /// The support of one annotation.
    pub fn support_of(&self, annotation_id: impl Borrow<i64>) -> Support {
        self.support.get(annotation_id.borrow()).copied().unwrap_or_default()
    }

    /// The replies of one annotation.
    pub fn replies_of(&self, annotation_id: impl Borrow<i64>) -> &[Reply] {
        self.replies.get(annotation_id.borrow()).map_or(&[], Vec::as_slice)
    }

    /// The thread under annotation `annotation_id` (written by `author_id`) on the widget at
    /// `base`.
    pub fn replies(&self, base: &str, annotation_id: impl Borrow<i64>, author_id: impl Borrow<i64>) -> RepliesView {
        let (annotation_id, author_id) = (*annotation_id.borrow(), *author_id.borrow());
        RepliesView {
            base: base.to_owned(),
            annotation_id,
            replies: self.replies_of(annotation_id).to_vec(),
            viewer_id: self.viewer_id,
            can_reply: self.viewer_id.is_some() && (self.staff || self.viewer_id == Some(author_id)),
            can_internal: self.staff,
            error: None,
            typed: String::new(),
        }
    }

    /// The support count (and button, where the viewer may give support) of an annotation.
    pub fn support(&self, base: &str, annotation_id: impl Borrow<i64>, author_id: impl Borrow<i64>) -> SupportView {
        let (annotation_id, author_id) = (*annotation_id.borrow(), *author_id.borrow());
        let support = self.support_of(annotation_id);
        let url = self
            .support_base
            .as_ref()
            .filter(|_| self.viewer_id.is_some_and(|me| me != author_id))
            .map(|_| format!("{base}/annotations/{annotation_id}/support"));
        SupportView { annotation_id, count: support.count, mine: support.mine, url, slot: SupportSlot::Thread }
    }
}

/// The viewer's own controls of a shared thread render (which has none), as templates the page
/// carries for static/live.js to fill into rows that arrive live: the "me too" toggle (when the
/// viewer may give support on the widget) and the reply form (on their own annotations, or on
/// every one for staff). Rendered from the same fragments as a personal render, with `__ID__`
/// for the annotation and a count of 0 the page replaces.
pub struct PersonalControls {
    /// `fragments/support.html` with its toggle.
    pub support: Option<String>,
    /// `fragments/replies.html` with its form and no replies.
    pub reply: Option<String>,
    /// The reply form goes under every annotation (staff), not only the viewer's own.
    pub reply_all: bool,
}

impl PersonalControls {
    /// The controls `viewer` has on the thread of `widget` at `base`.
    pub fn for_thread(base: &str, viewer: &Viewer, access: &HubAccess, widget: &Widget) -> Result<Self, AppError> {
        if !viewer.is_signed_in() {
            return Ok(Self { support: None, reply: None, reply_all: false });
        }
        let support = match policy::supportable(widget) {
            true => Some(
                SupportTemplate {
                    url: Some(format!("{base}/annotations/{PLACEHOLDER}/support")),
                    count: 0,
                    mine: false,
                }
                .render()?,
            ),
            false => None,
        };
        let staff = access.can_reply_internally();
        let reply = RepliesTemplate {
            base: base.to_owned(),
            annotation_id: PLACEHOLDER,
            replies: Vec::new(),
            viewer_id: viewer.actor_id,
            can_reply: true,
            can_internal: staff,
            error: None,
            typed: String::new(),
        }
        .render()?;
        Ok(Self { support, reply: Some(reply), reply_all: staff })
    }
}

/// Where a template of [`PersonalControls`] names its annotation.
const PLACEHOLDER: &str = "__ID__";

/// [`SupportView`] of annotation [`PLACEHOLDER`] (in the thread).
#[derive(Template)]
#[template(path = "fragments/support.html")]
struct SupportTemplate {
    count: i64,
    mine: bool,
    url: Option<String>,
}

impl SupportTemplate {
    fn element_id(&self) -> String {
        format!("support-{PLACEHOLDER}")
    }

    fn post_url(&self) -> String {
        self.url.clone().unwrap_or_default()
    }
}

/// [`RepliesView`] of annotation [`PLACEHOLDER`].
#[derive(Template)]
#[template(path = "fragments/replies.html")]
struct RepliesTemplate {
    base: String,
    annotation_id: &'static str,
    replies: Vec<Reply>,
    viewer_id: Option<i64>,
    can_reply: bool,
    can_internal: bool,
    error: Option<String>,
    typed: String,
}
