"""A reader of the Prometheus text exposition format (version 0.0.4), written
from its specification for the tests, independent of the daemon's writer.

    m = prom.parse(text)
    m.value("grpc_server_handled_total", grpc_method="Recommend", grpc_code="OK")
    m.types["grpc_server_handling_seconds"] == "histogram"
"""

import math
import re

_NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
_SAMPLE = re.compile(r"^(%s)(?:\{(.*)\})?\s+(\S+)(?:\s+(-?\d+))?$" % _NAME)
_LABEL = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"\s*(?:,|$)')
_UNESCAPE = {"\\\\": "\\", '\\"': '"', "\\n": "\n"}


class FormatError(ValueError):
    pass


def _labels(text, line_no):
    labels = {}
    pos = 0
    while pos < len(text):
        m = _LABEL.match(text, pos)
        if m is None:
            raise FormatError("line %d: bad labels {%s}" % (line_no, text))
        value = re.sub(r"\\.", lambda e: _UNESCAPE.get(e.group(0), e.group(0)), m.group(2))
        if m.group(1) in labels:
            raise FormatError("line %d: label %s twice" % (line_no, m.group(1)))
        labels[m.group(1)] = value
        pos = m.end()
    return labels


def _value(text, line_no):
    special = {"+Inf": math.inf, "-Inf": -math.inf, "NaN": math.nan}
    if text in special:
        return special[text]
    try:
        return float(text)
    except ValueError:
        raise FormatError("line %d: bad value %r" % (line_no, text))


class Metrics:
    def __init__(self):
        self.samples = []  # (name, {labels}, value)
        self.types = {}
        self.helps = {}

    def select(self, name, **labels):
        """Samples of name whose labels include the given ones."""
        return [(l, v) for n, l, v in self.samples
                if n == name and all(l.get(k) == str(x) for k, x in labels.items())]

    def value(self, name, default=None, **labels):
        """The one sample of name with these labels (default if none)."""
        found = self.select(name, **labels)
        if not found:
            if default is not None:
                return default
            raise KeyError("no sample %s%s" % (name, labels))
        if len(found) > 1:
            raise KeyError("%d samples %s%s" % (len(found), name, labels))
        return found[0][1]


def parse(text):
    """Parse an exposition; raises FormatError on anything malformed, on a
    TYPE after the family's samples, or on a sample series given twice."""
    out = Metrics()
    seen = set()
    if text and not text.endswith("\n"):
        raise FormatError("the exposition does not end in a newline")
    for no, line in enumerate(text.split("\n")[:-1], 1):
        if not line.strip():
            continue
        if line.startswith("#"):
            parts = line.split(None, 3)
            if len(parts) >= 3 and parts[1] == "TYPE":
                family = {parts[2] + s for s in ("", "_bucket", "_sum", "_count")}
                if parts[2] in out.types or any(n in family for n, _, _ in out.samples):
                    raise FormatError("line %d: TYPE of %s again or late" % (no, parts[2]))
                out.types[parts[2]] = parts[3] if len(parts) > 3 else ""
            elif len(parts) >= 3 and parts[1] == "HELP":
                out.helps[parts[2]] = parts[3] if len(parts) > 3 else ""
            continue
        m = _SAMPLE.match(line)
        if m is None:
            raise FormatError("line %d: not a sample: %r" % (no, line))
        labels = _labels(m.group(2) or "", no)
        key = (m.group(1), tuple(sorted(labels.items())))
        if key in seen:
            raise FormatError("line %d: series %s given twice" % (no, key))
        seen.add(key)
        out.samples.append((m.group(1), labels, _value(m.group(3), no)))
    return out
