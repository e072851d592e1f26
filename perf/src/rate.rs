//! `--rate R`: one token bucket shared by all producers.
//!
//! The bucket is pure (the caller passes the time), so it is tested without a clock. Tokens
//! accrue at `rate` per second up to `burst`; a producer asks for as many as it would like to
//! send in one write and gets what is there, or is told how long to sleep for the next one.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A token bucket on caller-supplied time (nanoseconds from any fixed origin).
#[derive(Clone, Debug)]
pub struct TokenBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    last_ns: u64,
}

/// What [`TokenBucket::take`] granted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Grant {
    /// Send this many now (at least one).
    Send(u64),
    /// Nothing now: try again after this many nanoseconds.
    Wait(u64),
}

impl TokenBucket {
    /// `rate` tokens per second (> 0). The bucket holds at most `burst` tokens (at least one),
    /// and starts holding one token.
    pub fn new(rate: f64, burst: f64, now_ns: u64) -> Self {
        assert!(rate > 0.0, "rate must be positive");
        TokenBucket {
            rate,
            burst: burst.max(1.0),
            tokens: 1.0,
            last_ns: now_ns,
        }
    }

    /// The burst used by `--rate`: 10 ms worth of tokens, at least one. Small enough that the
    /// latency scenario sends an even stream, large enough that the sleeps stay at ~1 ms.
    pub fn default_burst(rate: f64) -> f64 {
        (rate / 100.0).max(1.0)
    }

    fn refill(&mut self, now_ns: u64) {
        if now_ns > self.last_ns {
            let dt = (now_ns - self.last_ns) as f64 / 1e9;
            self.tokens = (self.tokens + dt * self.rate).min(self.burst);
            self.last_ns = now_ns;
        }
    }

    /// Takes up to `want` (≥ 1) whole tokens.
    pub fn take(&mut self, now_ns: u64, want: u64) -> Grant {
        self.refill(now_ns);
        let whole = self.tokens.floor();
        if whole >= 1.0 {
            let n = (whole as u64).min(want.max(1));
            self.tokens -= n as f64;
            Grant::Send(n)
        } else {
            let missing = 1.0 - self.tokens;
            Grant::Wait(((missing / self.rate) * 1e9).ceil().max(1.0) as u64)
        }
    }
}

/// A [`TokenBucket`] on the real clock, shared by every producer of a run.
#[derive(Debug)]
pub struct SharedLimiter {
    origin: Instant,
    bucket: Mutex<TokenBucket>,
}

impl SharedLimiter {
    pub fn new(rate: f64) -> Self {
        SharedLimiter {
            origin: Instant::now(),
            bucket: Mutex::new(TokenBucket::new(rate, TokenBucket::default_burst(rate), 0)),
        }
    }

    /// Waits until at least one token is there, and takes up to `want`.
    pub async fn acquire(&self, want: u64) -> u64 {
        loop {
            let now = self.origin.elapsed().as_nanos() as u64;
            let grant = self
                .bucket
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .take(now, want);
            match grant {
                Grant::Send(n) => return n,
                Grant::Wait(ns) => tokio::time::sleep(Duration::from_nanos(ns)).await,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    #[test]
    fn bucket_starts_with_one_token_then_waits() {
        let mut b = TokenBucket::new(1000.0, 10.0, 0);
        assert_eq!(b.take(0, 5), Grant::Send(1));
        // 1000/s: the next token is 1 ms away.
        assert_eq!(b.take(0, 5), Grant::Wait(MS));
    }

    #[test]
    fn bucket_accrues_at_the_rate_and_caps_at_the_burst() {
        let mut b = TokenBucket::new(1000.0, 10.0, 0);
        assert_eq!(b.take(0, 1), Grant::Send(1));
        assert_eq!(b.take(5 * MS, 100), Grant::Send(5));
        // A long pause fills only up to the burst.
        assert_eq!(b.take(1000 * MS, 100), Grant::Send(10));
        assert_eq!(b.take(1000 * MS, 100), Grant::Wait(MS));
    }

    #[test]
    fn bucket_grants_no_more_than_asked() {
        let mut b = TokenBucket::new(1000.0, 100.0, 0);
        assert_eq!(b.take(50 * MS, 3), Grant::Send(3));
        assert_eq!(b.take(50 * MS, 100), Grant::Send(48));
    }

    #[test]
    fn bucket_holds_the_long_run_rate() {
        // Take greedily every 0.3 ms for 10 s: the total is rate × time (+ the first token, ± float rounding).
        let mut b = TokenBucket::new(10_000.0, 100.0, 0);
        let mut sent = 0;
        let mut t = 0;
        while t <= 10_000 * MS {
            if let Grant::Send(n) = b.take(t, 1_000) {
                sent += n;
            }
            t += 300_000;
        }
        assert!((99_998..=100_001).contains(&sent), "sent {sent}");
    }

    #[test]
    fn bucket_default_burst_is_ten_ms_of_tokens() {
        assert_eq!(TokenBucket::default_burst(10_000.0), 100.0);
        assert_eq!(TokenBucket::default_burst(5.0), 1.0);
    }
}
