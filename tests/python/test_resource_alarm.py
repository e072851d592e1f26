"""The resource alarms: publishers are blocked (connection.blocked) while the broker is over its
memory high watermark (RabbitMQ's vm_memory_high_watermark) or the data directory's disk has
less free space than the limit (RabbitMQ's disk_free_limit).

Needs a broker of its own started with a tiny watermark or a huge disk limit, so it runs only
with WARREN_BIN."""

import pika
import pytest

from conftest import own_warren
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
