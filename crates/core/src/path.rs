//! Validation of the `relative_path` a client names a file by
//! (DESIGN.md invariant 7). A validated path is metadata only: it never
//! becomes part of a storage path.
//!
//! A package's paths must also come back as a tree of files on any
//! filesystem `pull` may write to (docs/security.md, "Paths"):
//! - no Unicode format character (zero-width spaces and joiners, bidi
//!   controls such as the right-to-left override, the BOM): they make two
//!   names look alike, or a name look like another;
//! - no two paths of a package share a [`collision_key`] (NFC, then
//!   lowercase): `café` in NFC and NFD, or `README.md` and `readme.md`,
//!   are one file on a normalising or case-insensitive filesystem;
//! - no path is a file and a folder at once (`a` and `a/b`), under the
//!   same key.

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
    /// An invisible formatting character (Unicode category Cf).
    #[error("the path contains the invisible formatting character U+{0:04X} (zero-width and bidirectional controls are refused)")]
    FormatCharacter(u32),
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
        if let Some(c) = text.chars().find(|&c| {
            unicode_general_category::get_general_category(c)
                == unicode_general_category::GeneralCategory::Format
        }) {
            return Err(PathError::FormatCharacter(u32::from(c)));
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

/// The key under which two paths name the same file on a normalising or
/// case-insensitive filesystem: the path in Unicode NFC, lowercased, and in
/// NFC again (lowercasing can decompose). Two paths of one package may not
/// share it; neither may a file's key be a folder of another's.
pub fn collision_key(path: &str) -> String {
    use unicode_normalization::UnicodeNormalization;
    let composed: String = path.nfc().collect();
    composed.to_lowercase().nfc().collect()
}

/// The folders above a path, shortest first: `a/b/c` → `a`, `a/b`.
pub fn folders_of(path: &str) -> impl Iterator<Item = &str> {
    path.match_indices('/').map(move |(at, _)| &path[..at])
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
            ("a\u{200b}b", PathError::FormatCharacter(0x200b)),
            ("invoice\u{202e}fdp.exe", PathError::FormatCharacter(0x202e)),
            ("\u{feff}a", PathError::FormatCharacter(0xfeff)),
            ("a\u{2066}b", PathError::FormatCharacter(0x2066)),
            ("soft\u{ad}hyphen", PathError::FormatCharacter(0xad)),
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

    #[test]
    fn collision_keys_join_what_filesystems_join() {
        let nfc = "caf\u{e9}.txt";
        let nfd = "cafe\u{301}.txt";
        assert_ne!(nfc, nfd);
        assert_eq!(collision_key(nfc), collision_key(nfd));
        assert_eq!(collision_key("README.md"), collision_key("readme.md"));
        assert_eq!(
            collision_key("Dir/\u{C9}T\u{C9}.TXT"),
            collision_key("dir/e\u{301}t\u{e9}.txt")
        );
        assert_ne!(collision_key("a.txt"), collision_key("b.txt"));
        assert_ne!(collision_key("a/b"), collision_key("a_b"));
    }

    #[test]
    fn folders_of_a_path() {
        assert_eq!(folders_of("a/b/c").collect::<Vec<_>>(), ["a", "a/b"]);
        assert_eq!(folders_of("a").count(), 0);
    }
}
