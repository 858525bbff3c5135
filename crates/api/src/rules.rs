//! The text rules the registry enforces, as JSON Schema patterns for the
//! document. The limits themselves live in the core
//! (`artifactstore_core::text`), where the registry reads them too.
//!
//! Patterns are ECMA-262 regular expressions, as OpenAPI 3.1 says, and use
//! only what ECMA-262 and Python's `re` read alike (clients such as
//! schemathesis check them with the latter): explicit classes instead of
//! `\s`, whose meaning differs between the two and from Rust's
//! `char::is_whitespace`, which the registry's trimming uses.

use artifactstore_core::path::MAX_PATH_BYTES;
use artifactstore_core::text::{MAX_ACTOR_CHARS, MAX_LABEL_CHARS, MAX_REASON_CHARS};
use utoipa::openapi::schema::{Object, ObjectBuilder, Type};

/// The Unicode format characters (Cf) of the Basic Multilingual Plane, as
/// a character-class body (a test checks it against the registry's rule for
/// every character of the plane).
macro_rules! cf {
    () => {
        r"\u00ad\u0600-\u0605\u061c\u06dd\u070f\u0890-\u0891\u08e2\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb"
    };
}

/// One path segment: 1-255 characters of the allowed ones, and not `.` or
/// `..`, said without lookahead (which Rust's regex crates lack): a first
/// character that is not a dot, or a dot and a second that is not, or two
/// dots and at least one more.
macro_rules! segment {
    () => {
        concat!(
            "(?:",
            allowed_but_dot!(),
            allowed!(),
            "{0,254}",
            r"|\.",
            allowed_but_dot!(),
            allowed!(),
            "{0,253}",
            r"|\.\.",
            allowed!(),
            "{1,253})"
        )
    };
}

macro_rules! allowed {
    () => {
        concat!(r"[^\u0000-\u001f\u007f-\u009f/\\", cf!(), "]")
    };
}

macro_rules! allowed_but_dot {
    () => {
        concat!(r"[^\u0000-\u001f\u007f-\u009f/\\.", cf!(), "]")
    };
}

/// A label (name, producer, subject): no control character (Unicode Cc)
/// and at least one character that is not whitespace.
pub const LABEL_PATTERN: &str = "^[^\\u0000-\\u001f\\u007f-\\u009f]*[^\\u0000-\\u0020\\u007f-\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000][^\\u0000-\\u001f\\u007f-\\u009f]*$";

/// A reason (holds, extensions): no NUL, and at least one character that
/// is not whitespace.
pub const REASON_PATTERN: &str = "^[^\\u0000]*[^\\u0000\\u0009-\\u000d\\u0020\\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000][^\\u0000]*$";

/// A metadata schema slug.
pub const SLUG_PATTERN: &str = "^[a-z0-9][a-z0-9._-]{0,63}$";

/// The `X-Artifactstore-Actor` header: visible ASCII and spaces, not
/// blank (`artifactstore_core::text::check_actor`).
pub const ACTOR_PATTERN: &str = "^[\\u0020-\\u007e]*[\\u0021-\\u007e][\\u0020-\\u007e]*$";

/// A `relative_path` (`artifactstore_core::path`): `/`-separated
/// segments, none empty, `.` or `..`; no control character, no Unicode
/// format character (Cf; those of the Basic Multilingual Plane are listed,
/// as ECMA-262 patterns without the `u` flag cannot name the others) and no
/// backslash. The byte limits (1,024 a path, 255 a segment) are stated as
/// character counts, which they equal for ASCII.
pub const PATH_PATTERN: &str = concat!("^", segment!(), "(?:/", segment!(), ")*$");

fn text(min: usize, max: Option<usize>, pattern: &str) -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .min_length(Some(min))
        .max_length(max)
        .pattern(Some(pattern))
}

/// The schema of a label (`schema_with` of its fields).
pub fn label() -> Object {
    text(1, Some(MAX_LABEL_CHARS), LABEL_PATTERN).build()
}

/// The schema of a reason.
pub fn reason() -> Object {
    text(1, Some(MAX_REASON_CHARS), REASON_PATTERN).build()
}

/// The schema of the actor header.
pub fn actor() -> Object {
    text(1, Some(MAX_ACTOR_CHARS), ACTOR_PATTERN).build()
}

/// The schema of a relative path.
pub fn relative_path() -> Object {
    text(1, Some(MAX_PATH_BYTES), PATH_PATTERN).build()
}

/// The schema of `Last-Event-ID`: a sequence, digits only (a number past
/// the log's head is as good as the head).
pub fn last_event_id() -> Object {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some("^[0-9]+$"))
        .build()
}

/// The schema of a slug.
pub fn slug() -> Object {
    text(1, Some(64), SLUG_PATTERN).build()
}

/// The schema of a slug that may be absent or null.
pub fn optional_slug() -> Object {
    text(1, Some(64), SLUG_PATTERN)
        .schema_type(utoipa::openapi::schema::SchemaType::from_iter([
            Type::String,
            Type::Null,
        ]))
        .build()
}

#[cfg(test)]
mod tests {
    use artifactstore_core::path::RelativePath;
    use artifactstore_core::text::{check_actor, check_label, check_reason};
    use proptest::prelude::*;

    use super::*;

    fn matches(pattern: &str, text: &str) -> bool {
        regex_lite::Regex::new(pattern).unwrap().is_match(text)
    }

    /// Characters around the rules' edges: controls, every kind of
    /// whitespace, NUL, and ordinary text.
    fn edgy() -> impl Strategy<Value = String> {
        let pick = prop::sample::select(vec![
            '\0',
            '\t',
            '\n',
            '\u{b}',
            '\u{c}',
            '\r',
            ' ',
            '\u{1c}',
            '\u{1f}',
            '\u{7f}',
            '\u{85}',
            '\u{9f}',
            '\u{a0}',
            '\u{1680}',
            '\u{2000}',
            '\u{200a}',
            '\u{200b}',
            '\u{2028}',
            '\u{2029}',
            '\u{202f}',
            '\u{205f}',
            '\u{3000}',
            '\u{feff}',
            'a',
            'Z',
            '.',
            '\u{e9}',
            '\u{1f600}',
        ]);
        prop::collection::vec(pick, 0..6).prop_map(|chars| chars.into_iter().collect())
    }

    proptest! {
        #[test]
        fn the_label_pattern_is_the_registry_rule(text in edgy()) {
            let by_rule = check_label(&text).is_ok();
            prop_assert_eq!(matches(LABEL_PATTERN, &text), by_rule, "{:?}", text);
        }

        #[test]
        fn the_reason_pattern_is_the_registry_rule(text in edgy()) {
            let by_rule = check_reason(&text).is_ok();
            prop_assert_eq!(matches(REASON_PATTERN, &text), by_rule, "{:?}", text);
        }
    }

    #[test]
    fn the_path_pattern_is_the_registry_rule_for_every_character_of_the_plane() {
        let pattern = regex_lite::Regex::new(PATH_PATTERN).unwrap();
        for code in 0..=0xffff_u32 {
            let Some(c) = char::from_u32(code) else {
                continue;
            };
            for text in [c.to_string(), format!("a/{c}b"), format!("{c}{c}/x")] {
                let by_rule = RelativePath::parse(&text).is_ok();
                assert_eq!(pattern.is_match(&text), by_rule, "U+{code:04X} in {text:?}");
            }
        }
    }

    #[test]
    fn the_path_pattern_refuses_the_shapes_the_registry_refuses() {
        for text in [
            "", "/a", "a/", "a//b", ".", "..", "a/./b", "a/../b", "./a", "a\\b",
        ] {
            assert!(RelativePath::parse(text).is_err(), "{text:?}");
            assert!(!matches(PATH_PATTERN, text), "{text:?}");
        }
        for text in [
            "a",
            ".a",
            "..a",
            "a..",
            "a/.b/c",
            "dir/sub/file.txt",
            &"x".repeat(255),
        ] {
            assert!(RelativePath::parse(text).is_ok(), "{text:?}");
            assert!(matches(PATH_PATTERN, text), "{text:?}");
        }
        assert!(!matches(PATH_PATTERN, &"x".repeat(256)));
    }

    proptest! {
        #[test]
        fn the_actor_pattern_is_the_server_rule(text in edgy()) {
            let by_rule = check_actor(&text).is_ok();
            prop_assert_eq!(matches(ACTOR_PATTERN, &text), by_rule, "{:?}", text);
        }
    }

    #[test]
    fn lengths_count_characters_as_json_schema_does() {
        let long = "\u{e9}".repeat(MAX_LABEL_CHARS);
        assert!(check_label(&long).is_ok(), "256 two-byte characters fit");
        assert!(check_label(&format!("{long}x")).is_err());
        let reason = "\u{1f600}".repeat(MAX_REASON_CHARS);
        assert!(check_reason(&reason).is_ok());
        assert!(check_reason(&format!("{reason}x")).is_err());
    }

    #[test]
    fn the_slug_pattern() {
        for good in ["a", "0", "ci-evidence_v1.2", &"a".repeat(64)] {
            assert!(matches(SLUG_PATTERN, good), "{good}");
        }
        for bad in ["", "-a", ".a", "A", "a b", "a/b", &"a".repeat(65)] {
            assert!(!matches(SLUG_PATTERN, bad), "{bad}");
        }
    }
}
