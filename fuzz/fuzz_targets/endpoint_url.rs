//! Endpoint URL registration: arbitrary strings through `EndpointUrl::parse` under the production
//! policy (the default) and the `--dev` policy.
//!
//! Properties: parsing never panics; a URL the production policy accepts is https, carries no
//! credentials, is at most `MAX_URL_LEN` characters and names neither a `localhost` host nor a
//! literal non-public address (in whatever form the parser normalised it to); whatever production
//! accepts, dev accepts too, as the same URL; and an accepted URL parses again to itself, since
//! a client may send back the URL hookd returned.
//!
//! The length limit holds for the URL as normalised (percent-encoding can make it longer than the
//! input); the corpus keeps an input that grows past the limit (`seed-regression-expands-past-limit`).
#![no_main]

use hookd_core::url::{MAX_URL_LEN, is_public_ip};
use hookd_core::{EndpointUrl, TargetPolicy, UrlPolicy};
use libfuzzer_sys::fuzz_target;
use std::net::IpAddr;

const DEV: UrlPolicy = UrlPolicy {
    allow_http: true,
    targets: TargetPolicy {
        allow_non_public: true,
        allowed_networks: Vec::new(),
    },
};

fuzz_target!(|raw: &str| {
    let production = EndpointUrl::parse(raw, &UrlPolicy::default());
    let dev = EndpointUrl::parse(raw, &DEV);
    if let Ok(url) = &dev {
        reparses_to_itself(url, &DEV);
    }
    let Ok(url) = production else {
        return;
    };
    check_production_rules(raw, &url);
    reparses_to_itself(&url, &UrlPolicy::default());
    assert_eq!(
        dev.as_ref(),
        Ok(&url),
        "dev must accept what production accepts"
    );
});

fn check_production_rules(raw: &str, url: &EndpointUrl) {
    let parsed = url.as_url();
    assert_eq!(parsed.scheme(), "https", "{raw:?}");
    assert!(parsed.username().is_empty(), "{raw:?} has a user name");
    assert!(parsed.password().is_none(), "{raw:?} has a password");
    assert!(raw.len() <= MAX_URL_LEN, "accepted {} bytes", raw.len());
    let length = url.as_str().len();
    assert!(
        length <= MAX_URL_LEN,
        "{raw:?} is {length} bytes once normalised"
    );
    let ip = match parsed.host() {
        Some(url::Host::Domain(name)) => {
            let name = name.trim_end_matches('.').to_ascii_lowercase();
            assert!(
                name != "localhost" && !name.ends_with(".localhost"),
                "{raw:?} names a localhost host"
            );
            return;
        }
        Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip),
        Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip),
        None => panic!("{raw:?} was accepted without a host"),
    };
    assert!(is_public_ip(ip), "{raw:?} points at non-public {ip}");
}

fn reparses_to_itself(url: &EndpointUrl, policy: &UrlPolicy) {
    let again = EndpointUrl::parse(url.as_str(), policy);
    assert_eq!(
        again.as_ref(),
        Ok(url),
        "{:?} does not parse to itself",
        url.as_str()
    );
}
