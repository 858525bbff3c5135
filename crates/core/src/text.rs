//! The rules for free text the registry records: labels (a package's name,
//! producer and subject) and reasons (of holds and extensions).
//!
//! Lengths count characters (Unicode scalar values), as JSON Schema's
//! `maxLength` does, so the OpenAPI document can state the rule exactly
//! (artifactstore-api's `rules`); the byte bound follows (four bytes a
//! character at most).

/// Longest label, in characters.
pub const MAX_LABEL_CHARS: usize = 256;
/// Longest reason, in characters (before trimming).
pub const MAX_REASON_CHARS: usize = 4096;

/// Longest actor a request names (`X-Artifactstore-Actor`), in characters.
pub const MAX_ACTOR_CHARS: usize = 256;

/// Why a text was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TextError {
    /// Empty, or only whitespace.
    #[error("must not be empty")]
    Blank,
    /// Over the limit.
    #[error("is {chars} characters long; at most {max} are allowed")]
    TooLong {
        /// Its length.
        chars: usize,
        /// The limit.
        max: usize,
    },
    /// A control character (Unicode Cc), NUL included.
    #[error("must not contain control characters")]
    ControlCharacter,
    /// NUL.
    #[error("must not contain NUL characters")]
    Nul,
    /// Outside visible ASCII and space (an HTTP header's actor).
    #[error("must be visible ASCII characters and spaces")]
    NotPrintableAscii,
}

fn at_most(text: &str, max: usize) -> Result<(), TextError> {
    let chars = text.chars().count();
    if chars > max {
        return Err(TextError::TooLong { chars, max });
    }
    Ok(())
}

/// A label: not blank, at most [`MAX_LABEL_CHARS`], no control character.
pub fn check_label(text: &str) -> Result<(), TextError> {
    if text.trim().is_empty() {
        return Err(TextError::Blank);
    }
    at_most(text, MAX_LABEL_CHARS)?;
    if text.chars().any(char::is_control) {
        return Err(TextError::ControlCharacter);
    }
    Ok(())
}

/// A reason: no NUL, at most [`MAX_REASON_CHARS`], not blank. Returns it
/// trimmed, as it is recorded.
pub fn check_reason(text: &str) -> Result<&str, TextError> {
    if text.contains('\0') {
        return Err(TextError::Nul);
    }
    at_most(text, MAX_REASON_CHARS)?;
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err(TextError::Blank);
    }
    Ok(trimmed)
}

/// An actor named by a request header: visible ASCII and spaces (what HTTP
/// field values carry without an encoding), at most [`MAX_ACTOR_CHARS`],
/// not blank. Returns it trimmed, as it is recorded.
pub fn check_actor(text: &str) -> Result<&str, TextError> {
    if !text.chars().all(|c| c == ' ' || c.is_ascii_graphic()) {
        return Err(TextError::NotPrintableAscii);
    }
    at_most(text, MAX_ACTOR_CHARS)?;
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err(TextError::Blank);
    }
    Ok(trimmed)
}
