//! The `store-node` binary parses its command line.

use std::process::Command;

#[test]
fn help_lists_the_flags_an_operator_needs() {
    let out = Command::new(env!("CARGO_BIN_EXE_store-node"))
        .arg("--help")
        .output()
        .unwrap();
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--listen",
        "--advertise",
        "--data-dir",
        "--mc",
        "--labels",
        "--config",
    ] {
        assert!(stdout.contains(flag), "missing {flag}: {stdout}");
    }
}

#[test]
fn an_unknown_flag_is_a_usage_error() {
    let out = Command::new(env!("CARGO_BIN_EXE_store-node"))
        .arg("--bogus")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--bogus"));
}

#[test]
fn a_malformed_label_is_refused_naming_the_field() {
    let dir = std::env::temp_dir().join(format!("store-cli-{}", std::process::id()));
    let out = Command::new(env!("CARGO_BIN_EXE_store-node"))
        .args(["--labels", "zone", "--data-dir"])
        .arg(&dir)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("labels") && stderr.contains("KEY=VALUE"),
        "{stderr}"
    );
    assert!(!dir.exists(), "nothing may be written for bad input");
}
