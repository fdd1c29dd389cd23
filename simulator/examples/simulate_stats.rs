//! Prints, per profile, events per day, generation time and the truth's headline figures:
//! `cargo run --release -p storefront-simulator --example simulate_stats [days]`.

use std::time::Instant;

use storefront_protocol::Event;
use storefront_simulator::{Profile, ProfileName, SimulationSpec, Simulator};

fn main() {
    let days: u32 = std::env::args()
        .nth(1)
        .and_then(|d| d.parse().ok())
        .unwrap_or(7);
    let Some(start) = chrono::NaiveDate::from_ymd_opt(2025, 11, 24) else {
        return;
    };
    for name in ProfileName::ALL {
        let began = Instant::now();
        let mut sim = Simulator::new(SimulationSpec::new(Profile::named(name), 42, days, start));
        let mut total = 0usize;
        while let Some(day) = sim.next_day() {
            let sightings = day
                .events
                .iter()
                .filter(|e| matches!(e, Event::Sighting(_)))
                .count();
            let (p, s) = (&day.truth.population, &day.truth.sample);
            println!(
                "{name} {}: events {} (sightings {sightings}) | pop entries {} passers {} conv {:.3} bounce {:.3} median {:.0}s sales {:.3} repeat {:.3} | sample entries {} conv {:.3} bounce {:.3} median {:.0}s",
                day.date,
                day.events.len(),
                p.entries,
                p.passers_by,
                p.shopfront_conversion().unwrap_or(0.0),
                p.bounce_rate().unwrap_or(0.0),
                p.median_visit_duration().unwrap_or(0.0),
                p.sales_conversion().unwrap_or(0.0),
                p.repeat_rate().unwrap_or(0.0),
                s.entries,
                s.shopfront_conversion().unwrap_or(0.0),
                s.bounce_rate().unwrap_or(0.0),
                s.median_visit_duration().unwrap_or(0.0),
            );
            let zones: Vec<String> = p
                .zone_dwell_s
                .keys()
                .map(|z| {
                    format!(
                        "{z}: exp {:.2} med {:.0}s",
                        p.exposure(z).unwrap_or(0.0),
                        p.median_zone_dwell(z).unwrap_or(0.0)
                    )
                })
                .collect();
            println!("    {}", zones.join(", "));
            total += day.events.len();
        }
        println!(
            "{name}: {days} days, {total} events in {:.2?}",
            began.elapsed()
        );
    }
}
