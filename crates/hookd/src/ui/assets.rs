//! Static files embedded in the binary: vendored htmx and uPlot (from their npm packages, pinned; see
//! `ui/vendor/`) and hookd's own script and stylesheet. Each is served under a name that carries a
//! hash of its content, so responses can be cached for a year and a new build changes the URL.

use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use std::sync::LazyLock;

struct Asset {
    /// The name in templates (`app.js`).
    name: &'static str,
    content_type: &'static str,
    bytes: &'static [u8],
}

const ASSETS: &[Asset] = &[
    Asset {
        name: "htmx.js",
        content_type: "text/javascript; charset=utf-8",
        bytes: include_bytes!("../../ui/vendor/htmx-2.0.4.min.js"),
    },
    Asset {
        name: "uplot.js",
        content_type: "text/javascript; charset=utf-8",
        bytes: include_bytes!("../../ui/vendor/uPlot-1.6.32.iife.min.js"),
    },
    Asset {
        name: "uplot.css",
        content_type: "text/css; charset=utf-8",
        bytes: include_bytes!("../../ui/vendor/uPlot-1.6.32.min.css"),
    },
    Asset {
        name: "app.js",
        content_type: "text/javascript; charset=utf-8",
        bytes: include_bytes!("../../ui/app.js"),
    },
    Asset {
        name: "app.css",
        content_type: "text/css; charset=utf-8",
        bytes: include_bytes!("../../ui/app.css"),
    },
];

/// `app.js` → `app.3f2a91c0.js`.
fn hashed_name(asset: &Asset) -> String {
    let digest = Sha256::digest(asset.bytes);
    let short = hex::encode(&digest[..4]);
    match asset.name.rsplit_once('.') {
        Some((stem, ext)) => format!("{stem}.{short}.{ext}"),
        None => format!("{}.{short}", asset.name),
    }
}

static HASHED: LazyLock<Vec<(String, &'static Asset)>> =
    LazyLock::new(|| ASSETS.iter().map(|a| (hashed_name(a), a)).collect());

/// The URL of an embedded asset by its plain name; panics on an unknown name (a template bug that
/// the page tests catch).
pub fn url(name: &str) -> String {
    HASHED
        .iter()
        .find(|(_, asset)| asset.name == name)
        .map(|(hashed, _)| format!("/ui/assets/{hashed}"))
        .unwrap_or_else(|| panic!("no embedded asset {name}"))
}

/// URLs the layout needs, computed once.
#[derive(Debug)]
pub struct AssetUrls {
    pub htmx: String,
    pub uplot_js: String,
    pub uplot_css: String,
    pub app_js: String,
    pub app_css: String,
}

pub static URLS: LazyLock<AssetUrls> = LazyLock::new(|| AssetUrls {
    htmx: url("htmx.js"),
    uplot_js: url("uplot.js"),
    uplot_css: url("uplot.css"),
    app_js: url("app.js"),
    app_css: url("app.css"),
});

/// `GET /ui/assets/{file}`: only hashed names answer, cached for a year.
pub async fn serve(Path(file): Path<String>) -> Response {
    let Some((_, asset)) = HASHED.iter().find(|(hashed, _)| *hashed == file) else {
        return (StatusCode::NOT_FOUND, "no such asset").into_response();
    };
    let mut response = asset.bytes.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(asset.content_type),
    );
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=31536000, immutable"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_asset_has_a_distinct_hashed_url() {
        let urls = [
            &URLS.htmx,
            &URLS.uplot_js,
            &URLS.uplot_css,
            &URLS.app_js,
            &URLS.app_css,
        ];
        for (i, a) in urls.iter().enumerate() {
            assert!(a.starts_with("/ui/assets/"), "{a}");
            assert!(urls[i + 1..].iter().all(|b| b != a));
        }
        assert!(url("app.js").ends_with(".js"));
    }
}
