//! `mc`: the meta-controller server and the local playground cluster.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use mc::cluster::LivenessConfig;
use mc::server::{ServeConfig, serve};

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
    /// Serve the MC: catalog, job engine, cluster view and gRPC API.
    Serve {
        /// This MC's id in its group (multi-MC groups are not available yet).
        #[arg(long, default_value_t = 1)]
        id: u64,
        /// Address to listen on for gRPC.
        #[arg(long, default_value = "127.0.0.1:6000")]
        listen: SocketAddr,
        /// Address other MCs, stores and clients dial; defaults to --listen.
        #[arg(long)]
        advertise: Option<String>,
        /// Directory of the catalog.
        #[arg(long, default_value = "./mc-data")]
        data_dir: PathBuf,
        /// The other MCs of the group, as ID=HOST:PORT, comma-separated.
        #[arg(long, value_delimiter = ',')]
        peers: Vec<String>,
        /// A store silent this long is Disconnected.
        #[arg(long, default_value_t = 20_000)]
        disconnected_after_ms: u64,
        /// A store silent this long is Down (max_store_down_time).
        #[arg(long, default_value_t = 1_800_000)]
        down_after_ms: u64,
        /// Intervals stores are asked to report at.
        #[arg(long, default_value_t = 10_000)]
        store_heartbeat_ms: u32,
        #[arg(long, default_value_t = 10_000)]
        rg_heartbeat_ms: u32,
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
    match Cli::parse().command {
        Command::Serve {
            listen,
            data_dir,
            peers,
            disconnected_after_ms,
            down_after_ms,
            store_heartbeat_ms,
            rg_heartbeat_ms,
            ..
        } => {
            if !peers.is_empty() {
                eprintln!(
                    "error: --peers: replicated MC groups are not available in this build yet; run one MC"
                );
                return ExitCode::from(2);
            }
            if down_after_ms < disconnected_after_ms {
                eprintln!("error: --down-after-ms must be at least --disconnected-after-ms");
                return ExitCode::from(2);
            }
            tracing_subscriber::fmt()
                .with_env_filter(
                    tracing_subscriber::EnvFilter::try_from_default_env()
                        .unwrap_or_else(|_| "info".into()),
                )
                .with_writer(std::io::stderr)
                .init();
            let runtime = match tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("error: cannot start the runtime: {e}");
                    return ExitCode::FAILURE;
                }
            };
            runtime.block_on(async move {
                let listener = match tokio::net::TcpListener::bind(listen).await {
                    Ok(l) => l,
                    Err(e) => {
                        eprintln!("error: cannot listen on {listen}: {e}");
                        return ExitCode::FAILURE;
                    }
                };
                let config = ServeConfig {
                    listen,
                    data_dir,
                    liveness: LivenessConfig {
                        disconnected_after_ms,
                        down_after_ms,
                    },
                    store_heartbeat_ms,
                    rg_heartbeat_ms,
                };
                let shutdown = async {
                    use tokio::signal::unix::{SignalKind, signal};
                    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
                    let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
                    tokio::select! { _ = term.recv() => {}, _ = int.recv() => {} }
                };
                match serve(config, listener, shutdown).await {
                    Ok(()) => ExitCode::SUCCESS,
                    Err(e) => {
                        eprintln!("error: {e}");
                        ExitCode::FAILURE
                    }
                }
            })
        }
        Command::Playground { .. } => {
            eprintln!("error: `mc playground` is not available in this build yet");
            ExitCode::from(2)
        }
    }
}
