//! The words a [`Connection`](crate::connection::Connection) and the
//! [`Broker`](crate::broker::Broker) speak to each other: [`Command`]s from a connection to the
//! broker, [`Event`]s back. Neither side calls the other; a pump (`crate::pump`, or the native
//! hub) carries these between them, on one thread or across threads.
//!
//! A leaf module: it knows the codec and the message type, nothing of queues or sockets.

use alloc::string::String;

use crate::codec::{FieldTable, FieldValue, Method, ShortStr};
use crate::message::Message;
use crate::reply::Fault;

/// Identifies one client connection; chosen by the caller, unique for the broker's lifetime.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(pub u64);

/// What the client said it can handle, from `client-properties.capabilities`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ClientCapabilities {
    pub consumer_cancel_notify: bool,
    pub authentication_failure_close: bool,
    pub connection_blocked: bool,
}

impl ClientCapabilities {
    pub fn from_client_properties(props: &FieldTable) -> Self {
        let mut caps = Self::default();
        if let Some(FieldValue::Table(t)) = props.get("capabilities") {
            let on = |k: &str| matches!(t.get(k), Some(FieldValue::Bool(true)));
            caps.consumer_cancel_notify = on("consumer_cancel_notify");
            caps.authentication_failure_close = on("authentication_failure_close");
            caps.connection_blocked = on("connection.blocked");
        }
        caps
    }
}

/// A request from a connection to the broker.
#[derive(Debug)]
pub enum Command {
    /// `connection.start-ok` carried these credentials.
    Login {
        username: String,
        password: String,
        mechanism: ShortStr,
        capabilities: ClientCapabilities,
        /// See [`ConnectionConfig::from_loopback`](crate::ConnectionConfig::from_loopback).
        from_loopback: bool,
    },
    /// `connection.open`.
    Open { vhost: ShortStr },
    /// A channel-level method without content (channel, exchange, queue, basic, tx, confirm).
    Method { channel: u16, method: Method },
    /// A fully assembled `basic.publish`: its flags and the message built from its method,
    /// content header and body (built on the connection's thread, not the broker's).
    Publish {
        channel: u16,
        flags: PublishFlags,
        message: Message,
    },
    /// The connection closed the channel on its own (a content error): forget it.
    ChannelGone { channel: u16 },
    /// Credit-based flow control of deliveries, in [`Message::delivery_cost`] units (about
    /// bytes). A connection that never sends this gets deliveries without limit. The first
    /// `Credit` opens a window of that size; each delivery to the connection's consumers
    /// takes its cost from it, and none is made while it is used up; later `Credit`s return
    /// what the connection has written out. So a peer that reads slowly costs queue space,
    /// not unbounded buffers, and a backlog reaches it window by window instead of all at
    /// once (RabbitMQ's credit flow does the same).
    Credit(u64),
    /// `connection.update-secret`: the client's new credentials for the user it logged in as.
    UpdateSecret { secret: String },
    /// The connection is gone, cleanly or not.
    Close,
}

/// An answer or delivery from the broker to one connection.
#[derive(Clone, Debug)]
pub enum Event {
    LoginOk,
    LoginRefused {
        mechanism: ShortStr,
    },
    OpenOk,
    /// A method without content.
    Method {
        channel: u16,
        method: Method,
    },
    /// `basic.deliver` to a consumer, followed by the message (the hot path: no `Method`
    /// value, exchange and routing key come from the message).
    Deliver {
        channel: u16,
        consumer_tag: ShortStr,
        delivery_tag: u64,
        redelivered: bool,
        message: Message,
    },
    /// `basic.get-ok` or `basic.return`, followed by the message.
    Content {
        channel: u16,
        method: Method,
        message: Message,
    },
    /// Close this channel with `channel.close` (the broker has already let it go).
    ChannelError {
        channel: u16,
        fault: Fault,
    },
    /// Close the connection with `connection.close` (the broker has already let it go).
    ConnectionError {
        fault: Fault,
    },
    /// The broker has let the connection go (the answer to `Command::Close`, after every
    /// earlier answer): a client-initiated close can now be confirmed with `close-ok`.
    Closed,
    /// A resource alarm went on (`Some(reason)`) or off (`None`): publishers must be paused.
    ResourceAlarm {
        reason: Option<ShortStr>,
    },
    /// Publisher flow control: stop reading this connection (`hold`) until told otherwise,
    /// because a queue it publishes into is behind its consumers (nothing goes to the client).
    Flow {
        hold: bool,
    },
}

impl Event {
    /// The channel the event is on; `None` for the connection's own.
    pub fn channel(&self) -> Option<u16> {
        match self {
            Event::Method { channel, .. }
            | Event::Deliver { channel, .. }
            | Event::Content { channel, .. }
            | Event::ChannelError { channel, .. } => Some(*channel),
            _ => None,
        }
    }
}

/// The flags of a `basic.publish` (the rest of it travels in the [`Message`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PublishFlags {
    pub mandatory: bool,
    pub immediate: bool,
}
