//! API keys: create (with scopes and an optional owner), list, revoke. The API and the offline CLI
//! parse requests the same way ([`parse_key_request`]).

use super::{Ops, OpsError, parse_owner};
use crate::auth::{Access, generate_scoped_api_key};
use crate::store::{ApiKeyRow, NewApiKey};
use hookd_core::scopes::Scopes;

/// Longest name of an API key, in characters.
pub const MAX_KEY_NAME_LEN: usize = 100;

/// A key as asked for: its name, its scopes (`admin` when none are given) and its owner.
#[derive(Debug, Clone, Default)]
pub struct KeyRequest {
    pub name: String,
    pub scopes: Option<Vec<String>>,
    pub owner: Option<String>,
}

/// A new key: the key itself (shown this once) and the row stored for it.
#[derive(Debug)]
pub struct KeyCreated {
    pub key: String,
    pub row: ApiKeyRow,
}

/// Checks a request and generates its key: the secret text and the row to store.
pub fn parse_key_request(request: KeyRequest, now: i64) -> Result<(String, NewApiKey), OpsError> {
    let name = request.name;
    if name.is_empty()
        || name.chars().count() > MAX_KEY_NAME_LEN
        || name.trim() != name
        || name.chars().any(char::is_control)
    {
        return Err(OpsError::invalid(
            "invalid_field",
            "name",
            format!(
                "must be 1 to {MAX_KEY_NAME_LEN} characters, no control characters or outer spaces"
            ),
        ));
    }
    let scopes = match request.scopes {
        None => Scopes::admin(),
        Some(names) => Scopes::parse(&names)
            .map_err(|error| OpsError::invalid("invalid_scopes", "scopes", error))?,
    };
    let owner = parse_owner(request.owner)?;
    Ok(generate_scoped_api_key(
        &name,
        Access { scopes, owner },
        now,
    ))
}

impl Ops {
    pub async fn create_api_key(&self, request: KeyRequest) -> Result<KeyCreated, OpsError> {
        let (key, new) = parse_key_request(request, self.clock.now_ms())?;
        let row = ApiKeyRow {
            id: new.id.clone(),
            name: new.name.clone(),
            prefix: new.prefix.clone(),
            scopes: new.scopes.clone(),
            owner: new.owner.clone(),
            created_at: new.created_at,
            revoked_at: None,
        };
        self.store.admin.insert_api_key(new).await?;
        tracing::info!(id = %row.id, scopes = %row.scopes.to_stored(), "API key created");
        Ok(KeyCreated { key, row })
    }

    /// Revokes a key; `NotFound` when no unrevoked key has this id.
    pub async fn revoke_api_key(&self, id: &str) -> Result<(), OpsError> {
        match self
            .store
            .admin
            .revoke_api_key(id, self.clock.now_ms())
            .await?
        {
            true => {
                tracing::info!(%id, "API key revoked");
                Ok(())
            }
            false => Err(OpsError::NotFound("API key")),
        }
    }
}
