//! Sync over TLS with a client certificate (mutual TLS) to a real mosquitto.

mod common;

use common::*;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
use storefront_broker::{Mosquitto, free_port};
use storefront_simulator::ProfileName;

struct Pki {
    ca: String,
    server_cert: String,
    server_key: String,
    client_cert: String,
    client_key: String,
}

fn pki() -> Pki {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "storefront test CA");
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issue = |names: Vec<String>| {
        let key = KeyPair::generate().unwrap();
        let cert = CertificateParams::new(names)
            .unwrap()
            .signed_by(&key, &ca, &ca_key)
            .unwrap();
        (cert.pem(), key.serialize_pem())
    };
    let (server_cert, server_key) = issue(vec!["127.0.0.1".into(), "localhost".into()]);
    let (client_cert, client_key) = issue(vec!["store-boutique".into()]);
    Pki {
        ca: ca.pem(),
        server_cert,
        server_key,
        client_cert,
        client_key,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_day_syncs_over_mutual_tls() {
    if !Mosquitto::available() {
        assert_ne!(
            std::env::var("CI").as_deref(),
            Ok("true"),
            "CI needs mosquitto"
        );
        eprintln!("SKIPPED: mosquitto is not installed");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let pki = pki();
    for (name, pem) in [
        ("ca.pem", &pki.ca),
        ("server.pem", &pki.server_cert),
        ("server.key", &pki.server_key),
        ("client.pem", &pki.client_cert),
        ("client.key", &pki.client_key),
    ] {
        std::fs::write(dir.path().join(name), pem).unwrap();
    }
    let (tls_port, plain_port) = (free_port().unwrap(), free_port().unwrap());
    let d = dir.path().display();
    let conf = dir.path().join("mosquitto.conf");
    // TLS with a required client certificate for stores; a plain loopback listener for HQ.
    std::fs::write(
        &conf,
        format!(
            "per_listener_settings true\n\
             listener {tls_port} 127.0.0.1\nallow_anonymous true\ncafile {d}/ca.pem\ncertfile {d}/server.pem\nkeyfile {d}/server.key\nrequire_certificate true\n\
             listener {plain_port} 127.0.0.1\nallow_anonymous true\n"
        ),
    )
    .unwrap();
    let _broker = Mosquitto::start_with_config(&conf, tls_port).unwrap();

    let (events, _) = write_day(dir.path(), ProfileName::Boutique, 8);
    let config = write_config(dir.path(), ProfileName::Boutique, tls_port);
    // Point the config at the TLS listener with the CA and the client certificate.
    let text = std::fs::read_to_string(&config).unwrap();
    let text = text.replace(
        &format!("broker = \"mqtt://127.0.0.1:{tls_port}\""),
        &format!(
            "broker = \"mqtts://127.0.0.1:{tls_port}\"\nca_file = \"{d}/ca.pem\"\nclient_cert_file = \"{d}/client.pem\"\nclient_key_file = \"{d}/client.key\""
        ),
    );
    std::fs::write(&config, text).unwrap();
    let hq = Hq::start(dir.path(), plain_port);

    finishes(spawn_agent(
        &config,
        &events,
        &["--publish-per-second", "500"],
    ))
    .await;
    assert_hq_holds_the_run(&hq, "boutique-paris-01", &config, &events);
    hq.stop().await;
}
