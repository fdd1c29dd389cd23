//! Checkpoints name what their indexes refer to. The engine indexes zones, scanners and door
//! sensors by position in its config; a snapshot carries those names ([`Layout`]) so that a
//! restore under a changed config (a zone removed, sensors reordered, a scanner moved to
//! another zone) maps every piece of state by name: reordered ones keep their own state, and
//! the state of removed ones is dropped and reported ([`Migration`]), never misread.

use std::fmt;

use crate::{Engine, PendingKind, Snapshot};

/// The names behind the engine's indexes.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct Layout {
    /// Zone ids, by zone index.
    pub zones: Vec<String>,
    /// Scanner ids, by scanner index.
    pub scanners: Vec<String>,
    /// Door sensor ids, by sensor index.
    pub door_sensors: Vec<String>,
}

impl Layout {
    /// The layout of an engine's indexes.
    pub(crate) fn of(engine: &Engine) -> Layout {
        let mut scanners = vec![String::new(); engine.scanners.len()];
        for (name, &(index, _)) in &engine.scanners {
            scanners[usize::from(index)] = name.clone();
        }
        let mut door_sensors = vec![String::new(); engine.door_sensors.len()];
        for (name, &index) in &engine.door_sensors {
            door_sensors[usize::from(index)] = name.clone();
        }
        Layout {
            zones: engine
                .config
                .zones
                .iter()
                .take(engine.params.zones.len())
                .map(|z| z.id.clone())
                .collect(),
            scanners,
            door_sensors,
        }
    }
}

/// What restoring a checkpoint under a changed config let go of.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Migration {
    /// Zones of the checkpoint no longer configured: presence and dwell in them are dropped.
    pub dropped_zones: Vec<String>,
    /// Scanners no longer configured: their readings are dropped.
    pub dropped_scanners: Vec<String>,
    /// Door sensors no longer configured: their register baselines and record ids are dropped.
    pub dropped_door_sensors: Vec<String>,
    /// Buffered events of removed scanners or sensors, dropped.
    pub dropped_events: u64,
}

impl fmt::Display for Migration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "checkpoint mapped onto the config by name; dropped zones {:?}, scanners {:?}, door sensors {:?}, {} buffered events",
            self.dropped_zones,
            self.dropped_scanners,
            self.dropped_door_sensors,
            self.dropped_events
        )
    }
}

impl Engine {
    /// Takes the index-bearing state of `snapshot` (written under `old`) onto this engine's
    /// config, by name.
    pub(crate) fn migrate(&mut self, old: &Layout, snapshot: &mut Snapshot) -> Migration {
        let new = &self.layout;
        let zone_index = |name: &String| {
            new.zones
                .iter()
                .position(|z| z == name)
                .and_then(|i| u8::try_from(i).ok())
        };
        let zones: Vec<Option<u8>> = old.zones.iter().map(zone_index).collect();
        let scanners: Vec<Option<(u16, u8)>> = old
            .scanners
            .iter()
            .map(|name| self.scanners.get(name).copied())
            .collect();
        let sensors: Vec<Option<u16>> = old
            .door_sensors
            .iter()
            .map(|name| self.door_sensors.get(name).copied())
            .collect();
        let dropped = |names: &[String], map: &[bool]| -> Vec<String> {
            names
                .iter()
                .zip(map)
                .filter(|(_, kept)| !**kept)
                .map(|(name, _)| name.clone())
                .collect()
        };
        let mut migration = Migration {
            dropped_zones: dropped(
                &old.zones,
                &zones.iter().map(Option::is_some).collect::<Vec<_>>(),
            ),
            dropped_scanners: dropped(
                &old.scanners,
                &scanners.iter().map(Option::is_some).collect::<Vec<_>>(),
            ),
            dropped_door_sensors: dropped(
                &old.door_sensors,
                &sensors.iter().map(Option::is_some).collect::<Vec<_>>(),
            ),
            dropped_events: 0,
        };

        for (old_index, state) in std::mem::take(&mut snapshot.door_state)
            .into_iter()
            .enumerate()
        {
            if let Some(&Some(new_index)) = sensors.get(old_index) {
                self.door_state[usize::from(new_index)] = state;
            }
        }
        let before = snapshot.buffer.len();
        snapshot
            .buffer
            .retain_mut(|pending| match &mut pending.kind {
                PendingKind::Sighting { scanner, zone, .. } => {
                    match scanners.get(usize::from(*scanner)).copied().flatten() {
                        Some((new_scanner, new_zone)) => {
                            (*scanner, *zone) = (new_scanner, new_zone);
                            true
                        }
                        None => false,
                    }
                }
                PendingKind::Door(door) => {
                    match sensors.get(usize::from(door.sensor)).copied().flatten() {
                        Some(new_sensor) => {
                            door.sensor = new_sensor;
                            true
                        }
                        None => false,
                    }
                }
                PendingKind::Transaction(_) | PendingKind::Alive(_) => true,
            });
        migration.dropped_events = (before - snapshot.buffer.len()) as u64;
        for state in snapshot.devices.iter_mut().map(|(_, state)| state) {
            state.remap(&scanners, &zones, &self.params);
        }
        migration
    }
}
