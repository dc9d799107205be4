//! The live regions: what each reads, and how it renders for a viewer.
//!
//! This module knows each region's key, what it reads (tables and scope: what the dispatcher
//! indexes it by) and its event name; it imports no page. Who may see a region, in which
//! audience, and how it is drawn is the surfaces' business, behind [`super::Surfaces`]
//! (implemented in `web::live_regions`, registered in the app's state at start-up).
//!
//! To make a fragment live: add a variant here with its key, say in [`Region::affected_by`] and
//! [`Region::tables`] which tables and scope it reads, give it an event name in [`event`],
//! admit and render it in `web::live_regions` with the loader its page already uses, and put
//! its container on the page with `sse-swap="{{ crate::live::event::NAME }}"` (see
//! `pages/dashboard.html`).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::db::candidates::Status;
use crate::live::delta::html_hash;
use crate::live::feed::ChangeEvent;

/// The SSE event names, one per kind of region: the name a region's updates carry and its
/// container's `sse-swap` on the page. Templates read them from here
/// (`sse-swap="{{ crate::live::event::FEED }}"`), the stream's `hello` lists them, so each is
/// written once.
pub mod event {
    pub const HUBS: &str = "hubs";
    pub const WIDGETS: &str = "widgets";
    pub const SIGNALS: &str = "signals";
    pub const FEED: &str = "feed";
    pub const THREAD: &str = "thread";
    pub const INBOX: &str = "inbox";
    pub const LEDGER: &str = "ledger";
    pub const CANDIDATE_HEAD: &str = "candidate-head";
    pub const CANDIDATE_EVIDENCE: &str = "candidate-evidence";
    pub const CANDIDATE_HISTORY: &str = "candidate-history";
    pub const TRIAGE_QUEUE: &str = "triage-queue";
    pub const TRIAGE_COUNTS: &str = "triage-counts";
    pub const BELL: &str = "bell";
    pub const ROADMAP: &str = "roadmap";
    pub const WIDGET_CHARTS: &str = "widget-charts";
    /// A followed widget changed (the data API's subscriptions and the embed; never a page's).
    pub const CHANGED: &str = "changed";
}

/// Who is sent the same render of a region (see `web::live_regions`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Audience {
    /// Everyone admitted to the region: its scope alone decides its HTML.
    Everyone,
    /// The staff of the region's hub.
    Staff,
    /// One person (or an anonymous viewer) with one set of site-wide rights.
    Person { actor: Option<i64>, admin: bool },
}

impl Audience {
    /// One person's own: rendered for them alone.
    pub fn is_personal(&self) -> bool {
        matches!(self, Self::Person { .. })
    }
}

/// A live region and its scope.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Region {
    /// The hubs index with its counts.
    Hubs,
    /// A hub dashboard's widgets with their counts.
    Widgets { hub_id: i64 },
    /// A hub dashboard's 20 most recent interaction signals.
    Signals { hub_id: i64 },
    /// A hub dashboard's annotation feed (first page).
    Feed { hub_id: i64 },
    /// A widget page's annotation thread (first page).
    Thread { hub_id: i64, widget_id: i64 },
    /// A widget's feedback inbox under its filters (category id, status).
    Inbox { hub_id: i64, widget_id: i64, category_id: Option<i64>, status: Option<&'static str> },
    /// A hub's requirement candidates (all, or one status) with counts and the chain verdict.
    Ledger { hub_id: i64, status: Option<Status> },
    /// A candidate's title, status and statement.
    CandidateHead { hub_id: i64, candidate_id: i64 },
    /// A candidate's evidence.
    CandidateEvidence { hub_id: i64, candidate_id: i64 },
    /// A candidate's history from the ledger.
    CandidateHistory { hub_id: i64, candidate_id: i64 },
    /// A triage board's queue (first page) for one set of filters: the board's query string.
    TriageQueue { hub_id: i64, filter: String },
    /// A triage board's counts panel for one set of filters.
    TriageCounts { hub_id: i64, filter: String },
    /// A person's notification bell (their unread count), in the layout of every live page.
    Bell { actor_id: i64 },
    /// A hub's roadmap (planned and shipped, with support).
    Roadmap { hub_id: i64 },
    /// A widget page's charts (events and feedback per day, categories, backlog), for those who
    /// read the widget's events.
    WidgetCharts { hub_id: i64, widget_id: i64 },
    /// A widget's annotations as a subscriber that reads them for itself follows them: the
    /// data API's subscription and the embed's live thread. The dispatcher renders nothing for
    /// it; it wakes the subscriber (coalesced like every region), which reads as its own
    /// credential, and asks it to check its access again when the hub's memberships or the
    /// widget change. Not a page region: `/live` does not accept its key.
    Follow { hub_id: i64, widget_id: i64 },
}

impl Region {
    /// Parses the `kind`, `kind:id` or `kind:id:filter` form used in `/live?regions=…`.
    pub fn parse(key: &str) -> Option<Self> {
        if let Some(rest) = key.strip_prefix("triage-") {
            // The filter travels base64url-encoded: a query string holds `,` and `&`.
            let mut parts = rest.splitn(3, ':');
            let (kind, hub_id) = (parts.next()?, parts.next()?.parse::<i64>().ok()?);
            let filter = String::from_utf8(URL_SAFE_NO_PAD.decode(parts.next()?).ok()?).ok()?;
            return match kind {
                "queue" => Some(Self::TriageQueue { hub_id, filter }),
                "counts" => Some(Self::TriageCounts { hub_id, filter }),
                _ => None,
            };
        }
        if let Some(region) = parse_annotations(key) {
            return Some(region);
        }
        if let Some(rest) = key.strip_prefix("widget-charts:") {
            let (hub_id, widget_id) = rest.split_once(':')?;
            return Some(Self::WidgetCharts { hub_id: hub_id.parse().ok()?, widget_id: widget_id.parse().ok()? });
        }
        if let Some(region) = parse_ledger(key) {
            return Some(region);
        }
        let (kind, id) = match key.split_once(':') {
            Some((kind, id)) => (kind, Some(id.parse::<i64>().ok()?)),
            None => (key, None),
        };
        match (kind, id) {
            ("hubs", None) => Some(Self::Hubs),
            ("widgets", Some(hub_id)) => Some(Self::Widgets { hub_id }),
            ("signals", Some(hub_id)) => Some(Self::Signals { hub_id }),
            ("feed", Some(hub_id)) => Some(Self::Feed { hub_id }),
            ("bell", Some(actor_id)) => Some(Self::Bell { actor_id }),
            ("roadmap", Some(hub_id)) => Some(Self::Roadmap { hub_id }),
            _ => None,
        }
    }

    /// The `kind` or `kind:id` form.
    pub fn key(&self) -> String {
        match self {
            Self::Hubs => "hubs".into(),
            Self::Widgets { hub_id } => format!("widgets:{hub_id}"),
            Self::Signals { hub_id } => format!("signals:{hub_id}"),
            Self::Feed { hub_id } => format!("feed:{hub_id}"),
            Self::Bell { actor_id } => format!("bell:{actor_id}"),
            Self::Roadmap { hub_id } => format!("roadmap:{hub_id}"),
            Self::WidgetCharts { hub_id, widget_id } => format!("widget-charts:{hub_id}:{widget_id}"),
            Self::Follow { hub_id, widget_id } => format!("follow:{hub_id}:{widget_id}"),
            Self::Thread { hub_id, widget_id } => format!("thread:{hub_id}:{widget_id}"),
            Self::Inbox { hub_id, widget_id, category_id, status } => {
                let category = category_id.map_or_else(|| "-".to_owned(), |id| id.to_string());
                format!("inbox:{hub_id}:{widget_id}:{category}:{}", status.unwrap_or("-"))
            }
            Self::Ledger { hub_id, status: None } => format!("ledger:{hub_id}"),
            Self::Ledger { hub_id, status: Some(status) } => format!("ledger-{}:{hub_id}", status.as_str()),
            Self::CandidateHead { hub_id, candidate_id } => format!("candidate:{hub_id}:{candidate_id}"),
            Self::CandidateEvidence { hub_id, candidate_id } => format!("evidence:{hub_id}:{candidate_id}"),
            Self::CandidateHistory { hub_id, candidate_id } => format!("history:{hub_id}:{candidate_id}"),
            Self::TriageQueue { hub_id, filter } => format!("triage-queue:{hub_id}:{}", URL_SAFE_NO_PAD.encode(filter)),
            Self::TriageCounts { hub_id, filter } => {
                format!("triage-counts:{hub_id}:{}", URL_SAFE_NO_PAD.encode(filter))
            }
        }
    }

    /// Every event name of [`event_name`](Self::event_name) (the stream's `hello` lists them).
    pub const EVENT_NAMES: &'static [&'static str] = &[
        event::HUBS,
        event::WIDGETS,
        event::SIGNALS,
        event::FEED,
        event::THREAD,
        event::INBOX,
        event::LEDGER,
        event::CANDIDATE_HEAD,
        event::CANDIDATE_EVIDENCE,
        event::CANDIDATE_HISTORY,
        event::TRIAGE_QUEUE,
        event::TRIAGE_COUNTS,
        event::BELL,
        event::ROADMAP,
        event::WIDGET_CHARTS,
    ];

    /// The SSE event name, matched by `sse-swap` on the page (which reads it from [`event`]).
    pub fn event_name(&self) -> &'static str {
        match self {
            Self::Hubs => event::HUBS,
            Self::Widgets { .. } => event::WIDGETS,
            Self::Signals { .. } => event::SIGNALS,
            Self::Feed { .. } => event::FEED,
            Self::Thread { .. } => event::THREAD,
            Self::Inbox { .. } => event::INBOX,
            Self::Ledger { .. } => event::LEDGER,
            Self::CandidateHead { .. } => event::CANDIDATE_HEAD,
            Self::CandidateEvidence { .. } => event::CANDIDATE_EVIDENCE,
            Self::CandidateHistory { .. } => event::CANDIDATE_HISTORY,
            Self::TriageQueue { .. } => event::TRIAGE_QUEUE,
            Self::TriageCounts { .. } => event::TRIAGE_COUNTS,
            Self::Bell { .. } => event::BELL,
            Self::Roadmap { .. } => event::ROADMAP,
            Self::WidgetCharts { .. } => event::WIDGET_CHARTS,
            Self::Follow { .. } => event::CHANGED,
        }
    }

    /// Whether a change can alter this region's HTML: its tables *and* its scope.
    pub fn affected_by(&self, change: &ChangeEvent) -> bool {
        let table = change.table.as_str();
        let in_hub = |hub_id: i64| change.hub_id == Some(hub_id);
        match self {
            Self::Hubs => matches!(table, "hubs" | "widgets" | "annotations" | "interaction_events" | "hub_members"),
            Self::Widgets { hub_id } => {
                in_hub(*hub_id) && matches!(table, "widgets" | "annotations" | "interaction_events" | "hub_members")
            }
            Self::Signals { hub_id } => {
                in_hub(*hub_id) && matches!(table, "interaction_events" | "widgets" | "hub_members")
            }
            Self::Feed { hub_id } => {
                in_hub(*hub_id) && matches!(table, "annotations" | "widgets" | "categories" | "hub_members")
            }
            // Annotation and widget changes carry their widget; categories and members only the hub.
            Self::Thread { hub_id, widget_id }
            | Self::Inbox { hub_id, widget_id, .. }
            | Self::Follow { hub_id, widget_id } => {
                in_hub(*hub_id)
                    && (matches!(table, "categories" | "hub_members")
                        || (matches!(table, "annotations" | "widgets") && change.widget_id == Some(*widget_id)))
            }
            Self::Ledger { hub_id, .. } => {
                in_hub(*hub_id)
                    && matches!(
                        table,
                        "requirement_candidates" | "ledger_entries" | "candidate_evidence" | "hub_members"
                    )
            }
            // Candidate changes carry the candidate's id as `row_id` (see the change-feed triggers).
            Self::CandidateHead { hub_id, candidate_id } => {
                in_hub(*hub_id)
                    && (table == "hub_members"
                        || (table == "requirement_candidates" && change.row_id == Some(*candidate_id)))
            }
            Self::CandidateEvidence { hub_id, candidate_id } => {
                in_hub(*hub_id)
                    && (matches!(table, "annotations" | "widgets" | "categories" | "hub_members")
                        || (table == "candidate_evidence" && change.row_id == Some(*candidate_id)))
            }
            Self::CandidateHistory { hub_id, candidate_id } => {
                in_hub(*hub_id)
                    && (table == "hub_members" || (table == "ledger_entries" && change.row_id == Some(*candidate_id)))
            }
            Self::TriageQueue { hub_id, .. } | Self::TriageCounts { hub_id, .. } => {
                in_hub(*hub_id)
                    && matches!(table, "annotations" | "widgets" | "categories" | "hub_members" | "candidate_evidence")
            }
            // Events and annotation changes carry their widget; categories and members the hub.
            Self::WidgetCharts { hub_id, widget_id } => {
                in_hub(*hub_id)
                    && (matches!(table, "categories" | "hub_members")
                        || (matches!(table, "annotations" | "interaction_events" | "widgets")
                            && change.widget_id == Some(*widget_id)))
            }
            // Notification changes carry their recipient as `row_id` (migration 0021).
            Self::Bell { actor_id } => table == "notifications" && change.row_id == Some(*actor_id),
            // Supports announce themselves as annotation updates; publishing as a hub update.
            Self::Roadmap { hub_id } => {
                in_hub(*hub_id)
                    && matches!(
                        table,
                        "requirement_candidates"
                            | "ledger_entries"
                            | "candidate_evidence"
                            | "annotations"
                            | "widgets"
                            | "hubs"
                            | "hub_members"
                    )
            }
        }
    }

    /// The tables this region reads: with its hub, what the dispatcher indexes it by; a change
    /// of another table, or in another hub, is never matched against it. ([`affected_by`]
    /// then narrows to the widget or row.)
    ///
    /// [`affected_by`]: Self::affected_by
    pub fn tables(&self) -> &'static [&'static str] {
        match self {
            Self::Hubs => &["hubs", "widgets", "annotations", "interaction_events", "hub_members"],
            Self::Widgets { .. } => &["widgets", "annotations", "interaction_events", "hub_members"],
            Self::Signals { .. } => &["interaction_events", "widgets", "hub_members"],
            Self::Feed { .. } => &["annotations", "widgets", "categories", "hub_members"],
            Self::Thread { .. } | Self::Inbox { .. } | Self::Follow { .. } => {
                &["annotations", "widgets", "categories", "hub_members"]
            }
            Self::Ledger { .. } => &["requirement_candidates", "ledger_entries", "candidate_evidence", "hub_members"],
            Self::CandidateHead { .. } => &["requirement_candidates", "hub_members"],
            Self::CandidateEvidence { .. } => {
                &["annotations", "widgets", "categories", "hub_members", "candidate_evidence"]
            }
            Self::CandidateHistory { .. } => &["ledger_entries", "hub_members"],
            Self::TriageQueue { .. } | Self::TriageCounts { .. } => {
                &["annotations", "widgets", "categories", "hub_members", "candidate_evidence"]
            }
            Self::Bell { .. } => &["notifications"],
            Self::WidgetCharts { .. } => &["annotations", "interaction_events", "widgets", "categories", "hub_members"],
            Self::Roadmap { .. } => &[
                "requirement_candidates",
                "ledger_entries",
                "candidate_evidence",
                "annotations",
                "widgets",
                "hubs",
                "hub_members",
            ],
        }
    }

    /// The (table, hub) pairs this region depends on (`None`: a change in any hub).
    pub fn dependencies(&self) -> impl Iterator<Item = (&'static str, Option<i64>)> {
        let hub = self.hub_id();
        self.tables().iter().map(move |table| (*table, hub))
    }

    /// The hub whose data this region shows (`None`: the hubs index).
    pub fn hub_id(&self) -> Option<i64> {
        match self {
            Self::Hubs | Self::Bell { .. } => None,
            Self::Roadmap { hub_id } | Self::Follow { hub_id, .. } | Self::WidgetCharts { hub_id, .. } => Some(*hub_id),
            Self::Widgets { hub_id }
            | Self::Signals { hub_id }
            | Self::Feed { hub_id }
            | Self::Thread { hub_id, .. }
            | Self::Inbox { hub_id, .. }
            | Self::Ledger { hub_id, .. }
            | Self::CandidateHead { hub_id, .. }
            | Self::CandidateEvidence { hub_id, .. }
            | Self::CandidateHistory { hub_id, .. }
            | Self::TriageQueue { hub_id, .. }
            | Self::TriageCounts { hub_id, .. } => Some(*hub_id),
        }
    }

    /// Whether this region's audiences can change with the hub's memberships (a member's role
    /// decides whether they are staff); the dispatcher checks its viewers again on such a change.
    pub fn shares_renders(&self) -> bool {
        matches!(
            self,
            Self::Widgets { .. }
                | Self::Signals { .. }
                | Self::Feed { .. }
                | Self::Thread { .. }
                | Self::Follow { .. }
                | Self::WidgetCharts { .. }
                | Self::Ledger { .. }
                | Self::TriageQueue { .. }
                | Self::TriageCounts { .. }
        )
    }

    /// Whether its subscribers read for themselves (see [`Region::Follow`]).
    pub fn follows_itself(&self) -> bool {
        matches!(self, Self::Follow { .. })
    }
}

/// The `/live` URL for a page showing `regions`, rendered at change sequence `since`.
pub fn stream_url(regions: &[Region], since: i64) -> String {
    let keys: Vec<String> = regions.iter().map(Region::key).collect();
    format!("/live?regions={}&since={since}", keys.join(","))
}

/// The `/live` URL for a page showing `regions` with the HTML it shows of each (in order),
/// rendered at change sequence `since`: the stream knows what the page has, so its first
/// update can be the rows that changed.
pub fn stream_url_with(regions: &[(Region, &str)], since: i64) -> String {
    let keys: Vec<String> = regions.iter().map(|(r, _)| r.key()).collect();
    let hashes: Vec<String> = regions.iter().map(|(_, html)| format!("{:016x}", html_hash(html))).collect();
    format!("/live?regions={}&since={since}&hashes={}", keys.join(","), hashes.join(","))
}

mod keys;
use keys::{parse_annotations, parse_ledger};

#[cfg(test)]
mod tests;
