//! Configs that would silently break the engine are refused, naming the file, the field and the
//! fix.

use std::fmt::Write;
use std::path::Path;

use storefront_config::{ConfigError, StoreConfig};

fn store_with_zones(zones: usize) -> String {
    let mut text = String::from(
        "[store]\nid = \"s\"\norg = \"o\"\ntimezone = \"Europe/Paris\"\n\n\
         [[zones]]\nid = \"storefront\"\nkind = \"storefront\"\nscanners = [\"sf\"]\n",
    );
    for i in 1..zones {
        write!(
            text,
            "\n[[zones]]\nid = \"z{i}\"\nkind = \"in_store\"\nscanners = [\"s{i}\"]\n"
        )
        .expect("writing to a String");
    }
    text
}

fn problems(text: &str) -> Vec<(String, String)> {
    match StoreConfig::parse(text, Path::new("store.toml")) {
        Err(e @ ConfigError::Invalid { .. }) => {
            let message = e.to_string();
            let ConfigError::Invalid { problems, .. } = e else {
                unreachable!()
            };
            assert!(message.contains("store.toml"), "{message}");
            problems
                .into_iter()
                .map(|p| (p.field, format!("{}; fix: {}", p.message, p.fix)))
                .collect()
        }
        Ok(_) => panic!("the config was accepted"),
        Err(e) => panic!("expected invalid settings, got {e}"),
    }
}

#[test]
fn a_config_with_257_zones_is_refused_with_the_field_and_fix() {
    assert!(StoreConfig::parse(&store_with_zones(256), Path::new("store.toml")).is_ok());
    let problems = problems(&store_with_zones(257));
    assert_eq!(problems.len(), 1, "{problems:?}");
    let (field, message) = &problems[0];
    assert_eq!(field, "zones");
    assert!(
        message.contains("257") && message.contains("256"),
        "{message}"
    );
}

#[test]
fn limits_out_of_range_are_refused_with_the_field_and_fix() {
    let text = store_with_zones(2)
        + "\n[limits]\nmax_tracked_devices = 0\nmax_visit_history = -5\nmax_dedup_ids = 0\n\
           max_door_crossings_per_minute = 0\n";
    let fields: Vec<String> = problems(&text).into_iter().map(|(f, _)| f).collect();
    assert_eq!(
        fields,
        [
            "limits.max_tracked_devices",
            "limits.max_visit_history",
            "limits.max_dedup_ids",
            "limits.max_door_crossings_per_minute"
        ]
    );
}

#[test]
fn limits_reach_the_engine() {
    let text = store_with_zones(2)
        + "\n[limits]\nmax_tracked_devices = 5000\nmax_door_crossings_per_minute = 120\n";
    let config = StoreConfig::parse(&text, Path::new("store.toml")).expect("valid");
    let limits = config.engine_config().limits;
    assert_eq!(limits.max_tracked_devices, 5000);
    assert_eq!(limits.max_door_crossings_per_minute, 120);
    assert_eq!(
        limits.max_dedup_ids,
        storefront_engine::Limits::default().max_dedup_ids
    );
}
