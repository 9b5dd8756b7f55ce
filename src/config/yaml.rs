//! The only place berth parses YAML: text → a tree of nodes that remember
//! their line and column.
//!
//! It refuses what a configuration file never needs and an attacker could
//! abuse: anchors and aliases (no "billion laughs"), tags, several documents,
//! duplicate keys, non-string keys, deep nesting and large files. Turning the
//! tree into typed values is `decode`'s job.

use yaml_rust2::parser::{Event, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};

/// Files larger than this are refused before parsing.
pub const MAX_FILE_BYTES: usize = 64 * 1024;
/// The fleet's own files (`allocations.yml`: a line per app environment)
/// may be larger: a thousand apps in two environments with their domains
/// fill about 200 KiB.
pub const MAX_FLEET_FILE_BYTES: usize = 4 * 1024 * 1024;
const MAX_DEPTH: usize = 12;

/// A position in a file, 1-based.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Mark {
    pub line: usize,
    pub column: usize,
}

impl Mark {
    fn from_marker(marker: &Marker) -> Mark {
        Mark {
            line: marker.line(),
            column: marker.col() + 1,
        }
    }
}

/// What a plain (unquoted) scalar resolves to under YAML 1.2's core schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolved {
    Null,
    Bool,
    Integer,
    Float,
    String,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Scalar { text: String, resolved: Resolved },
    Sequence(Vec<Node>),
    Mapping(Vec<(Key, Node)>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub value: Value,
    pub mark: Mark,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Key {
    pub text: String,
    pub mark: Mark,
}

impl Node {
    /// "a mapping", "a list", "a number", … for "expected X, found Y" messages.
    pub fn describe(&self) -> &'static str {
        match &self.value {
            Value::Sequence(_) => "a list",
            Value::Mapping(_) => "a mapping",
            Value::Scalar { resolved, .. } => match resolved {
                Resolved::Null => "nothing (null)",
                Resolved::Bool => "a boolean",
                Resolved::Integer => "an integer",
                Resolved::Float => "a decimal number",
                Resolved::String => "a string",
            },
        }
    }
}

/// Why a file could not be read as YAML at all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    pub mark: Mark,
    pub message: String,
    pub hint: &'static str,
}

/// Parses one YAML document. An empty file (or one with only comments) is
/// `Ok(None)`: the caller decides whether that is allowed.
pub fn parse(text: &str) -> Result<Option<Node>, SyntaxError> {
    parse_limited(text, MAX_FILE_BYTES)
}

/// `parse` with a size limit of the caller's.
pub fn parse_limited(text: &str, limit: usize) -> Result<Option<Node>, SyntaxError> {
    if text.len() > limit {
        return Err(SyntaxError {
            mark: Mark { line: 1, column: 1 },
            message: format!(
                "file is {} bytes, more than the {limit} bytes berth reads",
                text.len()
            ),
            hint: "configuration files are small; check that the right file was given",
        });
    }
    let mut builder = Builder {
        parser: Parser::new_from_str(text),
    };
    builder.document()
}

struct Builder<'a> {
    parser: Parser<std::str::Chars<'a>>,
}

fn refuse<T>(mark: Mark, message: impl Into<String>, hint: &'static str) -> Result<T, SyntaxError> {
    Err(SyntaxError {
        mark,
        message: message.into(),
        hint,
    })
}

const ANCHOR_HINT: &str =
    "anchors (&), aliases (*) and merge keys are not allowed in berth files; write each value out";

impl Builder<'_> {
    fn next(&mut self) -> Result<(Event, Mark), SyntaxError> {
        match self.parser.next_token() {
            Ok((event, marker)) => Ok((event, Mark::from_marker(&marker))),
            Err(e) => refuse(
                Mark::from_marker(e.marker()),
                format!("invalid YAML: {}", e.info()),
                "check the indentation and quoting around this position",
            ),
        }
    }

    fn document(&mut self) -> Result<Option<Node>, SyntaxError> {
        let mut root = None;
        loop {
            let (event, mark) = self.next()?;
            match event {
                Event::StreamStart | Event::DocumentEnd => {}
                Event::StreamEnd => return Ok(root),
                Event::DocumentStart => {
                    if root.is_some() {
                        return refuse(
                            mark,
                            "file holds more than one YAML document",
                            "remove the extra '---' separator",
                        );
                    }
                    let (event, mark) = self.next()?;
                    match event {
                        Event::DocumentEnd => {}
                        event => root = Some(self.node(event, mark, 0)?),
                    }
                }
                _ => return refuse(mark, "unexpected YAML structure", "check the file's syntax"),
            }
        }
    }

    fn node(&mut self, event: Event, mark: Mark, depth: usize) -> Result<Node, SyntaxError> {
        if depth > MAX_DEPTH {
            return refuse(
                mark,
                format!("nesting is deeper than {MAX_DEPTH} levels"),
                "berth files are shallow; check the indentation",
            );
        }
        match event {
            Event::Alias(_) => refuse(mark, "YAML alias found", ANCHOR_HINT),
            Event::Scalar(text, style, anchor, tag) => {
                check_plain(anchor, tag.is_some(), mark)?;
                let resolved = if style == TScalarStyle::Plain {
                    resolve_plain(&text)
                } else {
                    Resolved::String
                };
                Ok(Node {
                    value: Value::Scalar { text, resolved },
                    mark,
                })
            }
            Event::SequenceStart(anchor, tag) => {
                check_plain(anchor, tag.is_some(), mark)?;
                let mut items = Vec::new();
                loop {
                    let (event, item_mark) = self.next()?;
                    if event == Event::SequenceEnd {
                        break;
                    }
                    items.push(self.node(event, item_mark, depth + 1)?);
                }
                Ok(Node {
                    value: Value::Sequence(items),
                    mark,
                })
            }
            Event::MappingStart(anchor, tag) => {
                check_plain(anchor, tag.is_some(), mark)?;
                let mut entries: Vec<(Key, Node)> = Vec::new();
                loop {
                    let (event, key_mark) = self.next()?;
                    let text = match event {
                        Event::MappingEnd => break,
                        Event::Scalar(text, _, anchor, tag) => {
                            check_plain(anchor, tag.is_some(), key_mark)?;
                            text
                        }
                        Event::Alias(_) => {
                            return refuse(key_mark, "YAML alias found", ANCHOR_HINT)
                        }
                        _ => {
                            return refuse(
                                key_mark,
                                "a mapping key is not a plain string",
                                "keys are names such as environments or ports",
                            )
                        }
                    };
                    if text == "<<" {
                        return refuse(key_mark, "YAML merge key '<<' found", ANCHOR_HINT);
                    }
                    if let Some((first, _)) = entries.iter().find(|(k, _)| k.text == text) {
                        return Err(SyntaxError {
                            mark: key_mark,
                            message: format!(
                                "duplicate key {} (first at line {})",
                                super::values::quoted(&text),
                                first.mark.line
                            ),
                            hint: "each key may appear once; remove or merge the duplicate",
                        });
                    }
                    let (event, value_mark) = self.next()?;
                    let mut value = self.node(event, value_mark, depth + 1)?;
                    if is_implicit_null(&value) {
                        // `key:` with nothing after it: the parser marks the
                        // next token, which may be lines below; point at the key.
                        value.mark = key_mark;
                    }
                    entries.push((
                        Key {
                            text,
                            mark: key_mark,
                        },
                        value,
                    ));
                }
                // A block mapping's start is reported after its first key;
                // errors about the whole mapping point at that key instead.
                let mark = entries.first().map_or(mark, |(key, _)| key.mark);
                Ok(Node {
                    value: Value::Mapping(entries),
                    mark,
                })
            }
            _ => refuse(mark, "unexpected YAML structure", "check the file's syntax"),
        }
    }
}

fn is_implicit_null(node: &Node) -> bool {
    matches!(&node.value, Value::Scalar { text, resolved: Resolved::Null } if text.is_empty())
}

fn check_plain(anchor: usize, tagged: bool, mark: Mark) -> Result<(), SyntaxError> {
    if anchor != 0 {
        return refuse(mark, "YAML anchor found", ANCHOR_HINT);
    }
    if tagged {
        return refuse(
            mark,
            "YAML tag found",
            "tags such as !!str or !include are not allowed; quote the value instead",
        );
    }
    Ok(())
}

/// YAML 1.2 core schema resolution of a plain scalar.
fn resolve_plain(text: &str) -> Resolved {
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return Resolved::Null,
        "true" | "True" | "TRUE" | "false" | "False" | "FALSE" => return Resolved::Bool,
        ".inf" | ".Inf" | ".INF" | "-.inf" | "+.inf" | "-.Inf" | "+.Inf" | ".nan" | ".NaN"
        | ".NAN" => return Resolved::Float,
        _ => {}
    }
    let unsigned = text.strip_prefix(['-', '+']).unwrap_or(text);
    let all_digits = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_digit());
    if all_digits(unsigned) {
        return Resolved::Integer;
    }
    if let Some(hex) = text.strip_prefix("0x") {
        if !hex.is_empty() && hex.chars().all(|c| c.is_ascii_hexdigit()) {
            return Resolved::Integer;
        }
    }
    if let Some(oct) = text.strip_prefix("0o") {
        if !oct.is_empty() && oct.chars().all(|c| ('0'..='7').contains(&c)) {
            return Resolved::Integer;
        }
    }
    let (mantissa, exponent) = match unsigned.find(['e', 'E']) {
        Some(i) => (&unsigned[..i], Some(&unsigned[i + 1..])),
        None => (unsigned, None),
    };
    let exponent_ok = exponent.is_none_or(|e| all_digits(e.strip_prefix(['-', '+']).unwrap_or(e)));
    let mantissa_ok = match mantissa.split_once('.') {
        Some((whole, frac)) => {
            (whole.is_empty() || all_digits(whole))
                && (frac.is_empty() || all_digits(frac))
                && !(whole.is_empty() && frac.is_empty())
        }
        None => exponent.is_some() && all_digits(mantissa),
    };
    if mantissa_ok && exponent_ok {
        Resolved::Float
    } else {
        Resolved::String
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_are_one_based_lines_and_columns() {
        let root = parse("a:\n  b: 1\n").unwrap().unwrap();
        let Value::Mapping(entries) = root.value else {
            panic!("mapping")
        };
        let Value::Mapping(inner) = &entries[0].1.value else {
            panic!("mapping")
        };
        assert_eq!(entries[0].0.mark, Mark { line: 1, column: 1 });
        assert_eq!(inner[0].0.mark, Mark { line: 2, column: 3 });
        assert_eq!(inner[0].1.mark, Mark { line: 2, column: 6 });
    }

    #[test]
    fn plain_scalars_resolve_like_yaml_core_schema() {
        for (text, want) in [
            ("1", Resolved::Integer),
            ("-3", Resolved::Integer),
            ("1.0", Resolved::Float),
            ("1e3", Resolved::Float),
            (".5", Resolved::Float),
            ("v1.0", Resolved::String),
            ("1.2.3", Resolved::String),
            ("yes", Resolved::String),
            ("true", Resolved::Bool),
            ("~", Resolved::Null),
        ] {
            assert_eq!(resolve_plain(text), want, "{text}");
        }
    }

    #[test]
    fn empty_documents_are_none() {
        assert_eq!(parse("").unwrap(), None);
        assert_eq!(parse("# only a comment\n").unwrap(), None);
    }
}
