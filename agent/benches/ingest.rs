//! Scanner-node ingest through a real mosquitto into the agent (BENCHMARKS.md, issue 5): the
//! `agent` binary runs live on the boutique store, this process publishes ESPresense messages
//! as fast as it can (pre-encoded PUBLISH packets on a raw socket, so the two cores are left to
//! the broker and the agent), and the agent's `/metrics` shows when the engine has taken them
//! all in. Reports messages/s end to end, the CPU the agent and mosquitto used, and the same
//! traffic into a bare rumqttc subscriber that only counts (the baseline).
//! `cargo bench -p storefront-agent --bench ingest` (needs mosquitto).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use storefront_broker::{Mosquitto, free_port};
use storefront_inputs::encode::encode_espresense;
use storefront_simulator::ProfileName;

/// Distinct phones heard (each by every scanner): a crowded store, not one device per message.
const DEVICES: usize = 2_000;
/// Times every (device, scanner) message is published: 200 × 6 000 = 1.2 M messages per run.
const ROUNDS: usize = 200;
const TOPIC: &str = "espresense/devices/#";
/// Sightings per second at a large store's peak.
const LARGE_STORE_PEAK: f64 = 10_000.0;

/// User + system CPU seconds of process `pid` so far.
fn cpu_seconds(pid: u32) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after `(comm)`, from state (field 3): utime is field 14, stime 15.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .context("/proc stat format")?
        .1
        .split_whitespace()
        .collect();
    let ticks: u64 = fields[11].parse::<u64>()? + fields[12].parse::<u64>()?;
    // SAFETY: sysconf only reads a system constant.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    Ok(ticks as f64 / per_second as f64)
}

/// CPU seconds used by a process from now on.
struct CpuMeter {
    pid: u32,
    start: f64,
}

impl CpuMeter {
    fn start(pid: u32) -> anyhow::Result<CpuMeter> {
        Ok(CpuMeter {
            pid,
            start: cpu_seconds(pid)?,
        })
    }

    fn used(&self) -> anyhow::Result<f64> {
        Ok(cpu_seconds(self.pid)? - self.start)
    }
}

/// The pid of our `mosquitto -c <config>` (the broker crate keeps its child to itself).
fn mosquitto_pid(config: &Path) -> Option<u32> {
    let wanted = format!("mosquitto\0-c\0{}\0", config.display());
    std::fs::read_dir("/proc")
        .ok()?
        .flatten()
        .find_map(|entry| {
            let pid = entry.file_name().to_str()?.parse().ok()?;
            let cmdline = std::fs::read(entry.path().join("cmdline")).ok()?;
            (cmdline == wanted.as_bytes()).then_some(pid)
        })
}

/// A private mosquitto that queues QoS 0 messages for a subscriber that falls behind instead of
/// dropping them past 1 000 (its default), so that every message of a run arrives.
fn start_broker(dir: &Path) -> anyhow::Result<(Mosquitto, u32)> {
    let port = free_port()?;
    let config = dir.join("mosquitto.conf");
    std::fs::write(
        &config,
        format!("listener {port} 127.0.0.1\nallow_anonymous true\nmax_queued_messages 0\n"),
    )?;
    let broker = Mosquitto::start_with_config(&config, port)?;
    let pid = mosquitto_pid(&config).context("mosquitto's pid")?;
    Ok((broker, pid))
}

/// An MQTT packet: type byte, "remaining length" (variable-length), body.
fn packet(packet_type: u8, body: &[u8]) -> Vec<u8> {
    let mut packet = vec![packet_type];
    let mut len = body.len();
    loop {
        let byte = (len % 128) as u8;
        len /= 128;
        packet.push(if len > 0 { byte | 0x80 } else { byte });
        if len == 0 {
            break;
        }
    }
    packet.extend_from_slice(body);
    packet
}

/// A QoS 0 PUBLISH packet.
fn publish_packet((topic, payload): (String, Vec<u8>)) -> Vec<u8> {
    let mut body = (topic.len() as u16).to_be_bytes().to_vec();
    body.extend_from_slice(topic.as_bytes());
    body.extend_from_slice(&payload);
    packet(0x30, &body)
}

/// An MQTT 3.1.1 client that only writes pre-encoded QoS 0 packets.
struct Publisher(TcpStream);

impl Publisher {
    fn connect(port: u16, id: &str) -> anyhow::Result<Publisher> {
        let mut stream = TcpStream::connect(("127.0.0.1", port))?;
        stream.set_nodelay(true)?;
        // Protocol "MQTT" level 4, clean session, keep-alive 60 s, then the client id.
        let mut body = b"\x00\x04MQTT\x04\x02\x00\x3c".to_vec();
        body.extend_from_slice(&(id.len() as u16).to_be_bytes());
        body.extend_from_slice(id.as_bytes());
        stream.write_all(&packet(0x10, &body))?;
        let mut connack = [0; 4];
        stream.read_exact(&mut connack)?;
        ensure!(connack == [0x20, 2, 0, 0], "CONNACK {connack:?}");
        Ok(Publisher(stream))
    }

    fn send(&mut self, packets: &[u8]) -> std::io::Result<()> {
        self.0.write_all(packets)
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        let _ = self.0.write_all(&packet(0xe0, &[])); // DISCONNECT
    }
}

/// A run's traffic: `ROUNDS` times one PUBLISH per (device, scanner). Every room is a scanner
/// of the store, so every message becomes a sighting.
struct Traffic {
    round: Arc<[u8]>,
    /// The first message alone.
    probe: Vec<u8>,
    messages: u64,
}

impl Traffic {
    fn new(scanners: &[String]) -> Traffic {
        let mut packets = (0..DEVICES).flat_map(|d| {
            scanners.iter().map(move |room| {
                let mac = format!("c0:00:00:00:{:02x}:{:02x}", d / 256, d % 256);
                publish_packet(encode_espresense(
                    room,
                    &mac,
                    -60 - (d % 30) as i16,
                    Some(-59),
                ))
            })
        });
        let probe = packets.next().expect("a scanner");
        let round: Vec<u8> = std::iter::once(probe.clone())
            .chain(packets)
            .flatten()
            .collect();
        Traffic {
            round: round.into(),
            probe,
            messages: (ROUNDS * DEVICES * scanners.len()) as u64,
        }
    }

    /// Publishes the run's traffic as fast as the broker reads it; returns how long it took.
    async fn publish(&self, port: u16) -> anyhow::Result<Duration> {
        let round = self.round.clone();
        tokio::task::spawn_blocking(move || {
            let mut publisher = Publisher::connect(port, "bench-publisher")?;
            let started = Instant::now();
            for _ in 0..ROUNDS {
                publisher.send(&round)?;
            }
            Ok(started.elapsed())
        })
        .await?
    }
}

struct Figures {
    sent: u64,
    received: u64,
    elapsed: Duration,
    published: Duration,
}

impl Figures {
    fn rate(&self) -> f64 {
        self.received as f64 / self.elapsed.as_secs_f64()
    }
}

/// The least a subscriber can do: count PUBLISH packets, nothing parsed.
async fn baseline(port: u16, traffic: &Traffic) -> anyhow::Result<Figures> {
    let mut options = MqttOptions::new("bench-baseline", "127.0.0.1", port);
    options.set_max_packet_size(1 << 20, 1 << 20);
    let (subscriber, mut eventloop) = AsyncClient::new(options, 10);
    subscriber.subscribe(TOPIC, QoS::AtMostOnce).await?;
    while !matches!(eventloop.poll().await?, Event::Incoming(Packet::SubAck(_))) {}
    let total = traffic.messages;
    let counter = tokio::spawn(async move {
        let mut received = 0;
        let mut last = Instant::now();
        while received < total {
            match tokio::time::timeout(Duration::from_secs(5), eventloop.poll()).await {
                Ok(Ok(Event::Incoming(Packet::Publish(_)))) => {
                    received += 1;
                    last = Instant::now();
                }
                Ok(Ok(_)) => {}
                Ok(Err(e)) => return Err(e.into()),
                Err(_) => break, // some were lost: stop at what arrived
            }
        }
        anyhow::Ok((received, last))
    });
    let started = Instant::now();
    let published = traffic.publish(port).await?;
    let (received, last) = counter.await??;
    Ok(Figures {
        sent: total,
        received,
        elapsed: last - started,
        published,
    })
}

/// The boutique example, live on the broker at `port`: ESPresense nodes only, no local radio.
/// Returns the config's text and its scanner ids.
fn store_config(dir: &Path, port: u16, dashboard: u16) -> anyhow::Result<(String, Vec<String>)> {
    let example = storefront_tests::example_config_path(ProfileName::Boutique);
    let mut table: toml::Table = toml::from_str(&std::fs::read_to_string(example)?)?;
    let scanners = storefront_tests::example_config(ProfileName::Boutique)?
        .zones
        .iter()
        .flat_map(|zone| zone.scanners.clone())
        .collect();
    let overrides: toml::Table = toml::from_str(&format!(
        r#"
        storage = {{ path = {db:?} }}
        sync = {{ broker = "mqtt://127.0.0.1:{port}" }}
        dashboard = {{ bind = "127.0.0.1:{dashboard}" }}
        [sources]
        ble = {{ enabled = false }}
        scanner_mqtt = [{{ format = "espresense", topic = "{TOPIC}" }}]
        "#,
        db = dir.join("db").display().to_string(),
    ))?;
    table.extend(overrides);
    Ok((toml::to_string(&table)?, scanners))
}

/// The agent binary, `agent run` live; killed on drop.
struct Agent {
    child: Child,
    metrics_url: String,
    log: std::path::PathBuf,
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Agent {
    fn start(dir: &Path, port: u16, config: &str, dashboard: u16) -> anyhow::Result<Agent> {
        let path = dir.join("store.toml");
        std::fs::write(&path, config)?;
        let log = dir.join("agent.log");
        let output = std::fs::File::create(&log)?;
        let child = Command::new(env!("CARGO_BIN_EXE_agent"))
            .arg("run")
            .arg("--config")
            .arg(&path)
            .args(["--local-broker", &format!("mqtt://127.0.0.1:{port}")])
            .stdout(output.try_clone()?)
            .stderr(output)
            .spawn()
            .context("starting the agent")?;
        Ok(Agent {
            child,
            metrics_url: format!("http://127.0.0.1:{dashboard}/metrics"),
            log,
        })
    }

    /// `storefront_events_in_total`: events the engine has taken in (from a view the agent
    /// refreshes every second); `None` before the dashboard listens.
    async fn events_in(&mut self, http: &reqwest::Client) -> anyhow::Result<Option<u64>> {
        if let Some(status) = self.child.try_wait()? {
            bail!(
                "the agent exited ({status}); its log: {}",
                std::fs::read_to_string(&self.log)?
            );
        }
        let Ok(response) = http.get(&self.metrics_url).send().await else {
            return Ok(None);
        };
        let text = response.error_for_status()?.text().await?;
        Ok(text.lines().find_map(|line| {
            line.strip_prefix("storefront_events_in_total ")?
                .parse::<f64>()
                .ok()
                .map(|v| v as u64)
        }))
    }

    /// Publishes a probe sighting every 100 ms until the engine counts one (the agent is up and
    /// subscribed), then waits for the count to settle; returns it.
    async fn wait_subscribed(
        &mut self,
        http: &reqwest::Client,
        port: u16,
        probe: &[u8],
    ) -> anyhow::Result<u64> {
        let mut prober = Publisher::connect(port, "bench-probe")?;
        let deadline = Instant::now() + Duration::from_secs(60);
        while self.events_in(http).await?.unwrap_or(0) == 0 {
            ensure!(Instant::now() < deadline, "the agent never took a probe in");
            prober.send(probe)?;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        drop(prober);
        // Two view refreshes: every probe in flight is counted.
        tokio::time::sleep(Duration::from_millis(2_500)).await;
        Ok(self.events_in(http).await?.unwrap_or(0))
    }

    /// Publishes the traffic; the end is the first scrape showing it all taken in (an upper
    /// bound, within a view refresh), or the last change if some was lost.
    async fn ingest(
        &mut self,
        http: &reqwest::Client,
        port: u16,
        traffic: &Traffic,
        base: u64,
    ) -> anyhow::Result<Figures> {
        let started = Instant::now();
        let watch = async {
            let (mut seen, mut changed) = (base, started);
            while seen < base + traffic.messages && changed.elapsed() < Duration::from_secs(5) {
                tokio::time::sleep(Duration::from_millis(20)).await;
                let now = self.events_in(http).await?.context("metrics")?;
                if now != seen {
                    (seen, changed) = (now, Instant::now());
                }
            }
            anyhow::Ok((seen, changed))
        };
        let (published, watched) = tokio::join!(traffic.publish(port), watch);
        let (seen, changed) = watched?;
        Ok(Figures {
            sent: traffic.messages,
            received: seen - base,
            elapsed: changed - started,
            published: published?,
        })
    }
}

fn print(name: &str, figures: &Figures) {
    println!(
        "  {name}: {}/{} messages in {:.2} s = {:.0} messages/s (publishing took {:.2} s)",
        figures.received,
        figures.sent,
        figures.elapsed.as_secs_f64(),
        figures.rate(),
        figures.published.as_secs_f64()
    );
}

fn print_cpu(name: &str, seconds: f64, messages: u64) {
    let per_message = seconds / messages as f64;
    println!(
        "  {name} CPU: {seconds:.2} s = {:.2} µs per message; at a large store's {LARGE_STORE_PEAK:.0} sightings/s: {:.1} % of one core",
        per_message * 1e6,
        per_message * LARGE_STORE_PEAK * 100.0
    );
}

async fn run() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let (broker, mosquitto) = start_broker(dir.path())?;
    let port = broker.port();
    let dashboard = free_port()?;
    let (config, scanners) = store_config(dir.path(), port, dashboard)?;
    let traffic = Traffic::new(&scanners);
    println!(
        "scanner-node ingest through mosquitto: {} ESPresense messages at QoS 0 ({DEVICES} devices × {} scanners × {ROUNDS}), {:.1} MB of PUBLISH packets",
        traffic.messages,
        scanners.len(),
        (traffic.round.len() * ROUNDS) as f64 / 1e6
    );
    println!(
        "  load average before: {}",
        std::fs::read_to_string("/proc/loadavg")?.trim()
    );

    let broker_cpu = CpuMeter::start(mosquitto)?;
    let bare = baseline(port, &traffic).await?;
    let bare_broker = broker_cpu.used()?;
    print("baseline (bare rumqttc subscriber, counts only)", &bare);
    print_cpu("mosquitto", bare_broker, bare.received);

    storefront_mqtt::install_crypto_provider();
    let http = reqwest::Client::new();
    let mut agent = Agent::start(dir.path(), port, &config, dashboard)?;
    let base = agent.wait_subscribed(&http, port, &traffic.probe).await?;
    let agent_cpu = CpuMeter::start(agent.child.id())?;
    let broker_cpu = CpuMeter::start(mosquitto)?;
    let ours = agent.ingest(&http, port, &traffic, base).await?;
    let (agent_used, broker_used) = (agent_cpu.used()?, broker_cpu.used()?);
    print("agent (parse, pseudonym, engine)", &ours);
    print_cpu("agent", agent_used, ours.received);
    print_cpu("mosquitto", broker_used, ours.received);
    println!(
        "  ratio agent/baseline: {:.2} (messages/s)",
        ours.rate() / bare.rate()
    );
    Ok(())
}

fn main() -> anyhow::Result<()> {
    if std::env::args().any(|a| a == "--list") {
        return Ok(());
    }
    if !Mosquitto::available() {
        println!("scanner-node ingest: SKIPPED (mosquitto not installed)");
        return Ok(());
    }
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(run())
}
