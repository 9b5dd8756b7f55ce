//! The published JSON Schemas (docs/schema/) and berth's parser agree: both
//! accept the skeleton, and every bad input the parser refuses that a schema
//! can express is refused by the schema too.

use serde_json::Value;

use crate::bad_input::{cases, Kind};
use crate::common::{repo_root, APP_YML, RELEASE_YML};

fn validator(name: &str) -> jsonschema::Validator {
    let path = repo_root().join("docs/schema").join(name);
    let schema: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap())
        .unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()));
    jsonschema::options()
        .should_validate_formats(true)
        .build(&schema)
        .unwrap_or_else(|e| panic!("{} is not a valid schema: {e}", path.display()))
}

/// What an editor would see: the YAML read by a standard YAML library.
fn as_json(text: &str) -> Option<Value> {
    serde_yaml::from_str::<serde_yaml::Value>(text)
        .ok()
        .and_then(|v| serde_json::to_value(v).ok())
}

/// Refusals that depend on rules across keys or on how the file is written,
/// which JSON Schema cannot express. `berth validate` catches them.
const PARSER_ONLY: &[&str] = &[
    "explicit tag",
    "domain used twice",
    "ports shared between environments",
    "memory above bound",
    "php memory above container",
    "post smaller than upload",
    "storage paths overlap",
    "sessions not a storage path",
    "php memory above app.yml",
];

#[test]
fn schemas_accept_the_skeleton() {
    let release = validator("release.schema.json");
    let app = validator("app.schema.json");
    let release_json = as_json(RELEASE_YML).unwrap();
    let app_json = as_json(APP_YML).unwrap();
    let errors: Vec<String> = release
        .iter_errors(&release_json)
        .map(|e| e.to_string())
        .collect();
    assert!(errors.is_empty(), "release.yml: {errors:?}");
    let errors: Vec<String> = app.iter_errors(&app_json).map(|e| e.to_string()).collect();
    assert!(errors.is_empty(), "app.yml: {errors:?}");
    // docs/config.md's berth.yml, which the parser reads too.
    let text = "storage: [data, var/sessions]\nsessions: var/sessions\nhealth: {path: /health.php, status: 200, contains: \"db: ok\"}\nweb:\n  deny: [/data, /config, /bin]\n  front_controller: /index.php\n  static: {extensions: [css, js, png, svg, woff2], max_age: 7d}\n  compress: true\nphp: {memory_limit: 96M, max_execution_time: 20, upload_max_filesize: 4M, post_max_size: 4M}\n";
    let granted = berth::config::AppFile::parse(
        "app.yml",
        &APP_YML.replace("  pids: 128\n", "  pids: 128\n  storage: 64M\n"),
    )
    .unwrap();
    berth::config::settings::AppSettings::parse("berth.yml", text, &granted).unwrap();
    let errors: Vec<String> = validator("berth.schema.json")
        .iter_errors(&as_json(text).unwrap())
        .map(|e| e.to_string())
        .collect();
    assert!(errors.is_empty(), "berth.yml: {errors:?}");
}

#[test]
fn schemas_refuse_what_the_parser_refuses() {
    let release = validator("release.schema.json");
    let app = validator("app.schema.json");
    let settings = validator("berth.schema.json");
    let mut compared = 0;
    let mut disagreements = Vec::new();
    for case in cases() {
        let schema = match case.kind {
            Kind::Release => &release,
            Kind::App => &app,
            Kind::Settings => &settings,
            Kind::Inventory => continue,
        };
        // Not YAML a standard library reads (duplicate keys, several
        // documents, syntax errors): there is nothing for a schema to judge.
        let Some(json) = as_json(&case.text) else {
            continue;
        };
        compared += 1;
        let schema_accepts = schema.is_valid(&json);
        let parser_only = PARSER_ONLY.contains(&case.name);
        if schema_accepts != parser_only {
            disagreements.push(format!(
                "{}: schema {}",
                case.name,
                if schema_accepts {
                    "accepts it"
                } else {
                    "refuses it, remove it from PARSER_ONLY"
                }
            ));
        }
    }
    assert!(compared >= 80, "only {compared} cases compared");
    assert!(disagreements.is_empty(), "{disagreements:#?}");
}
