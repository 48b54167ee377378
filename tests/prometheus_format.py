"""A strict reader of Prometheus' text exposition format 0.0.4, for tests.

No Prometheus parser is installed here (prometheus_client is not a dependency), so this
one holds the format's rules, stricter than Prometheus itself: names and label names by
their grammar, label values with only the three escapes, one HELP and TYPE per family
before its samples, each family's samples together, no series twice, and histograms with
increasing `le` bounds, cumulative counts, a `+Inf` bucket equal to `_count`, and `_sum`.
`parse` raises FormatError naming the line; it returns the samples to look at.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
LABEL = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
TYPES = {"counter", "gauge", "histogram", "summary", "untyped"}


class FormatError(ValueError):
    pass


@dataclass(frozen=True)
class Sample:
    name: str
    labels: tuple[tuple[str, str], ...]
    value: float

    def label(self, key: str) -> str | None:
        return dict(self.labels).get(key)


def _value(text: str, where: str) -> float:
    if text in ("+Inf", "Inf"):
        return math.inf
    if text == "-Inf":
        return -math.inf
    if text == "NaN":
        return math.nan
    if not re.fullmatch(r"[-+]?(\d+\.?\d*([eE][-+]?\d+)?|\.\d+([eE][-+]?\d+)?)", text):
        raise FormatError(f"{where}: {text!r} is not a number")
    return float(text)


def _labels(text: str, where: str) -> tuple[tuple[str, str], ...]:
    found: list[tuple[str, str]] = []
    i = 0
    while i < len(text):
        match = LABEL.match(text, i)
        if match is None:
            raise FormatError(f"{where}: bad label name at {text[i:]!r}")
        name = match.group()
        if name.startswith("__"):
            raise FormatError(f"{where}: label {name} is reserved")
        i = match.end()
        if text[i:i + 2] != '="':
            raise FormatError(f"{where}: expected =\" after {name}")
        i += 2
        value = []
        while True:
            if i >= len(text):
                raise FormatError(f"{where}: label {name}'s value is not closed")
            char = text[i]
            if char == "\\":
                escaped = text[i + 1:i + 2]
                if escaped not in ("\\", '"', "n"):
                    raise FormatError(f"{where}: bad escape \\{escaped} in label {name}")
                value.append("\n" if escaped == "n" else escaped)
                i += 2
            elif char == '"':
                i += 1
                break
            elif char == "\n":
                raise FormatError(f"{where}: a raw line break in label {name}")
            else:
                value.append(char)
                i += 1
        if name in dict(found):
            raise FormatError(f"{where}: label {name} twice")
        found.append((name, "".join(value)))
        if i < len(text):
            if text[i] != ",":
                raise FormatError(f"{where}: expected , after label {name}")
            i += 1
            if i == len(text):
                raise FormatError(f"{where}: a trailing comma")
    return tuple(found)


def _split_sample(line: str, where: str) -> tuple[str, str, str]:
    match = NAME.match(line)
    if match is None:
        raise FormatError(f"{where}: a sample must start with a metric name: {line!r}")
    name, rest = match.group(), line[match.end():]
    labels = ""
    if rest.startswith("{"):
        depth_end = _closing_brace(rest, where)
        labels, rest = rest[1:depth_end], rest[depth_end + 1:]
    if not rest.startswith(" "):
        raise FormatError(f"{where}: expected one space before the value")
    parts = rest[1:].split(" ")
    if len(parts) not in (1, 2) or not parts[0]:
        raise FormatError(f"{where}: expected a value and at most a timestamp")
    if len(parts) == 2 and not re.fullmatch(r"-?\d+", parts[1]):
        raise FormatError(f"{where}: bad timestamp {parts[1]!r}")
    return name, labels, parts[0]


def _closing_brace(text: str, where: str) -> int:
    quoted, i = False, 1
    while i < len(text):
        if quoted and text[i] == "\\":
            i += 2
            continue
        if text[i] == '"':
            quoted = not quoted
        elif text[i] == "}" and not quoted:
            return i
        i += 1
    raise FormatError(f"{where}: labels not closed")


def parse(text: str) -> list[Sample]:
    if not text.endswith("\n"):
        raise FormatError("the text must end with a line break")
    types: dict[str, str] = {}
    helps: set[str] = set()
    done: set[str] = set()  # families whose samples ended
    current: str | None = None
    samples: list[Sample] = []
    seen: set[tuple[str, tuple[tuple[str, str], ...]]] = set()
    for number, line in enumerate(text[:-1].split("\n"), 1):
        where = f"line {number}"
        if not line.strip():
            raise FormatError(f"{where}: an empty line")
        if line.startswith("#"):
            parts = line.split(" ", 3)
            if len(parts) >= 3 and parts[1] in ("HELP", "TYPE"):
                name = parts[2]
                if not NAME.fullmatch(name):
                    raise FormatError(f"{where}: bad metric name {name!r}")
                if name != current:
                    if current is not None:
                        done.add(current)
                    if name in done:
                        raise FormatError(f"{where}: family {name} appears twice")
                    current = name
                if parts[1] == "HELP":
                    if name in helps:
                        raise FormatError(f"{where}: HELP of {name} twice")
                    helps.add(name)
                else:
                    kind = parts[3] if len(parts) == 4 else ""
                    if kind not in TYPES:
                        raise FormatError(f"{where}: unknown type {kind!r}")
                    if name in types:
                        raise FormatError(f"{where}: TYPE of {name} twice")
                    types[name] = kind
            continue
        name, labels, value = _split_sample(line, where)
        family = _family(name, current, types, where)
        sample = Sample(name, _labels(labels, where), _value(value, where))
        if (name, tuple(sorted(sample.labels))) in seen:
            raise FormatError(f"{where}: series {name}{{{labels}}} twice")
        seen.add((name, tuple(sorted(sample.labels))))
        samples.append(sample)
        if types[family] == "histogram" and name == family:
            raise FormatError(f"{where}: a histogram has no bare {name} sample")
    _check_histograms(samples, types)
    return samples


def _family(name: str, current: str | None, types: dict[str, str], where: str) -> str:
    if current is None or current not in types:
        raise FormatError(f"{where}: sample {name} before its family's TYPE")
    kind = types[current]
    allowed = {current}
    if kind == "histogram":
        allowed |= {f"{current}_bucket", f"{current}_sum", f"{current}_count"}
    if name not in allowed:
        raise FormatError(f"{where}: sample {name} is not of family {current} ({kind})")
    return current


def _check_histograms(samples: list[Sample], types: dict[str, str]) -> None:
    for family, kind in types.items():
        if kind != "histogram":
            continue
        series: dict[tuple[tuple[str, str], ...], list[tuple[float, float]]] = {}
        sums, counts = {}, {}
        for s in samples:
            rest = tuple(kv for kv in s.labels if kv[0] != "le")
            if s.name == f"{family}_bucket":
                le = s.label("le")
                if le is None:
                    raise FormatError(f"{family}: a bucket without le")
                series.setdefault(rest, []).append((_value(le, family), s.value))
            elif s.name == f"{family}_sum":
                sums[rest] = s.value
            elif s.name == f"{family}_count":
                counts[rest] = s.value
        for labels, buckets in series.items():
            bounds = [b for b, _ in buckets]
            if bounds != sorted(bounds) or len(set(bounds)) != len(bounds):
                raise FormatError(f"{family}{labels}: le bounds not increasing")
            if bounds[-1] != math.inf:
                raise FormatError(f"{family}{labels}: no +Inf bucket")
            values = [v for _, v in buckets]
            if values != sorted(values):
                raise FormatError(f"{family}{labels}: bucket counts not cumulative")
            if labels not in counts or counts[labels] != values[-1]:
                raise FormatError(f"{family}{labels}: _count is not the +Inf bucket")
            if labels not in sums:
                raise FormatError(f"{family}{labels}: no _sum")
