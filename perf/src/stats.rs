//! Counters, latency histograms and their summaries.
//!
//! Producers and consumers bump shared atomic counters once per batch (one write, one read
//! buffer), and consumers record latencies into their own [`LatencyRecorder`] under a lock
//! taken once per read buffer; the reporter swaps the interval histograms out once a second.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use hdrhistogram::Histogram;

/// Highest latency the histograms track: 10 minutes in microseconds (larger values clamp).
const MAX_LATENCY_US: u64 = 600_000_000;

/// A fresh latency histogram: 1 µs to 10 min, 3 significant figures.
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_LATENCY_US, 3).expect("valid histogram bounds")
}

/// Counters shared by every task of a run.
#[derive(Debug, Default)]
pub struct Counters {
    /// Messages written to the socket by producers.
    pub sent: AtomicU64,
    /// Deliveries consumers have read.
    pub received: AtomicU64,
    /// Publishes the broker confirmed (basic.ack).
    pub confirmed: AtomicU64,
    /// Publishes the broker refused (basic.nack).
    pub nacked: AtomicU64,
}

impl Counters {
    pub fn snapshot(&self) -> (u64, u64) {
        (
            self.sent.load(Ordering::Relaxed),
            self.received.load(Ordering::Relaxed),
        )
    }
}

/// Latencies of one consumer: the current interval's and the whole run's.
#[derive(Debug)]
pub struct LatencyRecorder {
    inner: Mutex<Histogram<u64>>,
}

impl Default for LatencyRecorder {
    fn default() -> Self {
        LatencyRecorder {
            inner: Mutex::new(new_histogram()),
        }
    }
}

impl LatencyRecorder {
    /// Records a batch of latencies (µs) under one lock.
    pub fn record_all(&self, values: &[u64]) {
        if values.is_empty() {
            return;
        }
        let mut h = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        for &v in values {
            h.saturating_record(v.clamp(1, MAX_LATENCY_US));
        }
    }

    /// Moves what was recorded since the last call into `into`.
    pub fn drain_into(&self, into: &mut Histogram<u64>) {
        let mut h = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        // Same bounds on both sides, so adding cannot fail.
        let _ = into.add(&*h);
        h.reset();
    }
}

/// Percentiles of a latency histogram, in microseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct LatencySummary {
    pub count: u64,
    pub min: u64,
    pub p50: u64,
    pub p75: u64,
    pub p95: u64,
    pub p99: u64,
    pub p999: u64,
    pub max: u64,
    pub mean: f64,
}

impl LatencySummary {
    pub fn of(h: &Histogram<u64>) -> LatencySummary {
        if h.is_empty() {
            return LatencySummary::default();
        }
        LatencySummary {
            count: h.len(),
            min: h.min(),
            p50: h.value_at_quantile(0.50),
            p75: h.value_at_quantile(0.75),
            p95: h.value_at_quantile(0.95),
            p99: h.value_at_quantile(0.99),
            p999: h.value_at_quantile(0.999),
            max: h.max(),
            mean: h.mean(),
        }
    }

    /// PerfTest's per-second shape: `min/median/75th/95th/99th consumer latency: a/b/c/d/e µs`.
    pub fn perftest_line(&self) -> String {
        if self.count == 0 {
            return String::new();
        }
        format!(
            ", min/median/75th/95th/99th consumer latency: {}/{}/{}/{}/{} µs",
            self.min, self.p50, self.p75, self.p95, self.p99
        )
    }

    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "count": self.count, "min_us": self.min, "p50_us": self.p50, "p75_us": self.p75,
            "p95_us": self.p95, "p99_us": self.p99, "p999_us": self.p999, "max_us": self.max,
            "mean_us": self.mean,
        })
    }
}

/// Monotonic nanoseconds since the first call in this process: the clock producers stamp
/// into bodies and consumers read back (both ends live in this process).
pub fn now_ns() -> u64 {
    static ORIGIN: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    ORIGIN.get_or_init(Instant::now).elapsed().as_nanos() as u64
}

/// One latency recorder per consumer, registered at start.
#[derive(Debug, Default)]
pub struct Latencies {
    recorders: Mutex<Vec<Arc<LatencyRecorder>>>,
}

impl Latencies {
    pub fn register(&self) -> Arc<LatencyRecorder> {
        let r = Arc::new(LatencyRecorder::default());
        self.recorders
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(r.clone());
        r
    }

    /// Moves every consumer's recent latencies into `into`.
    pub fn drain_into(&self, into: &mut Histogram<u64>) {
        for r in self
            .recorders
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            r.drain_into(into);
        }
    }
}

/// Messages per second, 0 for an empty interval.
pub fn rate(count: u64, secs: f64) -> f64 {
    if secs > 0.0 {
        count as f64 / secs
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_of_empty_histogram_is_zero() {
        let s = LatencySummary::of(&new_histogram());
        assert_eq!(s, LatencySummary::default());
        assert_eq!(s.perftest_line(), "");
    }

    #[test]
    fn summary_reports_percentiles_of_uniform_values() {
        let mut h = new_histogram();
        for v in 1..=10_000u64 {
            h.record(v).unwrap();
        }
        let s = LatencySummary::of(&h);
        assert_eq!(s.count, 10_000);
        assert_eq!(s.min, 1);
        // 3 significant figures: within 0.1 %.
        let near = |got: u64, want: u64| got.abs_diff(want) * 1000 <= want;
        assert!(near(s.p50, 5_000), "p50 {}", s.p50);
        assert!(near(s.p75, 7_500), "p75 {}", s.p75);
        assert!(near(s.p95, 9_500), "p95 {}", s.p95);
        assert!(near(s.p99, 9_900), "p99 {}", s.p99);
        assert!(near(s.p999, 9_990), "p999 {}", s.p999);
        assert!(near(s.max, 10_000), "max {}", s.max);
        assert!((s.mean - 5_000.5).abs() < 10.0);
    }

    #[test]
    fn recorder_drains_interval_and_clamps() {
        let r = LatencyRecorder::default();
        r.record_all(&[0, 5, 5, u64::MAX]);
        let mut h = new_histogram();
        r.drain_into(&mut h);
        assert_eq!(h.len(), 4);
        assert_eq!(h.min(), 1);
        assert!(h.max() >= MAX_LATENCY_US);
        let mut again = new_histogram();
        r.drain_into(&mut again);
        assert!(again.is_empty());
    }

    #[test]
    fn perftest_line_has_the_five_figures() {
        let mut h = new_histogram();
        for v in [10, 20, 30, 40, 50] {
            h.record(v).unwrap();
        }
        let line = LatencySummary::of(&h).perftest_line();
        assert!(
            line.starts_with(", min/median/75th/95th/99th consumer latency: 10/30/40/50/50"),
            "{line}"
        );
    }

    #[test]
    fn rate_of_empty_interval_is_zero() {
        assert_eq!(rate(10, 0.0), 0.0);
        assert_eq!(rate(10, 2.0), 5.0);
    }
}
