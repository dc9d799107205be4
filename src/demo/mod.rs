//! The demo: two hubs, nine widgets, people of every role, a week of events, real-sounding
//! feedback and a few requirement candidates with their ledger. Seeded once, idempotently.
//!
//! [`data`] holds the people, widgets and feedback; [`loader`] writes them.

mod data;
mod loader;

pub use loader::{DemoLogin, MARKER_HUB, seed};
