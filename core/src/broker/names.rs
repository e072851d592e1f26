//! Server-generated names (`amq.gen-…`, `amq.ctag-…`) from a seeded generator, so that runs
//! replay exactly from their seed.

use alloc::string::String;

/// SplitMix64: tiny, fast, and good enough for unique-looking names (not for secrets).
pub(crate) struct SplitMix64(u64);

impl SplitMix64 {
    pub(crate) fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// `prefix` followed by 22 URL-safe base64 characters (128 random bits), as RabbitMQ does.
    pub(crate) fn name(&mut self, prefix: &str) -> String {
        const ALPHABET: &[u8; 64] =
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let mut s = String::with_capacity(prefix.len() + 22);
        s.push_str(prefix);
        let (mut a, mut b) = (self.next_u64(), self.next_u64());
        for i in 0..22 {
            let v = if i < 11 { &mut a } else { &mut b };
            s.push(char::from(ALPHABET[(*v & 63) as usize]));
            *v >>= 6;
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_names_are_unique_and_shaped_like_rabbitmqs() {
        let mut rng = SplitMix64::new(7);
        let a = rng.name("amq.gen-");
        let b = rng.name("amq.gen-");
        assert_ne!(a, b);
        assert_eq!(a.len(), "amq.gen-".len() + 22);
        assert!(a.starts_with("amq.gen-"));
    }

    #[test]
    fn same_seed_gives_same_names() {
        assert_eq!(
            SplitMix64::new(1).name("amq.ctag-"),
            SplitMix64::new(1).name("amq.ctag-")
        );
    }
}
