//! The operations' one error type; each edge maps it to its own answer (a JSON error, an error page).

use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum OpsError {
    /// The named thing does not exist (or is not visible to the caller).
    #[error("{0} not found")]
    NotFound(&'static str),
    /// One input field is invalid; `field` names it (a JSON path such as `events[2]`).
    #[error("{field}: {message}")]
    Invalid {
        code: &'static str,
        field: String,
        message: String,
    },
    /// An event's `data` does not match its type's schema (validation `enforce`).
    #[error("{field} does not match the event type's schema ({} violations)", violations.len())]
    SchemaMismatch {
        field: String,
        violations: Vec<super::schemas::Violation>,
    },
    /// The request conflicts with the current state (a delivery in flight, a row that exists).
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    /// An event's payload is over the size limit.
    #[error("{0}")]
    PayloadTooLarge(String),
    /// The store cannot serve the request now; nothing was written. Retry later.
    #[error("the store is unavailable; retry later")]
    Unavailable,
    /// A bug. Details went to the log.
    #[error("internal error")]
    Internal,
}

impl OpsError {
    pub fn invalid(code: &'static str, field: impl Into<String>, message: impl ToString) -> Self {
        Self::Invalid {
            code,
            field: field.into(),
            message: message.to_string(),
        }
    }

    /// The same error naming another field (a field checked by a shared rule, placed in a batch).
    pub fn at_field(self, field: impl Into<String>) -> Self {
        match self {
            Self::Invalid { code, message, .. } => Self::Invalid {
                code,
                field: field.into(),
                message,
            },
            other => other,
        }
    }
}

/// Store failures are logged here, once, with their detail; callers see only their kind.
impl From<StoreError> for OpsError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Unavailable(detail) => {
                tracing::warn!(%detail, "store unavailable");
                Self::Unavailable
            }
            StoreError::Conflict(message) => Self::Conflict {
                code: "conflict",
                message,
            },
            StoreError::Internal(detail) => {
                tracing::error!(%detail, "store error");
                Self::Internal
            }
            // The sealing layer retries this itself; left over, the node lacks the current key.
            StoreError::SealingKeyChanged(key_id) => {
                tracing::warn!(%key_id, "secrets are sealed with a master key this node lacks");
                Self::Unavailable
            }
        }
    }
}
