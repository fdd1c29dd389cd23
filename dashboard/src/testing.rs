//! Helpers for browser tests of the page (here and in the agent's tests): headless Chromium,
//! and the `data-figure` / `data-value` pairs of the rendered DOM. Only with feature `testing`.

use std::path::Path;
use std::time::Duration;

use serde_json::Value;

pub const CHROMIUM: &str = "/usr/bin/chromium";

pub fn chromium_available() -> bool {
    if Path::new(CHROMIUM).exists() {
        return true;
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{CHROMIUM} is missing under CI=true: install Debian's `chromium` package");
    }
    eprintln!(
        "\n======== SKIPPED: browser test, {CHROMIUM} not installed (apt-get install -y chromium) ========\n"
    );
    false
}

/// Runs headless Chromium on `url` with `extra` flags; returns its stdout.
pub async fn chromium(url: &str, extra: &[String]) -> String {
    let profile = tempfile::tempdir().unwrap();
    let mut command = tokio::process::Command::new(CHROMIUM);
    command
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            "--virtual-time-budget=10000",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(extra)
        .arg(url)
        .kill_on_drop(true);
    let output = tokio::time::timeout(Duration::from_secs(120), command.output())
        .await
        .expect("chromium finished within 120 s")
        .expect("chromium runs");
    assert!(
        output.status.success(),
        "chromium failed: {}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

fn unescape(s: &str) -> String {
    s.replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

fn attribute(tag: &str, name: &str) -> Option<String> {
    let needle = format!(" {name}=\"");
    let start = tag.find(&needle)? + needle.len();
    let end = start + tag[start..].find('"')?;
    Some(unescape(&tag[start..end]))
}

/// Every (figure, value) pair in the serialised DOM.
pub fn figures(dom: &str) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    for piece in dom.split('<').skip(1) {
        let tag = match piece.find('>') {
            Some(end) => &piece[..end],
            None => continue,
        };
        if let Some(name) = attribute(tag, "data-figure") {
            let raw = attribute(tag, "data-value")
                .unwrap_or_else(|| panic!("{name} has no data-value: <{tag}>"));
            let value = serde_json::from_str(&raw)
                .unwrap_or_else(|e| panic!("{name}: data-value {raw:?} is not JSON: {e}"));
            out.push((name, value));
        }
    }
    out
}

pub fn lookup<'a>(root: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(root, |v, key| match v {
        Value::Array(items) => items.get(key.parse::<usize>().ok()?),
        Value::Object(map) => map.get(key),
        _ => None,
    })
}

pub fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

pub fn png_size(bytes: &[u8]) -> (u32, u32) {
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "a PNG");
    let width = u32::from_be_bytes(bytes[16..20].try_into().unwrap());
    let height = u32::from_be_bytes(bytes[20..24].try_into().unwrap());
    (width, height)
}
