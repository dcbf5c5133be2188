//! Prometheus metrics without a metrics framework: the text exposition format, a fixed-bucket
//! histogram, and a minimal HTTP/1.1 server answering `GET /metrics`. Stores and MCs render
//! their metrics on each scrape from state they keep anyway, so nothing is counted twice.

use std::fmt::Write as _;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// Builds one exposition: each metric family once, with its help and type.
#[derive(Default)]
pub struct Text {
    out: String,
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn labels(l: &[(&str, String)]) -> String {
    if l.is_empty() {
        return String::new();
    }
    let inner: Vec<String> = l
        .iter()
        .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
        .collect();
    format!("{{{}}}", inner.join(","))
}

impl Text {
    /// Starts a family: `kind` is counter, gauge or histogram.
    pub fn family(&mut self, name: &str, kind: &str, help: &str) -> &mut Self {
        let _ = writeln!(self.out, "# HELP {name} {help}");
        let _ = writeln!(self.out, "# TYPE {name} {kind}");
        self
    }

    pub fn sample(&mut self, name: &str, l: &[(&str, String)], value: f64) -> &mut Self {
        let _ = writeln!(self.out, "{name}{} {value}", labels(l));
        self
    }

    /// A histogram's buckets, sum and count under `name`.
    pub fn histogram(&mut self, name: &str, l: &[(&str, String)], h: &Histogram) -> &mut Self {
        let mut cumulative = 0;
        for (i, bound) in h.bounds.iter().enumerate() {
            cumulative += h.counts[i].load(Ordering::Relaxed);
            let mut with = l.to_vec();
            with.push(("le", format!("{bound}")));
            let _ = writeln!(self.out, "{name}_bucket{} {cumulative}", labels(&with));
        }
        let count = h.count.load(Ordering::Relaxed);
        let mut with = l.to_vec();
        with.push(("le", "+Inf".into()));
        let _ = writeln!(self.out, "{name}_bucket{} {count}", labels(&with));
        let sum = h.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(self.out, "{name}_sum{} {sum}", labels(l));
        let _ = writeln!(self.out, "{name}_count{} {count}", labels(l));
        self
    }

    pub fn finish(self) -> String {
        self.out
    }
}

/// Latencies in seconds, with fixed upper bounds.
pub struct Histogram {
    bounds: &'static [f64],
    counts: Vec<AtomicU64>,
    sum_micros: AtomicU64,
    count: AtomicU64,
}

/// 1 ms to 60 s: step and RPC latencies.
pub const LATENCY_BOUNDS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

impl Histogram {
    pub fn new(bounds: &'static [f64]) -> Self {
        Self {
            bounds,
            counts: bounds.iter().map(|_| AtomicU64::new(0)).collect(),
            sum_micros: AtomicU64::new(0),
            count: AtomicU64::new(0),
        }
    }

    pub fn observe(&self, seconds: f64) {
        if let Some(i) = self.bounds.iter().position(|b| seconds <= *b) {
            self.counts[i].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_micros
            .fetch_add((seconds.max(0.0) * 1e6) as u64, Ordering::Relaxed);
    }
}

/// Serves `GET /metrics` (anything else is 404) until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    render: Arc<dyn Fn() -> String + Send + Sync>,
    shutdown: impl Future<Output = ()>,
) {
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (mut socket, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(_) => continue,
            },
            _ = &mut shutdown => return,
        };
        let render = render.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 4096];
            let mut read = 0;
            // The request line and headers; a scrape has no body.
            while read < buf.len() {
                match tokio::time::timeout(
                    std::time::Duration::from_secs(5),
                    socket.read(&mut buf[read..]),
                )
                .await
                {
                    Ok(Ok(0)) | Err(_) | Ok(Err(_)) => break,
                    Ok(Ok(n)) => {
                        read += n;
                        if buf[..read].windows(4).any(|w| w == b"\r\n\r\n") {
                            break;
                        }
                    }
                }
            }
            let request = String::from_utf8_lossy(&buf[..read]);
            let path = request.split_whitespace().nth(1).unwrap_or("");
            let (status, body, kind) = if request.starts_with("GET ")
                && (path == "/metrics" || path.starts_with("/metrics?"))
            {
                ("200 OK", render(), "text/plain; version=0.0.4")
            } else {
                (
                    "404 Not Found",
                    "not found; try /metrics\n".to_string(),
                    "text/plain",
                )
            };
            let head = format!(
                "HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = socket.write_all(head.as_bytes()).await;
            let _ = socket.write_all(body.as_bytes()).await;
            let _ = socket.shutdown().await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exposition_has_help_type_labels_and_cumulative_buckets() {
        let h = Histogram::new(&[0.01, 0.1]);
        h.observe(0.005);
        h.observe(0.05);
        h.observe(3.0);
        let mut t = Text::default();
        t.family("x_total", "counter", "Things.").sample(
            "x_total",
            &[("kind", "a\"b".into())],
            2.0,
        );
        t.family("lat_seconds", "histogram", "Latency.").histogram(
            "lat_seconds",
            &[("step", "Create".into())],
            &h,
        );
        let text = t.finish();
        assert!(text.contains("# TYPE x_total counter\n"));
        assert!(text.contains("x_total{kind=\"a\\\"b\"} 2\n"));
        assert!(text.contains("lat_seconds_bucket{step=\"Create\",le=\"0.01\"} 1\n"));
        assert!(text.contains("lat_seconds_bucket{step=\"Create\",le=\"0.1\"} 2\n"));
        assert!(text.contains("lat_seconds_bucket{step=\"Create\",le=\"+Inf\"} 3\n"));
        assert!(text.contains("lat_seconds_count{step=\"Create\"} 3\n"));
    }
}
