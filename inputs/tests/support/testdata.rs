//! Loads `testdata/scanner-messages.json` (real scanner-node MQTT messages) for tests
//! and benches, giving each message the topic its system publishes on where the source did
//! not record one.

#![allow(dead_code)]

use std::path::PathBuf;

use serde_json::Value;
use storefront_inputs::ScannerFormat;

/// One recorded message.
pub struct Message {
    /// Position in the file, for failure messages and expectation tables.
    pub index: usize,
    /// `espresense`, `theengs`, `omg`, `mqtt_room` or `monitor`.
    pub system: String,
    /// The parser format of the system; `None` for `monitor`, which the agent does not read.
    pub format: Option<ScannerFormat>,
    /// As recorded, or built from the system's topic pattern (`topic_recorded` false).
    pub topic: String,
    pub topic_recorded: bool,
    /// The payload bytes as published.
    pub payload: Vec<u8>,
    /// The payload as the entry states it (a JSON object, or a string for plain-text payloads).
    pub stated: Value,
}

pub fn path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../testdata/scanner-messages.json")
}

/// Every message; panics with the path when the file is absent.
pub fn scanner_messages() -> Vec<Message> {
    let path = path();
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "test vectors missing: cannot read {} ({e}); they live in testdata/ at the workspace root",
            path.display()
        )
    });
    let entries: Vec<Value> = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{} is not a JSON array: {e}", path.display()));
    entries
        .into_iter()
        .enumerate()
        .map(|(index, entry)| {
            let system = entry["system"]
                .as_str()
                .expect("every entry names its system")
                .to_owned();
            let payload = entry["payload_raw"]
                .as_str()
                .expect("every entry has payload_raw")
                .as_bytes()
                .to_vec();
            let stated = entry["payload"].clone();
            let id = stated
                .get("id")
                .and_then(Value::as_str)
                .unwrap_or("unknown");
            let (format, built) = match system.as_str() {
                "espresense" => (
                    Some(ScannerFormat::Espresense),
                    format!("espresense/devices/{id}/test-room"),
                ),
                "theengs" => (
                    Some(ScannerFormat::Theengs),
                    format!("home/TheengsGateway/BTtoMQTT/{}", id.replace(':', "")),
                ),
                "omg" => (
                    Some(ScannerFormat::Theengs),
                    format!("home/OpenMQTTGateway/BTtoMQTT/{}", id.replace(':', "")),
                ),
                "mqtt_room" => (
                    Some(ScannerFormat::MqttRoom),
                    format!("espresense/devices/{id}/test_room"),
                ),
                "monitor" => (None, format!("monitor/test/{id}")),
                other => panic!("entry {index}: unknown system {other}"),
            };
            let (topic, topic_recorded) = match entry["topic"].as_str() {
                Some(t) => (t.to_owned(), true),
                None => (built, false),
            };
            Message {
                index,
                system,
                format,
                topic,
                topic_recorded,
                payload,
                stated,
            }
        })
        .collect()
}
