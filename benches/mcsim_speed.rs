//! How fast `mcsim` runs: simulated time over wall time for 24 simulated hours, and peak
//! memory, at 30 stores / 30k regions and at 300 stores / 1M regions. The day has work in
//! it: three stores join after an hour, one dies at six hours (re-replicated after
//! max_store_down_time), traffic turns hot at twelve.
//!
//! Run: `cargo bench --bench mcsim_speed` (env MCSIM_BENCH=small|large|both, default both).

use simulator::scenario::Scenario;

fn scenario(stores: u32, tables: u32) -> Scenario {
    let text = format!(
        r#"
name = "speed-{stores}-stores"
duration_secs = 86400
sample_secs = 300
[cluster]
stores = [{{ count = {stores} }}]
heartbeat_secs = 10
down_after_secs = 1800
[data]
tables = [{{ count = {tables}, indexes = 2, read_bps = 20000, write_bps = 10000 }}]
[workload]
skew = 0.8
txns_per_sample = 200
[config]
# A larger cluster runs more moves at once: up to 64 proposals per scheduler run.
"schedule.max-proposals" = "64"
[[events]]
at_secs = 3600
kind = "add_store"
count = 3
[[events]]
at_secs = 21600
kind = "kill_store"
store = 2
[[events]]
at_secs = 43200
kind = "load_change"
factor = 20.0
tables = 5
"#
    );
    Scenario::from_toml(&text).expect("bench scenario")
}

fn main() {
    let which = std::env::var("MCSIM_BENCH").unwrap_or_else(|_| "both".into());
    let mut cases = Vec::new();
    if which != "large" {
        cases.push((30, 10_000));
    }
    if which != "small" {
        cases.push((300, 333_334));
    }
    for (stores, tables) in cases {
        let s = scenario(stores, tables);
        let r = simulator::sim::run(&s, "mc", 1);
        println!(
            "mcsim_speed {stores} stores, {} regions, {} RGs, 24 h: {:.0}x simulated/wall ({:.1} s wall), peak RSS {:.0} MiB, {} replica moves, {} scheduler runs, {:.1} us scheduler CPU per decision",
            r.report.regions,
            r.report.rgs,
            r.cost.sim_over_wall,
            r.cost.wall_secs,
            r.cost.peak_rss_mib,
            r.report.work.replica_adds,
            r.cost.scheduler_runs,
            r.cost.scheduler_cpu_us_per_decision,
        );
    }
}
