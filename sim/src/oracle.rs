//! The oracle as the pump's [`Observer`]: it sees every round the core's [`Pump`] carries
//! (commands into the broker, then the events they caused) and walks it through the reference
//! model command by command, each command taking its events off the front of the stream. What
//! each event means for its client (an [`Expect`]) is kept for the runner to hand to the
//! client, which checks what reaches it on the wire.
//!
//! [`Pump`]: warren_core::Pump

use warren_core::pump::Observer;
use warren_core::{Broker, Command, ConnId, Event};

use crate::client::Expect;
use crate::model::{Cmd, Model, Step};

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
                    self.expects.push((conn, e));
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
                    self.expects.push((conn, e));
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

    fn on_event(&mut self, conn: ConnId, event: &Event) {
        self.events += 1;
        if self.failure.is_none() {
            if let Err(e) = self.match_event(conn, event) {
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
