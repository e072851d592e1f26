"""Consumers, prefetch, acknowledgements, redelivery, basic.get/recover."""

import datetime
import decimal

import pika
import pytest

from helpers import drain, pump_all_until, pump_until, wait_for_counts


class Collector:
    """basic_consume callback that records (body, method) and optionally acks."""

    def __init__(self, ack=False):
        self.ack = ack
        self.items = []

    def __call__(self, chan, method, props, body):
        self.items.append((body, method, props))
        if self.ack:
            chan.basic_ack(method.delivery_tag)

    @property
    def bodies(self):
        return [b for b, _m, _p in self.items]

    def __len__(self):
        return len(self.items)


def declare(ch, uniq, **kw):
    q = uniq.queue()
    ch.queue_declare(q, **kw)
    return q


def publish_n(ch, q, n, prefix="m"):
    bodies = [("%s%d" % (prefix, i)).encode() for i in range(n)]
    for b in bodies:
        ch.basic_publish("", q, b)
    return bodies


# --------------------------------------------------------------------------
# consumers


def test_consumer_receives_messages_in_publish_order(conn, uniq):
    ch = conn.channel()
    q = declare(ch, uniq)
    got = Collector(ack=True)
    tag = ch.basic_consume(q, got)
    assert tag.startswith("ctag")
    bodies = publish_n(ch, q, 20)
    pump_until(conn, lambda: len(got) == 20, what="20 deliveries")
    assert got.bodies == bodies
    tags = [m.delivery_tag for _b, m, _p in got.items]
    assert tags == list(range(1, 21))  # per-channel delivery tags start at 1
    assert all(m.consumer_tag == tag and not m.redelivered for _b, m, _p in got.items)
    assert all(m.exchange == "" and m.routing_key == q for _b, m, _p in got.items)


def test_consumer_gets_messages_published_before_it_subscribed(conn, uniq):
    ch = conn.channel()
    q = declare(ch, uniq)
    bodies = publish_n(ch, q, 3)
    got = Collector(ack=True)
    ch.basic_consume(q, got)
    pump_until(conn, lambda: len(got) == 3)
    assert got.bodies == bodies


def test_explicit_consumer_tag_is_used(conn, uniq):
    ch = conn.channel()
    q = declare(ch, uniq)
    got = Collector(ack=True)
    assert ch.basic_consume(q, got, consumer_tag="my-tag") == "my-tag"
    ch.basic_publish("", q, b"x")
    pump_until(conn, lambda: len(got) == 1)
    assert got.items[0][1].consumer_tag == "my-tag"


def test_message_properties_survive_the_round_trip(conn, uniq):
    ch = conn.channel()
    q = declare(ch, uniq)
    props = pika.BasicProperties(
        content_type="application/json", content_encoding="utf-8",
        headers={"s": "str", "i": 42, "neg": -7, "big": 2 ** 40, "b": True,
                 "dec": decimal.Decimal("1.50"), "none": None,
                 "ts": datetime.datetime(2024, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc),
                 "nested": {"k": "v", "n": 1}, "list": [1, "two", False]},
        delivery_mode=2, priority=5, correlation_id="corr-1", reply_to="reply-q",
        expiration="60000", message_id="msg-1", timestamp=1700000000,
        type="my-type", user_id="guest", app_id="my-app")
    ch.basic_publish("", q, b'{"a": 1}', properties=props)
    m, p, body = ch.basic_get(q, auto_ack=True)
    assert body == b'{"a": 1}'
    for field in ("content_type", "content_encoding", "delivery_mode", "priority",
                  "correlation_id", "reply_to", "expiration", "message_id",
                  "timestamp", "type", "user_id", "app_id"):
        assert getattr(p, field) == getattr(props, field), field
    # field tables (all value types pika can encode) come back unchanged
    assert p.headers == props.headers


def test_user_id_must_match_the_authenticated_user(conn, uniq):
    ch = conn.channel()
    q = declare(ch, uniq)
    ch.basic_publish("", q, b"x", properties=pika.BasicProperties(user_id="someone-else"))
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
        ch.queue_declare(q, passive=True)
    assert ei.value.reply_code == 406
    assert ei.value.reply_text == (
        "PRECONDITION_FAILED - user_id property set to 'someone-else' but authenticated user was 'guest'")


def test_empty_body_message(conn, uniq):
    ch = conn.channel()
    q = declare(ch, uniq)
    ch.basic_publish("", q, b"")
    m, _p, body = ch.basic_get(q, auto_ack=True)
    assert m is not None and body == b""


def test_round_robin_between_two_consumers(connect, uniq):
    c = connect()
    setup = c.channel()
    q = declare(setup, uniq)
    a, b = Collector(ack=True), Collector(ack=True)
    ch_a, ch_b = c.channel(), c.channel()
    ch_a.basic_consume(q, a)
    ch_b.basic_consume(q, b)
    bodies = publish_n(setup, q, 10)
    pump_until(c, lambda: len(a) + len(b) == 10, what="10 deliveries")
    assert len(a) == 5 and len(b) == 5
    # strictly alternating: one consumer gets the even, the other the odd messages
    assert {tuple(a.bodies), tuple(b.bodies)} == {tuple(bodies[0::2]), tuple(bodies[1::2])}


def test_round_robin_between_consumers_on_one_channel(conn, uniq):
    ch = conn.channel()
    q = declare(ch, uniq)
    a, b = Collector(ack=True), Collector(ack=True)
    ch.basic_consume(q, a)
    ch.basic_consume(q, b)
    bodies = publish_n(ch, q, 6)
    pump_until(conn, lambda: len(a) + len(b) == 6)
    assert {tuple(a.bodies), tuple(b.bodies)} == {tuple(bodies[0::2]), tuple(bodies[1::2])}


def test_basic_cancel_stops_deliveries(conn, uniq):
    ch = conn.channel()
    q = declare(ch, uniq)
    got = Collector(ack=True)
    tag = ch.basic_consume(q, got)
    ch.basic_publish("", q, b"1")
    pump_until(conn, lambda: len(got) == 1)
    ch.basic_cancel(tag)
    ch.basic_publish("", q, b"2")
    wait_for_counts(conn, q, 1, 0)
    assert got.bodies == [b"1"]


def test_consume_from_missing_queue_is_404(ch, uniq):
    q = uniq("q")
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
        ch.basic_consume(q, lambda *a: None)
    assert ei.value.reply_code == 404
    assert ei.value.reply_text == "NOT_FOUND - no queue '%s' in vhost '/'" % q


def test_reusing_a_consumer_tag_on_a_channel_is_530_connection_error(conn, uniq):
    ch = conn.channel()
    q = declare(ch, uniq)
    # pika refuses duplicate tags itself, so go around its bookkeeping
    ch.basic_consume(q, lambda *a: None, consumer_tag="dup")
    ch._impl._consumers.pop("dup")
    ch._impl.basic_consume(q, lambda *a: None, consumer_tag="dup")
    with pytest.raises(pika.exceptions.ConnectionClosedByBroker) as ei:
        pump_until(conn, lambda: False, timeout=5, what="connection close")
    assert ei.value.reply_code == 530
    assert ei.value.reply_text == "NOT_ALLOWED - attempt to reuse consumer tag 'dup'"


def test_exclusive_consumer_blocks_other_consumers_403(connect, uniq):
    c1, c2 = connect(), connect()
    ch1 = c1.channel()
    q = declare(ch1, uniq)
    ch1.basic_consume(q, lambda *a: None, exclusive=True)
    ch2 = c2.channel()
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
        ch2.basic_consume(q, lambda *a: None)
    assert ei.value.reply_code == 403
    assert ei.value.reply_text == (
        "ACCESS_REFUSED - queue '%s' in vhost '/' in exclusive use" % q)


def test_exclusive_consume_on_queue_with_consumers_is_403(connect, uniq):
    c1, c2 = connect(), connect()
    ch1 = c1.channel()
    q = declare(ch1, uniq)
    ch1.basic_consume(q, lambda *a: None)
    ch2 = c2.channel()
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
        ch2.basic_consume(q, lambda *a: None, exclusive=True)
    assert ei.value.reply_code == 403
    assert ei.value.reply_text == (
        "ACCESS_REFUSED - queue '%s' in vhost '/' in exclusive use" % q)


# --------------------------------------------------------------------------
# prefetch


def test_prefetch_one_gives_fair_dispatch(connect, uniq):
    slow_conn, fast_conn = connect(), connect()
    setup = fast_conn.channel()
    q = declare(setup, uniq)

    slow_ch = slow_conn.channel()
    slow_ch.basic_qos(prefetch_count=1)
    slow = Collector(ack=False)  # never acks
    slow_ch.basic_consume(q, slow)
    setup.basic_publish("", q, b"m0")
    pump_until(slow_conn, lambda: len(slow) == 1, what="slow consumer's first message")

    fast_ch = fast_conn.channel()
    fast_ch.basic_qos(prefetch_count=1)
    fast = Collector(ack=True)
    fast_ch.basic_consume(q, fast)
    rest = publish_n(setup, q, 4, prefix="r")
    pump_all_until([fast_conn, slow_conn], lambda: len(fast) == 4, what="fast consumer")
    assert fast.bodies == rest
    # the slow consumer holds one unacked message and got nothing more
    assert slow.bodies == [b"m0"]
    wait_for_counts(fast_conn, q, 0, 2)

    # once it acks, it becomes eligible again
    slow_ch.basic_ack(slow.items[0][1].delivery_tag)
    more = publish_n(setup, q, 4, prefix="s")
    pump_all_until([fast_conn, slow_conn], lambda: len(fast) + len(slow) == 9)
    assert sorted(fast.bodies[4:] + slow.bodies[1:]) == sorted(more)
    assert len(slow) == 2  # took exactly one more and holds it unacked


def test_prefetch_count_limits_unacked_deliveries(conn, uniq):
    ch = conn.channel()
    q = declare(ch, uniq)
    publish_n(ch, q, 10)
    wait_for_counts(conn, q, 10, 0)
    ch.basic_qos(prefetch_count=3)
    got = Collector(ack=False)
    ch.basic_consume(q, got)
    pump_until(conn, lambda: len(got) == 3)
    wait_for_counts(conn, q, 7, 1)
    assert len(got) == 3
    # multiple-ack of the three frees three slots
    ch.basic_ack(got.items[-1][1].delivery_tag, multiple=True)
    pump_until(conn, lambda: len(got) == 6)
    wait_for_counts(conn, q, 4, 1)
    assert got.bodies == [b"m%d" % i for i in range(6)]


def test_per_consumer_qos_applies_to_each_consumer(conn, uniq):
    ch = conn.channel()
    q1, q2 = declare(ch, uniq), declare(ch, uniq)
    publish_n(ch, q1, 3)
    publish_n(ch, q2, 3)
    ch.basic_qos(prefetch_count=1)  # global=False: per consumer (RabbitMQ semantics)
    a, b = Collector(), Collector()
    ch.basic_consume(q1, a)
    ch.basic_consume(q2, b)
    pump_until(conn, lambda: len(a) == 1 and len(b) == 1)
    wait_for_counts(conn, q1, 2, 1)
    wait_for_counts(conn, q2, 2, 1)
    assert len(a) == 1 and len(b) == 1


def test_global_qos_is_shared_by_all_consumers_on_the_channel(conn, uniq):
    ch = conn.channel()
    q1, q2 = declare(ch, uniq), declare(ch, uniq)
    publish_n(ch, q1, 3, prefix="a")
    publish_n(ch, q2, 3, prefix="b")
    wait_for_counts(conn, q1, 3, 0)
    wait_for_counts(conn, q2, 3, 0)
    ch.basic_qos(prefetch_count=2, global_qos=True)
    a, b = Collector(), Collector()
    ch.basic_consume(q1, a)
    ch.basic_consume(q2, b)
    pump_until(conn, lambda: len(a) + len(b) == 2, what="two deliveries")

    def ready():
        return (conn.channel().queue_declare(q1, passive=True).method.message_count
                + conn.channel().queue_declare(q2, passive=True).method.message_count)

    # exactly two messages are out; the other four are still ready
    assert ready() == 4
    assert len(a) + len(b) == 2
    # acking everything outstanding lets two more through
    last = max([m.delivery_tag for _b, m, _p in a.items + b.items])
    ch.basic_ack(last, multiple=True)
    pump_until(conn, lambda: len(a) + len(b) == 4, what="two more deliveries")
    assert ready() == 2


def test_qos_with_prefetch_size_is_not_implemented_540(conn):
    ch = conn.channel()
    with pytest.raises(pika.exceptions.ConnectionClosedByBroker) as ei:
        ch.basic_qos(prefetch_size=1000)
    assert ei.value.reply_code == 540
    assert ei.value.reply_text == "NOT_IMPLEMENTED - prefetch_size!=0 (1000)"


# --------------------------------------------------------------------------
# acknowledgements


def get(ch, q):
    m, p, body = ch.basic_get(q, auto_ack=False)
    assert m is not None, "expected a message in %s" % q
    return m, body


def test_ack_removes_message(conn, uniq):
    ch = conn.channel()
    q = declare(ch, uniq)
    ch.basic_publish("", q, b"x")
    m, _ = get(ch, q)
    ch.basic_ack(m.delivery_tag)
    ch.close()
    wait_for_counts(conn, q, 0, 0)
    assert drain(conn.channel(), q) == []


def test_ack_multiple_acks_everything_up_to_the_tag(conn, uniq):
    ch = conn.channel()
    q = declare(ch, uniq)
    publish_n(ch, q, 4)
    tags = [get(ch, q)[0].delivery_tag for _ in range(4)]
    assert tags == [1, 2, 3, 4]
    ch.basic_ack(3, multiple=True)
    ch.close()
    # only message 4 was unacked and is requeued when the channel closes
    other = conn.channel()
    m, _p, body = other.basic_get(q, auto_ack=True)
    assert body == b"m3" and m.redelivered
    assert drain(other, q) == []


def test_ack_of_unknown_delivery_tag_is_406(conn):
    ch = conn.channel()
    ch.basic_ack(1)
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
        ch.queue_declare("", exclusive=True)
    assert ei.value.reply_code == 406
    assert ei.value.reply_text == "PRECONDITION_FAILED - unknown delivery tag 1"
    assert conn.is_open


def test_double_ack_is_406(conn, uniq):
    ch = conn.channel()
    q = declare(ch, uniq)
    ch.basic_publish("", q, b"x")
    m, _ = get(ch, q)
    ch.basic_ack(m.delivery_tag)
    ch.basic_ack(m.delivery_tag)
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
        ch.queue_declare(q, passive=True)
    assert ei.value.reply_code == 406
    assert ei.value.reply_text == "PRECONDITION_FAILED - unknown delivery tag %d" % m.delivery_tag


def test_reject_and_nack_of_unknown_tag_are_406(conn):
    ch = conn.channel()
    ch.basic_reject(5)
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
        ch.queue_declare("", exclusive=True)
    assert (ei.value.reply_code, ei.value.reply_text) == (
        406, "PRECONDITION_FAILED - unknown delivery tag 5")
    ch = conn.channel()
    ch.basic_nack(7, multiple=True)
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
        ch.queue_declare("", exclusive=True)
    assert (ei.value.reply_code, ei.value.reply_text) == (
        406, "PRECONDITION_FAILED - unknown delivery tag 7")


def test_ack_of_auto_acked_delivery_is_406(conn, uniq):
    ch = conn.channel()
    q = declare(ch, uniq)
    ch.basic_publish("", q, b"x")
    m, _p, _b = ch.basic_get(q, auto_ack=True)
    ch.basic_ack(m.delivery_tag)
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
        ch.queue_declare(q, passive=True)
    assert (ei.value.reply_code, ei.value.reply_text) == (
        406, "PRECONDITION_FAILED - unknown delivery tag %d" % m.delivery_tag)


def test_ack_zero_with_multiple_acks_all_outstanding(conn, uniq):
    ch = conn.channel()
    q = declare(ch, uniq)
    publish_n(ch, q, 3)
    for _ in range(3):
        get(ch, q)
    ch.basic_ack(0, multiple=True)  # "all outstanding"
    ch.close()
    wait_for_counts(conn, q, 0, 0)


def test_ack_zero_multiple_with_nothing_outstanding_is_accepted(conn):
    ch = conn.channel()
    ch.basic_ack(0, multiple=True)
    assert ch.queue_declare("", exclusive=True).method.queue


def test_ack_on_another_channel_is_406(conn, uniq):
    ch = conn.channel()
    q = declare(ch, uniq)
    ch.basic_publish("", q, b"x")
    m, _ = get(ch, q)
    other = conn.channel()
    other.basic_ack(m.delivery_tag)
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
        other.queue_declare(q, passive=True)
    assert ei.value.reply_code == 406


def test_reject_with_requeue_redelivers_with_redelivered_flag(conn, uniq):
    ch = conn.channel()
    q = declare(ch, uniq)
    ch.basic_publish("", q, b"x")
    m, _ = get(ch, q)
    assert not m.redelivered
    ch.basic_reject(m.delivery_tag, requeue=True)
    m2, body = get(ch, q)
    assert body == b"x" and m2.redelivered
    assert m2.delivery_tag == m.delivery_tag + 1
    ch.basic_ack(m2.delivery_tag)


def test_reject_without_requeue_discards(conn, uniq):
    ch = conn.channel()
    q = declare(ch, uniq)
    ch.basic_publish("", q, b"x")
    m, _ = get(ch, q)
    ch.basic_reject(m.delivery_tag, requeue=False)
    ch.close()
    wait_for_counts(conn, q, 0, 0)
    assert drain(conn.channel(), q) == []


def test_nack_multiple_with_requeue_puts_messages_back_in_order(conn, uniq):
    ch = conn.channel()
    q = declare(ch, uniq)
    bodies = publish_n(ch, q, 4)
    tags = [get(ch, q)[0].delivery_tag for _ in range(3)]
    ch.basic_nack(tags[-1], multiple=True, requeue=True)
    again = []
    for _ in range(4):
        m, body = get(ch, q)
        again.append((body, m.redelivered))
    assert again == [(bodies[0], True), (bodies[1], True), (bodies[2], True), (bodies[3], False)]


def test_nack_single_without_requeue_discards_only_that_message(conn, uniq):
    ch = conn.channel()
    q = declare(ch, uniq)
    publish_n(ch, q, 3)
    ms = [get(ch, q)[0] for _ in range(3)]
    ch.basic_nack(ms[1].delivery_tag, multiple=False, requeue=False)
    ch.close()
    other = conn.channel()
    assert drain(other, q) == [b"m0", b"m2"]


def test_nack_multiple_without_requeue_discards_all(conn, uniq):
    ch = conn.channel()
    q = declare(ch, uniq)
    publish_n(ch, q, 3)
    tags = [get(ch, q)[0].delivery_tag for _ in range(3)]
    ch.basic_nack(tags[-1], multiple=True, requeue=False)
    ch.close()
    wait_for_counts(conn, q, 0, 0)


def test_consumer_sees_requeued_message_again(conn, uniq):
    ch = conn.channel()
    q = declare(ch, uniq)
    seen = []

    def on_msg(c, m, p, body):
        seen.append((body, m.redelivered))
        if not m.redelivered:
            c.basic_reject(m.delivery_tag, requeue=True)
        else:
            c.basic_ack(m.delivery_tag)

    ch.basic_consume(q, on_msg)
    ch.basic_publish("", q, b"bounce")
    pump_until(conn, lambda: len(seen) == 2)
    assert seen == [(b"bounce", False), (b"bounce", True)]


# --------------------------------------------------------------------------
# redelivery on close


@pytest.mark.parametrize("close_what", ["channel", "connection"])
def test_unacked_messages_are_redelivered_in_order_when_consumer_goes_away(connect, uniq, close_what):
    c1, c2 = connect(), connect()
    ch1 = c1.channel()
    q = declare(ch1, uniq)
    bodies = publish_n(ch1, q, 5)
    first = Collector(ack=False)
    ch1.basic_consume(q, first)
    pump_until(c1, lambda: len(first) == 5)
    ch1.basic_ack(first.items[1][1].delivery_tag)  # ack only m1
    if close_what == "channel":
        ch1.close()
    else:
        c1.close()

    second = Collector(ack=True)
    c2.channel().basic_consume(q, second)
    pump_until(c2, lambda: len(second) == 4)
    assert second.bodies == [bodies[0], bodies[2], bodies[3], bodies[4]]
    assert all(m.redelivered for _b, m, _p in second.items)


def test_unacked_messages_go_back_ahead_of_newer_ones(conn, uniq):
    ch1 = conn.channel()
    q = declare(ch1, uniq)
    publish_n(ch1, q, 2, prefix="old")
    m, _ = get(ch1, q)
    assert m is not None
    ch1.close()
    ch2 = conn.channel()
    ch2.basic_publish("", q, b"new")
    out = []
    for _ in range(3):
        m, _p, body = ch2.basic_get(q, auto_ack=True)
        out.append((body, m.redelivered))
    assert out == [(b"old0", True), (b"old1", False), (b"new", False)]


def test_basic_recover_requeue_redelivers_unacked(conn, uniq):
    ch = conn.channel()
    q = declare(ch, uniq)
    bodies = publish_n(ch, q, 3)
    got = Collector(ack=False)
    ch.basic_consume(q, got)
    pump_until(conn, lambda: len(got) == 3)
    ch.basic_recover(requeue=True)
    pump_until(conn, lambda: len(got) == 6, what="redeliveries after basic.recover")
    assert got.bodies[3:] == bodies
    assert [m.redelivered for _b, m, _p in got.items] == [False] * 3 + [True] * 3
    # new delivery tags are issued for the redeliveries
    assert [m.delivery_tag for _b, m, _p in got.items] == [1, 2, 3, 4, 5, 6]
    ch.basic_ack(6, multiple=True)


def test_basic_recover_without_requeue_is_not_implemented_540(conn):
    # RabbitMQ does not support basic.recover{requeue=false}: connection error.
    ch = conn.channel()
    with pytest.raises(pika.exceptions.ConnectionClosedByBroker) as ei:
        ch.basic_recover(requeue=False)
    assert ei.value.reply_code == 540
    assert ei.value.reply_text == "NOT_IMPLEMENTED - requeue=false"


# --------------------------------------------------------------------------
# auto-ack


def test_auto_ack_consumer_messages_are_not_redelivered(connect, uniq):
    c1 = connect()
    ch = c1.channel()
    q = declare(ch, uniq)
    bodies = publish_n(ch, q, 5)
    got = Collector()
    ch.basic_consume(q, got, auto_ack=True)
    pump_until(c1, lambda: len(got) == 5)
    assert got.bodies == bodies
    c1.close()
    c2 = connect()
    wait_for_counts(c2, q, 0, 0)


def test_auto_ack_ignores_prefetch(conn, uniq):
    ch = conn.channel()
    q = declare(ch, uniq)
    ch.basic_qos(prefetch_count=1)
    publish_n(ch, q, 5)
    got = Collector()
    ch.basic_consume(q, got, auto_ack=True)
    pump_until(conn, lambda: len(got) == 5)


# --------------------------------------------------------------------------
# basic.get


def test_basic_get_returns_message_and_remaining_count(conn, uniq):
    ch = conn.channel()
    q = declare(ch, uniq)
    publish_n(ch, q, 3)
    m, props, body = ch.basic_get(q, auto_ack=False)
    assert body == b"m0"
    assert m.message_count == 2
    assert m.delivery_tag == 1 and not m.redelivered
    assert m.exchange == "" and m.routing_key == q
    m2, _p, body2 = ch.basic_get(q, auto_ack=True)
    assert (body2, m2.message_count, m2.delivery_tag) == (b"m1", 1, 2)
    ch.basic_ack(1)


def test_basic_get_on_empty_queue_returns_get_empty(ch, uniq):
    q = uniq.queue()
    ch.queue_declare(q)
    assert ch.basic_get(q, auto_ack=True) == (None, None, None)
    assert ch.is_open


def test_basic_get_from_missing_queue_is_404(ch, uniq):
    q = uniq("q")
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
        ch.basic_get(q)
    assert (ei.value.reply_code, ei.value.reply_text) == (
        404, "NOT_FOUND - no queue '%s' in vhost '/'" % q)


def test_basic_get_and_consumer_share_delivery_tag_sequence(conn, uniq):
    ch = conn.channel()
    q = declare(ch, uniq)
    publish_n(ch, q, 2)
    m, _p, _b = ch.basic_get(q, auto_ack=False)
    got = Collector(ack=True)
    ch.basic_consume(q, got)
    pump_until(conn, lambda: len(got) == 1)
    assert (m.delivery_tag, got.items[0][1].delivery_tag) == (1, 2)
    ch.basic_ack(1)
