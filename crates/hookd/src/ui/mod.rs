//! The dashboard (`/ui`, operators) and the subscriber portal (`/portal`): server-rendered pages
//! (askama templates under `crates/hookd/templates/`), htmx for interaction, uPlot for charts, all
//! embedded in the binary.
//!
//! Both areas mount the same screens (`screens`); what differs is the session they require and the
//! [`session::Viewer`] it yields, which every screen query is scoped by. Every response carries a
//! strict Content-Security-Policy (no inline script or style); every state-changing request needs the
//! session's CSRF token.

pub mod assets;
pub mod brand;
mod charts;
pub mod jobs;
mod screens;
pub mod session;
mod views;

use crate::auth::Authenticator;
use crate::ids::DynClock;
use crate::ops::{Ops, OpsError};
use crate::store::ui::SessionKind;
use crate::store::{Store, StoreError};
use askama::Template;
use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use brand::Brand;
use session::{CookiePolicy, Session, Viewer};
use std::sync::Arc;

/// Everything a screen may touch. Cheap to clone.
#[derive(Clone)]
pub struct UiState {
    /// The use cases; everything that changes state goes through them.
    pub ops: Ops,
    /// The same store as `ops.store`, for reads.
    pub store: Store,
    /// The same clock as `ops.clock`.
    pub clock: DynClock,
    /// Checks the API key an operator signs in with.
    pub auth: Authenticator,
    /// The dashboard's and portal's look and cookie policy.
    pub ui: UiSettings,
}

/// The UI's configuration, part of [`UiState`].
#[derive(Debug, Clone)]
pub struct UiSettings {
    pub brand: Arc<Brand>,
    pub cookies: CookiePolicy,
    /// Background recoveries and their progress.
    pub jobs: Arc<jobs::Jobs>,
}

impl UiSettings {
    pub fn new(brand: Brand, dev: bool) -> Self {
        let cookies = CookiePolicy {
            secure: !dev,
            portal_framed: !brand.frame_ancestors.is_empty(),
        };
        Self {
            brand: Arc::new(brand),
            cookies,
            jobs: Arc::default(),
        }
    }
}

/// Largest form body (a test event's payload plus the form around it).
const MAX_FORM_BYTES: usize = 512 * 1024;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Area {
    Operator,
    Portal,
}

/// The dashboard's and the portal's routes, with their state.
pub fn router(state: UiState) -> Router {
    let operator = screens::routes()
        .route("/logout", post(logout))
        .route("/settings/keys", get(screens::api_keys))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            operator_guard,
        ));
    let portal = screens::routes()
        .route("/logout", post(logout))
        .layer(middleware::from_fn_with_state(state.clone(), portal_guard));
    let operator = Router::new()
        .route("/login", get(login_page).post(login))
        .route("/assets/theme.css", get(theme_css))
        .route("/assets/{file}", get(assets::serve))
        .merge(operator)
        .layer(middleware::from_fn_with_state(
            state.clone(),
            operator_headers,
        ));
    let portal = Router::new()
        .route("/enter", get(enter_portal_page).post(enter_portal))
        .merge(portal)
        .layer(middleware::from_fn_with_state(
            state.clone(),
            portal_headers,
        ));
    // A nested `/` answers `/ui` (no trailing slash); `/ui/` is sent there.
    Router::new()
        .route("/ui/", get(|| async { Redirect::to("/ui") }))
        .route("/portal/", get(|| async { Redirect::to("/portal") }))
        .nest("/ui", operator)
        .nest("/portal", portal)
        .with_state(state)
}

// ---------------------------------------------------------------------------------------------
// Security headers
// ---------------------------------------------------------------------------------------------

fn content_security_policy(brand: &Brand, frame_ancestors: &str) -> String {
    let logo = brand
        .logo_origin()
        .map(|origin| format!(" {origin}"))
        .unwrap_or_default();
    format!(
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:{logo}; \
         connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors {frame_ancestors}"
    )
}

async fn operator_headers(State(state): State<UiState>, request: Request, next: Next) -> Response {
    let csp = content_security_policy(&state.ui.brand, "'none'");
    with_security_headers(next.run(request).await, &csp, true)
}

async fn portal_headers(State(state): State<UiState>, request: Request, next: Next) -> Response {
    let ancestors = match state.ui.brand.frame_ancestors.is_empty() {
        true => "'none'".to_owned(),
        false => state.ui.brand.frame_ancestors.join(" "),
    };
    let csp = content_security_policy(&state.ui.brand, &ancestors);
    let deny_framing = state.ui.brand.frame_ancestors.is_empty();
    with_security_headers(next.run(request).await, &csp, deny_framing)
}

fn with_security_headers(mut response: Response, csp: &str, deny_framing: bool) -> Response {
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(csp) {
        headers.insert(header::CONTENT_SECURITY_POLICY, value);
    }
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    // Portal links carry a token in their query string: never send it on as a Referer.
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    if deny_framing {
        headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    }
    if !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

async fn theme_css(State(state): State<UiState>) -> Response {
    let accent = state.ui.brand.accent.as_deref().unwrap_or("#2563eb");
    let css = format!(":root {{ --accent: {accent}; }}\n");
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        css,
    )
        .into_response()
}

// ---------------------------------------------------------------------------------------------
// Session guards and CSRF
// ---------------------------------------------------------------------------------------------

async fn operator_guard(State(state): State<UiState>, request: Request, next: Next) -> Response {
    guard(state, request, next, Area::Operator).await
}

async fn portal_guard(State(state): State<UiState>, request: Request, next: Next) -> Response {
    guard(state, request, next, Area::Portal).await
}

async fn guard(state: UiState, request: Request, next: Next, area: Area) -> Response {
    let (cookie_name, kind) = match area {
        Area::Operator => (session::OPERATOR_COOKIE, SessionKind::Operator),
        Area::Portal => (session::PORTAL_COOKIE, SessionKind::Portal),
    };
    let Some(token) = session::cookie(request.headers(), cookie_name) else {
        return signed_out(area, request.headers());
    };
    let hash = crate::auth::hash_key(&token).to_vec();
    let row = match state
        .store
        .ui
        .session_by_hash(&hash, state.clock.now_ms())
        .await
    {
        Ok(Some(row)) if row.kind == kind => row,
        Ok(_) => return signed_out(area, request.headers()),
        Err(error) => return UiError::from(error).into_response(),
    };
    let viewer = match (area, row.owner) {
        (Area::Portal, Some(owner)) => Viewer::Portal {
            owner,
            manage: row.can_manage,
        },
        (Area::Operator, None) => Viewer::Operator,
        _ => return signed_out(area, request.headers()),
    };
    let session = Session {
        viewer,
        csrf: session::csrf_for(&token),
        token_hash: hash,
    };
    let mut request = match check_csrf(request, &session.csrf).await {
        Ok(request) => request,
        Err(error) => return error.into_response(),
    };
    request.extensions_mut().insert(session);
    next.run(request).await
}

fn is_safe(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// Every request that can change something must carry the session's CSRF token, in the
/// `X-CSRF-Token` header (htmx) or the `_csrf` form field, and must not come from another origin.
async fn check_csrf(request: Request, expected: &str) -> Result<Request, UiError> {
    if is_safe(request.method()) {
        return Ok(request);
    }
    if !same_origin(request.headers()) {
        return Err(UiError::Forbidden("cross-origin request refused"));
    }
    let (parts, body) = request.into_parts();
    let bytes = axum::body::to_bytes(body, MAX_FORM_BYTES)
        .await
        .map_err(|_| UiError::BadRequest("the form is too large".into()))?;
    let from_header = parts
        .headers
        .get("x-csrf-token")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let presented = from_header.or_else(|| form_field(&bytes, "_csrf"));
    match presented {
        Some(token) if session::csrf_matches(&token, expected) => {
            Ok(Request::from_parts(parts, Body::from(bytes)))
        }
        _ => Err(UiError::Forbidden(
            "missing or wrong CSRF token; reload the page and try again",
        )),
    }
}

/// When the browser says where a request comes from, it must be here: `Sec-Fetch-Site` when sent
/// (every current browser), else `Origin` unless it is `null` (what browsers send under
/// `Referrer-Policy: no-referrer`). The CSRF token is required either way.
fn same_origin(headers: &HeaderMap) -> bool {
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
        return matches!(site, "same-origin" | "none");
    }
    let origin = match headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) {
        None | Some("null") => return true,
        Some(origin) => origin,
    };
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    origin
        .split_once("://")
        .is_some_and(|(_, authority)| authority == host)
}

fn form_field(bytes: &[u8], name: &str) -> Option<String> {
    serde_urlencoded::from_bytes::<Vec<(String, String)>>(bytes)
        .ok()?
        .into_iter()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value)
}

/// No valid session: operators go to the sign-in page, subscribers get a page asking for a new link.
fn signed_out(area: Area, headers: &HeaderMap) -> Response {
    let htmx = headers.contains_key("hx-request");
    match (area, htmx) {
        (Area::Operator, false) => Redirect::to("/ui/login").into_response(),
        (Area::Operator, true) => {
            ([("hx-redirect", "/ui/login")], StatusCode::UNAUTHORIZED).into_response()
        }
        (Area::Portal, _) => UiError::Unauthorized(
            "this portal session has ended; ask the service you use for a new portal link",
        )
        .into_response(),
    }
}

// ---------------------------------------------------------------------------------------------
// Sign-in, sign-out, portal links
// ---------------------------------------------------------------------------------------------

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    csrf: String,
    error: Option<String>,
    assets: &'static assets::AssetUrls,
    logo: Option<String>,
}

async fn login_page(State(state): State<UiState>, headers: HeaderMap) -> Response {
    let csrf =
        session::cookie(&headers, session::LOGIN_CSRF_COOKIE).unwrap_or_else(session::new_token);
    render_login(&state, csrf, None, StatusCode::OK)
}

fn render_login(
    state: &UiState,
    csrf: String,
    error: Option<String>,
    status: StatusCode,
) -> Response {
    let cookie = state
        .ui
        .cookies
        .set(session::LOGIN_CSRF_COOKIE, &csrf, "/ui/login", 3600);
    let page = LoginPage {
        csrf,
        error,
        assets: &assets::URLS,
        logo: state.ui.brand.logo_url.clone(),
    };
    (status, [(header::SET_COOKIE, cookie)], render(&page)).into_response()
}

#[derive(serde::Deserialize)]
struct LoginForm {
    api_key: String,
    #[serde(rename = "_csrf")]
    csrf: String,
}

async fn login(
    State(state): State<UiState>,
    connect: Option<axum::Extension<axum::extract::ConnectInfo<std::net::SocketAddr>>>,
    headers: HeaderMap,
    axum::Form(form): axum::Form<LoginForm>,
) -> Response {
    let expected = session::cookie(&headers, session::LOGIN_CSRF_COOKIE).unwrap_or_default();
    if expected.is_empty()
        || !session::csrf_matches(&form.csrf, &expected)
        || !same_origin(&headers)
    {
        return UiError::Forbidden("the sign-in form expired; reload the page and try again")
            .into_response();
    }
    let key = form.api_key.trim();
    let principal = match state.auth.authenticate(key).await {
        Ok(principal) => principal,
        Err(error) => return UiError::from(error).into_response(),
    };
    if principal.is_none() {
        let limited = connect.is_some_and(|c| !state.auth.failures.record_failure(c.0.0.ip()));
        let (message, status) = match limited {
            true => (
                "Too many failed sign-ins from this address; wait a minute.",
                StatusCode::TOO_MANY_REQUESTS,
            ),
            false => ("That API key is not valid.", StatusCode::UNAUTHORIZED),
        };
        return render_login(&state, expected, Some(message.into()), status);
    }
    if !principal.is_some_and(|principal| principal.access().is_operator()) {
        let message = "That API key may not sign in to the dashboard: it needs the admin scope \
                       and no owner.";
        return render_login(
            &state,
            expected,
            Some(message.into()),
            StatusCode::FORBIDDEN,
        );
    }
    let token = session::new_token();
    let now = state.clock.now_ms();
    let row = session::session_row(
        &token,
        SessionKind::Operator,
        None,
        true,
        now,
        session::OPERATOR_SESSION_MS,
    );
    if let Err(error) = state.store.ui.insert_session(&row).await {
        return UiError::from(error).into_response();
    }
    tracing::info!("operator signed in to the dashboard");
    let cookie = state.ui.cookies.set(
        session::OPERATOR_COOKIE,
        &token,
        "/ui",
        session::OPERATOR_SESSION_MS / 1000,
    );
    let clear = state
        .ui
        .cookies
        .clear(session::LOGIN_CSRF_COOKIE, "/ui/login");
    let mut response = Redirect::to("/ui").into_response();
    response.headers_mut().append(
        header::SET_COOKIE,
        HeaderValue::from_str(&cookie).unwrap_or(HeaderValue::from_static("")),
    );
    if let Ok(value) = HeaderValue::from_str(&clear) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    response.into_response()
}

async fn logout(
    State(state): State<UiState>,
    axum::Extension(session): axum::Extension<Session>,
) -> Result<Response, UiError> {
    state.store.ui.delete_session(&session.token_hash).await?;
    let (name, path, to) = match session.viewer {
        Viewer::Operator => (session::OPERATOR_COOKIE, "/ui", "/ui/login"),
        Viewer::Portal { .. } => (session::PORTAL_COOKIE, "/portal", "/portal/enter"),
    };
    let cookie = state.ui.cookies.clear(name, path);
    Ok(([(header::SET_COOKIE, cookie)], Redirect::to(to)).into_response())
}

#[derive(Template)]
#[template(path = "enter.html")]
struct EnterPage {
    assets: &'static assets::AssetUrls,
}

#[derive(Template)]
#[template(path = "enter_continue.html")]
struct ContinuePage {
    assets: &'static assets::AssetUrls,
    token: String,
}

#[derive(serde::Deserialize)]
struct EnterQuery {
    token: Option<String>,
}

/// `GET /portal/enter?token=…`: a page with a "continue" button that posts the token. The GET
/// spends nothing, so a mail scanner or a chat's link preview that fetches the link leaves it for
/// the subscriber.
async fn enter_portal_page(
    axum::extract::Query(query): axum::extract::Query<EnterQuery>,
) -> Response {
    let Some(token) = query.token.filter(|t| !t.is_empty() && t.len() <= 256) else {
        return UiError::Unauthorized("this page needs a portal link").into_response();
    };
    let page = ContinuePage {
        assets: &assets::URLS,
        token,
    };
    render(&page).into_response()
}

/// `POST /portal/enter` (the continue page's form): exchanges the one-time link for a portal
/// session. The answer is a page (not a redirect) that continues to `/portal/` by itself: a
/// `SameSite=Strict` cookie set on a redirect that another site started would not be sent with
/// the redirected request.
async fn enter_portal(
    State(state): State<UiState>,
    headers: HeaderMap,
    axum::Form(form): axum::Form<EnterQuery>,
) -> Response {
    if !same_origin(&headers) {
        return UiError::Forbidden("open the portal link itself, then continue").into_response();
    }
    let Some(token) = form.token.filter(|t| !t.is_empty()) else {
        return UiError::Unauthorized("this page needs a portal link").into_response();
    };
    let now = state.clock.now_ms();
    let hash = crate::auth::hash_key(&token);
    let link = match state.store.ui.take_link(&hash, now).await {
        Ok(Some(link)) => link,
        Ok(None) => {
            return UiError::Unauthorized(
                "this portal link was already used or has expired; ask for a new one",
            )
            .into_response();
        }
        Err(error) => return UiError::from(error).into_response(),
    };
    let session_token = session::new_token();
    let ttl_ms = link.expires_at - link.created_at;
    let row = session::session_row(
        &session_token,
        SessionKind::Portal,
        link.owner,
        link.can_manage,
        now,
        ttl_ms,
    );
    if let Err(error) = state.store.ui.insert_session(&row).await {
        return UiError::from(error).into_response();
    }
    let cookie = state.ui.cookies.set(
        session::PORTAL_COOKIE,
        &session_token,
        "/portal",
        ttl_ms / 1000,
    );
    let page = EnterPage {
        assets: &assets::URLS,
    };
    ([(header::SET_COOKIE, cookie)], render(&page)).into_response()
}

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

/// An error shown as a readable page (or, for htmx requests, as a fragment).
#[derive(Debug)]
pub enum UiError {
    BadRequest(String),
    Unauthorized(&'static str),
    Forbidden(&'static str),
    NotFound(&'static str),
    /// An operation failed: shown with the status and message the API would answer.
    Ops(OpsError),
}

impl From<StoreError> for UiError {
    fn from(error: StoreError) -> Self {
        Self::Ops(OpsError::from(error))
    }
}

impl From<OpsError> for UiError {
    fn from(error: OpsError) -> Self {
        Self::Ops(error)
    }
}

/// The status an operation's error is shown with (the one the API answers it with).
pub(crate) fn ops_status(error: &OpsError) -> StatusCode {
    match error {
        OpsError::NotFound(_) => StatusCode::NOT_FOUND,
        OpsError::Invalid { .. } | OpsError::SchemaMismatch { .. } => {
            StatusCode::UNPROCESSABLE_ENTITY
        }
        OpsError::Conflict { .. } => StatusCode::CONFLICT,
        OpsError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
        OpsError::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        OpsError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage {
    status: u16,
    message: String,
    assets: &'static assets::AssetUrls,
}

impl IntoResponse for UiError {
    fn into_response(self) -> Response {
        let (status, message) = match self {
            Self::BadRequest(message) => (StatusCode::BAD_REQUEST, message),
            Self::Unauthorized(message) => (StatusCode::UNAUTHORIZED, message.to_owned()),
            Self::Forbidden(message) => (StatusCode::FORBIDDEN, message.to_owned()),
            Self::NotFound(what) => (StatusCode::NOT_FOUND, format!("{what} not found")),
            Self::Ops(error) => (ops_status(&error), error.to_string()),
        };
        let page = ErrorPage {
            status: status.as_u16(),
            message,
            assets: &assets::URLS,
        };
        (status, render(&page)).into_response()
    }
}

/// Renders a template; a rendering failure (a bug) is logged and answered with a plain 500.
pub(crate) fn render(template: &impl Template) -> Response {
    match template.render() {
        Ok(html) => Html(html).into_response(),
        Err(error) => {
            tracing::error!(%error, "template rendering failed");
            (StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response()
        }
    }
}
