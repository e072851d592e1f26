"""The resource alarms: publishers are blocked (connection.blocked) while the broker is over its
memory high watermark (RabbitMQ's vm_memory_high_watermark) or the data directory's disk has
less free space than the limit (RabbitMQ's disk_free_limit).

Needs a broker of its own started with a tiny watermark or a huge disk limit, so it runs only
with WARREN_BIN."""

import pika
import pytest

from conftest import WarrenProcess, own_warren
from helpers import pump_until


@pytest.fixture
def alarmed_broker():
    with own_warren("--vm-memory-high-watermark-absolute", "1") as (port, _proc):
        yield port


def blocked_reasons(port):
    """Publishes once and returns the reasons of the connection.blocked that follow.

    A blocked connection is not read from (RabbitMQ does the same), so a clean close would wait
    for the alarm to clear; the broker's shutdown ends the connection instead."""
    params = pika.URLParameters("amqp://guest:guest@127.0.0.1:%d/%%2F" % port)
    params.blocked_connection_timeout = 30
    conn = pika.BlockingConnection(params)
    events = []
    conn.add_on_connection_blocked_callback(lambda _c, m: events.append(m.method.reason))
    ch = conn.channel()
    q = ch.queue_declare("", exclusive=True).method.queue
    ch.basic_publish("", q, b"under the alarm")
    pump_until(conn, lambda: events, what="connection.blocked")
    return events


def test_publisher_gets_connection_blocked_over_the_watermark(alarmed_broker):
    assert blocked_reasons(alarmed_broker) == ["low on memory"]


def test_consumer_only_connection_is_not_blocked(alarmed_broker):
    params = pika.URLParameters("amqp://guest:guest@127.0.0.1:%d/%%2F" % alarmed_broker)
    conn = pika.BlockingConnection(params)
    events = []
    conn.add_on_connection_blocked_callback(lambda _c, m: events.append(m))
    try:
        ch = conn.channel()
        q = ch.queue_declare("", exclusive=True).method.queue
        ch.basic_consume(q, lambda *a: None, auto_ack=True)
        conn.process_data_events(time_limit=1.0)
        assert events == []
        # Still fully usable for everything but publishing.
        assert ch.queue_declare(q, passive=True).method.consumer_count == 1
    finally:
        conn.close()


def test_publisher_gets_connection_blocked_when_the_disk_is_low():
    # No disk has an exabyte free: the alarm is on from the first check.
    with own_warren("--disk-free-limit", str(10 ** 18)) as (port, _proc):
        assert blocked_reasons(port) == ["low on disk"]


def test_the_memory_alarm_clears_once_a_burst_is_gone():
    """A burst of small messages far over the watermark, then its queue deleted: the broker
    gives the freed memory back to the system (glibc's allocator keeps it otherwise, and the
    alarm reads resident memory: a build without that kept 330 MB resident after this burst,
    and its alarm on for good), so the alarm clears within seconds.
    A priority queue never pages, so the burst stays in memory until it is deleted."""
    import socket
    import struct
    import threading
    import time

    import amqp_raw as raw

    w = WarrenProcess("--vm-memory-high-watermark-absolute", str(80_000_000)).start()
    try:
        c = raw.RawConnection("127.0.0.1", w.port, timeout=60)
        c.handshake("guest", "guest", "/")
        c.open_channel(1)
        c.send_method(1, raw.QUEUE_DECLARE,
                      raw.queue_declare_args("burst", arguments={"x-max-priority": 5}))
        c.expect_method(raw.QUEUE_DECLARE_OK)
        one = (raw.method_frame(1, raw.BASIC_PUBLISH, raw.basic_publish_args("", "burst"))
               + raw.content_header_frame(1, 64) + raw.body_frame(1, b"." * 64))
        burst = one * 300_000

        def send():
            # Blocks while the alarm holds the connection unread; goes on once it clears.
            try:
                c.send(burst)
            except OSError:
                pass
        sender = threading.Thread(target=send, daemon=True)
        sender.start()

        wait_for_log(w, "resource alarm set", 30)
        admin = pika.BlockingConnection(w.params())
        admin.channel().queue_delete("burst")
        admin.close()
        wait_for_log(w, "resource alarm cleared", 15)
        sender.join(30)
        assert not sender.is_alive(), "the publisher was never read again"
        c.close()
    finally:
        w.stop()


def wait_for_log(w, text, timeout):
    import time
    deadline = time.monotonic() + timeout
    while text not in w.log():
        if time.monotonic() > deadline:
            raise AssertionError("no %r in the broker log within %ss:\n%s" % (text, timeout, w.log()))
        time.sleep(0.1)
