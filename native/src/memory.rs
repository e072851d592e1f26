//! The memory alarm: like RabbitMQ's `vm_memory_high_watermark`, it pauses publishers while
//! the broker's resident memory is over a limit, so a flood cannot take the machine down.

use std::time::Duration;

use tracing::{info, warn};

use crate::alarms::{self, Alarms, Resource};

/// How the limit is given: a fraction of physical memory, or bytes.
#[derive(Clone, Copy, Debug)]
pub enum Watermark {
    Relative(f64),
    Absolute(u64),
}

impl Watermark {
    /// The limit in bytes, given the machine's total memory.
    pub fn limit(self, total: u64) -> u64 {
        match self {
            Watermark::Relative(f) => (total as f64 * f) as u64,
            Watermark::Absolute(b) => b,
        }
    }
}

/// Resident set size of this process, from /proc (None where /proc is absent).
pub fn resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    kib_field(&status, "VmRSS:")
}

/// Physical memory of the machine, from /proc/meminfo.
pub fn total_bytes() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    kib_field(&info, "MemTotal:")
}

fn kib_field(text: &str, key: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with(key))?;
    let kib: u64 = line[key.len()..]
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib * 1024)
}

/// Checks memory every `period` and raises or clears the hub's alarm on crossings.
pub async fn monitor(alarms: Alarms, watermark: Watermark, period: Duration) {
    let Some(total) = total_bytes() else {
        warn!("cannot read /proc/meminfo: memory alarm disabled");
        return;
    };
    let limit = watermark.limit(total);
    info!(limit_bytes = limit, "memory high watermark set");
    let read = || resident_bytes().map(|rss| (rss, rss > limit));
    alarms::watch(alarms, Resource::Memory, limit, period, read).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_kib_fields_from_proc_text() {
        let text = "Name:\twarren\nVmRSS:\t   2048 kB\n";
        assert_eq!(kib_field(text, "VmRSS:"), Some(2048 * 1024));
        assert_eq!(kib_field(text, "VmHWM:"), None);
    }

    #[test]
    fn relative_watermark_is_a_fraction_of_total() {
        assert_eq!(Watermark::Relative(0.4).limit(1000), 400);
        assert_eq!(Watermark::Absolute(7).limit(1000), 7);
    }

    #[test]
    fn this_process_has_a_resident_size() {
        assert!(resident_bytes().unwrap() > 0);
        assert!(total_bytes().unwrap() > 0);
    }
}
