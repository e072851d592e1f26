"""SIGTERM closes every connection as RabbitMQ does on shutdown."""

import signal

import pika
import pytest

from conftest import own_warren


def test_sigterm_closes_connections_with_320_connection_forced():
    with own_warren() as (port, proc):
        conn = pika.BlockingConnection(
            pika.URLParameters("amqp://guest:guest@127.0.0.1:%d/%%2F" % port))
        conn.channel()
        proc.send_signal(signal.SIGTERM)
        with pytest.raises(pika.exceptions.ConnectionClosedByBroker) as e:
            for _ in range(100):
                conn.process_data_events(time_limit=0.1)
        assert e.value.reply_code == 320
        assert e.value.reply_text == \
            "CONNECTION_FORCED - broker forced connection closure with reason 'shutdown'"
        assert proc.wait(5) == 0
