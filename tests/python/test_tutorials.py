"""Runs the six RabbitMQ tutorial programs (tutorials/*.py, plain pika
programs) against the broker as subprocesses and checks what they print."""

import os
import queue
import subprocess
import sys
import threading
import time

import pika
import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
TUTORIALS = os.path.join(HERE, "tutorials")

# The tutorials use fixed names; clear them so that leftovers from an earlier
# (failed) run cannot leak into this one.
FIXED_QUEUES = ["hello", "task_queue", "rpc_queue"]
FIXED_EXCHANGES = ["logs", "direct_logs", "topic_logs"]


class Proc:
    """A running tutorial program whose stdout is read line by line."""

    def __init__(self, name, args, env):
        self.name = name
        self.p = subprocess.Popen(
            [sys.executable, os.path.join(TUTORIALS, name)] + list(args),
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env=env, text=True, bufsize=1)
        self.lines = []          # (monotonic time, line)
        self._pos = 0            # wait_for() cursor
        self._q = queue.Queue()
        self._t = threading.Thread(target=self._read, daemon=True)
        self._t.start()

    def _read(self):
        for line in self.p.stdout:
            self._q.put((time.monotonic(), line.rstrip("\n")))
        self._q.put(None)

    def _pull(self, timeout):
        item = self._q.get(timeout=timeout)
        if item is None:
            self._q.put(None)  # keep EOF visible
            return None
        self.lines.append(item)
        return item

    def wait_for(self, pattern, timeout=10):
        """Wait for the next line (after the previous match) equal to
        ``pattern``; return (time, line)."""
        deadline = time.monotonic() + timeout
        while True:
            while self._pos < len(self.lines):
                item = self.lines[self._pos]
                self._pos += 1
                if item[1] == pattern:
                    return item
            remaining = deadline - time.monotonic()
            try:
                if remaining <= 0 or self._pull(remaining) is None:
                    break
            except queue.Empty:
                break
        raise AssertionError("%s: no line %r within %ss; output so far:\n%s"
                             % (self.name, pattern, timeout, self.output()))

    def wait_for_all(self, expected, timeout=10):
        """Wait until every line in ``expected`` has appeared (any order)."""
        deadline = time.monotonic() + timeout
        while not set(expected) <= set(self.output_lines()):
            remaining = deadline - time.monotonic()
            try:
                if remaining <= 0 or self._pull(remaining) is None:
                    break
            except queue.Empty:
                break
        missing = set(expected) - set(self.output_lines())
        assert not missing, "%s: missing lines %r after %ss; output:\n%s" % (
            self.name, sorted(missing), timeout, self.output())

    def has_line(self, line):
        return line in self.output_lines()

    def output(self):
        # collect anything already buffered
        while True:
            try:
                if self._pull(0) is None:
                    break
            except queue.Empty:
                break
        return "\n".join(l for _t, l in self.lines)

    def output_lines(self):
        self.output()
        return [l for _t, l in self.lines]

    def finish(self, timeout=15):
        try:
            rc = self.p.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError("%s did not finish within %ss; output:\n%s"
                                 % (self.name, timeout, self.output()))
        self._t.join(5)
        out = self.output()
        assert rc == 0, "%s exited with %d; output:\n%s" % (self.name, rc, out)
        return out

    def stop(self):
        if self.p.poll() is None:
            self.p.terminate()
            try:
                self.p.wait(3)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait(3)
        if self.p.stdout:
            self.p.stdout.close()


@pytest.fixture
def tutorial(broker):
    env = dict(os.environ, AMQP_URL=broker.url, PYTHONUNBUFFERED="1")

    def clean():
        c = pika.BlockingConnection(broker.params())
        for q in FIXED_QUEUES:
            c.channel().queue_delete(q)
        for x in FIXED_EXCHANGES:
            c.channel().exchange_delete(x)
        c.close()

    clean()

    procs = []

    class T:
        url = broker.url

        def start(self, name, *args):
            p = Proc(name, args, env)
            procs.append(p)
            return p

        def run(self, name, *args, timeout=15):
            return self.start(name, *args).finish(timeout)

        def wait_for_consumers(self, queue_name, n, timeout=10):
            c = pika.BlockingConnection(broker.params())
            try:
                deadline = time.monotonic() + timeout
                while True:
                    ok = c.channel().queue_declare(queue_name, passive=True).method
                    if ok.consumer_count >= n:
                        return
                    if time.monotonic() > deadline:
                        raise AssertionError("%s has %d consumers, expected %d"
                                             % (queue_name, ok.consumer_count, n))
                    time.sleep(0.02)
            finally:
                c.close()

    yield T()
    for p in procs:
        p.stop()
    clean()


def received(proc):
    return [l for l in proc.output_lines() if l.startswith(" [x] ") and "Waiting" not in l]


# --------------------------------------------------------------------------
# 1. Hello World


def test_hello_world_send_then_receive(tutorial):
    receiver = tutorial.start("receive.py")
    receiver.wait_for(" [*] Waiting for messages. To exit press CTRL+C")
    out = tutorial.run("send.py")
    assert out == " [x] Sent 'Hello World!'"
    receiver.wait_for(" [x] Received b'Hello World!'")


def test_hello_world_message_waits_in_queue_for_late_receiver(tutorial):
    tutorial.run("send.py")
    tutorial.run("send.py")
    receiver = tutorial.start("receive.py")
    receiver.wait_for(" [x] Received b'Hello World!'")
    receiver.wait_for(" [x] Received b'Hello World!'")


# --------------------------------------------------------------------------
# 2. Work queues


def test_work_queue_tasks_are_shared_fairly_between_workers(tutorial):
    w1 = tutorial.start("worker.py")
    w2 = tutorial.start("worker.py")
    w1.wait_for(" [*] Waiting for messages. To exit press CTRL+C")
    w2.wait_for(" [*] Waiting for messages. To exit press CTRL+C")
    # the queue.declare in worker.py precedes basic.consume; wait until both
    # consumers are registered before publishing
    tutorial.wait_for_consumers("task_queue", 2)

    assert tutorial.run("new_task.py", "slow", "task...") == " [x] Sent slow task..."
    # whichever worker got it is now busy for 3 s, holding its only prefetch slot
    deadline = time.monotonic() + 10
    while not (w1.has_line(" [x] Received slow task...") or w2.has_line(" [x] Received slow task...")):
        assert time.monotonic() < deadline, "no worker received the slow task"
        time.sleep(0.02)
    slow, fast = (w1, w2) if w1.has_line(" [x] Received slow task...") else (w2, w1)

    quick = ["quick %d" % i for i in range(3)]
    publishers = [tutorial.start("new_task.py", q) for q in quick]
    for p in publishers:
        p.finish()
    # (the three publishers ran concurrently: any order)
    fast.wait_for_all([" [x] Received %s" % q for q in quick])
    slow.wait_for(" [x] Done", timeout=10)
    # With prefetch_count=1 the busy worker got none of the quick tasks.
    assert [l for l in received(slow) if "Received" in l] == [" [x] Received slow task..."]
    assert sorted(l for l in received(fast) if "Received" in l) == sorted(
        " [x] Received %s" % q for q in quick)


def test_work_queue_task_of_killed_worker_is_redelivered(tutorial):
    w1 = tutorial.start("worker.py")
    w1.wait_for(" [*] Waiting for messages. To exit press CTRL+C")
    tutorial.wait_for_consumers("task_queue", 1)
    tutorial.run("new_task.py", "long.....")
    w1.wait_for(" [x] Received long.....")
    w1.p.kill()  # dies before acking
    w1.p.wait(5)
    w2 = tutorial.start("worker.py")
    w2.wait_for(" [x] Received long.....", timeout=10)


# --------------------------------------------------------------------------
# 3. Publish/Subscribe


def test_publish_subscribe_every_receiver_gets_every_log(tutorial):
    r1 = tutorial.start("receive_logs.py")
    r2 = tutorial.start("receive_logs.py")
    r1.wait_for(" [*] Waiting for logs. To exit press CTRL+C")
    r2.wait_for(" [*] Waiting for logs. To exit press CTRL+C")
    assert tutorial.run("emit_log.py", "info:", "first") == " [x] Sent info: first"
    assert tutorial.run("emit_log.py") == " [x] Sent info: Hello World!"
    for r in (r1, r2):
        r.wait_for(" [x] b'info: first'")
        r.wait_for(" [x] b'info: Hello World!'")
        assert received(r) == [" [x] b'info: first'", " [x] b'info: Hello World!'"]


def test_publish_subscribe_log_without_receivers_is_lost(tutorial):
    tutorial.run("emit_log.py", "nobody", "listens")
    r = tutorial.start("receive_logs.py")
    r.wait_for(" [*] Waiting for logs. To exit press CTRL+C")
    tutorial.run("emit_log.py", "after")
    r.wait_for(" [x] b'after'")
    assert received(r) == [" [x] b'after'"]


# --------------------------------------------------------------------------
# 4. Routing


def test_routing_receivers_get_only_their_severities(tutorial):
    errors = tutorial.start("receive_logs_direct.py", "error")
    others = tutorial.start("receive_logs_direct.py", "info", "warning")
    errors.wait_for(" [*] Waiting for logs. To exit press CTRL+C")
    others.wait_for(" [*] Waiting for logs. To exit press CTRL+C")
    assert tutorial.run("emit_log_direct.py", "error", "disk", "full") == " [x] Sent error:disk full"
    tutorial.run("emit_log_direct.py", "info", "started")
    tutorial.run("emit_log_direct.py", "debug", "nobody cares")
    tutorial.run("emit_log_direct.py", "warning", "last")
    tutorial.run("emit_log_direct.py", "error", "last")
    errors.wait_for(" [x] error:b'last'")
    others.wait_for(" [x] warning:b'last'")
    # messages reach each queue in publish order, so these lists are complete
    assert received(errors) == [" [x] error:b'disk full'", " [x] error:b'last'"]
    assert received(others) == [" [x] info:b'started'", " [x] warning:b'last'"]


def test_routing_receiver_without_arguments_prints_usage(tutorial):
    p = tutorial.start("receive_logs_direct.py")
    with pytest.raises(AssertionError, match="exited with 1"):
        p.finish()
    assert "Usage:" in p.output()


# --------------------------------------------------------------------------
# 5. Topics


def test_topics_receivers_match_wildcards(tutorial):
    kern = tutorial.start("receive_logs_topic.py", "kern.*")
    crit = tutorial.start("receive_logs_topic.py", "*.critical")
    everything = tutorial.start("receive_logs_topic.py", "#")
    for r in (kern, crit, everything):
        r.wait_for(" [*] Waiting for logs. To exit press CTRL+C")
    sent = ["kern.critical", "kern.info", "user.critical", "user.info", "kern.a.b"]
    for key in sent:
        out = tutorial.run("emit_log_topic.py", key, "msg")
        assert out == " [x] Sent %s:msg" % key
    tutorial.run("emit_log_topic.py", "kern.end", "end")
    tutorial.run("emit_log_topic.py", "end.critical", "end")
    kern.wait_for(" [x] kern.end:b'end'")
    crit.wait_for(" [x] end.critical:b'end'")
    everything.wait_for(" [x] end.critical:b'end'")
    assert received(kern) == [" [x] kern.critical:b'msg'", " [x] kern.info:b'msg'",
                              " [x] kern.end:b'end'"]
    assert received(crit) == [" [x] kern.critical:b'msg'", " [x] user.critical:b'msg'",
                              " [x] end.critical:b'end'"]
    assert received(everything) == [" [x] %s:b'msg'" % k for k in sent] + [
        " [x] kern.end:b'end'", " [x] end.critical:b'end'"]


# --------------------------------------------------------------------------
# 6. RPC


def test_rpc_client_gets_fibonacci_from_server(tutorial):
    server = tutorial.start("rpc_server.py")
    server.wait_for(" [x] Awaiting RPC requests")
    out = tutorial.run("rpc_client.py", timeout=30)
    assert out.splitlines() == [" [x] Requesting fib(30)", " [.] Got 832040"]
    server.wait_for(" [.] fib(30)")
    out = tutorial.run("rpc_client.py", "10")
    assert out.splitlines() == [" [x] Requesting fib(10)", " [.] Got 55"]
    server.wait_for(" [.] fib(10)")


def test_rpc_concurrent_clients_get_their_own_answers(tutorial):
    server = tutorial.start("rpc_server.py")
    server.wait_for(" [x] Awaiting RPC requests")
    clients = {n: tutorial.start("rpc_client.py", str(n)) for n in (5, 6, 7, 8)}
    expected = {5: 5, 6: 8, 7: 13, 8: 21}
    for n, c in clients.items():
        out = c.finish(timeout=30)
        assert out.splitlines()[-1] == " [.] Got %d" % expected[n]


def test_rpc_request_waits_for_a_late_server(tutorial):
    # The client's request sits in rpc_queue until a server starts, but only
    # if the queue exists: create it the way the server does.
    c = pika.BlockingConnection(pika.URLParameters(tutorial.url))
    c.channel().queue_declare("rpc_queue")
    c.close()
    client = tutorial.start("rpc_client.py", "12")
    client.wait_for(" [x] Requesting fib(12)")
    server = tutorial.start("rpc_server.py")
    assert client.finish(timeout=20).splitlines()[-1] == " [.] Got 144"
    server.wait_for(" [.] fib(12)")
