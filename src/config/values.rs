//! Typed values for everything berth reads from a file or a request.
//!
//! Each newtype is validated when it is built and is the only way such a value
//! reaches a template, a shell command or an MR note. The allow-lists are
//! deliberately narrower than what nginx, git or Docker would accept: a value
//! that is not plainly safe is refused, with a hint saying what is allowed.

use std::fmt;
use std::net::IpAddr;

/// Why a value was refused, and what the user can do about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValueError {
    pub message: String,
    pub hint: String,
}

impl ValueError {
    fn new(message: impl Into<String>, hint: impl Into<String>) -> Self {
        ValueError {
            message: message.into(),
            hint: hint.into(),
        }
    }
}

/// How a YAML scalar must be written for a value of this type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScalarKind {
    String,
    Integer,
    Number,
}

/// A value parsed from one YAML scalar.
pub trait ScalarValue: Sized {
    /// Shown in "expected …" messages, e.g. "a tag".
    const EXPECTED: &'static str;
    const KIND: ScalarKind;
    fn parse(text: &str) -> Result<Self, ValueError>;
}

/// Quotes untrusted text for an error message: ASCII only, control and
/// non-ASCII characters escaped, long text cut, so a message can never carry a
/// newline, a terminal escape or a look-alike character.
pub fn quoted(text: &str) -> String {
    const MAX_CHARS: usize = 48;
    let mut out = String::from("\"");
    for (i, c) in text.chars().enumerate() {
        if i == MAX_CHARS {
            out.push('…');
            break;
        }
        if crate::text::is_hidden(c) {
            crate::text::push_visible(&mut out, c);
        } else {
            out.extend(c.escape_default());
        }
    }
    out.push('"');
    out
}

fn describe_char(c: char) -> String {
    match c {
        ' ' => "a space".to_string(),
        '\n' => "a newline".to_string(),
        '\t' => "a tab".to_string(),
        c if c.is_ascii_graphic() => format!("'{c}'"),
        c => format!("'{}'", c.escape_default()),
    }
}

macro_rules! string_newtype {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
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

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({:?})", stringify!($name), self.0)
            }
        }

        /// Read back (e.g. from a host's `state.json`) through the same
        /// validation as from a file.
        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let text = String::deserialize(d)?;
                <$name as ScalarValue>::parse(&text).map_err(|e| serde::de::Error::custom(e.message))
            }
        }

        impl std::str::FromStr for $name {
            type Err = ValueError;
            fn from_str(text: &str) -> Result<Self, ValueError> {
                <$name as ScalarValue>::parse(text)
            }
        }
    };
}

/// Checks a lowercase name such as an app id or environment: letters, digits
/// and '-', starting with a letter and not ending with '-'.
fn check_slug(what: &str, text: &str, max: usize, example: &str) -> Result<(), ValueError> {
    let hint = format!(
        "use at most {max} lowercase letters, digits and '-', starting with a letter, e.g. {example}"
    );
    if text.is_empty() {
        return Err(ValueError::new(format!("{what} is empty"), hint));
    }
    if text.len() > max {
        return Err(ValueError::new(
            format!("{what} {} is longer than {max} characters", quoted(text)),
            hint,
        ));
    }
    if let Some(c) = text
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
    {
        return Err(ValueError::new(
            format!("{what} {} contains {}", quoted(text), describe_char(c)),
            hint,
        ));
    }
    if !text.starts_with(|c: char| c.is_ascii_lowercase()) || text.ends_with('-') {
        return Err(ValueError::new(
            format!(
                "{what} {} must start with a letter and not end with '-'",
                quoted(text)
            ),
            hint,
        ));
    }
    Ok(())
}

string_newtype!(
    /// The id of an app: names its containers, directories, vhost and upstream.
    AppId
);
impl ScalarValue for AppId {
    const EXPECTED: &'static str = "an app id";
    const KIND: ScalarKind = ScalarKind::String;
    fn parse(text: &str) -> Result<Self, ValueError> {
        check_slug("app id", text, 40, "shop-search")?;
        Ok(AppId(text.to_string()))
    }
}

string_newtype!(
    /// An environment name such as `test` or `production`.
    EnvName
);
impl ScalarValue for EnvName {
    const EXPECTED: &'static str = "an environment name";
    const KIND: ScalarKind = ScalarKind::String;
    fn parse(text: &str) -> Result<Self, ValueError> {
        check_slug("environment name", text, 20, "production")?;
        Ok(EnvName(text.to_string()))
    }
}

string_newtype!(
    /// The name of a Docker host in the inventory.
    HostName
);
impl ScalarValue for HostName {
    const EXPECTED: &'static str = "a host name";
    const KIND: ScalarKind = ScalarKind::String;
    fn parse(text: &str) -> Result<Self, ValueError> {
        check_slug("host name", text, 63, "web-1")?;
        Ok(HostName(text.to_string()))
    }
}

string_newtype!(
    /// A git tag of the code repository, the unit of release.
    ///
    /// Git's own ref rules (`git check-ref-format`) plus an allow-list: ASCII
    /// letters, digits and `. _ - / +`, starting with a letter or digit, so a
    /// tag can never be read as an option, a shell word or a revision
    /// expression.
    GitTag
);
impl ScalarValue for GitTag {
    const EXPECTED: &'static str = "a tag";
    const KIND: ScalarKind = ScalarKind::String;
    fn parse(text: &str) -> Result<Self, ValueError> {
        const MAX: usize = 100;
        let hint = "a tag may use letters, digits and . _ - / +, must start with a letter or digit, e.g. v1.4.0";
        let refuse = |why: String| Err(ValueError::new(why, hint));
        if text.is_empty() {
            return refuse("tag is empty".into());
        }
        if text.len() > MAX {
            return refuse(format!(
                "tag {} is longer than {MAX} characters",
                quoted(text)
            ));
        }
        if let Some(c) = text
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '/' | '+')))
        {
            return refuse(format!(
                "tag {} contains {}, which a tag may not contain",
                quoted(text),
                describe_char(c)
            ));
        }
        if !text.starts_with(|c: char| c.is_ascii_alphanumeric()) {
            return refuse(format!(
                "tag {} must start with a letter or digit",
                quoted(text)
            ));
        }
        if text.contains("..") {
            return refuse(format!("tag {} contains \"..\"", quoted(text)));
        }
        if text.ends_with('/') || text.ends_with('.') {
            return refuse(format!("tag {} must not end with '/' or '.'", quoted(text)));
        }
        for component in text.split('/') {
            if component.is_empty() || component.starts_with('.') || component.ends_with(".lock") {
                return refuse(format!(
                    "tag {} breaks git's ref rules (empty component, component starting with '.' or ending with \".lock\")",
                    quoted(text)
                ));
            }
        }
        Ok(GitTag(text.to_string()))
    }
}

string_newtype!(
    /// A git commit id: exactly 40 lowercase hexadecimal digits (SHA-1), the
    /// form GitLab's API and `git rev-parse` print. Abbreviations are
    /// refused: an approval must name one commit and only one.
    CommitId
);
impl ScalarValue for CommitId {
    const EXPECTED: &'static str = "a commit id";
    const KIND: ScalarKind = ScalarKind::String;
    fn parse(text: &str) -> Result<Self, ValueError> {
        let hint = "give the full 40-character commit id, e.g. the output of git rev-parse 'v1.4.0^{commit}'";
        if text.len() != 40
            || !text
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err(ValueError::new(
                format!(
                    "commit {} is not 40 lowercase hexadecimal digits",
                    quoted(text)
                ),
                hint,
            ));
        }
        Ok(CommitId(text.to_string()))
    }
}

string_newtype!(
    /// A DNS name a vhost answers to (RFC 1123, lowercase ASCII, no trailing dot).
    DomainName
);
impl ScalarValue for DomainName {
    const EXPECTED: &'static str = "a domain name";
    const KIND: ScalarKind = ScalarKind::String;
    fn parse(text: &str) -> Result<Self, ValueError> {
        let hint = "write a lowercase DNS name such as shop.example.com; internationalized names in punycode (xn--…)";
        let refuse = |why: String| Err(ValueError::new(why, hint));
        if text.is_empty() {
            return refuse("domain name is empty".into());
        }
        if text.len() > 253 {
            return refuse(format!(
                "domain name {} is longer than 253 characters",
                quoted(text)
            ));
        }
        if let Some(c) = text
            .chars()
            .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '.')))
        {
            return refuse(format!(
                "domain name {} contains {}",
                quoted(text),
                describe_char(c)
            ));
        }
        let labels: Vec<&str> = text.split('.').collect();
        if labels.len() < 2 {
            return refuse(format!(
                "domain name {} needs at least two labels",
                quoted(text)
            ));
        }
        for label in &labels {
            if label.is_empty()
                || label.len() > 63
                || label.starts_with('-')
                || label.ends_with('-')
            {
                return refuse(format!(
                    "domain name {} has a label that is empty, longer than 63 characters, or starts or ends with '-'",
                    quoted(text)
                ));
            }
        }
        if labels
            .last()
            .is_some_and(|tld| tld.chars().all(|c| c.is_ascii_digit()))
        {
            return refuse(format!(
                "domain name {} ends in an all-numeric label",
                quoted(text)
            ));
        }
        Ok(DomainName(text.to_string()))
    }
}

string_newtype!(
    /// A path relative to the code checkout, e.g. the document root `public`.
    RelPath
);
impl ScalarValue for RelPath {
    const EXPECTED: &'static str = "a relative path";
    const KIND: ScalarKind = ScalarKind::String;
    fn parse(text: &str) -> Result<Self, ValueError> {
        let hint = "give a path inside the code checkout, such as public or web/root, using letters, digits and . _ - /";
        check_path_chars("path", text, hint)?;
        if text.starts_with('/') {
            return Err(ValueError::new(
                format!("path {} is absolute", quoted(text)),
                hint,
            ));
        }
        check_path_components("path", text, hint, true)?;
        Ok(RelPath(text.to_string()))
    }
}

string_newtype!(
    /// An absolute path on a host, from the platform's inventory.
    AbsPath
);
impl ScalarValue for AbsPath {
    const EXPECTED: &'static str = "an absolute path";
    const KIND: ScalarKind = ScalarKind::String;
    fn parse(text: &str) -> Result<Self, ValueError> {
        let hint = "give an absolute path such as /srv/berth, using letters, digits and . _ - /";
        check_path_chars("path", text, hint)?;
        let Some(rest) = text.strip_prefix('/') else {
            return Err(ValueError::new(
                format!("path {} is not absolute", quoted(text)),
                hint,
            ));
        };
        if !rest.is_empty() {
            check_path_components("path", rest.trim_end_matches('/'), hint, false)?;
        }
        let trimmed = text.trim_end_matches('/');
        Ok(AbsPath(
            if trimmed.is_empty() { "/" } else { trimmed }.to_string(),
        ))
    }
}

impl AbsPath {
    /// Joins a validated relative part; both sides are already safe.
    pub fn join(&self, part: &str) -> AbsPath {
        debug_assert!(!part.contains(".."));
        AbsPath(format!("{}/{}", self.0.trim_end_matches('/'), part))
    }
}

string_newtype!(
    /// The URL path the health check requests, e.g. `/health.php`.
    UrlPath
);
impl ScalarValue for UrlPath {
    const EXPECTED: &'static str = "a URL path";
    const KIND: ScalarKind = ScalarKind::String;
    fn parse(text: &str) -> Result<Self, ValueError> {
        let hint =
            "give a path starting with '/', using letters, digits and . _ ~ - /, e.g. /health.php";
        if text.is_empty() {
            return Err(ValueError::new("URL path is empty", hint));
        }
        if let Some(c) = text
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '~' | '-' | '/')))
        {
            return Err(ValueError::new(
                format!("URL path {} contains {}", quoted(text), describe_char(c)),
                hint,
            ));
        }
        if !text.starts_with('/') || text.len() > 200 {
            return Err(ValueError::new(
                format!(
                    "URL path {} must start with '/' and be at most 200 characters",
                    quoted(text)
                ),
                hint,
            ));
        }
        if text.split('/').any(|c| c == ".." || c == ".") {
            return Err(ValueError::new(
                format!("URL path {} contains a '.' or '..' segment", quoted(text)),
                hint,
            ));
        }
        Ok(UrlPath(text.to_string()))
    }
}

fn check_path_chars(what: &str, text: &str, hint: &str) -> Result<(), ValueError> {
    if text.is_empty() {
        return Err(ValueError::new(format!("{what} is empty"), hint));
    }
    if text.len() > 200 {
        return Err(ValueError::new(
            format!("{what} {} is longer than 200 characters", quoted(text)),
            hint,
        ));
    }
    if let Some(c) = text
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '/')))
    {
        return Err(ValueError::new(
            format!("{what} {} contains {}", quoted(text), describe_char(c)),
            hint,
        ));
    }
    Ok(())
}

fn check_path_components(
    what: &str,
    text: &str,
    hint: &str,
    allow_lone_dot: bool,
) -> Result<(), ValueError> {
    if allow_lone_dot && text == "." {
        return Ok(());
    }
    for component in text.split('/') {
        if component == ".." {
            return Err(ValueError::new(
                format!("{what} {} leaves its directory with \"..\"", quoted(text)),
                hint,
            ));
        }
        if component.is_empty() || component == "." || component.starts_with('-') {
            return Err(ValueError::new(
                format!(
                    "{what} {} has an empty, '.' or '-'-leading component",
                    quoted(text)
                ),
                hint,
            ));
        }
    }
    Ok(())
}

/// A TCP port a slot publishes on the host: unprivileged, 1024–65535.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct Port(u16);

impl Port {
    pub fn get(self) -> u16 {
        self.0
    }
}

impl fmt::Display for Port {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl ScalarValue for Port {
    const EXPECTED: &'static str = "a port number";
    const KIND: ScalarKind = ScalarKind::Integer;
    fn parse(text: &str) -> Result<Self, ValueError> {
        let hint = "use an unprivileged port between 1024 and 65535";
        match parse_integer(text) {
            Some(n) if (1024..=65535).contains(&n) => Ok(Port(n as u16)),
            _ => Err(ValueError::new(
                format!("port {} is out of range", quoted(text)),
                hint,
            )),
        }
    }
}

string_newtype!(
    /// An app's mail sender (`mail.from`): `local@domain`, where the local
    /// part is ASCII letters, digits and `. _ + -` (no leading, trailing
    /// or doubled `.`, at most 64) and the domain a [`DomainName`]. Narrower
    /// than RFC 5321 on purpose: it is written into msmtp's configuration
    /// and into every message's `From:` header.
    MailAddress
);
impl ScalarValue for MailAddress {
    const EXPECTED: &'static str = "a mail address";
    const KIND: ScalarKind = ScalarKind::String;
    fn parse(text: &str) -> Result<Self, ValueError> {
        let hint = "write an address such as noreply@shop.example.com: ASCII letters, digits \
                    and . _ + - before the @, a lowercase domain after it";
        let refuse = |why: String| Err(ValueError::new(why, hint));
        let Some((local, domain)) = text.split_once('@') else {
            return refuse(format!("mail address {} has no '@'", quoted(text)));
        };
        if local.is_empty() || local.len() > 64 {
            return refuse(format!(
                "mail address {} needs 1 to 64 characters before the '@'",
                quoted(text)
            ));
        }
        if let Some(c) = local
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '+' | '-')))
        {
            return refuse(format!(
                "mail address {} contains {}",
                quoted(text),
                describe_char(c)
            ));
        }
        if local.starts_with('.') || local.ends_with('.') || local.contains("..") {
            return refuse(format!(
                "mail address {} starts or ends with '.' or has '..' before the '@'",
                quoted(text)
            ));
        }
        if let Err(e) = DomainName::parse(domain) {
            return refuse(format!("mail address {}: {}", quoted(text), e.message));
        }
        Ok(MailAddress(text.to_string()))
    }
}

/// Where a host's mail relay listens: an IPv4 address and a TCP port,
/// `10.0.0.25:25`. IPv4 only, like the slot networks and the egress
/// policy that lets the slots reach it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(transparent)]
pub struct RelayAddress(std::net::SocketAddrV4);

impl RelayAddress {
    pub fn ip(self) -> std::net::Ipv4Addr {
        *self.0.ip()
    }

    pub fn port(self) -> u16 {
        self.0.port()
    }
}

impl fmt::Display for RelayAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl ScalarValue for RelayAddress {
    const EXPECTED: &'static str = "an IPv4 address:port";
    const KIND: ScalarKind = ScalarKind::String;
    fn parse(text: &str) -> Result<Self, ValueError> {
        match text.parse::<std::net::SocketAddrV4>() {
            Ok(address) if address.port() != 0 => Ok(RelayAddress(address)),
            _ => Err(ValueError::new(
                format!("{} is not an IPv4 address:port", quoted(text)),
                "write the relay's IPv4 address and SMTP port, e.g. 10.0.0.25:25",
            )),
        }
    }
}

/// A port any listener may use (1–65535), e.g. SSH's 22 or a front's 443.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(transparent)]
pub struct AnyPort(u16);

impl AnyPort {
    pub const SSH: AnyPort = AnyPort(22);

    pub fn get(self) -> u16 {
        self.0
    }
}

impl ScalarValue for AnyPort {
    const EXPECTED: &'static str = "a port number";
    const KIND: ScalarKind = ScalarKind::Integer;
    fn parse(text: &str) -> Result<Self, ValueError> {
        match parse_integer(text) {
            Some(n) if (1..=65535).contains(&n) => Ok(AnyPort(n as u16)),
            _ => Err(ValueError::new(
                format!("port {} is out of range", quoted(text)),
                "use a port between 1 and 65535",
            )),
        }
    }
}

fn parse_integer(text: &str) -> Option<i64> {
    if text.is_empty() || text.len() > 18 || !text.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// A whole number within bounds, written as a plain YAML integer.
pub fn bounded_integer(what: &str, text: &str, min: i64, max: i64) -> Result<i64, ValueError> {
    match parse_integer(text) {
        Some(n) if (min..=max).contains(&n) => Ok(n),
        _ => Err(ValueError::new(
            format!("{what} {} is out of range", quoted(text)),
            format!("use a whole number from {min} to {max}"),
        )),
    }
}

/// A size in bytes, written with a K, M or G suffix: `256M`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(transparent)]
pub struct ByteSize(u64);

impl ByteSize {
    pub const fn mib(n: u64) -> ByteSize {
        ByteSize(n << 20)
    }

    pub const fn bytes(self) -> u64 {
        self.0
    }

    pub const fn plus(self, other: ByteSize) -> ByteSize {
        ByteSize(self.0 + other.0)
    }

    /// The PHP ini spelling, e.g. `256M`.
    pub fn php(self) -> String {
        for (shift, unit) in [(30, 'G'), (20, 'M'), (10, 'K')] {
            if self.0.is_multiple_of(1 << shift) {
                return format!("{}{unit}", self.0 >> shift);
            }
        }
        self.0.to_string()
    }

    /// The compose / nginx spelling, e.g. `256m`.
    pub fn lower(self) -> String {
        self.php().to_ascii_lowercase()
    }
}

impl ScalarValue for ByteSize {
    const EXPECTED: &'static str = "a size such as 256M";
    const KIND: ScalarKind = ScalarKind::String;
    fn parse(text: &str) -> Result<Self, ValueError> {
        let hint = "write a whole number followed by K, M or G, e.g. 256M";
        let refuse = || {
            Err(ValueError::new(
                format!(
                    "size {} is not a number with a K, M or G suffix",
                    quoted(text)
                ),
                hint,
            ))
        };
        let Some(unit) = text.chars().last() else {
            return refuse();
        };
        let shift = match unit {
            'K' => 10,
            'M' => 20,
            'G' => 30,
            _ => return refuse(),
        };
        match parse_integer(&text[..text.len() - 1]) {
            Some(n) if n > 0 && n < (1 << 20) => Ok(ByteSize((n as u64) << shift)),
            _ => refuse(),
        }
    }
}

/// A CPU share in thousandths of a CPU, written as a decimal: `0.5`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(transparent)]
pub struct Cpus(u32);

impl Cpus {
    pub fn millis(self) -> u32 {
        self.0
    }
}

impl fmt::Display for Cpus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let whole = self.0 / 1000;
        let frac = self.0 % 1000;
        if frac == 0 {
            write!(f, "{whole}")
        } else {
            let frac = format!("{frac:03}");
            write!(f, "{whole}.{}", frac.trim_end_matches('0'))
        }
    }
}

impl ScalarValue for Cpus {
    const EXPECTED: &'static str = "a number of CPUs";
    const KIND: ScalarKind = ScalarKind::Number;
    fn parse(text: &str) -> Result<Self, ValueError> {
        let hint = "write a decimal number of CPUs from 0.05 to 16, e.g. 0.5";
        let refuse = || {
            Err(ValueError::new(
                format!(
                    "cpus {} is out of range or not a decimal number",
                    quoted(text)
                ),
                hint,
            ))
        };
        let (whole, frac) = text.split_once('.').unwrap_or((text, ""));
        if whole.is_empty()
            || frac.len() > 3
            || !whole.chars().all(|c| c.is_ascii_digit())
            || !frac.chars().all(|c| c.is_ascii_digit())
            || whole.len() > 3
        {
            return refuse();
        }
        let millis = whole
            .parse::<u32>()
            .unwrap_or(u32::MAX)
            .saturating_mul(1000)
            + format!("{frac:0<3}").parse::<u32>().unwrap_or(0);
        if (50..=16_000).contains(&millis) {
            Ok(Cpus(millis))
        } else {
            refuse()
        }
    }
}

/// An IP address a slot's port is published on: loopback or private only,
/// never every interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(transparent)]
pub struct PublishAddress(IpAddr);

impl fmt::Display for PublishAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl ScalarValue for PublishAddress {
    const EXPECTED: &'static str = "an IP address";
    const KIND: ScalarKind = ScalarKind::String;
    fn parse(text: &str) -> Result<Self, ValueError> {
        let hint = "publish slots on 127.0.0.1 or a private address the front nginx reaches, never on all interfaces";
        let ip: IpAddr = text
            .parse()
            .map_err(|_| ValueError::new(format!("{} is not an IP address", quoted(text)), hint))?;
        let private = match ip {
            IpAddr::V4(v4) => v4.is_loopback() || v4.is_private(),
            IpAddr::V6(v6) => v6.is_loopback() || (v6.segments()[0] & 0xfe00) == 0xfc00,
        };
        if private {
            Ok(PublishAddress(ip))
        } else {
            Err(ValueError::new(
                format!("{} is not a loopback or private address", quoted(text)),
                hint,
            ))
        }
    }
}

/// Any IP address, e.g. the target of an extra hosts entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(transparent)]
pub struct IpAddress(IpAddr);

impl IpAddress {
    pub fn ip(self) -> IpAddr {
        self.0
    }
}

impl fmt::Display for IpAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl ScalarValue for IpAddress {
    const EXPECTED: &'static str = "an IP address";
    const KIND: ScalarKind = ScalarKind::String;
    fn parse(text: &str) -> Result<Self, ValueError> {
        text.parse().map(IpAddress).map_err(|_| {
            ValueError::new(
                format!("{} is not an IP address", quoted(text)),
                "write an IPv4 or IPv6 address such as 10.0.0.5",
            )
        })
    }
}

/// An address with a port that nginx listens on: `127.0.0.1:8080`, `[::]:443`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(transparent)]
pub struct ListenAddress(std::net::SocketAddr);

impl ListenAddress {
    pub fn port(self) -> u16 {
        self.0.port()
    }

    pub fn ip(self) -> IpAddr {
        self.0.ip()
    }
}

impl fmt::Display for ListenAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl ScalarValue for ListenAddress {
    const EXPECTED: &'static str = "an address:port";
    const KIND: ScalarKind = ScalarKind::String;
    fn parse(text: &str) -> Result<Self, ValueError> {
        text.parse().map(ListenAddress).map_err(|_| {
            ValueError::new(
                format!("{} is not an address:port", quoted(text)),
                "write it as 0.0.0.0:80 or [::]:443",
            )
        })
    }
}

/// A network in CIDR form, e.g. a trusted proxy range `10.0.0.0/8`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(transparent)]
pub struct Cidr(String);

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl ScalarValue for Cidr {
    const EXPECTED: &'static str = "a network such as 10.0.0.0/8";
    const KIND: ScalarKind = ScalarKind::String;
    fn parse(text: &str) -> Result<Self, ValueError> {
        let refuse = || {
            Err(ValueError::new(
                format!("{} is not a network in CIDR form", quoted(text)),
                "write an address and prefix length such as 10.0.0.0/8 or fd00::/8",
            ))
        };
        let Some((addr, len)) = text.split_once('/') else {
            return refuse();
        };
        let Ok(ip) = addr.parse::<IpAddr>() else {
            return refuse();
        };
        let max = if ip.is_ipv4() { 32 } else { 128 };
        match parse_integer(len) {
            Some(n) if n <= max => Ok(Cidr(format!("{ip}/{n}"))),
            _ => refuse(),
        }
    }
}

string_newtype!(
    /// A host name or IP address SSH connects to.
    SshAddress
);
impl ScalarValue for SshAddress {
    const EXPECTED: &'static str = "a host name or IP address";
    const KIND: ScalarKind = ScalarKind::String;
    fn parse(text: &str) -> Result<Self, ValueError> {
        if text.parse::<IpAddr>().is_ok() || DomainName::parse(text).is_ok() {
            Ok(SshAddress(text.to_string()))
        } else {
            Err(ValueError::new(
                format!("{} is neither an IP address nor a DNS name", quoted(text)),
                "write an IP address or a lowercase DNS name such as web-1.example.com",
            ))
        }
    }
}

string_newtype!(
    /// A Unix user name, e.g. the SSH user on a host.
    UnixUser
);
impl ScalarValue for UnixUser {
    const EXPECTED: &'static str = "a user name";
    const KIND: ScalarKind = ScalarKind::String;
    fn parse(text: &str) -> Result<Self, ValueError> {
        let ok = !text.is_empty()
            && text.len() <= 32
            && text.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
            && text
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '-'));
        if ok {
            Ok(UnixUser(text.to_string()))
        } else {
            Err(ValueError::new(
                format!("{} is not a valid user name", quoted(text)),
                "use lowercase letters, digits, '_' and '-', starting with a letter, e.g. deploy",
            ))
        }
    }
}

string_newtype!(
    /// A GitLab user name, e.g. the outside developer who owns an app.
    GitLabUser
);
impl ScalarValue for GitLabUser {
    const EXPECTED: &'static str = "a GitLab user name";
    const KIND: ScalarKind = ScalarKind::String;
    fn parse(text: &str) -> Result<Self, ValueError> {
        let ok = !text.is_empty()
            && text.len() <= 255
            && text.starts_with(|c: char| c.is_ascii_alphanumeric())
            && text
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
        if ok {
            Ok(GitLabUser(text.to_string()))
        } else {
            Err(ValueError::new(
                format!("{} is not a GitLab user name", quoted(text)),
                "write the user name without '@', using letters, digits, '_', '-' and '.'",
            ))
        }
    }
}

string_newtype!(
    /// A GitLab project path such as `plugins/shop-search`.
    ProjectPath
);
impl ScalarValue for ProjectPath {
    const EXPECTED: &'static str = "a GitLab project path";
    const KIND: ScalarKind = ScalarKind::String;
    fn parse(text: &str) -> Result<Self, ValueError> {
        let hint = "write group/project, e.g. plugins/shop-search";
        let segment_ok = |s: &str| {
            !s.is_empty()
                && s.len() <= 255
                && s.starts_with(|c: char| c.is_ascii_alphanumeric())
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
                && !s.ends_with(".git")
                && !s.ends_with(".atom")
                && !s.contains("..")
        };
        let segments: Vec<&str> = text.split('/').collect();
        if segments.len() >= 2 && segments.iter().all(|s| segment_ok(s)) {
            Ok(ProjectPath(text.to_string()))
        } else {
            Err(ValueError::new(
                format!("{} is not a GitLab project path", quoted(text)),
                hint,
            ))
        }
    }
}

string_newtype!(
    /// A local Docker image reference such as `berth/php-nginx:8.2-bookworm`.
    ImageRef
);
impl ScalarValue for ImageRef {
    const EXPECTED: &'static str = "an image name";
    const KIND: ScalarKind = ScalarKind::String;
    fn parse(text: &str) -> Result<Self, ValueError> {
        let (name, tag) = text.split_once(':').unwrap_or((text, "latest"));
        let name_ok = !name.is_empty()
            && name.len() <= 200
            && name.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
            && name.chars().all(|c| {
                c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-' | '/')
            });
        let tag_ok = !tag.is_empty()
            && tag.len() <= 128
            && tag.starts_with(|c: char| c.is_ascii_alphanumeric())
            && tag
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
        if name_ok && tag_ok {
            Ok(ImageRef(text.to_string()))
        } else {
            Err(ValueError::new(
                format!("{} is not a valid image name", quoted(text)),
                "write a local image as name:tag, e.g. berth/php-nginx:8.2-bookworm",
            ))
        }
    }
}

string_newtype!(
    /// One `known_hosts` line that pins a host's SSH key: `[addr]:port type base64`.
    KnownHostsLine
);
impl ScalarValue for KnownHostsLine {
    const EXPECTED: &'static str = "a known_hosts line";
    const KIND: ScalarKind = ScalarKind::String;
    fn parse(text: &str) -> Result<Self, ValueError> {
        const KEY_TYPES: &[&str] = &[
            "ssh-ed25519",
            "ecdsa-sha2-nistp256",
            "ecdsa-sha2-nistp384",
            "ecdsa-sha2-nistp521",
            "ssh-rsa",
        ];
        let fields: Vec<&str> = text.split(' ').collect();
        let ok = fields.len() == 3
            && !fields[0].is_empty()
            && fields[0].chars().all(|c| {
                c.is_ascii_alphanumeric() || matches!(c, '.' | ':' | '-' | '[' | ']' | ',')
            })
            && KEY_TYPES.contains(&fields[1])
            && fields[2].len() >= 16
            && fields[2]
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '/' | '='));
        if ok {
            Ok(KnownHostsLine(text.to_string()))
        } else {
            Err(ValueError::new(
                format!("{} is not a known_hosts line", quoted(text)),
                "copy the host's line from `ssh-keyscan -p PORT HOST`, e.g. [10.0.0.5]:22 ssh-ed25519 AAAA…",
            ))
        }
    }
}

string_newtype!(
    /// One argument of a command berth runs on a host (from the inventory).
    CommandArg
);
impl ScalarValue for CommandArg {
    const EXPECTED: &'static str = "a command argument";
    const KIND: ScalarKind = ScalarKind::String;
    fn parse(text: &str) -> Result<Self, ValueError> {
        let ok = !text.is_empty()
            && text.len() <= 200
            && text.chars().all(|c| {
                c.is_ascii_alphanumeric()
                    || matches!(c, '.' | '_' | '-' | '/' | '=' | ':' | '@' | '%' | '+' | ',')
            });
        if ok {
            Ok(CommandArg(text.to_string()))
        } else {
            Err(ValueError::new(
                format!("command argument {} has a character berth does not pass to a host", quoted(text)),
                "give each argument as its own list item, using letters, digits and . _ - / = : @ % + ,",
            ))
        }
    }
}

string_newtype!(
    /// A cgroup below the root of each cgroup hierarchy on a host, e.g.
    /// `berth/logs` or `system.slice/berth-logs.slice`.
    CgroupPath
);
impl ScalarValue for CgroupPath {
    const EXPECTED: &'static str = "a cgroup path";
    const KIND: ScalarKind = ScalarKind::String;
    fn parse(text: &str) -> Result<Self, ValueError> {
        let hint = "give the cgroup's path below the hierarchy's root, such as berth/logs, using letters, digits and . _ - /";
        check_path_chars("cgroup path", text, hint)?;
        if text.starts_with('/') {
            return Err(ValueError::new(
                format!("cgroup path {} is absolute", quoted(text)),
                hint,
            ));
        }
        check_path_components("cgroup path", text, hint, false)?;
        Ok(CgroupPath(text.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_escapes_control_and_non_ascii_text() {
        assert_eq!(quoted("a\nb\u{202e}"), r#""a\nb\u{202e}""#);
        assert_eq!(quoted(&"x".repeat(60)).chars().count(), 48 + 3);
    }

    #[test]
    fn byte_sizes_render_in_their_largest_exact_unit() {
        assert_eq!(ByteSize::parse("1024M").unwrap().php(), "1G");
        assert_eq!(ByteSize::parse("1536K").unwrap().lower(), "1536k");
    }

    #[test]
    fn cpus_round_trip_as_decimals() {
        assert_eq!(Cpus::parse("0.5").unwrap().to_string(), "0.5");
        assert_eq!(Cpus::parse("2").unwrap().to_string(), "2");
        assert_eq!(Cpus::parse("1.25").unwrap().millis(), 1250);
        assert!(Cpus::parse("0.01").is_err());
    }

    #[test]
    fn absolute_paths_lose_trailing_slashes_but_keep_the_root() {
        assert_eq!(
            AbsPath::parse("/srv/berth/").unwrap().as_str(),
            "/srv/berth"
        );
        assert_eq!(AbsPath::parse("/").unwrap().as_str(), "/");
        assert_eq!(
            AbsPath::parse("/srv").unwrap().join("a/b").as_str(),
            "/srv/a/b"
        );
        assert!(AbsPath::parse("/srv//x").is_err());
    }

    #[test]
    fn tags_follow_git_rules() {
        for good in ["v1.0.0", "release/2024-01", "1.2.3+build.5", "V2_rc1"] {
            assert!(GitTag::parse(good).is_ok(), "{good}");
        }
        for bad in [
            "-v1", "v1..2", "a/.b", "a.lock", "a//b", "v1/", "v1.", "@", "v1@{0}",
        ] {
            assert!(GitTag::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn mail_addresses_are_narrow() {
        for good in ["noreply@shop.example.com", "No.Reply+x_1-2@a.example"] {
            assert_eq!(MailAddress::parse(good).unwrap().as_str(), good);
        }
        let message = |bad: &str| MailAddress::parse(bad).unwrap_err().message;
        assert_eq!(message("noreply"), r#"mail address "noreply" has no '@'"#);
        assert_eq!(
            message("a b@x.example"),
            r#"mail address "a b@x.example" contains a space"#
        );
        assert_eq!(
            message("a\nBcc: x@y.example@x.example"),
            r#"mail address "a\nBcc: x@y.example@x.example" contains a newline"#
        );
        assert_eq!(
            message(".a@x.example"),
            r#"mail address ".a@x.example" starts or ends with '.' or has '..' before the '@'"#
        );
        assert_eq!(
            message("a@X.example"),
            r#"mail address "a@X.example": domain name "X.example" contains 'X'"#
        );
        assert_eq!(
            message("@x.example"),
            r#"mail address "@x.example" needs 1 to 64 characters before the '@'"#
        );
    }

    #[test]
    fn relay_addresses_are_ipv4_with_a_port() {
        let relay = RelayAddress::parse("10.0.0.25:25").unwrap();
        assert_eq!(
            (relay.ip().to_string(), relay.port()),
            ("10.0.0.25".into(), 25)
        );
        for bad in ["10.0.0.25", "10.0.0.25:0", "[::1]:25", "relay.example:25"] {
            assert_eq!(
                RelayAddress::parse(bad).unwrap_err().message,
                format!("\"{bad}\" is not an IPv4 address:port")
            );
        }
    }
}
