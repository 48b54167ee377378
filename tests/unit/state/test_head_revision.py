"""The store skips Alembic when it is at HEAD_REVISION: that constant must be Alembic's head."""

from __future__ import annotations

from alembic.config import Config
from alembic.script import ScriptDirectory

from envplane.state.db import HEAD_REVISION, MIGRATIONS


def test_head_revision_is_the_newest_migration() -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    assert ScriptDirectory.from_config(config).get_heads() == [HEAD_REVISION]
