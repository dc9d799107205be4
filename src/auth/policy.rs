//! The access policy: the one place that says who may read or do what.
//!
//! The seed's two rules, kept exactly: an actor can always read their own annotations; anyone,
//! signed in or not, can read the annotations on a widget whose `policy_scope` is `public`.
//! Around them: hub members read their hub's `members` widgets; `private` widgets are read by
//! their owner and the hub's triagers and operators; triagers and operators read and triage all
//! of their hub's annotations; only the author edits or deletes an annotation's body.

/// The roles a hub member can hold, weakest first.
pub const ROLES: [&str; 3] = ["annotator", "triager", "operator"];
