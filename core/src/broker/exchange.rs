//! Exchanges and their bindings, indexed per type so routing does not scan every binding.

use alloc::vec::Vec;

use super::headers::headers_match;
use super::queue::QueueId;
use super::topic::TopicTrie;
use super::Map;
use crate::codec::{FieldTable, ShortStr};
pub use crate::exchange_kind::ExchangeKind;
use crate::storage::{BindingRecord, ExchangeRecord};

/// Where a binding leads: a queue, or another exchange (exchange-to-exchange binding).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Destination {
    Queue(QueueId),
    Exchange(ShortStr),
}

#[derive(Clone, Debug, PartialEq)]
pub struct Binding {
    pub destination: Destination,
    pub routing_key: ShortStr,
    pub arguments: FieldTable,
}

impl Binding {
    /// What storage keeps of this binding from `source`: its ends by name.
    pub(crate) fn record(&self, source: &ShortStr, queues: &super::QueueMap) -> BindingRecord {
        let (destination, destination_is_exchange) = match &self.destination {
            Destination::Exchange(name) => (name.clone(), true),
            Destination::Queue(id) => (
                queues.get(id).map(|q| q.name.clone()).unwrap_or_default(),
                false,
            ),
        };
        BindingRecord {
            source: source.clone(),
            destination,
            destination_is_exchange,
            routing_key: self.routing_key.clone(),
            arguments: self.arguments.clone(),
        }
    }
}

#[derive(Debug)]
pub struct Exchange {
    pub name: ShortStr,
    pub kind: ExchangeKind,
    pub durable: bool,
    pub auto_delete: bool,
    pub internal: bool,
    pub arguments: FieldTable,
    /// Every binding from this exchange, in creation order.
    bindings: Vec<Binding>,
    /// Direct exchanges: routing key → destinations.
    direct: Map<ShortStr, Vec<Destination>>,
    /// Topic exchanges: pattern trie.
    topic: TopicTrie<Destination>,
}

impl Exchange {
    /// What storage keeps of this exchange.
    pub fn record(&self) -> ExchangeRecord {
        ExchangeRecord {
            name: self.name.clone(),
            kind: self.kind,
            auto_delete: self.auto_delete,
            internal: self.internal,
            arguments: self.arguments.clone(),
        }
    }

    pub fn new(
        name: ShortStr,
        kind: ExchangeKind,
        durable: bool,
        auto_delete: bool,
        internal: bool,
        arguments: FieldTable,
    ) -> Self {
        Exchange {
            name,
            kind,
            durable,
            auto_delete,
            internal,
            arguments,
            bindings: Vec::new(),
            direct: Map::default(),
            topic: TopicTrie::new(),
        }
    }

    pub fn bindings(&self) -> &[Binding] {
        &self.bindings
    }

    pub fn has_bindings(&self) -> bool {
        !self.bindings.is_empty()
    }

    /// Adds a binding; false if an identical one exists.
    pub fn bind(&mut self, b: Binding) -> bool {
        if self.bindings.contains(&b) {
            return false;
        }
        match self.kind {
            ExchangeKind::Direct => {
                // Bindings that differ only in arguments share one index entry.
                let dests = self.direct.entry(b.routing_key.clone()).or_default();
                if !dests.contains(&b.destination) {
                    dests.push(b.destination.clone());
                }
            }
            ExchangeKind::Topic => {
                // The trie holds each (pattern, destination) once; bindings that differ only
                // in arguments share the entry.
                self.topic
                    .insert(b.routing_key.as_str(), b.destination.clone());
            }
            ExchangeKind::Fanout | ExchangeKind::Headers => {}
        }
        self.bindings.push(b);
        true
    }

    /// Removes a binding; false if there was none.
    pub fn unbind(&mut self, b: &Binding) -> bool {
        let Some(i) = self.bindings.iter().position(|x| x == b) else {
            return false;
        };
        let removed = self.bindings.remove(i);
        self.unindex(&removed);
        true
    }

    /// Removes every binding to `dest`; returns how many.
    pub fn unbind_destination(&mut self, dest: &Destination) -> usize {
        let (gone, kept): (Vec<Binding>, Vec<Binding>) = core::mem::take(&mut self.bindings)
            .into_iter()
            .partition(|b| &b.destination == dest);
        self.bindings = kept;
        for b in &gone {
            self.unindex(b);
        }
        gone.len()
    }

    fn unindex(&mut self, b: &Binding) {
        let still_same_key = self
            .bindings
            .iter()
            .any(|x| x.destination == b.destination && x.routing_key == b.routing_key);
        if still_same_key {
            return;
        }
        match self.kind {
            ExchangeKind::Direct => {
                if let Some(dests) = self.direct.get_mut(&b.routing_key) {
                    if let Some(j) = dests.iter().position(|d| d == &b.destination) {
                        dests.swap_remove(j);
                    }
                    if dests.is_empty() {
                        self.direct.remove(&b.routing_key);
                    }
                }
            }
            ExchangeKind::Topic => {
                self.topic.remove(b.routing_key.as_str(), &b.destination);
            }
            ExchangeKind::Fanout | ExchangeKind::Headers => {}
        }
    }

    /// Appends the destinations a message with `routing_key` and `headers` goes to.
    /// `headers` is only consulted (and only needs decoding) for headers exchanges.
    pub fn route(
        &self,
        routing_key: &ShortStr,
        headers: &mut dyn FnMut() -> Option<FieldTable>,
        out: &mut Vec<Destination>,
    ) {
        match self.kind {
            ExchangeKind::Direct => {
                if let Some(dests) = self.direct.get(routing_key) {
                    out.extend(dests.iter().cloned());
                }
            }
            ExchangeKind::Fanout => out.extend(self.bindings.iter().map(|b| b.destination.clone())),
            ExchangeKind::Topic => self.topic.matches(routing_key.as_str(), out),
            ExchangeKind::Headers => {
                let headers = headers();
                for b in &self.bindings {
                    if headers_match(&b.arguments, headers.as_ref()) {
                        out.push(b.destination.clone());
                    }
                }
            }
        }
    }
}
