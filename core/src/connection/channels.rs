//! Channel bookkeeping: which channel numbers are open, closing by the peer or by us, and
//! which methods a client may send on them (everything else is COMMAND_INVALID).

use alloc::vec::Vec;

use super::content::PendingContent;
use super::{Connection, State};
use crate::codec::{encode_method_frame, ChannelCloseOk, ChannelOpen, ConnectionClose, Method};
use crate::connection_fault;
use crate::reply::Fault;
use crate::vocab::Command;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum ChannelState {
    Open,
    /// The client sent `channel.close`; frames are dropped until we answer `close-ok`.
    ClosingByPeer,
    /// We sent `channel.close`; frames are dropped until the client's `close-ok`.
    ClosingByServer,
}

pub(super) struct Channel {
    pub(super) state: ChannelState,
    pub(super) content: Option<PendingContent>,
}

/// The channels a connection has, by number, kept sorted. A client may use any number up to
/// 65535 (RabbitMQ limits how many are open, not their numbers), so this is not a vector
/// indexed by number; connections hold a few channels, and a search over them is as quick.
#[derive(Default)]
pub(super) struct Channels {
    open: Vec<(u16, Channel)>,
    /// Numbers freed when our `channel.close` crossed the client's: the client's `close-ok`
    /// for ours may still come, and is not an error (any other close-ok on a free number is).
    crossed: Vec<u16>,
}

impl Channels {
    fn find(&self, number: u16) -> Result<usize, usize> {
        self.open.binary_search_by_key(&number, |(n, _)| *n)
    }

    pub(super) fn get_mut(&mut self, number: u16) -> Option<&mut Channel> {
        let i = self.find(number).ok()?;
        Some(&mut self.open[i].1)
    }

    fn state(&self, number: u16) -> Option<ChannelState> {
        let i = self.find(number).ok()?;
        Some(self.open[i].1.state)
    }

    fn insert(&mut self, number: u16, channel: Channel) {
        self.crossed.retain(|n| *n != number);
        match self.find(number) {
            Ok(i) => self.open[i].1 = channel,
            Err(i) => self.open.insert(i, (number, channel)),
        }
    }

    fn remove(&mut self, number: u16) {
        if let Ok(i) = self.find(number) {
            self.open.remove(i);
        }
    }

    /// How many are open (or closing).
    pub(super) fn len(&self) -> usize {
        self.open.len()
    }

    pub(super) fn clear(&mut self) {
        self.open.clear();
        self.crossed.clear();
    }
}

impl Connection {
    /// A method on a channel other than 0, by the channel's state.
    pub(super) fn handle_channel_method(
        &mut self,
        channel: u16,
        method: Method,
    ) -> Result<(), Fault> {
        if self.state == State::Closing {
            return Ok(());
        }
        let (class_id, method_id) = (method.class_id(), method.method_id());
        if self.state != State::Running {
            return Err(connection_fault!(
                COMMAND_INVALID,
                "method {} before the connection is open",
                method.name()
            )
            .caused_by(class_id, method_id));
        }
        if class_id == ConnectionClose::CLASS_ID {
            return Err(connection_fault!(
                COMMAND_INVALID,
                "connection method {} on channel {channel}",
                method.name()
            )
            .caused_by(class_id, method_id));
        }
        let slot = self.channels.state(channel);
        match (slot, method) {
            // A close-ok for a channel already gone (the answer to a close that crossed the
            // client's own) is ignored; on a number never opened RabbitMQ answers 504, as
            // for any other method.
            (None, Method::ChannelCloseOk(_)) if self.channels.crossed.contains(&channel) => {
                self.channels.crossed.retain(|n| *n != channel);
                Ok(())
            }
            (None, Method::ChannelOpen(open)) => self.open(channel, open),
            (None, _) => Err(connection_fault!(CHANNEL_ERROR, "expected 'channel.open'")
                .caused_by(class_id, method_id)),
            (Some(ChannelState::ClosingByServer), Method::ChannelCloseOk(_)) => {
                self.free_channel(channel);
                Ok(())
            }
            (Some(ChannelState::ClosingByServer), Method::ChannelClose(_)) => {
                // Both sides closed at once: answer, and the channel is gone.
                encode_method_frame(&mut self.output, channel, &ChannelCloseOk.into());
                self.free_channel(channel);
                if self.channels.crossed.len() < CROSSED_KEPT {
                    self.channels.crossed.push(channel);
                }
                Ok(())
            }
            (Some(ChannelState::ClosingByServer | ChannelState::ClosingByPeer), _) => Ok(()),
            (Some(ChannelState::Open), m) => self.on_open_channel_method(channel, m),
        }
    }

    /// `channel.open` for a free channel number. RabbitMQ checks how many channels are open
    /// against channel_max, not the number (any up to 65535 will do), and names no method.
    fn open(&mut self, channel: u16, open: ChannelOpen) -> Result<(), Fault> {
        let open_now = self.channels.len();
        if open_now >= usize::from(self.channel_max) {
            return Err(connection_fault!(
                NOT_ALLOWED,
                "number of channels opened ({open_now}) has reached the negotiated channel_max ({})",
                self.channel_max
            ));
        }
        self.channels.insert(
            channel,
            Channel {
                state: ChannelState::Open,
                content: None,
            },
        );
        self.commands.push_back(Command::Method {
            channel,
            method: Method::ChannelOpen(open),
        });
        Ok(())
    }

    /// A method on an open channel: a publish starts content; everything a client may send
    /// goes to the broker.
    fn on_open_channel_method(&mut self, channel: u16, m: Method) -> Result<(), Fault> {
        let (class_id, method_id) = (m.class_id(), m.method_id());
        let Some(ch) = self.open_channel(channel) else {
            return Ok(());
        };
        if let Some(content) = &ch.content {
            // RabbitMQ names the publish that was interrupted, not the interrupter.
            return Err(content.interrupted());
        }
        match m {
            Method::ChannelOpen(_) => Err(connection_fault!(
                CHANNEL_ERROR,
                "second 'channel.open' seen"
            )
            .caused_by(class_id, method_id)),
            Method::BasicPublish(publish) => {
                ch.content = Some(PendingContent::new(publish));
                Ok(())
            }
            Method::ChannelClose(close) => {
                ch.state = ChannelState::ClosingByPeer;
                self.commands.push_back(Command::Method {
                    channel,
                    method: Method::ChannelClose(close),
                });
                Ok(())
            }
            Method::ChannelCloseOk(_) => Ok(()),
            m if is_client_method(&m) => {
                self.commands
                    .push_back(Command::Method { channel, method: m });
                Ok(())
            }
            m => Err(connection_fault!(
                COMMAND_INVALID,
                "method {} is not sent by clients",
                m.name()
            )
            .caused_by(class_id, method_id)),
        }
    }

    pub(super) fn open_channel(&mut self, channel: u16) -> Option<&mut Channel> {
        self.channels.get_mut(channel)
    }

    pub(super) fn free_channel(&mut self, channel: u16) {
        self.channels.remove(channel);
    }
}

/// At most this many crossed-close numbers are remembered (a client that never answers them
/// must not grow the list).
const CROSSED_KEPT: usize = 64;

/// Methods a client may send on a channel; anything else is COMMAND_INVALID.
fn is_client_method(m: &Method) -> bool {
    !matches!(
        m,
        Method::ChannelOpenOk(_)
            | Method::ChannelFlowOk(_)
            | Method::ExchangeDeclareOk(_)
            | Method::ExchangeDeleteOk(_)
            | Method::ExchangeBindOk(_)
            | Method::ExchangeUnbindOk(_)
            | Method::QueueDeclareOk(_)
            | Method::QueueBindOk(_)
            | Method::QueueUnbindOk(_)
            | Method::QueuePurgeOk(_)
            | Method::QueueDeleteOk(_)
            | Method::BasicQosOk(_)
            | Method::BasicConsumeOk(_)
            | Method::BasicCancelOk(_)
            | Method::BasicReturn(_)
            | Method::BasicDeliver(_)
            | Method::BasicGetOk(_)
            | Method::BasicGetEmpty(_)
            | Method::BasicRecoverOk(_)
            | Method::TxSelectOk(_)
            | Method::TxCommitOk(_)
            | Method::TxRollbackOk(_)
            | Method::ConfirmSelectOk(_)
    )
}
