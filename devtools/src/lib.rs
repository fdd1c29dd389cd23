//! The developer's tools around the storefront agent, kept out of the gateway's binary: the
//! zero-setup demo (embedded broker, simulated store, agent, HQ), the simulator's event files,
//! the engine over an events file, and simulated store hardware sending live into a running
//! agent. `main.rs` is the `storefront-dev` command line around them.

pub mod demo;
pub mod feed;
pub mod replay;
pub mod simulate;
pub mod table;

use storefront_simulator::ProfileName;

/// Parses a profile name for clap.
pub fn parse_profile(s: &str) -> Result<ProfileName, String> {
    s.parse::<ProfileName>()
        .map_err(|_| format!("unknown profile {s:?}: use boutique, mall or street"))
}
