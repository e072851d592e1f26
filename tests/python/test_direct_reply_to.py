"""Direct reply-to (amq.rabbitmq.reply-to): RPC replies without a reply queue."""

import pika
import pytest

from helpers import pump_all_until

REPLY_TO = "amq.rabbitmq.reply-to"


def test_rpc_reply_reaches_the_requesting_channel(connect, uniq):
    client, server = connect(), connect()
    cch, sch = client.channel(), server.channel()
    requests = uniq.queue()
    sch.queue_declare(requests)

    def serve(ch, method, props, body):
        assert props.reply_to.startswith(REPLY_TO + ".")
        ch.basic_publish("", props.reply_to, body.upper(),
                         pika.BasicProperties(correlation_id=props.correlation_id))
        ch.basic_ack(method.delivery_tag)

    sch.basic_consume(requests, serve)
    replies = []
    cch.basic_consume(REPLY_TO, lambda ch, m, p, b: replies.append((p.correlation_id, b)),
                      auto_ack=True)
    cch.basic_publish("", requests, b"ping",
                      pika.BasicProperties(reply_to=REPLY_TO, correlation_id="c1"))
    pump_all_until([client, server], lambda: replies, what="the RPC reply")
    assert replies == [("c1", b"PING")]


def test_reply_consumer_must_be_no_ack(ch):
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as e:
        ch.basic_consume(REPLY_TO, lambda *a: None, auto_ack=False)
    assert e.value.reply_code == 406
    assert e.value.reply_text == "PRECONDITION_FAILED - reply consumer cannot acknowledge"


def test_publishing_with_reply_to_needs_a_reply_consumer(ch, uniq):
    q = uniq.queue()
    ch.queue_declare(q)
    ch.basic_publish("", q, b"x", pika.BasicProperties(reply_to=REPLY_TO))
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as e:
        ch.queue_declare(q, passive=True)
    assert e.value.reply_code == 406
    assert e.value.reply_text == "PRECONDITION_FAILED - fast reply consumer does not exist"


def test_reply_to_a_gone_channel_is_returned_when_mandatory(connect, uniq):
    conn = connect()
    requester = conn.channel()
    requester.basic_consume(REPLY_TO, lambda *a: None, auto_ack=True)
    q = uniq.queue()
    requester.queue_declare(q)
    requester.basic_publish("", q, b"req", pika.BasicProperties(reply_to=REPLY_TO))
    _m, props, _b = requester.basic_get(q, auto_ack=True)
    address = props.reply_to
    requester.close()
    replier = conn.channel()
    returned = []
    replier.add_on_return_callback(lambda *a: returned.append(a[1].reply_code))
    replier.basic_publish("", address, b"late reply", mandatory=True)
    pump_all_until([conn], lambda: returned, what="basic.return")
    assert returned == [312]
