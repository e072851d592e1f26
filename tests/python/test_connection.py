"""Connection handshake, server properties, authentication, vhosts, channels,
heartbeats (through pika)."""

import time

import pika
import pytest

from amqp_raw import RawConnection

REQUIRED_CAPABILITIES = [
    "publisher_confirms",
    "exchange_exchange_bindings",
    "basic.nack",
    "consumer_cancel_notify",
    "connection.blocked",
    "authentication_failure_close",
    "per_consumer_qos",
]


def test_pika_connects_and_opens_a_channel(conn):
    assert conn.is_open
    ch = conn.channel()
    assert ch.is_open
    ok = ch.queue_declare("", exclusive=True)
    assert ok.method.queue


def test_connection_start_advertises_amqp_0_9_plain_and_en_us(broker):
    with RawConnection(broker.host, broker.port) as c:
        c.send_header()
        start = c.read_start()
    assert (start["version_major"], start["version_minor"]) == (0, 9)
    assert b"PLAIN" in start["mechanisms"].split()
    # RabbitMQ 3.10 offers "PLAIN AMQPLAIN".
    assert b"AMQPLAIN" in start["mechanisms"].split()
    assert start["locales"].split() == [b"en_US"]


def test_server_properties_carry_product_version_and_capabilities(broker):
    with RawConnection(broker.host, broker.port) as c:
        c.send_header()
        props = c.read_start()["server_properties"]
    for key in ("product", "version", "platform", "copyright", "information"):
        assert isinstance(props.get(key), bytes) and props[key], key
    caps = props["capabilities"]
    assert isinstance(caps, dict)
    for cap in REQUIRED_CAPABILITIES:
        assert caps.get(cap) is True, cap


def test_pika_sees_server_capabilities(conn):
    assert conn.publisher_confirms_supported
    assert conn.exchange_exchange_bindings_supported
    assert conn.basic_nack_supported
    assert conn.consumer_cancel_notify_supported


def test_connection_tune_proposes_rabbitmq_defaults(broker):
    with RawConnection(broker.host, broker.port) as c:
        c.send_header()
        c.read_start()
        c.send_start_ok(broker.user, broker.password)
        channel_max, frame_max, heartbeat = c.read_tune()
    # RabbitMQ 3.10 defaults: channel_max 2047, frame_max 131072, heartbeat 60.
    assert (channel_max, frame_max, heartbeat) == (2047, 131072, 60)


def test_pika_negotiates_server_limits(conn):
    params = conn._impl.params
    assert params.channel_max == 2047
    assert params.frame_max == 131072


def test_wrong_password_is_refused(broker):
    params = pika.URLParameters(broker.url_with(password="definitely-wrong"))
    params.connection_attempts = 1
    params.socket_timeout = 5
    with pytest.raises(pika.exceptions.ProbableAuthenticationError) as ei:
        pika.BlockingConnection(params)
    # Because pika announces authentication_failure_close, the broker sends
    # connection.close(403) instead of just dropping the socket.
    assert "403" in str(ei.value)
    assert "ACCESS_REFUSED" in str(ei.value)


def test_unknown_user_is_refused(broker):
    params = pika.URLParameters(broker.url_with(user="no-such-user", password="x"))
    params.connection_attempts = 1
    with pytest.raises(pika.exceptions.ProbableAuthenticationError) as ei:
        pika.BlockingConnection(params)
    assert "ACCESS_REFUSED" in str(ei.value)


def test_wrong_credentials_get_connection_close_403_with_rabbitmq_text(broker):
    with RawConnection(broker.host, broker.port) as c:
        c.send_header()
        c.read_start()
        c.send_start_ok("guest", "not-the-password")
        code, text, class_id, method_id = c.expect_connection_close()
    assert code == 403
    assert text == ("ACCESS_REFUSED - Login was refused using authentication mechanism PLAIN. "
                    "For details see the broker logfile.")
    assert (class_id, method_id) == (0, 0)


def test_unknown_vhost_is_refused_with_530_not_allowed(broker):
    params = pika.URLParameters(broker.url_with(vhost="no-such-vhost"))
    params.connection_attempts = 1
    with pytest.raises(pika.exceptions.ProbableAccessDeniedError) as ei:
        pika.BlockingConnection(params)
    assert "530" in str(ei.value)
    assert "NOT_ALLOWED - vhost no-such-vhost not found" in str(ei.value)


def test_unknown_vhost_raw_close_names_connection_open(broker):
    with RawConnection(broker.host, broker.port) as c:
        c.send_header()
        c.read_start()
        c.send_start_ok(broker.user, broker.password)
        cm, fm, _ = c.read_tune()
        c.send_tune_ok(cm, fm, 0)
        c.send_open("no-such-vhost")
        code, text, class_id, method_id = c.expect_connection_close()
    assert (code, text, class_id, method_id) == (
        530, "NOT_ALLOWED - vhost no-such-vhost not found", 10, 40)


def test_client_close_is_clean(connect):
    c = connect()
    c.channel()
    c.close()
    assert c.is_closed


def test_two_hundred_channels_on_one_connection_are_all_usable(conn, uniq):
    setup = conn.channel()
    q = uniq.queue()
    setup.queue_declare(q)
    channels = [conn.channel() for _ in range(200)]
    numbers = {c.channel_number for c in channels}
    assert len(numbers) == 200
    for c in channels:
        c.basic_publish("", q, str(c.channel_number).encode())
    # Every channel can also do a synchronous round trip.
    for c in channels:
        assert c.queue_declare(q, passive=True).method.queue == q
    got = set()
    for c in channels:
        m, _p, body = c.basic_get(q, auto_ack=True)
        assert m is not None
        got.add(int(body))
    assert got == numbers
    for c in channels:
        c.close()
    assert setup.queue_declare(q, passive=True).method.message_count == 0


def test_channel_error_does_not_affect_other_channels(conn, uniq):
    good = conn.channel()
    bad = conn.channel()
    q = uniq.queue()
    good.queue_declare(q)
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
        bad.queue_declare("no-such-queue-" + q, passive=True)
    assert ei.value.reply_code == 404
    assert bad.is_closed
    assert conn.is_open and good.is_open
    good.basic_publish("", q, b"still-works")
    m, _p, body = good.basic_get(q, auto_ack=True)
    assert body == b"still-works"
    # and a new channel can be opened afterwards
    assert conn.channel().queue_declare(q, passive=True).method.message_count == 0


def test_channel_can_be_closed_and_a_new_one_opened(conn):
    ch1 = conn.channel()
    n = ch1.channel_number
    ch1.close()
    assert ch1.is_closed
    ch2 = conn.channel(n)  # same number is reusable after close
    assert ch2.is_open
    ch2.queue_declare("", exclusive=True)


def test_connection_with_heartbeat_2_survives_idle_period(connect):
    c = connect(heartbeat=2)
    assert c._impl.params.heartbeat == 2
    ch = c.channel()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        c.process_data_events(time_limit=0.25)
    assert c.is_open
    assert ch.queue_declare("", exclusive=True).method.queue


def test_heartbeats_can_be_disabled_by_the_client(connect):
    c = connect(heartbeat=0)
    assert c._impl.params.heartbeat == 0
    assert c.channel().queue_declare("", exclusive=True).method.queue
