//! The handshake (AMQP 0-9-1 §2.2.4): protocol header, `start`/`start-ok` with PLAIN or
//! AMQPLAIN credentials, `tune`/`tune-ok`, `open`, and the connection-level close methods.

use alloc::string::String;
use alloc::vec::Vec;

use super::{Connection, State, FRAME_MIN_SIZE};
use crate::codec::{
    encode_method_frame, ConnectionClose, ConnectionCloseOk, ConnectionStart, ConnectionStartOk,
    ConnectionTuneOk, FieldTable, FieldValue, LongStr, Method, PROTOCOL_HEADER,
};
use crate::connection_fault;
use crate::reply::Fault;
use crate::vocab::{ClientCapabilities, Command};

impl Connection {
    /// The 8-byte protocol header: ours answers `connection.start`; anything else gets our
    /// header back and the socket closed. False while it is incomplete or wrong.
    pub(super) fn read_protocol_header(&mut self) -> bool {
        let n = self.input.len().min(PROTOCOL_HEADER.len());
        if self.input[..n] != PROTOCOL_HEADER[..n] {
            // Wrong protocol or version: answer with ours and hang up (spec §4.2.2).
            self.output.extend_from_slice(&PROTOCOL_HEADER);
            self.state = State::Closed;
            self.input.clear();
            return false;
        }
        if n < PROTOCOL_HEADER.len() {
            return false;
        }
        let _ = self.input.split_to(PROTOCOL_HEADER.len());
        self.state = State::StartOk;
        let start = ConnectionStart {
            version_major: 0,
            version_minor: 9,
            server_properties: self.server_properties(),
            mechanisms: LongStr::from("PLAIN AMQPLAIN"),
            locales: LongStr::from("en_US"),
        };
        encode_method_frame(&mut self.output, 0, &start.into());
        true
    }

    fn server_properties(&self) -> FieldTable {
        let mut caps = FieldTable::default();
        for cap in [
            "publisher_confirms",
            "exchange_exchange_bindings",
            "basic.nack",
            "consumer_cancel_notify",
            "connection.blocked",
            "authentication_failure_close",
            "per_consumer_qos",
            "direct_reply_to",
            "consumer_priorities",
        ] {
            caps.insert(cap, FieldValue::Bool(true));
        }
        let mut props = FieldTable::default();
        props.insert("capabilities", FieldValue::Table(caps));
        props.insert("product", long(self.config.product));
        props.insert("version", long(self.config.version));
        props.insert("platform", long("Rust"));
        props.insert("cluster_name", long("warren"));
        props.insert("copyright", long("Copyright (c) the Warren authors"));
        props.insert(
            "information",
            long("Warren, an AMQP 0-9-1 broker. Licensed under MIT or Apache-2.0."),
        );
        props
    }

    /// A method on channel 0, by connection state.
    pub(super) fn handle_connection_method(&mut self, method: Method) -> Result<(), Fault> {
        let (class_id, method_id) = (method.class_id(), method.method_id());
        let result = match (self.state, method) {
            // Handshake refusals name no method (RabbitMQ's), hence the early returns.
            (State::StartOk, Method::ConnectionStartOk(ok)) => return self.on_start_ok(&ok),
            (State::TuneOk, Method::ConnectionTuneOk(ok)) => return self.on_tune_ok(&ok),
            (State::Open, Method::ConnectionOpen(open)) => {
                self.state = State::OpenOk;
                self.commands.push_back(Command::Open {
                    vhost: open.virtual_host,
                });
                Ok(())
            }
            (State::Running | State::OpenOk, Method::ConnectionClose(_)) => {
                self.on_peer_close();
                Ok(())
            }
            (State::PeerClosing, _) => Ok(()),
            (State::Running, Method::ConnectionUpdateSecret(m)) => {
                let secret = String::from_utf8_lossy(m.new_secret.as_bytes()).into_owned();
                self.commands.push_back(Command::UpdateSecret { secret });
                Ok(())
            }
            // The handshake again on a running connection: RabbitMQ's reader answers 504.
            (
                State::Running,
                Method::ConnectionStartOk(_)
                | Method::ConnectionSecureOk(_)
                | Method::ConnectionTuneOk(_)
                | Method::ConnectionOpen(_),
            ) => Err(connection_fault!(
                CHANNEL_ERROR,
                "unexpected method in connection state running"
            )),
            (State::Closing, Method::ConnectionCloseOk(_)) => {
                self.state = State::Closed;
                Ok(())
            }
            (State::Closing, Method::ConnectionClose(_)) => {
                encode_method_frame(&mut self.output, 0, &ConnectionCloseOk.into());
                self.state = State::Closed;
                self.answered_close = true;
                Ok(())
            }
            (State::Closing, _) => Ok(()),
            (_, m) if m.class_id() == ConnectionClose::CLASS_ID => Err(connection_fault!(
                COMMAND_INVALID,
                "unexpected method {} in this connection state",
                m.name()
            )),
            (state, _) => Err(connection_fault!(
                CHANNEL_ERROR,
                "unexpected method in connection state {}",
                state.name()
            )),
        };
        result.map_err(|f| f.or_caused_by(class_id, method_id))
    }

    /// Credentials: they go to the broker, which answers `LoginOk` or `LoginRefused`; the
    /// delivery window opens with them.
    fn on_start_ok(&mut self, ok: &ConnectionStartOk) -> Result<(), Fault> {
        self.capabilities = ClientCapabilities::from_client_properties(&ok.client_properties);
        let mechanism = ok.mechanism.as_str();
        let (username, password) = match mechanism {
            "PLAIN" => parse_plain(ok.response.0.as_ref()),
            "AMQPLAIN" => parse_amqplain(ok.response.0.as_ref()),
            other => {
                return Err(connection_fault!(
                    COMMAND_INVALID,
                    "unknown authentication mechanism '{other}'"
                )
                .caused_by(ConnectionStartOk::CLASS_ID, ConnectionStartOk::METHOD_ID));
            }
        }
        .ok_or_else(|| {
            connection_fault!(
                ACCESS_REFUSED,
                "Login was refused using authentication mechanism {mechanism}. \
                 For details see the broker logfile."
            )
        })?;
        self.username = username.clone();
        self.state = State::Login;
        self.commands.push_back(Command::Login {
            username,
            password,
            mechanism: ok.mechanism.clone(),
            capabilities: self.capabilities,
            from_loopback: self.config.from_loopback,
        });
        if let Some(window) = self.config.delivery_window {
            self.commands.push_back(Command::Credit(window));
        }
        Ok(())
    }

    /// The client's limits, each at most ours. The spec lets 0 mean "no limit"; RabbitMQ
    /// 3.10 hangs up on a 0 frame_max or channel_max, and so do we.
    fn on_tune_ok(&mut self, ok: &ConnectionTuneOk) -> Result<(), Fault> {
        let frame_max = ok.frame_max;
        if ok.channel_max == 0 {
            return Err(connection_fault!(
                NOT_ALLOWED,
                "channel_max=0 is not allowed"
            ));
        }
        if frame_max < FRAME_MIN_SIZE {
            return Err(connection_fault!(
                NOT_ALLOWED,
                "frame_max={frame_max} < {FRAME_MIN_SIZE} min size"
            ));
        }
        if frame_max > self.config.frame_max {
            return Err(connection_fault!(
                NOT_ALLOWED,
                "frame_max={frame_max} > {} max size",
                self.config.frame_max
            ));
        }
        if ok.channel_max > self.config.channel_max {
            return Err(connection_fault!(
                NOT_ALLOWED,
                "channel_max={} > {} max",
                ok.channel_max,
                self.config.channel_max
            ));
        }
        self.frame_max = frame_max;
        self.channel_max = ok.channel_max;
        self.heartbeat_ms = u64::from(ok.heartbeat) * 1000;
        self.state = State::Open;
        Ok(())
    }

    /// The client's `connection.close`: `close-ok` waits for the broker, since answers to
    /// commands sent before the close must reach the client first (`Event::Closed` comes
    /// after them).
    fn on_peer_close(&mut self) {
        self.state = State::PeerClosing;
        self.channels.clear();
        self.deadline_ms = Some(self.last_recv_ms + self.config.close_timeout_ms);
        self.tell_broker_gone();
    }
}

/// PLAIN (RFC 4616): `[authzid] NUL authcid NUL passwd`.
fn parse_plain(response: &[u8]) -> Option<(String, String)> {
    let mut parts = response.split(|&b| b == 0);
    let _authzid = parts.next()?;
    let user = parts.next()?;
    let pass = parts.next()?;
    if parts.next().is_some() {
        return None;
    }
    Some((
        String::from(core::str::from_utf8(user).ok()?),
        String::from(core::str::from_utf8(pass).ok()?),
    ))
}

/// AMQPLAIN: a field table without its length prefix, holding LOGIN and PASSWORD.
fn parse_amqplain(response: &[u8]) -> Option<(String, String)> {
    let len = u32::try_from(response.len()).ok()?;
    let mut framed = Vec::with_capacity(response.len() + 4);
    framed.extend_from_slice(&len.to_be_bytes());
    framed.extend_from_slice(response);
    let table = FieldTable::decode(&framed).ok()?;
    let text = |key: &str| match table.get(key)? {
        FieldValue::LongStr(s) | FieldValue::Bytes(s) => {
            core::str::from_utf8(s.as_bytes()).ok().map(String::from)
        }
        _ => None,
    };
    Some((text("LOGIN")?, text("PASSWORD")?))
}

fn long(s: &str) -> FieldValue {
    FieldValue::LongStr(LongStr::from(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_response_parses_with_and_without_authzid() {
        assert_eq!(
            parse_plain(b"\0guest\0secret"),
            Some(("guest".into(), "secret".into()))
        );
        assert_eq!(
            parse_plain(b"admin\0guest\0secret"),
            Some(("guest".into(), "secret".into()))
        );
        assert_eq!(parse_plain(b"guest"), None);
        assert_eq!(parse_plain(b"\0a\0b\0c"), None);
    }
}
