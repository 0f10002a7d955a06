//! Endpoint URLs, valid by construction, and the rule for which IP addresses are public.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

pub const MAX_URL_LEN: usize = 2048;

/// The exact form of an endpoint URL (besides [`MAX_URL_LEN`] and the [`UrlPolicy`]): `http` or
/// `https`, a host that is a DNS name whose last label starts with a letter, a dotted-quad IPv4
/// address or a bracketed IPv6 address, an optional port (0–65535), then an optional path and
/// query of URL-safe ASCII (no spaces, quotes, backslashes, fragment or credentials). Every string
/// it matches parses as a URL unchanged (only an empty path becomes `/`); the API's schema states
/// the same pattern, so what the schema admits and what registration accepts are one set.
pub const URL_PATTERN: &str = concat!(
    "^https?://(",
    "([A-Za-z0-9-]+[.])*[A-Za-z][A-Za-z0-9-]*[.]?",
    "|((25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])[.]){3}(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])",
    "|\\[(",
    "([0-9A-Fa-f]{1,4}:){7}[0-9A-Fa-f]{1,4}",
    "|([0-9A-Fa-f]{1,4}:){1,7}:",
    "|([0-9A-Fa-f]{1,4}:){1,6}:[0-9A-Fa-f]{1,4}",
    "|([0-9A-Fa-f]{1,4}:){1,5}(:[0-9A-Fa-f]{1,4}){1,2}",
    "|([0-9A-Fa-f]{1,4}:){1,4}(:[0-9A-Fa-f]{1,4}){1,3}",
    "|([0-9A-Fa-f]{1,4}:){1,3}(:[0-9A-Fa-f]{1,4}){1,4}",
    "|([0-9A-Fa-f]{1,4}:){1,2}(:[0-9A-Fa-f]{1,4}){1,5}",
    "|[0-9A-Fa-f]{1,4}:(:[0-9A-Fa-f]{1,4}){1,6}",
    "|:((:[0-9A-Fa-f]{1,4}){1,7}|:)",
    "|::([Ff]{4}:)?((25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])[.]){3}(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])",
    ")\\])",
    "(:(6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[1-9][0-9]{0,3}|0))?",
    "(/[A-Za-z0-9._~!$&()*+,;=:@%/-]*)?",
    "([?][A-Za-z0-9._~!$&()*+,;=:@%/?-]*)?$",
);

/// [`URL_PATTERN`], compiled once.
fn url_pattern() -> &'static regex::Regex {
    static PATTERN: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    PATTERN.get_or_init(|| regex::Regex::new(URL_PATTERN).unwrap_or_else(|e| panic!("{e}")))
}

/// What the operator allows for endpoint URLs.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UrlPolicy {
    /// Plain `http://` endpoints (development mode or an explicit operator choice).
    pub allow_http: bool,
    /// Which literal addresses a URL may name: the policy deliveries connect under, so that
    /// registration accepts what `allow_targets` permits. The `localhost` names need
    /// `targets.allow_non_public` (development mode).
    pub targets: TargetPolicy,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    #[error("must be at most {MAX_URL_LEN} characters")]
    TooLong,
    #[error("is not an absolute URL: {0}")]
    Malformed(String),
    #[error("scheme must be http or https")]
    Scheme,
    #[error("must use https (plain http is allowed only in --dev mode or with allow_http)")]
    HttpNotAllowed,
    #[error("must not contain credentials")]
    Credentials,
    #[error("must not contain a fragment")]
    Fragment,
    #[error("must have a host")]
    NoHost,
    #[error(
        "points at a non-public address ({0}); allowed only in --dev mode or via allow_targets"
    )]
    NonPublicAddress(String),
    #[error("names {0}, which is always loopback; allowed only in --dev mode")]
    LocalhostName(String),
    #[error(
        "must be scheme://host[:port][/path][?query] with a DNS name, IPv4 or [IPv6] host and \
         only letters, digits and -._~!$&()*+,;=:@%/? after it"
    )]
    Syntax,
}

/// An endpoint URL that passed every registration rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointUrl(url::Url);

impl EndpointUrl {
    pub fn parse(raw: &str, policy: &UrlPolicy) -> Result<Self, UrlError> {
        if raw.len() > MAX_URL_LEN {
            return Err(UrlError::TooLong);
        }
        let parsed = url::Url::parse(raw).map_err(|e| UrlError::Malformed(e.to_string()))?;
        match parsed.scheme() {
            "https" => {}
            "http" if policy.allow_http => {}
            "http" => return Err(UrlError::HttpNotAllowed),
            _ => return Err(UrlError::Scheme),
        }
        if !parsed.username().is_empty() || parsed.password().is_some() {
            return Err(UrlError::Credentials);
        }
        if parsed.fragment().is_some() {
            return Err(UrlError::Fragment);
        }
        let host = parsed.host().ok_or(UrlError::NoHost)?;
        check_host(&host, &policy.targets)?;
        // Last, so that the checks above name the more specific mistake. The pattern admits no
        // character that parsing would percent-encode, so the stored form is no longer than the
        // input plus the `/` of an empty path.
        if !url_pattern().is_match(raw) {
            return Err(UrlError::Syntax);
        }
        Ok(Self(parsed))
    }

    /// A URL read back from storage: it passed [`EndpointUrl::parse`] under the policy in force when
    /// it was registered, so only its syntax is checked again (the policy may have changed since;
    /// every attempt's addresses are checked again at connect time anyway).
    pub fn from_stored(raw: &str) -> Result<Self, UrlError> {
        url::Url::parse(raw)
            .map(Self)
            .map_err(|e| UrlError::Malformed(e.to_string()))
    }

    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    pub fn as_url(&self) -> &url::Url {
        &self.0
    }
}

impl fmt::Display for EndpointUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0.as_str())
    }
}

/// Refuses literal addresses the target policy does not permit and, outside development mode, the
/// `localhost` names (RFC 6761: always loopback). The URL parser has already turned decimal, octal,
/// hex and percent-encoded IPv4 forms into plain addresses.
fn check_host(host: &url::Host<&str>, targets: &TargetPolicy) -> Result<(), UrlError> {
    let ip = match host {
        url::Host::Domain(name) => {
            let name = name.trim_end_matches('.').to_ascii_lowercase();
            let localhost = name == "localhost" || name.ends_with(".localhost");
            return match localhost && !targets.allow_non_public {
                true => Err(UrlError::LocalhostName(name)),
                false => Ok(()),
            };
        }
        url::Host::Ipv4(ip) => IpAddr::V4(*ip),
        url::Host::Ipv6(ip) => IpAddr::V6(*ip),
    };
    match targets.permits(ip) {
        true => Ok(()),
        false => Err(UrlError::NonPublicAddress(ip.to_string())),
    }
}

/// Which addresses deliveries may connect to: public ones, plus operator-allowed networks, plus
/// everything in development mode. Checked on the resolved address of every attempt.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TargetPolicy {
    /// Development mode: any address.
    pub allow_non_public: bool,
    /// Networks allowed although not public (`allow_targets`, e.g. `10.1.0.0/16`).
    pub allowed_networks: Vec<ipnet::IpNet>,
}

impl TargetPolicy {
    pub fn permits(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.allow_non_public
            || is_public_ip(ip)
            || self.allowed_networks.iter().any(|net| net.contains(&ip))
    }

    /// Parses `allow_targets` entries: CIDRs (`10.0.0.0/8`) or single addresses.
    pub fn parse_networks(entries: &[String]) -> Result<Vec<ipnet::IpNet>, String> {
        entries
            .iter()
            .map(|entry| {
                entry
                    .parse::<ipnet::IpNet>()
                    .or_else(|_| entry.parse::<IpAddr>().map(ipnet::IpNet::from))
                    .map_err(|_| format!("{entry:?} is not a CIDR or an IP address"))
            })
            .collect()
    }
}

/// IPv4-mapped IPv6 addresses compare as the IPv4 address they carry.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

/// True only for globally routable unicast addresses. Everything an attacker could use to reach the
/// operator's own network is false: loopback, private, link-local (cloud metadata), CGNAT, multicast,
/// broadcast, documentation and reserved ranges, and IPv6 forms that embed such an IPv4 address.
pub fn is_public_ip(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    let blocked = a == 0 // "this network"
        || a == 10
        || a == 127
        || (a == 100 && (64..128).contains(&b)) // CGNAT 100.64/10
        || (a == 169 && b == 254) // link-local, cloud metadata
        || (a == 172 && (16..32).contains(&b))
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
        || (a == 192 && b == 0 && c == 2) // TEST-NET-1
        || (a == 192 && b == 88 && c == 99) // 6to4 relay anycast
        || (a == 192 && b == 168)
        || (a == 198 && (18..20).contains(&b)) // benchmarking
        || (a == 198 && b == 51 && c == 100) // TEST-NET-2
        || (a == 203 && b == 0 && c == 113) // TEST-NET-3
        || a >= 224; // multicast 224/4, reserved 240/4, broadcast
    !blocked
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let embedded_v4 = |high: u16, low: u16| {
        Ipv4Addr::new((high >> 8) as u8, high as u8, (low >> 8) as u8, low as u8)
    };
    if let Some(mapped) = ip.to_ipv4_mapped() {
        return is_public_v4(mapped);
    }
    match ip.segments() {
        // NAT64 well-known prefix 64:ff9b::/96 embeds an IPv4 address.
        [0x64, 0xff9b, 0, 0, 0, 0, high, low] => is_public_v4(embedded_v4(high, low)),
        // 6to4 2002::/16 embeds an IPv4 address in bits 16..48.
        [0x2002, high, low, ..] => is_public_v4(embedded_v4(high, low)),
        // IETF protocol assignments incl. Teredo (2001::/23), documentation (2001:db8::/32 and
        // 3fff::/20).
        [0x2001, second, ..] if second < 0x200 || second == 0xdb8 => false,
        [0x3fff, second, ..] if second < 0x1000 => false,
        // Anything else is public only within global unicast, 2000::/3. That leaves out the
        // unspecified and loopback addresses, the IPv4-compatible (::a.b.c.d) and IPv4-translated
        // (::ffff:0:a.b.c.d) forms, local-use NAT64 (64:ff9b:1::/48), discard-only (100::/64),
        // unique local (fc00::/7), link-local (fe80::/10), site-local (fec0::/10) and multicast
        // (ff00::/8).
        [first, ..] => first & 0xe000 == 0x2000,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PRODUCTION: UrlPolicy = UrlPolicy {
        allow_http: false,
        targets: TargetPolicy {
            allow_non_public: false,
            allowed_networks: Vec::new(),
        },
    };
    const DEV: UrlPolicy = UrlPolicy {
        allow_http: true,
        targets: TargetPolicy {
            allow_non_public: true,
            allowed_networks: Vec::new(),
        },
    };

    fn check(raw: &str, policy: UrlPolicy) -> Result<(), UrlError> {
        EndpointUrl::parse(raw, &policy).map(|_| ())
    }

    #[test]
    fn accepted_in_production() {
        for ok in [
            "https://example.com/hook",
            "https://example.com:8443/a/b?c=d",
            "https://93.184.216.34/hook",
            "https://[2606:4700::1111]/hook",
            "https://xn--bcher-kva.example/",
        ] {
            assert_eq!(check(ok, PRODUCTION), Ok(()), "{ok}");
        }
    }

    #[test]
    fn refused_in_production() {
        type IsExpected = fn(&UrlError) -> bool;
        let cases: &[(&str, IsExpected)] = &[
            ("http://example.com/", |e| *e == UrlError::HttpNotAllowed),
            ("ftp://example.com/", |e| *e == UrlError::Scheme),
            ("not a url", |e| matches!(e, UrlError::Malformed(_))),
            ("/relative/path", |e| matches!(e, UrlError::Malformed(_))),
            ("https://user:pw@example.com/", |e| {
                *e == UrlError::Credentials
            }),
            ("https://user@example.com/", |e| *e == UrlError::Credentials),
            ("https://example.com/#frag", |e| *e == UrlError::Fragment),
            ("https://localhost/", |e| {
                matches!(e, UrlError::LocalhostName(_))
            }),
            ("https://api.localhost/", |e| {
                matches!(e, UrlError::LocalhostName(_))
            }),
            ("https://LOCALHOST./", |e| {
                matches!(e, UrlError::LocalhostName(_))
            }),
            ("https://127.0.0.1/", |e| {
                matches!(e, UrlError::NonPublicAddress(_))
            }),
            ("https://2130706433/", |e| {
                matches!(e, UrlError::NonPublicAddress(_))
            }),
            ("https://0x7f.0.0.1/", |e| {
                matches!(e, UrlError::NonPublicAddress(_))
            }),
            ("https://0177.0.0.1/", |e| {
                matches!(e, UrlError::NonPublicAddress(_))
            }),
            ("https://10.1.2.3/", |e| {
                matches!(e, UrlError::NonPublicAddress(_))
            }),
            ("https://169.254.169.254/latest", |e| {
                matches!(e, UrlError::NonPublicAddress(_))
            }),
            ("https://[::1]/", |e| {
                matches!(e, UrlError::NonPublicAddress(_))
            }),
            ("https://[::ffff:127.0.0.1]/", |e| {
                matches!(e, UrlError::NonPublicAddress(_))
            }),
            ("https://[fd00::1]/", |e| {
                matches!(e, UrlError::NonPublicAddress(_))
            }),
        ];
        for (raw, is_expected) in cases {
            let err = check(raw, PRODUCTION).expect_err(raw);
            assert!(is_expected(&err), "{raw}: unexpected {err:?}");
        }
        let long = format!("https://example.com/{}", "a".repeat(MAX_URL_LEN));
        assert_eq!(check(&long, PRODUCTION), Err(UrlError::TooLong));
        // Characters that parsing would percent-encode are refused, so the stored form cannot
        // outgrow the limit.
        let encoded = format!("https://example.com/{}end", "\x01 ".repeat(1000));
        assert!(encoded.len() <= MAX_URL_LEN);
        assert_eq!(check(&encoded, PRODUCTION), Err(UrlError::Syntax));
    }

    #[test]
    fn the_pattern_is_the_whole_syntax() {
        let accepted = [
            "http://a",
            "https://example.com.",
            "https://a-b.c-d.example:0/",
            "https://x:65535/p/../q/./r?x=1&y=%41;z=a:b@c/d?e",
            "https://1.2.3.4:8080/",
            "https://[2001:db8::8a2e:370:7334]/",
            "https://[1:2:3:4:5:6:7:8]:443",
            "https://[1::]/",
            "https://[::]/",
            "https://[::FFFF:8.8.8.8]/",
            "https://a/~user/(x)!*+,$&=",
        ];
        for raw in accepted {
            let url = EndpointUrl::parse(raw, &DEV).unwrap_or_else(|e| panic!("{raw}: {e}"));
            assert!(url.as_str().len() <= raw.len() + 1, "{raw} grew to {url}");
        }
        let refused = [
            "HTTPS://example.com/",
            "https:example.com",
            "https://example.com:/",
            "https://example.com:65536/",
            "https://example.com:080/",
            "https://1.2.3/",
            "https://1.2.3.4.5/",
            "https://256.1.1.1/",
            "https://0x7f.0.0.1/",
            "https://2130706433/",
            "https://example.123/",
            "https://exa_mple.com/",
            "https://bücher.example/",
            "https://[1:2:3:4::5:6:7:8]/",
            "https://example.com/a b",
            "https://example.com/a\\b",
            "https://example.com/it's",
            "https://example.com/\"q\"",
            "https://example.com/<x>",
            "https://example.com/{x}",
            "https://example.com/é",
            " https://example.com/",
            "https://example.com/\n",
        ];
        for raw in refused {
            assert!(EndpointUrl::parse(raw, &DEV).is_err(), "{raw}");
        }
    }

    #[test]
    fn dev_allows_http_and_loopback_but_not_nonsense() {
        assert_eq!(check("http://127.0.0.1:9000/hook", DEV), Ok(()));
        assert_eq!(check("http://localhost:9000/hook", DEV), Ok(()));
        assert_eq!(check("ftp://127.0.0.1/", DEV), Err(UrlError::Scheme));
        assert_eq!(
            check("http://u:p@127.0.0.1/", DEV),
            Err(UrlError::Credentials)
        );
    }

    #[test]
    fn allow_targets_apply_to_literal_addresses_at_registration() {
        let policy = UrlPolicy {
            allow_http: false,
            targets: TargetPolicy {
                allow_non_public: false,
                allowed_networks: TargetPolicy::parse_networks(&["10.1.0.0/16".into()]).unwrap(),
            },
        };
        assert_eq!(check("https://10.1.2.3/", policy.clone()), Ok(()));
        assert_eq!(check("https://[::ffff:10.1.2.3]/", policy.clone()), Ok(()));
        assert_eq!(
            check("https://10.2.0.1/", policy.clone()),
            Err(UrlError::NonPublicAddress("10.2.0.1".into()))
        );
        assert_eq!(
            check("https://localhost/", policy),
            Err(UrlError::LocalhostName("localhost".into()))
        );
    }

    #[test]
    fn target_policy() {
        let strict = TargetPolicy::default();
        let allowed = TargetPolicy {
            allow_non_public: false,
            allowed_networks: TargetPolicy::parse_networks(&[
                "10.1.0.0/16".into(),
                "192.168.5.5".into(),
            ])
            .unwrap(),
        };
        let dev = TargetPolicy {
            allow_non_public: true,
            allowed_networks: vec![],
        };
        let cases = [
            ("8.8.8.8", true, true, true),
            ("127.0.0.1", false, false, true),
            ("10.1.2.3", false, true, true),
            ("10.2.0.1", false, false, true),
            ("192.168.5.5", false, true, true),
            ("::ffff:10.1.2.3", false, true, true),
            ("169.254.169.254", false, false, true),
        ];
        for (ip, by_strict, by_allowed, by_dev) in cases {
            let ip: IpAddr = ip.parse().unwrap();
            assert_eq!(strict.permits(ip), by_strict, "strict {ip}");
            assert_eq!(allowed.permits(ip), by_allowed, "allowed {ip}");
            assert_eq!(dev.permits(ip), by_dev, "dev {ip}");
        }
        assert!(TargetPolicy::parse_networks(&["nonsense".into()]).is_err());
    }

    #[test]
    fn public_ip_table() {
        let cases = [
            ("8.8.8.8", true),
            ("93.184.216.34", true),
            ("0.0.0.0", false),
            ("0.1.2.3", false),
            ("10.0.0.1", false),
            ("100.64.0.1", false),
            ("100.128.0.1", true),
            ("127.0.0.1", false),
            ("169.254.169.254", false),
            ("172.16.0.1", false),
            ("172.31.255.255", false),
            ("172.32.0.1", true),
            ("192.168.1.1", false),
            ("224.0.0.1", false),
            ("255.255.255.255", false),
            ("2606:4700::1111", true),
            ("::", false),
            ("::1", false),
            ("::127.0.0.1", false),
            ("::ffff:10.0.0.1", false),
            ("::ffff:8.8.8.8", true),
            ("64:ff9b::7f00:1", false),
            ("64:ff9b::808:808", true),
            ("2002:7f00:1::", false),
            ("2002:808:808::", true),
            ("fc00::1", false),
            ("fe80::1", false),
            ("ff02::1", false),
            ("2001:db8::1", false),
            ("3fff::1", false),
            ("::ffff:0:7f00:1", false),
            ("::ffff:0:808:808", false),
            ("64:ff9b:1::808:808", false),
            ("100::1", false),
            ("fec0::1", false),
            ("4000::1", false),
            ("2a00:1450::1", true),
        ];
        for (ip, expected) in cases {
            assert_eq!(is_public_ip(ip.parse().unwrap()), expected, "{ip}");
        }
    }
}
