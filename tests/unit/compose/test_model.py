from __future__ import annotations

from typing import Any

import pytest

from envplane.compose.load import build_model
from envplane.compose.model import PortMapping, PortSyntaxError, VolumeMount, parse_port, parse_volume
from envplane.errors import SpecError
from tests.unit.compose.helpers import doc

P = PortMapping

PORTS: list[tuple[Any, list[PortMapping]]] = [
    ("80", [P(80, None, "", "tcp")]),
    (80, [P(80, None, "", "tcp")]),
    ("8000:8000", [P(8000, 8000, "", "tcp")]),
    ("127.0.0.1:8000:8001", [P(8001, 8000, "127.0.0.1", "tcp")]),
    ("127.0.0.1::80", [P(80, None, "127.0.0.1", "tcp")]),
    ("8000-8002:8000-8002", [P(8000, 8000), P(8001, 8001), P(8002, 8002)]),
    ("9090-9091:8080-8081", [P(8080, 9090), P(8081, 9091)]),
    ("3000-3001", [P(3000, None), P(3001, None)]),
    ("6060:6060/udp", [P(6060, 6060, "", "udp")]),
    ("[::1]:80:81", [P(81, 80, "::1", "tcp")]),
    ("[::1]:80:81/sctp", [P(81, 80, "::1", "sctp")]),
    ({"target": 80}, [P(80, None)]),
    (
        {"target": 80, "published": "8080", "host_ip": "0.0.0.0", "protocol": "udp", "mode": "host"},
        [P(80, 8080, "0.0.0.0", "udp")],
    ),
    ({"target": 80, "published": 8080}, [P(80, 8080)]),
    ({"target": "80", "published": 0}, [P(80, None)]),
    ("0:80", [P(80, None)]),  # host port 0: the engine picks one
    ("::1:80:81", [P(81, 80, "::1", "tcp")]),  # an IPv6 address without brackets, as Compose reads it
    ("127.0.0.1:0:80/UDP", [P(80, None, "127.0.0.1", "udp")]),
]


@pytest.mark.parametrize(("value", "expected"), PORTS)
def test_every_port_form(value: Any, expected: list[PortMapping]) -> None:
    assert parse_port(value) == expected


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("70000", "port 70000 is out of range 1-65535"),
        ("80:0", "port 0 is out of range 1-65535"),
        (70000, "port 70000 is out of range 1-65535"),
        ("http", "invalid container port 'http'"),
        ("1:2:3:4", "invalid IP address '1:2' in '1:2:3:4'"),
        ("[::1:80:80", "invalid port '[::1:80:80': an address in brackets comes before a host port "
                       "and a container port"),
        ("81-80", "invalid port range '81-80'"),
        ("80-82:90-91", "port ranges in '80-82:90-91' differ in length"),
        ("8080/8080", "invalid protocol '8080' in '8080/8080': tcp, udp or sctp"),
        ({"target": "80-81", "published": "8080-8081"}, "a long-syntax `target` is one port, not '80-81'"),
        ({"published": 80}, "a long-syntax port needs `target`"),
        (True, "invalid port True"),
        (None, "invalid port None"),
    ],
)
def test_bad_ports(value: Any, message: str) -> None:
    with pytest.raises(PortSyntaxError) as err:
        parse_port(value)
    assert str(err.value) == message


def test_bad_ports_name_file_line_and_field() -> None:
    text = "services:\n  web:\n    image: x\n    ports:\n      - 70000\n      - '80'\n      - 'a:b'\n"
    with pytest.raises(SpecError) as err:
        build_model([doc(text)], {}, ())
    assert [p.render() for p in err.value.problems] == [
        "services.web.ports[0]: port 70000 is out of range 1-65535 (compose.yaml:5)",
        "services.web.ports[2]: invalid container port 'b' in 'a:b' (compose.yaml:7)",
    ]


VOLUMES: list[tuple[Any, tuple[str, str, str, bool]]] = [
    ("data:/var/lib/data", ("volume", "data", "/var/lib/data", False)),
    ("./rel:/app:ro", ("bind", "./rel", "/app", True)),
    ("/abs:/path", ("bind", "/abs", "/path", False)),
    ("~/x:/data:rw", ("bind", "~/x", "/data", False)),
    ("/anonymous", ("anonymous", "", "/anonymous", False)),
    ({"type": "bind", "source": "./s", "target": "/t", "read_only": True}, ("bind", "./s", "/t", True)),
    (
        {"type": "volume", "source": "v", "target": "/t", "volume": {"nocopy": True}},
        ("volume", "v", "/t", False),
    ),
    ({"type": "volume", "target": "/t"}, ("anonymous", "", "/t", False)),
    ({"type": "tmpfs", "target": "/tmp", "tmpfs": {"size": 1000}}, ("tmpfs", "", "/tmp", False)),
]


@pytest.mark.parametrize(("value", "expected"), VOLUMES)
def test_volume_forms(value: Any, expected: tuple[str, str, str, bool]) -> None:
    mount = parse_volume(value)
    assert (mount.kind, mount.source, mount.target, mount.read_only) == expected
    if isinstance(value, dict):
        assert mount.long == value  # every long-syntax option is kept


def test_short_volume_has_a_long_form() -> None:
    assert parse_volume("./d:/d:ro") == VolumeMount(
        "bind", "./d", "/d", True, {"type": "bind", "source": "./d", "target": "/d", "read_only": True}
    )


STRUCTURE = [
    ("x-only: 1\n", ["services: must be a mapping with at least one service (compose.yaml:1)"]),
    ("services: [a]\n", ["services: must be a mapping with at least one service (compose.yaml:1)"]),
    (
        "services:\n  web: nginx\n  -bad:\n    image: x\n  nobuild:\n    ports: 80\n  vol:\n    image: x\n"
        "    volumes: ['a:b:c:d', {type: bind}]\n",
        [
            "services.web: must be a mapping (compose.yaml:2)",
            "services.-bad: invalid service name '-bad' (compose.yaml:3)",
            "services.nobuild: needs `image` or `build` (compose.yaml:5)",
            "services.nobuild.ports: must be a list (compose.yaml:6)",
            "services.vol.volumes[0]: invalid volume 'a:b:c:d' (compose.yaml:9)",
            "services.vol.volumes[1]: a volume needs a `target` path in the container (compose.yaml:9)",
        ],
    ),
]


@pytest.mark.parametrize(("text", "rendered"), STRUCTURE)
def test_structure_problems(text: str, rendered: list[str]) -> None:
    with pytest.raises(SpecError) as err:
        build_model([doc(text)], {}, ())
    assert [p.render() for p in err.value.problems] == rendered
    assert all(p.hint for p in err.value.problems)


def test_unknown_keys_survive_the_whole_load() -> None:
    text = "services:\n  w:\n    image: x\n    x-mine: {a: 1}\n    gpus: all\nx-top: [1]\nmodels: {m: {}}\n"
    model, warnings = build_model([doc(text)], {}, ())
    assert model.data == {
        "services": {"w": {"image": "x", "x-mine": {"a": 1}, "gpus": "all"}},
        "x-top": [1],
        "models": {"m": {}},
    }
    assert warnings == []
