"""A consumer that stops reading its socket: deliveries to it pause and the messages stay in
their queue, instead of piling up in the broker's buffers (RabbitMQ's credit flow)."""

import socket
import time

import pika

from helpers import wait_until


def test_a_consumer_that_does_not_read_leaves_messages_in_the_queue(broker, connect, uniq):
    q = uniq.queue()
    setup = connect()
    ch = setup.channel()
    ch.queue_declare(q)

    # A raw consumer: handshake, consume with no-ack, then never read again.
    stalled = connect()
    sch = stalled.channel()
    sch.basic_consume(q, lambda *a: None, auto_ack=True)
    sock = stalled._impl._transport._sock
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)

    body = b"x" * 4096
    total = 20000  # 80 MB: far more than socket buffers hold
    for _ in range(total):
        ch.basic_publish("", q, body)

    def ready():
        return ch.queue_declare(q, passive=True).method.message_count

    # Deliveries stop once the stalled socket and the broker's bounded buffer are full.
    wait_until(lambda: ready() > 0, timeout=10, what="messages left ready in the queue")
    time.sleep(0.5)
    first = ready()
    time.sleep(0.5)
    assert ready() == first > total // 2
    # Hang up on the broker without reading the backlog (a clean close would have to read it).
    sock.shutdown(socket.SHUT_RDWR)
