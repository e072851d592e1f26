"""Exchange types, routing, predeclared exchanges, exchange-to-exchange
bindings and exchange-level errors."""

import pika
import pytest

from helpers import drain


def bound_queue(ch, uniq, exchange, routing_key="", arguments=None):
    q = uniq.queue()
    ch.queue_declare(q)
    ch.queue_bind(q, exchange, routing_key, arguments=arguments)
    return q


def settle(ch, queue):
    """A synchronous round trip on the publishing channel.  Publishes on a
    channel are routed in order, so after a queue.declare-ok the earlier
    publishes have reached their queues (RabbitMQ and AMQP ordering)."""
    ch.queue_declare(queue, passive=True)


# --------------------------------------------------------------------------
# default exchange


def test_default_exchange_routes_by_queue_name(ch, uniq):
    q1, q2 = uniq.queue(), uniq.queue()
    ch.queue_declare(q1)
    ch.queue_declare(q2)
    ch.basic_publish("", q1, b"to-q1")
    ch.basic_publish("", q2, b"to-q2")
    ch.basic_publish("", "no-such-queue-" + q1, b"dropped")
    assert drain(ch, q1) == [b"to-q1"]
    assert drain(ch, q2) == [b"to-q2"]


def test_passive_declare_of_the_default_exchange_is_refused_403(ch):
    # Surprising but true for RabbitMQ 3.10: even a passive declare of ""
    # is refused.
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
        ch.exchange_declare("", passive=True)
    assert ei.value.reply_code == 403
    assert ei.value.reply_text == "ACCESS_REFUSED - operation not permitted on the default exchange"


def test_declaring_the_default_exchange_is_refused_403(ch):
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
        ch.exchange_declare("", "direct")
    assert ei.value.reply_code == 403
    assert ei.value.reply_text == "ACCESS_REFUSED - operation not permitted on the default exchange"


def test_binding_to_the_default_exchange_is_refused_403(ch, uniq):
    q = uniq.queue()
    ch.queue_declare(q)
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
        ch.queue_bind(q, "", "some-key")
    assert ei.value.reply_code == 403
    assert ei.value.reply_text == "ACCESS_REFUSED - operation not permitted on the default exchange"


def test_deleting_the_default_exchange_is_refused_403(ch):
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
        ch.exchange_delete("")
    assert ei.value.reply_code == 403
    assert ei.value.reply_text == "ACCESS_REFUSED - operation not permitted on the default exchange"


# --------------------------------------------------------------------------
# direct


def test_direct_exchange_routes_on_exact_key(ch, uniq):
    x = uniq.exchange()
    ch.exchange_declare(x, "direct")
    qa = bound_queue(ch, uniq, x, "a")
    qb = bound_queue(ch, uniq, x, "b")
    qab = bound_queue(ch, uniq, x, "a")
    ch.queue_bind(qab, x, "b")  # one queue, two bindings
    for key in ("a", "b", "c", "a.b", "A"):
        ch.basic_publish(x, key, key.encode())
    settle(ch, qa)
    assert drain(ch, qa) == [b"a"]
    assert drain(ch, qb) == [b"b"]
    # a message matching several bindings of one queue is delivered once
    assert drain(ch, qab) == [b"a", b"b"]


def test_direct_exchange_empty_routing_key(ch, uniq):
    x = uniq.exchange()
    ch.exchange_declare(x, "direct")
    q = bound_queue(ch, uniq, x, "")
    ch.basic_publish(x, "", b"empty")
    ch.basic_publish(x, "x", b"not-empty")
    assert drain(ch, q) == [b"empty"]


def test_unbind_stops_routing(ch, uniq):
    x = uniq.exchange()
    ch.exchange_declare(x, "direct")
    q = bound_queue(ch, uniq, x, "k")
    ch.basic_publish(x, "k", b"1")
    ch.queue_unbind(q, x, "k")
    ch.basic_publish(x, "k", b"2")
    assert drain(ch, q) == [b"1"]


# --------------------------------------------------------------------------
# fanout


def test_fanout_exchange_delivers_to_every_bound_queue_ignoring_routing_key(ch, uniq):
    x = uniq.exchange()
    ch.exchange_declare(x, "fanout")
    qs = [bound_queue(ch, uniq, x, key) for key in ("", "some.key", "other")]
    ch.basic_publish(x, "whatever", b"m1")
    ch.basic_publish(x, "", b"m2")
    for q in qs:
        assert drain(ch, q) == [b"m1", b"m2"]


# --------------------------------------------------------------------------
# topic

TOPIC_CASES = [
    # (binding pattern, routing key, matches?)
    ("a.b.c", "a.b.c", True),
    ("a.b.c", "a.b", False),
    ("a.*.c", "a.b.c", True),
    ("a.*.c", "a.c", False),           # * is exactly one word, not zero
    ("a.*.c", "a.b.b.c", False),       # ... and not two
    ("*", "word", True),
    ("*", "", False),                  # * does not match an empty key
    ("*", "two.words", False),
    ("*.*", "a.b", True),
    ("*.*", "a", False),
    ("#", "", True),                   # # alone matches everything
    ("#", "a", True),
    ("#", "a.b.c.d", True),
    ("abc.#", "abc", True),            # # matches zero words
    ("abc.#", "abc.def", True),
    ("abc.#", "abc.def.ghi", True),
    ("abc.#", "abcdef", False),
    ("abc.#", "xyz.abc", False),
    ("#.xyz", "xyz", True),
    ("#.xyz", "a.b.xyz", True),
    ("#.xyz", "a.xyz.b", False),
    ("a.#.z", "a.z", True),
    ("a.#.z", "a.b.c.z", True),
    ("a.#.z", "a.b.c", False),
    ("*.#", "a", True),
    ("*.#", "", False),
    ("#.*", "a.b", True),
    ("a.*.#", "a", False),
    ("a.*.#", "a.b", True),
    ("a.*.#", "a.b.c.d", True),
    ("#.#", "a.b", True),
    ("a..b", "a..b", True),            # empty words are words
    ("a.*.b", "a..b", True),
    ("a.b", "a.B", False),             # case sensitive
    ("a.b*", "a.bc", False),           # wildcards only as whole words
    ("a.b*", "a.b*", True),
]


@pytest.mark.parametrize("pattern,key,matches", TOPIC_CASES,
                         ids=["%r~%r" % (p, k) for p, k, _ in TOPIC_CASES])
def test_topic_pattern_matching(ch, uniq, pattern, key, matches):
    x = uniq.exchange()
    ch.exchange_declare(x, "topic", auto_delete=True)
    q = bound_queue(ch, uniq, x, pattern)
    ch.basic_publish(x, key, b"m")
    assert drain(ch, q) == ([b"m"] if matches else [])


def test_topic_exchange_routes_to_all_matching_bindings(ch, uniq):
    x = uniq.exchange()
    ch.exchange_declare(x, "topic")
    q_kern = bound_queue(ch, uniq, x, "kern.*")
    q_crit = bound_queue(ch, uniq, x, "*.critical")
    q_all = bound_queue(ch, uniq, x, "#")
    ch.queue_bind(q_kern, x, "#.critical")  # second binding matching the same message
    ch.basic_publish(x, "kern.critical", b"kc")
    ch.basic_publish(x, "kern.info", b"ki")
    ch.basic_publish(x, "user.critical", b"uc")
    ch.basic_publish(x, "user.info", b"ui")
    assert drain(ch, q_kern) == [b"kc", b"ki", b"uc"]
    assert drain(ch, q_crit) == [b"kc", b"uc"]
    assert drain(ch, q_all) == [b"kc", b"ki", b"uc", b"ui"]


# --------------------------------------------------------------------------
# headers


def headers_props(h):
    return pika.BasicProperties(headers=h)


HEADERS_CASES = [
    # (binding arguments, message headers, matches?)
    ({"x-match": "all", "a": "1", "b": "2"}, {"a": "1", "b": "2"}, True),
    ({"x-match": "all", "a": "1", "b": "2"}, {"a": "1", "b": "2", "c": "3"}, True),
    ({"x-match": "all", "a": "1", "b": "2"}, {"a": "1"}, False),
    ({"x-match": "all", "a": "1", "b": "2"}, {"a": "1", "b": "3"}, False),
    ({"x-match": "all", "a": "1"}, None, False),
    ({"x-match": "any", "a": "1", "b": "2"}, {"a": "1"}, True),
    ({"x-match": "any", "a": "1", "b": "2"}, {"b": "2", "z": "0"}, True),
    ({"x-match": "any", "a": "1", "b": "2"}, {"a": "2", "b": "1"}, False),
    ({"x-match": "any", "a": "1"}, {}, False),
    # no x-match means all
    ({"a": "1", "b": "2"}, {"a": "1"}, False),
    ({"a": "1", "b": "2"}, {"a": "1", "b": "2"}, True),
    # binding arguments starting with x- are not matched against the message
    ({"x-match": "all", "a": "1", "x-other": "zzz"}, {"a": "1"}, True),
    ({"x-match": "any", "x-other": "zzz", "a": "1"}, {"x-other": "zzz"}, False),
    # a binding with only x-match all and no other keys matches everything
    ({"x-match": "all"}, {"whatever": "1"}, True),
    ({"x-match": "all"}, None, True),
    # values are compared with their types: integer 1 is not string "1"
    ({"x-match": "all", "n": 1}, {"n": 1}, True),
    ({"x-match": "all", "n": 1}, {"n": "1"}, False),
]


@pytest.mark.parametrize("args,headers,matches", HEADERS_CASES,
                         ids=["case%d" % i for i in range(len(HEADERS_CASES))])
def test_headers_exchange_matching(ch, uniq, args, headers, matches):
    x = uniq.exchange()
    ch.exchange_declare(x, "headers", auto_delete=True)
    q = bound_queue(ch, uniq, x, "", arguments=args)
    ch.basic_publish(x, "ignored.routing.key", b"m", properties=headers_props(headers))
    assert drain(ch, q) == ([b"m"] if matches else [])


def test_headers_exchange_ignores_routing_key(ch, uniq):
    x = uniq.exchange()
    ch.exchange_declare(x, "headers")
    q = bound_queue(ch, uniq, x, "bound-key", arguments={"x-match": "all", "k": "v"})
    ch.basic_publish(x, "other-key", b"m", properties=headers_props({"k": "v"}))
    assert drain(ch, q) == [b"m"]


# --------------------------------------------------------------------------
# predeclared exchanges


@pytest.mark.parametrize("name,kind", [
    ("amq.direct", "direct"),
    ("amq.fanout", "fanout"),
    ("amq.topic", "topic"),
    ("amq.headers", "headers"),
    ("amq.match", "headers"),
])
def test_predeclared_exchange_exists_and_has_its_type(ch, name, kind):
    ch.exchange_declare(name, passive=True)
    # Redeclaring with the same type (they are durable) is allowed...
    ch.exchange_declare(name, kind, durable=True)
    # ...with another type it is not.
    other = "fanout" if kind != "fanout" else "direct"
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
        ch.exchange_declare(name, other, durable=True)
    assert ei.value.reply_code == 406
    assert ei.value.reply_text == (
        "PRECONDITION_FAILED - inequivalent arg 'type' for exchange '%s' in vhost '/': "
        "received '%s' but current is '%s'" % (name, other, kind))


@pytest.mark.parametrize("name,key,args,headers", [
    ("amq.direct", "k", None, None),
    ("amq.fanout", "ignored", None, None),
    ("amq.topic", "a.*", None, None),
    ("amq.headers", "", {"x-match": "all", "h": "v"}, {"h": "v"}),
    ("amq.match", "", {"x-match": "any", "h": "v"}, {"h": "v"}),
])
def test_predeclared_exchange_routes(ch, uniq, name, key, args, headers):
    q = bound_queue(ch, uniq, name, key, arguments=args)
    rk = "a.b" if name == "amq.topic" else key
    ch.basic_publish(name, rk, b"m", properties=headers_props(headers))
    assert drain(ch, q) == [b"m"]
    ch.queue_unbind(q, name, key, arguments=args)


def test_predeclared_exchanges_are_durable(ch):
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
        ch.exchange_declare("amq.direct", "direct", durable=False)
    assert ei.value.reply_code == 406
    assert ei.value.reply_text == (
        "PRECONDITION_FAILED - inequivalent arg 'durable' for exchange 'amq.direct' in vhost '/': "
        "received 'false' but current is 'true'")


def test_declaring_new_amq_prefixed_exchange_is_refused_403(ch, uniq):
    name = "amq." + uniq("x")
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
        ch.exchange_declare(name, "direct")
    assert ei.value.reply_code == 403
    assert ei.value.reply_text == (
        "ACCESS_REFUSED - exchange name '%s' contains reserved prefix 'amq.*'" % name)


def test_deleting_a_predeclared_exchange_is_refused_403(ch):
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
        ch.exchange_delete("amq.fanout")
    assert ei.value.reply_code == 403
    assert ei.value.reply_text == (
        "ACCESS_REFUSED - deletion of system exchange 'amq.fanout' in vhost '/' not allowed")


# --------------------------------------------------------------------------
# declare / delete


def test_exchange_redeclare_with_same_arguments_is_ok(ch, uniq):
    x = uniq.exchange()
    ch.exchange_declare(x, "topic", durable=True)
    ch.exchange_declare(x, "topic", durable=True)
    ch.exchange_declare(x, passive=True)


def test_exchange_redeclare_with_other_type_is_406(ch, uniq):
    x = uniq.exchange()
    ch.exchange_declare(x, "direct")
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
        ch.exchange_declare(x, "topic")
    assert ei.value.reply_code == 406
    assert ei.value.reply_text == (
        "PRECONDITION_FAILED - inequivalent arg 'type' for exchange '%s' in vhost '/': "
        "received 'topic' but current is 'direct'" % x)


def test_exchange_redeclare_with_other_durability_is_406(ch, uniq):
    x = uniq.exchange()
    ch.exchange_declare(x, "direct", durable=False)
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
        ch.exchange_declare(x, "direct", durable=True)
    assert ei.value.reply_code == 406
    assert ei.value.reply_text == (
        "PRECONDITION_FAILED - inequivalent arg 'durable' for exchange '%s' in vhost '/': "
        "received 'true' but current is 'false'" % x)


def test_passive_declare_of_missing_exchange_is_404(ch, uniq):
    x = uniq("x")
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
        ch.exchange_declare(x, passive=True)
    assert ei.value.reply_code == 404
    assert ei.value.reply_text == "NOT_FOUND - no exchange '%s' in vhost '/'" % x


def test_unknown_exchange_type_is_connection_error_503(conn, uniq):
    ch = conn.channel()
    with pytest.raises(pika.exceptions.ConnectionClosedByBroker) as ei:
        ch.exchange_declare(uniq("x"), "no-such-type")
    # RabbitMQ treats this as a connection-level COMMAND_INVALID.
    assert ei.value.reply_code == 503
    assert ei.value.reply_text == "COMMAND_INVALID - unknown exchange type 'no-such-type'"


def test_publish_to_missing_exchange_closes_channel_404(conn, uniq):
    ch = conn.channel()
    x = uniq("x")
    ch.basic_publish(x, "k", b"m")
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
        # the error arrives asynchronously; the next synchronous call sees it
        ch.queue_declare("", exclusive=True)
    assert ei.value.reply_code == 404
    assert ei.value.reply_text == "NOT_FOUND - no exchange '%s' in vhost '/'" % x
    assert conn.is_open


def test_exchange_delete_then_publish_is_404(ch, conn, uniq):
    x = uniq.exchange()
    ch.exchange_declare(x, "fanout")
    ch.exchange_delete(x)
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
        ch.exchange_declare(x, passive=True)
    assert ei.value.reply_code == 404


def test_exchange_delete_if_unused_with_bindings_is_406(conn, uniq):
    ch = conn.channel()
    x = uniq.exchange()
    ch.exchange_declare(x, "direct")
    bound_queue(ch, uniq, x, "k")
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
        ch.exchange_delete(x, if_unused=True)
    assert ei.value.reply_code == 406
    assert ei.value.reply_text == "PRECONDITION_FAILED - exchange '%s' in vhost '/' in use" % x
    conn.channel().exchange_declare(x, passive=True)


def test_exchange_delete_if_unused_without_bindings_succeeds(ch, uniq):
    x = uniq.exchange()
    ch.exchange_declare(x, "direct")
    ch.exchange_delete(x, if_unused=True)
    with pytest.raises(pika.exceptions.ChannelClosedByBroker):
        ch.exchange_declare(x, passive=True)


def test_deleting_a_missing_exchange_succeeds(ch, uniq):
    # RabbitMQ 3.10: exchange.delete of a missing exchange is a no-op delete-ok.
    ch.exchange_delete(uniq("x"))
    assert ch.is_open


def test_exchange_delete_removes_its_bindings(ch, uniq):
    x = uniq.exchange()
    ch.exchange_declare(x, "fanout")
    q = bound_queue(ch, uniq, x)
    ch.exchange_delete(x)
    ch.exchange_declare(x, "fanout")
    ch.basic_publish(x, "", b"after-recreate")
    assert drain(ch, q) == []


def test_auto_delete_exchange_is_deleted_when_last_binding_goes(conn, uniq):
    ch = conn.channel()
    x = uniq.exchange()
    ch.exchange_declare(x, "direct", auto_delete=True)
    q = uniq.queue()
    ch.queue_declare(q)
    ch.queue_bind(q, x, "a")
    ch.queue_bind(q, x, "b")
    ch.queue_unbind(q, x, "a")
    ch.exchange_declare(x, passive=True)  # one binding left
    ch.queue_unbind(q, x, "b")
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
        ch.exchange_declare(x, passive=True)
    assert ei.value.reply_code == 404


def test_auto_delete_exchange_without_bindings_is_not_deleted(ch, uniq):
    x = uniq.exchange()
    ch.exchange_declare(x, "direct", auto_delete=True)
    ch.exchange_declare(x, passive=True)


def test_queue_bind_to_missing_exchange_is_404(ch, uniq):
    q = uniq.queue()
    ch.queue_declare(q)
    x = uniq("x")
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
        ch.queue_bind(q, x, "k")
    assert ei.value.reply_code == 404
    assert ei.value.reply_text == "NOT_FOUND - no exchange '%s' in vhost '/'" % x


def test_queue_bind_of_missing_queue_is_404(ch, uniq):
    q = uniq("q")
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
        ch.queue_bind(q, "amq.direct", "k")
    assert ei.value.reply_code == 404
    assert ei.value.reply_text == "NOT_FOUND - no queue '%s' in vhost '/'" % q


def test_queue_unbind_of_missing_binding_succeeds(ch, uniq):
    # RabbitMQ 3.10: unbinding something that is not bound (even a missing
    # queue) is answered with unbind-ok.
    q = uniq.queue()
    ch.queue_declare(q)
    ch.queue_unbind(q, "amq.direct", "never-bound")
    ch.queue_unbind(uniq("q"), "amq.direct", "k")
    assert ch.is_open


def test_binding_twice_is_idempotent(ch, uniq):
    x = uniq.exchange()
    ch.exchange_declare(x, "direct")
    q = bound_queue(ch, uniq, x, "k")
    ch.queue_bind(q, x, "k")
    ch.basic_publish(x, "k", b"once")
    assert drain(ch, q) == [b"once"]
    ch.queue_unbind(q, x, "k")  # a single unbind removes it
    ch.basic_publish(x, "k", b"gone")
    assert drain(ch, q) == []


# --------------------------------------------------------------------------
# exchange-to-exchange bindings


def test_exchange_to_exchange_binding_routes_through(ch, uniq):
    src, dst = uniq.exchange(), uniq.exchange()
    ch.exchange_declare(src, "topic")
    ch.exchange_declare(dst, "direct")
    ch.exchange_bind(destination=dst, source=src, routing_key="orders.*")
    q = bound_queue(ch, uniq, dst, "orders.new")
    q_other = bound_queue(ch, uniq, dst, "orders.old")
    ch.basic_publish(src, "orders.new", b"new")
    ch.basic_publish(src, "orders.old", b"old")
    ch.basic_publish(src, "users.new", b"user")
    assert drain(ch, q) == [b"new"]
    assert drain(ch, q_other) == [b"old"]
    ch.exchange_unbind(destination=dst, source=src, routing_key="orders.*")
    ch.basic_publish(src, "orders.new", b"after-unbind")
    assert drain(ch, q) == []


def test_exchange_to_exchange_fanout_chain_and_direct_queue_binding(ch, uniq):
    a, b = uniq.exchange(), uniq.exchange()
    ch.exchange_declare(a, "fanout")
    ch.exchange_declare(b, "fanout")
    ch.exchange_bind(destination=b, source=a)
    qa = bound_queue(ch, uniq, a)
    qb = bound_queue(ch, uniq, b)
    ch.basic_publish(a, "", b"from-a")
    ch.basic_publish(b, "", b"from-b")
    assert drain(ch, qa) == [b"from-a"]
    assert drain(ch, qb) == [b"from-a", b"from-b"]


def test_queue_reachable_by_two_paths_gets_one_copy(ch, uniq):
    a, b = uniq.exchange(), uniq.exchange()
    ch.exchange_declare(a, "fanout")
    ch.exchange_declare(b, "fanout")
    ch.exchange_bind(destination=b, source=a)
    q = bound_queue(ch, uniq, a)
    ch.queue_bind(q, b, "")
    ch.basic_publish(a, "", b"once")
    assert drain(ch, q) == [b"once"]


def test_exchange_binding_cycle_does_not_loop(ch, uniq):
    a, b = uniq.exchange(), uniq.exchange()
    ch.exchange_declare(a, "fanout")
    ch.exchange_declare(b, "fanout")
    ch.exchange_bind(destination=b, source=a)
    ch.exchange_bind(destination=a, source=b)
    q = bound_queue(ch, uniq, b)
    ch.basic_publish(a, "", b"cyclic")
    assert drain(ch, q) == [b"cyclic"]


def test_exchange_bind_to_missing_exchange_is_404(ch, uniq):
    x = uniq("x")
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
        ch.exchange_bind(destination=x, source="amq.direct", routing_key="k")
    assert ei.value.reply_code == 404
    assert ei.value.reply_text == "NOT_FOUND - no exchange '%s' in vhost '/'" % x
