//! The inventory's `dns:` section: which zones berth keeps records in, the
//! provider of each, and the rules of a sync. Credentials are never here:
//! each provider names the CI/CD variable that holds its key.

use std::fmt;
use std::net::SocketAddr;

use super::decode::Decoder;
use super::values::{quoted, DomainName, ScalarKind, ScalarValue, ValueError};
use super::yaml::Node;

/// Names are kept with this TTL unless the inventory says otherwise.
pub const DEFAULT_TTL: u32 = 300;
/// octoDNS's default for both its update and delete thresholds.
pub const DEFAULT_MAX_CHANGE_PERCENT: u32 = 30;
/// The ownership records' owner id unless the inventory says otherwise.
pub const DEFAULT_OWNER: &str = "berth";

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct DnsSettings {
    /// Written into every ownership record; two fleets (or two berth
    /// installations) sharing a zone use different owners and never touch
    /// each other's names.
    pub owner: OwnerId,
    pub ttl: u32,
    /// A sync that would update or delete more than this share of the
    /// names berth owns in a zone is refused without `--allow-large-change`.
    pub max_change_percent: u32,
    pub zones: Vec<ZoneSettings>,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ZoneSettings {
    pub zone: DomainName,
    pub provider: Provider,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Provider {
    /// The PowerDNS Authoritative server's HTTP API.
    Powerdns {
        /// Base URL, e.g. `http://10.0.0.53:8081` (the API is under `/api/v1`).
        api: ApiUrl,
        /// The API's server id, `localhost` on a stock server.
        server_id: ServerId,
        /// The CI/CD variable holding the API key (`X-API-Key`).
        api_key_variable: VariableName,
    },
    /// RFC 2136 dynamic update, signed with TSIG (RFC 8945); the zone is
    /// read with a signed AXFR.
    Rfc2136 {
        server: DnsServer,
        key_name: KeyName,
        algorithm: TsigAlgorithmName,
        /// The CI/CD variable holding the key's secret, base64 as
        /// `tsig-keygen` prints it.
        secret_variable: VariableName,
    },
}

impl Provider {
    pub fn kind(&self) -> &'static str {
        match self {
            Provider::Powerdns { .. } => "powerdns",
            Provider::Rfc2136 { .. } => "rfc2136",
        }
    }

    pub fn credential_variable(&self) -> &VariableName {
        match self {
            Provider::Powerdns {
                api_key_variable, ..
            } => api_key_variable,
            Provider::Rfc2136 {
                secret_variable, ..
            } => secret_variable,
        }
    }
}

impl DnsSettings {
    /// The zone a domain is published in: the longest configured zone
    /// that is the domain or one of its parents.
    pub fn zone_of(&self, domain: &DomainName) -> Option<&ZoneSettings> {
        self.zones
            .iter()
            .filter(|z| in_zone(domain.as_str(), z.zone.as_str()))
            .max_by_key(|z| z.zone.as_str().len())
    }
}

/// `name` is `zone` or below it.
pub fn in_zone(name: &str, zone: &str) -> bool {
    name == zone
        || name
            .strip_suffix(zone)
            .is_some_and(|head| head.ends_with('.'))
}

pub(super) fn decode(d: &mut Decoder, node: &Node, key: &str) -> Option<DnsSettings> {
    let mut f = d.mapping(node, key)?;
    let owner = f.optional(d, "owner", Decoder::scalar::<OwnerId>);
    let ttl = f.optional(d, "ttl", |d, node, key| d.integer(node, key, 30, 86_400));
    let max_change_percent = f.optional(d, "max_change_percent", |d, node, key| {
        d.integer(node, key, 1, 100)
    });
    let zones = f.required(d, "zones", |d, node, key| {
        d.named(node, key, |d, zone: Option<DomainName>, _mark, node, key| {
            let mut f = d.mapping(node, key)?;
            let mut given = 0;
            let powerdns = f.optional(d, "powerdns", |d, node, key| {
                given += 1;
                let mut f = d.mapping(node, key)?;
                let api = f.required(d, "api", Decoder::scalar::<ApiUrl>);
                let server_id = f.optional(d, "server_id", Decoder::scalar::<ServerId>);
                let variable = f.required(d, "api_key_variable", Decoder::scalar::<VariableName>);
                f.finish(d);
                Some(Provider::Powerdns {
                    api: api?,
                    server_id: server_id.unwrap_or_else(|| ServerId("localhost".into())),
                    api_key_variable: variable?,
                })
            });
            let rfc2136 = f.optional(d, "rfc2136", |d, node, key| {
                given += 1;
                let mut f = d.mapping(node, key)?;
                let server = f.required(d, "server", Decoder::scalar::<DnsServer>);
                let key_name = f.required(d, "key_name", Decoder::scalar::<KeyName>);
                let algorithm = f.optional(d, "algorithm", Decoder::scalar::<TsigAlgorithmName>);
                let variable = f.required(d, "secret_variable", Decoder::scalar::<VariableName>);
                f.finish(d);
                Some(Provider::Rfc2136 {
                    server: server?,
                    key_name: key_name?,
                    algorithm: algorithm.unwrap_or(TsigAlgorithmName::HmacSha256),
                    secret_variable: variable?,
                })
            });
            f.finish(d);
            if given != 1 {
                d.problem(
                    node.mark,
                    key,
                    "a zone needs exactly one provider",
                    "give either `powerdns: {api, api_key_variable}` or `rfc2136: {server, key_name, secret_variable}`",
                );
                return None;
            }
            Some(ZoneSettings {
                zone: zone?,
                provider: powerdns.or(rfc2136)?,
            })
        })
    });
    f.finish(d);
    Some(DnsSettings {
        owner: owner.unwrap_or_else(|| OwnerId(DEFAULT_OWNER.into())),
        ttl: ttl.map_or(DEFAULT_TTL, |t| t as u32),
        max_change_percent: max_change_percent.map_or(DEFAULT_MAX_CHANGE_PERCENT, |p| p as u32),
        zones: zones?,
    })
}

macro_rules! checked_string {
    ($(#[$doc:meta])* $name:ident, $expected:literal, $check:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl ScalarValue for $name {
            const EXPECTED: &'static str = $expected;
            const KIND: ScalarKind = ScalarKind::String;
            fn parse(text: &str) -> Result<Self, ValueError> {
                let check: fn(&str) -> Result<(), ValueError> = $check;
                check(text)?;
                Ok($name(text.to_string()))
            }
        }
    };
}

fn refuse(message: String, hint: &str) -> Result<(), ValueError> {
    Err(ValueError {
        message,
        hint: hint.to_string(),
    })
}

checked_string!(
    /// The owner id in ownership records: letters, digits and `-`.
    OwnerId,
    "an owner id",
    |text| {
        if text.is_empty()
            || text.len() > 40
            || !text
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        {
            return refuse(
                format!("owner id {} is not 1-40 lowercase letters, digits and '-'", quoted(text)),
                "e.g. berth or berth-prod",
            );
        }
        Ok(())
    }
);

checked_string!(
    /// A CI/CD variable that holds a DNS credential: `BERTH_DNS_…`, so the
    /// job reads it and nothing else.
    VariableName,
    "a CI/CD variable name",
    |text| {
        let ok = text
            .strip_prefix("BERTH_DNS_")
            .is_some_and(|rest| {
                !rest.is_empty()
                    && rest
                        .chars()
                        .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
            });
        if !ok {
            return refuse(
                format!("{} is not a variable named BERTH_DNS_…", quoted(text)),
                "name a masked, protected CI/CD variable such as BERTH_DNS_PDNS_KEY; the key itself never goes in the inventory",
            );
        }
        Ok(())
    }
);

checked_string!(
    /// A TSIG key's name, as the server knows it: DNS labels of letters,
    /// digits, `-` and `_`.
    KeyName,
    "a TSIG key name",
    |text| {
        let label_ok = |l: &str| {
            !l.is_empty()
                && l.len() <= 63
                && l.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '_'))
        };
        if text.len() > 253 || !text.split('.').all(label_ok) {
            return refuse(
                format!("TSIG key name {} is not lowercase DNS labels", quoted(text)),
                "give the key's name as in the server's `key \"…\"` clause, e.g. berth-key",
            );
        }
        Ok(())
    }
);

checked_string!(
    /// The PowerDNS API's server id.
    ServerId,
    "a PowerDNS server id",
    |text| {
        if text.is_empty()
            || text.len() > 64
            || !text
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        {
            return refuse(
                format!("server id {} is not letters, digits, '-', '_' and '.'", quoted(text)),
                "a stock PowerDNS server's id is localhost",
            );
        }
        Ok(())
    }
);

checked_string!(
    /// The PowerDNS API's base URL: http or https, a host and maybe a
    /// port, nothing else.
    ApiUrl,
    "an http(s) URL",
    |text| {
        let hint = "give the API's base URL, e.g. http://10.0.0.53:8081, without a path, user or query";
        let Ok(url) = url::Url::parse(text) else {
            return refuse(format!("{} is not a URL", quoted(text)), hint);
        };
        let plain = matches!(url.scheme(), "http" | "https")
            && url.host_str().is_some()
            && url.username().is_empty()
            && url.password().is_none()
            && url.query().is_none()
            && url.fragment().is_none()
            && url.path() == "/"
            && !text.ends_with('/');
        if !plain {
            return refuse(format!("{} is not a plain http(s) base URL", quoted(text)), hint);
        }
        Ok(())
    }
);

/// An RFC 2136 server: an IP address and port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(transparent)]
pub struct DnsServer(SocketAddr);

impl DnsServer {
    pub fn addr(self) -> SocketAddr {
        self.0
    }
}

impl fmt::Display for DnsServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl ScalarValue for DnsServer {
    const EXPECTED: &'static str = "an address and port";
    const KIND: ScalarKind = ScalarKind::String;
    fn parse(text: &str) -> Result<Self, ValueError> {
        text.parse().map(DnsServer).map_err(|_| ValueError {
            message: format!("{} is not an IP address with a port", quoted(text)),
            hint: "e.g. 10.0.0.53:53 or [2001:db8::53]:53".into(),
        })
    }
}

/// The TSIG algorithms berth signs with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum TsigAlgorithmName {
    HmacSha256,
    HmacSha384,
    HmacSha512,
}

impl fmt::Display for TsigAlgorithmName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TsigAlgorithmName::HmacSha256 => "hmac-sha256",
            TsigAlgorithmName::HmacSha384 => "hmac-sha384",
            TsigAlgorithmName::HmacSha512 => "hmac-sha512",
        })
    }
}

impl ScalarValue for TsigAlgorithmName {
    const EXPECTED: &'static str = "a TSIG algorithm";
    const KIND: ScalarKind = ScalarKind::String;
    fn parse(text: &str) -> Result<Self, ValueError> {
        match text {
            "hmac-sha256" => Ok(TsigAlgorithmName::HmacSha256),
            "hmac-sha384" => Ok(TsigAlgorithmName::HmacSha384),
            "hmac-sha512" => Ok(TsigAlgorithmName::HmacSha512),
            _ => Err(ValueError {
                message: format!("TSIG algorithm {} is not supported", quoted(text)),
                hint: "use hmac-sha256 (tsig-keygen's default), hmac-sha384 or hmac-sha512".into(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<DnsSettings, String> {
        Decoder::decode_text("inventory.yml", text, |d, root| {
            let mut f = d.mapping(root, "")?;
            let dns = f.required(d, "dns", decode);
            f.finish(d);
            dns
        })
        .map_err(|p| p.to_string())
    }

    #[test]
    fn both_providers_and_the_defaults() {
        let dns = parse(
            "dns:
  zones:
    apps.example.com:
      powerdns: {api: 'http://10.0.0.53:8081', api_key_variable: BERTH_DNS_PDNS_KEY}
    dyn.example.com:
      rfc2136: {server: '10.0.0.54:53', key_name: berth-key, secret_variable: BERTH_DNS_TSIG}
",
        )
        .unwrap();
        assert_eq!(dns.owner.as_str(), "berth");
        assert_eq!((dns.ttl, dns.max_change_percent), (300, 30));
        assert_eq!(dns.zones[0].provider.kind(), "powerdns");
        assert!(matches!(
            &dns.zones[1].provider,
            Provider::Rfc2136 {
                algorithm: TsigAlgorithmName::HmacSha256,
                ..
            }
        ));
        let zone = |d: &str| dns.zone_of(&d.parse().unwrap()).map(|z| z.zone.to_string());
        assert_eq!(
            zone("shop.apps.example.com").as_deref(),
            Some("apps.example.com")
        );
        assert_eq!(
            zone("apps.example.com").as_deref(),
            Some("apps.example.com")
        );
        assert_eq!(zone("xapps.example.com"), None);
        assert_eq!(zone("example.com"), None);
    }

    #[test]
    fn the_most_specific_zone_wins() {
        let dns = parse(
            "dns:
  zones:
    example.com:
      powerdns: {api: 'http://10.0.0.53:8081', api_key_variable: BERTH_DNS_A}
    apps.example.com:
      powerdns: {api: 'http://10.0.0.53:8081', api_key_variable: BERTH_DNS_A}
",
        )
        .unwrap();
        let zone = dns.zone_of(&"a.apps.example.com".parse().unwrap()).unwrap();
        assert_eq!(zone.zone.as_str(), "apps.example.com");
    }

    #[test]
    fn keys_in_the_file_and_odd_providers_are_refused() {
        let err = parse(
            "dns:
  ttl: 5
  zones:
    apps.example.com:
      powerdns: {api: 'http://admin:pw@10.0.0.53:8081/api', api_key_variable: s3cret}
    b.example.com: {}
",
        )
        .unwrap_err();
        assert_eq!(
            err,
            "4 problems in the configuration:
inventory.yml:2:8: dns.ttl: ttl \"5\" is out of range
  hint: use a whole number from 30 to 86400
inventory.yml:5:23: dns.zones.apps.example.com.powerdns.api: \"http://admin:pw@10.0.0.53:8081/api\" is not a plain http(s) base URL
  hint: give the API's base URL, e.g. http://10.0.0.53:8081, without a path, user or query
inventory.yml:5:79: dns.zones.apps.example.com.powerdns.api_key_variable: \"s3cret\" is not a variable named BERTH_DNS_…
  hint: name a masked, protected CI/CD variable such as BERTH_DNS_PDNS_KEY; the key itself never goes in the inventory
inventory.yml:6:20: dns.zones.b.example.com: a zone needs exactly one provider
  hint: give either `powerdns: {api, api_key_variable}` or `rfc2136: {server, key_name, secret_variable}`
"
        );
    }
}
