//! Reading logs, the pure part: durations, the time stamps of nginx's log
//! formats, and the stamped line berth prints.

use crate::config::values::{quoted, ValueError};

/// `15m`, `2h`, `1d`, `30s` → seconds.
pub fn parse_duration(text: &str) -> Result<u64, ValueError> {
    let refuse = || ValueError {
        message: format!("{} is not a duration", quoted(text)),
        hint: "write a whole number with s, m, h or d, e.g. 15m or 2h".into(),
    };
    // The unit is the last character, which need not be one byte long.
    let mut chars = text.chars();
    let scale = match chars.next_back() {
        Some('s') => 1,
        Some('m') => 60,
        Some('h') => 3600,
        Some('d') => 86_400,
        _ => return Err(refuse()),
    };
    let digits = chars.as_str();
    if digits.is_empty() || digits.len() > 6 || !digits.chars().all(|c| c.is_ascii_digit()) {
        return Err(refuse());
    }
    Ok(digits.parse::<u64>().map_err(|_| refuse())? * scale)
}

/// Seconds since the epoch of a UTC civil time (Howard Hinnant's algorithm).
pub fn epoch_seconds(year: i64, month: i64, day: i64, hour: i64, minute: i64, second: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    days * 86_400 + hour * 3600 + minute * 60 + second
}

/// An RFC 3339 UTC time stamp, e.g. `2026-11-22T21:30:00Z`.
pub fn rfc3339(epoch: i64) -> String {
    let (days, rem) = (epoch.div_euclid(86_400), epoch.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

fn number(text: &str) -> Option<i64> {
    text.parse().ok()
}

/// The time of an access log line in nginx's `combined` format:
/// `... [22/Nov/2026:21:55:14 +0000] ...`.
pub fn access_log_time(line: &str) -> Option<i64> {
    let start = line.find('[')? + 1;
    let end = start + line.get(start..)?.find(']')?;
    let (date, zone) = line.get(start..end)?.split_once(' ')?;
    let mut parts = date.split([':', '/']);
    let day = number(parts.next()?)?;
    let month = match parts.next()? {
        "Jan" => 1,
        "Feb" => 2,
        "Mar" => 3,
        "Apr" => 4,
        "May" => 5,
        "Jun" => 6,
        "Jul" => 7,
        "Aug" => 8,
        "Sep" => 9,
        "Oct" => 10,
        "Nov" => 11,
        "Dec" => 12,
        _ => return None,
    };
    let year = number(parts.next()?)?;
    let hour = number(parts.next()?)?;
    let minute = number(parts.next()?)?;
    let second = number(parts.next()?)?;
    let sign = if zone.starts_with('-') { -1 } else { 1 };
    let offset = number(zone.get(1..3)?)? * 3600 + number(zone.get(3..5)?)? * 60;
    Some(epoch_seconds(year, month, day, hour, minute, second) - sign * offset)
}

/// The time of an nginx error log line: `2026/11/22 21:55:14 [error] ...`
/// (local time of the host, which berth's hosts keep in UTC).
pub fn error_log_time(line: &str) -> Option<i64> {
    let stamp = line.get(..19)?;
    let mut parts = stamp.split(['/', ' ', ':']);
    let year = number(parts.next()?)?;
    let month = number(parts.next()?)?;
    let day = number(parts.next()?)?;
    let hour = number(parts.next()?)?;
    let minute = number(parts.next()?)?;
    let second = number(parts.next()?)?;
    Some(epoch_seconds(year, month, day, hour, minute, second))
}

/// Nanoseconds since the epoch: the time of a log line, as precise as its
/// source gives it.
pub type Nanos = i64;

const NANOS_PER_SECOND: Nanos = 1_000_000_000;

/// The time of a line stamped to the whole second (nginx's own logs): the
/// end of that second, so that an access line, written when its request
/// ended, sorts after what the app's containers printed while serving it
/// within the same second.
pub fn end_of_second(seconds: i64) -> Nanos {
    seconds * NANOS_PER_SECOND + NANOS_PER_SECOND - 1
}

/// Whole seconds of a time, for `--since` and for printing.
pub fn seconds(time: Nanos) -> i64 {
    time.div_euclid(NANOS_PER_SECOND)
}

/// Docker's `--timestamps` prefix: `2026-11-22T21:55:14.123456789Z text`
/// (the fraction may be shorter or absent).
pub fn split_docker_timestamp(line: &str) -> (Option<Nanos>, &str) {
    let Some((stamp, text)) = line.split_once(' ') else {
        return (None, line);
    };
    match docker_time(stamp) {
        Some(time) => (Some(time), text),
        None => (None, line),
    }
}

fn docker_time(stamp: &str) -> Option<Nanos> {
    let stamp = stamp.strip_suffix('Z')?;
    let (whole, fraction) = match stamp.split_once('.') {
        Some((whole, fraction)) => (whole, fraction),
        None => (stamp, ""),
    };
    if whole.len() != 19 || fraction.len() > 9 || !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let field = |range: std::ops::Range<usize>| -> Option<i64> {
        let text = whole.get(range)?;
        text.bytes()
            .all(|b| b.is_ascii_digit())
            .then(|| number(text))?
    };
    let seconds = epoch_seconds(
        field(0..4)?,
        field(5..7)?,
        field(8..10)?,
        field(11..13)?,
        field(14..16)?,
        field(17..19)?,
    );
    let nanos = if fraction.is_empty() {
        0
    } else {
        number(fraction)? * 10_i64.pow(9 - fraction.len() as u32)
    };
    Some(seconds * NANOS_PER_SECOND + nanos)
}

/// Which container of a slot printed a line of a saved release log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Php,
    Web,
}

impl Role {
    /// The label berth gives the container, and the first word of its
    /// lines in a saved release log.
    pub fn label(self) -> &'static str {
        match self {
            Role::Php => "php",
            Role::Web => "web",
        }
    }

    /// The source its lines are shown as.
    pub fn source(self) -> &'static str {
        match self {
            Role::Php => "php",
            Role::Web => "nginx",
        }
    }
}

/// A line of a saved release log (written by the deploy step that keeps a
/// replaced slot's logs): `php|web <docker time stamp> <text>`.
pub fn split_saved_line(line: &str) -> Option<(Role, Option<Nanos>, &str)> {
    let (role, rest) = line.split_once(' ')?;
    let role = match role {
        "php" => Role::Php,
        "web" => Role::Web,
        _ => return None,
    };
    let (time, text) = split_docker_timestamp(rest);
    Some((role, time, text))
}

/// One line read from a source, before it is shown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub time: Option<Nanos>,
    pub source: &'static str,
    pub text: String,
}

impl Entry {
    pub fn shown(&self) -> LogLine {
        LogLine {
            time: self.time.map(|t| rfc3339(seconds(t))),
            source: self.source,
            text: self.text.clone(),
        }
    }
}

/// Where a line sorts: its own time, or that of the line before it in its
/// source; lines before any timed line of their source sort first.
fn sort_keys(lines: &[Entry]) -> Vec<Option<Nanos>> {
    let mut carry = None;
    lines
        .iter()
        .map(|line| {
            carry = line.time.or(carry);
            carry
        })
        .collect()
}

/// The lines of several sources, each in the order it was read, merged in
/// time order. The sort is stable: equal times keep the order of the
/// sources as given, then the order read.
pub fn merge_by_time(sources: Vec<Vec<Entry>>) -> Vec<Entry> {
    let mut keyed: Vec<(Option<Nanos>, Entry)> = sources
        .into_iter()
        .flat_map(|lines| {
            let keys = sort_keys(&lines);
            keys.into_iter().zip(lines)
        })
        .collect();
    keyed.sort_by_key(|(key, _)| *key);
    keyed.into_iter().map(|(_, line)| line).collect()
}

/// The last `n` of time-ordered lines.
pub fn last(mut lines: Vec<Entry>, n: u64) -> Vec<Entry> {
    let n = usize::try_from(n).unwrap_or(usize::MAX);
    let skip = lines.len().saturating_sub(n);
    lines.drain(..skip);
    lines
}

/// Merges sources that are read as streams, one line at a time, holding
/// no more than a line or so per source: the earliest head goes out once
/// every source still open has one (ties to the source given first).
#[derive(Debug)]
pub struct StreamMerge {
    queues: Vec<std::collections::VecDeque<(Option<Nanos>, Entry)>>,
    open: Vec<bool>,
    carry: Vec<Option<Nanos>>,
}

impl StreamMerge {
    pub fn new(sources: usize) -> StreamMerge {
        StreamMerge {
            queues: vec![std::collections::VecDeque::new(); sources],
            open: vec![true; sources],
            carry: vec![None; sources],
        }
    }

    /// The source to read next: an open one with no line waiting; `None`
    /// when a line can go out (or all is done).
    pub fn wanted(&self) -> Option<usize> {
        (0..self.queues.len()).find(|&i| self.open[i] && self.queues[i].is_empty())
    }

    pub fn push(&mut self, source: usize, line: Entry) {
        self.carry[source] = line.time.or(self.carry[source]);
        self.queues[source].push_back((self.carry[source], line));
    }

    pub fn close(&mut self, source: usize) {
        self.open[source] = false;
    }

    /// The next line in time order, once no source can still give an
    /// earlier one.
    pub fn pop(&mut self) -> Option<Entry> {
        if self.wanted().is_some() {
            return None;
        }
        let next = (0..self.queues.len())
            .filter_map(|i| self.queues[i].front().map(|(key, _)| (*key, i)))
            .min()?;
        self.queues[next.1].pop_front().map(|(_, line)| line)
    }
}

/// One line of output: when, from where, what.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LogLine {
    pub time: Option<String>,
    pub source: &'static str,
    pub text: String,
}
impl std::fmt::Display for LogLine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Log text is the app's and its visitors': shown by the one rule of
        // `crate::text`, so no escape sequence reaches the reader's terminal.
        let time = self.time.as_deref().unwrap_or("-");
        write!(
            f,
            "{time} {:<6} | {}",
            self.source,
            crate::text::visible(&self.text)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("15m"), Ok(900));
        assert_eq!(parse_duration("2h"), Ok(7200));
        assert_eq!(parse_duration("1d"), Ok(86_400));
        assert!(parse_duration("15").is_err());
        assert!(parse_duration("m").is_err());
        assert!(parse_duration("-1h").is_err());
        assert_eq!(
            parse_duration("1é").unwrap_err().message,
            r#""1\u{e9}" is not a duration"#
        );
        assert!(parse_duration("").is_err());
        assert!(parse_duration("é").is_err());
    }

    #[test]
    fn nginx_and_docker_time_stamps() {
        let t = epoch_seconds(2026, 11, 22, 21, 55, 14);
        assert_eq!(rfc3339(t), "2026-11-22T21:55:14Z");
        assert_eq!(
            access_log_time(
                r#"127.0.0.1 - - [22/Nov/2026:21:55:14 +0000] "GET / HTTP/1.0" 200 440"#
            ),
            Some(t)
        );
        assert_eq!(
            access_log_time(r#"x [22/Nov/2026:22:55:14 +0100] "GET /""#),
            Some(t)
        );
        assert_eq!(
            error_log_time("2026/11/22 21:55:14 [error] 7#7: boom"),
            Some(t)
        );
        assert_eq!(
            split_docker_timestamp("2026-11-22T21:55:14.123456789Z hello world"),
            (Some(t * 1_000_000_000 + 123_456_789), "hello world")
        );
        assert_eq!(
            split_docker_timestamp("2026-11-22T21:55:14.5Z short"),
            (Some(t * 1_000_000_000 + 500_000_000), "short")
        );
        assert_eq!(
            split_docker_timestamp("2026-11-22T21:55:14Z whole"),
            (Some(t * 1_000_000_000), "whole")
        );
        assert_eq!(
            split_docker_timestamp("2026-11-22T21:55:14.+1Z x"),
            (None, "2026-11-22T21:55:14.+1Z x")
        );
        assert_eq!(end_of_second(t), t * 1_000_000_000 + 999_999_999);
        assert_eq!(seconds(end_of_second(t)), t);
        assert_eq!(
            split_saved_line("web 2026-11-22T21:55:14.000000001Z GET /"),
            Some((Role::Web, Some(t * 1_000_000_000 + 1), "GET /"))
        );
        assert_eq!(split_saved_line("db 2026-11-22T21:55:14Z x"), None);
        assert_eq!(split_docker_timestamp("no stamp"), (None, "no stamp"));
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
    }

    fn line(time: Option<i64>, source: &'static str, text: &str) -> Entry {
        Entry {
            time,
            source,
            text: text.into(),
        }
    }

    #[test]
    fn sources_merge_in_time_order_stably() {
        let php = vec![
            line(Some(10), "php", "p10"),
            line(None, "php", "p10 trace"),
            line(Some(30), "php", "p30"),
        ];
        let web = vec![
            line(None, "nginx", "w start"),
            line(Some(10), "nginx", "w10"),
            line(Some(20), "nginx", "w20"),
            line(Some(30), "nginx", "w30"),
        ];
        let texts =
            |lines: Vec<Entry>| -> Vec<String> { lines.into_iter().map(|l| l.text).collect() };
        let merged = merge_by_time(vec![php.clone(), web.clone()]);
        assert_eq!(
            texts(merged.clone()),
            ["w start", "p10", "p10 trace", "w10", "w20", "p30", "w30"]
        );
        assert_eq!(texts(last(merged, 2)), ["p30", "w30"]);

        let mut stream = StreamMerge::new(2);
        let mut out = Vec::new();
        let (mut php, mut web) = (php.into_iter(), web.into_iter());
        loop {
            while let Some(line) = stream.pop() {
                out.push(line);
            }
            let Some(source) = stream.wanted() else { break };
            let next = if source == 0 { php.next() } else { web.next() };
            match next {
                Some(line) => stream.push(source, line),
                None => stream.close(source),
            }
        }
        assert_eq!(
            texts(out),
            ["w start", "p10", "p10 trace", "w10", "w20", "p30", "w30"]
        );
    }
}

/// Splits the command line a logs-key client sent (`$SSH_ORIGINAL_COMMAND`)
/// into words: plain words, `'single-quoted'` parts and `\`-escaped
/// characters, as OpenSSH clients quote arguments. Anything a shell would
/// treat specially outside quotes is refused: the line never reaches a
/// shell, but a request that needs such characters is not one berth sent.
pub fn split_request(line: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            ' ' | '\t' => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => word.push(c),
                        None => return Err("unterminated quote".into()),
                    }
                }
            }
            '\\' => {
                in_word = true;
                match chars.next() {
                    Some(c) => word.push(c),
                    None => return Err("trailing backslash".into()),
                }
            }
            c if c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c) => {
                in_word = true;
                word.push(c);
            }
            c => return Err(format!("unexpected character {}", quoted(&c.to_string()))),
        }
    }
    if in_word {
        words.push(word);
    }
    Ok(words)
}

#[cfg(test)]
mod request_tests {
    use super::split_request;

    #[test]
    fn requests_split_like_a_shell_reads_openssh_quoting() {
        assert_eq!(
            split_request("logs --env 'test' --grep 'a b'\\''c'").unwrap(),
            ["logs", "--env", "test", "--grep", "a b'c"]
        );
        for bad in [
            "logs; id",
            "logs $(id)",
            "logs `id`",
            "logs | sh",
            "logs \"x\"",
            "logs 'open",
            "x\ny",
        ] {
            assert!(split_request(bad).is_err(), "{bad}");
        }
    }
}
