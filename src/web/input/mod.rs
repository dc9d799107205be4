//! The input layer: every text a request brings — the address, the query string, a form body, a
//! JSON body (strings *and* keys, however deeply nested) — is checked here once, before a handler
//! and so the database see it. Both databases then behave the same, and no constraint is the
//! first to notice.
//!
//! Refused everywhere, with a message naming the field:
//! - NUL (U+0000): PostgreSQL's `text` and `jsonb` cannot hold it, and SQLite's `length()` stops
//!   at it (a title of NUL bytes has length 0 there, and the `CHECK` would refuse it);
//! - lone UTF-16 surrogates (`\udc00` in JSON; PostgreSQL's `jsonb` refuses them) and bytes that
//!   are not UTF-8 in the address, the query or a form (a percent-encoded surrogate is such);
//! - query values over [`MAX_QUERY_VALUE`] characters and path segments over
//!   [`MAX_SEGMENT`] characters; each field's own bound (a slug, a title of at most 200 characters,
//!   the search text of [`search`]) is checked by its parser, by the rule the database's `CHECK`
//!   states.
//!
//! The address and the query string answer 400, a form or JSON body 422; under `/api/` the
//! answer is the API's JSON error, elsewhere the error page (or the htmx error fragment).
//! The [`guard`] middleware checks the address, the query string and urlencoded forms; JSON
//! bodies are checked by the API's body reader with [`check_json`] (they only go there).
//!
//! One file per job, each depending only on those before it: what a refusal says
//! (`refusal.rs`), the checks of text (`text.rs`) and of JSON (`json.rs`), and the [`guard`]
//! middleware that applies them to every request (`guard.rs`).

mod guard;
mod json;
mod refusal;
mod text;

pub use guard::{MAX_FORM, guard};
pub use json::check_json;
pub use refusal::{Place, Problem, Refusal};
pub use text::{
    MAX_QUERY_VALUE, MAX_SEGMENT, SEARCH_MAX, SLUG_FILTER_MAX, check_path, check_text, check_urlencoded, search,
    slug_filter,
};
