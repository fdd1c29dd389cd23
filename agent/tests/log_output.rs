//! What the agent binary writes when its output is not a terminal (journald, a pipe, a file).

mod common;

use std::process::Command;

use common::{write_config, write_day};
use storefront_simulator::ProfileName;

#[test]
fn logs_carry_no_ansi_colour_codes_when_stderr_is_not_a_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let (events, _) = write_day(dir.path(), ProfileName::Boutique, 3);
    // No broker there: the day is replayed and the agent gives up on HQ at once.
    let config = write_config(
        dir.path(),
        ProfileName::Boutique,
        storefront_broker::free_port().unwrap(),
    );
    let output = Command::new(env!("CARGO_BIN_EXE_agent"))
        .args(["run", "--drain-seconds", "0", "--config"])
        .arg(&config)
        .arg("--replay")
        .arg(&events)
        .env("RUST_LOG", "info")
        // Colour must be off because stderr is a pipe, not because the caller asked for it.
        .env_remove("NO_COLOR")
        .output()
        .unwrap();
    let logs = String::from_utf8(output.stderr).unwrap();
    assert!(
        logs.contains("Source ended; engine finished"),
        "the run logged nothing to check: {logs}"
    );
    assert!(
        !logs.contains('\x1b'),
        "escape codes in piped logs: {logs:?}"
    );
}
