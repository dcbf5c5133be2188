//! Child processes of a test: killed (-9) when dropped, so a failing test leaves none behind;
//! stopped and resumed, killed and restarted in place (same arguments, same address, same data).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

/// Where a process's stderr goes.
#[derive(Clone, Debug)]
pub enum Stderr {
    /// The test's own (printed when it fails).
    Inherit,
    Null,
    /// Appended to this file, across restarts.
    File(PathBuf),
}

/// A process the test can kill, stop, resume and restart.
pub struct Proc {
    /// The address it listens on, when it has one.
    pub addr: String,
    exe: PathBuf,
    args: Vec<String>,
    /// Environment from the next (re)start on (failpoints: `MC_FAILPOINTS`).
    pub env: Vec<(String, String)>,
    stderr: Stderr,
    /// The test's environment variable its `RUST_LOG` comes from (else `error`).
    log_var: Option<&'static str>,
    child: Option<Child>,
    stopped: bool,
}

impl Proc {
    /// Not started yet: see [`Proc::spawn`].
    pub fn new(exe: impl Into<PathBuf>, addr: impl Into<String>, args: Vec<String>) -> Self {
        Self {
            addr: addr.into(),
            exe: exe.into(),
            args,
            env: vec![],
            stderr: Stderr::Null,
            log_var: None,
            child: None,
            stopped: false,
        }
    }

    pub fn stderr(mut self, stderr: Stderr) -> Self {
        self.stderr = stderr;
        self
    }

    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// Its `RUST_LOG` is the test's `var` when set (`FAULT_RUST_LOG=info`), else `error`.
    pub fn log_from(mut self, var: &'static str) -> Self {
        self.log_var = Some(var);
        self
    }

    /// Starts it, then returns it.
    pub fn started(mut self) -> Self {
        self.spawn();
        self
    }

    /// Starts it (again).
    pub fn spawn(&mut self) {
        let stderr = match &self.stderr {
            Stderr::Inherit => Stdio::inherit(),
            Stderr::Null => Stdio::null(),
            Stderr::File(path) => std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map(Stdio::from)
                .unwrap_or_else(|_| Stdio::null()),
        };
        let child = Command::new(&self.exe)
            .args(&self.args)
            .env(
                "RUST_LOG",
                self.log_var
                    .and_then(|v| std::env::var(v).ok())
                    .unwrap_or_else(|| "error".into()),
            )
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", self.exe.display()));
        self.child = Some(child);
        self.stopped = false;
    }

    /// SIGKILL: no flush, no goodbye.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        self.stopped = false;
    }

    /// Sends a signal (`STOP`, `CONT`, `TERM`) to the running process; whether it was
    /// delivered.
    pub fn signal(&mut self, sig: &str) -> bool {
        let Some(child) = &self.child else {
            return false;
        };
        let sent = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(child.id().to_string())
            .status()
            .is_ok_and(|s| s.success());
        match sig {
            "STOP" if sent => self.stopped = true,
            "CONT" if sent => self.stopped = false,
            _ => {}
        }
        sent
    }

    /// Kills it and starts it again in place.
    pub fn restart(&mut self) {
        self.kill9();
        self.spawn();
    }

    /// Back to running, whatever was done to it.
    pub fn heal(&mut self) {
        if self.child.is_none() {
            self.spawn();
        } else if self.stopped {
            self.signal("CONT");
        }
    }

    /// The file its stderr goes to, if one.
    pub fn log_path(&self) -> Option<&std::path::Path> {
        match &self.stderr {
            Stderr::File(path) => Some(path),
            _ => None,
        }
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    pub fn is_stopped(&self) -> bool {
        self.stopped
    }

    /// Waits for it to exit (after a SIGTERM, say).
    pub fn wait(&mut self) -> Option<std::process::ExitStatus> {
        let status = self.child.as_mut()?.wait().ok();
        self.child = None;
        status
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if self.stopped {
            self.signal("CONT");
        }
        self.kill9();
    }
}

/// A child started some other way (a bench that runs itself), killed when dropped.
pub struct Killed(pub Child);

impl Killed {
    /// SIGKILL, and reap.
    pub fn kill(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Killed {
    fn drop(&mut self) {
        self.kill();
    }
}
