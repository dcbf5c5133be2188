//! `mcctl`: the SRE's command line for the MC. Talks gRPC to any MC of the group and follows
//! the leader; prints aligned tables, or JSON with `--output json`; exits 0 on success, 1 when
//! a watched job did not succeed, 2 on bad usage, 3 when the MC refused (the typed reason is
//! on stderr), 4 when no MC or no leader could be reached.

mod access;
mod client;
mod cluster;
mod jobs;
mod render;
mod stores;

use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand, ValueEnum};

use client::{CliError, Mc};

#[derive(Parser, Debug)]
#[command(
    name = "mcctl",
    version,
    about = "Drive an MC cluster: stores, RGs, regions, objects, jobs, schedulers, config, history",
    after_help = "Exit codes: 0 success; 1 a watched job did not succeed; 2 bad usage; \
                  3 refused by the MC (reason on stderr); 4 no MC or leader reachable."
)]
struct Cli {
    /// MC endpoints (any members of the group; mcctl follows the leader).
    #[arg(
        long,
        global = true,
        value_delimiter = ',',
        default_value = "127.0.0.1:6000",
        env = "MC_ENDPOINTS"
    )]
    endpoint: Vec<String>,
    /// Output format.
    #[arg(long, global = true, value_enum, default_value_t = Output::Table)]
    output: Output,
    /// A bearer token (`mcctl token create`), instead of a client certificate.
    #[arg(long, global = true, env = "MC_TOKEN", hide_env_values = true)]
    token: Option<String>,
    #[command(flatten)]
    tls: infra::security::args::TlsArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Table,
    Json,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Stores: list, show, label, limit, drain, tombstone.
    #[command(subcommand)]
    Store(stores::StoreCmd),
    /// Replication groups: list, show.
    #[command(subcommand)]
    Rg(cluster::RgCmd),
    /// Regions: list, show.
    #[command(subcommand)]
    Region(cluster::RegionCmd),
    /// The data-object tree with each object's RGs and stores.
    #[command(subcommand)]
    Object(cluster::ObjectCmd),
    /// Submit, list, show, watch, pause, resume, cancel and retry jobs.
    #[command(subcommand)]
    Job(jobs::JobCmd),
    /// Schedulers: list, pause, resume, config.
    #[command(subcommand)]
    Scheduler(cluster::SchedulerCmd),
    /// Run-time configuration: show, set.
    #[command(subcommand)]
    Config(cluster::ConfigCmd),
    /// Execution records, the scheduling log ("why was this moved?") and the audit log.
    History(cluster::HistoryArgs),
    /// The MC group (members, leader, term) and the leader's readiness: RGs heard from in its
    /// term out of those the catalog knows.
    Status,
    /// Users and their roles: list, set, delete.
    #[command(subcommand)]
    User(access::UserCmd),
    /// Bearer tokens: create (the secret is printed once), list, revoke.
    #[command(subcommand)]
    Token(access::TokenCmd),
    /// Print shell completions.
    Completions { shell: clap_complete::Shell },
}

async fn run(cli: Cli) -> Result<(), CliError> {
    if let Command::Completions { shell } = &cli.command {
        clap_complete::generate(*shell, &mut Cli::command(), "mcctl", &mut std::io::stdout());
        return Ok(());
    }
    client::set_auth(&cli.tls, cli.token.clone())?;
    let mut mc = Mc::new(cli.endpoint)?;
    let out = cli.output;
    match cli.command {
        Command::Store(c) => stores::run(&mut mc, out, c).await,
        Command::Rg(c) => cluster::rg(&mut mc, out, c).await,
        Command::Region(c) => cluster::region(&mut mc, out, c).await,
        Command::Object(c) => cluster::object(&mut mc, out, c).await,
        Command::Job(c) => jobs::run(&mut mc, out, c).await,
        Command::User(c) => access::user(&mut mc, out, c).await,
        Command::Token(c) => access::token(&mut mc, out, c).await,
        Command::Scheduler(c) => cluster::scheduler(&mut mc, out, c).await,
        Command::Config(c) => cluster::config(&mut mc, out, c).await,
        Command::History(a) => cluster::history(&mut mc, out, a).await,
        Command::Status => cluster::status(&mut mc, out).await,
        Command::Completions { .. } => Ok(()),
    }
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(match e.kind() {
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => 0,
                _ => 2,
            });
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(4);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", e.message());
            ExitCode::from(e.exit_code())
        }
    }
}

/// Parses `KEY=VALUE`.
pub fn key_value(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .filter(|(k, _)| !k.is_empty())
        .ok_or_else(|| format!("`{s}` is not KEY=VALUE"))
}
