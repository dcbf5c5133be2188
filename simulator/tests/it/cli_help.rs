//! The `mcsim` binary parses its command line.

use std::process::Command;

#[test]
fn help_lists_run_and_compare() {
    let out = Command::new(env!("CARGO_BIN_EXE_mcsim"))
        .arg("--help")
        .output()
        .unwrap();
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("run") && stdout.contains("compare"),
        "{stdout}"
    );
}

#[test]
fn compare_needs_a_policy() {
    let out = Command::new(env!("CARGO_BIN_EXE_mcsim"))
        .args(["compare", "s.toml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--policy"));
}
