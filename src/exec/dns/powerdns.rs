//! The PowerDNS Authoritative server's HTTP API: `GET` a zone with its
//! record sets, and one `PATCH` of record sets (`REPLACE` or `DELETE`
//! each), which PowerDNS applies in one transaction.

use std::time::Duration;

use serde_json::{json, Value};

use super::DnsError;
use crate::plan::dns::{RecordSet, SetWrite};
use crate::secret::Secret;

/// A full sync of a large zone is one request; give sqlite time.
const TIMEOUT: Duration = Duration::from_secs(120);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

pub struct Api<'a> {
    base: String,
    key: &'a Secret,
}

impl<'a> Api<'a> {
    pub fn new(api: &str, server_id: &str, key: &'a Secret) -> Api<'a> {
        Api {
            base: format!("{api}/api/v1/servers/{server_id}"),
            key,
        }
    }

    fn client(&self) -> Result<reqwest::blocking::Client, DnsError> {
        reqwest::blocking::Client::builder()
            .timeout(TIMEOUT)
            .connect_timeout(CONNECT_TIMEOUT)
            .build()
            .map_err(|e| DnsError::Protocol {
                server: self.base.clone(),
                detail: e.to_string(),
            })
    }

    pub fn zone(&self, zone: &str) -> Result<Vec<RecordSet>, DnsError> {
        let url = format!("{}/zones/{zone}.", self.base);
        let response = self
            .client()?
            .get(&url)
            .header("X-API-Key", self.key.expose())
            .send()
            .map_err(|e| self.unreachable(e))?;
        let body = self.check(zone, response)?;
        let parsed: Value = serde_json::from_str(&body).map_err(|e| self.protocol(e))?;
        record_sets(&parsed).ok_or_else(|| DnsError::Protocol {
            server: self.base.clone(),
            detail: "the zone has no rrsets list".into(),
        })
    }

    pub fn patch(&self, zone: &str, writes: &[SetWrite]) -> Result<(), DnsError> {
        let url = format!("{}/zones/{zone}.", self.base);
        let response = self
            .client()?
            .patch(&url)
            .header("X-API-Key", self.key.expose())
            .json(&patch_body(writes))
            .send()
            .map_err(|e| self.unreachable(e))?;
        self.check(zone, response).map(drop)
    }

    fn check(&self, zone: &str, response: reqwest::blocking::Response) -> Result<String, DnsError> {
        let status = response.status();
        let body = response.text().unwrap_or_default();
        if status.is_success() {
            return Ok(body);
        }
        let message = serde_json::from_str::<Value>(&body)
            .ok()
            .and_then(|v| v.get("error").and_then(Value::as_str).map(str::to_string))
            .unwrap_or_else(|| body.chars().take(200).collect());
        let server = self.base.clone();
        Err(match status.as_u16() {
            401 | 403 => DnsError::Unauthorized {
                server,
                detail: format!("HTTP {status}"),
            },
            404 => DnsError::ZoneMissing {
                zone: zone.to_string(),
                server,
            },
            500..=599 => DnsError::Busy {
                server,
                detail: format!("HTTP {status}: {message}"),
            },
            _ => DnsError::Rejected {
                server,
                detail: format!("HTTP {status}: {message}"),
            },
        })
    }

    fn unreachable(&self, e: reqwest::Error) -> DnsError {
        DnsError::Unreachable {
            server: self.base.clone(),
            detail: error_chain(&e),
        }
    }

    fn protocol(&self, e: impl std::fmt::Display) -> DnsError {
        DnsError::Protocol {
            server: self.base.clone(),
            detail: e.to_string(),
        }
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// The JSON of one `PATCH`: each set replaced with its records, or deleted.
pub fn patch_body(writes: &[SetWrite]) -> Value {
    let rrsets: Vec<Value> = writes
        .iter()
        .map(|w| {
            if w.records.is_empty() {
                return json!({"name": format!("{}.", w.name), "type": w.rtype, "changetype": "DELETE"});
            }
            let records: Vec<Value> = w
                .records
                .iter()
                .map(|r| {
                    let content = match w.rtype {
                        "TXT" => quote_txt(r),
                        _ => r.clone(),
                    };
                    json!({"content": content, "disabled": false})
                })
                .collect();
            json!({
                "name": format!("{}.", w.name),
                "type": w.rtype,
                "ttl": w.ttl,
                "changetype": "REPLACE",
                "records": records,
            })
        })
        .collect();
    json!({ "rrsets": rrsets })
}

/// The zone's sets from a `GET /zones/{zone}` answer: names without the
/// final dot, disabled records left out, TXT unquoted.
pub fn record_sets(zone: &Value) -> Option<Vec<RecordSet>> {
    let mut out = Vec::new();
    for set in zone.get("rrsets")?.as_array()? {
        let name = set.get("name")?.as_str()?;
        let rtype = set.get("type")?.as_str()?;
        let records: Vec<String> = set
            .get("records")?
            .as_array()?
            .iter()
            .filter(|r| r.get("disabled").and_then(Value::as_bool) != Some(true))
            .filter_map(|r| r.get("content").and_then(Value::as_str))
            .map(|c| {
                if rtype == "TXT" {
                    unquote_txt(c)
                } else {
                    c.to_string()
                }
            })
            .collect();
        if records.is_empty() {
            continue;
        }
        out.push(RecordSet {
            name: name.trim_end_matches('.').to_ascii_lowercase(),
            rtype: rtype.to_string(),
            ttl: set.get("ttl").and_then(Value::as_u64).unwrap_or(0) as u32,
            records,
        });
    }
    Some(out)
}

fn quote_txt(text: &str) -> String {
    format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""))
}

/// `"a" "b"` → `ab`, escapes undone: TXT contents as one string.
fn unquote_txt(content: &str) -> String {
    let mut out = String::new();
    let mut chars = content.chars();
    let mut inside = false;
    while let Some(c) = chars.next() {
        match (c, inside) {
            ('"', _) => inside = !inside,
            ('\\', true) => {
                if let Some(next) = chars.next() {
                    out.push(next);
                }
            }
            (c, true) => out.push(c),
            (_, false) => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_patch_replaces_and_deletes_whole_sets() {
        let writes = [
            SetWrite {
                name: "shop.apps.test".into(),
                rtype: "A",
                ttl: 60,
                records: vec!["192.0.2.1".into()],
            },
            SetWrite {
                name: "_berth.shop.apps.test".into(),
                rtype: "TXT",
                ttl: 60,
                records: vec!["heritage=berth,berth/owner=berth".into()],
            },
            SetWrite {
                name: "old.apps.test".into(),
                rtype: "AAAA",
                ttl: 60,
                records: vec![],
            },
        ];
        assert_eq!(
            patch_body(&writes).to_string(),
            r#"{"rrsets":[{"changetype":"REPLACE","name":"shop.apps.test.","records":[{"content":"192.0.2.1","disabled":false}],"ttl":60,"type":"A"},{"changetype":"REPLACE","name":"_berth.shop.apps.test.","records":[{"content":"\"heritage=berth,berth/owner=berth\"","disabled":false}],"ttl":60,"type":"TXT"},{"changetype":"DELETE","name":"old.apps.test.","type":"AAAA"}]}"#
        );
    }

    #[test]
    fn zone_answers_become_record_sets() {
        let zone: Value = serde_json::from_str(
            r#"{"name":"apps.test.","rrsets":[
                {"name":"Shop.apps.test.","type":"A","ttl":60,"records":[{"content":"192.0.2.1","disabled":false},{"content":"192.0.2.9","disabled":true}]},
                {"name":"_berth.shop.apps.test.","type":"TXT","ttl":60,"records":[{"content":"\"heritage=berth,\" \"x=\\\"y\\\"\"","disabled":false}]},
                {"name":"off.apps.test.","type":"A","ttl":60,"records":[{"content":"192.0.2.2","disabled":true}]}
            ]}"#,
        )
        .unwrap();
        assert_eq!(
            record_sets(&zone).unwrap(),
            [
                RecordSet {
                    name: "shop.apps.test".into(),
                    rtype: "A".into(),
                    ttl: 60,
                    records: vec!["192.0.2.1".into()]
                },
                RecordSet {
                    name: "_berth.shop.apps.test".into(),
                    rtype: "TXT".into(),
                    ttl: 60,
                    records: vec!["heritage=berth,x=\"y\"".into()]
                },
            ]
        );
    }
}
