//! The storefront gateway agent: the daemon (sources → engine → sled → outbox → MQTT) and its
//! store-side commands (`run`, `report`, `generate-config`). `main.rs` is the CLI around it;
//! the developer's tools (demo, simulator files, replay, simulated hardware) are the
//! `storefront-devtools` crate, so the gateway's binary carries none of them.

pub mod clock;
pub mod daemon;
pub mod events_file;
pub mod live;

use std::io::IsTerminal;

use anyhow::Result;

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

/// Logs to stderr, filtered by `RUST_LOG` (default `info`), as JSON lines or text; colour
/// codes only for a person at a terminal (journald and log files get plain text).
pub fn init_tracing(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        // rumqttd (the demo's embedded broker) logs every connect and disconnect, at error
        // level too; its real failures show as our clients' connection errors.
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,rumqttd=off"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}
