//! Read-only views of the broker for the demo's diagram, as JSON text.
//!
//! [`topology_json`] lists a vhost's exchanges (with bindings) and queues (with counts);
//! [`trace_json`] says where a message with a given routing key (and headers) would go and
//! through which bindings, using the broker's own routing ([`Exchange::route`]) for the set of
//! queues. Neither changes anything: publishing still goes through AMQP.

use alloc::collections::BTreeSet;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::Write;

use warren_core::broker::headers::headers_match;
use warren_core::broker::topic::topic_matches;
use warren_core::broker::{Destination, Exchange, ExchangeKind, QueueId};
use warren_core::codec::{FieldTable, FieldValue, LongStr, ShortStr};
use warren_core::Broker;

/// Appends `s` as a JSON string literal.
pub fn json_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

fn json_num(out: &mut String, n: f64) {
    if n.is_finite() {
        let _ = write!(out, "{n}");
    } else {
        out.push_str("null");
    }
}

fn json_value(out: &mut String, v: &FieldValue) {
    match v {
        FieldValue::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        FieldValue::LongStr(s) | FieldValue::Bytes(s) => match s.as_str() {
            Some(text) => json_str(out, text),
            None => json_str(out, "<binary>"),
        },
        FieldValue::F32(f) => json_num(out, f64::from(*f)),
        FieldValue::F64(f) => json_num(out, *f),
        FieldValue::Decimal { scale, value } => {
            json_num(out, f64::from(*value) / 10f64.powi(i32::from(*scale)))
        }
        FieldValue::Timestamp(t) => json_num(out, *t as f64),
        FieldValue::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                json_value(out, item);
            }
            out.push(']');
        }
        FieldValue::Table(t) => json_table(out, t),
        FieldValue::Void => out.push_str("null"),
        other => match other.as_i64() {
            Some(n) => {
                let _ = write!(out, "{n}");
            }
            None => out.push_str("null"),
        },
    }
}

fn json_table(out: &mut String, t: &FieldTable) {
    out.push('{');
    for (i, (k, v)) in t.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        json_str(out, k);
        out.push(':');
        json_value(out, v);
    }
    out.push('}');
}

fn flag(out: &mut String, name: &str, value: bool) {
    let _ = write!(out, "\"{name}\":{value}");
}

fn queue_name(broker: &Broker, id: QueueId) -> Option<&str> {
    broker
        .queues()
        .find(|q| q.id == id)
        .map(|q| q.name.as_str())
}

fn sorted_exchanges<'a>(broker: &'a Broker, vhost: &str) -> Vec<&'a Exchange> {
    let mut exchanges: Vec<&Exchange> = broker.exchanges(vhost).collect();
    exchanges.sort_by(|a, b| a.name.cmp(&b.name));
    exchanges
}

/// The exchanges, bindings and queues of `vhost`, sorted by name:
/// `{"vhost", "exchanges": [{name, type, durable, autoDelete, internal, builtin, arguments,
/// bindings: [{destination, destinationType, routingKey, arguments}]}], "queues": [{name,
/// durable, exclusive, autoDelete, messages, unacked, consumers, arguments}], "connections"}`.
pub fn topology_json(broker: &Broker, vhost: &str) -> String {
    let mut out = String::with_capacity(1024);
    out.push_str("{\"vhost\":");
    json_str(&mut out, vhost);
    out.push_str(",\"exchanges\":[");
    for (i, ex) in sorted_exchanges(broker, vhost).into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str("{\"name\":");
        json_str(&mut out, &ex.name);
        out.push_str(",\"type\":");
        json_str(&mut out, ex.kind.as_str());
        out.push(',');
        flag(&mut out, "durable", ex.durable);
        out.push(',');
        flag(&mut out, "autoDelete", ex.auto_delete);
        out.push(',');
        flag(&mut out, "internal", ex.internal);
        out.push(',');
        flag(
            &mut out,
            "builtin",
            ex.name.is_empty() || ex.name.starts_with("amq."),
        );
        out.push_str(",\"arguments\":");
        json_table(&mut out, &ex.arguments);
        out.push_str(",\"bindings\":[");
        for (j, b) in ex.bindings().iter().enumerate() {
            if j > 0 {
                out.push(',');
            }
            out.push('{');
            binding_fields(&mut out, broker, b.destination.clone(), &b.routing_key);
            out.push_str(",\"arguments\":");
            json_table(&mut out, &b.arguments);
            out.push('}');
        }
        out.push_str("]}");
    }
    out.push_str("],\"queues\":[");
    let mut queues: Vec<_> = broker
        .queues()
        .filter(|q| q.vhost.as_str() == vhost)
        .collect();
    queues.sort_by(|a, b| a.name.cmp(&b.name));
    for (i, q) in queues.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str("{\"name\":");
        json_str(&mut out, &q.name);
        out.push(',');
        flag(&mut out, "durable", q.durable);
        out.push(',');
        flag(&mut out, "exclusive", q.is_exclusive());
        out.push(',');
        flag(&mut out, "autoDelete", q.auto_delete);
        let _ = write!(
            out,
            ",\"messages\":{},\"unacked\":{},\"consumers\":{},\"arguments\":",
            q.message_count(),
            q.unacked(),
            q.consumer_count()
        );
        json_table(&mut out, &q.arguments);
        out.push('}');
    }
    let _ = write!(out, "],\"connections\":{}}}", broker.connection_count());
    out
}

/// A binding's fields, without braces: `"destination","destinationType","routingKey"`.
fn binding_fields(out: &mut String, broker: &Broker, dest: Destination, key: &str) {
    let (name, kind) = match &dest {
        Destination::Queue(id) => (queue_name(broker, *id).unwrap_or(""), "queue"),
        Destination::Exchange(name) => (name.as_str(), "exchange"),
    };
    out.push_str("\"destination\":");
    json_str(out, name);
    out.push_str(",\"destinationType\":");
    json_str(out, kind);
    out.push_str(",\"routingKey\":");
    json_str(out, key);
}

/// How the words of a topic pattern line up with a routing key's words, for highlighting:
/// one `(pattern word, routing key words it matched)` per pattern word. `None` if the pattern
/// does not match (or has too many `#` to align cheaply).
pub fn topic_alignment(pattern: &str, key: &str) -> Option<Vec<(String, String)>> {
    let p: Vec<&str> = if pattern.is_empty() {
        Vec::new()
    } else {
        pattern.split('.').collect()
    };
    let k: Vec<&str> = if key.is_empty() {
        Vec::new()
    } else {
        key.split('.').collect()
    };
    if p.iter().filter(|w| **w == "#").count() > 8 {
        return None;
    }
    let mut spans = Vec::with_capacity(p.len());
    if !align(&p, &k, &mut spans) {
        return None;
    }
    let mut out = Vec::with_capacity(p.len());
    let mut at = 0;
    for (word, n) in p.iter().zip(spans) {
        out.push((String::from(*word), k[at..at + n].join(".")));
        at += n;
    }
    Some(out)
}

/// Backtracking matcher recording how many key words each pattern word took.
fn align(p: &[&str], k: &[&str], spans: &mut Vec<usize>) -> bool {
    let Some((first, rest)) = p.split_first() else {
        return k.is_empty();
    };
    match *first {
        "#" => {
            for n in 0..=k.len() {
                spans.push(n);
                if align(rest, &k[n..], spans) {
                    return true;
                }
                spans.pop();
            }
            false
        }
        w => {
            let Some((head, tail)) = k.split_first() else {
                return false;
            };
            if w != "*" && w != *head {
                return false;
            }
            spans.push(1);
            if align(rest, tail, spans) {
                return true;
            }
            spans.pop();
            false
        }
    }
}

/// Whether one binding of `ex` matches, by the same rules the exchange routes with.
fn binding_matches(
    ex: &Exchange,
    key: &str,
    pattern: &str,
    args: &FieldTable,
    h: &FieldTable,
) -> bool {
    match ex.kind {
        ExchangeKind::Direct => pattern == key,
        ExchangeKind::Fanout => true,
        ExchangeKind::Topic => topic_matches(pattern, key),
        ExchangeKind::Headers => headers_match(args, (!h.is_empty()).then_some(h)),
    }
}

/// Where a message published to `exchange` with `routing_key` and string `headers` would go:
/// `{"found", "queues": [names, sorted], "bindings": [{source, destination, destinationType,
/// routingKey, words?: [[patternWord, matchedWords]], implicit?}]}`. Exchange-to-exchange
/// bindings are followed; each exchange is visited once. The default exchange (`""`) reports
/// its implicit binding to the queue named by the routing key.
pub fn trace_json(
    broker: &Broker,
    vhost: &str,
    exchange: &str,
    routing_key: &str,
    headers: &[(String, String)],
) -> String {
    let table: FieldTable = headers
        .iter()
        .map(|(k, v)| {
            (
                ShortStr::from(k.as_str()),
                FieldValue::LongStr(LongStr::from(v.as_str())),
            )
        })
        .collect();
    let key = ShortStr::from(routing_key);
    let exchanges = sorted_exchanges(broker, vhost);
    let find = |name: &str| exchanges.iter().find(|e| e.name.as_str() == name).copied();
    let mut out = String::with_capacity(256);
    let found = find(exchange).is_some();
    let _ = write!(out, "{{\"found\":{found},\"bindings\":[");
    let mut queues: BTreeSet<QueueId> = BTreeSet::new();
    let mut visited: BTreeSet<ShortStr> = BTreeSet::new();
    let mut pending: Vec<ShortStr> = alloc::vec![ShortStr::from(exchange)];
    let mut first = true;
    if exchange.is_empty() {
        // The default exchange routes to the queue named by the key (an implicit binding).
        if let Some(q) = broker.queue(vhost, routing_key) {
            queues.insert(q.id);
            out.push_str("{\"source\":\"\",");
            binding_fields(&mut out, broker, Destination::Queue(q.id), routing_key);
            out.push_str(",\"implicit\":true}");
        }
        pending.clear();
    }
    while let Some(name) = pending.pop() {
        let Some(ex) = find(&name) else { continue };
        if !visited.insert(name) {
            continue;
        }
        // The set of destinations: exactly what the broker's router returns.
        let mut dests = Vec::new();
        // (`&ShortStr` also coerces to `&str`, whichever the router takes.)
        ex.route(
            &key,
            &mut || (!table.is_empty()).then(|| table.clone()),
            &mut dests,
        );
        for d in &dests {
            match d {
                Destination::Queue(id) => {
                    queues.insert(*id);
                }
                Destination::Exchange(next) => pending.push(next.clone()),
            }
        }
        // The bindings that explain it, for the diagram.
        for b in ex.bindings() {
            if !dests.contains(&b.destination)
                || !binding_matches(ex, routing_key, &b.routing_key, &b.arguments, &table)
            {
                continue;
            }
            if !first {
                out.push(',');
            }
            first = false;
            let source = ex.name.as_str();
            out.push_str("{\"source\":");
            json_str(&mut out, source);
            out.push(',');
            binding_fields(&mut out, broker, b.destination.clone(), &b.routing_key);
            if ex.kind == ExchangeKind::Topic {
                if let Some(words) = topic_alignment(&b.routing_key, routing_key) {
                    out.push_str(",\"words\":[");
                    for (i, (p, k)) in words.iter().enumerate() {
                        if i > 0 {
                            out.push(',');
                        }
                        out.push('[');
                        json_str(&mut out, p);
                        out.push(',');
                        json_str(&mut out, k);
                        out.push(']');
                    }
                    out.push(']');
                }
            }
            out.push('}');
        }
    }
    out.push_str("],\"queues\":[");
    let mut names: Vec<&str> = queues
        .iter()
        .filter_map(|id| queue_name(broker, *id))
        .collect();
    names.sort_unstable();
    for (i, n) in names.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        json_str(&mut out, n);
    }
    out.push_str("]}");
    out
}
