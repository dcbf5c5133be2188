//! `mcsim`: run capacity-planning scenarios against MC's real scheduling code.
//!
//! Exit codes: 0 done (and every expectation of the scenario held); 1 an expectation failed;
//! 2 bad usage or a bad scenario file.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use simulator::report::{Report, summary, svg_chart};
use simulator::scenario::Scenario;

#[derive(Parser, Debug)]
#[command(
    name = "mcsim",
    version,
    about = "Deterministic cluster simulator for MC's scheduling decisions"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run one scenario and write its report (JSON, SVG charts) to --out.
    Run {
        scenario: PathBuf,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        #[arg(long, default_value = "./mcsim-out")]
        out: PathBuf,
        /// mc (default) or pd.
        #[arg(long, default_value = "mc")]
        policy: String,
    },
    /// Run a scenario under several policies and seeds and compare them.
    Compare {
        scenario: PathBuf,
        #[arg(long = "policy", required = true)]
        policies: Vec<String>,
        #[arg(long, default_value_t = 5)]
        seeds: u64,
    },
}

fn load(path: &Path) -> Result<Scenario, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    Scenario::from_toml(&text).map_err(|e| format!("{}: {e}", path.display()))
}

fn write_outputs(out: &Path, r: &Report, json: &str, cost: &str) -> Result<(), String> {
    std::fs::create_dir_all(out).map_err(|e| format!("{}: {e}", out.display()))?;
    let write = |name: &str, body: &str| {
        std::fs::write(out.join(name), body).map_err(|e| format!("{name}: {e}"))
    };
    write("report.json", json)?;
    write("cost.json", cost)?;
    let series = |f: &dyn Fn(&simulator::report::Sample) -> f64| -> Vec<(u64, f64)> {
        r.samples.iter().map(|s| (s.t_secs, f(s))).collect()
    };
    write(
        "replicas.svg",
        &svg_chart(
            "replicas per store, max/mean",
            &series(&|s| s.replicas.max_over_mean),
        ),
    )?;
    write(
        "leaders.svg",
        &svg_chart(
            "leaders per store, max/mean",
            &series(&|s| s.leaders.max_over_mean),
        ),
    )?;
    write(
        "load.svg",
        &svg_chart(
            "traffic per store, max/mean",
            &series(&|s| s.load.max_over_mean),
        ),
    )?;
    write(
        "under_replicated.svg",
        &svg_chart(
            "regions under-replicated",
            &series(&|s| s.under_replicated_regions as f64),
        ),
    )?;
    write(
        "affinity.svg",
        &svg_chart(
            "transactions over more than one RG",
            &series(&|s| s.multi_rg_txn_ratio),
        ),
    )?;
    Ok(())
}

fn run(scenario: &Path, seed: u64, out: &Path, policy: &str) -> Result<bool, String> {
    let s = load(scenario)?;
    if !matches!(policy, "mc" | "pd") {
        return Err(format!("--policy: `{policy}` is not mc or pd"));
    }
    let result = simulator::sim::run(&s, policy, seed);
    let json = serde_json::to_string_pretty(&result.report).map_err(|e| e.to_string())?;
    let cost = serde_json::to_string_pretty(&result.cost).map_err(|e| e.to_string())?;
    let hash = simulator::hash(json.as_bytes());
    print!("{}", summary(&result.report, &hash));
    println!(
        "cost            {:.0}x simulated/wall ({:.2} s wall), peak RSS {:.0} MiB, {:.1} us scheduler CPU per decision",
        result.cost.sim_over_wall,
        result.cost.wall_secs,
        result.cost.peak_rss_mib,
        result.cost.scheduler_cpu_us_per_decision
    );
    write_outputs(out, &result.report, &json, &cost)?;
    println!("written         {}", out.display());
    Ok(result.report.failed_expectations.is_empty())
}

fn compare(scenario: &Path, policies: &[String], seeds: u64) -> Result<(), String> {
    let s = load(scenario)?;
    for p in policies {
        if !matches!(p.as_str(), "mc" | "pd") {
            return Err(format!("--policy: `{p}` is not mc or pd"));
        }
    }
    if seeds == 0 {
        return Err("--seeds: at least 1".into());
    }
    type Metric = (&'static str, fn(&Report) -> f64);
    let metrics: [Metric; 9] = [
        ("convergence (s, run length if never)", |r| {
            r.convergence_secs.unwrap_or(r.duration_secs) as f64
        }),
        ("replica max/mean at end", |r| {
            r.final_sample.replicas.max_over_mean
        }),
        ("leader max/mean at end", |r| {
            r.final_sample.leaders.max_over_mean
        }),
        ("replica moves", |r| r.work.replica_adds as f64),
        ("moves / lower bound", |r| r.work.moves_over_lower_bound),
        ("redundant moves", |r| r.work.redundant_moves as f64),
        ("under-replicated region-s", |r| {
            r.safety.under_replicated_region_secs as f64
        }),
        ("txns over >1 RG", |r| r.final_sample.multi_rg_txn_ratio),
        ("txns over >1 store", |r| {
            r.final_sample.multi_store_txn_ratio
        }),
    ];
    let mut results: Vec<Vec<Report>> = Vec::new();
    for p in policies {
        results.push(
            (1..=seeds)
                .map(|seed| simulator::sim::run(&s, p, seed).report)
                .collect(),
        );
    }
    println!("mcsim compare {} over seeds 1..={seeds}", s.name);
    let mut header = format!("{:<38}", "metric (mean, min..max)");
    for p in policies {
        header.push_str(&format!("{:>26}", p));
    }
    if policies.len() == 2 {
        header.push_str(&format!("{:>14}", "difference"));
    }
    println!("{header}");
    for (name, f) in metrics {
        let mut line = format!("{name:<38}");
        let mut means = Vec::new();
        for reports in &results {
            let values: Vec<f64> = reports.iter().map(f).collect();
            let mean = values.iter().sum::<f64>() / values.len() as f64;
            let min = values.iter().copied().fold(f64::MAX, f64::min);
            let max = values.iter().copied().fold(f64::MIN, f64::max);
            means.push(mean);
            line.push_str(&format!(
                "{:>26}",
                format!("{mean:.3} ({min:.3}..{max:.3})")
            ));
        }
        if means.len() == 2 {
            line.push_str(&format!("{:>14.3}", means[1] - means[0]));
        }
        println!("{line}");
    }
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run {
            scenario,
            seed,
            out,
            policy,
        } => run(&scenario, seed, &out, &policy).map(|met| if met { 0 } else { 1 }),
        Command::Compare {
            scenario,
            policies,
            seeds,
        } => compare(&scenario, &policies, seeds).map(|_| 0),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}
