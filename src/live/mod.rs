//! Live regions: the seed's AutoRefresh, rebuilt on one SSE stream per page.
//!
//! - [`feed`]: every committed write becomes a [`ChangeEvent`] on an in-process broadcast. On
//!   SQLite, triggers write `change_log` rows that a tailer reads; on PostgreSQL, triggers
//!   `pg_notify` and one `LISTEN` connection per instance receives them, so writes made by other
//!   instances or in `psql` arrive too.
//! - [`region`]: a region is a fragment that declares what it reads (tables and scope), its key
//!   and its event name; [`surfaces`]: what the dispatcher asks of the pages that draw regions
//!   (admit a viewer to an audience, render for it), implemented by `web::live_regions`.
//! - [`hub`]: the dispatcher. Clients subscribe to (region, viewer) topics; a burst of changes is
//!   coalesced for a window, each affected topic is rendered once, and the HTML is fanned out to
//!   its subscribers through bounded queues (a client that cannot keep up is dropped).
//!
//! - [`gzip`]: a stream's events gzip-compressed once for all the streams they go to.
//!
//! The `GET /live` endpoint that carries them to browsers is a web surface
//! (`web::live_stream`); this module imports nothing from `web`.

pub mod delta;
pub mod feed;
pub mod gzip;
pub mod hub;
pub mod region;
pub mod surfaces;

pub use feed::{ChangeEvent, ChangeFeed, FeedMessage};
pub use hub::LiveHub;
pub use region::{Audience, Region, event};
pub use surfaces::Surfaces;
