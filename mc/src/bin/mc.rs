//! `mc`: the meta-controller server and the local playground cluster.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "mc",
    version,
    about = "MC meta-controller: serve the control plane, or run a local playground cluster"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Serve the MC: catalog, job engine, schedulers and gRPC API.
    Serve {
        /// This MC's id in its Raft group.
        #[arg(long, default_value_t = 1)]
        id: u64,
        /// Address to listen on for gRPC.
        #[arg(long, default_value = "127.0.0.1:6000")]
        listen: SocketAddr,
        /// Address other MCs, stores and clients dial; defaults to --listen.
        #[arg(long)]
        advertise: Option<String>,
        /// Directory of the catalog's RocksDB and Raft log.
        #[arg(long, default_value = "./mc-data")]
        data_dir: PathBuf,
        /// The other MCs of the group, as ID=HOST:PORT, comma-separated.
        #[arg(long, value_delimiter = ',')]
        peers: Vec<String>,
    },
    /// Start one MC and three store nodes on loopback, with a demo database and table.
    Playground {
        /// Where the MC and stores keep their data; reused by the next start.
        #[arg(long, default_value = "./playground-data")]
        data_dir: PathBuf,
        /// Delete the data directory first.
        #[arg(long)]
        clean: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let what = match cli.command {
        Command::Serve { .. } => "mc serve",
        Command::Playground { .. } => "mc playground",
    };
    eprintln!("error: `{what}` is not available in this build yet");
    ExitCode::from(2)
}
