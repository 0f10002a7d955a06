//! `hookd owners …`: the operator's customers, counted, and erased on request.

use super::output::{self, Column};
use super::{ApiClient, ClientArgs, ClientError, with_query};
use clap::Subcommand;
use reqwest::Method;

const OWNER_COLUMNS: &[Column] = &[
    ("OWNER", "owner"),
    ("SUBSCRIPTIONS", "subscriptions"),
    ("DISABLED", "disabled"),
    ("FAILING", "failing"),
];

#[derive(Debug, Subcommand)]
pub enum OwnersCommand {
    /// List owners by name, with counts of their subscriptions.
    List {
        /// Page size, 1 to 250.
        #[arg(long)]
        limit: Option<u32>,
        /// `next_after` from the previous page.
        #[arg(long)]
        after: Option<String>,
    },
    /// Show one owner's counts.
    Get {
        /// The owner's id in your system.
        owner: String,
    },
    /// Erase an owner: its subscriptions, its events, and every delivery and attempt of either.
    Delete {
        /// The owner's id in your system.
        owner: String,
        /// Confirm: the erasure cannot be undone.
        #[arg(long)]
        yes: bool,
    },
}

pub async fn owners(args: &ClientArgs, command: OwnersCommand) -> Result<(), ClientError> {
    let api = ApiClient::new(args);
    let json = args.json;
    match command {
        OwnersCommand::List { limit, after } => {
            let path = with_query(
                "/api/owners",
                &[("limit", limit.map(|l| l.to_string())), ("after", after)],
            );
            let page = api.get(&path).await?;
            output::print(json, &page, |p| {
                let rows = p["data"].as_array().cloned().unwrap_or_default();
                let mut text = output::table(&rows, OWNER_COLUMNS);
                if let Some(after) = p["next_after"].as_str() {
                    text.push_str(&format!("\nmore: --after {after}"));
                }
                text
            });
        }
        OwnersCommand::Get { owner } => {
            let found = api.get(&owner_path(&owner)).await?;
            output::print(json, &found, output::record);
        }
        OwnersCommand::Delete { owner, yes } => {
            if !yes {
                return Err(ClientError::Usage(format!(
                    "this erases everything stored for {owner:?}; add --yes to confirm"
                )));
            }
            let erased = api
                .call(Method::DELETE, &owner_path(&owner), None, &[])
                .await?;
            output::print(json, &erased, |v| {
                format!(
                    "erased {owner}: {} subscriptions, {} events, {} deliveries",
                    v["subscriptions"], v["events"], v["deliveries"]
                )
            });
        }
    }
    Ok(())
}

/// `/api/owners/{owner}` with the owner percent-encoded (an owner id may hold any visible
/// character).
fn owner_path(owner: &str) -> String {
    let encoded: String = url::form_urlencoded::byte_serialize(owner.as_bytes()).collect();
    format!("/api/owners/{}", encoded.replace('+', "%20"))
}
