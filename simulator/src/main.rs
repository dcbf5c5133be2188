//! `mcsim`: run capacity-planning scenarios against MC's real scheduling code.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

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
    /// Run one scenario and write its report.
    Run {
        scenario: PathBuf,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        #[arg(long, default_value = "./mcsim-out")]
        out: PathBuf,
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

fn main() -> ExitCode {
    let cli = Cli::parse();
    eprintln!(
        "error: `{:?}` is not available in this build yet",
        cli.command
    );
    ExitCode::from(2)
}
