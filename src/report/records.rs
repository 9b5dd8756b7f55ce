//! The release history: one annotated tag `deployed/<env>/<n>` per release
//! in the management repository, its message a record berth writes and
//! reads back (`key: value` lines, all values validated before).

use std::collections::BTreeMap;

use crate::config::values::{quoted, CommitId, EnvName, GitTag, HostName};

/// Tags of release records start with this.
pub const TAG_PREFIX: &str = "deployed/";

/// One release of one environment, as recorded. Every field was validated
/// when the record was read back: a record is developer-reachable data
/// (a tag of the management repository), never trusted as written.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ReleaseRecord {
    pub env: String,
    pub number: u64,
    #[serde(rename = "ref")]
    pub tag: String,
    /// The full commit id; `None` when the release's commit was not known
    /// (a rollback to a release that has no earlier record).
    pub commit: Option<String>,
    pub release: String,
    pub host: String,
    pub slot: String,
    pub time: String,
    pub pipeline: Option<String>,
    pub merge_request: Option<u64>,
    /// `deploy` (written by `berth report`) or `rollback`.
    pub action: String,
}

const FIELDS: &[&str] = &[
    "env",
    "ref",
    "commit",
    "release",
    "host",
    "slot",
    "time",
    "pipeline",
    "merge_request",
    "action",
];

/// Record numbers stay below this, far from `u64::MAX`, so that the next
/// number can never wrap (a forged `deployed/test/18446744073709551615`
/// is refused, not followed by `deployed/test/0`).
pub const MAX_NUMBER: u64 = 1_000_000_000;

impl ReleaseRecord {
    pub fn tag_name(&self) -> String {
        format!("{TAG_PREFIX}{}/{}", self.env, self.number)
    }

    /// The annotated tag's message.
    pub fn message(&self) -> String {
        let mut text = format!(
            "berth release record: {} {} to {}\n\n",
            self.env, self.tag, self.host
        );
        let mr = self.merge_request.map(|n| n.to_string());
        let values = [
            Some(&self.env),
            Some(&self.tag),
            self.commit.as_ref(),
            Some(&self.release),
            Some(&self.host),
            Some(&self.slot),
            Some(&self.time),
            self.pipeline.as_ref(),
            mr.as_ref(),
            Some(&self.action),
        ];
        for (key, value) in FIELDS.iter().zip(values) {
            if let Some(value) = value {
                let value = value.replace(['\n', '\r'], " ");
                text.push_str(&format!("{key}: {value}\n"));
            }
        }
        text
    }

    /// Reads a record back from its tag name and message, validating every
    /// field; the error says what is wrong.
    pub fn parse(tag_name: &str, message: &str) -> Result<ReleaseRecord, String> {
        let (env, number) = parse_tag_name(tag_name)
            .ok_or("the tag name is not deployed/<environment>/<number>")?;
        let mut fields: BTreeMap<&str, &str> = BTreeMap::new();
        for (key, value) in message.lines().filter_map(|line| line.split_once(": ")) {
            if FIELDS.contains(&key) && fields.insert(key, value.trim()).is_some() {
                return Err(format!("{key} is given twice"));
            }
        }
        let get = |key: &str| fields.get(key).map(|v| v.to_string());
        let need = |key: &str| get(key).ok_or(format!("{key} is missing"));
        let valid = |key: &str, value: &str, ok: bool| {
            if ok {
                Ok(())
            } else {
                Err(format!("{key} {} is not valid", quoted(value)))
            }
        };
        let record_env = need("env")?;
        if record_env != env {
            return Err(format!(
                "env {} differs from the tag name's {env}",
                quoted(&record_env)
            ));
        }
        let tag = need("ref")?;
        valid("ref", &tag, tag.parse::<GitTag>().is_ok())?;
        let commit = get("commit");
        if let Some(commit) = &commit {
            valid("commit", commit, commit.parse::<CommitId>().is_ok())?;
        }
        let release = need("release")?;
        valid("release", &release, release.parse::<GitTag>().is_ok())?;
        let host = need("host")?;
        valid("host", &host, host.parse::<HostName>().is_ok())?;
        let slot = need("slot")?;
        valid(
            "slot",
            &slot,
            matches!(slot.as_str(), "blue" | "green" | "unknown"),
        )?;
        let time = need("time")?;
        valid("time", &time, is_timestamp(&time))?;
        let pipeline = get("pipeline");
        if let Some(url) = &pipeline {
            valid("pipeline", url, is_plain_url(url))?;
        }
        let merge_request = match get("merge_request") {
            None => None,
            Some(text) => Some(
                text.parse::<u64>()
                    .ok()
                    .filter(|n| (1..MAX_NUMBER).contains(n))
                    .ok_or(format!("merge_request {} is not valid", quoted(&text)))?,
            ),
        };
        let action = get("action").unwrap_or_else(|| "deploy".to_string());
        valid(
            "action",
            &action,
            matches!(action.as_str(), "deploy" | "rollback"),
        )?;
        Ok(ReleaseRecord {
            env,
            number,
            tag,
            commit,
            release,
            host,
            slot,
            time,
            pipeline,
            merge_request,
            action,
        })
    }
}

/// `2026-11-22T10:00:00Z` and the like: digits, `-`, `:`, `T`, `Z`, `.`, `+`.
fn is_timestamp(text: &str) -> bool {
    (10..=40).contains(&text.len())
        && text
            .bytes()
            .all(|b| b.is_ascii_digit() || b"-:TZ.+".contains(&b))
}

/// An http(s) URL without spaces, quotes, angle brackets or controls.
fn is_plain_url(text: &str) -> bool {
    (text.starts_with("https://") || text.starts_with("http://"))
        && text.len() <= 500
        && text
            .bytes()
            .all(|b| b.is_ascii_graphic() && !b"\"'<>`\\".contains(&b))
}

/// `deployed/<env>/<n>` → (env, n), for a valid environment name and a
/// plain decimal number below [`MAX_NUMBER`].
pub fn parse_tag_name(tag_name: &str) -> Option<(String, u64)> {
    let rest = tag_name.strip_prefix(TAG_PREFIX)?;
    let (env, number) = rest.rsplit_once('/')?;
    env.parse::<EnvName>().ok()?;
    let plain = !number.is_empty()
        && number.len() <= 10
        && number.bytes().all(|b| b.is_ascii_digit())
        && !(number.len() > 1 && number.starts_with('0'));
    let number: u64 = if plain {
        number.parse().ok()?
    } else {
        return None;
    };
    (number < MAX_NUMBER).then(|| (env.to_string(), number))
}

/// A tag of the management repository under `deployed/`, as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordTag {
    pub name: String,
    pub message: String,
    /// Whether a protected-tag rule covers it, i.e. only berth's
    /// Maintainer-level identity (or an admin) could have created it.
    pub protected: bool,
}

/// A `deployed/*` tag berth does not believe, and why.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct IgnoredRecord {
    pub tag: String,
    pub why: String,
}

/// The release history read from the listed tags: the records berth
/// believes, and every other `deployed/*` tag with the reason it is not.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct History {
    pub records: Vec<ReleaseRecord>,
    pub ignored: Vec<IgnoredRecord>,
}

impl History {
    pub fn read(tags: impl IntoIterator<Item = RecordTag>) -> History {
        let mut history = History::default();
        for tag in tags {
            let verdict = if !tag.protected {
                Err("not protected, so anyone with Developer access could have made it".to_string())
            } else {
                ReleaseRecord::parse(&tag.name, &tag.message)
            };
            match verdict {
                Ok(record) => history.records.push(record),
                Err(why) => history.ignored.push(IgnoredRecord { tag: tag.name, why }),
            }
        }
        history
    }

    /// The number the next record of `env` gets: one more than the
    /// highest believed record, or an error when that would pass
    /// [`MAX_NUMBER`].
    pub fn next_number(&self, env: &str) -> Result<u64, String> {
        let highest = self
            .records
            .iter()
            .filter(|r| r.env == env)
            .map(|r| r.number)
            .max()
            .unwrap_or(0);
        highest
            .checked_add(1)
            .filter(|n| *n < MAX_NUMBER)
            .ok_or(format!("the release records of {env} reached {MAX_NUMBER}"))
    }
}

/// What a new release record says; [`History::plan_records`] numbers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewRecord {
    pub env: String,
    pub tag: String,
    pub commit: Option<String>,
    pub release: String,
    pub host: String,
    pub slot: Option<String>,
    pub time: String,
    /// `deploy` or `rollback`.
    pub action: &'static str,
}

/// A record to write, or one this pipeline wrote already (a re-run).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedRecord {
    pub record: ReleaseRecord,
    pub exists: bool,
}

impl History {
    /// Numbers `new` records in order, each after the highest believed
    /// record of its environment and the ones planned before it. A record
    /// of the same environment, tag, pipeline and time that exists already
    /// is reused, so running the same report again writes nothing.
    pub fn plan_records(
        &self,
        new: &[NewRecord],
        pipeline: Option<&str>,
        merge_request: Option<u64>,
    ) -> Result<Vec<PlannedRecord>, String> {
        let mut planned: Vec<PlannedRecord> = Vec::new();
        let mut numbering = self.clone();
        for wanted in new {
            let same = |r: &&ReleaseRecord| {
                r.env == wanted.env
                    && r.tag == wanted.tag
                    && r.pipeline.as_deref() == pipeline
                    && r.time == wanted.time
            };
            if let Some(existing) = self.records.iter().find(same) {
                planned.push(PlannedRecord {
                    record: existing.clone(),
                    exists: true,
                });
                continue;
            }
            let record = ReleaseRecord {
                env: wanted.env.clone(),
                number: numbering.next_number(&wanted.env)?,
                tag: wanted.tag.clone(),
                commit: wanted
                    .commit
                    .clone()
                    .filter(|c| c.parse::<CommitId>().is_ok()),
                release: wanted.release.clone(),
                host: wanted.host.clone(),
                slot: wanted.slot.clone().unwrap_or_else(|| "unknown".into()),
                time: wanted.time.clone(),
                pipeline: pipeline.map(str::to_string),
                merge_request,
                action: wanted.action.to_string(),
            };
            numbering.records.push(record.clone());
            planned.push(PlannedRecord {
                record,
                exists: false,
            });
        }
        Ok(planned)
    }
}

/// The newest record per environment.
pub fn latest<'a>(
    records: impl IntoIterator<Item = &'a ReleaseRecord>,
) -> BTreeMap<String, ReleaseRecord> {
    let mut newest: BTreeMap<String, ReleaseRecord> = BTreeMap::new();
    for record in records {
        match newest.get(&record.env) {
            Some(current) if current.number >= record.number => {}
            _ => {
                newest.insert(record.env.clone(), record.clone());
            }
        }
    }
    newest
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(env: &str, number: u64) -> ReleaseRecord {
        ReleaseRecord {
            env: env.into(),
            number,
            tag: "v1.2.0".into(),
            commit: Some("0123456789abcdef0123456789abcdef01234567".into()),
            release: "v1.2.0-0123456789ab".into(),
            host: "web-1".into(),
            slot: "green".into(),
            time: "2026-11-22T10:00:00Z".into(),
            pipeline: Some("https://gitlab.example.com/deploy/shop/-/pipelines/9".into()),
            merge_request: Some(4),
            action: "deploy".into(),
        }
    }

    fn protected(record: &ReleaseRecord) -> RecordTag {
        RecordTag {
            name: record.tag_name(),
            message: record.message(),
            protected: true,
        }
    }

    #[test]
    fn a_record_reads_back_from_its_tag() {
        let original = record("production", 12);
        assert_eq!(original.tag_name(), "deployed/production/12");
        let parsed = ReleaseRecord::parse(&original.tag_name(), &original.message());
        assert_eq!(parsed, Ok(original));
        assert_eq!(
            ReleaseRecord::parse("deployed/test/1", &record("production", 1).message()),
            Err("env \"production\" differs from the tag name's test".to_string())
        );
    }

    #[test]
    fn forged_or_broken_records_are_ignored_with_the_reason() {
        let good = record("test", 3);
        let bad_commit = good.message().replace(
            "commit: 0123456789abcdef0123456789abcdef01234567",
            "commit: x",
        );
        let history = History::read([
            protected(&good),
            RecordTag {
                name: "deployed/test/99".into(),
                message: record("test", 99).message(),
                protected: false,
            },
            RecordTag {
                name: "deployed/test/4".into(),
                message: bad_commit.replace("test/3", "test/4"),
                protected: true,
            },
            RecordTag {
                name: "deployed/test/18446744073709551615".into(),
                message: record("test", 5).message(),
                protected: true,
            },
            RecordTag {
                name: "deployed/test/6".into(),
                message: format!(
                    "{}commit: 89abcdef0123456789abcdef0123456789abcdef\n",
                    record("test", 6).message()
                ),
                protected: true,
            },
        ]);
        assert_eq!(history.records, [good]);
        let why: Vec<(&str, &str)> = history
            .ignored
            .iter()
            .map(|i| (i.tag.as_str(), i.why.as_str()))
            .collect();
        assert_eq!(
            why,
            [
                (
                    "deployed/test/99",
                    "not protected, so anyone with Developer access could have made it"
                ),
                ("deployed/test/4", "commit \"x\" is not valid"),
                (
                    "deployed/test/18446744073709551615",
                    "the tag name is not deployed/<environment>/<number>"
                ),
                ("deployed/test/6", "commit is given twice"),
            ]
        );
        assert_eq!(history.next_number("test"), Ok(4));
        assert_eq!(history.next_number("production"), Ok(1));
    }

    #[test]
    fn new_records_are_numbered_in_order_and_a_rerun_reuses_its_own() {
        let history = History::read([protected(&record("test", 3))]);
        let new = |env: &str, time: &str| NewRecord {
            env: env.into(),
            tag: "v1.2.0".into(),
            commit: Some("0123456789abcdef0123456789abcdef01234567".into()),
            release: "v1.2.0-0123456789ab".into(),
            host: "web-1".into(),
            slot: Some("blue".into()),
            time: time.into(),
            action: "deploy",
        };
        let pipeline = Some("https://gitlab.example.com/deploy/shop/-/pipelines/9");
        let planned = history
            .plan_records(
                &[
                    new("test", "2026-12-01T10:00:00Z"),
                    new("test", "2026-12-01T10:01:00Z"),
                    new("production", "2026-12-01T10:02:00Z"),
                ],
                pipeline,
                Some(4),
            )
            .unwrap();
        let names: Vec<(String, bool)> = planned
            .iter()
            .map(|p| (p.record.tag_name(), p.exists))
            .collect();
        assert_eq!(
            names,
            [
                ("deployed/test/4".to_string(), false),
                ("deployed/test/5".to_string(), false),
                ("deployed/production/1".to_string(), false),
            ]
        );
        // The same report again, after the first run wrote its records.
        let written = History::read(planned.iter().map(|p| protected(&p.record)));
        let again = written
            .plan_records(&[new("test", "2026-12-01T10:00:00Z")], pipeline, Some(4))
            .unwrap();
        assert_eq!(
            (again[0].record.tag_name(), again[0].exists),
            ("deployed/test/4".to_string(), true)
        );
    }

    #[test]
    fn numbers_count_per_environment_numerically_and_never_wrap() {
        let history = History::read([
            protected(&record("test", 9)),
            protected(&record("test", 10)),
            protected(&record("production", 3)),
        ]);
        assert_eq!(history.next_number("test"), Ok(11));
        assert_eq!(history.next_number("production"), Ok(4));
        assert_eq!(history.next_number("staging"), Ok(1));
        let newest = latest(&history.records);
        assert_eq!(newest["test"].number, 10);
        assert_eq!(newest["production"].number, 3);
        for name in [
            "deployed/test/x",
            "deployed/test/007",
            "deployed/test/",
            "deployed/Test/1",
            "deployed/test/1000000000",
        ] {
            assert_eq!(parse_tag_name(name), None, "{name}");
        }
        let full = History::read([protected(&record("test", MAX_NUMBER - 1))]);
        assert_eq!(
            full.next_number("test"),
            Err("the release records of test reached 1000000000".to_string())
        );
    }
}
