//! Channel bookkeeping: which channel numbers are open, closing by the peer or by us, and
//! which methods a client may send on them (everything else is COMMAND_INVALID).

use super::content::PendingContent;
use super::{Connection, State};
use crate::codec::{
    encode_method_frame, BasicPublish, ChannelCloseOk, ChannelOpen, ConnectionClose, Method,
};
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
        let slot = self
            .channels
            .get(usize::from(channel))
            .and_then(|c| c.as_ref())
            .map(|c| c.state);
        match (slot, method) {
            // A close-ok for a channel already gone (the answer to a close that crossed the
            // client's own): RabbitMQ ignores it.
            (None, Method::ChannelCloseOk(_)) => Ok(()),
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
                Ok(())
            }
            (Some(ChannelState::ClosingByServer | ChannelState::ClosingByPeer), _) => Ok(()),
            (Some(ChannelState::Open), m) => self.on_open_channel_method(channel, m),
        }
    }

    /// `channel.open` for a free channel number.
    fn open(&mut self, channel: u16, open: ChannelOpen) -> Result<(), Fault> {
        if channel > self.channel_max {
            return Err(connection_fault!(
                CHANNEL_ERROR,
                "channel number {channel} exceeds channel_max {}",
                self.channel_max
            )
            .caused_by(ChannelOpen::CLASS_ID, ChannelOpen::METHOD_ID));
        }
        let idx = usize::from(channel);
        if self.channels.len() <= idx {
            self.channels.resize_with(idx + 1, || None);
        }
        self.channels[idx] = Some(Channel {
            state: ChannelState::Open,
            content: None,
        });
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
        if ch.content.is_some() {
            return Err(connection_fault!(
                UNEXPECTED_FRAME,
                "expected content header for class 60, got non content header frame instead"
            )
            // RabbitMQ names the publish that was interrupted, not the interrupter.
            .caused_by(BasicPublish::CLASS_ID, BasicPublish::METHOD_ID));
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
        self.channels
            .get_mut(usize::from(channel))
            .and_then(|c| c.as_mut())
    }

    pub(super) fn free_channel(&mut self, channel: u16) {
        if let Some(slot) = self.channels.get_mut(usize::from(channel)) {
            *slot = None;
        }
    }
}

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
