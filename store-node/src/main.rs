//! `store-node`: a passive store holding Raft-replicated RGs in one RocksDB.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

#[derive(Parser, Debug)]
#[command(
    name = "store-node",
    version,
    about = "MC store node: RocksDB-backed replication groups, driven by the MC"
)]
struct Cli {
    /// Optional TOML config; flags override it.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Address to listen on for gRPC (KV, steps, Raft).
    #[arg(long, default_value = "127.0.0.1:7000")]
    listen: String,
    /// Address the MC, peers and clients dial; defaults to --listen.
    #[arg(long)]
    advertise: Option<String>,
    /// Directory of this store's RocksDB.
    #[arg(long, default_value = "./store-data")]
    data_dir: PathBuf,
    /// MC endpoints, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "http://127.0.0.1:6000")]
    mc: Vec<String>,
    /// Labels as KEY=VALUE, comma-separated (zone, rack, host, …).
    #[arg(long, value_delimiter = ',')]
    labels: Vec<String>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    eprintln!(
        "error: store-node is not available in this build yet (data dir {})",
        cli.data_dir.display()
    );
    ExitCode::from(2)
}
