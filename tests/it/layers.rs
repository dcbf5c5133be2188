//! The layers inside the MC's crates, checked on their sources: a module may use the modules
//! below it, never one above, and no two modules of one parent use each other (Cargo enforces
//! the layers between crates; this enforces them within `mc-core` and `mc`). Test code may
//! reach anywhere; it is not read.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Bottom first. A module not listed (the crate root, `bin/`) is not checked.
const MC_CORE: &[&str] = &[
    "ids",
    "clock",
    "error",
    "catalog",
    "cluster",
    "step",
    "placement",
    "job_spec",
    "history",
    "watchdog",
    "jobs",
    "schedule",
    "objects",
];
const MC: &[&str] = &["catalog", "jobs", "api", "server", "playground"];

/// One production source file: its module path and the module paths it names.
struct Source {
    file: PathBuf,
    module: Vec<String>,
    /// (line, path named by `crate::…` or `super::…`).
    names: Vec<(usize, Vec<String>)>,
    /// (name, child) for each `pub use child::name` of this module.
    reexports: Reexports,
}

type Reexports = Vec<(String, String)>;

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

fn ident(s: &str) -> String {
    s.chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect()
}

/// Lines of production code: comments and `#[cfg(test)]` items (a `mod tests;` line, or up to
/// the brace that closes the item) left out.
fn production_lines(text: &str) -> Vec<(usize, &str)> {
    let mut out = vec![];
    let mut lines = text.lines().enumerate();
    while let Some((n, line)) = lines.next() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("#[cfg(test)]") {
            let mut depth = 0i64;
            for (_, item) in lines.by_ref() {
                depth += item.matches('{').count() as i64 - item.matches('}').count() as i64;
                if depth <= 0 && (item.trim_end().ends_with(';') || item.trim_end().ends_with('}'))
                {
                    break;
                }
            }
            continue;
        }
        if trimmed.starts_with("//") {
            continue;
        }
        out.push((n + 1, line));
    }
    out
}

/// Names a module file re-exports from its children (`pub use child::{A, B};`), by name: a
/// use of `parent::A` is a use of `parent::child`.
fn reexports(text: &str) -> Vec<(String, String)> {
    let mut out = vec![];
    for stmt in text.split(';') {
        let Some(rest) = stmt.trim_start().strip_prefix("pub use ") else {
            continue;
        };
        let Some((child, names)) = rest.split_once("::") else {
            continue;
        };
        if child.is_empty() || !child.chars().all(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        for name in names
            .trim_matches(|c: char| c == '{' || c == '}' || c.is_whitespace())
            .split(',')
        {
            let name = name.split(" as ").last().unwrap_or("").trim();
            if !name.is_empty() && name != "self" && name != "*" {
                out.push((name.to_string(), child.to_string()));
            }
        }
    }
    out
}

/// The production sources of `src` (test files and `#[cfg(test)]` items left out).
fn sources(src: &Path) -> Vec<Source> {
    let mut files = vec![];
    rust_files(src, &mut files);
    let mut out = vec![];
    for file in files {
        let rel = file.strip_prefix(src).unwrap();
        let name = rel.file_name().unwrap().to_string_lossy();
        if name.ends_with("tests.rs") || rel.components().any(|c| c.as_os_str() == "tests") {
            continue;
        }
        let mut module: Vec<String> = rel
            .with_extension("")
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect();
        if module.last().is_some_and(|m| m == "mod") {
            module.pop();
        }
        if module.is_empty() || module == ["lib"] || module[0] == "bin" {
            continue;
        }
        let parent = module[..module.len() - 1].to_vec();
        let mut names = vec![];
        let text = std::fs::read_to_string(&file).unwrap();
        for (n, line) in production_lines(&text) {
            for (i, _) in line.match_indices("crate::") {
                let path: Vec<String> = line[i + 7..]
                    .split("::")
                    .map(ident)
                    .take_while(|s| !s.is_empty())
                    .collect();
                names.push((n, path));
            }
            for (i, _) in line.match_indices("super::") {
                if line[..i].ends_with("::") {
                    continue;
                }
                let mut path = parent.clone();
                path.push(ident(&line[i + 7..]));
                names.push((n, path));
            }
        }
        out.push(Source {
            file,
            module,
            names,
            reexports: reexports(&text),
        });
    }
    // A name a module re-exports from a child is that child's.
    let by_module: Vec<(Vec<String>, Reexports)> = out
        .iter()
        .map(|s| (s.module.clone(), s.reexports.clone()))
        .collect();
    for s in &mut out {
        for (_, path) in &mut s.names {
            for (module, exports) in &by_module {
                if path.len() > module.len()
                    && path.starts_with(module)
                    && let Some((_, child)) = exports.iter().find(|(n, _)| *n == path[module.len()])
                {
                    path[module.len()] = child.clone();
                }
            }
        }
    }
    out
}

/// `file:line: module uses crate::above` for every name that runs up `layers`.
fn upward_imports(sources: &[Source], layers: &[&str]) -> Vec<String> {
    let rank = |m: &str| layers.iter().position(|l| *l == m);
    let mut found = vec![];
    for s in sources {
        let Some(own) = rank(&s.module[0]) else {
            continue;
        };
        for (line, path) in &s.names {
            if let Some(first) = path.first()
                && rank(first).is_some_and(|r| r > own)
            {
                found.push(format!(
                    "{}:{line}: {} uses crate::{first}, a layer above it",
                    s.file.display(),
                    s.module[0]
                ));
            }
        }
    }
    found
}

/// Two modules of one parent that use each other, each with one place where it does.
fn circles(sources: &[Source]) -> Vec<String> {
    let modules: BTreeSet<Vec<String>> = sources
        .iter()
        .flat_map(|s| (1..=s.module.len()).map(|n| s.module[..n].to_vec()))
        .collect();
    let first_use = |a: &[String], b: &[String]| {
        sources
            .iter()
            .filter(|s| s.module.starts_with(a))
            .find_map(|s| {
                let (line, _) = s.names.iter().find(|(_, p)| p.starts_with(b))?;
                Some(format!("{}:{line}", s.file.display()))
            })
    };
    let mut found = vec![];
    for a in &modules {
        for b in modules.range(a.clone()..).skip(1) {
            if a.len() != b.len() || a[..a.len() - 1] != b[..b.len() - 1] {
                continue;
            }
            if let (Some(ab), Some(ba)) = (first_use(a, b), first_use(b, a)) {
                found.push(format!(
                    "{} and {} use each other ({ab}, {ba})",
                    a.join("::"),
                    b.join("::")
                ));
            }
        }
    }
    found
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf()
}

#[test]
fn no_import_runs_up_a_layer_of_mc_core_or_mc() {
    let mut found = upward_imports(&sources(&workspace().join("mc-core/src")), MC_CORE);
    found.extend(upward_imports(&sources(&workspace().join("mc/src")), MC));
    assert!(
        found.is_empty(),
        "imports that run up a layer (order, bottom first: mc-core {MC_CORE:?}, mc {MC:?}):\n{}",
        found.join("\n")
    );
}

#[test]
fn no_two_modules_of_one_parent_use_each_other() {
    let mut found = circles(&sources(&workspace().join("mc-core/src")));
    found.extend(circles(&sources(&workspace().join("mc/src"))));
    assert!(found.is_empty(), "circles:\n{}", found.join("\n"));
}

#[test]
fn an_import_up_a_layer_and_circles_are_found_also_through_re_exports_and_after_tests() {
    let dir = std::env::temp_dir().join(format!("layers-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("cluster")).unwrap();
    let files = [
        (
            "cluster/view.rs",
            "use crate::ids::RgId;\nuse crate::jobs::effect::Effect;\nuse super::members::Members;\n\
             #[cfg(test)]\nmod tests {\n    use crate::jobs::x;\n}\nuse super::index::Table;\n",
        ),
        ("cluster/members.rs", "use super::view::Role;\n"),
        ("cluster/index.rs", "pub struct Table(super::Role);\n"),
        (
            "cluster/mod.rs",
            "pub mod index;\npub use view::{ClusterView, Role};\n",
        ),
    ];
    for (path, text) in files {
        std::fs::write(dir.join(path), text).unwrap();
    }
    let sources = sources(&dir);
    let up = upward_imports(&sources, MC_CORE);
    let circles = circles(&sources);
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(up.len(), 1, "{up:?}");
    assert!(up[0].ends_with("view.rs:2: cluster uses crate::jobs, a layer above it"));
    assert_eq!(circles.len(), 2, "{circles:?}");
    assert!(circles[0].starts_with("cluster::index and cluster::view use each other"));
    assert!(circles[1].starts_with("cluster::members and cluster::view use each other"));
}
