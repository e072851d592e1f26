//! The oracle as the pump's [`Observer`]: it sees every round the core's [`Pump`] carries
//! (commands into the broker, then the events the broker decided for them) and walks it
//! through the reference model command by command, each command taking its events off the
//! front of the stream. What each event means for its client (an [`Expect`]) waits until the
//! pump hands that event to its connection — at once, or, for an answer that waits for the
//! store, after the sync — and is then kept for the runner to hand to the client, which checks
//! what reaches it on the wire.
//!
//! Handed-over events are matched to decided ones per connection and channel (an answer
//! waiting for the store holds up only its channel). The `basic.ack`s and `tx.commit-ok`s
//! handed over are the broker's promises: the messages they cover must survive a crash.
//!
//! [`Pump`]: warren_core::Pump

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use warren_core::codec::Method;
use warren_core::pump::Observer;
use warren_core::{Broker, Command, ConnId, Event};

use crate::client::Expect;
use crate::model::{Cmd, Model, MsgId, Step};

/// An event the broker decided that has not reached its connection yet.
struct Decided {
    event: Event,
    expect: Option<Expect>,
    /// The messages it tells their publisher are safe.
    promised: Vec<MsgId>,
}

/// The reference model, fed by the pump.
pub struct Oracle {
    pub model: Model,
    /// The current round's commands, as the model reads them.
    round: Vec<(ConnId, Cmd)>,
    /// The command whose events are being matched, and whether the model has seen it.
    at: usize,
    started: bool,
    /// A round without commands carried events (a timer's, an alarm's).
    lone_events: bool,
    /// What each event handed to a connection means for its client, in order.
    expects: Vec<(ConnId, Option<Expect>)>,
    /// Per connection, the events decided and not handed over yet, in decision order.
    undelivered: BTreeMap<ConnId, VecDeque<Decided>>,
    /// Messages a publisher was told are safe (a confirm or commit-ok reached its connection).
    pub promised: BTreeSet<MsgId>,
    /// The first disagreement; nothing is checked after it.
    failure: Option<String>,
    pub commands: u64,
    pub events: u64,
}

impl Oracle {
    pub fn new(model: Model) -> Self {
        Oracle {
            model,
            round: Vec::new(),
            at: 0,
            started: false,
            lone_events: false,
            expects: Vec::new(),
            undelivered: BTreeMap::new(),
            promised: BTreeSet::new(),
            failure: None,
            commands: 0,
            events: 0,
        }
    }

    /// The first disagreement since the last call, if any.
    pub fn check(&mut self) -> Result<(), String> {
        match self.failure.take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// What the clients must receive for the events seen since the last call.
    pub fn take_expects(&mut self) -> Vec<(ConnId, Option<Expect>)> {
        std::mem::take(&mut self.expects)
    }

    fn start(&mut self) {
        if !self.started {
            let (id, cmd) = &self.round[self.at];
            self.model.on_command(*id, cmd);
            self.started = true;
        }
    }

    fn match_event(&mut self, conn: ConnId, ev: &Event) -> Result<(), String> {
        if self.round.is_empty() {
            self.lone_events = true;
            return match self.model.on_event(conn, ev, false)? {
                Step::Took(e) => {
                    self.decided(conn, ev, e);
                    Ok(())
                }
                Step::NotMine => Err(format!("an event no command caused: {ev:?}")),
            };
        }
        loop {
            self.start();
            let lookahead = self.at + 1 < self.round.len();
            match self.model.on_event(conn, ev, lookahead)? {
                Step::Took(e) => {
                    self.decided(conn, ev, e);
                    return Ok(());
                }
                Step::NotMine => {
                    self.model.end_command()?;
                    self.at += 1;
                    self.started = false;
                }
            }
        }
    }

    /// The model took `ev`: it waits to be handed to its connection.
    fn decided(&mut self, conn: ConnId, ev: &Event, expect: Option<Expect>) {
        let promised = match (ev, channel_of(ev)) {
            (
                Event::Method {
                    method: Method::BasicAck(_) | Method::TxCommitOk(_),
                    ..
                },
                Some(ch),
            ) => self.model.take_promised(conn, ch),
            _ => Vec::new(),
        };
        self.undelivered
            .entry(conn)
            .or_default()
            .push_back(Decided {
                event: ev.clone(),
                expect,
                promised,
            });
    }

    /// The pump handed `ev` to `conn`: it must be the next event decided for its channel (a
    /// `basic.ack` may stand for several decided in a row, folded into one).
    fn handed_over(&mut self, conn: ConnId, ev: &Event) -> Result<(), String> {
        let lane = channel_of(ev);
        let queue = self.undelivered.entry(conn).or_default();
        let mut next = queue
            .iter()
            .enumerate()
            .filter(|(_, d)| channel_of(&d.event) == lane);
        let Some((i, _)) = next.next() else {
            return Err(format!(
                "the broker handed connection {} {ev:?}, which it never decided",
                conn.0
            ));
        };
        let expect = if let Event::Method {
            channel,
            method: Method::BasicAck(ack),
        } = ev
        {
            // Every decided ack on the channel up to this one's tag, in a row.
            let mut taken = 0;
            let mut last = None;
            while let Some(j) = queue
                .iter()
                .enumerate()
                .skip(i)
                .find(|(_, d)| channel_of(&d.event) == lane)
                .map(|(j, _)| j)
            {
                let Event::Method {
                    method: Method::BasicAck(a),
                    ..
                } = &queue[j].event
                else {
                    break;
                };
                if a.delivery_tag > ack.delivery_tag {
                    break;
                }
                last = Some((a.delivery_tag, a.multiple));
                let d = queue.remove(j).expect("found");
                self.promised.extend(d.promised);
                taken += 1;
            }
            let fits = match last {
                Some((tag, multiple)) => {
                    tag == ack.delivery_tag
                        && (ack.multiple == multiple || (taken > 1 && ack.multiple))
                }
                None => false,
            };
            if !fits {
                return Err(format!(
                    "the broker handed connection {} basic.ack {} (multiple={}) on channel {channel}, but decided {taken} ack(s) up to {last:?} there",
                    conn.0, ack.delivery_tag, ack.multiple
                ));
            }
            Some(Expect {
                channel: *channel,
                method: Method::BasicAck(ack.clone()),
                content: None,
            })
        } else {
            if matches!(ev, Event::Closed | Event::ConnectionError { .. }) {
                // The broker let the connection go: the answers decided before this that
                // still waited for the store are dropped.
                queue.drain(..i);
            }
            let i = if matches!(ev, Event::Closed | Event::ConnectionError { .. }) {
                0
            } else {
                i
            };
            let d = queue.remove(i).expect("found");
            if !same_event(&d.event, ev) {
                return Err(format!(
                    "the broker handed connection {} {ev:?} where it had decided {:?}",
                    conn.0, d.event
                ));
            }
            self.promised.extend(d.promised);
            d.expect
        };
        self.expects.push((conn, expect));
        Ok(())
    }

    /// The broker process died: what waited for the disk is gone with it, and the model goes
    /// back to `synced`, its state as of the last sync; a message a publisher was told is safe
    /// that a restart must bring back must be in it.
    pub fn crash(&mut self, synced: Model) -> Result<(), String> {
        self.undelivered.clear();
        self.expects.clear();
        self.round.clear();
        self.at = 0;
        self.started = false;
        self.lone_events = false;
        let now = self.model.recoverable(true);
        let kept = synced.recoverable(false);
        let lost = now
            .iter()
            .find(|id| self.promised.contains(id) && !kept.contains(id));
        if let Some(id) = lost {
            return Err(format!(
                "message {id} was confirmed to its publisher, but the store had not synced it when the broker crashed"
            ));
        }
        self.model.roll_back(synced);
        Ok(())
    }

    fn end_round(&mut self, broker: &Broker) -> Result<(), String> {
        if self.round.is_empty() {
            if std::mem::take(&mut self.lone_events) {
                self.model.end_command()?;
            }
            return Ok(());
        }
        while self.at < self.round.len() {
            self.start();
            self.model.end_command()?;
            self.at += 1;
            self.started = false;
        }
        self.round.clear();
        self.at = 0;
        self.model.end_batch()?;
        self.model.compare(broker, false)
    }
}

impl Observer for Oracle {
    fn on_command(&mut self, conn: ConnId, command: &Command) {
        self.commands += 1;
        self.round.push((conn, Cmd::of(command)));
    }

    fn on_decided(&mut self, conn: ConnId, event: &Event) {
        self.events += 1;
        if self.failure.is_none() {
            if let Err(e) = self.match_event(conn, event) {
                self.failure = Some(e);
            }
        }
    }

    fn on_event(&mut self, conn: ConnId, event: &Event) {
        if self.failure.is_none() {
            if let Err(e) = self.handed_over(conn, event) {
                self.failure = Some(e);
            }
        }
    }

    fn on_round(&mut self, broker: &Broker) {
        if self.failure.is_some() {
            self.round.clear();
            self.at = 0;
            self.started = false;
            self.lone_events = false;
            return;
        }
        if let Err(e) = self.end_round(broker) {
            self.failure = Some(e);
        }
    }
}

/// The channel an event is on; `None` for the connection's own.
fn channel_of(ev: &Event) -> Option<u16> {
    ev.channel()
}

/// Whether two events say the same (messages by their bytes).
fn same_event(a: &Event, b: &Event) -> bool {
    match (a, b) {
        (
            Event::Method {
                channel: c1,
                method: m1,
            },
            Event::Method {
                channel: c2,
                method: m2,
            },
        ) => c1 == c2 && m1 == m2,
        (
            Event::Deliver {
                channel: c1,
                consumer_tag: t1,
                delivery_tag: d1,
                redelivered: r1,
                message: m1,
            },
            Event::Deliver {
                channel: c2,
                consumer_tag: t2,
                delivery_tag: d2,
                redelivered: r2,
                message: m2,
            },
        ) => c1 == c2 && t1 == t2 && d1 == d2 && r1 == r2 && m1.body() == m2.body(),
        (
            Event::Content {
                channel: c1,
                method: x1,
                message: m1,
            },
            Event::Content {
                channel: c2,
                method: x2,
                message: m2,
            },
        ) => c1 == c2 && x1 == x2 && m1.body() == m2.body(),
        (
            Event::ChannelError {
                channel: c1,
                fault: f1,
            },
            Event::ChannelError {
                channel: c2,
                fault: f2,
            },
        ) => c1 == c2 && f1 == f2,
        (Event::ConnectionError { fault: f1 }, Event::ConnectionError { fault: f2 }) => f1 == f2,
        (Event::LoginRefused { mechanism: a }, Event::LoginRefused { mechanism: b }) => a == b,
        (Event::ResourceAlarm { reason: a }, Event::ResourceAlarm { reason: b }) => a == b,
        (Event::Flow { hold: a }, Event::Flow { hold: b }) => a == b,
        (Event::LoginOk, Event::LoginOk)
        | (Event::OpenOk, Event::OpenOk)
        | (Event::Closed, Event::Closed) => true,
        _ => false,
    }
}
