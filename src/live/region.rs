//! The live regions: what each reads, and how it renders for a viewer.
//!
//! To make a fragment live: add a variant here, say in [`Region::affected_by`] which tables and
//! scope it reads, render it in [`Region::render`] with the loader its page already uses, and
//! give its container `sse-swap="<event name>"` on the page (see `pages/dashboard.html`).

use askama::Template;

use crate::AppState;
use crate::auth::Viewer;
use crate::db::hubs;
use crate::error::AppError;
use crate::live::ChangeEvent;
use crate::web::{access, dashboard, hubs as hubs_page};

/// A live region and its scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Region {
    /// The hubs index with its counts.
    Hubs,
    /// A hub dashboard's widgets with their counts.
    Widgets { hub_id: i64 },
    /// A hub dashboard's 20 most recent interaction signals.
    Signals { hub_id: i64 },
    /// A hub dashboard's annotation feed (first page).
    Feed { hub_id: i64 },
}

impl Region {
    /// Parses the `kind` or `kind:id` form used in `/live?regions=…`.
    pub fn parse(key: &str) -> Option<Self> {
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
        }
    }

    /// The SSE event name, matched by `sse-swap` on the page.
    pub fn event_name(&self) -> &'static str {
        match self {
            Self::Hubs => "hubs",
            Self::Widgets { .. } => "widgets",
            Self::Signals { .. } => "signals",
            Self::Feed { .. } => "feed",
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
            assert_eq!(Region::parse(&region.key()), Some(region));
        }
        assert_eq!(Region::parse("widgets"), None);
        assert_eq!(Region::parse("widgets:x"), None);
        assert_eq!(Region::parse("nope:1"), None);
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
