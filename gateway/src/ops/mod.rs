//! What operators watch: every part reports through [`events`], which [`metrics`] and
//! [`audit`] observe; [`logging`] is the log filter and format of both binaries.

pub(crate) mod audit;
pub mod events;
pub mod logging;
pub mod metrics;
