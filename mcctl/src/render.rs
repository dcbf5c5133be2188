//! Output: aligned tables for people, JSON for scripts. JSON is the proto3 JSON form of the
//! wire messages with the .proto field names (snake_case), so the field names are the API's
//! and stay stable; 64-bit integers are numbers.

use std::sync::OnceLock;

use prost_reflect::{DescriptorPool, DynamicMessage, SerializeOptions};

use crate::client::CliError;

fn pool() -> &'static DescriptorPool {
    static POOL: OnceLock<DescriptorPool> = OnceLock::new();
    POOL.get_or_init(|| {
        DescriptorPool::decode(proto::FILE_DESCRIPTOR_SET).expect("the built-in descriptor set")
    })
}

/// `message` (of type `full_name`, e.g. "mc.v1.Store") as JSON.
pub fn json<M: prost::Message>(message: &M, full_name: &str) -> serde_json::Value {
    let descriptor = pool()
        .get_message_by_name(full_name)
        .unwrap_or_else(|| panic!("{full_name} is a v1 message"));
    let dynamic = DynamicMessage::decode(descriptor, message.encode_to_vec().as_slice())
        .expect("a message decodes as itself");
    let options = SerializeOptions::new()
        .use_proto_field_name(true)
        .stringify_64_bit_integers(false)
        .skip_default_fields(false);
    dynamic
        .serialize_with_options(serde_json::value::Serializer, &options)
        .expect("serializable")
}

/// Prints a reply: as JSON with the proto's field names (`full_name` is its message), or as
/// `table` draws it.
pub fn print<M: prost::Message>(
    out: crate::Output,
    message: M,
    full_name: &str,
    table: impl FnOnce(M) -> Result<(), CliError>,
) -> Result<(), CliError> {
    match out {
        crate::Output::Json => print_json(&json(&message, full_name)),
        crate::Output::Table => table(message),
    }
}

pub fn print_json(value: &serde_json::Value) -> Result<(), CliError> {
    println!(
        "{}",
        serde_json::to_string_pretty(value).map_err(|e| CliError::Failed(e.to_string()))?
    );
    Ok(())
}

/// An aligned table: a header row, then rows; columns as wide as their widest cell.
pub struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(header: &[&str]) -> Self {
        Self {
            header: header.iter().map(|h| h.to_string()).collect(),
            rows: Vec::new(),
        }
    }

    /// Cells come from the network (a store's labels, an alert's text): control characters
    /// are shown escaped, never sent to the terminal.
    pub fn row(&mut self, cells: Vec<String>) {
        self.rows
            .push(cells.into_iter().map(|c| printable(&c)).collect());
    }

    pub fn print(&self) {
        let cols = self.header.len();
        let mut widths: Vec<usize> = self.header.iter().map(|h| h.chars().count()).collect();
        for r in &self.rows {
            for (i, c) in r.iter().enumerate().take(cols) {
                widths[i] = widths[i].max(c.chars().count());
            }
        }
        let line = |cells: &[String]| {
            let mut out = String::new();
            for (i, c) in cells.iter().enumerate().take(cols) {
                if i + 1 == cols {
                    out.push_str(c);
                } else {
                    out.push_str(&format!("{c:<w$}  ", w = widths[i]));
                }
            }
            println!("{}", out.trim_end());
        };
        line(&self.header);
        for r in &self.rows {
            line(r);
        }
    }
}

/// `text` with control characters (terminal escape sequences among them) escaped.
pub fn printable(text: &str) -> String {
    if !text.chars().any(char::is_control) {
        return text.to_string();
    }
    text.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// "ssd,zone=z1" style for label maps.
pub fn labels<'a>(l: impl IntoIterator<Item = (&'a String, &'a String)>) -> String {
    let mut v: Vec<String> = l.into_iter().map(|(k, v)| format!("{k}={v}")).collect();
    v.sort();
    v.join(",")
}

/// Milliseconds since the epoch as UTC "2026-11-22 05:00:11", or "-" for 0.
pub fn time(ms: u64) -> String {
    if ms == 0 {
        return "-".into();
    }
    let secs = (ms / 1000) as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + if m <= 2 { 1 } else { 0 };
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Bytes as "1.5 GiB".
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// An enum's wire name without its prefix, lower case: "JOB_STATE_RUNNING" → "running".
pub fn name(wire: &str, prefix: &str) -> String {
    wire.strip_prefix(prefix).unwrap_or(wire).to_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_and_sizes_read_well() {
        assert_eq!(time(0), "-");
        assert_eq!(time(1_795_323_611_000), "2026-11-22 05:00:11");
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(1_610_612_736), "1.5 GiB");
        assert_eq!(name("JOB_STATE_ROLLING_BACK", "JOB_STATE_"), "rolling_back");
    }

    #[test]
    fn json_uses_the_proto_field_names() {
        let store = proto::v1::Store {
            id: 3,
            address: "127.0.0.1:6001".into(),
            replica_count: 7,
            ..Default::default()
        };
        let v = json(&store, "mc.v1.Store");
        assert_eq!(v["id"], 3);
        assert_eq!(v["replica_count"], 7);
        assert_eq!(v["state"], "STORE_STATE_UNSPECIFIED");
    }
}

#[cfg(test)]
mod escaping {
    #[test]
    fn escape_sequences_are_shown_not_sent() {
        assert_eq!(super::printable("z1"), "z1");
        assert_eq!(super::printable("\x1b[31mred\x07"), "\\u{1b}[31mred\\u{7}");
    }
}
