//! The composer's form as the widget page and the embed post it: the sealed state, the fields,
//! and which action was asked for, read into the component's actions.

use serde::Deserialize;

use crate::components::composer::Action;
use crate::error::AppError;

/// The composer's form: the sealed state, the fields, and which action was asked for.
#[derive(Debug, Deserialize)]
pub struct ComposerForm {
    /// The sealed composer state (`components::seal`).
    pub token: String,
    body: Option<String>,
    category: Option<String>,
    /// `body`, `category` or `submit` (the default: a plain form post is a submit).
    action: Option<String>,
}

impl ComposerForm {
    /// The fields as they are now, then the action asked for.
    pub fn actions(self) -> Result<Vec<Action>, AppError> {
        let mut actions = Vec::with_capacity(3);
        actions.extend(self.body.map(Action::UpdateBody));
        actions.extend(self.category.map(Action::ChooseCategory));
        match self.action.as_deref() {
            None | Some("submit") => actions.push(Action::Submit),
            Some("body" | "category") => {}
            Some(other) => return Err(AppError::BadRequest(format!("unknown composer action {other:?}"))),
        }
        Ok(actions)
    }
}
