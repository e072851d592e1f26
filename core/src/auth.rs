//! Who may connect: the authentication trait and a simple in-memory user table.
//!
//! The broker owns an `Authenticator`; `warren ctl add_user` and friends will change it at run
//! time through the broker, so it lives with the rest of the broker state.

use alloc::string::String;
use alloc::vec::Vec;

/// Checks credentials presented by a connecting client (PLAIN or AMQPLAIN).
pub trait Authenticator {
    /// Returns true when `username` / `password` are valid.
    fn authenticate(&self, username: &str, password: &str) -> bool;
    /// Whether `username` may open `vhost`.
    fn may_open_vhost(&self, username: &str, vhost: &str) -> bool;
}

/// A fixed list of users, each allowed on every vhost. Starts with RabbitMQ's `guest`/`guest`.
#[derive(Clone, Debug)]
pub struct StaticUsers {
    users: Vec<(String, String)>,
}

impl StaticUsers {
    pub fn new() -> Self {
        StaticUsers { users: Vec::new() }
    }

    /// The default user table: `guest` / `guest`, as RabbitMQ ships.
    pub fn with_guest() -> Self {
        let mut users = Self::new();
        users.add_user("guest", "guest");
        users
    }

    pub fn add_user(&mut self, username: &str, password: &str) {
        self.users.retain(|(u, _)| u != username);
        self.users.push((username.into(), password.into()));
    }
}

impl Default for StaticUsers {
    fn default() -> Self {
        Self::with_guest()
    }
}

impl Authenticator for StaticUsers {
    fn authenticate(&self, username: &str, password: &str) -> bool {
        self.users
            .iter()
            .any(|(u, p)| u == username && constant_time_eq(p.as_bytes(), password.as_bytes()))
    }

    fn may_open_vhost(&self, username: &str, _vhost: &str) -> bool {
        self.users.iter().any(|(u, _)| u == username)
    }
}

/// Compares secrets without an early exit on the first differing byte.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guest_guest_is_accepted_and_wrong_password_refused() {
        let users = StaticUsers::with_guest();
        assert!(users.authenticate("guest", "guest"));
        assert!(!users.authenticate("guest", "nope"));
        assert!(!users.authenticate("nobody", "guest"));
    }
}
