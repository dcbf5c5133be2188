//! Who is calling the MC, and may they. The connection's certificate names the caller (an MC,
//! a store or a user); a caller without one may prove a user with a bearer token. A follower
//! that forwards a call says whom it forwards for, which the leader believes only from an MC's
//! certificate. Every call is checked on the leader; each refusal is audited.

use std::sync::Mutex;
use std::time::Instant;

use infra::security::{Identity, Peer};

use crate::catalog::raft::RaftCatalog;
use crate::catalog::{tokens, users};
use crate::error::McError;

/// Whom a forwarded call is for: `mc/2`, `store/3`, `user/alice`, or `anonymous`.
pub const FORWARDED_FOR: &str = "mc-forwarded-for";

/// The authenticated caller of a client or heartbeat call, as the services see it (in the
/// request's extensions).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Caller {
    /// An MC or a store, by its certificate.
    Component(Identity),
    /// A user, by certificate or token.
    User(String),
    /// No certificate and no token.
    Anonymous,
    /// The MC runs `--insecure`.
    Unchecked,
}

impl Caller {
    /// The principal audit records name.
    pub fn principal(&self) -> String {
        match self {
            Caller::Component(id) => id.to_string(),
            Caller::User(name) => name.clone(),
            Caller::Anonymous => "anonymous".into(),
            Caller::Unchecked => "unchecked(insecure)".into(),
        }
    }

    fn forwarded_header(&self) -> String {
        match self {
            Caller::Component(id) => id.to_string(),
            Caller::User(name) => format!("user/{name}"),
            Caller::Anonymous | Caller::Unchecked => "anonymous".into(),
        }
    }

    pub fn header_value(&self) -> Option<http::HeaderValue> {
        http::HeaderValue::from_str(&self.forwarded_header()).ok()
    }
}

/// Marks a forwarded call with the id of the MC that forwarded it (see `forward`).
pub const FORWARDED_BY: &str = "mc-forwarded-by";

/// The caller a direct connection proves: its certificate, or else its bearer token (which
/// the leader checks; a follower passes the header on untouched). `peer_mc(id)` says whether
/// MC `id` is another current member of the group: only such an MC, saying it forwarded the
/// call, speaks for the caller it names.
pub fn caller(peer: &Peer, headers: &http::HeaderMap, peer_mc: impl Fn(u64) -> bool) -> Caller {
    match peer {
        Peer::Unchecked => Caller::Unchecked,
        Peer::Authenticated(Identity::User(name)) => Caller::User(name.clone()),
        Peer::Authenticated(id) => {
            let forwarder = match id {
                Identity::Mc(n) if peer_mc(*n) => Some(*n),
                _ => None,
            };
            let by = headers
                .get(FORWARDED_BY)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok());
            if let Some(n) = forwarder
                && by == Some(n)
                && let Some(v) = headers.get(FORWARDED_FOR).and_then(|v| v.to_str().ok())
            {
                return match Identity::parse(v) {
                    Some(Identity::User(name)) => Caller::User(name),
                    Some(other) => Caller::Component(other),
                    None => Caller::Anonymous,
                };
            }
            Caller::Component(id.clone())
        }
        Peer::Anonymous => Caller::Anonymous,
    }
}

fn bearer(headers: &http::HeaderMap) -> Option<&str> {
    let v = headers.get(http::header::AUTHORIZATION)?.to_str().ok()?;
    v.strip_prefix("Bearer ")
        .or_else(|| v.strip_prefix("bearer "))
}

/// On the leader: the caller after its token is checked, and whether it may call `path`.
pub fn authorize(
    catalog: &RaftCatalog,
    path: &str,
    caller: Caller,
    headers: &http::HeaderMap,
) -> (Caller, Result<(), McError>) {
    let caller = match caller {
        Caller::Anonymous => match bearer(headers) {
            Some(token) => match tokens::verify(catalog, token) {
                Ok(user) => Caller::User(user),
                Err(e) => return (Caller::Anonymous, Err(e)),
            },
            None => Caller::Anonymous,
        },
        other => other,
    };
    let service = path.trim_start_matches('/').split('/').next().unwrap_or("");
    let verdict = match (&caller, service) {
        (Caller::Unchecked, _) => Ok(()),
        (Caller::Anonymous, _) => Err(McError::unauthenticated(format!(
            "{service} needs a client certificate of the cluster CA or a bearer token"
        ))),
        (Caller::Component(Identity::Store(_)), "mc.v1.HeartbeatService") => Ok(()),
        (_, "mc.v1.HeartbeatService") => Err(McError::PermissionDenied {
            principal: caller.principal(),
            permission: "store.heartbeat",
            reason: "HeartbeatService takes only store certificates".into(),
        }),
        (Caller::User(name), _) => match users::permission_for(path) {
            Some(permission) => users::check(catalog, name, permission),
            None => Err(McError::PermissionDenied {
                principal: name.clone(),
                permission: "(none)",
                reason: format!("no permission is defined for {}", crate::error::short(path)),
            }),
        },
        (Caller::Component(id), _) => Err(McError::PermissionDenied {
            principal: id.to_string(),
            permission: users::permission_for(path).map_or("(none)", |p| p.name()),
            reason: "MC and store certificates do not make client calls; use a user's".into(),
        }),
    };
    (caller, verdict)
}

/// Bounds the audit records refusals write: an attacker's flood of refused calls must not
/// turn into a flood of catalog commits, nor hide another principal's refusals. Each
/// principal has its own budget per second (a flood of anonymous calls spends only the
/// anonymous one), under a total for all of them; refusals over a budget are counted and the
/// count goes into that principal's next record.
pub struct DenialBudget {
    state: Mutex<Budgets>,
}

struct Budgets {
    second: Instant,
    total: u32,
    /// Principal → (recorded this second, skipped since its last record).
    principals: std::collections::HashMap<String, (u32, u64)>,
}

/// Refusals recorded per second, for one principal and for all of them.
pub const DENIALS_PER_PRINCIPAL: u32 = 5;
pub const DENIALS_PER_SECOND: u32 = 50;
/// Principals whose skipped refusals are remembered: past it, the ones with none go first.
const PRINCIPALS_KEPT: usize = 4_096;

impl Default for DenialBudget {
    fn default() -> Self {
        Self {
            state: Mutex::new(Budgets {
                second: Instant::now(),
                total: 0,
                principals: Default::default(),
            }),
        }
    }
}

impl DenialBudget {
    /// `Some(n)` when this refusal of `principal` is to be recorded, with `n` of its refusals
    /// skipped before it.
    pub fn admit(&self, principal: &str) -> Option<u64> {
        let mut s = self.state.lock().expect("denial budget");
        if s.second.elapsed().as_secs() >= 1 {
            s.second = Instant::now();
            s.total = 0;
            s.principals.retain(|_, (_, skipped)| *skipped > 0);
            for entry in s.principals.values_mut() {
                entry.0 = 0;
            }
        }
        if !s.principals.contains_key(principal) && s.principals.len() >= PRINCIPALS_KEPT {
            s.principals.retain(|_, (_, skipped)| *skipped > 0);
            if s.principals.len() >= PRINCIPALS_KEPT {
                return None;
            }
        }
        let over_total = s.total >= DENIALS_PER_SECOND;
        let entry = s.principals.entry(principal.to_string()).or_default();
        if over_total || entry.0 >= DENIALS_PER_PRINCIPAL {
            entry.1 += 1;
            return None;
        }
        entry.0 += 1;
        let skipped = std::mem::take(&mut entry.1);
        s.total += 1;
        Some(skipped)
    }
}

#[cfg(test)]
mod budget_tests {
    use super::*;

    #[test]
    fn a_flood_of_one_principal_does_not_hide_another() {
        let budget = DenialBudget::default();
        let recorded = (0..1_000)
            .filter(|_| budget.admit("anonymous").is_some())
            .count();
        assert_eq!(recorded, DENIALS_PER_PRINCIPAL as usize);
        assert_eq!(
            budget.admit("user/mallory"),
            Some(0),
            "another principal is still heard"
        );
    }
}
