"""Host ports of a blue-green colour: free, distinct, clear of the kernel's ephemeral range."""

from __future__ import annotations

import socket

from envplane.release.bluegreen import _colour_range, free_ports


def test_colour_ports_are_free_distinct_and_above_the_ephemeral_range() -> None:
    low, high = _colour_range()
    ports = free_ports(20)
    assert len(set(ports)) == 20 and all(low <= p <= high for p in ports)
    with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
        assert low > int(f.read().split()[1])
    for port in ports:
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("0.0.0.0", port))


def test_ports_taken_or_listened_on_are_never_chosen() -> None:
    low, _ = _colour_range()
    with socket.socket() as busy:
        busy.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        busy.bind(("0.0.0.0", low))
        busy.listen()
        chosen = free_ports(200, taken={low + 1, low + 2})
    assert not {low, low + 1, low + 2} & set(chosen)
