//! SSRF protection for deliveries: the resolver hands the HTTP client only addresses the target
//! policy permits, so the client connects to exactly the vetted addresses (a DNS answer that changes
//! between a check and the connect cannot slip through). IP-literal hosts never reach a resolver, so
//! `send` checks them itself.

use hookd_core::TargetPolicy;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

/// The message every blocked attempt carries; `send::classify` keys on it.
pub const BLOCKED: &str = "blocked by hookd's target policy";

#[derive(Debug)]
struct Blocked(String);

impl std::fmt::Display for Blocked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{BLOCKED}: {} resolves only to non-public addresses",
            self.0
        )
    }
}

impl std::error::Error for Blocked {}

/// A DNS resolver that drops every address the policy does not permit.
pub struct GuardedResolver {
    policy: Arc<TargetPolicy>,
}

impl GuardedResolver {
    pub fn new(policy: Arc<TargetPolicy>) -> Self {
        Self { policy }
    }
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().to_owned();
        let policy = self.policy.clone();
        Box::pin(async move {
            let resolved: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let permitted: Vec<SocketAddr> = resolved
                .into_iter()
                .filter(|address| policy.permits(address.ip()))
                .collect();
            if permitted.is_empty() {
                return Err(Box::new(Blocked(host)) as Box<dyn std::error::Error + Send + Sync>);
            }
            Ok(Box::new(permitted.into_iter()) as Addrs)
        })
    }
}

/// For a URL whose host is an IP literal: `Err` with the reason when the policy forbids it.
pub fn check_literal(url: &str, policy: &TargetPolicy) -> Result<(), String> {
    let Ok(parsed) = url::Url::parse(url) else {
        return Ok(());
    };
    let ip = match parsed.host() {
        Some(url::Host::Ipv4(v4)) => IpAddr::V4(v4),
        Some(url::Host::Ipv6(v6)) => IpAddr::V6(v6),
        _ => return Ok(()),
    };
    match policy.permits(ip) {
        true => Ok(()),
        false => Err(format!("{BLOCKED}: {ip} is not a public address")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literal_hosts() {
        let strict = TargetPolicy::default();
        assert!(check_literal("http://127.0.0.1:9/h", &strict).is_err());
        assert!(check_literal("http://[::1]/h", &strict).is_err());
        assert!(check_literal("http://[::ffff:169.254.169.254]/", &strict).is_err());
        assert!(check_literal("https://93.184.216.34/", &strict).is_ok());
        assert!(
            check_literal("https://example.com/", &strict).is_ok(),
            "names go to the resolver"
        );
        let dev = TargetPolicy {
            allow_non_public: true,
            allowed_networks: vec![],
        };
        assert!(check_literal("http://127.0.0.1:9/h", &dev).is_ok());
    }

    #[tokio::test]
    async fn the_resolver_drops_loopback_answers() {
        let strict = GuardedResolver::new(Arc::new(TargetPolicy::default()));
        let error = strict
            .resolve("localhost".parse().unwrap())
            .await
            .err()
            .expect("localhost must be refused");
        assert!(error.to_string().contains(BLOCKED), "{error}");
        let dev = GuardedResolver::new(Arc::new(TargetPolicy {
            allow_non_public: true,
            allowed_networks: vec![],
        }));
        let addresses: Vec<_> = dev
            .resolve("localhost".parse().unwrap())
            .await
            .unwrap()
            .collect();
        assert!(addresses.iter().all(|a| a.ip().is_loopback()));
    }
}
