//! The layers inside the MC's crates, checked on their sources: a module may use the modules
//! below it, never one above (Cargo enforces the layers between crates; this enforces them
//! within `mc-core` and `mc`). Test code may reach anywhere; it is not read.

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
    "jobs",
    "schedule",
    "objects",
];
const MC: &[&str] = &["catalog", "jobs", "api", "server", "playground"];

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

/// `file:line: module uses crate::above` for every import of `src` that runs up `layers`.
fn upward_imports(src: &Path, layers: &[&str]) -> Vec<String> {
    let rank = |m: &str| layers.iter().position(|l| *l == m);
    let mut files = vec![];
    rust_files(src, &mut files);
    let mut found = vec![];
    for file in files {
        let rel = file.strip_prefix(src).unwrap();
        let name = rel.file_name().unwrap().to_string_lossy();
        if name.ends_with("tests.rs") || rel.components().any(|c| c.as_os_str() == "tests") {
            continue;
        }
        let first = rel
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy();
        let module = first.trim_end_matches(".rs");
        let Some(own) = rank(module) else { continue };
        let text = std::fs::read_to_string(&file).unwrap();
        for (n, line) in text.lines().enumerate() {
            if line.trim_start().starts_with("#[cfg(test)]") {
                break;
            }
            if line.trim_start().starts_with("//") {
                continue;
            }
            for (i, _) in line.match_indices("crate::") {
                let used: String = line[i + 7..]
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                if rank(&used).is_some_and(|r| r > own) {
                    found.push(format!(
                        "{}:{}: {module} uses crate::{used}, a layer above it",
                        file.display(),
                        n + 1
                    ));
                }
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
    let mut found = upward_imports(&workspace().join("mc-core/src"), MC_CORE);
    found.extend(upward_imports(&workspace().join("mc/src"), MC));
    assert!(
        found.is_empty(),
        "imports that run up a layer (order, bottom first: mc-core {MC_CORE:?}, mc {MC:?}):\n{}",
        found.join("\n")
    );
}

#[test]
fn an_import_up_a_layer_is_found() {
    let dir = std::env::temp_dir().join(format!("layers-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("cluster")).unwrap();
    std::fs::write(
        dir.join("cluster/view.rs"),
        "use crate::ids::RgId;\nuse crate::jobs::effect::Effect;\n#[cfg(test)]\nuse crate::jobs::x;\n",
    )
    .unwrap();
    let found = upward_imports(&dir, MC_CORE);
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].ends_with("view.rs:2: cluster uses crate::jobs, a layer above it"));
}
