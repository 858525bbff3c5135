//! Retention classes and their arithmetic.

use std::fmt;
use std::str::FromStr;

use crate::timestamp::Timestamp;

/// What happens to a package's bytes once it is eligible for deletion.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DeletionStrategy {
    /// The bytes are deleted by a later purge.
    Delete,
    /// A person reviews before anything is deleted.
    ManualReview,
    /// Never deleted (for classes with no expiry).
    Never,
}

impl DeletionStrategy {
    /// The name used in configuration and JSON.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Delete => "delete",
            Self::ManualReview => "manual-review",
            Self::Never => "never",
        }
    }
}

/// A span of time written as `90d`, `12h`, `30m`, `45s`, `2w` or `10y`
/// (a year is 365 days: retention is counted in days, not calendars).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct RetentionDuration {
    seconds: i64,
}

/// Why a duration did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid duration {0:?}: write a whole number and a unit (s, m, h, d, w, y), e.g. `90d`")]
pub struct DurationError(pub String);

impl RetentionDuration {
    /// A duration of whole seconds.
    pub fn from_seconds(seconds: i64) -> Self {
        Self { seconds }
    }

    /// A duration of whole days.
    pub fn from_days(days: i64) -> Self {
        Self {
            seconds: days * 86_400,
        }
    }

    /// The length in seconds.
    pub fn seconds(&self) -> i64 {
        self.seconds
    }

    /// Parses like [`FromStr`], but also takes a zero length (`0s`, `0d`):
    /// for spans where "at once" means something, such as `purge_after`.
    pub fn parse_allowing_zero(text: &str) -> Result<Self, DurationError> {
        match text.strip_suffix(['s', 'm', 'h', 'd', 'w', 'y']) {
            Some(digits) if !digits.is_empty() && digits.bytes().all(|b| b == b'0') => {
                Ok(Self { seconds: 0 })
            }
            _ => text.parse(),
        }
    }
}

impl FromStr for RetentionDuration {
    type Err = DurationError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let err = || DurationError(text.to_owned());
        let split = text.find(|c: char| !c.is_ascii_digit()).ok_or_else(err)?;
        let (number, unit) = text.split_at(split);
        let number: i64 = number.parse().map_err(|_| err())?;
        let unit_seconds = match unit {
            "s" => 1,
            "m" => 60,
            "h" => 3_600,
            "d" => 86_400,
            "w" => 7 * 86_400,
            "y" => 365 * 86_400,
            _ => return Err(err()),
        };
        let seconds = number.checked_mul(unit_seconds).ok_or_else(err)?;
        if seconds <= 0 {
            return Err(err());
        }
        Ok(Self { seconds })
    }
}

impl fmt::Display for RetentionDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.seconds % 86_400 == 0 && self.seconds != 0 {
            write!(f, "{}d", self.seconds / 86_400)
        } else {
            write!(f, "{}s", self.seconds)
        }
    }
}

/// A named retention class.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetentionClass {
    /// The class name packages refer to.
    pub id: String,
    /// How long after creation a package expires; `None` never expires.
    pub default_duration: Option<RetentionDuration>,
    /// What happens after expiry.
    pub deletion_strategy: DeletionStrategy,
    /// For `delete` classes: how long an eligible package waits before the
    /// lifecycle purges it.
    pub purge_after: RetentionDuration,
}

/// The default of [`RetentionClass::purge_after`]: a week in which an
/// eligible package can still be held or extended.
pub const DEFAULT_PURGE_AFTER: RetentionDuration = RetentionDuration {
    seconds: 7 * 86_400,
};

impl RetentionClass {
    /// The expiry of a package of this class created at `created_at`;
    /// `None` when the class never expires (or the sum passes year 9999).
    pub fn default_expiry(&self, created_at: Timestamp) -> Option<Timestamp> {
        self.default_duration
            .and_then(|d| created_at.plus_seconds(d.seconds()))
    }
}

/// The classes used when the configuration names none.
pub fn default_retention_classes() -> Vec<RetentionClass> {
    let class = |id: &str, days: Option<i64>, strategy| RetentionClass {
        id: id.to_owned(),
        default_duration: days.map(RetentionDuration::from_days),
        deletion_strategy: strategy,
        purge_after: DEFAULT_PURGE_AFTER,
    };
    vec![
        class("ephemeral", Some(7), DeletionStrategy::Delete),
        class("standard", Some(90), DeletionStrategy::Delete),
        class("long-term", Some(3650), DeletionStrategy::ManualReview),
        class("permanent", None, DeletionStrategy::Never),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_and_reject() {
        assert_eq!(
            "90d".parse::<RetentionDuration>().unwrap().seconds(),
            90 * 86_400
        );
        assert_eq!(
            "12h".parse::<RetentionDuration>().unwrap().seconds(),
            43_200
        );
        assert_eq!(
            "2w".parse::<RetentionDuration>().unwrap().seconds(),
            14 * 86_400
        );
        assert_eq!(
            "1y".parse::<RetentionDuration>().unwrap().seconds(),
            365 * 86_400
        );
        for bad in [
            "",
            "d",
            "90",
            "90x",
            "-1d",
            "0d",
            "1.5d",
            "99999999999999999999y",
        ] {
            assert!(bad.parse::<RetentionDuration>().is_err(), "{bad}");
        }
    }

    #[test]
    fn zero_is_allowed_only_where_asked_for() {
        for zero in ["0s", "0d", "000h"] {
            assert!(zero.parse::<RetentionDuration>().is_err(), "{zero}");
            assert_eq!(
                RetentionDuration::parse_allowing_zero(zero)
                    .unwrap()
                    .seconds(),
                0
            );
        }
        assert_eq!(
            RetentionDuration::parse_allowing_zero("7d")
                .unwrap()
                .seconds(),
            7 * 86_400
        );
        for bad in ["", "s", "0", "-0s", "0x"] {
            assert!(
                RetentionDuration::parse_allowing_zero(bad).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn default_expiry_is_creation_plus_duration() {
        let classes = default_retention_classes();
        let created: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let ephemeral = classes.iter().find(|c| c.id == "ephemeral").unwrap();
        assert_eq!(
            ephemeral.default_expiry(created).unwrap().to_string(),
            "2026-01-08T00:00:00.000000Z"
        );
        let permanent = classes.iter().find(|c| c.id == "permanent").unwrap();
        assert_eq!(permanent.default_expiry(created), None);
    }
}
