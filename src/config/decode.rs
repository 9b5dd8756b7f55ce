//! Turns a YAML tree into typed values, collecting every problem in a file
//! instead of stopping at the first.
//!
//! Strictness lives here: unknown keys are refused (the equivalent of serde's
//! `deny_unknown_fields`), scalars must have the YAML type the schema says,
//! and each leaf goes through its newtype's validation.

use std::fmt;

use super::values::{bounded_integer, quoted, ScalarKind, ScalarValue};
use super::yaml::{self, Key, Mark, Node, Resolved, Value};

/// One thing wrong in a file, located and with a hint.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Problem {
    pub file: String,
    /// 1-based; absent when the file could not be read at all.
    pub line: Option<usize>,
    pub column: Option<usize>,
    /// Dotted key path such as `environments.test.ports[1]`; empty for the whole file.
    pub key: String,
    pub message: String,
    pub hint: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The file name, the key path (YAML keys as written) and parts of
        // the message come from the files: shown by the one rule of `text`.
        use crate::text::{visible, visible_lines};
        write!(f, "{}", visible(&self.file))?;
        if let (Some(line), Some(column)) = (self.line, self.column) {
            write!(f, ":{line}:{column}")?;
        }
        if !self.key.is_empty() {
            write!(f, ": {}", visible(&self.key))?;
        }
        write!(f, ": {}", visible(&self.message))?;
        if !self.hint.is_empty() {
            write!(f, "\n  hint: {}", visible_lines(&self.hint))?;
        }
        Ok(())
    }
}

/// Every problem found in one or more files.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct Problems(pub Vec<Problem>);

impl fmt::Display for Problems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let count = self.0.len();
        writeln!(
            f,
            "{count} problem{} in the configuration:",
            if count == 1 { "" } else { "s" }
        )?;
        for problem in &self.0 {
            writeln!(f, "{problem}")?;
        }
        Ok(())
    }
}

impl Problems {
    pub fn merge(results: impl IntoIterator<Item = Problems>) -> Problems {
        Problems(results.into_iter().flat_map(|p| p.0).collect())
    }
}

/// Joins a key path: `join("environments", "test")` is `environments.test`.
pub fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_string()
    } else {
        format!("{parent}.{key}")
    }
}

/// Collects problems while a file is decoded.
pub struct Decoder {
    file: String,
    problems: Vec<Problem>,
}

impl Decoder {
    pub fn new(file: &str) -> Decoder {
        Decoder {
            file: file.to_string(),
            problems: Vec::new(),
        }
    }

    /// Parses `text` and decodes its root with `decode`, returning the value
    /// only when the file has no problem at all.
    pub fn decode_text<T>(
        file: &str,
        text: &str,
        decode: impl FnOnce(&mut Decoder, &Node) -> Option<T>,
    ) -> Result<T, Problems> {
        Decoder::decode_text_limited(file, text, yaml::MAX_FILE_BYTES, decode)
    }

    /// `decode_text` for a file that may be up to `limit` bytes.
    pub fn decode_text_limited<T>(
        file: &str,
        text: &str,
        limit: usize,
        decode: impl FnOnce(&mut Decoder, &Node) -> Option<T>,
    ) -> Result<T, Problems> {
        let mut decoder = Decoder::new(file);
        let value = match yaml::parse_limited(text, limit) {
            Err(e) => {
                decoder.problem(e.mark, "", e.message, e.hint);
                None
            }
            Ok(None) => {
                decoder.problem(
                    Mark { line: 1, column: 1 },
                    "",
                    "file is empty",
                    "start from the file in mgmt-repo-skeleton/ and fill it in",
                );
                None
            }
            Ok(Some(root)) => decode(&mut decoder, &root),
        };
        decoder.finish(value)
    }

    pub fn problem(
        &mut self,
        mark: Mark,
        key: &str,
        message: impl Into<String>,
        hint: impl Into<String>,
    ) {
        self.problems.push(Problem {
            file: self.file.clone(),
            line: Some(mark.line),
            column: Some(mark.column),
            key: key.to_string(),
            message: message.into(),
            hint: hint.into(),
        });
    }

    pub fn finish<T>(self, value: Option<T>) -> Result<T, Problems> {
        match value {
            Some(value) if self.problems.is_empty() => Ok(value),
            _ => {
                let mut problems = self.problems;
                problems.sort_by_key(|p| (p.line, p.column));
                Err(Problems(problems))
            }
        }
    }

    fn wrong_type(&mut self, node: &Node, key: &str, expected: &str) {
        let found = node.describe();
        let hint = match (&node.value, expected) {
            (Value::Scalar { .. }, "a string") => {
                "YAML read this as another type; put the value in double quotes".to_string()
            }
            _ => format!("write {expected} here"),
        };
        self.problem(
            node.mark,
            key,
            format!("expected {expected}, found {found}"),
            hint,
        );
    }

    /// A mapping with fixed keys.
    pub fn mapping<'n>(&mut self, node: &'n Node, key: &str) -> Option<Fields<'n>> {
        match &node.value {
            Value::Mapping(entries) => Some(Fields {
                path: key.to_string(),
                mark: node.mark,
                entries,
                known: Vec::new(),
            }),
            _ => {
                self.wrong_type(node, key, "a mapping");
                None
            }
        }
    }

    /// A mapping whose keys are names the user chooses (environments, hosts).
    /// Each key is validated as `K` and handed to `decode` with its own
    /// position (where errors about the entry point) and its value;
    /// the value is decoded even when the name is invalid, so its problems
    /// are reported too.
    pub fn named<K: ScalarValue, T>(
        &mut self,
        node: &Node,
        key: &str,
        mut decode: impl FnMut(&mut Decoder, Option<K>, Mark, &Node, &str) -> Option<T>,
    ) -> Option<Vec<T>> {
        let Value::Mapping(entries) = &node.value else {
            self.wrong_type(node, key, "a mapping");
            return None;
        };
        if entries.is_empty() {
            self.problem(
                node.mark,
                key,
                "mapping is empty",
                format!("add at least one entry under {key}"),
            );
            return None;
        }
        let mut out = Some(Vec::new());
        for (name, value) in entries {
            let path = join(key, &name.text);
            let parsed = match K::parse(&name.text) {
                Ok(name) => Some(name),
                Err(e) => {
                    self.problem(name.mark, &path, e.message, e.hint);
                    None
                }
            };
            let value = decode(self, parsed, name.mark, value, &path);
            match (value, out.as_mut()) {
                (Some(value), Some(list)) => list.push(value),
                _ => out = None,
            }
        }
        out
    }

    /// A list; every item is decoded even after one fails.
    pub fn list<T>(
        &mut self,
        node: &Node,
        key: &str,
        mut decode: impl FnMut(&mut Decoder, &Node, &str) -> Option<T>,
    ) -> Option<Vec<T>> {
        let Value::Sequence(items) = &node.value else {
            self.wrong_type(node, key, "a list");
            return None;
        };
        let mut out = Some(Vec::with_capacity(items.len()));
        for (i, item) in items.iter().enumerate() {
            let value = decode(self, item, &format!("{key}[{i}]"));
            match (value, out.as_mut()) {
                (Some(value), Some(list)) => list.push(value),
                _ => out = None,
            }
        }
        out
    }

    /// A scalar validated as `T`, after checking its YAML type.
    pub fn scalar<T: ScalarValue>(&mut self, node: &Node, key: &str) -> Option<T> {
        let text = self.scalar_text(node, key, T::KIND)?;
        match T::parse(text) {
            Ok(value) => Some(value),
            Err(e) => {
                self.problem(node.mark, key, e.message, e.hint);
                None
            }
        }
    }

    /// A whole number from `min` to `max`.
    pub fn integer(&mut self, node: &Node, key: &str, min: i64, max: i64) -> Option<i64> {
        let text = self.scalar_text(node, key, ScalarKind::Integer)?;
        match bounded_integer(key.rsplit('.').next().unwrap_or(key), text, min, max) {
            Ok(n) => Some(n),
            Err(e) => {
                self.problem(node.mark, key, e.message, e.hint);
                None
            }
        }
    }

    /// `true` or `false`.
    pub fn boolean(&mut self, node: &Node, key: &str) -> Option<bool> {
        match &node.value {
            Value::Scalar {
                text,
                resolved: Resolved::Bool,
            } => Some(text.eq_ignore_ascii_case("true")),
            _ => {
                self.wrong_type(node, key, "true or false");
                None
            }
        }
    }

    fn scalar_text<'n>(&mut self, node: &'n Node, key: &str, kind: ScalarKind) -> Option<&'n str> {
        let (expected, accepts): (&str, &[Resolved]) = match kind {
            ScalarKind::String => ("a string", &[Resolved::String]),
            ScalarKind::Integer => ("an integer", &[Resolved::Integer]),
            ScalarKind::Number => ("a number", &[Resolved::Integer, Resolved::Float]),
        };
        match &node.value {
            Value::Scalar { text, resolved } if accepts.contains(resolved) => Some(text),
            _ => {
                self.wrong_type(node, key, expected);
                None
            }
        }
    }
}

/// The keys of one fixed mapping, taken one by one; whatever is left over is
/// an unknown key.
pub struct Fields<'n> {
    path: String,
    mark: Mark,
    entries: &'n [(Key, Node)],
    known: Vec<&'static str>,
}

impl<'n> Fields<'n> {
    fn take(&mut self, name: &'static str) -> Option<&'n Node> {
        self.known.push(name);
        self.entries
            .iter()
            .find(|(k, _)| k.text == name)
            .map(|(_, v)| v)
    }

    pub fn required<T>(
        &mut self,
        d: &mut Decoder,
        name: &'static str,
        decode: impl FnOnce(&mut Decoder, &'n Node, &str) -> Option<T>,
    ) -> Option<T> {
        let path = join(&self.path, name);
        match self.take(name) {
            Some(node) => decode(d, node, &path),
            None => {
                let place = if self.path.is_empty() {
                    "at the top of the file".to_string()
                } else {
                    format!("under {}", self.path)
                };
                d.problem(
                    self.mark,
                    &path,
                    format!("required key {name} is missing"),
                    format!("add `{name}:` {place}"),
                );
                None
            }
        }
    }

    /// An optional key: `None` when it is absent (or invalid, which is
    /// recorded as a problem).
    pub fn optional<T>(
        &mut self,
        d: &mut Decoder,
        name: &'static str,
        decode: impl FnOnce(&mut Decoder, &'n Node, &str) -> Option<T>,
    ) -> Option<T> {
        let path = join(&self.path, name);
        self.take(name).and_then(|node| decode(d, node, &path))
    }

    /// Reports every key that was not taken.
    pub fn finish(self, d: &mut Decoder) {
        for (key, _) in self.entries {
            if self.known.contains(&key.text.as_str()) {
                continue;
            }
            let closest = self
                .known
                .iter()
                .filter(|k| edit_distance(k, &key.text) <= 2)
                .min_by_key(|k| edit_distance(k, &key.text));
            let hint = match closest {
                Some(k) => format!("did you mean `{k}`?"),
                None => format!("known keys here: {}", self.known.join(", ")),
            };
            d.problem(
                key.mark,
                &join(&self.path, &key.text),
                format!("unknown key {}", quoted(&key.text)),
                hint,
            );
        }
    }
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            let next = (row[j + 1] + 1).min(row[j] + 1).min(prev + cost);
            prev = row[j + 1];
            row[j + 1] = next;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edit_distance_counts_single_edits() {
        assert_eq!(edit_distance("ports", "prots"), 2);
        assert_eq!(edit_distance("ports", "port"), 1);
        assert_eq!(edit_distance("", "abc"), 3);
    }
}
