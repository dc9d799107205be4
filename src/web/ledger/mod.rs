//! The governance ledger: requirement candidates, their evidence, the decisions about them and
//! the hash-chained history, with exports an auditor can verify elsewhere.
//!
//! One file per job: the list page and its propose form (`list.rs`), a candidate's page and its
//! live regions (`candidate.rs`), the candidate page's forms (`forms.rs`, which call the
//! governance commands in `crate::governance`), the exports (`export.rs`) and the words the
//! pages use for statuses and history entries (`words.rs`).
//!
//! Live regions: the candidate list of a hub (per status filter) and, on a candidate's page,
//! its head, its evidence and its history. A search narrows the list to a snapshot that is not
//! live (the stream is keyed by the status filter only); clearing the search brings the live
//! list back.

mod candidate;
mod export;
mod forms;
mod list;
mod words;

use actix_web::web;

pub use candidate::{
    CandidateHead, CandidatePart, EvidencePanel, HistoryPanel, PickerResults, load_evidence, load_head, load_history,
    render_candidate_part,
};
pub use export::EXPORT_COLUMNS;
pub use list::{LIST_LIMIT, LedgerList, Tab, load_list};

/// Templates say `crate::web::ledger::excerpt`.
pub use crate::web::format::excerpt;

/// Mounts the ledger pages, their regions, forms and exports.
pub fn configure(cfg: &mut web::ServiceConfig) {
    crate::web::ledger_proofs::configure(cfg);
    // The exports first: `/hubs/{slug}/ledger.csv` must not be read as a page.
    cfg.service(export::export_jsonl)
        .service(export::export_csv)
        .service(list::ledger_index)
        .service(list::list_region)
        .service(list::post_propose)
        .service(candidate::show_candidate)
        .service(candidate::head_region)
        .service(candidate::evidence_region)
        .service(candidate::history_region)
        .service(candidate::evidence_search)
        .service(forms::post_edit)
        .service(forms::post_decide)
        .service(forms::post_attach)
        .service(forms::post_remove);
}
