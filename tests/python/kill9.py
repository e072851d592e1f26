#!/usr/bin/env python3
"""The kill -9 loop: publishers with confirms and consumers with acks run against warren while
it is killed (SIGKILL) at a random moment; after each restart the queue is checked:

* every confirmed message is there, unless it was acked; exactly once; intact;
* no message whose ack was committed in a transaction (tx.commit-ok received) comes back;
* a message acked outside a transaction may come back (nothing tells a client its plain ack
  reached the disk), and so may one acked in a transaction whose commit-ok never came; but
  only once;
* each publisher's messages are in the order it published them;
* the broker starts every time.

    WARREN_BIN=target/release/warren python3 tests/python/kill9.py --rounds 200

CI runs a few rounds through test_kill9.py. Exit status 0 when every round passed."""

import argparse
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import zlib

import pika

QUEUE = "kill9"
PERSISTENT = pika.BasicProperties(delivery_mode=2)


def body_for(pub, seq):
    """A body that says who published it and checks itself: id, padding, crc32."""
    head = b"%d:%d:" % (pub, seq)
    pad = bytes((seq * 7 + i) % 251 for i in range(seq % 300))
    payload = head + pad
    return payload + b":%08x" % zlib.crc32(payload)


def parse_body(body):
    """(publisher, seq) of an intact body; raises on a corrupt one."""
    payload, _, crc = body.rpartition(b":")
    if b"%08x" % zlib.crc32(payload) != crc:
        raise AssertionError("corrupt body %r" % body[:60])
    pub, seq, _ = payload.split(b":", 2)
    return int(pub), int(seq)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Ledger:
    """What the clients know for sure, shared by their threads."""

    def __init__(self):
        self.lock = threading.Lock()
        self.confirmed = set()
        self.tx_acked = set()
        # Acked in a transaction whose commit-ok never came: either way is right.
        self.tx_unsure = set()
        self.plain_acked = set()
        self.next_seq = {}

    def add(self, what, ids):
        with self.lock:
            getattr(self, what).update(ids)


def publisher(port, pub, ledger, stop):
    try:
        conn = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", port))
        ch = conn.channel()
        ch.confirm_delivery()
        while not stop.is_set():
            with ledger.lock:
                seq = ledger.next_seq.get(pub, 0)
                ledger.next_seq[pub] = seq + 1
            ch.basic_publish("", QUEUE, body_for(pub, seq), PERSISTENT)  # returns once confirmed
            ledger.add("confirmed", [(pub, seq)])
    except Exception:  # the broker was killed under it
        return


def tx_consumer(port, ledger, stop):
    try:
        conn = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", port))
        ch = conn.channel()
        ch.tx_select()
        while not stop.is_set():
            batch = []
            for _ in range(random.randint(1, 20)):
                m, _p, body = ch.basic_get(QUEUE, auto_ack=False)
                if m is None:
                    break
                ch.basic_ack(m.delivery_tag)
                batch.append(parse_body(body))
            ledger.add("tx_unsure", batch)
            ch.tx_commit()  # commit-ok: these acks are on disk
            with ledger.lock:
                ledger.tx_acked.update(batch)
                ledger.tx_unsure.difference_update(batch)
            if not batch:
                time.sleep(0.01)
    except Exception:
        return


def plain_consumer(port, ledger, stop):
    try:
        conn = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", port))
        ch = conn.channel()
        ch.basic_qos(prefetch_count=random.randint(1, 50))

        def on_message(chan, method, _props, body):
            ledger.add("plain_acked", [parse_body(body)])
            chan.basic_ack(method.delivery_tag)

        ch.basic_consume(QUEUE, on_message)
        while not stop.is_set():
            conn.process_data_events(time_limit=0.05)
    except Exception:
        return


def wait_for_port(port, proc, timeout=20):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            return False
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return True
        except OSError:
            time.sleep(0.02)
    return False


class Broker:
    def __init__(self, binary, data_dir, log_path):
        self.binary, self.data_dir, self.log_path = binary, data_dir, log_path
        self.proc = None
        self.port = None

    def start(self):
        self.port = free_port()
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [self.binary, "server", "--amqp", "127.0.0.1:%d" % self.port,
                 "--data-dir", self.data_dir, "--heartbeat", "0",
                 # Small segments and a small queue window: the kills land while segments
                 # rotate and go, and while most of the queue is paged out.
                 "--segment-bytes", str(256 << 10), "--queue-window", "64"],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True)
        if not wait_for_port(self.port, self.proc):
            raise AssertionError("the broker did not start; log %s:\n%s"
                                 % (self.log_path, open(self.log_path).read()[-3000:]))

    def kill(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)


def check(port, ledger):
    """Reads the whole queue without acking (it stays for the next round) and checks it."""
    conn = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", port))
    ch = conn.channel()
    ch.queue_declare(QUEUE, durable=True)
    present = []
    while True:
        m, _p, body = ch.basic_get(QUEUE, auto_ack=False)
        if m is None:
            break
        present.append(parse_body(body))
    conn.close()  # everything goes back to the queue, in order
    seen = set()
    for mid in present:
        assert mid not in seen, "message %r is in the queue twice" % (mid,)
        seen.add(mid)
    back = seen & ledger.tx_acked
    assert not back, "%d messages acked in a committed tx came back, e.g. %r" % (
        len(back), sorted(back)[:5])
    missing = ledger.confirmed - ledger.tx_acked - ledger.tx_unsure - ledger.plain_acked - seen
    assert not missing, "%d confirmed messages are lost, e.g. %r" % (
        len(missing), sorted(missing)[:5])
    last = {}
    for pub, seq in present:
        assert seq > last.get(pub, -1), "publisher %d's messages out of order: %d after %d" % (
            pub, seq, last[pub])
        last[pub] = seq
    # What the check saw acked-but-back is now in the queue again: the next round may ack it.
    ledger.plain_acked -= seen
    ledger.tx_unsure -= seen
    return len(present)


def run(binary, rounds, seed, out=print):
    rng = random.Random(seed)
    data_dir = tempfile.mkdtemp(prefix="warren-kill9-")
    log_path = os.path.join(data_dir, "..", os.path.basename(data_dir) + ".log")
    broker = Broker(binary, os.path.join(data_dir, "data"), log_path)
    ledger = Ledger()
    broker.start()
    try:
        conn = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", broker.port))
        conn.channel().queue_declare(QUEUE, durable=True)
        conn.close()
        for r in range(rounds):
            stop = threading.Event()
            threads = [threading.Thread(target=publisher, args=(broker.port, p, ledger, stop))
                       for p in range(2)]
            # Some rounds let a backlog build (no consumer), some ack only in transactions.
            consumers = rng.choice([(), (tx_consumer,), (tx_consumer, plain_consumer)])
            threads += [threading.Thread(target=c, args=(broker.port, ledger, stop))
                        for c in consumers]
            for t in threads:
                t.start()
            time.sleep(rng.uniform(0.2, 1.2))
            broker.kill()
            stop.set()
            for t in threads:
                t.join(10)
            broker.start()
            queued = check(broker.port, ledger)
            out("round %d: %d confirmed, %d acked in tx, %d in the queue after kill -9"
                % (r + 1, len(ledger.confirmed), len(ledger.tx_acked), queued))
    finally:
        broker.kill()
    return ledger


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=200)
    ap.add_argument("--seed", type=int, default=int(time.time()))
    args = ap.parse_args()
    binary = os.environ.get("WARREN_BIN")
    if not binary:
        sys.exit("set WARREN_BIN=/path/to/warren")
    print("kill9: seed %d, %d rounds" % (args.seed, args.rounds))
    run(binary, args.rounds, args.seed)
    print("kill9: every round passed")


if __name__ == "__main__":
    main()
