//! Wiring: open the store, make sure an API key exists, build the router, serve until shutdown.

use crate::api::{ApiSettings, ApiState};
use crate::app::{self, AppState};
use crate::auth::{Authenticator, generate_api_key};
use crate::config::{Config, check_database_url};
use crate::ids::{Clock, DynClock, SystemClock};
use crate::listener::{self, ConnectionLimits};
use crate::ops::{Ops, OpsSettings};
use crate::retention::Purger;
use crate::store::Store;
use crate::store::postgres::PgStore;
use crate::store::sealed::{self, KEY_FILE, KeySource, MasterKey};
use crate::store::sqlite::SqliteStore;
use crate::ui::{UiSettings, UiState};
use crate::worker::Worker;
use anyhow::Context;
use hookd_core::UrlPolicy;
use std::future::Future;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::{Notify, watch};
use tower_http::timeout::RequestBodyDeadlineLayer;

/// Re-exported where the integration tests have always found it.
pub use crate::runtime::install_crypto_provider;

/// Largest body of `POST /api/events/batch`.
const MAX_BATCH_BYTES: usize = 16 * 1024 * 1024;

/// Opens the configured store, applying pending migrations: PostgreSQL when `database_url` is set,
/// else SQLite in the data directory (created if missing). Subscription secrets are sealed with the
/// master keys of [`key_source`].
pub async fn open_store(config: &Config) -> anyhow::Result<Store> {
    let store = open_backend(config).await?;
    let now = SystemClock.now_ms();
    if let Err(error) = store.admin.date_builtin_event_types(now).await {
        // Cosmetic (the catalog's dates): never a reason not to start.
        tracing::warn!(%error, "cannot date the built-in event types");
    }
    let source = key_source(config)?;
    sealed::seal(store, source)
        .await
        .with_context(|| format!("cannot open the master key ({})", key_description(config)))
}

/// Where the master keys that seal subscription secrets come from: `master_key` /
/// `HOOKD_MASTER_KEY` (base64 of 32 bytes; every node of a cluster needs the same one), else
/// `<data_dir>/master.key`, created 0600 at first start; plus `<data_dir>/master.key.next` during
/// a rotation.
pub fn key_source(config: &Config) -> anyhow::Result<KeySource> {
    let configured = match &config.master_key {
        Some(text) => Some(MasterKey::parse(text).map_err(|e| anyhow::anyhow!("master_key: {e}"))?),
        None => {
            create_data_dir(config)?;
            None
        }
    };
    Ok(KeySource {
        configured,
        data_dir: config.data_dir.clone(),
    })
}

fn key_description(config: &Config) -> String {
    match config.master_key {
        Some(_) => "master_key / HOOKD_MASTER_KEY".to_owned(),
        None => config.data_dir.join(KEY_FILE).display().to_string(),
    }
}

/// The configured backend itself, without sealing (the master-key rotation works on stored values).
pub(crate) async fn open_backend(config: &Config) -> anyhow::Result<Store> {
    if let Some(options) = config.postgres_options() {
        check_database_url(&options.url)
            .map_err(|e| anyhow::anyhow!("invalid configuration: {e}"))?;
        let store = PgStore::open(options)
            .await
            .with_context(|| format!("cannot open {}", config.store_description()))?;
        return Ok(store.into_store());
    }
    create_data_dir(config)?;
    let store = SqliteStore::open(config.sqlite_options())
        .await
        .with_context(|| format!("cannot open {}", config.database_path().display()))?;
    Ok(store.into_store())
}

/// `hookd migrate`: applies pending migrations to the configured database and returns the versions
/// applied so far, oldest first. On PostgreSQL this waits for the migration advisory lock, so it is
/// safe while other nodes start.
pub async fn migrate(config: &Config) -> anyhow::Result<Vec<i64>> {
    let versions = match &config.database_url {
        Some(url) => {
            check_database_url(url).map_err(|e| anyhow::anyhow!("invalid configuration: {e}"))?;
            PgStore::migrate(url).await
        }
        None => {
            create_data_dir(config)?;
            SqliteStore::migrate(config.sqlite_options()).await
        }
    };
    versions.with_context(|| format!("cannot migrate {}", config.store_description()))
}

/// Creates the data dir (mode 0700), or restricts an existing one and its files to their owner.
pub(crate) fn create_data_dir(config: &Config) -> anyhow::Result<()> {
    crate::data_dir::prepare(&config.data_dir)
}

/// On first start (no stored key and none configured) creates an admin key and returns its text, to be
/// printed once. Never again: once a key is stored, this returns `None`.
pub async fn ensure_admin_key(
    store: &Store,
    config: &Config,
    clock: &DynClock,
) -> anyhow::Result<Option<String>> {
    if config.api_key.is_some() || !store.admin.list_api_keys().await?.is_empty() {
        return Ok(None);
    }
    let (key, row) = generate_api_key("admin", clock.now_ms());
    store.admin.insert_api_key(row).await?;
    Ok(Some(key))
}

/// The state of the API, the dashboard and the portal: one set of use cases ([`Ops`]) over `store`,
/// `clock` and the worker's `waker`, and each edge's own settings.
pub fn app_state(config: &Config, store: Store, clock: DynClock, waker: Arc<Notify>) -> AppState {
    // Install the metrics recorder before anything records.
    crate::api::metrics::prometheus();
    let brand = config.brand().unwrap_or_default();
    let ops = Ops::new(
        store.clone(),
        clock.clone(),
        OpsSettings {
            url_policy: UrlPolicy {
                allow_http: config.allows_http(),
                targets: config.target_policy(),
            },
            max_payload_bytes: config.max_payload_bytes,
            strict_event_types: config.strict_event_types,
            retention: config.retention(),
        },
        waker,
    );
    let auth = Authenticator::new(
        store.clone(),
        config.api_key.as_deref(),
        config.auth_failures_per_minute,
    );
    let ui_settings = UiSettings::new(brand, config.dev);
    let api = ApiState {
        ops: ops.clone(),
        store: store.clone(),
        clock: clock.clone(),
        auth: auth.clone(),
        settings: ApiSettings {
            max_batch_bytes: MAX_BATCH_BYTES.max(config.max_payload_bytes * 2),
            serve_api: config.role.runs_api(),
            public_metrics: config.public_metrics,
            public_url: ui_settings.brand.public_url.clone(),
        },
    };
    let ui = UiState {
        ops,
        store,
        clock,
        auth,
        ui: ui_settings,
    };
    AppState { api, ui }
}

/// Serves the API on `listener` with the default connection limits until `shutdown` completes,
/// then drains open requests.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    serve_with(listener, state, ConnectionLimits::default(), shutdown).await
}

/// Serves the API on `listener` with `limits` until `shutdown` completes, then drains open requests.
pub async fn serve_with(
    listener: TcpListener,
    state: AppState,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let app = app::router(state)
        .layer(axum::middleware::from_fn(crate::api::limit_headers))
        .layer(RequestBodyDeadlineLayer::new(limits.request_body_timeout))
        .layer(tower_http::trace::TraceLayer::new_for_http());
    listener::serve(listener, app, limits, shutdown).await;
    Ok(())
}

/// Refuses a retention shorter than the retry schedule of a subscription's own policy (the
/// default policy is checked with the rest of the configuration), naming both.
pub async fn check_retention(config: &Config, store: &Store) -> anyhow::Result<()> {
    let retention = config.retention();
    if retention.delivered_ms.is_none() && retention.dead_ms.is_none() {
        return Ok(());
    }
    for text in store.retention.retry_policies_in_use().await? {
        let Ok(policy) = serde_json::from_str::<hookd_core::RetryPolicy>(&text) else {
            continue;
        };
        let whose = format!("a subscription's retry policy {text}");
        retention
            .check_retry_policy(&policy, &whose)
            .map_err(|e| anyhow::anyhow!("invalid configuration: {e}"))?;
    }
    Ok(())
}

/// Starts the delivery worker (and the retention purge) in the background; both stop when
/// `shutdown` flips to true. Work made
/// due by other nodes sharing the store (PostgreSQL) wakes it through `waker` too.
pub fn spawn_worker(
    config: &Config,
    store: Store,
    clock: DynClock,
    waker: Arc<Notify>,
    shutdown: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    // SQLite: one worker per data dir, and it knows it. PostgreSQL nodes tell dead ones apart only
    // by their heartbeats (they may even share a data dir).
    let only_worker = match config.database_url {
        None => worker_lock(&config.data_dir),
        Some(_) => None,
    };
    let owner = crate::worker::new_owner_id(clock.now_ms());
    let mut worker_config = config.worker_config(owner);
    worker_config.sole_worker = only_worker.is_some();
    let worker = Worker::new(store.clone(), clock.clone(), worker_config, waker.clone());
    let purger = Purger::new(store.clone(), clock, config.retention());
    tokio::spawn(async move {
        if only_worker.is_some() {
            match worker.release_earlier_runs().await {
                Ok(0) => {}
                Ok(released) => tracing::warn!(
                    released,
                    "returned the leases of this node's earlier run (it stopped without releasing \
                     them) to the queue"
                ),
                Err(error) => tracing::warn!(%error, "could not release an earlier run's leases"),
            }
        }
        if let Err(error) = store.queue.listen_for_work(waker).await {
            // Not fatal: the worker's poll still finds the work, only later.
            tracing::warn!(%error, "cannot listen for work from other nodes");
        }
        // The purge runs beside the worker: on SQLite in the data dir's one worker process, on
        // PostgreSQL on every worker node (its steps lock what they remove, so nodes never clash).
        tokio::join!(worker.run(shutdown.clone()), purger.run(shutdown));
        drop(only_worker);
    })
}

/// The data dir's worker lock (`worker.lock`, an advisory lock the OS drops with the process, however
/// it ends): `Some` when this process is now the data dir's only worker.
fn worker_lock(data_dir: &std::path::Path) -> Option<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    let path = data_dir.join("worker.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(&path);
    let file = match file {
        Ok(file) => file,
        Err(error) => {
            tracing::warn!(%error, path = %path.display(), "cannot open the worker lock");
            return None;
        }
    };
    match file.try_lock() {
        Ok(()) => Some(file),
        Err(error) => {
            tracing::warn!(%error, path = %path.display(), "another worker holds this data dir");
            None
        }
    }
}

/// `hookd serve`: the API and/or the delivery worker (per `role`) until `shutdown` completes.
pub async fn run(
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    if config.dev {
        tracing::warn!(
            "DEVELOPMENT MODE: plain-http and loopback/private endpoint URLs are allowed. \
             Do not run production traffic with --dev."
        );
    }
    if !config.dev
        && let Some(reason) = config
            .api_key
            .as_deref()
            .and_then(crate::auth::weak_key_reason)
    {
        tracing::warn!(
            "the configured api_key (HOOKD_API_KEY) is weak: {reason}. Anyone who can reach the \
             API may guess it; use a random key of at least {} characters or `hookd api-keys \
             create`",
            crate::auth::MIN_CONFIGURED_KEY_LEN
        );
    }
    install_crypto_provider();
    crate::api::metrics::prometheus();
    let clock: DynClock = Arc::new(SystemClock);
    let store = open_store(&config).await?;
    check_retention(&config, &store).await?;
    if config.role.runs_api()
        && let Some(key) = ensure_admin_key(&store, &config, &clock).await?
    {
        // Printed on stdout, once: the key is stored only as a hash and cannot be shown again.
        println!(
            "Created an admin API key. It is shown only this once; store it now:\n\n    {key}\n"
        );
    }
    let file_limit = listener::raise_open_file_limit();
    let limits = config.connection_limits();
    let capped = listener::cap_to_file_limit(limits.max_connections);
    if capped < limits.max_connections {
        tracing::warn!(
            http_max_connections = limits.max_connections,
            open_file_limit = file_limit,
            capped,
            "http_max_connections lowered to half the open-file limit"
        );
    }
    let limits = ConnectionLimits {
        max_connections: capped,
        ..limits
    };
    let listener = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let address = listener.local_addr()?;
    tracing::info!(%address, role = ?config.role, store = %config.store_description(), "hookd listening");
    let waker = Arc::new(Notify::new());
    let (stop, stopped) = watch::channel(false);
    let worker = config.role.runs_worker().then(|| {
        spawn_worker(
            &config,
            store.clone(),
            clock.clone(),
            waker.clone(),
            stopped.clone(),
        )
    });
    let state = app_state(&config, store, clock, waker);
    let mut api_stopped = stopped.clone();
    let api = tokio::spawn(serve_with(listener, state, limits, async move {
        let _ = api_stopped.wait_for(|stop| *stop).await;
    }));
    shutdown.await;
    let _ = stop.send(true);
    if let Some(worker) = worker {
        let _ = worker.await;
    }
    api.await.context("HTTP server task failed")?
}
