"""Shared test helpers.

With CI=true a test whose real service is missing fails; it never skips. On a
developer machine it skips with the reason, so the unit tier stays usable anywhere.
"""

from __future__ import annotations

import os

import pytest


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def need(service: str, available: bool, how: str = "") -> None:
    """Stop the test when `service` is not available: fail in CI, skip elsewhere."""
    if available:
        return
    message = f"{service} is not available" + (f": {how}" if how else "")
    if in_ci():
        pytest.fail(message + " (CI=true: a missing service is a failure)")
    pytest.skip(message)
