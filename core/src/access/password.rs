//! Password hashes as RabbitMQ keeps them, so that a user exported from RabbitMQ (its
//! definitions' `password_hash` and `hashing_algorithm`) logs in to Warren unchanged, and back.
//!
//! RabbitMQ's scheme (`rabbit_password`): four random bytes of salt, then the digest of the salt
//! followed by the UTF-8 password; the stored value is `salt ++ digest` (base64 in definitions).
//! SHA-256 is RabbitMQ's default (`rabbit_password_hashing_sha256`); SHA-512 is its other
//! choice. A user with an empty hash has no password and cannot log in with one.

use alloc::vec::Vec;

use sha2::{Digest, Sha256, Sha512};

/// Bytes of salt before the digest.
pub const SALT_BYTES: usize = 4;

/// The digest a hash was made with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hashing {
    Sha256,
    Sha512,
}

impl Hashing {
    /// RabbitMQ's name for it, as definitions carry it.
    pub fn rabbitmq_name(self) -> &'static str {
        match self {
            Hashing::Sha256 => "rabbit_password_hashing_sha256",
            Hashing::Sha512 => "rabbit_password_hashing_sha512",
        }
    }

    pub fn from_rabbitmq_name(name: &str) -> Option<Hashing> {
        match name {
            "rabbit_password_hashing_sha256" => Some(Hashing::Sha256),
            "rabbit_password_hashing_sha512" => Some(Hashing::Sha512),
            _ => None,
        }
    }

    fn digest(self, salt: &[u8], password: &[u8], out: &mut Vec<u8>) {
        match self {
            Hashing::Sha256 => out.extend_from_slice(
                &Sha256::new()
                    .chain_update(salt)
                    .chain_update(password)
                    .finalize(),
            ),
            Hashing::Sha512 => out.extend_from_slice(
                &Sha512::new()
                    .chain_update(salt)
                    .chain_update(password)
                    .finalize(),
            ),
        }
    }

    fn digest_len(self) -> usize {
        match self {
            Hashing::Sha256 => 32,
            Hashing::Sha512 => 64,
        }
    }
}

/// A salted password hash: `salt ++ digest`, as RabbitMQ stores it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PasswordHash {
    pub hashing: Hashing,
    /// `salt ++ digest`; empty for a user without a password.
    pub bytes: Vec<u8>,
}

impl PasswordHash {
    /// Hashes `password` with `salt` (the host draws the salt from its randomness: the core has
    /// none).
    pub fn new(hashing: Hashing, salt: [u8; SALT_BYTES], password: &str) -> PasswordHash {
        let mut bytes = Vec::with_capacity(SALT_BYTES + hashing.digest_len());
        bytes.extend_from_slice(&salt);
        hashing.digest(&salt, password.as_bytes(), &mut bytes);
        PasswordHash { hashing, bytes }
    }

    /// No password: no password logs in.
    pub fn none() -> PasswordHash {
        PasswordHash {
            hashing: Hashing::Sha256,
            bytes: Vec::new(),
        }
    }

    /// Whether `password` is the one hashed. Compares every byte, whatever differs first.
    pub fn verify(&self, password: &str) -> bool {
        if self.bytes.len() != SALT_BYTES + self.hashing.digest_len() {
            return false;
        }
        let (salt, want) = self.bytes.split_at(SALT_BYTES);
        let mut got = Vec::with_capacity(want.len());
        self.hashing.digest(salt, password.as_bytes(), &mut got);
        got.iter().zip(want).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a real RabbitMQ 3.10.8 stored for `rabbitmqctl add_user u secret`, from its
    /// `export_definitions` (`"password_hash": "MyqDWAXFAacIwfnHm6Icu33GlELId6vhwzOD2b+GX32PKKfY"`,
    /// `"hashing_algorithm": "rabbit_password_hashing_sha256"`), base64-decoded.
    const RABBITMQ_SECRET: [u8; 36] = [
        51, 42, 131, 88, 5, 197, 1, 167, 8, 193, 249, 199, 155, 162, 28, 187, 125, 198, 148, 66,
        200, 119, 171, 225, 195, 51, 131, 217, 191, 134, 95, 125, 143, 40, 167, 216,
    ];

    #[test]
    fn a_hash_rabbitmq_made_verifies_and_ours_has_its_shape() {
        let theirs = PasswordHash {
            hashing: Hashing::Sha256,
            bytes: RABBITMQ_SECRET.to_vec(),
        };
        assert!(theirs.verify("secret"));
        assert!(!theirs.verify("Secret"));
        assert!(!theirs.verify(""));
        // The same salt gives the same bytes: ours is RabbitMQ's scheme.
        let salt = [51, 42, 131, 88];
        assert_eq!(
            PasswordHash::new(Hashing::Sha256, salt, "secret").bytes,
            RABBITMQ_SECRET
        );
        let h = PasswordHash::new(Hashing::Sha512, salt, "secret");
        assert_eq!(h.bytes.len(), 68);
        assert!(h.verify("secret"));
        assert!(!PasswordHash::none().verify(""));
        assert_eq!(
            Hashing::from_rabbitmq_name("rabbit_password_hashing_sha256"),
            Some(Hashing::Sha256)
        );
    }
}
