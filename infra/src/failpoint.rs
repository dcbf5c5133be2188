//! Failpoints: named places in the code where a fault-injection test makes a process stop,
//! fail or stall at an exact boundary ("after the step record is written", "before the merge
//! applies"). Set only through the `MC_FAILPOINTS` environment variable of the process, read
//! once at start, and only in debug builds or with the `failpoints` feature: a release build
//! ignores the variable and its points compile to nothing. Nothing is reachable from the
//! network.
//!
//! `MC_FAILPOINTS="name=action[@n];…"` where action is `abort` (the process dies on the spot,
//! as under kill -9: no destructors, no flush), `error` (the point returns an error),
//! `error(MS)` (the same after MS milliseconds), `sleep(MS)`, or `pause` (the thread blocks for
//! good, as under SIGSTOP of that code path);
//! `@n` fires on the n-th hit only (1-based), otherwise on every hit.
//!
//! Two actions let a test harness act at the exact boundary, from outside the process:
//! `rendezvous(DIR)` writes `DIR/hit.{pid}.{n}` holding the point's name and context (a job
//! and step), then waits until `DIR/go.{pid}.{n}` exists; `error_while(PATH)` fails the point
//! while the file PATH exists (cutting the MC off its stores, say).

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
    Rendezvous(std::path::PathBuf),
    ErrorWhile(std::path::PathBuf),
}

struct Point {
    action: Action,
    nth: Option<u64>,
    hits: AtomicU64,
}

static ANY: AtomicBool = AtomicBool::new(false);
static POINTS: OnceLock<HashMap<String, Point>> = OnceLock::new();

/// Whether this build honours `MC_FAILPOINTS`: debug builds (every test) do, release builds
/// only with the `failpoints` feature, so a production binary cannot be made to abort or stall
/// by its environment, and every point compiles to nothing.
pub const ENABLED: bool = cfg!(any(debug_assertions, feature = "failpoints"));

/// Parses `MC_FAILPOINTS` once. Called at process start by the binaries; a bad spec is
/// reported and ignored rather than half-applied.
pub fn init_from_env() {
    let spec = std::env::var("MC_FAILPOINTS").unwrap_or_default();
    if !ENABLED {
        if !spec.is_empty() {
            eprintln!("MC_FAILPOINTS ignored: this is a release build without failpoints");
        }
        return;
    }
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
                let path = |prefix: &str| {
                    a.strip_prefix(prefix)
                        .and_then(|x| x.strip_suffix(')'))
                        .map(std::path::PathBuf::from)
                };
                match (ms("sleep("), ms("error(")) {
                    (Some(ms), _) => Action::Sleep(ms?),
                    (_, Some(ms)) => Action::Error(ms?),
                    _ => match (path("rendezvous("), path("error_while(")) {
                        (Some(dir), _) => Action::Rendezvous(dir),
                        (_, Some(file)) => Action::ErrorWhile(file),
                        _ => return Err(format!("unknown action `{a}`")),
                    },
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
/// the caller should fail (the `error` actions). A rendezvous blocks the thread; async code
/// uses [`reach`].
pub fn hit(name: &str) -> bool {
    let Some((point, n)) = fired(name) else {
        return false;
    };
    match &point.action {
        Action::Rendezvous(dir) => {
            let go = announce(dir, name, "", n);
            while !go.exists() {
                std::thread::sleep(Duration::from_millis(5));
            }
            false
        }
        other => act(name, other, n),
    }
}

/// [`hit`] for async code, with what the harness is told: `context` (for example
/// "job=7 step=3").
pub async fn reach(name: &str, context: &str) -> bool {
    let Some((point, n)) = fired(name) else {
        return false;
    };
    match &point.action {
        Action::Rendezvous(dir) => {
            let go = announce(dir, name, context, n);
            while !go.exists() {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            false
        }
        // Only this task waits, not the worker thread under it (and every task queued there).
        Action::Sleep(ms) => {
            eprintln!("failpoint {name} fired (sleep {ms} ms, hit {n})");
            tokio::time::sleep(Duration::from_millis(*ms)).await;
            false
        }
        other => act(name, other, n),
    }
}

fn fired(name: &str) -> Option<(&'static Point, u64)> {
    if !ENABLED || !ANY.load(Ordering::Relaxed) {
        return None;
    }
    let point = POINTS.get()?.get(name)?;
    let n = point.hits.fetch_add(1, Ordering::Relaxed) + 1;
    if point.nth.is_some_and(|k| k != n) {
        return None;
    }
    Some((point, n))
}

/// Writes the hit file (atomically, by rename) and returns the file that releases it.
fn announce(dir: &std::path::Path, name: &str, context: &str, n: u64) -> std::path::PathBuf {
    let pid = std::process::id();
    let tmp = dir.join(format!(".hit.{pid}.{n}"));
    let _ = std::fs::write(&tmp, format!("{name} {context}"));
    let _ = std::fs::rename(&tmp, dir.join(format!("hit.{pid}.{n}")));
    dir.join(format!("go.{pid}.{n}"))
}

fn act(name: &str, action: &Action, n: u64) -> bool {
    match action {
        Action::ErrorWhile(file) => file.exists(),
        Action::Rendezvous(_) => false,
        action => {
            eprintln!("failpoint {name} fired ({action:?}, hit {n})");
            match action {
                Action::Abort => std::process::abort(),
                Action::Error(ms) => {
                    std::thread::sleep(Duration::from_millis(*ms));
                    true
                }
                Action::Sleep(ms) => {
                    std::thread::sleep(Duration::from_millis(*ms));
                    false
                }
                _ => loop {
                    std::thread::sleep(Duration::from_secs(3600));
                },
            }
        }
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
        let p = parse("f=rendezvous(/tmp/x);g=error_while(/tmp/cut)").unwrap();
        assert_eq!(p["f"].action, Action::Rendezvous("/tmp/x".into()));
        assert_eq!(p["g"].action, Action::ErrorWhile("/tmp/cut".into()));
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
