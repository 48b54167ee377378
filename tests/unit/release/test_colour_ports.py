"""Host ports of a blue-green colour: free, distinct, clear of the kernel's ephemeral range."""

from __future__ import annotations

import socket

import pytest

from envplane.release.bluegreen import HostPorts, colour_range, free_ports, local_ephemeral


def test_colour_ports_are_free_distinct_and_above_the_ephemeral_range() -> None:
    low, high = colour_range(local_ephemeral())
    ports = free_ports(20)
    assert len(set(ports)) == 20 and all(low <= p <= high for p in ports)
    with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
        assert low > int(f.read().split()[1])
    for port in ports:
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("0.0.0.0", port))


def test_ports_taken_or_listened_on_are_never_chosen() -> None:
    low, _ = colour_range(local_ephemeral())
    with socket.socket() as busy:
        busy.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        busy.bind(("0.0.0.0", low))
        busy.listen()
        chosen = free_ports(200, taken={low + 1, low + 2})
    assert not {low, low + 1, low + 2} & set(chosen)


@pytest.mark.parametrize(("ephemeral", "chosen"), [
    (None, (61000, 65535)),  # Linux's default 32768-60999
    ((32768, 60999), (61000, 65535)),
    ((20000, 64000), (64001, 65535)),
    ((10000, 65500), (1024, 9999)),  # no 500 ports above it: below it
    ((1200, 65300), (65301, 65535)),  # little room either side: the larger
    ((1500, 65300), (1024, 1499)),
])
def test_colour_ports_lie_outside_the_hosts_ephemeral_range(ephemeral: tuple[int, int] | None,
                                                            chosen: tuple[int, int]) -> None:
    assert colour_range(ephemeral) == chosen


def test_colour_ports_are_chosen_by_the_hosts_own_range_and_listeners() -> None:
    # a remote host: its ephemeral range and what listens there, not this machine's
    host = HostPorts(is_free=lambda port: port % 2 == 0, ephemeral=(20000, 65000))
    ports = free_ports(50, host=host)
    assert all(65001 <= p <= 65535 and p % 2 == 0 for p in ports)
