//! The CI/CD components in `ci-templates/` and the pipelines built from them.
//!
//! - Every component's `spec:` header and every pipeline, after its inputs
//!   are interpolated (defaults, and each value of every `options` input),
//!   validates against GitLab's CI schema (`tests/fixtures/gitlab-ci.schema.json`).
//! - Every `berth …` command in a job's scripts parses with the real CLI, with
//!   the shell variables it uses expanded to plausible values.
//! - The `release` component's jobs are the smaller components' jobs, so the
//!   two cannot drift apart.
//! - The management-repo skeleton, the project's own pipeline and the usage
//!   examples in the components' README are valid pipelines too.
//!
//! The interpolator follows GitLab's rules as far as these files need them:
//! `$[[ inputs.x ]]` as a whole value keeps the input's type, inside a longer
//! string it is stringified; inputs are typed and checked against `options`
//! and `regex`; an undeclared or missing input is an error. Interpolation
//! functions (`| expand_vars`) are refused, since nothing here needs them.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use regex::Regex;
use serde_json::{json, Map, Value};

use crate::common::repo_root;

// --- loading and interpolating components -------------------------------------

#[derive(Debug, Clone)]
struct InputSpec {
    kind: String,
    default: Option<Value>,
    options: Option<Vec<Value>>,
    regex: Option<String>,
}

#[derive(Debug)]
struct Component {
    name: String,
    path: PathBuf,
    header: Value,
    body: Value,
    inputs: BTreeMap<String, InputSpec>,
}

fn yaml_to_json(text: &str, what: &str) -> Value {
    let yaml: serde_yaml::Value =
        serde_yaml::from_str(text).unwrap_or_else(|e| panic!("{what}: not YAML: {e}"));
    serde_json::to_value(yaml).unwrap_or_else(|e| panic!("{what}: not JSON-like: {e}"))
}

fn components_dir() -> PathBuf {
    repo_root().join("ci-templates/templates")
}

fn component_names() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(components_dir())
        .expect("ci-templates/templates exists")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yml"))
        .map(|p| p.file_stem().unwrap().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Reads `templates/<name>.yml`: the header, a line `---`, the body.
fn component(name: &str) -> Component {
    let path = components_dir().join(format!("{name}.yml"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{name}: {e}"));
    let (header_text, body_text) = text
        .split_once("\n---\n")
        .unwrap_or_else(|| panic!("{name}: no `---` line between the spec header and the body"));
    let header = yaml_to_json(header_text, &format!("{name} header"));
    let body = yaml_to_json(body_text, &format!("{name} body"));
    let inputs = parse_inputs(name, &header);
    Component {
        name: name.to_string(),
        path,
        header,
        body,
        inputs,
    }
}

fn parse_inputs(name: &str, header: &Value) -> BTreeMap<String, InputSpec> {
    let header = header.as_object().expect("header is a mapping");
    assert_eq!(
        header.keys().collect::<Vec<_>>(),
        ["spec"],
        "{name}: the header holds only spec"
    );
    let mut out = BTreeMap::new();
    let inputs = header["spec"]["inputs"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    for (key, spec) in inputs {
        let spec = spec.as_object().cloned().unwrap_or_default();
        let kind = spec
            .get("type")
            .map(|t| t.as_str().unwrap().to_string())
            .unwrap_or_else(|| "string".into());
        let input = InputSpec {
            kind,
            default: spec.get("default").cloned(),
            options: spec.get("options").map(|o| o.as_array().unwrap().clone()),
            regex: spec.get("regex").map(|r| r.as_str().unwrap().to_string()),
        };
        if let Some(default) = &input.default {
            check_input(&key, &input, default)
                .unwrap_or_else(|e| panic!("{name}: the default of input {key} is invalid: {e}"));
        }
        out.insert(key, input);
    }
    out
}

/// GitLab's checks of one input value: type, options, regex.
fn check_input(key: &str, spec: &InputSpec, value: &Value) -> Result<(), String> {
    let type_ok = match spec.kind.as_str() {
        "string" => value.is_string(),
        "number" => value.is_number(),
        "boolean" => value.is_boolean(),
        "array" => value.is_array(),
        other => return Err(format!("input {key} has unknown type {other}")),
    };
    if !type_ok {
        return Err(format!("input {key} must be a {}, got {value}", spec.kind));
    }
    if let Some(options) = &spec.options {
        if !options.contains(value) {
            return Err(format!("input {key}: {value} is not one of {options:?}"));
        }
    }
    if let (Some(re), Some(s)) = (&spec.regex, value.as_str()) {
        let re = Regex::new(re).map_err(|e| format!("input {key}: bad regex: {e}"))?;
        if !re.is_match(s) {
            return Err(format!("input {key}: {s:?} does not match /{re}/"));
        }
    }
    Ok(())
}

fn input_ref() -> Regex {
    Regex::new(r"\$\[\[\s*inputs\.([A-Za-z0-9_-]+)\s*\]\]").unwrap()
}

/// The component's body with `given` inputs (and defaults for the rest).
/// Also returns the inputs the body used.
fn interpolate(c: &Component, given: &Value) -> Result<(Value, BTreeSet<String>), String> {
    let given = given.as_object().cloned().unwrap_or_default();
    for key in given.keys() {
        if !c.inputs.contains_key(key) {
            return Err(format!("{}: unknown input {key}", c.name));
        }
    }
    let mut values = BTreeMap::new();
    for (key, spec) in &c.inputs {
        let value = match (given.get(key), &spec.default) {
            (Some(v), _) => v.clone(),
            (None, Some(d)) => d.clone(),
            (None, None) => return Err(format!("{}: input {key} is required", c.name)),
        };
        check_input(key, spec, &value).map_err(|e| format!("{}: {e}", c.name))?;
        values.insert(key.clone(), value);
    }
    let mut used = BTreeSet::new();
    let body = substitute(&c.body, &values, &mut used).map_err(|e| format!("{}: {e}", c.name))?;
    Ok((body, used))
}

fn substitute(
    value: &Value,
    inputs: &BTreeMap<String, Value>,
    used: &mut BTreeSet<String>,
) -> Result<Value, String> {
    Ok(match value {
        Value::String(s) => substitute_str(s, inputs, used, true)?,
        Value::Array(items) => Value::Array(
            items
                .iter()
                .map(|v| substitute(v, inputs, used))
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(map) => {
            let mut out = Map::new();
            for (k, v) in map {
                let key = match substitute_str(k, inputs, used, false)? {
                    Value::String(s) => s,
                    other => return Err(format!("key {k} became {other}, not a string")),
                };
                out.insert(key, substitute(v, inputs, used)?);
            }
            Value::Object(out)
        }
        other => other.clone(),
    })
}

fn substitute_str(
    s: &str,
    inputs: &BTreeMap<String, Value>,
    used: &mut BTreeSet<String>,
    whole_keeps_type: bool,
) -> Result<Value, String> {
    let re = input_ref();
    let lookup = |name: &str, used: &mut BTreeSet<String>| -> Result<Value, String> {
        used.insert(name.to_string());
        inputs
            .get(name)
            .cloned()
            .ok_or_else(|| format!("$[[ inputs.{name} ]] is not a declared input"))
    };
    if whole_keeps_type {
        if let Some(m) = re.captures(s).filter(|m| m.get(0).unwrap().as_str() == s) {
            return lookup(&m[1], used);
        }
    }
    let mut out = String::new();
    let mut last = 0;
    for m in re.captures_iter(s) {
        let whole = m.get(0).unwrap();
        out.push_str(&s[last..whole.start()]);
        match lookup(&m[1], used)? {
            Value::String(v) => out.push_str(&v),
            Value::Number(n) => out.push_str(&n.to_string()),
            Value::Bool(b) => out.push_str(&b.to_string()),
            other => return Err(format!("{other} cannot be placed inside the string {s:?}")),
        }
        last = whole.end();
    }
    out.push_str(&s[last..]);
    if out.contains("$[[") {
        return Err(format!("unsupported interpolation left in {out:?}"));
    }
    Ok(Value::String(out))
}

/// Input sets worth validating: the defaults, then each `options` value of
/// each input and both values of each boolean, the rest at defaults.
/// Inputs without a default get `required`.
fn input_variants(c: &Component, required: &Value) -> Vec<Value> {
    let base = required.as_object().cloned().unwrap_or_default();
    let mut variants = vec![Value::Object(base.clone())];
    for (key, spec) in &c.inputs {
        let mut values = spec.options.clone().unwrap_or_default();
        if spec.kind == "boolean" {
            values = vec![json!(true), json!(false)];
        }
        for v in values {
            let mut m = base.clone();
            m.insert(key.clone(), v);
            variants.push(Value::Object(m));
        }
    }
    variants
}

/// What a component needs that has no default, for the tests.
fn required_inputs(name: &str) -> Value {
    match name {
        "deploy" | "rollback" => json!({ "environment": "test" }),
        _ => json!({}),
    }
}

// --- GitLab's schema ------------------------------------------------------------

/// GitLab's schema, compiled once. `format` is left as an annotation, as
/// draft-07 allows and GitLab's own editor does: the schema says
/// `environment:url` has `format: uri`, but GitLab documents variables
/// there (`url: $DYNAMIC_ENVIRONMENT_URL`), and its `pattern` allows them.
fn ci_schema() -> &'static jsonschema::Validator {
    static SCHEMA: std::sync::OnceLock<jsonschema::Validator> = std::sync::OnceLock::new();
    SCHEMA.get_or_init(|| {
        let path = repo_root().join("tests/fixtures/gitlab-ci.schema.json");
        let schema: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        jsonschema::options()
            .should_validate_formats(false)
            .build(&schema)
            .unwrap_or_else(|e| panic!("{} is not a valid schema: {e}", path.display()))
    })
}

fn schema_errors(schema: &jsonschema::Validator, doc: &Value) -> Vec<String> {
    schema
        .iter_errors(doc)
        .map(|e| {
            let mut text = format!("at {}: {e}", e.instance_path);
            text.truncate(300);
            text
        })
        .collect()
}

// --- extends, and the scripts of a pipeline -----------------------------------------

/// Top-level keys that are not jobs.
const GLOBAL_KEYS: &[&str] = &[
    "stages",
    "workflow",
    "include",
    "variables",
    "default",
    "image",
    "services",
    "cache",
    "before_script",
    "after_script",
    "spec",
];

fn deep_merge(base: &Value, over: &Value) -> Value {
    match (base, over) {
        (Value::Object(b), Value::Object(o)) => {
            let mut out = b.clone();
            for (k, v) in o {
                let merged = match out.get(k) {
                    Some(bv) => deep_merge(bv, v),
                    None => v.clone(),
                };
                out.insert(k.clone(), merged);
            }
            Value::Object(out)
        }
        _ => over.clone(),
    }
}

/// A job with its `extends` chain merged in, as GitLab does (hashes merged
/// deeply, everything else replaced).
fn resolve_job(pipeline: &Value, name: &str, depth: usize) -> Value {
    assert!(depth < 10, "extends nests too deep at {name}");
    let job = pipeline
        .get(name)
        .unwrap_or_else(|| panic!("extends names {name}, which is not in the pipeline"));
    let mut bases = match job.get("extends") {
        None => Vec::new(),
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(a)) => a.iter().map(|v| v.as_str().unwrap().to_string()).collect(),
        Some(other) => panic!("{name}: extends is {other}"),
    };
    let mut merged = Value::Object(Map::new());
    for base in bases.drain(..) {
        merged = deep_merge(&merged, &resolve_job(pipeline, &base, depth + 1));
    }
    let mut own = job.clone();
    own.as_object_mut().unwrap().remove("extends");
    deep_merge(&merged, &own)
}

/// The visible jobs of a pipeline, resolved.
fn jobs(pipeline: &Value) -> BTreeMap<String, Value> {
    pipeline
        .as_object()
        .unwrap()
        .keys()
        .filter(|k| !k.starts_with('.') && !GLOBAL_KEYS.contains(&k.as_str()))
        .map(|k| (k.clone(), resolve_job(pipeline, k, 0)))
        .collect()
}

fn script_lines(job: &Value) -> Vec<String> {
    let mut out = Vec::new();
    for key in ["before_script", "script", "after_script"] {
        collect_strings(job.get(key), &mut out);
    }
    out
}

fn collect_strings(value: Option<&Value>, out: &mut Vec<String>) {
    match value {
        Some(Value::String(s)) => out.push(s.clone()),
        Some(Value::Array(items)) => {
            for item in items {
                collect_strings(Some(item), out);
            }
        }
        _ => {}
    }
}

// --- a small shell reader, enough for the job scripts -------------------------------

#[derive(Debug, Clone, PartialEq)]
enum Token {
    /// A word after expansion; `literal` when nothing in it was expanded or
    /// quoted.
    Word { text: String, literal: bool },
    /// `;`, `&&`, `||`, `|`, `&`, newline: the end of a simple command.
    Separator,
    /// `>`, `>>`, `<`, `2>`, `>&2`, …: the word after it (if any) is not an
    /// argument.
    Redirect { takes_word: bool },
}

/// The word being read: its text, whether it has begun, and whether it is
/// still a plain literal (nothing quoted or expanded in it).
struct WordBuf {
    text: String,
    started: bool,
    literal: bool,
}

impl WordBuf {
    fn new() -> WordBuf {
        WordBuf {
            text: String::new(),
            started: false,
            literal: true,
        }
    }

    /// Ends the word, if one has begun.
    fn finish(&mut self, tokens: &mut Vec<Token>) {
        let word = std::mem::replace(self, WordBuf::new());
        if word.started {
            tokens.push(Token::Word {
                text: word.text,
                literal: word.literal,
            });
        }
    }
}

/// Splits a script into tokens, expanding `$VAR`, `${VAR}`, `${VAR:+w}` and
/// `${VAR:-w}` through `vars`. Command and arithmetic substitutions become
/// the placeholder `<subst>`. An unknown variable is an error: each one the
/// scripts use needs a plausible value in the table.
fn shell_tokens(script: &str, vars: &BTreeMap<String, String>) -> Result<Vec<Token>, String> {
    let chars: Vec<char> = script.chars().collect();
    let mut i = 0;
    let mut tokens = Vec::new();
    let mut w = WordBuf::new();
    while i < chars.len() {
        let c = chars[i];
        match c {
            ' ' | '\t' => {
                w.finish(&mut tokens);
                i += 1;
            }
            '\n' | ';' => {
                w.finish(&mut tokens);
                tokens.push(Token::Separator);
                i += 1;
            }
            '#' if !w.started => {
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
            }
            '&' | '|' => {
                w.finish(&mut tokens);
                // `>&2` is handled under '>'; here `&&`, `||`, `|`, `&`.
                i += if chars.get(i + 1) == Some(&c) { 2 } else { 1 };
                tokens.push(Token::Separator);
            }
            '>' | '<' => {
                // A word of digits right before (2>) is the fd, not an arg.
                if w.started && w.text.chars().all(|c| c.is_ascii_digit()) && w.literal {
                    w = WordBuf::new();
                }
                w.finish(&mut tokens);
                i += 1;
                if chars.get(i) == Some(&'>') {
                    i += 1;
                }
                if chars.get(i) == Some(&'&') {
                    // >&2, 2>&1: the target is part of the operator.
                    i += 1;
                    while i < chars.len() && (chars[i].is_ascii_digit() || chars[i] == '-') {
                        i += 1;
                    }
                    tokens.push(Token::Redirect { takes_word: false });
                } else {
                    tokens.push(Token::Redirect { takes_word: true });
                }
            }
            '(' | ')' | '{' | '}' if !w.started => {
                tokens.push(Token::Separator);
                i += 1;
            }
            '\'' => {
                w.started = true;
                w.literal = false;
                i += 1;
                while i < chars.len() && chars[i] != '\'' {
                    w.text.push(chars[i]);
                    i += 1;
                }
                if i == chars.len() {
                    return Err(format!("unterminated ' in {script:?}"));
                }
                i += 1;
            }
            '"' => {
                w.started = true;
                w.literal = false;
                i += 1;
                loop {
                    match chars.get(i) {
                        None => return Err(format!("unterminated \" in {script:?}")),
                        Some('"') => {
                            i += 1;
                            break;
                        }
                        Some('\\') => {
                            if let Some(&n) = chars.get(i + 1) {
                                if matches!(n, '"' | '\\' | '$' | '`') {
                                    w.text.push(n);
                                } else {
                                    w.text.push('\\');
                                    w.text.push(n);
                                }
                            }
                            i += 2;
                        }
                        Some('$') => {
                            let (text, next) = expand(&chars, i, vars, true)?;
                            w.text.push_str(&text.join(" "));
                            i = next;
                        }
                        Some(&other) => {
                            w.text.push(other);
                            i += 1;
                        }
                    }
                }
            }
            '\\' => {
                w.started = true;
                w.literal = false;
                if let Some(&n) = chars.get(i + 1) {
                    if n != '\n' {
                        w.text.push(n);
                    }
                }
                i += 2;
            }
            '$' => {
                let (fields, next) = expand(&chars, i, vars, false)?;
                i = next;
                w.literal = false;
                // Unquoted: each field is its own word (the fields already
                // honour the quotes inside `${VAR:+--flag "$X"}`).
                let n = fields.len();
                for (k, field) in fields.into_iter().enumerate() {
                    w.text.push_str(&field);
                    w.started = true;
                    if k + 1 < n {
                        w.finish(&mut tokens);
                        w.literal = false;
                    }
                }
            }
            _ => {
                w.started = true;
                w.text.push(c);
                i += 1;
            }
        }
    }
    w.finish(&mut tokens);
    Ok(tokens)
}

/// Expands the `$…` at `chars[start]`; returns its fields and the index after it.
fn expand(
    chars: &[char],
    start: usize,
    vars: &BTreeMap<String, String>,
    quoted: bool,
) -> Result<(Vec<String>, usize), String> {
    let lookup = |name: &str| -> Result<String, String> {
        vars.get(name)
            .cloned()
            .ok_or_else(|| format!("no plausible value for ${name}; add it to the table"))
    };
    let mut i = start + 1;
    match chars.get(i) {
        Some('(') => {
            // $(...) or $((...)): skip to the matching parenthesis.
            let mut depth = 0;
            while i < chars.len() {
                match chars[i] {
                    '(' => depth += 1,
                    ')' => {
                        depth -= 1;
                        if depth == 0 {
                            return Ok((vec!["<subst>".into()], i + 1));
                        }
                    }
                    _ => {}
                }
                i += 1;
            }
            Err("unterminated $(".into())
        }
        Some('{') => {
            let close = (i..chars.len())
                .find(|&k| chars[k] == '}')
                .ok_or("unterminated ${")?;
            let inner: String = chars[i + 1..close].iter().collect();
            let value = if let Some((name, alt)) = inner.split_once(":+") {
                if lookup(name)?.is_empty() {
                    Vec::new()
                } else {
                    words_of(alt, vars, quoted)?
                }
            } else if let Some((name, alt)) = inner.split_once(":-") {
                let v = lookup(name)?;
                if v.is_empty() {
                    words_of(alt, vars, quoted)?
                } else {
                    vec![v]
                }
            } else {
                vec![lookup(&inner)?]
            };
            Ok((value, close + 1))
        }
        Some(c) if c.is_ascii_alphabetic() || *c == '_' => {
            let end = (i..chars.len())
                .find(|&k| !(chars[k].is_ascii_alphanumeric() || chars[k] == '_'))
                .unwrap_or(chars.len());
            let name: String = chars[i..end].iter().collect();
            Ok((vec![lookup(&name)?], end))
        }
        Some(c) if c.is_ascii_digit() || matches!(c, '?' | '@' | '#' | '$' | '!' | '*') => {
            Ok((vec![format!("<${c}>")], i + 1))
        }
        _ => Ok((vec!["$".into()], i)),
    }
}

/// The words of the `word` part of `${VAR:+word}`.
fn words_of(
    text: &str,
    vars: &BTreeMap<String, String>,
    quoted: bool,
) -> Result<Vec<String>, String> {
    let tokens = shell_tokens(text, vars)?;
    let words: Vec<String> = tokens
        .into_iter()
        .filter_map(|t| match t {
            Token::Word { text, .. } => Some(text),
            _ => None,
        })
        .collect();
    Ok(if quoted { vec![words.join(" ")] } else { words })
}

/// Every `berth …` command in a script: the argv from the word `berth` to
/// the end of its simple command, redirections left out.
fn berth_commands(
    script: &str,
    vars: &BTreeMap<String, String>,
) -> Result<Vec<Vec<String>>, String> {
    let tokens = shell_tokens(script, vars)?;
    let mut commands = Vec::new();
    let mut current: Option<Vec<String>> = None;
    let mut skip_next_word = false;
    for token in tokens {
        match token {
            Token::Separator => {
                commands.extend(current.take());
            }
            Token::Redirect { takes_word } => skip_next_word = takes_word,
            Token::Word { text, literal } => {
                if std::mem::take(&mut skip_next_word) {
                    continue;
                }
                match &mut current {
                    Some(argv) => argv.push(text),
                    None if literal && text == "berth" => current = Some(vec![text]),
                    None => {}
                }
            }
        }
    }
    commands.extend(current.take());
    Ok(commands)
}

/// Plausible values of the variables the scripts use: GitLab's predefined
/// ones, the file variables an admin sets (their values are paths), and
/// the logs job's query variables in two variants: the job's defaults, and
/// what a developer might type.
fn plausible_vars(job: &Value, developer_typed: bool) -> BTreeMap<String, String> {
    let mut vars: BTreeMap<String, String> = [
        ("CI_PROJECT_DIR", "/builds/deploy/shop-search"),
        ("CI_JOB_STATUS", "success"),
        (
            "CI_JOB_URL",
            "https://gitlab.example.com/deploy/shop-search/-/jobs/7",
        ),
        ("CI_MERGE_REQUEST_IID", "12"),
        (
            "BERTH_INVENTORY",
            "/builds/deploy/shop-search.tmp/BERTH_INVENTORY",
        ),
        (
            "BERTH_SSH_KEY",
            "/builds/deploy/shop-search.tmp/BERTH_SSH_KEY",
        ),
        (
            "BERTH_LOGS_KEY",
            "/builds/deploy/shop-search.tmp/BERTH_LOGS_KEY",
        ),
        ("BERTH_MR_TOKEN", "glpat-plausible"),
        (
            "BERTH_LOGS_INVENTORY",
            "/builds/deploy/shop-search.tmp/BERTH_LOGS_INVENTORY",
        ),
        ("PATH", "/usr/local/bin:/usr/bin:/bin"),
        ("url", "https://shop-search.example.com/"),
        ("key", "TEST"),
        ("commit", "0123456789abcdef0123456789abcdef01234567"),
        ("code", "/builds/deploy/shop-search/codes"),
        ("rc", "5"),
        ("step_name", "deploy"),
        ("step_title", "berth deploy test"),
        ("step_t0", "1700000000"),
        ("step_t1", "1700000042"),
        ("step_rc", "0"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    if let Some(job_vars) = job.get("variables").and_then(Value::as_object) {
        for (k, v) in job_vars {
            let v = match v {
                Value::String(s) => s.clone(),
                Value::Object(o) => o.get("value").and_then(Value::as_str).unwrap_or("").into(),
                other => other.to_string(),
            };
            vars.insert(k.clone(), v);
        }
    }
    if developer_typed {
        for (k, v) in [
            ("BERTH_LOGS_ENV", "test"),
            ("BERTH_LOGS_SOURCE", "access"),
            ("BERTH_LOGS_SINCE", "2h"),
            ("BERTH_LOGS_LINES", "1000"),
        ] {
            vars.insert(k.into(), v.into());
        }
    }
    vars
}

fn parse_berth(argv: &[String]) -> Result<(), String> {
    use berth::cli::Cli;
    use clap::error::ErrorKind;
    use clap::Parser;
    match Cli::try_parse_from(argv) {
        Ok(_) => Ok(()),
        Err(e) if matches!(e.kind(), ErrorKind::DisplayVersion | ErrorKind::DisplayHelp) => Ok(()),
        Err(e) => Err(format!("{}: {}", argv.join(" "), e.render())),
    }
}

/// Every `berth …` command of every job of a pipeline, with the
/// subcommands seen; errors collected, not stopped at.
fn check_berth_commands(
    what: &str,
    pipeline: &Value,
    seen: &mut BTreeSet<String>,
    errors: &mut Vec<String>,
) -> usize {
    let mut count = 0;
    for (name, job) in jobs(pipeline) {
        for developer_typed in [false, true] {
            let vars = plausible_vars(&job, developer_typed);
            for line in script_lines(&job) {
                let commands = match berth_commands(&line, &vars) {
                    Ok(c) => c,
                    Err(e) => {
                        errors.push(format!("{what} {name}: {e}"));
                        continue;
                    }
                };
                for argv in commands {
                    count += 1;
                    if let Some(sub) = argv.iter().skip(1).find(|a| !a.starts_with('-')) {
                        seen.insert(sub.clone());
                    }
                    if let Err(e) = parse_berth(&argv) {
                        errors.push(format!("{what} {name}: {e}"));
                    }
                }
            }
        }
    }
    count
}

// --- the tests -------------------------------------------------------------------------

const COMPONENTS: &[&str] = &["check-plan", "deploy", "logs", "release", "rollback"];

#[test]
fn the_component_project_has_the_expected_components() {
    assert_eq!(component_names(), COMPONENTS);
    let readme = std::fs::read_to_string(repo_root().join("ci-templates/README.md")).unwrap();
    for name in COMPONENTS {
        assert!(
            readme.contains(&format!("## `{name}`")),
            "ci-templates/README.md has no section ## `{name}`"
        );
    }
}

#[test]
fn component_headers_validate_as_their_own_documents() {
    let schema = ci_schema();
    for name in COMPONENTS {
        let c = component(name);
        let errors = schema_errors(schema, &c.header);
        assert!(
            errors.is_empty(),
            "{} header: {errors:#?}",
            c.path.display()
        );
        assert!(
            c.header["spec"]["description"].is_string(),
            "{name}: the header has no description for the Catalog"
        );
        for (key, spec) in &c.inputs {
            assert!(
                c.header["spec"]["inputs"][key]["description"].is_string(),
                "{name}: input {key} has no description"
            );
            if spec.default.is_none() {
                assert!(
                    required_inputs(name).get(key).is_some(),
                    "{name}: input {key} has no default; add a value to required_inputs"
                );
            }
        }
    }
}

#[test]
fn every_interpolated_component_validates_and_uses_every_input() {
    let schema = ci_schema();
    let mut checked = 0;
    for name in COMPONENTS {
        let c = component(name);
        let mut used_anywhere = BTreeSet::new();
        for inputs in input_variants(&c, &required_inputs(name)) {
            let (body, used) = interpolate(&c, &inputs).unwrap_or_else(|e| panic!("{e}"));
            used_anywhere.extend(used);
            let errors = schema_errors(schema, &body);
            assert!(
                errors.is_empty(),
                "{name} with inputs {inputs}: {errors:#?}"
            );
            // extends must resolve, every job must run something.
            for (job, resolved) in jobs(&body) {
                assert!(
                    resolved.get("script").is_some(),
                    "{name}: job {job} has no script"
                );
            }
            checked += 1;
        }
        let unused: Vec<_> = c
            .inputs
            .keys()
            .filter(|k| !used_anywhere.contains(*k))
            .collect();
        assert!(unused.is_empty(), "{name}: inputs never used: {unused:?}");
    }
    assert!(checked >= 15, "only {checked} interpolations checked");
}

#[test]
fn every_berth_command_in_the_templates_parses_with_the_real_cli() {
    let mut seen = BTreeSet::new();
    let mut errors = Vec::new();
    let mut count = 0;
    for name in COMPONENTS {
        let c = component(name);
        for inputs in input_variants(&c, &required_inputs(name)) {
            let (body, _) = interpolate(&c, &inputs).unwrap();
            count +=
                check_berth_commands(&format!("{name} {inputs}"), &body, &mut seen, &mut errors);
        }
    }
    assert!(errors.is_empty(), "{}", errors.join("\n\n"));
    let expected: BTreeSet<String> = [
        "check", "plan", "checkout", "render", "deploy", "report", "rollback", "logs",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    let missing: Vec<_> = expected.difference(&seen).collect();
    assert!(
        missing.is_empty(),
        "no berth command found for {missing:?} (found {seen:?})"
    );
    assert!(count >= 40, "only {count} berth commands found");
}

#[test]
fn the_release_pipeline_is_made_of_the_smaller_components() {
    let release = component("release");
    let (pipeline, _) = interpolate(&release, &json!({})).unwrap();
    let release_jobs = jobs(&pipeline);
    let piece = |name: &str, inputs: Value, job: &str| -> Value {
        let (body, _) = interpolate(&component(name), &inputs).unwrap_or_else(|e| panic!("{e}"));
        jobs(&body)
            .remove(job)
            .unwrap_or_else(|| panic!("{name} has no job {job}"))
    };
    let deploy_test = json!({"environment": "test", "tier": "testing", "when": "on_success",
        "stage": "deploy-test",
        "needs": [{"job": "checkout", "artifacts": false}, {"job": "render", "artifacts": false}]});
    let deploy_production = json!({"environment": "production", "tier": "production", "when": "manual",
        "stage": "deploy-production",
        "needs": [{"job": "deploy:test", "artifacts": false}]});
    let pieces = [
        (
            "check",
            piece("check-plan", json!({"stage": "check"}), "check"),
        ),
        (
            "plan",
            piece("check-plan", json!({"stage": "plan"}), "plan"),
        ),
        (
            "deploy:test",
            piece("deploy", deploy_test.clone(), "deploy:test"),
        ),
        (
            "report:test",
            piece("deploy", deploy_test.clone(), "report:test"),
        ),
        (
            "deploy:production",
            piece("deploy", deploy_production.clone(), "deploy:production"),
        ),
        (
            "report:production",
            piece("deploy", deploy_production.clone(), "report:production"),
        ),
        (
            "rollback:test",
            piece("rollback", json!({"environment": "test"}), "rollback:test"),
        ),
        (
            "restart:test",
            piece("rollback", json!({"environment": "test"}), "restart:test"),
        ),
        (
            "rollback:production",
            piece(
                "rollback",
                json!({"environment": "production", "tier": "production"}),
                "rollback:production",
            ),
        ),
        (
            "restart:production",
            piece(
                "rollback",
                json!({"environment": "production", "tier": "production"}),
                "restart:production",
            ),
        ),
        ("logs", piece("logs", json!({}), "logs")),
    ];
    let mut accounted: BTreeSet<&str> = ["checkout", "render"].into();
    for (job, expected) in &pieces {
        accounted.insert(job);
        let actual = release_jobs
            .get(*job)
            .unwrap_or_else(|| panic!("release has no job {job}"));
        assert_eq!(
            actual, expected,
            "release's {job} differs from the smaller component's"
        );
    }
    let unaccounted: Vec<_> = release_jobs
        .keys()
        .filter(|k| !accounted.contains(k.as_str()))
        .collect();
    assert!(
        unaccounted.is_empty(),
        "release jobs not compared: {unaccounted:?}"
    );
}

/// What the pipeline looks like to GitLab in each situation: which jobs a
/// pipeline of that kind contains, and how they start.
#[test]
fn the_release_pipeline_runs_the_right_jobs_in_each_kind_of_pipeline() {
    let (pipeline, _) = interpolate(&component("release"), &json!({})).unwrap();
    let jobs = jobs(&pipeline);
    let when = |job: &Value, source: &str| -> Option<String> {
        // A tiny evaluator for the rules these jobs use.
        let rules = job["rules"].as_array().unwrap();
        for rule in rules {
            let cond = rule["if"].as_str().unwrap();
            let holds = match cond {
                "$BERTH_LOGS" => source == "logs",
                "$CI_PIPELINE_SOURCE == \"merge_request_event\"" => source == "mr",
                "$CI_COMMIT_BRANCH == $CI_DEFAULT_BRANCH && $CI_COMMIT_REF_PROTECTED == \"true\"" => {
                    source == "main"
                }
                "$CI_PIPELINE_SOURCE == \"web\" && $BERTH_LOGS" => source == "logs",
                "$CI_COMMIT_BRANCH == $CI_DEFAULT_BRANCH && $CI_PIPELINE_SOURCE != \"merge_request_event\"" => {
                    source == "main"
                }
                other => panic!("no evaluation for rule {other}"),
            };
            if holds {
                let w = rule
                    .get("when")
                    .and_then(Value::as_str)
                    .unwrap_or("on_success");
                return (w != "never").then(|| w.to_string());
            }
        }
        None
    };
    let pipeline_of = |source: &str| -> BTreeMap<String, String> {
        jobs.iter()
            .filter_map(|(name, job)| when(job, source).map(|w| (name.clone(), w)))
            .collect()
    };
    let expect = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    };
    assert_eq!(
        pipeline_of("mr"),
        expect(&[("check", "on_success"), ("plan", "on_success")])
    );
    assert_eq!(pipeline_of("logs"), expect(&[("logs", "on_success")]));
    assert_eq!(
        pipeline_of("main"),
        expect(&[
            ("checkout", "on_success"),
            ("render", "on_success"),
            ("deploy:test", "on_success"),
            ("report:test", "always"),
            ("deploy:production", "manual"),
            ("report:production", "always"),
            ("rollback:test", "manual"),
            ("restart:test", "manual"),
            ("rollback:production", "manual"),
            ("restart:production", "manual"),
            ("logs", "manual"),
        ])
    );
    // Deploys: an environment with URL and tier, one resource group per
    // environment shared with rollback and restart, never interrupted.
    for env in ["test", "production"] {
        let deploy = &jobs[&format!("deploy:{env}")];
        assert_eq!(deploy["environment"]["name"], env);
        assert_eq!(deploy["environment"]["url"], "$BERTH_DEPLOY_URL");
        assert_eq!(
            deploy["environment"]["deployment_tier"],
            if env == "test" {
                "testing"
            } else {
                "production"
            }
        );
        assert_eq!(deploy["interruptible"], false);
        let group = format!("berth-$CI_PROJECT_PATH_SLUG-{env}");
        for job in [
            format!("deploy:{env}"),
            format!("rollback:{env}"),
            format!("restart:{env}"),
        ] {
            assert_eq!(jobs[&job]["resource_group"], group.as_str(), "{job}");
        }
        assert_eq!(deploy["artifacts"]["reports"]["dotenv"], "deploy.env");
        assert_eq!(deploy["artifacts"]["when"], "always");
        let report = &jobs[&format!("report:{env}")];
        assert_eq!(
            report["needs"],
            json!([{ "job": format!("deploy:{env}"), "artifacts": true }])
        );
    }
    // Merge request jobs drop host access before berth runs.
    for job in ["check", "plan"] {
        assert_eq!(
            jobs[job]["script"][0], "unset BERTH_SSH_KEY BERTH_LOGS_KEY",
            "{job}"
        );
    }
    // production_when: on_success makes production follow test.
    let (auto, _) = interpolate(
        &component("release"),
        &json!({"production_when": "on_success"}),
    )
    .unwrap();
    let rules = &resolve_job(&auto, "deploy:production", 0)["rules"];
    assert_eq!(rules[1]["when"], "on_success");
}

#[test]
fn the_skeleton_pipeline_includes_the_release_component() {
    let schema = ci_schema();
    let path = repo_root().join("mgmt-repo-skeleton/.gitlab-ci.yml");
    let doc = yaml_to_json(
        &std::fs::read_to_string(&path).unwrap(),
        "skeleton .gitlab-ci.yml",
    );
    let errors = schema_errors(schema, &doc);
    assert!(errors.is_empty(), "{}: {errors:#?}", path.display());
    let merged = resolve_includes(&doc).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let errors = schema_errors(schema, &merged);
    assert!(
        errors.is_empty(),
        "{} with its include: {errors:#?}",
        path.display()
    );
    assert!(merged.get("deploy:production").is_some());
}

/// A pipeline with its `include: component:` entries replaced by the
/// interpolated components of ci-templates/, as GitLab merges them (the
/// including file's keys win).
fn resolve_includes(doc: &Value) -> Result<Value, String> {
    let address = Regex::new(
        r"^\$CI_SERVER_FQDN/[a-z0-9._-]+(/[a-z0-9._-]+)+/([a-z0-9-]+)@(\d+\.\d+\.\d+|~latest)$",
    )
    .unwrap();
    let mut merged = Value::Object(Map::new());
    let includes = match doc.get("include") {
        None => return Err("no include".into()),
        Some(Value::Array(a)) => a.clone(),
        Some(other) => vec![other.clone()],
    };
    for include in includes {
        let target = include["component"]
            .as_str()
            .ok_or_else(|| format!("not a component include: {include}"))?;
        let m = address.captures(target).ok_or_else(|| {
            format!(
                "component address {target:?} is not $CI_SERVER_FQDN/<project>/<name>@<version>"
            )
        })?;
        let name = &m[2];
        if !COMPONENTS.contains(&name) {
            return Err(format!("no component {name} in ci-templates/templates"));
        }
        let inputs = include.get("inputs").cloned().unwrap_or(json!({}));
        let (body, _) = interpolate(&component(name), &inputs)?;
        merged = deep_merge(&merged, &body);
    }
    let mut own = doc.clone();
    own.as_object_mut().unwrap().remove("include");
    Ok(deep_merge(&merged, &own))
}

#[test]
fn the_readme_examples_are_valid_pipelines() {
    let schema = ci_schema();
    let readme = std::fs::read_to_string(repo_root().join("ci-templates/README.md")).unwrap();
    let blocks = Regex::new(r"(?s)```yaml\n(.*?)```").unwrap();
    let mut checked = 0;
    for block in blocks.captures_iter(&readme) {
        let doc = yaml_to_json(&block[1], "README example");
        if doc.get("include").is_none() {
            continue;
        }
        let merged =
            resolve_includes(&doc).unwrap_or_else(|e| panic!("README example: {e}\n{}", &block[1]));
        let errors = schema_errors(schema, &merged);
        assert!(
            errors.is_empty(),
            "README example {}: {errors:#?}",
            &block[1]
        );
        let mut seen = BTreeSet::new();
        let mut bad = Vec::new();
        check_berth_commands("README example", &merged, &mut seen, &mut bad);
        assert!(bad.is_empty(), "{}", bad.join("\n"));
        checked += 1;
    }
    assert!(
        checked >= 5,
        "only {checked} README examples include a component"
    );
}

#[test]
fn the_projects_own_pipelines_validate() {
    let schema = ci_schema();
    for file in [".gitlab-ci.yml", "ci-templates/.gitlab-ci.yml"] {
        let path = repo_root().join(file);
        let doc = yaml_to_json(&std::fs::read_to_string(&path).unwrap(), file);
        let errors = schema_errors(schema, &doc);
        assert!(errors.is_empty(), "{file}: {errors:#?}");
    }
    let ours = yaml_to_json(
        &std::fs::read_to_string(repo_root().join(".gitlab-ci.yml")).unwrap(),
        ".gitlab-ci.yml",
    );
    let names: BTreeSet<String> = jobs(&ours).into_keys().collect();
    for job in ["fmt", "clippy", "test", "static", "job-image", "release"] {
        assert!(names.contains(job), ".gitlab-ci.yml has no job {job}");
    }
}

// --- the checks can fail --------------------------------------------------------------

#[test]
fn the_checks_catch_broken_templates() {
    let schema = ci_schema();
    let deploy = component("deploy");
    // Inputs: unknown, missing, off the options, against the regex, wrong type.
    for (inputs, message) in [
        (
            json!({"environment": "test", "colour": "blue"}),
            "unknown input colour",
        ),
        (json!({}), "input environment is required"),
        (
            json!({"environment": "test", "when": "sometimes"}),
            "is not one of",
        ),
        (json!({"environment": "Prod;rm"}), "does not match"),
        (
            json!({"environment": "test", "keep": "3"}),
            "must be a number",
        ),
    ] {
        let err = interpolate(&deploy, &inputs).expect_err(message);
        assert!(err.contains(message), "{err}");
    }
    // A body that uses an undeclared input.
    let mut broken = component("logs");
    broken.body["logs"]["stage"] = json!("$[[ inputs.nope ]]");
    let err = interpolate(&broken, &json!({})).unwrap_err();
    assert!(
        err.contains("inputs.nope ]] is not a declared input"),
        "{err}"
    );
    // The schema refuses what GitLab refuses.
    let (mut body, _) = interpolate(&deploy, &json!({"environment": "test"})).unwrap();
    body["deploy:test"]["rules"][1]["when"] = json!("sometimes");
    assert!(!schema_errors(schema, &body).is_empty());
    let (mut body, _) = interpolate(&deploy, &json!({"environment": "test"})).unwrap();
    body["deploy:test"]["interruptible"] = json!("no");
    assert!(!schema_errors(schema, &body).is_empty());
    let (mut body, _) = interpolate(&deploy, &json!({"environment": "test"})).unwrap();
    body["deploy:test"]["script"] = json!([{"berth deploy": "oops"}]);
    assert!(!schema_errors(schema, &body).is_empty());
}

#[test]
fn the_shell_reader_finds_berth_where_the_templates_put_it() {
    let vars: BTreeMap<String, String> = [("X", "/tmp/x"), ("EMPTY", ""), ("SINCE", "1 h")]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let found = berth_commands(
        "step deploy \"berth deploy (test)\" berth deploy --env test --inventory \"${X}\" > out.txt || rc=$?\n\
         echo \"berth is not a command here\"; berth logs ${EMPTY:+--since \"$EMPTY\"} ${SINCE:+--since \"$SINCE\"} 2>&1 | tee x",
        &vars,
    )
    .unwrap();
    assert_eq!(
        found,
        vec![
            vec!["berth", "deploy", "--env", "test", "--inventory", "/tmp/x"],
            vec!["berth", "logs", "--since", "1 h"],
        ]
    );
    assert!(parse_berth(&found[0].iter().map(|s| s.to_string()).collect::<Vec<_>>()).is_ok());
    let err = parse_berth(&[
        "berth".into(),
        "deploy".into(),
        "--envv".into(),
        "test".into(),
    ])
    .unwrap_err();
    assert!(err.contains("--envv"), "{err}");
    let err = berth_commands("berth deploy --env $UNSET", &vars).unwrap_err();
    assert!(err.contains("$UNSET"), "{err}");
}

// --- the jobs' shell, run by gitlab-ci-local with a stand-in berth --------------

/// Stands in for berth in the jobs: records its arguments and the
/// variables the job handed it, writes what the real one writes (checkout's
/// dotenv outputs, deploy's outcome and result line).
const STUB_BERTH: &str = r#"#!/bin/sh
echo "berth-stub: $* | ssh_key=${BERTH_SSH_KEY:-} logs_key=${BERTH_LOGS_KEY:-} token=${BERTH_GITLAB_TOKEN:-}" >&2
env= outcome=
prev=
for a in "$@"; do
  case "$prev" in --env) env=$a ;; --outcome) outcome=$a ;; esac
  prev=$a
done
case "$1" in
  --version) echo "berth 0.0.0-stub" ;;
  checkout)
    if [ -n "${BERTH_DOTENV:-}" ]; then
      for e in TEST PRODUCTION; do
        echo "BERTH_${e}_COMMIT=c0ffee0000000000000000000000000000000000"
        echo "BERTH_${e}_CODE=$PWD/codes"
      done >> "$BERTH_DOTENV"
    fi ;;
  deploy)
    if [ -n "${STUB_DEPLOY_FAILS:-}" ]; then
      echo '{"ok":false,"failed_step":"wait until healthy"}' > "$outcome"
      echo "error: slot blue did not become healthy" >&2
      exit 5
    fi
    echo '{"ok":true}' > "$outcome"
    echo "v1.0.0 is live in $env: http://$env.example/" ;;
  report)
    echo "berth-stub report: url=${BERTH_DEPLOY_URL:-} status=${BERTH_DEPLOY_STATUS:-} commit=${BERTH_TEST_COMMIT:-} outcome=$(cat "$3")" ;;
esac
"#;

/// A management repository whose pipeline is the release component (as
/// `include: local:`, which gitlab-ci-local interpolates), with the stub
/// berth in `bin/`.
fn gcl_repo() -> tempfile::TempDir {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::create_dir_all(root.join("templates")).unwrap();
    std::fs::create_dir_all(root.join("bin")).unwrap();
    std::fs::copy(
        components_dir().join("release.yml"),
        root.join("templates/release.yml"),
    )
    .unwrap();
    for file in ["release.yml", "app.yml"] {
        std::fs::copy(
            repo_root().join("mgmt-repo-skeleton").join(file),
            root.join(file),
        )
        .unwrap();
    }
    std::fs::write(
        root.join(".gitlab-ci.yml"),
        "include:\n  - local: templates/release.yml\n",
    )
    .unwrap();
    std::fs::write(root.join("bin/berth"), STUB_BERTH).unwrap();
    std::fs::set_permissions(
        root.join("bin/berth"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    for args in [
        &["init", "-q", "-b", "main"][..],
        &["add", "-A"],
        &[
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@example.com",
            "commit",
            "-qm",
            "init",
        ],
    ] {
        let status = std::process::Command::new("git")
            .args(args)
            .current_dir(root)
            .status()
            .unwrap();
        assert!(status.success(), "git {args:?}");
    }
    dir
}

/// Runs the pipeline in shell mode through scripts/gitlab-ci-local; returns
/// (success, combined output).
fn gcl_run(repo: &std::path::Path, args: &[&str]) -> (bool, String) {
    let path = format!(
        "{}:{}",
        repo.join("bin").display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let output = std::process::Command::new(repo_root().join("scripts/gitlab-ci-local"))
        .args([
            "--shell-isolation",
            "--force-shell-executor",
            "--ignore-predefined-vars",
            "CI_COMMIT_REF_PROTECTED,CI_PIPELINE_SOURCE",
        ])
        .args(args)
        .current_dir(repo)
        .env("PATH", path)
        .output()
        .expect("scripts/gitlab-ci-local runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

#[test]
fn the_main_pipeline_passes_checkout_outputs_and_deploy_results_along() {
    let repo = gcl_repo();
    let (ok, out) = gcl_run(
        repo.path(),
        &[
            "--variable",
            "CI_COMMIT_REF_PROTECTED=true",
            "--needs",
            "report:test",
        ],
    );
    assert!(ok, "{out}");
    for job in ["checkout", "render", "deploy:test", "report:test"] {
        assert!(
            out.contains(&format!("PASS  {job}")),
            "{job} did not pass:\n{out}"
        );
    }
    // deploy got checkout's commit and code directory, and an outcome file.
    assert!(
        out.contains("berth-stub: deploy --app-dir . --env test --code ")
            && out.contains(
                "/codes --commit c0ffee0000000000000000000000000000000000 --outcome outcome-test.json"
            ),
        "{out}"
    );
    // report got the deploy's dotenv outputs and its outcome artifact.
    assert!(
        out.contains(
            "berth-stub report: url=http://test.example/ status=success commit=c0ffee0000000000000000000000000000000000 outcome={\"ok\":true}"
        ),
        "{out}"
    );
    assert!(out.contains("berth deploy test: done in "), "{out}");
}

#[test]
fn a_failed_deploy_is_still_reported_and_fails_the_pipeline() {
    let repo = gcl_repo();
    let (ok, out) = gcl_run(
        repo.path(),
        &[
            "--variable",
            "CI_COMMIT_REF_PROTECTED=true",
            "--variable",
            "STUB_DEPLOY_FAILS=1",
            "--needs",
            "report:test",
        ],
    );
    assert!(!ok, "the pipeline passed:\n{out}");
    assert!(out.contains("FAIL  deploy:test"), "{out}");
    assert!(
        out.contains("berth deploy test: failed with exit code 5"),
        "{out}"
    );
    assert!(out.contains("PASS  report:test"), "{out}");
    assert!(
        out.contains("berth-stub report: url= status=failed commit=c0ffee0000000000000000000000000000000000 outcome={\"ok\":false,\"failed_step\":\"wait until healthy\"}"),
        "{out}"
    );
}

#[test]
fn merge_request_jobs_get_the_reporter_token_and_no_host_key() {
    let repo = gcl_repo();
    let (ok, out) = gcl_run(
        repo.path(),
        &[
            "--variable",
            "CI_PIPELINE_SOURCE=merge_request_event",
            "--variable",
            "CI_MERGE_REQUEST_IID=3",
            "--variable",
            "BERTH_SSH_KEY=/secret/deploy-key",
            "--variable",
            "BERTH_LOGS_KEY=logs-key",
            "--variable",
            "BERTH_GITLAB_TOKEN=deploy-token",
            "--variable",
            "BERTH_MR_TOKEN=mr-token",
        ],
    );
    assert!(ok, "{out}");
    for sub in ["check", "plan"] {
        assert!(
            out.contains(&format!(
                "berth-stub: {sub} --app-dir . | ssh_key= logs_key= token=mr-token"
            )),
            "{sub}:\n{out}"
        );
    }
    assert!(!out.contains("berth-stub: deploy"), "{out}");
    assert!(!out.contains("berth-stub: checkout"), "{out}");
}
