//! What the agent binary writes when its output is not a terminal (journald, a pipe, a file).

use std::process::Command;

#[test]
fn logs_carry_no_ansi_colour_codes_when_stderr_is_not_a_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_agent"))
        .args(["simulate", "--profile", "boutique", "--days", "1", "--out"])
        .arg(dir.path())
        .env("RUST_LOG", "info")
        // Colour must be off because stderr is a pipe, not because the caller asked for it.
        .env_remove("NO_COLOR")
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let logs = String::from_utf8(output.stderr).unwrap();
    assert!(
        logs.contains("Simulated day"),
        "the run logged nothing to check: {logs}"
    );
    assert!(
        !logs.contains('\x1b'),
        "escape codes in piped logs: {logs:?}"
    );
}
