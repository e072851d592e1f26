"""Priority queues (x-max-priority) and consumer priorities (x-priority)."""

import pika
import pytest

from helpers import drain, pump_until


def test_priority_queue_serves_higher_priority_first(ch, uniq):
    q = uniq.queue()
    ch.queue_declare(q, arguments={"x-max-priority": 5})
    for body, prio in [(b"low", 1), (b"none", None), (b"high", 5), (b"mid", 3), (b"high2", 5)]:
        props = pika.BasicProperties(priority=prio) if prio is not None else None
        ch.basic_publish("", q, body, props)
    assert drain(ch, q) == [b"high", b"high2", b"mid", b"low", b"none"]


def test_priority_above_the_maximum_counts_as_the_maximum(ch, uniq):
    q = uniq.queue()
    ch.queue_declare(q, arguments={"x-max-priority": 2})
    ch.basic_publish("", q, b"two", pika.BasicProperties(priority=2))
    ch.basic_publish("", q, b"nine", pika.BasicProperties(priority=9))
    assert drain(ch, q) == [b"two", b"nine"]


def test_plain_queue_ignores_message_priority(ch, uniq):
    q = uniq.queue()
    ch.queue_declare(q)
    ch.basic_publish("", q, b"first", pika.BasicProperties(priority=0))
    ch.basic_publish("", q, b"second", pika.BasicProperties(priority=9))
    assert drain(ch, q) == [b"first", b"second"]


def test_requeued_message_goes_back_to_its_level(ch, uniq):
    q = uniq.queue()
    ch.queue_declare(q, arguments={"x-max-priority": 3})
    ch.basic_publish("", q, b"low", pika.BasicProperties(priority=0))
    ch.basic_publish("", q, b"high", pika.BasicProperties(priority=3))
    m, _p, body = ch.basic_get(q)
    assert body == b"high"
    ch.basic_nack(m.delivery_tag, requeue=True)
    assert drain(ch, q) == [b"high", b"low"]


def test_invalid_max_priority_is_406(ch, uniq):
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as e:
        ch.queue_declare(uniq.queue(), arguments={"x-max-priority": -1})
    assert e.value.reply_code == 406


def test_higher_priority_consumer_gets_messages_while_it_has_room(conn, uniq):
    ch = conn.channel()
    ch.basic_qos(prefetch_count=2)
    q = uniq.queue()
    ch.queue_declare(q)
    got = {"low": [], "high": []}
    ch.basic_consume(q, lambda c, m, p, b: got["low"].append(b), arguments={"x-priority": 1})
    ch.basic_consume(q, lambda c, m, p, b: got["high"].append(b), arguments={"x-priority": 10})
    for i in range(5):
        ch.basic_publish("", q, b"%d" % i)
    pump_until(conn, lambda: len(got["low"]) + len(got["high"]) == 4, what="4 deliveries")
    # Neither acks: the high-priority consumer fills its prefetch first, then the low one.
    assert got["high"] == [b"0", b"1"]
    assert got["low"] == [b"2", b"3"]


def test_a_consumer_priority_that_is_not_an_integer_is_406(conn, uniq):
    # RabbitMQ 3.10.8: 406 with the argument's type, checked before exclusive use (the queue
    # below is in exclusive use by another consumer, which would otherwise be 403).
    q = uniq.queue()
    owner = conn.channel()
    owner.queue_declare(q)
    owner.basic_consume(q, lambda *a: None, exclusive=True)
    ch = conn.channel()
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as e:
        ch.basic_consume(q, lambda *a: None, arguments={"x-priority": "high"})
    assert e.value.reply_code == 406
    assert e.value.reply_text == (
        f"PRECONDITION_FAILED - invalid arg 'x-priority' for queue '{q}' in vhost '/': "
        '"expected integer, got longstr"'
    )
