//! The triage queue as stored: filtered, keyset-paginated listings of a hub's annotations, their
//! counts and history (`queue.rs`), and the triage changes (recategorize, triage, dismiss,
//! duplicate, reopen, promote, undo: `write.rs`), run by the commands of `crate::triage`.
//!
//! Every change is optimistic: it names the version the client saw, is refused with
//! [`StoreError::Stale`] when the row moved on, bumps `annotations.version`, and writes one
//! `annotation_changes` row per field it changed (who, when, from → to). Several changes run in
//! one transaction, so a bulk action that fails half-way changes nothing.

mod queue;
mod write;

pub use queue::{
    HistoryEntry, OpenCandidate, QueueCounts, QueueFilter, TriageRow, board, counts, duplicates, history, last_change,
    open_candidates, queue, row, rows, search,
};
pub use write::{apply_in, promote_in};

/// Templates say `crate::db::triage::DISMISS_REASONS`.
pub use crate::triage::change::{DISMISS_REASONS, reason_label};
