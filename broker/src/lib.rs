//! MQTT brokers the product starts itself:
//! * [`EmbeddedBroker`] — rumqttd inside the process, for the demo (`storefront-dev demo`) on a machine with
//!   nothing installed;
//! * [`Mosquitto`] — a private mosquitto child process on a free port for tests, which a test can
//!   kill and restart to inject outages (no persistence: a restarted broker has lost its
//!   sessions and queued messages, the hard case);
//! * [`TestBroker`] — mosquitto where it is installed, the embedded broker otherwise, and a
//!   hard error under `CI=true` when mosquitto is missing (CI must not silently skip).

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error("no free TCP port on 127.0.0.1: {0}")]
    NoPort(std::io::Error),
    #[error("cannot start mosquitto (is it installed? `apt-get install mosquitto`): {0}")]
    Spawn(std::io::Error),
    #[error("the broker did not accept connections on port {port} within {waited:?}")]
    NotListening { port: u16, waited: Duration },
    #[error("embedded broker config is invalid: {0}")]
    Config(String),
    #[error(
        "cannot start the embedded MQTT broker on 127.0.0.1:{port}: {error} (another broker, \
         e.g. mosquitto, may own it); fix: stop it, or use it instead of the embedded broker \
         (`--broker mqtt://127.0.0.1:{port}`, or `sync.broker = \"mqtt://127.0.0.1:{port}\"`)"
    )]
    // Not a `source`: the io error belongs before the fix in the one-line message.
    PortInUse { port: u16, error: std::io::Error },
    #[error("the embedded MQTT broker on port {port} stopped while starting (see its log)")]
    EmbeddedStopped { port: u16 },
    #[error("CI=true and mosquitto is not installed: tests need a real broker in CI")]
    MosquittoMissingInCi,
}

/// A port that was free a moment ago on 127.0.0.1.
pub fn free_port() -> Result<u16, BrokerError> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(BrokerError::NoPort)?;
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(BrokerError::NoPort)
}

/// Waits until something accepts TCP connections on 127.0.0.1:`port` (e.g. a broker's second
/// listener).
pub fn wait_listening(port: u16, within: Duration) -> Result<(), BrokerError> {
    let started = Instant::now();
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    while started.elapsed() < within {
        // A connect to a free port in the ephemeral range can land on itself (TCP
        // simultaneous open) and would then hold the port the broker is about to bind.
        if let Ok(stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(100))
            && stream.local_addr().ok() != stream.peer_addr().ok()
        {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Err(BrokerError::NotListening {
        port,
        waited: within,
    })
}

/// rumqttd running on its own threads inside this process. rumqttd has no stop API: the
/// broker lives until the process exits.
pub struct EmbeddedBroker {
    port: u16,
    /// The MQTT 5 listener (HQ's collector speaks MQTT 5): rumqttd serves each protocol
    /// version on a port of its own, one router behind both.
    v5_port: u16,
}

impl EmbeddedBroker {
    /// Starts rumqttd on 127.0.0.1:`port` (0 picks a free port). A port another server
    /// listens on is an error: answering connections there does not make it ours.
    pub fn start(port: u16) -> Result<EmbeddedBroker, BrokerError> {
        // rumqttd binds in a thread of its own and only logs a failure, so bind first here
        // (released at once: rumqttd takes no listener). A free port picked for the caller can
        // be taken by another process before this bind: pick another.
        let mut attempts = if port == 0 { 10 } else { 1 };
        let port = loop {
            let candidate = if port == 0 { free_port()? } else { port };
            match TcpListener::bind(("127.0.0.1", candidate)) {
                Ok(_) => break candidate,
                Err(error) => {
                    attempts -= 1;
                    if attempts == 0 {
                        return Err(BrokerError::PortInUse {
                            port: candidate,
                            error,
                        });
                    }
                }
            }
        };
        let v5_port = free_port()?;
        // rumqttd's `Config::default()` has zero limits and rejects every connection: these
        // are the smallest settings that carry a store's traffic with headroom.
        let text = format!(
            r#"
id = 0
[router]
max_connections = 1000
max_outgoing_packet_count = 200
max_segment_size = 104857600
max_segment_count = 10

[v4.1]
name = "storefront-embedded"
listen = "127.0.0.1:{port}"
next_connection_delay_ms = 1
[v4.1.connections]
connection_timeout_ms = 60000
max_payload_size = 1048576
max_inflight_count = 200
dynamic_filters = true

[v5.1]
name = "storefront-embedded-v5"
listen = "127.0.0.1:{v5_port}"
next_connection_delay_ms = 1
[v5.1.connections]
connection_timeout_ms = 60000
max_payload_size = 1048576
max_inflight_count = 200
"#
        );
        let config: rumqttd::Config =
            toml::from_str(&text).map_err(|e| BrokerError::Config(e.to_string()))?;
        let thread = std::thread::Builder::new()
            .name("embedded-mqtt".into())
            .spawn(move || {
                let mut broker = rumqttd::Broker::new(config);
                // `start` returns only once every listener has ended (or never bound).
                if let Err(e) = broker.start() {
                    tracing::error!(error = %e, "Embedded MQTT broker stopped");
                }
            })
            .map_err(BrokerError::Spawn)?;
        wait_listening(port, Duration::from_secs(10))?;
        if thread.is_finished() {
            return Err(BrokerError::EmbeddedStopped { port });
        }
        wait_listening(v5_port, Duration::from_secs(10))?;
        tracing::info!(port, v5_port, "Embedded MQTT broker listening");
        Ok(EmbeddedBroker { port, v5_port })
    }

    /// The MQTT 3.1.1 listener.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The MQTT 5 listener.
    pub fn v5_port(&self) -> u16 {
        self.v5_port
    }
}

/// A private mosquitto process on a free loopback port. Killed on drop.
pub struct Mosquitto {
    port: u16,
    child: Option<Child>,
    /// Its config file: the caller's (TLS listeners and the like), or one written for it.
    config: std::path::PathBuf,
    /// The config file written for a plain test broker, removed on drop.
    written: Option<std::path::PathBuf>,
}

/// A plain test broker: loopback, anonymous, and no cap on the messages queued for a client.
/// Mosquitto's default cap (1000) drops QoS 0 messages for a subscriber that falls behind,
/// which a test on a loaded machine must not mistake for the agent losing them.
fn plain_config(port: u16) -> String {
    format!("listener {port} 127.0.0.1\nallow_anonymous true\nmax_queued_messages 0\n")
}

impl Mosquitto {
    /// Whether a `mosquitto` binary can be run here.
    pub fn available() -> bool {
        Command::new("mosquitto")
            .arg("-h")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok()
    }

    pub fn start() -> Result<Mosquitto, BrokerError> {
        Mosquitto::start_with_port(free_port()?)
    }

    /// Starts mosquitto on a given port (a test that had the port refuse connections first).
    pub fn start_with_port(port: u16) -> Result<Mosquitto, BrokerError> {
        let path = std::env::temp_dir().join(format!(
            "storefront-test-mosquitto-{}-{port}.conf",
            std::process::id()
        ));
        std::fs::write(&path, plain_config(port)).map_err(BrokerError::Spawn)?;
        let mut broker = Mosquitto {
            port,
            child: None,
            config: path.clone(),
            written: Some(path),
        };
        broker.restart()?;
        Ok(broker)
    }

    /// Starts mosquitto with the config file at `config` (written by the caller, e.g. with TLS
    /// listeners); `port` is the listener to wait for.
    pub fn start_with_config(
        config: &std::path::Path,
        port: u16,
    ) -> Result<Mosquitto, BrokerError> {
        let mut broker = Mosquitto {
            port,
            child: None,
            config: config.to_owned(),
            written: None,
        };
        broker.restart()?;
        Ok(broker)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Kills the broker at once (SIGKILL): sessions and queued messages are gone.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// (Re)starts the broker on the same port.
    pub fn restart(&mut self) -> Result<(), BrokerError> {
        self.kill();
        let child = Command::new("mosquitto")
            .arg("-c")
            .arg(&self.config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(BrokerError::Spawn)?;
        self.child = Some(child);
        wait_listening(self.port, Duration::from_secs(10))
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        self.kill();
        if let Some(path) = &self.written {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// The broker a test runs against.
pub enum TestBroker {
    Mosquitto(Mosquitto),
    Embedded(EmbeddedBroker),
}

impl TestBroker {
    /// Mosquitto when installed; the embedded broker otherwise, except under `CI=true`.
    pub fn start() -> Result<TestBroker, BrokerError> {
        if Mosquitto::available() {
            return Mosquitto::start().map(TestBroker::Mosquitto);
        }
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            return Err(BrokerError::MosquittoMissingInCi);
        }
        tracing::warn!("mosquitto not installed: testing against the embedded broker");
        EmbeddedBroker::start(0).map(TestBroker::Embedded)
    }

    pub fn port(&self) -> u16 {
        match self {
            TestBroker::Mosquitto(m) => m.port(),
            TestBroker::Embedded(e) => e.port(),
        }
    }

    /// The mosquitto process, for tests that kill and restart the broker.
    pub fn mosquitto(&mut self) -> Option<&mut Mosquitto> {
        match self {
            TestBroker::Mosquitto(m) => Some(m),
            TestBroker::Embedded(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mosquitto_starts_dies_and_comes_back_on_the_same_port() {
        if !Mosquitto::available() {
            assert_ne!(
                std::env::var("CI").as_deref(),
                Ok("true"),
                "CI needs mosquitto"
            );
            return;
        }
        let mut broker = Mosquitto::start().unwrap();
        let addr = SocketAddr::from(([127, 0, 0, 1], broker.port()));
        assert!(TcpStream::connect(addr).is_ok());
        broker.kill();
        assert!(TcpStream::connect(addr).is_err());
        broker.restart().unwrap();
        assert!(TcpStream::connect(addr).is_ok());
    }

    #[test]
    fn embedded_broker_accepts_connections() {
        let broker = EmbeddedBroker::start(0).unwrap();
        // rumqttd's listener can refuse for a few milliseconds after its first accept (seen
        // about once in a hundred runs): clients retry, and so does this check, briefly.
        assert!(wait_listening(broker.port(), Duration::from_secs(1)).is_ok());
    }
}
