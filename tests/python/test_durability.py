"""Durability across restarts, as RabbitMQ 3.x keeps it: durable exchanges, queues and bindings
come back and transient ones do not (exclusive queues never do); persistent messages in durable
queues come back in order, transient ones do not; delivered-but-unacked ones come back with
redelivered=true. A confirm (or a tx.commit-ok) is given only once the message is on disk, so
confirmed messages survive kill -9, and acks committed in a transaction stay acked.

Every test stops and starts a broker of its own on one data directory (WARREN_BIN only)."""

import os
import signal

import pika
import pytest

from conftest import WarrenProcess
from helpers import drain, exchange_exists, queue_exists


@pytest.fixture
def warren():
    w = WarrenProcess().start()
    yield w
    w.stop()


def connect(w):
    return pika.BlockingConnection(w.params())


def restart(w, sig=signal.SIGTERM):
    code = w.stop(sig)
    if sig == signal.SIGTERM:
        assert code == 0, "clean shutdown failed (%r):\n%s" % (code, w.log())
    w.start()


PERSISTENT = pika.BasicProperties(delivery_mode=2)
TRANSIENT = pika.BasicProperties(delivery_mode=1)


def test_durable_entities_survive_a_restart_and_transient_ones_do_not(warren):
    conn = connect(warren)
    ch = conn.channel()
    ch.exchange_declare("dx", "topic", durable=True)
    ch.exchange_declare("tx", "fanout", durable=False)
    ch.queue_declare("dq", durable=True)
    ch.queue_declare("tq", durable=False)
    ch.queue_declare("eq", durable=True, exclusive=True)
    ch.queue_bind("dq", "dx", "a.#")
    ch.queue_bind("tq", "dx", "a.#")
    conn.close()

    restart(warren)
    conn = connect(warren)
    assert queue_exists(conn, "dq")
    assert not queue_exists(conn, "tq")
    assert not queue_exists(conn, "eq"), "exclusive queues never survive"
    assert exchange_exists(conn, "dx")
    assert not exchange_exists(conn, "tx")
    # The binding between durable ends came back with them.
    ch = conn.channel()
    ch.confirm_delivery()
    ch.basic_publish("dx", "a.b", b"routed", PERSISTENT, mandatory=True)
    assert drain(ch, "dq") == [b"routed"]
    conn.close()


def test_a_durable_declare_answered_survives_kill_9(warren):
    # declare-ok and bind-ok come once the change is on disk, as RabbitMQ answers once its
    # schema store has it.
    conn = connect(warren)
    ch = conn.channel()
    ch.exchange_declare("dx", "direct", durable=True)
    ch.queue_declare("dq", durable=True)
    ch.queue_bind("dq", "dx", "k")

    restart(warren, signal.SIGKILL)
    conn = connect(warren)
    assert queue_exists(conn, "dq")
    assert exchange_exists(conn, "dx")
    ch = conn.channel()
    ch.confirm_delivery()
    ch.basic_publish("dx", "k", b"bound", PERSISTENT, mandatory=True)
    assert drain(ch, "dq") == [b"bound"]
    conn.close()


def test_persistent_messages_come_back_in_order_and_transient_ones_do_not(warren):
    conn = connect(warren)
    ch = conn.channel()
    ch.queue_declare("dq", durable=True)
    ch.queue_declare("tq", durable=False)
    ch.confirm_delivery()
    for i in range(50):
        ch.basic_publish("", "dq", b"p%d" % i, PERSISTENT)
        ch.basic_publish("", "dq", b"t%d" % i, TRANSIENT)
        ch.basic_publish("", "tq", b"p%d" % i, PERSISTENT)
    conn.close()

    restart(warren)
    conn = connect(warren)
    ch = conn.channel()
    got = []
    for _ in range(60):
        m, _p, body = ch.basic_get("dq", auto_ack=True)
        if m is None:
            break
        assert not m.redelivered
        got.append(body)
    assert got == [b"p%d" % i for i in range(50)]
    assert not queue_exists(conn, "tq")
    conn.close()


def test_unacked_messages_come_back_redelivered_and_acked_ones_do_not(warren):
    conn = connect(warren)
    ch = conn.channel()
    ch.queue_declare("dq", durable=True)
    ch.confirm_delivery()
    for i in range(5):
        ch.basic_publish("", "dq", b"m%d" % i, PERSISTENT)
    tags = []
    for i in range(3):
        m, _p, body = ch.basic_get("dq", auto_ack=False)
        assert body == b"m%d" % i
        tags.append(m.delivery_tag)
    ch.basic_ack(tags[1])
    # A round trip, so the ack has reached the broker before it stops.
    ch.queue_declare("dq", passive=True)

    restart(warren)
    conn = connect(warren)
    ch = conn.channel()
    got = []
    for _ in range(5):
        m, _p, body = ch.basic_get("dq", auto_ack=True)
        if m is None:
            break
        got.append((body, m.redelivered))
    assert got == [(b"m0", True), (b"m2", True), (b"m3", False), (b"m4", False)]
    conn.close()


def test_confirmed_messages_survive_kill_9(warren):
    conn = connect(warren)
    ch = conn.channel()
    ch.queue_declare("dq", durable=True)
    ch.confirm_delivery()
    for i in range(300):
        ch.basic_publish("", "dq", b"m%d" % i, PERSISTENT)  # returns once confirmed

    restart(warren, signal.SIGKILL)
    conn = connect(warren)
    ch = conn.channel()
    assert drain(ch, "dq") == [b"m%d" % i for i in range(300)]
    conn.close()


def test_acks_committed_in_a_transaction_survive_kill_9(warren):
    conn = connect(warren)
    ch = conn.channel()
    ch.queue_declare("dq", durable=True)
    ch.tx_select()
    for i in range(10):
        ch.basic_publish("", "dq", b"m%d" % i, PERSISTENT)
    ch.tx_commit()  # commit-ok: the ten are on disk
    for _ in range(4):
        m, _p, _body = ch.basic_get("dq", auto_ack=False)
        ch.basic_ack(m.delivery_tag)
    ch.tx_commit()  # commit-ok: the four acks are on disk

    restart(warren, signal.SIGKILL)
    conn = connect(warren)
    ch = conn.channel()
    assert drain(ch, "dq") == [b"m%d" % i for i in range(4, 10)]
    conn.close()


def test_a_damaged_store_is_refused_by_name_unless_told_to_skip(warren):
    conn = connect(warren)
    ch = conn.channel()
    ch.queue_declare("dq", durable=True)
    ch.confirm_delivery()
    for body in [b"first", b"second-message", b"third"]:
        ch.basic_publish("", "dq", body, PERSISTENT)
    conn.close()
    assert warren.stop() == 0
    damaged = None
    for name in sorted(n for n in os.listdir(warren.data_dir) if n.endswith(".seg")):
        path = os.path.join(warren.data_dir, name)
        data = bytearray(open(path, "rb").read())
        at = data.find(b"second-message")
        if at >= 0:
            data[at] ^= 0x20
            open(path, "wb").write(bytes(data))
            damaged = path
    assert damaged, "the message is in a segment file"

    with pytest.raises(AssertionError):
        warren.start()  # it exits instead of listening
    assert warren.proc.wait(5) != 0
    log = warren.log()
    assert "damaged record in %s at offset" % damaged in log, log

    skipping = WarrenProcess("--skip-damaged-records", data_dir=warren.data_dir).start()
    try:
        conn = pika.BlockingConnection(skipping.params())
        ch = conn.channel()
        assert drain(ch, "dq") == [b"first", b"third"]
        conn.close()
    finally:
        skipping.stop()


def test_ten_thousand_durable_queues_under_the_default_open_file_limit():
    # The store keeps one file open for writing whatever the number of queues.
    w = WarrenProcess(max_open_files=1024).start()
    try:
        conn = connect(w)
        ch = conn.channel()
        names = ["q%05d" % i for i in range(10_000)]
        for name in names:
            ch.queue_declare(name, durable=True)
        ch.tx_select()
        for name in names:
            ch.basic_publish("", name, name.encode(), PERSISTENT)
        ch.tx_commit()  # one sync for all ten thousand
        conn.close()

        restart(w, signal.SIGKILL)
        conn = connect(w)
        ch = conn.channel()
        for name in names:
            assert ch.queue_declare(name, passive=True).method.message_count == 1, name
        m, _p, body = ch.basic_get("q09999", auto_ack=True)
        assert body == b"q09999"
        conn.close()
    finally:
        w.stop()
