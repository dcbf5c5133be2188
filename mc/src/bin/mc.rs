//! `mc`: the meta-controller server and the local playground cluster.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use mc::cluster::LivenessConfig;
use mc::server::{McRaftTuning, ServeConfig, serve};

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
#[allow(clippy::large_enum_variant)] // parsed once at start
enum Command {
    /// Serve the MC: catalog, job engine, cluster view and gRPC API.
    Serve {
        /// This MC's id in its group.
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
        /// The members of the MC group, as ID=HOST:PORT, comma-separated (this MC may be
        /// listed too). Every member is started with the same list; empty for one MC.
        #[arg(long, value_delimiter = ',')]
        peers: Vec<String>,
        /// Raft heartbeat of the MC group. A failover takes one to two election timeouts:
        /// followers keep the old leader's lease for --election-max-ms.
        #[arg(long, default_value_t = 100)]
        raft_heartbeat_ms: u64,
        #[arg(long, default_value_t = 500)]
        election_min_ms: u64,
        #[arg(long, default_value_t = 800)]
        election_max_ms: u64,
        /// Create this user as an admin when the catalog has no users yet (its certificate,
        /// user-NAME.pem from `mc certs init`, or a token made for it, then manages the rest).
        #[arg(long, default_value = "admin")]
        admin_user: String,
        #[command(flatten)]
        tls: infra::security::args::TlsArgs,
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
        /// Serve Prometheus metrics at http://ADDR/metrics.
        #[arg(long)]
        metrics_listen: Option<SocketAddr>,
        /// How long a DDL call waits for its request before answering Unavailable (the
        /// request goes on; calling again with the same request id keeps waiting).
        #[arg(long, default_value_t = 60_000)]
        ddl_wait_ms: u64,
        /// A new table (affinity group) joins an existing RG while the RG then holds at most
        /// this many regions, so small tables share Raft groups; 1: an RG per group.
        #[arg(long, default_value_t = 64)]
        ddl_rg_max_regions: usize,
        /// The largest capacity a store may report; a report above it is refused.
        #[arg(long, default_value_t = 1 << 56)]
        max_store_capacity_bytes: u64,
        /// How long a store's report may disagree with the catalog the way a job in flight
        /// explains (a learner not yet recorded, a new RG) before it counts as a lie.
        #[arg(long, default_value_t = 60_000)]
        report_grace_ms: u64,
        /// Audit records older than this many days are deleted.
        #[arg(long, default_value_t = 90)]
        audit_retention_days: u64,
        /// Log as JSON lines.
        #[arg(long)]
        log_json: bool,
    },
    /// Make a cluster CA and certificates for development and tests (production brings its
    /// own PEM files).
    Certs {
        #[command(subcommand)]
        command: CertsCommand,
    },
    /// Start one MC and three store nodes on loopback, with a demo database and table.
    Playground {
        /// Where the MC and stores keep their data; reused by the next start.
        #[arg(long, default_value = "./playground-data")]
        data_dir: PathBuf,
        /// Delete the data directory first.
        #[arg(long)]
        clean: bool,
        /// The MC's port on 127.0.0.1; the three stores take the next three.
        #[arg(long, default_value_t = 6000)]
        port: u16,
    },
}

#[derive(Subcommand, Debug)]
enum CertsCommand {
    /// A new CA (ca.pem, ca.key) and certificates for MCs 1..=N, stores 1..=N and users.
    Init {
        /// Where to write them (created).
        #[arg(long, default_value = "./certs")]
        dir: PathBuf,
        #[arg(long, default_value_t = 1)]
        mcs: u64,
        #[arg(long, default_value_t = 3)]
        stores: u64,
        /// Users to make client certificates for (user-NAME.pem).
        #[arg(long, value_delimiter = ',', default_value = "admin")]
        users: Vec<String>,
        /// Host names and IPs MCs and stores are dialed at.
        #[arg(long, value_delimiter = ',', default_value = "localhost,127.0.0.1,::1")]
        hosts: Vec<String>,
        /// Days the certificates are valid (default: 365 for MCs and stores, 90 for users).
        #[arg(long)]
        valid_days: Option<u32>,
    },
    /// One more certificate from the CA in --dir: `mc/4`, `store/7` or `user/alice`.
    Issue {
        #[arg(long, default_value = "./certs")]
        dir: PathBuf,
        who: String,
        #[arg(long, value_delimiter = ',', default_value = "localhost,127.0.0.1,::1")]
        hosts: Vec<String>,
        /// Days the certificate is valid (default: 365 for MCs and stores, 90 for users).
        #[arg(long)]
        valid_days: Option<u32>,
    },
}

fn certs(command: CertsCommand) -> Result<(), String> {
    use infra::security::Identity;
    use infra::security::pki::Authority;
    match command {
        CertsCommand::Init {
            dir,
            mcs,
            stores,
            users,
            hosts,
            valid_days,
        } => {
            if dir.join("ca.key").exists() {
                return Err(format!(
                    "{} already holds a CA; `mc certs issue` adds certificates to it",
                    dir.display()
                ));
            }
            let ca = Authority::generate("mc").map_err(|e| e.to_string())?;
            ca.write_ca(&dir).map_err(|e| e.to_string())?;
            let mut who: Vec<Identity> = (1..=mcs).map(Identity::Mc).collect();
            who.extend((1..=stores).map(Identity::Store));
            for user in &users {
                who.push(Identity::parse(&format!("user/{user}")).ok_or_else(|| {
                    format!("--users: `{}` is no user name", mc::error::short(user))
                })?);
            }
            for w in &who {
                let days =
                    valid_days.unwrap_or_else(|| infra::security::pki::default_validity_days(w));
                let (cert, _) = ca
                    .write_issued_for(&dir, w, &hosts, days)
                    .map_err(|e| e.to_string())?;
                println!("{w}: {}", cert.display());
            }
            println!("CA: {}", dir.join("ca.pem").display());
            Ok(())
        }
        CertsCommand::Issue {
            dir,
            who,
            hosts,
            valid_days,
        } => {
            let w = Identity::parse(&who).ok_or_else(|| {
                format!(
                    "`{}` is not mc/N, store/N or user/NAME",
                    mc::error::short(&who)
                )
            })?;
            let ca = Authority::load(&dir).map_err(|e| e.to_string())?;
            let days =
                valid_days.unwrap_or_else(|| infra::security::pki::default_validity_days(&w));
            let (cert, _) = ca
                .write_issued_for(&dir, &w, &hosts, days)
                .map_err(|e| e.to_string())?;
            println!("{w}: {}", cert.display());
            Ok(())
        }
    }
}

fn main() -> ExitCode {
    infra::failpoint::init_from_env();
    match Cli::parse().command {
        Command::Serve {
            id,
            listen,
            advertise,
            data_dir,
            peers,
            disconnected_after_ms,
            down_after_ms,
            store_heartbeat_ms,
            rg_heartbeat_ms,
            raft_heartbeat_ms,
            election_min_ms,
            election_max_ms,
            admin_user,
            tls,
            metrics_listen,
            ddl_wait_ms,
            ddl_rg_max_regions,
            max_store_capacity_bytes,
            report_grace_ms,
            audit_retention_days,
            log_json,
        } => {
            let peers = match mc::server::parse_peers(&peers) {
                Ok(p) => p,
                Err(e) => {
                    eprintln!("error: --peers: {e}");
                    return ExitCode::from(2);
                }
            };
            if id == 0 {
                eprintln!("error: --id must be 1 or more");
                return ExitCode::from(2);
            }
            if election_min_ms <= raft_heartbeat_ms || election_max_ms <= election_min_ms {
                eprintln!(
                    "error: --election-min-ms must exceed --raft-heartbeat-ms, and --election-max-ms must exceed --election-min-ms"
                );
                return ExitCode::from(2);
            }
            if down_after_ms < disconnected_after_ms {
                eprintln!("error: --down-after-ms must be at least --disconnected-after-ms");
                return ExitCode::from(2);
            }
            let security = match tls.security() {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::from(2);
                }
            };
            init_tracing("info", log_json);
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
                    id,
                    listen,
                    advertise: advertise.unwrap_or_else(|| listen.to_string()),
                    peers,
                    data_dir,
                    liveness: LivenessConfig {
                        disconnected_after_ms,
                        down_after_ms,
                    },
                    store_heartbeat_ms,
                    rg_heartbeat_ms,
                    raft: McRaftTuning {
                        heartbeat_ms: raft_heartbeat_ms,
                        election_min_ms,
                        election_max_ms,
                    },
                    security,
                    admin_user: Some(admin_user),
                    metrics_listen,
                    ddl_wait_ms,
                    ddl_rg_max_regions,
                    evidence: mc::cluster::evidence::EvidenceConfig {
                        max_store_capacity_bytes,
                        grace_ms: report_grace_ms,
                        ..Default::default()
                    },
                    audit_retention_ms: audit_retention_days.saturating_mul(24 * 3_600_000),
                };
                match serve(config, listener, signals()).await {
                    Ok(()) => ExitCode::SUCCESS,
                    Err(e) => {
                        eprintln!("error: {e}");
                        ExitCode::FAILURE
                    }
                }
            })
        }
        Command::Certs { command } => match certs(command) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(2)
            }
        },
        Command::Playground {
            data_dir,
            clean,
            port,
        } => {
            init_tracing("warn,openraft=error", false);
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
            let config = mc::playground::PlaygroundConfig {
                data_dir,
                clean,
                port,
            };
            runtime.block_on(async move {
                match mc::playground::run(config, signals()).await {
                    Ok(()) => ExitCode::SUCCESS,
                    Err(e) => {
                        eprintln!("error: {e}");
                        ExitCode::FAILURE
                    }
                }
            })
        }
    }
}

fn init_tracing(default_filter: &str, json: bool) {
    let builder = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| default_filter.into()),
        )
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

/// Resolves on SIGINT or SIGTERM.
async fn signals() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
    tokio::select! { _ = term.recv() => {}, _ = int.recv() => {} }
}
