//! A minimal AMQP 0-9-1 client on Warren's codec, for load generation only.
//!
//! Cold path (handshake, declarations, bindings, closing): methods are encoded with
//! [`encode_method_frame`] and replies decoded with [`decode_frame`] + [`Method::decode`], one
//! at a time. Hot path (publishing, deliveries, confirms): the producer and consumer loops in
//! `throughput` copy a pre-encoded publish and read frames in place with [`peek_frame`]; this
//! module only gives them the connection and the helpers.
//!
//! What the broker sends that the tool did not ask for: `channel.close` / `connection.close`
//! end the run with the broker's reply text (after answering close-ok); `connection.blocked`
//! is ignored (the writes simply stall); heartbeats are disabled at tune time.

use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use warren_core::codec::{
    decode_frame, encode_method_frame, ChannelClose, ChannelCloseOk, ChannelOpen, ConnectionClose,
    ConnectionCloseOk, ConnectionOpen, ConnectionStartOk, ConnectionTuneOk, FieldTable, FieldValue,
    FrameKind, LongStr, Method, ShortStr, FRAME_END, PROTOCOL_HEADER,
};

use crate::uri::AmqpUri;

/// Largest frame the tool asks for (RabbitMQ's default); the broker may offer less.
pub const CLIENT_FRAME_MAX: u32 = 131_072;

/// How long a cold-path reply may take.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(30);

/// How long to wait for `connection.close-ok` when closing.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// An open connection: socket, read buffer, write buffer, negotiated frame size.
pub struct Conn {
    pub stream: TcpStream,
    pub rbuf: BytesMut,
    pub wbuf: Vec<u8>,
    pub frame_max: u32,
}

/// A frame borrowed from a read buffer: (type, channel, payload, bytes it takes on the wire).
pub type PeekedFrame<'a> = (u8, u16, &'a [u8], usize);

/// One whole frame at the front of `buf`, borrowed in place. `Ok(None)`: not all of it has
/// arrived.
#[inline]
pub fn peek_frame(buf: &[u8]) -> Result<Option<PeekedFrame<'_>>> {
    let Some(head) = buf.first_chunk::<7>() else {
        return Ok(None);
    };
    let size = u32::from_be_bytes([head[3], head[4], head[5], head[6]]) as usize;
    let whole = size + 8;
    if buf.len() < whole {
        return Ok(None);
    }
    if buf[whole - 1] != FRAME_END {
        bail!(
            "bad frame end octet {:#04x} from the broker",
            buf[whole - 1]
        );
    }
    let channel = u16::from_be_bytes([head[1], head[2]]);
    Ok(Some((head[0], channel, &buf[7..7 + size], whole)))
}

/// `(class id, method id)` of a method frame payload.
#[inline]
pub fn method_ids(payload: &[u8]) -> (u16, u16) {
    match payload.first_chunk::<4>() {
        Some(p) => (
            u16::from_be_bytes([p[0], p[1]]),
            u16::from_be_bytes([p[2], p[3]]),
        ),
        None => (0, 0),
    }
}

/// Decodes a method frame payload on the cold path (copies it).
pub fn decode_method(payload: &[u8]) -> Result<Method> {
    Method::decode(&Bytes::copy_from_slice(payload))
        .map_err(|e| anyhow!("undecodable method from the broker: {e}"))
}

/// The error for a `channel.close` / `connection.close` the broker sent, if `m` is one.
pub fn close_error(channel: u16, m: &Method) -> Option<anyhow::Error> {
    match m {
        Method::ChannelClose(c) => Some(anyhow!(
            "broker closed channel {channel}: {} {} (in method {}.{})",
            c.reply_code,
            c.reply_text,
            c.class_id,
            c.method_id
        )),
        Method::ConnectionClose(c) => Some(anyhow!(
            "broker closed the connection: {} {} (in method {}.{})",
            c.reply_code,
            c.reply_text,
            c.class_id,
            c.method_id
        )),
        _ => None,
    }
}

/// The close-ok that answers a broker's close, encoded.
pub fn close_ok_reply(channel: u16, m: &Method, out: &mut Vec<u8>) {
    match m {
        Method::ChannelClose(_) => {
            encode_method_frame(out, channel, &Method::ChannelCloseOk(ChannelCloseOk {}))
        }
        Method::ConnectionClose(_) => {
            encode_method_frame(out, 0, &Method::ConnectionCloseOk(ConnectionCloseOk {}))
        }
        _ => {}
    }
}

impl Conn {
    /// Connects and runs the handshake: PLAIN with the URI's credentials, tune (the broker's
    /// channel-max and frame-max, capped at [`CLIENT_FRAME_MAX`]; heartbeats off), open vhost.
    pub async fn connect(uri: &AmqpUri, name: &str) -> Result<Conn> {
        let addr = uri.address();
        let stream = tokio::time::timeout(REPLY_TIMEOUT, TcpStream::connect(&addr))
            .await
            .map_err(|_| anyhow!("connecting to {addr} timed out"))?
            .with_context(|| format!("connecting to {addr}"))?;
        stream.set_nodelay(true)?;
        let mut conn = Conn {
            stream,
            rbuf: BytesMut::with_capacity(64 * 1024),
            wbuf: Vec::with_capacity(64 * 1024),
            frame_max: CLIENT_FRAME_MAX,
        };
        conn.stream.write_all(&PROTOCOL_HEADER).await?;
        let start = match conn.next_method().await? {
            (0, Method::ConnectionStart(s)) => s,
            (ch, m) => bail!(
                "expected connection.start, got {} on channel {ch}",
                m.name()
            ),
        };
        let mechanisms = start.mechanisms.as_str().unwrap_or("");
        if !mechanisms.split(' ').any(|m| m == "PLAIN") {
            bail!("broker does not offer PLAIN (offers {mechanisms:?})");
        }
        let mut capabilities = FieldTable::default();
        for cap in [
            "publisher_confirms",
            "consumer_cancel_notify",
            "basic.nack",
            "connection.blocked",
        ] {
            capabilities.insert(cap, FieldValue::Bool(true));
        }
        let mut props = FieldTable::default();
        props.insert("product", FieldValue::LongStr(LongStr::from("warren-perf")));
        props.insert(
            "version",
            FieldValue::LongStr(LongStr::from(env!("CARGO_PKG_VERSION"))),
        );
        props.insert("connection_name", FieldValue::LongStr(LongStr::from(name)));
        props.insert("capabilities", FieldValue::Table(capabilities));
        let response = format!("\0{}\0{}", uri.user, uri.password);
        conn.send(
            0,
            ConnectionStartOk {
                client_properties: props,
                mechanism: ShortStr::from_static("PLAIN"),
                response: LongStr::from(response),
                locale: ShortStr::from_static("en_US"),
            },
        )
        .await?;
        let tune = match conn.next_method().await? {
            (_, Method::ConnectionTune(t)) => t,
            (_, m) => bail!("expected connection.tune, got {}", m.name()),
        };
        let frame_max = match tune.frame_max {
            0 => CLIENT_FRAME_MAX,
            f => f.min(CLIENT_FRAME_MAX),
        };
        conn.frame_max = frame_max;
        conn.send(
            0,
            ConnectionTuneOk {
                channel_max: if tune.channel_max == 0 {
                    2047
                } else {
                    tune.channel_max
                },
                frame_max,
                heartbeat: 0,
            },
        )
        .await?;
        let reply = conn
            .rpc(
                0,
                ConnectionOpen {
                    virtual_host: ShortStr::from(uri.vhost.as_str()),
                    ..ConnectionOpen::default()
                },
            )
            .await?;
        if !matches!(reply, Method::ConnectionOpenOk(_)) {
            bail!("expected connection.open-ok, got {}", reply.name());
        }
        Ok(conn)
    }

    /// Opens channel `ch`.
    pub async fn open_channel(&mut self, ch: u16) -> Result<()> {
        match self.rpc(ch, ChannelOpen::default()).await? {
            Method::ChannelOpenOk(_) => Ok(()),
            m => bail!("expected channel.open-ok, got {}", m.name()),
        }
    }

    /// Appends a method frame to the write buffer (sent by [`flush`](Self::flush)).
    pub fn queue_method(&mut self, ch: u16, method: impl Into<Method>) {
        encode_method_frame(&mut self.wbuf, ch, &method.into());
    }

    /// Writes out the write buffer.
    pub async fn flush(&mut self) -> Result<()> {
        if !self.wbuf.is_empty() {
            self.stream
                .write_all(&self.wbuf)
                .await
                .context("writing to the broker")?;
            self.wbuf.clear();
        }
        Ok(())
    }

    /// Sends one method frame now.
    pub async fn send(&mut self, ch: u16, method: impl Into<Method>) -> Result<()> {
        self.queue_method(ch, method);
        self.flush().await
    }

    /// Sends a method and returns the next method the broker sends (its reply).
    pub async fn rpc(&mut self, ch: u16, method: impl Into<Method>) -> Result<Method> {
        self.send(ch, method).await?;
        Ok(self.next_method().await?.1)
    }

    /// The next method frame from the broker, skipping content frames and heartbeats. A close
    /// from the broker is answered with close-ok and returned as an error.
    pub async fn next_method(&mut self) -> Result<(u16, Method)> {
        tokio::time::timeout(REPLY_TIMEOUT, self.next_method_unbounded())
            .await
            .map_err(|_| anyhow!("no reply from the broker within {REPLY_TIMEOUT:?}"))?
    }

    async fn next_method_unbounded(&mut self) -> Result<(u16, Method)> {
        loop {
            while let Some(frame) = decode_frame(&mut self.rbuf, 0)
                .map_err(|e| anyhow!("bad frame from the broker: {e}"))?
            {
                let FrameKind::Method(payload) = frame.kind else {
                    continue;
                };
                let m = Method::decode(&payload)
                    .map_err(|e| anyhow!("undecodable method from the broker: {e}"))?;
                if let Some(err) = close_error(frame.channel, &m) {
                    close_ok_reply(frame.channel, &m, &mut self.wbuf);
                    let _ = self.flush().await;
                    return Err(err);
                }
                return Ok((frame.channel, m));
            }
            self.read_more().await?;
        }
    }

    /// Reads whatever the socket has into the read buffer; EOF is an error.
    pub async fn read_more(&mut self) -> Result<usize> {
        self.rbuf.reserve(64 * 1024);
        let n = self
            .stream
            .read_buf(&mut self.rbuf)
            .await
            .context("reading from the broker")?;
        if n == 0 {
            bail!("the broker closed the connection");
        }
        Ok(n)
    }

    /// Sends pipelined methods on channel `ch` and waits for one reply to each, in order.
    /// `methods` is consumed in batches of `batch` so the socket buffers never hold too much.
    pub async fn pipeline<I>(&mut self, ch: u16, methods: I, batch: usize) -> Result<Vec<Method>>
    where
        I: IntoIterator,
        I::Item: Into<Method>,
    {
        let mut replies = Vec::new();
        let mut pending = 0usize;
        for m in methods {
            self.queue_method(ch, m);
            pending += 1;
            if pending == batch {
                self.flush().await?;
                for _ in 0..pending {
                    replies.push(self.next_method().await?.1);
                }
                pending = 0;
            }
        }
        self.flush().await?;
        for _ in 0..pending {
            replies.push(self.next_method().await?.1);
        }
        Ok(replies)
    }

    /// Closes the connection: `connection.close`, then waits (bounded) for `close-ok`,
    /// discarding whatever else arrives first.
    pub async fn close(mut self) -> Result<()> {
        self.wbuf.clear();
        self.send(
            0,
            ConnectionClose {
                reply_code: 200,
                reply_text: ShortStr::from_static("Goodbye"),
                ..ConnectionClose::default()
            },
        )
        .await?;
        let wait = async {
            loop {
                // Skip frames in place: deliveries may still be arriving.
                while let Some((kind, ch, payload, len)) = peek_frame(&self.rbuf)? {
                    if kind == warren_core::codec::FRAME_METHOD && ch == 0 {
                        let ids = method_ids(payload);
                        if ids == (10, 51) {
                            return Ok(());
                        }
                        if ids == (10, 50) {
                            // Both sides closing at once: answer and stop.
                            let m = decode_method(payload)?;
                            self.wbuf.clear();
                            close_ok_reply(0, &m, &mut self.wbuf);
                            let _ = self.flush().await;
                            return Ok(());
                        }
                    }
                    self.rbuf.advance(len);
                }
                self.read_more().await?;
            }
        };
        match tokio::time::timeout(CLOSE_TIMEOUT, wait).await {
            Ok(r) => r,
            Err(_) => Ok(()),
        }
    }

    /// Sends `channel.close` for `ch` without waiting.
    pub fn queue_channel_close(&mut self, ch: u16) {
        self.queue_method(
            ch,
            ChannelClose {
                reply_code: 200,
                reply_text: ShortStr::from_static("Goodbye"),
                ..ChannelClose::default()
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use warren_core::codec::{encode_heartbeat, BasicAck};

    #[test]
    fn peek_frame_needs_the_whole_frame() {
        let mut buf = Vec::new();
        encode_method_frame(
            &mut buf,
            3,
            &Method::BasicAck(BasicAck {
                delivery_tag: 7,
                multiple: true,
            }),
        );
        encode_heartbeat(&mut buf);
        let (kind, ch, payload, len) = peek_frame(&buf).unwrap().unwrap();
        assert_eq!((kind, ch), (1, 3));
        assert_eq!(method_ids(payload), (60, 80));
        assert_eq!(len, buf.len() - 8);
        assert!(peek_frame(&buf[..len - 1]).unwrap().is_none());
        let (kind, _, payload, _) = peek_frame(&buf[len..]).unwrap().unwrap();
        assert_eq!((kind, payload.len()), (8, 0));
    }

    #[test]
    fn peek_frame_rejects_a_bad_frame_end() {
        let mut buf = Vec::new();
        encode_heartbeat(&mut buf);
        *buf.last_mut().unwrap() = 0;
        assert!(peek_frame(&buf).is_err());
    }
}
