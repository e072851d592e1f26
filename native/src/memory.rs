//! The memory alarm: like RabbitMQ's `vm_memory_high_watermark`, it pauses publishers while
//! the broker's resident memory is over a limit, so a flood cannot take the machine down.
//! Before that, past the paging ratio of the limit, queues that are not durable start leaving
//! messages on disk, as RabbitMQ's do, so that memory can drop without pausing anyone.

use std::time::Duration;

use tracing::{info, warn};
use warren_transports::Hub;

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

/// Checks memory every `period`: raises or clears the hub's alarm when it crosses the
/// watermark, and tells the hub of memory pressure when it crosses `paging_ratio` of it.
pub async fn monitor(
    alarms: Alarms,
    hub: Hub,
    watermark: Watermark,
    paging_ratio: f64,
    period: Duration,
) {
    let Some(total) = total_bytes() else {
        warn!("cannot read /proc/meminfo: memory alarm disabled");
        return;
    };
    let limit = watermark.limit(total);
    let paging_at = paging_limit(limit, paging_ratio);
    info!(
        limit_bytes = limit,
        paging_bytes = paging_at,
        "memory high watermark set"
    );
    // Checked more often than the alarm: a fast publisher fills memory in the time between
    // two readings, and paging that starts late leaves the high-water mark where it got to
    // (the allocator keeps what it freed for reuse rather than giving it back).
    tokio::spawn(pressure(hub, paging_at, period / 5));
    let read = || resident_bytes().map(|rss| (rss, rss > limit));
    alarms::watch(alarms, Resource::Memory, limit, period, read).await;
}

/// Where paging starts: `ratio` of the watermark (a ratio of 1 or more: at the watermark).
fn paging_limit(limit: u64, ratio: f64) -> u64 {
    (limit as f64 * ratio.clamp(0.0, 1.0)) as u64
}

/// Tells the hub when resident memory goes over `paging_at` and when it is back under.
async fn pressure(hub: Hub, paging_at: u64, period: Duration) {
    let mut on = false;
    let mut tick = tokio::time::interval(period);
    loop {
        tick.tick().await;
        let Some(rss) = resident_bytes() else {
            continue;
        };
        if (rss > paging_at) != on {
            on = !on;
            info!(
                rss,
                paging_at, on, "memory pressure: queues that are not durable page"
            );
            hub.set_memory_pressure(on).await;
        }
    }
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
    fn paging_starts_at_a_fraction_of_the_watermark() {
        assert_eq!(paging_limit(1000, 0.5), 500);
        assert_eq!(paging_limit(1000, 1.5), 1000, "never past the watermark");
    }

    #[test]
    fn this_process_has_a_resident_size() {
        assert!(resident_bytes().unwrap() > 0);
        assert!(total_bytes().unwrap() > 0);
    }
}
