//! `mcctl`: the SRE's command line for the MC.

use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

#[derive(Parser, Debug)]
#[command(
    name = "mcctl",
    version,
    about = "Drive an MC cluster: stores, RGs, regions, jobs, schedulers, history"
)]
struct Cli {
    /// MC endpoints; mcctl follows the leader among them.
    #[arg(
        long,
        global = true,
        value_delimiter = ',',
        default_value = "http://127.0.0.1:6000"
    )]
    endpoint: Vec<String>,
    /// Output format.
    #[arg(long, global = true, value_enum, default_value_t = Output::Table)]
    output: Output,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Output {
    Table,
    Json,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Stores: list, show, label, limit, drain, tombstone.
    Store,
    /// Replication groups: list, show.
    Rg,
    /// Regions: list, show.
    Region,
    /// The data-object tree with each object's RGs and stores.
    Object,
    /// Submit, list, show, watch, pause, resume, cancel and retry jobs.
    Job,
    /// Schedulers: list, pause, resume, config.
    Scheduler,
    /// Run-time configuration: show, set.
    Config,
    /// Execution records, the scheduling log and the audit log.
    History,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    eprintln!(
        "error: `mcctl {:?}` is not available in this build yet",
        cli.command
    );
    ExitCode::from(2)
}
