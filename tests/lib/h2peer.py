"""A small raw HTTP/2 client, for tests that must play a peer no real
gRPC client would be: one that grants no flow-control window, opens far
more streams than allowed, or only watches what the server sends.

It speaks just enough of RFC 9113 for that: the connection preface, frames
with their 9-byte header, SETTINGS and their acknowledgement, and request
headers encoded as HPACK literals without indexing and without Huffman
coding (RFC 7541, 6.2.2), which every decoder must accept and which leave
the server's dynamic table alone. It never decodes the server's header
blocks; it reports which frames came, on which stream, with which flags
and payload, which is what the tests assert on (a RST_STREAM's error code,
a GOAWAY, a PING, the server's SETTINGS).
"""

import socket
import struct
import time

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

DATA, HEADERS, RST_STREAM, SETTINGS, PING, GOAWAY, WINDOW_UPDATE, CONTINUATION = (
    0x0, 0x1, 0x3, 0x4, 0x6, 0x7, 0x8, 0x9)
END_STREAM, ACK, END_HEADERS = 0x1, 0x1, 0x4
SETTINGS_MAX_CONCURRENT_STREAMS, SETTINGS_INITIAL_WINDOW_SIZE = 0x3, 0x4
REFUSED_STREAM = 0x7
MAX_FRAME = 16384  # SETTINGS_MAX_FRAME_SIZE's initial value: what we send at most


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
    """One header as a literal without indexing, with a literal name."""
    name, value = name.encode(), value.encode()
    return b"\x00" + hpack_int(len(name), 7) + name + hpack_int(len(value), 7) + value


def grpc_headers(path, extra=()):
    """The header block of a gRPC request to path, with extra (name, value)s."""
    fields = [(":method", "POST"), (":scheme", "http"), (":path", path),
              (":authority", "recsysd"), ("content-type", "application/grpc"),
              ("te", "trailers")] + list(extra)
    return b"".join(hpack_literal(n, v) for n, v in fields)


class Frame:
    def __init__(self, kind, flags, stream, payload):
        self.kind, self.flags, self.stream, self.payload = kind, flags, stream, payload

    def error_code(self):
        """A RST_STREAM's error code, or a GOAWAY's."""
        at = 0 if self.kind == RST_STREAM else 4
        return struct.unpack(">I", self.payload[at:at + 4])[0]

    def settings(self):
        """A SETTINGS frame's {identifier: value}."""
        return {ident: value for ident, value in
                (struct.unpack(">HI", self.payload[i:i + 6])
                 for i in range(0, len(self.payload), 6))}


class H2Peer:
    """One connection. settings: {identifier: value} sent in the preface
    (e.g. {SETTINGS_INITIAL_WINDOW_SIZE: 0} for a client that never takes
    a reply)."""

    def __init__(self, port, settings=None, host="127.0.0.1", timeout=10.0):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.buf = b""
        self.next_stream = 1
        payload = b"".join(struct.pack(">HI", k, v) for k, v in (settings or {}).items())
        self.sock.sendall(PREFACE + self.frame(SETTINGS, 0, 0, payload))

    @staticmethod
    def frame(kind, flags, stream, payload):
        return (struct.pack(">I", len(payload))[1:] + bytes([kind, flags])
                + struct.pack(">I", stream) + payload)

    def request_bytes(self, path, message, extra_headers=()):
        """The frames of one gRPC call carrying message (already framed with
        its 5-byte prefix, or None for headers only, never ended); returns
        (stream id, bytes). A header block over MAX_FRAME continues in
        CONTINUATION frames, as the protocol requires."""
        sid = self.next_stream
        self.next_stream += 2
        block = grpc_headers(path, extra_headers)
        chunks = [block[i:i + MAX_FRAME] for i in range(0, len(block), MAX_FRAME)]
        out = self.frame(HEADERS, END_HEADERS if len(chunks) == 1 else 0, sid, chunks[0])
        for i, chunk in enumerate(chunks[1:]):
            out += self.frame(CONTINUATION, END_HEADERS if i == len(chunks) - 2 else 0, sid,
                              chunk)
        if message is not None:
            out += self.frame(DATA, END_STREAM, sid, message)
        return sid, out

    def send(self, data):
        self.sock.sendall(data)

    def read_frames(self, until, timeout=10.0):
        """Read frames until until(frame) is true for one, or timeout;
        returns every frame read (the last one matched, unless timed out).
        The server's SETTINGS are acknowledged as they come, and the
        flow-control window its DATA used is granted again: a peer that
        reads takes its replies (one that never calls this never does)."""
        frames = []
        deadline = time.monotonic() + timeout
        while True:
            while len(self.buf) >= 9:
                length = int.from_bytes(self.buf[:3], "big")
                if len(self.buf) < 9 + length:
                    break
                f = Frame(self.buf[3], self.buf[4],
                          int.from_bytes(self.buf[5:9], "big") & 0x7fffffff,
                          self.buf[9:9 + length])
                self.buf = self.buf[9 + length:]
                frames.append(f)
                if f.kind == SETTINGS and not f.flags & ACK:
                    self.sock.sendall(self.frame(SETTINGS, ACK, 0, b""))
                if f.kind == DATA and f.payload:
                    # Taken: the window it used is given back, to the
                    # connection and to its stream.
                    grant = struct.pack(">I", len(f.payload))
                    self.sock.sendall(self.frame(WINDOW_UPDATE, 0, 0, grant)
                                      + self.frame(WINDOW_UPDATE, 0, f.stream, grant))
                if until(f):
                    return frames
            left = deadline - time.monotonic()
            if left <= 0:
                return frames
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(1 << 16)
            except socket.timeout:
                return frames
            except ConnectionError:
                return frames
            if not data:
                return frames
            self.buf += data

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
