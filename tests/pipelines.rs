//! The CI/CD components in `ci-templates/` and the pipelines built from them.
//!
//! - Every component's `spec:` header and every pipeline, after its inputs
//!   are interpolated (defaults, and each value of every `options` input),
//!   validates against GitLab's CI schema (`tests/fixtures/gitlab-ci.schema.json`).
//! - Every `berth …` command in a job's scripts parses with the real CLI, with
//!   the shell variables it uses expanded to plausible values.
//! - The components are generated: `scripts/gen-ci-templates` writes
//!   `ci-templates/templates/*.yml` from the pieces in `ci-templates/src/`,
//!   and the committed files must be exactly what it writes. The `release`
//!   component's jobs are the smaller components' jobs with matching inputs.
//! - Which jobs each kind of pipeline holds (merge request, default branch,
//!   "Run pipeline"), and what merge request jobs unset.
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

use crate::common::{edit, edit_first, repo_root};

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
            "CI_MERGE_REQUEST_DIFF_BASE_SHA",
            "89abcdef0123456789abcdef0123456789abcdef",
        ),
        ("CI_BUILDS_DIR", "/builds"),
        ("before", "--before=/builds/before-allocations.yml"),
        (
            "before_inventory",
            "--before-inventory=/builds/before-inventory.yml",
        ),
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
        ("source", "access"),
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
            ("BERTH_LOGS_SOURCE", "php access"),
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

const COMPONENTS: &[&str] = &["check-plan", "deploy", "dns", "logs", "release", "rollback"];

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

// --- the components are generated from ci-templates/src/ ---------------------

/// Runs scripts/gen-ci-templates with `args`; returns (success, stderr).
fn gen_ci_templates(args: &[&std::ffi::OsStr]) -> (bool, String) {
    let output = std::process::Command::new(repo_root().join("scripts/gen-ci-templates"))
        .args(args)
        .output()
        .expect("scripts/gen-ci-templates runs");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn file_names(dir: &std::path::Path) -> BTreeSet<String> {
    std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

/// How `committed` differs from `generated`, one entry per file: a file
/// only one of them has, or `diff -u` of the two.
fn template_drift(committed: &std::path::Path, generated: &std::path::Path) -> Vec<String> {
    let (ours, theirs) = (file_names(committed), file_names(generated));
    let mut drift = Vec::new();
    for name in ours.union(&theirs) {
        match (ours.contains(name), theirs.contains(name)) {
            (true, false) => drift.push(format!(
                "{name}: committed, but no ci-templates/src/components/{name} makes it"
            )),
            (false, true) => drift.push(format!("{name}: generated, but not committed")),
            _ => {
                let (a, b) = (committed.join(name), generated.join(name));
                if std::fs::read(&a).unwrap() == std::fs::read(&b).unwrap() {
                    continue;
                }
                let diff = std::process::Command::new("diff")
                    .arg("-u")
                    .args(["--label", &format!("committed/{name}")])
                    .args(["--label", &format!("generated/{name}")])
                    .args([&a, &b])
                    .output()
                    .expect("diff runs");
                drift.push(String::from_utf8_lossy(&diff.stdout).into_owned());
            }
        }
    }
    drift
}

#[test]
fn the_committed_templates_are_what_the_generator_writes() {
    let out = tempfile::tempdir().unwrap();
    let (ok, err) = gen_ci_templates(&["--out".as_ref(), out.path().as_os_str()]);
    assert!(ok, "scripts/gen-ci-templates failed:\n{err}");
    let drift = template_drift(&components_dir(), out.path());
    assert!(
        drift.is_empty(),
        "ci-templates/templates/ is not what scripts/gen-ci-templates makes of ci-templates/src/; \
         edit the pieces there and run the script:\n{}",
        drift.join("\n")
    );
    // Each says so, first thing, and names its pieces.
    for name in COMPONENTS {
        let text = std::fs::read_to_string(components_dir().join(format!("{name}.yml"))).unwrap();
        let expected = format!(
            "# Generated by scripts/gen-ci-templates; do not edit. Change the pieces\n\
             # it is made of, in ci-templates/src/, and run the script again:\n\
             #   components/{name}.yml\n"
        );
        assert!(
            text.starts_with(&expected),
            "{name}.yml begins:\n{}",
            &text[..300]
        );
    }
}

#[test]
fn template_drift_is_shown_as_a_diff() {
    let committed = tempfile::tempdir().unwrap();
    for name in file_names(&components_dir()) {
        std::fs::copy(components_dir().join(&name), committed.path().join(&name)).unwrap();
    }
    assert_eq!(
        template_drift(committed.path(), &components_dir()),
        Vec::<String>::new()
    );
    // A hand edit, and a file no piece makes.
    let logs = committed.path().join("logs.yml");
    let text = std::fs::read_to_string(&logs).unwrap();
    std::fs::write(
        &logs,
        edit(
            &text,
            "BERTH_LOGS_LINES: \"500\"",
            "BERTH_LOGS_LINES: \"200\"",
        ),
    )
    .unwrap();
    std::fs::write(committed.path().join("extra.yml"), "x: 1\n").unwrap();
    let drift = template_drift(committed.path(), &components_dir());
    assert_eq!(drift.len(), 2, "{drift:#?}");
    assert_eq!(
        drift[0],
        "extra.yml: committed, but no ci-templates/src/components/extra.yml makes it"
    );
    assert!(
        drift[1].starts_with("--- committed/logs.yml\n+++ generated/logs.yml\n@@ ")
            && drift[1]
                .contains("\n-    BERTH_LOGS_LINES: \"200\"\n+    BERTH_LOGS_LINES: \"500\"\n")
            && drift[1]
                .lines()
                .filter(|l| l.starts_with(['-', '+']))
                .count()
                == 4,
        "{}",
        drift[1]
    );
}

#[test]
fn the_generator_refuses_a_placeholder_without_a_value_and_a_missing_piece() {
    let src = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let copy = std::process::Command::new("cp")
        .arg("-r")
        .arg(repo_root().join("ci-templates/src/."))
        .arg(src.path())
        .status()
        .unwrap();
    assert!(copy.success());
    let run = |src: &std::path::Path| {
        gen_ci_templates(&[
            "--src".as_ref(),
            src.as_os_str(),
            "--out".as_ref(),
            out.path().as_os_str(),
        ])
    };
    // Unchanged, the copy makes the committed templates.
    let (ok, err) = run(src.path());
    assert!(ok, "{err}");
    assert!(template_drift(&components_dir(), out.path()).is_empty());

    let rollback = src.path().join("jobs/rollback.yml");
    let text = std::fs::read_to_string(&rollback).unwrap();
    let line = text.lines().position(|l| l.contains("@ENV@")).unwrap() + 1;
    std::fs::write(&rollback, edit_first(&text, "@ENV@", "@ENVIRONMENT@")).unwrap();
    let (ok, err) = run(src.path());
    assert!(!ok);
    assert_eq!(
        err,
        format!(
            "gen-ci-templates: jobs/rollback.yml:{line}: @ENVIRONMENT@ has no value (no @set ENVIRONMENT before it)\n"
        )
    );
    std::fs::write(&rollback, text).unwrap();

    let logs = src.path().join("components/logs.yml");
    let text = std::fs::read_to_string(&logs).unwrap();
    std::fs::write(
        &logs,
        edit(
            &text,
            "    @insert inputs/image.yml\n",
            "    @insert inputs/imgae.yml\n",
        ),
    )
    .unwrap();
    let (ok, err) = run(src.path());
    assert!(!ok);
    assert_eq!(err, "gen-ci-templates: no such piece: inputs/imgae.yml\n");
    // A failed run leaves the output as it was.
    assert!(template_drift(&components_dir(), out.path()).is_empty());
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

/// The predefined variables the rules read, in each kind of pipeline a
/// management repository sees (unset ones left out): merge request
/// pipelines have no `CI_COMMIT_BRANCH`; "Run pipeline" is source `web`.
fn pipeline_kinds() -> Vec<(&'static str, BTreeMap<&'static str, &'static str>)> {
    let kind =
        |name, pairs: &[(&'static str, &'static str)]| (name, pairs.iter().copied().collect());
    vec![
        kind(
            "merge request",
            &[
                ("CI_PIPELINE_SOURCE", "merge_request_event"),
                ("CI_DEFAULT_BRANCH", "main"),
                ("CI_COMMIT_REF_PROTECTED", "false"),
            ],
        ),
        kind(
            "push to main",
            &[
                ("CI_PIPELINE_SOURCE", "push"),
                ("CI_COMMIT_BRANCH", "main"),
                ("CI_DEFAULT_BRANCH", "main"),
                ("CI_COMMIT_REF_PROTECTED", "true"),
            ],
        ),
        kind(
            "push to a branch",
            &[
                ("CI_PIPELINE_SOURCE", "push"),
                ("CI_COMMIT_BRANCH", "dee/look"),
                ("CI_DEFAULT_BRANCH", "main"),
                ("CI_COMMIT_REF_PROTECTED", "false"),
            ],
        ),
        kind(
            "Run pipeline on a branch",
            &[
                ("CI_PIPELINE_SOURCE", "web"),
                ("CI_COMMIT_BRANCH", "dee/look"),
                ("CI_DEFAULT_BRANCH", "main"),
                ("CI_COMMIT_REF_PROTECTED", "false"),
            ],
        ),
        kind(
            "Run pipeline on main",
            &[
                ("CI_PIPELINE_SOURCE", "web"),
                ("CI_COMMIT_BRANCH", "main"),
                ("CI_DEFAULT_BRANCH", "main"),
                ("CI_COMMIT_REF_PROTECTED", "true"),
            ],
        ),
    ]
}

/// GitLab's `rules:if` for the expressions these files use: terms joined by
/// `&&`, each `$A` (set and not empty), `$A == "x"`, `$A != "x"`,
/// `$A == $B` or `$A != $B` (an unset variable is null). Any other
/// expression panics, so a new form needs a line here.
fn rule_holds(expr: &str, vars: &BTreeMap<&str, &str>) -> bool {
    let term = Regex::new(r#"^\$(\w+)(?:\s*(==|!=)\s*(?:"([^"]*)"|\$(\w+)))?$"#).unwrap();
    expr.split("&&").all(|t| {
        let m = term
            .captures(t.trim())
            .unwrap_or_else(|| panic!("no evaluation for the rule term {t:?} of {expr:?}"));
        let left = vars.get(&m[1]).copied();
        let Some(op) = m.get(2) else {
            return left.is_some_and(|v| !v.is_empty());
        };
        let right = match (m.get(3), m.get(4)) {
            (Some(literal), _) => Some(literal.as_str()),
            (None, Some(name)) => vars.get(name.as_str()).copied(),
            (None, None) => unreachable!(),
        };
        (left == right) == (op.as_str() == "==")
    })
}

/// How a job starts in a pipeline with `vars`, by its first matching rule
/// (`on_success` when the rule names none); None when it is not in it.
fn job_when(job: &Value, vars: &BTreeMap<&str, &str>) -> Option<String> {
    let rules = job["rules"].as_array().expect("every job has rules");
    let rule = rules
        .iter()
        .find(|r| rule_holds(r["if"].as_str().unwrap(), vars))?;
    let when = rule
        .get("when")
        .and_then(Value::as_str)
        .unwrap_or("on_success");
    (when != "never").then(|| when.to_string())
}

/// The jobs of `pipeline` in a pipeline with `vars`, with how they start;
/// empty when its workflow rules make no pipeline at all.
fn pipeline_of(pipeline: &Value, vars: &BTreeMap<&str, &str>) -> BTreeMap<String, String> {
    if let Some(rules) = pipeline["workflow"]["rules"].as_array() {
        let runs = rules
            .iter()
            .find(|r| rule_holds(r["if"].as_str().unwrap(), vars))
            .is_some_and(|r| r.get("when").and_then(Value::as_str) != Some("never"));
        if !runs {
            return BTreeMap::new();
        }
    }
    jobs(pipeline)
        .into_iter()
        .filter_map(|(name, job)| job_when(&job, vars).map(|w| (name, w)))
        .collect()
}

fn expect_jobs(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

#[test]
fn the_rule_evaluator_reads_the_forms_the_templates_use() {
    let vars: BTreeMap<&str, &str> = [
        ("CI_PIPELINE_SOURCE", "web"),
        ("CI_COMMIT_BRANCH", "main"),
        ("CI_DEFAULT_BRANCH", "main"),
        ("EMPTY", ""),
    ]
    .into_iter()
    .collect();
    for (expr, holds) in [
        ("$CI_PIPELINE_SOURCE == \"web\"", true),
        ("$CI_PIPELINE_SOURCE != \"web\"", false),
        ("$CI_COMMIT_BRANCH == $CI_DEFAULT_BRANCH", true),
        (
            "$CI_COMMIT_BRANCH == $CI_DEFAULT_BRANCH && $UNSET == \"true\"",
            false,
        ),
        ("$UNSET != \"merge_request_event\"", true),
        ("$UNSET == $CI_DEFAULT_BRANCH", false),
        ("$CI_PIPELINE_SOURCE", true),
        ("$EMPTY", false),
        ("$UNSET", false),
    ] {
        assert_eq!(rule_holds(expr, &vars), holds, "{expr}");
    }
    let refused = std::panic::catch_unwind(|| rule_holds("$A =~ /x/", &BTreeMap::new()));
    assert!(refused.is_err(), "=~ is not evaluated, so it must not pass");
}

/// What the pipeline looks like to GitLab in each situation: which jobs a
/// pipeline of that kind contains, and how they start.
#[test]
fn the_release_pipeline_runs_the_right_jobs_in_each_kind_of_pipeline() {
    let (pipeline, _) = interpolate(&component("release"), &json!({})).unwrap();
    let jobs = jobs(&pipeline);
    let main = expect_jobs(&[
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
    ]);
    let mr = expect_jobs(&[("check", "on_success"), ("plan", "on_success")]);
    let logs_only = expect_jobs(&[("logs", "on_success")]);
    for (kind, vars) in pipeline_kinds() {
        let expected = match kind {
            "merge request" => mr.clone(),
            "push to main" => main.clone(),
            "push to a branch" => BTreeMap::new(),
            "Run pipeline on a branch" | "Run pipeline on main" => logs_only.clone(),
            other => panic!("no expectation for {other}"),
        };
        assert_eq!(pipeline_of(&pipeline, &vars), expected, "{kind}");
    }
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
    // production_when: on_success makes production follow test.
    let (auto, _) = interpolate(
        &component("release"),
        &json!({"production_when": "on_success"}),
    )
    .unwrap();
    let main_vars = &pipeline_kinds()[1].1;
    assert_eq!(
        job_when(&resolve_job(&auto, "deploy:production", 0), main_vars).as_deref(),
        Some("on_success")
    );
}

/// Each smaller component, included on its own (no workflow of its own),
/// adds nothing but the logs job to a "Run pipeline".
#[test]
fn a_run_pipeline_gets_no_job_of_the_smaller_components_but_logs() {
    for (kind, vars) in pipeline_kinds() {
        if !kind.starts_with("Run pipeline") {
            continue;
        }
        for name in ["check-plan", "deploy", "rollback", "logs"] {
            let (body, _) = interpolate(&component(name), &required_inputs(name)).unwrap();
            let expected = if name == "logs" {
                expect_jobs(&[("logs", "on_success")])
            } else {
                BTreeMap::new()
            };
            assert_eq!(pipeline_of(&body, &vars), expected, "{name} in {kind}");
        }
    }
}

/// The first two lines of every merge request job's script, in `check-plan`
/// and in `release`: the variables named by the inputs and the deploy
/// token are unset, then the merge request token becomes berth's token.
fn merge_request_job_preambles(inputs: &Value) -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    for name in ["check-plan", "release"] {
        let (body, _) = interpolate(&component(name), inputs).unwrap();
        let jobs = jobs(&body);
        for job in ["check", "plan"] {
            let script = jobs[job]["script"].as_array().unwrap();
            assert_eq!(script.len(), 3, "{name} {job}: {script:?}");
            out.insert(format!("{name} {job}"), json!(script[..2]));
        }
    }
    out
}

#[test]
fn merge_request_jobs_unset_the_variables_the_inputs_name() {
    let defaults = merge_request_job_preambles(&json!({}));
    let custom = merge_request_job_preambles(&json!({
        "ssh_key_variable": "APP_DEPLOY_KEY",
        "logs_key_variable": "APP_LOGS_KEY",
        "inventory_variable": "APP_HOSTS",
        "mr_token_variable": "APP_MR_TOKEN",
    }));
    for job in [
        "check-plan check",
        "check-plan plan",
        "release check",
        "release plan",
    ] {
        assert_eq!(
            defaults[job],
            json!([
                "unset BERTH_SSH_KEY BERTH_LOGS_KEY BERTH_INVENTORY BERTH_GITLAB_TOKEN",
                "export BERTH_GITLAB_TOKEN=\"${BERTH_MR_TOKEN:-}\"",
            ]),
            "{job} with the default inputs"
        );
        assert_eq!(
            custom[job],
            json!([
                "unset APP_DEPLOY_KEY APP_LOGS_KEY APP_HOSTS BERTH_GITLAB_TOKEN",
                "export BERTH_GITLAB_TOKEN=\"${APP_MR_TOKEN:-}\"",
            ]),
            "{job} with other variable names"
        );
    }
}

#[test]
fn merge_request_jobs_fetch_the_whole_history() {
    for name in ["check-plan", "release"] {
        let (body, _) = interpolate(&component(name), &json!({})).unwrap();
        let jobs = jobs(&body);
        for job in ["check", "plan"] {
            assert_eq!(
                jobs[job]["variables"],
                json!({"GIT_SUBMODULE_STRATEGY": "none", "GIT_DEPTH": "0"}),
                "{name} {job}"
            );
        }
        // Only they: the other jobs keep the runner's shallow clone.
        for (job, resolved) in &jobs {
            if job != "check" && job != "plan" {
                assert!(
                    resolved["variables"].get("GIT_DEPTH").is_none(),
                    "{name} {job}"
                );
            }
        }
    }
}

/// `ci-templates/management.yml`, what every management repository's
/// `ci_config_path` names: no `spec:` header, so GitLab offers no pipeline
/// inputs for it; an `include: local:` of the release component and
/// nothing else, so its pipeline is the component with its defaults.
#[test]
fn the_management_pipeline_is_the_release_component_with_no_inputs() {
    let path = repo_root().join("ci-templates/management.yml");
    let text = std::fs::read_to_string(&path).unwrap();
    let documents = text
        .lines()
        .filter(|l| l.trim_end() == "---" || l.trim_end() == "...")
        .count();
    assert_eq!(documents, 0, "management.yml must be one YAML document");
    let doc = yaml_to_json(&text, "management.yml");
    assert_eq!(
        doc,
        json!({"include": [{"local": "templates/release.yml"}]}),
        "management.yml holds the include and nothing else (no spec, no jobs)"
    );
    let errors = schema_errors(ci_schema(), &doc);
    assert!(errors.is_empty(), "management.yml: {errors:#?}");
    // Resolved as GitLab does, in the templates project at the same tag:
    // the release component, given no inputs, so every input at its
    // default (none may be required), which validates.
    let local = doc["include"][0]["local"].as_str().unwrap();
    let name = local
        .strip_prefix("templates/")
        .and_then(|n| n.strip_suffix(".yml"))
        .unwrap_or_else(|| panic!("{local} is not a component of ci-templates/templates"));
    assert_eq!(name, "release");
    let (resolved, _) = interpolate(&component(name), &json!({}))
        .unwrap_or_else(|e| panic!("management.yml gives release no inputs: {e}"));
    let errors = schema_errors(ci_schema(), &resolved);
    assert!(errors.is_empty(), "management.yml resolved: {errors:#?}");
    let names: Vec<String> = jobs(&resolved).into_keys().collect();
    assert_eq!(
        names,
        [
            "check",
            "checkout",
            "deploy:production",
            "deploy:test",
            "logs",
            "plan",
            "render",
            "report:production",
            "report:test",
            "restart:production",
            "restart:test",
            "rollback:production",
            "rollback:test",
        ]
    );
}

#[test]
fn the_skeleton_has_no_pipeline_file_of_its_own() {
    // In include mode a merge request pipeline would run the branch's own
    // .gitlab-ci.yml before berth check could refuse it; the pipeline is
    // ci_config_path's only (docs/pipelines.md).
    let path = repo_root().join("mgmt-repo-skeleton/.gitlab-ci.yml");
    assert!(!path.exists(), "{} is back", path.display());
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
/// variables the job handed it (and those named in `STUB_SHOW`), writes
/// what the real one writes (checkout's dotenv outputs, deploy's outcome
/// and result line, a log line).
const STUB_BERTH: &str = r#"#!/bin/sh
shown=
for v in ${STUB_SHOW:-}; do shown="$shown $v=$(printenv "$v" || true)"; done
echo "berth-stub: $* | ssh_key=${BERTH_SSH_KEY:-} logs_key=${BERTH_LOGS_KEY:-} token=${BERTH_GITLAB_TOKEN:-}${shown:+ |$shown}" >&2
env= outcome= source=
prev=
for a in "$@"; do
  case "$prev" in --env) env=$a ;; --outcome) outcome=$a ;; --source) source=$a ;; esac
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
  logs)
    echo "stub log line of $env $source" ;;
esac
"#;

/// A management repository on branch `main` with the stub berth in `bin/`,
/// and `management.yml` and `templates/release.yml` from ci-templates/,
/// which [`gcl_run`] runs as the pipeline: what GitLab does when the
/// project's `ci_config_path` is `management.yml@<templates project>:<tag>`
/// (gitlab-ci-local resolves the `include: local:` in this repository,
/// GitLab in the templates project; the files are the same).
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
    std::fs::copy(
        repo_root().join("ci-templates/management.yml"),
        root.join("management.yml"),
    )
    .unwrap();
    for file in ["release.yml", "app.yml"] {
        std::fs::copy(
            repo_root().join("mgmt-repo-skeleton").join(file),
            root.join(file),
        )
        .unwrap();
    }
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
        git_in(root, args);
    }
    dir
}

fn git_in(repo: &std::path::Path, args: &[&str]) {
    let status = std::process::Command::new("git")
        .args(args)
        .current_dir(repo)
        .status()
        .unwrap();
    assert!(status.success(), "git {args:?}");
}

/// The pipeline file [`gcl_run`] runs: `management.yml` as it is, or the
/// release component with inputs (`name=value`), as a platform's own file
/// that includes it with other inputs would.
enum PipelineFile<'a> {
    Management,
    ReleaseWith(&'a [&'a str]),
}

/// Runs `file` as the pipeline of `repo` in shell mode, through
/// scripts/gitlab-ci-local, with further gitlab-ci-local `args`; returns
/// (success, combined output).
fn gcl_run(repo: &std::path::Path, file: PipelineFile, args: &[&str]) -> (bool, String) {
    let path = format!(
        "{}:{}",
        repo.join("bin").display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let (file, inputs): (&str, &[&str]) = match file {
        PipelineFile::Management => ("management.yml", &[]),
        PipelineFile::ReleaseWith(inputs) => ("templates/release.yml", inputs),
    };
    let mut command = std::process::Command::new(repo_root().join("scripts/gitlab-ci-local"));
    command.args([
        "--file",
        file,
        "--shell-isolation",
        "--force-shell-executor",
        "--ignore-predefined-vars",
        "CI_COMMIT_REF_PROTECTED,CI_PIPELINE_SOURCE",
    ]);
    for input in inputs {
        command.args(["--input", input]);
    }
    let output = command
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

/// The jobs gitlab-ci-local ran, from its summary (` PASS  job`,
/// ` FAIL  job`, ` WARN  job`).
fn ran_jobs(out: &str) -> BTreeSet<String> {
    let line = Regex::new(r"^\s*(?:PASS|FAIL|WARN)\s+(\S+)\s*$").unwrap();
    out.lines()
        .filter_map(|l| line.captures(l).map(|m| m[1].to_string()))
        .collect()
}

/// The stub's lines in gitlab-ci-local's output, without the job prefix.
fn stub_lines(out: &str) -> Vec<String> {
    out.lines()
        .filter_map(|l| {
            l.split_once("> berth-stub: ")
                .map(|(_, rest)| rest.trim_end().to_string())
        })
        .filter(|l| !l.starts_with("--version"))
        .collect()
}

#[test]
#[ignore = "rig: gitlab-ci-local and Node.js; scripts/test runs it"]
fn the_main_pipeline_passes_checkout_outputs_and_deploy_results_along() {
    let repo = gcl_repo();
    let (ok, out) = gcl_run(
        repo.path(),
        PipelineFile::Management,
        &[
            "--variable",
            "CI_COMMIT_REF_PROTECTED=true",
            "--needs",
            "report:test",
        ],
    );
    assert!(ok, "{out}");
    assert_eq!(
        ran_jobs(&out),
        ["checkout", "render", "deploy:test", "report:test"]
            .map(String::from)
            .into(),
        "{out}"
    );
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
#[ignore = "rig: gitlab-ci-local and Node.js; scripts/test runs it"]
fn a_failed_deploy_is_still_reported_and_fails_the_pipeline() {
    let repo = gcl_repo();
    let (ok, out) = gcl_run(
        repo.path(),
        PipelineFile::Management,
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
#[ignore = "rig: gitlab-ci-local and Node.js; scripts/test runs it"]
fn merge_request_jobs_get_the_reporter_token_and_no_host_key() {
    let repo = gcl_repo();
    let (ok, out) = gcl_run(
        repo.path(),
        PipelineFile::Management,
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
            "BERTH_INVENTORY=/secret/hosts.yml",
            "--variable",
            "BERTH_GITLAB_TOKEN=deploy-token",
            "--variable",
            "BERTH_MR_TOKEN=mr-token",
            "--variable",
            "BERTH_CODE_USER=code-user",
            "--variable",
            "BERTH_CODE_TOKEN=code-token",
            "--variable",
            "STUB_SHOW=BERTH_INVENTORY BERTH_CODE_USER BERTH_CODE_TOKEN GIT_DEPTH",
        ],
    );
    assert!(ok, "{out}");
    assert_eq!(
        ran_jobs(&out),
        ["check", "plan"].map(String::from).into(),
        "{out}"
    );
    // The deploy key, logs key, inventory and deploy token are gone; the
    // Reporter token is berth's token; the code repository's deploy token
    // is there; the clone is not shallow.
    assert_eq!(
        stub_lines(&out),
        ["check", "plan"].map(|sub| format!(
            "{sub} --app-dir . | ssh_key= logs_key= token=mr-token | BERTH_INVENTORY= \
             BERTH_CODE_USER=code-user BERTH_CODE_TOKEN=code-token GIT_DEPTH=0"
        )),
        "{out}"
    );
}

#[test]
#[ignore = "rig: gitlab-ci-local and Node.js; scripts/test runs it"]
fn merge_request_jobs_unset_the_variables_the_inputs_name_when_they_run() {
    let repo = gcl_repo();
    let (ok, out) = gcl_run(
        repo.path(),
        PipelineFile::ReleaseWith(&[
            "ssh_key_variable=APP_DEPLOY_KEY",
            "logs_key_variable=APP_LOGS_KEY",
            "inventory_variable=APP_HOSTS",
            "mr_token_variable=APP_MR_TOKEN",
        ]),
        &[
            "--variable",
            "CI_PIPELINE_SOURCE=merge_request_event",
            "--variable",
            "CI_MERGE_REQUEST_IID=3",
            "--variable",
            "APP_DEPLOY_KEY=/secret/deploy-key",
            "--variable",
            "APP_LOGS_KEY=logs-key",
            "--variable",
            "APP_HOSTS=/secret/hosts.yml",
            "--variable",
            "BERTH_GITLAB_TOKEN=deploy-token",
            "--variable",
            "APP_MR_TOKEN=mr-token",
            "--variable",
            "STUB_SHOW=APP_DEPLOY_KEY APP_LOGS_KEY APP_HOSTS",
        ],
    );
    assert!(ok, "{out}");
    assert_eq!(
        stub_lines(&out),
        ["check", "plan"].map(|sub| format!(
            "{sub} --app-dir . | ssh_key= logs_key= token=mr-token | APP_DEPLOY_KEY= APP_LOGS_KEY= APP_HOSTS="
        )),
        "{out}"
    );
}

/// What the admins and `berth app create` set, unprotected, on every
/// management repository: the pipeline variables of a "Run pipeline" with
/// none typed in.
const LOGS_VARIABLES: &[&str] = &[
    "--variable",
    "CI_PIPELINE_SOURCE=web",
    "--variable",
    "BERTH_LOGS_KEY=logs-key",
    "--variable",
    "BERTH_LOGS_INVENTORY=/group/logs-inventory.yml",
];

#[test]
#[ignore = "rig: gitlab-ci-local and Node.js; scripts/test runs it"]
fn run_pipeline_with_no_variables_runs_only_logs_with_its_defaults() {
    let repo = gcl_repo();
    git_in(repo.path(), &["checkout", "-q", "-b", "dee/look"]);
    let (ok, out) = gcl_run(repo.path(), PipelineFile::Management, LOGS_VARIABLES);
    assert!(ok, "{out}");
    assert_eq!(ran_jobs(&out), ["logs".to_string()].into(), "{out}");
    assert_eq!(
        stub_lines(&out),
        ["app", "access", "error"].map(|source| format!(
            "logs --app-dir . --env production --source {source} --tail 500 --since 1h \
             --inventory /group/logs-inventory.yml | ssh_key= logs_key=logs-key token="
        )),
        "{out}"
    );
    for source in ["app", "access", "error"] {
        assert!(
            out.contains(&format!("> stub log line of production {source}\n")),
            "{source}:\n{out}"
        );
        let saved = repo.path().join(format!("logs/{source}.txt"));
        assert_eq!(
            std::fs::read_to_string(&saved)
                .unwrap_or_else(|e| panic!("{}: {e}\n{out}", saved.display())),
            format!("stub log line of production {source}\n")
        );
    }
}

#[test]
#[ignore = "rig: gitlab-ci-local and Node.js; scripts/test runs it"]
fn run_pipeline_on_main_never_deploys_and_its_variables_narrow_the_logs() {
    let repo = gcl_repo();
    let mut args = LOGS_VARIABLES.to_vec();
    args.extend([
        "--variable",
        "CI_COMMIT_REF_PROTECTED=true",
        "--variable",
        "BERTH_SSH_KEY=/secret/deploy-key",
        "--variable",
        "BERTH_INVENTORY=/secret/hosts.yml",
        "--variable",
        "BERTH_LOGS_ENV=test",
        "--variable",
        "BERTH_LOGS_SOURCE=php access",
        "--variable",
        "BERTH_LOGS_SINCE=2d",
        "--variable",
        "BERTH_LOGS_LINES=50",
    ]);
    let (ok, out) = gcl_run(repo.path(), PipelineFile::Management, &args);
    assert!(ok, "{out}");
    assert_eq!(ran_jobs(&out), ["logs".to_string()].into(), "{out}");
    assert_eq!(
        stub_lines(&out),
        ["php", "access"].map(|source| format!(
            "logs --app-dir . --env test --source {source} --tail 50 --since 2d \
             --inventory /group/logs-inventory.yml | ssh_key=/secret/deploy-key logs_key=logs-key token="
        )),
        "{out}"
    );
}

#[test]
#[ignore = "rig: gitlab-ci-local and Node.js; scripts/test runs it"]
fn a_failing_log_source_fails_the_logs_job_after_the_others_ran() {
    let repo = gcl_repo();
    // A berth whose `--source access` fails with exit code 4.
    let stub = edit(
        STUB_BERTH,
        "  logs)\n",
        "  logs)\n    if [ \"$source\" = access ]; then echo 'error: no access log' >&2; exit 4; fi\n",
    );
    std::fs::write(repo.path().join("bin/berth"), stub).unwrap();
    let (ok, out) = gcl_run(repo.path(), PipelineFile::Management, LOGS_VARIABLES);
    assert!(!ok, "the pipeline passed:\n{out}");
    assert!(out.contains("FAIL  logs"), "{out}");
    assert!(
        out.contains("berth logs (production, access): failed with exit code 4")
            && out.contains("> stub log line of production app\n")
            && out.contains("> stub log line of production error\n"),
        "{out}"
    );
    assert!(out.contains("exit code 4"), "{out}");
}
