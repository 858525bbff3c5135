//! Validation of the `relative_path` a client names a file by
//! (DESIGN.md invariant 7). A validated path is metadata only: it never
//! becomes part of a storage path.

use std::fmt;

/// Longest accepted path, in bytes.
pub const MAX_PATH_BYTES: usize = 1024;
/// Longest accepted segment, in bytes (the common filesystem limit).
pub const MAX_SEGMENT_BYTES: usize = 255;

/// Why a relative path was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// Empty string.
    #[error("the path is empty")]
    Empty,
    /// Over [`MAX_PATH_BYTES`].
    #[error("the path is {0} bytes long; at most {MAX_PATH_BYTES} are allowed")]
    TooLong(usize),
    /// A segment over [`MAX_SEGMENT_BYTES`].
    #[error("a path segment is {0} bytes long; at most {MAX_SEGMENT_BYTES} are allowed")]
    SegmentTooLong(usize),
    /// Starts with `/`.
    #[error("the path must be relative (no leading `/`)")]
    Absolute,
    /// Contains `\`.
    #[error("the path must use `/` as separator, not `\\`")]
    Backslash,
    /// NUL or another control character.
    #[error("the path contains a control character")]
    ControlCharacter,
    /// `a//b` or a trailing `/`.
    #[error("the path has an empty segment")]
    EmptySegment,
    /// `.` or `..`.
    #[error("the path has a `.` or `..` segment")]
    DotSegment,
}

/// A validated, `/`-separated relative path.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RelativePath(String);

impl RelativePath {
    /// Validates `text` as a relative path.
    pub fn parse(text: &str) -> Result<Self, PathError> {
        if text.is_empty() {
            return Err(PathError::Empty);
        }
        if text.len() > MAX_PATH_BYTES {
            return Err(PathError::TooLong(text.len()));
        }
        if text.starts_with('/') {
            return Err(PathError::Absolute);
        }
        if text.contains('\\') {
            return Err(PathError::Backslash);
        }
        if text.chars().any(char::is_control) {
            return Err(PathError::ControlCharacter);
        }
        for segment in text.split('/') {
            match segment {
                "" => return Err(PathError::EmptySegment),
                "." | ".." => return Err(PathError::DotSegment),
                s if s.len() > MAX_SEGMENT_BYTES => return Err(PathError::SegmentTooLong(s.len())),
                _ => {}
            }
        }
        Ok(Self(text.to_owned()))
    }

    /// The path text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RelativePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for RelativePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_hostile_paths() {
        let cases: &[(&str, PathError)] = &[
            ("", PathError::Empty),
            ("/abs", PathError::Absolute),
            ("a/../b", PathError::DotSegment),
            ("..", PathError::DotSegment),
            ("a//b", PathError::EmptySegment),
            ("a/", PathError::EmptySegment),
            ("./a", PathError::DotSegment),
            ("a\\b", PathError::Backslash),
            ("a\0b", PathError::ControlCharacter),
            ("a\nb", PathError::ControlCharacter),
            ("a\u{7f}b", PathError::ControlCharacter),
            ("a\u{85}b", PathError::ControlCharacter),
        ];
        for (input, expected) in cases {
            assert_eq!(
                RelativePath::parse(input).as_ref(),
                Err(expected),
                "{input:?}"
            );
        }
        let long = "a/".repeat(600) + "b";
        assert_eq!(
            RelativePath::parse(&long),
            Err(PathError::TooLong(long.len()))
        );
        let long_segment = "x".repeat(256);
        assert_eq!(
            RelativePath::parse(&long_segment),
            Err(PathError::SegmentTooLong(256))
        );
    }

    #[test]
    fn accepts_ordinary_and_non_ascii_paths() {
        for ok in [
            "reports/2026/summary.pdf",
            "a",
            "Prüfbericht/übersicht.pdf",
            "日本語/ファイル.txt",
            "..hidden/.a/b..",
            "with space/file name.txt",
        ] {
            assert_eq!(RelativePath::parse(ok).unwrap().as_str(), ok);
        }
    }
}
