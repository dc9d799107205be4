//! Streams that follow their session: sign-out, revocation, expiry and a changed admin flag.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use actix_web::web;
use tokio::sync::watch;

use super::{Client, Frame, LiveHub, lock};
use crate::AppState;

/// How often the sessions behind open streams are checked (revoked, expired, rights changed).
pub const SESSION_CHECK: Duration = Duration::from_secs(2);

/// How much earlier than the last check the next looks for ended sessions: a revocation
/// stamped by a clock a little behind, or committed a little after it was stamped, is still seen.
const LOOKBACK_MS: i64 = 30_000;

impl LiveHub {
    /// Ends the streams of a session that ended (sign-out, revocation, expiry): each gets a
    /// `session` event saying `ended`, then its stream closes.
    pub fn end_session(&self, token_hash: &str) {
        self.end_where("ended", |client| client.session.as_deref() == Some(token_hash));
    }

    /// Ends streams whose session is in `sessions`, telling each why (`reason`: `ended`, or
    /// `changed` when the person's rights changed and the browser should reconnect).
    fn end_where(&self, reason: &str, matches: impl Fn(&Client) -> bool) -> usize {
        let mut inner = lock(&self.inner);
        let ids: Vec<u64> = inner.clients.iter().filter(|(_, c)| matches(c)).map(|(id, _)| *id).collect();
        if ids.is_empty() {
            return 0;
        }
        let frame = Arc::new(Frame::control("session", reason));
        for id in &ids {
            // A full queue is ended all the same.
            inner.send(&self.stats, *id, &frame);
            inner.drop_client(*id);
        }
        self.stats.streams_ended_by_session.fetch_add(ids.len() as u64, Ordering::Relaxed);
        ids.len()
    }

    /// Checks the sessions behind open streams every [`SESSION_CHECK`] until `shutdown`: a
    /// session revoked or expired ends its streams; one whose person's admin flag changed ends
    /// them with `changed`, and the browser reconnects with its new rights (each region is
    /// authorized again). Each check reads what changed, not the streams' sessions: the sessions
    /// that ended since the last check (a little earlier, [`LOOKBACK_MS`], for commits and clocks
    /// of other instances running behind) and the administrators, both from their indexes.
    pub async fn follow_sessions(state: web::Data<AppState>, mut shutdown: watch::Receiver<bool>) {
        let hub = Arc::clone(&state.live);
        let mut since = crate::db::now_ms() - LOOKBACK_MS;
        loop {
            tokio::select! {
                _ = tokio::time::sleep(SESSION_CHECK) => {}
                _ = shutdown.changed() => return,
            }
            if hub.open_streams() == 0 {
                continue;
            }
            let now = crate::db::now_ms();
            let checked = async {
                let ended = crate::db::sessions::ended_since(&state.db, since, now).await?;
                let admins = crate::db::actors::admin_ids(&state.db).await?;
                Ok::<_, crate::db::StoreError>((ended, admins))
            };
            let (ended, admins) = match checked.await {
                Ok(checked) => checked,
                Err(e) => {
                    // `since` stays: the next check looks back over this one's span too.
                    tracing::warn!(error = %e, "checking the sessions of live streams failed; retrying");
                    continue;
                }
            };
            since = now - LOOKBACK_MS;
            let ended: HashSet<String> = ended.into_iter().collect();
            let admins: HashSet<i64> = admins.into_iter().collect();
            if !ended.is_empty() {
                let n = hub.end_where("ended", |c| c.session.as_ref().is_some_and(|s| ended.contains(s)));
                if n > 0 {
                    tracing::info!(streams = n, "ended the live streams of sessions that ended");
                }
            }
            let n = hub.end_where("changed", |c| {
                c.session.is_some() && c.viewer.actor_id.is_some_and(|id| admins.contains(&id) != c.viewer.is_admin)
            });
            if n > 0 {
                tracing::info!(streams = n, "ended the live streams of people whose rights changed");
            }
        }
    }
}
