//! The rate-limit syntax of the settings: `5/minute`, `10/hour`, `30/second`, `7/90s`.

use std::str::FromStr;

use serde::Deserialize;

/// "N per period", written `5/minute`, `10/hour`, `30/second` or `7/90s`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub count: u32,
    pub per_seconds: u64,
}

impl FromStr for RateLimit {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let usage = "expected COUNT/PERIOD such as 5/minute, 10/hour or 7/90s";
        let (count, period) = text.trim().split_once('/').ok_or(usage)?;
        let count: u32 = count.trim().parse().map_err(|_| usage)?;
        let per_seconds = match period.trim() {
            "second" | "s" => 1,
            "minute" | "min" | "m" => 60,
            "hour" | "h" => 3600,
            "day" | "d" => 86_400,
            other => other
                .strip_suffix('s')
                .and_then(|n| n.parse::<u64>().ok())
                .ok_or(usage)?,
        };
        if count == 0 || per_seconds == 0 {
            return Err("count and period must be positive".to_string());
        }
        Ok(Self { count, per_seconds })
    }
}

/// In the file a rate limit is a string in the same syntax, so a bad one is
/// refused by the TOML parser, naming its key and line.
impl<'de> Deserialize<'de> for RateLimit {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods_are_named_or_counted_in_seconds() {
        for (text, count, per_seconds) in [
            ("5/minute", 5, 60),
            ("5/min", 5, 60),
            ("10/hour", 10, 3600),
            (" 30 / second ", 30, 1),
            ("2/day", 2, 86_400),
            ("7/90s", 7, 90),
        ] {
            assert_eq!(text.parse(), Ok(RateLimit { count, per_seconds }), "{text}");
        }
    }

    #[test]
    fn zero_or_malformed_limits_are_refused() {
        for text in ["0/minute", "5/0s", "5", "5/fortnight", "five/minute", "-1/minute"] {
            assert!(text.parse::<RateLimit>().is_err(), "{text}");
        }
    }
}
