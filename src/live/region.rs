//! The live regions: what each reads, and how it renders for a viewer.
//!
//! To make a fragment live: add a variant here, say in [`Region::affected_by`] which tables and
//! scope it reads, render it in [`Region::render`] with the loader its page already uses, and
//! give its container `sse-swap="<event name>"` on the page (see `pages/dashboard.html`) and
//! list the name in [`Region::EVENT_NAMES`].

use askama::Template;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::AppState;
use crate::auth::Viewer;
use crate::db::candidates::Status;
use crate::db::hubs;
use crate::error::AppError;
use crate::live::ChangeEvent;
use crate::web::ledger::{self, CandidatePart};
use crate::web::{access, dashboard, hubs as hubs_page, inbox, roadmap, triage, widgets};

/// Who is sent the same render of a region (see [`Region::admit`]).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Audience {
    /// Everyone admitted to the region: its scope alone decides its HTML.
    Everyone,
    /// The staff of the region's hub.
    Staff,
    /// One person (or an anonymous viewer) with one set of site-wide rights.
    Person { actor: Option<i64>, admin: bool },
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
        "hubs",
        "widgets",
        "signals",
        "feed",
        "thread",
        "inbox",
        "ledger",
        "candidate-head",
        "candidate-evidence",
        "candidate-history",
        "triage-queue",
        "triage-counts",
        "bell",
        "roadmap",
        "widget-charts",
    ];

    /// The SSE event name, matched by `sse-swap` on the page.
    pub fn event_name(&self) -> &'static str {
        match self {
            Self::Hubs => "hubs",
            Self::Widgets { .. } => "widgets",
            Self::Signals { .. } => "signals",
            Self::Feed { .. } => "feed",
            Self::Thread { .. } => "thread",
            Self::Inbox { .. } => "inbox",
            Self::Ledger { .. } => "ledger",
            Self::CandidateHead { .. } => "candidate-head",
            Self::CandidateEvidence { .. } => "candidate-evidence",
            Self::CandidateHistory { .. } => "candidate-history",
            Self::TriageQueue { .. } => "triage-queue",
            Self::TriageCounts { .. } => "triage-counts",
            Self::Bell { .. } => "bell",
            Self::Roadmap { .. } => "roadmap",
            Self::WidgetCharts { .. } => "widget-charts",
            Self::Follow { .. } => "changed",
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
        )
    }

    /// Whether its subscribers read for themselves (see [`Region::Follow`]).
    pub fn follows_itself(&self) -> bool {
        matches!(self, Self::Follow { .. })
    }

    /// Applies the access policy to `viewer` for this region and says which audience they
    /// join: everyone in an audience is sent the same render, made for any one of them.
    ///
    /// - The dashboard's feed and widget panel: the hub's staff (triagers, operators and
    ///   administrators read every annotation and widget of the hub) share one render; other
    ///   members see what their own annotations and widgets add, so each has their own.
    /// - The signals: the same for every member.
    /// - A widget's thread: everyone who may read the widget reads all its annotations, so they
    ///   share one render (its staff another, with the internal replies only they read); what is
    ///   personal (one's own buttons, the reply form, "me too") the page adds for its viewer.
    /// - Everything else: one render per person and set of site-wide rights.
    pub async fn admit(&self, state: &AppState, viewer: &Viewer) -> Result<Audience, AppError> {
        let person = Audience::Person { actor: viewer.actor_id, admin: viewer.is_admin };
        match self {
            Self::Widgets { hub_id } | Self::Feed { hub_id } => {
                let (_, access) = access::member_hub_by_id(state, *hub_id, viewer).await?;
                Ok(if access.can_triage() { Audience::Staff } else { person })
            }
            Self::Signals { hub_id } => {
                member_hub(state, *hub_id, viewer).await?;
                Ok(Audience::Everyone)
            }
            // Staff also read internal replies: they share a render of their own.
            Self::Thread { hub_id, widget_id } => {
                let staff = widgets::may_read_thread(state, *hub_id, *widget_id, viewer).await?;
                Ok(if staff { Audience::Staff } else { Audience::Everyone })
            }
            // The same figures for everyone who may read the widget's events.
            Self::WidgetCharts { hub_id, widget_id } => {
                widgets::render_live_charts(state, *hub_id, *widget_id, viewer).await?;
                Ok(Audience::Everyone)
            }
            // The subscriber authorized itself with its own credential, and reads as it.
            Self::Follow { .. } => Ok(person),
            _ => {
                self.authorize(state, viewer).await?;
                Ok(person)
            }
        }
    }

    /// Checks that `viewer` may receive this region, without rendering it where a cheaper check
    /// says the same (a hub membership); other regions are rendered and the HTML dropped.
    pub async fn authorize(&self, state: &AppState, viewer: &Viewer) -> Result<(), AppError> {
        match self {
            Self::Hubs | Self::Follow { .. } => Ok(()),
            Self::Bell { actor_id } => own_bell(*actor_id, viewer),
            Self::Widgets { hub_id }
            | Self::Signals { hub_id }
            | Self::Feed { hub_id }
            | Self::Ledger { hub_id, .. }
            | Self::CandidateHead { hub_id, .. }
            | Self::CandidateEvidence { hub_id, .. }
            | Self::CandidateHistory { hub_id, .. } => member_hub(state, *hub_id, viewer).await.map(|_| ()),
            _ => self.render(state, viewer).await.map(|_| ()),
        }
    }

    /// Renders the region for `audience` as `viewer` (one of them), applying the access policy.
    pub async fn render_for(&self, state: &AppState, viewer: &Viewer, audience: &Audience) -> Result<String, AppError> {
        match (self, audience) {
            (Self::Thread { hub_id, widget_id }, Audience::Everyone | Audience::Staff) => {
                widgets::render_live_thread(state, *hub_id, *widget_id, viewer, true).await
            }
            _ => self.render(state, viewer).await,
        }
    }

    /// Renders the region as `viewer` sees it now, applying the access policy every time.
    pub async fn render(&self, state: &AppState, viewer: &Viewer) -> Result<String, AppError> {
        match self {
            Self::Hubs => Ok(hubs_page::load_list(state, viewer).await?.render()?),
            Self::Widgets { hub_id } => {
                let hub = member_hub(state, *hub_id, viewer).await?;
                Ok(dashboard::load_widgets(state, &hub, viewer).await?.render()?)
            }
            Self::Signals { hub_id } => {
                let hub = member_hub(state, *hub_id, viewer).await?;
                Ok(dashboard::load_signals(state, &hub).await?.render()?)
            }
            Self::Feed { hub_id } => {
                let hub = member_hub(state, *hub_id, viewer).await?;
                Ok(dashboard::load_feed(state, &hub, viewer).await?.render()?)
            }
            Self::Thread { hub_id, widget_id } => {
                widgets::render_live_thread(state, *hub_id, *widget_id, viewer, false).await
            }
            Self::Inbox { hub_id, widget_id, category_id, status } => {
                inbox::render_live_inbox(state, *hub_id, *widget_id, *category_id, *status, viewer).await
            }
            Self::Ledger { hub_id, status } => {
                let hub = member_hub(state, *hub_id, viewer).await?;
                Ok(ledger::load_list(state, &hub, viewer, *status, "").await?.render()?)
            }
            Self::CandidateHead { hub_id, candidate_id } => {
                let hub = member_hub(state, *hub_id, viewer).await?;
                ledger::render_candidate_part(state, &hub, viewer, *candidate_id, CandidatePart::Head).await
            }
            Self::CandidateEvidence { hub_id, candidate_id } => {
                let hub = member_hub(state, *hub_id, viewer).await?;
                ledger::render_candidate_part(state, &hub, viewer, *candidate_id, CandidatePart::Evidence).await
            }
            Self::CandidateHistory { hub_id, candidate_id } => {
                let hub = member_hub(state, *hub_id, viewer).await?;
                ledger::render_candidate_part(state, &hub, viewer, *candidate_id, CandidatePart::History).await
            }
            Self::TriageQueue { hub_id, filter } => {
                let (hub, access, filter) = triage::live_scope(state, *hub_id, filter, viewer).await?;
                Ok(triage::load_queue(state, &hub, &access, &filter).await?.render()?)
            }
            Self::TriageCounts { hub_id, filter } => {
                let (hub, access, filter) = triage::live_scope(state, *hub_id, filter, viewer).await?;
                Ok(triage::load_counts(state, &hub, &access, &filter).await?.render()?)
            }
            Self::Bell { actor_id } => {
                own_bell(*actor_id, viewer)?;
                crate::web::notifications::render_bell(state, *actor_id).await
            }
            Self::Roadmap { hub_id } => roadmap::render_live(state, *hub_id, viewer).await,
            Self::WidgetCharts { hub_id, widget_id } => {
                widgets::render_live_charts(state, *hub_id, *widget_id, viewer).await
            }
            // Never rendered: its subscribers are woken instead (`LiveHub::flush`).
            Self::Follow { .. } => Ok(String::new()),
        }
    }
}

/// A bell is only ever its own person's.
fn own_bell(actor_id: i64, viewer: &Viewer) -> Result<(), AppError> {
    if viewer.actor_id == Some(actor_id) { Ok(()) } else { Err(AppError::NotFound("page")) }
}

async fn member_hub(state: &AppState, hub_id: i64, viewer: &Viewer) -> Result<hubs::Hub, AppError> {
    let (hub, _) = access::member_hub_by_id(state, hub_id, viewer).await?;
    Ok(hub)
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
    let hashes: Vec<String> = regions.iter().map(|(_, html)| format!("{:016x}", super::hub::html_hash(html))).collect();
    format!("/live?regions={}&since={since}&hashes={}", keys.join(","), hashes.join(","))
}

mod keys;
use keys::{parse_annotations, parse_ledger};

#[cfg(test)]
mod tests;
