"""A small raw HTTP/2 client, for tests that must play a peer no real gRPC
client would be: one that grants no flow-control window, opens far more
streams than allowed, leaves streams open after their headers, sends huge
header values or compressed bombs, or ignores the server's pings.

It speaks just enough of RFC 9113 for that, written here: the connection
preface, frames with their 9-byte header, SETTINGS (with any values the
test chooses, such as SETTINGS_INITIAL_WINDOW_SIZE 0) and their
acknowledgement, HEADERS split into CONTINUATION frames, DATA,
WINDOW_UPDATE, RST_STREAM, PING and GOAWAY. Request headers are encoded as
HPACK literals without indexing and without Huffman coding (RFC 7541,
6.2.2), which every decoder must accept and which leave the server's
dynamic table alone. The server's header blocks are decoded with Debian's
python3-hpack (`hpack.Decoder`), in the order they arrive, as HPACK
requires.

What the peer does on its own while reading (read()), each a flag:
grant -- give back the window a DATA frame used, to the stream and the
connection (a peer that takes its replies); answer_pings -- acknowledge a
PING. The server's SETTINGS are always acknowledged. A peer that never
calls read() never grants anything.

    with H2Peer(port, {SETTINGS_INITIAL_WINDOW_SIZE: 0}, grant=False) as p:
        sid = p.request("/recsys.v1.Recommender/Recommend", message)
        p.read(lambda: p.streams[sid].headers is not None)
        ...
        p.read(lambda: p.streams[sid].ended)
        p.streams[sid].status   # grpc-status as an int, or None

Not thread-safe, except that send() may be called from one thread while
another reads (sends are serialised by a lock).
"""

import gzip
import socket
import struct
import threading
import time

import hpack

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

# Frame types, flags, settings and error codes (RFC 9113, 6, 6.5.2, 7).
DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH_PROMISE, PING, GOAWAY, WINDOW_UPDATE, \
    CONTINUATION = range(10)
END_STREAM, ACK, END_HEADERS, PADDED, PRIORITY_FLAG = 0x1, 0x1, 0x4, 0x8, 0x20
SETTINGS_HEADER_TABLE_SIZE, SETTINGS_ENABLE_PUSH, SETTINGS_MAX_CONCURRENT_STREAMS, \
    SETTINGS_INITIAL_WINDOW_SIZE, SETTINGS_MAX_FRAME_SIZE, SETTINGS_MAX_HEADER_LIST_SIZE = \
    range(1, 7)
NO_ERROR, PROTOCOL_ERROR, INTERNAL_ERROR, FLOW_CONTROL_ERROR, SETTINGS_TIMEOUT, STREAM_CLOSED, \
    FRAME_SIZE_ERROR, REFUSED_STREAM, CANCEL, COMPRESSION_ERROR, CONNECT_ERROR, \
    ENHANCE_YOUR_CALM = range(12)
MAX_FRAME = 16384  # SETTINGS_MAX_FRAME_SIZE's initial value: the most we send in a frame

# gRPC status codes the tests look for (grpc/doc/statuscodes.md).
OK, CANCELLED, INVALID_ARGUMENT, DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED, UNAVAILABLE = \
    0, 1, 3, 4, 8, 14


# ---- encoding ---------------------------------------------------------------------

def hpack_int(value, prefix_bits, first=0):
    """An HPACK integer with a prefix of prefix_bits bits (RFC 7541, 5.1)."""
    top = (1 << prefix_bits) - 1
    if value < top:
        return bytes([first | value])
    out = bytearray([first | top])
    value -= top
    while value >= 128:
        out.append((value & 127) | 128)
        value >>= 7
    out.append(value)
    return bytes(out)


def hpack_literal(name, value):
    """One header as a literal without indexing, with a literal name, no
    Huffman coding (RFC 7541, 6.2.2). name, value: str or bytes."""
    name = name.encode() if isinstance(name, str) else name
    value = value.encode() if isinstance(value, str) else value
    return b"\x00" + hpack_int(len(name), 7) + name + hpack_int(len(value), 7) + value


def grpc_headers(path, extra=(), timeout=None, gzip_encoded=False):
    """The header block of a gRPC request to path. extra: (name, value)s
    appended; timeout: the grpc-timeout value as sent (e.g. "50m");
    gzip_encoded: announce grpc-encoding gzip."""
    fields = [(":method", "POST"), (":scheme", "http"), (":path", path),
              (":authority", "recsysd"), ("content-type", "application/grpc"),
              ("te", "trailers")]
    if timeout is not None:
        fields.append(("grpc-timeout", timeout))
    if gzip_encoded:
        fields += [("grpc-encoding", "gzip"), ("grpc-accept-encoding", "identity,gzip")]
    return b"".join(hpack_literal(n, v) for n, v in fields + list(extra))


def grpc_message(message, compressed=False):
    """One gRPC length-prefixed message: a flag byte (1: the bytes are
    gzip-compressed), a 4-byte big-endian length, the bytes. With
    compressed, message is gzipped here unless it already is (bytes
    starting with gzip's magic are sent as they are, so a test can build a
    bomb once)."""
    if compressed and not message.startswith(b"\x1f\x8b"):
        message = gzip.compress(message)
    return bytes([1 if compressed else 0]) + struct.pack(">I", len(message)) + message


def frame(kind, flags, stream, payload=b""):
    """One frame: 24-bit length, type, flags, 31-bit stream id, payload."""
    return (struct.pack(">I", len(payload))[1:] + bytes([kind, flags])
            + struct.pack(">I", stream) + payload)


# ---- what was received ------------------------------------------------------------

class Frame:
    def __init__(self, kind, flags, stream, payload):
        self.kind, self.flags, self.stream, self.payload = kind, flags, stream, payload

    def __repr__(self):
        return "Frame(type=%d, flags=%#x, stream=%d, %d bytes)" % (
            self.kind, self.flags, self.stream, len(self.payload))


class Stream:
    """What the server sent on one stream.

    headers: the first header block as [(name, value)] (str), None before
    it; trailers: the second one, or None; data: the DATA bytes; reset:
    a RST_STREAM's error code, or None; ended: END_STREAM or RST_STREAM
    came (or the connection went away: see H2Peer.closed)."""

    def __init__(self, sid):
        self.id = sid
        self.headers = None
        self.trailers = None
        self.data = b""
        self.reset = None
        self.ended = False

    def _field(self, name):
        # A trailers-only answer puts grpc-status in the only block.
        for block in (self.trailers, self.headers):
            for n, v in block or ():
                if n == name:
                    return v
        return None

    @property
    def status(self):
        """grpc-status as an int; None if none came (yet, or ever)."""
        v = self._field("grpc-status")
        return None if v is None else int(v)

    @property
    def message(self):
        """grpc-message, as sent (percent-encoded), or None."""
        return self._field("grpc-message")

    def messages(self):
        """The length-prefixed gRPC messages in data, as bytes (compressed
        ones are not inflated)."""
        out, at = [], 0
        while at + 5 <= len(self.data):
            n = struct.unpack(">I", self.data[at + 1:at + 5])[0]
            out.append(self.data[at + 5:at + 5 + n])
            at += 5 + n
        return out

    def __repr__(self):
        return "Stream(%d, status=%s, reset=%s, %d data bytes, ended=%s)" % (
            self.id, self.status, self.reset, len(self.data), self.ended)


# ---- the connection ---------------------------------------------------------------

class H2Peer:
    """One HTTP/2 connection to host:port.

    settings: {identifier: value} sent in the preface's SETTINGS frame;
    grant, answer_pings: see the module's docstring; timeout: of connecting
    and of each blocking send.

    After read(): server_settings (the server's first SETTINGS), goaway
    (last stream id, error code) or None, pings (payloads of the PINGs the
    server sent), ping_acks (payloads of its acknowledgements of ours: the
    server has read every frame sent before that PING), closed (the server closed the connection, or it broke),
    streams ({id: Stream} of every stream opened here)."""

    def __init__(self, port, settings=None, host="127.0.0.1", timeout=10.0, grant=True,
                 answer_pings=True):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.grant = grant
        self.answer_pings = answer_pings
        self.buf = b""
        self.next_stream = 1
        self.streams = {}
        self.server_settings = None
        self.goaway = None
        self.pings = []
        self.ping_acks = []
        self.closed = False
        self._decoder = hpack.Decoder()
        # A header block's frames, gathered until END_HEADERS: (stream, flags, bytes).
        self._block = None
        self._lock = threading.Lock()
        payload = b"".join(struct.pack(">HI", k, v) for k, v in (settings or {}).items())
        self.send(PREFACE + frame(SETTINGS, 0, 0, payload))

    # ---- sending ----

    def send(self, data):
        """Write bytes as they are (frames built with frame() or request_bytes())."""
        with self._lock:
            self.sock.sendall(data)

    def request_bytes(self, path, message=None, end=True, extra_headers=(), timeout=None,
                      gzip_encoded=False):
        """The frames of one gRPC call on a new stream, not sent; returns
        (stream id, bytes), so a test can send thousands in one write.
        message: the body (already framed, e.g. by grpc_message), or None;
        end: close the stream with the body (False: the stream stays open,
        as a client that never finishes); the other arguments as in
        grpc_headers. A header block larger than MAX_FRAME continues in
        CONTINUATION frames, as the protocol requires."""
        sid = self.next_stream
        self.next_stream += 2
        self.streams[sid] = Stream(sid)
        block = grpc_headers(path, extra_headers, timeout, gzip_encoded)
        chunks = [block[i:i + MAX_FRAME] for i in range(0, len(block), MAX_FRAME)]
        last = len(chunks) - 1
        flags = (END_HEADERS if last == 0 else 0) | (END_STREAM if end and message is None else 0)
        out = [frame(HEADERS, flags, sid, chunks[0])]
        for i in range(1, len(chunks)):
            out.append(frame(CONTINUATION, END_HEADERS if i == last else 0, sid, chunks[i]))
        if message is not None:
            for i in range(0, max(len(message), 1), MAX_FRAME):
                final = i + MAX_FRAME >= len(message)
                out.append(frame(DATA, END_STREAM if end and final else 0, sid,
                                 message[i:i + MAX_FRAME]))
        return sid, b"".join(out)

    def requests_bytes(self, n, path, message=None, **kw):
        """n calls' request_bytes(), in one block: (stream ids, bytes)."""
        sids, blocks = [], []
        for _ in range(n):
            sid, data = self.request_bytes(path, message, **kw)
            sids.append(sid)
            blocks.append(data)
        return sids, b"".join(blocks)

    def request(self, path, message=None, **kw):
        """request_bytes(), sent; the stream id."""
        sid, data = self.request_bytes(path, message, **kw)
        self.send(data)
        return sid

    def window_update(self, stream, increment):
        """Grant increment bytes of window to stream (0: the connection)."""
        self.send(frame(WINDOW_UPDATE, 0, stream, struct.pack(">I", increment)))

    def rst_stream(self, stream, code=CANCEL):
        self.send(frame(RST_STREAM, 0, stream, struct.pack(">I", code)))

    def ping(self, payload=b"h2peer!!"):
        """Send a PING; its acknowledgement (in ping_acks) tells that the
        server has read every frame sent before it."""
        self.send(frame(PING, 0, 0, payload))

    # ---- receiving ----

    def read(self, until=lambda: False, timeout=10.0):
        """Read and handle frames until until() is true (checked after each
        frame and before reading), the connection closes, or timeout;
        returns until()'s last value. Never raises on a closed connection:
        see closed."""
        deadline = time.monotonic() + timeout
        while True:
            while self._next_frame():
                if until():
                    return True
            if until():
                return True
            left = deadline - time.monotonic()
            if self.closed or left <= 0:
                return until()
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(1 << 16)
            except socket.timeout:
                continue
            except OSError:
                data = b""
            if not data:
                self._close_streams()
                return until()
            self.buf += data

    def read_all(self, sids, timeout=10.0):
        """read() until every stream of sids has ended; whether they all did."""
        sids = list(sids)
        return self.read(lambda: all(self.streams[s].ended for s in sids), timeout)

    def _close_streams(self):
        self.closed = True
        for s in self.streams.values():
            s.ended = True

    def _next_frame(self):
        """Handle one whole frame from buf; False when none is whole yet."""
        if len(self.buf) < 9:
            return False
        length = int.from_bytes(self.buf[:3], "big")
        if len(self.buf) < 9 + length:
            return False
        f = Frame(self.buf[3], self.buf[4], int.from_bytes(self.buf[5:9], "big") & 0x7fffffff,
                  self.buf[9:9 + length])
        self.buf = self.buf[9 + length:]
        try:
            self._handle(f)
        except OSError:
            pass  # an acknowledgement or grant the server no longer reads: recv() tells
        return True

    def _handle(self, f):
        stream = self.streams.get(f.stream)
        if f.kind == SETTINGS and not f.flags & ACK:
            if self.server_settings is None:
                self.server_settings = {
                    k: v for k, v in (struct.unpack(">HI", f.payload[i:i + 6])
                                      for i in range(0, len(f.payload), 6))}
            self.send(frame(SETTINGS, ACK, 0))
        elif f.kind == PING and f.flags & ACK:
            self.ping_acks.append(f.payload)
        elif f.kind == PING:
            self.pings.append(f.payload)
            if self.answer_pings:
                self.send(frame(PING, ACK, 0, f.payload))
        elif f.kind == GOAWAY:
            self.goaway = (int.from_bytes(f.payload[:4], "big") & 0x7fffffff,
                           int.from_bytes(f.payload[4:8], "big"))
        elif f.kind == RST_STREAM and stream is not None:
            stream.reset = int.from_bytes(f.payload[:4], "big")
            stream.ended = True
        elif f.kind == DATA:
            body = f.payload
            if f.flags & PADDED:
                body = body[1:len(body) - body[0]]
            if stream is not None:
                stream.data += body
                stream.ended |= bool(f.flags & END_STREAM)
            if self.grant and f.payload:
                # Taken: the window it used is given back, to the
                # connection and to its stream.
                grant = struct.pack(">I", len(f.payload))
                self.send(frame(WINDOW_UPDATE, 0, 0, grant)
                          + frame(WINDOW_UPDATE, 0, f.stream, grant))
        elif f.kind in (HEADERS, PUSH_PROMISE):
            block = f.payload
            if f.flags & PADDED:
                block = block[1:len(block) - block[0]]
            if f.kind == HEADERS and f.flags & PRIORITY_FLAG:
                block = block[5:]
            self._block = (f.stream, f.flags, block)
            if f.flags & END_HEADERS:
                self._end_block()
        elif f.kind == CONTINUATION and self._block is not None:
            sid, flags, block = self._block
            self._block = (sid, flags, block + f.payload)
            if f.flags & END_HEADERS:
                self._end_block()

    def _end_block(self):
        sid, flags, block = self._block
        self._block = None
        # Decoded even for a stream not ours: the dynamic table must follow.
        fields = [(n if isinstance(n, str) else n.decode(), v if isinstance(v, str) else
                   v.decode("utf-8", "replace")) for n, v in self._decoder.decode(block)]
        stream = self.streams.get(sid)
        if stream is None:
            return
        if stream.headers is None:
            stream.headers = fields
        else:
            stream.trailers = fields
        stream.ended |= bool(flags & END_STREAM)

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
