//! API tokens and what a caller may do. Tokens are created and revoked as
//! events; only a hash of each secret is stored.

use artifactstore_core::event::{TokenCreated, TokenRevoked};
use artifactstore_core::id::new_id;
use artifactstore_core::token::{Scope, TokenText};
use artifactstore_core::{NewEvent, Timestamp};
use artifactstore_store::TokenRecord;

use crate::operations::label;
use crate::{Registry, RegistryError, RegistryResult};

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// Recorded as the actor of the caller's events.
    pub name: String,
    /// What it may do.
    pub scope: Scope,
    /// Producers it may create and write packages of; empty = any.
    pub producers: Vec<String>,
}

impl Principal {
    /// Refuses (403) unless the scope includes `needed`.
    pub fn require(&self, needed: Scope) -> RegistryResult<()> {
        if self.scope.allows(needed) {
            Ok(())
        } else {
            Err(RegistryError::Forbidden(format!(
                "token {:?} has scope {}; this needs {needed}",
                self.name, self.scope
            )))
        }
    }

    /// Refuses (403) writing packages of `producer` to a token limited to
    /// other producers.
    pub fn may_write_producer(&self, producer: &str) -> RegistryResult<()> {
        if self.producers.is_empty() || self.producers.iter().any(|p| p == producer) {
            Ok(())
        } else {
            Err(RegistryError::Forbidden(format!(
                "token {:?} may not write packages of producer {producer:?}",
                self.name
            )))
        }
    }
}

/// 256 bits from the operating system's generator (two UUIDv4s gave only
/// 244: each fixes 6 bits).
fn random_secret() -> RegistryResult<[u8; 32]> {
    let mut secret = [0u8; 32];
    getrandom::fill(&mut secret)
        .map_err(|e| RegistryError::Internal(format!("no randomness for a token secret: {e}")))?;
    Ok(secret)
}

impl Registry {
    /// Creates a token; returns its record and the token text, which is
    /// shown this once and never stored.
    pub async fn create_token(
        &self,
        name: &str,
        scope: Scope,
        producers: Vec<String>,
        expires_at: Option<Timestamp>,
        actor: &str,
    ) -> RegistryResult<(TokenRecord, String)> {
        label("token name", name)?;
        for producer in &producers {
            label("producer", producer)?;
        }
        let id = new_id().simple().to_string();
        let token = TokenText::new(&id, random_secret()?);
        let payload = TokenCreated {
            v: 1,
            token_id: id.clone(),
            name: name.to_owned(),
            scope: scope.as_str().to_owned(),
            producers,
            expires_at,
            secret_blake3: token.secret_hash().to_hex(),
        };
        let mut tx = self.store.begin().await?;
        let now = tx.now();
        if let Some(at) = expires_at {
            if at <= now {
                return Err(RegistryError::InvalidInput(
                    "the expiry must be in the future".into(),
                ));
            }
        }
        // Under the log lock, so two creations cannot both pass: the name is
        // the actor of every event the token causes, and must say who.
        let active = |t: &TokenRecord| {
            t.revoked_at.is_none() && t.expires_at.as_ref().is_none_or(|at| *at > now)
        };
        if let Some(taken) = tx.tokens_named(name).await?.iter().find(|t| active(t)) {
            return Err(RegistryError::TokenNameTaken {
                name: name.to_owned(),
                token_id: taken.id.clone(),
            });
        }
        tx.append(NewEvent::of(&payload, actor)?).await?;
        tx.commit().await?;
        let record = self.store.token(&id).await?;
        let record = record
            .ok_or_else(|| RegistryError::Internal("created token has no view row".into()))?;
        Ok((record, token.reveal()))
    }

    /// Every token (never their secrets).
    pub async fn list_tokens(&self) -> RegistryResult<Vec<TokenRecord>> {
        Ok(self.store.tokens().await?)
    }

    /// Revokes a token at once.
    pub async fn revoke_token(&self, id: &str, actor: &str) -> RegistryResult<TokenRecord> {
        let current = self
            .store
            .token(id)
            .await?
            .ok_or_else(|| RegistryError::TokenNotFound(id.to_owned()))?;
        if current.revoked_at.is_some() {
            return Err(RegistryError::InvalidInput(format!(
                "token {id} is already revoked"
            )));
        }
        let mut tx = self.store.begin().await?;
        let payload = TokenRevoked {
            v: 1,
            token_id: id.to_owned(),
        };
        tx.append(NewEvent::of(&payload, actor)?).await?;
        tx.commit().await?;
        self.store
            .token(id)
            .await?
            .ok_or_else(|| RegistryError::TokenNotFound(id.to_owned()))
    }

    /// Checks a presented token: well formed, known, secret matching (in
    /// constant time), not revoked, not expired.
    pub async fn authenticate(&self, presented: &str) -> RegistryResult<Principal> {
        let refused = || RegistryError::Unauthorized("the token is not valid".into());
        let token = TokenText::parse(presented).ok_or_else(refused)?;
        let record = self
            .token_reads
            .read(&token.id)
            .await?
            .ok_or_else(refused)?;
        if !token.matches(&record.secret_blake3) {
            return Err(refused());
        }
        if record.revoked_at.is_some() {
            return Err(RegistryError::Unauthorized("the token was revoked".into()));
        }
        if record.expires_at.is_some_and(|at| at <= self.store.now()) {
            return Err(RegistryError::Unauthorized("the token has expired".into()));
        }
        let scope = record
            .scope
            .parse()
            .map_err(|e| RegistryError::Internal(format!("stored token scope: {e}")))?;
        Ok(Principal {
            name: record.name,
            scope,
            producers: record.producers,
        })
    }
}
