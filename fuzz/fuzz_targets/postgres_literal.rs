//! The PostgreSQL batch inliner's text literal (the one place user text
//! becomes SQL text): for any text it is one closed `E'…'` literal that
//! reads back as the text, and NUL is refused.
#![no_main]

use artifactstore_store::postgres_text_literal;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(literal) = postgres_text_literal(text) else {
        assert!(text.contains('\0'), "refused a text without NUL");
        return;
    };
    assert!(!text.contains('\0'), "accepted a NUL");
    let inside = literal
        .strip_prefix("E'")
        .and_then(|l| l.strip_suffix('\''))
        .expect("an E'…' literal");
    let mut read = String::new();
    let mut chars = inside.chars();
    while let Some(c) = chars.next() {
        if c == '\'' || c == '\\' {
            assert_eq!(chars.next(), Some(c), "a lone {c:?} ends or escapes the literal");
        }
        read.push(c);
    }
    assert_eq!(read, text);
});
