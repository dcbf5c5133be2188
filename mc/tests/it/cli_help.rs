//! The `mc` and `mcctl` binaries parse their command lines and reject bad ones with clap's
//! usage error (exit code 2) naming the offending argument.

use std::process::Command;

use crate::common::mcctl_exe;

fn run(bin: &str, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(bin).args(args).output().expect("binary runs");
    (
        out.status.code().expect("exited normally"),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn mc_help_lists_serve_and_playground() {
    let (code, stdout, _) = run(env!("CARGO_BIN_EXE_mc"), &["--help"]);
    assert_eq!(code, 0);
    assert!(
        stdout.contains("serve") && stdout.contains("playground"),
        "{stdout}"
    );
    let (code, stdout, _) = run(env!("CARGO_BIN_EXE_mc"), &["serve", "--help"]);
    assert_eq!(code, 0);
    assert!(
        stdout.contains("--peers") && stdout.contains("--data-dir"),
        "{stdout}"
    );
}

#[test]
fn mc_rejects_a_bad_listen_address_naming_the_flag() {
    let (code, _, stderr) = run(env!("CARGO_BIN_EXE_mc"), &["serve", "--listen", "nowhere"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("--listen"), "{stderr}");
}

#[test]
fn mcctl_help_lists_every_command_group() {
    let (code, stdout, _) = run(&mcctl_exe().to_string_lossy(), &["--help"]);
    assert_eq!(code, 0);
    for group in [
        "store",
        "rg",
        "region",
        "object",
        "job",
        "scheduler",
        "config",
        "history",
    ] {
        assert!(stdout.contains(group), "missing {group}: {stdout}");
    }
}

#[test]
fn mcctl_rejects_an_unknown_output_format() {
    let (code, _, stderr) = run(
        &mcctl_exe().to_string_lossy(),
        &["--output", "xml", "store"],
    );
    assert_eq!(code, 2);
    assert!(stderr.contains("--output"), "{stderr}");
}

#[test]
fn mc_rejects_bad_peers_and_refuses_to_start_without_tls() {
    let mc = env!("CARGO_BIN_EXE_mc");
    for peers in [
        "1=nowhere",
        "x=127.0.0.1:1",
        "1=127.0.0.1:1,1=127.0.0.1:2",
        "0=127.0.0.1:1",
    ] {
        let (code, _, stderr) = run(mc, &["serve", "--peers", peers]);
        assert_eq!(code, 2, "{peers}: {stderr}");
        assert!(stderr.contains("--peers"), "{peers}: {stderr}");
    }
    // No TLS identity and no --insecure: the MC does not start open.
    let (code, _, stderr) = run(mc, &["serve"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("no TLS identity"), "{stderr}");
    let (code, _, stderr) = run(
        mc,
        &[
            "serve",
            "--election-min-ms",
            "50",
            "--raft-heartbeat-ms",
            "100",
        ],
    );
    assert_eq!(code, 2);
    assert!(stderr.contains("--election-min-ms"), "{stderr}");
}

#[test]
fn the_playground_refuses_a_taken_port_and_exits_non_zero() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_mc"))
        .args(["playground", "--port", &port, "--data-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(&format!("127.0.0.1:{port}")), "{stderr}");
}

#[test]
fn mc_serve_refuses_a_bad_metrics_address_naming_the_flag() {
    let (code, _, stderr) = run(
        env!("CARGO_BIN_EXE_mc"),
        &["serve", "--metrics-listen", "nowhere"],
    );
    assert_eq!(code, 2);
    assert!(stderr.contains("--metrics-listen"), "{stderr}");
}
