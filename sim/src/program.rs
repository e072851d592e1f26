//! The workload: a program of operations drawn from a [`Source`] (a seeded generator or
//! fuzzer bytes). Operations name clients, channels, queues and exchanges by small indices
//! that the runner interprets against what the client knows at the time, so any subsequence
//! of a program is still a program (which is what shrinking relies on).

use crate::rng::Source;

/// Named queues `q0..`; canonical flags by index (see [`queue_flags`]).
pub const QUEUES: u8 = 6;
/// Named exchanges `x0..`; canonical kind and flags by index (see [`exchange_shape`]).
pub const EXCHANGES: u8 = 5;

/// How a delivery is settled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum How {
    Ack,
    Nack,
    Reject,
}

/// One step of a program. `c` picks a client, `ch` a channel of it; other small numbers pick
/// names from the pools below.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    /// Open the connection (pipelined handshake) if the client has none.
    Connect {
        c: u8,
    },
    /// `connection.close`.
    Close {
        c: u8,
    },
    /// The client process dies: some of what it sent arrives, then EOF.
    Kill {
        c: u8,
    },
    OpenChannel {
        c: u8,
        ch: u8,
    },
    CloseChannel {
        c: u8,
        ch: u8,
    },
    ExDeclare {
        c: u8,
        ch: u8,
        x: u8,
        deviate: u8,
        passive: bool,
    },
    ExDelete {
        c: u8,
        ch: u8,
        x: u8,
        if_unused: bool,
    },
    ExBind {
        c: u8,
        ch: u8,
        dst: u8,
        src: u8,
        key: u8,
        unbind: bool,
    },
    QDeclare {
        c: u8,
        ch: u8,
        q: u8,
        deviate: u8,
        passive: bool,
    },
    QDelete {
        c: u8,
        ch: u8,
        q: u8,
        if_unused: bool,
        if_empty: bool,
    },
    QBind {
        c: u8,
        ch: u8,
        q: u8,
        x: u8,
        key: u8,
        args: u8,
        unbind: bool,
    },
    QPurge {
        c: u8,
        ch: u8,
        q: u8,
    },
    Qos {
        c: u8,
        ch: u8,
        count: u8,
        global: bool,
    },
    Consume {
        c: u8,
        ch: u8,
        q: u8,
        no_ack: bool,
        exclusive: bool,
        named: bool,
    },
    Cancel {
        c: u8,
        ch: u8,
        pick: u8,
    },
    Get {
        c: u8,
        ch: u8,
        q: u8,
        no_ack: bool,
    },
    Settle {
        c: u8,
        ch: u8,
        pick: u8,
        how: How,
        multiple: bool,
        requeue: bool,
    },
    Recover {
        c: u8,
        ch: u8,
    },
    Publish {
        c: u8,
        ch: u8,
        x: u8,
        key: u8,
        mandatory: bool,
        persistent: bool,
        headers: u8,
        size: u8,
        count: u8,
    },
    Confirm {
        c: u8,
        ch: u8,
    },
    TxSelect {
        c: u8,
        ch: u8,
    },
    TxCommit {
        c: u8,
        ch: u8,
    },
    TxRollback {
        c: u8,
        ch: u8,
    },
    /// A deliberate protocol error, by kind (see the runner).
    Error {
        c: u8,
        ch: u8,
        kind: u8,
        pick: u8,
    },
    /// The client stops (or resumes) reading and writing.
    Stall {
        c: u8,
        on: bool,
    },
    /// Virtual time moves on by this many milliseconds.
    Advance {
        ms: u32,
    },
    /// Deliver everything in flight and check the whole state.
    Settle_,
    /// The broker process dies and starts again from its storage: every connection drops;
    /// durable exchanges, queues and bindings and persistent messages in durable queues come
    /// back.
    Restart,
}

/// Kinds of [`Op::Error`].
pub const ERROR_KINDS: u8 = 14;

/// Routing keys for publishes and bindings (binding patterns include topic wildcards).
pub const PUBLISH_KEYS: &[&str] = &[
    "a", "b", "a.b", "a.b.c", "b.c", "", "q0", "q1", "q2", "q3", "q4", "q5",
];
pub const BINDING_KEYS: &[&str] = &[
    "a", "b", "a.b", "a.*", "#", "a.#", "*.c", "b.c", "#.c", "q0",
];

/// (kind, durable, auto_delete, internal) of exchange `x{i}` when declared canonically.
pub fn exchange_shape(i: u8) -> (&'static str, bool, bool, bool) {
    match i % EXCHANGES {
        0 => ("direct", false, false, false),
        1 => ("fanout", true, false, false),
        2 => ("topic", false, true, false),
        3 => ("headers", false, false, false),
        _ => ("topic", false, false, true),
    }
}

/// (durable, exclusive, auto_delete, lazy) of queue `q{i}` when declared canonically.
pub fn queue_flags(i: u8) -> (bool, bool, bool, bool) {
    match i % QUEUES {
        0 => (false, false, false, false),
        1 => (true, false, false, false),
        2 => (false, false, true, false),
        3 => (false, true, false, false),
        4 => (false, false, false, true),
        _ => (true, false, true, false),
    }
}

/// `x-max-priority` of queue `q{i}`: two of them are priority queues (one durable, so
/// priorities also cross restarts). Fixed by the index, not drawn, so that programs (and the
/// regression seeds that name their steps) stay as they were before priorities joined.
pub fn queue_max_priority(i: u8) -> Option<u8> {
    match i % QUEUES {
        1 => Some(9),
        2 => Some(3),
        _ => None,
    }
}

/// A queue argument's value.
#[derive(Clone, Copy, Debug)]
pub enum Arg {
    Int(i32),
    Str(&'static str),
}

/// The TTL, expiry, length-limit and dead-letter arguments of queue `q{i}`, fixed by the index
/// as priorities are (a redeclare must be equivalent). Together they make cycles: q0 dies into
/// the fanout x1, q4 into amq.topic, q5 into x0, q3 straight into q4, q1 through the internal
/// x4 (dead letters may go where clients may not publish).
pub fn queue_arguments(i: u8) -> &'static [(&'static str, Arg)] {
    use Arg::{Int, Str};
    match i % QUEUES {
        0 => &[
            ("x-max-length", Int(8)),
            ("x-dead-letter-exchange", Str("x1")),
        ],
        1 => &[
            ("x-dead-letter-exchange", Str("x4")),
            ("x-dead-letter-routing-key", Str("a.b")),
        ],
        2 => &[
            ("x-max-length", Int(3)),
            ("x-overflow", Str("reject-publish")),
        ],
        3 => &[
            ("x-max-length-bytes", Int(3_000)),
            ("x-overflow", Str("reject-publish-dlx")),
            ("x-dead-letter-exchange", Str("")),
            ("x-dead-letter-routing-key", Str("q4")),
        ],
        4 => &[
            ("x-message-ttl", Int(1_500)),
            ("x-dead-letter-exchange", Str("amq.topic")),
        ],
        _ => &[
            ("x-expires", Int(4_000)),
            ("x-max-length", Int(4)),
            ("x-dead-letter-exchange", Str("x0")),
        ],
    }
}

/// The `priority` property of a publish, from fields the program already draws (for the same
/// reason): absent for a fifth, else 2, 5, 8 or 11 (above some queues' top level: capped).
pub fn publish_priority(key: u8, size: u8) -> Option<u8> {
    match (u32::from(key) + u32::from(size)) % 5 {
        0 => None,
        k => Some(k as u8 * 3 - 1),
    }
}

/// Draws a program of `steps` operations for `clients` clients.
pub fn generate(src: &mut dyn Source, steps: usize) -> Vec<Op> {
    (0..steps).map(|_| gen_op(src)).collect()
}

/// Draws one operation.
pub fn gen_op(s: &mut dyn Source) -> Op {
    let c = s.below(8) as u8;
    let ch = s.below(4) as u8;
    // Weights: the common traffic first, then management, then faults and errors.
    let w = [
        2,  // 0 connect
        1,  // 1 close
        1,  // 2 kill
        3,  // 3 open channel
        2,  // 4 close channel
        5,  // 5 exchange declare
        1,  // 6 exchange delete
        3,  // 7 exchange bind/unbind
        7,  // 8 queue declare
        1,  // 9 queue delete
        6,  // 10 queue bind/unbind
        1,  // 11 purge
        3,  // 12 qos
        6,  // 13 consume
        2,  // 14 cancel
        4,  // 15 get
        14, // 16 settle
        1,  // 17 recover
        22, // 18 publish
        2,  // 19 confirm
        2,  // 20 tx select
        3,  // 21 tx commit
        1,  // 22 tx rollback
        2,  // 23 deliberate error
        1,  // 24 stall
        5,  // 25 advance
        2,  // 26 settle everything
        1,  // 27 broker restart (rarely; otherwise a short pause)
    ];
    // Named queues mostly; sometimes a server-named one; rarely a missing one.
    let q = |s: &mut dyn Source| {
        if s.chance(4) {
            QUEUES + 1
        } else {
            s.below(u32::from(QUEUES) + 1) as u8
        }
    };
    let x = |s: &mut dyn Source| s.below(u32::from(EXCHANGES) + 6) as u8;
    match s.weighted(&w) {
        0 => Op::Connect { c },
        1 => Op::Close { c },
        2 => Op::Kill { c },
        3 => Op::OpenChannel { c, ch },
        4 => Op::CloseChannel { c, ch },
        5 => Op::ExDeclare {
            c,
            ch,
            x: s.below(u32::from(EXCHANGES)) as u8,
            deviate: if s.chance(3) { 1 + s.below(4) as u8 } else { 0 },
            passive: s.chance(10),
        },
        6 => Op::ExDelete {
            c,
            ch,
            x: x(s),
            if_unused: s.flip(),
        },
        7 => Op::ExBind {
            c,
            ch,
            dst: x(s),
            src: x(s),
            key: s.below(BINDING_KEYS.len() as u32) as u8,
            unbind: s.chance(30),
        },
        8 => Op::QDeclare {
            c,
            ch,
            q: q(s),
            deviate: if s.chance(3) { 1 + s.below(4) as u8 } else { 0 },
            passive: s.chance(10),
        },
        9 => Op::QDelete {
            c,
            ch,
            q: q(s),
            if_unused: s.chance(30),
            if_empty: s.chance(30),
        },
        10 => Op::QBind {
            c,
            ch,
            q: q(s),
            x: x(s),
            key: s.below(BINDING_KEYS.len() as u32) as u8,
            args: s.below(6) as u8,
            unbind: s.chance(25),
        },
        11 => Op::QPurge { c, ch, q: q(s) },
        12 => Op::Qos {
            c,
            ch,
            count: s.below(5) as u8,
            global: s.chance(30),
        },
        13 => Op::Consume {
            c,
            ch,
            q: q(s),
            no_ack: s.chance(30),
            exclusive: s.chance(10),
            named: s.chance(70),
        },
        14 => Op::Cancel {
            c,
            ch,
            pick: s.below(8) as u8,
        },
        15 => Op::Get {
            c,
            ch,
            q: q(s),
            no_ack: s.chance(40),
        },
        16 => {
            let how = match s.below(10) {
                0..=5 => How::Ack,
                6..=7 => How::Nack,
                _ => How::Reject,
            };
            Op::Settle {
                c,
                ch,
                pick: s.below(16) as u8,
                how,
                multiple: s.chance(30),
                requeue: s.chance(60),
            }
        }
        17 => Op::Recover { c, ch },
        18 => Op::Publish {
            c,
            ch,
            x: if s.chance(40) {
                EXCHANGES + 4 // the default exchange
            } else {
                // Any but the missing one (publishing there is a deliberate error), and the
                // internal one only rarely.
                match s.below(u32::from(EXCHANGES) + 5) as u8 {
                    4 if s.chance(90) => 7,
                    x => x,
                }
            },
            key: s.below(PUBLISH_KEYS.len() as u32) as u8,
            mandatory: s.chance(30),
            persistent: s.chance(30),
            headers: s.below(5) as u8,
            size: s.below(20) as u8,
            count: 1 + s.below(4) as u8,
        },
        19 => Op::Confirm { c, ch },
        20 => Op::TxSelect { c, ch },
        21 => Op::TxCommit { c, ch },
        22 => Op::TxRollback { c, ch },
        23 => Op::Error {
            c,
            ch,
            kind: s.below(u32::from(ERROR_KINDS)) as u8,
            pick: s.below(8) as u8,
        },
        24 => Op::Stall {
            c,
            on: s.chance(60),
        },
        25 => Op::Advance {
            ms: if s.chance(10) {
                1_000 + s.below(30_000)
            } else {
                s.below(200)
            },
        },
        26 => Op::Settle_,
        _ => {
            if s.chance(7) {
                Op::Restart
            } else {
                Op::Advance { ms: s.below(50) }
            }
        }
    }
}

/// The exchange name an index picks: `x0..`, the predeclared ones, the default, a missing one.
pub fn exchange_name(i: u8) -> &'static str {
    const NAMES: [&str; 11] = [
        "x0",
        "x1",
        "x2",
        "x3",
        "x4",
        "amq.direct",
        "amq.fanout",
        "amq.topic",
        "amq.headers",
        "",
        "missing-x",
    ];
    NAMES[usize::from(i) % NAMES.len()]
}
