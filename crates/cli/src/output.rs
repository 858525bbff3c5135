//! Human or JSON output.

use serde::Serialize;

/// Where results go: JSON documents or human lines on stdout.
#[derive(Debug, Clone, Copy)]
pub struct Output {
    /// Machine-readable output was asked for.
    pub json: bool,
}

impl Output {
    /// Prints `value` as one JSON document, or the human text.
    pub fn show<T: Serialize>(&self, value: &T, human: impl FnOnce() -> String) {
        if self.json {
            match serde_json::to_string(value) {
                Ok(text) => println!("{text}"),
                Err(e) => eprintln!("error: cannot encode output: {e}"),
            }
        } else {
            let text = human();
            if !text.is_empty() {
                println!("{}", text.trim_end());
            }
        }
    }
}

/// An optional value as text for human output (`-` when absent).
pub fn or_dash(value: Option<impl std::fmt::Display>) -> String {
    value.map_or_else(|| "-".to_owned(), |value| value.to_string())
}
