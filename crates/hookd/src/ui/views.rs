//! What every page template shares ([`Ctx`]) and small formatting helpers.

use super::UiState;
use super::assets::{AssetUrls, URLS};
use super::session::Session;
use crate::store::SubscriptionRow;

/// The layout's inputs: where links point, the CSRF token, what the viewer may do, the brand.
pub struct Ctx {
    /// `/ui` or `/portal`: every link and form starts with it.
    pub base: &'static str,
    pub csrf: String,
    pub portal: bool,
    /// Whether action buttons are shown (portal `read` sessions see none, and are refused anyway).
    pub manage: bool,
    /// The portal's owner; empty for operators.
    pub owner: String,
    pub logo: Option<String>,
    pub assets: &'static AssetUrls,
    /// The current navigation item.
    pub nav: &'static str,
    pub title: String,
}

impl Ctx {
    pub fn new(
        state: &UiState,
        session: &Session,
        nav: &'static str,
        title: impl Into<String>,
    ) -> Self {
        Self {
            base: session.viewer.base(),
            csrf: session.csrf.clone(),
            portal: session.viewer.is_portal(),
            manage: session.viewer.can_manage(),
            owner: session.viewer.owner().unwrap_or_default().to_owned(),
            logo: state.ui.brand.logo_url.clone(),
            assets: &URLS,
            nav,
            title: title.into(),
        }
    }

    /// `{"X-CSRF-Token": "…"}` for the body's `hx-headers`.
    pub fn hx_headers(&self) -> String {
        serde_json::json!({ "X-CSRF-Token": self.csrf }).to_string()
    }
}

/// `2026-11-29 06:30:12` (UTC).
pub fn time(ms: i64) -> String {
    let text = hookd_core::time::rfc3339_ms(ms);
    text.get(..19).unwrap_or(&text).replace('T', " ")
}

pub fn opt_time(ms: Option<i64>) -> String {
    ms.map(time).unwrap_or_else(|| "—".into())
}

/// `active`, `disabled`, or `auto-disabled`, and the reason.
pub fn endpoint_state(row: &SubscriptionRow) -> (&'static str, String) {
    match (row.active, row.disabled_reason.as_deref()) {
        (true, _) => ("active", String::new()),
        (false, Some("disabled by operator") | None) => ("disabled", String::new()),
        (false, Some(reason)) => ("auto-disabled", reason.to_owned()),
    }
}

/// A display string for an optional number.
pub fn opt<T: std::fmt::Display>(value: Option<T>) -> String {
    value.map(|v| v.to_string()).unwrap_or_else(|| "—".into())
}

/// An example payload for a catalog type (hookd's standard types have realistic ones).
pub fn example_payload(event_type: &str) -> String {
    let value = match event_type {
        "order.created" | "order.updated" | "order.cancelled" => serde_json::json!({
            "orderId": "ORD-1001", "customerId": "CUS-42", "total": 129.90, "currency": "EUR"
        }),
        "payment.succeeded" | "payment.failed" => serde_json::json!({
            "paymentId": "PAY-77", "orderId": "ORD-1001", "amount": 129.90, "currency": "EUR"
        }),
        "user.registered" | "user.updated" => serde_json::json!({
            "userId": "USR-9", "email": "ada@example.com"
        }),
        "invoice.issued" => serde_json::json!({"invoiceId": "INV-5", "amount": 129.90}),
        "shipment.created" => serde_json::json!({"shipmentId": "SHP-3", "orderId": "ORD-1001"}),
        "refund.processed" => serde_json::json!({"refundId": "REF-8", "amount": 20.00}),
        _ => serde_json::json!({"message": "Test event"}),
    };
    serde_json::to_string_pretty(&value).unwrap_or_default()
}

/// Pretty JSON of a JSON text, or the text itself if it is not JSON.
pub fn pretty_json(text: &str) -> String {
    serde_json::from_str::<serde_json::Value>(text)
        .ok()
        .and_then(|v| serde_json::to_string_pretty(&v).ok())
        .unwrap_or_else(|| text.to_owned())
}

/// How the delivery detail names an attempt's error class, and what it means.
pub fn error_class(class: &str) -> (&'static str, &'static str) {
    match class {
        "dns" => ("DNS", "the endpoint's host name did not resolve"),
        "connect" => ("connect", "no TCP connection (refused, unreachable)"),
        "tls" => ("TLS", "the TLS handshake or the certificate check failed"),
        "timeout" => (
            "timeout",
            "no complete answer within the endpoint's timeout",
        ),
        "http" => (
            "HTTP",
            "a non-2xx status, or a connection reset or invalid HTTP answer",
        ),
        "blocked" => (
            "blocked",
            "hookd's target policy refused the address (SSRF guard)",
        ),
        _ => ("error", "hookd could not send the request"),
    }
}

/// Quotes a string for a POSIX shell.
/// `text` percent-encoded for a query string's value.
pub fn query_value(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

pub fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

// Display helpers the templates call (askama templates format through methods, not free functions).

impl super::charts::Summary {
    pub fn rate_text(&self) -> String {
        format!("{:.2}", self.per_minute)
    }

    pub fn success_text(&self) -> String {
        self.success_pct
            .map(|p| format!("{p:.1}%"))
            .unwrap_or_else(|| "—".into())
    }

    pub fn latency_text(&self) -> String {
        match (self.p50, self.p95, self.p99) {
            (Some(a), Some(b), Some(c)) => format!("{a} / {b} / {c} ms"),
            _ => "—".into(),
        }
    }
}

impl crate::store::ui::DeliveryListRow {
    pub fn status_text(&self) -> String {
        opt(self.delivery.last_status)
    }

    pub fn attempts_text(&self) -> String {
        self.delivery.attempts.to_string()
    }

    pub fn created_text(&self) -> String {
        time(self.delivery.created_at)
    }
}

impl crate::store::ui::DeadLetterGroup {
    pub fn status_text(&self) -> String {
        opt(self.last_status)
    }

    pub fn last_text(&self) -> String {
        time(self.last_failed_at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn helpers() {
        assert_eq!(time(0), "1970-01-01 00:00:00");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(pretty_json("{\"a\":1}"), "{\n  \"a\": 1\n}");
        assert_eq!(pretty_json("nope"), "nope");
    }
}
