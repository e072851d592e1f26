//! Transactions (AMQP 0-9-1 §1.9): publishes and settlements buffered until `tx.commit`.

use alloc::vec::Vec;

use super::channel::TxOp;
use super::Broker;
use crate::channel_fault;
use crate::codec::{TxCommitOk, TxRollbackOk, TxSelectOk};
use crate::reply::Fault;
use crate::vocab::{ConnId, Event};

impl Broker {
    pub(crate) fn tx_select(&mut self, conn: ConnId, channel: u16) -> Result<(), Fault> {
        let ch = self.channel_mut(conn, channel)?;
        if ch.next_publish_seq.is_some() {
            return Err(channel_fault!(
                PRECONDITION_FAILED,
                "cannot switch from confirm to tx mode"
            ));
        }
        if ch.tx.is_none() {
            ch.tx = Some(Vec::new());
        }
        self.reply(conn, channel, TxSelectOk);
        Ok(())
    }

    fn take_tx(&mut self, conn: ConnId, channel: u16) -> Result<Vec<TxOp>, Fault> {
        let ch = self.channel_mut(conn, channel)?;
        match ch.tx.as_mut() {
            Some(ops) => Ok(core::mem::take(ops)),
            None => Err(channel_fault!(
                PRECONDITION_FAILED,
                "channel is not transactional"
            )),
        }
    }

    pub(crate) fn tx_commit(&mut self, conn: ConnId, channel: u16) -> Result<(), Fault> {
        let ops = self.take_tx(conn, channel)?;
        let writes_before = self.storage.write_seq();
        let ch = self.channel_mut(conn, channel)?;
        for op in &ops {
            if let TxOp::Ack(u) | TxOp::Nack { unacked: u, .. } = op {
                ch.release_credit(u);
            }
        }
        for op in ops {
            match op {
                TxOp::Publish {
                    queues,
                    message,
                    mandatory,
                } => {
                    if queues.is_empty() && mandatory {
                        self.return_no_route(conn, channel, message.clone());
                    }
                    for q in queues {
                        self.enqueue(q, message.clone(), false);
                    }
                }
                TxOp::Ack(u) => self.settle(u),
                TxOp::Nack { unacked, requeue } => {
                    if requeue {
                        self.requeue(alloc::vec![unacked]);
                    } else {
                        self.reject(unacked);
                    }
                }
            }
        }
        let queues = self.channel_mut(conn, channel)?.consumed_queues();
        self.dirty.extend(queues);
        // Commit-ok promises the transaction's publishes and acks are durable.
        let wait_for = self.writes_since(writes_before);
        let commit_ok = Event::Method {
            channel,
            method: TxCommitOk.into(),
        };
        self.emit_after(wait_for, conn, channel, commit_ok);
        Ok(())
    }

    pub(crate) fn tx_rollback(&mut self, conn: ConnId, channel: u16) -> Result<(), Fault> {
        let ops = self.take_tx(conn, channel)?;
        let ch = self.channel_mut(conn, channel)?;
        for op in ops {
            match op {
                TxOp::Publish { .. } => {}
                TxOp::Ack(u) | TxOp::Nack { unacked: u, .. } => ch.reinsert_unacked(u),
            }
        }
        self.reply(conn, channel, TxRollbackOk);
        Ok(())
    }
}
