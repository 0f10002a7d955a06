//! Owners (operators only): each owner with its subscriptions counted, linking to its endpoints and
//! its deliveries.

use super::{Page, S};
use crate::store::OwnerRow;
use crate::ui::views::{self, Ctx};
use crate::ui::{UiError, UiState, render};
use askama::Template;
use axum::extract::{Extension, Query, State};
use serde::Deserialize;

/// Owners per page.
const PAGE: u32 = 100;

#[derive(Template)]
#[template(path = "owners.html")]
struct OwnersPage {
    ctx: Ctx,
    owners: Vec<OwnerLine>,
    /// The last owner shown (as a query value), when there are more.
    next: Option<String>,
}

struct OwnerLine {
    row: OwnerRow,
    /// The owner as a query value, for the links to its endpoints and deliveries.
    query: String,
}

#[derive(Deserialize)]
pub(super) struct OwnersQuery {
    after: Option<String>,
}

pub(super) async fn owners(
    State(state): State<UiState>,
    Extension(session): S,
    Query(q): Query<OwnersQuery>,
) -> Page {
    if session.viewer.is_portal() {
        return Err(UiError::NotFound("page"));
    }
    let after = q.after.filter(|a| !a.is_empty());
    let mut owners = state.ops.list_owners(after, PAGE + 1).await?;
    let next = match owners.len() > PAGE as usize {
        true => {
            owners.truncate(PAGE as usize);
            owners.last().map(|row| views::query_value(&row.owner))
        }
        false => None,
    };
    let owners = owners
        .into_iter()
        .map(|row| OwnerLine {
            query: views::query_value(&row.owner),
            row,
        })
        .collect();
    let page = OwnersPage {
        ctx: Ctx::new(&state, &session, "owners", "Owners"),
        owners,
        next,
    };
    Ok(render(&page))
}
