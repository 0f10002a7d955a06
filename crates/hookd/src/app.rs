//! The application: the API's and the UI's states built from one set of shared parts, and their
//! routers merged into one.

use crate::api::{self, ApiState};
use crate::ui::{self, UiState};
use axum::Router;

/// What the HTTP side of a node runs on: the API's state and the dashboard's and portal's. Both
/// share one [`crate::ops::Ops`] (store, clock, worker waker).
#[derive(Clone)]
pub struct AppState {
    pub api: ApiState,
    pub ui: UiState,
}

/// Every route: the API, then (when the node serves the management API) the dashboard and the
/// portal; a path or method that matches nothing gets the API's JSON error.
pub fn router(state: AppState) -> Router {
    let serve_ui = state.api.settings.serve_api;
    let mut app = api::router(state.api);
    if serve_ui {
        app = app.merge(ui::router(state.ui));
    }
    app.fallback(api::route_not_found)
        .method_not_allowed_fallback(api::method_not_allowed)
}
