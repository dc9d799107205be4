//! Live regions: the seed's AutoRefresh, rebuilt on one SSE stream per page.
//!
//! - [`feed`]: every committed write becomes a [`ChangeEvent`] on an in-process broadcast. On
//!   SQLite, triggers write `change_log` rows that a tailer reads; on PostgreSQL, triggers
//!   `pg_notify` and one `LISTEN` connection per instance receives them, so writes made by other
//!   instances or in `psql` arrive too.
//! - [`region`]: a region is a fragment that declares what it reads (tables and scope) and how to
//!   render itself as a viewer. Adding one is a variant and three match arms.
//! - [`hub`]: the dispatcher. Clients subscribe to (region, viewer) topics; a burst of changes is
//!   coalesced for a window, each affected topic is rendered once, and the HTML is fanned out to
//!   its subscribers through bounded queues (a client that cannot keep up is dropped).
//! - [`stream`]: the `GET /live` endpoint; sends a region only when its HTML differs from what
//!   that client last received, resumable with `Last-Event-ID`.

pub mod delta;
pub mod feed;
pub mod hub;
pub mod region;
pub mod stream;

pub use feed::{ChangeEvent, ChangeFeed, FeedMessage};
pub use hub::LiveHub;
pub use region::Region;
