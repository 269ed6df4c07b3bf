"""Run a real recsysd ($RECSYSD) for a test, and talk to it over gRPC.

    with Daemon(model_path, threads=2) as d:
        resp = d.stub_call("Recommend", recommender_pb2.RecommendRequest(user_id="u1"),
                           recommender_pb2.RecommendResponse)

The daemon listens on 127.0.0.1:0; the port is read from its "listening on"
log line. Start-up then waits, through gRPC's own wait-for-ready, until the
standard health check answers SERVING or NOT_SERVING, so a test begins only
once the daemon answers calls. Leaving the block sends SIGTERM and fails
if the daemon does not exit 0 (a sanitizer report makes it exit non-zero).

Environment: RECSYSD (the binary) and RECSYS_PYGEN (the build's generated
Python protobuf modules, also on PYTHONPATH), both set by tests/CMakeLists.txt.
"""

import importlib.util
import os
import re
import shutil
import signal as _signal
import struct
import subprocess
import tempfile
import threading
import time
import unittest
import urllib.request

import grpc

import prom
from recsys.v1 import recommender_pb2  # also re-exported for tests

RECSYSD = os.environ.get("RECSYSD", "recsysd")
SERVICE = "recsys.v1.Recommender"

# How long start-up and stop may take. Generous: sanitizer builds on a
# loaded 2-core machine start slowly.
START_TIMEOUT = 60.0
STOP_TIMEOUT = 60.0


def load_grpc_pb2(relpath):
    """A generated module of the standard grpc/... protos, such as
    "health/v1/health_pb2.py". They cannot be imported by their package
    name: the installed `grpc` package shadows the generated directory of
    the same name. Load the generated file by path instead."""
    path = os.path.join(os.environ["RECSYS_PYGEN"], "grpc", *relpath.split("/"))
    name = "recsys_test_" + relpath.replace("/", "_")[:-3]
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


health_pb2 = load_grpc_pb2("health/v1/health_pb2.py")


def grpc_frame(message_bytes):
    """A length-prefixed gRPC message, as it travels in an HTTP/2 body: not
    compressed, then a 4-byte big-endian length (for raw HTTP/2 clients)."""
    return b"\0" + struct.pack(">I", len(message_bytes)) + message_bytes


def handled(m, method, code, service=None):
    """The scraped grpc_server_handled_total of method (in service, if given)
    with grpc_code code; 0 when the series is absent."""
    labels = {"grpc_method": method, "grpc_code": code}
    if service is not None:
        labels["grpc_service"] = service
    return m.value("grpc_server_handled_total", 0.0, **labels)


def handled_by_code(m, method):
    """{grpc_code: count} of method's scraped grpc_server_handled_total."""
    return {l["grpc_code"]: v for l, v in m.select("grpc_server_handled_total",
                                                     grpc_method=method)}


class DaemonError(Exception):
    """The daemon did not start, or did not stop cleanly; carries its log."""


def method_path(method):
    """'Recommend' -> '/recsys.v1.Recommender/Recommend'; a full path is kept."""
    return method if method.startswith("/") else "/%s/%s" % (SERVICE, method)


class Daemon:
    def __init__(self, model_path, threads=2, args=(), env=None, listen="127.0.0.1:0",
                 metrics=False, credentials=None):
        """model_path None: no --model flag (e.g. when RECSYS_MODEL is in env);
        threads, listen None: no --threads, --listen flag; env: variables
        added to os.environ; metrics: serve the metrics endpoint on a free
        port (self.metrics_port, read by scrape()); credentials: the
        grpc.ChannelCredentials of channel() (TLS), None for plaintext."""
        self.argv = [RECSYSD]
        self.metrics = metrics
        self.metrics_port = None
        self.credentials = credentials
        if metrics:
            self.argv += ["--metrics-listen", "127.0.0.1:0"]
        if listen is not None:
            self.argv += ["--listen", listen]
        if model_path is not None:
            self.argv += ["--model", str(model_path)]
        if threads is not None:
            self.argv += ["--threads", str(threads)]
        self.argv += list(args)
        self.env = dict(os.environ)
        self.env.update(env or {})
        self.proc = None
        self.port = None
        self.addr = None
        self.threads = None
        self._lines = []
        self._cond = threading.Condition()
        self._eof = False
        self._channels = []
        self._channel = None

    # ---- lifetime ----------------------------------------------------------

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, exc_type, exc, tb):
        self.stop(check=exc_type is None)

    def start(self):
        self.proc = subprocess.Popen(self.argv, env=self.env, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self._reader = threading.Thread(target=self._read_stderr, daemon=True)
        self._reader.start()
        try:
            m = self.wait_log(r"listening on (\S+):(\d+) threads=(\d+)", START_TIMEOUT)
            self.port = int(m.group(2))
            self.threads = int(m.group(3))
            self.addr = "127.0.0.1:%d" % self.port
            if self.metrics:
                # Logged before the "listening on" line, so already here.
                m = self.wait_log(r"metrics on http://\S+:(\d+)/metrics", 0)
                self.metrics_port = int(m.group(1))
            try:
                self.health(wait=START_TIMEOUT)
            except grpc.RpcError as e:
                # Say why: the daemon may have died (a sanitizer report).
                raise DaemonError("recsysd did not answer its health check (%s); exit status "
                                  "%s; log:\n%s" % (e.code(), self.proc.poll(), self.log()))
        except BaseException:
            self._kill()
            raise

    def stop(self, check=True):
        """SIGTERM the daemon if it still runs and wait for it; with check,
        raise DaemonError unless it exits 0."""
        self.close_channels()  # see close_channels
        try:
            if self.proc is not None and self.proc.poll() is None:
                self.proc.send_signal(_signal.SIGTERM)
                rc = self.wait_exit(STOP_TIMEOUT)
                if check and rc != 0:
                    raise DaemonError("recsysd exited %s on SIGTERM; log:\n%s" % (rc, self.log()))
        finally:
            self._kill()

    def close_channels(self):
        """Close every channel made by channel() and rpc(). Do it before a
        signal when no call is running: an idle Python channel does not poll
        its socket, so it answers the server's shutdown ping only when gRPC's
        backup poller runs (every 5 s), and the daemon waits for it."""
        for ch in self._channels:
            ch.close()
        self._channels = []
        self._channel = None

    def _kill(self):
        self.close_channels()
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if self.proc is not None:
            self._reader.join(STOP_TIMEOUT)
            self.proc.stderr.close()

    def signal(self, sig):
        self.proc.send_signal(sig)

    def wait_exit(self, timeout):
        """Wait for the daemon to exit; its return code (raises on timeout)."""
        rc = self.proc.wait(timeout)
        self._reader.join(timeout)
        return rc

    # ---- log -----------------------------------------------------------------

    def _read_stderr(self):
        for raw in self.proc.stderr:
            with self._cond:
                self._lines.append(raw.decode("utf-8", "replace"))
                self._cond.notify_all()
        with self._cond:
            self._eof = True
            self._cond.notify_all()

    def log(self):
        """Everything the daemon wrote to stderr so far."""
        with self._cond:
            return "".join(self._lines)

    def wait_log(self, regex, timeout=10.0, count=1):
        """Wait until `count` log lines match regex; the last match. Raises
        DaemonError on timeout or when the daemon exits first."""
        pattern = re.compile(regex)
        deadline = time.monotonic() + timeout
        seen = 0
        found = 0
        with self._cond:
            while True:
                for line in self._lines[seen:]:
                    m = pattern.search(line)
                    found += m is not None
                    if found == count:
                        return m
                seen = len(self._lines)
                left = deadline - time.monotonic()
                if self._eof or left <= 0:
                    why = "exited (%s)" % self.proc.poll() if self._eof else "timed out"
                    raise DaemonError("recsysd %s before logging /%s/ %d times (%d seen); log:\n%s"
                                      % (why, regex, count, found, "".join(self._lines)))
                self._cond.wait(left)

    # ---- the metrics endpoint ------------------------------------------------------

    def scrape(self):
        """GET /metrics, parsed by prom.parse (raises unless it answers 200)."""
        with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % self.metrics_port,
                                    timeout=30) as resp:
            return prom.parse(resp.read().decode("utf-8"))

    def await_scrape(self, pred, timeout=30.0):
        """Scrape until pred(metrics) holds; those metrics. A call is counted
        when the server has released it, a moment after the client has its
        answer, so a test waits for the counts it expects."""
        deadline = time.monotonic() + timeout
        while True:
            m = self.scrape()
            if pred(m):
                return m
            if time.monotonic() > deadline:
                raise DaemonError("the metrics never met the condition; last scrape:\n%s"
                                  % "\n".join("%s %s %s" % x for x in m.samples))
            time.sleep(0.01)

    # ---- the process, from /proc ---------------------------------------------------

    def proc_status(self):
        """/proc/<pid>/status as a dict; memory fields in kB as ints
        (VmRSS, VmHWM, RssAnon, RssFile, ...)."""
        out = {}
        with open("/proc/%d/status" % self.proc.pid) as f:
            for line in f:
                key, value = line.split(":", 1)
                fields = value.split()
                out[key] = int(fields[0]) if len(fields) == 2 and fields[1] == "kB" else value.strip()
        return out

    def mapped_files(self, prefix):
        """Pathnames of the file mappings in /proc/<pid>/maps under prefix,
        one entry per mapping (a deleted file keeps its " (deleted)" tail)."""
        out = []
        with open("/proc/%d/maps" % self.proc.pid) as f:
            for line in f:
                fields = line.split(None, 5)
                if len(fields) == 6 and fields[5].startswith(prefix):
                    out.append(fields[5].rstrip("\n"))
        return out

    def open_files(self, prefix):
        """Targets of the daemon's open file descriptors under prefix."""
        fd_dir = "/proc/%d/fd" % self.proc.pid
        out = []
        for fd in os.listdir(fd_dir):
            try:
                target = os.readlink(os.path.join(fd_dir, fd))
            except FileNotFoundError:
                continue  # closed meanwhile
            if target.startswith(prefix):
                out.append(target)
        return out

    # ---- gRPC ------------------------------------------------------------------

    def channel(self, options=None):
        """A new channel to the daemon, closed when the daemon is stopped."""
        if self.credentials is not None:
            ch = grpc.secure_channel(self.addr, self.credentials, options=options or [])
        else:
            ch = grpc.insecure_channel(self.addr, options=options or [])
        self._channels.append(ch)
        return ch

    def rpc(self, method, response_cls, channel=None, request_serializer=None):
        """The unary multi-callable for method ('Recommend' or a full path)."""
        if channel is None:
            if self._channel is None:
                self._channel = self.channel()
            channel = self._channel
        return channel.unary_unary(
            method_path(method),
            request_serializer=request_serializer or (lambda m: m.SerializeToString()),
            response_deserializer=response_cls.FromString)

    def stub_call(self, method, request, response_cls, timeout=5):
        """Call method with request; the response (raises grpc.RpcError)."""
        return self.rpc(method, response_cls)(request, timeout=timeout)

    def info(self):
        """GetModelInfo's answer."""
        return self.stub_call("GetModelInfo", recommender_pb2.ModelInfoRequest(),
                              recommender_pb2.ModelInfo)

    def health(self, service="", wait=5.0):
        """The health check's answer for service, as a name ('SERVING', ...).
        wait: the call waits for the channel to be ready for this long."""
        call = self.rpc("/grpc.health.v1.Health/Check", health_pb2.HealthCheckResponse)
        resp = call(health_pb2.HealthCheckRequest(service=service), timeout=wait,
                    wait_for_ready=True)
        return health_pb2.HealthCheckResponse.ServingStatus.Name(resp.status)


class TempDaemonTest(unittest.TestCase):
    """A test class sharing one daemon started in a temporary directory:
    setUpClass calls cls.prepare(tmp), which writes what the daemon is to
    serve and returns (model path, Daemon keyword arguments); the tests use
    self.d (the daemon), self.addr and self.tmp. Whatever fails on the way
    up removes the directory; tearDownClass stops the daemon, then removes
    it."""

    @classmethod
    def prepare(cls, tmp):
        raise NotImplementedError

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="recsys-%s-" % cls.__name__.lower())
        try:
            path, kwargs = cls.prepare(cls.tmp)
            cls.daemon = Daemon(path, **kwargs)
            cls.d = cls.daemon.__enter__()
            cls.addr = cls.d.addr
        except BaseException:
            shutil.rmtree(cls.tmp)
            raise

    @classmethod
    def tearDownClass(cls):
        try:
            cls.daemon.__exit__(None, None, None)
        finally:
            shutil.rmtree(cls.tmp)


class ServedModelTest(TempDaemonTest):
    """A TempDaemonTest on a fixtures model (make_model with MODEL's
    arguments), started with DAEMON's arguments; the tests also use self.ds
    (the dataset)."""

    MODEL = {}
    DAEMON = {}

    @classmethod
    def prepare(cls, tmp):
        import fixtures  # here: daemon.py is also used where numpy is not needed
        cls.ds = fixtures.make_model(tmp, **cls.MODEL)
        cls.started = time.time()
        return cls.ds.path, cls.DAEMON
