//! The demo on a careless user's paths (issue "Field-hardened", item 7): it removes only what
//! an earlier demo created.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Before: `agent demo --data .` (now `storefront-dev demo`) deleted every file in the directory.
#[test]
fn the_demo_leaves_a_directory_with_files_it_did_not_create_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let precious = dir.path().join("thesis.tex");
    std::fs::write(&precious, "\\chapter{Results}\n").unwrap();

    let mut demo = Command::new(env!("CARGO_BIN_EXE_storefront-dev"))
        .args([
            "demo",
            "--speed",
            "100000",
            "--http",
            "127.0.0.1:0",
            "--data",
        ])
        .arg(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Refused at once, or (the defect) the file deleted while the demo plays: whichever first.
    let deadline = Instant::now() + Duration::from_secs(120);
    let status = loop {
        if let Some(status) = demo.try_wait().unwrap() {
            break Some(status);
        }
        if !precious.exists() || Instant::now() > deadline {
            demo.kill().unwrap();
            demo.wait().unwrap();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(
        precious.exists(),
        "the demo deleted a file it did not create"
    );
    let status = status.expect("the demo refuses at once");
    assert!(!status.success());
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut demo.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(stderr.contains("thesis.tex"), "{stderr}");
    assert!(stderr.contains("fix"), "{stderr}");
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(left, ["thesis.tex"], "nothing created either");
}

/// Before: the demo's HQ collector spoke MQTT 5 to an embedded broker that had only an MQTT
/// 3.1.1 listener: it never connected, HQ got nothing, and the README's first command failed.
#[test]
fn the_demo_ends_with_hqs_copy_equal_to_the_agents() {
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_storefront-dev"))
        .args([
            "demo",
            "--profile",
            "boutique",
            "--speed",
            "20000",
            "--http",
            "127.0.0.1:0",
            "--data",
        ])
        .arg(dir.path().join("demo"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains("HQ's copy equals the agent's final windows"),
        "{stdout}"
    );
}
