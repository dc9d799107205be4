//! The live regions as the surfaces draw them: who may have each region and in which audience
//! (the access policy applied for every viewer), and its HTML, from the loader its page uses.
//! The dispatcher reaches this through [`crate::live::Surfaces`], registered at start-up.

use askama::Template;
use futures_util::future::BoxFuture;

use crate::AppState;
use crate::auth::Viewer;
use crate::db::hubs;
use crate::error::AppError;
use crate::live::{Audience, Region, Surfaces};
use crate::web::ledger::{self, CandidatePart};
use crate::web::{access, dashboard, hubs as hubs_page, inbox, notifications, roadmap, triage, widgets};

/// The pages' live regions.
pub struct PageRegions;

impl Surfaces for PageRegions {
    fn admit<'a>(
        &'a self,
        state: &'a AppState,
        region: &'a Region,
        viewer: &'a Viewer,
    ) -> BoxFuture<'a, Result<Audience, AppError>> {
        Box::pin(admit(state, region, viewer))
    }

    fn render<'a>(
        &'a self,
        state: &'a AppState,
        region: &'a Region,
        viewer: &'a Viewer,
        audience: &'a Audience,
    ) -> BoxFuture<'a, Result<String, AppError>> {
        Box::pin(render_for(state, region, viewer, audience))
    }
}

/// Applies the access policy to `viewer` for this region and says which audience they
/// join: everyone in an audience is sent the same render, made for any one of them.
///
/// - The dashboard's feed and widget panel: the hub's staff (triagers, operators and
///   administrators read every annotation and widget of the hub) share one render; other
///   members see what their own annotations and widgets add, so each has their own.
/// - The signals and the ledger list: the same for every member.
/// - A triage board (queue and counts, for one set of filters): the same for the hub's staff,
///   the only ones who may open it.
/// - A widget's thread: everyone who may read the widget reads all its annotations, so they
///   share one render (its staff another, with the internal replies only they read); what is
///   personal (one's own buttons, the reply form, "me too") the page adds for its viewer.
/// - Everything else: one render per person and set of site-wide rights.
async fn admit(state: &AppState, region: &Region, viewer: &Viewer) -> Result<Audience, AppError> {
    let person = Audience::Person { actor: viewer.actor_id, admin: viewer.is_admin };
    match region {
        Region::Widgets { hub_id } | Region::Feed { hub_id } => {
            let (_, access) = access::member_hub_by_id(state, *hub_id, viewer).await?;
            Ok(if access.can_triage() { Audience::Staff } else { person })
        }
        Region::Signals { hub_id } => {
            member_hub(state, *hub_id, viewer).await?;
            Ok(Audience::Everyone)
        }
        // Staff also read internal replies: they share a render of their own.
        Region::Thread { hub_id, widget_id } => {
            let staff = widgets::may_read_thread(state, *hub_id, *widget_id, viewer).await?;
            Ok(if staff { Audience::Staff } else { Audience::Everyone })
        }
        // The same figures for everyone who may read the widget's events.
        Region::WidgetCharts { hub_id, widget_id } => {
            widgets::render_live_charts(state, *hub_id, *widget_id, viewer).await?;
            Ok(Audience::Everyone)
        }
        // Triagers, operators and administrators read every annotation of the hub: one board
        // (for one set of filters) is the same for all of them.
        Region::TriageQueue { hub_id, filter } | Region::TriageCounts { hub_id, filter } => {
            triage::live_scope(state, *hub_id, filter, viewer).await?;
            Ok(Audience::Staff)
        }
        // Every reader of the hub's ledger reads all its candidates and the same chain verdict.
        Region::Ledger { hub_id, .. } => {
            member_hub(state, *hub_id, viewer).await?;
            Ok(Audience::Everyone)
        }
        // The subscriber authorized itself with its own credential, and reads as it.
        Region::Follow { .. } => Ok(person),
        _ => {
            authorize(state, region, viewer).await?;
            Ok(person)
        }
    }
}

/// Checks that `viewer` may receive this region, without rendering it where a cheaper check
/// says the same (a hub membership); other regions are rendered and the HTML dropped.
async fn authorize(state: &AppState, region: &Region, viewer: &Viewer) -> Result<(), AppError> {
    match region {
        Region::Hubs | Region::Follow { .. } => Ok(()),
        Region::Bell { actor_id } => own_bell(*actor_id, viewer),
        Region::Widgets { hub_id }
        | Region::Signals { hub_id }
        | Region::Feed { hub_id }
        | Region::Ledger { hub_id, .. }
        | Region::CandidateHead { hub_id, .. }
        | Region::CandidateEvidence { hub_id, .. }
        | Region::CandidateHistory { hub_id, .. } => member_hub(state, *hub_id, viewer).await.map(|_| ()),
        _ => render(state, region, viewer).await.map(|_| ()),
    }
}

/// Renders the region for `audience` as `viewer` (one of them), applying the access policy.
async fn render_for(
    state: &AppState,
    region: &Region,
    viewer: &Viewer,
    audience: &Audience,
) -> Result<String, AppError> {
    match (region, audience) {
        (Region::Thread { hub_id, widget_id }, Audience::Everyone | Audience::Staff) => {
            widgets::render_live_thread(state, *hub_id, *widget_id, viewer, true).await
        }
        _ => render(state, region, viewer).await,
    }
}

/// Renders the region as `viewer` sees it now, applying the access policy every time.
async fn render(state: &AppState, region: &Region, viewer: &Viewer) -> Result<String, AppError> {
    match region {
        Region::Hubs => Ok(hubs_page::load_list(state, viewer).await?.render()?),
        Region::Widgets { hub_id } => {
            let hub = member_hub(state, *hub_id, viewer).await?;
            Ok(dashboard::load_widgets(state, &hub, viewer).await?.render()?)
        }
        Region::Signals { hub_id } => {
            let hub = member_hub(state, *hub_id, viewer).await?;
            Ok(dashboard::load_signals(state, &hub).await?.render()?)
        }
        Region::Feed { hub_id } => {
            let hub = member_hub(state, *hub_id, viewer).await?;
            Ok(dashboard::load_feed(state, &hub, viewer).await?.render()?)
        }
        Region::Thread { hub_id, widget_id } => {
            widgets::render_live_thread(state, *hub_id, *widget_id, viewer, false).await
        }
        Region::Inbox { hub_id, widget_id, category_id, status } => {
            inbox::render_live_inbox(state, *hub_id, *widget_id, *category_id, *status, viewer).await
        }
        Region::Ledger { hub_id, status } => {
            let hub = member_hub(state, *hub_id, viewer).await?;
            Ok(ledger::load_list(state, &hub, viewer, *status, "").await?.render()?)
        }
        Region::CandidateHead { hub_id, candidate_id } => {
            let hub = member_hub(state, *hub_id, viewer).await?;
            ledger::render_candidate_part(state, &hub, viewer, *candidate_id, CandidatePart::Head).await
        }
        Region::CandidateEvidence { hub_id, candidate_id } => {
            let hub = member_hub(state, *hub_id, viewer).await?;
            ledger::render_candidate_part(state, &hub, viewer, *candidate_id, CandidatePart::Evidence).await
        }
        Region::CandidateHistory { hub_id, candidate_id } => {
            let hub = member_hub(state, *hub_id, viewer).await?;
            ledger::render_candidate_part(state, &hub, viewer, *candidate_id, CandidatePart::History).await
        }
        Region::TriageQueue { hub_id, filter } => {
            let (hub, access, filter) = triage::live_scope(state, *hub_id, filter, viewer).await?;
            Ok(triage::load_queue(state, &hub, &access, &filter).await?.render()?)
        }
        Region::TriageCounts { hub_id, filter } => {
            let (hub, access, filter) = triage::live_scope(state, *hub_id, filter, viewer).await?;
            Ok(triage::load_counts(state, &hub, &access, &filter).await?.render()?)
        }
        Region::Bell { actor_id } => {
            own_bell(*actor_id, viewer)?;
            notifications::render_bell(state, *actor_id).await
        }
        Region::Roadmap { hub_id } => roadmap::render_live(state, *hub_id, viewer).await,
        Region::WidgetCharts { hub_id, widget_id } => {
            widgets::render_live_charts(state, *hub_id, *widget_id, viewer).await
        }
        // Never rendered: its subscribers are woken instead (`LiveHub::flush`).
        Region::Follow { .. } => Ok(String::new()),
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
