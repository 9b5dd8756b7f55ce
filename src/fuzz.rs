//! Property tests over every parser that reads untrusted input: none may
//! panic, on arbitrary text or bytes nor on near-valid files (a valid file
//! with lines mutated, scalars replaced by random ones). Every problem a
//! parser reports must also print as visible text (no control, escape or
//! bidi character but the newlines berth puts between lines).
//!
//! `cargo test` runs each target with proptest's default 256 cases (or
//! `PROPTEST_CASES`); `scripts/fuzz` runs them for minutes each. Failures
//! proptest finds are kept in `proptest-regressions/` and replayed first.

use proptest::prelude::*;

use crate::config::{AppFile, Inventory, Problems, ReleaseFile};

const RELEASE_YML: &str = include_str!("../mgmt-repo-skeleton/release.yml");
const APP_YML: &str = include_str!("../mgmt-repo-skeleton/app.yml");
/// The skeleton with the optional lists too, so that mutations reach their
/// decoders.
const APP_YML_FULL: &str = concat!(
    include_str!("../mgmt-repo-skeleton/app.yml"),
    "extra_hosts:\n  - name: db.partner.example\n    address: 10.1.2.3\n",
    "egress:\n  - name: api.partner.example\n    address: 198.51.100.7\n    ports: [443, 8443]\n",
    "mail: {from: noreply@shop.example.com, per_minute: 10}\n",
);
const BERTH_YML: &str = "\
storage: [data, var/sessions]
sessions: var/sessions
health:
  path: /health.php
  status: 200
  contains: \"db: ok\"
web:
  deny: [/data, /config, /bin]
  front_controller: /index.php
";
/// The test inventory with every optional key.
const INVENTORY_FULL: &str = concat!(
    include_str!("../tests/fixtures/inventory.yml"),
    "    logs_cgroup: berth/logs\n",
    "    mail: {relay: \"10.0.0.25:25\"}\n",
);
const ALLOCATIONS_YML: &str = "\
hosts:
  web-1:
    environments: [test, production]
    ports: {first: 18000, last: 18005}
  web-2:
    environments: [production]
    ports: {first: 19000, last: 19001}
apps:
  shop:
    test: {host: web-1, ports: [18000, 18001]}
    production: {host: web-2, ports: [19000, 19001]}
";
const RECORD_TAG: &str = "deployed/production/12";
const RECORD_MESSAGE: &str = "berth release record: production v1.2.0 to web-1

env: production
ref: v1.2.0
commit: 0123456789abcdef0123456789abcdef01234567
release: v1.2.0
host: web-1
slot: blue
time: 2026-11-22T10:00:00Z
pipeline: https://gitlab.example.com/g/p/-/pipelines/7
merge_request: 4
action: deploy
";
const REQUEST: &str = "logs --env production --source access --slot active --since 15m --tail 20 --grep 'PHP (Warning|Fatal)' --follow";

/// Scalars that YAML, the newtypes and the parsers treat specially.
const TOKENS: &[&str] = &[
    "",
    "~",
    "null",
    "true",
    "false",
    "yes",
    "0",
    "-1",
    "65535",
    "65536",
    "0x1F",
    "0o17",
    "1e400",
    "-.inf",
    ".nan",
    "99999999999999999999999",
    "1.5",
    "0.001",
    "-",
    "--",
    "[",
    "]",
    "{",
    "}",
    "[]",
    "{}",
    "&a",
    "*a",
    "!!str",
    "!x",
    "|",
    ">",
    "'",
    "\"",
    "#",
    "<<",
    ":",
    ": ",
    "? ",
    "%",
    "@",
    "`",
    "..",
    "/",
    "//",
    "../x",
    "/etc/passwd",
    "a\u{0}b",
    "\u{1b}]0;t\u{7}",
    "\u{202e}",
    "é",
    "日本",
    "v1.0.0",
    "test",
    "production",
    "local",
    "web-1",
    "127.0.0.1",
    "[::1]",
    "18001",
    "256M",
    "1G",
    "0.5",
    "1d",
    "15m",
    "1é",
    "deployed/test/1",
];

/// Any text: mostly printable, with YAML's punctuation, controls and
/// multi-byte characters mixed in.
fn any_text() -> impl Strategy<Value = String> {
    prop_oneof![
        ".{0,40}",
        "[ -~]{0,40}",
        "[a-z0-9:\\-\\[\\]{}'\"#&*!|>%@`,.\n\t \u{1b}\u{7}\u{202e}é]{0,40}",
        proptest::sample::select(TOKENS).prop_map(str::to_string),
    ]
}

/// A scalar written into YAML: raw (which may break the syntax) or as a
/// double-quoted string (which keeps the file valid YAML).
fn scalar() -> impl Strategy<Value = String> {
    prop_oneof![
        any_text(),
        any_text().prop_map(|s| serde_json::to_string(&s).expect("a string serializes")),
        any::<i64>().prop_map(|n| n.to_string()),
        any::<f64>().prop_map(|n| n.to_string()),
    ]
}

#[derive(Debug, Clone)]
enum Mutation {
    /// Replaces what follows the line's first `: ` (or `- `) with a scalar.
    SetValue(usize, String),
    /// Replaces the line's key (what precedes `:`).
    SetKey(usize, String),
    InsertLine(usize, String),
    DeleteLine(usize),
    DuplicateLine(usize),
    /// Changes the line's indentation to this many spaces.
    Indent(usize, usize),
    /// Inserts a character at a byte position (rounded to a boundary).
    InsertChar(usize, char),
    /// Cuts the text at a byte position.
    Truncate(usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let at = any::<usize>();
    prop_oneof![
        4 => (at, scalar()).prop_map(|(i, s)| Mutation::SetValue(i, s)),
        2 => (at, any_text()).prop_map(|(i, s)| Mutation::SetKey(i, s)),
        2 => (at, any_text().prop_flat_map(|key| (Just(key), scalar()))
            .prop_map(|(k, v)| format!("  {k}: {v}")))
            .prop_map(|(i, s)| Mutation::InsertLine(i, s)),
        1 => at.prop_map(Mutation::DeleteLine),
        1 => at.prop_map(Mutation::DuplicateLine),
        1 => (at, 0usize..14).prop_map(|(i, n)| Mutation::Indent(i, n)),
        1 => (at, any::<char>()).prop_map(|(i, c)| Mutation::InsertChar(i, c)),
        1 => at.prop_map(Mutation::Truncate),
    ]
}

/// `valid` with the mutations applied, in order.
fn mutate(valid: &str, mutations: &[Mutation]) -> String {
    let mut lines: Vec<String> = valid.lines().map(str::to_string).collect();
    let mut text;
    for m in mutations {
        let n = lines.len().max(1);
        match m {
            Mutation::SetValue(i, value) => {
                if let Some(line) = lines.get_mut(i % n) {
                    let cut = line
                        .find(": ")
                        .map(|p| p + 2)
                        .or_else(|| line.find("- ").map(|p| p + 2));
                    if let Some(cut) = cut {
                        line.truncate(cut);
                        line.push_str(value);
                    }
                }
            }
            Mutation::SetKey(i, key) => {
                if let Some(line) = lines.get_mut(i % n) {
                    if let Some(colon) = line.find(':') {
                        let indent = line.len() - line.trim_start().len();
                        *line = format!("{}{key}{}", &line[..indent], &line[colon..]);
                    }
                }
            }
            Mutation::InsertLine(i, new) => lines.insert(i % (lines.len() + 1), new.clone()),
            Mutation::DeleteLine(i) => {
                if !lines.is_empty() {
                    lines.remove(i % n);
                }
            }
            Mutation::DuplicateLine(i) => {
                if let Some(line) = lines.get(i % n).cloned() {
                    lines.insert(i % n, line);
                }
            }
            Mutation::Indent(i, spaces) => {
                if let Some(line) = lines.get_mut(i % n) {
                    *line = format!("{}{}", " ".repeat(*spaces), line.trim_start());
                }
            }
            Mutation::InsertChar(at, _) | Mutation::Truncate(at) => {
                text = lines.join("\n");
                let mut at = at % (text.len() + 1);
                while !text.is_char_boundary(at) {
                    at -= 1;
                }
                match m {
                    Mutation::InsertChar(_, c) => text.insert(at, *c),
                    _ => text.truncate(at),
                }
                lines = text.lines().map(str::to_string).collect();
            }
        }
    }
    let mut text = lines.join("\n");
    text.push('\n');
    text
}

/// Inputs for one file parser: arbitrary text, arbitrary bytes read as
/// UTF-8 where they are, and mutations of a valid file.
fn inputs(valid: &'static str) -> impl Strategy<Value = String> {
    prop_oneof![
        1 => any_text(),
        1 => proptest::collection::vec(any::<u8>(), 0..512)
            .prop_map(|b| String::from_utf8_lossy(&b).into_owned()),
        6 => proptest::collection::vec(mutation(), 1..6).prop_map(move |m| mutate(valid, &m)),
    ]
}

/// A message printed as berth prints it holds nothing hidden but newlines.
fn assert_visible(text: &str) {
    assert!(
        !text.chars().any(|c| c != '\n' && crate::text::is_hidden(c)),
        "hidden character in {text:?}"
    );
}

fn check_problems<T>(result: Result<T, Problems>) {
    if let Err(problems) = result {
        assert!(!problems.0.is_empty(), "an error without a problem");
        assert_visible(&problems.to_string());
    }
}

/// The limits of the app a `berth.yml` is judged against: the skeleton's,
/// with storage granted.
fn storage_app() -> AppFile {
    let text = APP_YML.replacen("  pids: 128\n", "  pids: 128\n  storage: 64M\n", 1);
    assert!(text.contains("storage: 64M"), "the skeleton's limits moved");
    AppFile::parse("app.yml", &text).expect("the skeleton with storage is valid")
}

proptest! {
    #[test]
    fn release_yml(text in inputs(RELEASE_YML)) {
        check_problems(ReleaseFile::parse("release.yml", &text));
    }

    #[test]
    fn app_yml(text in inputs(APP_YML_FULL)) {
        check_problems(AppFile::parse("app.yml", &text));
    }

    #[test]
    fn inventory(text in inputs(INVENTORY_FULL)) {
        check_problems(Inventory::parse("inventory.yml", &text));
    }

    #[test]
    fn berth_yml(text in inputs(BERTH_YML)) {
        check_problems(crate::config::settings::AppSettings::parse("berth.yml", &text, &storage_app()));
    }

    #[test]
    fn app_dir(release in inputs(RELEASE_YML), app in inputs(APP_YML)) {
        check_problems(crate::config::AppDir::parse(
            ("release.yml", Ok(release)),
            ("app.yml", Ok(app)),
        ));
    }

    #[test]
    fn allocations(text in inputs(ALLOCATIONS_YML)) {
        check_problems(crate::plan::allocation::Allocations::parse("allocations.yml", &text));
    }

    #[test]
    fn release_records(
        tag in prop_oneof![
            1 => any_text(),
            1 => (proptest::sample::select(TOKENS), any_text())
                .prop_map(|(env, n)| format!("deployed/{env}/{n}")),
            2 => any::<u64>().prop_map(|n| format!("deployed/production/{n}")),
            2 => Just(RECORD_TAG.to_string()),
        ],
        message in inputs(RECORD_MESSAGE),
    ) {
        let _ = crate::report::records::parse_tag_name(&tag);
        if let Err(reason) = crate::report::records::ReleaseRecord::parse(&tag, &message) {
            assert_visible(&reason);
        }
    }

    #[test]
    fn serve_logs_request(
        line in prop_oneof![
            1 => any_text(),
            1 => proptest::collection::vec(any::<u8>(), 0..200)
                .prop_map(|b| String::from_utf8_lossy(&b).into_owned()),
            4 => proptest::collection::vec(
                (any::<usize>(), prop_oneof![
                    any_text(),
                    proptest::sample::select(&[
                        "--env", "--source", "--since", "--tail", "--grep", "--slot",
                        "--follow", "--help", "-h", "--version", "--", "'", "\\", "'a b'",
                        "--grep=", "--since=", "app", "php", "nginx", "access", "error",
                        "backup", "(", "\\w{60}z", "[", "a{99999}", "(?i)x",
                    ][..]).prop_map(str::to_string),
                ]),
                1..6,
            ).prop_map(|edits| {
                let mut words: Vec<String> =
                    REQUEST.split(' ').map(str::to_string).collect();
                for (at, word) in edits {
                    let n = words.len();
                    if at % 3 == 0 && n > 1 {
                        words.remove(at % n);
                    } else if at % 3 == 1 {
                        words.insert(at % (n + 1), word);
                    } else {
                        words[at % n] = word;
                    }
                }
                words.join(" ")
            }),
        ],
    ) {
        match crate::commands::logs::parse_request(&line) {
            Err(message) => assert_visible(&message),
            Ok((_, query)) => {
                if let Err(e) = crate::commands::logs::check_query(&query) {
                    assert_visible(&e);
                }
            }
        }
    }

    #[test]
    fn durations(text in prop_oneof![
        any_text(),
        ("[0-9]{0,8}", ".").prop_map(|(d, u)| format!("{d}{u}")),
    ]) {
        match crate::plan::logs::parse_duration(&text) {
            Ok(seconds) => assert!(seconds <= 999_999 * 86_400),
            Err(e) => assert_visible(&e.message),
        }
    }

    #[test]
    fn dotenv_values(
        values in proptest::collection::vec(
            (proptest::sample::select(&["A", "B", "RELEASE_ID", "x_1"][..]), any_text()),
            0..6,
        ),
        earlier in proptest::collection::vec(any::<u8>(), 0..300),
    ) {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let path = dir.path().join("outputs.env");
        std::fs::write(&path, &earlier).expect("write the earlier outputs");
        let mut outputs = crate::report::dotenv::Outputs::default();
        for (key, value) in &values {
            outputs.set(key, value.clone());
        }
        outputs.write(Some(&path)).expect("write the outputs");
        let written = std::fs::read_to_string(&path).expect("outputs are UTF-8");
        // Each value set is on one line of its own, as set last.
        for (key, _) in &values {
            let last = &values.iter().rev().find(|(k, _)| k == key).unwrap().1;
            let expected = format!("{key}={}", last.replace(['\n', '\r'], " ").trim());
            prop_assert_eq!(
                written.lines().filter(|l| l.starts_with(&format!("{key}="))).collect::<Vec<_>>(),
                vec![expected.as_str()]
            );
        }
    }

    #[test]
    fn log_time_stamps(line in prop_oneof![
        any_text(),
        "\\[[0-9]{0,3}/[A-Za-z]{0,3}/[0-9:]{0,20} [+\\-]?[0-9é]{0,5}\\].{0,10}",
        "[0-9/ :é]{0,25}.{0,5}",
        "[0-9\\-T:.Zé]{0,32} .{0,10}",
    ]) {
        let _ = crate::plan::logs::access_log_time(&line);
        let _ = crate::plan::logs::error_log_time(&line);
        let _ = crate::plan::logs::split_docker_timestamp(&line);
    }
}

/// The near-valid inputs start from valid files: each fixture parses.
#[test]
fn every_fixture_is_valid() {
    AppFile::parse("app.yml", APP_YML_FULL).expect("APP_YML_FULL");
    Inventory::parse("inventory.yml", INVENTORY_FULL).expect("INVENTORY_FULL");
    crate::config::settings::AppSettings::parse("berth.yml", BERTH_YML, &storage_app())
        .expect("BERTH_YML");
    ReleaseFile::parse("release.yml", RELEASE_YML).expect("RELEASE_YML");
}
