"""Queues longer than memory, with pika: a broker started with a small `--queue-window` keeps
only that many messages of a durable queue in memory and leaves the rest on disk, reading them
back as consumers reach them. What clients see must not change: order, counts, length limits,
purges, and what comes back after a restart or kill -9 (persistent messages, in order;
transient ones never).

Every test starts a broker of its own (WARREN_BIN only)."""

import signal

import pika
import pytest

from conftest import WarrenProcess
from helpers import drain

WINDOW = ["--queue-window", "40", "--queue-window-bytes", "65536"]
PERSISTENT = pika.BasicProperties(delivery_mode=2)
TRANSIENT = pika.BasicProperties(delivery_mode=1)


@pytest.fixture
def warren():
    w = WarrenProcess(*WINDOW).start()
    yield w
    w.stop()


def connect(w):
    return pika.BlockingConnection(w.params())


def publish_numbered(ch, queue, n, props_of):
    ch.confirm_delivery()
    for i in range(n):
        ch.basic_publish("", queue, b"m%d" % i, props_of(i))


def publish_numbered_with(ch, queue, n, body_of, props=TRANSIENT):
    ch.confirm_delivery()
    for i in range(n):
        ch.basic_publish("", queue, body_of(i), props)


def consume_all(ch, queue, expected):
    """Consumes `expected` messages with manual acks and a prefetch of 100; their bodies."""
    ch.basic_qos(prefetch_count=100)
    got = []
    for method, _props, body in ch.consume(queue, inactivity_timeout=10):
        assert method is not None, "stalled after %d of %d" % (len(got), expected)
        assert not method.redelivered
        got.append(body)
        if len(got) % 50 == 0 or len(got) == expected:
            ch.basic_ack(method.delivery_tag, multiple=True)
        if len(got) == expected:
            break
    ch.cancel()
    return got


def test_a_queue_longer_than_its_window_hands_everything_back_in_order(warren):
    conn = connect(warren)
    ch = conn.channel()
    ch.queue_declare("long", durable=True)
    publish_numbered(ch, "long", 3000, lambda i: PERSISTENT if i % 2 else TRANSIENT)
    assert ch.queue_declare("long", passive=True).method.message_count == 3000
    got = consume_all(ch, "long", 3000)
    assert got == [b"m%d" % i for i in range(3000)]
    assert ch.queue_declare("long", passive=True).method.message_count == 0
    conn.close()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
def test_paged_persistent_messages_come_back_after_a_restart_and_transient_ones_do_not(
        warren, sig):
    conn = connect(warren)
    ch = conn.channel()
    ch.queue_declare("long", durable=True)
    publish_numbered(ch, "long", 2000, lambda i: TRANSIENT if i % 5 == 4 else PERSISTENT)
    # Take the first 100 out, so the queue's head has moved on.
    assert drain(ch, "long", limit=100) == [b"m%d" % i for i in range(100)]
    conn.close()

    warren.stop(sig)
    warren.start()
    conn = connect(warren)
    ch = conn.channel()
    kept = [b"m%d" % i for i in range(100, 2000) if i % 5 != 4]
    assert ch.queue_declare("long", passive=True).method.message_count == len(kept)
    assert consume_all(ch, "long", len(kept)) == kept
    conn.close()


def test_a_length_limit_and_a_purge_count_the_messages_on_disk(warren):
    conn = connect(warren)
    ch = conn.channel()
    ch.queue_declare("capped", durable=True, arguments={"x-max-length": 300})
    publish_numbered(ch, "capped", 1000, lambda i: PERSISTENT)
    assert ch.queue_declare("capped", passive=True).method.message_count == 300
    assert drain(ch, "capped", limit=1000) == [b"m%d" % i for i in range(700, 1000)]

    ch.queue_declare("purged", durable=True)
    publish_numbered(ch, "purged", 500, lambda i: PERSISTENT if i % 2 else TRANSIENT)
    assert ch.queue_purge("purged").method.message_count == 500
    ch.basic_publish("", "purged", b"after", PERSISTENT)
    assert drain(ch, "purged") == [b"after"]
    conn.close()

    # Nothing purged or dropped comes back.
    warren.stop(signal.SIGKILL)
    warren.start()
    conn = connect(warren)
    ch = conn.channel()
    assert ch.queue_declare("capped", passive=True).method.message_count == 0
    assert drain(ch, "purged") == []
    conn.close()


def test_a_queue_that_is_not_durable_pages_under_memory_pressure_instead_of_blocking():
    """RabbitMQ pages transient messages to disk as memory runs short, before its alarm
    blocks publishers. Here 192 MiB go into a queue that is not durable through a 160 MB
    watermark: paging starts at a quarter of it, so the publisher is never blocked, and the
    consumer gets every message back in order. Without paging the alarm would hold the
    publisher for as long as nobody consumes."""
    w = WarrenProcess(*WINDOW, "--vm-memory-high-watermark-absolute", str(160_000_000),
                      "--vm-memory-high-watermark-paging-ratio", "0.25").start()
    try:
        params = w.params(blocked_connection_timeout=20)
        conn = pika.BlockingConnection(params)
        blocked = []
        conn.add_on_connection_blocked_callback(lambda _c, m: blocked.append(m.method.reason))
        ch = conn.channel()
        ch.queue_declare("spilled")
        n, filler = 6144, b"." * 32768
        publish_numbered_with(ch, "spilled", n, lambda i: b"m%d:" % i + filler)
        assert blocked == []
        assert ch.queue_declare("spilled", passive=True).method.message_count == n
        assert "memory pressure" in w.log()
        got = consume_all(ch, "spilled", n)
        assert [b.split(b":")[0] for b in got] == [b"m%d" % i for i in range(n)]
        assert all(b.endswith(filler) for b in got)
        conn.close()
    finally:
        w.stop()
