"""Users, vhosts and permissions, administered with `warren ctl` as with rabbitmqctl, and
enforced on pika clients with RabbitMQ's rules and refusal texts (each checked against
RabbitMQ 3.10.8: the same verbs' output, exit codes and the same 403/530 texts).

Every test starts a broker of its own (WARREN_BIN only): `warren ctl` finds it by its data
directory."""

import signal
import subprocess

import pika
import pytest

from conftest import WarrenProcess


@pytest.fixture
def warren():
    w = WarrenProcess().start()
    yield w
    w.stop()


def ctl(w, *args):
    """Runs `warren ctl` against the broker; returns (exit code, stdout, stderr)."""
    p = subprocess.run([w.binary, "ctl", "--data-dir", w.data_dir, *args],
                       capture_output=True, text=True, timeout=30)
    return p.returncode, p.stdout, p.stderr


def ok(w, *args):
    code, out, err = ctl(w, *args)
    assert code == 0, (args, out, err)
    return out


def connect(w, user, password, vhost="/"):
    return pika.BlockingConnection(
        w.params(virtual_host=vhost, credentials=pika.PlainCredentials(user, password)))


def refused(w, user, password, action):
    """Runs `action(channel)` as `user`; returns the channel.close code and text."""
    conn = connect(w, user, password)
    ch = conn.channel()
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as e:
        action(ch)
    conn.close()
    return e.value.reply_code, e.value.reply_text


def test_user_verbs_print_as_rabbitmqctl_does(warren):
    assert ok(warren, "list_users") == "Listing users ...\nuser\ttags\nguest\t[administrator]\n"
    assert ok(warren, "add_user", "u", "secret") == 'Adding user "u" ...\n'
    code, out, err = ctl(warren, "add_user", "u", "other")
    assert (code, err) == (70, 'Error:\nUser "u" already exists\n')
    ok(warren, "set_user_tags", "u", "monitoring", "management")
    assert ok(warren, "-q", "list_users") == (
        "user\ttags\nguest\t[administrator]\nu\t[monitoring, management]\n")
    assert ok(warren, "list_users", "--formatter", "json").splitlines()[1:] == [
        '[{"user":"guest","tags":["administrator"]},'
        '{"user":"u","tags":["monitoring","management"]}]']
    assert ok(warren, "authenticate_user", "u", "secret").endswith("Success\n")
    code, _, err = ctl(warren, "authenticate_user", "u", "wrong")
    assert code == 65 and "invalid credentials" in err
    code, _, err = ctl(warren, "delete_user", "nobody")
    assert (code, err) == (67, 'Error:\nUser "nobody" does not exist\n')
    code, _, err = ctl(warren, "frobnicate")
    assert code == 64 and "Command 'frobnicate' not found." in err
    code, _, err = ctl(warren, "add_user", "only-a-name")
    assert code == 64 and "not enough arguments" in err


def test_a_new_user_logs_in_only_where_permitted(warren):
    ok(warren, "add_user", "u", "secret")
    with pytest.raises(pika.exceptions.ProbableAccessDeniedError) as e:
        connect(warren, "u", "secret")
    assert "530" in str(e.value) and "access to vhost '/' refused for user 'u'" in str(e.value)
    with pytest.raises(pika.exceptions.ProbableAuthenticationError):
        connect(warren, "u", "wrong")
    ok(warren, "add_vhost", "v")
    assert ok(warren, "list_vhosts") == "Listing vhosts ...\nname\n/\nv\n"
    ok(warren, "set_permissions", "-p", "v", "u", ".*", ".*", ".*")
    assert ok(warren, "list_permissions", "-p", "v") == (
        'Listing permissions for vhost "v" ...\nuser\tconfigure\twrite\tread\nu\t.*\t.*\t.*\n')
    conn = connect(warren, "u", "secret", "v")
    conn.channel().queue_declare("in-v")
    conn.close()
    with pytest.raises(pika.exceptions.ProbableAccessDeniedError) as e:
        connect(warren, "u", "secret", "missing")
    assert "vhost missing not found" in str(e.value)


def test_each_operation_needs_its_permission(warren):
    ok(warren, "add_user", "u", "secret")
    ok(warren, "set_permissions", "u", "^app-", "^amq\\.default$", "^mine$")
    admin = connect(warren, "guest", "guest")
    g = admin.channel()
    g.queue_declare("q")
    g.queue_declare("app-q")
    g.exchange_declare("x", "fanout")

    def text(kind, name):
        return "ACCESS_REFUSED - access to %s '%s' in vhost '/' refused for user 'u'" % (kind, name)

    assert refused(warren, "u", "secret", lambda ch: ch.queue_declare("other")) == (
        403, text("queue", "other"))
    assert refused(warren, "u", "secret", lambda ch: ch.queue_delete("q")) == (
        403, text("queue", "q"))
    assert refused(warren, "u", "secret", lambda ch: ch.queue_purge("q")) == (
        403, text("queue", "q"))
    assert refused(warren, "u", "secret", lambda ch: ch.basic_get("q")) == (
        403, text("queue", "q"))
    assert refused(warren, "u", "secret",
                   lambda ch: ch.basic_consume("q", lambda *a: None)) == (403, text("queue", "q"))
    assert refused(warren, "u", "secret", lambda ch: ch.queue_bind("app-q", "x")) == (
        403, text("queue", "app-q"))

    def publish_to_x(ch):
        ch.confirm_delivery()
        ch.basic_publish("x", "", b"m")
    assert refused(warren, "u", "secret", publish_to_x) == (403, text("exchange", "x"))
    # What it may do: declare app-*, publish to the default exchange.
    conn = connect(warren, "u", "secret")
    ch = conn.channel()
    ch.queue_declare("app-new")
    ch.confirm_delivery()
    ch.basic_publish("", "q", b"allowed")
    conn.close()
    assert g.queue_declare("q", passive=True).method.message_count == 1
    admin.close()
    # Changed permissions apply to channels opened afterwards.
    ok(warren, "clear_permissions", "u")
    with pytest.raises(pika.exceptions.ProbableAccessDeniedError):
        connect(warren, "u", "secret")


def test_deleting_a_user_closes_their_connections_and_everything_survives_a_restart(warren):
    ok(warren, "add_user", "u", "secret")
    ok(warren, "add_vhost", "v")
    ok(warren, "set_permissions", "-p", "v", "u", "^a", ".*", ".*")
    ok(warren, "set_user_tags", "u", "management")
    warren.stop(signal.SIGKILL)
    warren.start()
    assert ok(warren, "list_user_permissions", "u") == (
        'Listing permissions for user "u" ...\nvhost\tconfigure\twrite\tread\nv\t^a\t.*\t.*\n')
    assert "u\t[management]" in ok(warren, "list_users")
    conn = connect(warren, "u", "secret", "v")
    ch = conn.channel()
    ok(warren, "delete_user", "u")
    with pytest.raises(pika.exceptions.ConnectionClosedByBroker) as e:
        ch.queue_declare("a-q")
    assert e.value.reply_code == 320
    ok(warren, "delete_vhost", "v")
    warren.stop()
    warren.start()
    assert ok(warren, "list_vhosts") == "Listing vhosts ...\nname\n/\n"
    code, _, _ = ctl(warren, "list_user_permissions", "u")
    assert code == 69


def test_the_debugging_line_shows_an_unacked_message(warren):
    conn = connect(warren, "guest", "guest")
    ch = conn.channel()
    ch.queue_declare("work")
    for body in (b"1", b"2", b"3"):
        ch.basic_publish("", "work", body)
    method, _props, _body = ch.basic_get("work", auto_ack=False)
    assert method is not None
    out = ok(warren, "list_queues", "name", "messages_ready", "messages_unacknowledged")
    assert out == ("Listing queues for vhost / ...\n"
                   "name\tmessages_ready\tmessages_unacknowledged\nwork\t2\t1\n")
    conn.close()


def test_ctl_without_a_running_node_says_so(tmp_path):
    w = WarrenProcess(data_dir=str(tmp_path))
    code, _, err = ctl(w, "list_users")
    assert code == 69 and "Is warren running there" in err


def test_update_secret_takes_the_users_password_and_refuses_another(warren):
    ok(warren, "add_user", "u", "secret")
    ok(warren, "set_permissions", "u", ".*", ".*", ".*")
    conn = connect(warren, "u", "secret")
    conn.update_secret("secret", "token refresh")
    conn.channel().queue_declare("still-open")
    with pytest.raises(pika.exceptions.ConnectionClosedByBroker) as e:
        conn.update_secret("not-it", "token refresh")
        conn.channel()
    assert e.value.reply_code == 530
    assert e.value.reply_text == "NOT_ALLOWED - New secret was refused by one of the backends"


def test_exchange_binding_and_queue_verbs(warren):
    conn = connect(warren, "guest", "guest")
    ch = conn.channel()
    ch.exchange_declare("logs", "fanout", durable=True)
    ch.queue_declare("jobs")
    ch.queue_bind("jobs", "logs", "k")
    for body in (b"1", b"2"):
        ch.basic_publish("", "jobs", body)
    out = ok(warren, "list_exchanges", "name", "type", "durable")
    assert out.splitlines()[:2] == ["Listing exchanges for vhost / ...", "name\ttype\tdurable"]
    assert "\tdirect\ttrue" in out.splitlines()[2] and "logs\tfanout\ttrue" in out
    assert ok(warren, "list_bindings").splitlines() == [
        "Listing bindings for vhost /...",
        "source_name\tsource_kind\tdestination_name\tdestination_kind\trouting_key\targuments",
        "\texchange\tjobs\tqueue\tjobs\t[]",
        "logs\texchange\tjobs\tqueue\tk\t[]",
    ]
    assert ok(warren, "purge_queue", "jobs") == "Purging queue 'jobs' in vhost '/' ...\n"
    assert ch.queue_declare("jobs", passive=True).method.message_count == 0
    ch.basic_publish("", "jobs", b"3")
    ch.queue_declare("jobs", passive=True)
    assert ok(warren, "delete_queue", "jobs") == (
        "Deleting queue 'jobs' on vhost '/' ...\n"
        "Queue was successfully deleted with 1 ready messages\n")
    code, _, err = ctl(warren, "delete_queue", "jobs")
    assert (code, err) == (64, "Error:\nQueue not found\n")
    code, _, err = ctl(warren, "purge_queue", "nope")
    assert (code, err) == (69, "Error:\nnot_found\n")
    conn.close()


def test_detached_server_and_ctl_stop_round_trip(tmp_path):
    import os
    import socket
    from conftest import _free_port
    binary = os.environ.get("WARREN_BIN") or pytest.skip("needs WARREN_BIN")
    data = str(tmp_path / "data")
    port = _free_port()
    start = [binary, "server", "--detached", "--amqp", "127.0.0.1:%d" % port, "--data-dir", data]
    assert subprocess.run(start, timeout=60).returncode == 0, "returns once listening"
    pid = int(open(os.path.join(data, "warren.pid")).read())
    conn = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", port))
    conn.channel().queue_declare("kept", durable=True)
    conn.close()
    status = subprocess.run([binary, "ctl", "--data-dir", data, "status"],
                            capture_output=True, text=True, timeout=30)
    assert status.returncode == 0 and ("pid\t%d" % pid) in status.stdout
    stop = subprocess.run([binary, "ctl", "--data-dir", data, "stop"],
                          capture_output=True, text=True, timeout=150)
    assert stop.returncode == 0 and stop.stdout.startswith("Stopping and halting node warren@")
    # It waited for the node to be gone: no process, no pid file, nothing listening.
    assert not os.path.exists("/proc/%d" % pid) or open("/proc/%d/stat" % pid).read().split()[2] == "Z"
    assert not os.path.exists(os.path.join(data, "warren.pid"))
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1)
    # And it comes back with what it stored.
    assert subprocess.run(start, timeout=60).returncode == 0
    conn = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", port))
    conn.channel().queue_declare("kept", durable=True, passive=True)
    conn.close()
    assert subprocess.run([binary, "ctl", "--data-dir", data, "stop"], timeout=150).returncode == 0
