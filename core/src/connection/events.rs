//! Broker events turned into frames: handshake answers, replies, deliveries, channel and
//! connection faults, the resource alarm. One function per event.

use super::{Connection, State};
use crate::codec::{
    encode_content, encode_deliver, encode_method_frame, BasicPublish, ChannelCloseOk,
    ConnectionCloseOk, ConnectionOpenOk, ConnectionTune, ConnectionUnblocked, Method, ShortStr,
};
use crate::connection_fault;
use crate::message::Message;
use crate::reply::Fault;
use crate::vocab::Event;

impl Connection {
    /// Takes an answer or a delivery from the broker.
    pub fn handle_event(&mut self, event: Event, now_ms: u64) {
        if self.state == State::Closed {
            return;
        }
        let before = self.output.len();
        match event {
            Event::LoginOk => self.on_login_ok(now_ms),
            Event::LoginRefused { mechanism } => self.on_login_refused(&mechanism, now_ms),
            Event::OpenOk => self.on_open_ok(now_ms),
            Event::Method { channel, method } => self.on_method(channel, &method),
            Event::Deliver {
                channel,
                consumer_tag,
                delivery_tag,
                redelivered,
                message,
            } => self.on_deliver(channel, &consumer_tag, delivery_tag, redelivered, &message),
            Event::Content {
                channel,
                method,
                message,
            } => self.on_content(channel, &method, &message),
            Event::ChannelError { channel, fault } => self.on_channel_error(channel, &fault),
            Event::Closed => self.on_closed(),
            Event::ConnectionError { fault } => {
                // The broker has already forgotten this connection.
                self.told_gone = true;
                self.send_connection_close(&fault, now_ms);
            }
            Event::ResourceAlarm { reason } => self.on_resource_alarm(reason, now_ms),
            Event::Flow { hold } => self.on_flow(hold, now_ms),
        }
        if self.output.len() != before {
            self.last_send_ms = now_ms;
        }
    }

    /// The credentials are good: tune, and read what the client pipelined behind them.
    fn on_login_ok(&mut self, now_ms: u64) {
        if self.state != State::Login {
            return;
        }
        self.state = State::TuneOk;
        let tune = ConnectionTune {
            channel_max: self.config.channel_max,
            frame_max: self.config.frame_max,
            heartbeat: self.config.heartbeat,
        };
        encode_method_frame(&mut self.output, 0, &tune.into());
        self.resume_input(now_ms);
    }

    fn on_login_refused(&mut self, mechanism: &ShortStr, now_ms: u64) {
        self.told_gone = true;
        // With `authentication_failure_close` the client learns why; without it, RabbitMQ
        // (and the spec) just drop the socket.
        if self.capabilities.authentication_failure_close {
            let fault = connection_fault!(
                ACCESS_REFUSED,
                "Login was refused using authentication mechanism {mechanism}. \
                 For details see the broker logfile."
            );
            self.send_connection_close(&fault, now_ms);
        }
        self.state = State::Closed;
    }

    fn on_open_ok(&mut self, now_ms: u64) {
        if self.state != State::OpenOk {
            return;
        }
        self.state = State::Running;
        self.deadline_ms = None;
        encode_method_frame(&mut self.output, 0, &ConnectionOpenOk::default().into());
        self.resume_input(now_ms);
    }

    fn on_method(&mut self, channel: u16, method: &Method) {
        if let Method::ChannelCloseOk(_) = method {
            // The broker has let the channel go: the number is free again.
            self.free_channel(channel);
        }
        if self.is_answering() {
            encode_method_frame(&mut self.output, channel, method);
        }
    }

    /// The hot path: `basic.deliver` and its content, straight from the shared message.
    fn on_deliver(
        &mut self,
        channel: u16,
        consumer_tag: &ShortStr,
        delivery_tag: u64,
        redelivered: bool,
        message: &Message,
    ) {
        self.delivered_cost += message.delivery_cost();
        if self.is_answering() {
            encode_deliver(
                &mut self.output,
                channel,
                consumer_tag,
                delivery_tag,
                redelivered,
                message.exchange(),
                message.routing_key(),
                message.properties(),
                message.body(),
                self.frame_max,
            );
        }
    }

    /// `basic.get-ok` or `basic.return`, and its content.
    fn on_content(&mut self, channel: u16, method: &Method, message: &Message) {
        if self.is_answering() {
            encode_method_frame(&mut self.output, channel, method);
            encode_content(
                &mut self.output,
                channel,
                BasicPublish::CLASS_ID,
                message.properties(),
                message.body(),
                self.frame_max,
            );
        }
    }

    fn on_channel_error(&mut self, channel: u16, fault: &Fault) {
        if self.is_answering() && self.send_channel_close(channel, fault) {
            // The client's own channel.close reached a broker that had already let the
            // channel go: answer it here, as RabbitMQ does.
            encode_method_frame(&mut self.output, channel, &ChannelCloseOk.into());
        }
    }

    /// The broker let the connection go, after answering everything before the close.
    fn on_closed(&mut self) {
        self.told_gone = true;
        if self.state == State::PeerClosing {
            // Every answer to what the client sent before its close is out: now close-ok,
            // and the connection is over.
            encode_method_frame(&mut self.output, 0, &ConnectionCloseOk.into());
            self.state = State::Closed;
            self.answered_close = true;
        }
    }

    /// Publisher flow control: input waits while held (the broker counts on no more commands
    /// from here until it lets go), then what was buffered is read.
    fn on_flow(&mut self, hold: bool, now_ms: u64) {
        let was = self.flow_held;
        self.flow_held = hold;
        if was && !hold {
            self.last_recv_ms = now_ms;
            if !self.blocked {
                self.resume_input(now_ms);
            }
        }
    }

    fn on_resource_alarm(&mut self, reason: Option<ShortStr>, now_ms: u64) {
        self.alarm = reason;
        if self.alarm.is_none() && self.blocked {
            self.blocked = false;
            // Time spent blocked is not the peer's silence.
            self.last_recv_ms = now_ms;
            if self.capabilities.connection_blocked && self.state == State::Running {
                encode_method_frame(&mut self.output, 0, &ConnectionUnblocked.into());
            }
            if !self.flow_held {
                self.resume_input(now_ms);
            }
        }
    }
}
