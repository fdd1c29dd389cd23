//! The shipped broker setup (`deploy/mosquitto/`) against a real mosquitto started with it:
//! each store speaks only for itself, only HQ writes acks, strangers are refused.
//!
//! The broker's config is the shipped file with its ports and directories swapped for
//! temporary ones (each swap must match, so a changed file cannot go untested), the ACL is the
//! shipped file as is, and stores get their logins from the shipped `add-store.sh`.
//!
//! Under MQTT 3.1.1 a denied publish is acknowledged and dropped, so "B never received the
//! forged message" is only meaningful after a positive control: a legitimate message sent
//! after the forged one arrives, and the broker delivers in order.

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
use rumqttc::{
    Client, ConnectReturnCode, Connection, ConnectionError, Event, LastWill, MqttOptions, Packet,
    QoS, TlsConfiguration, Transport,
};
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use storefront_broker::{Mosquitto, free_port, wait_listening};

const SHIPPED_CONFIG: &str = include_str!("../../deploy/mosquitto/mosquitto.conf");
const SHIPPED_ACL: &str = include_str!("../../deploy/mosquitto/acl");
const ADD_STORE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../deploy/mosquitto/add-store.sh"
);
/// Generous: the suite must pass with both cores busy.
const DEADLINE: Duration = Duration::from_secs(90);
const HQ_PASSWORD: &str = "hq-test-password";

fn topic(store: &str, kind: &str) -> String {
    format!("storefront/v1/acme/{store}/{kind}")
}

/// How stores prove who they are on the TLS listener.
#[derive(Clone, Copy, PartialEq)]
enum Login {
    /// The shipped config: username and password (from add-store.sh).
    Password,
    /// The shipped config's client-certificate lines uncommented: CN "<org>/<store>".
    Certificate,
}

struct Pki {
    ca: rcgen::Certificate,
    ca_key: KeyPair,
}

impl Pki {
    fn new() -> Pki {
        let ca_key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "storefront test CA");
        let ca = params.self_signed(&ca_key).unwrap();
        Pki { ca, ca_key }
    }

    /// A certificate for `names` (subject alternative names) with the common name `cn`.
    fn issue(&self, names: &[&str], cn: &str) -> (rcgen::Certificate, KeyPair) {
        let key = KeyPair::generate().unwrap();
        let names = names.iter().map(|n| n.to_string()).collect::<Vec<_>>();
        let mut params = CertificateParams::new(names).unwrap();
        params.distinguished_name.push(DnType::CommonName, cn);
        let cert = params.signed_by(&key, &self.ca, &self.ca_key).unwrap();
        (cert, key)
    }

    fn client_config(&self, client_cert: Option<(&str, &str)>) -> Arc<rustls::ClientConfig> {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.ca.der().clone()).unwrap();
        let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
        Arc::new(match client_cert {
            None => builder.with_no_client_auth(),
            Some((org, store)) => {
                let (cert, key) = self.issue(&[], &format!("{org}/{store}"));
                let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
                builder
                    .with_client_auth_cert(vec![cert.der().clone()], key)
                    .unwrap()
            }
        })
    }
}

/// `text` with `from` replaced by `to`, which must occur exactly once.
fn swap(text: &str, from: &str, to: &str) -> String {
    assert_eq!(
        text.matches(from).count(),
        1,
        "the shipped mosquitto.conf no longer has exactly one {from:?}: update this test"
    );
    text.replacen(from, to, 1)
}

/// mosquitto started with the shipped setup in a temporary directory.
struct ChainBroker {
    dir: tempfile::TempDir,
    pki: Pki,
    login: Login,
    tls_port: u16,
    local_port: u16,
    _mosquitto: Mosquitto,
}

impl ChainBroker {
    /// `None` where mosquitto is not installed, except under `CI=true` (a failure there).
    fn start(login: Login) -> Option<ChainBroker> {
        if !Mosquitto::available() {
            assert_ne!(
                std::env::var("CI").as_deref(),
                Ok("true"),
                "CI needs mosquitto"
            );
            eprintln!("SKIPPED: mosquitto is not installed");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let pki = Pki::new();
        let (server_cert, server_key) = pki.issue(&["127.0.0.1", "localhost"], "broker");
        std::fs::write(d.join("ca.pem"), pki.ca.pem()).unwrap();
        std::fs::write(d.join("server.pem"), server_cert.pem()).unwrap();
        std::fs::write(d.join("server.key"), server_key.serialize_pem()).unwrap();
        std::fs::write(d.join("acl"), SHIPPED_ACL).unwrap();
        std::fs::create_dir(d.join("data")).unwrap();
        for store in ["a", "b"] {
            add_store(d, "acme", store);
        }
        add_login(&d.join("passwd"), "hq", HQ_PASSWORD);

        let (tls_port, local_port) = (free_port().unwrap(), free_port().unwrap());
        let dir_text = d.display().to_string();
        let mut config = swap(
            SHIPPED_CONFIG,
            "\nlistener 8883\n",
            &format!("\nlistener {tls_port} 127.0.0.1\n"),
        );
        config = swap(
            &config,
            "\nlistener 1883 127.0.0.1\n",
            &format!("\nlistener {local_port} 127.0.0.1\n"),
        );
        config = swap(
            &config,
            "persistence_location /var/lib/mosquitto/\n",
            &format!("persistence_location {dir_text}/data/\n"),
        );
        config = config.replace("/etc/mosquitto/storefront/", &format!("{dir_text}/"));
        let unswapped: Vec<_> = config
            .lines()
            .filter(|l| !l.starts_with('#') && (l.contains("/etc/") || l.contains("/var/")))
            .collect();
        assert!(
            unswapped.is_empty(),
            "paths of the shipped mosquitto.conf not swapped for temporary ones: {unswapped:?}"
        );
        if login == Login::Certificate {
            config = swap(
                &config,
                "\n#require_certificate true\n",
                "\nrequire_certificate true\n",
            );
            config = swap(
                &config,
                "\n#use_identity_as_username true\n",
                "\nuse_identity_as_username true\n",
            );
        }
        // Run as whoever runs the test (as root, mosquitto would switch to its own user, who
        // cannot read the temporary directory), and keep a log for a failing test to show.
        config.push_str(&format!(
            "user root\nlog_dest file {dir_text}/mosquitto.log\n"
        ));
        let config_path = d.join("mosquitto.conf");
        std::fs::write(&config_path, config).unwrap();
        let mosquitto = Mosquitto::start_with_config(&config_path, tls_port).unwrap();
        wait_listening(local_port, DEADLINE).unwrap();
        Some(ChainBroker {
            dir,
            pki,
            login,
            tls_port,
            local_port,
            _mosquitto: mosquitto,
        })
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("mosquitto.log")).unwrap_or_default()
    }

    /// The password add-store.sh wrote for the store to install.
    fn store_password(&self, store: &str) -> String {
        let path = self
            .dir
            .path()
            .join(format!("stores/acme/{store}.password"));
        std::fs::read_to_string(path).unwrap().trim_end().to_owned()
    }

    /// Options as the agent sets them: its client id, and its last will on its own status.
    fn store_options(&self, store: &str, client_id: &str) -> MqttOptions {
        let mut options = MqttOptions::new(client_id, "127.0.0.1", self.tls_port);
        options.set_keep_alive(Duration::from_secs(300));
        options.set_last_will(LastWill::new(
            topic(store, "status"),
            "offline",
            QoS::AtLeastOnce,
            true,
        ));
        let tls = match self.login {
            Login::Password => {
                options.set_credentials(format!("acme/{store}"), self.store_password(store));
                self.pki.client_config(None)
            }
            Login::Certificate => self.pki.client_config(Some(("acme", store))),
        };
        options.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(tls)));
        options
    }

    /// Store `store` of org "acme", connected.
    fn store(&self, store: &str) -> Peer {
        self.connected(self.store_options(store, &format!("storefront-acme-{store}")))
    }

    /// An HQ collector on the loopback listener, connected.
    fn hq(&self) -> Peer {
        let mut options = MqttOptions::new("hq-collector-1", "127.0.0.1", self.local_port);
        options.set_keep_alive(Duration::from_secs(300));
        options.set_credentials("hq", HQ_PASSWORD);
        self.connected(options)
    }

    fn connected(&self, options: MqttOptions) -> Peer {
        let (client, connection) = Client::new(options, 64);
        let mut peer = Peer {
            client,
            connection,
            received: Vec::new(),
        };
        match peer.connect_outcome() {
            Ok(()) => peer,
            Err(e) => panic!("connect failed: {e}\nbroker log:\n{}", self.log()),
        }
    }

    /// How a connection attempt with `options` ends: `Ok` on a successful CONNACK.
    fn attempt(&self, options: MqttOptions) -> Result<(), Outcome> {
        let (client, connection) = Client::new(options, 64);
        Peer {
            client,
            connection,
            received: Vec::new(),
        }
        .connect_outcome()
    }
}

/// Runs the shipped add-store.sh for `org`/`store` with the broker files in `dir`.
fn add_store(dir: &Path, org: &str, store: &str) {
    let output = Command::new("sh")
        .arg(ADD_STORE)
        .args([org, store])
        .env("PASSWD_FILE", dir.join("passwd"))
        .env("OUT_DIR", dir.join("stores"))
        .output()
        .unwrap();
    assert!(output.status.success(), "add-store.sh failed: {output:?}");
    let password =
        std::fs::read_to_string(dir.join(format!("stores/{org}/{store}.password"))).unwrap();
    let printed = String::from_utf8_lossy(&output.stdout) + String::from_utf8_lossy(&output.stderr);
    assert!(
        !printed.contains(password.trim_end()),
        "add-store.sh printed the password"
    );
}

/// A login added as the README says (mosquitto_passwd reading the password twice on stdin).
fn add_login(passwd: &Path, user: &str, password: &str) {
    let mut child = Command::new("mosquitto_passwd")
        .arg(passwd)
        .arg(user)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    use std::io::Write;
    write!(child.stdin.take().unwrap(), "{password}\n{password}\n").unwrap();
    assert!(child.wait().unwrap().success());
}

/// How a connection attempt failed.
#[derive(Debug)]
enum Outcome {
    /// The broker answered the CONNECT with a refusal.
    Refused(ConnectReturnCode),
    /// The connection failed before any CONNACK (e.g. the TLS handshake).
    Failed(String),
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Outcome::Refused(code) => write!(f, "refused with {code:?}"),
            Outcome::Failed(why) => write!(f, "failed: {why}"),
        }
    }
}

/// One MQTT client, polled by the test itself (one thread: no pump to synchronise with).
struct Peer {
    client: Client,
    connection: Connection,
    /// Every message received so far: (topic, payload).
    received: Vec<(String, String)>,
}

enum Step {
    ConnAck,
    PubAck,
    SubAck,
    Other,
}

impl Peer {
    /// The next packet from the broker; received messages are recorded on the way.
    fn step(&mut self, deadline: Instant) -> Result<Step, Outcome> {
        let left = deadline.saturating_duration_since(Instant::now());
        let event = match self.connection.recv_timeout(left) {
            Ok(event) => event,
            Err(e) => {
                return Err(Outcome::Failed(format!(
                    "no packet within the deadline: {e:?}"
                )));
            }
        };
        match event {
            Ok(Event::Incoming(Packet::ConnAck(_))) => Ok(Step::ConnAck),
            Ok(Event::Incoming(Packet::PubAck(_))) => Ok(Step::PubAck),
            Ok(Event::Incoming(Packet::SubAck(_))) => Ok(Step::SubAck),
            Ok(Event::Incoming(Packet::Publish(p))) => {
                self.received.push((
                    p.topic.clone(),
                    String::from_utf8_lossy(&p.payload).into_owned(),
                ));
                Ok(Step::Other)
            }
            Ok(_) => Ok(Step::Other),
            Err(ConnectionError::ConnectionRefused(code)) => Err(Outcome::Refused(code)),
            Err(e) => Err(Outcome::Failed(e.to_string())),
        }
    }

    fn until(&mut self, what: &str, done: impl Fn(&Step) -> bool) {
        let deadline = Instant::now() + DEADLINE;
        loop {
            match self.step(deadline) {
                Ok(step) if done(&step) => return,
                Ok(_) => {}
                Err(e) => panic!("waiting for {what}: {e}"),
            }
        }
    }

    fn connect_outcome(&mut self) -> Result<(), Outcome> {
        let deadline = Instant::now() + DEADLINE;
        loop {
            if let Step::ConnAck = self.step(deadline)? {
                return Ok(());
            }
        }
    }

    /// Publishes QoS 1 and waits for the broker's PUBACK (which MQTT 3.1.1 sends for a
    /// denied publish too): the broker has handled it, delivered or dropped.
    fn publish(&mut self, topic: &str, payload: &str, retain: bool) {
        self.client
            .publish(topic, QoS::AtLeastOnce, retain, payload)
            .unwrap();
        self.until(&format!("the PUBACK of {topic}"), |s| {
            matches!(s, Step::PubAck)
        });
    }

    fn subscribe(&mut self, filter: &str) {
        self.client.subscribe(filter, QoS::AtLeastOnce).unwrap();
        self.until(&format!("the SUBACK of {filter}"), |s| {
            matches!(s, Step::SubAck)
        });
    }

    /// Waits until `payload` arrives on `topic`.
    fn receives(&mut self, topic: &str, payload: &str) {
        let deadline = Instant::now() + DEADLINE;
        while !self.got(topic, payload) {
            if let Err(e) = self.step(deadline) {
                panic!(
                    "{payload:?} on {topic} never arrived ({e}); received: {:?}",
                    self.received
                );
            }
        }
    }

    fn got(&self, topic: &str, payload: &str) -> bool {
        self.received
            .iter()
            .any(|(t, p)| t == topic && p == payload)
    }
}

/// HQ as the collector subscribes: summaries through the shared subscription, and status.
fn hq_listening(broker: &ChainBroker) -> Peer {
    let mut hq = broker.hq();
    hq.subscribe("$share/hq/storefront/v1/+/+/summary");
    hq.subscribe("storefront/v1/+/+/status");
    hq
}

#[test]
fn a_store_cannot_publish_summaries_as_another_store() {
    let Some(broker) = ChainBroker::start(Login::Password) else {
        return;
    };
    let mut hq = hq_listening(&broker);
    let mut a = broker.store("a");

    a.publish(&topic("b", "summary"), "forged by a", false);
    a.publish(&topic("a", "summary"), "a's own", false);

    hq.receives(&topic("a", "summary"), "a's own");
    assert!(
        !hq.got(&topic("b", "summary"), "forged by a"),
        "HQ received a summary A published as B: {:?}",
        hq.received
    );
}

#[test]
fn a_store_cannot_forge_another_stores_ack() {
    let Some(broker) = ChainBroker::start(Login::Password) else {
        return;
    };
    let mut hq = broker.hq();
    let mut a = broker.store("a");
    let mut b = broker.store("b");
    b.subscribe(&topic("b", "ack"));

    a.publish(&topic("b", "ack"), "forged by a", false);
    hq.publish(&topic("b", "ack"), "from hq", false);

    b.receives(&topic("b", "ack"), "from hq");
    assert!(
        !b.got(&topic("b", "ack"), "forged by a"),
        "B received an ack A forged: {:?}",
        b.received
    );
}

#[test]
fn a_store_cannot_overwrite_another_stores_status() {
    let Some(broker) = ChainBroker::start(Login::Password) else {
        return;
    };
    let mut hq = hq_listening(&broker);
    let mut a = broker.store("a");
    let mut b = broker.store("b");

    a.publish(&topic("b", "status"), "offline, forged by a", true);
    b.publish(&topic("b", "status"), "online", true);

    hq.receives(&topic("b", "status"), "online");
    assert!(
        !hq.got(&topic("b", "status"), "offline, forged by a"),
        "HQ received a status A forged for B: {:?}",
        hq.received
    );
}

#[test]
fn a_store_cannot_read_another_stores_summaries_acks_or_status() {
    let Some(broker) = ChainBroker::start(Login::Password) else {
        return;
    };
    let mut hq = hq_listening(&broker);
    let mut b = broker.store("b");
    b.publish(&topic("b", "status"), "online", true);
    let mut a = broker.store("a");
    // Everything under the root, and B's ack by name: the broker may accept the subscriptions,
    // but must deliver A nothing of B's.
    a.subscribe("storefront/v1/#");
    a.subscribe(&topic("b", "ack"));
    a.subscribe(&topic("a", "ack"));

    b.publish(&topic("b", "summary"), "b's own", false);
    hq.receives(&topic("b", "summary"), "b's own");
    hq.publish(&topic("b", "ack"), "ack for b", false);
    hq.publish(&topic("a", "ack"), "ack for a", false);

    a.receives(&topic("a", "ack"), "ack for a");
    let of_b: Vec<_> = a
        .received
        .iter()
        .filter(|(t, _)| t.starts_with("storefront/v1/acme/b/"))
        .collect();
    assert!(of_b.is_empty(), "A read B's messages: {of_b:?}");
}

#[test]
fn a_store_cannot_disconnect_another_by_connecting_with_its_client_id() {
    let Some(broker) = ChainBroker::start(Login::Password) else {
        return;
    };
    let mut hq = broker.hq();
    let mut b = broker.store("b");
    b.subscribe(&topic("b", "ack"));

    // A logs in as itself but with the client id B's agent uses: without the broker's
    // username-as-client-id rule, this would take over B's session and disconnect B.
    let mut a = broker.connected(broker.store_options("a", "storefront-acme-b"));
    a.publish(&topic("a", "summary"), "a is connected", false);

    hq.publish(&topic("b", "ack"), "b is still connected", false);
    b.receives(&topic("b", "ack"), "b is still connected");
}

#[test]
fn anonymous_clients_and_wrong_passwords_are_refused() {
    let Some(broker) = ChainBroker::start(Login::Password) else {
        return;
    };
    let refused = |outcome: Result<(), Outcome>, who: &str| match outcome {
        Err(Outcome::Refused(
            ConnectReturnCode::NotAuthorized | ConnectReturnCode::BadUserNamePassword,
        )) => {}
        other => panic!("{who}: expected a CONNACK refusal, got {other:?}"),
    };

    let mut options = MqttOptions::new("anonymous-tls", "127.0.0.1", broker.tls_port);
    options.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(
        broker.pki.client_config(None),
    )));
    refused(broker.attempt(options), "anonymous on the TLS listener");
    refused(
        broker.attempt(MqttOptions::new(
            "anonymous-local",
            "127.0.0.1",
            broker.local_port,
        )),
        "anonymous on the loopback listener",
    );

    let mut wrong = broker.store_options("a", "storefront-acme-a");
    wrong.set_credentials("acme/a", format!("{}x", broker.store_password("a")));
    refused(broker.attempt(wrong), "a store with a wrong password");
    let mut wrong_hq = MqttOptions::new("hq-wrong", "127.0.0.1", broker.local_port);
    wrong_hq.set_credentials("hq", "not-hq's-password");
    refused(broker.attempt(wrong_hq), "HQ with a wrong password");

    // The positive control: the right password gets in.
    broker
        .attempt(broker.store_options("a", "storefront-acme-a"))
        .unwrap();
}

#[test]
fn with_client_certificates_a_store_speaks_only_for_itself_and_needs_a_certificate() {
    let Some(broker) = ChainBroker::start(Login::Certificate) else {
        return;
    };
    let mut hq = hq_listening(&broker);
    let mut a = broker.store("a");
    let mut b = broker.store("b");
    b.subscribe(&topic("b", "ack"));
    a.subscribe(&topic("a", "ack"));

    a.publish(&topic("b", "summary"), "forged by a", false);
    a.publish(&topic("a", "summary"), "a's own", false);
    hq.receives(&topic("a", "summary"), "a's own");
    assert!(
        !hq.got(&topic("b", "summary"), "forged by a"),
        "HQ received a summary A published as B: {:?}",
        hq.received
    );

    a.publish(&topic("b", "ack"), "forged by a", false);
    hq.publish(&topic("b", "ack"), "from hq", false);
    hq.publish(&topic("a", "ack"), "ack for a", false);
    b.receives(&topic("b", "ack"), "from hq");
    a.receives(&topic("a", "ack"), "ack for a");
    assert!(
        !b.got(&topic("b", "ack"), "forged by a"),
        "B received an ack A forged: {:?}",
        b.received
    );

    // Without a certificate (even with a store's valid password) there is no way in.
    let mut options = MqttOptions::new("no-certificate", "127.0.0.1", broker.tls_port);
    options.set_credentials("acme/a", broker.store_password("a"));
    options.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(
        broker.pki.client_config(None),
    )));
    let outcome = broker.attempt(options);
    assert!(outcome.is_err(), "a client without a certificate got in");
}
