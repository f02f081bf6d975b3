//! Durations as people write them in workflow files: `30s`, `10m`, `12h`,
//! `90d`, `2w`, or several at once (`1h30m`).

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

const UNITS: [(char, u64); 5] = [
    ('w', 604_800),
    ('d', 86_400),
    ('h', 3_600),
    ('m', 60),
    ('s', 1),
];

/// A whole number of seconds, written with units.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Duration {
    seconds: u64,
}

impl Duration {
    pub const fn from_secs(seconds: u64) -> Self {
        Self { seconds }
    }

    pub const fn from_hours(hours: u64) -> Self {
        Self::from_secs(hours * 3_600)
    }

    pub const fn from_days(days: u64) -> Self {
        Self::from_secs(days * 86_400)
    }

    pub fn as_secs(self) -> u64 {
        self.seconds
    }

    pub fn to_std(self) -> std::time::Duration {
        std::time::Duration::from_secs(self.seconds)
    }
}

/// Why a duration could not be read; the text is a complete sentence.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid duration `{0}`: write a number followed by a unit, s, m, h, d or w (`30s`, `10m`, `90d`, `1h30m`)"
)]
pub struct ParseDurationError(String);

impl FromStr for Duration {
    type Err = ParseDurationError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let error = || ParseDurationError(text.to_string());
        let mut rest = text.trim();
        if rest.is_empty() {
            return Err(error());
        }
        let mut seconds: u64 = 0;
        while !rest.is_empty() {
            let digits = rest.find(|c: char| !c.is_ascii_digit()).ok_or_else(error)?;
            if digits == 0 {
                return Err(error());
            }
            let number: u64 = rest[..digits].parse().map_err(|_| error())?;
            let unit = rest[digits..].chars().next().ok_or_else(error)?;
            let (_, scale) = UNITS.iter().find(|(u, _)| *u == unit).ok_or_else(error)?;
            seconds = number
                .checked_mul(*scale)
                .and_then(|s| seconds.checked_add(s))
                .ok_or_else(error)?;
            rest = &rest[digits + unit.len_utf8()..];
        }
        Ok(Self { seconds })
    }
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.seconds == 0 {
            return f.write_str("0s");
        }
        // Days are the largest unit printed: people write `90d`, not `12w6d`.
        let mut left = self.seconds;
        for (unit, scale) in UNITS.into_iter().skip(1) {
            if left >= scale {
                write!(f, "{}{unit}", left / scale)?;
                left %= scale;
            }
        }
        Ok(())
    }
}

impl Serialize for Duration {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

impl JsonSchema for Duration {
    fn schema_name() -> Cow<'static, str> {
        "Duration".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "pattern": "^([0-9]+[smhdw])+$",
            "description": "A duration: a number and a unit (s, m, h, d, w), e.g. 30s, 10m, 90d, 1h30m.",
            "examples": ["30s", "10m", "90d"]
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_every_unit_and_combinations() {
        let secs = |t: &str| t.parse::<Duration>().map(Duration::as_secs);
        assert_eq!(secs("30s"), Ok(30));
        assert_eq!(secs("10m"), Ok(600));
        assert_eq!(secs("12h"), Ok(43_200));
        assert_eq!(secs("90d"), Ok(7_776_000));
        assert_eq!(secs("2w"), Ok(1_209_600));
        assert_eq!(secs("1h30m"), Ok(5_400));
        assert_eq!(secs("0d"), Ok(0));
    }

    #[test]
    fn refuses_what_is_not_a_duration() {
        for bad in [
            "",
            "10",
            "m",
            "10 minutes",
            "1.5h",
            "-1d",
            "10y",
            "99999999999999999999d",
        ] {
            assert!(bad.parse::<Duration>().is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn prints_back_in_days_and_smaller_units() {
        assert_eq!(Duration::from_secs(5_400).to_string(), "1h30m");
        assert_eq!(Duration::from_days(90).to_string(), "90d");
        assert_eq!(
            "2w".parse::<Duration>().map(|d| d.to_string()),
            Ok("14d".to_string())
        );
        assert_eq!(Duration::from_secs(0).to_string(), "0s");
    }
}
