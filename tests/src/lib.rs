//! Harness for tests that cross crates: run the simulator's events through the engine and
//! compare with the simulator's ground truth (`METRICS.md`, "Ground truth and accuracy").

use std::path::PathBuf;

use anyhow::{Context, Result};
use chrono::NaiveDate;
use storefront_config::StoreConfig;
use storefront_engine::Engine;
use storefront_protocol::{DailySummary, Event, Funnel};
use storefront_simulator::{
    Profile, ProfileName, SimulatedDay, SimulationSpec, Simulator, TruthDay, TruthFunnel,
    TruthParams,
};

/// Days simulated per profile when judging accuracy: enough that each zone's median dwell
/// rests on ~100+ zone visits. A median over a few dozen values jumps across gaps in the
/// distribution (a boutique's fitting room over 2 days: 59 visits, every other quantile within
/// 3 %, the median 11 % off).
pub const ACCURACY_RUNS: [(ProfileName, u32); 3] = [
    (ProfileName::Boutique, 5),
    (ProfileName::Mall, 2),
    (ProfileName::Street, 3),
];

/// Path of a shipped example config.
pub fn example_config_path(profile: ProfileName) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../config/examples")
        .join(format!("{profile}.toml"))
}

/// The shipped example config whose layout matches `profile`.
pub fn example_config(profile: ProfileName) -> Result<StoreConfig> {
    let path = example_config_path(profile);
    StoreConfig::load(&path).with_context(|| format!("loading {}", path.display()))
}

/// One simulated run through the engine, all days merged.
pub struct Run {
    pub profile: ProfileName,
    pub seed: u64,
    pub days: u32,
    pub mac_rotation: bool,
    pub engine_days: Vec<DailySummary>,
    pub engine: Funnel,
    pub sample: TruthFunnel,
    pub population: TruthFunnel,
    pub sightings: u64,
}

/// Simulates `days` days of `profile` and replays them through the engine in event order.
pub fn run(profile: ProfileName, seed: u64, days: u32, mac_rotation: bool) -> Result<Run> {
    let config = example_config(profile)?;
    let mut engine_config = config.engine_config();
    // As if the store kept pseudonyms for the whole lookback (or listed consented loyalty
    // identities): repeat visits are then measurable for stable addresses, and the run shows
    // that rotating addresses make them "not measured" rather than wrong.
    engine_config.repeat_measurable = true;
    let th = &engine_config.thresholds;
    let truth_params = TruthParams {
        window_seconds: th.window_seconds,
        bounce_seconds: (th.bounce_ms / 1000) as u32,
        zone_min_dwell_seconds: (th.zone_min_dwell_ms / 1000) as u32,
        visit_max_seconds: (th.visit_max_ms / 1000) as u32,
        repeat_lookback_days: th.repeat_lookback_days,
    };
    let mut simulator = Simulator::new(SimulationSpec {
        profile: Profile::named(profile),
        seed,
        days,
        start_date: NaiveDate::from_ymd_opt(2026, 11, 16).expect("valid date"),
        mac_rotation,
        truth: truth_params,
    });
    let mut engine = Engine::new(engine_config);
    let (mut sample, mut population) = (TruthFunnel::default(), TruthFunnel::default());
    let mut sightings = 0u64;
    let mut last_date = None;
    while let Some(day) = simulator.next_day() {
        for event in &day.events {
            engine.handle_event(event, event.time());
        }
        sightings += day.events.len() as u64;
        sample.merge(&day.truth.sample);
        population.merge(&day.truth.population);
        last_date = Some(day.date);
    }
    let last_date = last_date.context("the simulation produced no day")?;
    let end = engine
        .calendar()
        .day_start(last_date.succ_opt().unwrap_or(last_date));
    engine.finish(end);
    let mut engine_days = Vec::new();
    while let Some(day) = engine.poll_daily() {
        engine_days.push(day);
    }
    let mut merged = Funnel::default();
    for day in &engine_days {
        merged.merge(&day.funnel);
    }
    Ok(Run {
        profile,
        seed,
        days,
        mac_rotation,
        engine_days,
        engine: merged,
        sample,
        population,
        sightings,
    })
}

/// One figure's error: engine value, truth value, and the error in the figure's unit.
#[derive(Clone, Debug)]
pub struct Error {
    pub figure: String,
    pub engine: f64,
    pub truth: f64,
    /// Percentage points for rates, relative percent for durations and counts.
    pub error: f64,
    pub unit: &'static str,
    /// The tolerance the issue sets, in `unit` (absolute value).
    pub tolerance: Option<f64>,
}

impl Error {
    pub fn within(&self) -> bool {
        self.tolerance.is_none_or(|tol| self.error.abs() <= tol)
    }
}

fn pp(
    figure: &str,
    engine: Option<f64>,
    truth: Option<f64>,
    tolerance: Option<f64>,
) -> Option<Error> {
    let (engine, truth) = (engine?, truth?);
    Some(Error {
        figure: figure.into(),
        engine,
        truth,
        error: (engine - truth) * 100.0,
        unit: "pp",
        tolerance,
    })
}

fn rel(
    figure: &str,
    engine: Option<f64>,
    truth: Option<f64>,
    tolerance: Option<f64>,
) -> Option<Error> {
    let (engine, truth) = (engine?, truth?);
    if truth == 0.0 {
        return None;
    }
    Some(Error {
        figure: figure.into(),
        engine,
        truth,
        error: (engine / truth - 1.0) * 100.0,
        unit: "%",
        tolerance,
    })
}

impl Run {
    /// Errors against the sample truth (the algorithm's error), with the tolerances
    /// when `tolerances` is set.
    pub fn against_sample(&self, tolerances: bool) -> Vec<Error> {
        sample_errors(&self.engine, &self.sample, tolerances)
    }

    /// Errors against the population truth (sampling error included); no tolerances.
    pub fn against_population(&self) -> Vec<Error> {
        against(&self.engine, &self.population, None, None, None, None, None)
    }
}

/// The errors of `engine`'s figures against the sample truth, with the tolerances when
/// `tolerances` is set.
pub fn sample_errors(engine: &Funnel, sample: &TruthFunnel, tolerances: bool) -> Vec<Error> {
    let tol = |t: f64| tolerances.then_some(t);
    against(
        engine,
        sample,
        tol(1.0),
        tol(2.0),
        tol(5.0),
        tol(10.0),
        tol(3.0),
    )
}

fn against(
    e: &Funnel,
    truth: &TruthFunnel,
    conversion: Option<f64>,
    bounce: Option<f64>,
    duration: Option<f64>,
    dwell: Option<f64>,
    exposure: Option<f64>,
) -> Vec<Error> {
    let mut errors = vec![
        pp(
            "shopfront_conversion",
            e.shopfront_conversion(),
            truth.shopfront_conversion(),
            conversion,
        ),
        pp("bounce_rate", e.bounce_rate(), truth.bounce_rate(), bounce),
        rel(
            "median_visit_duration",
            e.visit_duration.median(),
            truth.median_visit_duration(),
            duration,
        ),
    ];
    for zone in e.zones.keys() {
        errors.push(rel(
            &format!("median_dwell[{zone}]"),
            e.zones[zone].dwell.median(),
            truth.median_zone_dwell(zone),
            dwell,
        ));
        errors.push(pp(
            &format!("exposure[{zone}]"),
            e.exposure(zone),
            truth.exposure(zone),
            exposure,
        ));
    }
    errors.into_iter().flatten().collect()
}

impl Run {
    /// Figures judged against the population by definition: sales conversion (door
    /// denominator) and door-scaled entries, with the tolerances.
    pub fn population_figures(&self, tolerances: bool) -> Vec<Error> {
        let e = &self.engine;
        let p = &self.population;
        [
            pp(
                "sales_conversion",
                e.sales_conversion(),
                p.sales_conversion(),
                tolerances.then_some(2.0),
            ),
            rel(
                "door_scaled_entries",
                e.door_scaled(e.entries),
                Some(p.entries as f64),
                tolerances.then_some(3.0),
            ),
        ]
        .into_iter()
        .flatten()
        .collect()
    }
}

/// The engine's figures for the day on `events`, in event time.
pub fn replay_day(config: storefront_engine::EngineConfig, events: &[Event]) -> DailySummary {
    let mut engine = Engine::new(config);
    for event in events {
        engine.handle_event(event, event.time());
    }
    engine.end_of_stream();
    let day = engine.poll_daily().expect("the replayed day is complete");
    assert!(engine.poll_daily().is_none());
    day
}

/// The counts of a funnel and its medians (sketch lookups: exact, whatever the order visits
/// were added in), to compare two runs of the same day.
pub fn funnel_figures(f: &Funnel) -> Vec<(String, Option<f64>)> {
    let mut out: Vec<(String, Option<f64>)> = [
        ("passers_by", f.passers_by),
        ("entries", f.entries),
        ("bounces", f.bounces),
        ("capped", f.capped),
        ("transactions", f.transactions),
    ]
    .into_iter()
    .map(|(name, v)| (name.to_owned(), Some(v as f64)))
    .collect();
    out.push(("door_in".into(), f.door_in.map(|v| v as f64)));
    out.push(("door_out".into(), f.door_out.map(|v| v as f64)));
    out.push(("revenue_minor".into(), Some(f.revenue_minor as f64)));
    out.push(("median_visit_duration".into(), f.visit_duration.median()));
    for (zone, z) in &f.zones {
        out.push((format!("zone_visits[{zone}]"), Some(z.zone_visits as f64)));
        out.push((format!("median_dwell[{zone}]"), z.dwell.median()));
    }
    out
}

/// One simulated day of `profile` (2026-11-18), with its truth.
pub fn simulated_day(profile: ProfileName, seed: u64) -> SimulatedDay {
    Simulator::new(SimulationSpec {
        profile: Profile::named(profile),
        seed,
        days: 1,
        start_date: NaiveDate::from_ymd_opt(2026, 11, 18).expect("valid date"),
        mac_rotation: false,
        truth: TruthParams::default(),
    })
    .next_day()
    .expect("one day simulated")
}

/// Asserts a day's figures, computed by `path` (for the messages), are within the issue's
/// tolerances of the sample truth; every tolerance-bearing figure must be there.
pub fn assert_within_tolerances(path: &str, day: &DailySummary, truth: &TruthDay) {
    let errors = sample_errors(&day.funnel, &truth.sample, true);
    assert!(errors.len() >= 5, "figures missing: {errors:?}");
    for e in &errors {
        eprintln!(
            "{}: {path} {:.3} truth {:.3} error {:+.2}{}",
            e.figure, e.engine, e.truth, e.error, e.unit
        );
        assert!(e.within(), "{path}: outside tolerance: {e:?}");
    }
}
