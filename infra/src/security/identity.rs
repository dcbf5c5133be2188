//! Who a peer is, read from the SAN URI of the certificate it presented. The cluster CA signs
//! every component's certificate, so a URI in a verified certificate is the component's proof
//! of its role and id; nothing a request carries can claim one.

use std::fmt;

use crate::names::valid_user_name;

/// The URI scheme and authority every MC identity URI starts with (SPIFFE-shaped, so the
/// certificates also work with tools that understand SPIFFE IDs).
const PREFIX: &str = "spiffe://mc/";

#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Identity {
    /// A member of the MC group: may command stores and raise their fence term.
    Mc(u64),
    /// A store node: may speak for itself in heartbeats and to the members of its RGs.
    Store(u64),
    /// A person or a service account (a SQL engine's DDL hook): its roles say what it may do.
    User(String),
}

impl Identity {
    pub fn uri(&self) -> String {
        match self {
            Identity::Mc(id) => format!("{PREFIX}mc/{id}"),
            Identity::Store(id) => format!("{PREFIX}store/{id}"),
            Identity::User(name) => format!("{PREFIX}user/{name}"),
        }
    }

    /// The file stem `mc certs init` writes this identity's certificate under.
    pub fn file_stem(&self) -> String {
        match self {
            Identity::Mc(id) => format!("mc-{id}"),
            Identity::Store(id) => format!("store-{id}"),
            Identity::User(name) => format!("user-{name}"),
        }
    }

    /// Parses `mc/1`, `store/3`, `user/alice` (what `mc certs issue` takes) or a full URI.
    pub fn parse(text: &str) -> Option<Identity> {
        let rest = text.strip_prefix(PREFIX).unwrap_or(text);
        let (kind, id) = rest.split_once('/')?;
        let number = || id.parse::<u64>().ok().filter(|n| *n > 0);
        match kind {
            "mc" => number().map(Identity::Mc),
            "store" => number().map(Identity::Store),
            "user" if valid_user_name(id) => Some(Identity::User(id.to_string())),
            _ => None,
        }
    }

    /// The identity a DER certificate names in its SAN URIs; `None` if it names none, or more
    /// than one (a certificate that could be two components is no proof of either).
    pub fn from_cert_der(der: &[u8]) -> Option<Identity> {
        let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
        let san = cert.subject_alternative_name().ok()??;
        let mut found = san
            .value
            .general_names
            .iter()
            .filter_map(|name| match name {
                x509_parser::extensions::GeneralName::URI(uri) if uri.starts_with(PREFIX) => {
                    Some(Identity::parse(uri))
                }
                _ => None,
            });
        let first = found.next()??;
        found.next().is_none().then_some(first)
    }
}

impl fmt::Display for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Identity::Mc(id) => write!(f, "mc/{id}"),
            Identity::Store(id) => write!(f, "store/{id}"),
            Identity::User(name) => write!(f, "user/{name}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identities_round_trip_and_bad_ones_are_none() {
        for id in [
            Identity::Mc(1),
            Identity::Store(u64::MAX),
            Identity::User("ddl-hook@pg".into()),
        ] {
            assert_eq!(Identity::parse(&id.uri()), Some(id.clone()));
            assert_eq!(Identity::parse(&id.to_string()), Some(id));
        }
        for bad in [
            "mc/0",
            "store/-1",
            "store/18446744073709551616",
            "user/",
            "user/a b",
            "root/1",
            "spiffe://other/mc/1x",
            "",
        ] {
            assert_eq!(Identity::parse(bad), None, "{bad}");
        }
        assert_eq!(Identity::parse(&format!("user/{}", "a".repeat(65))), None);
    }
}
