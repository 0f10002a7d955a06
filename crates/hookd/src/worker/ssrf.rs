//! SSRF protection for deliveries: the resolver hands the HTTP client only addresses the target
//! policy permits, so the client connects to exactly the vetted addresses (a DNS answer that changes
//! between a check and the connect cannot slip through). A name with any forbidden answer is refused
//! as a whole: a public address next to a private one is a rebinding trick, not a real endpoint.
//! IP-literal hosts never reach a resolver, so `send` checks them itself.

use hookd_core::TargetPolicy;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

/// The message every blocked attempt carries; `send::classify` keys on it.
pub const BLOCKED: &str = "blocked by hookd's target policy";

/// Why a name was refused: the first forbidden address it resolved to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blocked {
    pub host: String,
    pub address: IpAddr,
}

impl std::fmt::Display for Blocked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{BLOCKED}: {} resolves to {}, which is not a public address",
            self.host, self.address
        )
    }
}

impl std::error::Error for Blocked {}

/// The answers for `host` to connect to: all of them, or `Blocked` if the policy forbids any.
pub fn vet(
    host: &str,
    resolved: Vec<SocketAddr>,
    policy: &TargetPolicy,
) -> Result<Vec<SocketAddr>, Blocked> {
    match resolved
        .iter()
        .find(|address| !policy.permits(address.ip()))
    {
        Some(forbidden) => Err(Blocked {
            host: host.to_owned(),
            address: forbidden.ip(),
        }),
        None => Ok(resolved),
    }
}

/// A DNS resolver that refuses names resolving to an address the policy does not permit.
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
            match vet(&host, resolved, &policy) {
                Ok(permitted) => Ok(Box::new(permitted.into_iter()) as Addrs),
                Err(blocked) => Err(Box::new(blocked) as Box<dyn std::error::Error + Send + Sync>),
            }
        })
    }
}

/// For a URL whose host is an IP literal: `Err` with the reason when the policy forbids it. It takes
/// the parsed URL the request is then sent to (parsed once per attempt, not here and again there).
pub fn check_literal(url: &url::Url, policy: &TargetPolicy) -> Result<(), String> {
    let ip = match url.host() {
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

    fn dev() -> TargetPolicy {
        TargetPolicy {
            allow_non_public: true,
            allowed_networks: vec![],
        }
    }

    fn check_literal(url: &str, policy: &TargetPolicy) -> Result<(), String> {
        super::check_literal(&url::Url::parse(url).unwrap(), policy)
    }

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
        assert!(check_literal("http://127.0.0.1:9/h", &dev()).is_ok());
    }

    /// What a name may resolve to, by policy: every answer must be permitted.
    #[test]
    fn resolved_answers_are_vetted_as_a_whole() {
        let strict = TargetPolicy::default();
        let allowed = TargetPolicy {
            allow_non_public: false,
            allowed_networks: TargetPolicy::parse_networks(&["10.1.0.0/16".into()]).unwrap(),
        };
        // (answers, permitted by the strict policy, by allow_targets = 10.1.0.0/16)
        let cases: &[(&[&str], bool, bool)] = &[
            (&["93.184.216.34"], true, true),
            (&["2606:4700::1111", "1.1.1.1"], true, true),
            (&["127.0.0.1"], false, false),
            (&["::1"], false, false),
            (&["169.254.169.254"], false, false),
            (&["10.1.2.3"], false, true),
            (&["10.2.0.1"], false, false),
            (&["::ffff:10.1.2.3"], false, true),
            (&["93.184.216.34", "127.0.0.1"], false, false),
            (&["10.1.2.3", "192.168.1.1"], false, false),
            (&["64:ff9b::a9fe:a9fe"], false, false),
            (&["2002:7f00:1::1"], false, false),
            (&["fd00::1"], false, false),
        ];
        for (answers, by_strict, by_allowed) in cases {
            let resolved: Vec<SocketAddr> = answers
                .iter()
                .map(|ip| SocketAddr::new(ip.parse().unwrap(), 443))
                .collect();
            for (policy, expected) in [(&strict, by_strict), (&allowed, by_allowed)] {
                let vetted = vet("hooks.example", resolved.clone(), policy);
                assert_eq!(vetted.is_ok(), *expected, "{answers:?} under {policy:?}");
                if let Err(blocked) = vetted {
                    assert!(!policy.permits(blocked.address));
                    let message = blocked.to_string();
                    assert!(message.starts_with(BLOCKED), "{message}");
                    assert!(message.contains("hooks.example"), "{message}");
                }
            }
            assert!(vet("hooks.example", resolved, &dev()).is_ok());
        }
    }

    #[tokio::test]
    async fn the_resolver_refuses_names_of_loopback() {
        let strict = GuardedResolver::new(Arc::new(TargetPolicy::default()));
        for name in ["localhost", "LOCALHOST"] {
            let error = strict
                .resolve(name.parse().unwrap())
                .await
                .err()
                .expect("localhost must be refused");
            assert!(error.to_string().contains(BLOCKED), "{error}");
        }
        let addresses: Vec<_> = GuardedResolver::new(Arc::new(dev()))
            .resolve("localhost".parse().unwrap())
            .await
            .unwrap()
            .collect();
        assert!(addresses.iter().all(|a| a.ip().is_loopback()));
    }
}
