//! Simulated store hardware: sends simulated traffic into the agent's live inputs the way real
//! devices do, so every input path can be driven end to end (by `storefront-dev feed` and the tests).
//!
//! | simulated event | sent as |
//! |---|---|
//! | sighting | by the scanner's node: scanners in [`Wiring`] order take turns being ESPresense (`espresense/devices/<mac>/<scanner>`), Theengs (`home/gw-<scanner>/BTtoMQTT/<MAC>`) and `mqtt_room` (`room_presence/<scanner>`, a distance) nodes |
//! | door record | alternately on `storefront/local/door/<sensor>` and `POST /ingest/v1/door` |
//! | transaction | in turn: served by the simulated POS endpoint ([`PosEndpoint`], polled by the agent), pushed on `storefront/local/pos/<store>`, and `POST /ingest/v1/transactions` |
//!
//! Devices are heard under a MAC address made of their simulated id; the agent hashes it.

use std::sync::{Arc, Mutex};

use anyhow::{Context, Result, bail};
use axum::extract::{Query, State};
use axum::response::IntoResponse;
use rumqttc::{AsyncClient, QoS};
use storefront_config::ScannerFormat;
use storefront_inputs::encode::{
    encode_door, encode_espresense, encode_mqtt_room, encode_pushed_transaction, encode_theengs,
    encode_transactions,
};
use storefront_protocol::{DeviceId, Event, Sighting, Transaction};

/// Topic prefix of the simulated `mqtt_room` nodes.
pub const MQTT_ROOM_PREFIX: &str = "room_presence";
/// Transactions per page of the simulated POS endpoint.
const POS_PAGE: usize = 100;

/// Which format each scanner's node speaks.
#[derive(Clone, Debug)]
pub struct Wiring {
    scanners: Vec<String>,
}

impl Wiring {
    /// Scanner ids in the order they take turns at the three formats.
    pub fn new(scanners: Vec<String>) -> Wiring {
        Wiring { scanners }
    }

    /// Every scanner of the config's zones, in zone order.
    pub fn for_config(config: &storefront_config::StoreConfig) -> Wiring {
        Wiring::new(
            config
                .zones
                .iter()
                .flat_map(|z| z.scanners.clone())
                .collect(),
        )
    }

    /// The format the node of `scanner` publishes in; `None` for a scanner not wired.
    pub fn format(&self, scanner: &str) -> Option<ScannerFormat> {
        let index = self.scanners.iter().position(|s| s == scanner)?;
        Some(
            [
                ScannerFormat::Espresense,
                ScannerFormat::Theengs,
                ScannerFormat::MqttRoom,
            ][index % 3],
        )
    }

    /// The `[sources]` table of an agent config that reads this wiring, polling `pos_url`.
    pub fn sources_toml(&self, pos_url: &str) -> String {
        let gateways: Vec<String> = self
            .scanners
            .iter()
            .filter(|s| self.format(s) == Some(ScannerFormat::Theengs))
            .map(|s| format!("\"gw-{s}\" = \"{s}\""))
            .collect();
        format!(
            "[sources.ble]\nenabled = false\n\n\
             [[sources.scanner_mqtt]]\nformat = \"espresense\"\ntopic = \"espresense/devices/#\"\n\n\
             [[sources.scanner_mqtt]]\nformat = \"theengs\"\ntopic = \"home/+/BTtoMQTT/#\"\nscanner_ids = {{ {} }}\n\n\
             [[sources.scanner_mqtt]]\nformat = \"mqtt_room\"\ntopic = \"{MQTT_ROOM_PREFIX}/+\"\n\n\
             [sources.pos]\nurl = \"{pos_url}\"\npoll_seconds = 1\n",
            gateways.join(", ")
        )
    }
}

/// The MAC address a simulated device advertises: its id's low 6 bytes, marked locally
/// administered.
pub fn simulated_mac(device: DeviceId) -> String {
    let b = device.0.to_be_bytes();
    format!(
        "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
        b[2] | 0x02,
        b[3],
        b[4],
        b[5],
        b[6],
        b[7]
    )
}

#[derive(Default)]
struct PosLog {
    transactions: Vec<Transaction>,
    /// How many transactions have been handed out in a page at least once.
    served: usize,
}

/// The simulated POS's HTTP endpoint: `GET /transactions[?cursor=N]` answers the page of
/// transactions from index `N` (up to 100) with `next_cursor` = the index after it, in the
/// shape of `storefront_inputs::pos`.
#[derive(Clone, Default)]
pub struct PosEndpoint {
    log: Arc<Mutex<PosLog>>,
}

#[derive(serde::Deserialize)]
struct PageQuery {
    cursor: Option<String>,
}

impl PosEndpoint {
    fn router(&self) -> axum::Router {
        axum::Router::new()
            .route("/transactions", axum::routing::get(pos_page))
            .with_state(self.clone())
    }

    /// Serves the endpoint on `addr` (port 0: any free port) until the process ends; returns
    /// the URL to poll.
    pub async fn serve(&self, addr: std::net::SocketAddr) -> Result<String> {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot serve the POS endpoint on {addr}"))?;
        let url = format!("http://{}/transactions", listener.local_addr()?);
        let router = self.router();
        tokio::spawn(async move { axum::serve(listener, router).await });
        Ok(url)
    }

    /// Makes a transaction available to the next poll.
    pub fn add(&self, transaction: Transaction) {
        self.log().transactions.push(transaction);
    }

    /// Transactions added so far, and how many of them a poll has fetched.
    pub fn progress(&self) -> (usize, usize) {
        let log = self.log();
        (log.transactions.len(), log.served)
    }

    fn log(&self) -> std::sync::MutexGuard<'_, PosLog> {
        // A panic while holding the lock leaves a log that is still consistent.
        self.log.lock().unwrap_or_else(|e| e.into_inner())
    }
}

async fn pos_page(
    State(endpoint): State<PosEndpoint>,
    Query(query): Query<PageQuery>,
) -> axum::response::Response {
    let Ok(from) = query.cursor.as_deref().unwrap_or("0").parse::<usize>() else {
        return (axum::http::StatusCode::BAD_REQUEST, "bad cursor").into_response();
    };
    let mut log = endpoint.log();
    let from = from.min(log.transactions.len());
    let to = (from + POS_PAGE).min(log.transactions.len());
    log.served = log.served.max(to);
    let body = encode_transactions(&log.transactions[from..to], Some(&to.to_string()));
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response()
}

/// Sends simulated events into an agent's live inputs as its store's devices would.
pub struct Feed {
    wiring: Wiring,
    store_id: String,
    mqtt: AsyncClient,
    http: reqwest::Client,
    /// The agent's HTTP server, e.g. `http://127.0.0.1:8080`.
    agent_url: String,
    pos: PosEndpoint,
    doors_sent: u64,
    transactions_sent: u64,
    /// Messages sent over MQTT and HTTP ingest (not through the POS endpoint).
    pushed: u64,
}

impl Feed {
    /// `mqtt` is connected to the store's broker (its event loop polled by the caller).
    pub fn new(
        wiring: Wiring,
        store_id: &str,
        mqtt: AsyncClient,
        agent_url: &str,
        pos: PosEndpoint,
    ) -> Feed {
        storefront_mqtt::install_crypto_provider();
        Feed {
            wiring,
            store_id: store_id.to_owned(),
            mqtt,
            http: reqwest::Client::new(),
            agent_url: agent_url.trim_end_matches('/').to_owned(),
            pos,
            doors_sent: 0,
            transactions_sent: 0,
            pushed: 0,
        }
    }

    /// Messages sent so far over MQTT and HTTP ingest: each is one payload the agent counts in
    /// its live health, accepted or rejected.
    pub fn pushed(&self) -> u64 {
        self.pushed
    }

    /// Sends one event. A sighting from a scanner not in the wiring is an error.
    pub async fn send(&mut self, event: &Event) -> Result<()> {
        match event {
            Event::Sighting(s) => {
                let (topic, payload) = self.scanner_message(s)?;
                self.publish(topic, payload).await
            }
            Event::Door(door) => {
                self.doors_sent += 1;
                let payload = encode_door(door);
                if self.doors_sent % 2 == 1 {
                    self.publish(format!("storefront/local/door/{}", door.sensor), payload)
                        .await
                } else {
                    self.post("/ingest/v1/door", payload).await
                }
            }
            Event::Transaction(transaction) => {
                self.transactions_sent += 1;
                match self.transactions_sent % 3 {
                    1 => {
                        self.pos.add(transaction.clone());
                        Ok(())
                    }
                    2 => {
                        let topic = format!("storefront/local/pos/{}", self.store_id);
                        self.publish(topic, encode_pushed_transaction(transaction))
                            .await
                    }
                    _ => {
                        self.post(
                            "/ingest/v1/transactions",
                            encode_pushed_transaction(transaction),
                        )
                        .await
                    }
                }
            }
            // Live sources say they are alive on their own (scanner status, door heartbeats,
            // POS polls); there is no message to send for it.
            Event::Alive(_) => Ok(()),
        }
    }

    /// Publishes a raw message on the store's broker (for bad-input tests, too).
    pub async fn publish(&mut self, topic: String, payload: Vec<u8>) -> Result<()> {
        self.mqtt
            .publish(topic, QoS::AtLeastOnce, false, payload)
            .await
            .context("the MQTT client has stopped")?;
        self.pushed += 1;
        Ok(())
    }

    fn scanner_message(&self, s: &Sighting) -> Result<(String, Vec<u8>)> {
        let mac = simulated_mac(s.device);
        Ok(match self.wiring.format(&s.scanner) {
            Some(ScannerFormat::Espresense) => {
                encode_espresense(&s.scanner, &mac, s.rssi, s.tx_power)
            }
            Some(ScannerFormat::Theengs) => {
                encode_theengs(&format!("gw-{}", s.scanner), &mac, s.rssi)
            }
            Some(ScannerFormat::MqttRoom) => {
                encode_mqtt_room(MQTT_ROOM_PREFIX, &s.scanner, &mac, s.rssi)
            }
            None => bail!("scanner {:?} is not wired to a node", s.scanner),
        })
    }

    async fn post(&mut self, path: &str, body: Vec<u8>) -> Result<()> {
        let url = format!("{}{path}", self.agent_url);
        let response = self
            .http
            .post(&url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body)
            .send()
            .await
            .with_context(|| format!("POST {url}"))?;
        self.pushed += 1;
        if !response.status().is_success() {
            bail!("POST {url} answered {}", response.status());
        }
        Ok(())
    }
}

/// `storefront-dev feed`: today's simulated traffic for the store of `--config`, sent live (in real
/// time) into a running agent's inputs, as that store's scanner nodes, door counter and POS
/// would send it.
#[derive(clap::Args)]
pub struct FeedArgs {
    /// The store's agent config: its zones' scanners are the simulated nodes.
    #[arg(long)]
    pub config: std::path::PathBuf,
    /// Store profile to simulate: boutique, mall or street (match the config's layout).
    #[arg(long, value_parser = crate::parse_profile, default_value = "boutique")]
    pub profile: storefront_simulator::ProfileName,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// The store's broker, where the agent reads scanner nodes, door counters and POS pushes.
    #[arg(long, default_value = "mqtt://127.0.0.1:1883")]
    pub local_broker: String,
    /// The agent's HTTP server (ingest routes); default: the config's dashboard.bind.
    #[arg(long)]
    pub agent_url: Option<String>,
    /// Serve the simulated POS endpoint here (the agent polls it).
    #[arg(long, default_value = "127.0.0.1:8081")]
    pub pos_listen: std::net::SocketAddr,
    /// Print the `[sources]` config the agent needs to read this feed, and exit.
    #[arg(long)]
    pub print_sources: bool,
}

pub async fn run(args: FeedArgs) -> Result<()> {
    let config = storefront_config::StoreConfig::load(&args.config)?;
    let wiring = Wiring::for_config(&config);
    let pos_url = format!("http://{}/transactions", args.pos_listen);
    if args.print_sources {
        print!("{}", wiring.sources_toml(&pos_url));
        return Ok(());
    }
    let agent_url = match (&args.agent_url, config.dashboard.bind) {
        (Some(url), _) => url.clone(),
        (None, Some(bind)) => format!("http://{bind}"),
        (None, None) => bail!(
            "the config has no dashboard.bind, so the agent's ingest routes are off; fix: pass --agent-url"
        ),
    };
    let now = chrono::Utc::now();
    let today = now.with_timezone(&config.store.timezone).date_naive();
    let day = storefront_simulator::Simulator::new(storefront_simulator::SimulationSpec {
        profile: storefront_simulator::Profile::named(args.profile),
        seed: args.seed,
        days: 1,
        start_date: today,
        mac_rotation: false,
        truth: storefront_simulator::TruthParams::default(),
    })
    .next_day()
    .context("the simulator produced no day")?;

    let pos = PosEndpoint::default();
    let pos_url = pos
        .serve(args.pos_listen)
        .await
        .context("fix: pass --pos-listen with a free address")?;
    let broker = storefront_agent::daemon::BrokerAddress::parse(&args.local_broker)
        .context("--local-broker")?;
    let mut options = rumqttc::MqttOptions::new(
        format!("storefront-feed-{}", config.store.id),
        broker.host,
        broker.port,
    );
    options.set_inflight(1000);
    let (client, mut eventloop) = AsyncClient::new(options, 10_000);
    tokio::spawn(async move {
        loop {
            if let Err(error) = eventloop.poll().await {
                tracing::warn!(%error, "Local broker unreachable; retrying");
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            }
        }
    });
    let mut feed = Feed::new(wiring, &config.store.id, client, &agent_url, pos);
    let from = now.timestamp_millis();
    let events: Vec<&Event> = day
        .events
        .iter()
        .filter(|e| e.time().millis() >= from)
        .collect();
    tracing::info!(
        date = %today,
        events = events.len(),
        pos = %pos_url,
        agent = %agent_url,
        "Feeding the rest of today's simulated traffic in real time (Ctrl-C stops)"
    );
    let mut last_report = std::time::Instant::now();
    for (sent, event) in events.iter().enumerate() {
        let wait = event.time().millis() - chrono::Utc::now().timestamp_millis();
        if wait > 0 {
            tokio::time::sleep(std::time::Duration::from_millis(wait as u64)).await;
        }
        if let Err(error) = feed.send(event).await {
            tracing::warn!(error = %format!("{error:#}"), "Not delivered");
        }
        if last_report.elapsed() >= std::time::Duration::from_secs(60) {
            last_report = std::time::Instant::now();
            tracing::info!(sent = sent + 1, of = events.len(), "Feeding");
        }
    }
    tracing::info!("The simulated day is over");
    Ok(())
}
