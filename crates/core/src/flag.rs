//! The one parser of on/off settings given as text: environment variables
//! such as `ARTIFACTSTORE_AUTH_REQUIRED` and `CI`. (Reading `CI` itself,
//! [`in_ci`], is the one place this crate looks at its environment.)
//!
//! Strict on purpose: a value that is not recognised is an error, never
//! "false". A typo in a security switch (`ARTIFACTSTORE_AUTH_REQUIRED=ture`)
//! must stop the server, not quietly turn authentication off.

/// A value that names neither on nor off.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a boolean: use true/false, yes/no, on/off or 1/0")]
pub struct FlagError(pub String);

/// Parses `true`/`false`, `yes`/`no`, `on`/`off` or `1`/`0`, ignoring ASCII
/// case and surrounding whitespace. Anything else, the empty string
/// included, is refused.
pub fn parse_bool(text: &str) -> Result<bool, FlagError> {
    let word = text.trim().to_ascii_lowercase();
    match word.as_str() {
        "true" | "yes" | "on" | "1" => Ok(true),
        "false" | "no" | "off" | "0" => Ok(false),
        _ => Err(FlagError(text.to_owned())),
    }
}

/// Whether an optional value (an environment variable that may be unset)
/// is on; unset is off, and an unrecognised value is refused.
pub fn parse_optional_bool(text: Option<&str>) -> Result<bool, FlagError> {
    text.map_or(Ok(false), parse_bool)
}

/// Whether tests run under CI (`CI` on), where a test that cannot reach
/// the service it needs must fail rather than skip. An unrecognised value
/// counts as on: the strict reading.
pub fn in_ci() -> bool {
    let value = std::env::var("CI").ok();
    parse_optional_bool(value.as_deref()).unwrap_or(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognised_words_in_any_case_with_whitespace() {
        for on in [
            "true", "TRUE", "True", "yes", "on", "ON", "1", "true ", " on\n",
        ] {
            assert_eq!(parse_bool(on), Ok(true), "{on:?}");
        }
        for off in ["false", "FALSE", "no", "Off", "0", "\tfalse "] {
            assert_eq!(parse_bool(off), Ok(false), "{off:?}");
        }
    }

    #[test]
    fn anything_else_is_refused() {
        for bad in ["", " ", "ture", "y", "enabled", "2", "truee", "t rue", "-1"] {
            assert_eq!(parse_bool(bad), Err(FlagError(bad.to_owned())), "{bad:?}");
        }
        assert_eq!(parse_optional_bool(None), Ok(false));
        assert!(parse_optional_bool(Some("maybe")).is_err());
    }
}
