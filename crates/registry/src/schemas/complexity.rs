//! How costly a JSON Schema is, measured before it is accepted.
//!
//! Validation cost grows with the schema as `$ref`s expand it: a chain of
//! 20 `$defs`, each an `anyOf` of two `$ref`s to the next, is 1.3 KB of
//! text and 2^20 subschemas once expanded, and took 16 s to check one
//! package's metadata (doubling with each level). So a schema's cost is
//! measured as the number of subschemas (and regular expressions) it holds
//! with every local `$ref` replaced by its target, and refused over a limit.
//! Recursive schemas expand without end and are refused outright, as are
//! references this measure cannot follow (remote, `$anchor`, dynamic ones):
//! metadata is a small, bounded document, and its schema need not recurse.

use std::collections::{HashMap, HashSet};

use serde_json::Value;

/// Keywords whose values are data, not subschemas.
const DATA_KEYWORDS: [&str; 6] = [
    "enum", "const", "examples", "default", "required", "$comment",
];

/// Why a schema was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum TooComplex {
    /// Over the limit once expanded.
    #[error("the schema expands to more than {limit} subschemas and patterns (its $refs replaced by their targets); simplify it or raise limits.max_schema_complexity")]
    Expands {
        /// The limit.
        limit: u64,
    },
    /// A `$ref` cycle.
    #[error("the schema is recursive ($ref {0:?} refers back to itself): recursive schemas are not accepted for metadata")]
    Recursive(String),
    /// A reference that is not a local JSON pointer.
    #[error(
        "$ref {0:?} is not a local reference (#/…): only references inside the schema are accepted"
    )]
    NotLocal(String),
    /// A `$ref` whose target is not in the schema.
    #[error("$ref {0:?} points at nothing in the schema")]
    Dangling(String),
    /// `$dynamicRef` or `$recursiveRef`.
    #[error("{0} is not accepted: recursive schemas are not accepted for metadata")]
    Dynamic(&'static str),
}

/// Checks that `schema`, expanded, holds at most `limit` subschemas and
/// patterns; returns the count.
pub(crate) fn check(schema: &Value, limit: u64) -> Result<u64, TooComplex> {
    let mut walk = Walk {
        root: schema,
        limit,
        expanded: HashMap::new(),
        expanding: HashSet::new(),
    };
    let count = walk.size(schema)?;
    if count > limit {
        return Err(TooComplex::Expands { limit });
    }
    Ok(count)
}

struct Walk<'a> {
    root: &'a Value,
    limit: u64,
    /// Size of each `$ref` target already measured.
    expanded: HashMap<String, u64>,
    /// Targets being measured (a cycle if met again).
    expanding: HashSet<String>,
}

impl Walk<'_> {
    /// Subschemas and patterns in `node`, counting past the limit only far
    /// enough to know it is passed.
    fn size(&mut self, node: &Value) -> Result<u64, TooComplex> {
        let mut total: u64 = 0;
        match node {
            Value::Object(map) => {
                total = 1;
                for (key, value) in map {
                    if DATA_KEYWORDS.contains(&key.as_str()) {
                        continue;
                    }
                    let size = match (key.as_str(), value) {
                        ("$ref", Value::String(target)) => self.reference(target)?,
                        ("$dynamicRef", _) => return Err(TooComplex::Dynamic("$dynamicRef")),
                        ("$recursiveRef", _) => return Err(TooComplex::Dynamic("$recursiveRef")),
                        ("pattern", Value::String(_)) => 1,
                        ("patternProperties", Value::Object(patterns)) => {
                            let mut sum = patterns.len() as u64;
                            for subschema in patterns.values() {
                                sum = sum.saturating_add(self.size(subschema)?);
                            }
                            sum
                        }
                        _ => self.size(value)?,
                    };
                    total = total.saturating_add(size);
                    if total > self.limit {
                        return Ok(total);
                    }
                }
            }
            Value::Array(items) => {
                for item in items {
                    total = total.saturating_add(self.size(item)?);
                    if total > self.limit {
                        return Ok(total);
                    }
                }
            }
            Value::Bool(_) => total = 1,
            _ => {}
        }
        Ok(total)
    }

    fn reference(&mut self, target: &str) -> Result<u64, TooComplex> {
        let Some(pointer) = target.strip_prefix('#') else {
            return Err(TooComplex::NotLocal(target.to_owned()));
        };
        if !pointer.is_empty() && !pointer.starts_with('/') {
            return Err(TooComplex::NotLocal(target.to_owned()));
        }
        let pointer = percent_decode(pointer);
        if let Some(size) = self.expanded.get(&pointer) {
            return Ok(*size);
        }
        if !self.expanding.insert(pointer.clone()) {
            return Err(TooComplex::Recursive(target.to_owned()));
        }
        let node = self
            .root
            .pointer(&pointer)
            .ok_or_else(|| TooComplex::Dangling(target.to_owned()))?;
        let size = self.size(node)?;
        self.expanding.remove(&pointer);
        self.expanded.insert(pointer, size);
        Ok(size)
    }
}

/// A URI fragment's percent-escapes decoded (RFC 6901 §6); a malformed
/// escape is kept as it is and then points at nothing.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == b'%')
            .then(|| bytes.get(i + 1..i + 3))
            .flatten()
            .and_then(|hex| std::str::from_utf8(hex).ok())
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match escaped {
            Some(byte) => {
                out.push(byte);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// The schema of the report: `levels` `$defs`, each an `anyOf` of two
    /// `$ref`s to the next.
    fn ref_chain(levels: usize) -> Value {
        let mut defs = serde_json::Map::new();
        for level in 0..levels {
            let next = format!("#/$defs/d{}", level + 1);
            defs.insert(
                format!("d{level}"),
                json!({"anyOf": [{"$ref": next}, {"$ref": next}]}),
            );
        }
        defs.insert(format!("d{levels}"), json!({"type": "string"}));
        json!({"$defs": defs, "$ref": "#/$defs/d0"})
    }

    #[test]
    fn ordinary_schemas_are_small() {
        let schema = json!({
            "type": "object",
            "required": ["run", "branch"],
            "properties": {
                "run": {"type": "integer", "minimum": 1},
                "branch": {"type": "string", "pattern": "^[a-z]+$", "enum": ["main", "dev"]},
                "tags": {"type": "array", "items": {"$ref": "#/$defs/tag"}}
            },
            "$defs": {"tag": {"type": "string", "maxLength": 64}}
        });
        let count = check(&schema, 10_000).unwrap();
        assert!((5..50).contains(&count), "{count}");
        assert_eq!(check(&json!(true), 10), Ok(1));
    }

    #[test]
    fn a_chain_of_references_is_measured_expanded() {
        // 1.3 KB of text, 2^20 subschemas expanded.
        let text = ref_chain(20).to_string();
        assert!(text.len() < 2_000, "{}", text.len());
        assert_eq!(
            check(&ref_chain(20), 10_000),
            Err(TooComplex::Expands { limit: 10_000 })
        );
        // Small chains pass, and are measured in linear time.
        assert!(check(&ref_chain(5), 10_000).is_ok());
    }

    #[test]
    fn many_patterns_count() {
        let patterns: serde_json::Map<String, Value> = (0..20_000)
            .map(|i| (format!("^k{i}$"), json!({"type": "string"})))
            .collect();
        let schema = json!({"type": "object", "patternProperties": patterns});
        assert_eq!(
            check(&schema, 10_000),
            Err(TooComplex::Expands { limit: 10_000 })
        );
    }

    #[test]
    fn recursive_remote_and_dangling_references_are_refused() {
        let recursive = json!({"$defs": {"node": {"type": "object", "properties": {"child": {"$ref": "#/$defs/node"}}}}, "$ref": "#/$defs/node"});
        assert!(matches!(
            check(&recursive, 10_000),
            Err(TooComplex::Recursive(_))
        ));
        let to_root = json!({"properties": {"again": {"$ref": "#"}}});
        assert!(matches!(
            check(&to_root, 10_000),
            Err(TooComplex::Recursive(_))
        ));
        let remote = json!({"$ref": "https://example.com/schema.json"});
        assert!(matches!(
            check(&remote, 10_000),
            Err(TooComplex::NotLocal(_))
        ));
        let anchor = json!({"$ref": "#node"});
        assert!(matches!(
            check(&anchor, 10_000),
            Err(TooComplex::NotLocal(_))
        ));
        let dangling = json!({"$ref": "#/$defs/none"});
        assert!(matches!(
            check(&dangling, 10_000),
            Err(TooComplex::Dangling(_))
        ));
        let dynamic = json!({"$dynamicRef": "#meta"});
        assert!(matches!(
            check(&dynamic, 10_000),
            Err(TooComplex::Dynamic(_))
        ));
        // Escaped pointers resolve.
        let escaped = json!({"$defs": {"a/b": {"type": "string"}, "c d": true}, "anyOf": [{"$ref": "#/$defs/a~1b"}, {"$ref": "#/$defs/c%20d"}]});
        assert!(check(&escaped, 100).is_ok());
    }
}
