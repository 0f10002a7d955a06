//! The API keys screen (operators only, never in the portal): every key with its scopes and owner,
//! read-only. Keys are created and revoked with the API or `hookd api-keys`.

use super::{Page, S};
use crate::ui::views::{self, Ctx};
use crate::ui::{UiError, UiState, render};
use askama::Template;
use axum::extract::{Extension, State};

#[derive(Template)]
#[template(path = "api_keys.html")]
struct ApiKeysPage {
    ctx: Ctx,
    keys: Vec<KeyLine>,
}

/// One key as listed: never the key itself.
struct KeyLine {
    name: String,
    prefix: String,
    scopes: String,
    /// The owner it is bound to, or "all owners".
    owner: String,
    created: String,
    revoked: String,
}

pub async fn api_keys(State(state): State<UiState>, Extension(session): S) -> Page {
    if session.viewer.is_portal() {
        return Err(UiError::NotFound("page"));
    }
    let keys = state
        .store
        .admin
        .list_api_keys()
        .await?
        .into_iter()
        .map(|row| KeyLine {
            name: row.name,
            prefix: format!("{}…", row.prefix),
            scopes: row.scopes.names().join(", "),
            owner: row.owner.unwrap_or_else(|| "all owners".into()),
            created: views::time(row.created_at),
            revoked: views::opt_time(row.revoked_at),
        })
        .collect();
    let page = ApiKeysPage {
        ctx: Ctx::new(&state, &session, "keys", "API keys"),
        keys,
    };
    Ok(render(&page))
}
