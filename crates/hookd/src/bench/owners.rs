//! The `owners` scenario: many customers, each with a few endpoints, and single-event publishes to
//! a random customer. Run twice: once with one owner (the baseline) and once with `--owners` of
//! them, the same number of endpoints each; both report events/s and deliveries/s, and the large
//! run how fast its subscriptions were created.

use super::load::{self, owner_name};
use super::receiver::{Behaviour, Receiver};
use super::{API_KEY, BenchArgs, Deployment, JsonBody, Report, drain, finish, load_spec};
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

/// Concurrent requests that create the subscriptions.
const CREATORS: usize = 4;
/// Subscriptions per `POST /api/webhooks/batch`.
const CREATE_BATCH: usize = 500;

pub(super) async fn owners(
    args: &BenchArgs,
    receiver: &Arc<Receiver>,
) -> anyhow::Result<Vec<Report>> {
    let per_owner = args.subscriptions_per_owner;
    Ok(vec![
        run(args, receiver, 1, per_owner).await?,
        run(args, receiver, args.owners, per_owner).await?,
    ])
}

async fn run(
    args: &BenchArgs,
    receiver: &Arc<Receiver>,
    owners: u32,
    per_owner: usize,
) -> anyhow::Result<Report> {
    receiver.reset();
    let name = format!("owners-{owners}x{per_owner}");
    let deployment = Deployment::new(args, &name).await?;
    let node = deployment.start("all").await?;
    let total = owners as usize * per_owner;
    let created = Instant::now();
    create_subscriptions(&node.url(), receiver, owners, per_owner).await?;
    let creation_seconds = created.elapsed().as_secs_f64();
    let cpu_before = node.cpu_seconds();
    let started_us = super::receiver::unix_us();
    let spec = load::LoadSpec {
        owners: Some(owners),
        ..load_spec(args, None)
    };
    let result = load::publish(&node.url(), API_KEY, &spec).await;
    let expected = result.accepted * per_owner as u64;
    let delivered = drain(receiver, expected, &[], args.drain_timeout).await;
    let mut report = finish(
        &name,
        &deployment,
        &node,
        receiver,
        total,
        &result,
        expected,
        delivered,
        started_us,
        cpu_before,
    );
    report.extra = json!({
        "owners": owners,
        "subscriptions_per_owner": per_owner,
        "subscriptions_created_per_sec": (total as f64 / creation_seconds.max(1e-9)).round(),
        "creation_seconds": (creation_seconds * 100.0).round() / 100.0,
    });
    node.stop().await;
    deployment.remove().await;
    Ok(report)
}

/// `per_owner` subscriptions for each owner, `/o/{owner}/{n}` on the receiver, created through
/// `POST /api/webhooks/batch`, [`CREATE_BATCH`] a request, by [`CREATORS`] concurrent clients.
async fn create_subscriptions(
    base: &str,
    receiver: &Arc<Receiver>,
    owners: u32,
    per_owner: usize,
) -> anyhow::Result<()> {
    let total = owners as usize * per_owner;
    let next = Arc::new(AtomicUsize::new(0));
    let client = load::http_client();
    let mut tasks = Vec::with_capacity(CREATORS);
    for _ in 0..CREATORS {
        let (next, client, receiver) = (next.clone(), client.clone(), receiver.clone());
        let url = format!("{base}/api/webhooks/batch");
        tasks.push(tokio::spawn(async move {
            loop {
                let first = next.fetch_add(CREATE_BATCH, Ordering::Relaxed);
                if first >= total {
                    return anyhow::Ok(());
                }
                let paths: Vec<(String, String)> = (first..total.min(first + CREATE_BATCH))
                    .map(|index| {
                        let owner = owner_name((index / per_owner) as u32);
                        let path = format!("/o/{owner}/{}", index % per_owner);
                        (owner, path)
                    })
                    .collect();
                let webhooks: Vec<_> = paths
                    .iter()
                    .map(|(owner, path)| {
                        json!({"url": receiver.url(path), "events": ["bench.*"], "owner": owner})
                    })
                    .collect();
                let reply = client
                    .post(&url)
                    .bearer_auth(API_KEY)
                    .json_body(&json!({ "webhooks": webhooks }))
                    .send()
                    .await?;
                let status = reply.status();
                let body: serde_json::Value = serde_json::from_slice(&reply.bytes().await?)?;
                anyhow::ensure!(status.as_u16() == 201, "batch create: {status} {body}");
                let created = body["webhooks"]
                    .as_array()
                    .map(Vec::as_slice)
                    .unwrap_or(&[]);
                anyhow::ensure!(created.len() == paths.len(), "batch create: {body}");
                for ((_, path), webhook) in paths.iter().zip(created) {
                    let secret = webhook["secret"].as_str().unwrap_or_default();
                    receiver.configure(path, Behaviour::Ok, secret);
                }
            }
        }));
    }
    for task in tasks {
        task.await??;
    }
    Ok(())
}
