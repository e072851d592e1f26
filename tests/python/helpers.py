"""Helpers shared by the test modules."""

import time

import pika

DEFAULT_TIMEOUT = 5.0


def pump_until(conn, predicate, timeout=DEFAULT_TIMEOUT, what="condition"):
    """Process I/O on a BlockingConnection until predicate() is true."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("timed out after %ss waiting for %s" % (timeout, what))
        conn.process_data_events(time_limit=0.02)


def pump_all_until(conns, predicate, timeout=DEFAULT_TIMEOUT, what="condition"):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("timed out after %ss waiting for %s" % (timeout, what))
        for c in conns:
            c.process_data_events(time_limit=0.01)


def wait_until(predicate, timeout=DEFAULT_TIMEOUT, interval=0.02, what="condition"):
    deadline = time.monotonic() + timeout
    while True:
        v = predicate()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError("timed out after %ss waiting for %s" % (timeout, what))
        time.sleep(interval)


def _declared(conn, declare):
    """Runs a passive declare on a fresh channel; True, or False on 404."""
    chan = conn.channel()
    try:
        declare(chan)
    except pika.exceptions.ChannelClosedByBroker as e:
        assert e.reply_code == 404, e
        return False
    chan.close()
    return True


def queue_exists(conn, name):
    return _declared(conn, lambda chan: chan.queue_declare(name, passive=True))


def exchange_exists(conn, name):
    return _declared(conn, lambda chan: chan.exchange_declare(name, passive=True))


def queue_counts(conn, name):
    chan = conn.channel()
    ok = chan.queue_declare(name, passive=True).method
    chan.close()
    return ok.message_count, ok.consumer_count


def drain(chan, queue, limit=1000):
    """basic.get (auto-ack) everything currently ready in queue; return bodies."""
    out = []
    for _ in range(limit):
        m, _p, body = chan.basic_get(queue, auto_ack=True)
        if m is None:
            break
        out.append(body)
    return out


def shortstr_text(full):
    """What RabbitMQ puts in a reply-text shortstr: texts longer than 255
    characters are cut to 252 and suffixed with "..."."""
    return full if len(full) <= 255 else full[:252] + "..."


def wait_for_counts(conn, queue, message_count, consumer_count=None, timeout=DEFAULT_TIMEOUT):
    """Wait until queue.declare(passive) reports the given counts.

    RabbitMQ answers queue.declare from the queue process with priority, so
    the counts may lag behind publishes made just before on the same channel;
    a bounded wait makes the check deterministic."""
    want = (message_count, consumer_count)
    last = [None]

    def check():
        m, c = queue_counts(conn, queue)
        last[0] = (m, c)
        return (m, c if consumer_count is not None else None) == want

    try:
        wait_until(check, timeout=timeout, what="counts of %s" % queue)
    except AssertionError:
        raise AssertionError("queue %s: (message_count, consumer_count) = %r, expected %r"
                             % (queue, last[0], want))
