//! What goes wrong with a config file, said so that the person editing it can fix it: every
//! message names the file, the field (a dotted path such as `zones[2].scanners[0]`) and the fix.

use std::fmt;
use std::path::{Path, PathBuf};

/// One thing wrong with a config file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// Dotted path of the offending setting, e.g. `zones[2].scanners[0]` or `metrics.window_seconds`.
    pub field: String,
    /// What is wrong with it.
    pub message: String,
    /// What to write instead.
    pub fix: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}; fix: {}", self.field, self.message, self.fix)
    }
}

/// Why a config could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read at all.
    #[error(
        "{}: cannot read the config file: {source}; fix: check the path, or write a new one with `agent generate-config`",
        path.display()
    )]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid TOML, or has a key this version does not know, or lacks a required
    /// one, or a value of the wrong type. Reported alone: past a syntax error nothing is certain.
    #[error("{}:{line}:{column}: {problem}", path.display())]
    Syntax {
        path: PathBuf,
        /// 1-based line of the error.
        line: usize,
        /// 1-based column (in characters) of the error.
        column: usize,
        problem: Problem,
    },
    /// The file parsed but some settings are wrong: all of them, one per line.
    #[error("{}", DisplayInvalid { path, problems })]
    Invalid {
        path: PathBuf,
        problems: Vec<Problem>,
    },
}

impl ConfigError {
    /// Every problem reported: one for a read or syntax error, all of them for invalid settings.
    pub fn problems(&self) -> Vec<&Problem> {
        match self {
            ConfigError::Read { .. } => Vec::new(),
            ConfigError::Syntax { problem, .. } => vec![problem],
            ConfigError::Invalid { problems, .. } => problems.iter().collect(),
        }
    }
}

struct DisplayInvalid<'a> {
    path: &'a Path,
    problems: &'a [Problem],
}

impl fmt::Display for DisplayInvalid<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.problems.len();
        write!(
            f,
            "{}: {n} problem{} in the config",
            self.path.display(),
            if n == 1 { "" } else { "s" }
        )?;
        for problem in self.problems {
            write!(f, "\n{}: {problem}", self.path.display())?;
        }
        Ok(())
    }
}

/// Turns toml's error (a message and a byte span) into file:line:column plus the field's path.
pub(crate) fn syntax_error(err: &toml::de::Error, text: &str, path: &Path) -> ConfigError {
    let message = err.message().trim().to_owned();
    let offset = err.span().map_or(0, |s| s.start).min(text.len());
    let (line, column) = line_column(text, offset);
    let named = backticked_after(&message, "unknown field `")
        .map(|k| (Kind::Unknown, k))
        .or_else(|| backticked_after(&message, "missing field `").map(|k| (Kind::Missing, k)));
    let field = field_path(
        text,
        offset,
        named.as_ref().map(|(kind, key)| (*kind, key.as_str())),
    );
    let fix = match named {
        Some((Kind::Unknown, _)) => {
            "remove it or correct its spelling (`agent generate-config` prints every known key)"
                .to_owned()
        }
        Some((Kind::Missing, _)) => "add it: this setting has no default".to_owned(),
        None if message.starts_with("invalid type") => {
            "write a value of the expected type (numbers without quotes, text in quotes)".to_owned()
        }
        None => "correct the TOML syntax at that position".to_owned(),
    };
    ConfigError::Syntax {
        path: path.to_owned(),
        line,
        column,
        problem: Problem {
            field,
            message,
            fix,
        },
    }
}

#[derive(Clone, Copy)]
enum Kind {
    Unknown,
    Missing,
}

fn backticked_after(message: &str, prefix: &str) -> Option<String> {
    let rest = message.strip_prefix(prefix)?;
    Some(rest[..rest.find('`')?].to_owned())
}

/// 1-based line and character column of a byte offset.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, text[line_start..offset].chars().count() + 1)
}

/// The dotted path of the setting at `offset`: the table from the headers above it (arrays of
/// tables get their index), then the key named by the error or written on that line.
fn field_path(text: &str, offset: usize, named: Option<(Kind, &str)>) -> String {
    let mut table = String::new();
    let mut counts: std::collections::HashMap<String, usize> = Default::default();
    let mut line_start = 0;
    for line in text.split_inclusive('\n') {
        let is_error_line =
            offset < line_start + line.len() || line_start + line.len() >= text.len();
        if let Some((path, is_array)) = parse_header(line) {
            table = if is_array {
                let n = counts.entry(path.clone()).or_default();
                *n += 1;
                format!("{path}[{}]", *n - 1)
            } else {
                path
            };
            if is_error_line {
                // The error is on a header: an unknown table names itself, a missing key lives in it.
                return match named {
                    // A missing top-level table is reported at the file's start, where a header is.
                    Some((Kind::Missing, key)) if named_is_top_level(key) => key.to_owned(),
                    Some((Kind::Missing, key)) => join(&table, key),
                    _ => table,
                };
            }
        } else if is_error_line {
            let key = match named {
                Some((_, key)) => key.to_owned(),
                None => {
                    let col = offset - line_start;
                    match line.get(..col).and_then(|b| b.split_once('=')) {
                        Some((k, _)) => k.trim().trim_matches('"').to_owned(),
                        None => String::new(),
                    }
                }
            };
            return join(&table, &key);
        }
        line_start += line.len();
    }
    match named {
        Some((_, key)) => join(&table, key),
        None if table.is_empty() => "(file)".to_owned(),
        None => table,
    }
}

/// Top-level tables of the schema: a missing one is reported at the file's start.
fn named_is_top_level(key: &str) -> bool {
    matches!(
        key,
        "store" | "metrics" | "zones" | "door_sensors" | "privacy" | "storage" | "sync" | "sources"
    )
}

fn join(table: &str, key: &str) -> String {
    match (table.is_empty(), key.is_empty()) {
        (true, _) => key.to_owned(),
        (_, true) => table.to_owned(),
        _ => format!("{table}.{key}"),
    }
}

/// `[a.b]` → `("a.b", false)`, `[[a.b]]` → `("a.b", true)`.
fn parse_header(line: &str) -> Option<(String, bool)> {
    let line = line.trim();
    let line = line.split_once('#').map_or(line, |(l, _)| l).trim(); // good enough: headers rarely quote '#'
    let (inner, is_array) = if let Some(inner) = line.strip_prefix("[[") {
        (inner.strip_suffix("]]")?, true)
    } else {
        (line.strip_prefix('[')?.strip_suffix(']')?, false)
    };
    let path = inner
        .split('.')
        .map(|segment| segment.trim().trim_matches('"').trim_matches('\''))
        .collect::<Vec<_>>()
        .join(".");
    Some((path, is_array))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_and_column_are_one_based_and_count_characters() {
        assert_eq!(line_column("ab\ncé=x", 0), (1, 1));
        assert_eq!(line_column("ab\ncé=x", 3), (2, 1));
        assert_eq!(line_column("ab\ncé=x", 6), (2, 3));
    }

    #[test]
    fn headers_with_spaces_and_arrays_are_read() {
        assert_eq!(
            parse_header(" [ store ] # the shop\n"),
            Some(("store".into(), false))
        );
        assert_eq!(
            parse_header("[[sources.scanner_mqtt]]"),
            Some(("sources.scanner_mqtt".into(), true))
        );
        assert_eq!(parse_header("id = \"[x]\""), None);
    }
}
