//! Permission checks, with RabbitMQ's rules (`rabbit_channel`, `rabbit_access_control`):
//!
//! - declaring or deleting a queue or exchange needs `configure` on it; a passive declare needs
//!   any of the three (RabbitMQ's current rule; the refusal names `configure`'s check);
//! - publishing needs `write` on the exchange (the default exchange is `amq.default`);
//! - `queue.bind`/`unbind` need `write` on the queue and `read` on the exchange;
//!   `exchange.bind`/`unbind` `write` on the destination and `read` on the source;
//! - consuming, `basic.get` and purging need `read` on the queue;
//! - a new queue with a dead-letter exchange also needs `read` on the queue and `write` on that
//!   exchange; a new exchange with an alternate exchange, `read` on itself and `write` there.
//!
//! A refusal closes the channel with 403 ACCESS_REFUSED and RabbitMQ 3.x's text: "access to
//! queue 'q' in vhost '/' refused for user 'u'". The permissions checked are the channel's,
//! taken when it opened.

use super::{Broker, Fault};
use crate::access::Permission;
use crate::channel_fault;
use crate::vocab::ConnId;

/// What a checked name names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Resource {
    Queue,
    Exchange,
}

impl Resource {
    fn name(self) -> &'static str {
        match self {
            Resource::Queue => "queue",
            Resource::Exchange => "exchange",
        }
    }
}

impl Broker {
    /// `Ok` if the channel's user may do `p` on the resource called `name`.
    pub(crate) fn permit(
        &self,
        conn: ConnId,
        channel: u16,
        p: Permission,
        kind: Resource,
        name: &str,
    ) -> Result<(), Fault> {
        self.permit_any(conn, channel, &[p], kind, name)
    }

    /// `Ok` if the channel's user may do any of `ps` on the resource; the refusal names the
    /// last.
    pub(crate) fn permit_any(
        &self,
        conn: ConnId,
        channel: u16,
        ps: &[Permission],
        kind: Resource,
        name: &str,
    ) -> Result<(), Fault> {
        let Some(c) = self.conns.get(&conn) else {
            return Ok(());
        };
        let allowed = c
            .channels
            .get(&channel)
            .and_then(|ch| ch.permissions.as_ref())
            .is_some_and(|perms| ps.iter().any(|p| perms.allows(*p, name)));
        if allowed {
            return Ok(());
        }
        let vhost = c.vhost.as_deref().unwrap_or_default();
        let shown = if name.is_empty() && kind == Resource::Exchange {
            "amq.default"
        } else {
            name
        };
        Err(channel_fault!(
            ACCESS_REFUSED,
            "access to {} '{}' in vhost '{}' refused for user '{}'",
            kind.name(),
            shown,
            vhost,
            c.username
        ))
    }
}
