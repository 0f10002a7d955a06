//! What an API key may do: its scopes, and the kinds of request each scope allows.
//!
//! `admin` allows everything, `publish` only publishing events, `read` only reading. A key holds one
//! or more scopes and may do what any of them allows. Keys are stored with their scopes as a
//! comma-separated text (`"publish,read"`); keys from before scopes are admin keys.

use std::fmt;

/// One scope of an API key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Scope {
    /// Everything, including API-key management.
    Admin,
    /// `POST /api/events` and `POST /api/events/batch` only.
    Publish,
    /// Read-only requests (`GET`) only.
    Read,
}

impl Scope {
    pub const ALL: [Scope; 3] = [Scope::Admin, Scope::Publish, Scope::Read];
    /// The names, as the API, the CLI and the store write them.
    pub const NAMES: [&'static str; 3] = ["admin", "publish", "read"];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Admin => "admin",
            Scope::Publish => "publish",
            Scope::Read => "read",
        }
    }

    pub fn parse(name: &str) -> Option<Scope> {
        Scope::ALL.into_iter().find(|scope| scope.as_str() == name)
    }
}

/// What a request does, as far as scopes are concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestKind {
    /// Publishing events.
    Publish,
    /// Reading anything but API keys.
    Read,
    /// Changing anything (subscriptions, deliveries, the catalog, owners, portal links).
    Change,
    /// Listing, creating or revoking API keys.
    ManageKeys,
}

/// A set of scopes: non-empty when parsed from input (stored text changed by hand may leave none).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scopes(Vec<Scope>);

/// Why a list of scopes was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScopesError {
    Empty,
    Unknown(String),
}

impl fmt::Display for ScopesError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ScopesError::Empty => write!(f, "must name at least one scope (admin, publish, read)"),
            ScopesError::Unknown(name) => {
                write!(f, "unknown scope {name:?}: expected admin, publish or read")
            }
        }
    }
}

impl std::error::Error for ScopesError {}

impl Scopes {
    pub fn admin() -> Self {
        Scopes(vec![Scope::Admin])
    }

    /// Parses scope names; duplicates are kept once, in the order `admin`, `publish`, `read`.
    pub fn parse<S: AsRef<str>>(names: &[S]) -> Result<Self, ScopesError> {
        let mut scopes = Vec::with_capacity(names.len());
        for name in names {
            let name = name.as_ref();
            let scope = Scope::parse(name).ok_or_else(|| ScopesError::Unknown(name.to_owned()))?;
            scopes.push(scope);
        }
        scopes.sort();
        scopes.dedup();
        match scopes.is_empty() {
            true => Err(ScopesError::Empty),
            false => Ok(Scopes(scopes)),
        }
    }

    /// Reads the stored text, written by [`Scopes::to_stored`]. A name it does not know (a text
    /// changed by hand) grants nothing: the key keeps only the scopes it names correctly, and a key
    /// left with none may do nothing at all.
    pub fn from_stored(text: &str) -> Self {
        let mut scopes: Vec<Scope> = text.split(',').filter_map(Scope::parse).collect();
        scopes.sort();
        scopes.dedup();
        Scopes(scopes)
    }

    pub fn to_stored(&self) -> String {
        self.names().join(",")
    }

    pub fn names(&self) -> Vec<&'static str> {
        self.0.iter().map(|scope| scope.as_str()).collect()
    }

    pub fn contains(&self, scope: Scope) -> bool {
        self.0.contains(&scope)
    }

    /// Whether a key with these scopes may make a request of this kind.
    pub fn allow(&self, kind: RequestKind) -> bool {
        self.0.iter().any(|scope| {
            matches!(
                (scope, kind),
                (Scope::Admin, _)
                    | (Scope::Publish, RequestKind::Publish)
                    | (Scope::Read, RequestKind::Read)
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use RequestKind::*;

    #[test]
    fn each_scope_allows_its_requests_only() {
        let cases: &[(&[&str], [bool; 4])] = &[
            // scopes                 publish read  change manage-keys
            (&["admin"], [true, true, true, true]),
            (&["publish"], [true, false, false, false]),
            (&["read"], [false, true, false, false]),
            (&["publish", "read"], [true, true, false, false]),
        ];
        for (names, expected) in cases {
            let scopes = Scopes::parse(names).unwrap();
            let allowed = [Publish, Read, Change, ManageKeys].map(|kind| scopes.allow(kind));
            assert_eq!(&allowed, expected, "{names:?}");
        }
    }

    #[test]
    fn scopes_parse_and_round_trip_through_storage() {
        assert_eq!(Scopes::parse::<&str>(&[]), Err(ScopesError::Empty));
        assert_eq!(
            Scopes::parse(&["read", "owner"]),
            Err(ScopesError::Unknown("owner".into()))
        );
        assert_eq!(
            Scopes::parse(&["Admin"]),
            Err(ScopesError::Unknown("Admin".into()))
        );
        let scopes = Scopes::parse(&["read", "publish", "read"]).unwrap();
        assert_eq!(scopes.to_stored(), "publish,read");
        assert_eq!(Scopes::from_stored("publish,read"), scopes);
        assert_eq!(Scopes::from_stored("admin"), Scopes::admin());
    }

    #[test]
    fn unreadable_stored_scopes_fall_back_to_the_narrowest() {
        assert_eq!(
            Scopes::from_stored("publish,superuser"),
            Scopes::parse(&["publish"]).unwrap()
        );
        let nothing = Scopes::from_stored("");
        assert!(nothing.names().is_empty());
        assert!(
            ![Publish, Read, Change, ManageKeys]
                .iter()
                .any(|k| nothing.allow(*k))
        );
    }
}
