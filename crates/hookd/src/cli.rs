//! Command-line interface: `hookd serve`, `hookd migrate`, `hookd api-keys ...`,
//! `hookd master-key rotate`, `hookd backup`, `hookd restore`, `hookd openapi`, and the client
//! commands.

use crate::client::{ClientArgs, ClientError, commands, listen, owners, verify, webhooks};
use crate::config::{Config, FlagOverrides};
use crate::ids::{Clock, SystemClock};
use crate::master_key::{Installed, Rotated};
use crate::ops::{KeyRequest, parse_key_request};
use crate::store::sealed::MasterKey;
use crate::{runtime, server};
use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(name = "hookd", version, about = "Webhook delivery server")]
pub struct Cli {
    #[command(flatten)]
    pub client: ClientArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server (API) on the configured store.
    Serve(ServeArgs),
    /// Apply pending database migrations and exit.
    Migrate(StoreArgs),
    /// Manage API keys offline, directly in the data dir.
    #[command(subcommand)]
    ApiKeys(ApiKeysCommand),
    /// Manage the master key that encrypts subscription secrets at rest.
    #[command(subcommand)]
    MasterKey(MasterKeyCommand),
    /// Copy the SQLite database of a data dir, consistently, while hookd runs (with its master
    /// key beside it).
    Backup(BackupArgs),
    /// Install a backup as the database of a data dir that has none.
    Restore(RestoreArgs),
    /// Print the OpenAPI document.
    Openapi,
    /// Manage subscriptions on a running server.
    #[command(subcommand)]
    Webhooks(webhooks::WebhooksCommand),
    /// Publish and inspect events.
    #[command(subcommand)]
    Events(commands::EventsCommand),
    /// Owners (your customers): their subscriptions counted, and erasure.
    #[command(subcommand)]
    Owners(owners::OwnersCommand),
    /// Inspect and retry deliveries.
    #[command(subcommand)]
    Deliveries(commands::DeliveriesCommand),
    /// The dead-letter queue.
    #[command(subcommand)]
    DeadLetters(commands::DeadLettersCommand),
    /// The event-type catalog.
    #[command(subcommand)]
    EventTypes(commands::EventTypesCommand),
    /// Delivery metrics (overall or `--webhook ID`).
    Metrics {
        /// Only this subscription's metrics.
        #[arg(long)]
        webhook: Option<String>,
    },
    /// Run a local receiver that verifies and prints deliveries (and can forward them).
    Listen(listen::ListenArgs),
    /// Verify a webhook signature offline (body on stdin); exit code 0 means valid.
    Verify(verify::VerifyArgs),
    /// Run a self-contained benchmark (receiver, hookd nodes, load) and report the figures.
    Bench(crate::bench::BenchArgs),
}

/// Where the configuration and the data live (for commands that open the store themselves).
#[derive(Debug, Args, Clone)]
pub struct StoreArgs {
    /// TOML configuration file.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Data directory [env: HOOKD_DATA_DIR] [default: ./hookd-data]
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// PostgreSQL URL (postgres://...) instead of SQLite in the data directory
    /// [env: HOOKD_DATABASE_URL]
    #[arg(long = "database", value_name = "URL")]
    pub database_url: Option<String>,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// Listen address [env: HOOKD_LISTEN] [default: 127.0.0.1:8080]
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// Development mode: allow plain-http and loopback endpoints [env: HOOKD_DEV]
    #[arg(long)]
    pub dev: bool,
    /// What to run: the API, the delivery worker, or both [env: HOOKD_ROLE] [default: all]
    #[arg(long, value_enum)]
    pub role: Option<crate::config::Role>,
}

#[derive(Debug, Args)]
pub struct BackupArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// The backup file to write (its master key goes to FILE.master.key).
    #[arg(long, value_name = "FILE")]
    pub to: PathBuf,
    /// Replace FILE (and its key files) if they exist.
    #[arg(long)]
    pub force: bool,
    /// Do not copy the master key beside the backup (keep it with the backup yourself).
    #[arg(long)]
    pub no_key: bool,
}

#[derive(Debug, Args)]
pub struct RestoreArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// The backup file (its master key, if copied, is read from FILE.master.key).
    #[arg(long, value_name = "FILE")]
    pub from: PathBuf,
}

#[derive(Debug, Subcommand)]
pub enum ApiKeysCommand {
    /// Create a key and print it (shown once).
    Create {
        #[command(flatten)]
        store: StoreArgs,
        /// A label for the key.
        #[arg(long, default_value = "cli")]
        name: String,
        /// What the key may do: `admin`, `publish` or `read`; repeat for several [default: admin]
        #[arg(long = "scope", value_name = "SCOPE")]
        scopes: Vec<String>,
        /// Bind the key to one owner: it reaches only that owner's subscriptions and events.
        #[arg(long)]
        owner: Option<String>,
    },
    /// List keys (never the keys themselves: id, name, prefix, scopes, owner, state).
    List {
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Revoke a key by id; takes effect on the next request.
    Revoke {
        #[command(flatten)]
        store: StoreArgs,
        /// The key's id (from `hookd api-keys list`).
        id: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum MasterKeyCommand {
    /// Re-encrypt every subscription secret with a new master key, in one transaction. Safe to
    /// interrupt: running it again finishes the same rotation.
    Rotate {
        #[command(flatten)]
        store: StoreArgs,
        /// The new key, base64 of 32 bytes [default: a generated key]
        #[arg(
            long,
            value_name = "BASE64",
            env = "HOOKD_NEW_MASTER_KEY",
            hide_env_values = true
        )]
        new_key: Option<String>,
    },
}

impl StoreArgs {
    pub fn load_config(&self, mut flags: FlagOverrides) -> anyhow::Result<Config> {
        flags.data_dir = self.data_dir.clone();
        flags.database_url = self.database_url.clone();
        Config::load(self.config.as_deref(), std::env::vars(), flags)
            .map_err(|e| anyhow::anyhow!("invalid configuration: {e}"))
    }
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(args) => {
            let config = args.store.load_config(FlagOverrides {
                listen: args.listen,
                dev: args.dev.then_some(true),
                role: args.role,
                ..FlagOverrides::default()
            })?;
            crate::telemetry::init(&config);
            server::run(config, runtime::shutdown_signal()).await
        }
        Command::Migrate(store) => {
            let config = store.load_config(FlagOverrides::default())?;
            let versions = server::migrate(&config).await?;
            println!(
                "database {} is at migration {}",
                config.store_description(),
                versions.last().copied().unwrap_or(0)
            );
            Ok(())
        }
        Command::ApiKeys(command) => api_keys(command, cli.client.json).await,
        Command::MasterKey(command) => master_key(command).await,
        Command::Backup(args) => {
            let config = args.store.load_config(FlagOverrides::default())?;
            let request = crate::backup::BackupRequest {
                to: args.to,
                force: args.force,
                copy_keys: !args.no_key,
            };
            let backed_up = blocking(move || crate::backup::backup(&config, &request))
                .await
                .context("backup")?;
            print!("{}", backed_up.report());
            Ok(())
        }
        Command::Restore(args) => {
            let config = args.store.load_config(FlagOverrides::default())?;
            let restored = blocking(move || crate::backup::restore(&config, &args.from))
                .await
                .context("restore")?;
            print!("{}", restored.report());
            Ok(())
        }
        Command::Openapi => {
            println!("{}", crate::api::openapi::document());
            Ok(())
        }
        Command::Webhooks(command) => client_result(webhooks::webhooks(&cli.client, command).await),
        Command::Events(command) => client_result(commands::events(&cli.client, command).await),
        Command::Owners(command) => client_result(owners::owners(&cli.client, command).await),
        Command::Deliveries(command) => {
            client_result(commands::deliveries(&cli.client, command).await)
        }
        Command::DeadLetters(command) => {
            client_result(commands::dead_letters(&cli.client, command).await)
        }
        Command::EventTypes(command) => {
            client_result(commands::event_types(&cli.client, command).await)
        }
        Command::Metrics { webhook } => {
            client_result(commands::metrics(&cli.client, webhook).await)
        }
        Command::Listen(args) => client_result(listen::run(&cli.client, args).await),
        Command::Bench(args) => {
            let reports = crate::bench::run(&args).await?;
            crate::bench::print(&reports, cli.client.json);
            let lost: u64 = reports.iter().map(|r| r.lost).sum();
            let bad_signatures: u64 = reports.iter().map(|r| r.signature_failures).sum();
            anyhow::ensure!(lost == 0, "{lost} deliveries were lost");
            let failed: Vec<&String> = reports.iter().flat_map(|r| &r.failed_checks).collect();
            anyhow::ensure!(failed.is_empty(), "failed checks: {failed:?}");
            anyhow::ensure!(
                bad_signatures == 0,
                "{bad_signatures} sampled signatures failed"
            );
            Ok(())
        }
        Command::Verify(args) => {
            verify::print(&args, cli.client.json).map_err(|e| anyhow::anyhow!(e))
        }
    }
}

/// Runs file and database work off the async runtime's threads.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> anyhow::Result<T> + Send + 'static,
) -> anyhow::Result<T> {
    tokio::task::spawn_blocking(work).await?
}

/// Client errors print the server's message and exit non-zero.
fn client_result(result: Result<(), ClientError>) -> anyhow::Result<()> {
    result.map_err(|e| anyhow::anyhow!(e))
}

async fn api_keys(command: ApiKeysCommand, json: bool) -> anyhow::Result<()> {
    api_keys_inner(command, json).await.context("api-keys")
}

async fn api_keys_inner(command: ApiKeysCommand, json: bool) -> anyhow::Result<()> {
    let now = SystemClock.now_ms();
    match command {
        ApiKeysCommand::Create {
            store,
            name,
            scopes,
            owner,
        } => {
            let request = KeyRequest {
                name: name.clone(),
                scopes: (!scopes.is_empty()).then_some(scopes),
                owner,
            };
            let (key, row) =
                parse_key_request(request, now).map_err(|error| anyhow::anyhow!("{error}"))?;
            let config = store.load_config(FlagOverrides::default())?;
            let db = server::open_store(&config).await?;
            let id = row.id.clone();
            db.admin.insert_api_key(row).await?;
            println!("{key}");
            eprintln!("created API key {id} ({name}); it is shown only this once");
            Ok(())
        }
        ApiKeysCommand::List { store } => {
            let config = store.load_config(FlagOverrides::default())?;
            let db = server::open_store(&config).await?;
            let keys = db.admin.list_api_keys().await?;
            if json {
                let rows: Vec<_> = keys
                    .iter()
                    .map(|k| {
                        serde_json::json!({
                            "id": k.id, "name": k.name, "prefix": k.prefix,
                            "scopes": k.scopes.names(), "owner": k.owner,
                            "created_at": crate::api::rfc3339(k.created_at),
                            "revoked_at": k.revoked_at.map(crate::api::rfc3339),
                        })
                    })
                    .collect();
                println!("{}", serde_json::to_string_pretty(&rows)?);
                return Ok(());
            }
            println!(
                "{:<32} {:<16} {:<14} {:<20} {:<16} {:<8} CREATED",
                "ID", "NAME", "PREFIX", "SCOPES", "OWNER", "STATE"
            );
            for key in keys {
                let state = match key.revoked_at {
                    Some(_) => "revoked",
                    None => "active",
                };
                println!(
                    "{:<32} {:<16} {:<14} {:<20} {:<16} {:<8} {}",
                    key.id,
                    key.name,
                    format!("{}…", key.prefix),
                    key.scopes.to_stored(),
                    key.owner.as_deref().unwrap_or("-"),
                    state,
                    crate::api::rfc3339(key.created_at)
                );
            }
            Ok(())
        }
        ApiKeysCommand::Revoke { store, id } => {
            let config = store.load_config(FlagOverrides::default())?;
            let db = server::open_store(&config).await?;
            let revoked = db.admin.revoke_api_key(&id, now).await?;
            anyhow::ensure!(revoked, "no active API key with id {id}");
            println!("revoked {id}");
            Ok(())
        }
    }
}

async fn master_key(command: MasterKeyCommand) -> anyhow::Result<()> {
    let MasterKeyCommand::Rotate { store, new_key } = command;
    let config = store.load_config(FlagOverrides::default())?;
    let requested = new_key
        .map(|text| MasterKey::parse(&text))
        .transpose()
        .map_err(|e| anyhow::anyhow!("--new-key: {e}"))?;
    let rotated = crate::master_key::rotate(&config, requested)
        .await
        .context("master-key rotate")?;
    print!("{}", rotation_report(&rotated));
    Ok(())
}

/// What the operator reads after a rotation, and what they still have to do.
fn rotation_report(rotated: &Rotated) -> String {
    let new_id = rotated.new_key.id();
    let mut text = String::new();
    if rotated.resumed {
        text.push_str(&format!(
            "Finished the interrupted rotation to master key {new_id}.\n"
        ));
    }
    let secrets = match rotated.resealed {
        1 => "1 secret".to_owned(),
        n => format!("{n} secrets"),
    };
    text.push_str(&format!(
        "Re-encrypted {secrets} with master key {new_id} (was {}) in one transaction; the old \
         key no longer decrypts them.\n",
        rotated.old_key_id
    ));
    match &rotated.installed {
        Installed::KeyFile(path) => text.push_str(&format!(
            "{} now holds the new key; the old key file is gone.\n\
             A hookd running on this data dir picks up the new key by itself. Nodes using a copy \
             of the key file need the new file, then a restart.\n",
            path.display()
        )),
        Installed::Configured { saved_at } => {
            match saved_at {
                Some(path) => text.push_str(&format!(
                    "\nThe master key comes from HOOKD_MASTER_KEY (or master_key). Install the new \
                     key in its place, wherever it is set:\n\n    HOOKD_MASTER_KEY={}\n\n\
                     A copy is in {} (mode 0600): delete that file once the key is installed.\n",
                    rotated.new_key.to_base64(),
                    path.display()
                )),
                None => text.push_str(&format!(
                    "\nThe master key comes from HOOKD_MASTER_KEY (or master_key): install the \
                     key you gave (id {new_id}) in its place, wherever it is set.\n"
                )),
            }
            text.push_str(
                "Then restart every hookd node. Until then, a node that lacks the new key cannot \
                 read subscription secrets: its deliveries wait (nothing is lost) and API calls \
                 that need a secret answer 503. The old key opens nothing any more.\n",
            );
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    /// Every command and subcommand says what it does, and every option and argument has help.
    #[test]
    fn every_command_and_option_has_help() {
        let mut missing = Vec::new();
        check_help(&Cli::command(), "hookd", &mut missing);
        assert!(
            missing.is_empty(),
            "without help text:\n{}",
            missing.join("\n")
        );
    }

    fn check_help(command: &clap::Command, path: &str, missing: &mut Vec<String>) {
        if command.get_about().is_none() && path != "hookd help" {
            missing.push(format!("{path} (command)"));
        }
        for arg in command.get_arguments() {
            let builtin = matches!(arg.get_id().as_str(), "help" | "version");
            if !builtin && !arg.is_hide_set() && arg.get_help().is_none() {
                missing.push(format!("{path} {}", arg.get_id()));
            }
        }
        for sub in command.get_subcommands() {
            check_help(sub, &format!("{path} {}", sub.get_name()), missing);
        }
    }
}
