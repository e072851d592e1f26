//! A published message as queues hold it: shared, immutable, cheap to clone into many queues.

use alloc::sync::Arc;
use bytes::Bytes;

use crate::codec::{peek_delivery_mode, ShortStr};

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
}

impl Message {
    pub fn new(exchange: ShortStr, routing_key: ShortStr, properties: Bytes, body: Bytes) -> Self {
        let persistent = matches!(peek_delivery_mode(&properties), Ok(Some(2)));
        Message(Arc::new(MessageData {
            exchange,
            routing_key,
            properties,
            body,
            persistent,
        }))
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
}
