//! `/api/owners`: the operator's customers as a resource: their subscriptions counted, and erasure
//! of everything stored for one of them (the right-to-erasure request every SaaS gets).

use super::ApiState;
use super::error::{ApiError, ErrorBody};
use super::extract::ApiQuery;
use super::pagination;
use crate::auth::Access;
use crate::ops::OpsError;
use crate::store::{Erased, OwnerRow};
use axum::Json;
use axum::extract::{Path, State};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// An owner: the `owner` of subscriptions (and of the events published to it).
#[derive(Debug, Serialize, ToSchema)]
pub struct Owner {
    pub owner: String,
    pub subscriptions: i64,
    /// Disabled subscriptions (by the operator, a 410, or too many dead deliveries).
    pub disabled: i64,
    /// Subscriptions disabled, or with dead deliveries since their last success.
    pub failing: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OwnerPage {
    pub data: Vec<Owner>,
    /// Pass as `after` to get the next page; null on the last page.
    pub next_after: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListOwners {
    /// List the owners after this one (by name): `next_after` from the previous page.
    pub after: Option<String>,
    /// Page size, 1–250 (default 50).
    pub limit: Option<u32>,
}

/// What an erasure removed.
#[derive(Debug, Serialize, ToSchema)]
pub struct OwnerErased {
    pub owner: String,
    pub subscriptions: u64,
    pub events: u64,
    /// Deliveries, each with its attempts.
    pub deliveries: u64,
}

impl From<OwnerRow> for Owner {
    fn from(row: OwnerRow) -> Self {
        Self {
            owner: row.owner,
            subscriptions: row.subscriptions,
            disabled: row.disabled,
            failing: row.failing,
        }
    }
}

/// Owners of subscriptions, by name, with counts of their subscriptions.
#[utoipa::path(get, path = "/api/owners", tag = "owners", params(ListOwners),
    security(("api_key" = [])),
    responses((status = 200, body = OwnerPage), (status = 422, body = ErrorBody)))]
pub async fn list(
    State(state): State<ApiState>,
    axum::Extension(access): axum::Extension<Access>,
    ApiQuery(query): ApiQuery<ListOwners>,
) -> Result<Json<OwnerPage>, ApiError> {
    let limit = pagination::limit(query.limit)?;
    if let Some(own) = &access.owner {
        return Ok(Json(
            own_owner_page(&state, own, query.after.as_deref()).await?,
        ));
    }
    let mut rows = state.ops.list_owners(query.after, limit + 1).await?;
    let next_after = match rows.len() > limit as usize {
        true => {
            rows.truncate(limit as usize);
            rows.last().map(|row| row.owner.clone())
        }
        false => None,
    };
    Ok(Json(OwnerPage {
        data: rows.into_iter().map(Owner::from).collect(),
        next_after,
    }))
}

/// The list as an owner-bound key sees it: its own owner, if it has subscriptions.
async fn own_owner_page(
    state: &ApiState,
    own: &str,
    after: Option<&str>,
) -> Result<OwnerPage, ApiError> {
    let data = match (after, state.ops.get_owner(own).await) {
        (Some(after), _) if after >= own => vec![],
        (_, Ok(row)) => vec![row.into()],
        (_, Err(OpsError::NotFound(_))) => vec![],
        (_, Err(error)) => return Err(error.into()),
    };
    Ok(OwnerPage {
        data,
        next_after: None,
    })
}

/// One owner with counts of its subscriptions.
#[utoipa::path(get, path = "/api/owners/{owner}", tag = "owners", params(("owner" = String, Path)),
    security(("api_key" = [])),
    responses((status = 200, body = Owner), (status = 404, body = ErrorBody)))]
pub async fn get_one(
    State(state): State<ApiState>,
    Path(owner): Path<String>,
) -> Result<Json<Owner>, ApiError> {
    Ok(Json(state.ops.get_owner(&owner).await?.into()))
}

/// Erase an owner: its subscriptions, the events published to it, every delivery and attempt of
/// either, and its portal sessions, in bounded steps that never hold up publishing or delivery.
/// Answers once everything is gone (events published to it after the request arrived are kept).
#[utoipa::path(delete, path = "/api/owners/{owner}", tag = "owners",
    params(("owner" = String, Path)), security(("api_key" = [])),
    responses((status = 200, body = OwnerErased), (status = 404, body = ErrorBody)))]
pub async fn erase(
    State(state): State<ApiState>,
    Path(owner): Path<String>,
) -> Result<Json<OwnerErased>, ApiError> {
    let Erased {
        subscriptions,
        events,
        deliveries,
    } = state.ops.erase_owner(&owner).await?;
    Ok(Json(OwnerErased {
        owner,
        subscriptions,
        events,
        deliveries,
    }))
}
