"""Inline YAML in, Documents out: the tests' one way to make a Compose file."""

from __future__ import annotations

import textwrap
from pathlib import Path

from envplane.spec.source import Document, parse_yaml


def doc(text: str, name: str = "compose.yaml") -> Document:
    return parse_yaml(textwrap.dedent(text), Path(name))
