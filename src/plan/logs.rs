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

/// Docker's `--timestamps` prefix: `2026-11-22T21:55:14.123456789Z text`.
pub fn split_docker_timestamp(line: &str) -> (Option<i64>, &str) {
    let Some((stamp, text)) = line.split_once(' ') else {
        return (None, line);
    };
    let time = (|| {
        let year = number(stamp.get(0..4)?)?;
        let month = number(stamp.get(5..7)?)?;
        let day = number(stamp.get(8..10)?)?;
        let hour = number(stamp.get(11..13)?)?;
        let minute = number(stamp.get(14..16)?)?;
        let second = number(stamp.get(17..19)?)?;
        Some(epoch_seconds(year, month, day, hour, minute, second))
    })();
    match time {
        Some(time) => (Some(time), text),
        None => (None, line),
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
            (Some(t), "hello world")
        );
        assert_eq!(split_docker_timestamp("no stamp"), (None, "no stamp"));
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
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
