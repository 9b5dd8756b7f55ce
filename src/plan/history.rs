//! The release history: one annotated tag `deployed/<env>/<n>` per release
//! in the management repository, its message a record berth writes and
//! reads back (`key: value` lines, all values validated before).

use std::collections::BTreeMap;

/// Tags of release records start with this.
pub const TAG_PREFIX: &str = "deployed/";

/// One release of one environment, as recorded.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ReleaseRecord {
    pub env: String,
    pub number: u64,
    #[serde(rename = "ref")]
    pub tag: String,
    pub commit: String,
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
            Some(&self.commit),
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

    /// Reads a record back from its tag name and message.
    pub fn parse(tag_name: &str, message: &str) -> Option<ReleaseRecord> {
        let (env, number) = parse_tag_name(tag_name)?;
        let fields: BTreeMap<&str, &str> = message
            .lines()
            .filter_map(|line| line.split_once(": "))
            .filter(|(key, _)| FIELDS.contains(key))
            .collect();
        let get = |key: &str| fields.get(key).map(|v| v.trim().to_string());
        if get("env")? != env {
            return None;
        }
        Some(ReleaseRecord {
            env,
            number,
            tag: get("ref")?,
            commit: get("commit")?,
            release: get("release")?,
            host: get("host")?,
            slot: get("slot")?,
            time: get("time")?,
            pipeline: get("pipeline"),
            merge_request: get("merge_request").and_then(|v| v.parse().ok()),
            action: get("action").unwrap_or_else(|| "deploy".to_string()),
        })
    }
}

/// `deployed/<env>/<n>` → (env, n).
pub fn parse_tag_name(tag_name: &str) -> Option<(String, u64)> {
    let rest = tag_name.strip_prefix(TAG_PREFIX)?;
    let (env, number) = rest.rsplit_once('/')?;
    if env.is_empty() || env.contains('/') {
        return None;
    }
    Some((env.to_string(), number.parse().ok()?))
}

/// The number the next record of `env` gets, given the existing tag names.
pub fn next_number<'a>(tag_names: impl IntoIterator<Item = &'a str>, env: &str) -> u64 {
    tag_names
        .into_iter()
        .filter_map(parse_tag_name)
        .filter(|(e, _)| e == env)
        .map(|(_, n)| n)
        .max()
        .unwrap_or(0)
        + 1
}

/// The newest record per environment.
pub fn latest(records: impl IntoIterator<Item = ReleaseRecord>) -> BTreeMap<String, ReleaseRecord> {
    let mut newest: BTreeMap<String, ReleaseRecord> = BTreeMap::new();
    for record in records {
        match newest.get(&record.env) {
            Some(current) if current.number >= record.number => {}
            _ => {
                newest.insert(record.env.clone(), record);
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
            commit: "0123456789abcdef0123456789abcdef01234567".into(),
            release: "v1.2.0".into(),
            host: "web-1".into(),
            slot: "green".into(),
            time: "2026-11-22T10:00:00Z".into(),
            pipeline: Some("https://gitlab.example.com/deploy/shop/-/pipelines/9".into()),
            merge_request: Some(4),
            action: "deploy".into(),
        }
    }

    #[test]
    fn a_record_reads_back_from_its_tag() {
        let original = record("production", 12);
        assert_eq!(original.tag_name(), "deployed/production/12");
        let parsed = ReleaseRecord::parse(&original.tag_name(), &original.message());
        assert_eq!(parsed, Some(original));
        assert_eq!(
            ReleaseRecord::parse("deployed/test/1", &record("production", 1).message()),
            None
        );
    }

    #[test]
    fn numbers_count_per_environment_numerically() {
        let names = [
            "deployed/test/9",
            "deployed/test/10",
            "deployed/production/3",
            "v1.0.0",
            "deployed/test/x",
        ];
        assert_eq!(next_number(names, "test"), 11);
        assert_eq!(next_number(names, "production"), 4);
        assert_eq!(next_number(names, "staging"), 1);
        let newest = latest([
            record("test", 10),
            record("test", 9),
            record("production", 3),
        ]);
        assert_eq!(newest["test"].number, 10);
        assert_eq!(newest["production"].number, 3);
    }
}
