//! Faults found on the connection or sent by the broker, turned into `channel.close` /
//! `connection.close` in one place, with RabbitMQ's reply texts for frames that do not decode.

use alloc::string::String;

use super::channels::ChannelState;
use super::{Connection, State};
use crate::codec::{
    encode_method_frame, ChannelClose, ConnectionClose, Method, ShortStr, FRAME_OVERHEAD,
};
use crate::connection_fault;
use crate::reply::{Fault, Scope};

impl Connection {
    /// Reacts to a fault found while reading: close the channel or the connection.
    pub(super) fn fail(&mut self, fault: Fault, now_ms: u64) {
        match fault.scope {
            Scope::Channel => {
                // Channel faults found by the connection itself are rare (the broker raises
                // most); route them through the same path as the broker's.
                // The channel number is not known here, so treat it as a connection fault.
                let fault = Fault {
                    scope: Scope::Connection,
                    ..fault
                };
                self.fail(fault, now_ms)
            }
            Scope::Connection => {
                if matches!(
                    self.state,
                    State::Header | State::StartOk | State::Login | State::TuneOk
                ) {
                    // Before tune-ok, RabbitMQ drops the socket without a connection.close.
                    self.close_silently();
                    return;
                }
                self.send_connection_close(&fault, now_ms);
                self.tell_broker_gone();
            }
        }
    }

    pub(super) fn send_connection_close(&mut self, fault: &Fault, now_ms: u64) {
        if matches!(self.state, State::Closing | State::Closed) {
            return;
        }
        encode_method_frame(&mut self.output, 0, &close_method(fault, Scope::Connection));
        self.last_send_ms = now_ms;
        self.state = State::Closing;
        self.deadline_ms = Some(now_ms + self.config.close_timeout_ms);
        self.channels.clear();
    }

    /// Closes `channel` for `fault` (its later frames are dropped until the client's
    /// `close-ok`). True when the client had already sent its own `channel.close`.
    pub(super) fn send_channel_close(&mut self, channel: u16, fault: &Fault) -> bool {
        let mut peer_was_closing = false;
        if let Some(ch) = self.open_channel(channel) {
            peer_was_closing = ch.state == ChannelState::ClosingByPeer;
            ch.state = ChannelState::ClosingByServer;
            ch.content = None;
        }
        encode_method_frame(
            &mut self.output,
            channel,
            &close_method(fault, Scope::Channel),
        );
        peer_was_closing
    }
}

/// The one place a fault becomes a close method: `channel.close` or `connection.close` with
/// the fault's code, its text cut to a short string, and the method that caused it.
fn close_method(fault: &Fault, scope: Scope) -> Method {
    let (reply_code, reply_text, class_id, method_id) = (
        fault.code.0,
        reply_text(&fault.text),
        fault.class_id,
        fault.method_id,
    );
    match scope {
        Scope::Channel => ChannelClose {
            reply_code,
            reply_text,
            class_id,
            method_id,
        }
        .into(),
        Scope::Connection => ConnectionClose {
            reply_code,
            reply_text,
            class_id,
            method_id,
        }
        .into(),
    }
}

/// A reply text as it goes on the wire: at most 255 bytes, cut with "..." like RabbitMQ.
fn reply_text(text: &str) -> ShortStr {
    if text.len() <= 255 {
        return ShortStr::from(text);
    }
    let mut end = 252;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let mut cut = String::with_capacity(255);
    cut.push_str(&text[..end]);
    cut.push_str("...");
    ShortStr::from(cut)
}

/// Bytes printed as an Erlang binary (`<<0,20,0,10>>`, or `<<"abc">>` when printable), as
/// RabbitMQ's frame errors show them.
pub(super) struct ErlangBinary<'a>(pub(super) &'a [u8]);

impl core::fmt::Display for ErlangBinary<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let printable = !self.0.is_empty() && self.0.iter().all(|b| (0x20..0x7f).contains(b));
        if printable {
            f.write_str("<<\"")?;
            for &b in self.0 {
                if b == b'"' || b == b'\\' {
                    f.write_str("\\")?;
                }
                write!(f, "{}", char::from(b))?;
            }
            return f.write_str("\">>");
        }
        f.write_str("<<")?;
        for (i, b) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{b}")?;
        }
        f.write_str(">>")
    }
}

/// The fault for bytes that do not frame, worded as RabbitMQ words it
/// (`FRAME_ERROR - type 1, all octets = <<…>>: {frame_too_large,4220,4088}`).
/// `input` still starts with the offending frame.
pub(super) fn frame_decode_fault(e: &crate::codec::DecodeError, input: &[u8]) -> Fault {
    use crate::codec::DecodeError;
    let kind = input.first().copied().unwrap_or(0);
    let size = input
        .get(3..7)
        .map_or(0, |s| u32::from_be_bytes([s[0], s[1], s[2], s[3]]) as usize);
    let payload = input.get(7..7 + size).unwrap_or(&[]);
    let overhead = FRAME_OVERHEAD as u64;
    match e {
        DecodeError::FrameTooLarge { size, max } => connection_fault!(
            FRAME_ERROR,
            "type {kind}, all octets = <<>>: {{frame_too_large,{},{}}}",
            size.saturating_sub(overhead),
            u64::from(*max).saturating_sub(overhead)
        ),
        DecodeError::UnknownFrameType(_) => connection_fault!(
            FRAME_ERROR,
            "type {kind}, all octets = {}: unknown_frame",
            ErlangBinary(payload)
        ),
        DecodeError::BadFrameEnd(end) => connection_fault!(
            FRAME_ERROR,
            "type {kind}, all octets = {}: {{invalid_frame_end_marker,{end}}}",
            ErlangBinary(payload)
        ),
        other => Fault::connection(
            crate::reply::ReplyCode(other.reply_code()),
            format_args!("{other}"),
        ),
    }
}

/// The fault for a method frame that does not decode: 501 naming the method when its ids are
/// known, as RabbitMQ does (`FRAME_ERROR - cannot decode <<…>>`).
pub(super) fn method_decode_fault(e: &crate::codec::DecodeError, payload: &[u8]) -> Fault {
    let code = crate::reply::ReplyCode(e.reply_code());
    let ids = payload.get(..4).map(|h| {
        (
            u16::from_be_bytes([h[0], h[1]]),
            u16::from_be_bytes([h[2], h[3]]),
        )
    });
    match (e, ids) {
        // RabbitMQ checks every shortstr of a method and names no method.
        (crate::codec::DecodeError::InvalidUtf8, _) => {
            connection_fault!(FRAME_ERROR, "Malformed UTF-8 in shortstr")
        }
        (crate::codec::DecodeError::UnknownMethod { .. }, _) | (_, None) => {
            Fault::connection(code, format_args!("{e}"))
        }
        (_, Some((class_id, method_id))) => Fault::connection(
            crate::reply::ReplyCode::FRAME_ERROR,
            format_args!("cannot decode {}", ErlangBinary(&payload[4..])),
        )
        .caused_by(class_id, method_id),
    }
}
