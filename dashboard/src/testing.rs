//! Helpers for browser tests of the page (here and in the agent's tests): headless Chromium,
//! either run once on a URL (`--dump-dom`, `--screenshot`) or kept open as a [`Page`] driven
//! over the DevTools protocol, and the `data-figure` / `data-value` pairs of the rendered DOM.
//! Only with feature `testing`.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, ChildStdout};

pub const CHROMIUM: &str = "/usr/bin/chromium";

/// Flags of every headless run: no sandbox (containers), nothing fetched but the page.
const FLAGS: [&str; 9] = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
];

/// Longest wait for Chromium: a run, or one DevTools answer.
const CHROMIUM_TIMEOUT: Duration = Duration::from_secs(120);

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

/// Runs headless Chromium on `url` with `extra` flags; returns its stdout. The page's clock is
/// virtual: 10 s of it pass (timers included) before the dump or screenshot.
pub async fn chromium(url: &str, extra: &[String]) -> String {
    let profile = tempfile::tempdir().unwrap();
    let mut command = tokio::process::Command::new(CHROMIUM);
    command
        .args(FLAGS)
        .arg("--virtual-time-budget=10000")
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(extra)
        .arg(url)
        .kill_on_drop(true);
    let output = tokio::time::timeout(CHROMIUM_TIMEOUT, command.output())
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

/// One page kept open in headless Chromium, on the real clock, read through the DevTools
/// protocol over `--remote-debugging-pipe` (NUL-terminated JSON on the browser's fds 3 and 4,
/// here its stdin and stdout): for what a page does after it loaded, such as its periodic
/// refresh. Chromium is killed when the page is dropped.
pub struct Page {
    browser: Child,
    to_browser: ChildStdin,
    from_browser: BufReader<ChildStdout>,
    session: String,
    next_id: u64,
    _profile: tempfile::TempDir,
}

impl Page {
    /// Opens `url` in a window of `width` × `height` CSS pixels.
    pub async fn open(url: &str, width: u32, height: u32) -> Page {
        let profile = tempfile::tempdir().unwrap();
        // The shell hands our pipes to Chromium as fds 3 (commands) and 4 (answers).
        let mut browser = tokio::process::Command::new("sh")
            .arg("-c")
            .arg(r#"exec "$0" "$@" 3<&0 4>&1 0</dev/null 1>/dev/null"#)
            .arg(CHROMIUM)
            .args(FLAGS)
            .arg("--remote-debugging-pipe")
            .arg(format!("--window-size={width},{height}"))
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("chromium runs");
        let to_browser = browser.stdin.take().unwrap();
        let from_browser = BufReader::new(browser.stdout.take().unwrap());
        let mut page = Page {
            browser,
            to_browser,
            from_browser,
            session: String::new(),
            next_id: 0,
            _profile: profile,
        };
        let target = page
            .call("Target.createTarget", json!({ "url": url }))
            .await
            .expect("a new page");
        let attached = page
            .call(
                "Target.attachToTarget",
                json!({ "targetId": target["targetId"], "flatten": true }),
            )
            .await
            .expect("attached to the page");
        page.session = attached["sessionId"].as_str().unwrap().to_owned();
        page
    }

    /// Sends one DevTools command (to the page once attached) and returns its result, or the
    /// protocol's error message.
    async fn call(&mut self, method: &str, params: Value) -> Result<Value, String> {
        self.next_id += 1;
        let id = self.next_id;
        let mut message = json!({ "id": id, "method": method, "params": params });
        if !self.session.is_empty() {
            message["sessionId"] = json!(self.session);
        }
        let mut bytes = serde_json::to_vec(&message).unwrap();
        bytes.push(0);
        self.to_browser
            .write_all(&bytes)
            .await
            .expect("chromium takes commands");
        loop {
            let mut answer = Vec::new();
            let read = tokio::time::timeout(
                CHROMIUM_TIMEOUT,
                self.from_browser.read_until(0, &mut answer),
            )
            .await
            .unwrap_or_else(|_| panic!("chromium answers {method} within 120 s"))
            .expect("chromium's pipe reads");
            assert!(read > 0, "chromium exited before answering {method}");
            if answer.last() == Some(&0) {
                answer.pop();
            }
            let mut answer: Value = serde_json::from_slice(&answer).expect("DevTools JSON");
            // Events, and answers to nothing we wait for, pass by.
            if answer["id"] != id {
                continue;
            }
            return match answer.get("error") {
                Some(error) => Err(error["message"].as_str().unwrap_or("error").to_owned()),
                None => Ok(answer["result"].take()),
            };
        }
    }

    /// Evaluates a JavaScript expression in the page and returns its value; `Err` while the
    /// page cannot (e.g. still navigating) or when the expression threw.
    pub async fn evaluate(&mut self, expression: &str) -> Result<Value, String> {
        let mut result = self
            .call(
                "Runtime.evaluate",
                json!({ "expression": expression, "returnByValue": true }),
            )
            .await?;
        if let Some(exception) = result.get("exceptionDetails") {
            return Err(exception.to_string());
        }
        Ok(result["result"]["value"].take())
    }

    /// The serialised DOM now (empty while the page cannot be read).
    pub async fn dom(&mut self) -> String {
        match self.evaluate("document.documentElement.outerHTML").await {
            Ok(Value::String(dom)) => dom,
            _ => String::new(),
        }
    }

    /// Marks the current document, so that [`Page::same_document`] can tell whether it was
    /// replaced (a reload or navigation) since.
    pub async fn mark_document(&mut self) {
        self.evaluate("window.__testMark = 'marked'")
            .await
            .expect("the page evaluates");
    }

    pub async fn same_document(&mut self) -> bool {
        self.evaluate("window.__testMark").await == Ok(json!("marked"))
    }

    /// Waits until the page shows `truth`'s figures (every figure shown equals the value at its
    /// path in `truth`, and there are at least `at_least` of them); returns them. Panics with
    /// the differences after `limit`.
    pub async fn wait_for(
        &mut self,
        truth: &Value,
        at_least: usize,
        limit: Duration,
    ) -> Vec<(String, Value)> {
        let started = Instant::now();
        loop {
            let shown = figures(&self.dom().await);
            let wrong = differences(&shown, truth);
            if wrong.is_empty() && shown.len() >= at_least {
                return shown;
            }
            assert!(
                started.elapsed() < limit,
                "after {limit:?} the page shows {} figures, {} of them not as the API: {wrong:#?}",
                shown.len(),
                wrong.len()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Closes the browser and waits for it to exit.
    pub async fn close(mut self) {
        let _ = self.call("Browser.close", json!({})).await;
        let _ = tokio::time::timeout(Duration::from_secs(10), self.browser.wait()).await;
    }
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

/// The value of attribute `name` on the first tag that has it, in a serialised DOM.
pub fn first_attribute(dom: &str, name: &str) -> Option<String> {
    dom.split('<')
        .skip(1)
        .find_map(|piece| attribute(&piece[..piece.find('>')?], name))
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

/// The value of one figure the page shows.
pub fn shown_value(figures: &[(String, Value)], name: &str) -> Option<Value> {
    figures
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.clone())
}

/// Figures shown that `truth` lacks or holds with another value, one line each.
pub fn differences(figures: &[(String, Value)], truth: &Value) -> Vec<String> {
    figures
        .iter()
        .filter_map(|(name, value)| match lookup(truth, name) {
            None => Some(format!("{name}: page {value}, which the API does not have")),
            Some(expected) if !same(value, expected) => {
                Some(format!("{name}: page {value}, API {expected}"))
            }
            Some(_) => None,
        })
        .collect()
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
