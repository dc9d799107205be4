//! Admission: the limits on open streams, and the slot each holds until it ends.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::{LiveHub, lock};

/// The limits on open streams.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub total: usize,
    pub per_ip: usize,
    pub per_session: usize,
    /// Frames a client may have queued before it counts as too slow and is dropped.
    pub queue: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self { total: 20_000, per_ip: 500, per_session: 16, queue: 160 }
    }
}

#[derive(Debug, Default)]
pub(super) struct Admission {
    pub(super) total: usize,
    per_ip: HashMap<IpAddr, usize>,
    per_session: HashMap<String, usize>,
}

/// Why a stream was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    TooManyTotal,
    TooManyFromIp,
    TooManyForSession,
}

impl LiveHub {
    /// Admits a new stream or says why not. The returned guard gives the slot back when dropped.
    pub fn admit(self: &Arc<Self>, ip: Option<IpAddr>, session: Option<String>) -> Result<Admitted, Refusal> {
        let mut admission = lock(&self.admission);
        if admission.total >= self.limits.total {
            return Err(Refusal::TooManyTotal);
        }
        if let Some(ip) = ip
            && admission.per_ip.get(&ip).copied().unwrap_or(0) >= self.limits.per_ip
        {
            return Err(Refusal::TooManyFromIp);
        }
        if let Some(session) = &session
            && admission.per_session.get(session).copied().unwrap_or(0) >= self.limits.per_session
        {
            return Err(Refusal::TooManyForSession);
        }
        admission.total += 1;
        if let Some(ip) = ip {
            *admission.per_ip.entry(ip).or_default() += 1;
        }
        if let Some(session) = &session {
            *admission.per_session.entry(session.clone()).or_default() += 1;
        }
        self.stats.streams_open.fetch_add(1, Ordering::Relaxed);
        Ok(Admitted { hub: Arc::clone(self), ip, session, client: None })
    }
}

/// An admitted stream's slot and client, released when dropped (client gone).
#[derive(Debug)]
pub struct Admitted {
    hub: Arc<LiveHub>,
    ip: Option<IpAddr>,
    pub(super) session: Option<String>,
    pub(super) client: Option<u64>,
}

impl Drop for Admitted {
    fn drop(&mut self) {
        if let Some(id) = self.client.take() {
            lock(&self.hub.inner).drop_client(id);
        }
        let mut admission = lock(&self.hub.admission);
        admission.total = admission.total.saturating_sub(1);
        if let Some(ip) = self.ip
            && let Some(count) = admission.per_ip.get_mut(&ip)
        {
            *count -= 1;
            if *count == 0 {
                admission.per_ip.remove(&ip);
            }
        }
        if let Some(session) = &self.session
            && let Some(count) = admission.per_session.get_mut(session)
        {
            *count -= 1;
            if *count == 0 {
                admission.per_session.remove(session);
            }
        }
        self.hub.stats.streams_open.fetch_sub(1, Ordering::Relaxed);
    }
}
