//! Streams that follow their session: sign-out, revocation, expiry and a changed admin flag.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use actix_web::web;
use tokio::sync::watch;

use super::{Client, Frame, LiveHub, lock};
use crate::AppState;

/// How often the sessions behind open streams are checked (revoked, expired, rights changed).
pub const SESSION_CHECK: Duration = Duration::from_secs(2);

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

    /// The sessions behind open streams, each with the site-wide rights its streams were
    /// opened with.
    fn watched_sessions(&self) -> HashMap<String, bool> {
        let inner = lock(&self.inner);
        inner.clients.values().filter_map(|c| Some((c.session.clone()?, c.viewer.is_admin))).collect()
    }

    /// Checks the sessions behind open streams every [`SESSION_CHECK`] until `shutdown`: a
    /// session revoked or expired ends its streams; one whose person's admin flag changed ends
    /// them with `changed`, and the browser reconnects with its new rights (each region is
    /// authorized again).
    pub async fn follow_sessions(state: web::Data<AppState>, mut shutdown: watch::Receiver<bool>) {
        let hub = Arc::clone(&state.live);
        loop {
            tokio::select! {
                _ = tokio::time::sleep(SESSION_CHECK) => {}
                _ = shutdown.changed() => return,
            }
            let watched = hub.watched_sessions();
            if watched.is_empty() {
                continue;
            }
            let hashes: Vec<String> = watched.keys().cloned().collect();
            let live = match crate::db::sessions::rights_of_live(&state.db, &hashes, crate::db::now_ms()).await {
                Ok(live) => live,
                Err(e) => {
                    tracing::warn!(error = %e, "checking the sessions of live streams failed; retrying");
                    continue;
                }
            };
            let live: HashMap<String, bool> = live.into_iter().collect();
            let ended: HashSet<&String> = watched.keys().filter(|h| !live.contains_key(*h)).collect();
            let changed: HashSet<&String> = watched
                .iter()
                .filter(|(h, admin)| live.get(*h).is_some_and(|now| now != *admin))
                .map(|(h, _)| h)
                .collect();
            if !ended.is_empty() {
                let n = hub.end_where("ended", |c| c.session.as_ref().is_some_and(|s| ended.contains(s)));
                tracing::info!(streams = n, "ended the live streams of sessions that ended");
            }
            if !changed.is_empty() {
                let n = hub.end_where("changed", |c| {
                    c.session.as_ref().is_some_and(|s| {
                        changed.contains(s) && live.get(s.as_str()).is_some_and(|admin| *admin != c.viewer.is_admin)
                    })
                });
                tracing::info!(streams = n, "ended the live streams of people whose rights changed");
            }
        }
    }
}
