//! API tokens: scopes and the token text format.
//!
//! A token reads `ast_<id>_<secret>`: the id (32 hex digits) finds the
//! record, and the secret (64 hex digits, 256 random bits) is checked
//! against the BLAKE3 recorded when the token was made. Only that hash is
//! ever stored.

use std::fmt;
use std::str::FromStr;

use crate::digest::Digest32;

/// What a token may do; each scope includes the ones before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Scope {
    /// Read packages, files, manifests, events.
    Read,
    /// Also create and change packages, files, retention.
    Write,
    /// Also administer: sweep, verify, replay, schemas, tokens.
    Admin,
}

impl Scope {
    /// The name used in configuration, events and the CLI.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Write => "write",
            Self::Admin => "admin",
        }
    }

    /// Whether this scope includes `needed`.
    pub fn allows(&self, needed: Scope) -> bool {
        *self >= needed
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Not a scope name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown scope {0:?}: use read, write or admin")]
pub struct ScopeError(pub String);

impl FromStr for Scope {
    type Err = ScopeError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "read" => Ok(Self::Read),
            "write" => Ok(Self::Write),
            "admin" => Ok(Self::Admin),
            other => Err(ScopeError(other.to_owned())),
        }
    }
}

const PREFIX: &str = "ast_";

/// A token as presented by a client.
#[derive(Clone, PartialEq, Eq)]
pub struct TokenText {
    /// Token id (32 lowercase hex digits).
    pub id: String,
    secret: [u8; 32],
}

impl fmt::Debug for TokenText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenText")
            .field("id", &self.id)
            .field("secret", &"***")
            .finish()
    }
}

impl TokenText {
    /// A token for `id` with `secret` (the caller supplies the randomness).
    pub fn new(id: &str, secret: [u8; 32]) -> Self {
        Self {
            id: id.to_owned(),
            secret,
        }
    }

    /// The text handed to the user, once.
    pub fn reveal(&self) -> String {
        format!("{PREFIX}{}_{}", self.id, hex::encode(self.secret))
    }

    /// What is stored and compared: BLAKE3 of the secret.
    pub fn secret_hash(&self) -> Digest32 {
        Digest32::blake3_of(&self.secret)
    }

    /// Parses presented text; `None` when it is not a token's shape.
    pub fn parse(text: &str) -> Option<Self> {
        let rest = text.strip_prefix(PREFIX)?;
        let (id, secret_hex) = rest.split_once('_')?;
        let id_ok = id.len() == 32
            && id
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if !id_ok || secret_hex.len() != 64 {
            return None;
        }
        let mut secret = [0u8; 32];
        hex::decode_to_slice(secret_hex, &mut secret).ok()?;
        Some(Self {
            id: id.to_owned(),
            secret,
        })
    }

    /// Whether this token's secret hashes to `expected`, compared in
    /// constant time.
    pub fn matches(&self, expected_hex: &str) -> bool {
        let Ok(expected) = Digest32::from_hex(expected_hex) else {
            return false;
        };
        // blake3::Hash equality is constant-time.
        blake3::Hash::from_bytes(self.secret_hash().0) == blake3::Hash::from_bytes(expected.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_nest_and_parse() {
        assert!(Scope::Admin.allows(Scope::Write) && Scope::Admin.allows(Scope::Read));
        assert!(Scope::Write.allows(Scope::Read) && !Scope::Write.allows(Scope::Admin));
        assert!(!Scope::Read.allows(Scope::Write));
        assert_eq!("write".parse::<Scope>(), Ok(Scope::Write));
        assert!("root".parse::<Scope>().is_err());
    }

    #[test]
    fn token_text_round_trips_and_rejects_malformed() {
        let token = TokenText::new("0123456789abcdef0123456789abcdef", [7; 32]);
        let text = token.reveal();
        assert!(text.starts_with("ast_0123456789abcdef0123456789abcdef_"));
        let parsed = TokenText::parse(&text).unwrap();
        assert_eq!(parsed, token);
        assert!(parsed.matches(&token.secret_hash().to_hex()));
        assert!(!parsed.matches(&TokenText::new(&token.id, [8; 32]).secret_hash().to_hex()));
        assert!(!parsed.matches("not hex"));
        assert!(!format!("{parsed:?}").contains("0707"));
        for bad in [
            "",
            "ast_",
            "ast_x_y",
            &text[..text.len() - 1],
            &text.replace("ast_", "tok_"),
            &format!("{text}0"),
        ] {
            assert!(TokenText::parse(bad).is_none(), "{bad}");
        }
    }
}
