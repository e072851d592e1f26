//! Deterministic randomness: a seeded generator for runs and a byte reader for the fuzzer.
//! Nothing here reads the OS: the same seed (or the same bytes) gives the same choices.

/// Where a program's choices come from.
pub trait Source {
    /// A number in `0..n` (`n >= 1`).
    fn below(&mut self, n: u32) -> u32;

    fn flip(&mut self) -> bool {
        self.below(2) == 1
    }

    /// True with probability `percent`/100.
    fn chance(&mut self, percent: u32) -> bool {
        self.below(100) < percent
    }

    /// Picks an index by weight.
    fn weighted(&mut self, weights: &[u32]) -> usize {
        let total: u32 = weights.iter().sum();
        let mut x = self.below(total.max(1));
        for (i, &w) in weights.iter().enumerate() {
            if x < w {
                return i;
            }
            x -= w;
        }
        weights.len() - 1
    }
}

/// SplitMix64: tiny, fast, statistically fine for simulation.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed ^ 0x5157_4152_5245_4e53)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A generator for another purpose, independent of this one's later draws.
    pub fn fork(&mut self, salt: u64) -> Rng {
        Rng(self.next_u64() ^ salt.wrapping_mul(0x2545_F491_4F6C_DD1D))
    }
}

impl Source for Rng {
    fn below(&mut self, n: u32) -> u32 {
        if n <= 1 {
            return 0;
        }
        (((self.next_u64() >> 32) * u64::from(n)) >> 32) as u32
    }
}

/// Choices read from fuzzer bytes; zeros once the bytes run out (so every input is a
/// complete program, and shorter inputs are simpler programs).
pub struct ByteSource<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> ByteSource<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        ByteSource { data, pos: 0 }
    }

    pub fn is_empty(&self) -> bool {
        self.pos >= self.data.len()
    }
}

impl Source for ByteSource<'_> {
    fn below(&mut self, n: u32) -> u32 {
        if n <= 1 {
            return 0;
        }
        let mut v: u32 = 0;
        let bytes = if n <= 256 { 1 } else { 2 };
        for _ in 0..bytes {
            let b = self.data.get(self.pos).copied().unwrap_or(0);
            self.pos += 1;
            v = (v << 8) | u32::from(b);
        }
        v % n
    }
}

/// FNV-1a, 64 bits: the trace hash (stable across runs, platforms and Rust versions).
#[derive(Clone, Copy, Debug)]
pub struct Fnv(pub u64);

impl Default for Fnv {
    fn default() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv {
    pub fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }

    pub fn write_u64(&mut self, v: u64) {
        self.write(&v.to_le_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_numbers() {
        let a: Vec<u32> = {
            let mut r = Rng::new(7);
            (0..10).map(|_| r.below(1000)).collect()
        };
        let b: Vec<u32> = {
            let mut r = Rng::new(7);
            (0..10).map(|_| r.below(1000)).collect()
        };
        assert_eq!(a, b);
        assert!(a.iter().all(|&x| x < 1000));
    }

    #[test]
    fn byte_source_reads_zeros_when_exhausted() {
        let mut s = ByteSource::new(&[5]);
        assert_eq!(s.below(10), 5);
        assert_eq!(s.below(10), 0);
        assert!(s.is_empty());
    }
}
