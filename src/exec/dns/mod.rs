//! DNS providers: read a zone's record sets, write a zone plan's sets.
//! Thin: `plan::dns` decided what to write; these only speak the
//! provider's protocol and type its failures.

pub mod powerdns;
pub mod rfc2136;

use crate::config::dns::{Provider, ZoneSettings};
use crate::plan::dns::{RecordSet, ZonePlan};
use crate::secret::Secret;

/// How a provider failed, with what an admin can do about it.
#[derive(Debug, thiserror::Error)]
pub enum DnsError {
    #[error("{server} cannot be reached: {detail}")]
    Unreachable { server: String, detail: String },
    #[error("{server} refused the credential: {detail}")]
    Unauthorized { server: String, detail: String },
    #[error("zone {zone} does not exist on {server}")]
    ZoneMissing { zone: String, server: String },
    #[error("{server} rejected the TSIG signature as out of time (BADTIME)")]
    ClockSkew { server: String },
    #[error("the zone changed since it was read: {detail}")]
    Raced { detail: String },
    /// A server error that changed nothing and may pass: PowerDNS 4.7 on
    /// sqlite answers concurrent writes with 500 "database is locked".
    #[error("{server} failed the request: {detail}")]
    Busy { server: String, detail: String },
    #[error("{server} refused the change: {detail}")]
    Rejected { server: String, detail: String },
    #[error("{server} answered in a way berth does not understand: {detail}")]
    Protocol { server: String, detail: String },
}

impl DnsError {
    /// Whether syncing the zone again from a fresh read may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, DnsError::Raced { .. } | DnsError::Busy { .. })
    }

    pub fn hint(&self) -> &'static str {
        match self {
            DnsError::Unreachable { .. } => {
                "check that the DNS server runs and that this runner reaches its address and port"
            }
            DnsError::Unauthorized { .. } => {
                "check the key in the CI/CD variable the inventory names, and that the server knows it"
            }
            DnsError::ZoneMissing { .. } => {
                "create the zone on the server (berth never creates zones), or correct dns.zones in the inventory"
            }
            DnsError::ClockSkew { .. } => {
                "the runner's and the server's clocks differ by more than the 300 s TSIG allows; fix NTP on either"
            }
            DnsError::Raced { .. } => {
                "another sync or a person changed the zone meanwhile; run the same command again"
            }
            DnsError::Busy { .. } => {
                "berth tried several times; check the server's log, then run the same command again"
            }
            DnsError::Rejected { .. } => "read the server's message; nothing of this request was applied",
            DnsError::Protocol { .. } => "check that the server is the one the inventory means",
        }
    }
}

/// What a sync sent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Requests {
    pub reads: usize,
    pub writes: usize,
}

/// The zone's record sets, as the provider holds them.
pub fn observe(
    zone: &ZoneSettings,
    credential: &Secret,
    requests: &mut Requests,
) -> Result<Vec<RecordSet>, DnsError> {
    requests.reads += 1;
    match &zone.provider {
        Provider::Powerdns { api, server_id, .. } => {
            powerdns::Api::new(api.as_str(), server_id.as_str(), credential)
                .zone(zone.zone.as_str())
        }
        Provider::Rfc2136 {
            server,
            key_name,
            algorithm,
            ..
        } => rfc2136::Server::new(server.addr(), key_name.as_str(), *algorithm, credential)?
            .transfer(zone.zone.as_str()),
    }
}

/// Writes the plan's record sets: one request for PowerDNS, as few
/// UPDATE messages as fit for RFC 2136 (each applied whole or not at all).
pub fn apply(
    zone: &ZoneSettings,
    credential: &Secret,
    plan: &ZonePlan,
    requests: &mut Requests,
) -> Result<(), DnsError> {
    if plan.changes.is_empty() {
        return Ok(());
    }
    match &zone.provider {
        Provider::Powerdns { api, server_id, .. } => {
            requests.writes += 1;
            powerdns::Api::new(api.as_str(), server_id.as_str(), credential)
                .patch(zone.zone.as_str(), &plan.writes())
        }
        Provider::Rfc2136 {
            server,
            key_name,
            algorithm,
            ..
        } => {
            let server =
                rfc2136::Server::new(server.addr(), key_name.as_str(), *algorithm, credential)?;
            for message in rfc2136::updates(zone.zone.as_str(), plan)? {
                requests.writes += 1;
                server.update(message)?;
            }
            Ok(())
        }
    }
}
