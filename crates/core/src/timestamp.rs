//! Timestamps as the log and the manifests write them: RFC 3339 UTC with
//! exactly six fractional digits, so the text form is fixed-width, sorts in
//! time order and survives replay byte for byte.

use std::fmt;
use std::str::FromStr;

use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::{Duration, OffsetDateTime, UtcOffset};

/// A UTC instant with microsecond precision.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(OffsetDateTime);

/// Why a timestamp did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not an RFC 3339 timestamp: {0:?}")]
pub struct TimestampError(pub String);

impl Timestamp {
    /// Truncates to microseconds and converts to UTC.
    pub fn from_datetime(at: OffsetDateTime) -> Self {
        let at = at.to_offset(UtcOffset::UTC);
        let micros = at.microsecond();
        Self(at.replace_nanosecond(micros * 1000).unwrap_or(at))
    }

    /// Seconds since the Unix epoch (for tests and arithmetic).
    pub fn from_unix_seconds(seconds: i64) -> Option<Self> {
        OffsetDateTime::from_unix_timestamp(seconds)
            .ok()
            .map(Self::from_datetime)
    }

    /// The instant.
    pub fn as_datetime(&self) -> OffsetDateTime {
        self.0
    }

    /// This instant plus `seconds`, or `None` beyond year 9999.
    pub fn plus_seconds(&self, seconds: i64) -> Option<Self> {
        let later = self.0.checked_add(Duration::seconds(seconds))?;
        (later.year() <= 9999).then_some(Self(later))
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let format = format_description!(
            "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z"
        );
        match self.0.format(&format) {
            Ok(text) => f.write_str(&text),
            Err(_) => Err(fmt::Error),
        }
    }
}

impl fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for Timestamp {
    type Err = TimestampError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let at = OffsetDateTime::parse(text, &Rfc3339).map_err(|_| TimestampError(text.into()))?;
        if !(0..=9999).contains(&at.to_offset(UtcOffset::UTC).year()) {
            return Err(TimestampError(text.into()));
        }
        Ok(Self::from_datetime(at))
    }
}

impl serde::Serialize for Timestamp {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Timestamp {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// Where "now" comes from. The registry asks its clock once per append so
/// tests can move time without sleeping; views never read it (replay
/// takes every time from the events).
pub trait Clock: Send + Sync + 'static {
    /// The current instant.
    fn now(&self) -> Timestamp;
}

/// The system's wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::from_datetime(OffsetDateTime::now_utc())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_width_utc_text() {
        let t: Timestamp = "2026-05-16T01:56:04.5+02:00".parse().unwrap();
        assert_eq!(t.to_string(), "2026-05-15T23:56:04.500000Z");
        let again: Timestamp = t.to_string().parse().unwrap();
        assert_eq!(again, t);
        assert!("2026-13-01T00:00:00Z".parse::<Timestamp>().is_err());
        assert!("yesterday".parse::<Timestamp>().is_err());
    }

    #[test]
    fn truncates_to_microseconds_and_orders() {
        let a: Timestamp = "2026-01-01T00:00:00.1234569Z".parse().unwrap();
        assert_eq!(a.to_string(), "2026-01-01T00:00:00.123456Z");
        let b = a.plus_seconds(1).unwrap();
        assert!(b > a);
        assert!(b.to_string() > a.to_string());
    }
}
