//! The annotation composer: write feedback on a widget, pick a category, submit.
//!
//! Every request of the composer carries the whole form, so the handler turns it into
//! [`Action::UpdateBody`] and [`Action::ChooseCategory`] (what the fields hold now) followed by
//! the action that was asked for; `update` folds them. Submitting returns [`Effect::Create`];
//! [`perform`] writes the row and answers with [`Action::Created`], [`Action::Refused`] or
//! [`Action::Failed`], which `update` turns into the next state. Nothing typed is ever lost:
//! every refusal keeps the body.

use actix_web::http::StatusCode;
use askama::Template;
use serde::{Deserialize, Serialize};

use super::Component;
use crate::access::HubAccess;
use crate::db::annotations::{self, AnnotationBody, BODY_MAX_CHARS, BodyError, NewAnnotation};
use crate::db::categories::{Category, DEFAULT_SLUG};
use crate::db::widgets::Widget;
use crate::db::{Db, Outage, now_ms};

/// The composer's state; it travels sealed in the markup (see `components`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Composer {
    pub widget_id: i64,
    pub body: String,
    /// The chosen category's slug.
    pub category: String,
    /// Set once an annotation was created; shows the "thanks" note until the next one is begun.
    pub submitted: bool,
    /// A submit was tried: from then on typing is checked by every rule, so a late keystroke
    /// request cannot hide the message the submit showed.
    #[serde(default)]
    pub attempted: bool,
    /// Random per composer; with `round` it makes the idempotency key of each submission, so a
    /// repeated submit of the same state creates one annotation.
    pub nonce: String,
    pub round: u32,
    /// Messages of this request; never sealed.
    #[serde(skip)]
    pub errors: Errors,
}

/// What is wrong, each next to its field.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Errors {
    pub body: Option<String>,
    pub category: Option<String>,
    /// The widget cannot take feedback (gone, archived, no longer writable for this person).
    pub widget: Option<String>,
    pub failure: Option<Failure>,
}

/// Why an annotation could not be written although nothing was wrong with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// The database cannot take the write right now (disk full, locked, unreachable);
    /// retrying later will work.
    Unavailable(Outage),
    /// Anything else (logged).
    Unexpected,
}

/// The field a refusal is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    Body,
    Category,
    Widget,
}

/// What can happen to a composer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// The text as typed so far (live count and validation).
    UpdateBody(String),
    /// A category pill was chosen.
    ChooseCategory(String),
    /// Create the annotation.
    Submit,
    /// [`perform`]: the annotation exists.
    Created,
    /// [`perform`]: refused, with the message for the field.
    Refused(Field, String),
    /// [`perform`]: the write failed.
    Failed(Failure),
}

/// An annotation ready to be written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Draft {
    pub widget_id: i64,
    pub body: AnnotationBody,
    pub category: String,
    pub idempotency_key: String,
}

/// Work for the handler after an update.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    None,
    Create(Draft),
}

impl Composer {
    /// An empty composer for a widget, with the default category.
    pub fn new(widget_id: i64) -> Self {
        Self {
            widget_id,
            body: String::new(),
            category: DEFAULT_SLUG.to_owned(),
            submitted: false,
            attempted: false,
            nonce: crate::crypto::random_token(12),
            round: 0,
            errors: Errors::default(),
        }
    }

    /// The idempotency key of the next submission.
    pub fn idempotency_key(&self) -> String {
        format!("{}-{}", self.nonce, self.round)
    }

    /// Applies actions in order; the last effect wins (only `Submit` has one).
    pub fn apply(self, actions: impl IntoIterator<Item = Action>) -> (Self, Effect) {
        actions.into_iter().fold((self, Effect::None), |(state, _), action| state.update(action))
    }

    /// The status a response showing this state has.
    pub fn status(&self) -> StatusCode {
        match self.errors.failure {
            Some(Failure::Unavailable(_)) => StatusCode::SERVICE_UNAVAILABLE,
            Some(Failure::Unexpected) => StatusCode::INTERNAL_SERVER_ERROR,
            None if self.errors.body.is_some() || self.errors.category.is_some() || self.errors.widget.is_some() => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            None => StatusCode::OK,
        }
    }

    /// Seconds after which a failed submit may work, for `Retry-After`.
    pub fn retry_after(&self) -> Option<u64> {
        match self.errors.failure {
            Some(Failure::Unavailable(outage)) => Some(outage.retry_after().as_secs()),
            _ => None,
        }
    }

    /// Characters of the body, counted as [`AnnotationBody`] does.
    pub fn chars(&self) -> usize {
        AnnotationBody::chars(&self.body)
    }
}

impl Component for Composer {
    const NAME: &'static str = "composer";
    type Action = Action;
    type Effect = Effect;

    fn update(mut self, action: Action) -> (Self, Effect) {
        match action {
            Action::UpdateBody(body) => {
                // While typing, only "too long" is worth saying; "empty" waits for a submit.
                self.errors.body = match AnnotationBody::parse(&body) {
                    Err(e @ BodyError::TooLong(_)) => Some(e.to_string()),
                    Err(e) if self.attempted => Some(e.to_string()),
                    _ => None,
                };
                if !body.trim().is_empty() {
                    self.submitted = false;
                }
                self.body = body;
            }
            Action::ChooseCategory(slug) => {
                self.category = slug.trim().to_owned();
                self.errors.category = None;
            }
            Action::Submit => {
                self.errors = Errors::default();
                self.attempted = true;
                let body = AnnotationBody::parse(&self.body).map_err(|e| e.to_string());
                if self.category.is_empty() {
                    self.errors.category = Some("Choose a category.".into());
                }
                match body {
                    Err(message) => self.errors.body = Some(message),
                    Ok(body) if self.errors.category.is_none() => {
                        let draft = Draft {
                            widget_id: self.widget_id,
                            body,
                            category: self.category.clone(),
                            idempotency_key: self.idempotency_key(),
                        };
                        return (self, Effect::Create(draft));
                    }
                    Ok(_) => {}
                }
            }
            Action::Created => {
                self = Self {
                    body: String::new(),
                    category: DEFAULT_SLUG.to_owned(),
                    submitted: true,
                    attempted: false,
                    round: self.round + 1,
                    errors: Errors::default(),
                    ..self
                };
            }
            Action::Refused(field, message) => match field {
                Field::Body => self.errors.body = Some(message),
                Field::Category => self.errors.category = Some(message),
                Field::Widget => self.errors.widget = Some(message),
            },
            Action::Failed(failure) => self.errors.failure = Some(failure),
        }
        (self, Effect::None)
    }
}

/// What [`perform`] needs to know about the request.
pub struct Context<'a> {
    pub db: &'a Db,
    pub access: &'a HubAccess,
    /// The widget of the URL, if it still exists.
    pub widget: Option<&'a Widget>,
    /// The hub's live categories.
    pub categories: &'a [Category],
}

/// Performs [`Effect::Create`]: checks what only the database knows and writes the row once.
pub async fn perform(ctx: &Context<'_>, draft: Draft) -> Action {
    let writable = ctx.widget.filter(|w| w.id == draft.widget_id && ctx.access.can_annotate(w));
    let (Some(widget), Some(actor_id)) = (writable, ctx.access.actor_id) else {
        return Action::Refused(Field::Widget, "This widget no longer accepts feedback.".into());
    };
    let Some(category) = ctx.categories.iter().find(|c| c.slug == draft.category && c.archived_at.is_none()) else {
        return Action::Refused(Field::Category, "Choose one of this hub's categories.".into());
    };
    let new = NewAnnotation {
        hub_id: widget.hub_id,
        widget_id: widget.id,
        actor_id,
        body: draft.body.as_str(),
        category_id: category.id,
        status: annotations::AnnotationStatus::New,
        created_at: now_ms(),
        idempotency_key: Some(&draft.idempotency_key),
    };
    match annotations::create_once(ctx.db, &new).await {
        Ok(_) => Action::Created,
        Err(e) => match e.outage() {
            Some(outage) => {
                tracing::warn!(error = %e, "composer: {}", outage.reason());
                ctx.db.record_outage(outage);
                Action::Failed(Failure::Unavailable(outage))
            }
            None => {
                tracing::error!(error = format!("{:#}", anyhow::Error::new(e)), "composer: creating an annotation");
                Action::Failed(Failure::Unexpected)
            }
        },
    }
}

/// The composer as markup.
#[derive(Template)]
#[template(path = "fragments/composer.html")]
pub struct ComposerView {
    pub state: Composer,
    /// The sealed state.
    pub token: String,
    /// Where actions are posted.
    pub action_url: String,
    pub categories: Vec<Category>,
    /// For the plain-form path (htmx sends the header).
    pub csrf_token: String,
}

impl ComposerView {
    /// The most characters a body may have.
    pub fn max_chars(&self) -> usize {
        BODY_MAX_CHARS
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fresh() -> Composer {
        Composer::new(7)
    }

    fn typed(body: &str) -> Composer {
        fresh().update(Action::UpdateBody(body.into())).0
    }

    #[test]
    fn starts_empty_with_friction() {
        let c = fresh();
        assert_eq!((c.widget_id, c.body.as_str(), c.category.as_str(), c.submitted), (7, "", "friction", false));
        assert_eq!(c.status(), StatusCode::OK);
        assert_ne!(c.nonce, fresh().nonce, "every composer has its own idempotency keys");
    }

    #[test]
    fn update_body_counts_and_checks_the_length_as_you_type() {
        let (c, effect) = fresh().update(Action::UpdateBody("Total hidden".into()));
        assert_eq!((c.body.as_str(), c.chars(), effect), ("Total hidden", 12, Effect::None));
        assert_eq!(c.errors.body, None);

        let c = typed(&"x".repeat(4000));
        assert_eq!((c.chars(), c.errors.body.clone()), (4000, None));
        let c = typed(&"x".repeat(4001));
        assert!(c.errors.body.as_deref().is_some_and(|m| m.contains("4001")), "{:?}", c.errors.body);
        assert_eq!(c.status(), StatusCode::UNPROCESSABLE_ENTITY);

        // Empty or blank while typing is not (yet) a mistake.
        assert_eq!(typed("").errors.body, None);
        assert_eq!(typed("   ").errors.body, None);
        // Characters, not bytes; CRLF counts once.
        assert_eq!(typed("é\r\nü").chars(), 3);
    }

    #[test]
    fn choose_category() {
        let (c, effect) = fresh().update(Action::ChooseCategory(" bug ".into()));
        assert_eq!((c.category.as_str(), effect), ("bug", Effect::None));
    }

    #[test]
    fn submit_makes_a_draft() {
        let c = typed("  The total jumps\r\naround  ").update(Action::ChooseCategory("bug".into())).0;
        let (c, effect) = c.update(Action::Submit);
        let Effect::Create(draft) = effect else { panic!("expected a draft, got {effect:?}") };
        assert_eq!(draft.body.as_str(), "The total jumps\naround");
        assert_eq!((draft.widget_id, draft.category.as_str()), (7, "bug"));
        assert_eq!(draft.idempotency_key, c.idempotency_key());
        assert_eq!(c.body, "  The total jumps\r\naround  ", "the text stays until it is saved");
    }

    #[test]
    fn submitting_the_same_state_twice_uses_the_same_key() {
        let c = typed("Twice");
        let (Effect::Create(a), Effect::Create(b)) = (c.clone().update(Action::Submit).1, c.update(Action::Submit).1)
        else {
            panic!("expected drafts")
        };
        assert_eq!(a.idempotency_key, b.idempotency_key);
    }

    #[test]
    fn submit_refuses_empty_blank_and_long_bodies_keeping_the_text() {
        for (body, needle) in [("", "empty"), (" \n\t ", "empty"), (&"y".repeat(4001) as &str, "4001")] {
            let (c, effect) = typed(body).update(Action::Submit);
            assert_eq!(effect, Effect::None, "{body:?}");
            assert!(c.errors.body.as_deref().is_some_and(|m| m.contains(needle)), "{body:?}: {:?}", c.errors.body);
            assert_eq!(c.body, body, "typed text kept");
            assert_eq!(c.status(), StatusCode::UNPROCESSABLE_ENTITY);
        }
    }

    #[test]
    fn after_a_refused_submit_typing_checks_every_rule() {
        let (c, _) = typed("   ").update(Action::Submit);
        assert!(c.errors.body.is_some());
        // A keystroke request that was already on its way still shows the message.
        let c = c.update(Action::UpdateBody("    ".into())).0;
        assert!(c.errors.body.as_deref().is_some_and(|m| m.contains("empty")));
        assert_eq!(c.update(Action::UpdateBody("Now it is fine".into())).0.errors.body, None);
        // A new annotation starts lenient again.
        let c = typed("ok").update(Action::Submit).0.update(Action::Created).0;
        assert_eq!(c.update(Action::UpdateBody(" ".into())).0.errors.body, None);
    }

    #[test]
    fn submit_refuses_a_missing_category() {
        let c = typed("Fine text").update(Action::ChooseCategory("  ".into())).0;
        let (c, effect) = c.update(Action::Submit);
        assert_eq!(effect, Effect::None);
        assert!(c.errors.category.is_some());
        assert_eq!(c.body, "Fine text");
    }

    #[test]
    fn created_resets_with_thanks_and_a_new_key() {
        let c = typed("Done").update(Action::ChooseCategory("idea".into())).0;
        let key = c.idempotency_key();
        let (c, effect) = c.update(Action::Created);
        assert_eq!(effect, Effect::None);
        assert!(c.submitted);
        assert_eq!((c.body.as_str(), c.category.as_str()), ("", "friction"));
        assert_ne!(c.idempotency_key(), key, "the next annotation is a new one");
        assert_eq!(c.status(), StatusCode::OK);
        // Thanks stays until someone starts writing again.
        assert!(c.clone().update(Action::UpdateBody(String::new())).0.submitted);
        assert!(!c.update(Action::UpdateBody("Next".into())).0.submitted);
    }

    #[test]
    fn refusals_land_next_to_their_field() {
        for (field, check) in [
            (Field::Body, (|e: &Errors| e.body.is_some()) as fn(&Errors) -> bool),
            (Field::Category, |e| e.category.is_some()),
            (Field::Widget, |e| e.widget.is_some()),
        ] {
            let (c, effect) = typed("Keep me").update(Action::Refused(field, "no".into()));
            assert!(check(&c.errors), "{field:?}");
            assert_eq!((c.body.as_str(), effect), ("Keep me", Effect::None));
            assert_eq!(c.status(), StatusCode::UNPROCESSABLE_ENTITY);
        }
    }

    #[test]
    fn failures_keep_the_text() {
        let (c, _) = typed("Keep me").update(Action::Failed(Failure::Unavailable(Outage::DiskFull)));
        assert_eq!((c.body.as_str(), c.status()), ("Keep me", StatusCode::SERVICE_UNAVAILABLE));
        assert_eq!(c.retry_after(), Some(30));
        let (c, _) = typed("Keep me").update(Action::Failed(Failure::Unexpected));
        assert_eq!(c.status(), StatusCode::INTERNAL_SERVER_ERROR);
        // A retry starts clean.
        assert_eq!(c.update(Action::Submit).0.errors.failure, None);
    }

    #[test]
    fn apply_folds_in_order() {
        let (c, effect) = fresh().apply([
            Action::UpdateBody("Folded".into()),
            Action::ChooseCategory("question".into()),
            Action::Submit,
        ]);
        assert!(matches!(effect, Effect::Create(ref d) if d.category == "question" && d.body.as_str() == "Folded"));
        assert_eq!(c.body, "Folded");
    }

    #[test]
    fn errors_are_not_sealed() {
        let c = typed(&"z".repeat(4001));
        let json = serde_json::to_string(&c).expect("json");
        let back: Composer = serde_json::from_str(&json).expect("back");
        assert_eq!(back.errors, Errors::default());
        assert_eq!(back.body, c.body);
    }
}
