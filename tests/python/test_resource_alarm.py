"""The memory alarm: publishers are blocked (connection.blocked) while the broker is over its
memory high watermark, like RabbitMQ's vm_memory_high_watermark.

Needs a broker of its own started with a tiny watermark, so it runs only with WARREN_BIN."""

import os
import signal
import subprocess
import tempfile

import pika
import pytest

from conftest import _free_port, _tail, _wait_for_port
from helpers import pump_until


@pytest.fixture
def alarmed_broker():
    binary = os.environ.get("WARREN_BIN")
    if not binary:
        pytest.skip("needs WARREN_BIN: starts its own broker with a 1-byte memory watermark")
    port = _free_port()
    log_path = os.path.join(tempfile.mkdtemp(prefix="warren-alarm-"), "warren.log")
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [binary, "server", "--amqp", "127.0.0.1:%d" % port,
             "--vm-memory-high-watermark-absolute", "1"],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True)
    try:
        assert _wait_for_port("127.0.0.1", port, proc, 20), _tail(log_path)
        yield port
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def test_publisher_gets_connection_blocked_over_the_watermark(alarmed_broker):
    params = pika.URLParameters("amqp://guest:guest@127.0.0.1:%d/%%2F" % alarmed_broker)
    params.blocked_connection_timeout = 30
    conn = pika.BlockingConnection(params)
    events = []
    conn.add_on_connection_blocked_callback(lambda _c, m: events.append(m.method.reason))
    ch = conn.channel()
    q = ch.queue_declare("", exclusive=True).method.queue
    ch.basic_publish("", q, b"under the alarm")
    pump_until(conn, lambda: events, what="connection.blocked")
    assert events == ["low on memory"]
    # A blocked connection is not read from (RabbitMQ does the same), so a clean close would
    # wait for the alarm to clear; the fixture's broker shutdown ends it instead.


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
