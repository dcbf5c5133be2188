//! `store-node`: a passive store holding Raft-replicated RGs in one RocksDB.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use store_node::config::StoreConfig;
use store_node::server::StoreNode;

#[derive(Parser, Debug)]
#[command(
    name = "store-node",
    version,
    about = "MC store node: RocksDB-backed replication groups, driven by the MC"
)]
struct Cli {
    /// Optional TOML config (keys as in `StoreConfig`); flags override it.
    #[arg(long)]
    config: Option<PathBuf>,
    /// This store's id; 0 or unset asks the MC at first registration.
    #[arg(long)]
    store_id: Option<u64>,
    /// Address to listen on for gRPC (KV, steps, Raft).
    #[arg(long)]
    listen: Option<String>,
    /// Address the MC, peers and clients dial; defaults to --listen.
    #[arg(long)]
    advertise: Option<String>,
    /// Directory of this store's RocksDB and snapshots.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// MC endpoints, comma-separated.
    #[arg(long, value_delimiter = ',')]
    mc: Vec<String>,
    /// Labels as KEY=VALUE, comma-separated (zone, rack, host, …).
    #[arg(long, value_delimiter = ',')]
    labels: Vec<String>,
    /// Store heartbeat interval in milliseconds.
    #[arg(long)]
    store_heartbeat_ms: Option<u64>,
    /// RG heartbeat interval in milliseconds.
    #[arg(long)]
    rg_heartbeat_ms: Option<u64>,
    /// Raft heartbeat interval in milliseconds (election timeouts scale with it: 3x to 6x).
    #[arg(long)]
    raft_heartbeat_ms: Option<u64>,
    /// Build a snapshot of an RG after this many applied log entries.
    #[arg(long)]
    snapshot_after_logs: Option<u64>,
    /// Log entries kept behind the last snapshot.
    #[arg(long)]
    logs_to_keep: Option<u64>,
    /// An RG nothing touched for this long stops its Raft ticks until something does (0: never).
    #[arg(long)]
    hibernate_after_ms: Option<u64>,
    /// Snapshot bytes per second sent to one peer (0: unlimited).
    #[arg(long)]
    snapshot_rate_bytes: Option<u64>,
    /// Log as JSON lines.
    #[arg(long)]
    log_json: bool,
    /// Serve Prometheus metrics at http://ADDR/metrics.
    #[arg(long)]
    metrics_listen: Option<String>,
    /// Users that may read and write rows until an MC sends who may (for a store run without
    /// an MC); the MC's list, once sent, replaces it for good.
    #[arg(long, value_delimiter = ',')]
    bootstrap_data_users: Vec<String>,
    #[command(flatten)]
    tls: store_node::security::args::TlsArgs,
}

fn load(cli: Cli) -> Result<StoreConfig, String> {
    let mut config = match &cli.config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("--config {}: {e}", path.display()))?;
            StoreConfig::from_toml(&text).map_err(|e| e.to_string())?
        }
        None => StoreConfig::default(),
    };
    if let Some(v) = cli.store_id {
        config.store_id = v;
    }
    if let Some(v) = cli.listen {
        config.listen = v;
    }
    if cli.advertise.is_some() {
        config.advertise = cli.advertise;
    }
    if let Some(v) = cli.data_dir {
        config.data_dir = v;
    }
    if !cli.mc.is_empty() {
        config.mc = cli.mc;
    }
    if !cli.labels.is_empty() {
        config
            .labels
            .extend(StoreConfig::parse_labels(&cli.labels).map_err(|e| e.to_string())?);
    }
    if let Some(v) = cli.store_heartbeat_ms {
        config.store_heartbeat_ms = v;
    }
    if let Some(v) = cli.rg_heartbeat_ms {
        config.rg_heartbeat_ms = v;
    }
    if let Some(v) = cli.raft_heartbeat_ms {
        config.raft_heartbeat_ms = v;
        config.raft_election_min_ms = v * 3;
        config.raft_election_max_ms = v * 6;
    }
    if let Some(v) = cli.snapshot_after_logs {
        config.snapshot_after_logs = v;
    }
    if let Some(v) = cli.logs_to_keep {
        config.logs_to_keep = v;
    }
    if let Some(v) = cli.hibernate_after_ms {
        config.hibernate_after_ms = v;
    }
    if let Some(v) = cli.snapshot_rate_bytes {
        config.snapshot_rate_bytes = v;
    }
    if cli.log_json {
        config.log_format = "json".into();
    }
    if cli.tls.tls_ca.is_some() {
        config.tls_ca = cli.tls.tls_ca;
    }
    if cli.tls.tls_cert.is_some() {
        config.tls_cert = cli.tls.tls_cert;
    }
    if cli.tls.tls_key.is_some() {
        config.tls_key = cli.tls.tls_key;
    }
    config.insecure |= cli.tls.insecure;
    if !cli.bootstrap_data_users.is_empty() {
        config.bootstrap_data_users = cli.bootstrap_data_users;
    }
    if let Some(m) = cli.metrics_listen {
        config.metrics_listen = Some(m);
    }
    config.validate().map_err(|e| e.to_string())?;
    Ok(config)
}

fn init_tracing(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,openraft=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        builder.json().init()
    } else {
        builder.init()
    }
}

fn main() -> ExitCode {
    store_node::failpoint::init_from_env();
    let config = match load(Cli::parse()) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    init_tracing(config.log_format == "json");
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
        let listener = match tokio::net::TcpListener::bind(&config.listen).await {
            Ok(l) => l,
            Err(e) => {
                eprintln!("error: cannot listen on {}: {e}", config.listen);
                return ExitCode::FAILURE;
            }
        };
        let bound = listener
            .local_addr()
            .expect("bound listener has an address");
        let advertise = config.advertise_addr(bound);
        let security = match config.security() {
            Ok(s) => s,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(2);
            }
        };
        let node = match StoreNode::start(
            listener,
            config.store_options(advertise, security),
            config.heartbeat_options(),
        )
        .await
        {
            Ok(node) => node,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::FAILURE;
            }
        };
        node.store
            .data_access
            .bootstrap(&config.bootstrap_data_users);
        // Machine-readable readiness line for scripts and tests.
        println!(
            "store-node ready store_id={} addr={}",
            node.store.id(),
            node.addr
        );
        let metrics = match &config.metrics_listen {
            Some(addr) => match tokio::net::TcpListener::bind(addr).await {
                Ok(l) => {
                    println!(
                        "store-node metrics addr={}",
                        l.local_addr().map(|a| a.to_string()).unwrap_or_default()
                    );
                    let store = node.store.clone();
                    let render = std::sync::Arc::new(move || store_node::metrics::render(&store));
                    Some(tokio::spawn(store_node::prometheus::serve(
                        l,
                        render,
                        std::future::pending(),
                    )))
                }
                Err(e) => {
                    eprintln!("error: cannot listen on {addr} for metrics: {e}");
                    node.stop().await;
                    return ExitCode::FAILURE;
                }
            },
            None => None,
        };
        wait_for_signal().await;
        tracing::info!("shutting down: handing leadership over first");
        if let Some(m) = metrics {
            m.abort();
        }
        node.stop_gracefully(std::time::Duration::from_secs(5))
            .await;
        ExitCode::SUCCESS
    })
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("install SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("install SIGINT handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}
