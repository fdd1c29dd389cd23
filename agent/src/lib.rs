//! The storefront gateway agent: the daemon (sources → engine → sled → outbox → MQTT) and its
//! store-side commands (`run`, `report`, `generate-config`). `main.rs` is the CLI around it;
//! the developer's tools (demo, simulator files, replay, simulated hardware) are the
//! `storefront-devtools` crate, so the gateway's binary carries none of them.

pub mod clock;
pub mod daemon;
pub mod events_file;
pub mod live;

use std::io::IsTerminal;

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
