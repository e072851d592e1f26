//! What an operator changes at run time (`warren ctl`, the management API): users, their
//! permissions, vhosts. Errors carry rabbitmqctl's wording, so a front end can print them as
//! they are.
//!
//! As in RabbitMQ: deleting a user closes that user's connections; deleting a vhost deletes its
//! queues and exchanges and closes the connections to it; changed permissions apply to
//! channels opened afterwards.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use super::Broker;
use crate::access::{PasswordHash, Permissions, User};
use crate::codec::ShortStr;
use crate::connection_fault;
use crate::storage::{PermissionRecord, UserRecord};
use crate::vocab::ConnId;

/// Why an operator's change was refused; `Display` is rabbitmqctl's message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AdminError {
    NoSuchUser(String),
    UserExists(String),
    NoSuchVhost(String),
    /// A permission pattern that is not a valid regular expression.
    BadPattern(String),
}

impl core::fmt::Display for AdminError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            AdminError::NoSuchUser(u) => write!(f, "User \"{u}\" does not exist"),
            AdminError::UserExists(u) => write!(f, "User \"{u}\" already exists"),
            AdminError::NoSuchVhost(v) => write!(f, "Virtual host \"{v}\" does not exist"),
            AdminError::BadPattern(e) => write!(f, "Invalid regular expression: {e}"),
        }
    }
}

impl Broker {
    /// `add_user`: a new user without tags or permissions.
    pub fn add_user(&mut self, name: &str, password: PasswordHash) -> Result<(), AdminError> {
        if self.access.user(name).is_some() {
            return Err(AdminError::UserExists(name.into()));
        }
        let user = User {
            name: name.into(),
            password,
            tags: Vec::new(),
        };
        self.storage.save_user(&user_record(&user));
        self.access.put_user(user);
        Ok(())
    }

    /// Who may log in only from this machine (`--loopback-users`; the default is `guest`).
    pub fn set_loopback_users(&mut self, users: Vec<ShortStr>) {
        self.access.set_loopback_users(users);
    }

    /// `delete_user`: the user, their permissions, and their open connections go.
    pub fn delete_user(&mut self, name: &str) -> Result<(), AdminError> {
        if self.access.user(name).is_none() {
            return Err(AdminError::NoSuchUser(name.into()));
        }
        let vhosts: Vec<ShortStr> = self
            .access
            .all_permissions()
            .filter(|(u, _, _)| *u == name)
            .map(|(_, v, _)| v.into())
            .collect();
        for v in vhosts {
            self.storage.delete_permission(name, &v);
        }
        self.storage.delete_user(name);
        self.access.delete_user(name);
        let gone: Vec<ConnId> = self
            .conns
            .iter()
            .filter(|(_, c)| c.username == name)
            .map(|(id, _)| *id)
            .collect();
        self.force_close(gone, "user deleted");
        Ok(())
    }

    /// `change_password` (or `clear_password`, with [`PasswordHash::none`]).
    pub fn change_password(
        &mut self,
        name: &str,
        password: PasswordHash,
    ) -> Result<(), AdminError> {
        let user = self
            .access
            .user_mut(name)
            .ok_or_else(|| AdminError::NoSuchUser(name.into()))?;
        user.password = password;
        let record = user_record(user);
        self.storage.save_user(&record);
        Ok(())
    }

    /// `set_user_tags`: replaces the user's tags.
    pub fn set_user_tags(&mut self, name: &str, tags: Vec<ShortStr>) -> Result<(), AdminError> {
        let user = self
            .access
            .user_mut(name)
            .ok_or_else(|| AdminError::NoSuchUser(name.into()))?;
        user.tags = tags;
        let record = user_record(user);
        self.storage.save_user(&record);
        Ok(())
    }

    /// `set_permissions -p VHOST USER CONF WRITE READ`.
    pub fn set_permissions(
        &mut self,
        user: &str,
        vhost: &str,
        configure: &str,
        write: &str,
        read: &str,
    ) -> Result<(), AdminError> {
        if self.access.user(user).is_none() {
            return Err(AdminError::NoSuchUser(user.into()));
        }
        if !self.vhosts.contains_key(vhost) {
            return Err(AdminError::NoSuchVhost(vhost.into()));
        }
        let p =
            Permissions::new(configure, write, read).map_err(|e| AdminError::BadPattern(e.0))?;
        self.save_permissions(user, vhost, p);
        Ok(())
    }

    /// `clear_permissions -p VHOST USER`.
    pub fn clear_permissions(&mut self, user: &str, vhost: &str) -> Result<(), AdminError> {
        if self.access.user(user).is_none() {
            return Err(AdminError::NoSuchUser(user.into()));
        }
        if !self.vhosts.contains_key(vhost) {
            return Err(AdminError::NoSuchVhost(vhost.into()));
        }
        if self.access.clear_permissions(user, vhost) {
            self.storage.delete_permission(user, vhost);
        }
        Ok(())
    }

    /// `add_vhost`: creates and stores it; an existing vhost is fine.
    pub fn create_vhost(&mut self, name: &str) -> Result<(), AdminError> {
        if self.vhosts.contains_key(name) {
            // As `rabbitmqctl add_vhost` (3.10): an existing vhost is left as it is.
            return Ok(());
        }
        self.add_vhost(name);
        self.storage.save_vhost(name);
        Ok(())
    }

    /// `delete_vhost`: its connections are closed, its queues (with their messages) and
    /// exchanges deleted, the permissions to it cleared.
    pub fn delete_vhost(&mut self, name: &str) -> Result<(), AdminError> {
        if !self.vhosts.contains_key(name) {
            return Err(AdminError::NoSuchVhost(name.into()));
        }
        let gone: Vec<ConnId> = self
            .conns
            .iter()
            .filter(|(_, c)| c.vhost.as_deref() == Some(name))
            .map(|(id, _)| *id)
            .collect();
        self.force_close(gone, "vhost deleted");
        let queues: Vec<_> = self.vhosts[name].queues.values().copied().collect();
        for id in queues {
            self.delete_queue_by_id(id, None);
        }
        let vhost = ShortStr::from(name);
        let exchanges: Vec<ShortStr> = self.vhosts[name]
            .exchanges
            .keys()
            .filter(|x| !x.is_empty() && !x.starts_with("amq."))
            .cloned()
            .collect();
        for x in exchanges {
            self.delete_exchange(&vhost, &x);
        }
        self.vhosts.remove(name);
        let users: Vec<ShortStr> = self
            .access
            .all_permissions()
            .filter(|(_, v, _)| *v == name)
            .map(|(u, _, _)| u.into())
            .collect();
        for u in users {
            self.storage.delete_permission(&u, name);
        }
        self.storage.delete_vhost(name);
        self.access.forget_vhost(name);
        self.settle_work();
        Ok(())
    }

    /// Grants `p` and stores it.
    pub(crate) fn save_permissions(&mut self, user: &str, vhost: &str, p: Permissions) {
        self.storage.save_permission(&PermissionRecord {
            user: user.into(),
            vhost: vhost.into(),
            configure: p.configure.as_str().into(),
            write: p.write.as_str().into(),
            read: p.read.as_str().into(),
        });
        self.access.set_permissions(user, vhost, p);
    }

    /// `connection.update-secret`: the new secret must be the password of the user the
    /// connection logged in as (the internal user database has no expiring tokens); then
    /// `update-secret-ok`, otherwise 530 as RabbitMQ refuses a secret its backends refuse.
    pub(crate) fn update_secret(&mut self, conn: ConnId, secret: &str) {
        let Some(c) = self.conns.get(&conn) else {
            return;
        };
        if self.access.authenticate(&c.username, secret).is_some() {
            self.reply(conn, 0, crate::codec::ConnectionUpdateSecretOk);
        } else {
            let fault =
                connection_fault!(NOT_ALLOWED, "New secret was refused by one of the backends")
                    .caused_by(
                        crate::codec::ConnectionUpdateSecret::CLASS_ID,
                        crate::codec::ConnectionUpdateSecret::METHOD_ID,
                    );
            self.raise(conn, 0, fault);
        }
    }

    /// `purge_queue`: how many ready messages went; `None` if there is no such queue.
    pub fn purge_queue(&mut self, vhost: &str, name: &str) -> Option<u32> {
        let id = *self.vhosts.get(vhost)?.queues.get(name)?;
        Some(self.purge(id))
    }

    /// `delete_queue`: how many ready messages it held; `None` if there is no such queue.
    /// Its consumers are cancelled as when a client deletes it.
    pub fn delete_queue(&mut self, vhost: &str, name: &str) -> Option<u32> {
        let id = *self.vhosts.get(vhost)?.queues.get(name)?;
        let n = self.delete_queue_by_id(id, None);
        self.settle_work();
        Some(n)
    }

    /// Closes connections with 320 CONNECTION_FORCED, as RabbitMQ closes them for an operator.
    fn force_close(&mut self, mut conns: Vec<ConnId>, why: &str) {
        conns.sort();
        for conn in conns {
            let text = format!("broker forced connection closure with reason '{why}'");
            let fault = connection_fault!(CONNECTION_FORCED, "{}", text);
            self.raise(conn, 0, fault);
        }
    }
}

/// A user as storage keeps it.
pub(crate) fn user_record(u: &User) -> UserRecord {
    UserRecord {
        name: u.name.clone(),
        hashing: u.password.hashing,
        password_hash: u.password.bytes.clone(),
        tags: u.tags.clone(),
    }
}
