"""Message TTL, queue expiry, length limits and dead-lettering (RabbitMQ's queue arguments).

Checked against RabbitMQ 3.10: x-death entries, x-first-death-* headers, reply texts."""

import time

import pika
import pytest

from helpers import drain, queue_exists, wait_until


def dead_letter_setup(ch, uniq, **queue_args):
    """A fanout DLX with a collecting queue, and a source queue dead-lettering into it."""
    dlx = uniq.exchange()
    ch.exchange_declare(dlx, "fanout")
    dead = uniq.queue()
    ch.queue_declare(dead)
    ch.queue_bind(dead, dlx)
    src = uniq.queue()
    args = {"x-dead-letter-exchange": dlx}
    args.update(queue_args)
    ch.queue_declare(src, arguments=args)
    return src, dead


def get_one(ch, queue, timeout=5.0):
    """Waits for one message on queue via basic.get; returns (method, props, body)."""
    got = wait_until(lambda: (lambda r: r if r[0] else None)(ch.basic_get(queue, auto_ack=True)),
                     timeout=timeout, what="a message on %s" % queue)
    return got


def test_queue_message_ttl_expires_messages(ch, uniq):
    q = uniq.queue()
    ch.queue_declare(q, arguments={"x-message-ttl": 100})
    ch.basic_publish("", q, b"short-lived")
    time.sleep(0.3)
    assert drain(ch, q) == []


def test_message_ttl_does_not_expire_early(ch, uniq):
    q = uniq.queue()
    ch.queue_declare(q, arguments={"x-message-ttl": 5000})
    ch.basic_publish("", q, b"still-here")
    assert drain(ch, q) == [b"still-here"]


def test_per_message_expiration_property_expires_it(ch, uniq):
    q = uniq.queue()
    ch.queue_declare(q)
    ch.basic_publish("", q, b"gone", pika.BasicProperties(expiration="50"))
    ch.basic_publish("", q, b"kept")
    time.sleep(0.3)
    assert drain(ch, q) == [b"kept"]


def test_invalid_expiration_is_406(ch, uniq):
    q = uniq.queue()
    ch.queue_declare(q)
    ch.basic_publish("", q, b"x", pika.BasicProperties(expiration="-5"))
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as e:
        ch.queue_declare(q, passive=True)
    assert e.value.reply_code == 406
    assert e.value.reply_text == "PRECONDITION_FAILED - invalid expiration '-5': {value_negative,-5}"


def test_expired_message_is_dead_lettered_with_x_death(ch, uniq):
    src, dead = dead_letter_setup(ch, uniq, **{"x-message-ttl": 100})
    ch.basic_publish("", src, b"late", pika.BasicProperties(headers={"app": "v"}))
    method, props, body = get_one(ch, dead)
    assert body == b"late"
    assert method.routing_key == src
    h = props.headers
    assert h["app"] == "v"
    death = h["x-death"][0]
    assert death["count"] == 1
    assert death["reason"] == "expired"
    assert death["queue"] == src
    assert death["exchange"] == ""
    assert death["routing-keys"] == [src]
    assert h["x-first-death-reason"] == "expired"
    assert h["x-first-death-queue"] == src
    assert h["x-first-death-exchange"] == ""


def test_per_message_expiration_is_moved_to_original_expiration(ch, uniq):
    src, dead = dead_letter_setup(ch, uniq)
    ch.basic_publish("", src, b"m", pika.BasicProperties(expiration="30"))
    _m, props, _b = get_one(ch, dead)
    assert props.expiration is None
    assert props.headers["x-death"][0]["original-expiration"] == "30"


def test_rejected_message_is_dead_lettered_with_routing_key_override(ch, uniq):
    dlx = uniq.exchange()
    ch.exchange_declare(dlx, "direct")
    dead = uniq.queue()
    ch.queue_declare(dead)
    ch.queue_bind(dead, dlx, "parking")
    src = uniq.queue()
    ch.queue_declare(src, arguments={"x-dead-letter-exchange": dlx,
                                     "x-dead-letter-routing-key": "parking"})
    ch.basic_publish("", src, b"bad")
    m, _p, _b = ch.basic_get(src)
    ch.basic_reject(m.delivery_tag, requeue=False)
    method, props, body = get_one(ch, dead)
    assert (body, method.routing_key) == (b"bad", "parking")
    assert props.headers["x-death"][0]["reason"] == "rejected"
    assert props.headers["x-death"][0]["routing-keys"] == [src]


def test_nack_with_requeue_dead_letters_nothing(ch, uniq):
    src, dead = dead_letter_setup(ch, uniq)
    ch.basic_publish("", src, b"again")
    m, _p, _b = ch.basic_get(src)
    ch.basic_nack(m.delivery_tag, requeue=True)
    m2, _p, body = ch.basic_get(src, auto_ack=True)
    assert body == b"again" and m2.redelivered
    assert drain(ch, dead) == []


def test_repeated_deaths_in_the_same_queue_are_counted(ch, uniq):
    # work queue dead-letters rejects to a retry queue whose TTL sends them back.
    work, retry = uniq.queue(), uniq.queue()
    ch.queue_declare(work, arguments={"x-dead-letter-exchange": "",
                                      "x-dead-letter-routing-key": retry})
    ch.queue_declare(retry, arguments={"x-message-ttl": 20, "x-dead-letter-exchange": "",
                                       "x-dead-letter-routing-key": work})
    ch.basic_publish("", work, b"job")
    for attempt in (1, 2):
        m, props, _b = get_one_unacked(ch, work)
        if attempt == 2:
            deaths = {(d["queue"], d["reason"]): d["count"] for d in props.headers["x-death"]}
            assert deaths == {(work, "rejected"): 1, (retry, "expired"): 1}
        ch.basic_reject(m.delivery_tag, requeue=False)
    m, props, _b = get_one_unacked(ch, work)
    deaths = {(d["queue"], d["reason"]): d["count"] for d in props.headers["x-death"]}
    assert deaths == {(work, "rejected"): 2, (retry, "expired"): 2}
    # newest death first
    assert props.headers["x-death"][0]["queue"] == retry
    ch.basic_ack(m.delivery_tag)


def get_one_unacked(ch, queue, timeout=5.0):
    return wait_until(lambda: (lambda r: r if r[0] else None)(ch.basic_get(queue)),
                      timeout=timeout, what="a message on %s" % queue)


def test_expiry_cycle_without_rejection_is_dropped(ch, uniq):
    # A queue whose expired messages dead-letter back into itself would loop forever.
    q = uniq.queue()
    ch.queue_declare(q, arguments={"x-message-ttl": 20, "x-dead-letter-exchange": "",
                                   "x-dead-letter-routing-key": q})
    ch.basic_publish("", q, b"loop")
    time.sleep(0.3)
    assert drain(ch, q) == []


def test_max_length_drops_oldest(ch, uniq):
    q = uniq.queue()
    ch.queue_declare(q, arguments={"x-max-length": 2})
    for i in range(5):
        ch.basic_publish("", q, str(i).encode())
    assert drain(ch, q) == [b"3", b"4"]


def test_max_length_bytes_drops_oldest(ch, uniq):
    q = uniq.queue()
    ch.queue_declare(q, arguments={"x-max-length-bytes": 10})
    for body in (b"aaaa", b"bbbb", b"cccc"):
        ch.basic_publish("", q, body)
    assert drain(ch, q) == [b"bbbb", b"cccc"]


def test_max_length_drop_head_dead_letters_with_maxlen(ch, uniq):
    src, dead = dead_letter_setup(ch, uniq, **{"x-max-length": 1})
    ch.basic_publish("", src, b"first")
    ch.basic_publish("", src, b"second")
    _m, props, body = get_one(ch, dead)
    assert body == b"first"
    assert props.headers["x-death"][0]["reason"] == "maxlen"
    assert drain(ch, src) == [b"second"]


def test_reject_publish_overflow_nacks_confirmed_publishes(ch, uniq):
    q = uniq.queue()
    ch.queue_declare(q, arguments={"x-max-length": 1, "x-overflow": "reject-publish"})
    ch.confirm_delivery()
    ch.basic_publish("", q, b"fits")
    with pytest.raises(pika.exceptions.NackError):
        ch.basic_publish("", q, b"refused")
    assert drain(ch, q) == [b"fits"]


def test_invalid_overflow_value_is_406(ch, uniq):
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as e:
        ch.queue_declare(uniq.queue(), arguments={"x-overflow": "explode"})
    assert e.value.reply_code == 406
    assert "invalid arg 'x-overflow'" in e.value.reply_text


def test_unused_queue_expires(conn, uniq):
    ch = conn.channel()
    q = uniq.queue()
    ch.queue_declare(q, arguments={"x-expires": 200})
    # Polling with a passive declare would count as use and restart the clock: look once.
    time.sleep(0.8)
    assert not queue_exists(conn, q)


def test_queue_with_consumer_does_not_expire(conn, uniq):
    ch = conn.channel()
    q = uniq.queue()
    ch.queue_declare(q, arguments={"x-expires": 200})
    ch.basic_consume(q, lambda *a: None, auto_ack=True)
    conn.process_data_events(time_limit=0.5)
    assert queue_exists(conn, q)
