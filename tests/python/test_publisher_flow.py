"""Publisher flow control, with pika: a publisher flooding a queue whose consumer falls behind
is read only as fast as the consumer takes messages (as RabbitMQ's credit flow slows it), so
the backlog stays near --flow-backlog instead of holding the whole flood, and the consumer gets
every message, in order. A broker of its own (WARREN_BIN only)."""

import threading
import time

import pika

from conftest import WarrenProcess

BACKLOG = 200
MESSAGES = 6000


def test_a_flood_into_a_queue_behind_its_consumer_is_slowed_to_the_consumer():
    w = WarrenProcess("--flow-backlog", str(BACKLOG)).start()
    try:
        setup = pika.BlockingConnection(w.params())
        setup.channel().queue_declare("flood")
        got = []
        consuming = threading.Event()

        def consume():
            conn = pika.BlockingConnection(w.params())
            ch = conn.channel()
            ch.basic_qos(prefetch_count=20)
            consuming.set()
            for method, _props, body in ch.consume("flood", inactivity_timeout=15):
                if method is None:
                    break
                got.append(body)
                time.sleep(0.001)  # a consumer slower than the publisher
                ch.basic_ack(method.delivery_tag)
                if len(got) == MESSAGES:
                    break
            conn.close()

        def publish():
            conn = pika.BlockingConnection(w.params())
            ch = conn.channel()
            for i in range(MESSAGES):
                ch.basic_publish("", "flood", b"m%d" % i)
            conn.close()

        consumer = threading.Thread(target=consume)
        consumer.start()
        consuming.wait(10)
        time.sleep(0.3)
        publisher = threading.Thread(target=publish)
        publisher.start()
        deepest = 0
        while publisher.is_alive():
            depth = setup.channel().queue_declare("flood", passive=True).method.message_count
            deepest = max(deepest, depth)
            time.sleep(0.02)
        publisher.join()
        consumer.join(60)
        assert got == [b"m%d" % i for i in range(MESSAGES)]
        # Unslowed, the flood (tens of thousands of messages a second against about a
        # thousand) would sit in the queue nearly whole; held, the queue keeps near the
        # backlog, plus what the broker had read before each hold took effect.
        assert deepest < MESSAGES / 2, deepest
        setup.close()
    finally:
        w.stop()
