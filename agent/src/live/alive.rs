//! Signs of life of the live inputs. Every [`EVERY`], each configured input that is working
//! says so to the engine (`Event::Alive`), so that a quiet hour with working sensors reads 0
//! and an hour with none working reads "no data" (the windows' coverage).
//!
//! What "working" means per input, from [`LiveHealthSnapshot`] (reception times, on the live
//! clock):
//! * a scanner node: it announced `online` on its status topic (its last will says `offline`
//!   when it drops) while the agent is connected to the local broker, or a reading from it in
//!   the last [`RECENT`];
//! * a local Bluetooth adapter, a door sensor: a reading or record in the last [`RECENT`];
//! * the polled POS: a successful poll (an empty page too) within two poll intervals, named
//!   by `sources.pos.system`. Pushed sales carry no sign of life but the sales themselves.

use std::sync::Arc;
use std::time::Duration;

use storefront_config::StoreConfig;
use storefront_protocol::{Alive, Event, InputKind, Timestamp};
use tokio::sync::{mpsc, watch};

use super::health::{LiveHealth, LiveHealthSnapshot};
use crate::clock::SharedClock;
use crate::daemon::source::SourceMessage;

/// How often (live clock) signs of life are sent, at most: half the engine's coverage grace
/// when that is shorter (120 s by default), so a working input's coverage has no gaps.
pub const EVERY: Duration = Duration::from_secs(30);
/// How long after its last message an input still counts as working.
pub const RECENT: Duration = Duration::from_secs(60);

/// The inputs the config names, to report on.
#[derive(Clone, Debug, Default)]
pub struct Inputs {
    scanners: Vec<String>,
    door_sensors: Vec<String>,
    /// The polled POS system's id and how long a poll may take to come round.
    polled_pos: Option<(String, Duration)>,
    /// How often signs of life are sent.
    every: Duration,
}

impl Inputs {
    pub fn for_config(config: &StoreConfig) -> Inputs {
        Inputs {
            scanners: config
                .zones
                .iter()
                .flat_map(|z| z.scanners.iter().cloned())
                .collect(),
            door_sensors: config.door_sensors.clone(),
            polled_pos: config.sources.pos.as_ref().and_then(|pos| {
                let system = pos.system.clone()?;
                Some((system, (pos.poll_interval * 2).max(RECENT)))
            }),
            every: (config.metrics.coverage_grace / 2).clamp(Duration::from_secs(1), EVERY),
        }
    }

    /// The signs of life due at `now_ms`.
    pub fn alive_at(&self, health: &LiveHealthSnapshot, now_ms: i64) -> Vec<Alive> {
        // A time ahead of now (the clock stepped back since) is not recent.
        let recent = |last: Option<i64>, within: Duration| {
            last.is_some_and(|t| {
                (0..=within.as_millis() as i64).contains(&now_ms.saturating_sub(t))
            })
        };
        let alive = |input, source: &str| Alive {
            t: Timestamp(now_ms),
            input,
            source: source.to_owned(),
        };
        let mut out = Vec::new();
        for scanner in &self.scanners {
            let node = health.scanner_nodes.get(scanner);
            let announced = health.mqtt_connected && node.is_some_and(|n| n.online == Some(true));
            let heard = recent(node.and_then(|n| n.last_seen_ms), RECENT)
                || recent(
                    health
                        .ble_adapters
                        .get(scanner)
                        .and_then(|a| a.last_seen_ms),
                    RECENT,
                );
            if announced || heard {
                out.push(alive(InputKind::Ble, scanner));
            }
        }
        for sensor in &self.door_sensors {
            let seen = health.door_sensors.get(sensor).and_then(|s| s.last_seen_ms);
            if recent(seen, RECENT) {
                out.push(alive(InputKind::Door, sensor));
            }
        }
        if let Some((system, within)) = &self.polled_pos
            && recent(health.pos.last_success_ms, *within)
        {
            out.push(alive(InputKind::Pos, system));
        }
        out
    }
}

/// Sends the inputs' signs of life to the core every [`EVERY`] (or half the coverage grace) of
/// the live clock, looked at every second (a time-lapse test's clock runs faster than the
/// wall), once the clock is set; until `shutdown` or until the core is gone.
pub async fn run(
    inputs: Inputs,
    health: Arc<LiveHealth>,
    clock: SharedClock,
    out: mpsc::Sender<SourceMessage>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_sent: Option<i64> = None;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.changed() => return,
        }
        // Before NTP has set the clock, the engine would reject them all as clock_not_set.
        let Some(now) = clock.sane_now() else {
            continue;
        };
        let now_ms = now.millis();
        // A clock that stepped back sends at once, and so does the first tick.
        let every = inputs.every.as_millis() as i64;
        if last_sent.is_some_and(|t| (t..t + every).contains(&now_ms)) {
            continue;
        }
        last_sent = Some(now_ms);
        for alive in inputs.alive_at(&health.snapshot(), now_ms) {
            if out
                .send(SourceMessage::Event(Event::Alive(alive), None))
                .await
                .is_err()
            {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::live::health::{NodeHealth, Seen};

    const NOW: i64 = 1_795_000_000_000;

    fn inputs() -> Inputs {
        Inputs {
            scanners: vec!["sf-1".into(), "floor-1".into(), "hci0".into()],
            door_sensors: vec!["door-main".into()],
            polled_pos: Some(("tills".into(), Duration::from_secs(60))),
            every: EVERY,
        }
    }

    fn sources(alive: &[Alive]) -> Vec<(InputKind, &str)> {
        alive.iter().map(|a| (a.input, a.source.as_str())).collect()
    }

    #[test]
    fn inputs_heard_from_lately_or_announced_online_are_alive_at_the_time_given() {
        let mut health = LiveHealthSnapshot {
            mqtt_connected: true,
            ..Default::default()
        };
        // sf-1 sees nobody but says it is online; floor-1 read something 59 s ago.
        health.scanner_nodes.insert(
            "sf-1".into(),
            NodeHealth {
                online: Some(true),
                ..Default::default()
            },
        );
        health.scanner_nodes.insert(
            "floor-1".into(),
            NodeHealth {
                last_seen_ms: Some(NOW - 59_000),
                ..Default::default()
            },
        );
        health.ble_adapters.insert(
            "hci0".into(),
            Seen {
                last_seen_ms: Some(NOW - 1_000),
                messages: 1,
            },
        );
        health.door_sensors.insert(
            "door-main".into(),
            Seen {
                last_seen_ms: Some(NOW - 30_000),
                messages: 1,
            },
        );
        health.pos.last_success_ms = Some(NOW - 45_000);
        let alive = inputs().alive_at(&health, NOW);
        assert_eq!(
            sources(&alive),
            [
                (InputKind::Ble, "sf-1"),
                (InputKind::Ble, "floor-1"),
                (InputKind::Ble, "hci0"),
                (InputKind::Door, "door-main"),
                (InputKind::Pos, "tills"),
            ]
        );
        assert!(alive.iter().all(|a| a.t == Timestamp(NOW)));
    }

    #[test]
    fn silent_offline_or_unreachable_inputs_and_unnamed_pos_are_not_alive() {
        let mut health = LiveHealthSnapshot {
            // The agent lost the local broker: a node's last "online" says nothing now.
            mqtt_connected: false,
            ..Default::default()
        };
        health.scanner_nodes.insert(
            "sf-1".into(),
            NodeHealth {
                online: Some(true),
                last_seen_ms: Some(NOW - 61_000),
                ..Default::default()
            },
        );
        health.scanner_nodes.insert(
            "floor-1".into(),
            NodeHealth {
                online: Some(false),
                ..Default::default()
            },
        );
        health.door_sensors.insert(
            "door-main".into(),
            Seen {
                last_seen_ms: Some(NOW - 600_000),
                messages: 1,
            },
        );
        health.pos.last_success_ms = Some(NOW - 61_000);
        assert_eq!(sources(&inputs().alive_at(&health, NOW)), []);

        // Heard "in the future": the clock stepped back since; not a sign of life now.
        health
            .door_sensors
            .get_mut("door-main")
            .unwrap()
            .last_seen_ms = Some(NOW + 3_600_000);
        assert_eq!(sources(&inputs().alive_at(&health, NOW)), []);

        // Working, but no POS system named: no POS sign of life to give.
        health.pos.last_success_ms = Some(NOW);
        let unnamed = Inputs {
            polled_pos: None,
            ..inputs()
        };
        assert_eq!(sources(&unnamed.alive_at(&health, NOW)), []);
    }
}
