//! Pure domain logic of hookd.
//!
//! Everything here is deterministic and does no IO: no clock, no randomness, no network, no database.
//! Functions that need the time or random bytes take them as arguments, so that the server crate owns
//! every side effect and tests can drive these functions with fixed inputs.

pub mod canonical;
pub mod content_filter;
pub mod envelope;
pub mod event_type;
pub mod headers;
pub mod ids;
pub mod outcome;
pub mod retry;
pub mod scopes;
pub mod secret;
pub mod time;
pub mod url;
pub mod whole_number;

pub use content_filter::{ContentFilter, FilterError, FilterInput};
pub use envelope::{Envelope, LegacySignature, SignatureSchemes};
pub use event_type::{EventFilter, EventType};
pub use ids::ClientEventId;
pub use outcome::{FailureEffects, Outcome};
pub use retry::{AttemptResult, Decision, RetryPolicy};
pub use secret::SigningSecret;
pub use url::{EndpointUrl, TargetPolicy, UrlPolicy};
