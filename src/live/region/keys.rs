//! Parsing the keys of the annotation and ledger regions.

use super::Region;
use crate::db::candidates::Status;

/// The annotation keys: `thread:HUB:WIDGET` and `inbox:HUB:WIDGET:CATEGORY:STATUS` (`-` for
/// no category or status filter).
pub(super) fn parse_annotations(key: &str) -> Option<Region> {
    let mut parts = key.split(':');
    let kind = parts.next()?;
    if kind != "thread" && kind != "inbox" {
        return None;
    }
    let hub_id = parts.next()?.parse().ok()?;
    let widget_id = parts.next()?.parse().ok()?;
    let region = if kind == "thread" {
        Region::Thread { hub_id, widget_id }
    } else {
        let category_id = match parts.next()? {
            "-" => None,
            id => Some(id.parse().ok()?),
        };
        let status = match parts.next()? {
            "-" => None,
            name => Some(*crate::db::annotations::STATUSES.iter().find(|s| **s == name)?),
        };
        Region::Inbox { hub_id, widget_id, category_id, status }
    };
    parts.next().is_none().then_some(region)
}

/// The ledger's keys: `ledger:HUB`, `ledger-STATUS:HUB`, and `candidate:`, `evidence:` or
/// `history:` followed by `HUB:CANDIDATE`.
pub(super) fn parse_ledger(key: &str) -> Option<Region> {
    let (kind, rest) = key.split_once(':')?;
    if let Some(status) = kind.strip_prefix("ledger") {
        let status = match status.strip_prefix('-') {
            Some(name) => Some(Status::parse(name)?),
            None if status.is_empty() => None,
            None => return None,
        };
        return Some(Region::Ledger { hub_id: rest.parse().ok()?, status });
    }
    let (hub_id, candidate_id) = rest.split_once(':')?;
    let (hub_id, candidate_id) = (hub_id.parse().ok()?, candidate_id.parse().ok()?);
    match kind {
        "candidate" => Some(Region::CandidateHead { hub_id, candidate_id }),
        "evidence" => Some(Region::CandidateEvidence { hub_id, candidate_id }),
        "history" => Some(Region::CandidateHistory { hub_id, candidate_id }),
        _ => None,
    }
}
