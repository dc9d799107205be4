//! The live regions: what each reads, and how it renders for a viewer.
//!
//! To make a fragment live: add a variant here, say in [`Region::affected_by`] which tables and
//! scope it reads, render it in [`Region::render`] with the loader its page already uses, and
//! give its container `sse-swap="<event name>"` on the page (see `pages/dashboard.html`).

use askama::Template;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::AppState;
use crate::auth::Viewer;
use crate::db::hubs;
use crate::error::AppError;
use crate::live::ChangeEvent;
use crate::web::{access, dashboard, hubs as hubs_page, triage};

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
    /// A triage board's queue (first page) for one set of filters: the board's query string.
    TriageQueue { hub_id: i64, filter: String },
    /// A triage board's counts panel for one set of filters.
    TriageCounts { hub_id: i64, filter: String },
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
        let (kind, id) = match key.split_once(':') {
            Some((kind, id)) => (kind, Some(id.parse::<i64>().ok()?)),
            None => (key, None),
        };
        match (kind, id) {
            ("hubs", None) => Some(Self::Hubs),
            ("widgets", Some(hub_id)) => Some(Self::Widgets { hub_id }),
            ("signals", Some(hub_id)) => Some(Self::Signals { hub_id }),
            ("feed", Some(hub_id)) => Some(Self::Feed { hub_id }),
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
            Self::TriageQueue { hub_id, filter } => format!("triage-queue:{hub_id}:{}", URL_SAFE_NO_PAD.encode(filter)),
            Self::TriageCounts { hub_id, filter } => {
                format!("triage-counts:{hub_id}:{}", URL_SAFE_NO_PAD.encode(filter))
            }
        }
    }

    /// The SSE event name, matched by `sse-swap` on the page.
    pub fn event_name(&self) -> &'static str {
        match self {
            Self::Hubs => "hubs",
            Self::Widgets { .. } => "widgets",
            Self::Signals { .. } => "signals",
            Self::Feed { .. } => "feed",
            Self::TriageQueue { .. } => "triage-queue",
            Self::TriageCounts { .. } => "triage-counts",
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
            Self::TriageQueue { hub_id, .. } | Self::TriageCounts { hub_id, .. } => {
                in_hub(*hub_id)
                    && matches!(table, "annotations" | "widgets" | "categories" | "hub_members" | "candidate_evidence")
            }
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
            Self::TriageQueue { hub_id, filter } => {
                let (hub, access, filter) = triage::live_scope(state, *hub_id, filter, viewer).await?;
                Ok(triage::load_queue(state, &hub, &access, &filter).await?.render()?)
            }
            Self::TriageCounts { hub_id, filter } => {
                let (hub, access, filter) = triage::live_scope(state, *hub_id, filter, viewer).await?;
                Ok(triage::load_counts(state, &hub, &access, &filter).await?.render()?)
            }
        }
    }
}

async fn member_hub(state: &AppState, hub_id: i64, viewer: &Viewer) -> Result<hubs::Hub, AppError> {
    let hub = hubs::by_id(&state.db, hub_id).await?;
    let (hub, _) = access::member_hub(state, &hub.slug, viewer).await?;
    Ok(hub)
}

/// The `/live` URL for a page showing `regions`, rendered at change sequence `since`.
pub fn stream_url(regions: &[Region], since: i64) -> String {
    let keys: Vec<String> = regions.iter().map(Region::key).collect();
    format!("/live?regions={}&since={since}", keys.join(","))
}

#[cfg(test)]
mod tests {
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
        for region in
            [Region::Hubs, Region::Widgets { hub_id: 3 }, Region::Signals { hub_id: 3 }, Region::Feed { hub_id: 9 }]
        {
            assert_eq!(Region::parse(&region.key()), Some(region.clone()));
        }
        assert_eq!(Region::parse("widgets"), None);
        assert_eq!(Region::parse("widgets:x"), None);
        assert_eq!(Region::parse("nope:1"), None);
        let queue = Region::TriageQueue { hub_id: 2, filter: "status=new&q=a,b".into() };
        assert_eq!(Region::parse(&queue.key()), Some(queue.clone()));
        assert!(!queue.key().contains(',') && !queue.key().contains('&'));
        assert_eq!(Region::parse("triage-queue:2:!!"), None);
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
    }
}
