"""Manifests as YAML that kubectl and Helm read back exactly. Pure.

kubectl and Helm read YAML with YAML 1.1's rules, where `yes`, `on`, `off`, `y` and `1:20`
are not strings, and Go's number parsing, where `08` or `1e3` is a number: such strings
are quoted, so an env value "yes" reaches the container as the word, not as `true`.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterable, Mapping
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.representer import RoundTripRepresenter
from ruamel.yaml.resolver import VersionedResolver

# What Go's number parsing (kubectl, Helm) takes that YAML 1.1's resolver leaves a string: 08, 1_0.
_NUMBER_LIKE = re.compile(r"^[-+]?((\d[\d_]*)?\.?\d[\d_]*([eE][-+]?\d+)?|0[xXoObB][0-9a-fA-F_]+)$")


class _Yaml11Resolver(VersionedResolver):
    """Decides which plain strings need quotes by YAML 1.1's rules, without a %YAML line."""

    @property
    def processing_version(self) -> Any:
        return (1, 1)


class _Representer(RoundTripRepresenter):
    def represent_str(self, data: str) -> Any:
        if _NUMBER_LIKE.match(data):
            return self.represent_scalar("tag:yaml.org,2002:str", data, style="'")
        return super().represent_str(data)


_Representer.add_representer(str, _Representer.represent_str)


def _yaml() -> YAML:
    yaml = YAML(typ="rt")
    yaml.Resolver = _Yaml11Resolver
    yaml.Representer = _Representer
    yaml.default_flow_style = False
    yaml.width = 4096
    return yaml


def dump(obj: Mapping[str, Any]) -> str:
    buffer = io.StringIO()
    _yaml().dump(_plain(obj), buffer)
    return buffer.getvalue()


def dump_all(objects: Iterable[Mapping[str, Any]]) -> str:
    """Objects as one multi-document stream."""
    return "".join(f"---\n{dump(obj)}" for obj in objects)


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value
