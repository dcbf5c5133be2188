//! Failpoints: named places in the code where a fault-injection test makes a process stop,
//! fail or stall at an exact boundary ("after the step record is written", "before the merge
//! applies"). Set only through the `MC_FAILPOINTS` environment variable of the process, read
//! once at start, so a production process pays one relaxed atomic load per point and nothing
//! is reachable from the network.
//!
//! `MC_FAILPOINTS="name=action[@n];…"` where action is `abort` (the process dies on the spot,
//! as under kill -9: no destructors, no flush), `error` (the point returns an error),
//! `error(MS)` (the same after MS milliseconds), `sleep(MS)`, or `pause` (the thread blocks for
//! good, as under SIGSTOP of that code path);
//! `@n` fires on the n-th hit only (1-based), otherwise on every hit.

use std::collections::HashMap;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    Abort,
    /// Fail, after this many milliseconds.
    Error(u64),
    Sleep(u64),
    Pause,
}

struct Point {
    action: Action,
    nth: Option<u64>,
    hits: AtomicU64,
}

static ANY: AtomicBool = AtomicBool::new(false);
static POINTS: OnceLock<HashMap<String, Point>> = OnceLock::new();

/// Parses `MC_FAILPOINTS` once. Called at process start by the binaries; a bad spec is
/// reported and ignored rather than half-applied.
pub fn init_from_env() {
    let spec = std::env::var("MC_FAILPOINTS").unwrap_or_default();
    match parse(&spec) {
        Ok(points) => {
            ANY.store(!points.is_empty(), Ordering::Release);
            let _ = POINTS.set(points);
        }
        Err(e) => eprintln!("MC_FAILPOINTS ignored: {e}"),
    }
}

fn parse(spec: &str) -> Result<HashMap<String, Point>, String> {
    let mut out = HashMap::new();
    for item in spec.split(';').map(str::trim).filter(|s| !s.is_empty()) {
        let (name, rest) = item
            .split_once('=')
            .ok_or_else(|| format!("`{item}` is not name=action"))?;
        let (action, nth) = match rest.split_once('@') {
            Some((a, n)) => (
                a,
                Some(
                    n.parse::<u64>()
                        .map_err(|_| format!("`{n}` is not a hit count"))?,
                ),
            ),
            None => (rest, None),
        };
        let action = match action {
            "abort" => Action::Abort,
            "error" => Action::Error(0),
            "pause" => Action::Pause,
            a => {
                let ms = |prefix: &str| {
                    a.strip_prefix(prefix)
                        .and_then(|x| x.strip_suffix(')'))
                        .map(|ms| ms.parse::<u64>().map_err(|_| format!("`{a}`: bad ms")))
                };
                match (ms("sleep("), ms("error(")) {
                    (Some(ms), _) => Action::Sleep(ms?),
                    (_, Some(ms)) => Action::Error(ms?),
                    _ => return Err(format!("unknown action `{a}`")),
                }
            }
        };
        out.insert(
            name.to_string(),
            Point {
                action,
                nth,
                hits: AtomicU64::new(0),
            },
        );
    }
    Ok(out)
}

/// Evaluates the point: aborts, sleeps or blocks here as configured, and returns true when
/// the caller should fail (the `error` action).
pub fn hit(name: &str) -> bool {
    if !ANY.load(Ordering::Relaxed) {
        return false;
    }
    let Some(point) = POINTS.get().and_then(|p| p.get(name)) else {
        return false;
    };
    let n = point.hits.fetch_add(1, Ordering::Relaxed) + 1;
    if point.nth.is_some_and(|k| k != n) {
        return false;
    }
    eprintln!("failpoint {name} fired ({:?}, hit {n})", point.action);
    match point.action {
        Action::Abort => std::process::abort(),
        Action::Error(ms) => {
            std::thread::sleep(Duration::from_millis(ms));
            true
        }
        Action::Sleep(ms) => {
            std::thread::sleep(Duration::from_millis(ms));
            false
        }
        Action::Pause => loop {
            std::thread::sleep(Duration::from_secs(3600));
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse_and_bad_ones_are_named() {
        let p = parse("a=abort; b=error@2;c=sleep(50);d=pause;e=error(7)").unwrap();
        assert_eq!(p["a"].action, Action::Abort);
        assert_eq!(
            (p["b"].action.clone(), p["b"].nth),
            (Action::Error(0), Some(2))
        );
        assert_eq!(p["e"].action, Action::Error(7));
        assert_eq!(p["c"].action, Action::Sleep(50));
        assert_eq!(p["d"].action, Action::Pause);
        assert!(parse("").unwrap().is_empty());
        for (bad, says) in [
            ("a", "not name=action"),
            ("a=boom", "unknown action"),
            ("a=error@x", "not a hit count"),
            ("a=sleep(x)", "bad ms"),
        ] {
            let e = parse(bad).err().unwrap();
            assert!(e.contains(says), "{bad}: {e}");
        }
    }
}
