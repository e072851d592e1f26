//! Frames every AMQP test client builds the same way: the handshake's `start-ok` and
//! `tune-ok`, publishes cut at frame_max, the close-ok a client owes.

use warren_core::codec::{
    encode_content, encode_method_frame, BasicProperties, BasicPublish, ChannelCloseOk,
    ConnectionCloseOk, ConnectionStartOk, ConnectionTuneOk, FieldTable, FieldValue, LongStr,
    Method,
};

/// How the client logs in and tunes.
#[derive(Clone, Debug)]
pub struct Handshake {
    /// "PLAIN" or "AMQPLAIN" (anything else is sent as is, with a PLAIN response).
    pub mechanism: &'static str,
    pub username: &'static str,
    pub password: &'static str,
    /// Capabilities announced in client-properties (each set to true).
    pub capabilities: Vec<&'static str>,
    /// `None`: echo the server's tune values.
    pub tune_ok: Option<ConnectionTuneOk>,
    pub vhost: &'static str,
    /// `product` in client-properties.
    pub product: &'static str,
}

impl Default for Handshake {
    fn default() -> Self {
        Handshake {
            mechanism: "PLAIN",
            username: "guest",
            password: "guest",
            capabilities: vec![
                "authentication_failure_close",
                "basic.nack",
                "connection.blocked",
                "consumer_cancel_notify",
                "publisher_confirms",
            ],
            tune_ok: None,
            vhost: "/",
            product: "warren-core tests",
        }
    }
}

impl Handshake {
    /// The `connection.start-ok` this handshake sends.
    pub fn start_ok(&self) -> ConnectionStartOk {
        let mut caps = FieldTable::default();
        for c in &self.capabilities {
            caps.insert(*c, FieldValue::Bool(true));
        }
        let mut props = table(&[("product", self.product), ("platform", "Rust")]);
        props.insert("capabilities", FieldValue::Table(caps));
        let response = if self.mechanism == "AMQPLAIN" {
            let mut t = FieldTable::default();
            t.insert("LOGIN", FieldValue::LongStr(self.username.into()));
            t.insert("PASSWORD", FieldValue::LongStr(self.password.into()));
            let mut raw = Vec::new();
            t.encode(&mut raw);
            LongStr::from(raw[4..].to_vec())
        } else {
            plain_response(self.username, self.password)
        };
        ConnectionStartOk {
            client_properties: props,
            mechanism: self.mechanism.into(),
            response,
            locale: "en_US".into(),
        }
    }
}

/// A `basic.publish` with its content: method frame, content header, body frames cut to
/// `frame_max`.
pub fn encode_publish(
    out: &mut Vec<u8>,
    channel: u16,
    publish: BasicPublish,
    props: &BasicProperties,
    body: &[u8],
    frame_max: u32,
) {
    encode_method_frame(out, channel, &publish.into());
    let mut raw = Vec::new();
    props.encode(&mut raw);
    encode_content(out, channel, BasicPublish::CLASS_ID, &raw, body, frame_max);
}

/// The close-ok a client owes for a `connection.close` or `channel.close` from the server
/// (on the channel it came on), as client libraries answer it.
pub fn close_ok_for(m: &Method) -> Option<Method> {
    match m {
        Method::ConnectionClose(_) => Some(ConnectionCloseOk.into()),
        Method::ChannelClose(_) => Some(ChannelCloseOk.into()),
        _ => None,
    }
}

/// The `start-ok` response of PLAIN (RFC 4616): `NUL user NUL password`.
pub fn plain_response(username: &str, password: &str) -> LongStr {
    LongStr::from(format!("\0{username}\0{password}"))
}

/// A field table of long-string values.
pub fn table(entries: &[(&str, &str)]) -> FieldTable {
    let mut t = FieldTable::default();
    for (k, v) in entries {
        t.insert(*k, FieldValue::LongStr(LongStr::from(*v)));
    }
    t
}
