//! The storefront gateway agent: the daemon (sources → engine → sled → outbox → MQTT), the
//! demo, and the offline commands (`simulate`, `replay`). `main.rs` is the CLI around it.

pub mod clock;
pub mod daemon;
pub mod demo;
pub mod events_file;
pub mod feed;
pub mod live;
pub mod replay;
pub mod simulate;
pub mod table;

use anyhow::Result;
use storefront_simulator::ProfileName;

/// `mqtt://host:port`, `mqtts://host:port` (TLS) or `host:port` as a broker address.
pub fn broker_address(url: &str) -> Result<daemon::BrokerAddress> {
    let (tls, rest) = match url.strip_prefix("mqtts://") {
        Some(rest) => (true, rest),
        None => (
            false,
            url.strip_prefix("mqtt://")
                .or_else(|| url.strip_prefix("tcp://"))
                .unwrap_or(url),
        ),
    };
    let (host, port) = match rest.rsplit_once(':') {
        Some((host, port)) => (
            host,
            port.parse::<u16>().map_err(|_| {
                anyhow::anyhow!(
                    "--broker {url:?}: the port must be a number; fix: write mqtt://host:1883"
                )
            })?,
        ),
        None => (rest, if tls { 8883 } else { 1883 }),
    };
    if host.is_empty() {
        anyhow::bail!("--broker {url:?} has no host; fix: write mqtt://host:1883");
    }
    Ok(daemon::BrokerAddress {
        host: host.to_owned(),
        port,
        tls,
    })
}

/// Parses a profile name for clap.
pub fn parse_profile(s: &str) -> Result<ProfileName, String> {
    s.parse::<ProfileName>()
        .map_err(|_| format!("unknown profile {s:?}: use boutique, mall or street"))
}
