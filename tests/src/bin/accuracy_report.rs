//! Prints the engine's accuracy against the simulator's ground truth, as ACCURACY.md quotes it:
//! `cargo run --release -p storefront-tests --bin accuracy-report -- [seeds]`.

use anyhow::Result;
use storefront_tests::{ACCURACY_RUNS, Error, Run, run};

fn print_errors(title: &str, errors: &[Error]) {
    println!("  {title}");
    for e in errors {
        let tol = e.tolerance.map_or_else(String::new, |t| {
            format!(
                "(±{t}{}) {}",
                e.unit,
                if e.within() { "ok" } else { "OVER" }
            )
        });
        println!(
            "    {:<28} engine {:>9.3}  truth {:>9.3}  error {:>+7.2}{:<2} {tol}",
            e.figure, e.engine, e.truth, e.error, e.unit
        );
    }
}

fn report(run: &Run) {
    println!(
        "\n{} seed {} — {} days{} — {} events, entries engine {} / sample {} / population {}",
        run.profile,
        run.seed,
        run.days,
        if run.mac_rotation {
            ", 15-min MAC rotation"
        } else {
            ""
        },
        run.sightings,
        run.engine.entries,
        run.sample.entries,
        run.population.entries
    );
    print_errors(
        "against the sample truth",
        &run.against_sample(!run.mac_rotation),
    );
    print_errors(
        "against the population truth (sampling error included)",
        &run.against_population(),
    );
    print_errors(
        "population figures",
        &run.population_figures(!run.mac_rotation),
    );
    println!(
        "  repeat rate: engine {} / sample truth {:?}",
        run.engine.repeat_rate().map_or_else(
            || "not measured".to_string(),
            |r| format!("{:.1}%", r * 100.0)
        ),
        run.sample
            .repeat_rate()
            .map(|r| (r * 1000.0).round() / 10.0)
    );
}

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let seeds: u64 = args.next().map(|a| a.parse()).transpose()?.unwrap_or(5);
    for (profile, days) in ACCURACY_RUNS {
        for seed in 1..=seeds {
            report(&run(profile, seed, days, false)?);
        }
        report(&run(profile, 1, days, true)?);
    }
    Ok(())
}
