"""queue.declare / bind / purge / delete semantics and their errors."""

import pika
import pytest

from helpers import drain, pump_until, queue_exists, shortstr_text, wait_for_counts, wait_until

RESOURCE_LOCKED_TEXT = (
    "RESOURCE_LOCKED - cannot obtain exclusive access to locked queue '%s' in vhost '/'. "
    "It could be originally declared on another connection or the exclusive property "
    "value does not match that of the original declaration.")


def test_declare_returns_name_and_zero_counts(ch, uniq):
    q = uniq.queue()
    ok = ch.queue_declare(q).method
    assert (ok.queue, ok.message_count, ok.consumer_count) == (q, 0, 0)


def test_server_named_queue_gets_amq_gen_name(ch):
    ok = ch.queue_declare("", exclusive=True).method
    assert ok.queue.startswith("amq.gen-")
    assert len(ok.queue) > len("amq.gen-")
    other = ch.queue_declare("", exclusive=True).method.queue
    assert other.startswith("amq.gen-") and other != ok.queue


def test_server_named_queue_is_usable_by_name(ch):
    q = ch.queue_declare("", exclusive=True).method.queue
    ch.basic_publish("", q, b"hello")
    assert drain(ch, q) == [b"hello"]


def test_declaring_amq_prefixed_queue_is_refused_403(ch, uniq):
    name = "amq." + uniq("q")
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
        ch.queue_declare(name)
    assert ei.value.reply_code == 403
    assert ei.value.reply_text == (
        "ACCESS_REFUSED - queue name '%s' contains reserved prefix 'amq.*'" % name)


def test_redeclare_with_same_properties_is_ok(ch, uniq):
    q = uniq.queue()
    ch.queue_declare(q, durable=True)
    ok = ch.queue_declare(q, durable=True).method
    assert ok.queue == q


def test_durable_flag_is_kept_and_redeclare_with_different_durable_is_406(conn, uniq):
    ch = conn.channel()
    q = uniq.queue()
    ch.queue_declare(q, durable=True)
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
        ch.queue_declare(q, durable=False)
    assert ei.value.reply_code == 406
    assert ei.value.reply_text == (
        "PRECONDITION_FAILED - inequivalent arg 'durable' for queue '%s' in vhost '/': "
        "received 'false' but current is 'true'" % q)
    assert conn.is_open


def test_redeclare_non_durable_as_durable_is_406(ch, uniq):
    q = uniq.queue()
    ch.queue_declare(q, durable=False)
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
        ch.queue_declare(q, durable=True)
    assert ei.value.reply_code == 406
    assert ei.value.reply_text == (
        "PRECONDITION_FAILED - inequivalent arg 'durable' for queue '%s' in vhost '/': "
        "received 'true' but current is 'false'" % q)


def test_redeclare_with_different_auto_delete_is_406(ch, uniq):
    q = uniq.queue()
    ch.queue_declare(q, auto_delete=False)
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
        ch.queue_declare(q, auto_delete=True)
    assert ei.value.reply_code == 406
    assert ei.value.reply_text == (
        "PRECONDITION_FAILED - inequivalent arg 'auto_delete' for queue '%s' in vhost '/': "
        "received 'true' but current is 'false'" % q)


def test_passive_declare_of_missing_queue_is_404(conn, uniq):
    ch = conn.channel()
    q = uniq("q")
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
        ch.queue_declare(q, passive=True)
    assert ei.value.reply_code == 404
    assert ei.value.reply_text == "NOT_FOUND - no queue '%s' in vhost '/'" % q
    assert conn.is_open


def test_passive_declare_ignores_other_flags(ch, uniq):
    q = uniq.queue()
    ch.queue_declare(q, durable=True)
    # durable=False would be inequivalent for an active declare, but passive
    # declares only check existence.
    assert ch.queue_declare(q, passive=True, durable=False).method.queue == q


def test_passive_declare_returns_ready_message_count_and_consumer_count(connect, uniq):
    c1 = connect()
    ch = c1.channel()
    q = uniq.queue()
    ch.queue_declare(q)
    for i in range(3):
        ch.basic_publish("", q, b"m%d" % i)
    # (RabbitMQ answers queue.declare ahead of queued publishes: wait.)
    wait_for_counts(c1, q, 3, 0)

    c2 = connect()
    cons = c2.channel()
    cons.basic_qos(prefetch_count=1)
    got = []
    cons.basic_consume(q, lambda c, m, p, b: got.append(b))
    pump_until(c2, lambda: len(got) == 1, what="first delivery")
    # message_count counts only ready messages, not the unacked one.
    wait_for_counts(c1, q, 2, 1)
    ok = ch.queue_declare(q, passive=True).method
    assert (ok.message_count, ok.consumer_count) == (2, 1)
    # an active redeclare reports the same counts
    ok = ch.queue_declare(q).method
    assert (ok.message_count, ok.consumer_count) == (2, 1)


def test_purge_returns_count_and_empties_queue(ch, uniq):
    q = uniq.queue()
    ch.queue_declare(q)
    for i in range(5):
        ch.basic_publish("", q, b"m")
    assert ch.queue_purge(q).method.message_count == 5
    assert ch.queue_declare(q, passive=True).method.message_count == 0
    assert ch.queue_purge(q).method.message_count == 0


def test_purge_does_not_remove_unacked_messages(connect, uniq):
    c = connect()
    ch = c.channel()
    q = uniq.queue()
    ch.queue_declare(q)
    for i in range(3):
        ch.basic_publish("", q, b"m%d" % i)
    m, _p, _b = ch.basic_get(q, auto_ack=False)
    assert m is not None
    assert ch.queue_purge(q).method.message_count == 2
    ch.basic_reject(m.delivery_tag, requeue=True)
    m2, _p, body = ch.basic_get(q, auto_ack=True)
    assert body == b"m0" and m2.redelivered


def test_purge_of_missing_queue_is_404(ch, uniq):
    q = uniq("q")
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
        ch.queue_purge(q)
    assert ei.value.reply_code == 404
    assert ei.value.reply_text == "NOT_FOUND - no queue '%s' in vhost '/'" % q


def test_delete_returns_message_count_and_removes_queue(conn, uniq):
    ch = conn.channel()
    q = uniq.queue()
    ch.queue_declare(q)
    for i in range(4):
        ch.basic_publish("", q, b"m")
    assert ch.queue_delete(q).method.message_count == 4
    assert not queue_exists(conn, q)


def test_delete_of_missing_queue_succeeds_with_zero(ch, uniq):
    # RabbitMQ 3.10: deleting a missing queue is not an error.
    assert ch.queue_delete(uniq("q")).method.message_count == 0


def test_delete_if_unused_with_consumer_is_406(conn, uniq):
    ch = conn.channel()
    q = uniq.queue()
    ch.queue_declare(q)
    ch.basic_consume(q, lambda *a: None)
    other = conn.channel()
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
        other.queue_delete(q, if_unused=True)
    assert ei.value.reply_code == 406
    assert ei.value.reply_text == "PRECONDITION_FAILED - queue '%s' in vhost '/' in use" % q
    assert queue_exists(conn, q)


def test_delete_if_unused_without_consumer_succeeds(conn, uniq):
    ch = conn.channel()
    q = uniq.queue()
    ch.queue_declare(q)
    ch.basic_publish("", q, b"m")
    assert ch.queue_delete(q, if_unused=True).method.message_count == 1
    assert not queue_exists(conn, q)


def test_delete_if_empty_with_messages_is_406(conn, uniq):
    ch = conn.channel()
    q = uniq.queue()
    ch.queue_declare(q)
    ch.basic_publish("", q, b"m")
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
        ch.queue_delete(q, if_empty=True)
    assert ei.value.reply_code == 406
    assert ei.value.reply_text == "PRECONDITION_FAILED - queue '%s' in vhost '/' not empty" % q
    assert queue_exists(conn, q)


def test_delete_if_empty_on_empty_queue_succeeds(conn, uniq):
    ch = conn.channel()
    q = uniq.queue()
    ch.queue_declare(q)
    assert ch.queue_delete(q, if_empty=True).method.message_count == 0
    assert not queue_exists(conn, q)


def test_exclusive_queue_is_locked_for_other_connections_405(connect, uniq):
    owner = connect()
    q = uniq.queue()
    owner.channel().queue_declare(q, exclusive=True)
    other = connect()
    ops = {
        "declare": lambda c: c.queue_declare(q),
        "passive declare": lambda c: c.queue_declare(q, passive=True),
        "exclusive declare": lambda c: c.queue_declare(q, exclusive=True),
        "consume": lambda c: c.basic_consume(q, lambda *a: None),
        "get": lambda c: c.basic_get(q),
        "purge": lambda c: c.queue_purge(q),
        "bind": lambda c: c.queue_bind(q, "amq.direct", "k"),
        "delete": lambda c: c.queue_delete(q),
    }
    for what, op in ops.items():
        chan = other.channel()
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
            op(chan)
        assert ei.value.reply_code == 405, what
        assert ei.value.reply_text == shortstr_text(RESOURCE_LOCKED_TEXT % q), what
    assert other.is_open
    # the owner can still use it
    assert owner.channel().queue_declare(q, passive=True).method.queue == q


def test_publishing_to_another_connections_exclusive_queue_is_allowed(connect, uniq):
    # Exclusivity restricts queue operations, not routing: RabbitMQ delivers
    # a message published by another connection.
    owner = connect()
    q = uniq.queue()
    och = owner.channel()
    och.queue_declare(q, exclusive=True)
    other = connect().channel()
    other.basic_publish("", q, b"from-other")
    other.queue_declare("", exclusive=True)  # round trip
    wait_until(lambda: och.queue_declare(q, passive=True).method.message_count == 1,
               what="message to arrive")
    assert drain(och, q) == [b"from-other"]


def test_exclusive_queue_is_shared_by_channels_of_the_same_connection(conn, uniq):
    q = uniq.queue()
    conn.channel().queue_declare(q, exclusive=True)
    other_channel = conn.channel()
    other_channel.queue_declare(q, exclusive=True)
    other_channel.basic_publish("", q, b"x")
    assert drain(other_channel, q) == [b"x"]


def test_redeclaring_exclusive_queue_as_non_exclusive_on_same_connection_is_405(conn, uniq):
    q = uniq.queue()
    conn.channel().queue_declare(q, exclusive=True)
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
        conn.channel().queue_declare(q, exclusive=False)
    assert ei.value.reply_code == 405
    assert ei.value.reply_text == shortstr_text(RESOURCE_LOCKED_TEXT % q)


def test_exclusive_queue_vanishes_when_its_connection_closes(connect, uniq):
    owner = connect()
    q = uniq.queue()
    owner.channel().queue_declare(q, exclusive=True)
    observer = connect()
    owner.close()
    # Deletion happens when the broker notices the connection is gone.
    wait_until(lambda: not queue_exists(observer, q), what="exclusive queue deletion")


def test_exclusive_server_named_queue_vanishes_when_its_connection_closes(connect):
    owner = connect()
    q = owner.channel().queue_declare("", exclusive=True).method.queue
    assert q.startswith("amq.gen-")
    observer = connect()
    owner.close()
    wait_until(lambda: not queue_exists(observer, q), what="exclusive queue deletion")


def test_exclusive_queue_survives_closing_the_declaring_channel(conn, uniq):
    q = uniq.queue()
    decl = conn.channel()
    decl.queue_declare(q, exclusive=True)
    decl.close()
    assert queue_exists(conn, q)


def test_auto_delete_queue_is_deleted_after_last_consumer_cancels(connect, uniq):
    c = connect()
    ch = c.channel()
    q = uniq.queue()
    ch.queue_declare(q, auto_delete=True)
    t1 = ch.basic_consume(q, lambda *a: None)
    t2 = ch.basic_consume(q, lambda *a: None)
    ch.basic_cancel(t1)
    assert queue_exists(c, q)  # one consumer left
    ch.basic_cancel(t2)
    wait_until(lambda: not queue_exists(c, q), what="auto-delete queue deletion")


def test_auto_delete_queue_is_deleted_when_consumer_channel_closes(connect, uniq):
    c = connect()
    q = uniq.queue()
    ch = c.channel()
    ch.queue_declare(q, auto_delete=True)
    ch.basic_consume(q, lambda *a: None)
    ch.close()
    wait_until(lambda: not queue_exists(c, q), what="auto-delete queue deletion")


def test_auto_delete_queue_without_consumers_stays(ch, conn, uniq):
    q = uniq.queue()
    ch.queue_declare(q, auto_delete=True)
    ch.basic_publish("", q, b"m")
    m, _p, body = ch.basic_get(q, auto_ack=True)  # basic.get is not a consumer
    assert body == b"m"
    assert queue_exists(conn, q)


def test_deleted_queue_recreated_with_same_name_is_empty(conn, uniq):
    ch = conn.channel()
    q = uniq.queue()
    ch.queue_declare(q)
    ch.basic_publish("", q, b"1")
    ch.queue_delete(q)
    ch.queue_declare(q)
    assert ch.queue_declare(q, passive=True).method.message_count == 0


def test_long_reply_text_is_truncated_to_255_chars_with_ellipsis(ch):
    name = "n" * 230
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
        ch.queue_declare(name, passive=True)
    full = "NOT_FOUND - no queue '%s' in vhost '/'" % name
    assert ei.value.reply_code == 404
    assert len(ei.value.reply_text) == 255
    assert ei.value.reply_text == full[:252] + "..."
