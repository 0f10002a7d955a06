//! Operator-set look of the dashboard and portal (logo, accent colour) and who may frame the portal.
//! Every value is checked at start, because each ends up in a response header or a stylesheet.

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Brand {
    /// An `https://` URL or a path on this server.
    pub logo_url: Option<String>,
    /// `#rrggbb`.
    pub accent: Option<String>,
    /// Origins allowed in the portal's `frame-ancestors`.
    pub frame_ancestors: Vec<String>,
    /// Base of absolute portal links (no trailing slash).
    pub public_url: Option<String>,
}

/// The configured values a [`Brand`] is built from, as written (each named after its setting).
#[derive(Debug, Clone, Copy, Default)]
pub struct BrandSettings<'a> {
    pub portal_logo_url: Option<&'a str>,
    pub accent_color: Option<&'a str>,
    pub portal_frame_ancestors: &'a [String],
    pub public_url: Option<&'a str>,
}

impl Brand {
    /// Checks each configured value; the error names the setting at fault.
    pub fn parse(settings: BrandSettings<'_>) -> Result<Self, String> {
        let logo_url = settings.portal_logo_url.map(parse_logo_url).transpose()?;
        let accent = settings.accent_color.map(parse_colour).transpose()?;
        let frame_ancestors = settings
            .portal_frame_ancestors
            .iter()
            .map(|origin| parse_origin(origin).map_err(|e| format!("portal_frame_ancestors: {e}")))
            .collect::<Result<_, _>>()?;
        let public_url = settings
            .public_url
            .map(|raw| parse_origin(raw).map_err(|e| format!("public_url: {e}")))
            .transpose()?;
        Ok(Self {
            logo_url,
            accent,
            frame_ancestors,
            public_url,
        })
    }

    /// The logo's origin when it is on another server (it must then be allowed by `img-src`).
    pub fn logo_origin(&self) -> Option<String> {
        let url = url::Url::parse(self.logo_url.as_deref()?).ok()?;
        Some(url.origin().ascii_serialization())
    }
}

fn parse_colour(raw: &str) -> Result<String, String> {
    let hex = raw.strip_prefix('#').unwrap_or("");
    match hex.len() == 6 && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        true => Ok(format!("#{}", hex.to_ascii_lowercase())),
        false => Err(format!("accent_color: expected #rrggbb, got {raw:?}")),
    }
}

fn parse_logo_url(raw: &str) -> Result<String, String> {
    let error = || format!("portal_logo_url: expected an https:// URL or a /path, got {raw:?}");
    if raw.starts_with('/') && !raw.starts_with("//") {
        let safe = raw
            .bytes()
            .all(|b| b.is_ascii_graphic() && !b"\"'<>\\;".contains(&b));
        return safe.then(|| raw.to_owned()).ok_or_else(error);
    }
    let url = url::Url::parse(raw).map_err(|_| error())?;
    match url.scheme() == "https" && url.host().is_some() {
        true => Ok(url.to_string()),
        false => Err(error()),
    }
}

/// An origin: `scheme://host[:port]`, nothing else (it goes into a CSP header as it is).
fn parse_origin(raw: &str) -> Result<String, String> {
    let url = url::Url::parse(raw).map_err(|_| format!("{raw:?} is not an origin"))?;
    let origin = url.origin().ascii_serialization();
    let bare = url.path() == "/" && url.query().is_none() && url.fragment().is_none();
    match matches!(url.scheme(), "http" | "https") && bare && origin != "null" {
        true => Ok(origin),
        false => Err(format!(
            "{raw:?} is not an origin (expected scheme://host[:port])"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_that_reach_headers_are_checked() {
        assert_eq!(parse_colour("#1A2b3c").unwrap(), "#1a2b3c");
        for bad in ["1a2b3c", "#12345", "#12345g", "red; x", ""] {
            assert!(parse_colour(bad).is_err(), "{bad}");
        }
        assert_eq!(
            parse_origin("https://app.example.com").unwrap(),
            "https://app.example.com"
        );
        assert_eq!(
            parse_origin("http://a.test:8080/").unwrap(),
            "http://a.test:8080"
        );
        for bad in [
            "https://a.test/path",
            "javascript:x",
            "*",
            "https://a.test; script-src *",
            "data:,",
        ] {
            assert!(parse_origin(bad).is_err(), "{bad}");
        }
        assert!(parse_logo_url("/static/logo.png").is_ok());
        assert!(parse_logo_url("https://cdn.example.com/logo.svg").is_ok());
        for bad in [
            "http://x.test/l.png",
            "//evil.test/x",
            "/a\"onerror",
            "javascript:alert(1)",
        ] {
            assert!(parse_logo_url(bad).is_err(), "{bad}");
        }
    }
}
