"""The values Compose refuses, as pure parsers. schema.py places them at the keys that hold them.

compose-go checks a file against the Compose schema, then decodes durations, sizes and ports
with their own grammars; the engine refuses more when it creates a container (a restart
policy it does not know, a memory limit under 6 MB, a relative working directory). Each
parser here follows one of those grammars, read from compose-go, go-units,
go-str2duration and the engine's messages, and raises ValueError saying what is wrong, so
`plan` refuses the value with file, line and field before `up` touches anything.
tests/unit/compose/compose_verdicts.yaml holds the cases; an integration test asks
`docker compose` for its own verdict on each.
"""

from __future__ import annotations

import ipaddress
import re
import signal
from typing import Any

_DURATION = re.compile(r"[-+]?(0|((\d+\.?\d*|\.\d+)(ns|us|µs|μs|ms|s|m|h|d|w))+)")  # go-str2duration
_DURATION_PART = re.compile(r"(\d+\.?\d*|\.\d+)(ns|us|µs|μs|ms|s|m|h|d|w)")
_SECONDS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0,
            "h": 3600.0, "d": 86400.0, "w": 604800.0}
_SIZE_UNITS = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}
MIN_MEMORY = 6 * 1024 * 1024  # the engine refuses a memory limit or reservation below 6 MB
_INTEGER = re.compile(r"[-+]?\d+")
_NUMBER = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")
_CONTAINER_NAME = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]+")
_PULL_POLICY = re.compile(
    r"always|never|build|if_not_present|missing|refresh|daily|weekly|every_(\d+[wdhms])+")
_RESTART = re.compile(r"(no|always|unless-stopped|on-failure)(:(.*))?")
_SIGNALS = {s.name.removeprefix("SIG") for s in signal.Signals} | {"RTMIN", "RTMAX"}
_RT_SIGNAL = re.compile(r"RTM(IN|AX)[+-]\d+")

DURATION_HINT = "write a number and a unit, as a string: 30s, 1m30s, 500ms (units: ns us ms s m h d w)"
SIZE_HINT = "write bytes or a number and a unit: 512m, 1g, 1.5gb (units: b k m g t p)"


def duration(value: Any) -> float:
    """A Compose duration ("1m30s", "1.5h", "0", "2d") -> seconds."""
    if not isinstance(value, str):
        raise ValueError("must be a duration as a string (e.g. \"30s\")")
    if not _DURATION.fullmatch(value):
        raise ValueError(f"invalid duration {value!r}")
    sign = -1.0 if value.startswith("-") else 1.0
    return sign * sum(float(n) * _SECONDS[u] for n, u in _DURATION_PART.findall(value))


def health_duration(value: Any) -> float:
    """A healthcheck interval, timeout or start period: 0 (the default) or at least 1 ms."""
    seconds = duration(value)
    if seconds != 0 and seconds < 0.001:
        raise ValueError(f"{value!r} is below 1ms (the engine's least; 0 means its default)")
    return seconds


def size(value: Any) -> int:
    """A Compose size (an integer of bytes, or "512m", "1.5 GiB", "100kb") -> bytes (go-units)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, float):
        return int(value)
    if not isinstance(value, str):
        raise ValueError("must be a size: bytes or a string such as \"512m\"")
    if _INTEGER.fullmatch(value):
        return int(value)
    cut = max((value.rfind(c) for c in "0123456789. "), default=-1)
    if cut < 0:
        raise ValueError(f"invalid size {value!r}")
    # A space between the number and its unit is dropped (go-units): "512 m".
    end = cut if value[cut] == " " else cut + 1
    number, suffix = value[:end], value[cut + 1 :]
    if not _NUMBER.fullmatch(number) or float(number) < 0:
        raise ValueError(f"invalid size {value!r}")
    unit = suffix.lower()
    if unit in ("", "b"):
        return int(float(number))
    if unit[0] not in _SIZE_UNITS or unit[1:] not in ("", "b", "ib"):
        raise ValueError(f"invalid size {value!r}: unknown unit {suffix!r}")
    return int(float(number) * _SIZE_UNITS[unit[0]])


def memory(value: Any) -> int:
    """A memory limit or reservation: 0 (none) or at least 6 MB, as the engine requires."""
    found = size(value)
    if found != 0 and found < MIN_MEMORY:
        raise ValueError(f"{value!r} is below the engine's least memory limit, 6m")
    return found


def memory_swap(value: Any) -> int:
    """memswap_limit: -1 (unlimited), 0 (default) or a size."""
    found = size(value)
    if found < -1:
        raise ValueError(f"invalid swap limit {value!r}: -1 (unlimited) or a size")
    return found


def non_negative_size(value: Any) -> int:
    found = size(value)
    if found < 0:
        raise ValueError(f"{value!r} cannot be negative")
    return found


def integer(value: Any) -> int:
    """An integer, or a string of one (what interpolation leaves)."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError("must be an integer")
    if isinstance(value, str) and not _INTEGER.fullmatch(value):
        raise ValueError(f"{value!r} is not an integer")
    return int(value)


def at_least(low: int, high: int | None = None) -> Any:
    def check(value: Any) -> int:
        found = integer(value)
        if found < low or (high is not None and found > high):
            raise ValueError(f"{found} is out of range {low}-{high}" if high is not None
                             else f"{found} must be {low} or more")
        return found
    return check


def cpus(value: Any) -> float:
    """A number of CPUs (0.5, "1.5"); 0 means no limit."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError("must be a number of CPUs")
    if isinstance(value, str) and not _NUMBER.fullmatch(value):
        raise ValueError(f"{value!r} is not a number of CPUs")
    found = float(value)
    if found < 0:
        raise ValueError(f"{value!r} cannot be negative")
    return found


def restart(value: Any) -> str:
    """A restart policy the engine knows: no, always, unless-stopped, on-failure[:count]."""
    if not isinstance(value, str):
        raise ValueError("must be a string")
    if value == "":
        return value  # the engine's default, "no"
    match = _RESTART.fullmatch(value)
    if match is None:
        raise ValueError(f"unknown restart policy {value!r}")
    policy, count = match.group(1), match.group(3)
    if count is not None and policy != "on-failure":
        raise ValueError(f"restart policy {policy!r} takes no retry count")
    if count is not None and not count.isdigit():
        raise ValueError(f"the retry count of {value!r} is not a number")
    return value


def stop_signal(value: Any) -> str:
    """A signal name (SIGTERM, TERM, sigint, RTMIN+3) or a positive number, as the engine reads it."""
    text = str(value) if isinstance(value, int) and not isinstance(value, bool) else value
    if not isinstance(text, str):
        raise ValueError("must be a signal name")
    if text.isdigit() and int(text) > 0:
        return text
    name = text.upper().removeprefix("SIG")
    if name in _SIGNALS or _RT_SIGNAL.fullmatch(name):
        return text
    raise ValueError(f"unknown signal {text!r}")


def container_name(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError("must be a string")
    if not _CONTAINER_NAME.fullmatch(value):
        raise ValueError(f"invalid container name {value!r}: two or more of a-z A-Z 0-9 _ . -, "
                         "starting with a letter or digit")
    return value


def pull_policy(value: Any) -> str:
    if not isinstance(value, str) or not _PULL_POLICY.fullmatch(value):
        raise ValueError(f"unknown pull policy {value!r}: always, never, missing, build, "
                         "if_not_present, refresh, daily, weekly or every_<duration>")
    return value


def one_of(*allowed: str) -> Any:
    def check(value: Any) -> str:
        if value not in allowed:
            raise ValueError(f"{value!r} is not one of {', '.join(allowed)}")
        return str(value)
    return check


def absolute_path(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError("must be a string")
    if not value.startswith("/"):
        raise ValueError(f"{value!r} is not an absolute path (the engine needs one)")
    return value


def ip_address(value: str) -> str:
    """An IPv4 or IPv6 address as Go's net.ParseIP reads it: no brackets, no zone, no name."""
    if "%" in value:
        raise ValueError(f"invalid IP address {value!r}")
    try:
        ipaddress.ip_address(value)
    except ValueError:
        raise ValueError(f"invalid IP address {value!r}") from None
    return value


def extra_host(value: Any) -> str:
    """One `extra_hosts` entry, "name:ip" or "name=ip" (an IPv6 address may hold colons)."""
    if not isinstance(value, str):
        raise ValueError("must be a string")
    name, sep, address = value.partition("=")
    if not sep:
        name, sep, address = value.partition(":")
    if not sep or not name or not address:
        raise ValueError(f"{value!r} has no IP address: write name:ip or name=ip")
    if address != "host-gateway":
        ip_address(address.removeprefix("[").removesuffix("]"))
    return value


def healthcheck_test(value: Any) -> Any:
    """A list test starts with CMD, CMD-SHELL or NONE (a string test is CMD-SHELL)."""
    if isinstance(value, list) and value and value[0] not in ("CMD", "CMD-SHELL", "NONE"):
        raise ValueError(f"a list test starts with CMD, CMD-SHELL or NONE, not {value[0]!r}")
    return value
