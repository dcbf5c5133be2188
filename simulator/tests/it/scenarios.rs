//! Every standard scenario runs at its (small) scale and meets its expectations; runs are
//! deterministic; the `mcsim` binary writes its report and charts and compares policies.

use std::path::PathBuf;
use std::process::Command;

use simulator::scenario::Scenario;

fn scenarios() -> Vec<(String, Scenario)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scenarios");
    let mut out: Vec<(String, Scenario)> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .map(|p| {
            let text = std::fs::read_to_string(&p).unwrap();
            let s = Scenario::from_toml(&text).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            (p.file_stem().unwrap().to_string_lossy().into_owned(), s)
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

#[test]
fn thirteen_standard_scenarios_ship_and_each_meets_its_expectations() {
    let all = scenarios();
    assert_eq!(
        all.len(),
        13,
        "{:?}",
        all.iter().map(|s| &s.0).collect::<Vec<_>>()
    );
    for (name, s) in &all {
        let r = simulator::sim::run(s, "mc", 1).report;
        assert!(
            r.failed_expectations.is_empty(),
            "{name}: {:?}",
            r.failed_expectations
        );
        match name.as_str() {
            "steady-noise" => assert_eq!(r.work.replica_adds, 0, "steady noise moves nothing"),
            "store-loss" => {
                assert_eq!(r.safety.rereplication_secs.len(), 1);
                assert!(r.safety.rereplication_secs[0].is_some(), "re-replicated");
                assert_eq!(r.final_sample.under_replicated_regions, 0);
            }
            "affinity-groups" => assert!(r.final_sample.affinity_together >= 0.95),
            "stale-view" | "skewed-start" | "scale-out" => {
                assert!(
                    r.work.moves_over_lower_bound <= 1.1,
                    "{name}: {} moves for a lower bound of {}",
                    r.work.replica_adds,
                    r.work.lower_bound_moves
                );
                assert_eq!(r.work.redundant_moves, 0, "{name}");
            }
            "decommission" => assert_eq!(r.safety.peak_below_quorum_regions, 0),
            "region-growth" => {
                // Regions grew past the split limit and were split at their split keys.
                assert!(r.work.splits >= 10, "{} splits", r.work.splits);
                assert!(r.regions > 80, "{} regions at the end", r.regions);
            }
            _ => {}
        }
    }
}

#[test]
fn the_baseline_scatters_affinity_groups_that_the_mc_keeps_together() {
    let (_, s) = scenarios()
        .into_iter()
        .find(|(n, _)| n == "affinity-groups")
        .unwrap();
    let mc = simulator::sim::run(&s, "mc", 3).report;
    let pd = simulator::sim::run(&s, "pd", 3).report;
    assert!(mc.final_sample.affinity_together >= 0.95);
    assert!(
        pd.final_sample.multi_rg_txn_ratio > mc.final_sample.multi_rg_txn_ratio + 0.2,
        "pd {} vs mc {}",
        pd.final_sample.multi_rg_txn_ratio,
        mc.final_sample.multi_rg_txn_ratio
    );
}

#[test]
fn the_same_seed_gives_the_same_report_and_another_seed_another() {
    let (_, s) = scenarios()
        .into_iter()
        .find(|(n, _)| n == "store-loss")
        .unwrap();
    let json =
        |seed| serde_json::to_string_pretty(&simulator::sim::run(&s, "mc", seed).report).unwrap();
    let a = json(7);
    let b = json(7);
    assert_eq!(a, b, "byte for byte");
    assert_eq!(simulator::hash(a.as_bytes()), simulator::hash(b.as_bytes()));
    assert_ne!(a, json(8));
}

#[test]
fn mcsim_run_writes_the_report_and_charts_and_compare_shows_both_policies() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scenarios/scale-out.toml");
    let out = Command::new(env!("CARGO_BIN_EXE_mcsim"))
        .arg("run")
        .arg(&scenario)
        .args(["--seed", "4", "--out"])
        .arg(dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let hash = stdout
        .lines()
        .find_map(|l| l.strip_prefix("report hash"))
        .unwrap()
        .trim()
        .to_string();
    let json = std::fs::read_to_string(dir.path().join("report.json")).unwrap();
    assert_eq!(
        hash,
        simulator::hash(json.as_bytes()),
        "the printed hash is the JSON's"
    );
    let report: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(report["scenario"], "scale-out");
    assert_eq!(report["seed"], 4);
    for chart in [
        "replicas.svg",
        "leaders.svg",
        "load.svg",
        "under_replicated.svg",
        "affinity.svg",
    ] {
        let svg = std::fs::read_to_string(dir.path().join(chart)).unwrap();
        assert!(
            svg.starts_with("<svg") && svg.contains("<polyline"),
            "{chart}"
        );
    }
    let out = Command::new(env!("CARGO_BIN_EXE_mcsim"))
        .arg("compare")
        .arg(&scenario)
        .args(["--policy", "mc", "--policy", "pd", "--seeds", "2"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert!(
        stdout.contains("moves / lower bound") && stdout.contains("difference"),
        "{stdout}"
    );
    // A bad scenario is refused naming the field.
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "name = \"x\"\nduration_secs = 0\n[cluster]\nstores = [{ count = 3 }]\n[data]\ntables = []\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_mcsim"))
        .arg("run")
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("duration_secs"));
}
