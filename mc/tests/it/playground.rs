//! `mc playground` as a real process: it becomes ready, mcctl works against it, its metrics
//! endpoints answer in the Prometheus text format, every server answers gRPC health checks and
//! lists its services by reflection, SIGINT stops it cleanly (exit 0, nothing left listening),
//! and a restart on the same directory reuses the data.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::mcctl_exe;

use tokio_stream::StreamExt;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_reflection::pb::v1::ServerReflectionRequest;
use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

/// A base port with the 14 ports the playground takes (MC, 3 stores, 4 metrics) free, below
/// the ephemeral range (32768 and up) the other tests' servers and connections take ports
/// from at random: a port found free here stays free while the playground restarts on it.
fn base_port() -> u16 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let mut base = 20_000 + ((nanos ^ std::process::id()) % 12_000) as u16;
    loop {
        let free = (0..14).all(|i| std::net::TcpListener::bind(("127.0.0.1", base + i)).is_ok());
        if free {
            return base;
        }
        base = if base > 32_700 { 20_000 } else { base + 14 };
    }
}

struct Playground(Child);

impl Drop for Playground {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts the playground and waits for its ready line; returns the process and its stdout
/// so far. A playground that exits before it is ready is started again (up to five times): a
/// port of its range can be taken meanwhile by another test's process, which this test
/// cannot reserve across a restart.
fn start(dir: &std::path::Path, port: u16) -> (Playground, String) {
    let mut last = String::new();
    for _ in 0..5 {
        match try_start(dir, port) {
            Ok(started) => return started,
            Err(why) => last = why,
        }
        std::thread::sleep(Duration::from_secs(1));
    }
    panic!("playground exited before it was ready, five times: {last}");
}

/// The first start, on a fresh range of ports each try.
fn first_start(dir: &std::path::Path) -> (u16, (Playground, String)) {
    let mut last = String::new();
    for _ in 0..5 {
        let port = base_port();
        match try_start(dir, port) {
            Ok(started) => return (port, started),
            Err(why) => last = why,
        }
        let _ = std::fs::remove_dir_all(dir);
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("playground exited before it was ready, five times: {last}");
}

fn try_start(dir: &std::path::Path, port: u16) -> Result<(Playground, String), String> {
    let mut spawned = Command::new(env!("CARGO_BIN_EXE_mc"))
        .args(["playground", "--port", &port.to_string(), "--data-dir"])
        .arg(dir)
        .env("RUST_LOG", "error")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = spawned.stdout.take().unwrap();
    // Killed and reaped when dropped, also when the wait below fails.
    let child = Playground(spawned);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut seen = String::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let line = match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(line) => line,
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                return Err(format!("exited; it printed: {seen}"));
            }
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                panic!("playground not ready in 60 s: {seen}")
            }
        };
        seen.push_str(&line);
        seen.push('\n');
        if line.contains("Ctrl-C stops everything") {
            // Keep draining so the process never blocks on a full pipe.
            std::thread::spawn(move || while rx.recv().is_ok() {});
            return Ok((child, seen));
        }
    }
}

fn mcctl(dir: &std::path::Path, port: u16, args: &[&str]) -> (i32, String) {
    let certs = dir.join("certs");
    let out = Command::new(mcctl_exe())
        .args(["--endpoint", &format!("127.0.0.1:{port}")])
        .env("MC_TLS_CA", certs.join("ca.pem"))
        .env("MC_TLS_CERT", certs.join("user-admin.pem"))
        .env("MC_TLS_KEY", certs.join("user-admin.key"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// `GET /metrics`, parsed: every sample line is NAME{LABELS} VALUE with a float value.
pub(crate) fn scrape(port: u16) -> Vec<(String, f64)> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(head.contains("text/plain; version=0.0.4"), "{head}");
    let mut samples = Vec::new();
    for line in body.lines() {
        if line.starts_with('#') {
            assert!(
                line.starts_with("# HELP ") || line.starts_with("# TYPE "),
                "{line}"
            );
            continue;
        }
        let (series, value) = line.rsplit_once(' ').unwrap();
        let value: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("bad value: {line}"));
        samples.push((series.to_string(), value));
    }
    samples
}

pub(crate) fn value(samples: &[(String, f64)], series: &str) -> Option<f64> {
    samples.iter().find(|(s, _)| s == series).map(|(_, v)| *v)
}

/// TLS with the playground's CA and no client certificate: health and reflection answer
/// anyone.
async fn channel(data: &std::path::Path, port: u16) -> tonic::transport::Channel {
    let ca = std::fs::read(data.join("certs").join("ca.pem")).unwrap();
    store_node::security::Security::ca_only(&ca)
        .connect(&format!("127.0.0.1:{port}"))
        .await
        .unwrap()
}

async fn services(data: &std::path::Path, port: u16) -> Vec<String> {
    let mut client = ServerReflectionClient::new(channel(data, port).await);
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut stream = client
        .server_reflection_info(tokio_stream::iter(vec![request]))
        .await
        .unwrap()
        .into_inner();
    let reply = stream.next().await.unwrap().unwrap();
    match reply.message_response {
        Some(MessageResponse::ListServicesResponse(l)) => {
            l.service.into_iter().map(|s| s.name).collect()
        }
        other => panic!("{other:?}"),
    }
}

async fn healthy(data: &std::path::Path, port: u16) -> bool {
    let mut client = HealthClient::new(channel(data, port).await);
    let reply = client
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    reply.status == ServingStatus::Serving as i32
}

fn interrupt(child: &mut Playground) -> std::process::ExitStatus {
    let pid = child.0.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-INT", &pid])
            .status()
            .unwrap()
            .success()
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = child.0.try_wait().unwrap() {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "the playground did not stop on SIGINT"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_playground_serves_stops_on_sigint_and_restarts_on_its_data() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("pg");
    // A first start that lost a port of its range to another test's process starts again on
    // another range (a restart below must use the same one: its stores' peers know them).
    let (port, (mut pg, banner)) = first_start(&data);
    assert!(
        banner.contains(&format!("MC:     127.0.0.1:{port}")),
        "{banner}"
    );
    assert!(
        banner.contains(&format!("{} --endpoint", mcctl_exe().display())),
        "the commands name the mcctl next to mc: {banner}"
    );

    let (code, tree) = mcctl(&data, port, &["object", "tree"]);
    assert_eq!(code, 0);
    assert!(
        tree.contains("orders") && tree.contains("by_customer"),
        "{tree}"
    );
    let (code, rgs) = mcctl(&data, port, &["--output", "json", "rg", "list"]);
    assert_eq!(code, 0);
    let rgs: serde_json::Value = serde_json::from_str(&rgs).unwrap();
    assert_eq!(
        rgs["rgs"].as_array().unwrap().len(),
        1,
        "the demo table's RG"
    );

    // Metrics: the MC leads and counted the demo's jobs; each store reports its replica.
    let mc = scrape(port + 10);
    assert_eq!(value(&mc, "mc_is_leader{mc=\"1\"}"), Some(1.0));
    assert_eq!(value(&mc, "mc_rgs"), Some(1.0));
    assert!(
        value(&mc, "mc_jobs{type=\"CreateRg\",state=\"succeeded\"}").unwrap_or(0.0) >= 1.0,
        "{mc:?}"
    );
    assert!(
        mc.iter()
            .any(|(s, v)| s.starts_with("mc_step_duration_seconds_count") && *v > 0.0)
    );
    assert!(
        mc.iter()
            .any(|(s, v)| s == "mc_heartbeats_total{kind=\"store\"}" && *v > 0.0)
    );
    assert!(
        mc.iter()
            .any(|(s, _)| s.starts_with("mc_scheduler_decisions_total{"))
    );
    for (i, store) in (1..=3).enumerate() {
        let s = scrape(port + 11 + i as u16);
        assert_eq!(
            value(&s, &format!("store_replicas{{store=\"{store}\"}}")),
            Some(1.0)
        );
        assert!(
            s.iter()
                .any(|(k, _)| k.starts_with("store_raft_applied_index{"))
        );
    }

    // Health and reflection on the MC and on a store.
    assert!(healthy(&data, port).await);
    assert!(healthy(&data, port + 1).await);
    let mc_services = services(&data, port).await;
    for s in [
        "mc.v1.MetaService",
        "mc.v1.JobService",
        "mc.v1.ClusterService",
        "mc.v1.HeartbeatService",
        "mc.v1.RaftService",
        "grpc.health.v1.Health",
        "grpc.reflection.v1.ServerReflection",
    ] {
        assert!(mc_services.contains(&s.to_string()), "{s}: {mc_services:?}");
    }
    let store_services = services(&data, port + 1).await;
    for s in ["mc.v1.KvService", "mc.v1.StoreService", "mc.v1.RaftService"] {
        assert!(
            store_services.contains(&s.to_string()),
            "{s}: {store_services:?}"
        );
    }
    assert!(!store_services.contains(&"mc.v1.JobService".to_string()));

    // SIGINT: a clean exit, and nothing is left listening.
    let status = interrupt(&mut pg);
    assert!(status.success(), "{status:?}");
    for p in [port, port + 1, port + 2, port + 3, port + 10] {
        assert!(
            std::net::TcpListener::bind(("127.0.0.1", p)).is_ok(),
            "port {p} still taken"
        );
    }

    // A restart reuses the data: the same single RG, the demo table not created twice.
    let (mut pg, _) = start(&data, port);
    let (code, rgs) = mcctl(&data, port, &["--output", "json", "rg", "list"]);
    assert_eq!(code, 0);
    let rgs: serde_json::Value = serde_json::from_str(&rgs).unwrap();
    assert_eq!(rgs["rgs"].as_array().unwrap().len(), 1);
    assert!(interrupt(&mut pg).success());
}
