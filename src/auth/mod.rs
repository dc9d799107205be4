//! Identity: who is looking. Sessions, CSRF and the access policy live here.

pub mod embed;
pub mod middleware;
pub mod password;
pub mod policy;
pub mod throttle;
pub mod tokens;
pub mod viewer;

pub use viewer::{Session, Viewer};
