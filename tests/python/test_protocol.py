"""Wire-level behaviour checked with a hand-written frame codec (amqp_raw)."""

import struct
import time

import pytest

import amqp_raw as raw
from amqp_raw import RawConnection


@pytest.fixture
def rc(broker):
    conns = []

    def make(timeout=5.0):
        c = RawConnection(broker.host, broker.port, timeout=timeout)
        conns.append(c)
        return c

    yield make
    for c in conns:
        c.close()


def opened(rc, broker, **kw):
    c = rc()
    c.handshake(broker.user, broker.password, broker.vhost, **kw)
    return c


def assert_closed_after(c, timeout=5.0):
    """After our close-ok the broker must close the TCP connection.

    RabbitMQ 3.10: for a channel/method-level connection error it closes the
    socket as soon as it gets close-ok; for a frame-level error (501) it
    closes it ~3 s after sending connection.close, with or without close-ok,
    so only one such test waits for that."""
    rest = c.read_until_eof(timeout)
    assert rest == b"", "unexpected bytes after connection.close: %r" % rest


# --------------------------------------------------------------------------
# protocol header


@pytest.mark.parametrize("header", [
    b"GET / HT",                 # not AMQP at all
    b"AMQP\x00\x00\x0a\x00",     # AMQP 0-10
    b"AMQP\x01\x01\x00\x0a",     # AMQP 1.0 (plugin not enabled)
    b"AMQP\x00\x00\x09\x02",     # unknown revision
    b"AMQP\x03\x01\x00\x00",     # SASL/other protocol id
], ids=["http", "amqp0-10", "amqp1-0", "amqp0-9-2", "protocol-id-3"])
def test_wrong_protocol_header_gets_supported_header_back_and_socket_closed(rc, header):
    c = rc()
    c.send(header)
    assert c.read_until_eof(5) == raw.PROTOCOL_HEADER


def test_correct_protocol_header_gets_connection_start(rc):
    c = rc()
    c.send_header()
    start = c.read_start()
    assert start["version_major"] == 0 and start["version_minor"] == 9


def test_protocol_header_in_two_pieces_is_accepted(rc):
    c = rc()
    c.send(raw.PROTOCOL_HEADER[:3])
    time.sleep(0.05)
    c.send(raw.PROTOCOL_HEADER[3:])
    assert c.read_start()["version_minor"] == 9


def test_full_handshake_then_client_close(rc, broker):
    c = opened(rc, broker)
    c.open_channel(1)
    c.send_method(0, raw.CONNECTION_CLOSE, struct.pack(">H", 200) + raw.shortstr("bye")
                  + struct.pack(">HH", 0, 0))
    c.expect_method(raw.CONNECTION_CLOSE_OK)
    # (RabbitMQ leaves closing the socket to the client after close-ok.)


def test_channel_open_and_close(rc, broker):
    c = opened(rc, broker)
    c.open_channel(7)
    c.send_method(7, raw.CHANNEL_CLOSE, struct.pack(">H", 200) + raw.shortstr("ok")
                  + struct.pack(">HH", 0, 0))
    f = c.expect_method(raw.CHANNEL_CLOSE_OK)
    assert f.channel == 7
    c.open_channel(7)  # reusable


# --------------------------------------------------------------------------
# garbage


def test_garbage_before_connection_open_closes_socket_silently(rc, broker):
    # RabbitMQ closes the socket without a connection.close when the frame
    # error happens before the connection is open (after a ~3 s delay).
    c = rc(timeout=10)
    c.send_header()
    c.read_start()
    c.send(b"\xde\xad\xbe\xef" * 8)
    assert c.read_until_eof(10) == b""


def test_garbage_after_open_gets_501_frame_error(rc, broker):
    c = opened(rc, broker)
    c.send(b"\xde\xad\xbe\xef" * 8)
    code, text, class_id, method_id = c.expect_connection_close()
    assert code == 501
    # RabbitMQ 3.10 checks the size before the type: the text here is
    # "FRAME_ERROR - type 222, all octets = <<>>: {frame_too_large,4024348094,131064}"
    assert text.startswith("FRAME_ERROR - ")
    assert (class_id, method_id) == (0, 0)
    assert_closed_after(c, timeout=10)


def test_unknown_frame_type_gets_501(rc, broker):
    c = opened(rc, broker)
    c.open_channel(1)
    c.send(raw.frame(9, 1, b"abc"))
    code, text, _cid, _mid = c.expect_connection_close()
    assert code == 501
    assert text == 'FRAME_ERROR - type 9, all octets = <<"abc">>: unknown_frame'



def test_bad_frame_end_octet_gets_501(rc, broker):
    c = opened(rc, broker)
    c.open_channel(1)
    good = raw.method_frame(1, raw.BASIC_QOS, struct.pack(">IHB", 0, 1, 0))
    c.send(good[:-1] + b"\x00")
    code, text, _cid, _mid = c.expect_connection_close()
    assert code == 501
    assert text == ("FRAME_ERROR - type 1, all octets = <<0,60,0,10,0,0,0,0,0,1,0>>: "
                    "{invalid_frame_end_marker,0}")



def test_truncated_method_arguments_get_501(rc, broker):
    c = opened(rc, broker)
    c.open_channel(1)
    c.send_method(1, raw.QUEUE_DECLARE, b"\x00\x00\x05ab")  # shortstr says 5, has 2
    code, text, class_id, method_id = c.expect_connection_close()
    assert (code, class_id, method_id) == (501, 50, 10)
    assert text == "FRAME_ERROR - cannot decode <<0,0,5,97,98>>"


def test_content_header_without_method_gets_505(rc, broker):
    c = opened(rc, broker)
    c.open_channel(1)
    c.send(raw.content_header_frame(1, 3))
    code, text, _cid, _mid = c.expect_connection_close()
    assert (code, text) == (505, "UNEXPECTED_FRAME - expected method frame, got non method frame instead")


def test_heartbeat_on_non_zero_channel_gets_505(rc, broker):
    c = opened(rc, broker)
    c.open_channel(1)
    c.send(raw.frame(raw.FRAME_HEARTBEAT, 1, b""))
    code, text, _cid, _mid = c.expect_connection_close()
    assert (code, text) == (505, "UNEXPECTED_FRAME - type 8, all octets = <<>>")


def test_channel_frame_before_connection_open_gets_505(rc, broker):
    c = rc()
    c.send_header()
    c.read_start()
    c.send_start_ok(broker.user, broker.password)
    cm, fm, _hb = c.read_tune()
    c.send_tune_ok(cm, fm, 0)
    c.send_method(1, raw.CHANNEL_OPEN, raw.shortstr(""))
    code, text, _cid, _mid = c.expect_connection_close()
    assert (code, text) == (505, "UNEXPECTED_FRAME - type 1, all octets = <<0,20,0,10,0>>")


# --------------------------------------------------------------------------
# channels


def test_frame_on_unopened_channel_gets_504_channel_error(rc, broker):
    c = opened(rc, broker)
    c.send_method(5, raw.QUEUE_DECLARE, raw.queue_declare_args("", exclusive=True))
    code, text, class_id, method_id = c.expect_connection_close()
    assert (code, text, class_id, method_id) == (
        504, "CHANNEL_ERROR - expected 'channel.open'", 50, 10)
    assert_closed_after(c)


def test_second_channel_open_on_same_channel_gets_504(rc, broker):
    c = opened(rc, broker)
    c.open_channel(1)
    c.send_method(1, raw.CHANNEL_OPEN, raw.shortstr(""))
    code, text, class_id, method_id = c.expect_connection_close()
    assert (code, text, class_id, method_id) == (
        504, "CHANNEL_ERROR - second 'channel.open' seen", 20, 10)


def test_non_connection_method_on_channel_zero_gets_504(rc, broker):
    c = opened(rc, broker)
    c.send_method(0, raw.QUEUE_DECLARE, raw.queue_declare_args("", exclusive=True))
    code, text, class_id, method_id = c.expect_connection_close()
    assert (code, text, class_id, method_id) == (
        504, "CHANNEL_ERROR - unexpected method in connection state running", 50, 10)


def test_other_channels_are_closed_by_a_connection_error(rc, broker):
    c = opened(rc, broker)
    c.open_channel(1)
    c.open_channel(2)
    c.send_method(9, raw.QUEUE_DECLARE, raw.queue_declare_args(""))
    code, _text, _cid, _mid = c.expect_connection_close()
    assert code == 504
    assert_closed_after(c)


# --------------------------------------------------------------------------
# frame_max


@pytest.mark.parametrize("frame_max", [4096, None], ids=["negotiated-4096", "default-131072"])
def test_method_frame_larger_than_frame_max_gets_501(rc, broker, frame_max):
    c = opened(rc, broker, frame_max=frame_max)
    c.open_channel(1)
    limit = frame_max or 131072
    args = raw.queue_declare_args("q", arguments={"x-pad": "a" * (limit + 100)})
    c.send_method(1, raw.QUEUE_DECLARE, args)
    code, text, class_id, method_id = c.expect_connection_close()
    assert code == 501
    # e.g. "FRAME_ERROR - type 1, all octets = <<>>: {frame_too_large,4220,4088}"
    # (the limit quoted is frame_max - 8, the largest allowed payload)
    assert text == "FRAME_ERROR - type 1, all octets = <<>>: {frame_too_large,%d,%d}" % (
        len(args) + 4, limit - 8)
    assert (class_id, method_id) == (0, 0)



def test_body_frame_larger_than_frame_max_gets_501(rc, broker):
    c = opened(rc, broker, frame_max=4096)
    c.open_channel(1)
    c.send_method(1, raw.BASIC_PUBLISH, raw.basic_publish_args("", "nowhere"))
    c.send(raw.content_header_frame(1, 5000))
    c.send(raw.body_frame(1, b"a" * 5000))
    code, text, _cid, _mid = c.expect_connection_close()
    assert (code, text) == (501, "FRAME_ERROR - type 3, all octets = <<>>: {frame_too_large,5000,4088}")


def test_frame_of_exactly_frame_max_is_accepted(rc, broker):
    c = opened(rc, broker, frame_max=4096)
    c.open_channel(1)
    c.send_method(1, raw.QUEUE_DECLARE, raw.queue_declare_args("", exclusive=True))
    q = c.expect_method(raw.QUEUE_DECLARE_OK).args.shortstr()
    # 7 header octets + 4088 payload + 1 end octet = 4096
    c.send_method(1, raw.BASIC_PUBLISH, raw.basic_publish_args("", q))
    c.send(raw.content_header_frame(1, 4088))
    c.send(raw.body_frame(1, b"b" * 4088))
    c.send_method(1, raw.QUEUE_DECLARE, raw.queue_declare_args(q, passive=True))
    f = c.expect_method(raw.QUEUE_DECLARE_OK)
    assert f.args.shortstr() == q


def test_tune_ok_frame_max_below_minimum_is_refused(rc, broker):
    c = rc()
    c.send_header()
    c.read_start()
    c.send_start_ok(broker.user, broker.password)
    cm, _fm, _hb = c.read_tune()
    c.send_tune_ok(cm, 1000, 0)  # spec minimum is 4096
    c.send_open(broker.vhost)
    # RabbitMQ drops the connection before it is open (no connection.close).
    with pytest.raises(raw.ConnectionClosed):
        c.read_method()


def test_tune_ok_frame_max_above_server_maximum_is_refused(rc, broker):
    c = rc()
    c.send_header()
    c.read_start()
    c.send_start_ok(broker.user, broker.password)
    cm, fm, _hb = c.read_tune()
    c.send_tune_ok(cm, fm + 1, 0)
    c.send_open(broker.vhost)
    with pytest.raises(raw.ConnectionClosed):
        c.read_method()


# --------------------------------------------------------------------------
# publish flags


def test_publish_with_immediate_flag_is_540_not_implemented(rc, broker):
    c = opened(rc, broker)
    c.open_channel(1)
    c.send_method(1, raw.BASIC_PUBLISH, raw.basic_publish_args("", "nowhere", immediate=True))
    c.send(raw.content_header_frame(1, 1))
    c.send(raw.body_frame(1, b"a"))
    code, text, class_id, method_id = c.expect_connection_close()
    assert (code, text, class_id, method_id) == (540, "NOT_IMPLEMENTED - immediate=true", 60, 40)


# --------------------------------------------------------------------------
# authentication


def test_unknown_sasl_mechanism_drops_connection(rc, broker):
    c = rc()
    c.send_header()
    c.read_start()
    c.send_start_ok(broker.user, broker.password, mechanism="NO-SUCH-MECH")
    with pytest.raises(raw.ConnectionClosed):
        while True:
            f = c.read_method()
            assert f.method != raw.CONNECTION_TUNE, "broker accepted an unknown mechanism"


def test_amqplain_mechanism_is_accepted(rc, broker):
    c = rc()
    c.send_header()
    c.read_start()
    # AMQPLAIN response: a field table without its length prefix
    resp = raw.table({"LOGIN": broker.user, "PASSWORD": broker.password})[4:]
    c.send_method(0, raw.CONNECTION_START_OK,
                  raw.table({"product": "raw"}) + raw.shortstr("AMQPLAIN")
                  + raw.longstr(resp) + raw.shortstr("en_US"))
    assert c.read_tune()[0] > 0


# --------------------------------------------------------------------------
# heartbeats


def test_broker_sends_heartbeats_and_closes_silent_client(rc, broker):
    c = rc(timeout=10)
    c.handshake(broker.user, broker.password, broker.vhost, heartbeat=1)
    started = time.monotonic()
    heartbeats = 0
    with pytest.raises(raw.ConnectionClosed):
        while time.monotonic() - started < 10:
            f = c.read_frame()
            assert f.type == raw.FRAME_HEARTBEAT and f.channel == 0, f
            heartbeats += 1
    elapsed = time.monotonic() - started
    assert heartbeats >= 1
    # RabbitMQ 3.10 sends a heartbeat every interval/2 and drops the socket
    # (no connection.close) after about 2-3 intervals of silence.
    assert 1.5 <= elapsed < 8, elapsed


def test_client_heartbeats_keep_the_connection_open(rc, broker):
    c = rc(timeout=10)
    c.handshake(broker.user, broker.password, broker.vhost, heartbeat=1)
    started = time.monotonic()
    c.sock.settimeout(0.25)
    while time.monotonic() - started < 4:
        c.send(raw.heartbeat_frame())
        try:
            f = c.read_frame()
            assert f.type == raw.FRAME_HEARTBEAT
        except TimeoutError:
            pass
    c.sock.settimeout(5)
    c.open_channel(1)


# --------------------------------------------------------------------------
# malformed input, each as RabbitMQ 3.10.8 answers it (checked side by side)


HEADER_DUE = "UNEXPECTED_FRAME - expected content header for class 60, got non content header frame instead"
BODY_DUE = "UNEXPECTED_FRAME - expected content body, got non content body frame instead"


def start_publish(c, channel=1):
    c.send_method(channel, raw.BASIC_PUBLISH, raw.basic_publish_args("", "nowhere"))


def header_with(channel, class_id=60, weight=0, body_size=1, props=b"\x00\x00"):
    return raw.frame(raw.FRAME_HEADER, channel,
                     struct.pack(">HHQ", class_id, weight, body_size) + props)


def test_malformed_heartbeat_with_payload_gets_501_unknown_frame(rc, broker):
    c = opened(rc, broker)
    c.send(raw.frame(raw.FRAME_HEARTBEAT, 0, b"xyz"))
    assert c.expect_connection_close() == (
        501, 'FRAME_ERROR - type 8, all octets = <<"xyz">>: unknown_frame', 0, 0)


def test_malformed_payload_of_exactly_frame_max_is_accepted(rc, broker):
    c = opened(rc, broker, frame_max=4096)
    c.open_channel(1)
    c.send_method(1, raw.QUEUE_DECLARE, raw.queue_declare_args("", exclusive=True))
    q = c.expect_method(raw.QUEUE_DECLARE_OK).args.shortstr()
    c.send_method(1, raw.BASIC_PUBLISH, raw.basic_publish_args("", q))
    c.send(raw.content_header_frame(1, 4096))
    c.send(raw.body_frame(1, b"b" * 4096))
    # RabbitMQ's count can lag the publish for a moment.
    for _ in range(20):
        c.send_method(1, raw.QUEUE_DECLARE, raw.queue_declare_args(q, passive=True))
        args = c.expect_method(raw.QUEUE_DECLARE_OK).args
        assert args.shortstr() == q
        if args.long() == 1:
            break
        time.sleep(0.1)
    else:
        raise AssertionError("the message of exactly frame_max never reached the queue")


@pytest.mark.parametrize("channel_max,frame_max", [(2047, 0), (0, 131072)],
                         ids=["frame_max-0", "channel_max-0"])
def test_malformed_tune_ok_with_zero_limits_drops_the_socket(rc, broker, channel_max, frame_max):
    c = rc()
    c.send_header()
    c.read_start()
    c.send_start_ok(broker.user, broker.password)
    c.read_tune()
    c.send_tune_ok(channel_max, frame_max, 0)
    c.send_open(broker.vhost)
    with pytest.raises(raw.ConnectionClosed):
        c.read_method()


def test_malformed_one_channel_past_channel_max_gets_530_any_number_is_fine(rc, broker):
    c = opened(rc, broker, channel_max=2)
    c.open_channel(1)
    c.open_channel(100)
    c.send_method(3, raw.CHANNEL_OPEN, raw.shortstr(""))
    assert c.expect_connection_close() == (
        530, "NOT_ALLOWED - number of channels opened (2) has reached the negotiated "
        "channel_max (2)", 0, 0)


def test_malformed_close_ok_on_a_channel_never_opened_gets_504(rc, broker):
    c = opened(rc, broker)
    c.send_method(5, raw.CHANNEL_CLOSE_OK)
    assert c.expect_connection_close() == (
        504, "CHANNEL_ERROR - expected 'channel.open'", 20, 41)


@pytest.mark.parametrize("again", ["open", "start-ok"])
def test_malformed_handshake_again_once_running_gets_504(rc, broker, again):
    c = opened(rc, broker)
    if again == "open":
        c.send_open(broker.vhost)
        ids = raw.CONNECTION_OPEN
    else:
        c.send_start_ok(broker.user, broker.password)
        ids = raw.CONNECTION_START_OK
    assert c.expect_connection_close() == (
        504, "CHANNEL_ERROR - unexpected method in connection state running") + ids


@pytest.mark.parametrize("frames,text", [
    (lambda: [raw.body_frame(1, b"x")], HEADER_DUE),
    (lambda: [header_with(1, body_size=3), header_with(1, body_size=3)], BODY_DUE),
    (lambda: [header_with(1, class_id=50)],
     "UNEXPECTED_FRAME - expected content header for class 60, got one for class 50 instead"),
    (lambda: [header_with(1, weight=1)], HEADER_DUE),
], ids=["body-first", "second-header", "other-class", "weight"])
def test_malformed_content_out_of_order_gets_505_naming_the_publish(rc, broker, frames, text):
    c = opened(rc, broker)
    c.open_channel(1)
    start_publish(c)
    for f in frames():
        c.send(f)
    assert c.expect_connection_close() == (505, text, 60, 40)


def test_malformed_enormous_body_size_allocates_nothing_other_channels_go_on(rc, broker):
    c = opened(rc, broker)
    c.open_channel(1)
    c.open_channel(2)
    start_publish(c)
    c.send(header_with(1, body_size=2 ** 63 - 1))
    c.send_method(2, raw.QUEUE_DECLARE, raw.queue_declare_args("", exclusive=True))
    c.expect_method(raw.QUEUE_DECLARE_OK)
    c.send_method(1, raw.QUEUE_DECLARE, raw.queue_declare_args("", exclusive=True))
    assert c.expect_connection_close() == (505, BODY_DUE, 60, 40)


@pytest.mark.parametrize("props", [
    b"\x80\x00",                                   # content-type flagged, absent
    b"\x80\x00\x10ab",                             # shortstr past the end
    b"\x20\x00" + struct.pack(">I", 3) + b"\x01kZ",  # headers: unknown field type
    b"\x00\x00zz",                                 # octets after the last property
], ids=["flag-without-value", "short-past-end", "unknown-type", "trailing"])
def test_malformed_content_properties_close_with_541_never_delivered(rc, broker, props):
    c = opened(rc, broker)
    c.open_channel(1)
    c.send_method(1, raw.QUEUE_DECLARE, raw.queue_declare_args("", exclusive=True))
    q = c.expect_method(raw.QUEUE_DECLARE_OK).args.shortstr()
    c.send_method(1, raw.BASIC_PUBLISH, raw.basic_publish_args("", q))
    c.send(header_with(1, props=props))
    c.send(raw.body_frame(1, b"x"))
    assert c.expect_connection_close() == (541, "INTERNAL_ERROR", 0, 0)


def _nested_table(levels):
    t = struct.pack(">I", 0)
    for _ in range(levels):
        t = struct.pack(">I", 3 + len(t)) + b"\x01kF" + t
    return t


@pytest.mark.parametrize("args", [
    _nested_table(100),
    struct.pack(">I", 8) + b"\x02\xff\xfeI" + struct.pack(">i", 1),
], ids=["nested-100", "key-not-utf8"])
def test_malformed_but_accepted_field_tables(rc, broker, args):
    c = opened(rc, broker)
    c.open_channel(1)
    c.send_method(1, raw.QUEUE_DECLARE,
                  struct.pack(">H", 0) + raw.shortstr("") + struct.pack(">B", 4) + args)
    c.expect_method(raw.QUEUE_DECLARE_OK)


def test_malformed_utf8_in_a_queue_name_gets_501(rc, broker):
    c = opened(rc, broker)
    c.open_channel(1)
    c.send_method(1, raw.QUEUE_DECLARE,
                  struct.pack(">H", 0) + b"\x02\xff\xfe" + struct.pack(">BI", 4, 0))
    assert c.expect_connection_close() == (
        501, "FRAME_ERROR - Malformed UTF-8 in shortstr", 0, 0)


def test_malformed_publish_to_an_exchange_named_in_bad_utf8_gets_404(rc, broker):
    """basic.publish is the one method whose strings RabbitMQ does not check: such an exchange
    is just not found (RabbitMQ quotes the raw bytes; Warren replaces the bad sequences)."""
    c = opened(rc, broker)
    c.open_channel(1)
    c.send_method(1, raw.BASIC_PUBLISH, struct.pack(">H", 0) + b"\x02\xff\xfe" + raw.shortstr("k") + b"\x00")
    c.send(raw.content_header_frame(1, 1))
    c.send(raw.body_frame(1, b"x"))
    f = c.read_method()
    assert f.method == raw.CHANNEL_CLOSE
    assert raw.decode_close(f) == (
        404, "NOT_FOUND - no exchange '\ufffd\ufffd' in vhost '%s'" % broker.vhost, 60, 40)


def test_malformed_publish_with_a_routing_key_in_bad_utf8_routes_nowhere(rc, broker):
    c = opened(rc, broker)
    c.open_channel(1)
    c.send_method(1, raw.BASIC_PUBLISH, struct.pack(">H", 0) + raw.shortstr("") + b"\x02\xff\xfe\x00")
    c.send(raw.content_header_frame(1, 1))
    c.send(raw.body_frame(1, b"x"))
    c.send_method(1, raw.QUEUE_DECLARE, raw.queue_declare_args("", exclusive=True))
    c.expect_method(raw.QUEUE_DECLARE_OK)
