use crate::common::*;
use hookd::config::Config;
use serde_json::json;

#[tokio::test]
async fn restart_keeps_subscriptions_events_and_deliveries() {
    let data = tempfile::TempDir::new().unwrap();
    let config = test_config(data.path().to_path_buf());
    let app = spawn_on(config.clone()).await;
    let sub = app.subscribe("http://127.0.0.1:1/h", &["order.*"]).await;
    let published = app
        .post(
            "/api/events",
            json!({"event": "order.created", "data": {"n": 1}}),
        )
        .await;
    app.post("/api/event-types", json!({"name": "custom.type"}))
        .await;
    let before = app
        .get(&format!(
            "/api/events/{}",
            published.body["id"].as_str().unwrap()
        ))
        .await;
    app.stop().await;

    let again = spawn_on(config).await;
    let id = sub["id"].as_str().unwrap();
    let fetched = again.get(&format!("/api/webhooks/{id}")).await;
    assert_eq!(fetched.status, 200);
    assert_eq!(fetched.body["events"], json!(["order.*"]));
    let secret = again.get(&format!("/api/webhooks/{id}/secret")).await;
    assert_eq!(secret.body["secret"], sub["secret"]);
    let after = again
        .get(&format!(
            "/api/events/{}",
            published.body["id"].as_str().unwrap()
        ))
        .await;
    // The worker keeps working on the delivery; the event and which deliveries it has are what persist.
    let identity = |body: &serde_json::Value| {
        let mut body = body.clone();
        let ids: Vec<_> = body["deliveries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| (d["id"].clone(), d["webhook_id"].clone()))
            .collect();
        body["deliveries"] = json!(ids);
        body
    };
    assert_eq!(identity(&after.body), identity(&before.body));
    let types = again.get("/api/event-types").await;
    assert!(
        types.body["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["name"] == "custom.type")
    );
}

#[tokio::test]
async fn migrations_upgrade_an_existing_database_and_keep_its_rows() {
    let data = TestDir::new();
    let config = test_config(data.path());
    // A database as an older hookd left it: only the first migration, with a row in it.
    let every_version = match backend() {
        Backend::Sqlite => seed_first_sqlite_migration(&config).await,
        Backend::Postgres => seed_first_postgres_migration(&config).await,
    };
    assert!(
        every_version.len() >= 2,
        "this test needs a later migration to apply"
    );
    let app = spawn_on(config.clone()).await;
    let old = app.get("/api/webhooks/wh_old").await;
    assert_eq!(old.status, 200);
    assert_eq!(old.body["events"], json!(["*"]));
    assert_eq!(
        app.get("/api/event-types").await.body["data"]
            .as_array()
            .unwrap()
            .len(),
        11
    );
    let published = app
        .post("/api/events", json!({"event": "order.created", "data": {}}))
        .await;
    assert_eq!(published.body["deliveries"], 1);
    let versions = hookd::server::migrate(&config).await.unwrap();
    assert_eq!(
        versions, every_version,
        "running migrations again is a no-op"
    );
}

/// Applies only the first SQLite migration and adds a subscription; returns every version.
async fn seed_first_sqlite_migration(config: &Config) -> Vec<i64> {
    use hookd::store::sqlite::MIGRATOR;
    let pool = sqlx::SqlitePool::connect_with(
        sqlx::sqlite::SqliteConnectOptions::new()
            .filename(config.database_path())
            .create_if_missing(true),
    )
    .await
    .unwrap();
    MIGRATOR
        .run_to(MIGRATOR.iter().next().unwrap().version, &pool)
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO subscriptions (id, url, events, secret, active, created_at, updated_at)
         VALUES ('wh_old', 'http://127.0.0.1:1/h', '[\"*\"]',
                 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw', 1, 1000, 1000)",
    )
    .execute(&pool)
    .await
    .unwrap();
    let tables: Vec<String> =
        sqlx::query_scalar("SELECT name FROM sqlite_master WHERE name = 'event_types'")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert!(tables.is_empty(), "the later migration is not applied yet");
    pool.close().await;
    MIGRATOR.iter().map(|m| m.version).collect()
}

/// Applies only the first PostgreSQL migration and adds a subscription; returns every version.
async fn seed_first_postgres_migration(config: &Config) -> Vec<i64> {
    use hookd::store::postgres::MIGRATOR;
    let pool = sqlx::PgPool::connect(config.database_url.as_deref().unwrap())
        .await
        .unwrap();
    MIGRATOR
        .run_to(MIGRATOR.iter().next().unwrap().version, &pool)
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO subscriptions (id, url, events, secret, active, created_at, updated_at)
         VALUES ('wh_old', 'http://127.0.0.1:1/h', '[\"*\"]',
                 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw', TRUE, 1000, 1000)",
    )
    .execute(&pool)
    .await
    .unwrap();
    let table: Option<String> = sqlx::query_scalar("SELECT to_regclass('event_types')::text")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(table, None, "the later migration is not applied yet");
    pool.close().await;
    MIGRATOR.iter().map(|m| m.version).collect()
}

/// A database migrated by a release whose migration 2 had other comments (the statements were the
/// same) still opens: the recorded checksum moves to the current text's, and nothing else changes.
#[tokio::test]
async fn a_database_migrated_before_a_migration_comment_was_reworded_still_opens() {
    let data = TestDir::new();
    let config = test_config(data.path());
    let versions = hookd::server::migrate(&config).await.unwrap();
    let released = |hex_text: &str| hex::decode(hex_text).unwrap();
    // The checksum as the released text of migration 2 left it, and what the store makes of it.
    let (current, after) = match backend() {
        Backend::Sqlite => {
            let url = format!("sqlite://{}", config.database_path().display());
            let read = "SELECT checksum FROM _sqlx_migrations WHERE version = 2";
            let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
            let current: Vec<u8> = sqlx::query_scalar(read).fetch_one(&pool).await.unwrap();
            sqlx::query("UPDATE _sqlx_migrations SET checksum = ?1 WHERE version = 2")
                .bind(released("b0fd549d2f148e94797da794b6e13d95e7d67c909105b737dec9d4f91165e3243103ca8fc52fe6e2ddcc409fc32517ec"))
                .execute(&pool)
                .await
                .unwrap();
            pool.close().await;
            assert_eq!(hookd::server::migrate(&config).await.unwrap(), versions);
            let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
            let after: Vec<u8> = sqlx::query_scalar(read).fetch_one(&pool).await.unwrap();
            (current, after)
        }
        Backend::Postgres => {
            let url = config.database_url.clone().unwrap();
            let read = "SELECT checksum FROM _sqlx_migrations WHERE version = 2";
            let pool = sqlx::PgPool::connect(&url).await.unwrap();
            let current: Vec<u8> = sqlx::query_scalar(read).fetch_one(&pool).await.unwrap();
            sqlx::query("UPDATE _sqlx_migrations SET checksum = $1 WHERE version = 2")
                .bind(released("e5e4a5ca84488d7e721c1ff2b3f16c4b2a8aa5a25f24fc2e55caa59bcb1f0b9771fc9c909a6637599e12e4a80e190564"))
                .execute(&pool)
                .await
                .unwrap();
            pool.close().await;
            assert_eq!(hookd::server::migrate(&config).await.unwrap(), versions);
            let pool = sqlx::PgPool::connect(&url).await.unwrap();
            let after: Vec<u8> = sqlx::query_scalar(read).fetch_one(&pool).await.unwrap();
            (current, after)
        }
    };
    assert_eq!(after, current);
    // And the server itself opens it (the same path), with the catalog migration 2 seeded.
    let app = spawn_on(config.clone()).await;
    let types = app.get("/api/event-types").await;
    assert_eq!(types.body["data"].as_array().unwrap().len(), 11);
}

/// A database that a newer hookd migrated (it records a migration this binary does not have) is
/// refused at start and by `migrate`, naming that migration, rather than served with a schema this
/// binary does not know. The same check protects a restored backup or `pg_restore`d dump.
#[tokio::test]
async fn a_database_migrated_by_a_newer_hookd_is_refused_at_start() {
    let data = TestDir::new();
    let config = test_config(data.path());
    let versions = hookd::server::migrate(&config).await.unwrap();
    let newer = versions.last().unwrap() + 1_000;
    match backend() {
        Backend::Sqlite => {
            let url = format!("sqlite://{}", config.database_path().display());
            let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
            let record = "INSERT INTO _sqlx_migrations (version, description, success, checksum, \
                          execution_time) VALUES (?1, 'from a newer hookd', TRUE, ?2, 0)";
            sqlx::query(record)
                .bind(newer)
                .bind(vec![0u8; 48])
                .execute(&pool)
                .await
                .unwrap();
            pool.close().await;
        }
        Backend::Postgres => {
            let pool = sqlx::PgPool::connect(config.database_url.as_deref().unwrap())
                .await
                .unwrap();
            let record = "INSERT INTO _sqlx_migrations (version, description, success, checksum, \
                          execution_time) VALUES ($1, 'from a newer hookd', TRUE, $2, 0)";
            sqlx::query(record)
                .bind(newer)
                .bind(vec![0u8; 48])
                .execute(&pool)
                .await
                .unwrap();
            pool.close().await;
        }
    }
    let refused = match hookd::server::open_store(&config).await {
        Ok(_) => panic!("a database with migration {newer} was opened"),
        Err(error) => format!("{error:#}"),
    };
    let says = format!("at migration {newer}, newer than this hookd knows");
    assert!(refused.contains(&says), "{refused}");
    let refused = hookd::server::migrate(&config).await.unwrap_err();
    assert!(format!("{refused:#}").contains(&says), "{refused:#}");
}

#[tokio::test]
async fn migrate_command_migrates_the_configured_database() {
    let data = TestDir::new();
    let config = test_config(data.path());
    let hookd = |args: &[&str]| {
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_hookd"));
        command
            .env_clear()
            .arg("migrate")
            .arg("--data-dir")
            .arg(data.path())
            .args(args);
        command
    };
    let database_args: Vec<&str> = match &config.database_url {
        Some(url) => vec!["--database", url],
        None => vec![],
    };
    let output = hookd(&database_args).output().await.unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let latest = hookd::server::migrate(&config).await.unwrap();
    assert!(
        stdout.contains(&format!("is at migration {}", latest.last().unwrap())),
        "{stdout}"
    );
    let backend_name = match backend() {
        Backend::Sqlite => "SQLite",
        Backend::Postgres => "PostgreSQL",
    };
    assert!(stdout.contains(backend_name), "{stdout}");

    // Anything but a PostgreSQL URL is refused, with a message naming the key.
    let refused = hookd(&["--database", "mysql://root@127.0.0.1/hookd"])
        .output()
        .await
        .unwrap();
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("database_url") && stderr.contains("postgres://"),
        "{stderr}"
    );
}

#[tokio::test]
async fn concurrent_publishes_share_group_commits() {
    let data = TestDir::new();
    let config = test_config(data.path());
    let (store, publisher_stats) = open_store_with_publisher_stats(&config).await;
    let app = spawn_with_store(config, store).await;
    app.subscribe("http://127.0.0.1:1/h", &["*"]).await;
    let (groups_before, requests_before) = publisher_stats();
    let requests = 200;
    let events = (0..requests)
        .map(|i| json!({"event": "order.created", "data": {"i": i}, "id": format!("g{i}")}))
        .collect();
    let statuses = app.publish_concurrently(events).await;
    assert!(statuses.iter().all(|s| *s == 202), "{statuses:?}");
    let (groups, answered) = publisher_stats();
    assert_eq!(answered - requests_before, requests);
    let used = groups - groups_before;
    assert!(
        used < requests,
        "{requests} concurrent publishes took {used} transactions: no grouping"
    );
    for i in 0..requests {
        let event = app.get(&format!("/api/events/g{i}")).await;
        assert_eq!(
            event.body["deliveries"].as_array().unwrap().len(),
            1,
            "g{i}"
        );
    }
}

/// The secret column of a subscription as the database holds it.
async fn raw_secret(app: &TestApp, id: &str) -> String {
    use sqlx::Connection;
    match &app.config.database_url {
        Some(url) => {
            let mut connection = sqlx::PgConnection::connect(url).await.unwrap();
            sqlx::query_scalar("SELECT secret FROM subscriptions WHERE id = $1")
                .bind(id)
                .fetch_one(&mut connection)
                .await
                .unwrap()
        }
        None => {
            let url = format!("sqlite://{}", app.config.database_path().display());
            let mut connection = sqlx::SqliteConnection::connect(&url).await.unwrap();
            sqlx::query_scalar("SELECT secret FROM subscriptions WHERE id = ?")
                .bind(id)
                .fetch_one(&mut connection)
                .await
                .unwrap()
        }
    }
}

#[tokio::test]
async fn secrets_are_encrypted_at_rest() {
    let app = spawn_app().await;
    let sub = app.subscribe("http://127.0.0.1:1/h", &["*"]).await;
    let id = sub["id"].as_str().unwrap();
    let secret = sub["secret"].as_str().unwrap();
    let stored = raw_secret(&app, id).await;
    assert!(stored.starts_with("enc:v2:"), "{stored}");
    assert!(!stored.contains(secret.trim_start_matches("whsec_")));
    assert_eq!(
        app.get(&format!("/api/webhooks/{id}/secret")).await.body["secret"],
        secret
    );
    let rotated = app
        .post(&format!("/api/webhooks/{id}/rotate-secret"), json!({}))
        .await
        .body;
    let stored = raw_secret(&app, id).await;
    assert!(stored.starts_with("enc:v2:"));
    assert!(
        !stored.contains(
            rotated["secret"]
                .as_str()
                .unwrap()
                .trim_start_matches("whsec_")
        )
    );
    let key_file = app.config.data_dir.join("master.key");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(key_file).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "the key file is private");
}
