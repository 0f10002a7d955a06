//! What an authenticated key may reach. Its scopes decide which requests it may make (otherwise 403
//! `forbidden`); an owner-bound key reaches only its owner's resources: another owner's
//! subscription, delivery, event or owner answers 404 `not_found`, as if it did not exist, and a
//! request that spans every owner with no single one to scope it to answers 403.
//!
//! [`check_route`] runs before every handler with the route's path parameters; handlers whose body
//! or query names an owner or a subscription scope it with [`scoped_owner`] and
//! [`check_subscription`].

use super::ApiState;
use super::error::ApiError;
use crate::auth::Access;
use axum::http::Method;
use hookd_core::scopes::RequestKind;

/// The kind of a request, from its method and its route (the path pattern, e.g.
/// `/api/webhooks/{id}`).
pub fn request_kind(method: &Method, route: &str) -> RequestKind {
    let route = route.strip_prefix("/api").unwrap_or(route);
    if route.starts_with("/api-keys") {
        return RequestKind::ManageKeys;
    }
    match (method, route) {
        (&Method::POST, "/events" | "/events/batch") => RequestKind::Publish,
        (&Method::GET | &Method::HEAD, _) => RequestKind::Read,
        _ => RequestKind::Change,
    }
}

/// What a route touches, as far as owners are concerned.
#[derive(Debug, PartialEq, Eq)]
enum Reach {
    /// Nothing of one owner, or the handler scopes it itself.
    Handler,
    /// Every owner at once, with no single one to scope to.
    EveryOwner,
    Subscription(String),
    Delivery(String),
    Event(String),
    Owner(String),
}

fn reach(method: &Method, route: &str, param: Option<String>) -> Reach {
    let route = route.strip_prefix("/api").unwrap_or(route);
    let Some(param) = param else {
        return match (method, route) {
            (_, "/metrics") => Reach::EveryOwner,
            (_, r) if r.starts_with("/api-keys") => Reach::EveryOwner,
            (&Method::POST, "/event-types") => Reach::EveryOwner,
            _ => Reach::Handler,
        };
    };
    match route {
        r if r.starts_with("/api-keys") => Reach::EveryOwner,
        r if r.starts_with("/event-types/") => match *method {
            Method::GET | Method::HEAD => Reach::Handler,
            _ => Reach::EveryOwner,
        },
        r if r.starts_with("/webhooks/deliveries/")
            || r.starts_with("/deliveries/")
            || r.starts_with("/dead-letters/") =>
        {
            Reach::Delivery(param)
        }
        r if r.starts_with("/webhooks/") => Reach::Subscription(param),
        r if r.starts_with("/events/") => Reach::Event(param),
        r if r.starts_with("/owners/") => Reach::Owner(param),
        _ => Reach::Handler,
    }
}

/// Refuses a request the key's scopes do not allow (403), or that reaches beyond its owner: 403
/// when it spans every owner, 404 when it names another owner's resource.
pub async fn check_route(
    state: &ApiState,
    access: &Access,
    method: &Method,
    route: &str,
    param: Option<String>,
) -> Result<(), ApiError> {
    if !access.scopes.allow(request_kind(method, route)) {
        return Err(ApiError::Forbidden(
            "this API key's scopes do not allow this request",
        ));
    }
    let Some(owner) = &access.owner else {
        return Ok(());
    };
    match reach(method, route, param) {
        Reach::Handler => Ok(()),
        Reach::EveryOwner => Err(every_owner()),
        Reach::Subscription(id) => check_subscription(state, access, &id).await,
        Reach::Delivery(id) => {
            let delivery = state.store.deliveries.get_delivery(&id).await?;
            let Some(delivery) = delivery else {
                return Err(ApiError::NotFound("delivery"));
            };
            let sees = subscription_owner(state, &delivery.subscription_id).await?;
            match sees.as_deref() == Some(owner.as_str()) {
                true => Ok(()),
                false => Err(ApiError::NotFound("delivery")),
            }
        }
        Reach::Event(id) => {
            let event = state.store.deliveries.get_event(&id).await?;
            match event.is_some_and(|event| event.owner.as_deref() == Some(owner.as_str())) {
                true => Ok(()),
                false => Err(ApiError::NotFound("event")),
            }
        }
        Reach::Owner(named) => match &named == owner {
            true => Ok(()),
            false => Err(ApiError::NotFound("owner")),
        },
    }
}

/// 403 for an owner-bound key asking for something across every owner.
pub fn every_owner() -> ApiError {
    ApiError::Forbidden("an API key bound to an owner cannot make requests that span every owner")
}

async fn subscription_owner(state: &ApiState, id: &str) -> Result<Option<String>, ApiError> {
    let row = state.store.subscriptions.get_subscription(id).await?;
    Ok(row.and_then(|row| row.owner))
}

/// 404 when an owner-bound key names a subscription of another owner (or none).
pub async fn check_subscription(
    state: &ApiState,
    access: &Access,
    id: &str,
) -> Result<(), ApiError> {
    let Some(owner) = &access.owner else {
        return Ok(());
    };
    match subscription_owner(state, id).await?.as_deref() == Some(owner.as_str()) {
        true => Ok(()),
        false => Err(ApiError::NotFound("webhook")),
    }
}

/// The owner a request acts for: for an owner-bound key its own (when the request names none or
/// the same one; another is 404, as if it did not exist), for any other key what the request names.
pub fn scoped_owner(access: &Access, named: Option<String>) -> Result<Option<String>, ApiError> {
    match (&access.owner, named) {
        (None, named) => Ok(named),
        (Some(own), None) => Ok(Some(own.clone())),
        (Some(own), Some(named)) if &named == own => Ok(Some(named)),
        (Some(_), Some(_)) => Err(ApiError::NotFound("owner")),
    }
}

/// For an owner-bound key, the subscription a bulk request must name (403 without one: it would
/// span every owner; 404 for another owner's).
pub async fn require_own_subscription(
    state: &ApiState,
    access: &Access,
    id: Option<&str>,
) -> Result<(), ApiError> {
    match (&access.owner, id) {
        (None, _) => Ok(()),
        (Some(_), None) => Err(ApiError::Forbidden(
            "an API key bound to an owner must name one of its subscriptions (webhook_id)",
        )),
        (Some(_), Some(id)) => check_subscription(state, access, id).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_classified_by_method_and_route() {
        let cases = [
            (Method::POST, "/api/events", RequestKind::Publish),
            (Method::POST, "/api/events/batch", RequestKind::Publish),
            (Method::GET, "/api/events", RequestKind::Read),
            (Method::GET, "/metrics", RequestKind::Read),
            (Method::POST, "/api/webhooks", RequestKind::Change),
            (Method::DELETE, "/api/owners/{owner}", RequestKind::Change),
            (Method::GET, "/api/api-keys", RequestKind::ManageKeys),
            (
                Method::DELETE,
                "/api/api-keys/{id}",
                RequestKind::ManageKeys,
            ),
        ];
        for (method, route, kind) in cases {
            assert_eq!(request_kind(&method, route), kind, "{method} {route}");
        }
    }

    #[test]
    fn routes_reach_one_owner_or_every_owner() {
        let id = || Some("x".to_owned());
        let cases = [
            (
                Method::GET,
                "/api/webhooks/{id}",
                id(),
                Reach::Subscription("x".into()),
            ),
            (
                Method::POST,
                "/api/webhooks/{id}/test",
                id(),
                Reach::Subscription("x".into()),
            ),
            (
                Method::POST,
                "/api/webhooks/deliveries/{id}/retry",
                id(),
                Reach::Delivery("x".into()),
            ),
            (
                Method::GET,
                "/api/deliveries/{id}",
                id(),
                Reach::Delivery("x".into()),
            ),
            (
                Method::POST,
                "/api/dead-letters/{id}/redrive",
                id(),
                Reach::Delivery("x".into()),
            ),
            (
                Method::GET,
                "/api/events/{id}",
                id(),
                Reach::Event("x".into()),
            ),
            (
                Method::DELETE,
                "/api/owners/{owner}",
                id(),
                Reach::Owner("x".into()),
            ),
            (Method::GET, "/api/event-types/{name}", id(), Reach::Handler),
            (
                Method::PATCH,
                "/api/event-types/{name}",
                id(),
                Reach::EveryOwner,
            ),
            (Method::POST, "/api/event-types", None, Reach::EveryOwner),
            (Method::GET, "/api/event-types", None, Reach::Handler),
            (Method::GET, "/api/api-keys", None, Reach::EveryOwner),
            (
                Method::DELETE,
                "/api/api-keys/{id}",
                id(),
                Reach::EveryOwner,
            ),
            (Method::GET, "/metrics", None, Reach::EveryOwner),
            (Method::GET, "/api/webhooks", None, Reach::Handler),
            (Method::POST, "/api/events", None, Reach::Handler),
        ];
        for (method, route, param, expected) in cases {
            assert_eq!(reach(&method, route, param), expected, "{method} {route}");
        }
    }
}
