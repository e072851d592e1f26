//! A published message as queues hold it: shared, immutable, cheap to clone into many queues.

use alloc::sync::Arc;
use bytes::Bytes;

use crate::codec::{peek_delivery_mode, peek_expiration, peek_priority, ShortStr};

/// One published message. Cloning bumps a reference count; fanout to N queues costs N clones,
/// never N copies of the body.
#[derive(Clone, Debug)]
pub struct Message(Arc<MessageData>);

#[derive(Debug)]
pub struct MessageData {
    pub exchange: ShortStr,
    pub routing_key: ShortStr,
    /// Raw property flags + property list, exactly as the publisher sent them.
    pub properties: Bytes,
    pub body: Bytes,
    /// `delivery_mode = 2`.
    pub persistent: bool,
    /// The `expiration` property as milliseconds, when it is a valid one.
    pub expiration_ms: Option<u64>,
    /// The `priority` property (0 when absent).
    pub priority: u8,
}

impl Message {
    pub fn new(exchange: ShortStr, routing_key: ShortStr, properties: Bytes, body: Bytes) -> Self {
        let persistent = matches!(peek_delivery_mode(&properties), Ok(Some(2)));
        let expiration_ms = match peek_expiration(&properties) {
            Ok(Some(text)) => parse_expiration(text).ok(),
            _ => None,
        };
        let priority = peek_priority(&properties).ok().flatten().unwrap_or(0);
        Message(Arc::new(MessageData {
            exchange,
            routing_key,
            properties,
            body,
            persistent,
            expiration_ms,
            priority,
        }))
    }

    /// What delivering this message costs a connection's delivery window: about the bytes
    /// its `basic.deliver`, content header and body frames take on the wire. Broker and
    /// connection both count with this, so the credit a connection returns is exactly what
    /// the broker took.
    pub fn delivery_cost(&self) -> u64 {
        // Frame headers and ends, method and header fields, a consumer tag: ~100 bytes.
        const OVERHEAD: usize = 100;
        (self.0.body.len()
            + self.0.properties.len()
            + self.0.exchange.len()
            + self.0.routing_key.len()
            + OVERHEAD) as u64
    }

    pub fn exchange(&self) -> &ShortStr {
        &self.0.exchange
    }
    pub fn routing_key(&self) -> &ShortStr {
        &self.0.routing_key
    }
    pub fn properties(&self) -> &Bytes {
        &self.0.properties
    }
    pub fn body(&self) -> &Bytes {
        &self.0.body
    }
    pub fn is_persistent(&self) -> bool {
        self.0.persistent
    }
    pub fn expiration_ms(&self) -> Option<u64> {
        self.0.expiration_ms
    }
    pub fn priority(&self) -> u8 {
        self.0.priority
    }
}

/// Parses an `expiration` property: a non-negative integer of milliseconds, in decimal.
/// The error is RabbitMQ's reason term, for the 406 reply text.
pub fn parse_expiration(text: &str) -> Result<u64, alloc::string::String> {
    use alloc::format;
    let trimmed = text.trim();
    match trimmed.parse::<i64>() {
        Ok(n) if n < 0 => Err(format!("{{value_negative,{n}}}")),
        Ok(n) => Ok(n as u64),
        Err(_) => Err(alloc::string::String::from("badarg")),
    }
}
