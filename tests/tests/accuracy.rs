//! The engine against the simulator's ground truth, at the tolerances
//! (`METRICS.md`, "Ground truth and accuracy"). Each run merges its days; the figures
//! are in ACCURACY.md (`cargo run --release -p storefront-tests --bin accuracy-report`).

use storefront_simulator::ProfileName;
use storefront_tests::{ACCURACY_RUNS, run};

const SEEDS: [u64; 3] = [11, 12, 13];

#[test]
fn engine_matches_the_sample_truth_within_tolerances_for_every_profile_and_seed() {
    let mut failures = Vec::new();
    for (profile, days) in ACCURACY_RUNS {
        for seed in SEEDS {
            let run = run(profile, seed, days, false).unwrap();
            assert!(
                run.sample.entries > 50,
                "{profile} seed {seed}: too few entries to judge"
            );
            let errors = run.against_sample(true);
            // Every tolerance-bearing figure must be present: a missing figure is a failure too.
            assert!(
                errors.len() >= 5,
                "{profile} seed {seed}: figures missing: {errors:?}"
            );
            for e in errors.iter().chain(run.population_figures(true).iter()) {
                eprintln!(
                    "{profile} seed {seed}: {} error {:+.2}{}",
                    e.figure, e.error, e.unit
                );
                if !e.within() {
                    failures.push(format!("{profile} seed {seed}: {e:?}"));
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "outside tolerance:\n{}",
        failures.join("\n")
    );
}

#[test]
fn repeat_rate_is_measured_for_stable_addresses_and_not_measured_under_rotation() {
    let stable = run(ProfileName::Street, 21, 3, false).unwrap();
    let measured = stable
        .engine
        .repeat_rate()
        .expect("stable addresses: repeat rate measured");
    let truth = stable.sample.repeat_rate().unwrap();
    eprintln!("repeat rate: engine {measured:.3} sample truth {truth:.3}");
    assert!(
        (measured - truth).abs() < 0.03,
        "engine {measured} vs truth {truth}"
    );

    let rotating = run(ProfileName::Street, 21, 3, true).unwrap();
    assert_eq!(
        rotating.engine.repeat_rate(),
        None,
        "rotating addresses: never a made-up repeat rate"
    );
    for error in rotating
        .against_sample(false)
        .iter()
        .chain(rotating.against_population().iter())
    {
        eprintln!(
            "with 15-min MAC rotation: {} error {:+.2}{}",
            error.figure, error.error, error.unit
        );
    }
}
