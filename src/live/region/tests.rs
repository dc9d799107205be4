//! The regions' keys, scopes and index entries.

use super::*;

fn change(table: &str, hub_id: i64) -> ChangeEvent {
    ChangeEvent {
        seq: 1,
        table: table.into(),
        op: "insert".into(),
        hub_id: Some(hub_id),
        widget_id: None,
        row_id: None,
    }
}

#[test]
fn keys_round_trip() {
    for region in [
        Region::Hubs,
        Region::Widgets { hub_id: 3 },
        Region::Signals { hub_id: 3 },
        Region::Feed { hub_id: 9 },
        Region::Roadmap { hub_id: 2 },
        Region::WidgetCharts { hub_id: 2, widget_id: 5 },
    ] {
        assert_eq!(Region::parse(&region.key()), Some(region.clone()));
    }
    assert_eq!(Region::parse("widgets"), None);
    assert_eq!(Region::parse("widgets:x"), None);
    assert_eq!(Region::parse("nope:1"), None);
    for region in [
        Region::Thread { hub_id: 1, widget_id: 4 },
        Region::Inbox { hub_id: 1, widget_id: 4, category_id: None, status: None },
        Region::Inbox { hub_id: 1, widget_id: 4, category_id: Some(7), status: Some("triaged") },
    ] {
        assert_eq!(Region::parse(&region.key()), Some(region));
    }
    for bad in ["thread:1", "thread:1:x", "thread:1:2:3", "inbox:1:2", "inbox:1:2:-:bogus", "inbox:1:2:x:-"] {
        assert_eq!(Region::parse(bad), None, "{bad}");
    }
    for region in [
        Region::Ledger { hub_id: 2, status: None },
        Region::Ledger { hub_id: 2, status: Some(Status::Deferred) },
        Region::CandidateHead { hub_id: 2, candidate_id: 5 },
        Region::CandidateEvidence { hub_id: 2, candidate_id: 5 },
        Region::CandidateHistory { hub_id: 2, candidate_id: 5 },
    ] {
        assert_eq!(Region::parse(&region.key()), Some(region));
    }
    assert_eq!(Region::parse("ledger-done:2"), None);
    assert_eq!(Region::parse("ledgerx:2"), None);
    assert_eq!(Region::parse("history:2"), None);
    let queue = Region::TriageQueue { hub_id: 2, filter: "status=new&q=a,b".into() };
    assert_eq!(Region::parse(&queue.key()), Some(queue.clone()));
    assert!(!queue.key().contains(',') && !queue.key().contains('&'));
    assert_eq!(Region::parse("triage-queue:2:!!"), None);
}

#[test]
fn a_region_is_indexed_under_every_table_it_is_affected_by() {
    let tables = [
        "hubs",
        "widgets",
        "annotations",
        "interaction_events",
        "hub_members",
        "categories",
        "requirement_candidates",
        "ledger_entries",
        "candidate_evidence",
        "notifications",
    ];
    let regions = [
        Region::Hubs,
        Region::Widgets { hub_id: 1 },
        Region::Signals { hub_id: 1 },
        Region::Feed { hub_id: 1 },
        Region::Thread { hub_id: 1, widget_id: 4 },
        Region::Inbox { hub_id: 1, widget_id: 4, category_id: None, status: None },
        Region::Ledger { hub_id: 1, status: None },
        Region::CandidateHead { hub_id: 1, candidate_id: 5 },
        Region::CandidateEvidence { hub_id: 1, candidate_id: 5 },
        Region::CandidateHistory { hub_id: 1, candidate_id: 5 },
        Region::TriageQueue { hub_id: 1, filter: String::new() },
        Region::TriageCounts { hub_id: 1, filter: String::new() },
        Region::Bell { actor_id: 7 },
        Region::Roadmap { hub_id: 1 },
        Region::WidgetCharts { hub_id: 1, widget_id: 4 },
        Region::Follow { hub_id: 1, widget_id: 4 },
    ];
    for region in &regions {
        for table in tables {
            let change = ChangeEvent { widget_id: Some(4), row_id: Some(5), ..change(table, 1) };
            let bell = ChangeEvent { row_id: Some(7), ..change.clone() };
            if region.affected_by(&change) || region.affected_by(&bell) {
                assert!(
                    region.dependencies().any(|(t, hub)| t == table && (hub.is_none() || hub == Some(1))),
                    "{} reads {table} but is not indexed under it",
                    region.key()
                );
            }
        }
    }
}

#[test]
fn scope_and_tables() {
    let feed = Region::Feed { hub_id: 1 };
    assert!(feed.affected_by(&change("annotations", 1)));
    assert!(!feed.affected_by(&change("annotations", 2)));
    assert!(!feed.affected_by(&change("interaction_events", 1)));
    let signals = Region::Signals { hub_id: 1 };
    assert!(signals.affected_by(&change("interaction_events", 1)));
    assert!(!signals.affected_by(&change("annotations", 1)));
    assert!(Region::Hubs.affected_by(&change("annotations", 7)));
    let thread = Region::Thread { hub_id: 1, widget_id: 4 };
    let on_widget = |table: &str, widget_id| ChangeEvent { widget_id: Some(widget_id), ..change(table, 1) };
    assert!(thread.affected_by(&on_widget("annotations", 4)));
    assert!(!thread.affected_by(&on_widget("annotations", 5)), "another widget");
    assert!(!thread.affected_by(&ChangeEvent { widget_id: Some(4), ..change("annotations", 2) }));
    assert!(thread.affected_by(&change("categories", 1)));
    assert!(!thread.affected_by(&on_widget("interaction_events", 4)));
}
