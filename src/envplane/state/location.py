"""Where an app's state store is, and whether there is one: pure paths, no SQL.

Apart from db.py so that a read-only command (`plan`, `render`) can see there is no store
yet without loading SQLAlchemy, which is most of its start-up (#11).
"""

from __future__ import annotations

from pathlib import Path

from envplane.private import FOLDER

STATE_DIR = FOLDER
STATE_FILE = "state.db"


def state_path(spec_dir: Path) -> Path:
    return spec_dir / STATE_DIR / STATE_FILE


def exists(spec_dir: Path, url: str | None = None) -> bool:
    """Whether there is a state store to read: a URL names one, or the SQLite file is there."""
    return url is not None or state_path(spec_dir).exists()
