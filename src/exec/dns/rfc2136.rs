//! RFC 2136 dynamic update signed with TSIG (RFC 8945), over TCP.
//!
//! The zone is read with a TSIG-signed AXFR (RFC 5936), as external-dns's
//! rfc2136 provider does, and every answer's signature is verified. A
//! change goes out as UPDATE messages as large as TCP allows; the server
//! applies each message whole or not at all (RFC 2136 §3.7), and each
//! message carries prerequisites (§2.4) that hold only if the zone is as
//! it was read: a new name must still be free, and a name berth changes
//! or deletes must still carry berth's own ownership record. When another
//! writer got there first the server answers YXRRSET or NXRRSET and
//! nothing of that message is applied.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use hickory_proto::op::{Message, OpCode, Query, ResponseCode, UpdateMessage};
use hickory_proto::rr::rdata::tsig::{TsigAlgorithm, TsigError};
use hickory_proto::rr::rdata::{A, AAAA, TXT};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType, TSigner};

use super::DnsError;
use crate::config::dns::TsigAlgorithmName;
use crate::plan::dns::{owner_name, NameChange, RecordSet, ZonePlan};
use crate::secret::Secret;

/// TSIG's customary fudge: the clocks may differ by this much.
const FUDGE_SECONDS: u16 = 300;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const IO_TIMEOUT: Duration = Duration::from_secs(60);
/// A message's size limit over TCP is 65,535 bytes; leave room for the
/// header, the zone section and the TSIG record.
const MESSAGE_BUDGET: usize = 60_000;

pub struct Server {
    addr: SocketAddr,
    signer: TSigner,
}

impl Server {
    pub fn new(
        addr: SocketAddr,
        key_name: &str,
        algorithm: TsigAlgorithmName,
        secret: &Secret,
    ) -> Result<Server, DnsError> {
        let key = base64::engine::general_purpose::STANDARD
            .decode(secret.expose().trim())
            .map_err(|_| DnsError::Unauthorized {
                server: addr.to_string(),
                detail: "the TSIG secret is not base64 (copy the `secret` of tsig-keygen's output)"
                    .into(),
            })?;
        let algorithm = match algorithm {
            TsigAlgorithmName::HmacSha256 => TsigAlgorithm::HmacSha256,
            TsigAlgorithmName::HmacSha384 => TsigAlgorithm::HmacSha384,
            TsigAlgorithmName::HmacSha512 => TsigAlgorithm::HmacSha512,
        };
        let name = Name::from_ascii(format!("{key_name}.")).map_err(|e| protocol(addr, e))?;
        let signer =
            TSigner::new(key, algorithm, name, FUDGE_SECONDS).map_err(|e| protocol(addr, e))?;
        Ok(Server { addr, signer })
    }

    /// Every record set of the zone, by a signed AXFR.
    pub fn transfer(&self, zone: &str) -> Result<Vec<RecordSet>, DnsError> {
        let mut query = Message::query();
        query.add_query(Query::query(dns_name(zone)?, RecordType::AXFR));
        let mut verifier = query
            .finalize(&self.signer, now())
            .map_err(|e| protocol(self.addr, e))?
            .ok_or_else(|| protocol(self.addr, "no TSIG verifier for the query"))?;
        let mut stream = self.connect()?;
        self.send(&mut stream, &query)?;
        let mut sets = Sets::default();
        let mut soas = 0;
        while soas < 2 {
            let bytes = self.receive(&mut stream)?;
            let answer = self.answer(&bytes, zone)?;
            verifier.verify(&bytes).map_err(|e| {
                protocol(self.addr, format!("the answer's TSIG did not verify: {e}"))
            })?;
            if answer.answers.is_empty() {
                return Err(protocol(self.addr, "an empty zone transfer message"));
            }
            for record in &answer.answers {
                if record.record_type() == RecordType::SOA {
                    soas += 1;
                    if soas == 2 {
                        break;
                    }
                }
                add_record(&mut sets, record);
            }
        }
        Ok(sets.list)
    }

    /// Sends one UPDATE and checks its answer.
    pub fn update(&self, mut message: Message) -> Result<(), DnsError> {
        let zone = message
            .queries
            .first()
            .map(|q| q.name().to_ascii())
            .unwrap_or_default();
        let mut verifier = message
            .finalize(&self.signer, now())
            .map_err(|e| protocol(self.addr, e))?
            .ok_or_else(|| protocol(self.addr, "no TSIG verifier for the update"))?;
        let mut stream = self.connect()?;
        self.send(&mut stream, &message)?;
        let bytes = self.receive(&mut stream)?;
        self.answer(&bytes, zone.trim_end_matches('.'))?;
        verifier
            .verify(&bytes)
            .map_err(|e| protocol(self.addr, format!("the answer's TSIG did not verify: {e}")))?;
        Ok(())
    }

    fn connect(&self) -> Result<TcpStream, DnsError> {
        let stream = TcpStream::connect_timeout(&self.addr, CONNECT_TIMEOUT)
            .map_err(|e| self.unreachable(e))?;
        stream
            .set_read_timeout(Some(IO_TIMEOUT))
            .and_then(|()| stream.set_write_timeout(Some(IO_TIMEOUT)))
            .map_err(|e| self.unreachable(e))?;
        Ok(stream)
    }

    fn send(&self, stream: &mut TcpStream, message: &Message) -> Result<(), DnsError> {
        let bytes = message.to_vec().map_err(|e| protocol(self.addr, e))?;
        let len = u16::try_from(bytes.len())
            .map_err(|_| protocol(self.addr, "a message over 65,535 bytes"))?;
        let mut framed = len.to_be_bytes().to_vec();
        framed.extend_from_slice(&bytes);
        stream.write_all(&framed).map_err(|e| self.unreachable(e))
    }

    fn receive(&self, stream: &mut TcpStream) -> Result<Vec<u8>, DnsError> {
        let mut len = [0u8; 2];
        stream
            .read_exact(&mut len)
            .map_err(|e| self.unreachable(e))?;
        let mut bytes = vec![0u8; u16::from_be_bytes(len) as usize];
        stream
            .read_exact(&mut bytes)
            .map_err(|e| self.unreachable(e))?;
        Ok(bytes)
    }

    /// The answer, or its response code as a typed error. Error answers
    /// are not signed when the key is the problem, so the code is read
    /// before the signature is verified.
    fn answer(&self, bytes: &[u8], zone: &str) -> Result<Message, DnsError> {
        let message = Message::from_vec(bytes).map_err(|e| protocol(self.addr, e))?;
        let tsig_error = message.signature.as_ref().and_then(|s| s.data.error);
        let server = self.addr.to_string();
        let code = message.metadata.response_code;
        match (code, tsig_error) {
            (ResponseCode::NoError, None) => Ok(message),
            (_, Some(TsigError::BadTime)) => Err(DnsError::ClockSkew { server }),
            (_, Some(TsigError::BadSig)) => Err(DnsError::Unauthorized {
                server,
                detail: "NOTAUTH/BADSIG: the server knows the key's name, but the secret differs"
                    .into(),
            }),
            (_, Some(TsigError::BadKey)) => Err(DnsError::Unauthorized {
                server,
                detail: format!(
                    "NOTAUTH/BADKEY: the server does not know the key {}",
                    self.signer.signer_name()
                ),
            }),
            (_, Some(error)) => Err(DnsError::Unauthorized {
                server,
                detail: format!("{code}, TSIG error {error:?}"),
            }),
            (ResponseCode::NotAuth, None) => Err(DnsError::ZoneMissing {
                zone: zone.to_string(),
                server,
            }),
            (ResponseCode::Refused, None) => Err(DnsError::Unauthorized {
                server,
                detail: "REFUSED: the server does not let this key read or change the zone".into(),
            }),
            (
                ResponseCode::YXDomain
                | ResponseCode::YXRRSet
                | ResponseCode::NXRRSet
                | ResponseCode::NXDomain,
                None,
            ) => Err(DnsError::Raced {
                detail: format!("{server} answered {code}: a prerequisite no longer holds"),
            }),
            (code, None) => Err(DnsError::Rejected {
                server,
                detail: code.to_string(),
            }),
        }
    }

    fn unreachable(&self, e: std::io::Error) -> DnsError {
        DnsError::Unreachable {
            server: self.addr.to_string(),
            detail: e.to_string(),
        }
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn protocol(addr: SocketAddr, e: impl std::fmt::Display) -> DnsError {
    DnsError::Protocol {
        server: addr.to_string(),
        detail: e.to_string(),
    }
}

fn dns_name(name: &str) -> Result<Name, DnsError> {
    Name::from_ascii(format!("{name}.")).map_err(|e| DnsError::Protocol {
        server: String::new(),
        detail: format!("{name}: {e}"),
    })
}

/// The zone's sets as the transfer brings them, each found by name and
/// type in one lookup.
#[derive(Default)]
struct Sets {
    list: Vec<RecordSet>,
    index: std::collections::HashMap<(String, String), usize>,
}

fn add_record(sets: &mut Sets, record: &Record) {
    let name = record
        .name
        .to_ascii()
        .trim_end_matches('.')
        .to_ascii_lowercase();
    let rtype = record.record_type().to_string();
    let content = match &record.data {
        RData::A(a) => a.0.to_string(),
        RData::AAAA(a) => a.0.to_string(),
        RData::TXT(t) => t
            .txt_data
            .iter()
            .map(|s| String::from_utf8_lossy(s).into_owned())
            .collect(),
        other => other.to_string(),
    };
    match sets.index.get(&(name.clone(), rtype.clone())) {
        Some(&i) => {
            let set = &mut sets.list[i];
            if !set.records.contains(&content) {
                set.records.push(content);
            }
        }
        None => {
            sets.index
                .insert((name.clone(), rtype.clone()), sets.list.len());
            sets.list.push(RecordSet {
                name,
                rtype,
                ttl: record.ttl,
                records: vec![content],
            });
        }
    }
}

/// The plan as UPDATE messages, each as full as the size budget allows;
/// a name's prerequisites and updates always share one message.
pub fn updates(zone: &str, plan: &ZonePlan) -> Result<Vec<Message>, DnsError> {
    let zone_name = dns_name(zone)?;
    let new_message = || {
        let mut message = Message::query();
        message.metadata.op_code = OpCode::Update;
        message.metadata.recursion_desired = false;
        let mut query = Query::query(zone_name.clone(), RecordType::SOA);
        query.set_query_class(DNSClass::IN);
        message.add_zone(query);
        message
    };
    let mut messages = Vec::new();
    let mut current = new_message();
    let mut size = 0;
    for change in &plan.changes {
        let (prerequisites, updates) = name_update(plan, change)?;
        let cost: usize = prerequisites.iter().chain(&updates).map(wire_size).sum();
        if size > 0 && size + cost > MESSAGE_BUDGET {
            messages.push(std::mem::replace(&mut current, new_message()));
            size = 0;
        }
        size += cost;
        for record in prerequisites {
            current.add_pre_requisite(record);
        }
        for record in updates {
            current.add_update(record);
        }
    }
    if size > 0 {
        messages.push(current);
    }
    Ok(messages)
}

/// One name's prerequisites and updates.
fn name_update(
    plan: &ZonePlan,
    change: &NameChange,
) -> Result<(Vec<Record>, Vec<Record>), DnsError> {
    let name = dns_name(change.name())?;
    let owner = dns_name(&owner_name(change.name()))?;
    let absent = |name: &Name, rtype| {
        let mut record = Record::update0(name.clone(), 0, rtype);
        record.dns_class = DNSClass::NONE;
        record
    };
    let delete_set = |name: &Name, rtype| {
        let mut record = Record::update0(name.clone(), 0, rtype);
        record.dns_class = DNSClass::ANY;
        record
    };
    let txt = |name: &Name, ttl, text: &str| {
        Record::from_rdata(
            name.clone(),
            ttl,
            RData::TXT(TXT::new(vec![text.to_string()])),
        )
    };
    let mut prerequisites = Vec::new();
    let mut updates = Vec::new();
    match change {
        NameChange::Create { .. } => {
            for rtype in [RecordType::A, RecordType::AAAA, RecordType::CNAME] {
                prerequisites.push(absent(&name, rtype));
            }
            prerequisites.push(absent(&owner, RecordType::TXT));
        }
        NameChange::Update { before, .. } | NameChange::Delete { before, .. } => {
            // RRset exists (value dependent): still berth's, as read.
            prerequisites.push(txt(&owner, 0, &before.owner_text));
            for (n, rtype) in [
                (&name, RecordType::A),
                (&name, RecordType::AAAA),
                (&owner, RecordType::TXT),
            ] {
                updates.push(delete_set(n, rtype));
            }
        }
    }
    if let NameChange::Create { want } | NameChange::Update { want, .. } = change {
        for ip in &want.ipv4 {
            updates.push(Record::from_rdata(name.clone(), plan.ttl, RData::A(A(*ip))));
        }
        for ip in &want.ipv6 {
            updates.push(Record::from_rdata(
                name.clone(),
                plan.ttl,
                RData::AAAA(AAAA(*ip)),
            ));
        }
        let text = crate::plan::dns::owner_text(&plan.owner, &want.app, &want.env);
        updates.push(txt(&owner, plan.ttl, &text));
    }
    Ok((prerequisites, updates))
}

/// An upper bound of a record's size on the wire (no name compression).
fn wire_size(record: &Record) -> usize {
    let rdata = match &record.data {
        RData::A(_) => 4,
        RData::AAAA(_) => 16,
        RData::TXT(t) => t.txt_data.iter().map(|s| s.len() + 1).sum(),
        _ => 0,
    };
    record.name.to_ascii().len() + 2 + 10 + rdata
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::dns::{Published, Wanted};

    fn plan(changes: Vec<NameChange>) -> ZonePlan {
        ZonePlan {
            zone: "dyn.test".parse().unwrap(),
            provider: "rfc2136",
            ttl: 60,
            owner: "berth".into(),
            changes,
            conflicts: Vec::new(),
            owned: 0,
            unchanged: 0,
        }
    }

    fn want(n: usize) -> Wanted {
        Wanted {
            domain: format!("app-{n}.dyn.test").parse().unwrap(),
            app: format!("app-{n}").parse().unwrap(),
            env: "production".parse().unwrap(),
            ipv4: vec!["192.0.2.1".parse().unwrap()],
            ipv6: vec!["2001:db8::1".parse().unwrap()],
        }
    }

    fn lines(message: &Message) -> Vec<String> {
        let show = |r: &Record| {
            format!(
                "{} {} {} {} {}",
                r.name,
                r.ttl,
                r.dns_class,
                r.record_type(),
                match &r.data {
                    RData::Update0(_) => String::new(),
                    d => d.to_string(),
                }
            )
            .trim_end()
            .to_string()
        };
        let mut out: Vec<String> = message
            .answers
            .iter()
            .map(|r| format!("pre {}", show(r)))
            .collect();
        out.extend(
            message
                .authorities
                .iter()
                .map(|r| format!("upd {}", show(r))),
        );
        out
    }

    #[test]
    fn a_new_name_requires_that_it_is_free_and_a_known_one_that_it_is_still_berths() {
        let before = Published {
            ttl: 60,
            a: vec!["192.0.2.9".into()],
            aaaa: vec![],
            owner_text: "heritage=berth,berth/owner=berth,berth/app=app-2,berth/env=test".into(),
        };
        let messages = updates(
            "dyn.test",
            &plan(vec![
                NameChange::Create { want: want(1) },
                NameChange::Update {
                    want: want(2),
                    before: before.clone(),
                },
                NameChange::Delete {
                    name: "gone.dyn.test".into(),
                    before,
                },
            ]),
        )
        .unwrap();
        assert_eq!(messages.len(), 1);
        assert_eq!(messages[0].metadata.op_code, OpCode::Update);
        assert_eq!(
            lines(&messages[0]),
            [
                "pre app-1.dyn.test. 0 NONE A",
                "pre app-1.dyn.test. 0 NONE AAAA",
                "pre app-1.dyn.test. 0 NONE CNAME",
                "pre _berth.app-1.dyn.test. 0 NONE TXT",
                "pre _berth.app-2.dyn.test. 0 IN TXT heritage=berth,berth/owner=berth,berth/app=app-2,berth/env=test",
                "pre _berth.gone.dyn.test. 0 IN TXT heritage=berth,berth/owner=berth,berth/app=app-2,berth/env=test",
                "upd app-1.dyn.test. 60 IN A 192.0.2.1",
                "upd app-1.dyn.test. 60 IN AAAA 2001:db8::1",
                "upd _berth.app-1.dyn.test. 60 IN TXT heritage=berth,berth/owner=berth,berth/app=app-1,berth/env=production",
                "upd app-2.dyn.test. 0 ANY A",
                "upd app-2.dyn.test. 0 ANY AAAA",
                "upd _berth.app-2.dyn.test. 0 ANY TXT",
                "upd app-2.dyn.test. 60 IN A 192.0.2.1",
                "upd app-2.dyn.test. 60 IN AAAA 2001:db8::1",
                "upd _berth.app-2.dyn.test. 60 IN TXT heritage=berth,berth/owner=berth,berth/app=app-2,berth/env=production",
                "upd gone.dyn.test. 0 ANY A",
                "upd gone.dyn.test. 0 ANY AAAA",
                "upd _berth.gone.dyn.test. 0 ANY TXT",
            ]
        );
    }

    #[test]
    fn two_thousand_names_fit_in_a_few_messages_under_the_tcp_limit() {
        let changes = (0..2000)
            .map(|n| NameChange::Create { want: want(n) })
            .collect();
        let messages = updates("dyn.test", &plan(changes)).unwrap();
        let sizes: Vec<usize> = messages.iter().map(|m| m.to_vec().unwrap().len()).collect();
        assert!(sizes.iter().all(|s| *s < 65_535 - 200), "{sizes:?}");
        assert_eq!(messages.len(), 11, "{sizes:?}");
        let names: usize = messages.iter().map(|m| m.answers.len() / 4).sum();
        assert_eq!(names, 2000);
    }
}
