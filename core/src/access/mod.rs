//! Who may connect and what they may touch: users with salted password hashes and tags, and
//! per-vhost permissions, as RabbitMQ's internal auth backend keeps them.
//!
//! The broker owns an [`Access`] (it changes at run time: `warren ctl add_user`, the management
//! API) and stores every change through [`Storage`](crate::storage::Storage), so users and
//! permissions outlive a restart like durable queues. The checks themselves, with RabbitMQ's
//! rules and refusal texts, are in `broker/permit.rs`.

pub mod password;
pub mod permissions;

use alloc::collections::BTreeMap;
use alloc::sync::Arc;
use alloc::vec::Vec;

pub use password::{Hashing, PasswordHash, SALT_BYTES};
pub use permissions::{BadPattern, Pattern, Permission, Permissions};

use crate::codec::ShortStr;

/// A user of the broker.
#[derive(Clone, Debug, PartialEq)]
pub struct User {
    pub name: ShortStr,
    pub password: PasswordHash,
    /// `administrator`, `monitoring`, `management`, `policymaker`, or any other word.
    pub tags: Vec<ShortStr>,
}

/// The users, and each one's permissions per vhost.
#[derive(Clone, Debug, Default)]
pub struct Access {
    users: BTreeMap<ShortStr, User>,
    /// (user, vhost) → permissions, shared with the channels opened under them (a change
    /// applies to channels opened after it, as in RabbitMQ).
    permissions: BTreeMap<(ShortStr, ShortStr), Arc<Permissions>>,
    /// Users who may log in only from this machine (RabbitMQ's `loopback_users`); `None`:
    /// the default, `guest`.
    loopback_users: Option<Vec<ShortStr>>,
}

impl Access {
    pub fn new() -> Access {
        Access::default()
    }

    /// Sets who may log in only from this machine (empty: anyone from anywhere).
    pub fn set_loopback_users(&mut self, users: Vec<ShortStr>) {
        self.loopback_users = Some(users);
    }

    /// Whether `user` may log in only from this machine.
    pub fn loopback_only(&self, user: &str) -> bool {
        match &self.loopback_users {
            None => user == "guest",
            Some(list) => list.iter().any(|u| u == user),
        }
    }

    /// The user, if `password` is theirs.
    pub fn authenticate(&self, name: &str, password: &str) -> Option<&User> {
        self.users.get(name).filter(|u| u.password.verify(password))
    }

    pub fn user(&self, name: &str) -> Option<&User> {
        self.users.get(name)
    }

    /// Every user, by name.
    pub fn users(&self) -> impl Iterator<Item = &User> {
        self.users.values()
    }

    /// Adds the user or replaces one of that name.
    pub fn put_user(&mut self, user: User) {
        self.users.insert(user.name.clone(), user);
    }

    /// Removes the user and their permissions; false if there was none.
    pub fn delete_user(&mut self, name: &str) -> bool {
        if self.users.remove(name).is_none() {
            return false;
        }
        self.permissions.retain(|(u, _), _| u != name);
        true
    }

    pub fn user_mut(&mut self, name: &str) -> Option<&mut User> {
        self.users.get_mut(name)
    }

    pub fn set_permissions(&mut self, user: &str, vhost: &str, p: Permissions) {
        self.permissions
            .insert((user.into(), vhost.into()), Arc::new(p));
    }

    /// False if the user had none there.
    pub fn clear_permissions(&mut self, user: &str, vhost: &str) -> bool {
        self.permissions
            .remove(&(ShortStr::from(user), ShortStr::from(vhost)))
            .is_some()
    }

    /// The vhost is gone: so are the permissions to it.
    pub fn forget_vhost(&mut self, vhost: &str) {
        self.permissions.retain(|(_, v), _| v != vhost);
    }

    /// What `user` may do in `vhost`; `None`: they may not use it.
    pub fn permissions(&self, user: &str, vhost: &str) -> Option<&Arc<Permissions>> {
        self.permissions
            .get(&(ShortStr::from(user), ShortStr::from(vhost)))
    }

    /// Every (user, vhost, permissions), by user then vhost.
    pub fn all_permissions(&self) -> impl Iterator<Item = (&str, &str, &Permissions)> {
        self.permissions
            .iter()
            .map(|((u, v), p)| (u.as_str(), v.as_str(), &**p))
    }
}
