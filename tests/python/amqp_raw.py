"""A deliberately tiny, hand-written AMQP 0-9-1 frame codec for raw-socket tests.

It knows just enough of the protocol to do the handshake, open channels, send
arbitrary (possibly invalid) frames and read back what the broker answers,
in particular connection.close.  Everything is encoded with ``struct`` so that
these tests do not depend on pika's codec.
"""

import socket
import struct
import time

PROTOCOL_HEADER = b"AMQP\x00\x00\x09\x01"

FRAME_METHOD = 1
FRAME_HEADER = 2
FRAME_BODY = 3
FRAME_HEARTBEAT = 8
FRAME_END = 0xCE

# (class_id, method_id)
CONNECTION_START = (10, 10)
CONNECTION_START_OK = (10, 11)
CONNECTION_TUNE = (10, 30)
CONNECTION_TUNE_OK = (10, 31)
CONNECTION_OPEN = (10, 40)
CONNECTION_OPEN_OK = (10, 41)
CONNECTION_CLOSE = (10, 50)
CONNECTION_CLOSE_OK = (10, 51)
CHANNEL_OPEN = (20, 10)
CHANNEL_OPEN_OK = (20, 11)
CHANNEL_CLOSE = (20, 40)
CHANNEL_CLOSE_OK = (20, 41)
QUEUE_DECLARE = (50, 10)
QUEUE_DECLARE_OK = (50, 11)
BASIC_QOS = (60, 10)
BASIC_PUBLISH = (60, 40)


# --------------------------------------------------------------------------
# encoding


def shortstr(s):
    if isinstance(s, str):
        s = s.encode()
    assert len(s) < 256
    return struct.pack(">B", len(s)) + s


def longstr(s):
    if isinstance(s, str):
        s = s.encode()
    return struct.pack(">I", len(s)) + s


def _field_value(v):
    if isinstance(v, bool):
        return b"t" + struct.pack(">B", int(v))
    if isinstance(v, int):
        return b"l" + struct.pack(">q", v)
    if isinstance(v, (str, bytes)):
        return b"S" + longstr(v)
    if isinstance(v, dict):
        return b"F" + table(v)
    raise TypeError(v)


def table(d):
    body = b"".join(shortstr(k) + _field_value(v) for k, v in (d or {}).items())
    return struct.pack(">I", len(body)) + body


def frame(frame_type, channel, payload):
    return struct.pack(">BHI", frame_type, channel, len(payload)) + payload + bytes([FRAME_END])


def method_frame(channel, method, args=b""):
    return frame(FRAME_METHOD, channel, struct.pack(">HH", *method) + args)


def heartbeat_frame():
    return frame(FRAME_HEARTBEAT, 0, b"")


# --------------------------------------------------------------------------
# decoding


class Reader:
    def __init__(self, data):
        self.data = data
        self.pos = 0

    def take(self, n):
        if self.pos + n > len(self.data):
            raise ValueError("truncated")
        b = self.data[self.pos:self.pos + n]
        self.pos += n
        return b

    def unpack(self, fmt):
        return struct.unpack(fmt, self.take(struct.calcsize(fmt)))

    def octet(self):
        return self.unpack(">B")[0]

    def short(self):
        return self.unpack(">H")[0]

    def long(self):
        return self.unpack(">I")[0]

    def longlong(self):
        return self.unpack(">Q")[0]

    def shortstr(self):
        # RabbitMQ quotes names it was sent as they came, UTF-8 or not.
        return self.take(self.octet()).decode(errors="replace")

    def longstr(self):
        return self.take(self.long())

    def table(self):
        sub = Reader(self.longstr())
        out = {}
        while sub.pos < len(sub.data):
            k = sub.shortstr()
            out[k] = sub.value()
        return out

    def value(self):
        t = chr(self.octet())
        if t == "t":
            return bool(self.octet())
        if t == "b":
            return self.unpack(">b")[0]
        if t == "B":
            return self.unpack(">B")[0]
        if t == "s":
            return self.unpack(">h")[0]
        if t == "u":
            return self.unpack(">H")[0]
        if t == "I":
            return self.unpack(">i")[0]
        if t == "i":
            return self.unpack(">I")[0]
        if t == "l":
            return self.unpack(">q")[0]
        if t == "f":
            return self.unpack(">f")[0]
        if t == "d":
            return self.unpack(">d")[0]
        if t == "D":
            scale = self.octet()
            return (scale, self.unpack(">i")[0])
        if t == "S":
            return self.longstr()
        if t == "x":
            return self.longstr()
        if t == "T":
            return self.longlong()
        if t == "F":
            return self.table()
        if t == "V":
            return None
        if t == "A":
            sub = Reader(self.longstr())
            items = []
            while sub.pos < len(sub.data):
                items.append(sub.value())
            return items
        raise ValueError("unknown field type %r" % t)


class Frame:
    def __init__(self, frame_type, channel, payload):
        self.type = frame_type
        self.channel = channel
        self.payload = payload
        self.method = None
        self.args = None
        if frame_type == FRAME_METHOD:
            r = Reader(payload)
            self.method = (r.short(), r.short())
            self.args = r

    def __repr__(self):
        return "Frame(type=%d, channel=%d, method=%r, %d bytes)" % (
            self.type, self.channel, self.method, len(self.payload))


def decode_close(f):
    """connection.close / channel.close -> (reply_code, reply_text, class_id, method_id)"""
    r = Reader(f.payload[4:])
    return r.short(), r.shortstr(), r.short(), r.short()


class ConnectionClosed(Exception):
    """The broker closed the TCP connection (EOF or reset)."""


# --------------------------------------------------------------------------
# a raw connection


class RawConnection:
    def __init__(self, host, port, timeout=5.0):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.settimeout(timeout)
        self.buf = b""
        self.start = None   # dict of connection.start fields
        self.tune = None    # (channel_max, frame_max, heartbeat) proposed by server

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- low level ----------------------------------------------------------

    def send(self, data):
        self.sock.sendall(data)

    def _fill(self, n):
        while len(self.buf) < n:
            try:
                chunk = self.sock.recv(65536)
            except ConnectionResetError as e:
                raise ConnectionClosed("reset") from e
            if not chunk:
                raise ConnectionClosed("eof")
            self.buf += chunk

    def read_exact(self, n):
        self._fill(n)
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def read_frame(self):
        hdr = self.read_exact(7)
        frame_type, channel, size = struct.unpack(">BHI", hdr)
        payload = self.read_exact(size)
        end = self.read_exact(1)
        assert end[0] == FRAME_END, "bad frame end %r" % end
        return Frame(frame_type, channel, payload)

    def read_method(self, skip_heartbeats=True):
        while True:
            f = self.read_frame()
            if f.type == FRAME_HEARTBEAT and skip_heartbeats:
                continue
            return f

    def expect_method(self, method):
        f = self.read_method()
        if f.method == CONNECTION_CLOSE and method != CONNECTION_CLOSE:
            raise AssertionError("broker closed the connection: %r" % (decode_close(f),))
        assert f.method == method, "expected %r, got %r" % (method, f)
        return f

    def read_until_eof(self, timeout):
        """Read (and return) everything until the broker closes the socket.
        Raises AssertionError if it does not within ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        data = self.buf
        self.buf = b""
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError("broker did not close the socket within %ss" % timeout)
            self.sock.settimeout(remaining)
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                raise AssertionError("broker did not close the socket within %ss" % timeout)
            except ConnectionResetError:
                return data
            if not chunk:
                return data
            data += chunk

    def send_method(self, channel, method, args=b""):
        self.send(method_frame(channel, method, args))

    # -- handshake ------------------------------------------------------------

    def send_header(self, header=PROTOCOL_HEADER):
        self.send(header)

    def read_start(self):
        f = self.expect_method(CONNECTION_START)
        r = f.args
        self.start = {
            "version_major": r.octet(),
            "version_minor": r.octet(),
            "server_properties": r.table(),
            "mechanisms": r.longstr(),
            "locales": r.longstr(),
        }
        return self.start

    def send_start_ok(self, user="guest", password="guest", mechanism="PLAIN",
                      client_properties=None):
        if client_properties is None:
            client_properties = {
                "product": "warren-raw-test",
                "capabilities": {"authentication_failure_close": True},
            }
        response = b"\x00" + user.encode() + b"\x00" + password.encode()
        self.send_method(0, CONNECTION_START_OK,
                         table(client_properties) + shortstr(mechanism)
                         + longstr(response) + shortstr("en_US"))

    def read_tune(self):
        f = self.expect_method(CONNECTION_TUNE)
        r = f.args
        self.tune = (r.short(), r.long(), r.short())
        return self.tune

    def send_tune_ok(self, channel_max, frame_max, heartbeat):
        self.send_method(0, CONNECTION_TUNE_OK,
                         struct.pack(">HIH", channel_max, frame_max, heartbeat))

    def send_open(self, vhost="/"):
        self.send_method(0, CONNECTION_OPEN, shortstr(vhost) + shortstr("") + b"\x00")

    def handshake(self, user="guest", password="guest", vhost="/",
                  channel_max=None, frame_max=None, heartbeat=0):
        """Full handshake up to connection.open-ok.  ``None`` means: accept the
        server's proposal."""
        self.send_header()
        self.read_start()
        self.send_start_ok(user, password)
        cm, fm, _hb = self.read_tune()
        self.send_tune_ok(cm if channel_max is None else channel_max,
                          fm if frame_max is None else frame_max,
                          heartbeat)
        self.send_open(vhost)
        self.expect_method(CONNECTION_OPEN_OK)

    def open_channel(self, channel):
        self.send_method(channel, CHANNEL_OPEN, shortstr(""))
        self.expect_method(CHANNEL_OPEN_OK)

    def expect_connection_close(self):
        """Read frames until connection.close; answer it with close-ok;
        return (reply_code, reply_text, class_id, method_id)."""
        while True:
            f = self.read_method()
            if f.method == CONNECTION_CLOSE:
                result = decode_close(f)
                try:
                    self.send_method(0, CONNECTION_CLOSE_OK)
                except OSError:
                    pass
                return result


def queue_declare_args(queue, passive=False, durable=False, exclusive=False,
                       auto_delete=False, nowait=False, arguments=None):
    bits = (passive << 0) | (durable << 1) | (exclusive << 2) | (auto_delete << 3) | (nowait << 4)
    return struct.pack(">H", 0) + shortstr(queue) + struct.pack(">B", bits) + table(arguments)


def basic_publish_args(exchange, routing_key, mandatory=False, immediate=False):
    bits = (mandatory << 0) | (immediate << 1)
    return struct.pack(">H", 0) + shortstr(exchange) + shortstr(routing_key) + struct.pack(">B", bits)


def content_header_frame(channel, body_size, class_id=60):
    # class-id, weight, body size, property flags (no properties)
    return frame(FRAME_HEADER, channel, struct.pack(">HHQH", class_id, 0, body_size, 0))


def body_frame(channel, body):
    return frame(FRAME_BODY, channel, body)
